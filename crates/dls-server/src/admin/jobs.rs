//! The admin API's jobs, deployment files and contact-me.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/api/v1/jobs` | queue `{"target": {"mac"|"macs"|"profile"|"device-type"|"all"}, "job": {"kind", …}}` |
//! | GET | `/api/v1/jobs?mac=&state=&limit=` | list jobs, newest first |
//! | GET | `/api/v1/jobs/{id}` | one job |
//! | POST | `/api/v1/jobs/{id}/cancel` | cancel a job that is not over |
//! | POST | `/api/v1/devices/{mac}/contact` | send the device a contact-me now (rate limits apply) |
//! | POST | `/api/v1/files?name=&type=&device-type=&software-type=&software-version=` | add a file (the body) |
//! | GET | `/api/v1/files` | list files |
//! | GET, DELETE | `/api/v1/files/{id}` | one file; delete it (its jobs that are not over fail) |

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use dls_engine::firmware::{self, SoftwareVersion};
use dls_engine::{FileRef, ItemKey, JobKind, JobState};
use dls_message::{Item, MacAddr};
use dls_store::{AdminAction, DeviceFilter, FileRecord, JobFilter, JobRecord, NewFile, NewJob};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, check_items, error, json, parse_mac, query, redact_job};
use super::auth::Caller;
use crate::http::Resp;

/// What the jobs part of the admin API needs besides the store.
pub(crate) struct JobsState {
    /// Sends contact-me requests.
    pub(crate) contact: crate::contact::ContactHandle,
    /// The file store (`files-dir`, by default `<data dir>/files`): a file's content at
    /// `<id>`.
    pub(crate) files_dir: PathBuf,
    /// Where this node writes uploads until they are complete: a directory of its own in
    /// the file store (`.uploads-<node-name>`), so that a node's start, which removes the
    /// uploads a crash left half-done, never touches those of another node sharing the
    /// directory; on the same file system, so that a complete upload is renamed into place.
    pub(crate) upload_dir: PathBuf,
    /// The largest file accepted.
    pub(crate) max_file_bytes: u64,
    /// The longest an upload may take in all.
    pub(crate) upload_timeout: std::time::Duration,
}

/// Which devices a job is for: exactly one of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Target {
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    macs: Vec<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
    #[serde(default)]
    all: bool,
}

/// A job as the admin asks for it.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum JobRequest {
    Read {
        #[serde(default)]
        items: Vec<ItemKey>,
    },
    Write {
        items: Vec<Item>,
    },
    Restart,
    FactoryReset,
    DeployFile {
        file: i64,
        #[serde(default)]
        priority: Option<String>,
    },
    DeployFirmware {
        file: i64,
        #[serde(default)]
        priority: Option<String>,
        /// Also to devices that run this version or a newer one.
        #[serde(default)]
        force: bool,
    },
    ReassertConfig,
}

impl JobRequest {
    /// Its kind, for the audit log.
    fn kind_name(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::Restart => "restart",
            Self::FactoryReset => "factory-reset",
            Self::DeployFile { .. } => "deploy-file",
            Self::DeployFirmware { .. } => "deploy-firmware",
            Self::ReassertConfig => "reassert-config",
        }
    }
}

/// A request to queue jobs (`POST /api/v1/jobs`'s body; the console builds one from its
/// form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddJobs {
    target: Target,
    job: JobRequest,
}

/// A device the job was not queued for, and why.
#[derive(Debug, Serialize)]
pub(crate) struct Skipped {
    pub(crate) mac: MacAddr,
    pub(crate) reason: String,
}

/// The most items one read or write job holds.
const MAX_JOB_ITEMS: usize = 10_000;

fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, message)
}

/// A fresh download token: 128 bits from the operating system's CSPRNG, hex.
fn token() -> Result<String, ApiError> {
    crate::sessions::random_id().ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))
}

fn priority(p: Option<String>) -> Result<String, ApiError> {
    match p.as_deref().unwrap_or("normal") {
        p @ ("normal" | "immediate") => Ok(p.to_owned()),
        other => Err(bad(format!("priority {other:?}: normal or immediate"))),
    }
}

