//! Digest credentials for provisioning-file downloads: a device's secret ("MAC-ID"), the
//! fallback credentials (global or per profile), and a device's provisioning URL. Secrets
//! are sealed before the store sees them and never answered.

use dls_message::MacAddr;
use dls_store::{AdminAction, CredentialScope};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, error, json, query};
use super::auth::Caller;
use crate::http::Resp;

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

/// A device's Digest secret, checked and sealed for the store.
pub(crate) fn seal_secret(state: &AdminState, mac: MacAddr, secret: &str) -> Result<Vec<u8>, ApiError> {
    check_secret(secret)?;
    let context = crate::provisioning::device_context(mac);
    state
        .provisioning
        .secrets
        .seal(&context, secret.as_bytes())
        .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "sealing failed"))
}

/// `PUT /api/v1/devices/{mac}/secret`: `{"secret"}`
pub(crate) async fn set_secret(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let r: SecretRequest = body_json(state, req).await?;
    put_secret(state, caller, mac, Some(&r.secret)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "mac": mac, "secret": "set" })))
}

/// `DELETE /api/v1/devices/{mac}/secret`
pub(crate) async fn clear_secret(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, ApiError> {
    put_secret(state, caller, mac, None).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "mac": mac, "secret": "cleared" })))
}

/// Sets (checked and sealed) or clears a device's Digest secret, audited (the API's
/// `PUT`/`DELETE …/secret` and the console's form).
pub(crate) async fn put_secret(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    secret: Option<&str>,
) -> Result<(), ApiError> {
    let sealed = secret.map(|secret| seal_secret(state, mac, secret)).transpose()?;
    let action = if sealed.is_some() { AdminAction::SecretSet } else { AdminAction::SecretCleared };
    blocking(state, "set_device_secret", move |s| s.set_device_secret(mac, sealed.as_deref())).await?;
    audited(state, caller, Some(mac), action, "").await;
    Ok(())
}

/// `user:password@` for a URL, percent-encoded.
fn userinfo(user: &str, password: &str) -> String {
    format!("{}:{}@", crate::uri::percent_encode(user), crate::uri::percent_encode(password))
}

/// Whether `embed=true` is asked for (`embed=false` or none: no); other parameters are
/// refused.
pub(crate) fn embed_asked(q: Option<&str>) -> Result<bool, ApiError> {
    let mut embed = false;
    for (k, v) in query(q)? {
        match (k.as_str(), v.as_str()) {
            ("embed", "true") => embed = true,
            ("embed", "false") => embed = false,
            ("embed", _) => return Err(error(StatusCode::BAD_REQUEST, "embed is true or false")),
            (other, _) => return Err(error(StatusCode::BAD_REQUEST, format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(embed)
}

/// `GET /api/v1/devices/{mac}/provisioning-url?embed=true`: `{"url"}`, the device's
/// credentials embedded on request.
pub(crate) async fn provisioning_url(
    state: &AdminState,
    mac: MacAddr,
    req: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let embed = embed_asked(req.uri().query())?;
    let path = state.provisioning.path_of(mac);
    let url = if embed {
        let sealed = blocking(state, "device_secret", move |s| s.device_secret(mac))
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

/// `GET /api/v1/credentials/fallback`: scopes and user names, never a password.
pub(crate) async fn list_fallback(state: &AdminState) -> Result<Resp, ApiError> {
    let list = blocking(state, "list_fallback_credentials", |s| s.list_fallback_credentials()).await?;
    let list: Vec<serde_json::Value> =
        list.into_iter().map(|(scope, username)| serde_json::json!({ "scope": scope, "username": username })).collect();
    Ok(json(StatusCode::OK, &list))
}

/// Sets (a password) or removes (`None`) a fallback credential, sealed before the store
/// sees it, audited (the API's `PUT`/`DELETE /api/v1/credentials/fallback` and the
/// console's credentials page).
pub(crate) async fn set_fallback(
    state: &AdminState,
    caller: &Caller,
    scope: &CredentialScope,
    username: &str,
    password: Option<&str>,
) -> Result<(), ApiError> {
    let sealed = match password {
        Some(p) => {
            check_secret(p)?;
            let context = crate::provisioning::fallback_context(scope, username);
            Some(
                state
                    .provisioning
                    .secrets
                    .seal(&context, p.as_bytes())
                    .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "sealing failed"))?,
            )
        }
        None => None,
    };
    let (s2, u2) = (scope.clone(), username.to_owned());
    blocking(state, "set_fallback_credential", move |s| s.set_fallback_credential(&s2, &u2, sealed.as_deref())).await?;
    let what = match scope {
        CredentialScope::Global => "global".to_owned(),
        CredentialScope::Profile(p) => format!("profile {p}"),
    };
    let kind = if password.is_some() { AdminAction::CredentialSet } else { AdminAction::CredentialRemoved };
    audited(state, caller, None, kind, format!("{what}, user {username}")).await;
    Ok(())
}

/// `PUT` (with a password) or `DELETE /api/v1/credentials/fallback`:
/// `{"scope": "global" or {"profile": P}, "username", "password"}`
pub(crate) async fn change_fallback(
    state: &AdminState,
    caller: &Caller,
    method: &Method,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let r: FallbackRequest = body_json(state, req).await?;
    let password = if *method == Method::PUT {
        Some(r.password.as_deref().ok_or_else(|| error(StatusCode::BAD_REQUEST, "a password is required"))?)
    } else {
        None
    };
    set_fallback(state, caller, &r.scope, &r.username, password.map(String::as_str)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "scope": r.scope, "username": r.username })))
}
