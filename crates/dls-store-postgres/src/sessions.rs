//! Interaction sessions ([`SessionStore`]): one row each in `wpi_sessions`, shared by the
//! nodes. A session is taken with one `DELETE … RETURNING`: of two nodes taking the same
//! session at once, the row lock gives it to one, and the other's statement then finds it
//! gone. Expired rows are pruned by the index on `expires_at`. Each call is one statement
//! without a transaction around it (one round trip), run again after a lost connection:
//! an upsert, or a delete by key, has the same effect when run twice.

use dls_engine::UnixTime;
use dls_message::MacAddr;
use dls_store::{SessionStore, StoreError, rules};

use crate::PostgresStore;
use crate::sql::get;

/// A time as a `BIGINT` (no time the store can hold is later than `i64::MAX`).
fn secs(t: UnixTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

impl SessionStore for PostgresStore {
    fn put_session(&self, id: &str, mac: MacAddr, expires_at: UnixTime, bytes: &[u8]) -> Result<(), StoreError> {
        rules::check_session(id, bytes)?;
        let (mac, expires_at) = (mac.to_string(), secs(expires_at));
        self.single(|tx| {
            tx.execute(
                "INSERT INTO wpi_sessions (id, mac, expires_at, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET mac = excluded.mac, expires_at = excluded.expires_at,
                                                body = excluded.body",
                &[&id, &mac, &expires_at, &bytes],
            )?;
            Ok(())
        })
    }

    fn take_session(&self, id: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        if rules::check_session_id(id).is_err() {
            return Ok(None);
        }
        let taken = self.single(|tx| {
            let Some(row) =
                tx.query_opt("DELETE FROM wpi_sessions WHERE id = $1 RETURNING expires_at, body", &[&id])?
            else {
                return Ok(None);
            };
            Ok(Some((get::<i64>(&row, 0)?, get::<Vec<u8>>(&row, 1)?)))
        })?;
        Ok(taken.filter(|(expires_at, _)| *expires_at > secs(now)).map(|(_, body)| body))
    }

    fn prune_sessions(&self, now: UnixTime, keep_at_most: usize) -> Result<u64, StoreError> {
        let (now, keep) = (secs(now), i64::try_from(keep_at_most).unwrap_or(i64::MAX));
        // Expired sessions sort last: those past the first `keep` are over the bound or
        // expired, and the expired ones among the first are deleted too.
        self.single(|tx| {
            tx.execute(
                "DELETE FROM wpi_sessions WHERE expires_at <= $1 OR id IN
                 (SELECT id FROM wpi_sessions ORDER BY expires_at DESC, id OFFSET $2)",
                &[&now, &keep],
            )
        })
    }
}
