//! Provisioning files' HTTP Digest across the nodes of a shared store (PostgreSQL): the
//! [`SharedState`] of `dls-digest` on the store's [`DigestStore`](dls_store::DigestStore).
//!
//! Every node derives its nonce secret from `secrets.key`, which the nodes of a store share
//! (`check_node_keys` refuses a node with other keys), so a nonce one node issued verifies on
//! every other. What they must then agree on goes through the store:
//!
//! * the `(nonce, nc)` accepted, recorded with the success in one transaction: a second use,
//!   on any node, is a replay;
//! * the throttle's failures and successes, as events (the username as a keyed hash, the
//!   source address's key, the time; never a password or an `Authorization` value): a node
//!   records its own, and before each decision applies the ones the others recorded since
//!   (by id) to its own throttle.
//!
//! Bounds: one decision reads at most [`PAGES`] × [`PAGE`] events; a node further behind
//! (it was stopped, or the others record faster than it decides) reads the rest at its next
//! decisions, oldest first, and never reads events older than the throttle's horizon (they
//! no longer restrict anything; the store forgets them as it is written). The throttle's
//! memory is bounded by its capacity whatever it is given. One node's decisions read events
//! one at a time (a lock around the read), so that no event is applied twice.

use std::sync::{Arc, Mutex, PoisonError};

use dls_digest::{Attempt, LookupError, NonceId, SharedState, ThrottleEvent, ThrottleSubject};
use dls_engine::UnixTime;
use dls_store::{NewDigestEvent, Store, StoreError};

use crate::metrics::Metrics;

/// The most events one read asks for.
pub(crate) const PAGE: usize = 500;

/// The most reads one decision makes when the node is behind.
pub(crate) const PAGES: usize = 4;

/// The label the nonce secret is derived from `secrets.key` with: every node of a store has
/// the same secret, no other use of `secrets.key` the same key.
pub(crate) const NONCE_SECRET_LABEL: &str = "dls digest nonce v1";

/// The shared state of one node.
pub(crate) struct StoreDigest {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// This node's random id on the events it records (it skips them when reading).
    origin: i64,
    /// The id of the last event read.
    cursor: Mutex<i64>,
}

impl StoreDigest {
    /// The shared state of a node on `store`, with a random origin id.
    pub(crate) fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Result<Self, getrandom::Error> {
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin)?;
        Ok(Self { store, metrics, origin: i64::from_be_bytes(origin), cursor: Mutex::new(0) })
    }

    fn new_event(&self, event: &ThrottleEvent) -> NewDigestEvent {
        NewDigestEvent {
            origin: self.origin,
            at: UnixTime(event.at),
            success: event.attempt == Attempt::Succeeded,
            subject: event.subject.to_bytes(),
        }
    }
}

/// The store failed: the verifier answers `503`.
fn unavailable(e: StoreError) -> LookupError {
    LookupError::Unavailable(e.to_string())
}

impl SharedState for StoreDigest {
    fn events(&self, since: u64) -> Result<Vec<ThrottleEvent>, LookupError> {
        let mut cursor = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        // Moved only when every read succeeded: on an error nothing read is lost.
        let (mut next, mut events) = (*cursor, Vec::new());
        for _ in 0..PAGES {
            let page = self
                .metrics
                .store("digest_events", self.store.digest_events(next, UnixTime(since), PAGE))
                .map_err(unavailable)?;
            let full = page.len() == PAGE;
            for e in page {
                next = e.id;
                if e.event.origin == self.origin {
                    continue;
                }
                // A subject this version cannot read (another version's): counted against nobody.
                let Some(subject) = ThrottleSubject::from_bytes(&e.event.subject) else {
                    continue;
                };
                let attempt = if e.event.success { Attempt::Succeeded } else { Attempt::Failed };
                events.push(ThrottleEvent { at: e.event.at.0, attempt, subject });
            }
            if !full {
                break;
            }
        }
        *cursor = next;
        Ok(events)
    }

    fn record_failure(&self, event: &ThrottleEvent, forget_before: u64) -> Result<(), LookupError> {
        let recorded = self.store.record_digest_event(&self.new_event(event), UnixTime(forget_before));
        self.metrics.store("record_digest_event", recorded).map_err(unavailable)
    }

