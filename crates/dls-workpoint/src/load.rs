//! A load generator: a fleet of simulated phones, each running its `start-up` interaction
//! against a DLS, with a bounded number of interactions in flight.
//!
//! * [`Fleet`]: `N` distinct phones (MACs counted up from [`LoadConfig::first_mac`]), each
//!   with a realistic item set of about 350 items ([`fleet_items`]: function keys 1–9 and
//!   1001–1036, key labels, SIP, LDAP, codecs, network, audio, …).
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
//! New connections are always full TLS handshakes (session resumption is off), as a phone
//! after a boot makes them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dls_message::{
    Action, EncodeOptions, Fragment, Header, Item, MacAddr, Message, Reason, ReasonForContact, ReplyStatus,
    WorkpointMessage,
};
use dls_secure_mode::{Envelope, Pin};
use hyper::StatusCode;
use zeroize::Zeroizing;

use crate::client::{ClientError, WpiClient};
use crate::phone::Phone;
use crate::secure::PinOutcome;
use crate::tls::{ServerTrust, client_config};

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

/// The PINs of a fleet's devices, by MAC, as `dls device add --mode pin` issued them.
/// Its `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Pins(HashMap<MacAddr, Zeroizing<String>>);

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pins({} devices)", self.0.len())
    }
}

impl Pins {
    /// No PINs.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `MAC PIN` lines (the MAC in any common spelling, e.g. colon-separated as
    /// `dls device list` prints it; the PIN as issued, spaces and dashes allowed). Empty
    /// lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The first bad line, by number (a PIN is never echoed): no PIN, not a MAC, not a
    /// PIN, or a MAC given twice.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pins = Self::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = n + 1;
            let (mac, pin) = line.split_once(char::is_whitespace).ok_or_else(|| format!("line {n}: want `MAC PIN`"))?;
            let mac = MacAddr::parse(mac).map_err(|e| format!("line {n}: {e}"))?;
            let pin = pin.trim();
            Pin::parse(pin).map_err(|e| format!("line {n}: not a PIN: {e}"))?;
            if pins.0.insert(mac, Zeroizing::new(pin.to_owned())).is_some() {
                return Err(format!("line {n}: {} is given twice", mac.colon_separated()));
            }
        }
        Ok(pins)
    }

    /// Sets the PIN of `mac`.
    pub fn insert(&mut self, mac: MacAddr, pin: impl Into<String>) {
        self.0.insert(mac, Zeroizing::new(pin.into()));
    }

    /// The PIN of `mac`.
    #[must_use]
    pub fn get(&self, mac: &MacAddr) -> Option<&str> {
        self.0.get(mac).map(|p| p.as_str())
    }

    /// How many devices have a PIN.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no device has a PIN.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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

/// Durations, kept exactly (in microseconds) so that percentiles are exact; a few hundred
/// thousand samples take a few MB.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    micros: Vec<u64>,
    sorted: bool,
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.micros.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        self.micros.extend_from_slice(&other.micros);
        self.sorted = self.micros.is_empty();
    }

    /// How many samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there is no sample.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
    }

    /// The `q`-th percentile (`0 < q <= 100`) by nearest rank: the smallest sample that at
    /// least `q` % of the samples are not greater than. `None` without samples.
    pub fn percentile(&mut self, q: f64) -> Option<Duration> {
        if self.micros.is_empty() {
            return None;
        }
        self.sort();
        let n = self.micros.len();
        // Nearest rank: ceil(q / 100 * n), within 1..=n. The float is at most n, exact
        // enough for any count a run reaches.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 100.0) / 100.0 * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(self.micros[rank - 1]))
    }

    /// The largest sample.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        self.micros.iter().max().map(|m| Duration::from_micros(*m))
    }

    /// The smallest sample.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        self.micros.iter().min().map(|m| Duration::from_micros(*m))
    }

    /// The mean.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let n = u64::try_from(self.micros.len()).ok().filter(|n| *n > 0)?;
        let sum: u128 = self.micros.iter().map(|m| u128::from(*m)).sum();
        Some(Duration::from_micros(u64::try_from(sum / u128::from(n)).unwrap_or(u64::MAX)))
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
    /// `cleanup: REASON`, and `secure-` before a [`ClientError::kind`] on the secure port).
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

