//! Connection limits of a listener besides its global cap: the open connections per
//! source (so that one client cannot fill the cap and lock every phone out), and the
//! bounded log of refused connections (a summary line at most every
//! [`REFUSAL_LOG_INTERVAL`], not a line each).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one summary line of refused connections per listener in this time.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Distinct sources a summary keeps counts for (to name the top one); refusals from
/// further sources are counted in the totals only. Bounds the memory an attacker with many
/// addresses can make the log use.
const MAX_TRACKED_SOURCES: usize = 1024;

/// Where a connection comes from, as the per-source limit counts it: an IPv4 address (an
/// IPv4-mapped IPv6 address counts as its IPv4 address), or an IPv6 /64 prefix (one
/// subscriber or subnet holds a whole /64, so counting single IPv6 addresses would limit
/// nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The open connections of each source, at most `cap` each. An entry exists only while its
/// source has a connection open, so the map holds at most as many entries as the
/// listener has connections.
#[derive(Debug)]
pub(crate) struct SourceSlots {
    cap: usize,
    open: Mutex<HashMap<Source, usize>>,
}

impl SourceSlots {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, open: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more connection from `source`, or `None` if it has `cap` open.
    pub(crate) fn try_acquire(self: &Arc<Self>, source: Source) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(source).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot { slots: self.clone(), source })
    }

    #[cfg(test)]
    fn open(&self, source: Source) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(&source).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One open connection of a source; gives its slot back when dropped (when the
/// connection ends, however it ends — before or after its TLS handshake).
#[derive(Debug)]
pub(crate) struct SourceSlot {
    slots: Arc<SourceSlots>,
    source: Source,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The listener had `max-connections` open.
    GlobalCap,
    /// The source had `max-connections-per-source` open.
    PerSourceCap,
}

/// Connections the listeners refused since the start, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedConnections {
    /// Refused because the listener had `max-connections` open.
    pub global_cap: u64,
    /// Refused because their source had `max-connections-per-source` open.
    pub per_source_cap: u64,
}

/// The running totals of one listener.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounters {
    global_cap: AtomicU64,
    per_source_cap: AtomicU64,
}

impl RefusalCounters {
    pub(crate) fn count(&self, why: Refusal) {
        let c = match why {
            Refusal::GlobalCap => &self.global_cap,
            Refusal::PerSourceCap => &self.per_source_cap,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> RefusedConnections {
        RefusedConnections {
            global_cap: self.global_cap.load(Ordering::Relaxed),
            per_source_cap: self.per_source_cap.load(Ordering::Relaxed),
        }
    }
}

/// What one summary line says: the refusals since the previous line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RefusalSummary {
    pub(crate) global_cap: u64,
    pub(crate) per_source_cap: u64,
    /// The source refused most often, and how often (among the tracked sources).
    pub(crate) top: Option<(Source, u64)>,
    /// The time since the first refusal the line covers.
    pub(crate) over: Duration,
}

impl RefusalSummary {
    pub(crate) fn total(&self) -> u64 {
        self.global_cap + self.per_source_cap
    }

