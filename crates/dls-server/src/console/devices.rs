//! The devices page (search, filters, order, a page at a time by keyset on the MAC, so that
//! a page costs the same at any depth of a 100,000-device fleet; add a device) and the
//! device page (inventory, the desired configuration with what differs marked, profiles
//! and overrides, jobs, audit timeline, secure mode with its actions and the printable PIN
//! sheet, the Digest secret); operators set its profiles (in order) and overrides (a
//! secret's value never put in the page) and delete it. Every change goes through the
//! same functions as the admin API's handlers (`crate::admin::{devices, security,
//! credentials}`), audited with the console user as the actor.

use askama::Template;
use dls_accounts::Need;
use dls_engine::SecurityMode;
use dls_engine::secret_items::is_secret;
use dls_message::{Item, MacAddr};
use dls_store::{AuditFilter, DeviceFilter, DeviceSummary, DeviceUpdate, JobFilter};
use hyper::StatusCode;
use zeroize::Zeroizing;

use super::form::Form;
use super::items::{self, Row as ItemEdit};
use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, SECRET_SHOWN, blocking, query};
use crate::admin::auth::Caller;
use crate::admin::devices::{NewDevice, change, create, forget};
use crate::admin::security::{SecurityRequest, apply};
use crate::http::Resp;

/// Devices per page of the list.
pub(crate) const PAGE: usize = 50;
/// Audit records and jobs on a device's page.
const RECENT: usize = 50;

/// The list's filters as typed (shown back as they were).
#[derive(Default)]
struct ListForm {
    q: String,
    device_type: String,
    version: String,
    profile: String,
    desc: bool,
}

impl ListForm {
    /// The query string of these filters (for the next page's link).
    fn query(&self) -> form_urlencoded::Serializer<'static, String> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in
            [("q", &self.q), ("type", &self.device_type), ("version", &self.version), ("profile", &self.profile)]
        {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if self.desc {
            q.append_pair("order", "desc");
        }
        q
    }

    fn is_profile(&self, p: &str) -> bool {
        self.profile == p
    }

    fn filtered(&self) -> bool {
        !(self.q.is_empty() && self.device_type.is_empty() && self.version.is_empty() && self.profile.is_empty())
    }
}

/// A device as the list shows it.
struct Row {
    mac: String,
    e164: String,
    device_type: String,
    version: String,
    profiles: String,
    last_contact: Option<(String, String)>,
}

fn when(t: Option<dls_engine::UnixTime>) -> Option<(String, String)> {
    t.map(|t| (layout::iso(t), layout::text(t)))
}

impl Row {
    fn of(d: DeviceSummary) -> Self {
        Self {
            mac: d.mac.to_string(),
            e164: d.e164.unwrap_or_default(),
            device_type: d.device_type.unwrap_or_default(),
            version: d.software_version.unwrap_or_default(),
            profiles: d.profiles.join(", "),
            last_contact: when(d.last_contact),
        }
    }
}

/// The add form as typed, and what became of it.
#[derive(Default)]
pub(super) struct AddOutcome {
    notice: Option<String>,
    error: Option<String>,
    status: Option<StatusCode>,
    mac: String,
    e164: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    nav: Nav,
    form: ListForm,
    devices: Vec<Row>,
    profiles: Vec<String>,
    next: Option<String>,
    first: Option<String>,
    error: Option<String>,
    can_operate: bool,
    add: AddOutcome,
}

