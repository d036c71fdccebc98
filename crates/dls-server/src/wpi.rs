//! `POST /DeploymentService/LoginService`: the thin shell around the engine. It reads the
//! body within limits, decodes it, takes the session, and — under the device's lock, off
//! the async executor — loads the device, runs the engine, commits its changes in one
//! transaction and keeps the next session before the reply is sent. The session is taken
//! before the device's lock, as it names the device (with sessions in the store, on a
//! blocking thread of its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use dls_engine::{
    BootstrapNeed, BootstrapSupply, Channel, Desired, DeviceSnapshot, Engine, Input, Note, Output, Session,
};
use dls_message::{Action, EncodeOptions, MacAddr, ValueEscaping, WorkpointMessage};
use dls_store::{Store, StoreError, with_device};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tracing::{Instrument, error, info, info_span, warn};

use crate::bootstrap::{BootstrapError, BootstrapMaker};
use crate::http::{ConnInfo, Resp, read_body, text};
use crate::metrics::{self, Metrics};
use crate::sessions::{Sessions, cookie_id, new_id};

/// The only path phones post to.
pub const LOGIN_SERVICE_PATH: &str = "/DeploymentService/LoginService";

/// What the WPI handler shares between requests.
pub(crate) struct WpiState {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) sessions: Sessions,
    pub(crate) locks: DeviceLocks,
    pub(crate) max_body_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) bootstrap: BootstrapMaker,
    /// Provisioning files are served on the default-mode TLS port too.
    pub(crate) provisioning: Arc<crate::provisioning::ProvisioningState>,
    /// Deployment downloads are served on the default-mode TLS port too.
    pub(crate) downloads: Arc<crate::downloads::DownloadState>,
    /// Requests being handled (their sessions are out of the table meanwhile).
    pub(crate) in_flight: AtomicUsize,
    /// The service's clock.
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// What `/metrics` reports.
    pub(crate) metrics: Arc<Metrics>,
    /// Whether each message runs in the store's own exclusion of its device
    /// ([`dls_store::ProtocolStore::run_message`]): when several nodes share the store, the
    /// in-process [`DeviceLocks`] cannot keep two nodes from handling one device at once.
    pub(crate) atomic_messages: bool,
    /// Mobility passwords checked at once (Argon2id: 19 MiB and tens of milliseconds each).
    pub(crate) password_checks: tokio::sync::Semaphore,
    /// Contact-me, for the phone a forced logoff is asked of.
    pub(crate) contact: crate::contact::ContactHandle,
}

impl WpiState {
    /// Whether no interaction is in progress: no request being handled, no open session.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.sessions.is_idle()
    }

    /// The device's outstanding PIN, opened. One that does not open is logged, and the
    /// engine gets no TAN (the phone's answer then counts as wrong).
    fn open_pin(&self, mac: MacAddr) -> Result<Option<dls_secure_mode::Pin>, BootstrapError> {
        let Some(sealed) = self.metrics.store("pin", self.store.pin(mac))? else { return Ok(None) };
        let pin = self.bootstrap.secrets.open_pin(mac, &sealed);
        if pin.is_none() {
            error!(%mac, "the stored PIN does not open (secrets.key changed?)");
        }
        Ok(pin)
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<WpiState>);

impl InFlight {
    fn enter(state: &Arc<WpiState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One lock per device (sharded), so that two messages of one device are never handled
/// at the same time.
pub(crate) struct DeviceLocks(Vec<tokio::sync::Mutex<()>>);

impl DeviceLocks {
    pub(crate) fn new(shards: usize) -> Self {
        Self((0..shards.max(1)).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn of(&self, mac: Option<MacAddr>) -> &tokio::sync::Mutex<()> {
        let o = mac.map_or([0; 6], |m| m.octets());
        let h = o.iter().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(*b)));
        &self.0[h % self.0.len()]
    }
}

/// Which WPI listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    /// The default-mode port (TLS, no client certificate).
    Default,
    /// The secure-mode port (mutual TLS).
    Secure,
}

impl Port {
    /// Its name in log lines and metrics.
    fn label(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Secure => "secure",
        }
    }
}

