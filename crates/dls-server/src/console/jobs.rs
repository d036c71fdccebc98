//! The jobs page: queue a job on a selection of devices (MACs, a profile, a device type,
//! all) through the same function as the admin API's `POST /api/v1/jobs`
//! (`crate::admin::jobs::queue`: checked, contact-me'd and audited alike); the jobs, newest
//! first, with their progress — the table is a fragment (`/jobs/table`) htmx loads again
//! every 2 s while a job shown is not over, so that states change on the page while phones
//! call in (every 30 s when all are over, to show jobs queued elsewhere without loading the
//! service for nothing); cancel one that is not over (asking first).

use askama::Template;
use dls_accounts::Need;
use dls_engine::JobState;
use dls_store::{FileRecord, JobFilter, JobRecord};
use hyper::StatusCode;

use super::form::Form;
use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::Caller;
use crate::admin::jobs as api;
use crate::http::Resp;

/// The most jobs the page lists.
const SHOWN: usize = 200;
/// The most MACs one form queues for.
const MAX_MACS: usize = 10_000;

struct JobRow {
    id: i64,
    mac: String,
    kind: &'static str,
    detail: String,
    state: &'static str,
    over: bool,
    created: (String, String),
    updated: (String, String),
    answer: String,
}

/// The jobs table and its counts (the fragment htmx reloads).
#[derive(Template)]
#[template(path = "jobs_table.html")]
struct JobsFragment {
    t: JobsTable,
}

struct JobsTable {
    jobs: Vec<JobRow>,
    counts: Vec<(&'static str, usize)>,
    can_edit: bool,
    csrf: String,
    filter: String,
    more: bool,
    /// How often htmx loads the table again, in seconds: [`POLL_BUSY_SECS`] while a job
    /// shown is not over, else [`POLL_IDLE_SECS`].
    poll_secs: u32,
}

/// The table's reload while phones are working through jobs shown.
const POLL_BUSY_SECS: u32 = 2;
/// The table's reload when every job shown is over (or none is).
const POLL_IDLE_SECS: u32 = 30;

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    nav: Nav,
    t: JobsTable,
    states: Vec<&'static str>,
    profiles: Vec<String>,
    files: Vec<(i64, String)>,
    notice: Option<String>,
    error: Option<String>,
    /// What was typed, kept when refused.
    typed: Typed,
}

#[derive(Default)]
struct Typed {
    target: String,
    macs: String,
    profile: String,
    device_type: String,
    kind: String,
}

impl JobsPage {
    fn filter_is(&self, s: &str) -> bool {
        self.t.filter == s
    }
    fn target_is(&self, s: &str) -> bool {
        self.typed.target == s || (self.typed.target.is_empty() && s == "macs")
    }
    fn kind_is(&self, s: &str) -> bool {
        self.typed.kind == s
    }
    fn profile_is(&self, s: &str) -> bool {
        self.typed.profile == s
    }
}

fn detail(j: &JobRecord) -> String {
    match &j.job {
        dls_engine::JobKind::DeployFile { file } | dls_engine::JobKind::DeployFirmware { file, .. } => {
            format!("file {} {}", file.file_id, file.name)
        }
        dls_engine::JobKind::Read { items } if !items.is_empty() => format!("{} items", items.len()),
        dls_engine::JobKind::Write { items } => format!("{} items", items.len()),
        dls_engine::JobKind::MobilityLogon { number } | dls_engine::JobKind::MobilityLogoff { number } => {
            format!("user {number}")
        }
        _ => String::new(),
    }
}

/// The state filter of the query (`state=`), or none.
fn state_filter(query: Option<&str>) -> Result<Option<JobState>, PageError> {
    let pairs = crate::admin::api::query(query)?;
    match pairs.iter().find(|(k, _)| k == "state").map(|(_, v)| v.as_str()) {
        None | Some("") => Ok(None),
        Some(v) => JobState::parse(v)
            .map(Some)
            .ok_or_else(|| PageError::new(StatusCode::BAD_REQUEST, format!("There is no job state {v:?}."))),
    }
}

