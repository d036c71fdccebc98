//! The admin API: JSON over HTTP with a bearer token, on a loopback port by default.
//!
//! Every route is in [`route`]; the handlers are grouped by what they manage: [`devices`],
//! [`profiles`], [`security`] (mode, PIN, certificates, audit), [`credentials`] (Digest
//! secrets, fallback credentials, provisioning URLs), [`jobs`] (jobs, deployment files,
//! contact-me) and [`users`] (mobility users, their logon and logoff). [`api`] holds what they share: JSON answers, [`ApiError`] and the mapping
//! of store errors, the token check, store calls off the executor. [`health`] answers
//! what a monitoring system asks without the token: `/healthz`, `/readyz`, `/metrics`.
//!
//! Items that a phone cannot be sent (in a profile, its provisioning template, device
//! overrides, a `write` job) are refused with `422`, naming the item: the rule is
//! [`dls_message::check`].

mod api;
mod credentials;
mod devices;
mod health;
pub(crate) mod jobs;
mod profiles;
mod security;
mod users;

use std::sync::Arc;
use std::time::Duration;

use dls_store::Store;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tracing::{info, warn};
use zeroize::Zeroizing;

use self::api::{ApiError, authorised, error, json, parse_id, parse_mac};
pub(crate) use self::health::Readiness;
use crate::http::Resp;

pub(crate) struct AdminState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) token: Zeroizing<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) provisioning: Arc<crate::provisioning::ProvisioningState>,
    /// Where phones fetch provisioning files (for `provisioning-url`).
    pub(crate) base_url: String,
    /// Jobs, files and contact-me.
    pub(crate) jobs: jobs::JobsState,
    /// The service's clock: the time of every change recorded.
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// What `/metrics` reports; counts the store calls.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Whether a `/readyz` check is running (at most one at a time).
    pub(crate) readiness: Readiness,
}

/// Serves one admin request: `/healthz`, `/readyz` and `/metrics` without a token
/// ([`health`]: they hold no secret), `/api/v1/…` with it.
pub(crate) async fn handle(state: Arc<AdminState>, req: Request<Incoming>, info: crate::http::ConnInfo) -> Resp {
    let peer = info.peer;
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        "/readyz" => return health::ready(&state).await,
        "/metrics" => return health::metrics(&state),
        _ => {}
    }
    if !path.starts_with("/api/v1/") {
        return error(StatusCode::NOT_FOUND, "not found").response();
    }
    if !authorised(&req, &state.token) {
        warn!(%peer, "admin request without a valid token");
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").response();
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let method = req.method().clone();
    let segments: Vec<String> = path.trim_start_matches("/api/v1/").split('/').map(str::to_owned).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let resp = route(&state, req, &method, &seg).await.unwrap_or_else(|e| e.response());
    info!(%method, path, status = resp.status().as_u16(), "admin request");
    resp
}

