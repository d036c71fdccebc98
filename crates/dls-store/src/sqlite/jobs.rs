//! Jobs and deployment files in SQLite.

use dls_engine::{Job, JobId, JobKind, JobState, JobUpdate, UnixTime};
use std::net::IpAddr;

use dls_message::MacAddr;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Cached, Db, count_from_sql, items_from_json, items_to_json, mac_from_sql, opt_time_from_sql};
use super::{decode_stored, query_all, time_from_sql, time_to_sql};
use crate::StoreError;
use crate::model::{ContactTarget, FileRecord, JobFilter, JobRecord, NewFile, NewJob};

/// The most open jobs given to the engine per message.
const OPEN_JOBS_LOADED: i64 = 256;
/// The most jobs one listing returns.
const MAX_JOB_LIST: usize = 10_000;
/// The most jobs queued in one call.
pub(super) const MAX_JOBS_ADDED: usize = 100_000;
/// The longest file name or type.
const MAX_FILE_NAME: usize = 255;

const OPEN: &str = "state IN ('queued', 'sent', 'busy-retry')";
/// Deletes at most `?2` jobs that are over and last changed before `?1`, by the partial
/// index `jobs_over_by_time` (its terms are the index's). Named: left to itself, the planner
/// prefers `jobs_by_state`, which reads every job that is over.
pub(super) const PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_over_by_time
     WHERE state IN ('done', 'failed', 'cancelled') AND updated_at < ?1 LIMIT ?2)";
/// Jobs the DLS still has to send.
const PENDING: &str = "(state IN ('queued', 'busy-retry') OR (state = 'sent' AND accepted = 0))";

fn state_from_sql(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("job state {s:?}")))
}

fn kind_from_sql(json: &str) -> Result<JobKind, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("job: {e}")))
}

fn kind_to_sql(kind: &JobKind) -> Result<String, StoreError> {
    serde_json::to_string(kind).map_err(|e| StoreError::Invalid(format!("job: {e}")))
}

/// The open jobs of a device, oldest first, for the engine.
pub(super) fn open_jobs(conn: &Connection, mac: &str) -> Result<Vec<Job>, StoreError> {
    let rows: Vec<(i64, String, String, i64, bool)> = query_all(
        conn,
        "SELECT id, kind, state, attempts, accepted FROM jobs
         WHERE mac = ?1 AND state IN ('queued', 'sent', 'busy-retry') ORDER BY id LIMIT ?2",
        params![mac, OPEN_JOBS_LOADED],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    rows.into_iter()
        .map(|(id, kind, state, attempts, accepted)| {
            Ok(Job {
                id,
                kind: kind_from_sql(&kind)?,
                state: state_from_sql(&state)?,
                attempts: count_from_sql(attempts)?,
                accepted,
            })
        })
        .collect()
}

/// A job's change, unless the job is over already (an administrator cancelled it
/// meanwhile: the cancellation stands).
pub(super) fn apply_update(conn: &Connection, mac: &str, u: &JobUpdate) -> Result<(), StoreError> {
    let items = u.items.as_deref().map(items_to_json).transpose()?;
    conn.cached(
        "UPDATE jobs SET state = ?1, updated_at = ?2, attempts = attempts + ?3, accepted = ?4,
             answer = COALESCE(?5, answer), items = COALESCE(?6, items)
         WHERE id = ?7 AND mac = ?8 AND state IN ('queued', 'sent', 'busy-retry')",
    )
    .db()?
    .execute(params![
        u.state.as_str(),
        time_to_sql(u.at)?,
        i64::from(u.unanswered),
        u.accepted,
        u.answer,
        items,
        u.id,
        mac
    ])
    .db()?;
    Ok(())
}

const JOB_COLUMNS: &str =
    "id, mac, kind, state, created_at, updated_at, attempts, accepted, answer, items, contact, contact_at";

type JobRow =
    (i64, String, String, String, i64, i64, i64, bool, Option<String>, Option<String>, Option<String>, Option<i64>);

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    JobRow::try_from(r)
}

fn job_from_row(row: JobRow) -> Result<JobRecord, StoreError> {
    let (id, mac, kind, state, created, updated, attempts, accepted, answer, items, contact, contact_at) = row;
    Ok(JobRecord {
        id,
        mac: mac_from_sql(&mac)?,
        job: kind_from_sql(&kind)?,
        state: state_from_sql(&state)?,
        created_at: time_from_sql(created)?,
        updated_at: time_from_sql(updated)?,
        attempts: count_from_sql(attempts)?,
        accepted,
        answer,
        items: items.as_deref().map(items_from_json).transpose()?.unwrap_or_default(),
        contact,
        contact_at: opt_time_from_sql(contact_at)?,
    })
}

