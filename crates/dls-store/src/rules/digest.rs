//! What a backend keeps of HTTP Digest for the nodes that share it
//! ([`DigestStore`](crate::DigestStore)): the bounds of the values, of one read, and of
//! what one write prunes.

use crate::StoreError;
use crate::model::NewDigestEvent;

/// The longest nonce key or event subject, in bytes (the service's are 16 and 20 or 24).
pub const MAX_DIGEST_KEY: usize = 64;

/// The most events one [`DigestStore::digest_events`](crate::DigestStore::digest_events)
/// call returns, whatever limit is asked for.
pub const MAX_DIGEST_EVENTS: usize = 1000;

/// The most rows of each table (uses, events) one recording call deletes as it prunes: more
/// than it adds, so that recording keeps the tables bounded by what was recorded within
/// their lifetimes, and no call deletes a backlog all at once.
pub const DIGEST_PRUNE_BATCH: usize = 64;

/// A nonce key is opaque bytes, not empty nor unbounded; a count is at least 1.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_use(nonce: &[u8], nc: u32) -> Result<(), StoreError> {
    if nonce.is_empty() || nonce.len() > MAX_DIGEST_KEY {
        return Err(StoreError::Invalid(format!("a nonce key of {} bytes (1 to {MAX_DIGEST_KEY})", nonce.len())));
    }
    if nc == 0 {
        return Err(StoreError::Invalid("a nonce count of 0".into()));
    }
    Ok(())
}

/// An event's subject is opaque bytes, not empty nor unbounded; its time fits a column.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_event(event: &NewDigestEvent) -> Result<(), StoreError> {
    let n = event.subject.len();
    if n == 0 || n > MAX_DIGEST_KEY {
        return Err(StoreError::Invalid(format!("an event subject of {n} bytes (1 to {MAX_DIGEST_KEY})")));
    }
    crate::columns::time_to_sql(event.at)?;
    Ok(())
}