/// The filter of the list's query, or what is wrong with it.
fn filter_of(q: Option<&str>) -> (ListForm, Result<DeviceFilter, String>) {
    let mut form = ListForm::default();
    let pairs = match query(q) {
        Ok(p) => p,
        Err(e) => return (form, Err(e.message().to_owned())),
    };
    let mut after = None;
    for (k, v) in pairs {
        let v: String = v.trim().chars().take(200).collect();
        match k.as_str() {
            "q" => form.q = v,
            "type" => form.device_type = v,
            "version" => form.version = v,
            "profile" => form.profile = v,
            "order" => form.desc = v == "desc",
            "after" if !v.is_empty() => after = Some(v),
            _ => {}
        }
    }
    let Ok(after) = after.map(|a| MacAddr::parse(&a)).transpose() else {
        return (form, Err("That page does not exist (after: not a MAC address).".into()));
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let filter = DeviceFilter {
        profile: some(&form.profile),
        device_type: some(&form.device_type),
        software_version: some(&form.version),
        search: some(&form.q),
        after,
        descending: form.desc,
        limit: Some(PAGE + 1),
    };
    (form, Ok(filter))
}

/// `GET /devices?q=&type=&version=&profile=&order=&after=`
pub(super) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: Option<&str>,
    add: AddOutcome,
) -> Result<Resp, PageError> {
    let (form, filter) = filter_of(q);
    let nav = Nav::new(caller, "/devices");
    let can_operate = caller.role.may(Need::Operate);
    let (filter, error) = match filter {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e)),
    };
    let paged = filter.as_ref().is_some_and(|f| f.after.is_some());
    let (mut devices, profiles) = blocking(state, "list_devices", move |s| {
        let devices = match &filter {
            Some(f) => s.list_devices(f)?,
            None => Vec::new(),
        };
        Ok((devices, s.profiles()?))
    })
    .await?;
    let next = (devices.len() > PAGE).then(|| {
        devices.truncate(PAGE);
        let mut q = form.query();
        q.append_pair("after", &devices.last().map(|d| d.mac.to_string()).unwrap_or_default());
        format!("/devices?{}", q.finish())
    });
    let first = paged.then(|| format!("/devices?{}", form.query().finish()));
    let status = add.status.unwrap_or(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK });
    let page = DevicesPage {
        nav,
        form,
        devices: devices.into_iter().map(Row::of).collect(),
        profiles: profiles.into_iter().map(|p| p.name).collect(),
        next,
        first,
        error,
        can_operate,
        add,
    };
    Ok(render(status, &page))
}

/// `POST /devices`: `mac`, `e164` (optional: an override of the item `e164`), `profile`
/// (any number), through the same function as `POST /api/v1/devices`.
pub(super) async fn add(state: &AdminState, caller: &Caller, form: &Form) -> Result<Resp, PageError> {
    let mac = form.text("mac");
    let e164 = form.text("e164");
    let profiles: Vec<String> = form.chosen("profile").map(str::to_owned).collect();
    let overrides = if e164.is_empty() { Vec::new() } else { vec![Item::new("e164", e164.clone())] };
    let new = NewDevice { mac: mac.clone(), profiles, overrides, mode: None, secret: None };
    let outcome = match create(state, caller, new).await {
        Ok((details, _)) => AddOutcome {
            notice: Some(format!(
                "Device {} added.",
                details.map_or_else(|| mac.clone(), |d| d.summary.mac.to_string())
            )),
            ..AddOutcome::default()
        },
        Err(e) => AddOutcome {
            error: Some(e.message().to_owned()),
            status: Some(e.status()),
            mac,
            e164,
            ..AddOutcome::default()
        },
    };
    list(state, caller, None, outcome).await
}

/// One item of the configuration: what is desired, what the phone reported.
struct ConfigRow {
    name: String,
    index: String,
    desired: String,
    reported: String,
    /// `same`, `differs`, `not reported`, `write-only`.
    state: &'static str,
}

impl ConfigRow {
    fn differs(&self) -> bool {
        self.state != "same"
    }
}

/// An item as shown: a secret's value never.
struct ItemRow {
    name: String,
    index: String,
    value: String,
}

fn index_text(i: Option<u32>) -> String {
    i.map(|i| i.to_string()).unwrap_or_default()
}

fn shown(item: &Item) -> ItemRow {
    let value = if is_secret(&item.name) { SECRET_SHOWN.to_owned() } else { item.value.clone() };
    ItemRow { name: item.name.clone(), index: index_text(item.index), value }
}

