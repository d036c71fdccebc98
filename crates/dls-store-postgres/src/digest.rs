//! HTTP Digest state the nodes share ([`DigestStore`]): the nonce counts used
//! (`digest_uses`: the first `INSERT … ON CONFLICT DO NOTHING` of a `(nonce, nc)` wins, on
//! whichever node; a second one waits for the first's transaction, then finds the row) and
//! the throttle's events (`digest_events`), which every node follows by id.
//!
//! An identity column hands ids out in the order transactions *ask* for them, not in the
//! order they commit: a follower that has read id 11 could later see 10 commit, and never
//! read it. So an event is appended under a transaction-scoped advisory lock
//! ([`EVENTS_LOCK`]): the next writer takes its id only after the previous one committed (a
//! transaction's locks are released after it is visible), and ids become visible in order.
//! Appends are short (one insert, a bounded delete), so the lock is held for one commit.

use dls_engine::UnixTime;
use dls_store::rules::digest::{DIGEST_PRUNE_BATCH, MAX_DIGEST_EVENTS, check_event, check_use};
use dls_store::{DigestEvent, DigestStore, NewDigestEvent, StoreError};

use crate::PostgresStore;
use crate::sql::{Tx, get, int, time_from_sql, time_to_sql};

/// The advisory lock that orders the appends of events: "DMS" and 2, beside the
/// migrations' ([`crate::schema::MIGRATION_LOCK`]) and outside the devices' namespace.
pub(crate) const EVENTS_LOCK: i64 = 0x444D_5300_0000_0002;

/// Records a use unless it is recorded, first deleting at most `$5` uses that expired
/// before `$4` (by `digest_uses_by_expiry`; never the row inserted, which expires later):
/// one row back for a first use, none for a replay.
const USE: &str = "WITH gone AS (
        DELETE FROM digest_uses WHERE ctid IN
            (SELECT ctid FROM digest_uses WHERE expires_at < $4 LIMIT $5)
    )
    INSERT INTO digest_uses (nonce, nc, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING RETURNING 1";

/// Appends an event, first deleting at most `$6` events from before `$5` (by
/// `digest_events_by_time`). Under [`EVENTS_LOCK`].
const APPEND: &str = "WITH gone AS (
        DELETE FROM digest_events WHERE id IN
            (SELECT id FROM digest_events WHERE at < $5 LIMIT $6)
    )
    INSERT INTO digest_events (origin, at, success, subject) VALUES ($1, $2, $3, $4)";

/// A bound as a column: a time past `i64` bounds nothing more than `i64::MAX`.
fn bound(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// Appends `event` in the caller's transaction, under [`EVENTS_LOCK`].
fn append(tx: &mut Tx<'_>, event: &NewDigestEvent, forget_before: UnixTime) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])?;
    let at = time_to_sql(event.at)?;
    let (before, batch) = (bound(forget_before), int(DIGEST_PRUNE_BATCH));
    tx.execute(APPEND, &[&event.origin, &at, &event.success, &event.subject, &before, &batch])?;
    Ok(())
}

impl DigestStore for PostgresStore {
    fn record_digest_use(
        &self,
        nonce: &[u8],
        nc: u32,
        expires_at: UnixTime,
        event: &NewDigestEvent,
        forget_before: UnixTime,
    ) -> Result<bool, StoreError> {
        check_use(nonce, nc)?;
        check_event(event)?;
        let (nc, expires_at, now, batch) =
            (i64::from(nc), bound(expires_at), time_to_sql(event.at)?, int(DIGEST_PRUNE_BATCH));
        self.write(|tx| {
            let first = tx.query_opt(USE, &[&nonce, &nc, &expires_at, &now, &batch])?.is_some();
            if first {
                append(tx, event, forget_before)?;
            }
            Ok(first)
        })
    }

    fn record_digest_event(&self, event: &NewDigestEvent, forget_before: UnixTime) -> Result<(), StoreError> {
        check_event(event)?;
        self.write(|tx| append(tx, event, forget_before))
    }

    fn digest_events(&self, after: i64, since: UnixTime, limit: usize) -> Result<Vec<DigestEvent>, StoreError> {
        let (since, limit) = (bound(since), int(limit.min(MAX_DIGEST_EVENTS)));
        self.read(|tx| {
            let rows = tx.query(
                "SELECT id, origin, at, success, subject FROM digest_events
                 WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3",
                &[&after, &since, &limit],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(DigestEvent {
                        id: get(row, 0)?,
                        event: NewDigestEvent {
                            origin: get(row, 1)?,
                            at: time_from_sql(get(row, 2)?)?,
                            success: get(row, 3)?,
                            subject: get(row, 4)?,
                        },
                    })
                })
                .collect()
        })
    }
}
