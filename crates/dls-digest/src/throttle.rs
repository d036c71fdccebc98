//! Throttling of failed attempts, per source address and per username, sans-IO.
//!
//! Each key has a fixed window that opens at its first failure; once a key has
//! `max_failures_*` failures in its window, attempts are refused until the window ends. A
//! success resets the username and takes one failure off the source, so phones behind one NAT
//! that each fail once (a wrong first credential set) and then succeed do not add up. Both maps
//! hold at most `capacity` keys: when full, expired windows go first, then the key with the
//! fewest failures (so spraying new keys cannot evict an attacker's own count). IPv6 sources
//! count per /64, since one host can hold a whole /64.
//!
//! A success also marks the (username, source) pair as trusted for `trusted_secs`: the username
//! limit does not apply to it, so failures sent from elsewhere for a phone's MAC do not lock
//! the phone out at the address it last authenticated from (the source limit still applies).

use std::collections::HashMap;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// Throttle limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Length of a counting window, seconds (default 300).
    pub window_secs: u64,
    /// Failures per username in a window before it is throttled (default 20; 0: no limit).
    pub max_failures_per_username: u32,
    /// Failures per source address (IPv6: per /64) in a window before it is throttled
    /// (default 50; 0: no limit).
    pub max_failures_per_source: u32,
    /// How long a (username, source) pair stays exempt from the username limit after a
    /// success, seconds (default 86400; 0: never exempt).
    pub trusted_secs: u64,
    /// Keys kept in each of the three maps (default 4096).
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window_secs: 300,
            max_failures_per_username: 20,
            max_failures_per_source: 50,
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

#[derive(Debug, Clone, Copy)]
struct Counter {
    start: u64,
    failures: u32,
}

/// Counts failures; tells when to refuse. The caller passes the time (unix seconds).
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    sources: HashMap<SourceKey, Counter>,
    users: HashMap<UserKey, Counter>,
    /// (username, source) pairs that succeeded, until when they are trusted.
    trusted: HashMap<(UserKey, SourceKey), u64>,
}