    fn record_use(
        &self,
        nonce: NonceId,
        nc: u32,
        expires_at: u64,
        event: &ThrottleEvent,
        forget_before: u64,
    ) -> Result<bool, LookupError> {
        let (event, expires_at) = (self.new_event(event), UnixTime(expires_at));
        let first = self.store.record_digest_use(&nonce.to_bytes(), nc, expires_at, &event, UnixTime(forget_before));
        self.metrics.store("record_digest_use", first).map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use dls_digest::{Throttle, ThrottleConfig};
    use dls_store::DigestStore;
    use dls_store_sqlite::SqliteStore;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn event(t: &Throttle, at: u64, attempt: Attempt) -> ThrottleEvent {
        ThrottleEvent { at, attempt, subject: t.subject(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), "001A2B3C4D5E") }
    }

    fn node(store: &Arc<SqliteStore>) -> StoreDigest {
        let store: Arc<dyn Store> = store.clone();
        StoreDigest::new(store, Arc::new(Metrics::new("test", &[]))).expect("random")
    }

    #[test]
    fn a_node_reads_the_others_events_once_and_never_its_own() {
        let store = Arc::new(SqliteStore::open_in_memory().expect("opens"));
        let (a, b) = (node(&store), node(&store));
        assert_ne!(a.origin, b.origin);
        let t = Throttle::new(ThrottleConfig::default());
        let (failure, success) = (event(&t, NOW, Attempt::Failed), event(&t, NOW + 1, Attempt::Succeeded));
        a.record_failure(&failure, 0).expect("records");
        b.record_failure(&failure, 0).expect("records");
        let nonce = NonceId { issued: NOW, seq: 7 };
        assert!(a.record_use(nonce, 1, NOW + 360, &success, 0).expect("records"));
        assert!(!b.record_use(nonce, 1, NOW + 360, &success, 0).expect("records"), "a replay, on another node");
        assert_eq!(b.events(0).expect("reads"), [failure, success], "A's, not its own");
        assert_eq!(a.events(0).expect("reads"), [failure], "B's");
        assert!(a.events(0).expect("reads").is_empty() && b.events(0).expect("reads").is_empty(), "once");
        // Events older than the horizon's start are not read.
        a.record_failure(&event(&t, NOW - 1000, Attempt::Failed), 0).expect("records");
        assert!(b.events(NOW - 10).expect("reads").is_empty());
    }

    #[test]
    fn a_node_far_behind_catches_up_a_bounded_number_at_a_time_and_skips_what_it_cannot_read() {
        let store = Arc::new(SqliteStore::open_in_memory().expect("opens"));
        let (a, b) = (node(&store), node(&store));
        let t = Throttle::new(ThrottleConfig::default());
        let many = PAGE * PAGES + 10;
        for i in 0..many {
            a.record_failure(&event(&t, NOW + u64::try_from(i).expect("small"), Attempt::Failed), 0).expect("records");
        }
        // Another version's subject: skipped, counted against nobody.
        let odd = NewDigestEvent { origin: a.origin, at: UnixTime(NOW), success: false, subject: vec![1, 2, 3] };
        store.record_digest_event(&odd, UnixTime(0)).expect("records");
        let first = b.events(0).expect("reads");
        assert_eq!(first.len(), PAGE * PAGES, "bounded");
        assert_eq!(first.first().map(|e| e.at), Some(NOW), "oldest first");
        let rest = b.events(0).expect("reads");
        assert_eq!(rest.len(), 10);
        assert_eq!(rest.last().map(|e| e.at), Some(NOW + u64::try_from(many - 1).expect("small")));
        assert!(b.events(0).expect("reads").is_empty());
    }

    /// A read that fails loses nothing: the node reads the same events at its next decision.
    #[test]
    fn a_failed_read_loses_no_event() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dls.sqlite");
        let store = Arc::new(SqliteStore::open(&path).expect("opens"));
        let (a, b) = (node(&store), node(&store));
        let t = Throttle::new(ThrottleConfig::default());
        let failure = event(&t, NOW, Attempt::Failed);
        a.record_failure(&failure, 0).expect("records");
        let outside = rusqlite::Connection::open(&path).expect("opens");
        outside.execute_batch("ALTER TABLE digest_events RENAME TO away").expect("renames");
        assert!(matches!(b.events(0), Err(LookupError::Unavailable(_))));
        assert!(matches!(a.record_failure(&failure, 0), Err(LookupError::Unavailable(_))));
        outside.execute_batch("ALTER TABLE away RENAME TO digest_events").expect("renames");
        assert_eq!(b.events(0).expect("reads"), [failure]);
    }
}
