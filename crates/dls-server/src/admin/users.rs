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
//!
//! Each change, and each read of a saved item's value (personal data), is a function
//! taking typed arguments and the [`Caller`] ([`create`], [`remove`], [`set_password`],
//! [`set_profiles`], [`read_data`], [`queue_logon`], [`queue_logoff`]) that the API's
//! handlers here and the console's users page both call: checked, stored and audited
//! (`user-added`, `user-deleted`, `user-password-set`, `user-profiles-set`,
//! `user-data-read`, `user-logon-queued`, `user-logoff-queued`, with the caller as the
//! actor, never a password in the detail) alike.

use dls_engine::mobility::normalise_number;
use dls_message::MacAddr;
use dls_store::{AdminAction, JobRecord, NewUser, UserDataValue, UserDetails, UserSummary};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use tracing::{info, warn};
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, error, json, parse_mac};
use super::auth::Caller;
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
pub(crate) fn number(text: &str) -> Result<String, ApiError> {
    let decoded = crate::uri::decode_path_segment(text).ok_or_else(|| bad("bad percent-encoding in the number"))?;
    normalise_number(&decoded).ok_or_else(|| {
        bad(format!(
            "number {}: digits, with one optional leading + (spaces, -, ., /, parentheses ignored)",
            dls_message::check::quoted(&decoded)
        ))
    })
}

/// The password's hash, made off the executor (at most
/// [`Auth::hashing`](super::auth::Auth::hashing) at once); `422` for a password the rules
/// refuse.
async fn hashed(state: &AdminState, password: Zeroizing<String>) -> Result<String, ApiError> {
    let internal = || error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    let _permit = state.auth.hashing.acquire().await.map_err(|_| internal())?;
    match crate::tasks::spawn_blocking(move || hash_password(&password)).await {
        Ok(Ok(hash)) => Ok(hash),
        Ok(Err(e @ PasswordError::Invalid)) => Err(error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "hashing a password failed");
            Err(internal())
        }
        Err(_) => Err(internal()),
    }
}

/// Profiles as an audit detail names them.
fn profile_list(profiles: &[String]) -> String {
    if profiles.is_empty() { "no profile".to_owned() } else { format!("profiles {}", profiles.join(", ")) }
}

/// Every user, by number.
pub(crate) async fn all(state: &AdminState) -> Result<Vec<UserSummary>, ApiError> {
    blocking(state, "users", |s| s.users()).await
}

/// User `number` (normalised) with its saved data's names, sizes and dates; `404` when
/// there is none.
pub(crate) async fn find(state: &AdminState, number: &str) -> Result<UserDetails, ApiError> {
    let n = number.to_owned();
    blocking(state, "user", move |s| s.user(&n))
        .await?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("user {number} not found")))
}

/// Creates a user: `number` in any usual spelling (`400` otherwise), the password hashed
/// off the executor (`422` for one the rules refuse), `profiles` in order (`400` for one
/// that does not exist), audited; the user as stored.
pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    number_text: &str,
    name: Option<String>,
    password: Zeroizing<String>,
    profiles: Vec<String>,
) -> Result<UserDetails, ApiError> {
    let number = number(number_text)?;
    let password_hash = hashed(state, password).await?;
    let detail = format!(
        "user {number}{}, {}",
        name.as_deref().map(|n| format!(" ({})", dls_message::check::quoted(n))).unwrap_or_default(),
        profile_list(&profiles)
    );
    let user = NewUser { number: number.clone(), name, password_hash, profiles };
    let at = state.clock.now();
    blocking(state, "add_user", move |s| s.add_user(&user, at)).await?;
    info!(number = %number, "mobility user added");
    audited(state, caller, None, AdminAction::UserAdded, detail).await;
    find(state, &number).await
}

/// Deletes user `number` (normalised) and its saved data, audited; `404` when there is
/// none.
pub(crate) async fn remove(state: &AdminState, caller: &Caller, number: &str) -> Result<(), ApiError> {
    let n = number.to_owned();
    if blocking(state, "delete_user", move |s| s.delete_user(&n)).await? {
        info!(number = %number, "mobility user deleted");
        audited(state, caller, None, AdminAction::UserDeleted, format!("user {number} and its saved data")).await;
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("user {number} not found")))
    }
}

/// Replaces the password of user `number` (normalised; `404` when unknown), hashed off
/// the executor (`422` for one the rules refuse), audited without it.
pub(crate) async fn set_password(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    password: Zeroizing<String>,
) -> Result<(), ApiError> {
    let hash = hashed(state, password).await?;
    let n = number.to_owned();
    blocking(state, "set_user_password", move |s| s.set_user_password(&n, &hash)).await?;
    info!(number = %number, "mobility user's password set");
    audited(state, caller, None, AdminAction::UserPasswordSet, format!("user {number}")).await;
    Ok(())
}

