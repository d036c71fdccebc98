//! The admin API: JSON over HTTP with a bearer token, on a loopback port by default.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | liveness, no token |
//! | GET | `/api/v1/devices?profile=&device-type=&search=&limit=` | list devices |
//! | POST | `/api/v1/devices` | add `{"mac", "profiles", "overrides"}` |
//! | GET | `/api/v1/devices/{mac}` | a device with its inventory |
//! | PATCH | `/api/v1/devices/{mac}` | change `{"profiles"?, "overrides"?}` |
//! | DELETE | `/api/v1/devices/{mac}` | forget a device |
//! | GET | `/api/v1/devices/{mac}/desired` | its merged desired configuration |
//! | GET | `/api/v1/profiles` | list profiles |
//! | GET, PUT, DELETE | `/api/v1/profiles/{name}` | one profile |
//! | POST | `/api/v1/devices/{mac}/security` | `{"mode"?, "reset"?, "new_pin"?}`; answers `{"pin"}` when one was issued |
//! | GET | `/api/v1/devices/{mac}/certificates` | the device's certificates |
//! | GET | `/api/v1/audit?mac=&limit=` | the audit log, newest first |
//! | PUT, DELETE | `/api/v1/devices/{mac}/secret` | `{"secret"}`: the device's digest secret ("MAC-ID") |
//! | GET | `/api/v1/devices/{mac}/provisioning-url?embed=true` | `{"url"}`, credentials embedded on request |
//! | GET, PUT, DELETE | `/api/v1/credentials/fallback` | `{"scope": "global" or {"profile": P}, "username", "password"}` |
//!
//! Items that a phone cannot be sent (in a profile, its provisioning template, device
//! overrides, a `write` job) are refused with `422`, naming the item: the rule is
//! [`dls_message::check`].
//!
//! Jobs, deployment files and contact-me: see [`jobs`].

pub(crate) mod jobs;

use std::sync::Arc;
use std::time::Duration;

use dls_engine::Profile;
use dls_engine::SecurityMode;
use dls_message::{Item, MacAddr};
use dls_secure_mode::Pin;
use dls_store::{CredentialScope, DeviceFilter, DeviceSpec, DeviceUpdate, SecurityUpdate, Store, StoreError};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use zeroize::Zeroizing;

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
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"response not serialisable\"}".to_vec());
    let mut r = Response::new(crate::http::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An admin request's failure: its status and a one-line message, rendered as
/// `{"error": "…"}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn response(&self) -> Resp {
        let mut r = json(self.status, &serde_json::json!({ "error": self.message }));
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message)
}

/// Refuses (`422`) items a phone cannot be sent, naming the first such item and its place:
/// the rule is [`dls_message::check`], the one the engine applies to what it sends.
fn check_items(what: &str, items: &[Item]) -> Result<(), ApiError> {
    dls_message::check::check_items(items).map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}: {e}")))
}

/// Refuses (`422`) a profile that holds something a phone cannot be sent: an item (see
/// [`check_items`]) or a character XML 1.0 does not allow in its provisioning template.
fn check_profile(name: &str, profile: &Profile) -> Result<(), ApiError> {
    let what = format!("profile {}", dls_message::check::quoted(name));
    check_items(&what, &profile.items)?;
    if let Some((at, c)) = profile.provisioning_template.as_deref().and_then(dls_message::check::first_non_xml_char) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{what}: the provisioning template holds U+{:04X} at character {at}, which XML 1.0 cannot carry",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

fn store_error(e: &StoreError) -> ApiError {
    let status = match e {
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::Conflict { .. } => StatusCode::CONFLICT,
        StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "admin request failed in the store");
        return error(status, "internal error");
    }
    error(status, e.to_string())
}

