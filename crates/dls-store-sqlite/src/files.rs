//! Deployment files (their content is kept by the caller, as `files/<id>`; ids are never
//! reused: `AUTOINCREMENT`, schema 11).

use dls_engine::{JobId, JobState, UnixTime};
use dls_store::{FileRecord, NewFile, StoreError, rules};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::sql::{Cached, Db, query_all, time_from_sql, time_to_sql};

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

pub(crate) fn file(conn: &Connection, id: i64) -> Result<Option<FileRecord>, StoreError> {
    let row = conn
        .cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"))
        .db()?
        .query_row([id], file_row)
        .optional()
        .db()?;
    row.map(file_from_row).transpose()
}

pub(crate) fn add_file(conn: &Connection, f: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
    rules::jobs::check_new_file(f)?;
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
        _ => StoreError::database(e),
    })?;
    file(conn, conn.last_insert_rowid())?.ok_or_else(|| StoreError::Corrupt("file just added".into()))
}

pub(crate) fn files(conn: &Connection) -> Result<Vec<FileRecord>, StoreError> {
    let rows = query_all(conn, &format!("SELECT {FILE_COLUMNS} FROM files ORDER BY id"), [], file_row)?;
    rows.into_iter().map(file_from_row).collect()
}

pub(crate) fn delete_file(conn: &Connection, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
    let Some(record) = file(conn, id)? else { return Ok(None) };
    let deploying: Vec<(JobId, String)> =
        query_all(conn, "SELECT id, state FROM jobs WHERE file_id = ?1 ORDER BY id", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let at = time_to_sql(at)?;
    for (job, state) in deploying {
        let state = JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?;
        if let Some(end) = rules::jobs::file_deleted(state) {
            conn.cached("UPDATE jobs SET state = ?2, updated_at = ?3, answer = ?4 WHERE id = ?1")
                .db()?
                .execute(params![job, end.state.as_str(), at, end.answer])
                .db()?;
        }
    }
    conn.cached("DELETE FROM files WHERE id = ?1").db()?.execute([id]).db()?;
    Ok(Some(record))
}
