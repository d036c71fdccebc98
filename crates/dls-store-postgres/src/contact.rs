//! [`ContactStore`]: the contact-me schedule (`contact_schedule`) that the nodes on one
//! database share, and the leases of [`MaintenanceStore`](dls_store::MaintenanceStore)
//! (`leases`).
//!
//! A claim is one `UPDATE` of the rows a subquery picks with `FOR UPDATE SKIP LOCKED`: two
//! nodes claiming at once lock disjoint rows (each skips what the other holds), and a row
//! the other committed a claim on meanwhile is checked again against the conditions as
//! it now stands (`READ COMMITTED` re-evaluates a locked row's newest version), so that it
//! is not claimed again while that claim stands.

use std::time::Duration;

use dls_engine::UnixTime;
use dls_message::MacAddr;
use dls_store::rules::contact::ContactPacing;
use dls_store::{ContactClaim, ContactStore, StoreError};

use crate::PostgresStore;
use crate::sql::{Tx, count_from_sql, get, int, mac_from_sql, opt_time_from_sql, time_from_sql, time_to_sql};

/// Forgets the phones neither wanted nor claimed whose next permitted time has passed.
const FORGET: &str = "DELETE FROM contact_schedule WHERE NOT wanted AND claimed_by IS NULL AND next_at <= $1";

/// Claims at most `$4` due phones for `$2` until `$3`.
const CLAIM: &str = "UPDATE contact_schedule SET claimed_by = $2, claimed_until = $3 WHERE mac IN (
        SELECT mac FROM contact_schedule
        WHERE wanted AND next_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
        ORDER BY next_at, mac LIMIT $4
        FOR UPDATE SKIP LOCKED)
    RETURNING mac, forced, next_at";

/// The pacing's result for a phone, the claim of `$4` given up.
const FINISHED: &str = "INSERT INTO contact_schedule (mac, next_at, failures, wanted, forced)
    VALUES ($1, $2, $3, TRUE, FALSE)
    ON CONFLICT (mac) DO UPDATE SET next_at = excluded.next_at, failures = excluded.failures, wanted = TRUE,
        forced = FALSE,
        claimed_by = CASE WHEN contact_schedule.claimed_by = $4 THEN NULL ELSE contact_schedule.claimed_by END,
        claimed_until = CASE WHEN contact_schedule.claimed_by = $4 THEN NULL ELSE contact_schedule.claimed_until END";

/// Takes or renews a lease: a row changed only if it was free, expired or the node's.
const TRY_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at <= $3";

fn claim_due(
    tx: &mut Tx<'_>,
    node: &str,
    now: UnixTime,
    limit: usize,
    lease_secs: u64,
) -> Result<Vec<ContactClaim>, StoreError> {
    let now_sql = time_to_sql(now)?;
    tx.execute(FORGET, &[&now_sql])?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let until = time_to_sql(UnixTime(now.0.saturating_add(lease_secs)))?;
    let node = node.to_owned();
    let rows = tx.query(CLAIM, &[&now_sql, &node, &until, &int(limit)])?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let mac = mac_from_sql(&get::<String>(row, 0)?)?;
        claimed.push((get::<i64>(row, 2)?, ContactClaim { mac, forced: get(row, 1)? }));
    }
    // RETURNING gives the rows in no particular order.
    claimed.sort_by_key(|(next_at, c)| (*next_at, c.mac));
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

fn finished(
    tx: &mut Tx<'_>,
    mac: MacAddr,
    node: &str,
    now: UnixTime,
    success: bool,
    pacing: &ContactPacing,
) -> Result<(), StoreError> {
    let key = mac.to_string();
    let row = tx.query_opt("SELECT failures, next_at FROM contact_schedule WHERE mac = $1 FOR UPDATE", &[&key])?;
    let (failures, next_at) = match row {
        Some(row) => (count_from_sql(get(&row, 0)?)?, time_from_sql(get(&row, 1)?)?),
        None => (0, now),
    };
    let (failures, next_at) =
        pacing.after_attempt(failures, Duration::from_secs(next_at.0), Duration::from_secs(now.0), success);
    let next_at = time_to_sql(UnixTime(next_at.as_secs()))?;
    let node = node.to_owned();
    tx.execute(FINISHED, &[&key, &next_at, &i64::from(failures), &node])?;
    Ok(())
}

impl ContactStore for PostgresStore {
    fn contact_want(&self, mac: MacAddr, now: UnixTime, forced: bool) -> Result<(), StoreError> {
        let (key, now) = (mac.to_string(), time_to_sql(now)?);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO contact_schedule (mac, next_at, wanted, forced) VALUES ($1, $2, TRUE, $3)
                 ON CONFLICT (mac) DO UPDATE SET wanted = TRUE, forced = contact_schedule.forced OR excluded.forced",
                &[&key, &now, &forced],
            )?;
            Ok(())
        })
    }

    fn contact_claim_due(
        &self,
        node: &str,
        now: UnixTime,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<ContactClaim>, StoreError> {
        self.write(|tx| claim_due(tx, node, now, limit, lease_secs))
    }

    fn contact_finished(
        &self,
        mac: MacAddr,
        node: &str,
        now: UnixTime,
        success: bool,
        pacing: &ContactPacing,
    ) -> Result<(), StoreError> {
        self.write(|tx| finished(tx, mac, node, now, success, pacing))
    }

    fn contact_cancel(&self, mac: MacAddr, node: &str) -> Result<(), StoreError> {
        let (key, node) = (mac.to_string(), node.to_owned());
        self.write(|tx| {
            tx.execute(
                "UPDATE contact_schedule SET wanted = FALSE, forced = FALSE,
                     claimed_by = CASE WHEN claimed_by = $2 THEN NULL ELSE claimed_by END,
                     claimed_until = CASE WHEN claimed_by = $2 THEN NULL ELSE claimed_until END
                 WHERE mac = $1",
                &[&key, &node],
            )?;
            Ok(())
        })
    }

    fn contact_next_due(&self) -> Result<Option<UnixTime>, StoreError> {
        self.read(|tx| {
            let row =
                tx.query_one("SELECT MIN(GREATEST(next_at, claimed_until)) FROM contact_schedule WHERE wanted", &[])?;
            opt_time_from_sql(get(&row, 0)?)
        })
    }
}

impl PostgresStore {
    /// [`MaintenanceStore::try_lease`](dls_store::MaintenanceStore::try_lease).
    pub(crate) fn lease(&self, name: &str, node: &str, now: UnixTime, until: UnixTime) -> Result<bool, StoreError> {
        let (name, node) = (name.to_owned(), node.to_owned());
        let (now, until) = (time_to_sql(now)?, time_to_sql(until)?);
        self.write(|tx| Ok(tx.execute(TRY_LEASE, &[&name, &node, &now, &until])? == 1))
    }

    /// [`MaintenanceStore::release_lease`](dls_store::MaintenanceStore::release_lease).
    pub(crate) fn unlease(&self, name: &str, node: &str) -> Result<(), StoreError> {
        let (name, node) = (name.to_owned(), node.to_owned());
        self.write(|tx| {
            tx.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &node])?;
            Ok(())
        })
    }
}
