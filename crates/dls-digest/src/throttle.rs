//! Throttling of failed attempts, sans-IO: it slows a guesser without locking out anyone who
//! does not share the guesser's address.
//!
//! The unit is the **pair** (username, source address; IPv6 per /64). Only a pair's own
//! failures limit it: a token bucket of `pair_burst` failures refilling one every
//! `pair_interval_secs`. A pair at its limit waits at most `pair_interval_secs`.
//!
//! Two **ceilings** bound what many pairs do together: per username (many addresses guessing
//! one MAC) and per source (one address trying many usernames). Each is a token bucket of
//! failures too (a success gives one token back, so phones that fail once and then succeed do
//! not add up), and neither ever refuses by itself. A ceiling that is exceeded puts its
//! username or source **under pressure**, and under pressure:
//!
//! * a pair that failed in the last `pressure_interval_secs` waits until that much time has
//!   passed since its last failure (one evaluated guess per interval, never more delay);
//! * a pair with no recent failure is admitted at once when only its username is under
//!   pressure, so failures sent from elsewhere never stop a phone's first attempt at its own
//!   address; when its source is under pressure it waits for the source's next token (at most
//!   `source_interval_secs`);
//! * a pair that succeeded in the last `trusted_secs` is exempt from both ceilings, and a
//!   source from which any username succeeded in that time is exempt from the username
//!   ceiling (the source ceiling still applies to it).
//!
//! So every delay is bounded (`pressure_interval_secs`, `pair_interval_secs` or
//! `source_interval_secs` after the last evaluated failure that caused it), and nothing a
//! foreign address does delays a pair at another address except through that pair's own
//! failures. Every map holds at most `capacity` keys; when one is full, entries that no longer
//! restrict anything go first, then the one that restricts least, so spraying new keys cannot
//! evict an attacker's own count. See `docs/digest.md` for the numbers.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// Throttle limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Failures a (username, source) pair may make at once before its attempts are spaced
    /// (default 10; 0: no pair limit).
    pub pair_burst: u32,
    /// A pair's budget refills one failure per this many seconds (default 30).
    pub pair_interval_secs: u64,
    /// Failures for a username, from all sources, at once before the username is under
    /// pressure (default 20; 0: never under pressure).
    pub max_failures_per_username: u32,
    /// The username's budget refills one failure per this many seconds (default 15).
    pub username_interval_secs: u64,
    /// Failures, less successes, from one source address (IPv6: per /64) at once before the
    /// source is under pressure (default 50; 0: never under pressure).
    pub max_failures_per_source: u32,
    /// The source's budget refills one failure per this many seconds (default 6).
    pub source_interval_secs: u64,
    /// Under pressure, a pair that has failed waits this long after its last failure, seconds
    /// (default 300): the longest delay anyone who shares a guesser's address and username sees.
    pub pressure_interval_secs: u64,
    /// How long a (username, source) pair stays exempt from the ceilings after a success, and
    /// its source from the username ceiling, seconds (default 86400; 0: never exempt).
    pub trusted_secs: u64,
    /// Keys kept in each of the five maps (pairs, usernames, sources, trusted pairs, trusted
    /// sources; default 4096).
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            pair_burst: 10,
            pair_interval_secs: 30,
            max_failures_per_username: 20,
            username_interval_secs: 15,
            max_failures_per_source: 50,
            source_interval_secs: 6,
            pressure_interval_secs: 300,
            trusted_secs: 86400,
            capacity: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl From<IpAddr> for SourceKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&a.octets()[..8]);
                    Self::V6Prefix(p)
                }
            },
        }
    }
}

/// Usernames are kept as 16 bytes of a hash of their lowercase form: fixed size whatever
/// clients send, and MAC usernames in either case count together.
type UserKey = [u8; 16];

