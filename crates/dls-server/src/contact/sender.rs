//! The contact-me sender: the async loop around the [planner](super::planner), or around
//! the store's shared schedule ([`ContactStore`](dls_store::ContactStore)) when several nodes share the database.
//!
//! [`ContactHandle::request`] marks a device as wanted (non-blocking, idempotent); the loop
//! asks `targets` (off the executor) for the device's contact-me URI when it is due, sends the
//! HTTP POST within the attempt timeout, at most [`concurrency`](ContactPolicy::concurrency)
//! at a time, and hands every attempt to `report` (off the executor).
//!
//! Where the schedule is kept ([`Schedule`]):
//! * [`Schedule::Local`] (one node, the default): in this process's memory, the
//!   [`ContactPlanner`]. No I/O on `request`, nothing written per attempt.
//! * [`Schedule::Shared`] (several nodes on one database): in the store's
//!   `contact_schedule`. `request` notes the want in memory and wakes the loop, which
//!   writes it ([`ContactStore::contact_want`](dls_store::ContactStore::contact_want)) and claims the due devices
//!   ([`ContactStore::contact_claim_due`](dls_store::ContactStore::contact_claim_due), each device by one node), off the executor. An
//!   attempt ends with [`ContactStore::contact_finished`](dls_store::ContactStore::contact_finished), which applies the same pacing
//!   as the planner (`dls_store::rules::contact`). The loop looks at the store at least
//!   every [`POLL`] on the service's clock, so that a device another node wanted, or whose
//!   claim a node that died left, is taken up within that time.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dls_message::MacAddr;
use dls_store::{ContactClaim, ContactTarget, Store, StoreError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, warn};

use super::planner::ContactPlanner;
use super::target::{Target, TargetHost, check_caller, parse_uri};
use super::{ContactAttempt, ContactPolicy, ContactRefused, ContactResult};
use crate::clock::Clock;

/// How much of a phone's answer is read (and ignored).
const MAX_RESPONSE_BODY: usize = 4096;
/// The most of a phone's answer buffered while reading its head (hyper's minimum).
const MAX_RESPONSE_HEAD: usize = 8192;
/// With a shared schedule, the longest the loop waits before it looks at the store again
/// (on the service's clock): the most a device wanted on another node, or left claimed by
/// a node that died (once its claim has ended), waits for this node.
pub(crate) const POLL: Duration = Duration::from_secs(2);
/// A claim outlasts an attempt (its timeout, and the store's calls around it) by this much.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// Gives the contact-me URI of a device that still needs contacting, and the address it
/// calls from (`None`: nothing pending any more, or no `contact-me-uri`); the flag: an
/// administrator asked for the contact-me (it goes even without pending jobs). Called on a
/// blocking thread.
pub(crate) type ContactTargets = Arc<dyn Fn(MacAddr, bool) -> Option<ContactTarget> + Send + Sync>;
/// Records an attempt (e.g. in the device's job listing). Called on a blocking thread.
pub(crate) type ContactReport = Arc<dyn Fn(MacAddr, &ContactAttempt) + Send + Sync>;

/// The HTTP client of every attempt: plain HTTP/1.1, each contact-me on a connection of its own.
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Where the contact-me schedule is kept.
#[derive(Clone)]
pub(crate) enum Schedule {
    /// In this process's memory: the service is the only node.
    Local,
    /// In `store`, shared with the other nodes on its database; `node` (the node's name)
    /// holds this node's claims.
    Shared {
        /// The store the nodes share.
        store: Arc<dyn Store>,
        /// This node's name.
        node: String,
    },
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::Shared { node, .. } => f.debug_struct("Shared").field("node", node).finish_non_exhaustive(),
        }
    }
}

/// The store's schedule, as the loop uses it.
struct SharedSchedule {
    store: Arc<dyn Store>,
    node: String,
    /// How long a claim stands: at least the minimum interval (a node that dies after
    /// sending leaves the device to another node no sooner), and longer than an attempt.
    lease_secs: u64,
    /// Wants not yet written to the store (`true`: forced).
    wants: Mutex<HashMap<MacAddr, bool>>,
    refused: AtomicU64,
}

