//! Secure mode: a device's mode, reset and PIN; its certificates; the audit log.

use dls_engine::SecurityMode;
use dls_message::MacAddr;
use dls_secure_mode::Pin;
use dls_store::SecurityUpdate;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, blocking, body_json, error, json, parse_mac, query};
use crate::http::Resp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecurityRequest {
    #[serde(default)]
    pub(super) mode: Option<SecurityMode>,
    #[serde(default)]
    pub(super) reset: bool,
    #[serde(default)]
    pub(super) new_pin: bool,
}

/// The store's form of a security change, with the PIN it issues, if any (generated from
/// the CSPRNG; the store gets it sealed).
pub(super) fn security_update(
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
    Ok((pin, SecurityUpdate { mode: request.mode, reset: request.reset, new_pin: sealed, actor: None }))
}

/// `POST /api/v1/devices/{mac}/security`: `{"mode"?, "reset"?, "new_pin"?}`; answers
/// `{"pin"}` when one was issued (the store keeps it sealed).
pub(super) async fn change(state: &AdminState, mac: MacAddr, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let request: SecurityRequest = body_json(state, req).await?;
    let (pin, update) = security_update(state, mac, request)?;
    let at = state.clock.now();
    blocking(state, "update_security", move |s| s.update_security(mac, &update, at)).await?;
    let body = match pin {
        Some(p) => serde_json::json!({ "mac": mac, "pin": p.as_str() }),
        None => serde_json::json!({ "mac": mac }),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `GET /api/v1/devices/{mac}/certificates`
pub(super) async fn certificates(state: &AdminState, mac: MacAddr) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &blocking(state, "certificates", move |s| s.certificates(mac)).await?))
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

/// `GET /api/v1/audit?mac=&limit=`: newest first.
pub(super) async fn audit(state: &AdminState, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let (mac, limit) = audit_filter(req.uri().query())?;
    Ok(json(StatusCode::OK, &blocking(state, "audit", move |s| s.audit(mac, limit)).await?))
}
