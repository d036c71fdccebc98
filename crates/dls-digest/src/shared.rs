//! [`SharedState`]: what the verifiers of several processes that share nonces (the nodes of
//! a cluster) must agree on, kept where they all reach it (a database).
//!
//! One [`Verifier`](crate::Verifier) keeps its replay cache and its throttle in memory. The
//! verifiers of several nodes behind one balancer share the nonce secret (a nonce one node
//! issued verifies on another), so they must also share:
//!
//! * **the nonce counts used**: a `(nonce, nc)` accepted on one node must be refused on
//!   every node ([`SharedState::record_use`], which records the first use only, atomically
//!   across the nodes);
//! * **the throttle's count**: each node counts its own failures and successes and tells the
//!   others ([`SharedState::record_failure`], and `record_use` for a success); before each
//!   decision it applies the events the others recorded since ([`SharedState::events`]) to
//!   its own [`Throttle`](crate::Throttle) with [`Throttle::apply`](crate::Throttle::apply),
//!   so that a guesser who spreads over the nodes is counted as on one.
//!
//! The verifier calls these outside its lock, at most twice per request (before its
//! throttle check, and once the digest is decided), and never for a request without
//! credentials. An `Err` is the store's own failure: the verifier answers
//! [`Outcome::Unavailable`](crate::Outcome::Unavailable) (`503`), never an accept, and
//! counts nothing against the client.

use crate::credentials::LookupError;
use crate::replay::NonceId;
use crate::throttle::ThrottleEvent;

/// The state the verifiers of several processes share: the nonce counts used and the
/// throttle's events ([`Verifier::with_shared_state`](crate::Verifier::with_shared_state)).
///
/// The verifier calls it outside its lock, and never for a request without credentials: once
/// before its throttle check ([`Self::events`]) and once when the digest is decided
/// ([`Self::record_failure`] or [`Self::record_use`]). An `Err` is the store's own failure:
/// the verifier answers [`Outcome::Unavailable`](crate::Outcome::Unavailable) (`503`), never
/// an accept, and counts nothing against the client.
pub trait SharedState: Send + Sync {
    /// The throttle events the *other* verifiers recorded since this one last asked (each
    /// once, never this verifier's own), those at or after `since` (unix seconds; older ones
    /// restrict nothing), oldest first as far as the store knows. An implementation bounds
    /// how many one call returns; the rest come with the next calls.
    fn events(&self, since: u64) -> Result<Vec<ThrottleEvent>, LookupError>;

    /// Records a failure for the other verifiers. The store may forget events from before
    /// `forget_before` (unix seconds).
    fn record_failure(&self, event: &ThrottleEvent, forget_before: u64) -> Result<(), LookupError>;

    /// Records the first use of count `nc` of `nonce` by any verifier, with the success
    /// `event`, atomically: `Ok(true)` for the first use; `Ok(false)` if it was used before
    /// (a replay: nothing is recorded). The use must be remembered at least until
    /// `expires_at` (unix seconds), after which the nonce is refused anyway; events from
    /// before `forget_before` may be forgotten.
    fn record_use(
        &self,
        nonce: NonceId,
        nc: u32,
        expires_at: u64,
        event: &ThrottleEvent,
        forget_before: u64,
    ) -> Result<bool, LookupError>;
}