struct Shared {
    policy: ContactPolicy,
    body: Bytes,
    client: HttpClient,
    planner: Mutex<ContactPlanner>,
    /// Devices an administrator asked to contact (local schedule).
    forced: Mutex<HashSet<MacAddr>>,
    schedule: Option<SharedSchedule>,
    notify: Notify,
    origin: std::time::Instant,
    clock: Arc<dyn Clock>,
    stopped: AtomicBool,
    targets: ContactTargets,
    report: ContactReport,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("policy", &self.policy)
            .field("shared_schedule", &self.schedule.as_ref().map(|s| &s.node))
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn now(&self) -> Duration {
        self.clock.instant().saturating_duration_since(self.origin)
    }

    fn planner(&self) -> MutexGuard<'_, ContactPlanner> {
        self.planner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forced(&self) -> MutexGuard<'_, HashSet<MacAddr>> {
        self.forced.lock().unwrap_or_else(PoisonError::into_inner)
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
        self.want(mac, false)
    }

    /// As [`Self::request`], for a contact-me an administrator asked for: `targets` is told
    /// so (the contact-me goes even without pending jobs).
    ///
    /// # Errors
    /// As [`Self::request`].
    pub(crate) fn request_forced(&self, mac: MacAddr) -> Result<(), ContactRefused> {
        self.want(mac, true)
    }

    fn want(&self, mac: MacAddr, forced: bool) -> Result<(), ContactRefused> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(ContactRefused::Stopped);
        }
        let limit = self.shared.policy.max_devices;
        let (outcome, refused) = if let Some(schedule) = &self.shared.schedule {
            let mut wants = schedule.wants.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = wants.get_mut(&mac) {
                *f |= forced;
                (Ok(false), 0)
            } else if wants.len() >= limit {
                (Err(ContactRefused::TooManyDevices { limit }), schedule.refused.fetch_add(1, Ordering::Relaxed) + 1)
            } else {
                wants.insert(mac, forced);
                (Ok(true), 0)
            }
        } else {
            if forced {
                self.shared.forced().insert(mac);
            }
            let now = self.shared.now();
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

/// Starts the contact-me sender on the current tokio runtime, its schedule kept as
/// `schedule` says. It runs until `shutdown` becomes `true` (or its sender is dropped);
/// attempts in flight are then abandoned (with a shared schedule, their claims end by
/// themselves).
pub(crate) fn spawn(
    policy: ContactPolicy,
    schedule: Schedule,
    targets: ContactTargets,
    report: ContactReport,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) -> ContactHandle {
    let policy = policy.clamped();
    let schedule = match schedule {
        Schedule::Local => None,
        Schedule::Shared { store, node } => Some(SharedSchedule {
            store,
            node,
            lease_secs: policy.min_interval.max(policy.attempt_timeout + CLAIM_MARGIN).as_secs(),
            wants: Mutex::default(),
            refused: AtomicU64::new(0),
        }),
    };
    let shared = Arc::new(Shared {
        body: Bytes::from(policy.body()),
        client: http_client(),
        planner: Mutex::new(ContactPlanner::new(&policy)),
        forced: Mutex::default(),
        schedule,
        policy,
        notify: Notify::new(),
        origin: clock.instant(),
        clock,
        stopped: AtomicBool::new(false),
        targets,
        report,
    });
    let (done_tx, done) = watch::channel(false);
    crate::tasks::spawn(run(shared.clone(), shutdown, done_tx));
    ContactHandle { shared, done }
}

/// The devices to contact now, and the instant (on the clock) to look again (`None`: when
/// woken).
type Round = (Vec<ContactClaim>, Option<std::time::Instant>);

/// One round of the local schedule: the due devices, started in the planner.
fn local_round(shared: &Shared, free: usize) -> Round {
    let now = shared.now();
    let mut planner = shared.planner();
    let mut batch = Vec::new();
    if free > 0 {
        for mac in planner.due(now, free) {
            if planner.started(mac, now) {
                batch.push(ContactClaim { mac, forced: shared.forced().remove(&mac) });
            }
        }
    }
    // A wake-up not after `now` means devices are due but every permit is taken: an
    // attempt ending notifies.
    let wake = planner.next_wakeup().filter(|w| *w > now).map(|w| shared.origin + w);
    (batch, wake)
}

/// One round of the shared schedule, off the executor: the wants noted since the last
/// round written, then at most `free` due devices claimed. The next look is at the next
/// due time, or after [`POLL`] at the latest.
async fn shared_round(shared: &Arc<Shared>, free: usize) -> Round {
    let Some(schedule) = &shared.schedule else { return (Vec::new(), None) };
    let wants: Vec<(MacAddr, bool)> = schedule.wants.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
    let now = shared.clock.now();
    let poll = shared.clock.instant() + POLL;
    let work = Arc::clone(shared);
    let outcome = crate::tasks::spawn_blocking(move || {
        let Some(schedule) = &work.schedule else { return Ok((Vec::new(), None)) };
        let store = &*schedule.store;
        for (n, (mac, forced)) in wants.iter().enumerate() {
            if let Err(e) = store.contact_want(*mac, now, *forced) {
                return Err((e, wants[n..].to_vec()));
            }
        }
        let claims = if free > 0 {
            store.contact_claim_due(&schedule.node, now, free, schedule.lease_secs).map_err(|e| (e, Vec::new()))?
        } else {
            Vec::new()
        };
        let next = store.contact_next_due().map_err(|e| (e, Vec::new()))?;
        Ok((claims, next))
    })
    .await;
    match outcome {
        Ok(Ok((claims, next))) => {
            let wake = match next {
                Some(at) if at.0 > now.0 => (shared.clock.instant() + Duration::from_secs(at.0 - now.0)).min(poll),
                _ => poll,
            };
            (claims, Some(wake))
        }
        Ok(Err((e, unwritten))) => {
            error!(error = %e, "contact-me: the shared schedule failed");
            requeue(schedule, unwritten);
            (Vec::new(), Some(poll))
        }
        Err(e) => {
            error!("contact-me: the shared schedule's thread failed: {e}");
            (Vec::new(), Some(poll))
        }
    }
}

/// Wants that could not be written, noted again for the next round (unless newer ones are).
fn requeue(schedule: &SharedSchedule, unwritten: Vec<(MacAddr, bool)>) {
    let mut wants = schedule.wants.lock().unwrap_or_else(PoisonError::into_inner);
    for (mac, forced) in unwritten {
        *wants.entry(mac).or_insert(false) |= forced;
    }
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
        let free = permits.available_permits();
        let (batch, deadline) =
            if shared.schedule.is_some() { shared_round(&shared, free).await } else { local_round(&shared, free) };
        for claim in batch {
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    attempts.spawn(attempt(shared.clone(), claim, permit).in_current_span());
                }
                Err(_) => give_up(&shared, claim.mac).await,
            }
        }
        let sleep = async {
            match deadline {
                Some(d) => shared.clock.sleep_until(d).await,
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

/// Nothing was sent to `mac`: the planner forgets the want, or the store's schedule does
/// and this node's claim ends.
async fn give_up(shared: &Arc<Shared>, mac: MacAddr) {
    if shared.schedule.is_none() {
        shared.planner().cancel(mac);
        return;
    }
    let work = Arc::clone(shared);
    let outcome = crate::tasks::spawn_blocking(move || match &work.schedule {
        Some(s) => s.store.contact_cancel(mac, &s.node),
        None => Ok(()),
    })
    .await;
    log_store(mac, "giving the claim up", outcome);
}

/// The attempt to `mac` ended at the clock's `now` with `result`: the pacing applied, in
/// the planner (the device wanted again: `targets` decides at the next permitted time
/// whether it still is) or in the store's schedule (where it stays wanted).
async fn finish(shared: &Arc<Shared>, mac: MacAddr, result: &ContactResult) {
    if shared.schedule.is_none() {
        let now = shared.now();
        let mut planner = shared.planner();
        planner.finished(mac, now, result);
        let _ = planner.want(mac, now);
        return;
    }
    let (work, success, now) = (Arc::clone(shared), result.is_success(), shared.clock.now());
    let outcome = crate::tasks::spawn_blocking(move || match &work.schedule {
        Some(s) => s.store.contact_finished(mac, &s.node, now, success, &work.policy.pacing()),
        None => Ok(()),
    })
    .await;
    log_store(mac, "recording the attempt in the schedule", outcome);
}

fn log_store(mac: MacAddr, what: &str, outcome: Result<Result<(), StoreError>, tokio::task::JoinError>) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(%mac, error = %e, "contact-me: {what} failed"),
        Err(e) => error!(%mac, "contact-me: {what} failed: {e}"),
    }
}

