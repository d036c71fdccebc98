//! [`ContactStore`]: the contact-me schedule (`contact_schedule`), and the leases of
//! [`MaintenanceStore`](dls_store::MaintenanceStore) (`leases`).
//!
//! SQLite has one writer: each call is one write transaction (`BEGIN IMMEDIATE`), which
//! excludes every other writer of the file, so a claim is exclusive by itself.

use std::time::Duration;

use dls_engine::UnixTime;
use dls_message::MacAddr;
use dls_store::rules::contact::ContactPacing;
use dls_store::{ContactClaim, ContactStore, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db, count_from_sql, mac_from_sql, opt_time_from_sql, time_from_sql, time_to_sql};

/// Forgets the phones neither wanted nor claimed whose next permitted time has passed.
const FORGET: &str = "DELETE FROM contact_schedule WHERE wanted = 0 AND claimed_by IS NULL AND next_at <= ?1";

/// Claims at most `?4` due phones for `?2` until `?3`.
const CLAIM: &str = "UPDATE contact_schedule SET claimed_by = ?2, claimed_until = ?3 WHERE mac IN (
        SELECT mac FROM contact_schedule
        WHERE wanted = 1 AND next_at <= ?1 AND (claimed_until IS NULL OR claimed_until <= ?1)
        ORDER BY next_at, mac LIMIT ?4)
    RETURNING mac, forced, next_at";

/// The pacing's result for a phone, the claim of `?4` given up.
const FINISHED: &str = "INSERT INTO contact_schedule (mac, next_at, failures, wanted, forced) VALUES (?1, ?2, ?3, 1, 0)
    ON CONFLICT (mac) DO UPDATE SET next_at = excluded.next_at, failures = excluded.failures, wanted = 1, forced = 0,
        claimed_by = CASE WHEN claimed_by = ?4 THEN NULL ELSE claimed_by END,
        claimed_until = CASE WHEN claimed_by = ?4 THEN NULL ELSE claimed_until END";

/// Takes or renews a lease: a row changed only if it was free, expired or the node's.
const TRY_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?4)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3";

fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn claim_due(
    conn: &Connection,
    node: &str,
    now: UnixTime,
    limit: usize,
    lease_secs: u64,
) -> Result<Vec<ContactClaim>, StoreError> {
    let now_sql = time_to_sql(now)?;
    conn.cached(FORGET).db()?.execute([now_sql]).db()?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let until = time_to_sql(UnixTime(now.0.saturating_add(lease_secs)))?;
    let mut stmt = conn.cached(CLAIM).db()?;
    let rows = stmt
        .query_map(params![now_sql, node, until, limit_to_sql(limit)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, i64>(2)?))
        })
        .db()?;
    let mut claimed = Vec::new();
    for row in rows {
        let (mac, forced, next_at) = row.db()?;
        claimed.push((next_at, ContactClaim { mac: mac_from_sql(&mac)?, forced }));
    }
    // RETURNING gives the rows in no particular order.
    claimed.sort_by_key(|(next_at, c)| (*next_at, c.mac));
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

fn finished(
    conn: &Connection,
    mac: MacAddr,
    node: &str,
    now: UnixTime,
    success: bool,
    pacing: &ContactPacing,
) -> Result<(), StoreError> {
    let key = mac.to_string();
    let row: Option<(i64, i64)> = conn
        .cached("SELECT failures, next_at FROM contact_schedule WHERE mac = ?1")
        .db()?
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    let (failures, next_at) = match row {
        Some((failures, next_at)) => (count_from_sql(failures)?, time_from_sql(next_at)?),
        None => (0, now),
    };
    let (failures, next_at) =
        pacing.after_attempt(failures, Duration::from_secs(next_at.0), Duration::from_secs(now.0), success);
    conn.cached(FINISHED)
        .db()?
        .execute(params![key, time_to_sql(UnixTime(next_at.as_secs()))?, i64::from(failures), node])
        .db()?;
    Ok(())
}

impl ContactStore for SqliteStore {
    fn contact_want(&self, mac: MacAddr, now: UnixTime, forced: bool) -> Result<(), StoreError> {
        let now = time_to_sql(now)?;
        self.write(|tx| {
            tx.cached(
                "INSERT INTO contact_schedule (mac, next_at, wanted, forced) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (mac) DO UPDATE SET wanted = 1, forced = forced OR excluded.forced",
            )
            .db()?
            .execute(params![mac.to_string(), now, forced])
            .db()?;
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
        self.write(|tx| {
            tx.cached(
                "UPDATE contact_schedule SET wanted = 0, forced = 0,
                     claimed_by = CASE WHEN claimed_by = ?2 THEN NULL ELSE claimed_by END,
                     claimed_until = CASE WHEN claimed_by = ?2 THEN NULL ELSE claimed_until END
                 WHERE mac = ?1",
            )
            .db()?
            .execute(params![mac.to_string(), node])
            .db()?;
            Ok(())
        })
    }

    fn contact_next_due(&self) -> Result<Option<UnixTime>, StoreError> {
        self.read(|tx| {
            let at: Option<i64> = tx
                .cached("SELECT MIN(MAX(next_at, COALESCE(claimed_until, 0))) FROM contact_schedule WHERE wanted = 1")
                .db()?
                .query_row([], |r| r.get(0))
                .db()?;
            opt_time_from_sql(at)
        })
    }
}

impl SqliteStore {
    /// [`MaintenanceStore::try_lease`](dls_store::MaintenanceStore::try_lease).
    pub(crate) fn lease(&self, name: &str, node: &str, now: UnixTime, until: UnixTime) -> Result<bool, StoreError> {
        let (now, until) = (time_to_sql(now)?, time_to_sql(until)?);
        self.write(|tx| {
            let changed = tx.cached(TRY_LEASE).db()?.execute(params![name, node, now, until]).db()?;
            Ok(changed == 1)
        })
    }

    /// [`MaintenanceStore::release_lease`](dls_store::MaintenanceStore::release_lease).
    pub(crate) fn unlease(&self, name: &str, node: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2").db()?.execute(params![name, node]).db()?;
            Ok(())
        })
    }
}