/// Phone `index` of a fleet starting at `first`: the MAC plus `index`, within 48 bits.
#[must_use]
pub fn fleet_mac(first: MacAddr, index: usize) -> MacAddr {
    let o = first.octets();
    let base = o.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let n = base.wrapping_add(u64::try_from(index).unwrap_or(u64::MAX)) & 0xFFFF_FFFF_FFFF;
    let b = n.to_be_bytes();
    MacAddr::from_bytes([b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The function keys of a fleet phone: 1–9 on the phone, 1001–1036 on a key module.
fn function_keys() -> impl Iterator<Item = u32> {
    (1..=9).chain(1001..=1036)
}

/// The items of fleet phone `index` beyond the identity items of [`Phone::new`]: about 350
/// items, as an OpenStage 60 with one key module reports them (values vary with the
/// index where a real fleet's do: numbers, addresses, labels).
#[must_use]
pub fn fleet_items(index: usize) -> Vec<Item> {
    let ext = 10_000 + index % 90_000;
    let e164 = format!("49897007{ext:05}");
    let host = (index % 250) + 2;
    let subnet = (index / 250) % 250;
    let mut items = vec![
        Item::new("e164", e164.as_str()),
        Item::new("basic-e164", e164.as_str()),
        Item::new("display-id", format!("{ext}")),
        Item::new("display-id-unicode", format!("Desk {ext}")),
        Item::new("use-display-id", "true"),
        // SIP
        Item::new("sip-user-id", e164.as_str()),
        Item::new("sip-name", format!("User {ext}")),
        Item::new("sip-pwd", format!("secret-{ext}")),
        Item::new("sip-realm", "example.net"),
        Item::new("reg-addr", "sip.example.net"),
        Item::new("reg-port", "5060"),
        Item::new("registrar-addr", "sip.example.net"),
        Item::new("registrar-port", "5060"),
        Item::new("outbound-proxy-addr", "sbc.example.net"),
        Item::new("outbound-proxy-port", "5060"),
        Item::new("sgnl-gateway-addr", "gw.example.net"),
        Item::new("sgnl-gateway-port", "5060"),
        Item::new("sgnl-route", "0"),
        Item::new("sip-transport", "udp"),
        Item::new("sip-server-type", "other"),
        Item::new("reg-timer", "3600"),
        Item::new("session-timer-enabled", "true"),
        Item::new("session-duration", "3600"),
        Item::new("outbound-proxy", "true"),
        Item::new("default-domain", "example.net"),
        Item::new("sip-rport", "false"),
        Item::new("backup-addr", "sip2.example.net"),
        Item::new("backup-port", "5060"),
        Item::new("backup-transport", "udp"),
        Item::new("backup-registration-allowed", "true"),
        Item::new("mwi-e164", "49897007999"),
        Item::new("call-pickup-group-uri", ""),
        Item::new("conference-factory-uri", ""),
        Item::new("emergency-e164", "112"),
        Item::new("voice-mail-e164", "49897007999"),
        Item::new("dial-plan-enabled", "false"),
        Item::new("canonical-dial-international-prefix", "00"),
        Item::new("canonical-dial-national-prefix", "0"),
        Item::new("canonical-dial-local-country-code", "49"),
        Item::new("canonical-dial-local-national-code", "89"),
        Item::new("canonical-dial-local-enterprise-node", "7007"),
        // network
        Item::new("dhcp", "true"),
        Item::new("dhcp-reuse", "true"),
        Item::new("ip-addr", format!("10.20.{subnet}.{host}")),
        Item::new("subnet-mask", "255.255.255.0"),
        Item::new("default-route", format!("10.20.{subnet}.1")),
        Item::new("route1-dest", ""),
        Item::new("route1-gateway", ""),
        Item::new("route1-mask", ""),
        Item::new("pri-dns", "10.0.0.53"),
        Item::new("sec-dns", "10.0.1.53"),
        Item::new("dns-domain", "example.net"),
        Item::new("sntp-addr", "ntp.example.net"),
        Item::new("sntp-tz-offset", "60"),
        Item::new("daylight-save", "true"),
        Item::new("daylight-save-zone-id", "12"),
        Item::new("auto-daylight-save", "true"),
        Item::new("vlan-discovery", "2"),
        Item::new("vlan-id", "20"),
        Item::new("lldp-med-enabled", "true"),
        Item::new("qos-layer2-voice", "5"),
        Item::new("qos-layer3-voice", "46"),
        Item::new("qos-layer3-signalling", "26"),
        Item::new("pc-port-mode", "auto"),
        Item::new("lan-port-mode", "auto"),
        Item::new("dls-addr", "dls.example.net"),
        Item::new("dls-port", "18443"),
        Item::new("dls-contact-interval", "0"),
        Item::new("snmp-trap-addr", ""),
        Item::new("snmp-queries-allowed", "false"),
        Item::new("web-server-port", "443"),
        Item::new("ssh-enable", "false"),
        // LDAP
        Item::new("ldap-server-address", "ldap.example.net"),
        Item::new("ldap-server-port", "389"),
        Item::new("ldap-transport", "TCP"),
        Item::new("ldap-authentication", "1"),
        Item::new("ldap-user", "cn=phones,ou=services,dc=example,dc=net"),
        Item::new("ldap-pwd", "ldap-secret"),
        Item::new("ldap-template", "Default"),
        Item::new("ldap-max-responses", "25"),
        Item::new("ldap-search-trigger-timeout", "3"),
        Item::new("ldap-base-dn", "ou=people,dc=example,dc=net"),
        Item::new("ldap-search-filter", "(|(cn=*%s*)(telephoneNumber=*%s*))"),
        // codecs and audio
        Item::new("silence-suppression", "false"),
        Item::new("packet-size", "20ms"),
        Item::new("g722-allowed", "true"),
        Item::new("g729-allowed", "true"),
        Item::new("opus-allowed", "false"),
        Item::new("jitter-buffer-mode", "adaptive"),
        Item::new("ringer-melody", "2"),
        Item::new("ringer-tone-sequence", "1"),
        Item::new("ringer-volume", "5"),
        Item::new("handset-volume", "4"),
        Item::new("speaker-volume", "5"),
        Item::new("headset-volume", "4"),
        Item::new("open-listening", "standard"),
        Item::new("country-iso", "DE"),
        Item::new("language-iso", "de"),
        Item::new("date-format", "DD.MM.YYYY"),
        Item::new("time-format", "24h"),
        Item::new("display-skin", "Crystal Sea"),
        Item::new("screensaver-enabled", "false"),
        Item::new("backlight-timeout", "2"),
        // features
        Item::new("call-waiting-enabled", "true"),
        Item::new("call-transfer-enabled", "true"),
        Item::new("call-forwarding-enabled", "true"),
        Item::new("cfu-e164", ""),
        Item::new("cfb-e164", ""),
        Item::new("cfna-e164", ""),
        Item::new("cfna-timeout", "20"),
        Item::new("dnd-enabled", "false"),
        Item::new("auto-answer", "false"),
        Item::new("auto-reconnect", "false"),
        Item::new("hot-line-enabled", "false"),
        Item::new("hot-line-e164", ""),
        Item::new("local-conference-enabled", "true"),
        Item::new("busy-when-dialling", "false"),
        Item::new("admin-pwd", "123456"),
        Item::new("user-pwd", ""),
    ];
    for (n, (codec, rank)) in
        [("G.711 A-law", 1), ("G.711 u-law", 2), ("G.722", 3), ("G.729", 4), ("OPUS", 5)].into_iter().enumerate()
    {
        let i = u32::try_from(n + 1).unwrap_or(u32::MAX);
        items.push(Item::indexed("codec-type", i, codec));
        items.push(Item::indexed("codec-rank", i, rank.to_string()));
    }
    for key in function_keys() {
        let module = if key > 1000 { "Module" } else { "Key" };
        let (def, label) = match key % 5 {
            0 => ("1", format!("Line {}", ext + key as usize % 100)),
            1 => ("30", format!("{module} {key}")),
            2 => ("58", format!("BLF {}", ext + key as usize % 100)),
            3 => ("31", "Pickup".to_owned()),
            _ => ("0", String::new()),
        };
        items.push(Item::indexed("function-key-def", key, def));
        items.push(Item::indexed("key-label-unicode", key, label.as_str()));
        items.push(Item::indexed("key-label-unicode-2", key, label));
        items.push(Item::indexed(
            "select-dial",
            key,
            if def == "30" { format!("4989700{key}") } else { String::new() },
        ));
        items.push(Item::indexed(
            "blf-monitored-phone",
            key,
            if def == "58" { format!("49897007{:05}", 10_000 + key) } else { String::new() },
        ));
    }
    items
}

/// Fleet phone `index`: the identity items of [`Phone::new`] and [`fleet_items`].
#[must_use]
pub fn fleet_phone(first: MacAddr, index: usize) -> Phone {
    Phone::with_items(fleet_mac(first, index), fleet_items(index))
}

/// The bodies of a baseline interaction, in order: phone 0's `start-up` message, its
/// whole inventory as the reply to `ReadAllItems` (one message: it fits in 50 kB), and an
/// empty reply to `WriteItems` (every item accepted) — the requests a first start-up with a
/// configuration to write posts, with their sizes. The bodies are fixed: the baseline
/// server does not read them.
///
/// # Errors
/// [`ClientError::Protocol`] if a body cannot be encoded (not with these items).
pub fn baseline_bodies(first: MacAddr) -> Result<Vec<Vec<u8>>, ClientError> {
    let phone = fleet_phone(first, 0);
    let nonce = crate::phone::new_nonce();
    let message = |reason: ReasonForContact, items: Vec<Item>| WorkpointMessage {
        header: Header { nonce: nonce.clone(), max_items: Some(phone.max_items), fragment: Some(Fragment::Final) },
        reason,
        items: Some(items),
    };
    [
        message(ReasonForContact::new(Reason::StartUp), phone.basic_items()),
        message(ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted), phone.reported_items()),
        message(ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Accepted), Vec::new()),
    ]
    .into_iter()
    .map(|m| {
        dls_message::encode(&Message::Workpoint(m), &EncodeOptions::default())
            .map(String::into_bytes)
            .map_err(|e| ClientError::Protocol(format!("baseline body not encodable: {e}")))
    })
    .collect()
}

/// What one successful interaction (for [`LoadMode::Bootstrap`], one whole bootstrap) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// Requests posted.
    pub exchanges: usize,
    /// Connections opened besides the task's own client (the secure port's).
    pub connections: u64,
    /// The PBKDF2 iteration count of the `secure-mode-data` received.
    pub pbkdf2_iterations: Option<u32>,
    /// How long opening `secure-mode-data` with the typed PIN took.
    pub pin_entry: Option<Duration>,
}

