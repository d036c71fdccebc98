//! Contact-me: making a phone call in.
//!
//! The DLS sends plain HTTP `POST http://<phone>:8085/contact_dls.html/ContactDLS` with the form
//! body `ContactMe=true` (optionally `&dls_ip_addr=…&dls_ip_port=…`) to the URI the phone
//! advertises in its `contact-me-uri` item; the phone answers `204 No Content` and opens a
//! `solicited` interaction (`wpi-protocol.md` §1).
//!
//! Two parts:
//!
//! * [`ContactPlanner`], sans-IO and deterministic (time is passed in as a [`Duration`] since an
//!   arbitrary origin): which devices to contact now. At most one contact-me per phone per
//!   [`min_interval`](ContactPolicy::min_interval) (never less than a minute: early firmware
//!   crashed on two requests within a second), nothing within the phone's contact gap after a
//!   `204` ([`after_success`](ContactPolicy::after_success)), failures backing off exponentially
//!   up to a cap, a bounded number of devices tracked.
//! * [`spawn`]: the async sender around it. [`ContactHandle::request`] marks a device as wanted
//!   (non-blocking, idempotent); the loop asks `targets` (off the executor) for the device's
//!   contact-me URI when it is due, sends the POST within the attempt timeout, with bounded
//!   concurrency, and hands every attempt to `report` (off the executor).
//!
//! Whom it posts to: the `contact-me-uri` comes from the phone, over the default-mode port,
//! which anyone can reach. So that a caller cannot make the DLS post to other hosts, the
//! URI's host must be the IP address the phone last called the DLS from, unless
//! [`ContactPolicy::any_host`] is set (for networks where phones call through NAT or a
//! proxy and the URI they report is still reachable). Otherwise the attempt is not made
//! ([`ContactResult::Refused`], shown on the device's jobs).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dls_message::MacAddr;
use dls_store::ContactTarget;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// The shortest interval between two contact-me requests to one phone, whatever the policy says.
pub(crate) const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(60);
/// The longest contact-me URI accepted.
pub(crate) const MAX_URI_BYTES: usize = 2048;
/// How much of a phone's answer is read (and ignored).
const MAX_RESPONSE_BODY: usize = 4096;
/// The most of a phone's answer buffered while reading its head (hyper's minimum).
const MAX_RESPONSE_HEAD: usize = 8192;
/// The most concurrent attempts a policy may ask for.
const MAX_CONCURRENCY: usize = 4096;

/// How contact-me requests are paced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContactPolicy {
    /// The shortest interval between two contact-me requests to one phone (default and
    /// minimum 60 s: a smaller value is raised to 60 s).
    pub(crate) min_interval: Duration,
    /// After a `204`, no new contact-me before this (default 300 s, the phone's default contact
    /// gap: a phone ignores contact-me within it), even if jobs remain.
    pub(crate) after_success: Duration,
    /// The delay after the first failure; it doubles with each further failure (default 60 s).
    pub(crate) backoff_base: Duration,
    /// The longest delay after failures (default 3600 s).
    pub(crate) backoff_cap: Duration,
    /// The time allowed for one attempt: connect, request, answer (default 5 s).
    pub(crate) attempt_timeout: Duration,
    /// The most attempts in flight across the fleet (default 32).
    pub(crate) concurrency: usize,
    /// The most devices tracked (wanted, in flight or within their interval); further
    /// requests are refused (default 1,000,000).
    pub(crate) max_devices: usize,
    /// Sent as `dls_ip_addr` when set: the address the phone should call.
    pub(crate) dls_ip_addr: Option<String>,
    /// Sent as `dls_ip_port` when set: the port the phone should call.
    pub(crate) dls_ip_port: Option<u16>,
    /// Post to whatever host a phone's `contact-me-uri` names (default `false`: only to
    /// the IP address the phone last called from; see the module's documentation).
    pub(crate) any_host: bool,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            min_interval: MIN_INTERVAL_FLOOR,
            after_success: Duration::from_secs(300),
            backoff_base: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(5),
            concurrency: 32,
            max_devices: 1_000_000,
            dls_ip_addr: None,
            dls_ip_port: None,
            any_host: false,
        }
    }
}

