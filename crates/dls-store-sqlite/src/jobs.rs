//! Jobs and contact-me: queued by the admin API, run by the engine (`Change::Job`), ended
//! by an administrator (`cancel_job`) or a deleted file (`files`); ids are never reused
//! (`AUTOINCREMENT`, schema 11).

use std::net::IpAddr;

use dls_engine::{Job, JobId, JobKind, JobState, JobUpdate, UnixTime};
use dls_message::MacAddr;
use dls_store::{ContactTarget, FileRecord, JobFilter, JobRecord, JobStore, NewFile, NewJob, StoreError, rules};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::SqliteStore;
use crate::files::{self, file};
use crate::inventory::decode_stored;
use crate::sql::{
    Cached, Db, count_from_sql, device_exists, items_from_json, items_to_json, mac_from_sql, opt_time_from_sql,
    query_all, time_from_sql, time_to_sql,
};

/// The jobs not over (the same terms as [`rules::jobs::file_deleted`] and `JobState::is_final`).
const OPEN: &str = "state IN ('queued', 'sent', 'busy-retry')";
/// Deletes at most `?2` jobs that are over and last changed before `?1`, by the partial
/// index `jobs_over_by_time` (its terms are the index's). Named: left to itself, the planner
/// prefers `jobs_by_state`, which reads every job that is over.
pub(crate) const PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_over_by_time
     WHERE state IN ('done', 'failed', 'cancelled') AND updated_at < ?1 LIMIT ?2)";
/// Jobs the DLS still has to send ([`rules::jobs::is_pending`]).
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
pub(crate) fn open_jobs(conn: &Connection, mac: &str) -> Result<Vec<Job>, StoreError> {
    let rows: Vec<(i64, String, String, i64, bool)> = query_all(
        conn,
        "SELECT id, kind, state, attempts, accepted FROM jobs
         WHERE mac = ?1 AND state IN ('queued', 'sent', 'busy-retry') ORDER BY id LIMIT ?2",
        params![mac, i64::try_from(rules::jobs::OPEN_JOBS_LOADED).unwrap_or(i64::MAX)],
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
pub(crate) fn apply_update(conn: &Connection, mac: &str, u: &JobUpdate) -> Result<(), StoreError> {
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

pub(crate) fn job(conn: &Connection, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    let row = conn
        .cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .db()?
        .query_row([id], job_row)
        .optional()
        .db()?;
    row.map(job_from_row).transpose()
}

pub(crate) fn add_jobs(conn: &Connection, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
    rules::jobs::check_batch(jobs.len())?;
    let at = time_to_sql(at)?;
    let mut added = Vec::with_capacity(jobs.len());
    for j in jobs {
        let mac = j.mac.to_string();
        if !device_exists(conn, &mac)? {
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
            _ => StoreError::database(e),
        })?;
        let id = conn.last_insert_rowid();
        added.push(job(conn, id)?.ok_or_else(|| StoreError::Corrupt("job just added".into()))?);
    }
    Ok(added)
}

pub(crate) fn jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
    let limit = i64::try_from(rules::jobs::list_limit(filter)).unwrap_or(i64::MAX);
    let mac = filter.mac.map(|m| m.to_string());
    let state = filter.state.map(JobState::as_str);
    let rows = query_all(
        conn,
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR mac = ?1) AND (?2 IS NULL OR state = ?2)
             AND (?4 IS NULL OR (json_extract(kind, '$.kind') IN ('mobility-logon', 'mobility-logoff')
                                 AND json_extract(kind, '$.number') = ?4))
             ORDER BY id DESC LIMIT ?3"
        ),
        params![mac, state, limit, filter.user],
        job_row,
    )?;
    rows.into_iter().map(job_from_row).collect()
}

pub(crate) fn cancel_job(conn: &Connection, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
    let Some(current) = job(conn, id)? else {
        return Err(StoreError::not_found(format_args!("job {id}")));
    };
    let end = rules::jobs::cancel(&current)?;
    conn.cached("UPDATE jobs SET state = ?2, updated_at = ?3, answer = ?4 WHERE id = ?1")
        .db()?
        .execute(params![id, end.state.as_str(), time_to_sql(at)?, end.answer])
        .db()?;
    job(conn, id)?.ok_or_else(|| StoreError::Corrupt("job just cancelled".into()))
}

pub(crate) fn has_pending_jobs(conn: &Connection, mac: MacAddr) -> Result<bool, StoreError> {
    let found: Option<i64> = conn
        .cached(&format!("SELECT 1 FROM jobs WHERE mac = ?1 AND {OPEN} AND {PENDING} LIMIT 1"))
        .db()?
        .query_row([mac.to_string()], |r| r.get(0))
        .optional()
        .db()?;
    Ok(found.is_some())
}

pub(crate) fn devices_with_pending_jobs(conn: &Connection, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let macs: Vec<String> = query_all(
        conn,
        &format!("SELECT mac FROM jobs WHERE {OPEN} AND {PENDING} GROUP BY mac ORDER BY MIN(id) LIMIT ?1"),
        [limit],
        |r| r.get(0),
    )?;
    macs.iter().map(|m| mac_from_sql(m)).collect()
}

pub(crate) fn contact_target(
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

pub(crate) fn record_contact(conn: &Connection, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
    conn.cached(&format!("UPDATE jobs SET contact = ?2, contact_at = ?3 WHERE mac = ?1 AND {OPEN} AND {PENDING}"))
        .db()?
        .execute(params![mac.to_string(), result, time_to_sql(at)?])
        .db()?;
    Ok(())
}

pub(crate) fn download(conn: &Connection, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
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

impl JobStore for SqliteStore {
    fn add_jobs(&self, new: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
        self.write(|tx| add_jobs(tx, new, at))
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|tx| jobs(tx, filter))
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read(|tx| job(tx, id))
    }

    fn cancel_job(&self, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.write(|tx| cancel_job(tx, id, at))
    }

    fn has_pending_jobs(&self, mac: MacAddr) -> Result<bool, StoreError> {
        self.read(|tx| has_pending_jobs(tx, mac))
    }

    fn devices_with_pending_jobs(&self, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
        self.read(|tx| devices_with_pending_jobs(tx, limit))
    }

    fn contact_target(&self, mac: MacAddr, always: bool) -> Result<Option<ContactTarget>, StoreError> {
        self.read(|tx| contact_target(tx, mac, always))
    }

    fn record_contact(&self, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
        self.write(|tx| record_contact(tx, mac, at, result))
    }

    fn download(&self, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
        self.read(|tx| download(tx, token))
    }

    fn add_file(&self, file: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
        self.write(|tx| files::add_file(tx, file, at))
    }

    fn files(&self) -> Result<Vec<FileRecord>, StoreError> {
        self.read(files::files)
    }

    fn file(&self, id: i64) -> Result<Option<FileRecord>, StoreError> {
        self.read(|tx| file(tx, id))
    }

    fn delete_file(&self, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
        self.write(|tx| files::delete_file(tx, id, at))
    }
}