    /// Writes the line (WARN).
    pub(crate) fn log(&self, listener: &str, global_cap: usize, per_source_cap: usize) {
        let top = match self.top {
            Some((s, n)) => format!("; top source {s} ({n})"),
            None => String::new(),
        };
        tracing::warn!(
            listener,
            refused = self.total(),
            at_global_cap = self.global_cap,
            at_per_source_cap = self.per_source_cap,
            "refused {} connection{} in {:.1} s ({} at the global cap of {global_cap}, {} at the per-source cap of \
             {per_source_cap}){top}",
            self.total(),
            if self.total() == 1 { "" } else { "s" },
            self.over.as_secs_f64(),
            self.global_cap,
            self.per_source_cap,
        );
    }
}

/// The refusals of one listener not yet logged (sans-IO: the caller gives the time).
/// The first refusal after a quiet interval is logged at once, with a line of its own;
/// later ones wait until the interval since the last line is over ([`Self::due`]).
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    last_line: Option<Instant>,
    first_pending: Option<Instant>,
    global_cap: u64,
    per_source_cap: u64,
    by_source: HashMap<Source, u64>,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_line: None,
            first_pending: None,
            global_cap: 0,
            per_source_cap: 0,
            by_source: HashMap::new(),
        }
    }

    /// Counts a refusal; returns the summary to log now, if a line is due.
    pub(crate) fn refuse(&mut self, now: Instant, source: Source, why: Refusal) -> Option<RefusalSummary> {
        match why {
            Refusal::GlobalCap => self.global_cap += 1,
            Refusal::PerSourceCap => self.per_source_cap += 1,
        }
        self.first_pending.get_or_insert(now);
        if let Some(n) = self.by_source.get_mut(&source) {
            *n += 1;
        } else if self.by_source.len() < MAX_TRACKED_SOURCES {
            self.by_source.insert(source, 1);
        }
        match self.last_line {
            Some(t) if now < t + self.interval => None,
            _ => self.take(now),
        }
    }

    /// When the refusals not yet logged are due (`None`: there are none).
    pub(crate) fn due(&self) -> Option<Instant> {
        // A pending refusal always follows a line: the first one is logged at once.
        self.first_pending.and(self.last_line).map(|t| t + self.interval)
    }

    /// The summary of the refusals not yet logged, if any (when [`Self::due`], and at
    /// shutdown).
    pub(crate) fn flush(&mut self, now: Instant) -> Option<RefusalSummary> {
        self.take(now)
    }

    fn take(&mut self, now: Instant) -> Option<RefusalSummary> {
        let first = self.first_pending.take()?;
        let top = self.by_source.iter().max_by_key(|(_, n)| **n).map(|(s, n)| (*s, *n));
        let summary = RefusalSummary {
            global_cap: std::mem::take(&mut self.global_cap),
            per_source_cap: std::mem::take(&mut self.per_source_cap),
            top,
            over: now.saturating_duration_since(first),
        };
        self.by_source.clear();
        self.last_line = Some(now);
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, Instant};

    use super::{Refusal, RefusalLog, Source, SourceSlots};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        assert_eq!(Source::of(ip("192.0.2.7")).to_string(), "192.0.2.7");
        assert_eq!(Source::of(ip("::ffff:192.0.2.7")), Source::of(ip("192.0.2.7")));
        assert_eq!(Source::of(ip("2001:db8:1:2:aaaa::1")), Source::of(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(Source::of(ip("2001:db8:1:2::1")), Source::of(ip("2001:db8:1:3::1")));
        assert_eq!(Source::of(ip("2001:db8:1:2:aaaa::1")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_source_gets_at_most_its_cap_and_slots_come_back() {
        let slots = SourceSlots::new(2);
        let (a, b) = (Source::of(ip("127.0.0.1")), Source::of(ip("127.0.0.2")));
        let first = slots.try_acquire(a).expect("first");
        let second = slots.try_acquire(a).expect("second");
        assert!(slots.try_acquire(a).is_none(), "over the cap");
        let other = slots.try_acquire(b).expect("another source is not affected");
        assert_eq!((slots.open(a), slots.open(b)), (2, 1));
        drop(first);
        let third = slots.try_acquire(a).expect("a slot came back");
        drop((second, third, other));
        assert_eq!(slots.sources(), 0, "no entry without an open connection");
    }

    #[test]
    fn refusals_make_at_most_one_line_per_interval_and_lose_no_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let (a, b) = (Source::of(ip("198.51.100.1")), Source::of(ip("198.51.100.2")));
        assert_eq!(log.due(), None);
        let first = log.refuse(at(0), a, Refusal::PerSourceCap).expect("the first is logged at once");
        assert_eq!((first.total(), first.top), (1, Some((a, 1))));
        // A flood: 6,600 refusals in the next second make no line ...
        let mut lines = 0;
        for i in 0..6_600u64 {
            let (s, why) = if i % 3 == 0 { (b, Refusal::GlobalCap) } else { (a, Refusal::PerSourceCap) };
            lines += usize::from(log.refuse(at(1 + i / 7), s, why).is_some());
        }
        assert_eq!(lines, 0);
        // ... until the interval is over: then one line with all of them.
        assert_eq!(log.due(), Some(at(10_000)));
        let second = log.flush(at(10_000)).expect("due");
        assert_eq!((second.global_cap, second.per_source_cap), (2_200, 4_400));
        assert_eq!(second.top, Some((a, 4_400)));
        assert_eq!(second.over, Duration::from_millis(9_999));
        assert_eq!(log.due(), None);
        assert!(log.flush(at(30_000)).is_none(), "nothing pending, no line");
        // After a quiet interval the next refusal is logged at once again.
        assert!(log.refuse(at(25_000), b, Refusal::GlobalCap).is_some());
        assert!(log.refuse(at(25_001), b, Refusal::GlobalCap).is_none());
    }

    #[test]
    fn many_sources_use_bounded_memory() {
        let mut log = RefusalLog::new(Duration::from_secs(10));
        let t = Instant::now();
        for i in 0..100_000u32 {
            let _ = log.refuse(t, Source::of(IpAddr::from(i.to_be_bytes())), Refusal::GlobalCap);
        }
        assert!(log.by_source.len() <= super::MAX_TRACKED_SOURCES);
        let s = log.flush(t + Duration::from_secs(10)).expect("pending");
        assert_eq!(s.total(), 99_999, "every refusal counted");
    }
}
