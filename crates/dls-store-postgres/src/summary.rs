//! The fleet at a glance ([`FleetSummary`], the console's dashboard): counts and
//! breakdowns in one read transaction (one snapshot), each by an index or one pass over
//! `devices`.

use dls_engine::UnixTime;
use dls_store::{FleetSummary, StoreError, rules};

use crate::PostgresStore;
use crate::sql::{Params, Tx, get, int};

fn count(tx: &mut Tx<'_>, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let n: i64 = get(&tx.query_one(sql, params)?, 0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn breakdown(tx: &mut Tx<'_>, column: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let sql = format!(
        "SELECT coalesce({column}, '') COLLATE \"C\", count(*) FROM devices GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $1"
    );
    let rows = tx.query(&sql, &[&int(FleetSummary::TOP)])?;
    rows.iter().map(|r| Ok((get(r, 0)?, u64::try_from(get::<i64>(r, 1)?).unwrap_or(0)))).collect()
}

pub(crate) fn fleet_summary(store: &PostgresStore, since: UnixTime) -> Result<FleetSummary, StoreError> {
    let since = i64::try_from(since.0).unwrap_or(i64::MAX);
    let refusals: Vec<String> = rules::REFUSAL_KINDS.iter().map(|k| k.as_str().to_owned()).collect();
    store.read(|tx| {
        Ok(FleetSummary {
            devices: count(tx, "SELECT count(*) FROM devices", &[])?,
            by_type: breakdown(tx, "device_type")?,
            by_version: breakdown(tx, "software_version")?,
            by_mode: breakdown(tx, "security_mode")?,
            contacted: count(tx, "SELECT count(*) FROM devices WHERE last_contact_at >= $1", &[&since])?,
            bootstraps_pending: count(
                tx,
                "SELECT count(*) FROM devices WHERE security_mode <> 'default' AND bootstrap_state = 'not-bootstrapped'",
                &[],
            )?,
            jobs_open: count(tx, "SELECT count(*) FROM jobs WHERE state IN ('queued', 'sent', 'busy-retry')", &[])?,
            jobs_failed: count(tx, "SELECT count(*) FROM jobs WHERE state = 'failed' AND updated_at >= $1", &[&since])?,
            refusals: count(tx, "SELECT count(*) FROM audit WHERE at >= $1 AND kind = ANY($2)", &[&since, &refusals])?,
        })
    })
}
