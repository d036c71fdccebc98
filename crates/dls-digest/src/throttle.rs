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
//!
//! **Several throttles, one count.** Each failure and success is a [`ThrottleEvent`]: the time,
//! what happened, and a [`ThrottleSubject`] (the username as a keyed hash, the source's key;
//! no password, no clear username). [`Throttle::apply`] counts an event recorded elsewhere,
//! at its own time, even after later ones (out of order): the throttles of several nodes that
//! apply each other's events count the same failures as one throttle that saw them all, give
//! or take the order of events within one interval (a late event never lowers what is
//! counted, and the bounds on every wait hold). Events older than
//! [`ThrottleConfig::horizon_secs`] restrict nothing any more and are skipped.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

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

impl ThrottleConfig {
    /// How long a failure restricts anything, seconds: the longest of the three buckets'
    /// reach (a burst's worth of intervals, and one more) and `pressure_interval_secs`. An
    /// event older than this changes no decision (trust after a success lasts
    /// `trusted_secs`, which may be longer); a store of events may forget it.
    pub fn horizon_secs(&self) -> u64 {
        [
            (self.pair_interval_secs, self.pair_burst),
            (self.username_interval_secs, self.max_failures_per_username),
            (self.source_interval_secs, self.max_failures_per_source),
        ]
        .into_iter()
        .map(|(interval, burst)| {
            let rate = Rate { interval, burst };
            if rate.enabled() { rate.tolerance().saturating_add(interval) } else { 0 }
        })
        .chain([self.pressure_interval_secs])
        .max()
        .unwrap_or(0)
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

impl SourceKey {
    /// 4 bytes (IPv4) or 8 (an IPv6 /64).
    fn bytes(&self) -> &[u8] {
        match self {
            Self::V4(a) => a,
            Self::V6Prefix(p) => p,
        }
    }
}

/// Usernames are kept as 16 bytes of a keyed hash of their lowercase form: fixed size
/// whatever clients send, MAC usernames in either case count together, and a stored event
/// names no username in clear.
type UserKey = [u8; 16];

/// The key of [`Throttle::new`]: any fixed value will do for one process.
const DEFAULT_USER_KEY: [u8; 32] = *b"dls-digest throttle user key v1\0";

/// Who an attempt is counted against: the username (a keyed hash of its lowercase form) and
/// the source (an IPv4 address, or the /64 of an IPv6 one). What [`ThrottleEvent`]s carry
/// between throttles; [`Self::to_bytes`] and [`Self::from_bytes`] for a store. Throttles
/// share subjects only when they have the same key ([`Throttle::with_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThrottleSubject {
    user: UserKey,
    source: SourceKey,
}

impl ThrottleSubject {
    /// 20 bytes (an IPv4 source) or 24 (an IPv6 /64): the user key, then the source.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.user);
        out.extend_from_slice(self.source.bytes());
        out
    }

    /// The subject [`Self::to_bytes`] gave; `None` for bytes it cannot have given.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (user, source) = bytes.split_first_chunk::<16>()?;
        let source = match source.len() {
            4 => SourceKey::V4(source.try_into().ok()?),
            8 => SourceKey::V6Prefix(source.try_into().ok()?),
            _ => return None,
        };
        Some(Self { user: *user, source })
    }
}

/// What an attempt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// A failed attempt (a wrong digest, an unknown user, no usable credential).
    Failed,
    /// An authenticated attempt.
    Succeeded,
}

