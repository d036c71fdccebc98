//! The admin API: JSON over HTTP (or HTTPS with `admin-tls`), on a loopback port by
//! default, beside the console ([`crate::console`]) on the same listener.
//!
//! Who asks is [`auth`]'s: the admin token, an account's API token, or a console session
//! (with its CSRF token on every state-changing request). Every route is in [`route`], with
//! the role it needs, checked before its handler runs (`403` otherwise). The handlers are
//! grouped by what they manage: [`devices`], [`profiles`], [`security`] (mode, PIN,
//! certificates, audit), [`credentials`] (Digest secrets, fallback credentials,
//! provisioning URLs), [`jobs`] (jobs, deployment files, contact-me), [`users`] (mobility
//! users, their logon and logoff) and [`accounts`] (accounts and their API tokens); each administrative change is recorded in the audit
//! log with its actor ([`api::audited`]). [`api`] holds what they share: JSON answers,
//! [`ApiError`] and the mapping of store errors, store calls off the executor. [`health`]
//! answers what a monitoring system asks without credentials: `/healthz`, `/readyz`,
//! `/metrics`.
//!
//! Items that a phone cannot be sent (in a profile, its provisioning template, device
//! overrides, a `write` job) are refused with `422`, naming the item: the rule is
//! [`dls_message::check`].

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod credentials;
pub(crate) mod devices;
mod health;
pub(crate) mod jobs;
pub(crate) mod profiles;
pub(crate) mod security;
pub(crate) mod users;

use std::sync::Arc;
use std::time::Duration;

use dls_accounts::Need;
use dls_message::MacAddr;
use dls_store::Store;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tracing::{info, warn};
use zeroize::Zeroizing;

use self::api::{ApiError, error, json, parse_id, parse_mac};
use self::auth::{Caller, Rejected};
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
    /// Sessions, the login throttle, password hashing.
    pub(crate) auth: auth::Auth,
    /// The running configuration, as the console's settings page shows it (no secrets).
    pub(crate) settings: Vec<(String, String)>,
}

/// Serves one request of the admin listener: `/healthz`, `/readyz` and `/metrics` without
/// credentials ([`health`]: they hold no secret), `/api/v1/…` (JSON) and everything else
/// (the console, [`crate::console`]) with them ([`auth`]).
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
        return crate::console::handle(state, req, info).await;
    }
    let caller = match auth::authenticate(&state, req.headers()).await {
        Ok(caller) => caller,
        Err(rejected) => {
            let missing = matches!(rejected, Rejected::Missing | Rejected::BadToken | Rejected::SessionEnded);
            if missing {
                warn!(%peer, "admin request without valid credentials");
            }
            let mut r = rejected.into_error().response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return r;
        }
    };
    let method = req.method().clone();
    if auth::changes_state(&method) {
        let given = req.headers().get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !caller.csrf_ok(given) {
            warn!(%peer, account = %caller.account, "admin request without its session's CSRF token");
            return error(StatusCode::FORBIDDEN, "missing or wrong CSRF token (X-CSRF-Token)").response();
        }
    }
    let segments: Vec<String> = path.trim_start_matches("/api/v1/").split('/').map(str::to_owned).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let resp = match route(&method, &seg, req.uri().query()) {
        Ok((need, route)) => match auth::permit(&caller, need) {
            Ok(()) => dispatch(&state, &caller, req, route).await,
            Err(e) => {
                warn!(%peer, actor = %caller.actor(), %method, path, "admin request refused: role");
                Err(e)
            }
        },
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| e.response());
    info!(%method, path, actor = %caller.actor(), status = resp.status().as_u16(), "admin request");
    resp
}