/// Why one interaction failed, and what it had seen by then.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The kind, as [`LoadReport::failures_by_kind`] counts it.
    pub kind: Cow<'static, str>,
    /// The PBKDF2 iteration count of the `secure-mode-data` received before the failure.
    pub pbkdf2_iterations: Option<u32>,
}

impl From<&'static str> for Failure {
    fn from(kind: &'static str) -> Self {
        Self { kind: Cow::Borrowed(kind), pbkdf2_iterations: None }
    }
}

/// The failure kind of a client error on the secure port: `secure-` and its kind.
fn secure_kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Connect(_) => "secure-connect",
        ClientError::Tls(_) => "secure-tls",
        ClientError::Status { .. } => "secure-http-status",
        ClientError::Protocol(_) => "secure-protocol",
        ClientError::Timeout => "secure-timeout",
    }
}

/// The failure kind of an interaction that ended with `CleanUp` but not as it should:
/// `cleanup: REASON` when the DLS gave one, `otherwise`.
fn cleanup_kind(reason: Option<&str>, otherwise: &'static str) -> Cow<'static, str> {
    match reason {
        Some(r) => Cow::Owned(format!("{CLEANUP_REASON_PREFIX}{r}")),
        None => Cow::Borrowed(otherwise),
    }
}

/// A fleet, ready to run interactions: the TLS configuration shared by every client, the
/// baseline bodies, and what the phones were written so far (when phones are reused).
#[derive(Debug)]
pub struct Fleet {
    config: LoadConfig,
    tls: Arc<rustls::ClientConfig>,
    bodies: Vec<Vec<u8>>,
    /// Per phone, the items written to it, when phones are reused ([`LoadConfig::duration`]).
    written: Option<Vec<Mutex<Vec<Item>>>>,
}

impl Fleet {
    /// A fleet as `config` says.
    ///
    /// # Errors
    /// [`ClientError::Tls`] for unusable CA certificates, [`ClientError::Connect`] for a
    /// malformed server address, [`ClientError::Protocol`] for a bootstrap run with a
    /// duration.
    pub fn new(config: LoadConfig) -> Result<Self, ClientError> {
        if config.mode == LoadMode::Bootstrap && config.duration.is_some() {
            return Err(ClientError::Protocol(
                "a bootstrap run has one bootstrap per phone: it takes no duration".into(),
            ));
        }
        let mut tls = (*client_config(&config.trust)?).clone();
        tls.resumption = rustls::client::Resumption::disabled();
        let tls = Arc::new(tls);
        // Checks the address once, here.
        WpiClient::with_tls(&config.server, tls.clone())?;
        if config.mode == LoadMode::Baseline && !(1..=BASELINE_REQUESTS).contains(&config.baseline_requests) {
            return Err(ClientError::Protocol(format!(
                "a baseline interaction posts 1 to {BASELINE_REQUESTS} requests, not {}",
                config.baseline_requests
            )));
        }
        let bodies = match config.mode {
            LoadMode::Baseline => {
                let mut bodies = baseline_bodies(config.first_mac)?;
                bodies.truncate(config.baseline_requests);
                bodies
            }
            LoadMode::Phones | LoadMode::Bootstrap => Vec::new(),
        };
        let written = (config.duration.is_some() && config.mode == LoadMode::Phones)
            .then(|| (0..config.phones).map(|_| Mutex::new(Vec::new())).collect());
        Ok(Self { config, tls, bodies, written })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// A client for one task of the run (no connection yet).
    ///
    /// # Errors
    /// [`ClientError::Connect`] for a malformed server address.
    pub fn client(&self) -> Result<WpiClient, ClientError> {
        let mut c = WpiClient::with_tls(&self.config.server, self.tls.clone())?;
        c.set_timeout(self.config.interaction_timeout);
        Ok(c)
    }

    /// Runs phone `index`'s interaction on `client` (without the overall timeout; for
    /// [`LoadMode::Bootstrap`] the whole bootstrap, see [`Fleet::bootstrap`]).
    ///
    /// # Errors
    /// The kind of failure: [`ClientError::kind`] or [`NO_CLEANUP`] (and those of
    /// [`Fleet::bootstrap`]).
    pub async fn interact(&self, client: &mut WpiClient, index: usize) -> Result<Outcome, Failure> {
        let done = |exchanges| Outcome { exchanges, ..Outcome::default() };
        match self.config.mode {
            LoadMode::Bootstrap => self.bootstrap(client, index).await,
            LoadMode::Baseline => {
                for body in &self.bodies {
                    let (status, _, body) = client.post(body.clone()).await.map_err(|e| Failure::from(e.kind()))?;
                    if status != StatusCode::OK {
                        let e = ClientError::Status {
                            status: status.as_u16(),
                            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                        };
                        return Err(e.kind().into());
                    }
                }
                Ok(done(self.bodies.len()))
            }
            LoadMode::Phones => {
                let written = self.written.as_ref().and_then(|w| w.get(index));
                let mut phone = match written {
                    Some(w) => {
                        let before = w.lock().map(|w| w.clone()).unwrap_or_default();
                        Phone::with_items(
                            fleet_mac(self.config.first_mac, index),
                            fleet_items(index).into_iter().chain(before),
                        )
                    }
                    None => fleet_phone(self.config.first_mac, index),
                };
                let r = phone.interact(client, Reason::StartUp).await.map_err(|e| Failure::from(e.kind()))?;
                if r.actions.last() != Some(&Action::CleanUp) {
                    return Err(NO_CLEANUP.into());
                }
                if let (Some(w), false) = (written, r.written.is_empty()) {
                    if let Ok(mut w) = w.lock() {
                        let mut at: HashMap<(String, Option<u32>), usize> =
                            w.iter().enumerate().map(|(n, i)| ((i.name.clone(), i.index), n)).collect();
                        for item in r.written {
                            match at.get(&(item.name.clone(), item.index)) {
                                Some(&n) => w[n] = item,
                                None => {
                                    at.insert((item.name.clone(), item.index), w.len());
                                    w.push(item);
                                }
                            }
                        }
                    }
                }
                Ok(done(r.exchanges))
            }
        }
    }

    /// Phone `index`'s secure-mode bootstrap: the start-up on `client` (the default port)
    /// that brings the bootstrap; for `pin`, the phone's PIN typed (opening
    /// `secure-mode-data` on a blocking thread: PBKDF2 is deliberately slow); then the
    /// start-up on a new mutual-TLS connection to the secure port (the host of
    /// [`LoadConfig::server`], the port the bootstrap named), answering the TAN and the
    /// configuration, until `CleanUp`.
    ///
    /// # Errors
    /// [`ClientError::kind`] on the default port, `secure-` and the kind on the secure
    /// port, [`NO_CLEANUP`], [`NO_BOOTSTRAP`], [`NO_PIN`], [`WRONG_PIN`],
    /// [`BAD_SECURE_MODE_DATA`], or `cleanup: REASON` when the DLS refused with a reason.
    pub async fn bootstrap(&self, client: &mut WpiClient, index: usize) -> Result<Outcome, Failure> {
        let mut phone = fleet_phone(self.config.first_mac, index);
        let first = phone.interact(client, Reason::StartUp).await.map_err(|e| Failure::from(e.kind()))?;
        if first.actions.last() != Some(&Action::CleanUp) {
            return Err(NO_CLEANUP.into());
        }
        let mut out = Outcome { exchanges: first.exchanges, ..Outcome::default() };
        let fail = |kind: Cow<'static, str>, out: &Outcome| Failure { kind, pbkdf2_iterations: out.pbkdf2_iterations };
        match first.bootstrap.as_deref() {
            None => return Err(fail(cleanup_kind(first.cleanup_reason.as_deref(), NO_BOOTSTRAP), &out)),
            Some("pin") => {
                out.pbkdf2_iterations = phone
                    .pending_pin
                    .as_ref()
                    .and_then(|p| Envelope::parse(&p.secure_mode_data).ok())
                    .map(|e| e.header().iterations());
                let Some(pin) = self.config.pins.get(&phone.mac()) else {
                    return Err(fail(NO_PIN.into(), &out));
                };
                phone.pin_entries.push_back(pin.to_owned());
                let began = Instant::now();
                let (back, typed) = tokio::task::spawn_blocking(move || {
                    let typed = phone.enter_pin();
                    (phone, typed)
                })
                .await
                .map_err(|_| fail("pin-entry-task".into(), &out))?;
                out.pin_entry = Some(began.elapsed());
                phone = back;
                match typed {
                    Ok(PinOutcome::Opened) => {}
                    Ok(PinOutcome::Wrong { .. } | PinOutcome::RetriesExceeded) => {
                        return Err(fail(WRONG_PIN.into(), &out));
                    }
                    Err(_) => return Err(fail(BAD_SECURE_MODE_DATA.into(), &out)),
                }
            }
            // `nopin`: the material came in the clear.
            Some(_) => {}
        }
        let server = self.config.server.as_str();
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
        let mut secure = phone.secure_client(host).map_err(|e| fail(secure_kind(&e).into(), &out))?;
        secure.set_timeout(self.config.interaction_timeout);
        let second = phone.interact(&mut secure, Reason::StartUp).await;
        out.connections = secure.connections_opened();
        secure.close();
        let second = second.map_err(|e| fail(secure_kind(&e).into(), &out))?;
        out.exchanges += second.exchanges;
        if second.actions.last() != Some(&Action::CleanUp) {
            return Err(fail(NO_CLEANUP.into(), &out));
        }
        if let Some(reason) = second.cleanup_reason.as_deref() {
            return Err(fail(cleanup_kind(Some(reason), NO_CLEANUP), &out));
        }
        Ok(out)
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
    };
    for h in handles {
        let t = h.await.map_err(|e| ClientError::Protocol(format!("a load task failed: {e}")))?;
        report.latency.merge(&t.latency);
        report.interactions += t.interactions;
        report.exchanges += t.exchanges;
        report.connections += t.connections;
        report.pin_entry.merge(&t.pin_entry);
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let mut h = Histogram::new();
        assert!(h.is_empty());
        assert_eq!(h.percentile(50.0), None);
        assert_eq!((h.max(), h.min(), h.mean()), (None, None, None));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = Histogram::new();
        // 1..=100 ms, recorded out of order.
        for n in (1..=100).rev() {
            h.record(ms(n));
        }
        assert_eq!(h.len(), 100);
        assert_eq!(h.percentile(50.0), Some(ms(50)));
        assert_eq!(h.percentile(90.0), Some(ms(90)));
        assert_eq!(h.percentile(99.0), Some(ms(99)));
        assert_eq!(h.percentile(100.0), Some(ms(100)));
        assert_eq!(h.percentile(0.0), Some(ms(1)));
        assert_eq!(h.max(), Some(ms(100)));
        assert_eq!(h.min(), Some(ms(1)));
        assert_eq!(h.mean(), Some(Duration::from_micros(50_500)));
    }

    #[test]
    fn few_samples_and_ties() {
        let mut h = Histogram::new();
        h.record(ms(7));
        assert_eq!(
            (h.percentile(1.0), h.percentile(50.0), h.percentile(99.0)),
            (Some(ms(7)), Some(ms(7)), Some(ms(7)))
        );
        let mut h = Histogram::new();
        for n in [3, 1, 2, 2] {
            h.record(ms(n));
        }
        // Ranks: p50 → 2nd of 4, p90 → 4th, p25 → 1st.
        assert_eq!(
            (h.percentile(25.0), h.percentile(50.0), h.percentile(90.0)),
            (Some(ms(1)), Some(ms(2)), Some(ms(3)))
        );
    }

    #[test]
    fn merged_histograms_are_sorted_again() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for n in 1..=10 {
            a.record(ms(n * 2));
            b.record(ms(n * 2 - 1));
        }
        assert_eq!(a.percentile(50.0), Some(ms(10)));
        a.merge(&b);
        assert_eq!(a.len(), 20);
        assert_eq!(a.percentile(50.0), Some(ms(10)));
        assert_eq!(a.percentile(5.0), Some(ms(1)));
        assert_eq!(a.percentile(100.0), Some(ms(20)));
        let mut c = Histogram::new();
        c.merge(&Histogram::new());
        assert_eq!(c.percentile(50.0), None);
    }

    #[test]
    fn sub_millisecond_samples_are_kept() {
        let mut h = Histogram::new();
        h.record(Duration::from_micros(250));
        h.record(Duration::from_micros(750));
        assert_eq!(h.percentile(50.0), Some(Duration::from_micros(250)));
        assert_eq!(h.max(), Some(Duration::from_micros(750)));
    }

    #[test]
    fn fleet_macs_are_distinct_and_counted_up() {
        let first = MacAddr::parse("00:1A:E8:FF:FF:FE").expect("mac");
        assert_eq!(fleet_mac(first, 0), first);
        assert_eq!(fleet_mac(first, 1).to_string(), "001AE8FFFFFF");
        assert_eq!(fleet_mac(first, 2).to_string(), "001AE9000000");
        let macs: HashSet<_> = (0..10_000).map(|i| fleet_mac(DEFAULT_FIRST_MAC, i)).collect();
        assert_eq!(macs.len(), 10_000);
    }

    #[test]
    fn a_fleet_phone_has_a_few_hundred_distinct_items() {
        let items = fleet_items(42);
        let keys: HashSet<_> = items.iter().map(|i| (i.name.clone(), i.index)).collect();
        assert_eq!(keys.len(), items.len(), "no item twice");
        assert!((250..=400).contains(&items.len()), "{} items", items.len());
        let phone = fleet_phone(DEFAULT_FIRST_MAC, 42);
        assert_eq!(phone.get("function-key-def", Some(1001)), Some("30"));
        assert_eq!(phone.get("e164", None), Some("4989700710042"));
        assert_eq!(phone.get("mac-addr", None), Some("00:1A:E8:80:00:2A"));
        assert!(phone.reported_items().len() < items.len() + 12, "passwords are not reported");
    }

    #[test]
    fn pin_files_map_macs_to_pins_and_name_the_bad_line() {
        let pins = Pins::parse(
            "# MAC PIN\n00:1A:E8:80:00:00 123456789012345\n\n001ae8800001   1234 5678 9012 345\n00-1A-E8-80-00-02\t987654321098765\n",
        )
        .expect("pins");
        assert_eq!(pins.len(), 3);
        assert_eq!(pins.get(&DEFAULT_FIRST_MAC), Some("123456789012345"));
        assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 1)), Some("1234 5678 9012 345"));
        assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 2)), Some("987654321098765"));
        assert_eq!(pins.get(&fleet_mac(DEFAULT_FIRST_MAC, 3)), None);
        assert_eq!(format!("{pins:?}"), "Pins(3 devices)", "no PIN in Debug");
        assert!(Pins::parse("").expect("empty").is_empty());
        for (text, line) in [
            ("00:1A:E8:80:00:00\n", "line 1"),
            ("\n00:1A:E8:80:00:0 123456789012345\n", "line 2"),
            ("00:1A:E8:80:00:00 12345x789012345\n", "line 1"),
            ("00:1A:E8:80:00:00 123456789012345\n001AE8800000 111111111111111\n", "line 2"),
        ] {
            let e = Pins::parse(text).expect_err(text);
            assert!(e.starts_with(line), "{text:?}: {e}");
            assert!(!e.contains("1111") && !e.contains("12345x"), "no PIN echoed: {e}");
        }
    }

    #[test]
    fn a_bootstrap_run_takes_no_duration() {
        let mut config = LoadConfig::new("127.0.0.1:1", 1, 1);
        config.mode = LoadMode::Bootstrap;
        config.duration = Some(Duration::from_secs(1));
        assert!(matches!(Fleet::new(config), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn baseline_bodies_are_a_start_up_a_full_inventory_and_an_empty_write_reply() {
        let bodies = baseline_bodies(DEFAULT_FIRST_MAC).expect("bodies");
        assert_eq!(bodies.len(), BASELINE_REQUESTS);
        let decoded: Vec<WorkpointMessage> = bodies
            .iter()
            .map(|b| match dls_message::decode(b) {
                Ok(Message::Workpoint(m)) => m,
                other => panic!("not a WorkpointMessage: {other:?}"),
            })
            .collect();
        assert_eq!(decoded[0].reason.value, Reason::StartUp);
        assert_eq!(decoded[1].reason.action, Some(Action::ReadAllItems));
        assert!(decoded[1].items.as_ref().is_some_and(|i| i.len() > 250));
        assert!(bodies[1].len() > 10_000 && bodies[1].len() < 50_000, "{} bytes", bodies[1].len());
        assert_eq!(decoded[2].reason.action, Some(Action::WriteItems));
        assert_eq!(decoded[2].items.as_ref().map(Vec::len), Some(0));
    }
}