/// One attempt as throttles count it: for [`Throttle::apply`], on this throttle or another
/// with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThrottleEvent {
    /// When, unix seconds.
    pub at: u64,
    /// What it was.
    pub attempt: Attempt,
    /// Whom it counts against.
    pub subject: ThrottleSubject,
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

    /// The bucket after one more failure at `at`: `tat` at most one interval beyond the limit
    /// as of the bucket's latest failure, so the wait after it is never more than `interval`.
    /// In time order this is the plain token bucket; a failure older than the latest one
    /// (learnt late) adds its interval as far as the cap allows and never lowers `tat`.
    fn consume(self, b: Bucket, at: u64) -> Bucket {
        let last = b.last.max(at);
        let cap = last.saturating_add(self.tolerance()).saturating_add(self.interval);
        let tat = b.tat.max(at).saturating_add(self.interval).min(cap).max(b.tat);
        Bucket { tat, last }
    }

    /// The bucket after a success at `at` gave one token back (`tat` never raised: a bucket
    /// full at `at` stays full).
    fn refund(self, b: Bucket, at: u64) -> Bucket {
        Bucket { tat: b.tat.saturating_sub(self.interval).max(at).min(b.tat), last: b.last }
    }
}

/// A token bucket's state.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The time at which the bucket is full again.
    tat: u64,
    /// The latest failure counted.
    last: u64,
}

impl Bucket {
    fn new(at: u64) -> Self {
        Self { tat: at, last: at }
    }
}

/// Counts failures; tells when to wait. The caller passes the time (unix seconds).
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    /// Keys usernames ([`UserKey`]).
    user_mac: Hmac<Sha256>,
    /// Each pair's own bucket.
    pairs: HashMap<(UserKey, SourceKey), Bucket>,
    users: HashMap<UserKey, Bucket>,
    sources: HashMap<SourceKey, Bucket>,
    /// (username, source) pairs that succeeded, until when they are trusted.
    trusted: HashMap<(UserKey, SourceKey), u64>,
    /// Sources from which someone succeeded, until when they are exempt from the username
    /// ceiling.
    good_sources: HashMap<SourceKey, u64>,
}