impl ContactPolicy {
    /// The policy as applied: `min_interval` at least 60 s, `after_success` at least
    /// `min_interval`, `backoff_cap` at least `backoff_base`, `concurrency` in 1..=4096,
    /// `max_devices` at least 1.
    #[must_use]
    pub(crate) fn clamped(&self) -> Self {
        let min_interval = self.min_interval.max(MIN_INTERVAL_FLOOR);
        Self {
            min_interval,
            after_success: self.after_success.max(min_interval),
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap.max(self.backoff_base),
            attempt_timeout: self.attempt_timeout,
            concurrency: self.concurrency.clamp(1, MAX_CONCURRENCY),
            max_devices: self.max_devices.max(1),
            dls_ip_addr: self.dls_ip_addr.clone(),
            dls_ip_port: self.dls_ip_port,
            any_host: self.any_host,
        }
    }

    /// The form body: `ContactMe=true`, then `dls_ip_addr` and `dls_ip_port` when set.
    #[must_use]
    pub(crate) fn body(&self) -> String {
        let mut body = String::from("ContactMe=true");
        if let Some(addr) = &self.dls_ip_addr {
            body.push_str("&dls_ip_addr=");
            body.push_str(&crate::percent_encode(addr));
        }
        if let Some(port) = self.dls_ip_port {
            body.push_str(&format!("&dls_ip_port={port}"));
        }
        body
    }
}

/// The outcome of one contact-me attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContactResult {
    /// The phone answered `204 No Content`: it will call in.
    Contacted,
    /// The phone (or whatever listens there) answered another status.
    Status(u16),
    /// No answer within the attempt timeout.
    Timeout,
    /// No exchange: connection refused, reset, name not resolved, unusable URI, …
    Unreachable(String),
    /// Not sent: the URI's host is not the address the phone calls from.
    Refused(String),
}

impl ContactResult {
    /// Whether the phone accepted the contact-me (`204`).
    #[must_use]
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Self::Contacted)
    }
}

impl fmt::Display for ContactResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contacted => f.write_str("contact-me answered 204"),
            Self::Status(s) => write!(f, "contact-me answered {s}"),
            Self::Timeout => f.write_str("contact-me timed out"),
            Self::Unreachable(why) => write!(f, "contact-me failed: {why}"),
            Self::Refused(why) => write!(f, "contact-me not sent: {why}"),
        }
    }
}

/// One attempt, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContactAttempt {
    /// When the attempt started, in seconds since the Unix epoch.
    pub(crate) at_unix_secs: u64,
    /// The URI the contact-me went to (as `targets` gave it).
    pub(crate) uri: String,
    /// What came of it.
    pub(crate) result: ContactResult,
}

