//! The web console: HTML pages on the admin listener at `/` (the JSON API stays at
//! `/api/v1/`), for people with an account (`dls account add`).
//!
//! A page is a route in [`route`]'s table (its path, the [`Need`] of the role it takes, a
//! [`Page`]), a handler in a module of its own (it calls the same store methods and
//! helpers as the admin API, on the same [`AdminState`]), and an askama template in
//! `crates/dls-server/templates/` compiled into the binary, escaping everything it
//! shows. `docs/console.md` walks through adding one.
//!
//! What every page gets here:
//! * **Who**: the session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` and `__Host-`
//!   under TLS; [`crate::admin::auth`]), checked against the idle and absolute timeouts; no
//!   or an ended session: back to the login page (`303`; for htmx an `HX-Redirect`).
//! * **May they**: the route's need against the account's role (`403` page otherwise); the
//!   navigation shows only what the role may do ([`layout::Nav`]).
//! * **Cross-site requests**: every state-changing request (a `POST`) must carry the
//!   session's CSRF token (a form's `csrf` field, or htmx's `X-CSRF-Token` header), and an
//!   `Origin`, when the browser sends one, must be this listener's: `403` and no change
//!   otherwise. Form bodies are at most [`form::MAX_FORM`] bytes (`413`).
//! * **Headers**: a Content-Security-Policy that allows only this origin's own script and
//!   style (no inline script), no framing, `nosniff`, a referrer only to this origin
//!   (`same-origin`: with `no-referrer` a browser sends `Origin: null` on the console's own
//!   form posts, which the Origin check refuses), no caching.
//! * **Static files** ([`assets`]): the CSS, the console's script and htmx, embedded.

mod accounts;
mod assets;
mod audit;
mod credentials;
mod dashboard;
mod devices;
mod files;
pub(crate) mod form;
mod items;
mod jobs;
mod layout;
mod login;
mod profiles;
mod settings;
mod users;

use std::sync::Arc;

use askama::Template;
use dls_accounts::Need;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::admin::AdminState;
use crate::admin::auth::{self, Caller, Rejected};
use crate::http::{ConnInfo, Resp, full};

