//! The node's metrics, served as `GET /metrics` on the admin listener in the Prometheus
//! text exposition format (version 0.0.4), with `prometheus-client`, the official Rust
//! client.
//!
//! Every label value is one of a fixed set written in this file (a `&'static str`, never a
//! string a phone or a caller sent): no MAC, address, item value, username or path is a
//! label, so the number of series is bounded whatever the fleet sends, and the scrape holds
//! no secret. The one label set from outside is the node's name in `dls_node_info`, from
//! the configuration (`node-name`), checked at start.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `dls_node_info` | `node`, `version` | always 1: the node's name and the service's version |
//! | `dls_wpi_messages_total` | `port`, `reason`, `outcome` | WPI messages handled: the reason for contact ([`reason`]), the reply's action or the HTTP status class ([`outcome`]) |
//! | `dls_wpi_message_duration_seconds` | `port` | histogram: from the request to the reply |
//! | `dls_wpi_refusals_total` | `refusal` | messages the engine refused ([`refusal`]) |
//! | `dls_bootstraps_total` | `result` | secure-mode material: `issued`, `reused`, `unavailable`, `failed` |
//! | `dls_contact_me_total` | `result` | contact-me attempts: `contacted`, `status`, `timeout`, `unreachable`, `refused` |
//! | `dls_dcmp_polls_total` | `status` | DCMP polls by answer (`200`, `202`, `400`, `405`, `429`, `500`) |
//! | `dls_digest_requests_total` | `outcome` | provisioning-file requests: `accept`, `challenge`, `reject`, `throttled`, `store_failure` |
//! | `dls_store_calls_total`, `dls_store_errors_total` | `operation` | store calls (and those that failed) by the store method called (`device_batch`: a job's devices read in one call) |
//! | `dls_store_database_round_trips_total` | — | PostgreSQL only: the requests the store sent to the database and waited for (a phone's message costs 3 or 4; see `dls-store-postgres`); absent on SQLite, which works in the process |
//! | `dls_connections_open` | `listener` | connections open now: `wpi`, `secure`, `http`, `admin` |
//! | `dls_connections_refused_total` | `listener`, `cause` | connections closed at once: `global_cap`, `per_source_cap` |

use std::sync::Arc;
use std::time::Duration;

use dls_engine::{BootstrapSupply, Refusal};
use dls_message::{Action, Reason};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::limits::RefusalCounters;