impl Throttle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, sources: HashMap::new(), users: HashMap::new(), trusted: HashMap::new() }
    }

    /// `Some(retry_after_secs)` when `source`, or `username` if given (and not trusted from
    /// this source), is throttled now.
    pub fn check(&self, source: IpAddr, username: Option<&str>, now: u64) -> Option<u64> {
        let w = self.config.window_secs;
        let source = SourceKey::from(source);
        let by_source = self.sources.get(&source).and_then(|c| over(c, self.config.max_failures_per_source, w, now));
        let by_user = username
            .map(user_key)
            .filter(|&u| self.trusted.get(&(u, source)).is_none_or(|&until| now >= until))
            .and_then(|u| self.users.get(&u))
            .and_then(|c| over(c, self.config.max_failures_per_username, w, now));
        by_source.max(by_user)
    }

    /// Counts a failed attempt.
    pub fn record_failure(&mut self, source: IpAddr, username: &str, now: u64) {
        let (w, cap) = (self.config.window_secs, self.config.capacity);
        bump(&mut self.sources, source.into(), w, cap, now);
        bump(&mut self.users, user_key(username), w, cap, now);
    }

    /// A successful attempt: forgets the username's failures, forgives one of the source's, and
    /// trusts the pair.
    pub fn record_success(&mut self, source: IpAddr, username: &str, now: u64) {
        let (user, source) = (user_key(username), SourceKey::from(source));
        self.users.remove(&user);
        if let Some(c) = self.sources.get_mut(&source) {
            c.failures = c.failures.saturating_sub(1);
        }
        if self.config.trusted_secs == 0 {
            return;
        }
        let cap = self.config.capacity.max(1);
        if !self.trusted.contains_key(&(user, source)) && self.trusted.len() >= cap {
            self.trusted.retain(|_, &mut until| now < until);
            if self.trusted.len() >= cap {
                let oldest = self.trusted.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.trusted.remove(&k);
                }
            }
        }
        self.trusted.insert((user, source), now.saturating_add(self.config.trusted_secs));
    }

    /// Keys held (sources, usernames and trusted pairs).
    pub fn len(&self) -> usize {
        self.sources.len() + self.users.len() + self.trusted.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn active(c: &Counter, window: u64, now: u64) -> bool {
    now < c.start.saturating_add(window)
}

fn over(c: &Counter, max: u32, window: u64, now: u64) -> Option<u64> {
    (max > 0 && active(c, window, now) && c.failures >= max)
        .then(|| c.start.saturating_add(window).saturating_sub(now).clamp(1, window.max(1)))
}

fn bump<K: Copy + Eq + std::hash::Hash>(map: &mut HashMap<K, Counter>, key: K, window: u64, capacity: usize, now: u64) {
    if !map.contains_key(&key) && map.len() >= capacity.max(1) {
        map.retain(|_, c| active(c, window, now));
        if map.len() >= capacity.max(1) {
            let weakest = map.iter().min_by_key(|(_, c)| (c.failures, c.start)).map(|(k, _)| *k);
            if let Some(k) = weakest {
                map.remove(&k);
            }
        }
    }
    let c = map.entry(key).or_insert(Counter { start: now, failures: 0 });
    if !active(c, window, now) {
        *c = Counter { start: now, failures: 0 };
    }
    c.failures = c.failures.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn window_and_retry_after() {
        let mut t = Throttle::new(ThrottleConfig { max_failures_per_source: 3, ..ThrottleConfig::default() });
        for i in 0..3 {
            assert_eq!(t.check(A, None, 1000 + i), None);
            t.record_failure(A, &format!("user{i}"), 1000 + i);
        }
        assert_eq!(t.check(A, None, 1010), Some(290));
        assert_eq!(t.check(A, None, 1299), Some(1));
        assert_eq!(t.check(A, None, 1300), None);
        t.record_failure(A, "x", 1300);
        assert_eq!(t.check(A, None, 1300), None);
    }

    #[test]
    fn usernames_ignore_ascii_case_and_success_resets() {
        let mut t = Throttle::new(ThrottleConfig { max_failures_per_username: 2, ..ThrottleConfig::default() });
        t.record_failure(A, "001a2b3c4d5e", 0);
        t.record_failure(A, "001A2B3C4D5E", 0);
        assert!(t.check(A, Some("001a2b3c4d5e"), 1).is_some());
        assert!(t.check(A, Some("other"), 1).is_none());
        t.record_success(A, "001A2b3c4d5e", 1);
        assert!(t.check(A, Some("001a2b3c4d5e"), 1).is_none());
    }

    #[test]
    fn ipv6_counts_per_prefix_and_mapped_v4_as_v4() {
        let mut t = Throttle::new(ThrottleConfig { max_failures_per_source: 2, ..ThrottleConfig::default() });
        t.record_failure(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)), "a", 0);
        t.record_failure(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9)), "b", 0);
        assert!(t.check(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 5, 5, 5, 5)), None, 0).is_some());
        assert!(t.check(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)), None, 0).is_none());
        t.record_failure(A, "c", 0);
        t.record_failure(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped()), "d", 0);
        assert!(t.check(A, None, 0).is_some());
    }

    #[test]
    fn bounded_and_keeps_the_heaviest() {
        let cap = 16;
        let mut t =
            Throttle::new(ThrottleConfig { capacity: cap, max_failures_per_source: 5, ..ThrottleConfig::default() });
        for _ in 0..5 {
            t.record_failure(A, "attacker", 0);
        }
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.record_failure(ip, &format!("spray{i}"), 1);
            assert!(t.len() <= 2 * cap);
        }
        assert!(t.check(A, None, 2).is_some());
    }

    #[test]
    fn a_trusted_pair_escapes_the_username_limit_only() {
        let b = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
        let mut t = Throttle::new(ThrottleConfig { max_failures_per_username: 2, ..ThrottleConfig::default() });
        t.record_success(A, "001a2b3c4d5e", 0);
        t.record_failure(b, "001a2b3c4d5e", 1);
        t.record_failure(b, "001a2b3c4d5e", 1);
        assert!(t.check(b, Some("001a2b3c4d5e"), 2).is_some());
        assert!(t.check(A, Some("001A2B3C4D5E"), 2).is_none());
        t.record_failure(b, "001a2b3c4d5e", 86_400);
        t.record_failure(b, "001a2b3c4d5e", 86_400);
        assert!(t.check(A, Some("001a2b3c4d5e"), 86_400).is_some(), "trust expires");
        let mut t = Throttle::new(ThrottleConfig { capacity: 4, ..ThrottleConfig::default() });
        for i in 0..100u32 {
            t.record_success(IpAddr::V4(Ipv4Addr::from(i)), "u", u64::from(i));
            assert!(t.len() <= 4);
        }
    }

    #[test]
    fn zero_means_no_limit() {
        let mut t = Throttle::new(ThrottleConfig {
            max_failures_per_source: 0,
            max_failures_per_username: 0,
            ..ThrottleConfig::default()
        });
        for _ in 0..1000 {
            t.record_failure(A, "u", 0);
        }
        assert_eq!(t.check(A, Some("u"), 0), None);
    }
}