fn user_key(username: &str) -> UserKey {
    let d = Sha256::new().chain_update(b"dls-digest throttle\0").chain_update(username.to_ascii_lowercase()).finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// A token bucket as a generic cell rate: `tat` is the time at which the bucket is full again.
/// `burst` failures fit at once; one token comes back every `interval` seconds.
#[derive(Debug, Clone, Copy)]
struct Rate {
    interval: u64,
    burst: u32,
}

impl Rate {
    /// How far `tat` may run ahead of `now` while another failure still fits.
    fn tolerance(self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }

    fn enabled(self) -> bool {
        self.burst > 0 && self.interval > 0
    }

    /// Seconds until another failure fits (0: it fits now).
    fn wait(self, tat: u64, now: u64) -> u64 {
        if !self.enabled() {
            return 0;
        }
        tat.saturating_sub(self.tolerance()).saturating_sub(now)
    }

    /// `tat` after one more failure, at most one interval beyond the limit, so the wait after
    /// the last failure is never more than `interval`.
    fn consume(self, tat: u64, now: u64) -> u64 {
        let cap = now.saturating_add(self.tolerance()).saturating_add(self.interval);
        tat.max(now).saturating_add(self.interval).min(cap)
    }

    /// `tat` after a success gave one token back.
    fn refund(self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(self.interval).max(now)
    }
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    /// The pair's own bucket.
    tat: u64,
    /// The last failure.
    last: u64,
}

/// Counts failures; tells when to wait. The caller passes the time (unix seconds).
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    pairs: HashMap<(UserKey, SourceKey), Pair>,
    users: HashMap<UserKey, u64>,
    sources: HashMap<SourceKey, u64>,
    /// (username, source) pairs that succeeded, until when they are trusted.
    trusted: HashMap<(UserKey, SourceKey), u64>,
    /// Sources from which someone succeeded, until when they are exempt from the username
    /// ceiling.
    good_sources: HashMap<SourceKey, u64>,
}

