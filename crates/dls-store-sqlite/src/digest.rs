//! HTTP Digest state shared by nodes ([`DigestStore`]): the nonce counts used
//! (`digest_uses`, one row per `(nonce, nc)`, the first insert wins) and the throttle's
//! events (`digest_events`, followed by id). One node on SQLite keeps both in memory; the
//! backend implements them all the same (the conformance suite holds it to the contract),
//! for a SQLite file several processes share. SQLite's one writer commits in id order, so a
//! follower by id misses nothing; `AUTOINCREMENT` never hands an id out again, not even
//! after every event was pruned.

use dls_engine::UnixTime;
use dls_store::rules::digest::{DIGEST_PRUNE_BATCH, MAX_DIGEST_EVENTS, check_event, check_use};
use dls_store::{DigestEvent, DigestStore, NewDigestEvent, StoreError};
use rusqlite::{Connection, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db, time_from_sql, time_to_sql};

/// Deletes at most `?2` uses that expired before `?1`, by `digest_uses_by_expiry`.
pub(crate) const PRUNE_USES: &str = "DELETE FROM digest_uses WHERE rowid IN
     (SELECT rowid FROM digest_uses WHERE expires_at < ?1 LIMIT ?2)";

/// Deletes at most `?2` events from before `?1`, by `digest_events_by_time`.
pub(crate) const PRUNE_EVENTS: &str = "DELETE FROM digest_events WHERE id IN
     (SELECT id FROM digest_events WHERE at < ?1 LIMIT ?2)";

/// A bound as a column: a time past `i64` bounds nothing more than `i64::MAX`.
fn bound(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

fn batch() -> i64 {
    i64::try_from(DIGEST_PRUNE_BATCH).unwrap_or(i64::MAX)
}

/// Appends `event` and prunes the events from before `forget_before`, in the caller's
/// transaction.
fn append(tx: &Connection, event: &NewDigestEvent, forget_before: UnixTime) -> Result<(), StoreError> {
    tx.cached(PRUNE_EVENTS).db()?.execute(params![bound(forget_before), batch()]).db()?;
    tx.cached("INSERT INTO digest_events (origin, at, success, subject) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![event.origin, time_to_sql(event.at)?, event.success, event.subject])
        .db()?;
    Ok(())
}

impl DigestStore for SqliteStore {
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
        self.write(|tx| {
            tx.cached(PRUNE_USES).db()?.execute(params![time_to_sql(event.at)?, batch()]).db()?;
            let first = tx
                .cached("INSERT INTO digest_uses (nonce, nc, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .db()?
                .execute(params![nonce, nc, bound(expires_at)])
                .db()?
                == 1;
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
        let limit = i64::try_from(limit.min(MAX_DIGEST_EVENTS)).unwrap_or(0);
        self.read(|tx| {
            let mut stmt = tx
                .cached(
                    "SELECT id, origin, at, success, subject FROM digest_events
                     WHERE id > ?1 AND at >= ?2 ORDER BY id LIMIT ?3",
                )
                .db()?;
            let rows = stmt
                .query_map(params![after, bound(since), limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get(3)?, r.get(4)?))
                })
                .db()?;
            let mut events = Vec::new();
            for row in rows {
                let (id, origin, at, success, subject) = row.db()?;
                events.push(DigestEvent {
                    id,
                    event: NewDigestEvent { origin, at: time_from_sql(at)?, success, subject },
                });
            }
            Ok(events)
        })
    }
}