/// One attempt for a device, already `started` in the planner or claimed in the store.
async fn attempt(shared: Arc<Shared>, claim: ContactClaim, permit: OwnedSemaphorePermit) {
    let ContactClaim { mac, forced } = claim;
    let targets = shared.targets.clone();
    let target = match crate::tasks::spawn_blocking(move || targets(mac, forced)).await {
        Ok(Some(target)) => target,
        Ok(None) => {
            debug!(%mac, "nothing to contact any more");
            give_up(&shared, mac).await;
            drop(permit);
            shared.notify.notify_one();
            return;
        }
        Err(e) => {
            error!(%mac, "looking up the contact-me target failed: {e}");
            give_up(&shared, mac).await;
            drop(permit);
            shared.notify.notify_one();
            return;
        }
    };
    let at_unix_secs = shared.clock.now().0;
    let caller = (!shared.policy.any_host).then_some(target.caller);
    let uri = target.uri;
    let result = send(&shared.client, &uri, caller, shared.body.clone(), shared.policy.attempt_timeout).await;
    debug!(%mac, "{result}");
    finish(&shared, mac, &result).await;
    let report = shared.report.clone();
    let record = ContactAttempt { at_unix_secs, uri, result };
    if let Err(e) = crate::tasks::spawn_blocking(move || report(mac, &record)).await {
        error!(%mac, "recording the contact-me attempt failed: {e}");
    }
    drop(permit);
    shared.notify.notify_one();
}