pub(super) fn job(conn: &Connection, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    let row = conn
        .cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .db()?
        .query_row([id], job_row)
        .optional()
        .db()?;
    row.map(job_from_row).transpose()
}

pub(super) fn add_jobs(conn: &Connection, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
    if jobs.len() > MAX_JOBS_ADDED {
        return Err(StoreError::Invalid(format!("at most {MAX_JOBS_ADDED} jobs at once")));
    }
    let at = time_to_sql(at)?;
    let mut added = Vec::with_capacity(jobs.len());
    for j in jobs {
        let mac = j.mac.to_string();
        if !super::device_exists(conn, &mac)? {
            return Err(StoreError::NotFound { what: format!("device {}", j.mac) });
        }
        let file = j.kind.file();
        if let Some(f) = file {
            let exists: Option<i64> = conn
                .cached("SELECT id FROM files WHERE id = ?1")
                .db()?
                .query_row([f.file_id], |r| r.get(0))
                .optional()
                .db()?;
            if exists.is_none() {
                return Err(StoreError::NotFound { what: format!("file {}", f.file_id) });
            }
        }
        conn.cached(
            "INSERT INTO jobs (mac, kind, state, created_at, updated_at, token, file_id)
             VALUES (?1, ?2, 'queued', ?3, ?3, ?4, ?5)",
        )
        .db()?
        .execute(params![mac, kind_to_sql(&j.kind)?, at, file.map(|f| f.token.as_str()), file.map(|f| f.file_id)])
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                StoreError::Conflict { what: "a job with that token".into() }
            }
            _ => StoreError::Database(e),
        })?;
        let id = conn.last_insert_rowid();
        added.push(job(conn, id)?.ok_or_else(|| StoreError::Corrupt("job just added".into()))?);
    }
    Ok(added)
}

pub(super) fn jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
    let limit = i64::try_from(filter.limit.unwrap_or(1000).min(MAX_JOB_LIST)).unwrap_or(1000);
    let mac = filter.mac.map(|m| m.to_string());
    let state = filter.state.map(JobState::as_str);
    let rows = query_all(
        conn,
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR mac = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY id DESC LIMIT ?3"
        ),
        params![mac, state, limit],
        job_row,
    )?;
    rows.into_iter().map(job_from_row).collect()
}

pub(super) fn cancel_job(conn: &Connection, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
    let Some(current) = job(conn, id)? else {
        return Err(StoreError::NotFound { what: format!("job {id}") });
    };
    if current.state.is_final() {
        return Err(StoreError::Conflict { what: format!("job {id} is {} already; it", current.state) });
    }
    conn.cached(
        "UPDATE jobs SET state = 'cancelled', updated_at = ?2, answer = 'cancelled by an administrator' WHERE id = ?1",
    )
    .db()?
    .execute(params![id, time_to_sql(at)?])
    .db()?;
    job(conn, id)?.ok_or_else(|| StoreError::Corrupt("job just cancelled".into()))
}

pub(super) fn has_pending_jobs(conn: &Connection, mac: MacAddr) -> Result<bool, StoreError> {
    let found: Option<i64> = conn
        .cached(&format!("SELECT 1 FROM jobs WHERE mac = ?1 AND {OPEN} AND {PENDING} LIMIT 1"))
        .db()?
        .query_row([mac.to_string()], |r| r.get(0))
        .optional()
        .db()?;
    Ok(found.is_some())
}

pub(super) fn devices_with_pending_jobs(conn: &Connection, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let macs: Vec<String> = query_all(
        conn,
        &format!("SELECT mac FROM jobs WHERE {OPEN} AND {PENDING} GROUP BY mac ORDER BY MIN(id) LIMIT ?1"),
        [limit],
        |r| r.get(0),
    )?;
    macs.iter().map(|m| mac_from_sql(m)).collect()
}

pub(super) fn contact_target(
    conn: &Connection,
    mac: MacAddr,
    always: bool,
) -> Result<Option<ContactTarget>, StoreError> {
    if !always && !has_pending_jobs(conn, mac)? {
        return Ok(None);
    }
    let mac = mac.to_string();
    let mut stmt = conn
        .cached("SELECT i.items, d.last_address FROM inventories i JOIN devices d ON d.mac = i.mac WHERE i.mac = ?1")
        .db()?;
    let mut rows = stmt.query([&mac]).db()?;
    let Some(row) = rows.next().db()? else { return Ok(None) };
    let caller: Option<String> = row.get(1).db()?;
    let caller = caller
        .map(|a| a.parse::<IpAddr>())
        .transpose()
        .map_err(|_| StoreError::Corrupt(format!("the last address of device {mac} is not an IP address")))?;
    let uri = decode_stored(row.get_ref(0).db()?, &mac)?
        .into_iter()
        .find(|i| i.name == "contact-me-uri" && i.index.is_none())
        .map(|i| i.value.trim().to_owned())
        .filter(|v| !v.is_empty());
    Ok(uri.map(|uri| ContactTarget::new(uri, caller)))
}

