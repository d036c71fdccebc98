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