/// The desired items beside the inventory, what differs marked.
fn config_rows(desired: &[Item], inventory: &[Item]) -> Vec<ConfigRow> {
    desired
        .iter()
        .map(|d| {
            let reported = inventory.iter().find(|i| i.name == d.name && i.index == d.index);
            let secret = is_secret(&d.name);
            let state = match reported {
                _ if secret => "write-only",
                None => "not reported",
                Some(r) if r.value == d.value => "same",
                Some(_) => "differs",
            };
            ConfigRow {
                name: d.name.clone(),
                index: index_text(d.index),
                desired: if secret { SECRET_SHOWN.to_owned() } else { d.value.clone() },
                reported: reported.filter(|_| !secret).map(|r| r.value.clone()).unwrap_or_default(),
                state,
            }
        })
        .collect()
}

struct JobRow {
    id: String,
    kind: String,
    state: &'static str,
    created: (String, String),
    answer: String,
}

struct AuditRow {
    at: (String, String),
    actor: String,
    kind: &'static str,
    detail: String,
}

/// What an action on the device page did.
#[derive(Default)]
pub(super) struct Outcome {
    notice: Option<String>,
    error: Option<String>,
    status: Option<StatusCode>,
    /// The overrides as typed, shown again when they were refused.
    typed_overrides: Option<Vec<ItemEdit>>,
}

impl Outcome {
    fn of<T>(result: Result<T, ApiError>, notice: impl FnOnce(T) -> String) -> Self {
        match result {
            Ok(v) => Self { notice: Some(notice(v)), ..Self::default() },
            Err(e) => Self { error: Some(e.message().to_owned()), status: Some(e.status()), ..Self::default() },
        }
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    nav: Nav,
    mac: String,
    e164: String,
    device_type: String,
    version: String,
    registered: (String, String),
    last_contact: Option<(String, String)>,
    last_reason: String,
    inventory_at: Option<(String, String)>,
    config: Vec<ConfigRow>,
    inventory: Vec<ItemRow>,
    profiles: Vec<String>,
    /// Every profile, the device's first in their order: the choice of the profiles form.
    choices: Vec<String>,
    layers: String,
    overrides: Vec<ItemRow>,
    /// The overrides' edit form (operators): as stored or as typed, then empty rows.
    rows: Vec<ItemEdit>,
    jobs: Vec<JobRow>,
    audit: Vec<AuditRow>,
    mode: &'static str,
    bootstrap: &'static str,
    pin_outstanding: bool,
    pin_issued: Option<(String, String)>,
    tan_failures: u32,
    certificate: String,
    has_secret: bool,
    modes: Vec<&'static str>,
    can_operate: bool,
    can_administer: bool,
    outcome: Outcome,
}

impl DevicePage {
    fn is_mode(&self, mode: &str) -> bool {
        self.mode == mode
    }

