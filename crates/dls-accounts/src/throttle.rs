//! [`LoginThrottle`]: failed console logins, counted so that guessing is slow and nobody is
//! locked out, sans-IO (the time is passed in, Unix seconds).
//!
//! The style is that of `dls-digest`'s throttle of phones' Digest guesses: token buckets
//! kept as the time at which they are full again (GCRA), maps of bounded size, delays that
//! are always bounded. The numbers are for people, not phones:
//!
//! * **The pair** (account name, source address; IPv6 per /64) is what a failure limits
//!   first: `pair_burst` failures at once, then one per `pair_interval_secs`. Someone who
//!   mistyped waits at most that long.
//! * **Ceilings** per account (many addresses guessing one account) and per source (one
//!   address trying many accounts): each a bucket of failures that never refuses by itself.
//!   Exceeded, it puts the account or the source *under pressure*, and then a pair that
//!   failed in the last `pressure_interval_secs` waits until that long after its failure
//!   (one guess per interval), while a pair without a recent failure — the real user at
//!   their own desk — is let in at once when only its account is under pressure (an attack
//!   on an account from elsewhere never stops its owner's first try), and waits for the
//!   source's next token (at most `source_interval_secs`) when its source is.
//! * **Trust**: a pair that logged in successfully in the last `trusted_secs` is exempt from
//!   both ceilings.
//!
//! So every wait ends after at most the largest of the intervals, and no address can make
//! another address wait except through that address's own failures. Each map holds at most
//! `capacity` keys; when one is full, keys that no longer restrict anything go first, then
//! the one that restricts least, so that spraying new keys cannot evict a guesser's count.
//!
//! With several nodes each counts its own failures (as for Digest): a guesser spread over
//! `n` nodes gets `n` times the budget.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// The throttle's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Failures a pair may make at once. Default 5.
    pub pair_burst: u32,
    /// A pair gets one more attempt per this many seconds. Default 20.
    pub pair_interval_secs: u64,
    /// Failures for one account, from anywhere, before it is under pressure. Default 20.
    pub account_burst: u32,
    /// The account's budget refills one per this many seconds. Default 30.
    pub account_interval_secs: u64,
    /// Failures from one source before it is under pressure. Default 30.
    pub source_burst: u32,
    /// The source's budget refills one per this many seconds. Default 10.
    pub source_interval_secs: u64,
    /// Under pressure, a pair that failed waits this long after its failure. Default 60.
    pub pressure_interval_secs: u64,
    /// A pair that logged in is exempt from the ceilings this long. Default 30 days.
    pub trusted_secs: u64,
    /// Keys kept per map. Default 4096.
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            pair_burst: 5,
            pair_interval_secs: 20,
            account_burst: 20,
            account_interval_secs: 30,
            source_burst: 30,
            source_interval_secs: 10,
            pressure_interval_secs: 60,
            trusted_secs: 30 * 86_400,
            capacity: 4096,
        }
    }
}

impl ThrottleConfig {
    /// The longest any attempt can be made to wait.
    #[must_use]
    pub fn longest_wait(&self) -> u64 {
        self.pair_interval_secs.max(self.pressure_interval_secs).max(self.source_interval_secs)
    }
}

/// A source: an IPv4 address, or an IPv6 /64 (one host's or one network's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let mut prefix = [0_u8; 8];
                    prefix.copy_from_slice(&a.octets()[..8]);
                    Self::V6(prefix)
                }
            },
        }
    }
}

/// An account name, bounded (what a login form sends may be anything).
fn account_key(name: &str) -> String {
    name.chars().take(crate::names::MAX_NAME).collect::<String>().to_lowercase()
}

/// A token bucket: `burst` at once, one back every `interval`.
#[derive(Clone, Copy)]
struct Rate {
    burst: u32,
    interval: u64,
}

impl Rate {
    fn tolerance(self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }

    /// Seconds until one more fits, for a bucket full again at `tat`.
    fn wait(self, tat: u64, now: u64) -> u64 {
        if self.burst == 0 || self.interval == 0 {
            return 0;
        }
        tat.saturating_sub(self.tolerance()).saturating_sub(now)
    }

    /// The bucket after one more, never more than one interval beyond the limit.
    fn consume(self, tat: u64, now: u64) -> u64 {
        let cap = now.saturating_add(self.tolerance()).saturating_add(self.interval);
        tat.max(now).saturating_add(self.interval).min(cap)
    }
}

#[derive(Clone, Copy)]
struct Pair {
    tat: u64,
    last_failure: u64,
}

