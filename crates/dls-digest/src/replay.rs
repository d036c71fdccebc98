//! `nc` replay protection: a bounded cache of the nonce counts seen per nonce.
//!
//! Each nonce in use keeps a 64-value sliding window of counts (highest seen, and a bitmap of
//! the 63 below it), so counts arriving out of order from parallel connections are each accepted
//! once. Entries are ordered by nonce age. When the cache is full, or an entry has expired, the
//! oldest entry goes, and a *floor* rises to it: every nonce at or below the floor is refused
//! as [`Replay::Unverifiable`] from then on (the client simply gets a fresh nonce). So memory is
//! bounded by the capacity and forgetting an entry never re-opens it to replay.

use std::collections::BTreeMap;

/// Identity of a nonce this server issued: issue time (unix seconds) and a sequence number
/// (counted from a random start by each verifier, so unique across the verifiers that share
/// a secret as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceId {
    /// Issue time, unix seconds.
    pub issued: u64,
    /// Sequence number.
    pub seq: u64,
}

impl NonceId {
    /// 16 bytes: `issued` then `seq`, big-endian (a key for a store of used counts).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.issued.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }
}

/// Why a nonce count is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// This (nonce, nc) pair was accepted before.
    Seen,
    /// The cache no longer knows this nonce, or `nc` is far below the highest seen: it cannot
    /// tell, so it refuses. The client should get a new nonce (`stale=true`).
    Unverifiable,
}

/// Width of the per-nonce window of out-of-order counts.
const WINDOW: u32 = 64;

#[derive(Debug, Clone, Copy)]
struct Window {
    max: u32,
    /// Bit `i` set: count `max - i` seen.
    seen: u64,
}

impl Window {
    fn record(&mut self, nc: u32) -> Result<(), Replay> {
        if nc > self.max {
            let shift = nc - self.max;
            self.seen = if shift >= WINDOW { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.max = nc;
            return Ok(());
        }
        let offset = self.max - nc;
        if offset >= WINDOW {
            return Err(Replay::Unverifiable);
        }
        let bit = 1u64 << offset;
        if self.seen & bit != 0 {
            return Err(Replay::Seen);
        }
        self.seen |= bit;
        Ok(())
    }
}

/// The bounded (nonce, nc) cache. Sans-IO: the caller passes the time.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    lifetime: u64,
    entries: BTreeMap<NonceId, Window>,
    floor: Option<NonceId>,
}

impl ReplayCache {
    /// A cache of at most `capacity` nonces (at least 1) that live `lifetime_secs`.
    pub fn new(capacity: usize, lifetime_secs: u64) -> Self {
        Self { capacity: capacity.max(1), lifetime: lifetime_secs, entries: BTreeMap::new(), floor: None }
    }

    /// Records `nc` (1 or more) for `nonce`, or says why it is refused. Call it only for
    /// requests whose digest was correct, so nobody can burn counts without the password.
    pub fn check(&mut self, nonce: NonceId, nc: u32, now: u64) -> Result<(), Replay> {
        while let Some((&oldest, _)) = self.entries.first_key_value() {
            if oldest.issued.saturating_add(self.lifetime) >= now {
                break;
            }
            self.forget_oldest();
        }
        if self.floor.is_some_and(|f| nonce <= f) {
            return Err(Replay::Unverifiable);
        }
        if let Some(w) = self.entries.get_mut(&nonce) {
            return w.record(nc);
        }
        if self.entries.len() >= self.capacity {
            // A nonce older than everything held would be the one to go: refuse it instead.
            if self.entries.first_key_value().is_some_and(|(&oldest, _)| nonce < oldest) {
                return Err(Replay::Unverifiable);
            }
            self.forget_oldest();
        }
        let mut w = Window { max: 0, seen: 0 };
        let r = w.record(nc);
        self.entries.insert(nonce, w);
        r
    }

    fn forget_oldest(&mut self) {
        if let Some((id, _)) = self.entries.pop_first() {
            self.floor = Some(self.floor.map_or(id, |f| f.max(id)));
        }
    }

    /// Number of nonces held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(issued: u64, seq: u64) -> NonceId {
        NonceId { issued, seq }
    }

    #[test]
    fn out_of_order_once_each() {
        let mut c = ReplayCache::new(10, 300);
        let n = id(100, 1);
        for nc in [3, 1, 2, 5, 4] {
            assert_eq!(c.check(n, nc, 100), Ok(()), "nc {nc}");
        }
        for nc in 1..=5 {
            assert_eq!(c.check(n, nc, 100), Err(Replay::Seen), "nc {nc}");
        }
        assert_eq!(c.check(n, 200, 100), Ok(()));
        assert_eq!(c.check(n, 137, 100), Ok(()));
        assert_eq!(c.check(n, 136, 100), Err(Replay::Unverifiable));
        assert_eq!(c.check(n, 6, 100), Err(Replay::Unverifiable));
        // A jump beyond the window forgets the bitmap but not the maximum.
        assert_eq!(c.check(n, u32::MAX, 100), Ok(()));
        assert_eq!(c.check(n, u32::MAX, 100), Err(Replay::Seen));
        assert_eq!(c.check(n, 200, 100), Err(Replay::Unverifiable));
    }

    #[test]
    fn eviction_raises_the_floor() {
        let mut c = ReplayCache::new(2, 300);
        assert_eq!(c.check(id(100, 1), 1, 100), Ok(()));
        assert_eq!(c.check(id(100, 2), 1, 100), Ok(()));
        assert_eq!(c.check(id(100, 3), 1, 100), Ok(()));
        assert_eq!(c.len(), 2);
        // The evicted nonce cannot be replayed, nor can an older unseen one.
        assert_eq!(c.check(id(100, 1), 1, 100), Err(Replay::Unverifiable));
        assert_eq!(c.check(id(99, 9), 1, 100), Err(Replay::Unverifiable));
        // A nonce older than everything held arriving at a full cache is itself the oldest.
        let mut c = ReplayCache::new(1, 300);
        assert_eq!(c.check(id(100, 2), 1, 100), Ok(()));
        assert_eq!(c.check(id(100, 1), 1, 100), Err(Replay::Unverifiable));
        assert_eq!(c.check(id(100, 2), 1, 100), Err(Replay::Seen));
    }

    #[test]
    fn expired_entries_go_first_even_if_the_clock_steps_back() {
        let mut c = ReplayCache::new(10, 300);
        assert_eq!(c.check(id(100, 1), 1, 100), Ok(()));
        assert_eq!(c.check(id(500, 2), 1, 500), Ok(()));
        assert_eq!(c.len(), 1);
        assert_eq!(c.check(id(100, 1), 1, 100), Err(Replay::Unverifiable));
    }
}
