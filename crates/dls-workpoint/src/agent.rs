//! An agent that keeps one phone alive, as a phone on a desk is: it starts up, then waits
//! for work from the DLS until stopped.
//!
//! * **Start-up**: at start, after `Restart` / factory reset, after new firmware, and on
//!   the secure port after bootstrapping (typing [`Phone::pin_entries`] for a `pin`
//!   bootstrap, sending `clean-up` when the retries run out: [`Phone::enter_pins`]). A start-up that fails is
//!   retried every [`AgentConfig::retry_interval`].
//! * **contact-me**: a [`ContactListener`] on [`AgentConfig::contact_listen`]; its real
//!   address is what the phone reports as `contact-me-uri`
//!   (`http://<ip>:<port>/contact_dls.html/ContactDLS`). Each contact-me (those waiting
//!   when one is taken count as one) starts a `solicited` interaction. Without a listener
//!   the phone is "behind NAT".
//! * **DCMP**: when the phone's items have a `dcmp-url`, it polls every
//!   `dcmp-poll-interval` seconds (at least [`AgentConfig::dcmp_min_interval`]); `202` starts
//!   a `solicited` interaction.
//! * **Deployments** accepted in an interaction are downloaded afterwards (`normal`
//!   priority only while not busy) and reported ([`crate::deploy`]). A `status` report the
//!   DLS did not take (no connection, a timeout, an HTTP error, an interaction that did not
//!   end with `CleanUp`) is kept, dated when the deployment ended, and sent again: after
//!   [`AgentConfig::retry_interval`], then twice as long after each failure, at most
//!   [`STATUS_ATTEMPTS`] times in all — and at once after any interaction that reached the
//!   DLS, which is then known to be back. It is dropped once delivered, or (with an
//!   [`AgentEvent::Error`]) after the last attempt. Reports wait while a start-up is due
//!   and survive a reboot: the outcome is still true and the DLS's job waits for it.
//! * **send-solicited**: a `CleanUp` with `send-solicited=true` makes the phone call back
//!   (`solicited`) at once — after the downloads it has to do — or as soon as it is no
//!   longer busy ([`Agent::set_busy`]). After ten such callbacks in a row, the next ones
//!   are spaced by [`AgentConfig::retry_interval`].
//!
//! Every network wait is bounded by the configured timeouts; failures are reported as
//! [`AgentEvent`]s, never panics. [`Agent`] is the handle: a snapshot of the phone, the
//! busy switch, the events, and [`Agent::stop`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dls_message::Reason;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ClientError, Traced, WpiClient};
use crate::contact::{CONTACT_ME_PATH, ContactListener, ContactMe};
use crate::dcmp::{self, DcmpAnswer, DcmpError};
use crate::deploy::{Deployment, DeploymentOutcome, DownloadLimits, Priority};
use crate::phone::{Interaction, Phone};
use crate::secure::{PinOutcome, PinsOutcome};
use crate::tls::ServerTrust;