/// Handles one message to [`LOGIN_SERVICE_PATH`] (the routes are in [`crate::routes`]):
/// reads and decodes it ([`read_message`]), takes its session, and — under the device's
/// lock — runs the engine and commits ([`run_engine`]) before answering ([`respond`]).
pub(crate) async fn handle(state: Arc<WpiState>, req: Request<Incoming>, info: ConnInfo, port: Port) -> Resp {
    let started = Instant::now();
    let metrics = state.metrics.clone();
    let (resp, reason, action) = handle_message(state, req, info, port).await;
    let outcome = metrics::outcome(resp.status(), action.as_ref());
    metrics.wpi_message(port.label(), reason, outcome, started.elapsed());
    resp
}

/// [`handle`]'s work; also says, for the metrics, the message's reason for contact and the
/// reply's action (none when the answer is an HTTP error).
async fn handle_message(
    state: Arc<WpiState>,
    req: Request<Incoming>,
    info: ConnInfo,
    port: Port,
) -> (Resp, &'static str, Option<Action>) {
    let _in_flight = InFlight::enter(&state);
    let peer = info.peer;
    let channel = match (port, &info.client) {
        (Port::Default, _) => Channel::Default,
        (Port::Secure, Some(c)) => Channel::Secure {
            certificate_mac: c.common_name.as_deref().and_then(|cn| MacAddr::parse(cn).ok()),
            certificate_serial: c.serial.clone(),
        },
        (Port::Secure, None) => {
            return (text(StatusCode::FORBIDDEN, "a client certificate is required\n"), metrics::NOT_DECODED, None);
        }
    };
    if req.method() != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (r, metrics::NOT_DECODED, None);
    }
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(cookie_id)
        .map(str::to_owned);
    let message = match read_message(&state, req, peer).await {
        Ok(m) => m,
        Err(refused) => return (refused, metrics::NOT_DECODED, None),
    };
    let reason = metrics::reason(&message.reason.value);
    let session = match cookie.as_deref() {
        Some(id) => match state.sessions.take(id).await {
            Ok(s) => s,
            Err(e) => {
                let unavailable = matches!(e, StoreError::Unavailable(_));
                return (failed(&e, unavailable, "the session could not be taken; nothing sent"), reason, None);
            }
        },
        None => None,
    };
    let mac = Engine::identify(&message, session.as_ref(), &channel);
    let span = info_span!(
        "interaction",
        port = port.label(),
        mac = %mac.map_or_else(|| "-".to_owned(), |m| m.to_string()),
        nonce = %message.header.nonce,
        reason = %message.reason.value
    );
    async move {
        let _guard = state.locks.of(mac).lock().await;
        // A mobility password is checked on the blocking thread: a bounded number at once.
        let _check = match dls_engine::mobility::reported_password(&message) {
            Some(_) => state.password_checks.acquire().await.ok(),
            None => None,
        };
        let had_session = session.is_some();
        let message = Message { mac, peer, channel, workpoint: message, session, had_session, cookie };
        match run_engine(&state, message).await {
            Ok((resp, action)) => (resp, reason, Some(action)),
            Err(failed) => (failed, reason, None),
        }
    }
    .instrument(span)
    .await
}

/// The body read within its limits and decoded: a `WorkpointMessage`, or the answer that
/// refuses it (`400`, `408`, `413`).
async fn read_message(state: &WpiState, req: Request<Incoming>, peer: SocketAddr) -> Result<WorkpointMessage, Resp> {
    let body = match read_body(req, state.max_body_bytes, state.body_timeout).await {
        Ok(b) => b,
        Err(e) => {
            warn!(%peer, error = ?e, "request body refused");
            return Err(e.response());
        }
    };
    match dls_message::decode(&body) {
        Ok(dls_message::Message::Workpoint(m)) => Ok(m),
        Ok(dls_message::Message::Dls(_)) => {
            warn!(%peer, "a DLSMessage was posted to the DLS");
            Err(text(StatusCode::BAD_REQUEST, "expected a WorkpointMessage, got a DLSMessage\n"))
        }
        Err(e) => {
            warn!(%peer, error = %e, "malformed message");
            Err(text(StatusCode::BAD_REQUEST, format!("malformed message: {e}\n")))
        }
    }
}

