//! Deployment files (their content is kept by the caller, as `files/<id>`; ids come from a
//! sequence, never handed out twice).

use dls_engine::{JobState, UnixTime};
use dls_store::{FileRecord, NewFile, StoreError, rules};
use postgres::Row;

use crate::sql::{Tx, get, time_from_sql, time_to_sql};

const FILE_COLUMNS: &str = "id, name, file_type, size, sha256, device_types, software_type, software_version, added_at";

fn file_from_row(r: &Row) -> Result<FileRecord, StoreError> {
    let size: i64 = get(r, 3)?;
    let device_types: &str = get(r, 5)?;
    Ok(FileRecord {
        id: get(r, 0)?,
        file: NewFile {
            name: get(r, 1)?,
            file_type: get(r, 2)?,
            size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("file size {size}")))?,
            sha256: get(r, 4)?,
            device_types: serde_json::from_str(device_types)
                .map_err(|e| StoreError::Corrupt(format!("file device types: {e}")))?,
            software_type: get(r, 6)?,
            software_version: get(r, 7)?,
        },
        added_at: time_from_sql(get(r, 8)?)?,
    })
}

pub(crate) fn file(tx: &mut Tx<'_>, id: i64) -> Result<Option<FileRecord>, StoreError> {
    tx.query_opt(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1"), &[&id])?
        .as_ref()
        .map(file_from_row)
        .transpose()
}

pub(crate) fn add_file(tx: &mut Tx<'_>, f: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
    rules::jobs::check_new_file(f)?;
    let device_types = serde_json::to_string(&f.device_types).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let size = i64::try_from(f.size).map_err(|_| StoreError::Invalid("file too large".into()))?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO files (name, file_type, size, sha256, device_types, software_type, software_version, added_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {FILE_COLUMNS}"
            ),
            &[
                &f.name,
                &f.file_type,
                &size,
                &f.sha256,
                &device_types,
                &f.software_type,
                &f.software_version,
                &time_to_sql(at)?,
            ],
        )
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                StoreError::Conflict { what: format!("a {} file named {:?}", f.file_type, f.name) }
            }
            e => e,
        })?;
    file_from_row(&row)
}

pub(crate) fn files(tx: &mut Tx<'_>) -> Result<Vec<FileRecord>, StoreError> {
    tx.query(&format!("SELECT {FILE_COLUMNS} FROM files ORDER BY id"), &[])?.iter().map(file_from_row).collect()
}

/// The file's row first (which waits for the transactions queueing jobs of it, holding it
/// shared), then its jobs as committed by then: the jobs not over fail.
pub(crate) fn delete_file(tx: &mut Tx<'_>, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
    let at = time_to_sql(at)?;
    let Some(row) = tx.query_opt(&format!("DELETE FROM files WHERE id = $1 RETURNING {FILE_COLUMNS}"), &[&id])? else {
        return Ok(None);
    };
    let record = file_from_row(&row)?;
    let deploying = tx.query("SELECT id, state FROM jobs WHERE file_id = $1 ORDER BY id FOR UPDATE", &[&id])?;
    for job in &deploying {
        let (job, state): (i64, &str) = (get(job, 0)?, get(job, 1)?);
        let state = JobState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?;
        if let Some(end) = rules::jobs::file_deleted(state) {
            tx.execute(
                "UPDATE jobs SET state = $2, updated_at = $3, answer = $4 WHERE id = $1",
                &[&job, &end.state.as_str(), &at, &end.answer],
            )?;
        }
    }
    Ok(Some(record))
}
