//! Secure mode: a device's mode, reset and PIN; its certificates; the audit log.

use dls_engine::SecurityMode;
use dls_engine::UnixTime;
use dls_message::MacAddr;
use dls_secure_mode::Pin;
use dls_store::{AuditFilter, EventKind, SecurityUpdate};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, blocking, body_json, error, json, parse_mac, query};
use super::auth::Caller;
use crate::http::Resp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecurityRequest {
    #[serde(default)]
    pub(crate) mode: Option<SecurityMode>,
    #[serde(default)]
    pub(crate) reset: bool,
    #[serde(default)]
    pub(crate) new_pin: bool,
}

/// The store's form of a security change, with the PIN it issues, if any (generated from
/// the CSPRNG; the store gets it sealed).
pub(crate) fn security_update(
    state: &AdminState,
    caller: &Caller,
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
    Ok((pin, SecurityUpdate { mode: request.mode, reset: request.reset, new_pin: sealed, actor: Some(caller.actor()) }))
}

/// `POST /api/v1/devices/{mac}/security`: `{"mode"?, "reset"?, "new_pin"?}`; answers
/// `{"pin"}` when one was issued (the store keeps it sealed).
pub(crate) async fn change(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let request: SecurityRequest = body_json(state, req).await?;
    let pin = apply(state, caller, mac, request).await?;
    let body = match pin {
        Some(p) => serde_json::json!({ "mac": mac, "pin": p.as_str() }),
        None => serde_json::json!({ "mac": mac }),
    };
    Ok(json(StatusCode::OK, &body))
}

/// Changes a device's security (the API's `POST …/security` and the console's forms):
/// stored with its audit records in one transaction; the PIN issued, if one was.
pub(crate) async fn apply(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    request: SecurityRequest,
) -> Result<Option<Zeroizing<String>>, ApiError> {
    let (pin, update) = security_update(state, caller, mac, request)?;
    let at = state.clock.now();
    blocking(state, "update_security", move |s| s.update_security(mac, &update, at)).await?;
    Ok(pin)
}

/// `GET /api/v1/devices/{mac}/certificates`
pub(crate) async fn certificates(state: &AdminState, mac: MacAddr) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &blocking(state, "certificates", move |s| s.certificates(mac)).await?))
}

/// An audit listing's filter from a query: `mac`, `actor`, `kind` (kebab-case), `since` and
/// `until` (Unix seconds), `before` (an id: the next page), `limit` (default 1,000 here).
pub(crate) fn audit_filter(q: Option<&str>) -> Result<AuditFilter, ApiError> {
    let mut f = AuditFilter { limit: Some(1000), ..AuditFilter::default() };
    let number = |name: &str, v: &str| -> Result<u64, ApiError> {
        v.parse().map_err(|_| error(StatusCode::BAD_REQUEST, format!("{name} must be a number")))
    };
    for (k, v) in query(q)? {
        match k.as_str() {
            "mac" => f.mac = Some(parse_mac(&v)?),
            "actor" if !v.is_empty() => f.actor = Some(v),
            "actor" => {}
            "kind" => {
                f.kind =
                    Some(EventKind::parse(&v).ok_or_else(|| {
                        error(StatusCode::BAD_REQUEST, format!("unknown audit kind {:?}", short(&v)))
                    })?);
            }
            "since" => f.since = Some(UnixTime(number("since", &v)?)),
            "until" => f.until = Some(UnixTime(number("until", &v)?)),
            "before" => {
                f.before = Some(v.parse().map_err(|_| error(StatusCode::BAD_REQUEST, "before must be a number"))?);
            }
            "limit" => f.limit = Some(usize::try_from(number("limit", &v)?).unwrap_or(usize::MAX)),
            other => return Err(error(StatusCode::BAD_REQUEST, format!("unknown query parameter {:?}", short(other)))),
        }
    }
    Ok(f)
}

/// At most 64 characters of what a client sent, for a message.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `GET /api/v1/audit?mac=&actor=&kind=&since=&until=&before=&limit=`: newest first.
pub(crate) async fn audit(state: &AdminState, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let filter = audit_filter(req.uri().query())?;
    Ok(json(StatusCode::OK, &blocking(state, "audit_log", move |s| s.audit_log(&filter)).await?))
}
