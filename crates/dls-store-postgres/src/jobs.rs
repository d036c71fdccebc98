//! Jobs and contact-me: queued by the admin API, run by the engine (`Change::Job`), ended
//! by an administrator (`cancel_job`) or a deleted file (`files`); ids come from a
//! sequence, never handed out twice.

use std::net::IpAddr;

use dls_engine::{Job, JobId, JobKind, JobState, JobUpdate, UnixTime};
use dls_message::MacAddr;
use dls_store::{ContactTarget, FileRecord, JobFilter, JobRecord, JobStore, NewFile, NewJob, StoreError, rules};
use postgres::Row;

use crate::PostgresStore;
use crate::files::{self, file};
use crate::inventory::inventory_from_sql;
use crate::sql::{
    Tx, count_from_sql, get, int, items_from_json, items_to_json, mac_from_sql, opt_time_from_sql, time_from_sql,
    time_to_sql,
};

/// The jobs not over (the same terms as [`rules::jobs::file_deleted`] and `JobState::is_final`).
const OPEN: &str = "state IN ('queued', 'sent', 'busy-retry')";
/// Jobs the DLS still has to send ([`rules::jobs::is_pending`]).
const PENDING: &str = "(state IN ('queued', 'busy-retry') OR (state = 'sent' AND NOT accepted))";
/// Deletes at most `$2` jobs that are over and last changed before `$1` (by the partial
/// index `jobs_over_by_time`, whose terms these are).
pub(crate) const PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
     WHERE state IN ('done', 'failed', 'cancelled') AND updated_at < $1 LIMIT $2)";

pub(crate) fn state_from_sql(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("job state {s:?}")))
}

pub(crate) fn kind_from_sql(json: &str) -> Result<JobKind, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("job: {e}")))
}

fn kind_to_sql(kind: &JobKind) -> Result<String, StoreError> {
    serde_json::to_string(kind).map_err(|e| StoreError::Invalid(format!("job: {e}")))
}

/// The open jobs of a device, oldest first, for the engine.
pub(crate) fn open_jobs(tx: &mut Tx<'_>, mac: &str) -> Result<Vec<Job>, StoreError> {
    tx.query(
        "SELECT id, kind, state, attempts, accepted FROM jobs
         WHERE mac = $1 AND state IN ('queued', 'sent', 'busy-retry') ORDER BY id LIMIT $2",
        &[&mac, &int(rules::jobs::OPEN_JOBS_LOADED)],
    )?
    .iter()
    .map(|r| {
        Ok(Job {
            id: get(r, 0)?,
            kind: kind_from_sql(get(r, 1)?)?,
            state: state_from_sql(get(r, 2)?)?,
            attempts: count_from_sql(get(r, 3)?)?,
            accepted: get(r, 4)?,
        })
    })
    .collect()
}

/// A job's change, unless the job is over already (an administrator cancelled it
/// meanwhile: the cancellation stands).
pub(crate) fn apply_update(tx: &mut Tx<'_>, mac: &str, u: &JobUpdate) -> Result<(), StoreError> {
    let items = u.items.as_deref().map(items_to_json).transpose()?;
    tx.execute(
        "UPDATE jobs SET state = $1, updated_at = $2, attempts = least(attempts + $3, $9), accepted = $4,
             answer = COALESCE($5, answer), items = COALESCE($6, items)
         WHERE id = $7 AND mac = $8 AND state IN ('queued', 'sent', 'busy-retry')",
        &[
            &u.state.as_str(),
            &time_to_sql(u.at)?,
            &i64::from(u.unanswered),
            &u.accepted,
            &u.answer,
            &items,
            &u.id,
            &mac,
            &i64::from(u32::MAX),
        ],
    )?;
    Ok(())
}

const JOB_COLUMNS: &str =
    "id, mac, kind, state, created_at, updated_at, attempts, accepted, answer, items, contact, contact_at";

fn job_from_row(r: &Row) -> Result<JobRecord, StoreError> {
    let items: Option<&str> = get(r, 9)?;
    Ok(JobRecord {
        id: get(r, 0)?,
        mac: mac_from_sql(get(r, 1)?)?,
        job: kind_from_sql(get(r, 2)?)?,
        state: state_from_sql(get(r, 3)?)?,
        created_at: time_from_sql(get(r, 4)?)?,
        updated_at: time_from_sql(get(r, 5)?)?,
        attempts: count_from_sql(get(r, 6)?)?,
        accepted: get(r, 7)?,
        answer: get(r, 8)?,
        items: items.map(items_from_json).transpose()?.unwrap_or_default(),
        contact: get(r, 10)?,
        contact_at: opt_time_from_sql(get(r, 11)?)?,
    })
}

pub(crate) fn job(tx: &mut Tx<'_>, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    tx.query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"), &[&id])?
        .as_ref()
        .map(job_from_row)
        .transpose()
}