/// A page of the console, with what its path holds.
#[derive(Debug)]
enum Page<'a> {
    Dashboard,
    Audit,
    Settings,
    Accounts,
    AddAccount,
    SetRole(&'a str),
    ResetPassword(&'a str),
    DeleteAccount(&'a str),
    AddToken(&'a str),
    RevokeToken(&'a str, &'a str),
    Logout,
    Devices,
    AddDevice,
    Device(&'a str),
    DeviceSecurity(&'a str),
    DeviceSecret(&'a str),
    DeviceProfiles(&'a str),
    DeviceOverrides(&'a str),
    DeleteDevice(&'a str),
    Profiles,
    AddProfile,
    Profile(&'a str),
    SaveProfile(&'a str),
    DeleteProfile(&'a str),
    Jobs,
    JobsTable,
    AddJobs,
    CancelJob(&'a str),
    Files,
    Upload,
    DeleteFile(&'a str),
    Credentials,
    SetCredential,
    RemoveCredential,
    Users,
    AddUser,
    User(&'a str),
    UserPassword(&'a str),
    UserProfiles(&'a str),
    UserLogon(&'a str),
    UserLogoff(&'a str),
    DeleteUser(&'a str),
}

/// Every page of the console, with the role it needs. `GET` shows, `POST` changes.
///
/// | method | path | needs | page |
/// |---|---|---|---|
/// | GET, POST | `/login` | — | the login form; logging in ([`login`]) |
/// | GET | `/static/{file}` | — | CSS, script, htmx ([`assets`]) |
/// | POST | `/logout` | read | ends the session |
/// | GET | `/` | read | the dashboard ([`dashboard`]) |
/// | GET | `/audit?mac=&actor=&kind=&since=&until=&tz=&before=` | read | the audit log ([`audit`]) |
/// | GET | `/settings` | read | the running configuration ([`settings`]) |
/// | GET, POST | `/devices?q=&type=&version=&profile=&order=&after=` | read; operate to add | devices; add one ([`devices`]) |
/// | GET | `/devices/{mac}` | read | a device |
/// | POST | `/devices/{mac}/security` | operate | set its mode, issue a PIN (the PIN sheet), reset |
/// | POST | `/devices/{mac}/secret` | administer | set or clear its Digest secret |
/// | POST | `/devices/{mac}/profiles`, `…/overrides`, `…/delete` | operate | set its profiles, its overrides; delete it |
/// | GET, POST | `/accounts` | administer | accounts and tokens; add one ([`accounts`]) |
/// | GET, POST | `/profiles` | read; operate | profiles; add one ([`profiles`]) |
/// | GET, POST | `/profiles/{name}` | read; operate | a profile and the devices it reaches; save it |
/// | POST | `/profiles/{name}/delete` | operate | delete it |
/// | GET, POST | `/users?deleted=` | read; operate to add | mobility users; add one ([`users`]) |
/// | GET | `/users/{number}?done=&job=` | read | a user, its saved data's names and sizes, its jobs |
/// | POST | `/users/{number}/password`, `…/profiles`, `…/logon`, `…/logoff`, `…/delete` | operate | set, queue, delete |
/// | GET, POST | `/jobs?state=` | read; operate | jobs; queue some ([`jobs`]) |
/// | GET | `/jobs/table?state=` | read | the jobs table alone (htmx polls it) |
/// | POST | `/jobs/{id}/cancel` | operate | cancel a job |
/// | GET | `/files?added=` | read | deployment files ([`files`]) |
/// | POST | `/files/upload?name=&type=&…` | operate | add one: the body is the file, the CSRF token in `X-CSRF-Token`; answers JSON |
/// | POST | `/files/{id}/delete` | operate | delete one |
/// | GET, POST | `/credentials` | read; administer | Digest fallback credentials; set one ([`credentials`]) |
/// | POST | `/credentials/remove` | administer | remove one |
/// | POST | `/accounts/{name}/role`, `…/password`, `…/delete`, `…/tokens`, `…/tokens/{token}/revoke` | administer | change, reset, delete; add and revoke tokens |
fn route<'a>(method: &Method, seg: &[&'a str]) -> Option<(Need, Page<'a>)> {
    use Need::{Administer, Operate, Read};
    Some(match (method.clone(), seg) {
        (Method::GET, [""]) => (Read, Page::Dashboard),
        (Method::GET, ["audit"]) => (Read, Page::Audit),
        (Method::GET, ["settings"]) => (Read, Page::Settings),
        (Method::POST, ["logout"]) => (Read, Page::Logout),
        (Method::GET, ["devices"]) => (Read, Page::Devices),
        (Method::POST, ["devices"]) => (Operate, Page::AddDevice),
        (Method::GET, ["devices", mac]) => (Read, Page::Device(mac)),
        (Method::POST, ["devices", mac, "security"]) => (Operate, Page::DeviceSecurity(mac)),
        (Method::POST, ["devices", mac, "secret"]) => (Administer, Page::DeviceSecret(mac)),
        (Method::POST, ["devices", mac, "profiles"]) => (Operate, Page::DeviceProfiles(mac)),
        (Method::POST, ["devices", mac, "overrides"]) => (Operate, Page::DeviceOverrides(mac)),
        (Method::POST, ["devices", mac, "delete"]) => (Operate, Page::DeleteDevice(mac)),
        (Method::GET, ["accounts"]) => (Administer, Page::Accounts),
        (Method::POST, ["accounts"]) => (Administer, Page::AddAccount),
        (Method::POST, ["accounts", name, "role"]) => (Administer, Page::SetRole(name)),
        (Method::POST, ["accounts", name, "password"]) => (Administer, Page::ResetPassword(name)),
        (Method::POST, ["accounts", name, "delete"]) => (Administer, Page::DeleteAccount(name)),
        (Method::POST, ["accounts", name, "tokens"]) => (Administer, Page::AddToken(name)),
        (Method::POST, ["accounts", name, "tokens", token, "revoke"]) => (Administer, Page::RevokeToken(name, token)),
        (Method::GET, ["profiles"]) => (Read, Page::Profiles),
        (Method::POST, ["profiles"]) => (Operate, Page::AddProfile),
        (Method::GET, ["profiles", name]) => (Read, Page::Profile(name)),
        (Method::POST, ["profiles", name]) => (Operate, Page::SaveProfile(name)),
        (Method::POST, ["profiles", name, "delete"]) => (Operate, Page::DeleteProfile(name)),
        (Method::GET, ["users"]) => (Read, Page::Users),
        (Method::POST, ["users"]) => (Operate, Page::AddUser),
        (Method::GET, ["users", n]) => (Read, Page::User(n)),
        (Method::POST, ["users", n, "password"]) => (Operate, Page::UserPassword(n)),
        (Method::POST, ["users", n, "profiles"]) => (Operate, Page::UserProfiles(n)),
        (Method::POST, ["users", n, "logon"]) => (Operate, Page::UserLogon(n)),
        (Method::POST, ["users", n, "logoff"]) => (Operate, Page::UserLogoff(n)),
        (Method::POST, ["users", n, "delete"]) => (Operate, Page::DeleteUser(n)),
        (Method::GET, ["jobs"]) => (Read, Page::Jobs),
        (Method::GET, ["jobs", "table"]) => (Read, Page::JobsTable),
        (Method::POST, ["jobs"]) => (Operate, Page::AddJobs),
        (Method::POST, ["jobs", id, "cancel"]) => (Operate, Page::CancelJob(id)),
        (Method::GET, ["files"]) => (Read, Page::Files),
        (Method::POST, ["files", "upload"]) => (Operate, Page::Upload),
        (Method::POST, ["files", id, "delete"]) => (Operate, Page::DeleteFile(id)),
        (Method::GET, ["credentials"]) => (Read, Page::Credentials),
        (Method::POST, ["credentials"]) => (Administer, Page::SetCredential),
        (Method::POST, ["credentials", "remove"]) => (Administer, Page::RemoveCredential),
        _ => return None,
    })
}

/// Runs a page's handler (the caller may).
async fn dispatch(
    state: &AdminState,
    caller: &Caller,
    req: Request<Incoming>,
    page: Page<'_>,
) -> Result<Resp, PageError> {
    match page {
        Page::Dashboard => dashboard::show(state, caller).await,
        Page::Audit => audit::show(state, caller, req.uri().query()).await,
        Page::Settings => settings::show(state, caller),
        Page::Logout => {
            form::read(state, caller, req).await?;
            login::logout(state, caller).await
        }
        Page::Devices => devices::list(state, caller, req.uri().query(), devices::AddOutcome::default()).await,
        Page::AddDevice => devices::add(state, caller, &form::read(state, caller, req).await?).await,
        Page::Device(mac) => devices::show(state, caller, devices::parse_mac(mac)?, devices::Outcome::default()).await,
        Page::DeviceSecurity(mac) => {
            let mac = devices::parse_mac(mac)?;
            devices::security(state, caller, mac, &form::read(state, caller, req).await?).await
        }
        Page::DeviceSecret(mac) => {
            let mac = devices::parse_mac(mac)?;
            devices::secret(state, caller, mac, &form::read(state, caller, req).await?).await
        }
        Page::DeviceProfiles(mac) => {
            let mac = devices::parse_mac(mac)?;
            devices::profiles(state, caller, mac, &form::read(state, caller, req).await?).await
        }
        Page::DeviceOverrides(mac) => {
            let mac = devices::parse_mac(mac)?;
            devices::overrides(state, caller, mac, &form::read(state, caller, req).await?).await
        }
        Page::DeleteDevice(mac) => {
            let mac = devices::parse_mac(mac)?;
            form::read(state, caller, req).await?;
            devices::delete(state, caller, mac).await
        }
        Page::Accounts => accounts::show(state, caller, accounts::Outcome::default()).await,
        Page::AddAccount => accounts::add(state, caller, form::read(state, caller, req).await?).await,
        Page::SetRole(name) => accounts::set_role(state, caller, name, form::read(state, caller, req).await?).await,
        Page::ResetPassword(name) => {
            form::read(state, caller, req).await?;
            accounts::reset_password(state, caller, name).await
        }
        Page::DeleteAccount(name) => {
            form::read(state, caller, req).await?;
            accounts::delete(state, caller, name).await
        }
        Page::AddToken(name) => accounts::add_token(state, caller, name, form::read(state, caller, req).await?).await,
        Page::RevokeToken(name, token) => {
            form::read(state, caller, req).await?;
            accounts::revoke_token(state, caller, name, token).await
        }
        Page::Profiles => profiles::list(state, caller).await,
        Page::AddProfile => profiles::add(state, caller, form::read(state, caller, req).await?).await,
        Page::Profile(name) => profiles::show(state, caller, name, req.uri().query()).await,
        Page::SaveProfile(name) => profiles::save(state, caller, name, form::read(state, caller, req).await?).await,
        Page::DeleteProfile(name) => {
            form::read(state, caller, req).await?;
            profiles::delete(state, caller, name).await
        }
        Page::Users => users::list(state, caller, req.uri().query()).await,
        Page::AddUser => users::add(state, caller, form::read(state, caller, req).await?).await,
        Page::User(n) => users::show(state, caller, n, req.uri().query()).await,
        Page::UserPassword(n) => users::password(state, caller, n, form::read(state, caller, req).await?).await,
        Page::UserProfiles(n) => users::profiles(state, caller, n, form::read(state, caller, req).await?).await,
        Page::UserLogon(n) => users::logon(state, caller, n, form::read(state, caller, req).await?).await,
        Page::UserLogoff(n) => {
            form::read(state, caller, req).await?;
            users::logoff(state, caller, n).await
        }
        Page::DeleteUser(n) => {
            form::read(state, caller, req).await?;
            users::delete(state, caller, n).await
        }
        Page::Jobs => jobs::show(state, caller, req.uri().query()).await,
        Page::JobsTable => jobs::fragment(state, caller, req.uri().query()).await,
        Page::AddJobs => jobs::add(state, caller, form::read(state, caller, req).await?).await,
        Page::CancelJob(id) => {
            form::read(state, caller, req).await?;
            jobs::cancel(state, caller, id).await
        }
        Page::Files => files::show(state, caller, req.uri().query()).await,
        Page::Upload => Ok(files::upload(state, caller, req).await),
        Page::DeleteFile(id) => {
            form::read(state, caller, req).await?;
            files::delete(state, caller, id).await
        }
        Page::Credentials => credentials::show(state, caller).await,
        Page::SetCredential => credentials::set(state, caller, form::read(state, caller, req).await?).await,
        Page::RemoveCredential => credentials::remove(state, caller, form::read(state, caller, req).await?).await,
    }
}

/// Serves a request of the admin listener that is not the API's nor a health check.
pub(crate) async fn handle(state: Arc<AdminState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some(name) = path.strip_prefix("/static/") {
        return secured(assets::serve(&method, name));
    }
    if method == Method::POST && !same_origin(&req) {
        return secured(error_page(
            StatusCode::FORBIDDEN,
            "This request did not come from the console's own pages; nothing was changed.",
        ));
    }
    if path == "/login" {
        return secured(login::handle(&state, req, info.peer.ip()).await);
    }
    let htmx = req.headers().contains_key("hx-request");
    let caller = match auth::authenticate(&state, req.headers()).await {
        Ok(caller) => caller,
        Err(Rejected::Store(e)) => return secured(error_page(e.status(), e.message())),
        Err(rejected) => return secured(to_login(&state, htmx, matches!(rejected, Rejected::SessionEnded))),
    };
    let segments: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_owned).collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some((need, page)) = route(&method, &seg) else {
        return secured(error_page(StatusCode::NOT_FOUND, "There is no such page."));
    };
    if let Err(e) = auth::permit(&caller, need) {
        tracing::warn!(actor = %caller.actor(), %method, path, "console request refused: role");
        return secured(error_page(StatusCode::FORBIDDEN, e.message()));
    }
    let resp = dispatch(&state, &caller, req, page).await.unwrap_or_else(|e| error_page(e.status, &e.message));
    tracing::info!(%method, path, actor = %caller.actor(), status = resp.status().as_u16(), "console request");
    secured(resp)
}

/// Back to the login page: a `303` (an htmx request: `401` with `HX-Redirect`, which htmx
/// follows), saying the session ended when it did; the cookie is cleared.
fn to_login(state: &AdminState, htmx: bool, ended: bool) -> Resp {
    let location = if ended { "/login?ended=1" } else { "/login" };
    let mut r = Response::new(full(""));
    if htmx {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert("hx-redirect", HeaderValue::from_static("/login?ended=1"));
    } else {
        *r.status_mut() = StatusCode::SEE_OTHER;
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_static(location));
    }
    if ended {
        r.headers_mut().insert(header::SET_COOKIE, state.auth.set_cookie(None));
    }
    r
}

/// Whether a `POST` comes from this listener's own pages: its `Origin`, when the browser
/// sends one, names the host the request was sent to (a cross-site form or script sends
/// its own). With no `Origin` the CSRF token decides alone.
fn same_origin(req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// A page's failure: its status and a message shown on the error page.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl From<crate::admin::api::ApiError> for PageError {
    fn from(e: crate::admin::api::ApiError) -> Self {
        Self { status: e.status(), message: e.message().to_owned() }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// An error page.
fn error_page(status: StatusCode, message: &str) -> Resp {
    let title = status.canonical_reason().unwrap_or("Error");
    render(status, &ErrorPage { title, message })
}

/// A rendered template as an HTML response of `status`.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Resp {
    match page.render() {
        Ok(html) => {
            let mut r = Response::new(full(html));
            *r.status_mut() = status;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "console: a page did not render");
            let mut r = Response::new(full("internal error\n"));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// The Content-Security-Policy of every console response: this origin's own script,
/// style and images, forms posted to it only, no framing, no plugins, no base changes.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `resp` with the console's security headers.
fn secured(mut resp: Resp) -> Resp {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` with the console's own forms.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// A `303 See Other` to `location` (after a change: the page is loaded anew).
pub(crate) fn see_other(location: &'static str) -> Resp {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_static(location));
    r
}