/// Counts failed logins; says how long an attempt must wait. See the module's
/// documentation.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    pairs: Bounded<(String, Source), PairEntry>,
    accounts: Bounded<String, u64>,
    sources: Bounded<Source, u64>,
    trusted: Bounded<(String, Source), u64>,
}

#[derive(Clone, Copy)]
struct PairEntry(Pair);

impl std::fmt::Debug for PairEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pair")
    }
}

/// A map of at most `capacity` keys, each with the time until which it restricts.
struct Bounded<K, V> {
    map: HashMap<K, V>,
}

impl<K, V> std::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} keys", self.map.len())
    }
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new() -> Self {
        Self { map: HashMap::new() }
    }

    /// Makes room for `key`: when the map is full and `key` is new, drops the keys that no
    /// longer restrict at `now`, or else the one that restricts least.
    fn make_room(&mut self, key: &K, capacity: usize, now: u64, until: impl Fn(&V) -> u64) {
        if self.map.len() < capacity.max(1) || self.map.contains_key(key) {
            return;
        }
        self.map.retain(|_, v| until(v) > now);
        if self.map.len() >= capacity.max(1)
            && let Some(least) = self.map.iter().min_by_key(|(_, v)| until(v)).map(|(k, _)| k.clone())
        {
            self.map.remove(&least);
        }
    }
}