/// A function shown every message the agent's clients send and receive.
pub type Observer = Arc<dyn Fn(&Traced<'_>) + Send + Sync>;

/// A function shown every event as it happens, with the phone as it is then (called on the
/// agent's task, in order with the [`Observer`]'s messages; keep it short).
pub type EventHook = Arc<dyn Fn(&AgentEvent, &Phone) + Send + Sync>;

/// How an agent runs its phone.
#[non_exhaustive]
pub struct AgentConfig {
    /// The DLS's default-mode address (`host:port`). The secure port is the one the
    /// bootstrap delivered, on the same host.
    pub server: String,
    /// How the phone treats the server's certificate in default mode, and for downloads.
    pub trust: ServerTrust,
    /// Where the contact-me listener binds (port 0 for any); `None`: no listener, the
    /// phone is behind NAT. Default `127.0.0.1:0`.
    pub contact_listen: Option<SocketAddr>,
    /// The phone's contact gap: contact-me requests within it are ignored. Default 0.
    pub contact_gap: Duration,
    /// Connecting and each exchange with the DLS. Default 30 s.
    pub exchange_timeout: Duration,
    /// Limits of each download.
    pub download: DownloadLimits,
    /// One DCMP poll. Default 10 s.
    pub dcmp_timeout: Duration,
    /// The poll interval when `dcmp-poll-interval` is missing or malformed. Default 60 s.
    pub dcmp_default_interval: Duration,
    /// The shortest poll interval. Default 1 s.
    pub dcmp_min_interval: Duration,
    /// How long after a failed start-up the phone tries again (and the spacing of
    /// callbacks when the DLS asks for one after every callback, and the first delay before
    /// a `status` report is sent again). Default 10 s.
    pub retry_interval: Duration,
    /// Shown every message (e.g. to print the exchanges).
    pub observer: Option<Observer>,
    /// Shown every event as it happens (e.g. to print it in order with the exchanges).
    pub on_event: Option<EventHook>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("trust", &self.trust)
            .field("contact_listen", &self.contact_listen)
            .field("contact_gap", &self.contact_gap)
            .field("exchange_timeout", &self.exchange_timeout)
            .field("download", &self.download)
            .field("dcmp_timeout", &self.dcmp_timeout)
            .field("dcmp_default_interval", &self.dcmp_default_interval)
            .field("dcmp_min_interval", &self.dcmp_min_interval)
            .field("retry_interval", &self.retry_interval)
            .field("observer", &self.observer.is_some())
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

impl AgentConfig {
    /// The defaults for a DLS at `server` (`host:port`), in default mode.
    #[must_use]
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            trust: ServerTrust::AcceptAny,
            contact_listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
            contact_gap: Duration::ZERO,
            exchange_timeout: Duration::from_secs(30),
            download: DownloadLimits::default(),
            dcmp_timeout: Duration::from_secs(10),
            dcmp_default_interval: Duration::from_secs(60),
            dcmp_min_interval: Duration::from_secs(1),
            retry_interval: Duration::from_secs(10),
            observer: None,
            on_event: None,
        }
    }
}

/// Why the agent started an interaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trigger {
    /// The agent started (`start-up`).
    Boot,
    /// The DLS sent `Restart` (`start-up`).
    Restart,
    /// The DLS sent a factory reset (`start-up`, in default mode).
    FactoryReset,
    /// Bootstrapping delivered the secure-mode material (`start-up` on the secure port).
    SecureMode,
    /// New firmware was installed (`start-up` with the new `software-version`).
    Firmware,
    /// A contact-me request (`solicited`).
    ContactMe,
    /// A DCMP poll answered `202` (`solicited`).
    Dcmp,
    /// The last `CleanUp` carried `send-solicited=true` (`solicited`).
    SendSolicited,
    /// A deployment's outcome (`status`).
    Deployment,
}

impl Trigger {
    /// In words, e.g. `contact-me`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Boot => "boot",
            Self::Restart => "restart",
            Self::FactoryReset => "factory reset",
            Self::SecureMode => "secure mode",
            Self::Firmware => "new firmware",
            Self::ContactMe => "contact-me",
            Self::Dcmp => "DCMP",
            Self::SendSolicited => "send-solicited",
            Self::Deployment => "deployment",
        }
    }
}

/// Something the agent did or saw.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AgentEvent {
    /// An interaction ended: its report, or why it failed (one line).
    Interaction {
        /// `start-up`, `solicited` or `status`.
        reason: Reason,
        /// Why the phone called.
        trigger: Trigger,
        /// The report, or the error.
        result: Result<Interaction, String>,
    },
    /// A contact-me request was accepted.
    ContactMe(ContactMe),
    /// A DCMP poll's answer.
    Dcmp(Result<DcmpAnswer, DcmpError>),
    /// A deployment was downloaded, or failed.
    Deployment(DeploymentOutcome),
    /// Bootstrapping delivered the secure-mode material; the phone now uses `port`.
    SecureMode {
        /// `nopin` or `pin`.
        kind: String,
        /// The secure port.
        port: u16,
    },
    /// Something worth telling (e.g. `wrong PIN (2 tries left)`).
    Note(String),
    /// Something failed outside an interaction (one line).
    Error(String),
}

/// A running phone; see the [module](self). Dropping it stops the phone too.
#[derive(Debug)]
pub struct Agent {
    contact_addr: Option<SocketAddr>,
    phone: watch::Receiver<Phone>,
    busy: watch::Sender<bool>,
    events: broadcast::Sender<AgentEvent>,
    receiver: broadcast::Receiver<AgentEvent>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Phone>,
}

/// The `contact-me-uri` for a listener at `addr`.
#[must_use]
pub fn contact_me_uri(addr: SocketAddr) -> String {
    format!("http://{addr}{CONTACT_ME_PATH}")
}