    fn has_profile(&self, p: &str) -> bool {
        self.profiles.iter().any(|q| q == p)
    }
}

/// The name of a job's kind (`restart`, `write`, …).
fn job_kind(job: &dls_engine::JobKind) -> String {
    serde_json::to_value(job)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// The MAC of a device page's path.
pub(super) fn parse_mac(text: &str) -> Result<MacAddr, PageError> {
    MacAddr::parse(text)
        .map_err(|_| PageError::new(StatusCode::NOT_FOUND, "There is no such device (not a MAC address)."))
}

/// `GET /devices/{mac}`, and every action's answer.
pub(super) async fn show(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    mut outcome: Outcome,
) -> Result<Resp, PageError> {
    let (details, desired, jobs, audit, has_secret, all_profiles) = blocking(state, "device", move |s| {
        let Some(details) = s.device(mac)? else { return Ok((None, None, Vec::new(), Vec::new(), false, Vec::new())) };
        let desired = s.desired(mac)?;
        let jobs = s.jobs(&JobFilter { mac: Some(mac), limit: Some(RECENT), ..JobFilter::default() })?;
        let audit = s.audit_log(&AuditFilter { mac: Some(mac), limit: Some(RECENT), ..AuditFilter::default() })?;
        let has_secret = s.device_secret(mac)?.is_some();
        let all_profiles = s.profiles()?.into_iter().map(|p| p.name).collect::<Vec<_>>();
        Ok((Some(details), Some(desired), jobs, audit, has_secret, all_profiles))
    })
    .await?;
    let (Some(d), Some(desired)) = (details, desired) else {
        return Err(PageError::new(StatusCode::NOT_FOUND, format!("There is no device {mac}.")));
    };
    let sec = &d.security;
    let can_operate = caller.role.may(Need::Operate);
    let choices = Form::profile_choices(&d.summary.profiles, all_profiles);
    let mut override_rows = match outcome.typed_overrides.take() {
        Some(typed) => typed,
        None => items::rows_of(&d.overrides),
    };
    if can_operate {
        override_rows.extend(items::blanks());
    }
    let page = DevicePage {
        nav: Nav::new(caller, "/devices"),
        mac: mac.to_string(),
        e164: d.summary.e164.clone().unwrap_or_default(),
        device_type: d.summary.device_type.clone().unwrap_or_default(),
        version: d.summary.software_version.clone().unwrap_or_default(),
        registered: (layout::iso(d.registered_at), layout::text(d.registered_at)),
        last_contact: when(d.summary.last_contact),
        last_reason: d.last_reason.clone().unwrap_or_default(),
        inventory_at: when(d.inventory_at),
        config: config_rows(&desired.items, &d.inventory),
        inventory: d.inventory.iter().map(shown).collect(),
        profiles: d.summary.profiles.clone(),
        choices,
        rows: override_rows,
        layers: desired.layers.join(" → "),
        overrides: d.overrides.iter().map(shown).collect(),
        jobs: jobs
            .iter()
            .map(|j| JobRow {
                id: j.id.to_string(),
                kind: job_kind(&j.job),
                state: j.state.as_str(),
                created: (layout::iso(j.created_at), layout::text(j.created_at)),
                answer: j.answer.clone().unwrap_or_default(),
            })
            .collect(),
        audit: audit
            .iter()
            .map(|r| AuditRow {
                at: (layout::iso(r.at), layout::text(r.at)),
                actor: r.actor.clone().unwrap_or_else(|| "(phone)".to_owned()),
                kind: r.kind.as_str(),
                detail: r.detail.clone(),
            })
            .collect(),
        mode: sec.mode.as_str(),
        bootstrap: sec.state.as_str(),
        pin_outstanding: sec.pin_outstanding,
        pin_issued: when(sec.pin_issued_at),
        tan_failures: sec.tan_failures,
        certificate: sec.certificate.clone().unwrap_or_default(),
        has_secret,
        modes: [SecurityMode::Default, SecurityMode::Nopin, SecurityMode::Pin].iter().map(|m| m.as_str()).collect(),
        can_operate,
        can_administer: caller.role.may(Need::Administer),
        outcome,
    };
    Ok(render(page.outcome.status.unwrap_or(StatusCode::OK), &page))
}

#[derive(Template)]
#[template(path = "pin_sheet.html")]
struct PinSheet {
    nav: Nav,
    mac: String,
    pin: Zeroizing<String>,
    issued: (String, String),
}

/// `POST /devices/{mac}/security`: `action` = `mode` (with `mode`), `pin` (PIN mode and a
/// new PIN: the printable PIN sheet, shown this once) or `reset`.
pub(super) async fn security(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    form: &Form,
) -> Result<Resp, PageError> {
    let request = match form.text("action").as_str() {
        "mode" => match form.text("mode").as_str() {
            "default" => SecurityRequest { mode: Some(SecurityMode::Default), reset: false, new_pin: false },
            "nopin" => SecurityRequest { mode: Some(SecurityMode::Nopin), reset: false, new_pin: false },
            "pin" => SecurityRequest { mode: Some(SecurityMode::Pin), reset: false, new_pin: false },
            _ => {
                let outcome = Outcome {
                    error: Some("Choose a mode.".into()),
                    status: Some(StatusCode::UNPROCESSABLE_ENTITY),
                    ..Outcome::default()
                };
                return show(state, caller, mac, outcome).await;
            }
        },
        "pin" => SecurityRequest { mode: Some(SecurityMode::Pin), reset: false, new_pin: true },
        "reset" => SecurityRequest { mode: None, reset: true, new_pin: false },
        _ => return Err(PageError::new(StatusCode::BAD_REQUEST, "Unknown action.")),
    };
    let what = (request.mode, request.reset);
    match apply(state, caller, mac, request).await {
        Ok(Some(pin)) => {
            let now = state.clock.now();
            let sheet = PinSheet {
                nav: Nav::new(caller, "/devices"),
                mac: mac.to_string(),
                pin,
                issued: (layout::iso(now), layout::text(now)),
            };
            Ok(render(StatusCode::OK, &sheet))
        }
        result => {
            let outcome = Outcome::of(result, |_| match what {
                (_, true) => "The device was reset: it is not bootstrapped, its certificate is revoked.".to_owned(),
                (Some(mode), _) => format!("Secure mode set to {}.", mode.as_str()),
                (None, false) => "Done.".to_owned(),
            });
            show(state, caller, mac, outcome).await
        }
    }
}

/// `POST /devices/{mac}/secret` (admin): `secret` sets it (never shown back); `clear`
/// clears it.
pub(super) async fn secret(state: &AdminState, caller: &Caller, mac: MacAddr, form: &Form) -> Result<Resp, PageError> {
    let clear = form.get("clear").is_some();
    let secret = if clear { None } else { form.secret("secret") };
    if !clear && secret.is_none() {
        let outcome = Outcome {
            error: Some("Type the secret to set, or clear it.".into()),
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            ..Outcome::default()
        };
        return show(state, caller, mac, outcome).await;
    }
    let result = crate::admin::credentials::put_secret(state, caller, mac, secret.as_deref().map(String::as_str)).await;
    let outcome = Outcome::of(result, |()| {
        if clear { "The Digest secret was cleared." } else { "The Digest secret was set." }.to_owned()
    });
    show(state, caller, mac, outcome).await
}

/// `POST /devices/{mac}/profiles`: `profile` (repeated, in order; none: no profile), and
/// `up` when a "move up" button sent it ([`Form::ordered_profiles`]).
pub(super) async fn profiles(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    form: &Form,
) -> Result<Resp, PageError> {
    let chosen = form.ordered_profiles();
    let update = DeviceUpdate { profiles: Some(chosen), overrides: None };
    let outcome = Outcome::of(change(state, caller, mac, update).await, |()| {
        "Profiles set. The phone gets the change at its next contact.".to_owned()
    });
    show(state, caller, mac, outcome).await
}

/// `POST /devices/{mac}/overrides`: the item rows (`item-name`, `item-index`,
/// `item-value`); a secret's row left empty keeps its value. Refused items: `422`, the
/// rows shown again as typed (a secret's value left out) with the row marked.
pub(super) async fn overrides(
    state: &AdminState,
    caller: &Caller,
    mac: MacAddr,
    form: &Form,
) -> Result<Resp, PageError> {
    let mut rows = items::typed_rows(form).map_err(|m| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, m))?;
    let stored = blocking(state, "device", move |s| s.device(mac)).await?.map(|d| d.overrides).unwrap_or_default();
    let result = match items::items_of(&mut rows, &stored) {
        Ok(overrides) => change(state, caller, mac, DeviceUpdate { profiles: None, overrides: Some(overrides) }).await,
        Err(message) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
    };
    let mut outcome = Outcome::of(result, |()| "Overrides saved. The phone gets them at its next contact.".to_owned());
    if outcome.error.is_some() {
        items::shown_again(&mut rows);
        outcome.typed_overrides = Some(rows);
    }
    show(state, caller, mac, outcome).await
}

/// `POST /devices/{mac}/delete`: forgets the device with its inventory, profiles,
/// overrides, jobs, certificates and Digest secret (the audit log stays); the list says so.
pub(super) async fn delete(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, PageError> {
    match forget(state, caller, mac).await {
        Ok(()) => {
            let notice = format!("Device {mac} deleted. If the phone calls again, it is registered anew.");
            list(state, caller, None, AddOutcome { notice: Some(notice), ..AddOutcome::default() }).await
        }
        Err(e) => show(state, caller, mac, Outcome::of(Err::<(), _>(e), |()| String::new())).await,
    }
}