/// The devices a target selects, with what is needed to decide on firmware.
async fn select(
    state: &AdminState,
    t: Target,
) -> Result<(Vec<(MacAddr, Option<String>, Option<String>)>, bool), ApiError> {
    let chosen = usize::from(t.mac.is_some())
        + usize::from(!t.macs.is_empty())
        + usize::from(t.profile.is_some())
        + usize::from(t.device_type.is_some())
        + usize::from(t.all);
    if chosen != 1 {
        return Err(bad("target: exactly one of mac, macs, profile, device-type, all"));
    }
    if t.mac.is_some() || !t.macs.is_empty() {
        let single = t.mac.is_some();
        let mut macs = Vec::new();
        for m in t.mac.iter().chain(&t.macs) {
            macs.push(parse_mac(m)?);
        }
        let found = blocking(state, "device_batch", move |s| {
            macs.into_iter()
                .map(|m| {
                    let d =
                        s.device(m)?.ok_or_else(|| dls_store::StoreError::NotFound { what: format!("device {m}") })?;
                    Ok((m, d.summary.device_type, d.summary.software_version))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        return Ok((found, single));
    }
    let filter = DeviceFilter { profile: t.profile, device_type: t.device_type, ..DeviceFilter::default() };
    let list = blocking(state, "list_devices", move |s| s.list_devices(&filter)).await?;
    Ok((list.into_iter().map(|d| (d.mac, d.device_type, d.software_version)).collect(), false))
}

/// Why a firmware image does not go to a device, if it does not.
fn firmware_skip(file: &FileRecord, device_type: Option<&str>, running: Option<&str>, force: bool) -> Option<String> {
    let f = &file.file;
    if !f.device_types.is_empty() {
        match device_type {
            None => return Some("the device has not reported its device-type".into()),
            Some(t) if !f.device_types.iter().any(|d| d.trim().eq_ignore_ascii_case(t.trim())) => {
                return Some(format!("the image is for {}, the device is {t}", f.device_types.join(", ")));
            }
            Some(_) => {}
        }
    }
    if force {
        return None;
    }
    let image = f.software_version.as_deref().and_then(SoftwareVersion::parse);
    let current = running.and_then(SoftwareVersion::parse);
    match (image, current) {
        (Some(i), Some(c)) if c >= i => Some(format!("the device runs {c}, not older than the image's {i}")),
        _ => None,
    }
}

/// `POST /api/v1/jobs`: one job per device the target selects, each contact-me'd.
pub(crate) async fn add_jobs(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let (added, skipped) = queue(state, caller, body_json(state, req).await?).await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "jobs": added, "skipped": skipped })))
}

