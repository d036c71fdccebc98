//! A load generator for a DLS: a fleet of simulated phones, each running its `start-up`
//! interaction against the DLS, with a bounded number of interactions in flight
//! (`dls phone load`).
//!
//! * [`Fleet`]: `N` distinct phones (MACs counted up from [`LoadConfig::first_mac`]), each
//!   with a realistic item set of about 350 items ([`FleetTemplate`], from the built-in
//!   `data/fleet.toml`: function keys 1–9 and 1001–1036, key labels, SIP, LDAP, codecs,
//!   network, audio, …).
//! * [`run`]: `C` tasks, each owning one [`WpiClient`], take phone indexes from a shared
//!   counter until every phone has had its interaction — or, with a
//!   [`duration`](LoadConfig::duration), until that much time has passed, reusing the
//!   phones round-robin. Every interaction is timed from its first message to the
//!   `CleanUp` ([`Histogram`]); failures are counted by [`ClientError::kind`] (and
//!   `no-cleanup` for an interaction that ended without one).
//! * [`LoadMode::Baseline`]: the same traffic shape for a server that does not speak WPI:
//!   see [`baseline_bodies`].
//! * [`LoadMode::Bootstrap`]: a secure-mode storm. Each phone bootstraps once: start-up on
//!   the default port, the bootstrap `WriteItems` (`nopin`, or `pin` with sealed
//!   `secure-mode-data`), the user types the phone's PIN from [`LoadConfig::pins`] (PBKDF2
//!   on the phone, run on a blocking thread), then the start-up on the secure port with
//!   mutual TLS (TAN, configuration) until `CleanUp`. One interaction of the report is the
//!   whole bootstrap; the PBKDF2 iteration count each phone saw is reported
//!   ([`LoadReport::pbkdf2_iterations`]).
//!
//! * [`MobilityMix`] (with [`LoadMode::Phones`]): a share of the phones log a user on after
//!   their `start-up`, change the user's phone book and log the user off, each round; the
//!   logon and logoff latencies are reported ([`LoadReport::logon`], [`LoadReport::logoff`]),
//!   a refusal counted by its reason (`logon cleanup: REASON`), and a phone book restored
//!   that is not the one the run saved last as [`RESTORE_MISMATCH`].
//!
//! New connections are always full TLS handshakes (session resumption is off), as a phone
//! after a boot makes them.
//!
//! The modules: `fleet` (the fleet and one interaction of each mode), `items` (the phones'
//! MACs and items, the baseline bodies), `mobility` (the mix), `histogram`, `pins`; the run
//! and its report here.

mod fleet;
mod histogram;
mod items;
mod mobility;
mod pins;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dls_message::MacAddr;
#[cfg(doc)]
use dls_workpoint::WpiClient;
use dls_workpoint::{ClientError, ServerTrust};

pub use fleet::{Failure, Fleet, Outcome};
pub use histogram::Histogram;
pub use items::{FleetDataError, FleetTemplate, baseline_bodies, fleet_mac};
pub use mobility::{MOBILITY_USERDATA_ITEM, MobilityMix, RESTORE_MISMATCH, phone_book};
pub use pins::Pins;

/// The first MAC of a fleet unless configured otherwise (`00:1A:E8:80:00:00`).
pub const DEFAULT_FIRST_MAC: MacAddr = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x80, 0x00, 0x00]);

/// The failure kind of an interaction that ended without `CleanUp`.
pub const NO_CLEANUP: &str = "no-cleanup";

/// Bootstrap runs: the default-port start-up ended without a bootstrap (and without a
/// `cleanup-reason`; with one, the kind is `cleanup: REASON`).
pub const NO_BOOTSTRAP: &str = "no-bootstrap";

/// Bootstrap runs: the DLS asked for a PIN and [`LoadConfig::pins`] has none for the phone.
pub const NO_PIN: &str = "no-pin";

/// Bootstrap runs: the phone's PIN did not open `secure-mode-data`.
pub const WRONG_PIN: &str = "wrong-pin";

/// Bootstrap runs: `secure-mode-data` was malformed (not a wrong PIN).
pub const BAD_SECURE_MODE_DATA: &str = "bad-secure-mode-data";

/// The prefix of the failure kind of a `CleanUp` that carried a `cleanup-reason` (a
/// refusal), followed by the reason: `cleanup: wrong TAN from device`.
pub const CLEANUP_REASON_PREFIX: &str = "cleanup: ";

/// What each simulated interaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// A real phone's `start-up` interaction, answering every DLS action until `CleanUp`.
    Phones,
    /// The baseline for a server that does not speak WPI: [`BASELINE_REQUESTS`] posts of
    /// fixed bodies (see [`baseline_bodies`]) per interaction, any `200` answer accepted.
    Baseline,
    /// A secure-mode bootstrap per phone: the start-up on the default port that brings the
    /// bootstrap, the PIN typed (for `pin`: [`LoadConfig::pins`]), the start-up on the
    /// secure port (mutual TLS, TAN, configuration) until a `CleanUp` without a
    /// `cleanup-reason`. One interaction per phone ([`LoadConfig::duration`] is refused):
    /// a bootstrapped device is not bootstrapped again.
    Bootstrap,
}