pub(crate) fn add_jobs(tx: &mut Tx<'_>, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
    rules::jobs::check_batch(jobs.len())?;
    let at = time_to_sql(at)?;
    let mut added = Vec::with_capacity(jobs.len());
    for j in jobs {
        let mac = j.mac.to_string();
        // Shared: the device is not deleted before this transaction ends.
        if !tx.exists("SELECT 1 FROM devices WHERE mac = $1 FOR SHARE", &[&mac])? {
            return Err(StoreError::NotFound { what: format!("device {}", j.mac) });
        }
        let file = j.kind.file();
        // Shared: the file is not deleted (failing its jobs) before this one is queued.
        if let Some(f) = file
            && !tx.exists("SELECT 1 FROM files WHERE id = $1 FOR SHARE", &[&f.file_id])?
        {
            return Err(StoreError::NotFound { what: format!("file {}", f.file_id) });
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO jobs (mac, kind, state, created_at, updated_at, token, file_id)
                     VALUES ($1, $2, 'queued', $3, $3, $4, $5) RETURNING {JOB_COLUMNS}"
                ),
                &[&mac, &kind_to_sql(&j.kind)?, &at, &file.map(|f| f.token.as_str()), &file.map(|f| f.file_id)],
            )
            .map_err(|e| match e {
                StoreError::Conflict { .. } => StoreError::Conflict { what: "a job with that token".into() },
                e => e,
            })?;
        added.push(job_from_row(&row)?);
    }
    Ok(added)
}

fn jobs(tx: &mut Tx<'_>, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
    let limit = int(rules::jobs::list_limit(filter));
    let mac = filter.mac.map(|m| m.to_string());
    let state = filter.state.map(JobState::as_str);
    tx.query(
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::TEXT IS NULL OR mac = $1) AND ($2::TEXT IS NULL OR state = $2)
             AND ($4::TEXT IS NULL OR (kind::jsonb ->> 'kind' IN ('mobility-logon', 'mobility-logoff')
                                       AND kind::jsonb ->> 'number' = $4))
             ORDER BY id DESC LIMIT $3"
        ),
        &[&mac, &state, &limit, &filter.user],
    )?
    .iter()
    .map(job_from_row)
    .collect()
}

fn cancel_job(tx: &mut Tx<'_>, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
    // Locked: a message's change of the job waits for this one, then finds it over.
    let Some(row) = tx.query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"), &[&id])? else {
        return Err(StoreError::not_found(format_args!("job {id}")));
    };
    let end = rules::jobs::cancel(&job_from_row(&row)?)?;
    let row = tx.query_one(
        &format!("UPDATE jobs SET state = $2, updated_at = $3, answer = $4 WHERE id = $1 RETURNING {JOB_COLUMNS}"),
        &[&id, &end.state.as_str(), &time_to_sql(at)?, &end.answer],
    )?;
    job_from_row(&row)
}

fn has_pending_jobs(tx: &mut Tx<'_>, mac: MacAddr) -> Result<bool, StoreError> {
    tx.exists(&format!("SELECT 1 FROM jobs WHERE mac = $1 AND {OPEN} AND {PENDING} LIMIT 1"), &[&mac.to_string()])
}

fn devices_with_pending_jobs(tx: &mut Tx<'_>, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
    tx.query(
        &format!("SELECT mac FROM jobs WHERE {OPEN} AND {PENDING} GROUP BY mac ORDER BY min(id) LIMIT $1"),
        &[&int(limit)],
    )?
    .iter()
    .map(|r| mac_from_sql(get(r, 0)?))
    .collect()
}

fn contact_target(tx: &mut Tx<'_>, mac: MacAddr, always: bool) -> Result<Option<ContactTarget>, StoreError> {
    if !always && !has_pending_jobs(tx, mac)? {
        return Ok(None);
    }
    let key = mac.to_string();
    let Some(row) = tx.query_opt(
        "SELECT i.items, d.last_address FROM inventories i JOIN devices d ON d.mac = i.mac WHERE i.mac = $1",
        &[&key],
    )?
    else {
        return Ok(None);
    };
    let caller: Option<&str> = get(&row, 1)?;
    let caller = caller
        .map(str::parse::<IpAddr>)
        .transpose()
        .map_err(|_| StoreError::Corrupt(format!("the last address of device {key} is not an IP address")))?;
    let uri = inventory_from_sql(get(&row, 0)?, &key)?
        .into_iter()
        .find(|i| i.name == "contact-me-uri" && i.index.is_none())
        .map(|i| i.value.trim().to_owned())
        .filter(|v| !v.is_empty());
    Ok(uri.map(|uri| ContactTarget::new(uri, caller)))
}

fn record_contact(tx: &mut Tx<'_>, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
    tx.execute(
        &format!("UPDATE jobs SET contact = $2, contact_at = $3 WHERE mac = $1 AND {OPEN} AND {PENDING}"),
        &[&mac.to_string(), &result, &time_to_sql(at)?],
    )?;
    Ok(())
}

fn download(tx: &mut Tx<'_>, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
    let Some(row) = tx.query_opt(
        &format!("SELECT {JOB_COLUMNS}, file_id FROM jobs WHERE token = $1 AND state = 'sent'"),
        &[&token],
    )?
    else {
        return Ok(None);
    };
    let Some(file_id) = get::<Option<i64>>(&row, 12)? else { return Ok(None) };
    let job = job_from_row(&row)?;
    Ok(file(tx, file_id)?.map(|f| (job, f)))
}

impl JobStore for PostgresStore {
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