/// A route of `/api/v1/`, with what its path holds.
#[derive(Debug)]
enum Route<'a> {
    ListDevices,
    AddDevice,
    ShowDevice(MacAddr),
    UpdateDevice(MacAddr),
    DeleteDevice(MacAddr),
    Desired(MacAddr),
    Security(MacAddr),
    Certificates(MacAddr),
    Audit,
    SetSecret(MacAddr),
    ClearSecret(MacAddr),
    ProvisioningUrl(MacAddr),
    ListFallback,
    ChangeFallback,
    ListProfiles,
    ShowProfile(&'a str),
    PutProfile(&'a str),
    DeleteProfile(&'a str),
    AddJobs,
    ListJobs,
    ShowJob(i64),
    CancelJob(i64),
    Contact(MacAddr),
    AddFile,
    ListFiles,
    ShowFile(i64),
    DeleteFile(i64),
    WhoAmI,
    ListAccounts,
    AddAccount,
    ShowAccount(&'a str),
    UpdateAccount(&'a str),
    DeleteAccount(&'a str),
    ResetPassword(&'a str),
    ListTokens(&'a str),
    AddToken(&'a str),
    RevokeToken(&'a str, &'a str),
    ListUsers,
    AddUser,
    ShowUser(&'a str),
    DeleteUser(&'a str),
    SetUserPassword(&'a str),
    SetUserProfiles(&'a str),
    UserData(&'a str, &'a str),
    UserLogon(&'a str),
    UserLogoff(&'a str),
}

/// Every route of `/api/v1/` with the role it needs ([`Need`]: `Read` any role,
/// `Operate` an operator or admin, `Administer` an admin). A known path with another
/// method is `405`, anything else `404`.
///
/// | method | path | needs | what |
/// |---|---|---|---|
/// | GET | `devices?profile=&device-type=&search=&limit=` | read | list devices |
/// | POST | `devices` | operate (admin with `"secret"`) | add `{"mac", "profiles"?, "overrides"?, "mode"?, "secret"?}` |
/// | GET | `devices/{mac}` | read | a device with its inventory |
/// | PATCH, DELETE | `devices/{mac}` | operate | change `{"profiles"?, "overrides"?}`; forget it |
/// | GET | `devices/{mac}/desired` | read | its merged desired configuration |
/// | POST | `devices/{mac}/security` | operate | `{"mode"?, "reset"?, "new_pin"?}`; answers `{"pin"}` when one was issued |
/// | GET | `devices/{mac}/certificates` | read | the device's certificates |
/// | GET | `audit?mac=&actor=&kind=&since=&until=&before=&limit=` | read | the audit log, newest first |
/// | PUT, DELETE | `devices/{mac}/secret` | administer | `{"secret"}`: the device's Digest secret ("MAC-ID") |
/// | GET | `devices/{mac}/provisioning-url` | read (`?embed=true`: administer) | `{"url"}`, credentials embedded on request |
/// | GET | `credentials/fallback` | read | scopes and usernames (never a password) |
/// | PUT, DELETE | `credentials/fallback` | administer | `{"scope": "global" or {"profile": P}, "username", "password"}` |
/// | GET | `profiles`, `profiles/{name}` | read | profiles |
/// | PUT, DELETE | `profiles/{name}` | operate | one profile |
/// | POST | `jobs` | operate | queue `{"target": {"mac"\|"macs"\|"profile"\|"device-type"\|"all"}, "job": {"kind", …}}` |
/// | GET | `jobs?mac=&state=&user=&limit=`, `jobs/{id}` | read | jobs, newest first (`user`: a mobility user's logons and logoffs) |
/// | POST | `jobs/{id}/cancel` | operate | cancel a job that is not over |
/// | POST | `devices/{mac}/contact` | operate | send the device a contact-me now (rate limits apply) |
/// | POST | `files?name=&type=&device-type=&software-type=&software-version=` | operate | add a file (the body) |
/// | GET | `files`, `files/{id}` | read | deployment files |
/// | DELETE | `files/{id}` | operate | delete it (its jobs that are not over fail) |
/// | GET | `whoami` | read | `{"actor", "account", "role"}` of the caller |
/// | GET, POST | `accounts` | administer | list; add `{"name", "role", "password"?}` (answers a one-time `"password"` when none was given) |
/// | GET, PATCH, DELETE | `accounts/{name}` | administer | one account; `{"role"}`; delete it (its tokens and sessions too) |
/// | POST | `accounts/{name}/password` | administer | `{"password"?}`: reset it (one-time password when none given); ends its sessions |
/// | GET, POST | `accounts/{name}/tokens` | administer | its API tokens; add `{"name"}` (answers the `"token"`, once) |
/// | DELETE | `accounts/{name}/tokens/{token}` | administer | revoke a token |
/// | GET | `users`, `users/{number}` | read | mobility users; one with its saved data's names, sizes, dates |
/// | POST | `users` | operate | add `{"number", "name"?, "password", "profiles"?}` |
/// | DELETE | `users/{number}` | operate | forget a user |
/// | PUT | `users/{number}/password`, `users/{number}/profiles` | operate | `{"password"}`, `{"profiles"}` |
/// | GET | `users/{number}/data/{name}` | operate | one saved data item, with its value (personal data: not a viewer's) |
/// | POST | `users/{number}/logon`, `users/{number}/logoff` | operate | queue a mobility job (`{"mac"}` for a logon) |
fn route<'a>(method: &Method, seg: &[&'a str], query: Option<&str>) -> Result<(Need, Route<'a>), ApiError> {
    use Need::{Administer, Operate, Read};
    Ok(match (method.clone(), seg) {
        (Method::GET, ["devices"]) => (Read, Route::ListDevices),
        (Method::POST, ["devices"]) => (Operate, Route::AddDevice),
        (Method::GET, ["devices", mac]) => (Read, Route::ShowDevice(parse_mac(mac)?)),
        (Method::PATCH, ["devices", mac]) => (Operate, Route::UpdateDevice(parse_mac(mac)?)),
        (Method::DELETE, ["devices", mac]) => (Operate, Route::DeleteDevice(parse_mac(mac)?)),
        (Method::GET, ["devices", mac, "desired"]) => (Read, Route::Desired(parse_mac(mac)?)),

        (Method::POST, ["devices", mac, "security"]) => (Operate, Route::Security(parse_mac(mac)?)),
        (Method::GET, ["devices", mac, "certificates"]) => (Read, Route::Certificates(parse_mac(mac)?)),
        (Method::GET, ["audit"]) => (Read, Route::Audit),

        (Method::PUT, ["devices", mac, "secret"]) => (Administer, Route::SetSecret(parse_mac(mac)?)),
        (Method::DELETE, ["devices", mac, "secret"]) => (Administer, Route::ClearSecret(parse_mac(mac)?)),
        (Method::GET, ["devices", mac, "provisioning-url"]) => {
            let need = if credentials::embed_asked(query)? { Administer } else { Read };
            (need, Route::ProvisioningUrl(parse_mac(mac)?))
        }
        (Method::GET, ["credentials", "fallback"]) => (Read, Route::ListFallback),
        (Method::PUT | Method::DELETE, ["credentials", "fallback"]) => (Administer, Route::ChangeFallback),

        (Method::GET, ["profiles"]) => (Read, Route::ListProfiles),
        (Method::GET, ["profiles", name]) => (Read, Route::ShowProfile(name)),
        (Method::PUT, ["profiles", name]) => (Operate, Route::PutProfile(name)),
        (Method::DELETE, ["profiles", name]) => (Operate, Route::DeleteProfile(name)),

        (Method::POST, ["jobs"]) => (Operate, Route::AddJobs),
        (Method::GET, ["jobs"]) => (Read, Route::ListJobs),
        (Method::GET, ["jobs", id]) => (Read, Route::ShowJob(parse_id(id, "job")?)),
        (Method::POST, ["jobs", id, "cancel"]) => (Operate, Route::CancelJob(parse_id(id, "job")?)),
        (Method::POST, ["devices", mac, "contact"]) => (Operate, Route::Contact(parse_mac(mac)?)),
        (Method::POST, ["files"]) => (Operate, Route::AddFile),
        (Method::GET, ["files"]) => (Read, Route::ListFiles),
        (Method::GET, ["files", id]) => (Read, Route::ShowFile(parse_id(id, "file")?)),
        (Method::DELETE, ["files", id]) => (Operate, Route::DeleteFile(parse_id(id, "file")?)),

        (Method::GET, ["whoami"]) => (Read, Route::WhoAmI),
        (Method::GET, ["accounts"]) => (Administer, Route::ListAccounts),
        (Method::POST, ["accounts"]) => (Administer, Route::AddAccount),
        (Method::GET, ["accounts", name]) => (Administer, Route::ShowAccount(name)),
        (Method::PATCH, ["accounts", name]) => (Administer, Route::UpdateAccount(name)),
        (Method::DELETE, ["accounts", name]) => (Administer, Route::DeleteAccount(name)),
        (Method::POST, ["accounts", name, "password"]) => (Administer, Route::ResetPassword(name)),
        (Method::GET, ["accounts", name, "tokens"]) => (Administer, Route::ListTokens(name)),
        (Method::POST, ["accounts", name, "tokens"]) => (Administer, Route::AddToken(name)),
        (Method::DELETE, ["accounts", name, "tokens", token]) => (Administer, Route::RevokeToken(name, token)),

        (Method::GET, ["users"]) => (Read, Route::ListUsers),
        (Method::POST, ["users"]) => (Operate, Route::AddUser),
        (Method::GET, ["users", n]) => (Read, Route::ShowUser(n)),
        (Method::DELETE, ["users", n]) => (Operate, Route::DeleteUser(n)),
        (Method::PUT, ["users", n, "password"]) => (Operate, Route::SetUserPassword(n)),
        (Method::PUT, ["users", n, "profiles"]) => (Operate, Route::SetUserProfiles(n)),
        (Method::GET, ["users", n, "data", name]) => (Operate, Route::UserData(n, name)),
        (Method::POST, ["users", n, "logon"]) => (Operate, Route::UserLogon(n)),
        (Method::POST, ["users", n, "logoff"]) => (Operate, Route::UserLogoff(n)),

        (
            _,
            ["devices" | "profiles" | "audit" | "jobs" | "files" | "whoami" | "accounts" | "users"]
            | ["devices" | "profiles" | "jobs" | "files" | "accounts" | "users", _]
            | ["users", _, "password" | "profiles" | "logon" | "logoff"]
            | ["users", _, "data", _]
            | ["devices", _, "desired" | "security" | "certificates" | "secret" | "provisioning-url" | "contact"]
            | ["jobs", _, "cancel"]
            | ["accounts", _, "password" | "tokens"]
            | ["accounts", _, "tokens", _]
            | ["credentials", "fallback"],
        ) => return Err(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        _ => return Err(error(StatusCode::NOT_FOUND, "not found")),
    })
}

/// Runs a route's handler (its role was checked).
async fn dispatch(
    state: &AdminState,
    caller: &Caller,
    req: Request<Incoming>,
    route: Route<'_>,
) -> Result<Resp, ApiError> {
    match route {
        Route::ListDevices => devices::list(state, &req).await,
        Route::AddDevice => devices::add(state, caller, req).await,
        Route::ShowDevice(mac) => devices::show(state, caller, mac).await,
        Route::UpdateDevice(mac) => devices::update(state, caller, mac, req).await,
        Route::DeleteDevice(mac) => devices::delete(state, caller, mac).await,
        Route::Desired(mac) => devices::desired(state, caller, mac).await,
        Route::Security(mac) => security::change(state, caller, mac, req).await,
        Route::Certificates(mac) => security::certificates(state, mac).await,
        Route::Audit => security::audit(state, &req).await,
        Route::SetSecret(mac) => credentials::set_secret(state, caller, mac, req).await,
        Route::ClearSecret(mac) => credentials::clear_secret(state, caller, mac).await,
        Route::ProvisioningUrl(mac) => credentials::provisioning_url(state, mac, &req).await,
        Route::ListFallback => credentials::list_fallback(state).await,
        Route::ChangeFallback => {
            let method = req.method().clone();
            credentials::change_fallback(state, caller, &method, req).await
        }
        Route::ListProfiles => profiles::list(state, caller).await,
        Route::ShowProfile(name) => profiles::show(state, caller, name).await,
        Route::PutProfile(name) => profiles::put(state, caller, name, req).await,
        Route::DeleteProfile(name) => profiles::delete(state, caller, name).await,
        Route::AddJobs => jobs::add_jobs(state, caller, req).await,
        Route::ListJobs => jobs::list(state, caller, &req).await,
        Route::ShowJob(id) => jobs::show(state, caller, id).await,
        Route::CancelJob(id) => jobs::cancel(state, caller, id).await,
        Route::Contact(mac) => jobs::contact(state, caller, mac).await,
        Route::AddFile => jobs::add_file(state, caller, req).await,
        Route::ListFiles => jobs::list_files(state).await,
        Route::ShowFile(id) => jobs::show_file(state, id).await,
        Route::DeleteFile(id) => jobs::delete_file(state, caller, id).await,
        Route::WhoAmI => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "actor": caller.actor(), "account": caller.account, "role": caller.role }),
        )),
        Route::ListAccounts => accounts::list(state).await,
        Route::AddAccount => accounts::add(state, caller, req).await,
        Route::ShowAccount(name) => accounts::show(state, name).await,
        Route::UpdateAccount(name) => accounts::update(state, caller, name, req).await,
        Route::DeleteAccount(name) => accounts::delete(state, caller, name).await,
        Route::ResetPassword(name) => accounts::reset_password(state, caller, name, req).await,
        Route::ListTokens(name) => accounts::tokens(state, name).await,
        Route::AddToken(name) => accounts::add_token(state, caller, name, req).await,
        Route::RevokeToken(name, token) => accounts::revoke_token(state, caller, name, token).await,
        Route::ListUsers => users::list(state).await,
        Route::AddUser => users::add(state, caller, req).await,
        Route::ShowUser(n) => users::show(state, &users::number(n)?).await,
        Route::DeleteUser(n) => users::delete(state, caller, &users::number(n)?).await,
        Route::SetUserPassword(n) => users::put_password(state, caller, &users::number(n)?, req).await,
        Route::SetUserProfiles(n) => users::put_profiles(state, caller, &users::number(n)?, req).await,
        Route::UserData(n, name) => users::data(state, caller, &users::number(n)?, name).await,
        Route::UserLogon(n) => users::logon(state, caller, &users::number(n)?, req).await,
        Route::UserLogoff(n) => users::logoff(state, caller, &users::number(n)?).await,
    }
}