/// How many requests one baseline interaction posts (as many as a first start-up with a
/// configuration to write takes: start-up, `ReadAllItems` reply, `WriteItems` reply).
pub const BASELINE_REQUESTS: usize = 3;

/// A load run's settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadConfig {
    /// The DLS, `host:port`.
    pub server: String,
    /// How the phones treat the server's certificate.
    pub trust: ServerTrust,
    /// How many distinct phones.
    pub phones: usize,
    /// How many interactions in flight at once (one client, one connection each).
    pub concurrency: usize,
    /// The first phone's MAC; phone `i` has this MAC plus `i`.
    pub first_mac: MacAddr,
    /// Close the connection after every interaction (each then starts with a handshake).
    pub new_connection_per_interaction: bool,
    /// Stop starting interactions after this long, reusing phones round-robin until then
    /// (`None`: one interaction per phone).
    pub duration: Option<Duration>,
    /// The most one interaction may take (and each connect and exchange in it).
    pub interaction_timeout: Duration,
    /// Real interactions, the baseline, or secure-mode bootstraps.
    pub mode: LoadMode,
    /// For [`LoadMode::Bootstrap`]: the PIN each phone's user types when the DLS
    /// bootstraps it with `pin` (none needed for `nopin`).
    pub pins: Pins,
    /// For [`LoadMode::Baseline`]: how many of the [`baseline_bodies`] each interaction
    /// posts, from the first: [`BASELINE_REQUESTS`] (a first start-up, the default) or 1
    /// (the start-up of a known phone that has nothing to read or write). 1 to 3.
    pub baseline_requests: usize,
    /// For [`LoadMode::Phones`]: a share of the phones log a user on and off after their
    /// start-up (`None`: none).
    pub mobility: Option<MobilityMix>,
}

impl LoadConfig {
    /// `phones` phones against `server`, `concurrency` at a time, keep-alive connections,
    /// any server certificate accepted, a 30 s interaction timeout.
    #[must_use]
    pub fn new(server: impl Into<String>, phones: usize, concurrency: usize) -> Self {
        Self {
            server: server.into(),
            trust: ServerTrust::AcceptAny,
            phones,
            concurrency,
            first_mac: DEFAULT_FIRST_MAC,
            new_connection_per_interaction: false,
            duration: None,
            interaction_timeout: Duration::from_secs(30),
            mode: LoadMode::Phones,
            pins: Pins::new(),
            baseline_requests: BASELINE_REQUESTS,
            mobility: None,
        }
    }
}

/// Counters a caller can read while a run goes on (for a progress line).
#[derive(Debug, Default)]
pub struct Progress {
    interactions: AtomicU64,
    failures: AtomicU64,
}

impl Progress {
    /// Interactions finished so far, failed ones included.
    #[must_use]
    pub fn interactions(&self) -> u64 {
        self.interactions.load(Ordering::Relaxed)
    }

    /// Interactions failed so far.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// What a load run measured.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadReport {
    /// The fleet's size.
    pub phones: usize,
    /// Interactions in flight at once.
    pub concurrency: usize,
    /// Real interactions, the baseline, or secure-mode bootstraps.
    pub mode: LoadMode,
    /// Whether each interaction had its own connection.
    pub new_connection_per_interaction: bool,
    /// Interactions finished, failed ones included.
    pub interactions: u64,
    /// Interactions failed.
    pub failures: u64,
    /// Failed interactions by kind ([`ClientError::kind`], [`NO_CLEANUP`]; for bootstraps
    /// also [`NO_BOOTSTRAP`], [`NO_PIN`], [`WRONG_PIN`], [`BAD_SECURE_MODE_DATA`],
    /// `cleanup: REASON`, and `secure-` before a [`ClientError::kind`] on the secure port;
    /// with a mobility mix the step and its failure, e.g. `logon cleanup: REASON`,
    /// `logoff timeout` ([`dls_workpoint::MobilityError::kind`]), and [`RESTORE_MISMATCH`]).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// From the start to the end of the last interaction.
    pub elapsed: Duration,
    /// The durations of the successful interactions, first message to `CleanUp`
    /// (connecting included when the interaction had to connect).
    pub latency: Histogram,
    /// Connections opened.
    pub connections: u64,
    /// Requests posted in successful interactions.
    pub exchanges: u64,
    /// Bootstraps: how many phones received `secure-mode-data` sealed with each PBKDF2
    /// iteration count (from the bundle's header), failed bootstraps included.
    pub pbkdf2_iterations: BTreeMap<u32, u64>,
    /// Bootstraps with `pin`: how long typing the PIN took on the phone (opening
    /// `secure-mode-data`: PBKDF2 and decryption, waiting for a blocking thread included).
    pub pin_entry: Histogram,
    /// Whether the run had a mobility mix ([`LoadConfig::mobility`]).
    pub mobility: bool,
    /// With a mobility mix: the logons that succeeded (the logon, the interim start-up and
    /// the restore), by duration.
    pub logon: Histogram,
    /// With a mobility mix: the logoffs that succeeded (the logoff and the start-up after it).
    pub logoff: Histogram,
}

