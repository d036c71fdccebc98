//! Who is asking: every request of the admin listener (the JSON API and the console) is
//! authenticated by one of
//!
//! * the service's admin token (`Authorization: Bearer <admin-token>`): actor
//!   `admin-token`, role `admin` — the first administrator's credential;
//! * an account's API token (`Authorization: Bearer dls_…`): the account's role, actor
//!   `account:token`; the store knows it by its SHA-256 only;
//! * a console session cookie: the account's role, actor the account's name, and a CSRF
//!   token required on every state-changing request (the session's, see
//!   [`dls_accounts::secret::csrf_token`]). A session past its idle or absolute timeout is
//!   ended.
//!
//! A bearer token wins over a cookie: a script's request is never taken for a browser's.
//! The role a request needs is the route's ([`super::route`], the console's table); this
//! module only says who the caller is, and checks a role against a need ([`permit`]).

use std::net::IpAddr;
use std::sync::Mutex;

use dls_accounts::{ADMIN_TOKEN_ACTOR, LoginThrottle, Need, Role, SessionCheck, SessionPolicy, names, secret};
use dls_engine::UnixTime;
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, StatusCode};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, blocking, error};

/// The session cookie's name over TLS: `__Host-` makes browsers refuse it unless it is
/// `Secure`, for the path `/` and without a `Domain` (no other host can set or shadow it).
pub(crate) const COOKIE_TLS: &str = "__Host-dls-session";
/// The session cookie's name over plain HTTP (loopback).
pub(crate) const COOKIE_PLAIN: &str = "dls-session";
/// The header a cookie-authenticated request sends its CSRF token in (htmx and scripts).
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// What authentication shares across requests: the login throttle, the session policy,
/// the bound on concurrent password hashing, whether cookies are `Secure`.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) throttle: Mutex<LoginThrottle>,
    pub(crate) policy: SessionPolicy,
    /// Argon2id takes 19 MiB and tens of milliseconds: at most this many at once.
    pub(crate) hashing: Semaphore,
    /// The admin listener is TLS: cookies are `Secure` (and named `__Host-…`).
    pub(crate) tls: bool,
}

impl Auth {
    pub(crate) fn new(policy: SessionPolicy, tls: bool) -> Self {
        Self {
            throttle: Mutex::new(LoginThrottle::new(dls_accounts::ThrottleConfig::default())),
            policy,
            hashing: Semaphore::new(2),
            tls,
        }
    }

    /// The session cookie's name on this listener.
    pub(crate) fn cookie_name(&self) -> &'static str {
        if self.tls { COOKIE_TLS } else { COOKIE_PLAIN }
    }

    /// A `Set-Cookie` value starting a session (`None`: ending it).
    pub(crate) fn set_cookie(&self, session_id: Option<&str>) -> HeaderValue {
        let secure = if self.tls { "; Secure" } else { "" };
        let value = match session_id {
            Some(id) => format!("{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}", self.cookie_name()),
            None => format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", self.cookie_name()),
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("dls-session=; Max-Age=0"))
    }
}

/// How a request was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// The service's admin token.
    AdminToken,
    /// An account's API token (its name).
    ApiToken(String),
    /// A console session (its id, the cookie's value: the CSRF token's key).
    Console(Zeroizing<String>),
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The account's name, or `admin-token`.
    pub(crate) account: String,
    /// What it may do.
    pub(crate) role: Role,
    /// How it authenticated.
    pub(crate) via: Via,
}

impl Caller {
    /// Who the audit log names: `account`, `account:token`, or `admin-token`.
    pub(crate) fn actor(&self) -> String {
        match &self.via {
            Via::ApiToken(token) => names::token_actor(&self.account, token),
            Via::AdminToken | Via::Console(_) => self.account.clone(),
        }
    }

    /// The console session's CSRF token, for pages (`None` for a bearer token).
    pub(crate) fn csrf(&self) -> Option<String> {
        match &self.via {
            Via::Console(id) => Some(secret::csrf_token(id)),
            _ => None,
        }
    }

    /// Whether a state-changing request carries what it must against cross-site requests: a
    /// bearer token needs nothing (a browser never sends one by itself), a session its CSRF
    /// token, compared in constant time.
    pub(crate) fn csrf_ok(&self, given: Option<&str>) -> bool {
        match &self.via {
            Via::Console(id) => given.is_some_and(|g| secret::csrf_matches(id, g)),
            _ => true,
        }
    }
}