/// Replaces the profiles of user `number` (normalised; `404` when unknown, `400` for a
/// profile that does not exist), audited.
pub(crate) async fn set_profiles(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    profiles: Vec<String>,
) -> Result<(), ApiError> {
    let detail = format!("user {number}: {}", profile_list(&profiles));
    let n = number.to_owned();
    blocking(state, "set_user_profiles", move |s| s.set_user_profiles(&n, &profiles)).await?;
    info!(number = %number, "mobility user's profiles set");
    audited(state, caller, None, AdminAction::UserProfilesSet, detail).await;
    Ok(())
}

/// One saved item of user `number` (normalised) with its value (personal data): the read
/// is audited (the item's name and size, never its value); `404` when the user or the
/// item does not exist.
pub(crate) async fn read_data(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    name: &str,
) -> Result<UserDataValue, ApiError> {
    let (n, item) = (number.to_owned(), name.to_owned());
    let Some(d) = blocking(state, "user_data", move |s| s.user_data(&n, &item)).await? else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("user {number} has no saved item {}", dls_message::check::quoted(name)),
        ));
    };
    let detail = format!("user {number}: item {} ({} bytes)", dls_message::check::quoted(&d.name), d.size);
    audited(state, caller, None, AdminAction::UserDataRead, detail).await;
    Ok(d)
}

/// A job queued for a device: the device is asked to call in.
fn contacted(state: &AdminState, job: &JobRecord) {
    if let Err(e) = state.jobs.contact.request(job.mac) {
        warn!(mac = %job.mac, error = %e, "no contact-me for a new job");
    }
    info!(id = job.id, mac = %job.mac, kind = job.job.name(), "mobility job queued");
}

/// Queues the logon of user `number` (normalised) at `mac` (a `mobility-logon` job; the
/// device is asked to call in), audited; `404` for an unknown user or device, `409` when
/// the user is logged on at another device.
pub(crate) async fn queue_logon(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    mac: MacAddr,
) -> Result<JobRecord, ApiError> {
    let (n, at) = (number.to_owned(), state.clock.now());
    let job = blocking(state, "queue_logon", move |s| s.queue_logon(&n, mac, at)).await?;
    contacted(state, &job);
    audited(state, caller, Some(mac), AdminAction::UserLogonQueued, format!("user {number}, job {}", job.id)).await;
    Ok(job)
}

/// Queues the logoff of user `number` (normalised) where it is logged on (a
/// `mobility-logoff` job; the device is asked to call in), audited; `404` for an unknown
/// user, `409` when it is not logged on.
pub(crate) async fn queue_logoff(state: &AdminState, caller: &Caller, number: &str) -> Result<JobRecord, ApiError> {
    let (n, at) = (number.to_owned(), state.clock.now());
    let job = blocking(state, "queue_logoff", move |s| s.queue_logoff(&n, at)).await?;
    contacted(state, &job);
    let detail = format!("user {number}, job {}", job.id);
    audited(state, caller, Some(job.mac), AdminAction::UserLogoffQueued, detail).await;
    Ok(job)
}

/// `GET /api/v1/users`
pub(super) async fn list(state: &AdminState) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &all(state).await?))
}

/// `POST /api/v1/users`
pub(super) async fn add(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new: NewUserRequest = body_json(state, req).await?;
    let user = create(state, caller, &new.number, new.name, new.password, new.profiles).await?;
    Ok(json(StatusCode::CREATED, &user))
}

/// `GET /api/v1/users/{number}`
pub(super) async fn show(state: &AdminState, number: &str) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &find(state, number).await?))
}

/// `DELETE /api/v1/users/{number}`
pub(super) async fn delete(state: &AdminState, caller: &Caller, number: &str) -> Result<Resp, ApiError> {
    remove(state, caller, number).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": number })))
}

/// `PUT /api/v1/users/{number}/password`
pub(super) async fn put_password(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let PasswordRequest { password } = body_json(state, req).await?;
    set_password(state, caller, number, password).await?;
    show(state, number).await
}

/// `PUT /api/v1/users/{number}/profiles`
pub(super) async fn put_profiles(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let ProfilesRequest { profiles } = body_json(state, req).await?;
    set_profiles(state, caller, number, profiles).await?;
    show(state, number).await
}

/// `GET /api/v1/users/{number}/data/{name}`: one saved item with its value.
pub(super) async fn data(state: &AdminState, caller: &Caller, number: &str, name: &str) -> Result<Resp, ApiError> {
    let name = crate::uri::decode_path_segment(name).ok_or_else(|| bad("bad percent-encoding in the item's name"))?;
    Ok(json(StatusCode::OK, &read_data(state, caller, number, &name).await?))
}

/// `POST /api/v1/users/{number}/logon`: `{"mac"}`.
pub(super) async fn logon(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let LogonRequest { mac } = body_json(state, req).await?;
    let job = queue_logon(state, caller, number, parse_mac(&mac)?).await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "job": job })))
}

/// `POST /api/v1/users/{number}/logoff`
pub(super) async fn logoff(state: &AdminState, caller: &Caller, number: &str) -> Result<Resp, ApiError> {
    let job = queue_logoff(state, caller, number).await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "job": job })))
}
