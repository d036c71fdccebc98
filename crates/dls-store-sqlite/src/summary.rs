//! The fleet at a glance ([`FleetSummary`], the console's dashboard): counts and
//! breakdowns in one read transaction, each by an index or one pass over `devices`.

use dls_engine::UnixTime;
use dls_store::{FleetSummary, StoreError, rules};
use rusqlite::Connection;

use crate::SqliteStore;
use crate::sql::{Cached, Db, query_all};

fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<u64, StoreError> {
    let n: i64 = conn.cached(sql).db()?.query_row(params, |r| r.get(0)).db()?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn breakdown(conn: &Connection, column: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let top = i64::try_from(FleetSummary::TOP).unwrap_or(i64::MAX);
    let sql = format!("SELECT coalesce({column}, ''), count(*) FROM devices GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?1");
    let rows: Vec<(String, i64)> = query_all(conn, &sql, [top], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.into_iter().map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))).collect())
}

pub(crate) fn fleet_summary(store: &SqliteStore, since: UnixTime) -> Result<FleetSummary, StoreError> {
    let since = i64::try_from(since.0).unwrap_or(i64::MAX);
    let refusals: Vec<String> = rules::REFUSAL_KINDS.iter().map(|k| format!("'{}'", k.as_str())).collect();
    let refusals_sql = format!("SELECT count(*) FROM audit WHERE at >= ?1 AND kind IN ({})", refusals.join(", "));
    store.read(|conn| {
        Ok(FleetSummary {
            devices: count(conn, "SELECT count(*) FROM devices", [])?,
            by_type: breakdown(conn, "device_type")?,
            by_version: breakdown(conn, "software_version")?,
            by_mode: breakdown(conn, "security_mode")?,
            contacted: count(conn, "SELECT count(*) FROM devices WHERE last_contact_at >= ?1", [since])?,
            bootstraps_pending: count(
                conn,
                "SELECT count(*) FROM devices WHERE security_mode <> 'default' AND bootstrap_state = 'not-bootstrapped'",
                [],
            )?,
            jobs_open: count(conn, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'sent', 'busy-retry')", [])?,
            jobs_failed: count(conn, "SELECT count(*) FROM jobs WHERE state = 'failed' AND updated_at >= ?1", [since])?,
            refusals: count(conn, &refusals_sql, [since])?,
        })
    })
}