impl LoadReport {
    /// Successful interactions per second of the run.
    #[must_use]
    pub fn interactions_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            #[allow(clippy::cast_precision_loss)]
            let ok = (self.interactions - self.failures) as f64;
            ok / secs
        } else {
            0.0
        }
    }
}

/// What one task of a run measured.
#[derive(Default)]
struct TaskResult {
    latency: Histogram,
    failures: BTreeMap<Cow<'static, str>, u64>,
    interactions: u64,
    exchanges: u64,
    connections: u64,
    pbkdf2_iterations: BTreeMap<u32, u64>,
    pin_entry: Histogram,
    logon: Histogram,
    logoff: Histogram,
}

/// Runs the load `config` describes, updating `progress` as interactions finish.
///
/// # Errors
/// [`ClientError`] only when the run cannot start (malformed address, unusable CA
/// certificates); failed interactions are counted in the report.
pub async fn run(config: LoadConfig, progress: Arc<Progress>) -> Result<LoadReport, ClientError> {
    let fleet = Arc::new(Fleet::new(config)?);
    let cfg = fleet.config().clone();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks = cfg.concurrency.max(1).min(if cfg.duration.is_some() { usize::MAX } else { cfg.phones.max(1) });
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let fleet = fleet.clone();
        let next = next.clone();
        let progress = progress.clone();
        let mut client = fleet.client()?;
        handles.push(tokio::spawn(async move {
            let cfg = fleet.config();
            let mut out = TaskResult::default();
            loop {
                let index = match cfg.duration {
                    Some(d) if start.elapsed() >= d || cfg.phones == 0 => break,
                    Some(_) => next.fetch_add(1, Ordering::Relaxed) % cfg.phones,
                    None => match next.fetch_add(1, Ordering::Relaxed) {
                        i if i < cfg.phones => i,
                        _ => break,
                    },
                };
                let began = Instant::now();
                let outcome = tokio::time::timeout(cfg.interaction_timeout, fleet.interact(&mut client, index)).await;
                out.interactions += 1;
                progress.interactions.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(Ok(done)) => {
                        out.latency.record(began.elapsed());
                        out.exchanges += done.exchanges as u64;
                        out.connections += done.connections;
                        if let Some(n) = done.pbkdf2_iterations {
                            *out.pbkdf2_iterations.entry(n).or_default() += 1;
                        }
                        if let Some(d) = done.pin_entry {
                            out.pin_entry.record(d);
                        }
                        if let Some(d) = done.logon {
                            out.logon.record(d);
                        }
                        if let Some(d) = done.logoff {
                            out.logoff.record(d);
                        }
                        if cfg.new_connection_per_interaction {
                            client.close();
                        }
                    }
                    Ok(Err(failure)) => {
                        if let Some(n) = failure.pbkdf2_iterations {
                            *out.pbkdf2_iterations.entry(n).or_default() += 1;
                        }
                        *out.failures.entry(failure.kind).or_default() += 1;
                        progress.failures.fetch_add(1, Ordering::Relaxed);
                        client.close();
                    }
                    Err(_) => {
                        *out.failures.entry(ClientError::Timeout.kind().into()).or_default() += 1;
                        progress.failures.fetch_add(1, Ordering::Relaxed);
                        client.close();
                    }
                }
            }
            client.close();
            out.connections += client.connections_opened();
            out
        }));
    }
    let mut report = LoadReport {
        phones: cfg.phones,
        concurrency: cfg.concurrency,
        mode: cfg.mode,
        new_connection_per_interaction: cfg.new_connection_per_interaction,
        interactions: 0,
        failures: 0,
        failures_by_kind: BTreeMap::new(),
        elapsed: Duration::ZERO,
        latency: Histogram::new(),
        connections: 0,
        exchanges: 0,
        pbkdf2_iterations: BTreeMap::new(),
        pin_entry: Histogram::new(),
        mobility: cfg.mobility.is_some(),
        logon: Histogram::new(),
        logoff: Histogram::new(),
    };
    for h in handles {
        let t = h.await.map_err(|e| ClientError::Protocol(format!("a load task failed: {e}")))?;
        report.latency.merge(&t.latency);
        report.interactions += t.interactions;
        report.exchanges += t.exchanges;
        report.connections += t.connections;
        report.pin_entry.merge(&t.pin_entry);
        report.logon.merge(&t.logon);
        report.logoff.merge(&t.logoff);
        for (iterations, n) in t.pbkdf2_iterations {
            *report.pbkdf2_iterations.entry(iterations).or_default() += n;
        }
        for (kind, n) in t.failures {
            report.failures += n;
            *report.failures_by_kind.entry(kind.into_owned()).or_default() += n;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