fn authorised(req: &Request<Incoming>, token: &str) -> bool {
    let Some(v) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(given) = v.strip_prefix("Bearer ").map(str::trim) else { return false };
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

/// Runs a store call off the executor.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(&e)),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

async fn body_json<T: for<'de> Deserialize<'de>>(state: &AdminState, req: Request<Incoming>) -> Result<T, ApiError> {
    let bytes = match crate::http::read_body(req, state.max_body_bytes, state.body_timeout).await {
        Ok(b) => b,
        Err(crate::http::BodyError::TooLarge) => {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
        }
        Err(crate::http::BodyError::Timeout) => {
            return Err(error(StatusCode::REQUEST_TIMEOUT, "request body not received in time"));
        }
        Err(crate::http::BodyError::Broken) => {
            return Err(error(StatusCode::BAD_REQUEST, "request body could not be read"));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

fn parse_mac(s: &str) -> Result<MacAddr, ApiError> {
    MacAddr::parse(s).map_err(|e| error(StatusCode::BAD_REQUEST, format!("{s:?}: {e}")))
}

/// The query's pairs ([`crate::uri::query_pairs`]), or `400` for bad encoding.
fn query(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    crate::uri::query_pairs(query).ok_or_else(|| error(StatusCode::BAD_REQUEST, "bad percent-encoding in query"))
}

fn filter_of(q: Option<&str>) -> Result<DeviceFilter, ApiError> {
    let mut f = DeviceFilter::default();
    for (k, v) in query(q)? {
        match k.as_str() {
            "profile" => f.profile = Some(v),
            "device-type" => f.device_type = Some(v),
            "search" => f.search = Some(v),
            "limit" => f.limit = Some(v.parse().map_err(|_| error(StatusCode::BAD_REQUEST, "limit must be a number"))?),
            other => return Err(error(StatusCode::BAD_REQUEST, format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(f)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDevice {
    mac: String,
    #[serde(default)]
    profiles: Vec<String>,
    #[serde(default)]
    overrides: Vec<Item>,
    /// With `pin`, a PIN is issued and returned.
    #[serde(default)]
    mode: Option<SecurityMode>,
    /// The device's digest secret ("MAC-ID").
    #[serde(default)]
    secret: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRequest {
    secret: Zeroizing<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackRequest {
    scope: CredentialScope,
    username: String,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
}

fn check_secret(s: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(error(StatusCode::BAD_REQUEST, "a secret is 1 to 256 characters, no control characters"));
    }
    Ok(())
}

/// Seals and stores a device's secret.
/// A device's Digest secret, checked and sealed for the store.
fn seal_secret(state: &AdminState, mac: MacAddr, secret: &str) -> Result<Vec<u8>, ApiError> {
    check_secret(secret)?;
    let context = crate::provisioning::device_context(mac);
    state
        .provisioning
        .secrets
        .seal(&context, secret.as_bytes())
        .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "sealing failed"))
}

async fn set_secret(state: &AdminState, mac: MacAddr, secret: Option<&str>) -> Result<(), ApiError> {
    let sealed = secret.map(|s| seal_secret(state, mac, s)).transpose()?;
    blocking(&state.store, move |s| s.set_device_secret(mac, sealed.as_deref())).await
}

/// `user:password@` for a URL, percent-encoded.
fn userinfo(user: &str, password: &str) -> String {
    format!("{}:{}@", crate::uri::percent_encode(user), crate::uri::percent_encode(password))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityRequest {
    #[serde(default)]
    mode: Option<SecurityMode>,
    #[serde(default)]
    reset: bool,
    #[serde(default)]
    new_pin: bool,
}

/// The store's form of a security change, with the PIN it issues, if any (generated from
/// the CSPRNG; the store gets it sealed).
fn security_update(
    state: &AdminState,
    mac: MacAddr,
    request: SecurityRequest,
) -> Result<(Option<Zeroizing<String>>, SecurityUpdate), ApiError> {
    let (pin, sealed) = if request.new_pin {
        let p = Pin::generate().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("no PIN: {e}")))?;
        let sealed = state
            .provisioning
            .secrets
            .seal_pin(mac, p.digits())
            .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "the PIN could not be sealed"))?;
        (Some(Zeroizing::new(p.digits().to_owned())), Some(sealed))
    } else {
        (None, None)
    };
    Ok((pin, SecurityUpdate { mode: request.mode, reset: request.reset, new_pin: sealed }))
}

/// Applies a security change; returns the PIN issued, if any (the store keeps it sealed).
async fn change_security(
    state: &AdminState,
    mac: MacAddr,
    request: SecurityRequest,
) -> Result<Option<Zeroizing<String>>, ApiError> {
    let (pin, update) = security_update(state, mac, request)?;
    blocking(&state.store, move |s| s.update_security(mac, &update, crate::wpi::now())).await?;
    Ok(pin)
}

fn audit_filter(q: Option<&str>) -> Result<(Option<MacAddr>, usize), ApiError> {
    let mut mac = None;
    let mut limit = 1000;
    for (k, v) in query(q)? {
        match k.as_str() {
            "mac" => mac = Some(parse_mac(&v)?),
            "limit" => limit = v.parse().map_err(|_| error(StatusCode::BAD_REQUEST, "limit must be a number"))?,
            other => return Err(error(StatusCode::BAD_REQUEST, format!("unknown query parameter {other:?}"))),
        }
    }
    Ok((mac, limit))
}

pub(crate) async fn handle(state: Arc<AdminState>, req: Request<Incoming>, info: crate::http::ConnInfo) -> Resp {
    let peer = info.peer;
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return json(StatusCode::OK, &serde_json::json!({ "status": "ok" }));
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

async fn route(state: &AdminState, req: Request<Incoming>, method: &Method, seg: &[&str]) -> Result<Resp, ApiError> {
    let store = &state.store;
    if matches!(seg.first(), Some(&("jobs" | "files"))) || matches!(seg, ["devices", _, "contact"]) {
        if let Some(r) = jobs::route(state, req, method, seg).await {
            return r;
        }
        return Err(error(StatusCode::NOT_FOUND, "not found"));
    }
    match (method.clone(), seg) {
        (Method::GET, ["devices"]) => {
            let filter = filter_of(req.uri().query())?;
            let list = blocking(store, move |s| s.list_devices(&filter)).await?;
            Ok(json(StatusCode::OK, &list))
        }
        (Method::POST, ["devices"]) => {
            let new: NewDevice = body_json(state, req).await?;
            let mac = parse_mac(&new.mac)?;
            check_items("overrides", &new.overrides)?;
            let secret = new.secret.as_deref().map(|secret| seal_secret(state, mac, secret)).transpose()?;
            let (pin, security) = match new.mode {
                Some(mode) => {
                    let request =
                        SecurityRequest { mode: Some(mode), reset: false, new_pin: mode == SecurityMode::Pin };
                    let (pin, update) = security_update(state, mac, request)?;
                    (pin, Some(update))
                }
                None => (None, None),
            };
            let spec = DeviceSpec { profiles: new.profiles, overrides: new.overrides, secret, security };
            blocking(store, move |s| s.add_device(mac, &spec, crate::wpi::now())).await?;
            let details = blocking(store, move |s| s.device(mac)).await?;
            let mut body = serde_json::to_value(&details).unwrap_or_default();
            if let (Some(p), Some(obj)) = (pin, body.as_object_mut()) {
                obj.insert("pin".into(), serde_json::Value::String(p.to_string()));
            }
            Ok(json(StatusCode::CREATED, &body))
        }
        (Method::POST, ["devices", mac, "security"]) => {
            let mac = parse_mac(mac)?;
            let request: SecurityRequest = body_json(state, req).await?;
            let pin = change_security(state, mac, request).await?;
            let body = match pin {
                Some(p) => serde_json::json!({ "mac": mac, "pin": p.as_str() }),
                None => serde_json::json!({ "mac": mac }),
            };
            Ok(json(StatusCode::OK, &body))
        }
        (Method::PUT, ["devices", mac, "secret"]) => {
            let mac = parse_mac(mac)?;
            let r: SecretRequest = body_json(state, req).await?;
            set_secret(state, mac, Some(&r.secret)).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "mac": mac, "secret": "set" })))
        }
        (Method::DELETE, ["devices", mac, "secret"]) => {
            let mac = parse_mac(mac)?;
            set_secret(state, mac, None).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "mac": mac, "secret": "cleared" })))
        }
        (Method::GET, ["devices", mac, "provisioning-url"]) => {
            let mac = parse_mac(mac)?;
            let embed = req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "embed=true"));
            let path = state.provisioning.path_of(mac);
            let url = if embed {
                let sealed = blocking(store, move |s| s.device_secret(mac))
                    .await?
                    .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("device {mac} has no secret")))?;
                let secret = state
                    .provisioning
                    .secrets
                    .open(&crate::provisioning::device_context(mac), &sealed)
                    .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "the stored secret does not open"))?;
                let secret = String::from_utf8_lossy(&secret).into_owned();
                let (scheme, rest) = state.base_url.split_once("://").unwrap_or(("https", state.base_url.as_str()));
                format!("{scheme}://{}{rest}{path}", userinfo(&mac.to_string(), &secret))
            } else {
                format!("{}{path}", state.base_url)
            };
            Ok(json(StatusCode::OK, &serde_json::json!({ "url": url })))
        }
        (Method::GET, ["credentials", "fallback"]) => {
            let list = blocking(store, |s| s.list_fallback_credentials()).await?;
            let list: Vec<serde_json::Value> = list
                .into_iter()
                .map(|(scope, username)| serde_json::json!({ "scope": scope, "username": username }))
                .collect();
            Ok(json(StatusCode::OK, &list))
        }
        (Method::PUT | Method::DELETE, ["credentials", "fallback"]) => {
            let r: FallbackRequest = body_json(state, req).await?;
            let sealed = match (*method == Method::PUT, &r.password) {
                (true, Some(p)) => {
                    check_secret(p)?;
                    let context = crate::provisioning::fallback_context(&r.scope, &r.username);
                    Some(
                        state
                            .provisioning
                            .secrets
                            .seal(&context, p.as_bytes())
                            .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "sealing failed"))?,
                    )
                }
                (true, None) => return Err(error(StatusCode::BAD_REQUEST, "a password is required")),
                (false, _) => None,
            };
            let (scope, username) = (r.scope.clone(), r.username.clone());
            blocking(store, move |s| s.set_fallback_credential(&scope, &username, sealed.as_deref())).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "scope": r.scope, "username": r.username })))
        }
        (Method::GET, ["devices", mac, "certificates"]) => {
            let mac = parse_mac(mac)?;
            Ok(json(StatusCode::OK, &blocking(store, move |s| s.certificates(mac)).await?))
        }
        (Method::GET, ["audit"]) => {
            let (mac, limit) = audit_filter(req.uri().query())?;
            Ok(json(StatusCode::OK, &blocking(store, move |s| s.audit(mac, limit)).await?))
        }
        (Method::GET, ["devices", mac]) => {
            let mac = parse_mac(mac)?;
            match blocking(store, move |s| s.device(mac)).await? {
                Some(d) => Ok(json(StatusCode::OK, &d)),
                None => Err(error(StatusCode::NOT_FOUND, format!("device {mac} not found"))),
            }
        }
        (Method::PATCH, ["devices", mac]) => {
            let mac = parse_mac(mac)?;
            let update: DeviceUpdate = body_json(state, req).await?;
            if let Some(overrides) = &update.overrides {
                check_items("overrides", overrides)?;
            }
            blocking(store, move |s| s.update_device(mac, &update)).await?;
            let details = blocking(store, move |s| s.device(mac)).await?;
            Ok(json(StatusCode::OK, &details))
        }
        (Method::DELETE, ["devices", mac]) => {
            let mac = parse_mac(mac)?;
            if blocking(store, move |s| s.delete_device(mac)).await? {
                Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": mac })))
            } else {
                Err(error(StatusCode::NOT_FOUND, format!("device {mac} not found")))
            }
        }
        (Method::GET, ["devices", mac, "desired"]) => {
            let mac = parse_mac(mac)?;
            let desired = blocking(store, move |s| s.desired(mac)).await?;
            Ok(json(StatusCode::OK, &desired))
        }
        (Method::GET, ["profiles"]) => Ok(json(StatusCode::OK, &blocking(store, |s| s.profiles()).await?)),
        (Method::GET, ["profiles", name]) => {
            let n = (*name).to_owned();
            match blocking(store, move |s| s.profile(&n)).await? {
                Some(p) => Ok(json(StatusCode::OK, &p)),
                None => Err(error(StatusCode::NOT_FOUND, format!("profile {name:?} not found"))),
            }
        }
        (Method::PUT, ["profiles", name]) => {
            let mut profile: Profile = body_json(state, req).await?;
            check_profile(name, &profile)?;
            profile.name = (*name).to_owned();
            let p = profile.clone();
            blocking(store, move |s| s.put_profile(&p)).await?;
            Ok(json(StatusCode::OK, &profile))
        }
        (Method::DELETE, ["profiles", name]) => {
            let n = (*name).to_owned();
            if blocking(store, move |s| s.delete_profile(&n)).await? {
                Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": name })))
            } else {
                Err(error(StatusCode::NOT_FOUND, format!("profile {name:?} not found")))
            }
        }
        (
            _,
            ["devices"]
            | ["devices", _]
            | ["devices", _, "desired" | "security" | "certificates" | "secret" | "provisioning-url"]
            | ["profiles"]
            | ["profiles", _]
            | ["audit"]
            | ["credentials", "fallback"],
        ) => Err(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        _ => Err(error(StatusCode::NOT_FOUND, "not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let unavailable = store_error(&StoreError::Unavailable("connection refused".into()));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.message, "database unavailable: connection refused");
        assert_eq!(store_error(&StoreError::not_found("device 1")).status, StatusCode::NOT_FOUND);
        let broken = store_error(&StoreError::Corrupt("a row".into()));
        assert_eq!((broken.status, broken.message.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    }
}