/// One decoded message and what the engine needs to know of where it came from.
struct Message {
    mac: Option<MacAddr>,
    peer: SocketAddr,
    channel: Channel,
    workpoint: WorkpointMessage,
    session: Option<Session>,
    /// Whether the message came with its session.
    had_session: bool,
    /// The message's `JSESSIONID`.
    cookie: Option<String>,
}

/// Loads the device, runs the engine, commits its changes, and makes the reply keeping the
/// session for the next message ([`respond`]), on a blocking thread (never on the
/// executor); the caller holds the device's lock. A failure is a `500` with nothing
/// committed.
async fn run_engine(state: &Arc<WpiState>, message: Message) -> Result<(Resp, Action), Resp> {
    let st = state.clone();
    let run = move || {
        let (had_session, cookie) = (message.had_session, message.cookie.clone());
        let (out, escaping) = st.handle_blocking(message)?;
        for device in crate::mobility::logoffs_requested(&out.changes) {
            if let Err(e) = st.contact.request(device) {
                warn!(%device, error = %e, "no contact-me for a forced logoff");
            }
        }
        log_notes(&out.notes);
        for note in &out.notes {
            if let Note::Refused(why) = note {
                st.metrics.refused(*why);
            }
        }
        Ok::<_, BootstrapError>(respond(&st, out, escaping, had_session, cookie))
    };
    match crate::tasks::spawn_blocking(run).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(e)) => {
            let unavailable = matches!(e, BootstrapError::Store(StoreError::Unavailable(_)));
            Err(failed(&e, unavailable, "message not handled; nothing sent"))
        }
        Err(e) => {
            error!(error = %e, "engine task failed");
            Err(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
        }
    }
}

impl WpiState {
    /// [`run_engine`]'s work: load (one read transaction), bootstrap material if the engine
    /// needs it, the PIN only to check a TAN, the mobility users (and a password's check)
    /// if the engine needs them, the engine, and the commit (one transaction). A commit
    /// refused because a mobility user changed meanwhile is answered "busy, try again".
    fn handle_blocking(&self, mut m: Message) -> Result<(Output, ValueEscaping), BootstrapError> {
        let handled = self.handle_message_blocking(&m);
        crate::mobility::wipe_secrets(&mut m.workpoint);
        match handled {
            Err(BootstrapError::Store(StoreError::Contended { what })) => {
                info!(%what, "a mobility user changed meanwhile: the phone is asked to try again");
                Ok((Engine::contended(&m.workpoint), ValueEscaping::default()))
            }
            other => other,
        }
    }

    /// The users' state for `m` as `query` asks (`None`: the engine needs none).
    fn mobility(
        &self,
        mac: MacAddr,
        query: Option<&dls_engine::MobilityQuery>,
        m: &Message,
        now: dls_engine::UnixTime,
    ) -> Result<Option<dls_engine::MobilityInput>, BootstrapError> {
        let Some(query) = query else { return Ok(None) };
        let loaded = crate::mobility::load(self.store.as_ref(), mac, query, &m.workpoint, now);
        Ok(Some(self.metrics.store("mobility_context", loaded)?))
    }