/// The `Content-Type` of the scrape.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The listeners' names, as in `ListenerLimits::name` and in the order the service
/// creates their refusal counters.
pub(crate) const LISTENERS: [&str; 4] = ["wpi", "secure", "http", "admin"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WpiLabels {
    port: &'static str,
    reason: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    refusal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The upper bounds of the message-handling histogram: 0.5 ms doubling to about 8 s (a
/// bootstrap's PBKDF2 takes a good part of a second; 8 s is past any phone's patience).
fn message_duration() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The service's metrics: what the handlers count, and the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    wpi_messages: Family<WpiLabels, Counter>,
    wpi_duration: HistogramFamily<PortLabel>,
    refusals: Family<RefusalLabel, Counter>,
    bootstraps: Family<ResultLabel, Counter>,
    contact_me: Family<ResultLabel, Counter>,
    dcmp_polls: Family<StatusLabel, Counter>,
    digest: Family<OutcomeLabel, Counter>,
    store_calls: Family<OperationLabel, Counter>,
    store_errors: Family<OperationLabel, Counter>,
    connections_open: Family<ListenerLabel, Gauge>,
}

impl Metrics {
    /// The metrics of the node `node`, with the listeners' refusal counters (one per name
    /// in [`LISTENERS`], in that order), which are read at each scrape.
    pub(crate) fn new(node: &str, refused: &[Arc<RefusalCounters>]) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "dls_node",
            "The node's name (node-name) and the service's version",
            Info::new(NodeLabels { node: node.to_owned(), version: env!("CARGO_PKG_VERSION") }),
        );
        let wpi_messages = Family::default();
        registry.register(
            "dls_wpi_messages",
            "WPI messages handled, by port, reason for contact and outcome (the reply's action, or the HTTP status \
             class of a refused request)",
            wpi_messages.clone(),
        );
        let wpi_duration = HistogramFamily::new_with_constructor(message_duration as fn() -> Histogram);
        registry.register(
            "dls_wpi_message_duration_seconds",
            "Time from a WPI request to its reply, by port",
            wpi_duration.clone(),
        );
        let refusals = Family::default();
        registry.register("dls_wpi_refusals", "WPI messages the engine refused, by refusal", refusals.clone());
        let bootstraps = Family::default();
        registry.register(
            "dls_bootstraps",
            "Secure-mode bootstrap material asked for: issued, reused, unavailable (at the bound) or failed",
            bootstraps.clone(),
        );
        let contact_me = Family::default();
        registry.register("dls_contact_me", "Contact-me attempts, by result", contact_me.clone());
        let dcmp_polls = Family::default();
        registry.register("dls_dcmp_polls", "DCMP polls, by HTTP status answered", dcmp_polls.clone());
        let digest = Family::default();
        registry.register("dls_digest_requests", "Provisioning-file requests, by HTTP Digest outcome", digest.clone());
        let store_calls = Family::default();
        registry.register("dls_store_calls", "Store round trips, by operation", store_calls.clone());
        let store_errors = Family::default();
        registry.register("dls_store_errors", "Store round trips that failed, by operation", store_errors.clone());
        let connections_open: Family<ListenerLabel, Gauge> = Family::default();
        for listener in LISTENERS {
            drop(connections_open.get_or_create(&ListenerLabel { listener }));
        }
        registry.register("dls_connections_open", "Connections open now, by listener", connections_open.clone());
        registry.register(
            "dls_connections_refused",
            "Connections closed at once, over max-connections (global_cap) or max-connections-per-source \
             (per_source_cap), by listener",
            RefusedConnections(LISTENERS.iter().copied().zip(refused.iter().cloned()).collect()),
        );
        // The small fixed sets start at 0, so that a rate is defined from the first scrape.
        for result in ["issued", "reused", "unavailable", "failed"] {
            drop(bootstraps.get_or_create(&ResultLabel { result }));
        }
        for result in ["contacted", "status", "timeout", "unreachable", "refused"] {
            drop(contact_me.get_or_create(&ResultLabel { result }));
        }
        for status in ["200", "202", "400", "429"] {
            drop(dcmp_polls.get_or_create(&StatusLabel { status }));
        }
        for outcome in ["accept", "challenge", "reject", "throttled", "store_failure"] {
            drop(digest.get_or_create(&OutcomeLabel { outcome }));
        }
        Self {
            registry,
            wpi_messages,
            wpi_duration,
            refusals,
            bootstraps,
            contact_me,
            dcmp_polls,
            digest,
            store_calls,
            store_errors,
            connections_open,
        }
    }

    /// Counts the store's round trips to its database server in
    /// `dls_store_database_round_trips_total`: `round_trips` is read at each scrape
    /// ([`dls_store::MaintenanceStore::database_round_trips`]).
    pub(crate) fn with_database_round_trips(mut self, round_trips: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.registry.register(
            "dls_store_database_round_trips",
            "Requests the store sent to its database server and waited for (each statement, BEGIN and COMMIT \
             included)",
            ReadAtScrape(Box::new(round_trips)),
        );
        self
    }

    /// The scrape: every metric in the Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        // Writing to a String cannot fail, nor can encoding these metrics.
        if prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics could not be encoded");
        }
        out
    }

    /// One WPI message handled on `port`: its reason for contact (`None`: not decoded), its
    /// outcome ([`outcome`]) and how long it took.
    pub(crate) fn wpi_message(&self, port: &'static str, reason: &'static str, outcome: &'static str, took: Duration) {
        self.wpi_messages.get_or_create(&WpiLabels { port, reason, outcome }).inc();
        self.wpi_duration.get_or_create(&PortLabel { port }).observe(took.as_secs_f64());
    }

    /// A message the engine refused.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refusals.get_or_create(&RefusalLabel { refusal: refusal(why) }).inc();
    }

    /// What came of bootstrap material asked for (`None`: making it failed).
    pub(crate) fn bootstrap(&self, supply: Option<&BootstrapSupply>) {
        let result = match supply {
            Some(BootstrapSupply::Issued { .. }) => "issued",
            Some(BootstrapSupply::Reused(_)) => "reused",
            Some(BootstrapSupply::Unavailable) => "unavailable",
            None => "failed",
        };
        self.bootstraps.get_or_create(&ResultLabel { result }).inc();
    }

    /// One contact-me attempt.
    pub(crate) fn contact_me(&self, result: &crate::contact::ContactResult) {
        use crate::contact::ContactResult as R;
        let result = match result {
            R::Contacted => "contacted",
            R::Status(_) => "status",
            R::Timeout => "timeout",
            R::Unreachable(_) => "unreachable",
            R::Refused(_) => "refused",
        };
        self.contact_me.get_or_create(&ResultLabel { result }).inc();
    }

    /// One DCMP poll, by the status it was answered.
    pub(crate) fn dcmp_poll(&self, status: hyper::StatusCode) {
        let status = match status.as_u16() {
            200 => "200",
            202 => "202",
            400 => "400",
            405 => "405",
            429 => "429",
            500 => "500",
            _ => "other",
        };
        self.dcmp_polls.get_or_create(&StatusLabel { status }).inc();
    }

    /// One provisioning-file request, by the Digest verifier's outcome.
    pub(crate) fn digest(&self, outcome: &dls_digest::Outcome) {
        use dls_digest::Outcome as O;
        let outcome = match outcome {
            O::Accept { .. } => "accept",
            O::Challenge { .. } => "challenge",
            O::BadRequest { .. } => "reject",
            O::Throttled { .. } => "throttled",
            O::Unavailable { .. } => "store_failure",
            _ => "other",
        };
        self.digest.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts one store round trip, `operation` (the store method called), and its failure;
    /// hands the result through.
    pub(crate) fn store<T, E>(&self, operation: &'static str, result: Result<T, E>) -> Result<T, E> {
        let label = OperationLabel { operation };
        self.store_calls.get_or_create(&label).inc();
        if result.is_err() {
            self.store_errors.get_or_create(&label).inc();
        }
        result
    }

    /// The gauge of a listener's open connections (shared: it moves with every clone).
    pub(crate) fn connections_open(&self, listener: &'static str) -> Gauge {
        self.connections_open.get_or_create_owned(&ListenerLabel { listener })
    }
}