/// Why a contact-me request was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ContactRefused {
    /// The planner tracks as many devices as it may.
    #[error("contact-me refused: {limit} devices are already waiting")]
    TooManyDevices {
        /// The bound.
        limit: usize,
    },
    /// The sender has stopped.
    #[error("contact-me refused: the sender has stopped")]
    Stopped,
}

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
    /// `min(backoff_cap, backoff_base·2^(n-1))`, never less than `min_interval`. A device wanted
    /// again while in flight becomes due then.
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
        let (failures, delay) = if result.is_success() {
            (0, self.policy.after_success)
        } else {
            let failures = e.failures.saturating_add(1);
            (failures, self.backoff(failures))
        };
        let next_at = (now + delay).max(e.next_at);
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

    fn backoff(&self, failures: u32) -> Duration {
        let p = &self.policy;
        let factor = 1u32 << failures.saturating_sub(1).min(31);
        p.backoff_base.checked_mul(factor).map_or(p.backoff_cap, |d| d.min(p.backoff_cap)).max(p.min_interval)
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

/// Gives the contact-me URI of a device that still needs contacting, and the address it
/// calls from (`None`: nothing pending any more, or no `contact-me-uri`). Called on a
/// blocking thread.
pub(crate) type ContactTargets = Arc<dyn Fn(MacAddr) -> Option<ContactTarget> + Send + Sync>;
/// Records an attempt (e.g. in the device's job listing). Called on a blocking thread.
pub(crate) type ContactReport = Arc<dyn Fn(MacAddr, &ContactAttempt) + Send + Sync>;

struct Shared {
    policy: ContactPolicy,
    body: Bytes,
    planner: Mutex<ContactPlanner>,
    notify: Notify,
    origin: Instant,
    stopped: AtomicBool,
    targets: ContactTargets,
    report: ContactReport,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy)
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn planner(&self) -> MutexGuard<'_, ContactPlanner> {
        self.planner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running contact-me sender: ask it to contact devices. Clones share the sender.
#[derive(Clone, Debug)]
pub(crate) struct ContactHandle {
    shared: Arc<Shared>,
    #[cfg_attr(not(test), allow(dead_code, reason = "read by `stopped`"))]
    done: watch::Receiver<bool>,
}

impl ContactHandle {
    /// `mac` needs contacting (pending jobs). Never blocks on I/O and never queues: the device
    /// is marked as wanted (a no-op when it already is) and the sender woken. The sender asks
    /// `targets` whether the device still needs contacting when it is due.
    ///
    /// # Errors
    /// [`ContactRefused`] when too many devices are tracked or the sender has stopped.
    pub(crate) fn request(&self, mac: MacAddr) -> Result<(), ContactRefused> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(ContactRefused::Stopped);
        }
        let now = self.shared.now();
        let (outcome, refused) = {
            let mut planner = self.shared.planner();
            (planner.want(mac, now), planner.refused())
        };
        match outcome {
            Ok(true) => {
                self.shared.notify.notify_one();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                // Logarithmically spaced: the 1st, 2nd, 4th, 8th, … refusal.
                if refused.is_power_of_two() {
                    warn!(%mac, refused, "{e}");
                }
                Err(e)
            }
        }
    }

    /// Whether the sender has stopped.
    #[cfg_attr(not(test), allow(dead_code, reason = "API for the service's shutdown; used by the tests"))]
    #[must_use]
    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
    }

    /// Returns once the sender's loop has ended (after `shutdown`).
    #[cfg_attr(not(test), allow(dead_code, reason = "API for the service's shutdown; used by the tests"))]
    pub(crate) async fn stopped(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

/// Starts the contact-me sender on the current tokio runtime. It runs until `shutdown` becomes
/// `true` (or its sender is dropped); attempts in flight are then abandoned.
pub(crate) fn spawn(
    policy: ContactPolicy,
    targets: ContactTargets,
    report: ContactReport,
    shutdown: watch::Receiver<bool>,
) -> ContactHandle {
    let policy = policy.clamped();
    let shared = Arc::new(Shared {
        body: Bytes::from(policy.body()),
        planner: Mutex::new(ContactPlanner::new(&policy)),
        policy,
        notify: Notify::new(),
        origin: Instant::now(),
        stopped: AtomicBool::new(false),
        targets,
        report,
    });
    let (done_tx, done) = watch::channel(false);
    tokio::spawn(run(shared.clone(), shutdown, done_tx));
    ContactHandle { shared, done }
}

async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>, done: watch::Sender<bool>) {
    let permits = Arc::new(Semaphore::new(shared.policy.concurrency));
    let mut attempts = JoinSet::new();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        while let Some(r) = attempts.try_join_next() {
            if let Err(e) = r {
                error!("contact-me attempt failed: {e}");
            }
        }
        let now = shared.now();
        let free = permits.available_permits();
        let (batch, wake) = {
            let mut planner = shared.planner();
            let mut batch = Vec::new();
            if free > 0 {
                for mac in planner.due(now, free) {
                    if planner.started(mac, now) {
                        batch.push(mac);
                    }
                }
            }
            (batch, planner.next_wakeup())
        };
        for mac in batch {
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    attempts.spawn(attempt(shared.clone(), mac, permit));
                }
                Err(_) => shared.planner().cancel(mac),
            }
        }
        // A wake-up not after `now` means devices are due but every permit is taken: an
        // attempt ending notifies.
        let deadline = wake.filter(|w| *w > now).map(|w| shared.origin + w);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = shared.notify.notified() => {}
            () = sleep => {}
        }
    }
    shared.stopped.store(true, Ordering::Release);
    attempts.shutdown().await;
    done.send_replace(true);
    debug!("contact-me sender stopped");
}

/// One attempt for `mac`, already `started` in the planner.
async fn attempt(shared: Arc<Shared>, mac: MacAddr, permit: OwnedSemaphorePermit) {
    let targets = shared.targets.clone();
    let target = match tokio::task::spawn_blocking(move || targets(mac)).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            debug!(%mac, "nothing to contact any more");
            shared.planner().cancel(mac);
            drop(permit);
            shared.notify.notify_one();
            return;
        }
        Err(e) => {
            error!(%mac, "looking up the contact-me target failed: {e}");
            shared.planner().cancel(mac);
            drop(permit);
            shared.notify.notify_one();
            return;
        }
    };
    let at_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let caller = (!shared.policy.any_host).then_some(target.caller);
    let uri = target.uri;
    let result = send(&uri, caller, shared.body.clone(), shared.policy.attempt_timeout).await;
    debug!(%mac, "{result}");
    {
        let now = shared.now();
        let mut planner = shared.planner();
        planner.finished(mac, now, &result);
        // Wanted again: `targets` decides at the next permitted time whether it still is.
        let _ = planner.want(mac, now);
    }
    let report = shared.report.clone();
    let record = ContactAttempt { at_unix_secs, uri, result };
    if let Err(e) = tokio::task::spawn_blocking(move || report(mac, &record)).await {
        error!(%mac, "recording the contact-me attempt failed: {e}");
    }
    drop(permit);
    shared.notify.notify_one();
}