/// Every route of `/api/v1/`: a known path with another method is `405`, anything else
/// `404`.
///
/// | method | path | what |
/// |---|---|---|
/// | GET | `devices?profile=&device-type=&search=&limit=` | list devices |
/// | POST | `devices` | add `{"mac", "profiles"?, "overrides"?, "mode"?, "secret"?}` |
/// | GET, PATCH, DELETE | `devices/{mac}` | a device with its inventory; change `{"profiles"?, "overrides"?}`; forget it |
/// | GET | `devices/{mac}/desired` | its merged desired configuration |
/// | POST | `devices/{mac}/security` | `{"mode"?, "reset"?, "new_pin"?}`; answers `{"pin"}` when one was issued |
/// | GET | `devices/{mac}/certificates` | the device's certificates |
/// | GET | `audit?mac=&limit=` | the audit log, newest first |
/// | PUT, DELETE | `devices/{mac}/secret` | `{"secret"}`: the device's Digest secret ("MAC-ID") |
/// | GET | `devices/{mac}/provisioning-url?embed=true` | `{"url"}`, credentials embedded on request |
/// | GET, PUT, DELETE | `credentials/fallback` | `{"scope": "global" or {"profile": P}, "username", "password"}` |
/// | GET | `profiles` | list profiles |
/// | GET, PUT, DELETE | `profiles/{name}` | one profile |
/// | POST | `jobs` | queue `{"target": {"mac"\|"macs"\|"profile"\|"device-type"\|"all"}, "job": {"kind", …}}` |
/// | GET | `jobs?mac=&state=&limit=` | list jobs, newest first |
/// | GET | `jobs/{id}` | one job |
/// | POST | `jobs/{id}/cancel` | cancel a job that is not over |
/// | POST | `devices/{mac}/contact` | send the device a contact-me now (rate limits apply) |
/// | POST | `files?name=&type=&device-type=&software-type=&software-version=` | add a file (the body) |
/// | GET | `files` | list files |
/// | GET, DELETE | `files/{id}` | one file; delete it (its jobs that are not over fail) |
/// | GET, POST | `users` | list mobility users; add `{"number", "name"?, "password", "profiles"?}` |
/// | GET, DELETE | `users/{number}` | a user with its saved data's names, sizes, dates; forget it |
/// | PUT | `users/{number}/password`, `users/{number}/profiles` | `{"password"}`, `{"profiles"}` |
/// | GET | `users/{number}/data/{name}` | one saved data item, with its value |
/// | POST | `users/{number}/logon`, `users/{number}/logoff` | queue a mobility job (`{"mac"}` for a logon) |
async fn route(state: &AdminState, req: Request<Incoming>, method: &Method, seg: &[&str]) -> Result<Resp, ApiError> {
    match (method.clone(), seg) {
        (Method::GET, ["devices"]) => devices::list(state, &req).await,
        (Method::POST, ["devices"]) => devices::add(state, req).await,
        (Method::GET, ["devices", mac]) => devices::show(state, parse_mac(mac)?).await,
        (Method::PATCH, ["devices", mac]) => devices::update(state, parse_mac(mac)?, req).await,
        (Method::DELETE, ["devices", mac]) => devices::delete(state, parse_mac(mac)?).await,
        (Method::GET, ["devices", mac, "desired"]) => devices::desired(state, parse_mac(mac)?).await,

        (Method::POST, ["devices", mac, "security"]) => security::change(state, parse_mac(mac)?, req).await,
        (Method::GET, ["devices", mac, "certificates"]) => security::certificates(state, parse_mac(mac)?).await,
        (Method::GET, ["audit"]) => security::audit(state, &req).await,

        (Method::PUT, ["devices", mac, "secret"]) => credentials::set_secret(state, parse_mac(mac)?, req).await,
        (Method::DELETE, ["devices", mac, "secret"]) => credentials::clear_secret(state, parse_mac(mac)?).await,
        (Method::GET, ["devices", mac, "provisioning-url"]) => {
            credentials::provisioning_url(state, parse_mac(mac)?, &req).await
        }
        (Method::GET, ["credentials", "fallback"]) => credentials::list_fallback(state).await,
        (Method::PUT | Method::DELETE, ["credentials", "fallback"]) => {
            credentials::change_fallback(state, method, req).await
        }

        (Method::GET, ["profiles"]) => profiles::list(state).await,
        (Method::GET, ["profiles", name]) => profiles::show(state, name).await,
        (Method::PUT, ["profiles", name]) => profiles::put(state, name, req).await,
        (Method::DELETE, ["profiles", name]) => profiles::delete(state, name).await,

        (Method::POST, ["jobs"]) => jobs::add_jobs(state, req).await,
        (Method::GET, ["jobs"]) => jobs::list(state, &req).await,
        (Method::GET, ["jobs", id]) => jobs::show(state, parse_id(id, "job")?).await,
        (Method::POST, ["jobs", id, "cancel"]) => jobs::cancel(state, parse_id(id, "job")?).await,
        (Method::POST, ["devices", mac, "contact"]) => jobs::contact(state, parse_mac(mac)?).await,
        (Method::POST, ["files"]) => jobs::add_file(state, req).await,
        (Method::GET, ["files"]) => jobs::list_files(state).await,
        (Method::GET, ["files", id]) => jobs::show_file(state, parse_id(id, "file")?).await,
        (Method::DELETE, ["files", id]) => jobs::delete_file(state, parse_id(id, "file")?).await,

        (Method::GET, ["users"]) => users::list(state).await,
        (Method::POST, ["users"]) => users::add(state, req).await,
        (Method::GET, ["users", n]) => users::show(state, &users::number(n)?).await,
        (Method::DELETE, ["users", n]) => users::delete(state, &users::number(n)?).await,
        (Method::PUT, ["users", n, "password"]) => users::set_password(state, &users::number(n)?, req).await,
        (Method::PUT, ["users", n, "profiles"]) => users::set_profiles(state, &users::number(n)?, req).await,
        (Method::GET, ["users", n, "data", name]) => users::data(state, &users::number(n)?, name).await,
        (Method::POST, ["users", n, "logon"]) => users::logon(state, &users::number(n)?, req).await,
        (Method::POST, ["users", n, "logoff"]) => users::logoff(state, &users::number(n)?).await,

        (
            _,
            ["devices" | "profiles" | "audit" | "jobs" | "files" | "users"]
            | ["devices" | "profiles" | "jobs" | "files" | "users", _]
            | ["users", _, "password" | "profiles" | "logon" | "logoff"]
            | ["users", _, "data", _]
            | ["devices", _, "desired" | "security" | "certificates" | "secret" | "provisioning-url" | "contact"]
            | ["jobs", _, "cancel"]
            | ["credentials", "fallback"],
        ) => Err(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        _ => Err(error(StatusCode::NOT_FOUND, "not found")),
    }
}