async fn table(state: &AdminState, caller: &Caller, filter: Option<JobState>) -> Result<JobsTable, ApiError> {
    let f = JobFilter { state: filter, limit: Some(SHOWN + 1), ..JobFilter::default() };
    let mut jobs = blocking(state, "jobs", move |s| s.jobs(&f)).await?;
    let more = jobs.len() > SHOWN;
    jobs.truncate(SHOWN);
    let counts = JobState::ALL
        .iter()
        .map(|st| (st.as_str(), jobs.iter().filter(|j| j.state == *st).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(JobsTable {
        jobs: jobs
            .iter()
            .map(|j| JobRow {
                id: j.id,
                mac: j.mac.to_string(),
                kind: j.job.name(),
                detail: detail(j),
                state: j.state.as_str(),
                over: j.state.is_final(),
                created: (layout::iso(j.created_at), layout::text(j.created_at)),
                updated: (layout::iso(j.updated_at), layout::text(j.updated_at)),
                answer: j.answer.clone().unwrap_or_default(),
            })
            .collect(),
        counts,
        can_edit: caller.role.may(Need::Operate),
        csrf: caller.csrf().unwrap_or_default(),
        filter: filter.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        more,
        poll_secs: if jobs.iter().any(|j| !j.state.is_final()) { POLL_BUSY_SECS } else { POLL_IDLE_SECS },
    })
}

/// `GET /jobs/table?state=`: the table alone (htmx polls it).
pub(super) async fn fragment(state: &AdminState, caller: &Caller, query: Option<&str>) -> Result<Resp, PageError> {
    let filter = state_filter(query)?;
    Ok(render(StatusCode::OK, &JobsFragment { t: table(state, caller, filter).await? }))
}

/// `GET /jobs?state=`
pub(super) async fn show(state: &AdminState, caller: &Caller, query: Option<&str>) -> Result<Resp, PageError> {
    let filter = state_filter(query)?;
    page(state, caller, filter, Outcome::default()).await
}

#[derive(Default)]
struct Outcome {
    notice: Option<String>,
    error: Option<(StatusCode, String)>,
    typed: Typed,
}

async fn page(
    state: &AdminState,
    caller: &Caller,
    filter: Option<JobState>,
    outcome: Outcome,
) -> Result<Resp, PageError> {
    let table = table(state, caller, filter).await?;
    let (profiles, files): (Vec<String>, Vec<FileRecord>) = if caller.role.may(Need::Operate) {
        blocking(state, "profiles", |s| Ok((s.profiles()?.into_iter().map(|p| p.name).collect(), s.files()?))).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let status = outcome.error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = JobsPage {
        nav: Nav::new(caller, "/jobs"),
        t: table,
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        profiles,
        files: files
            .into_iter()
            .map(|f| (f.id, format!("{} ({}, {} bytes)", f.file.name, f.file.file_type, f.file.size)))
            .collect(),
        notice: outcome.notice,
        error: outcome.error.map(|(_, m)| m),
        typed: outcome.typed,
    };
    Ok(render(status, &page))
}

/// The request the form describes, as the API's body.
fn request(form: &Form, typed: &Typed) -> Result<api::AddJobs, String> {
    let target = match typed.target.as_str() {
        "macs" => {
            let macs: Vec<&str> = typed
                .macs
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .filter(|m| !m.is_empty())
                .collect();
            if macs.is_empty() {
                return Err("Devices: type at least one MAC address.".into());
            }
            if macs.len() > MAX_MACS {
                return Err(format!("Devices: at most {MAX_MACS} MAC addresses at a time."));
            }
            serde_json::json!({ "macs": macs })
        }
        "profile" if !typed.profile.is_empty() => serde_json::json!({ "profile": typed.profile }),
        "profile" => return Err("Profile: choose one.".into()),
        "device-type" if !typed.device_type.is_empty() => serde_json::json!({ "device-type": typed.device_type }),
        "device-type" => return Err("Device type: type one.".into()),
        "all" => serde_json::json!({ "all": true }),
        _ => return Err("Choose which devices the job is for.".into()),
    };
    let mut job = serde_json::json!({ "kind": typed.kind });
    if matches!(typed.kind.as_str(), "deploy-file" | "deploy-firmware") {
        let file: i64 =
            form.text("file").parse().map_err(|_| "File: choose one (add it on the files page).".to_owned())?;
        job["file"] = file.into();
        job["priority"] = if form.text("priority") == "immediate" { "immediate" } else { "normal" }.into();
        if typed.kind == "deploy-firmware" && form.get("force").is_some() {
            job["force"] = true.into();
        }
    }
    serde_json::from_value(serde_json::json!({ "target": target, "job": job })).map_err(|e| format!("The job: {e}"))
}

/// `POST /jobs`: `target` (`macs`, `profile`, `device-type`, `all`) with `macs`,
/// `profile` or `device-type`; `kind`; for deployments `file`, `priority`, `force`.
pub(super) async fn add(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let typed = Typed {
        target: form.text("target"),
        macs: form.text("macs"),
        profile: form.text("profile"),
        device_type: form.text("device-type"),
        kind: form.text("kind"),
    };
    let outcome = match request(&form, &typed) {
        Err(message) => {
            Outcome { error: Some((StatusCode::UNPROCESSABLE_ENTITY, message)), typed, ..Outcome::default() }
        }
        Ok(r) => match api::queue(state, caller, r).await {
            Ok((added, skipped)) => {
                let mut notice = match added.len() {
                    0 => "No job queued: no device matches.".to_owned(),
                    1 => format!("Job {} queued; the device is asked to call in.", added[0].id),
                    n => format!("{n} jobs queued; the devices are asked to call in."),
                };
                if !skipped.is_empty() {
                    let first = &skipped[0];
                    notice.push_str(&format!(" {} skipped (e.g. {}: {}).", skipped.len(), first.mac, first.reason));
                }
                Outcome { notice: Some(notice), ..Outcome::default() }
            }
            Err(e) => Outcome { error: Some((e.status(), e.message().to_owned())), typed, ..Outcome::default() },
        },
    };
    page(state, caller, None, outcome).await
}

/// `POST /jobs/{id}/cancel`
pub(super) async fn cancel(state: &AdminState, caller: &Caller, id: &str) -> Result<Resp, PageError> {
    let id: i64 = id.parse().map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "That is not a job."))?;
    let outcome = match api::cancel_job(state, caller, id).await {
        Ok(j) => Outcome { notice: Some(format!("Job {} for {} cancelled.", j.id, j.mac)), ..Outcome::default() },
        Err(e) => Outcome { error: Some((e.status(), e.message().to_owned())), ..Outcome::default() },
    };
    page(state, caller, None, outcome).await
}