impl Agent {
    /// Starts `phone` against the DLS in `config`: binds the contact-me listener (the
    /// phone's `contact-me-uri` becomes its address), then runs the phone on a task of the
    /// current runtime, beginning with its `start-up`.
    ///
    /// # Errors
    /// The listener's bind error.
    pub async fn start(mut phone: Phone, config: AgentConfig) -> std::io::Result<Self> {
        let listener = match config.contact_listen {
            Some(addr) => Some(ContactListener::bind(addr, config.contact_gap).await?),
            None => None,
        };
        let contact_addr = listener.as_ref().map(ContactListener::local_addr);
        if let Some(addr) = contact_addr {
            let advertised = advertised_addr(addr, &config.server).await;
            phone.set("contact-me-uri", None, &contact_me_uri(advertised));
        }
        let (events, receiver) = broadcast::channel(1024);
        let (snapshot, phone_rx) = watch::channel(phone.clone());
        let (busy, busy_rx) = watch::channel(phone.busy);
        let (stop, stop_rx) = watch::channel(false);
        let host = host_of(&config.server);
        let runner = Runner {
            phone,
            config,
            host,
            client: None,
            listener,
            busy: busy_rx,
            events: events.clone(),
            snapshot,
            startup: Some(Trigger::Boot),
            retry_at: None,
            solicit: None,
            callback: false,
            callback_at: None,
            callbacks_in_a_row: 0,
            deployments: VecDeque::new(),
            reports: Vec::new(),
            poll_at: None,
        };
        let task = tokio::spawn(runner.run(stop_rx));
        Ok(Self { contact_addr, phone: phone_rx, busy, events, receiver, stop, task })
    }

    /// Where the contact-me listener listens (`None` behind NAT).
    #[must_use]
    pub fn contact_addr(&self) -> Option<SocketAddr> {
        self.contact_addr
    }

    /// A snapshot of the phone (updated after every interaction and deployment).
    #[must_use]
    pub fn phone(&self) -> Phone {
        self.phone.borrow().clone()
    }

    /// Puts the phone in a call (`true`: `WriteItems` is answered `busy`, callbacks and
    /// `normal` deployments wait) or ends it.
    pub fn set_busy(&self, busy: bool) {
        self.busy.send_replace(busy);
    }

    /// A new receiver of the events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.events.subscribe()
    }

    /// The next event since the agent started (none is missed, unless more than 1024 wait
    /// unread), or `None` if none comes within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<AgentEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Ok(Ok(e)) => return Some(e),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    }

    /// The next event (as [`Self::next_event`]) for which `matches` is true, skipping the
    /// others, within `timeout`.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&AgentEvent) -> bool,
    ) -> Option<AgentEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.next_event(left).await?;
            if matches(&e) {
                return Some(e);
            }
        }
    }

    /// Whether the agent has stopped.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the phone (an interaction in flight is abandoned, as when unplugged) and
    /// returns it.
    pub async fn stop(self) -> Phone {
        let Self { phone, stop, mut task, .. } = self;
        let _ = stop.send(true);
        match tokio::time::timeout(Duration::from_secs(10), &mut task).await {
            Ok(Ok(p)) => p,
            _ => {
                task.abort();
                phone.borrow().clone()
            }
        }
    }
}

/// The host part of `host:port` (IPv6 keeps its brackets).
fn host_of(server: &str) -> String {
    server.rsplit_once(':').map_or(server, |(h, _)| h).to_owned()
}

/// The address the phone advertises for a listener bound to `addr`: `addr` itself, or for
/// an unspecified IP the local address towards the DLS (the loopback if unknown).
async fn advertised_addr(addr: SocketAddr, server: &str) -> SocketAddr {
    if !addr.ip().is_unspecified() {
        return addr;
    }
    let fallback = if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
    let bind = SocketAddr::new(
        if addr.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) },
        0,
    );
    // A connected UDP socket sends nothing; it only picks the route.
    let local = tokio::time::timeout(Duration::from_secs(2), async {
        let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
        socket.connect(server).await.ok()?;
        socket.local_addr().ok().map(|a| a.ip())
    })
    .await
    .ok()
    .flatten();
    SocketAddr::new(local.filter(|ip| !ip.is_unspecified()).unwrap_or(fallback), addr.port())
}

/// `send-solicited` callbacks in a row made at once; later ones wait
/// [`AgentConfig::retry_interval`].
const CALLBACKS_IN_A_ROW: u32 = 10;

/// How many times the agent sends one `status` report (the first time included) before it
/// gives up on it; see the [module](self).
pub const STATUS_ATTEMPTS: u32 = 5;

