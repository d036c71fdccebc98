//! The contact-me planner: which devices to contact when, sans-IO and deterministic.
//!
//! Time is passed in as a [`Duration`] since an arbitrary origin. At most one contact-me per
//! phone per [`min_interval`](ContactPolicy::min_interval), nothing within the phone's contact
//! gap after a `204` ([`after_success`](ContactPolicy::after_success)), failures backing off
//! exponentially up to [`backoff_cap`](ContactPolicy::backoff_cap), at most
//! [`max_devices`](ContactPolicy::max_devices) tracked.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use dls_message::MacAddr;

use super::{ContactPolicy, ContactRefused, ContactResult};

/// What the planner knows of one device.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The earliest time of the next contact-me.
    next_at: Duration,
    /// Failures since the last success.
    failures: u32,
    /// `Some(sequence number of the want)` while the device is wanted.
    want: Option<u64>,
    /// An attempt is in flight.
    in_flight: bool,
    /// Wanted, not in flight, and `next_at` has come (it sits in `ready`, not `waiting`).
    ready: bool,
}

/// Decides which devices get a contact-me when; sans-IO and deterministic.
///
/// Every tracked device is in exactly one state: wanted and waiting for its next permitted
/// time (`waiting`, by time), wanted and due (`ready`, by age of the want), in flight (in no
/// set), or not wanted but still within its interval (`cooling`, by time, forgotten once the
/// interval has passed so that a new want still respects it).
#[derive(Debug)]
pub(crate) struct ContactPlanner {
    policy: ContactPolicy,
    entries: HashMap<MacAddr, Entry>,
    waiting: BTreeSet<(Duration, u64, MacAddr)>,
    ready: BTreeSet<(u64, MacAddr)>,
    cooling: BTreeSet<(Duration, MacAddr)>,
    seq: u64,
    latest: Duration,
    refused: u64,
}

impl ContactPlanner {
    /// An empty planner for `policy` (clamped: see [`ContactPolicy::clamped`]).
    #[must_use]
    pub(crate) fn new(policy: &ContactPolicy) -> Self {
        Self {
            policy: policy.clamped(),
            entries: HashMap::new(),
            waiting: BTreeSet::new(),
            ready: BTreeSet::new(),
            cooling: BTreeSet::new(),
            seq: 0,
            latest: Duration::ZERO,
            refused: 0,
        }
    }