/// Queues one job per device the target selects, each device contact-me'd, audited (the
/// API's `POST /api/v1/jobs` and the console's form): the jobs added and the devices
/// skipped (firmware they do not need or cannot take).
pub(crate) async fn queue(
    state: &AdminState,
    caller: &Caller,
    request: AddJobs,
) -> Result<(Vec<JobRecord>, Vec<Skipped>), ApiError> {
    let jobs = &state.jobs;
    let AddJobs { target, job } = request;
    // The items to write are checked before the target is: they are refused whether or not
    // any device matches.
    if let JobRequest::Write { items } = &job {
        if items.is_empty() || items.len() > MAX_JOB_ITEMS {
            return Err(bad(format!("a write job holds 1 to {MAX_JOB_ITEMS} items")));
        }
        if items.iter().any(|i| i.status.is_some()) {
            return Err(bad("items to write have no status"));
        }
        check_items("write job", items)?;
    }
    let (devices, single) = select(state, target).await?;
    let file = match &job {
        JobRequest::DeployFile { file, .. } | JobRequest::DeployFirmware { file, .. } => {
            let id = *file;
            let f = blocking(state, "file", move |s| s.file(id))
                .await?
                .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("file {id} not found")))?;
            Some(f)
        }
        _ => None,
    };
    let mut new = Vec::new();
    let mut skipped = Vec::new();
    for (mac, device_type, running) in devices {
        let kind = match &job {
            JobRequest::Read { items } if items.len() > MAX_JOB_ITEMS => return Err(bad("too many items")),
            JobRequest::Read { items } => JobKind::Read { items: items.clone() },
            JobRequest::Write { items } => JobKind::Write { items: items.clone() },
            JobRequest::Restart => JobKind::Restart,
            JobRequest::FactoryReset => JobKind::FactoryReset,
            JobRequest::ReassertConfig => JobKind::ReassertConfig,
            JobRequest::DeployFile { priority: p, .. } => {
                let f = file.as_ref().ok_or_else(|| bad("no file"))?;
                if f.file.file_type.eq_ignore_ascii_case("APP") {
                    return Err(bad("an APP file is firmware: use deploy-firmware"));
                }
                JobKind::DeployFile { file: file_ref(f, priority(p.clone())?)? }
            }
            JobRequest::DeployFirmware { priority: p, force, .. } => {
                let f = file.as_ref().ok_or_else(|| bad("no file"))?;
                if !f.file.file_type.eq_ignore_ascii_case("APP") {
                    return Err(bad(format!("file {} is a {} file, not firmware (APP)", f.id, f.file.file_type)));
                }
                let Some(version) = f.file.software_version.clone() else {
                    return Err(bad("the image's version is not known"));
                };
                if let Some(why) = firmware_skip(f, device_type.as_deref(), running.as_deref(), *force) {
                    skipped.push(Skipped { mac, reason: why });
                    continue;
                }
                JobKind::DeployFirmware {
                    file: file_ref(f, priority(p.clone())?)?,
                    sw_type: f.file.software_type.clone(),
                    sw_version: version,
                }
            }
        };
        new.push(NewJob { mac, kind });
    }
    if single && let Some(s) = skipped.first() {
        return Err(error(StatusCode::CONFLICT, format!("not queued for {}: {}", s.mac, s.reason)));
    }
    let added = if new.is_empty() {
        Vec::new()
    } else {
        let at = state.clock.now();
        blocking(state, "add_jobs", move |s| s.add_jobs(&new, at)).await?
    };
    let mut contacted = HashSet::new();
    for j in &added {
        if contacted.insert(j.mac)
            && let Err(e) = jobs.contact.request(j.mac)
        {
            warn!(mac = %j.mac, error = %e, "no contact-me for a new job");
        }
    }
    info!(jobs = added.len(), skipped = skipped.len(), "jobs queued");
    if let (Some(first), Some(last)) = (added.first(), added.last()) {
        let mac = (added.len() == 1).then_some(first.mac);
        let what = job.kind_name();
        let ids = if added.len() == 1 {
            format!("job {}", first.id)
        } else {
            format!("jobs {} to {}", first.id.min(last.id), first.id.max(last.id))
        };
        let detail = format!("{what} for {} device(s): {ids}; {} skipped", added.len(), skipped.len());
        audited(state, caller, mac, AdminAction::JobsQueued, detail).await;
    }
    Ok((added, skipped))
}

fn file_ref(f: &FileRecord, priority: String) -> Result<FileRef, ApiError> {
    Ok(FileRef {
        file_id: f.id,
        name: f.file.name.clone(),
        file_type: f.file.file_type.clone(),
        priority,
        token: token()?,
    })
}