/// The client the sender posts with (`hyper-util`'s): HTTP/1 only, no idle connection kept
/// (a phone is asked at most once a minute, and every request says `Connection: close`),
/// hyper's smallest read buffer (a phone's answer is a status line and a few headers).
fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .http1_max_buf_size(MAX_RESPONSE_HEAD)
        .build(connector)
}

/// Posts the contact-me to `uri` within `timeout`; with `caller` (`Some`), only if the URI's
/// host is that address (`Some(None)`: the phone's address is not known, nothing is sent).
async fn send(
    client: &HttpClient,
    uri: &str,
    caller: Option<Option<IpAddr>>,
    body: Bytes,
    timeout: Duration,
) -> ContactResult {
    let target = match parse_uri(uri) {
        Ok(t) => t,
        Err(why) => return ContactResult::Unreachable(why),
    };
    if let Some(caller) = caller
        && let Err(why) = check_caller(&target.host, caller)
    {
        return ContactResult::Refused(why);
    }
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, exchange(client, &target, body)).await {
        Err(_) => ContactResult::Timeout,
        Ok(Err(why)) => ContactResult::Unreachable(why),
        Ok(Ok((status, response))) => {
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

async fn exchange(
    client: &HttpClient,
    target: &Target,
    body: Bytes,
) -> Result<(StatusCode, hyper::body::Incoming), String> {
    // The address to connect to: the IP literal, or the name (resolved by the connector).
    let host = match &target.host {
        TargetHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        TargetHost::Ip(IpAddr::V4(ip)) => ip.to_string(),
        TargetHost::Name(name) => name.clone(),
    };
    let uri = hyper::Uri::builder()
        .scheme("http")
        .authority(format!("{host}:{}", target.port))
        .path_and_query(target.path.as_str())
        .build()
        .map_err(|e| e.to_string())?;
    let request = Request::post(uri)
        .header(header::HOST, HeaderValue::from_str(&target.authority).map_err(|e| e.to_string())?)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CONNECTION, "close")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| client_error(&e))?;
    let (parts, response) = response.into_parts();
    Ok((parts.status, response))
}