impl Throttle {
    /// An empty throttle, its usernames keyed with a fixed key.
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with_key(config, &DEFAULT_USER_KEY)
    }

    /// An empty throttle whose usernames are keyed with `key`: throttles that apply each
    /// other's [`ThrottleEvent`]s need the same key, and a store of events that has not the
    /// key cannot tell which username an event counts against.
    pub fn with_key(config: ThrottleConfig, key: &[u8; 32]) -> Self {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key);
        // As in `NonceKey::new`: a block-sized key is HMAC's own padding of a short one.
        let user_mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        zeroize::Zeroize::zeroize(&mut block);
        Self {
            config,
            user_mac,
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

    /// Who an attempt for `username` from `source` counts against.
    pub fn subject(&self, source: IpAddr, username: &str) -> ThrottleSubject {
        let mut m = self.user_mac.clone();
        Mac::update(&mut m, username.to_ascii_lowercase().as_bytes());
        let d = m.finalize().into_bytes();
        let mut user = [0u8; 16];
        user.copy_from_slice(&d[..16]);
        ThrottleSubject { user, source: SourceKey::from(source) }
    }

    /// `Some(retry_after_secs)` when an attempt for `username` from `source` must wait now.
    pub fn check(&self, source: IpAddr, username: &str, now: u64) -> Option<u64> {
        self.check_subject(&self.subject(source, username), now)
    }

    /// [`Self::check`] for a subject.
    pub fn check_subject(&self, subject: &ThrottleSubject, now: u64) -> Option<u64> {
        let (user, source) = (subject.user, subject.source);
        let pair = self.pairs.get(&(user, source));
        let mut wait = pair.map_or(0, |p| self.pair_rate().wait(p.tat, now));
        let trusted = self.trusted.get(&(user, source)).is_some_and(|&until| now < until);
        if !trusted {
            // A source where someone authenticated lately is not a botnet's address: the
            // username ceiling (many addresses guessing one username) does not hold it.
            let good_source = self.good_sources.get(&source).is_some_and(|&until| now < until);
            let user_wait = match self.users.get(&user) {
                Some(b) if !good_source => self.user_rate().wait(b.tat, now),
                _ => 0,
            };
            let source_wait = self.sources.get(&source).map_or(0, |b| self.source_rate().wait(b.tat, now));
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
        let subject = self.subject(source, username);
        self.apply(&ThrottleEvent { at: now, attempt: Attempt::Failed, subject }, now);
    }

    /// A successful attempt: forgets the pair's failures, gives the username and the source one
    /// failure back, and trusts the pair.
    pub fn record_success(&mut self, source: IpAddr, username: &str, now: u64) {
        let subject = self.subject(source, username);
        self.apply(&ThrottleEvent { at: now, attempt: Attempt::Succeeded, subject }, now);
    }

    /// Counts `event` (this throttle's own, or another's with the same key) at its own time
    /// `event.at`, at `now` (which decides what the bounded maps may forget to make room).
    ///
    /// Events may come out of order: a failure older than some already counted adds to the
    /// buckets as far as it still reaches (never lowering them); a success forgets its pair's
    /// failures only if none came after it, and gives its token back as of its own time. A
    /// failure older than [`ThrottleConfig::horizon_secs`] changes nothing and is skipped, and
    /// so is trust that has already expired.
    pub fn apply(&mut self, event: &ThrottleEvent, now: u64) {
        match event.attempt {
            Attempt::Failed => self.apply_failure(event.subject, event.at, now),
            Attempt::Succeeded => self.apply_success(event.subject, event.at, now),
        }
    }

    fn apply_failure(&mut self, subject: ThrottleSubject, at: u64, now: u64) {
        if at.saturating_add(self.config.horizon_secs()) < now {
            return;
        }
        let (user, source) = (subject.user, subject.source);
        let cap = self.config.capacity.max(1);
        let (pair_rate, user_rate, source_rate) = (self.pair_rate(), self.user_rate(), self.source_rate());
        let pressure = self.config.pressure_interval_secs;
        let until = |p: &Bucket| p.tat.max(p.last.saturating_add(pressure));
        make_room(&mut self.pairs, (user, source), cap, until, |p| (p.tat, p.last), now);
        let p = self.pairs.entry((user, source)).or_insert(Bucket::new(at));
        *p = pair_rate.consume(*p, at);
        make_room(&mut self.users, user, cap, |b| b.tat, |b| (b.tat, 0), now);
        let u = self.users.entry(user).or_insert(Bucket::new(at));
        *u = user_rate.consume(*u, at);
        make_room(&mut self.sources, source, cap, |b| b.tat, |b| (b.tat, 0), now);
        let s = self.sources.entry(source).or_insert(Bucket::new(at));
        *s = source_rate.consume(*s, at);
    }

    fn apply_success(&mut self, subject: ThrottleSubject, at: u64, now: u64) {
        let (user, source) = (subject.user, subject.source);
        // A failure of the pair after this success (seen first, out of order) still counts.
        if self.pairs.get(&(user, source)).is_some_and(|p| p.last <= at) {
            self.pairs.remove(&(user, source));
        }
        let (user_rate, source_rate) = (self.user_rate(), self.source_rate());
        if let Some(b) = self.users.get_mut(&user) {
            *b = user_rate.refund(*b, at);
        }
        if let Some(b) = self.sources.get_mut(&source) {
            *b = source_rate.refund(*b, at);
        }
        let until = at.saturating_add(self.config.trusted_secs);
        if self.config.trusted_secs == 0 || until <= now {
            return;
        }
        let cap = self.config.capacity.max(1);
        make_room(&mut self.trusted, (user, source), cap, |&u| u, |&u| (u, 0), now);
        let t = self.trusted.entry((user, source)).or_insert(until);
        *t = (*t).max(until);
        make_room(&mut self.good_sources, source, cap, |&u| u, |&u| (u, 0), now);
        let g = self.good_sources.entry(source).or_insert(until);
        *g = (*g).max(until);
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

    fn failure(t: &Throttle, source: IpAddr, user: &str, at: u64) -> ThrottleEvent {
        ThrottleEvent { at, attempt: Attempt::Failed, subject: t.subject(source, user) }
    }

    fn success(t: &Throttle, source: IpAddr, user: &str, at: u64) -> ThrottleEvent {
        ThrottleEvent { at, attempt: Attempt::Succeeded, subject: t.subject(source, user) }
    }

    #[test]
    fn subjects_round_trip_through_bytes_and_depend_on_the_key() {
        let t = Throttle::with_key(ThrottleConfig::default(), &[7; 32]);
        let v4 = t.subject(A, "001A2B3C4D5E");
        assert_eq!(v4, t.subject(A, "001a2b3c4d5e"), "usernames ignore ASCII case");
        assert_eq!(v4.to_bytes().len(), 20);
        assert_eq!(ThrottleSubject::from_bytes(&v4.to_bytes()), Some(v4));
        let v6 = t.subject(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 2, 3, 4, 5)), "u");
        assert_eq!(v6.to_bytes().len(), 24);
        assert_eq!(ThrottleSubject::from_bytes(&v6.to_bytes()), Some(v6));
        for bad in [&[][..], &[0; 16], &[0; 19], &[0; 21], &[0; 23], &[0; 25]] {
            assert_eq!(ThrottleSubject::from_bytes(bad), None, "{} bytes", bad.len());
        }
        // The username is not in the bytes; another key gives another subject.
        assert!(!v4.to_bytes().windows(4).any(|w| w == b"001A"));
        assert_ne!(Throttle::with_key(ThrottleConfig::default(), &[8; 32]).subject(A, "001A2B3C4D5E"), v4);
        assert_eq!(
            Throttle::new(ThrottleConfig::default()).subject(A, "x"),
            Throttle::new(ThrottleConfig::default()).subject(A, "x")
        );
    }

    #[test]
    fn the_horizon_is_the_longest_reach_of_a_failure() {
        let d = ThrottleConfig::default();
        // Pair 10 x 30 s, username 20 x 15 s, source 50 x 6 s: 270 + 30, 285 + 15, 294 + 6; pressure 300.
        assert_eq!(d.horizon_secs(), 300);
        let mut c = d;
        c.pair_interval_secs = 100;
        assert_eq!(c.horizon_secs(), 1000);
        c.pair_burst = 0;
        assert_eq!(c.horizon_secs(), 300, "a limit turned off reaches nowhere: the pressure interval is the longest");
    }

    /// Two throttles with the same key that apply each other's events count what one throttle
    /// that saw everything counts.
    #[test]
    fn events_applied_elsewhere_count_as_on_one_throttle() {
        let config = ThrottleConfig { pair_burst: 4, pair_interval_secs: 10, ..ThrottleConfig::default() };
        let mut one = Throttle::with_key(config.clone(), &[1; 32]);
        let mut a = Throttle::with_key(config.clone(), &[1; 32]);
        let mut b = Throttle::with_key(config, &[1; 32]);
        for i in 0..4 {
            let e = failure(&one, A, "u", 100 + i);
            one.apply(&e, 100 + i);
            // Each failure is evaluated on one node and applied on the other before its next
            // decision.
            let (here, there) = if i % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
            here.apply(&e, 100 + i);
            there.apply(&e, 100 + i);
        }
        // Learnt late, in any order: each node then applies the other's events after its
        // own later ones.
        let mut late_a = Throttle::with_key(one.config.clone(), &[1; 32]);
        let mut late_b = Throttle::with_key(one.config.clone(), &[1; 32]);
        let events: Vec<ThrottleEvent> = (0..4).map(|i| failure(&one, A, "u", 100 + i)).collect();
        for i in [0, 2, 1, 3] {
            late_a.apply(&events[i], 103);
        }
        for i in [1, 3, 0, 2] {
            late_b.apply(&events[i], 103);
        }
        let want = one.check(A, "u", 103);
        for t in [&late_a, &late_b] {
            let got = t.check(A, "u", 103);
            assert!(got >= want && got <= want.map(|w| w + 10), "{got:?} about {want:?}");
        }
        let want = one.check(A, "u", 103);
        assert!(want.is_some());
        for t in [&a, &b] {
            assert_eq!(t.check(A, "u", 103), want);
            assert_eq!(t.check(B, "u", 103), None);
        }
    }

    #[test]
    fn late_failures_never_lower_the_count_and_keep_every_wait_bounded() {
        let config = ThrottleConfig { pair_burst: 3, pair_interval_secs: 10, ..ThrottleConfig::default() };
        let mut in_order = Throttle::new(config.clone());
        let mut shuffled = Throttle::new(config);
        let times = [100, 101, 102, 103, 104];
        for &at in &times {
            in_order.apply(&failure(&in_order, A, "u", at), at);
        }
        // The same failures, learnt late and backwards.
        for &at in times.iter().rev() {
            shuffled.apply(&failure(&shuffled, A, "u", at), 104);
        }
        let (want, got) = (in_order.check(A, "u", 104), shuffled.check(A, "u", 104));
        assert!(want.is_some() && got >= want, "{got:?} at least {want:?}");
        assert!(got <= Some(10), "never more than one interval after the last failure: {got:?}");
        // A failure far older than what was counted adds nothing and lowers nothing.
        let before = shuffled.check(A, "u", 104);
        shuffled.apply(&failure(&shuffled, A, "u", 50), 104);
        assert_eq!(shuffled.check(A, "u", 104), before);
    }

    #[test]
    fn a_late_success_forgives_only_the_failures_before_it() {
        let config = ThrottleConfig { pair_burst: 2, pair_interval_secs: 30, ..ThrottleConfig::default() };
        let mut t = Throttle::new(config);
        // Two failures at 100 and 101, a success at 102 learnt after them: forgiven.
        t.apply(&failure(&t, A, "u", 100), 101);
        t.apply(&failure(&t, A, "u", 101), 101);
        assert!(t.check(A, "u", 102).is_some());
        t.apply(&success(&t, A, "u", 102), 103);
        assert_eq!(t.check(A, "u", 103), None);
        // Failures at 110 and 111 seen before a success at 105 (learnt late): they stand.
        t.apply(&failure(&t, A, "u", 110), 111);
        t.apply(&failure(&t, A, "u", 111), 111);
        t.apply(&success(&t, A, "u", 105), 112);
        assert!(t.check(A, "u", 112).is_some(), "the failures came after the success");
    }

    #[test]
    fn old_events_are_skipped_and_expired_trust_is_not_kept() {
        let mut t = throttle(|c| c.trusted_secs = 100);
        let horizon = t.config.horizon_secs();
        t.apply(&failure(&t, A, "u", 1000), 1000 + horizon + 1);
        assert!(t.is_empty(), "a failure beyond the horizon restricts nothing");
        t.apply(&failure(&t, A, "u", 1000), 1000 + horizon);
        assert!(!t.is_empty());
        let mut t = throttle(|c| c.trusted_secs = 100);
        t.apply(&success(&t, A, "u", 1000), 1100);
        assert!(t.is_empty(), "trust that expired is not kept");
        t.apply(&success(&t, A, "u", 1000), 1099);
        assert_eq!(t.len(), 2, "the pair and its source, trusted");
    }

    /// Memory stays within the capacity whatever events arrive, in any order.
    #[test]
    fn applied_events_stay_within_the_capacity() {
        let cap = 8;
        let mut t = throttle(|c| c.capacity = cap);
        for i in 0..2000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let at = 10_000 - u64::from(i % 97);
            t.apply(&failure(&t, ip, &format!("u{i}"), at), 10_000);
            t.apply(&success(&t, ip, &format!("v{i}"), at), 10_000);
            assert!(t.len() <= 5 * cap);
        }
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
