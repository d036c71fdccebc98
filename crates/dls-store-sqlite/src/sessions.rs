//! Interaction sessions ([`SessionStore`]): one row each in `wpi_sessions`, taken with
//! `DELETE … RETURNING` (one statement in the writer's transaction: two takers never both
//! get it), pruned by the index on `expires_at`.

use dls_engine::UnixTime;
use dls_message::MacAddr;
use dls_store::{SessionStore, StoreError, rules};
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db};

/// A time as SQLite's integer (no time the store can hold is later than `i64::MAX`).
fn secs(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

impl SessionStore for SqliteStore {
    fn put_session(&self, id: &str, mac: MacAddr, expires_at: UnixTime, bytes: &[u8]) -> Result<(), StoreError> {
        rules::check_session(id, bytes)?;
        self.write(|tx| {
            tx.cached(
                "INSERT INTO wpi_sessions (id, mac, expires_at, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET mac = excluded.mac, expires_at = excluded.expires_at,
                                                body = excluded.body",
            )
            .db()?
            .execute(params![id, mac.to_string(), secs(expires_at), bytes])
            .db()?;
            Ok(())
        })
    }

    fn take_session(&self, id: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        if rules::check_session_id(id).is_err() {
            return Ok(None);
        }
        let taken: Option<(i64, Vec<u8>)> = self.write(|tx| {
            tx.cached("DELETE FROM wpi_sessions WHERE id = ?1 RETURNING expires_at, body")
                .db()?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .db()
        })?;
        Ok(taken.filter(|(expires_at, _)| *expires_at > secs(now)).map(|(_, body)| body))
    }

    fn prune_sessions(&self, now: UnixTime, keep_at_most: usize) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep_at_most).unwrap_or(i64::MAX);
        self.write(|tx| {
            let expired =
                tx.cached("DELETE FROM wpi_sessions WHERE expires_at <= ?1").db()?.execute([secs(now)]).db()?;
            let over = tx
                .cached(
                    "DELETE FROM wpi_sessions WHERE id IN
                     (SELECT id FROM wpi_sessions ORDER BY expires_at DESC, id LIMIT -1 OFFSET ?1)",
                )
                .db()?
                .execute([keep])
                .db()?;
            Ok(u64::try_from(expired.saturating_add(over)).unwrap_or(u64::MAX))
        })
    }
}
