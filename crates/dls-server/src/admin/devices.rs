//! Devices: list, add (with profiles, overrides, Digest secret and security in one store
//! transaction), show, change, forget, and the merged configuration a device should have.

use dls_accounts::Need;
use dls_engine::SecurityMode;
use dls_message::{Item, MacAddr};
use dls_store::{AdminAction, DeviceDetails, DeviceFilter, DeviceSpec, DeviceUpdate};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, check_items, error, json, parse_mac, query, redact};
use super::auth::{Caller, permit};
use super::credentials::seal_secret;
use super::security::{SecurityRequest, security_update};
use crate::http::Resp;

/// A device to add: the API's JSON body, or the console's form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDevice {
    pub(crate) mac: String,
    #[serde(default)]
    pub(crate) profiles: Vec<String>,
    #[serde(default)]
    pub(crate) overrides: Vec<Item>,
    /// With `pin`, a PIN is issued and returned.
    #[serde(default)]
    pub(crate) mode: Option<SecurityMode>,
    /// The device's digest secret ("MAC-ID").
    #[serde(default)]
    pub(crate) secret: Option<Zeroizing<String>>,
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

/// `GET /api/v1/devices?profile=&device-type=&search=&limit=`
pub(crate) async fn list(state: &AdminState, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let filter = filter_of(req.uri().query())?;
    let list = blocking(state, "list_devices", move |s| s.list_devices(&filter)).await?;
    Ok(json(StatusCode::OK, &list))
}

/// `POST /api/v1/devices`: everything asked for in one store transaction, or nothing.
pub(crate) async fn add(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new: NewDevice = body_json(state, req).await?;
    let (details, pin) = create(state, caller, new).await?;
    let mut body = serde_json::to_value(&details).unwrap_or_default();
    if let (Some(p), Some(obj)) = (pin, body.as_object_mut()) {
        obj.insert("pin".into(), serde_json::Value::String(p.to_string()));
    }
    Ok(json(StatusCode::CREATED, &body))
}

/// Adds a device (the API's `POST /api/v1/devices` and the console's form): checked,
/// stored in one transaction and audited; its details, and the PIN issued when the mode
/// is `pin`.
pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    new: NewDevice,
) -> Result<(Option<DeviceDetails>, Option<Zeroizing<String>>), ApiError> {
    let mac = parse_mac(&new.mac)?;
    if new.secret.is_some() {
        // A Digest secret is a credential: an administrator's.
        permit(caller, Need::Administer)?;
    }
    check_items("overrides", &new.overrides)?;
    let secret = new.secret.as_deref().map(|secret| seal_secret(state, mac, secret)).transpose()?;
    let (pin, security) = match new.mode {
        Some(mode) => {
            let request = SecurityRequest { mode: Some(mode), reset: false, new_pin: mode == SecurityMode::Pin };
            let (pin, update) = security_update(state, caller, mac, request)?;
            (pin, Some(update))
        }
        None => (None, None),
    };
    let detail = added_detail(&new.profiles, new.mode, secret.is_some());
    let spec = DeviceSpec { profiles: new.profiles, overrides: new.overrides, secret, security };
    let at = state.clock.now();
    blocking(state, "add_device", move |s| s.add_device(mac, &spec, at)).await?;
    audited(state, caller, Some(mac), AdminAction::DeviceAdded, detail).await;
    let details = blocking(state, "device", move |s| s.device(mac)).await?;
    Ok((details, pin))
}

/// The audit detail of a device added: its profiles, mode, whether it has a secret.
pub(crate) fn added_detail(profiles: &[String], mode: Option<SecurityMode>, secret: bool) -> String {
    let mut parts = Vec::new();
    if !profiles.is_empty() {
        parts.push(format!("profiles {}", profiles.join(", ")));
    }
    if let Some(mode) = mode {
        parts.push(format!("mode {}", mode.as_str()));
    }
    if secret {
        parts.push("with a Digest secret".to_owned());
    }
    parts.join("; ")
}

/// The audit detail of a device changed: what was replaced (never the values).
pub(crate) fn changed_detail(update: &DeviceUpdate) -> String {
    let mut parts = Vec::new();
    if let Some(profiles) = &update.profiles {
        parts.push(format!("profiles set to [{}]", profiles.join(", ")));
    }
    if let Some(overrides) = &update.overrides {
        parts.push(format!("{} overrides set", overrides.len()));
    }
    parts.join("; ")
}

/// `GET /api/v1/devices/{mac}`: with the mobility user logged on at it, if any
/// (`mobility-user`: its number and since when; the inventory keeps the device's own
/// number).
pub(crate) async fn show(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, ApiError> {
    let found = blocking(state, "device", move |s| {
        let Some(details) = s.device(mac)? else { return Ok(None) };
        let here = s.mobility_context(mac, &dls_engine::MobilityQuery::default())?.here;
        Ok(Some((details, here.map(|h| (h.user.number, h.user.since)))))
    })
    .await?;
    let Some((mut details, user)) = found else {
        return Err(error(StatusCode::NOT_FOUND, format!("device {mac} not found")));
    };
    redact(caller, details.overrides.iter_mut().chain(&mut details.inventory));
    let mut body = serde_json::to_value(&details).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        let user = user.map(|(number, since)| serde_json::json!({ "number": number, "since": since }));
        obj.insert("mobility-user".into(), user.unwrap_or(serde_json::Value::Null));
    }
    Ok(json(StatusCode::OK, &body))
}

/// `PATCH /api/v1/devices/{mac}`: `{"profiles"?, "overrides"?}`
pub(crate) async fn update(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let update: DeviceUpdate = body_json(state, req).await?;
    change(state, caller, mac, update).await?;
    let details = blocking(state, "device", move |s| s.device(mac)).await?;
    Ok(json(StatusCode::OK, &details))
}

/// Changes a device's profiles or overrides (the API's `PATCH /api/v1/devices/{mac}` and
/// the console's forms): checked, stored and audited.
pub(crate) async fn change(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    update: DeviceUpdate,
) -> Result<(), ApiError> {
    if let Some(overrides) = &update.overrides {
        check_items("overrides", overrides)?;
    }
    let detail = changed_detail(&update);
    blocking(state, "update_device", move |s| s.update_device(mac, &update)).await?;
    audited(state, caller, Some(mac), AdminAction::DeviceChanged, detail).await;
    Ok(())
}

/// `DELETE /api/v1/devices/{mac}`
pub(crate) async fn delete(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, ApiError> {
    forget(state, caller, mac).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": mac })))
}

/// Forgets a device (the API's `DELETE /api/v1/devices/{mac}` and the console's button),
/// audited; `404` when there is no such device.
pub(crate) async fn forget(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<(), ApiError> {
    if blocking(state, "delete_device", move |s| s.delete_device(mac)).await? {
        audited(state, caller, Some(mac), AdminAction::DeviceDeleted, "").await;
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("device {mac} not found")))
    }
}

/// `GET /api/v1/devices/{mac}/desired`
pub(crate) async fn desired(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, ApiError> {
    let mut desired = blocking(state, "desired", move |s| s.desired(mac)).await?;
    redact(caller, &mut desired.items);
    Ok(json(StatusCode::OK, &desired))
}
