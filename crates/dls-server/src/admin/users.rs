//! Mobility users (hot desking): create, list, show (saved data by name, size and date,
//! never the data unless asked for one item), delete, set the password or the profiles,
//! and the administrator's logon and logoff, queued as jobs with a contact-me.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/v1/users` | list users |
//! | POST | `/api/v1/users` | add `{"number", "name"?, "password", "profiles"?}` |
//! | GET, DELETE | `/api/v1/users/{number}` | a user with its saved data's names, sizes, dates; forget it |
//! | PUT | `/api/v1/users/{number}/password` | `{"password"}` |
//! | PUT | `/api/v1/users/{number}/profiles` | `{"profiles": [...]}` |
//! | GET | `/api/v1/users/{number}/data/{name}` | one saved item, with its value (Base64) |
//! | POST | `/api/v1/users/{number}/logon` | `{"mac"}`: queue a `mobility-logon` job |
//! | POST | `/api/v1/users/{number}/logoff` | queue a `mobility-logoff` job where the user is |
//!
//! Passwords arrive in the body, are hashed here (Argon2id, off the executor) and are never
//! stored, logged or answered; a number is taken in any usual spelling and kept normalised.

use dls_engine::mobility::normalise_number;
use dls_store::{JobRecord, NewUser};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, blocking, body_json, error, json, parse_mac};
use crate::http::Resp;
use crate::mobility::{PasswordError, hash_password};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserRequest {
    number: String,
    #[serde(default)]
    name: Option<String>,
    password: Zeroizing<String>,
    #[serde(default)]
    profiles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: Zeroizing<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesRequest {
    profiles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogonRequest {
    mac: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, message)
}

/// A number as given (in a body, or a path segment: percent-decoded), normalised.
pub(super) fn number(text: &str) -> Result<String, ApiError> {
    let decoded = crate::uri::decode_path_segment(text).ok_or_else(|| bad("bad percent-encoding in the number"))?;
    normalise_number(&decoded).ok_or_else(|| {
        bad(format!(
            "number {}: digits, with one optional leading + (spaces, -, ., /, parentheses ignored)",
            dls_message::check::quoted(&decoded)
        ))
    })
}

/// The password's hash, made off the executor.
async fn hashed(password: Zeroizing<String>) -> Result<String, ApiError> {
    match crate::tasks::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e @ PasswordError::Invalid)) => Err(error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "hashing a password failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

/// `GET /api/v1/users`
pub(super) async fn list(state: &AdminState) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &blocking(state, "users", |s| s.users()).await?))
}

/// `POST /api/v1/users`
pub(super) async fn add(state: &AdminState, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new: NewUserRequest = body_json(state, req).await?;
    let number = number(&new.number)?;
    let password_hash = hashed(new.password).await?;
    let user = NewUser { number: number.clone(), name: new.name, password_hash, profiles: new.profiles };
    let at = state.clock.now();
    blocking(state, "add_user", move |s| s.add_user(&user, at)).await?;
    info!(number = %number, "mobility user added");
    show(state, &number).await.map(|mut r| {
        *r.status_mut() = StatusCode::CREATED;
        r
    })
}

/// `GET /api/v1/users/{number}`
pub(super) async fn show(state: &AdminState, number: &str) -> Result<Resp, ApiError> {
    let n = number.to_owned();
    match blocking(state, "user", move |s| s.user(&n)).await? {
        Some(u) => Ok(json(StatusCode::OK, &u)),
        None => Err(error(StatusCode::NOT_FOUND, format!("user {number} not found"))),
    }
}

/// `DELETE /api/v1/users/{number}`
pub(super) async fn delete(state: &AdminState, number: &str) -> Result<Resp, ApiError> {
    let n = number.to_owned();
    if blocking(state, "delete_user", move |s| s.delete_user(&n)).await? {
        info!(number = %number, "mobility user deleted");
        Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": number })))
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("user {number} not found")))
    }
}

/// `PUT /api/v1/users/{number}/password`
pub(super) async fn set_password(state: &AdminState, number: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let PasswordRequest { password } = body_json(state, req).await?;
    let hash = hashed(password).await?;
    let n = number.to_owned();
    blocking(state, "set_user_password", move |s| s.set_user_password(&n, &hash)).await?;
    info!(number = %number, "mobility user's password set");
    show(state, number).await
}

/// `PUT /api/v1/users/{number}/profiles`
pub(super) async fn set_profiles(state: &AdminState, number: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let ProfilesRequest { profiles } = body_json(state, req).await?;
    let n = number.to_owned();
    blocking(state, "set_user_profiles", move |s| s.set_user_profiles(&n, &profiles)).await?;
    show(state, number).await
}

/// `GET /api/v1/users/{number}/data/{name}`: one saved item with its value.
pub(super) async fn data(state: &AdminState, number: &str, name: &str) -> Result<Resp, ApiError> {
    let name = crate::uri::decode_path_segment(name).ok_or_else(|| bad("bad percent-encoding in the item's name"))?;
    let (n, item) = (number.to_owned(), name.clone());
    match blocking(state, "user_data", move |s| s.user_data(&n, &item)).await? {
        Some(d) => Ok(json(StatusCode::OK, &d)),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("user {number} has no saved item {}", dls_message::check::quoted(&name)),
        )),
    }
}

/// A job queued for a device: the device is asked to call in.
fn contacted(state: &AdminState, job: &JobRecord) -> Resp {
    if let Err(e) = state.jobs.contact.request(job.mac) {
        warn!(mac = %job.mac, error = %e, "no contact-me for a new job");
    }
    info!(id = job.id, mac = %job.mac, kind = job.job.name(), "mobility job queued");
    json(StatusCode::CREATED, &serde_json::json!({ "job": job }))
}

/// `POST /api/v1/users/{number}/logon`: `{"mac"}`.
pub(super) async fn logon(state: &AdminState, number: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let LogonRequest { mac } = body_json(state, req).await?;
    let mac = parse_mac(&mac)?;
    let (n, at) = (number.to_owned(), state.clock.now());
    let job = blocking(state, "queue_logon", move |s| s.queue_logon(&n, mac, at)).await?;
    Ok(contacted(state, &job))
}

/// `POST /api/v1/users/{number}/logoff`
pub(super) async fn logoff(state: &AdminState, number: &str) -> Result<Resp, ApiError> {
    let (n, at) = (number.to_owned(), state.clock.now());
    let job = blocking(state, "queue_logoff", move |s| s.queue_logoff(&n, at)).await?;
    Ok(contacted(state, &job))
}