/// Why a request is not authenticated.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// No credentials at all.
    Missing,
    /// A token that is wrong, revoked, or of a deleted account.
    BadToken,
    /// A session that does not exist (any more) or has timed out.
    SessionEnded,
    /// The store failed.
    Store(ApiError),
}

impl Rejected {
    /// The API's answer: `401` with a one-line reason (`503`/`500` for the store).
    pub(crate) fn into_error(self) -> ApiError {
        match self {
            Self::Missing => {
                error(StatusCode::UNAUTHORIZED, "missing credentials: a bearer token or a console session")
            }
            Self::BadToken => error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"),
            Self::SessionEnded => error(StatusCode::UNAUTHORIZED, "the console session has ended: log in again"),
            Self::Store(e) => e,
        }
    }
}

/// Whether `method` may change state (everything but `GET`, `HEAD`, `OPTIONS`).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of the cookie `name`, if the request sends one.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Who sent the request (see the module's documentation), `Rejected` if nobody
/// authenticated. A session is touched (its last request recorded) at most once a minute.
pub(crate) async fn authenticate(state: &AdminState, headers: &HeaderMap) -> Result<Caller, Rejected> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let Some(given) = given else { return Err(Rejected::BadToken) };
        return bearer(state, given).await;
    }
    match cookie(headers, state.auth.cookie_name()) {
        Some(id) => session(state, id).await,
        None => Err(Rejected::Missing),
    }
}

async fn bearer(state: &AdminState, given: &str) -> Result<Caller, Rejected> {
    let admin = state.token.as_bytes();
    if given.len() == admin.len() && bool::from(given.as_bytes().ct_eq(admin)) {
        return Ok(Caller { account: ADMIN_TOKEN_ACTOR.to_owned(), role: Role::Admin, via: Via::AdminToken });
    }
    if !secret::is_token(given) {
        return Err(Rejected::BadToken);
    }
    let (key, at) = (secret::token_hash(given), state.clock.now());
    match blocking(state, "use_token", move |s| s.use_token(&key, at)).await {
        Ok(Some((account, token))) => {
            Ok(Caller { account: account.name, role: account.role, via: Via::ApiToken(token) })
        }
        Ok(None) => Err(Rejected::BadToken),
        Err(e) => Err(Rejected::Store(e)),
    }
}

async fn session(state: &AdminState, id: &str) -> Result<Caller, Rejected> {
    if !secret::is_session_id(id) {
        return Err(Rejected::SessionEnded);
    }
    let (key, now) = (secret::session_key(id), state.clock.now());
    let lookup = key.clone();
    let found =
        blocking(state, "console_session", move |s| s.console_session(&lookup)).await.map_err(Rejected::Store)?;
    let Some(session) = found else { return Err(Rejected::SessionEnded) };
    match state.auth.policy.check(session.created_at.0, session.last_seen_at.0, now.0) {
        SessionCheck::Expired => {
            let _ = blocking(state, "delete_console_session", move |s| s.delete_console_session(&key)).await;
            Err(Rejected::SessionEnded)
        }
        SessionCheck::Valid { touch } => {
            if touch {
                blocking(state, "touch_console_session", move |s| s.touch_console_session(&key, now))
                    .await
                    .map_err(Rejected::Store)?;
            }
            Ok(Caller {
                account: session.account.name,
                role: session.account.role,
                via: Via::Console(Zeroizing::new(id.to_owned())),
            })
        }
    }
}

/// `Ok` if `caller`'s role may do what `need` asks, else `403` saying which role it takes.
pub(crate) fn permit(caller: &Caller, need: Need) -> Result<(), ApiError> {
    if caller.role.may(need) {
        return Ok(());
    }
    Err(error(
        StatusCode::FORBIDDEN,
        format!("the role {} may not do this: it takes {}", caller.role, need.least_role()),
    ))
}

/// What a login attempt came to.
#[derive(Debug)]
pub(crate) enum Login {
    /// The password is the account's.
    Success(dls_store::Account),
    /// The account exists; the password is not its.
    WrongPassword,
    /// No account of that name (what was typed is not kept: it may be a password typed in
    /// the wrong field).
    NoAccount,
    /// Too many failures lately: try again in this many seconds (nothing was checked).
    Throttled(u64),
}