    fn handle_message_blocking(&self, m: &Message) -> Result<(Output, ValueEscaping), BootstrapError> {
        let now = self.clock.now();
        // The PIN is opened only to check the TAN that answers its `ReadItems`, and wiped
        // when this message is handled.
        let pin = match m.mac {
            Some(mac) if Engine::tan_needed(&m.workpoint, m.session.as_ref(), &m.channel) => self.open_pin(mac)?,
            _ => None,
        };
        let tan = pin.as_ref().map(dls_secure_mode::Pin::tan);
        let handled = match m.mac {
            Some(mac) if self.atomic_messages => self.handle_atomically(mac, m, now, tan)?,
            mac => {
                let (device, desired) = match mac {
                    Some(mac) => self.metrics.store("load_for_message", self.store.load_for_message(mac))?,
                    None => (DeviceSnapshot::unknown(), Desired::default()),
                };
                let need = self.engine.bootstrap_needed(now, &m.workpoint, m.session.as_ref(), &m.channel, &device);
                let bootstrap = match (mac, need) {
                    (Some(mac), Some(need)) => Some(self.supply(need, mac, now)?),
                    _ => None,
                };
                let mobility = match mac {
                    Some(mac) => {
                        let query = Engine::mobility_query(&m.workpoint, m.session.as_ref(), Some(&device));
                        self.mobility(mac, query.as_ref(), m, now)?
                    }
                    None => None,
                };
                let mut input = self.input(m, now, &device, &desired, bootstrap, tan);
                input.mobility = mobility.as_ref();
                let out = self.engine.handle(input);
                if let (Some(mac), false) = (mac, out.changes.is_empty()) {
                    self.metrics.store("apply", self.store.apply(mac, &out.changes))?;
                }
                (out, desired.value_escaping)
            }
        };
        drop(pin);
        Ok(handled)
    }

    /// Several nodes share the store: the engine runs on the state loaded under the store's
    /// own exclusion of the device, and its changes commit in that transaction
    /// ([`with_device`]). Bootstrap material (a certificate, PBKDF2) is never made inside
    /// it: a pass that finds it needed commits nothing, the material is made outside, and a
    /// second pass runs with it.
    fn handle_atomically(
        &self,
        mac: MacAddr,
        m: &Message,
        now: dls_engine::UnixTime,
        tan: Option<&str>,
    ) -> Result<(Output, ValueEscaping), BootstrapError> {
        /// Why a pass committed nothing.
        enum Stop {
            Store(StoreError),
            NeedsBootstrap(BootstrapNeed),
            NeedsMobility(dls_engine::MobilityQuery),
        }
        impl From<StoreError> for Stop {
            fn from(e: StoreError) -> Self {
                Self::Store(e)
            }
        }
        let mut bootstrap: Option<BootstrapSupply> = None;
        // The users are loaded (and a password checked) before the device's transaction: what
        // the message alone asks, and then, should the device turn out to have mobility jobs,
        // a second pass with their users.
        let first = Engine::mobility_query(&m.workpoint, m.session.as_ref(), None);
        let mut mobility = match first {
            Some(q) => self.mobility(mac, Some(&q), m, now)?.map(|input| (q, input)),
            None => None,
        };
        // Each load follows a change of the device's jobs between passes: a few at most.
        let mut mobility_loads = 1;
        loop {
            let pass = with_device(self.store.as_ref(), mac, |device, desired| {
                if bootstrap.is_none()
                    && let Some(need) =
                        self.engine.bootstrap_needed(now, &m.workpoint, m.session.as_ref(), &m.channel, device)
                {
                    return Err(Stop::NeedsBootstrap(need));
                }
                let wanted = Engine::mobility_query(&m.workpoint, m.session.as_ref(), Some(device));
                if let Some(wanted) = wanted
                    && mobility_loads < 4
                    && !mobility.as_ref().is_some_and(|(loaded, _)| crate::mobility::covers(loaded, &wanted))
                {
                    return Err(Stop::NeedsMobility(wanted));
                }
                let mut input = self.input(m, now, device, desired, bootstrap.clone(), tan);
                input.mobility = mobility.as_ref().map(|(_, i)| i);
                let out = self.engine.handle(input);
                Ok((out.changes.clone(), (out, desired.value_escaping)))
            });
            match pass {
                Ok(handled) => return self.metrics.store("run_message", Ok(handled)),
                Err(Stop::Store(e)) => return self.metrics.store("run_message", Err(e.into())),
                Err(Stop::NeedsBootstrap(need)) => bootstrap = Some(self.supply(need, mac, now)?),
                Err(Stop::NeedsMobility(q)) => {
                    mobility_loads += 1;
                    mobility = self.mobility(mac, Some(&q), m, now)?.map(|input| (q, input));
                }
            }
        }
    }

