//! Conversions between records and columns, and the statement helpers every module uses.
//!
//! Nothing read back can make this crate panic: a value these functions cannot understand
//! is [`StoreError::Corrupt`].

use dls_message::Item;
use dls_store::StoreError;
use rusqlite::{CachedStatement, Connection, ErrorCode, Params, Row};

pub(crate) use dls_store::columns::{
    SCOPE_GLOBAL, SCOPE_PROFILE, count_from_sql, index_from_sql, index_to_sql, items_from_json, items_to_json,
    mac_from_sql, opt_time_from_sql, outcome_from_sql, outcome_to_sql, scope_from_sql, scope_to_sql, time_from_sql,
    time_to_sql,
};

/// Maps rusqlite's errors: what it could not convert, or a damaged file, is corrupt data.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(format!("unreadable column: {e}")),
            rusqlite::Error::SqliteFailure(ref f, _)
                if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) =>
            {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::database(other),
        })
    }
}

/// An item's columns as read: name, index, value, type.
pub(crate) type ItemRow = (String, i64, String, Option<String>);

pub(crate) fn item_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(crate) fn item_from_row((name, idx, value, item_type): ItemRow) -> Result<Item, StoreError> {
    Ok(Item { name, index: index_from_sql(idx)?, status: None, value, item_type })
}

/// Every row of a query.
pub(crate) fn query_all<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.cached(sql).db()?;
    let rows = stmt.query_map(params, f).db()?;
    rows.collect::<rusqlite::Result<Vec<T>>>().db()
}

/// Statements from the connection's cache: prepared at their first use on a connection,
/// then kept (and never compiled again: see [`tune`] and the test of it).
pub(crate) trait Cached {
    fn cached(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>>;
}

impl Cached for Connection {
    fn cached(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>> {
        #[cfg(test)]
        crate::tests::used(sql);
        self.prepare_cached(sql)
    }
}

pub(crate) fn device_exists(conn: &Connection, mac: &str) -> Result<bool, StoreError> {
    conn.cached("SELECT 1 FROM devices WHERE mac = ?1").db()?.exists([mac]).db()
}