/// A connection counted in `dls_connections_open` while this lives.
#[derive(Debug)]
pub(crate) struct OpenConnection(Gauge);

impl OpenConnection {
    pub(crate) fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The refusals the listeners count ([`RefusalCounters`]), read at each scrape.
#[derive(Debug)]
struct RefusedConnections(Vec<(&'static str, Arc<RefusalCounters>)>);

impl EncodeMetric for RefusedConnections {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (listener, counters) in &self.0 {
            let counts = counters.get();
            for (cause, n) in [("global_cap", counts.global_cap), ("per_source_cap", counts.per_source_cap)] {
                let labels = [("listener", *listener), ("cause", cause)];
                encoder.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A counter kept elsewhere, read at each scrape.
struct ReadAtScrape(Box<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for ReadAtScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadAtScrape").field(&(self.0)()).finish()
    }
}

impl EncodeMetric for ReadAtScrape {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&(self.0)(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A reason for contact as a label: the protocol's word, or `other` for a word this
/// version does not know (a phone may send anything there).
pub(crate) fn reason(reason: &Reason) -> &'static str {
    match reason {
        Reason::StartUp => "start-up",
        Reason::LocalChanges => "local-changes",
        Reason::InventoryChanges => "inventory-changes",
        Reason::Status => "status",
        Reason::Solicited => "solicited",
        Reason::ReplyTo => "reply-to",
        Reason::CleanUp => "clean-up",
        _ => "other",
    }
}

/// The reason label of a request whose message was not decoded (refused before).
pub(crate) const NOT_DECODED: &str = "none";

/// A WPI request's outcome as a label: the reply's action when the phone got a reply
/// (`200`), else the HTTP status class (`4xx`, `5xx`).
pub(crate) fn outcome(status: hyper::StatusCode, action: Option<&Action>) -> &'static str {
    match (status.as_u16(), action) {
        (200, Some(action)) => match action {
            Action::ReadAllItems => "ReadAllItems",
            Action::ReadItems => "ReadItems",
            Action::WriteItems => "WriteItems",
            Action::Restart => "Restart",
            Action::FileDeployment => "FileDeployment",
            Action::SoftwareDeployment => "SoftwareDeployment",
            Action::CleanUp => "CleanUp",
            Action::GetNextFragment => "GetNextFragment",
            _ => "other",
        },
        (400..=499, _) => "4xx",
        (500..=599, _) => "5xx",
        _ => "other",
    }
}

/// A refusal as a label: its variant's name in snake case (a fixed set).
pub(crate) fn refusal(why: Refusal) -> &'static str {
    match why {
        Refusal::ReplyWithoutSession => "reply_without_session",
        Refusal::UnexpectedReply => "unexpected_reply",
        Refusal::UnknownReason => "unknown_reason",
        Refusal::UnexpectedReason => "unexpected_reason",
        Refusal::NoMacAddr => "no_mac_addr",
        Refusal::MacDiffers => "mac_differs",
        Refusal::NonceReplayed => "nonce_replayed",
        Refusal::FragmentsOverLimits => "fragments_over_limits",
        Refusal::UnknownDeviceRejected => "unknown_device_rejected",
        Refusal::CertificateWithoutDevice => "certificate_without_device",
        Refusal::CertificateMismatch => "certificate_mismatch",
        Refusal::UnknownDeviceOnSecurePort => "unknown_device_on_secure_port",
        Refusal::CertificateRevoked => "certificate_revoked",
        Refusal::SecuredOnDefaultPort => "secured_on_default_port",
        Refusal::BootstrapFailed => "bootstrap_failed",
        Refusal::NoValidPin => "no_valid_pin",
        Refusal::WrongTan => "wrong_tan",
        Refusal::BootstrapBusy => "bootstrap_busy",
        Refusal::ReissueTooSoon => "reissue_too_soon",
        Refusal::KeptBootstrapStale => "kept_bootstrap_stale",
        Refusal::MobilityBadState => "mobility_bad_state",
        Refusal::MobilityThrottled => "mobility_throttled",
        Refusal::MobilityLogonRefused => "mobility_logon_refused",
        Refusal::MobilityLogoffRefused => "mobility_logoff_refused",
        Refusal::MobilityNoUserHere => "mobility_no_user_here",
        Refusal::MobilityBadModifiedItems => "mobility_bad_modified_items",
        Refusal::MobilityBadUserData => "mobility_bad_user_data",
        Refusal::MobilityLoggedOnElsewhere => "mobility_logged_on_elsewhere",
        Refusal::MobilityBusy => "mobility_busy",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Refusal as ConnRefusal;

    fn metrics() -> (Metrics, Vec<Arc<RefusalCounters>>) {
        let refused: Vec<Arc<RefusalCounters>> = LISTENERS.iter().map(|_| Arc::default()).collect();
        (Metrics::new("node-a", &refused), refused)
    }

    #[test]
    fn a_scrape_names_every_metric_with_bounded_labels() {
        let (m, refused) = metrics();
        m.wpi_message(
            "default",
            reason(&Reason::StartUp),
            outcome(hyper::StatusCode::OK, Some(&Action::ReadAllItems)),
            Duration::from_millis(3),
        );
        m.wpi_message(
            "default",
            reason(&Reason::Other("00:1A:E8:3C:4D:5E".into())),
            outcome(hyper::StatusCode::OK, Some(&Action::Other("x".into()))),
            Duration::from_millis(1),
        );
        m.refused(Refusal::NonceReplayed);
        refused[3].count(ConnRefusal::PerSourceCap);
        let open = OpenConnection::new(&m.connections_open("http"));
        let text = m.encode();
        for line in [
            "dls_node_info{node=\"node-a\",version=\"",
            "dls_wpi_messages_total{port=\"default\",reason=\"start-up\",outcome=\"ReadAllItems\"} 1",
            "dls_wpi_messages_total{port=\"default\",reason=\"other\",outcome=\"other\"} 1",
            "dls_wpi_message_duration_seconds_count{port=\"default\"} 2",
            "dls_wpi_message_duration_seconds_bucket{port=\"default\",le=\"+Inf\"} 2",
            "dls_wpi_refusals_total{refusal=\"nonce_replayed\"} 1",
            "dls_connections_open{listener=\"http\"} 1",
            "dls_connections_open{listener=\"wpi\"} 0",
            "dls_connections_refused_total{listener=\"admin\",cause=\"per_source_cap\"} 1",
            "dls_connections_refused_total{listener=\"wpi\",cause=\"global_cap\"} 0",
            "# TYPE dls_wpi_messages_total counter",
            "dls_bootstraps_total{result=\"unavailable\"} 0",
            "dls_contact_me_total{result=\"timeout\"} 0",
            "dls_dcmp_polls_total{status=\"429\"} 0",
            "dls_digest_requests_total{outcome=\"store_failure\"} 0",
            "# TYPE dls_wpi_message_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("1A:E8"), "a phone's string is never a label: {text}");
        drop(open);
        assert!(m.encode().contains("dls_connections_open{listener=\"http\"} 0"));
    }

    #[test]
    fn store_calls_and_errors_are_counted_and_handed_through() {
        let (m, _) = metrics();
        assert_eq!(m.store("apply", Ok::<_, ()>(7)), Ok(7));
        assert_eq!(m.store("apply", Err::<(), _>("no")), Err("no"));
        let text = m.encode();
        assert!(text.contains("dls_store_calls_total{operation=\"apply\"} 2"), "{text}");
        assert!(text.contains("dls_store_errors_total{operation=\"apply\"} 1"), "{text}");
    }

    #[test]
    fn database_round_trips_are_read_at_each_scrape_and_absent_without_a_database() {
        let (m, _) = metrics();
        assert!(!m.encode().contains("dls_store_database_round_trips"));
        let trips = Arc::new(std::sync::atomic::AtomicU64::new(4));
        let read = trips.clone();
        let m = metrics().0.with_database_round_trips(move || read.load(std::sync::atomic::Ordering::Relaxed));
        assert!(m.encode().contains("dls_store_database_round_trips_total 4\n"), "{}", m.encode());
        trips.store(16, std::sync::atomic::Ordering::Relaxed);
        let text = m.encode();
        assert!(text.contains("# TYPE dls_store_database_round_trips_total counter"), "{text}");
        assert!(text.contains("dls_store_database_round_trips_total 16\n"), "{text}");
    }

    #[test]
    fn outcomes_are_actions_or_status_classes() {
        use hyper::StatusCode as S;
        assert_eq!(outcome(S::OK, Some(&Action::CleanUp)), "CleanUp");
        assert_eq!(outcome(S::BAD_REQUEST, None), "4xx");
        assert_eq!(outcome(S::PAYLOAD_TOO_LARGE, None), "4xx");
        assert_eq!(outcome(S::INTERNAL_SERVER_ERROR, None), "5xx");
        assert_eq!(outcome(S::OK, None), "other");
        assert_eq!(reason(&Reason::ReplyTo), "reply-to");
    }
}