/// A parsed `http://host[:port]/path` contact-me URI.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    host: TargetHost,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    /// The path and query.
    path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TargetHost {
    Ip(IpAddr),
    Name(String),
}

/// Parses a contact-me URI strictly: `http://host[:port]/path[?query]`, host an IP literal
/// (IPv6 in brackets, no zone) or a DNS name, no userinfo, no fragment, printable ASCII, at
/// most [`MAX_URI_BYTES`].
fn parse_uri(uri: &str) -> Result<Target, String> {
    let bad = |why: &str| {
        let mut shown: String = uri.chars().take(80).collect();
        if shown.len() < uri.len() {
            shown.push('…');
        }
        format!("unsupported contact-me-uri {shown:?} ({why})")
    };
    if uri.len() > MAX_URI_BYTES {
        return Err(bad("longer than 2048 bytes"));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("spaces, control or non-ASCII characters"));
    }
    let rest = match uri.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        _ => return Err(bad("not http://")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("userinfo"));
    }
    if !path.starts_with('/') {
        return Err(bad("no path"));
    }
    if path.contains('#') {
        return Err(bad("fragment"));
    }
    if PathAndQuery::from_str(path).is_err() {
        return Err(bad("path"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else { return Err(bad("host")) };
        let ip = Ipv6Addr::from_str(inside).map_err(|_| bad("host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("port"))?),
        };
        (TargetHost::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host = if let Ok(ip) = Ipv4Addr::from_str(host) {
            TargetHost::Ip(IpAddr::V4(ip))
        } else if is_dns_name(host) {
            TargetHost::Name(host.to_owned())
        } else {
            return Err(bad("host"));
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("port"))?
        }
        Some(_) => return Err(bad("port")),
    };
    Ok(Target { host, port, authority: authority.to_owned(), path: path.to_owned() })
}

/// A DNS name: labels of letters, digits and inner hyphens, 1–63 bytes each, 253 in all; the
/// last label not all digits (so that a malformed IPv4 address is not taken for a name).
fn is_dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&host.len())
        && host.split('.').all(label_ok)
        && !host.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Aborts the connection task when the attempt ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends one contact-me to `uri` within `timeout`.
/// Posts the contact-me to `uri`; with `caller` (`Some`), only if the URI's host is that
/// address (`Some(None)`: the phone's address is not known, nothing is sent).
async fn send(uri: &str, caller: Option<Option<IpAddr>>, body: Bytes, timeout: Duration) -> ContactResult {
    let target = match parse_uri(uri) {
        Ok(t) => t,
        Err(why) => return ContactResult::Unreachable(why),
    };
    if let Some(caller) = caller {
        if let Err(why) = check_caller(&target.host, caller) {
            return ContactResult::Refused(why);
        }
    }
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, exchange(&target, body)).await {
        Err(_) => ContactResult::Timeout,
        Ok(Err(why)) => ContactResult::Unreachable(why),
        Ok(Ok((status, response, _conn))) => {
            // Read a little of the answer, bounded, and ignore it.
            let _ = tokio::time::timeout_at(deadline, Limited::new(response, MAX_RESPONSE_BODY).collect()).await;
            if status == StatusCode::NO_CONTENT {
                ContactResult::Contacted
            } else {
                ContactResult::Status(status.as_u16())
            }
        }
    }
}

/// Whether a contact-me may go to `host`: only if it is `caller`, the address the phone
/// last called from (an IPv4 address and its IPv6-mapped form are the same).
fn check_caller(host: &TargetHost, caller: Option<IpAddr>) -> Result<(), String> {
    match (host, caller) {
        (_, None) => Err("the address the phone calls from is not known yet".into()),
        (TargetHost::Ip(ip), Some(c)) if ip.to_canonical() == c.to_canonical() => Ok(()),
        (TargetHost::Ip(ip), Some(c)) => {
            Err(format!("the contact-me-uri's host {ip} is not the address the phone calls from ({c})"))
        }
        (TargetHost::Name(name), Some(c)) => {
            let shown: String = name.chars().take(80).collect();
            Err(format!("the contact-me-uri names the host {shown:?}, not the address the phone calls from ({c})"))
        }
    }
}