impl LoginThrottle {
    /// An empty throttle.
    #[must_use]
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            pairs: Bounded::new(),
            accounts: Bounded::new(),
            sources: Bounded::new(),
            trusted: Bounded::new(),
        }
    }

    fn rates(&self) -> (Rate, Rate, Rate) {
        let c = &self.config;
        (
            Rate { burst: c.pair_burst, interval: c.pair_interval_secs },
            Rate { burst: c.account_burst, interval: c.account_interval_secs },
            Rate { burst: c.source_burst, interval: c.source_interval_secs },
        )
    }

    /// `Some(seconds)` when a login to `account` from `source` must wait now; `None` when it
    /// may be tried.
    #[must_use]
    pub fn check(&self, source: IpAddr, account: &str, now: u64) -> Option<u64> {
        let (key, source) = ((account_key(account), Source::from(source)), Source::from(source));
        let (pair_rate, account_rate, source_rate) = self.rates();
        let pair = self.pairs.map.get(&key).map(|p| p.0);
        let mut wait = pair.map_or(0, |p| pair_rate.wait(p.tat, now));
        let trusted = self.trusted.map.get(&key).is_some_and(|&until| now < until);
        if !trusted {
            let account_wait = self.accounts.map.get(&key.0).map_or(0, |&tat| account_rate.wait(tat, now));
            let source_wait = self.sources.map.get(&source).map_or(0, |&tat| source_rate.wait(tat, now));
            // A pair without failures waits only for its own source's budget.
            wait = wait.max(source_wait);
            let recent = pair
                .map(|p| p.last_failure.saturating_add(self.config.pressure_interval_secs))
                .filter(|&until| until > now);
            if let Some(until) = recent.filter(|_| account_wait > 0 || source_wait > 0) {
                wait = wait.max(until - now);
            }
        }
        (wait > 0).then_some(wait)
    }

    /// Counts a failed login (a wrong password, or an account that does not exist: the same
    /// to the throttle, so that it does not tell them apart either).
    pub fn record_failure(&mut self, source: IpAddr, account: &str, now: u64) {
        let (key, source) = ((account_key(account), Source::from(source)), Source::from(source));
        let (pair_rate, account_rate, source_rate) = self.rates();
        let (capacity, pressure) = (self.config.capacity, self.config.pressure_interval_secs);
        self.pairs.make_room(&key, capacity, now, |p| p.0.tat.max(p.0.last_failure.saturating_add(pressure)));
        let pair = self.pairs.map.entry(key.clone()).or_insert(PairEntry(Pair { tat: now, last_failure: now }));
        pair.0 = Pair { tat: pair_rate.consume(pair.0.tat, now), last_failure: now };
        self.accounts.make_room(&key.0, capacity, now, |&tat| tat);
        let tat = self.accounts.map.entry(key.0).or_insert(now);
        *tat = account_rate.consume(*tat, now);
        self.sources.make_room(&source, capacity, now, |&tat| tat);
        let tat = self.sources.map.entry(source).or_insert(now);
        *tat = source_rate.consume(*tat, now);
    }

    /// A successful login: the pair's failures are forgotten and it is trusted.
    pub fn record_success(&mut self, source: IpAddr, account: &str, now: u64) {
        let key = (account_key(account), Source::from(source));
        self.pairs.map.remove(&key);
        if self.config.trusted_secs > 0 {
            self.trusted.make_room(&key, self.config.capacity, now, |&until| until);
            self.trusted.map.insert(key, now.saturating_add(self.config.trusted_secs));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::{LoginThrottle, ThrottleConfig};

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    #[test]
    fn a_pair_gets_its_burst_then_one_try_per_interval() {
        let mut t = LoginThrottle::new(ThrottleConfig::default());
        for _ in 0..5 {
            assert_eq!(t.check(ip(1), "alice", 100), None);
            t.record_failure(ip(1), "alice", 100);
        }
        assert_eq!(t.check(ip(1), "alice", 100), Some(20));
        assert_eq!(t.check(ip(1), "Alice", 110), Some(10), "names count ignoring case");
        assert_eq!(t.check(ip(1), "alice", 120), None);
        t.record_failure(ip(1), "alice", 120);
        assert_eq!(t.check(ip(1), "alice", 121), Some(19), "never more than one interval");
        // Another address, or another account from this one, is not held by this pair.
        assert_eq!(t.check(ip(2), "alice", 121), None);
        assert_eq!(t.check(ip(1), "bob", 121), None);
        // Success forgets the pair's failures.
        t.record_success(ip(1), "alice", 140);
        assert_eq!(t.check(ip(1), "alice", 140), None);
    }

    #[test]
    fn an_attack_on_an_account_never_locks_its_owner_out() {
        let mut t = LoginThrottle::new(ThrottleConfig::default());
        // A botnet: 200 addresses, 3 failures each, against alice.
        let mut now = 1000;
        for n in 0..200_u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n));
            for _ in 0..3 {
                t.record_failure(a, "alice", now);
            }
            now += 1;
        }
        // Alice at her own desk, no failure of her own: in at once.
        assert_eq!(t.check(ip(7), "alice", now), None);
        // She mistypes once: under pressure she waits for the pressure interval, no more.
        t.record_failure(ip(7), "alice", now);
        let wait = t.check(ip(7), "alice", now).expect("waits");
        assert!(wait <= ThrottleConfig::default().longest_wait(), "{wait}");
        assert_eq!(t.check(ip(7), "alice", now + wait), None);
        // Once she logged in, her desk is trusted: the ceiling does not hold her.
        t.record_success(ip(7), "alice", now + wait);
        t.record_failure(ip(7), "alice", now + wait + 1);
        assert_eq!(t.check(ip(7), "alice", now + wait + 1), None);
        // A bot that failed lately gets one guess per pressure interval.
        let bot = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + 199));
        assert!(t.check(bot, "alice", now).is_some());
    }

    #[test]
    fn one_address_spraying_accounts_is_slowed() {
        let mut t = LoginThrottle::new(ThrottleConfig::default());
        for n in 0..30 {
            t.record_failure(ip(9), &format!("user{n}"), 500);
        }
        let wait = t.check(ip(9), "someone-new", 500).expect("the source is under pressure");
        assert!(wait <= 10, "{wait}");
        assert_eq!(t.check(ip(10), "someone-new", 500), None, "other addresses are not");
        // IPv6 counts per /64.
        let a: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().expect("v6").into();
        let b: IpAddr = "2001:db8:1:2::ffff".parse::<Ipv6Addr>().expect("v6").into();
        for _ in 0..5 {
            t.record_failure(a, "carol", 600);
        }
        assert!(t.check(b, "carol", 600).is_some());
    }

    #[test]
    fn maps_stay_bounded_and_keep_the_guessers() {
        let config = ThrottleConfig { capacity: 16, ..ThrottleConfig::default() };
        let mut t = LoginThrottle::new(config);
        for _ in 0..5 {
            t.record_failure(ip(1), "alice", 100);
        }
        // Spraying one failure each for many new names cannot evict the guesser's pair,
        // which restricts longest.
        for n in 0..1000 {
            t.record_failure(ip(2), &format!("x{n}"), 100);
        }
        assert!(t.pairs.map.len() <= 16 && t.accounts.map.len() <= 16 && t.sources.map.len() <= 16);
        assert!(t.check(ip(1), "alice", 100).is_some());
        let long = "y".repeat(10_000);
        t.record_failure(ip(3), &long, 100);
        assert!(t.pairs.map.keys().all(|(k, _)| k.len() <= 64));
    }
}