/// A `status` report the DLS has not taken yet.
struct PendingReport {
    /// The deployment's outcome.
    outcome: DeploymentOutcome,
    /// When the deployment ended (the report's date and time).
    at: SystemTime,
    /// Attempts so far.
    attempts: u32,
    /// Not sent again before then.
    due: Instant,
}

impl PendingReport {
    /// The wait after the `attempts`-th failed attempt: `first`, doubled after each failure.
    fn backoff(first: Duration, attempts: u32) -> Duration {
        first.saturating_mul(1 << attempts.saturating_sub(1).min(16))
    }
}

/// The phone's loop.
struct Runner {
    phone: Phone,
    config: AgentConfig,
    host: String,
    /// The client in use, and whether it is the secure-port one.
    client: Option<(WpiClient, bool)>,
    listener: Option<ContactListener>,
    busy: watch::Receiver<bool>,
    events: broadcast::Sender<AgentEvent>,
    snapshot: watch::Sender<Phone>,
    /// A start-up to run, and why.
    startup: Option<Trigger>,
    /// When a failed start-up is tried again.
    retry_at: Option<Instant>,
    /// A `solicited` interaction to run now (contact-me, DCMP).
    solicit: Option<Trigger>,
    /// Call back when idle (`send-solicited`).
    callback: bool,
    /// Not before then (when the DLS keeps asking).
    callback_at: Option<Instant>,
    /// `send-solicited` callbacks since the last interaction for another reason.
    callbacks_in_a_row: u32,
    /// Accepted deployments not yet run.
    deployments: VecDeque<Deployment>,
    /// `status` reports not yet delivered, oldest first.
    reports: Vec<PendingReport>,
    /// The next DCMP poll.
    poll_at: Option<Instant>,
}

/// The client for the phone's current mode, made anew when the mode changed (or after a
/// reboot emptied `slot`).
fn client_for<'a>(
    slot: &'a mut Option<(WpiClient, bool)>,
    phone: &Phone,
    config: &AgentConfig,
    host: &str,
) -> Result<&'a mut WpiClient, ClientError> {
    let secure = phone.secure.is_some();
    if slot.as_ref().is_none_or(|(_, s)| *s != secure) {
        let mut client =
            if secure { phone.secure_client(host)? } else { WpiClient::new(&config.server, &config.trust)? };
        client.set_timeout(config.exchange_timeout);
        if let Some(observer) = config.observer.clone() {
            client.observe(move |t: &Traced<'_>| observer(t));
        }
        *slot = None;
        return Ok(&mut slot.insert((client, secure)).0);
    }
    match slot {
        Some((client, _)) => Ok(client),
        None => Err(ClientError::Connect("no client".into())),
    }
}

