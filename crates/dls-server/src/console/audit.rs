//! The audit page: the audit log filtered by device, actor, kind and time (typed in the
//! browser's time zone: the form sends its offset), newest first, a page at a time.

use askama::Template;
use dls_store::{AdminAction, AuditFilter, AuditRecord, EventKind};
use hyper::StatusCode;

use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{blocking, query};
use crate::admin::auth::Caller;
use crate::http::Resp;

/// Records per page.
const PAGE: usize = 100;

/// The filter form as typed (shown back as it was).
#[derive(Default)]
struct FilterForm {
    mac: String,
    actor: String,
    kind: String,
    since: String,
    until: String,
    tz: String,
}

impl FilterForm {
    fn is_kind(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

/// A record as the page shows it.
struct Row {
    at: String,
    at_text: String,
    actor: String,
    mac: String,
    kind: &'static str,
    detail: String,
}

impl Row {
    fn of(r: &AuditRecord) -> Self {
        Self {
            at: layout::iso(r.at),
            at_text: layout::text(r.at),
            actor: r.actor.clone().unwrap_or_else(|| "(phone)".to_owned()),
            mac: r.mac.map(|m| m.to_string()).unwrap_or_default(),
            kind: r.kind.as_str(),
            detail: r.detail.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    form: FilterForm,
    kinds: Vec<&'static str>,
    records: Vec<Row>,
    older: Option<String>,
    error: Option<String>,
}

/// Every kind a record may have, for the filter's choice.
fn kinds() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = dls_engine::AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    all.extend(AdminAction::ALL.iter().map(|a| a.as_str()));
    all.sort_unstable();
    all
}

/// The filter of the query, or what is wrong with it (shown on the page).
fn filter_of(q: Option<&str>) -> (FilterForm, Result<AuditFilter, String>) {
    let mut form = FilterForm::default();
    let pairs = match query(q) {
        Ok(p) => p,
        Err(e) => return (form, Err(e.message().to_owned())),
    };
    let mut before = None;
    for (k, v) in pairs {
        let v: String = v.chars().take(200).collect();
        match k.as_str() {
            "mac" => form.mac = v.trim().to_owned(),
            "actor" => form.actor = v.trim().to_owned(),
            "kind" => form.kind = v,
            "since" => form.since = v,
            "until" => form.until = v,
            "tz" => form.tz = v,
            "before" => before = v.parse::<i64>().ok(),
            _ => {}
        }
    }
    let mut filter = AuditFilter { before, limit: Some(PAGE), ..AuditFilter::default() };
    let tz: i64 = form.tz.parse().unwrap_or(0);
    let problem = (|| {
        if !form.mac.is_empty() {
            filter.mac = Some(dls_message::MacAddr::parse(&form.mac).map_err(|e| format!("Device: {e}"))?);
        }
        if !form.actor.is_empty() {
            filter.actor = Some(form.actor.clone());
        }
        if !form.kind.is_empty() {
            filter.kind = Some(EventKind::parse(&form.kind).ok_or("Kind: choose one of the list")?);
        }
        if !form.since.is_empty() {
            filter.since = Some(layout::parse_local(&form.since, tz).ok_or("From: not a date and time")?);
        }
        if !form.until.is_empty() {
            filter.until = Some(layout::parse_local(&form.until, tz).ok_or("Until: not a date and time")?);
        }
        Ok::<(), String>(())
    })();
    (form, problem.map(|()| filter))
}

/// The link to the next page: the same filters, records before `last`.
fn older_link(form: &FilterForm, last: i64) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("mac", &form.mac),
        ("actor", &form.actor),
        ("kind", &form.kind),
        ("since", &form.since),
        ("until", &form.until),
        ("tz", &form.tz),
    ] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    q.append_pair("before", &last.to_string());
    format!("/audit?{}", q.finish())
}

/// `GET /audit?mac=&actor=&kind=&since=&until=&tz=&before=`
pub(super) async fn show(state: &AdminState, caller: &Caller, q: Option<&str>) -> Result<Resp, PageError> {
    let nav = Nav::new(caller, "/audit");
    let (form, filter) = filter_of(q);
    let filter = match filter {
        Ok(f) => f,
        Err(error) => {
            let page = AuditPage { nav, form, kinds: kinds(), records: Vec::new(), older: None, error: Some(error) };
            return Ok(render(StatusCode::BAD_REQUEST, &page));
        }
    };
    let records = blocking(state, "audit_log", move |s| s.audit_log(&filter)).await?;
    let older = (records.len() == PAGE).then(|| records.last().map(|r| older_link(&form, r.id))).flatten();
    let rows = records.iter().map(Row::of).collect();
    Ok(render(StatusCode::OK, &AuditPage { nav, form, kinds: kinds(), records: rows, older, error: None }))
}