/// What went wrong, briefly: the connection error (`connection refused`, …) when there is
/// one, else the error and its causes on one line.
fn client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io_error(io);
        }
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text.replace('\n', " ")
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
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::{SystemTime, UNIX_EPOCH};

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

    /// A sender whose targets come from a map and whose reports go to a channel.
    struct Harness {
        handle: ContactHandle,
        uris: Arc<Mutex<HashMap<MacAddr, ContactTarget>>>,
        reports: mpsc::UnboundedReceiver<(MacAddr, ContactAttempt)>,
        shutdown: watch::Sender<bool>,
    }

    impl Harness {
        fn new(policy: ContactPolicy) -> Self {
            Self::with_clock(policy, Arc::new(crate::clock::SystemClock))
        }

        fn with_clock(policy: ContactPolicy, clock: Arc<dyn Clock>) -> Self {
            let uris: Arc<Mutex<HashMap<MacAddr, ContactTarget>>> = Arc::default();
            let (tx, reports) = mpsc::unbounded_channel();
            let (shutdown, rx) = watch::channel(false);
            let lookup = uris.clone();
            let handle = spawn(
                policy,
                Schedule::Local,
                Arc::new(move |mac, _| lookup.lock().expect("lock").get(&mac).cloned()),
                Arc::new(move |mac, attempt: &ContactAttempt| {
                    let _ = tx.send((mac, attempt.clone()));
                }),
                clock,
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

    /// After a `204` the phone ignores contact-me for its contact gap: the next one goes out
    /// once `after_success` is over on the service's clock, not a moment before, and is
    /// recorded at that clock's time.
    #[tokio::test]
    async fn after_a_success_the_next_contact_me_waits_for_the_contact_gap() {
        tokio::time::timeout(LIMIT, async {
            let clock = crate::clock::ManualClock::new(dls_engine::UnixTime(1_700_000_000));
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let mut h = Harness::with_clock(quick(), Arc::new(clock.clone()));
            h.target(mac(1), uri(phone.local_addr()));
            h.handle.request(mac(1)).expect("request");
            assert!(phone.next(LIMIT).await.is_some());
            let (_, first) = h.report().await;
            assert_eq!((first.result, first.at_unix_secs), (ContactResult::Contacted, 1_700_000_000));
            // Still pending (the target keeps answering): wanted again, but not before 300 s.
            clock.advance(s(299));
            h.handle.request(mac(1)).expect("request");
            assert!(phone.next(Duration::from_millis(300)).await.is_none(), "not within the contact gap");
            clock.advance(s(1));
            assert!(phone.next(LIMIT).await.is_some(), "at the end of the contact gap");
            let (_, second) = h.report().await;
            assert_eq!((second.result, second.at_unix_secs), (ContactResult::Contacted, 1_700_000_300));
        })
        .await
        .expect("in time");
    }

    /// Two senders on one store's schedule, as two nodes on one database: a device both
    /// want gets one contact-me; the next goes out once the contact gap is over, from one
    /// of them, at that time on the clock.
    #[tokio::test]
    async fn senders_sharing_a_schedule_send_each_contact_me_once() {
        tokio::time::timeout(LIMIT, async {
            let clock = crate::clock::ManualClock::new(dls_engine::UnixTime(1_700_000_000));
            let store: Arc<dyn Store> = Arc::new(dls_store_sqlite::SqliteStore::open_in_memory().expect("opens"));
            let mut phone = ContactListener::bind(localhost(), Duration::ZERO).await.expect("bind");
            let target = ContactTarget::new(uri(phone.local_addr()), Some(IpAddr::from([127, 0, 0, 1])));
            let (tx, mut reports) = mpsc::unbounded_channel();
            let (_shutdown, rx) = watch::channel(false);
            let nodes: Vec<ContactHandle> = ["a", "b"]
                .into_iter()
                .map(|node| {
                    let (target, tx) = (target.clone(), tx.clone());
                    spawn(
                        quick(),
                        Schedule::Shared { store: store.clone(), node: node.into() },
                        Arc::new(move |_, _| Some(target.clone())),
                        Arc::new(move |mac, attempt: &ContactAttempt| {
                            let _ = tx.send((mac, attempt.clone()));
                        }),
                        Arc::new(clock.clone()),
                        rx.clone(),
                    )
                })
                .collect();
            for n in &nodes {
                n.request(mac(1)).expect("request");
            }
            assert!(phone.next(LIMIT).await.is_some());
            let (m, first) = reports.recv().await.expect("a report");
            assert_eq!((m, first.result, first.at_unix_secs), (mac(1), ContactResult::Contacted, 1_700_000_000));
            // Still pending: wanted again on both, but no node sends within the contact gap.
            clock.advance(s(299));
            for n in &nodes {
                n.request_forced(mac(1)).expect("request");
            }
            clock.advance(s(1));
            assert!(phone.next(LIMIT).await.is_some());
            let (_, second) = reports.recv().await.expect("a report");
            assert_eq!((second.result, second.at_unix_secs), (ContactResult::Contacted, 1_700_000_300));
            // One contact-me each time, however many nodes.
            assert!(phone.next(Duration::from_millis(300)).await.is_none());
            assert!(reports.try_recv().is_err());
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