/// Shows `event` to the [`EventHook`], with `phone`, and sends it to the subscribers.
fn emit_to(config: &AgentConfig, events: &broadcast::Sender<AgentEvent>, event: AgentEvent, phone: &Phone) {
    if let Some(hook) = &config.on_event {
        hook(&event, phone);
    }
    let _ = events.send(event);
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Phone {
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                () = self.step() => {}
            }
        }
        self.phone
    }

    fn emit(&self, event: AgentEvent) {
        emit_to(&self.config, &self.events, event, &self.phone);
    }

    fn publish(&self) {
        self.snapshot.send_replace(self.phone.clone());
    }

    /// Does the next thing to do, or waits for something to happen.
    async fn step(&mut self) {
        let busy = *self.busy.borrow_and_update();
        self.phone.busy = busy;
        if let Some(trigger) = self.startup {
            if self.retry_at.is_none_or(|t| t <= Instant::now()) {
                self.interaction(Reason::StartUp, trigger).await;
                return;
            }
        } else if let Some(trigger) = self.solicit.take() {
            if let Some(l) = self.listener.as_mut() {
                // Contact-me requests that came meanwhile are answered by this call.
                while l.try_next().is_some() {}
            }
            self.interaction(Reason::Solicited, trigger).await;
            return;
        } else if let Some(d) = self
            .deployments
            .iter()
            .position(|d| !busy || d.priority == Priority::Immediate)
            .and_then(|i| self.deployments.remove(i))
        {
            self.deploy(d).await;
            return;
        } else if let Some(i) = self.reports.iter().position(|r| r.due <= Instant::now()) {
            let report = self.reports.remove(i);
            self.report(report).await;
            return;
        } else if self.callback && !busy && self.callback_at.is_none_or(|t| t <= Instant::now()) {
            self.callback = false;
            self.callbacks_in_a_row += 1;
            self.interaction(Reason::Solicited, Trigger::SendSolicited).await;
            return;
        }
        self.wait().await;
    }

    /// The next DCMP poll, if the phone has a `dcmp-url` (and has started).
    fn next_poll(&mut self) -> Option<Instant> {
        if self.startup.is_some() || self.phone.dcmp_url().is_none() {
            self.poll_at = None;
            return None;
        }
        let interval = self.dcmp_interval();
        Some(*self.poll_at.get_or_insert_with(|| Instant::now() + interval))
    }

    fn dcmp_interval(&self) -> Duration {
        self.phone.dcmp_poll_interval().unwrap_or(self.config.dcmp_default_interval).max(self.config.dcmp_min_interval)
    }

    async fn wait(&mut self) {
        let poll_at = self.next_poll();
        let retry_at = if self.startup.is_some() {
            self.retry_at
        } else if self.callback {
            self.callback_at
        } else {
            None
        };
        let report_at = if self.startup.is_some() { None } else { self.reports.iter().map(|r| r.due).min() };
        let listener = self.listener.as_mut();
        tokio::select! {
            c = async {
                match listener {
                    Some(l) => l.recv().await,
                    None => std::future::pending().await,
                }
            } => match c {
                Some(c) => {
                    tracing::debug!(mac = %self.phone.mac(), "contact-me");
                    self.emit(AgentEvent::ContactMe(c));
                    self.solicit.get_or_insert(Trigger::ContactMe);
                }
                None => {
                    self.listener = None;
                    self.emit(AgentEvent::Error("the contact-me listener stopped".into()));
                }
            },
            r = self.busy.changed() => {
                if r.is_err() {
                    // The handle is gone: the stop signal follows.
                    std::future::pending::<()>().await;
                }
            }
            () = sleep_until(poll_at) => self.poll().await,
            () = sleep_until(retry_at) => {}
            () = sleep_until(report_at) => {}
        }
    }

    async fn poll(&mut self) {
        let Some(url) = self.phone.dcmp_url().map(str::to_owned) else { return };
        let r = dcmp::poll(&url, self.phone.mac(), &self.config.trust, self.config.dcmp_timeout).await;
        self.poll_at = Some(Instant::now() + self.dcmp_interval());
        if r == Ok(DcmpAnswer::Pending) {
            self.solicit.get_or_insert(Trigger::Dcmp);
        }
        if let Err(e) = &r {
            tracing::debug!(mac = %self.phone.mac(), "{e}");
        }
        self.emit(AgentEvent::Dcmp(r));
    }

    async fn interaction(&mut self, reason: Reason, trigger: Trigger) {
        if trigger != Trigger::SendSolicited {
            self.callbacks_in_a_row = 0;
        }
        let result = match client_for(&mut self.client, &self.phone, &self.config, &self.host) {
            Ok(client) => self.phone.interact(client, reason.clone()).await,
            Err(e) => Err(e),
        };
        self.finish(reason, trigger, result).await;
    }

    async fn finish(&mut self, reason: Reason, trigger: Trigger, result: Result<Interaction, ClientError>) {
        match result {
            Ok(report) => {
                if reason == Reason::StartUp {
                    self.startup = None;
                    self.retry_at = None;
                }
                // The DLS is reachable: reports kept from a failure go now.
                let now = Instant::now();
                for r in &mut self.reports {
                    r.due = r.due.min(now);
                }
                self.publish();
                self.emit(AgentEvent::Interaction { reason, trigger, result: Ok(report.clone()) });
                self.after(report).await;
                self.publish();
            }
            Err(e) => {
                tracing::debug!(mac = %self.phone.mac(), "{reason} ({}) failed: {e}", trigger.as_str());
                if reason == Reason::StartUp {
                    self.retry_at = Some(Instant::now() + self.config.retry_interval);
                }
                self.publish();
                self.emit(AgentEvent::Interaction { reason, trigger, result: Err(e.to_string()) });
            }
        }
    }

    /// What an interaction leaves to do: callback, deployments, secure mode, reboot.
    async fn after(&mut self, report: Interaction) {
        self.callback = report.send_solicited;
        // A DLS that asks for a callback at the end of every callback would make the phone
        // call in a tight loop: after a few in a row, they are spaced.
        self.callback_at = (self.callback && self.callbacks_in_a_row >= CALLBACKS_IN_A_ROW)
            .then(|| Instant::now() + self.config.retry_interval);
        self.deployments.extend(report.deployments);
        if let Some(kind) = &report.bootstrap {
            self.bootstrap(kind).await;
        }
        if let Some(kind) = &report.restart {
            // A reboot: a new connection, and nothing pending survives it.
            self.client = None;
            self.callback = false;
            self.solicit = None;
            self.deployments.clear();
            self.startup = Some(if kind == "FactoryReset" { Trigger::FactoryReset } else { Trigger::Restart });
            self.retry_at = None;
        }
    }

    /// After a bootstrap: types the PINs for a `pin` bootstrap, then starts up on the
    /// secure port.
    async fn bootstrap(&mut self, kind: &str) {
        if self.phone.pending_pin.is_some() {
            let Self { phone, client, config, host, events, .. } = self;
            // The client the bootstrap came on, for the `clean-up` when the retries run out.
            let typed = match client_for(client, phone, config, host) {
                Ok(client) => {
                    phone
                        .enter_pins(client, |phone, typed| {
                            let note = match typed {
                                PinOutcome::Opened => "PIN accepted: secure-mode-data opened".to_owned(),
                                PinOutcome::Wrong { left } => format!("wrong PIN ({left} tries left)"),
                                PinOutcome::RetriesExceeded => return,
                            };
                            emit_to(config, events, AgentEvent::Note(note), phone);
                        })
                        .await
                }
                Err(e) => {
                    self.emit(AgentEvent::Error(format!("no client for the bootstrap's PIN: {e}")));
                    return;
                }
            };
            let failed = match typed {
                Ok(PinsOutcome::Opened) => None,
                Ok(PinsOutcome::NoPinLeft) => {
                    Some("the DLS bootstrapped secure mode with a PIN: no PIN to type".to_owned())
                }
                Ok(PinsOutcome::RetriesExceeded { .. }) => {
                    Some("wrong PIN: retries exceeded; the phone sent clean-up (password retries exceeded)".to_owned())
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failed {
                self.emit(AgentEvent::Error(why));
                return;
            }
        }
        let Some(port) = self.phone.secure.as_ref().map(|m| m.port) else { return };
        self.publish();
        self.emit(AgentEvent::SecureMode { kind: kind.to_owned(), port });
        self.startup = Some(Trigger::SecureMode);
        self.retry_at = None;
    }

    /// Downloads one deployment, then reports it (`status`) or, after new firmware,
    /// reboots.
    async fn deploy(&mut self, d: Deployment) {
        let outcome = self.phone.deploy(&d, &self.config.trust, &self.config.download).await;
        self.publish();
        self.emit(AgentEvent::Deployment(outcome.clone()));
        if d.is_software() && outcome.ok() {
            self.client = None;
            self.callback = false;
            self.solicit = None;
            self.deployments.clear();
            self.startup = Some(Trigger::Firmware);
            self.retry_at = None;
            return;
        }
        let report = PendingReport { outcome, at: SystemTime::now(), attempts: 0, due: Instant::now() };
        self.report(report).await;
    }

    /// Sends a deployment's `status` report; keeps it to send again when the DLS did not
    /// take it, unless that was the last attempt (see the [module](self)).
    async fn report(&mut self, mut report: PendingReport) {
        report.attempts += 1;
        let result = match client_for(&mut self.client, &self.phone, &self.config, &self.host) {
            Ok(client) => self.phone.report_status_at(client, &report.outcome, report.at).await,
            Err(e) => Err(e),
        };
        let delivered = result.is_ok();
        self.finish(Reason::Status, Trigger::Deployment, result).await;
        if delivered {
            return;
        }
        let d = &report.outcome.deployment;
        let what = format!("the status report of {} ({})", d.file_name, d.file_type);
        if report.attempts >= STATUS_ATTEMPTS {
            self.emit(AgentEvent::Error(format!("{what} was not delivered in {} attempts: dropped", report.attempts)));
            return;
        }
        let wait = PendingReport::backoff(self.config.retry_interval, report.attempts);
        report.due = Instant::now() + wait;
        self.emit(AgentEvent::Note(format!(
            "{what} is kept: attempt {} of {STATUS_ATTEMPTS} failed, next in {:.1} s",
            report.attempts,
            wait.as_secs_f64()
        )));
        self.reports.push(report);
    }
}