/// The console's login: checks `password` for `account` from `source` at `now` through
/// the throttle, in constant time whether the account exists or not, on a blocking thread
/// (at most [`Auth::hashing`] at once).
pub(crate) async fn check_login(
    state: &AdminState,
    account: &str,
    password: Zeroizing<String>,
    source: IpAddr,
    now: UnixTime,
) -> Result<Login, ApiError> {
    let wait = state.auth.throttle.lock().map_err(|_| internal())?.check(source, account, now.0);
    if let Some(wait) = wait {
        return Ok(Login::Throttled(wait));
    }
    let name = account.to_owned();
    let (hash, found) = blocking(state, "password_hash", move |s| {
        let hash = s.password_hash(&name)?;
        let found = if hash.is_some() { s.account(&name)? } else { None };
        Ok((hash, found))
    })
    .await?;
    let exists = hash.is_some();
    let _permit = state.auth.hashing.acquire().await.map_err(|_| internal())?;
    let ok = crate::tasks::spawn_blocking(move || dls_accounts::password::verify(&password, hash.as_deref()))
        .await
        .map_err(|_| internal())?;
    let mut throttle = state.auth.throttle.lock().map_err(|_| internal())?;
    match found {
        Some(found) if ok => {
            throttle.record_success(source, account, now.0);
            Ok(Login::Success(found))
        }
        _ => {
            throttle.record_failure(source, account, now.0);
            Ok(if exists { Login::WrongPassword } else { Login::NoAccount })
        }
    }
}

/// Hashes a new password on a blocking thread (at most [`Auth::hashing`] at once); `422`
/// for one the rules refuse.
pub(crate) async fn hash_password(state: &AdminState, password: Zeroizing<String>) -> Result<String, ApiError> {
    dls_accounts::password::check_rules(&password)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let _permit = state.auth.hashing.acquire().await.map_err(|_| internal())?;
    crate::tasks::spawn_blocking(move || dls_accounts::password::hash(&password))
        .await
        .map_err(|_| internal())?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn internal() -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

#[cfg(test)]
mod tests {
    use hyper::HeaderMap;
    use hyper::header::{COOKIE, HeaderValue};

    use super::*;

    #[test]
    fn cookies_are_found_by_name_only() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; dls-session=abc ; other=2"));
        h.append(COOKIE, HeaderValue::from_static("__Host-dls-session=tls"));
        assert_eq!(cookie(&h, COOKIE_PLAIN), Some("abc"));
        assert_eq!(cookie(&h, COOKIE_TLS), Some("tls"));
        assert_eq!(cookie(&h, "x-dls-session"), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_under_tls() {
        let plain = Auth::new(SessionPolicy::default(), false);
        let v = plain.set_cookie(Some("abc")).to_str().expect("ascii").to_owned();
        assert_eq!(v, "dls-session=abc; Path=/; HttpOnly; SameSite=Strict");
        let tls = Auth::new(SessionPolicy::default(), true);
        let v = tls.set_cookie(Some("abc")).to_str().expect("ascii").to_owned();
        assert_eq!(v, "__Host-dls-session=abc; Path=/; HttpOnly; SameSite=Strict; Secure");
        assert!(tls.set_cookie(None).to_str().expect("ascii").contains("Max-Age=0"));
    }

    #[test]
    fn csrf_is_needed_for_sessions_only() {
        let id = secret::new_session_id().expect("random");
        let console = Caller { account: "alice".into(), role: Role::Viewer, via: Via::Console(id) };
        assert!(!console.csrf_ok(None));
        assert!(!console.csrf_ok(Some("0000")));
        assert!(console.csrf_ok(console.csrf().as_deref()));
        let token = Caller { account: "alice".into(), role: Role::Viewer, via: Via::ApiToken("ci".into()) };
        assert!(token.csrf_ok(None));
        assert_eq!((token.actor(), console.actor()), ("alice:ci".to_owned(), "alice".to_owned()));
        assert!(permit(&console, Need::Read).is_ok());
        assert!(permit(&console, Need::Operate).is_err());
    }
}