    /// Bootstrap material for what the engine asked (`Unavailable` past the bound).
    fn supply(
        &self,
        need: BootstrapNeed,
        mac: MacAddr,
        now: dls_engine::UnixTime,
    ) -> Result<BootstrapSupply, BootstrapError> {
        let supply = self.bootstrap.supply(need, mac, self.store.as_ref(), now);
        self.metrics.bootstrap(supply.as_ref().ok());
        supply
    }

    /// The engine's input for `m` and what the store holds of its device.
    fn input<'a>(
        &self,
        m: &'a Message,
        now: dls_engine::UnixTime,
        device: &'a DeviceSnapshot,
        desired: &'a Desired,
        bootstrap: Option<BootstrapSupply>,
        tan: Option<&'a str>,
    ) -> Input<'a> {
        Input {
            now,
            message: &m.workpoint,
            channel: &m.channel,
            session: m.session.clone(),
            device,
            desired,
            bootstrap,
            peer: Some(m.peer.ip()),
            tan,
            mobility: None,
        }
    }
}

/// Our own failure, nothing committed: `503` with `Retry-After` while the store cannot be
/// reached (the phone calls again later; the node reconnects when the database is back),
/// `500` otherwise; one log line either way.
fn failed(e: &dyn std::fmt::Display, store_unavailable: bool, what: &str) -> Resp {
    if store_unavailable {
        warn!(error = %e, "{what}: the store is unavailable");
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "the service's database is unavailable; try again later\n");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    error!(error = %e, "{what}");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

/// The engine's notes as log lines: refusals and items not sent as warnings.
fn log_notes(notes: &[Note]) {
    for note in notes {
        match note {
            Note::Refused(why) => warn!(why = %why, "refused"),
            Note::ItemNotSent { item, reason } => {
                warn!(item = %item, reason = %reason, "item cannot be sent to a phone: skipped, the rest is written");
            }
            other => info!(note = ?other, "protocol event"),
        }
    }
}

/// The reply, encoded with the device family's value escaping and an exact length; the
/// session kept for the next message (in the store, with shared sessions: this blocks),
/// with a new `JSESSIONID` on an interaction's first response. A reply that cannot be encoded becomes a bare `CleanUp`, never a `500`. Also
/// says which action the reply carries.
fn respond(
    state: &WpiState,
    out: Output,
    escaping: ValueEscaping,
    had_session: bool,
    cookie: Option<String>,
) -> (Resp, Action) {
    let (mut action, mut items) = (out.reply.action.clone(), out.reply.items.as_ref().map_or(0, Vec::len));
    let nonce = out.reply.header.nonce.clone();
    let mut session = out.session;
    let xml = match dls_message::encode(
        &dls_message::Message::Dls(out.reply),
        &EncodeOptions::default().with_value_escaping(escaping),
    ) {
        Ok(x) => x,
        Err(e) => {
            // The engine leaves out every item that cannot be sent, so this is a bug; still,
            // the phone gets a `CleanUp` that ends the interaction, not a `500`.
            error!(error = %e, "reply not encodable; the interaction is ended with a CleanUp");
            (action, items, session) = (Action::CleanUp, 0, None);
            let clean_up = dls_message::DlsMessage::new(nonce, Action::CleanUp, None);
            match dls_message::encode(&dls_message::Message::Dls(clean_up), &EncodeOptions::default()) {
                Ok(x) => x,
                Err(e) => {
                    error!(error = %e, "not even a CleanUp is encodable");
                    return (text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"), action);
                }
            }
        }
    };
    info!(%action, items, "reply");
    let mut resp = Response::new(crate::http::full(xml));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    if let Some(s) = session {
        // Keep the cookie the phone has; set one on the first response of an interaction.
        let id = match (had_session, cookie) {
            (true, Some(id)) => id,
            _ => {
                let id = new_id();
                if let Ok(v) =
                    HeaderValue::from_str(&format!("JSESSIONID={id}; Path=/DeploymentService; Secure; HttpOnly"))
                {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
                id
            }
        };
        if !id.is_empty() {
            state.sessions.put(id, s);
        }
    }
    (resp, action)
}