impl Throttle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            pairs: HashMap::new(),
            users: HashMap::new(),
            sources: HashMap::new(),
            trusted: HashMap::new(),
            good_sources: HashMap::new(),
        }
    }

    fn pair_rate(&self) -> Rate {
        Rate { interval: self.config.pair_interval_secs, burst: self.config.pair_burst }
    }

    fn user_rate(&self) -> Rate {
        Rate { interval: self.config.username_interval_secs, burst: self.config.max_failures_per_username }
    }

    fn source_rate(&self) -> Rate {
        Rate { interval: self.config.source_interval_secs, burst: self.config.max_failures_per_source }
    }

    /// `Some(retry_after_secs)` when an attempt for `username` from `source` must wait now.
    pub fn check(&self, source: IpAddr, username: &str, now: u64) -> Option<u64> {
        let (user, source) = (user_key(username), SourceKey::from(source));
        let pair = self.pairs.get(&(user, source));
        let mut wait = pair.map_or(0, |p| self.pair_rate().wait(p.tat, now));
        let trusted = self.trusted.get(&(user, source)).is_some_and(|&until| now < until);
        if !trusted {
            // A source where someone authenticated lately is not a botnet's address: the
            // username ceiling (many addresses guessing one username) does not hold it.
            let good_source = self.good_sources.get(&source).is_some_and(|&until| now < until);
            let user_wait = match self.users.get(&user) {
                Some(&tat) if !good_source => self.user_rate().wait(tat, now),
                _ => 0,
            };
            let source_wait = self.sources.get(&source).map_or(0, |&tat| self.source_rate().wait(tat, now));
            // Only the source's own budget holds a fresh pair, never the username's.
            wait = wait.max(source_wait);
            // Under pressure, a pair that failed lately gets one evaluation per interval.
            let recent = pair.map(|p| p.last.saturating_add(self.config.pressure_interval_secs)).filter(|&t| t > now);
            if let Some(until) = recent.filter(|_| user_wait > 0 || source_wait > 0) {
                wait = wait.max(until - now);
            }
        }
        (wait > 0).then_some(wait)
    }

    /// Counts a failed attempt.
    pub fn record_failure(&mut self, source: IpAddr, username: &str, now: u64) {
        let (user, source) = (user_key(username), SourceKey::from(source));
        let cap = self.config.capacity.max(1);
        let (pair_rate, user_rate, source_rate) = (self.pair_rate(), self.user_rate(), self.source_rate());
        let pressure = self.config.pressure_interval_secs;
        let until = |p: &Pair| p.tat.max(p.last.saturating_add(pressure));
        make_room(&mut self.pairs, (user, source), cap, until, |p| (p.tat, p.last), now);
        let p = self.pairs.entry((user, source)).or_insert(Pair { tat: now, last: now });
        p.tat = pair_rate.consume(p.tat, now);
        p.last = now;
        make_room(&mut self.users, user, cap, |&tat| tat, |&tat| (tat, 0), now);
        let u = self.users.entry(user).or_insert(now);
        *u = user_rate.consume(*u, now);
        make_room(&mut self.sources, source, cap, |&tat| tat, |&tat| (tat, 0), now);
        let s = self.sources.entry(source).or_insert(now);
        *s = source_rate.consume(*s, now);
    }

    /// A successful attempt: forgets the pair's failures, gives the username and the source one
    /// failure back, and trusts the pair.
    pub fn record_success(&mut self, source: IpAddr, username: &str, now: u64) {
        let (user, source) = (user_key(username), SourceKey::from(source));
        self.pairs.remove(&(user, source));
        let (user_rate, source_rate) = (self.user_rate(), self.source_rate());
        if let Some(tat) = self.users.get_mut(&user) {
            *tat = user_rate.refund(*tat, now);
        }
        if let Some(tat) = self.sources.get_mut(&source) {
            *tat = source_rate.refund(*tat, now);
        }
        if self.config.trusted_secs == 0 {
            return;
        }
        let (cap, until) = (self.config.capacity.max(1), now.saturating_add(self.config.trusted_secs));
        make_room(&mut self.trusted, (user, source), cap, |&u| u, |&u| (u, 0), now);
        self.trusted.insert((user, source), until);
        make_room(&mut self.good_sources, source, cap, |&u| u, |&u| (u, 0), now);
        self.good_sources.insert(source, until);
    }

    /// Keys held (pairs, usernames, sources, trusted pairs and sources).
    pub fn len(&self) -> usize {
        self.pairs.len() + self.users.len() + self.sources.len() + self.trusted.len() + self.good_sources.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Before inserting `key` into a map at `capacity`: drop the entries that restrict nothing any
/// more (`until(entry) <= now`), and if none was, the lightest by `weight` (for pairs: the
/// fewest failures outstanding, so sprayed keys go before an attacker's heavy one).
fn make_room<K: Copy + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    key: K,
    capacity: usize,
    until: impl Fn(&V) -> u64,
    weight: impl Fn(&V) -> (u64, u64),
    now: u64,
) {
    if map.len() < capacity || map.contains_key(&key) {
        return;
    }
    map.retain(|_, v| until(v) > now);
    if map.len() >= capacity {
        let weakest = map.iter().min_by_key(|(_, v)| weight(v)).map(|(k, _)| *k);
        if let Some(k) = weakest {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));

    fn throttle(f: impl FnOnce(&mut ThrottleConfig)) -> Throttle {
        let mut c = ThrottleConfig::default();
        f(&mut c);
        Throttle::new(c)
    }

    #[test]
    fn a_pair_is_spaced_after_its_burst_and_waits_one_interval_at_most() {
        let mut t = throttle(|c| {
            c.pair_burst = 3;
            c.pair_interval_secs = 10;
        });
        for _ in 0..3 {
            assert_eq!(t.check(A, "u", 1000), None);
            t.record_failure(A, "u", 1000);
        }
        assert_eq!(t.check(A, "u", 1000), Some(10));
        assert_eq!(t.check(A, "u", 1009), Some(1));
        assert_eq!(t.check(A, "u", 1010), None);
        t.record_failure(A, "u", 1010);
        assert_eq!(t.check(A, "u", 1010), Some(10), "one more per interval");
        // Other usernames at the same address, and the same username elsewhere, are free.
        assert_eq!(t.check(A, "v", 1010), None);
        assert_eq!(t.check(B, "u", 1010), None);
    }

    #[test]
    fn usernames_ignore_ascii_case_and_success_resets_the_pair() {
        let mut t = throttle(|c| c.pair_burst = 2);
        t.record_failure(A, "001a2b3c4d5e", 0);
        t.record_failure(A, "001A2B3C4D5E", 0);
        assert!(t.check(A, "001a2b3c4d5e", 1).is_some());
        t.record_success(A, "001A2b3c4d5e", 1);
        assert!(t.check(A, "001a2b3c4d5e", 1).is_none());
    }

    #[test]
    fn username_pressure_spaces_pairs_that_failed_and_never_fresh_ones() {
        let mut t = throttle(|c| {
            c.max_failures_per_username = 3;
            c.pressure_interval_secs = 100;
        });
        for i in 0..3u8 {
            t.record_failure(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), "m", 0);
        }
        // Under pressure: a pair that failed waits for its interval; a fresh one does not.
        assert_eq!(t.check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), "m", 1), Some(99));
        assert_eq!(t.check(B, "m", 1), None);
        assert_eq!(t.check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), "m", 100), None);
    }

    #[test]
    fn source_pressure_delays_fresh_pairs_by_one_source_interval_and_spares_trusted_ones() {
        let mut t = throttle(|c| {
            c.max_failures_per_source = 3;
            c.source_interval_secs = 5;
        });
        t.record_success(A, "known-phone", 0);
        for i in 0..20 {
            t.record_failure(A, &format!("spray{i}"), 1);
        }
        assert_eq!(t.check(A, "new-phone", 1), Some(5), "bounded by the source's interval");
        assert_eq!(t.check(A, "new-phone", 6), None);
        assert_eq!(t.check(A, "known-phone", 1), None);
        assert_eq!(t.check(B, "new-phone", 1), None);
    }

    #[test]
    fn successes_give_failures_back_to_shared_keys() {
        let mut t = throttle(|c| c.max_failures_per_source = 2);
        for i in 0..100 {
            let user = format!("phone{i}");
            t.record_failure(A, &user, 0);
            t.record_success(A, &format!("fallback{i}"), 0);
            assert_eq!(t.check(A, &format!("phone{}", i + 1), 0), None, "{i}");
        }
    }

    #[test]
    fn ipv6_counts_per_prefix_and_mapped_v4_as_v4() {
        let mut t = throttle(|c| c.pair_burst = 2);
        t.record_failure(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)), "a", 0);
        t.record_failure(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9)), "a", 0);
        assert!(t.check(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 5, 5, 5, 5)), "a", 0).is_some());
        assert!(t.check(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)), "a", 0).is_none());
        t.record_failure(A, "c", 0);
        t.record_failure(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()), "c", 0);
        assert!(t.check(A, "c", 0).is_some());
    }

    #[test]
    fn bounded_and_keeps_the_heaviest() {
        let cap = 16;
        let mut t = throttle(|c| {
            c.capacity = cap;
            c.pair_burst = 5;
        });
        for _ in 0..5 {
            t.record_failure(A, "attacker", 0);
        }
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.record_failure(ip, &format!("spray{i}"), 1);
            t.record_success(ip, &format!("ok{i}"), 1);
            assert!(t.len() <= 5 * cap);
        }
        assert!(t.check(A, "attacker", 2).is_some());
    }

    #[test]
    fn trust_expires() {
        let mut t = throttle(|c| {
            c.max_failures_per_username = 2;
            c.trusted_secs = 1000;
        });
        t.record_success(A, "m", 0);
        for _ in 0..2 {
            t.record_failure(A, "m", 10);
            t.record_failure(B, "m", 10);
        }
        assert_eq!(t.check(A, "m", 11), None, "trusted: the ceiling does not apply");
        assert!(t.check(B, "m", 11).is_some());
        for _ in 0..2 {
            t.record_failure(A, "m", 1000);
        }
        assert!(t.check(A, "m", 1000).is_some(), "trust expired");
    }

    #[test]
    fn a_source_where_someone_authenticated_escapes_the_username_ceiling_only() {
        let mut t = throttle(|c| {
            c.max_failures_per_username = 2;
            c.max_failures_per_source = 3;
        });
        t.record_success(A, "fallback", 0);
        for _ in 0..2 {
            t.record_failure(A, "m", 10);
            t.record_failure(B, "m", 10);
        }
        assert_eq!(t.check(A, "m", 11), None, "a good source: the username ceiling does not apply");
        assert!(t.check(B, "m", 11).is_some());
        t.record_failure(A, "n", 11);
        t.record_failure(A, "o", 11);
        assert!(t.check(A, "m", 12).is_some(), "the source ceiling does");
    }

    #[test]
    fn zero_means_no_limit() {
        let mut t = throttle(|c| {
            c.pair_burst = 0;
            c.max_failures_per_source = 0;
            c.max_failures_per_username = 0;
        });
        for _ in 0..1000 {
            t.record_failure(A, "u", 0);
        }
        assert_eq!(t.check(A, "u", 0), None);
    }
}