pub(super) fn record_contact(conn: &Connection, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
    conn.cached(&format!("UPDATE jobs SET contact = ?2, contact_at = ?3 WHERE mac = ?1 AND {OPEN} AND {PENDING}"))
        .db()?
        .execute(params![mac.to_string(), result, time_to_sql(at)?])
        .db()?;
    Ok(())
}

const FILE_COLUMNS: &str = "id, name, file_type, size, sha256, device_types, software_type, software_version, added_at";

type FileRow = (i64, String, String, i64, String, String, Option<String>, Option<String>, i64);

fn file_row(r: &Row<'_>) -> rusqlite::Result<FileRow> {
    FileRow::try_from(r)
}

fn file_from_row(row: FileRow) -> Result<FileRecord, StoreError> {
    let (id, name, file_type, size, sha256, device_types, software_type, software_version, added_at) = row;
    Ok(FileRecord {
        id,
        file: NewFile {
            name,
            file_type,
            size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("file size {size}")))?,
            sha256,
            device_types: serde_json::from_str(&device_types)
                .map_err(|e| StoreError::Corrupt(format!("file device types: {e}")))?,
            software_type,
            software_version,
        },
        added_at: time_from_sql(added_at)?,
    })
}

pub(super) fn file(conn: &Connection, id: i64) -> Result<Option<FileRecord>, StoreError> {
    let row = conn
        .cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"))
        .db()?
        .query_row([id], file_row)
        .optional()
        .db()?;
    row.map(file_from_row).transpose()
}

fn check_file_text(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > MAX_FILE_NAME || s.chars().any(char::is_control) || s.contains('/') {
        return Err(StoreError::Invalid(format!(
            "a file's {what} must be 1 to {MAX_FILE_NAME} bytes, without control characters or '/'"
        )));
    }
    Ok(())
}

pub(super) fn add_file(conn: &Connection, f: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
    check_file_text("name", &f.name)?;
    check_file_text("type", &f.file_type)?;
    let device_types = serde_json::to_string(&f.device_types).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let size = i64::try_from(f.size).map_err(|_| StoreError::Invalid("file too large".into()))?;
    conn.cached(
        "INSERT INTO files (name, file_type, size, sha256, device_types, software_type, software_version, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute(params![
        f.name,
        f.file_type,
        size,
        f.sha256,
        device_types,
        f.software_type,
        f.software_version,
        time_to_sql(at)?
    ])
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::Conflict { what: format!("a {} file named {:?}", f.file_type, f.name) }
        }
        _ => StoreError::Database(e),
    })?;
    file(conn, conn.last_insert_rowid())?.ok_or_else(|| StoreError::Corrupt("file just added".into()))
}

pub(super) fn files(conn: &Connection) -> Result<Vec<FileRecord>, StoreError> {
    let rows = query_all(conn, &format!("SELECT {FILE_COLUMNS} FROM files ORDER BY id"), [], file_row)?;
    rows.into_iter().map(file_from_row).collect()
}

pub(super) fn delete_file(conn: &Connection, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
    let Some(record) = file(conn, id)? else { return Ok(None) };
    conn.cached(&format!(
        "UPDATE jobs SET state = 'failed', updated_at = ?2, answer = 'the file was deleted'
         WHERE file_id = ?1 AND {OPEN}"
    ))
    .db()?
    .execute(params![id, time_to_sql(at)?])
    .db()?;
    conn.cached("DELETE FROM files WHERE id = ?1").db()?.execute([id]).db()?;
    Ok(Some(record))
}

pub(super) fn download(conn: &Connection, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
    let found: Option<(i64, Option<i64>)> = conn
        .cached("SELECT id, file_id FROM jobs WHERE token = ?1 AND state = 'sent'")
        .db()?
        .query_row([token], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    let Some((id, Some(file_id))) = found else { return Ok(None) };
    match (job(conn, id)?, file(conn, file_id)?) {
        (Some(j), Some(f)) => Ok(Some((j, f))),
        _ => Ok(None),
    }
}