    /// The policy as applied.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn policy(&self) -> &ContactPolicy {
        &self.policy
    }

    /// How many devices are tracked (wanted, in flight, or within their interval).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// How many `want`s were refused because of the bound.
    #[must_use]
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    /// `mac` needs contacting. Idempotent: a device already wanted keeps its place (its
    /// first want's age). Returns whether the device was newly wanted.
    ///
    /// # Errors
    /// [`ContactRefused::TooManyDevices`] when the device is not tracked and the bound is
    /// reached.
    pub(crate) fn want(&mut self, mac: MacAddr, now: Duration) -> Result<bool, ContactRefused> {
        self.observe(now);
        if let Some(e) = self.entries.get(&mac).copied() {
            if e.want.is_some() {
                return Ok(false);
            }
            self.detach(mac, &e);
            let e = Entry { want: Some(self.next_seq()), ..e };
            self.attach(mac, e);
            return Ok(true);
        }
        if self.entries.len() >= self.policy.max_devices {
            self.refused += 1;
            return Err(ContactRefused::TooManyDevices { limit: self.policy.max_devices });
        }
        let e = Entry { next_at: now, failures: 0, want: Some(self.next_seq()), in_flight: false, ready: false };
        self.attach(mac, e);
        Ok(true)
    }

    /// The wanted devices whose next permitted time has come and that are not in flight, at
    /// most `max`, oldest want first. They stay due until [`started`](Self::started).
    pub(crate) fn due(&mut self, now: Duration, max: usize) -> Vec<MacAddr> {
        self.observe(now);
        while let Some(&(at, seq, mac)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.waiting.remove(&(at, seq, mac));
            self.ready.insert((seq, mac));
            if let Some(e) = self.entries.get_mut(&mac) {
                e.ready = true;
            }
        }
        self.ready.iter().take(max).map(|&(_, mac)| mac).collect()
    }

    /// An attempt to contact `mac` starts now. Returns `false` (and changes nothing) unless
    /// the device is tracked, not in flight and its next permitted time has come: the caller
    /// must then not send. The want is consumed.
    pub(crate) fn started(&mut self, mac: MacAddr, now: Duration) -> bool {
        self.observe(now);
        let Some(e) = self.entries.get(&mac).copied() else { return false };
        if e.in_flight || e.next_at > now {
            return false;
        }
        self.detach(mac, &e);
        self.attach(mac, Entry { in_flight: true, want: None, ..e });
        true
    }

    /// The attempt to contact `mac` ended at `now` with `result`: after a success the next
    /// contact-me is `after_success` away, after the n-th failure in a row
    /// `min(backoff_cap, backoff_base·2^(n-1))`, never less than `min_interval`
    /// ([`ContactPacing::after_attempt`](dls_store::rules::contact::ContactPacing::after_attempt)).
    /// A device wanted again while in flight becomes due then.
    pub(crate) fn finished(&mut self, mac: MacAddr, now: Duration, result: &ContactResult) {
        self.observe(now);
        let e = match self.entries.get(&mac).copied() {
            Some(e) => {
                self.detach(mac, &e);
                e
            }
            None if self.entries.len() < self.policy.max_devices => {
                Entry { next_at: now, failures: 0, want: None, in_flight: false, ready: false }
            }
            None => return,
        };
        let (failures, next_at) = self.policy.pacing().after_attempt(e.failures, e.next_at, now, result.is_success());
        self.attach(mac, Entry { next_at, failures, in_flight: false, ready: false, ..e });
    }

    /// An attempt was [`started`](Self::started) but nothing was sent (e.g. nothing is pending
    /// any more): the device is neither in flight nor wanted, and its next permitted time is
    /// as it was before.
    pub(crate) fn cancel(&mut self, mac: MacAddr) {
        let Some(e) = self.entries.get(&mac).copied() else { return };
        self.detach(mac, &e);
        self.attach(mac, Entry { in_flight: false, want: None, ready: false, ..e });
    }

    /// `mac` no longer needs contacting. Its next permitted time is kept until it passes (a
    /// new want still respects it); an attempt in flight stays in flight.
    #[cfg_attr(not(test), allow(dead_code, reason = "API: a device whose jobs were cancelled"))]
    pub(crate) fn forget(&mut self, mac: MacAddr) {
        let Some(e) = self.entries.get(&mac).copied() else { return };
        if e.want.is_none() {
            return;
        }
        self.detach(mac, &e);
        self.attach(mac, Entry { want: None, ready: false, ..e });
    }

    /// The device's next permitted time, if it is tracked.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn next_at(&self, mac: MacAddr) -> Option<Duration> {
        self.entries.get(&mac).map(|e| e.next_at)
    }

    /// When the sender should look again: the earliest time a wanted device not in flight is
    /// due (a time not after the latest `now` seen when one is due already); `None` when no
    /// device is wanted (or all wanted ones are in flight).
    #[must_use]
    pub(crate) fn next_wakeup(&self) -> Option<Duration> {
        if self.ready.is_empty() { self.waiting.first().map(|&(at, _, _)| at) } else { Some(self.latest) }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Notes the time and forgets devices that are not wanted and whose interval has passed.
    fn observe(&mut self, now: Duration) {
        self.latest = self.latest.max(now);
        while let Some(&(at, mac)) = self.cooling.first() {
            if at > now {
                break;
            }
            self.cooling.remove(&(at, mac));
            self.entries.remove(&mac);
        }
    }

    fn detach(&mut self, mac: MacAddr, e: &Entry) {
        match (e.in_flight, e.want) {
            (true, _) => {}
            (false, Some(seq)) if e.ready => {
                self.ready.remove(&(seq, mac));
            }
            (false, Some(seq)) => {
                self.waiting.remove(&(e.next_at, seq, mac));
            }
            (false, None) => {
                self.cooling.remove(&(e.next_at, mac));
            }
        }
    }

    fn attach(&mut self, mac: MacAddr, mut e: Entry) {
        match (e.in_flight, e.want) {
            (true, _) => e.ready = false,
            (false, Some(seq)) if e.ready => {
                self.ready.insert((seq, mac));
            }
            (false, Some(seq)) => {
                self.waiting.insert((e.next_at, seq, mac));
            }
            (false, None) => {
                e.ready = false;
                self.cooling.insert((e.next_at, mac));
            }
        }
        self.entries.insert(mac, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr::from_bytes([0x00, 0x1a, 0xe8, 0x00, 0x00, n])
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn planner() -> ContactPlanner {
        ContactPlanner::new(&ContactPolicy::default())
    }

    /// Runs one attempt in the planner: due, started, finished.
    fn attempt_at(p: &mut ContactPlanner, m: MacAddr, now: Duration, result: &ContactResult) {
        assert_eq!(p.due(now, 10), vec![m], "due at {now:?}");
        assert!(p.started(m, now));
        p.finished(m, now, result);
    }

    #[test]
    fn a_burst_of_wants_gives_one_attempt_per_interval() {
        let mut p = planner();
        let a = mac(1);
        for _ in 0..1000 {
            assert!(p.want(a, s(0)).is_ok());
        }
        assert_eq!(p.tracked(), 1);
        assert_eq!(p.due(s(0), 10), vec![a]);
        assert_eq!(p.due(s(0), 10), vec![a], "due until started");
        assert!(p.started(a, s(0)));
        assert!(!p.started(a, s(0)), "in flight");
        for t in 0..1000 {
            let _ = p.want(a, Duration::from_millis(t));
            assert!(p.due(Duration::from_millis(t), 10).is_empty(), "in flight");
        }
        p.finished(a, s(1), &ContactResult::Status(500));
        assert_eq!(p.next_wakeup(), Some(s(61)));
        for t in 1..61 {
            assert!(p.due(s(t), 10).is_empty(), "nothing at {t} s");
            assert!(!p.started(a, s(t)), "started refuses at {t} s");
        }
        assert_eq!(p.due(s(61), 10), vec![a], "wanted during the attempt: due after the interval");
    }

    #[test]
    fn nothing_within_the_contact_gap_after_a_success() {
        let mut p = planner();
        let a = mac(1);
        p.want(a, s(0)).expect("want");
        assert!(p.started(a, s(0)));
        p.finished(a, s(1), &ContactResult::Contacted);
        p.want(a, s(1)).expect("want");
        assert_eq!(p.next_wakeup(), Some(s(301)));
        for t in [1, 60, 61, 120, 300] {
            assert!(p.due(s(t), 10).is_empty(), "nothing at {t} s");
        }
        assert_eq!(p.due(s(301), 10), vec![a]);
    }

    #[test]
    fn failures_back_off_to_the_cap_and_a_success_resets() {
        let mut p = planner();
        let a = mac(1);
        let mut now = s(0);
        p.want(a, now).expect("want");
        let mut delays = Vec::new();
        for _ in 0..9 {
            attempt_at(&mut p, a, now, &ContactResult::Timeout);
            p.want(a, now).expect("want");
            let next = p.next_wakeup().expect("wanted");
            delays.push((next - now).as_secs());
            assert!(p.due(next - Duration::from_millis(1), 10).is_empty());
            now = next;
        }
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        attempt_at(&mut p, a, now, &ContactResult::Contacted);
        p.want(a, now).expect("want");
        now += s(300);
        attempt_at(&mut p, a, now, &ContactResult::Unreachable("connection refused".into()));
        assert_eq!(p.next_at(a), Some(now + s(60)), "the count restarts after a success");
    }

    #[test]
    fn the_minimum_interval_is_never_below_a_minute() {
        let policy = ContactPolicy {
            min_interval: s(1),
            after_success: s(5),
            backoff_base: s(10),
            backoff_cap: s(100),
            ..ContactPolicy::default()
        };
        let mut p = ContactPlanner::new(&policy);
        assert_eq!(p.policy().min_interval, s(60));
        assert_eq!(p.policy().after_success, s(60));
        let a = mac(1);
        let mut now = s(0);
        p.want(a, now).expect("want");
        let mut delays = Vec::new();
        for _ in 0..6 {
            attempt_at(&mut p, a, now, &ContactResult::Status(503));
            p.want(a, now).expect("want");
            let next = p.next_wakeup().expect("wanted");
            delays.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(delays, [60, 60, 60, 80, 100, 100]);
        attempt_at(&mut p, a, now, &ContactResult::Contacted);
        assert_eq!(p.next_at(a), Some(now + s(60)));
    }

    #[test]
    fn forget_stops_contacting_but_keeps_the_interval() {
        let mut p = planner();
        let (a, b) = (mac(1), mac(2));
        p.want(a, s(0)).expect("want");
        p.want(b, s(0)).expect("want");
        p.forget(a);
        assert_eq!(p.due(s(0), 10), vec![b]);
        p.forget(b);
        assert!(p.due(s(0), 10).is_empty());
        assert_eq!(p.next_wakeup(), None);
        assert_eq!(p.tracked(), 0, "never contacted: nothing to remember");

        p.want(a, s(10)).expect("want");
        attempt_at(&mut p, a, s(10), &ContactResult::Status(500));
        p.want(a, s(10)).expect("want");
        p.forget(a);
        assert_eq!(p.next_wakeup(), None);
        p.want(a, s(20)).expect("want");
        assert!(p.due(s(20), 10).is_empty(), "a new want respects the interval");
        assert_eq!(p.due(s(70), 10), vec![a]);
        p.forget(a);
        assert!(p.due(s(71), 10).is_empty());
        assert_eq!(p.tracked(), 0, "forgotten once the interval has passed");
    }

    #[test]
    fn cancel_restores_the_device() {
        let mut p = planner();
        let a = mac(1);
        p.want(a, s(0)).expect("want");
        assert!(p.started(a, s(0)));
        p.cancel(a);
        assert!(p.due(s(0), 10).is_empty(), "not wanted any more");
        p.want(a, s(0)).expect("want");
        assert_eq!(p.due(s(0), 10), vec![a], "nothing was sent: no interval");
    }

    #[test]
    fn due_respects_max_and_the_age_of_wants() {
        let mut p = planner();
        let (a, b, c, x) = (mac(1), mac(2), mac(3), mac(9));
        // x failed at 0 and is wanted again at once: due at 60.
        p.want(x, s(0)).expect("want");
        attempt_at(&mut p, x, s(0), &ContactResult::Timeout);
        p.want(x, s(0)).expect("want");
        p.want(c, s(10)).expect("want");
        p.want(a, s(11)).expect("want");
        p.want(b, s(12)).expect("want");
        p.want(c, s(13)).expect("want again");
        assert_eq!(p.due(s(12), 2), vec![c, a]);
        assert_eq!(p.due(s(70), 10), vec![x, c, a, b], "oldest want first, not earliest due");
        assert_eq!(p.due(s(70), 0), Vec::<MacAddr>::new());
        assert!(p.started(x, s(70)));
        assert!(p.started(c, s(70)));
        assert_eq!(p.due(s(70), 10), vec![a, b]);
        assert_eq!(p.next_wakeup(), Some(s(70)), "due now");
    }

    #[test]
    fn next_wakeup_follows_the_earliest_due_device() {
        let mut p = planner();
        assert_eq!(p.next_wakeup(), None);
        let (a, b) = (mac(1), mac(2));
        p.want(a, s(5)).expect("want");
        assert_eq!(p.next_wakeup(), Some(s(5)));
        assert!(p.started(a, s(5)));
        assert_eq!(p.next_wakeup(), None, "in flight");
        p.finished(a, s(6), &ContactResult::Status(404));
        assert_eq!(p.next_wakeup(), None, "not wanted");
        p.want(a, s(7)).expect("want");
        p.want(b, s(8)).expect("want");
        assert_eq!(p.next_wakeup(), Some(s(8)));
        assert_eq!(p.due(s(8), 10), vec![b]);
        assert!(p.started(b, s(8)));
        assert_eq!(p.next_wakeup(), Some(s(66)));
    }

    #[test]
    fn the_number_of_devices_is_bounded() {
        let mut p = ContactPlanner::new(&ContactPolicy { max_devices: 3, ..ContactPolicy::default() });
        for n in 1..=3 {
            assert_eq!(p.want(mac(n), s(0)), Ok(true));
        }
        assert_eq!(p.want(mac(1), s(0)), Ok(false), "already wanted");
        assert_eq!(p.want(mac(4), s(0)), Err(ContactRefused::TooManyDevices { limit: 3 }));
        assert_eq!(p.refused(), 1);
        assert_eq!(p.tracked(), 3);
        assert_eq!(p.due(s(0), 10), vec![mac(1), mac(2), mac(3)]);
        assert!(p.started(mac(1), s(0)));
        p.finished(mac(1), s(0), &ContactResult::Contacted);
        assert_eq!(p.due(s(0), 10), vec![mac(2), mac(3)]);
        assert!(p.want(mac(4), s(1)).is_err(), "mac 1 is within its gap");
        assert_eq!(p.want(mac(4), s(300)), Ok(true), "mac 1's gap has passed");
        assert_eq!(p.tracked(), 3);
    }
}