fn job_filter(q: Option<&str>) -> Result<JobFilter, ApiError> {
    let mut f = JobFilter::default();
    for (k, v) in query(q)? {
        match k.as_str() {
            "mac" => f.mac = Some(parse_mac(&v)?),
            "state" => {
                f.state = Some(JobState::parse(&v).ok_or_else(|| {
                    let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                    bad(format!("state {v:?}: one of {}", all.join(", ")))
                })?);
            }
            "limit" => f.limit = Some(v.parse().map_err(|_| bad("limit must be a number"))?),
            "user" => {
                f.user = Some(dls_engine::mobility::normalise_number(&v).ok_or_else(|| {
                    bad(format!("user {}: a mobility user's number (its + as %2B)", dls_message::check::quoted(&v)))
                })?);
            }
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(f)
}

/// The query of a file upload.
#[derive(Default)]
struct FileQuery {
    name: Option<String>,
    file_type: Option<String>,
    device_types: Vec<String>,
    software_type: Option<String>,
    software_version: Option<String>,
}

fn file_query(query_string: Option<&str>) -> Result<FileQuery, ApiError> {
    let mut q = FileQuery::default();
    for (k, v) in query(query_string)? {
        match k.as_str() {
            "name" => q.name = Some(v),
            "type" => q.file_type = Some(v.to_ascii_uppercase()),
            "device-type" => q.device_types.push(v),
            "software-type" => q.software_type = Some(v),
            "software-version" => q.software_version = Some(v),
            other => return Err(bad(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(q)
}

/// What is recorded of an upload: the administrator's declarations checked against what
/// the image says (for firmware).
fn describe(q: FileQuery, upload: &crate::files::Upload) -> Result<NewFile, ApiError> {
    let name = q.name.ok_or_else(|| bad("name is required"))?;
    let file_type = q.file_type.ok_or_else(|| bad("type is required (APP, RINGTONE, LOGO, …)"))?;
    let mut f = NewFile {
        name,
        file_type,
        size: upload.size,
        sha256: upload.sha256_hex.clone(),
        device_types: q.device_types,
        software_type: q.software_type,
        software_version: None,
    };
    if f.file_type != "APP" {
        if q.software_version.is_some() {
            return Err(bad("software-version is for firmware (type APP)"));
        }
        return Ok(f);
    }
    let info = firmware::inspect_image(&upload.head, &f.name).map_err(|e| bad(format!("firmware image: {e}")))?;
    let declared = match q.software_version.as_deref() {
        Some(v) => {
            Some(SoftwareVersion::parse(v).ok_or_else(|| bad(format!("software-version {v:?}: not like V3 R5.12.0")))?)
        }
        None => None,
    };
    let version = match (declared, info.version) {
        (Some(d), Some(i)) if d != i => {
            return Err(bad(format!("the image says it is {i}, not {d}")));
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => return Err(bad("the image's version is not known: give software-version")),
    };
    f.software_version = Some(version.to_string());
    if !info.device_types.is_empty() {
        if !f.device_types.is_empty()
            && !f.device_types.iter().all(|d| info.device_types.iter().any(|i| i.eq_ignore_ascii_case(d)))
        {
            return Err(bad(format!("the image is for {}", info.device_types.join(", "))));
        }
        f.device_types = info.device_types;
    }
    if f.software_type.is_none() {
        f.software_type = info.software_type;
    }
    Ok(f)
}

/// A file's content in the file store.
pub(crate) fn content_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(id.to_string())
}

/// `POST /api/v1/files?name=&type=&…`: the body is the file, streamed to disk.
pub(crate) async fn add_file(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let jobs = &state.jobs;
    let q = file_query(req.uri().query())?;
    let receiving =
        crate::files::receive_upload(req.into_body(), &jobs.upload_dir, jobs.max_file_bytes, state.body_timeout);
    // Besides the idle timeout between pieces, a whole upload gets `upload-timeout-secs` at
    // most (a dropped upload removes its temporary file).
    let upload = tokio::time::timeout(jobs.upload_timeout, receiving)
        .await
        .map_err(|_| {
            let secs = jobs.upload_timeout.as_secs();
            error(StatusCode::REQUEST_TIMEOUT, format!("upload not finished within {secs} s (upload-timeout-secs)"))
        })?
        .map_err(|e| error(e.status(), e.to_string()))?;
    let temp = upload.temp_path.clone();
    let described = describe(q, &upload);
    let new = match described {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    let at = state.clock.now();
    let added = match blocking(state, "add_file", move |s| s.add_file(&new, at)).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    let dest = content_path(&jobs.files_dir, added.id);
    if let Err(e) = tokio::fs::rename(&temp, &dest).await {
        tracing::error!(error = %e, "file store: moving an upload into place failed");
        let _ = tokio::fs::remove_file(&temp).await;
        let id = added.id;
        let _ = blocking(state, "delete_file", move |s| s.delete_file(id, at)).await;
        return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "the file could not be stored"));
    }
    info!(id = added.id, name = %added.file.name, file_type = %added.file.file_type, size = added.file.size, "file added");
    let detail =
        format!("file {} {:?} ({}, {} bytes)", added.id, added.file.name, added.file.file_type, added.file.size);
    audited(state, caller, None, AdminAction::FileAdded, detail).await;
    Ok(json(StatusCode::CREATED, &added))
}

/// `GET /api/v1/jobs?mac=&state=&limit=`: newest first.
pub(crate) async fn list(state: &AdminState, caller: &Caller, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let filter = job_filter(req.uri().query())?;
    let mut jobs = blocking(state, "jobs", move |s| s.jobs(&filter)).await?;
    for job in &mut jobs {
        redact_job(caller, job);
    }
    Ok(json(StatusCode::OK, &jobs))
}

/// `GET /api/v1/jobs/{id}`
pub(crate) async fn show(state: &AdminState, caller: &Caller, id: i64) -> Result<Resp, ApiError> {
    match blocking(state, "job", move |s| s.job(id)).await? {
        Some(mut j) => {
            redact_job(caller, &mut j);
            Ok(json(StatusCode::OK, &j))
        }
        None => Err(error(StatusCode::NOT_FOUND, format!("job {id} not found"))),
    }
}

/// `POST /api/v1/jobs/{id}/cancel`: a job that is not over.
pub(crate) async fn cancel(state: &AdminState, caller: &Caller, id: i64) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &cancel_job(state, caller, id).await?))
}

/// Cancels job `id` if it is not over, audited.
pub(crate) async fn cancel_job(state: &AdminState, caller: &Caller, id: i64) -> Result<JobRecord, ApiError> {
    let at = state.clock.now();
    let job = blocking(state, "cancel_job", move |s| s.cancel_job(id, at)).await?;
    info!(id, "job cancelled");
    audited(state, caller, Some(job.mac), AdminAction::JobCancelled, format!("job {id}")).await;
    Ok(job)
}

/// `POST /api/v1/devices/{mac}/contact`: a contact-me now (rate limits apply), pending
/// jobs or not.
pub(crate) async fn contact(state: &AdminState, caller: &Caller, mac: MacAddr) -> Result<Resp, ApiError> {
    if blocking(state, "device", move |s| s.device(mac)).await?.is_none() {
        return Err(error(StatusCode::NOT_FOUND, format!("device {mac} not found")));
    }
    match state.jobs.contact.request_forced(mac) {
        Ok(()) => {
            audited(state, caller, Some(mac), AdminAction::ContactRequested, "").await;
            Ok(json(StatusCode::ACCEPTED, &serde_json::json!({ "mac": mac, "contact-me": "requested" })))
        }
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `GET /api/v1/files`
pub(crate) async fn list_files(state: &AdminState) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &blocking(state, "files", |s| s.files()).await?))
}

/// `GET /api/v1/files/{id}`
pub(crate) async fn show_file(state: &AdminState, id: i64) -> Result<Resp, ApiError> {
    match blocking(state, "file", move |s| s.file(id)).await? {
        Some(f) => Ok(json(StatusCode::OK, &f)),
        None => Err(error(StatusCode::NOT_FOUND, format!("file {id} not found"))),
    }
}

/// `DELETE /api/v1/files/{id}`: its jobs that are not over fail; downloads in progress keep
/// their open file, new ones find no job.
pub(crate) async fn delete_file(state: &AdminState, caller: &Caller, id: i64) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": remove_file(state, caller, id).await? })))
}

/// Deletes file `id` and its content, audited (its jobs that are not over fail); `404`
/// when there is none.
pub(crate) async fn remove_file(state: &AdminState, caller: &Caller, id: i64) -> Result<FileRecord, ApiError> {
    let at = state.clock.now();
    let Some(f) = blocking(state, "delete_file", move |s| s.delete_file(id, at)).await? else {
        return Err(error(StatusCode::NOT_FOUND, format!("file {id} not found")));
    };
    if let Err(e) = tokio::fs::remove_file(content_path(&state.jobs.files_dir, id)).await {
        warn!(id, error = %e, "file store: removing a deleted file's content failed");
    }
    info!(id, "file deleted");
    audited(state, caller, None, AdminAction::FileDeleted, format!("file {id} {:?}", f.file.name)).await;
    Ok(f)
}