async fn exchange(target: &Target, body: Bytes) -> Result<(StatusCode, hyper::body::Incoming, AbortOnDrop), String> {
    let tcp = match &target.host {
        TargetHost::Ip(ip) => tokio::net::TcpStream::connect(SocketAddr::new(*ip, target.port)).await,
        TargetHost::Name(name) => tokio::net::TcpStream::connect((name.as_str(), target.port)).await,
    }
    .map_err(|e| io_error(&e))?;
    let _ = tcp.set_nodelay(true);
    // A phone's answer is a status line and a few headers: hyper's smallest read buffer.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host = HeaderValue::from_str(&target.authority).map_err(|e| e.to_string())?;
    let request = Request::post(target.path.as_str())
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONNECTION, "close")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (parts, response) = response.into_parts();
    Ok((parts.status, response, conn))
}

/// A short description of a connection error (`connection refused`, …).
fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        k @ (K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::AddrNotAvailable
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::TimedOut) => k.to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use dls_workpoint::contact::{CONTACT_ME_PATH, ContactListener, ContactMe};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

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

    #[test]
    fn uris_are_parsed_strictly() {
        let t = parse_uri("http://192.0.2.7:8085/contact_dls.html/ContactDLS").expect("ok");
        assert_eq!(t.host, TargetHost::Ip("192.0.2.7".parse().expect("ip")));
        assert_eq!((t.port, t.authority.as_str(), t.path.as_str()), (8085, "192.0.2.7:8085", CONTACT_ME_PATH));
        let t = parse_uri("HTTP://[2001:db8::1]/x?y=1").expect("ok");
        assert_eq!((t.port, t.authority.as_str(), t.path.as_str()), (80, "[2001:db8::1]", "/x?y=1"));
        let t = parse_uri("http://phone-12.example.net:8085/c").expect("ok");
        assert_eq!(t.host, TargetHost::Name("phone-12.example.net".into()));
        for bad in [
            "https://192.0.2.7:8085/contact_dls.html/ContactDLS",
            "http://user@192.0.2.7:8085/c",
            "http://user:pw@192.0.2.7/c",
            "garbage",
            "",
            "http://",
            "http:///c",
            "http://192.0.2.7:8085",
            "http://192.0.2.7:8085?x",
            "http://192.0.2.7:/c",
            "http://192.0.2.7:0/c",
            "http://192.0.2.7:65536/c",
            "http://192.0.2.7:+80/c",
            "http://192.0.2.7:80:80/c",
            "http://999.0.2.7/c",
            "http://1.2.3/c",
            "http://-a.example/c",
            "http://a..example/c",
            "http://a_b.example/c",
            "http://[fe80::1%25eth0]/c",
            "http://[2001:db8::1/c",
            "http://[2001:db8::1]x/c",
            "http://192.0.2.7/c#f",
            "http://192.0.2.7/a b",
            "http://192.0.2.7/\u{e9}",
            "http://192.0.2.7/\n",
            "ftp://192.0.2.7/c",
        ] {
            let e = parse_uri(bad).expect_err(bad);
            assert!(e.starts_with("unsupported contact-me-uri"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let long = format!("http://192.0.2.7/{}", "a".repeat(MAX_URI_BYTES));
        let e = parse_uri(&long).expect_err("too long");
        assert!(e.contains("longer than 2048 bytes") && e.len() < 200, "{e}");
        assert!(parse_uri(&format!("http://192.0.2.7/{}", "a".repeat(MAX_URI_BYTES - 17))).is_ok());
    }

    #[test]
    fn results_display_on_one_line() {
        assert_eq!(ContactResult::Contacted.to_string(), "contact-me answered 204");
        assert_eq!(ContactResult::Status(500).to_string(), "contact-me answered 500");
        assert_eq!(ContactResult::Timeout.to_string(), "contact-me timed out");
        assert_eq!(
            ContactResult::Unreachable("connection refused".into()).to_string(),
            "contact-me failed: connection refused"
        );
    }

    #[test]
    fn the_body_names_the_dls_when_configured() {
        assert_eq!(ContactPolicy::default().body(), "ContactMe=true");
        let p = ContactPolicy { dls_ip_addr: Some("10.1.2.3".into()), dls_ip_port: Some(18443), ..Default::default() };
        assert_eq!(p.body(), "ContactMe=true&dls_ip_addr=10.1.2.3&dls_ip_port=18443");
        let p = ContactPolicy { dls_ip_addr: Some("a&b=c".into()), ..Default::default() };
        assert_eq!(p.body(), "ContactMe=true&dls_ip_addr=a%26b%3Dc");
    }

    /// A sender whose targets come from a map and whose reports go to a channel.
    struct Harness {
        handle: ContactHandle,
        uris: Arc<Mutex<HashMap<MacAddr, ContactTarget>>>,
        reports: mpsc::UnboundedReceiver<(MacAddr, ContactAttempt)>,
        shutdown: watch::Sender<bool>,
    }

    impl Harness {
        fn new(policy: ContactPolicy) -> Self {
            let uris: Arc<Mutex<HashMap<MacAddr, ContactTarget>>> = Arc::default();
            let (tx, reports) = mpsc::unbounded_channel();
            let (shutdown, rx) = watch::channel(false);
            let lookup = uris.clone();
            let handle = spawn(
                policy,
                Arc::new(move |mac| lookup.lock().expect("lock").get(&mac).cloned()),
                Arc::new(move |mac, attempt: &ContactAttempt| {
                    let _ = tx.send((mac, attempt.clone()));
                }),
                rx,
            );
            Self { handle, uris, reports, shutdown }
        }

        /// `uri` for `mac`, the phone calling from 127.0.0.1 (where the test phones listen).
        fn target(&self, mac: MacAddr, uri: String) {
            self.target_from(mac, uri, Some(IpAddr::from([127, 0, 0, 1])));
        }

        fn target_from(&self, mac: MacAddr, uri: String, caller: Option<IpAddr>) {
            self.uris.lock().expect("lock").insert(mac, ContactTarget::new(uri, caller));
        }

        async fn report(&mut self) -> (MacAddr, ContactAttempt) {
            tokio::time::timeout(LIMIT, self.reports.recv()).await.expect("a report in time").expect("a report")
        }

        async fn no_report(&mut self, wait: Duration) {
            if let Ok(r) = tokio::time::timeout(wait, self.reports.recv()).await {
                panic!("unexpected report {r:?}");
            }
        }
    }

    fn quick() -> ContactPolicy {
        ContactPolicy { attempt_timeout: Duration::from_millis(300), ..ContactPolicy::default() }
    }

    fn uri(addr: SocketAddr) -> String {
        format!("http://{addr}{CONTACT_ME_PATH}")
    }

    fn localhost() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn one_request_one_contact_me() {
        tokio::time::timeout(LIMIT, async {
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let mut h = Harness::new(quick());
            h.target(mac(1), uri(phone.local_addr()));
            let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
            h.handle.request(mac(1)).expect("request");
            let got = phone.next(LIMIT).await.expect("a contact-me");
            assert_eq!(got, ContactMe { dls_ip_addr: None, dls_ip_port: None });
            let (m, attempt) = h.report().await;
            assert_eq!(m, mac(1));
            assert_eq!(attempt.result, ContactResult::Contacted);
            assert_eq!(attempt.uri, uri(phone.local_addr()));
            assert!(attempt.at_unix_secs >= before && attempt.at_unix_secs <= before + 10);
            assert!(phone.next(Duration::from_millis(300)).await.is_none(), "exactly one");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn the_dls_address_is_sent_when_configured() {
        tokio::time::timeout(LIMIT, async {
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let policy = ContactPolicy { dls_ip_addr: Some("10.1.2.3".into()), dls_ip_port: Some(18443), ..quick() };
            let mut h = Harness::new(policy);
            h.target(mac(1), uri(phone.local_addr()));
            h.handle.request(mac(1)).expect("request");
            let got = phone.next(LIMIT).await.expect("a contact-me");
            assert_eq!(got, ContactMe { dls_ip_addr: Some("10.1.2.3".into()), dls_ip_port: Some(18443) });
            assert_eq!(h.report().await.1.result, ContactResult::Contacted);
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn a_burst_of_requests_sends_one_contact_me() {
        tokio::time::timeout(LIMIT, async {
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let mut h = Harness::new(quick());
            h.target(mac(1), uri(phone.local_addr()));
            for i in 0..50 {
                h.handle.request(mac(1)).expect("request");
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            assert!(phone.next(LIMIT).await.is_some());
            assert_eq!(h.report().await.1.result, ContactResult::Contacted);
            for _ in 0..50 {
                h.handle.request(mac(1)).expect("request");
            }
            assert!(phone.next(Duration::from_millis(700)).await.is_none(), "exactly one contact-me");
            h.no_report(Duration::from_millis(100)).await;
        })
        .await
        .expect("in time");
    }

    /// A listener that answers every request with `response` and passes each request's
    /// head and body on.
    async fn raw_server(response: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind(localhost()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    // The head, then as many body bytes as Content-Length says.
                    loop {
                        let Ok(n) = tcp.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if body.len() >= len {
                                let _ = tx.send(text);
                                break;
                            }
                        }
                    }
                    let _ = tcp.write_all(response.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        (addr, rx)
    }

    #[tokio::test]
    async fn only_the_address_the_phone_calls_from_is_contacted() {
        tokio::time::timeout(LIMIT, async {
            let ok = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
            let (addr, mut requests) = raw_server(ok).await;
            let mut h = Harness::new(quick());
            let other = IpAddr::from([127, 0, 0, 2]);
            h.target_from(mac(1), uri(addr), Some(other));
            h.target_from(mac(2), format!("http://localhost:{}{CONTACT_ME_PATH}", addr.port()), Some(addr.ip()));
            h.target_from(mac(3), uri(addr), None);
            let mapped = IpAddr::from(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
            h.target_from(mac(4), uri(addr), Some(mapped));
            for n in 1..=4 {
                h.handle.request(mac(n)).expect("request");
            }
            let mut results = HashMap::new();
            for _ in 1..=4 {
                let (m, attempt) = h.report().await;
                results.insert(m, attempt.result);
            }
            let refused = |m: u8| match &results[&mac(m)] {
                ContactResult::Refused(why) => why.clone(),
                other => panic!("phone {m}: want Refused, got {other:?}"),
            };
            assert!(refused(1).contains("host 127.0.0.1 is not the address the phone calls from (127.0.0.2)"));
            assert!(refused(2).contains("names the host \"localhost\""));
            assert!(refused(3).contains("not known yet"));
            assert_eq!(results[&mac(4)], ContactResult::Contacted, "an IPv4 address is its IPv6-mapped form");
            assert_eq!(
                results[&mac(1)].to_string(),
                "contact-me not sent: the contact-me-uri's host 127.0.0.1 is not the address the phone calls from \
                 (127.0.0.2)"
            );
            // One request reached the listener: phone 4's.
            requests.recv().await.expect("phone 4's request");
            assert!(requests.try_recv().is_err(), "nothing else was sent");

            // Allowed explicitly: any host the phone names.
            let mut h = Harness::new(ContactPolicy { any_host: true, ..quick() });
            h.target_from(mac(1), uri(addr), Some(other));
            h.handle.request(mac(1)).expect("request");
            assert_eq!(h.report().await.1.result, ContactResult::Contacted);
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn the_request_is_a_plain_form_post() {
        tokio::time::timeout(LIMIT, async {
            let (addr, mut requests) =
                raw_server("HTTP/1.1 204 No Content\r\nServer: DlsClient\r\nConnection: close\r\n\r\n").await;
            let mut h = Harness::new(ContactPolicy { dls_ip_port: Some(18443), ..quick() });
            h.target(mac(1), uri(addr));
            h.handle.request(mac(1)).expect("request");
            let request = requests.recv().await.expect("a request");
            let (head, body) = request.split_once("\r\n\r\n").expect("head and body");
            let mut lines = head.lines();
            assert_eq!(lines.next(), Some(format!("POST {CONTACT_ME_PATH} HTTP/1.1").as_str()));
            let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
            let expected = "ContactMe=true&dls_ip_port=18443";
            assert_eq!(body, expected);
            for want in [
                format!("host: {addr}"),
                "content-type: application/x-www-form-urlencoded".to_owned(),
                format!("content-length: {}", expected.len()),
                "connection: close".to_owned(),
            ] {
                assert!(headers.contains(&want), "{want} in {headers:?}");
            }

            assert_eq!(h.report().await.1.result, ContactResult::Contacted);
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn other_statuses_are_reported() {
        tokio::time::timeout(LIMIT, async {
            let (addr, _requests) =
                raw_server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!")
                    .await;
            let mut h = Harness::new(quick());
            h.target(mac(1), uri(addr));
            h.handle.request(mac(1)).expect("request");
            let (_, attempt) = h.report().await;
            assert_eq!(attempt.result, ContactResult::Status(500));
            assert_eq!(attempt.result.to_string(), "contact-me answered 500");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn a_silent_phone_times_out() {
        tokio::time::timeout(LIMIT, async {
            let listener = TcpListener::bind(localhost()).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    held.push(tcp);
                }
            });
            let mut h = Harness::new(quick());
            h.target(mac(1), uri(addr));
            let start = Instant::now();
            h.handle.request(mac(1)).expect("request");
            let (_, attempt) = h.report().await;
            assert_eq!(attempt.result, ContactResult::Timeout);
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        tokio::time::timeout(LIMIT, async {
            let addr = {
                let listener = TcpListener::bind(localhost()).await.expect("bind");
                listener.local_addr().expect("addr")
            };
            let mut h = Harness::new(quick());
            h.target(mac(1), uri(addr));
            h.handle.request(mac(1)).expect("request");
            let (_, attempt) = h.report().await;
            assert_eq!(attempt.result, ContactResult::Unreachable("connection refused".into()));
            assert_eq!(attempt.result.to_string(), "contact-me failed: connection refused");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn bad_uris_are_not_contacted() {
        tokio::time::timeout(LIMIT, async {
            let listener = TcpListener::bind(localhost()).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut h = Harness::new(quick());
            let bad = [
                format!("https://{addr}{CONTACT_ME_PATH}"),
                format!("http://user@{addr}{CONTACT_ME_PATH}"),
                format!("http://{addr}"),
                "garbage".to_owned(),
            ];
            for (n, u) in (1..).zip(&bad) {
                h.target(mac(n), u.clone());
                h.handle.request(mac(n)).expect("request");
            }
            let mut seen = Vec::new();
            for _ in &bad {
                let (m, attempt) = h.report().await;
                let ContactResult::Unreachable(why) = &attempt.result else { panic!("{attempt:?}") };
                assert!(why.starts_with("unsupported contact-me-uri"), "{why}");
                seen.push(m);
            }
            seen.sort();
            assert_eq!(seen, [mac(1), mac(2), mac(3), mac(4)]);
            let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
            assert!(accepted.is_err(), "no connection");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn nothing_pending_means_no_contact() {
        tokio::time::timeout(LIMIT, async {
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let mut h = Harness::new(quick());
            h.handle.request(mac(1)).expect("request");
            assert!(phone.next(Duration::from_millis(300)).await.is_none());
            h.no_report(Duration::from_millis(10)).await;
            // Forgotten without an interval: a later request with a target goes out at once.
            h.target(mac(1), uri(phone.local_addr()));
            h.handle.request(mac(1)).expect("request");
            assert!(phone.next(LIMIT).await.is_some());
            assert_eq!(h.report().await.1.result, ContactResult::Contacted);
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        tokio::time::timeout(LIMIT, async {
            let listener = TcpListener::bind(localhost()).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (tx, mut accepted) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((tcp, _)) = listener.accept().await {
                    held.push(tcp);
                    let _ = tx.send(());
                }
            });
            let policy = ContactPolicy { concurrency: 2, attempt_timeout: Duration::from_secs(1), ..quick() };
            let mut h = Harness::new(policy);
            for n in 1..=5 {
                h.target(mac(n), uri(addr));
                h.handle.request(mac(n)).expect("request");
            }
            for _ in 0..2 {
                accepted.recv().await.expect("an attempt");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(accepted.try_recv().is_err(), "two attempts at a time");
            let mut seen = Vec::new();
            for _ in 0..5 {
                let (m, attempt) = h.report().await;
                assert_eq!(attempt.result, ContactResult::Timeout);
                seen.push(m);
            }
            seen.sort();
            assert_eq!(seen, [mac(1), mac(2), mac(3), mac(4), mac(5)], "each device once");
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn shutdown_stops_the_sender() {
        tokio::time::timeout(LIMIT, async {
            let listener = TcpListener::bind(localhost()).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut h = Harness::new(ContactPolicy { attempt_timeout: s(60), ..quick() });
            h.target(mac(1), uri(addr));
            h.handle.request(mac(1)).expect("request");
            // The attempt hangs (the connection is held, never answered); shutdown must not wait.
            let (_held, _) = listener.accept().await.expect("connected");
            h.shutdown.send_replace(true);
            h.handle.stopped().await;
            assert!(h.handle.is_stopped());
            assert_eq!(h.handle.request(mac(2)), Err(ContactRefused::Stopped));
            h.no_report(Duration::from_millis(50)).await;
        })
        .await
        .expect("in time");
    }

    #[tokio::test]
    async fn a_dropped_shutdown_sender_stops_the_sender() {
        tokio::time::timeout(LIMIT, async {
            let h = Harness::new(quick());
            drop(h.shutdown);
            h.handle.stopped().await;
            assert!(h.handle.is_stopped());
        })
        .await
        .expect("in time");
    }
}
