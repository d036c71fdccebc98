//! Starting the service: [`start`] opens the data directory's keys and the store, binds
//! the listeners, builds what the handlers share and serves until [`Running::shutdown`].
//! Each step is a function of its own, in the order `start` calls them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_engine::{Engine, EngineConfig};
use dls_store::{Store, StoreError};
use dls_store_postgres::PostgresStore;
use dls_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, info};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::config::StoreKind;
use crate::datadir::{self, DataDir, names};
use crate::http::{self, ListenerLimits};
use crate::limits::{self, RefusedConnections};
use crate::metrics::{self, Metrics};
use crate::routes::{self, HttpRoutes};
use crate::{Config, ServerError, admin, bootstrap, contact, dcmp, downloads, pki, provisioning, retention};
use crate::{secrets, sessions, shared_digest, tasks, tls, wpi};

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// The default-mode WPI listener's address.
    pub wpi_addr: SocketAddr,
    /// The admin API's address.
    pub admin_addr: SocketAddr,
    /// The secure-mode WPI listener's address (mutual TLS).
    pub secure_addr: SocketAddr,
    /// The plain-HTTP listener's address (provisioning files).
    pub http_addr: SocketAddr,
    /// The admin API's URL, as `admin-url` in the data directory says (`https://` with
    /// `admin-tls`; a loopback address when the listener is bound to all addresses).
    pub admin_url: String,
    refused: Vec<Arc<limits::RefusalCounters>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// The connections the listeners refused since the start (over `max-connections` or
    /// `max-connections-per-source`), summed over the listeners.
    #[must_use]
    pub fn refused_connections(&self) -> RefusedConnections {
        self.refused.iter().map(|c| c.get()).fold(RefusedConnections::default(), |a, b| RefusedConnections {
            global_cap: a.global_cap + b.global_cap,
            per_source_cap: a.per_source_cap + b.per_source_cap,
        })
    }

    /// Stops accepting connections, lets interactions in flight finish (up to the
    /// configured grace period) and returns when every listener has stopped.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts the service with `config` on the host's clock: creates the data directory on
/// first start (database, CA, server certificate, admin token), binds the listeners, and
/// serves until [`Running::shutdown`].
///
/// # Errors
/// [`ServerError`]: bad configuration, an unusable data directory, a port in use, …
pub async fn start(config: Config) -> Result<Running, ServerError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with another [`Clock`] (for tests: a [`crate::clock::ManualClock`]). Every
/// time the service decides by is read from it.
///
/// # Errors
/// As [`start`].
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Running, ServerError> {
    config.validate().map_err(ServerError::Config)?;
    // Every log line of the service names the node: this span is entered here and by every
    // task the service starts (`tasks`). At the ERROR level, so that a filter that lets any
    // of `dls_server`'s lines through (`DLS_LOG=warn`, `dls_server=error`) keeps it too.
    let node = tracing::error_span!(target: "dls_server", "node", node = %config.node_name);
    start_in_span(config, clock).instrument(node).await
}

async fn start_in_span(config: Config, clock: Arc<dyn Clock>) -> Result<Running, ServerError> {
    let keys = Keys::load(&config, clock.now())?;
    let store = open_store(&config, &keys).await?;
    if store.kind == StoreKind::Postgres {
        check_node_keys(&store.store, &keys, clock.now()).await?;
    }
    let listeners = Listeners::bind(&config).await?;
    let admin_url = admin_url(listeners.admin_addr, config.admin_tls);
    keys.dir.write_private(names::ADMIN_URL, format!("{admin_url}\n").as_bytes())?;
    if !config.admin_tls && !listeners.admin_addr.ip().is_loopback() {
        tracing::warn!(
            admin_addr = %listeners.admin_addr,
            "the admin API listens on an address other than loopback without TLS: its token and everything it \
             carries cross the network in clear; bind it to 127.0.0.1, or set admin-tls (--admin-tls)"
        );
    }
    let (shutdown, rx) = watch::channel(false);
    let refused: Vec<Arc<limits::RefusalCounters>> = metrics::LISTENERS.iter().map(|_| Arc::default()).collect();
    let mut metrics = Metrics::new(&config.node_name, &refused);
    if store.store.database_round_trips().is_some() {
        let counted = Arc::clone(&store.store);
        metrics = metrics.with_database_round_trips(move || counted.database_round_trips().unwrap_or(0));
    }
    let metrics = Arc::new(metrics);
    let handlers = Handlers::new(&config, &keys, store, &listeners, clock, metrics, &rx)?;
    info!(
        wpi_addr = %listeners.wpi_addr, secure_addr = %listeners.secure_addr, http_addr = %listeners.http_addr,
        %admin_url, data_dir = %keys.dir.path().display(), "DLS service started"
    );
    let (wpi_addr, admin_addr, secure_addr, http_addr) =
        (listeners.wpi_addr, listeners.admin_addr, listeners.secure_addr, listeners.http_addr);
    let mut tasks = serve(&config, &keys, listeners, &handlers, &refused, &rx)?;
    tasks.extend(handlers.retention);
    Ok(Running { wpi_addr, admin_addr, secure_addr, http_addr, admin_url, refused, shutdown, tasks })
}

/// The data directory and the keys in it.
struct Keys {
    dir: DataDir,
    pki: Arc<pki::Pki>,
    token: Zeroizing<String>,
    fingerprint_key: [u8; 32],
    secrets: Arc<secrets::SecretBox>,
    /// [`keys_identity`].
    identity: String,
}

impl Keys {
    /// Opens (or creates) the data directory, the CA and server certificate (or the
    /// enterprise CA configured), the admin token and the service's secret keys.
    fn load(config: &Config, now: dls_engine::UnixTime) -> Result<Self, ServerError> {
        let dir = DataDir::open(&config.data_dir)?;
        let external_ca = match (&config.ca_cert_file, &config.ca_key_file) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        if let Some((_, key)) = external_ca {
            datadir::secure_private_file(key, "ca-key-file")?;
        }
        let pki = Arc::new(pki::Pki::load_with(&dir, &config.server_names, external_ca, now)?);
        let token = Zeroizing::new(hex::encode(&*dir.secret(names::ADMIN_TOKEN, 32)?));
        let mut fingerprint_key = [0u8; 32];
        fingerprint_key.copy_from_slice(&dir.secret(names::FINGERPRINT_KEY, 32)?);
        let secrets_key = dir.secret(names::SECRETS_KEY, 32)?;
        let secrets =
            Arc::new(secrets::SecretBox::new(&secrets_key).ok_or_else(|| ServerError::Config("secrets.key".into()))?);
        let identity = keys_identity(&secrets_key, &fingerprint_key, &pki.ca_cert_pem);
        Ok(Self { dir, pki, token, fingerprint_key, secrets, identity })
    }
}

/// What tells the keys of nodes apart without showing them: the SHA-256 of a label, the
/// secret keys and the CA certificate (hex). Nodes that share a database must have the same.
fn keys_identity(secrets_key: &[u8], fingerprint_key: &[u8], ca_cert_pem: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"dls node keys v1\0");
    for part in [secrets_key, fingerprint_key, ca_cert_pem.as_bytes()] {
        h.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The lease that records which keys the nodes of a shared store use: held by the keys'
/// identity, never released, so that a node started with other keys is refused instead of
/// re-writing phones' configuration it cannot recognise and failing to open what the other
/// nodes sealed.
const NODE_KEYS: &str = "node-keys";

/// Refuses to start a node whose keys differ from those the shared store's nodes use (the
/// first node to start records its own).
async fn check_node_keys(store: &Arc<dyn Store>, keys: &Keys, now: dls_engine::UnixTime) -> Result<(), ServerError> {
    let (store, identity) = (store.clone(), keys.identity.clone());
    let forever = dls_engine::UnixTime(9_223_372_036_854_775_807);
    let same = tasks::spawn_blocking(move || store.try_lease(NODE_KEYS, &identity, now, forever))
        .await
        .map_err(|e| ServerError::Config(e.to_string()))??;
    if same {
        return Ok(());
    }
    Err(ServerError::Config(
        "this node's keys (secrets.key, fingerprint.key, the CA) are not those of the nodes that share its store: \
         copy them from another node's data directory (docs/cluster.md)"
            .into(),
    ))
}

/// Where the sessions of interactions in progress are kept: in the store when it is shared
/// by nodes (PostgreSQL) or when `shared-sessions` asks for it, otherwise in memory (one
/// node, no write per message).
pub(crate) fn sessions_for(
    kind: StoreKind,
    config: &Config,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> sessions::Sessions {
    let ttl = Duration::from_secs(config.session_timeout_secs);
    if kind == StoreKind::Postgres || config.shared_sessions {
        sessions::Sessions::Store(sessions::StoreSessions::new(store.clone(), ttl, config.max_sessions, clock.clone()))
    } else {
        sessions::Sessions::Memory(sessions::MemorySessions::new(ttl, config.max_sessions, clock.clone()))
    }
}

/// Opens the store, off the executor: the PostgreSQL database `store` names, or else the
/// database in the data directory (created 0600); a SQLite database from an older version
/// holds PINs in clear: they are sealed at this first open, in the upgrade's transaction.
async fn open_store(config: &Config, keys: &Keys) -> Result<Opened, ServerError> {
    let kind = config.store.kind().map_err(ServerError::Config)?;
    if kind == StoreKind::Postgres {
        let location = config.store.clone();
        let store = tasks::spawn_blocking(move || PostgresStore::open(location.as_str()))
            .await
            .map_err(|e| ServerError::Config(e.to_string()))?
            .map_err(|e| match e {
                // A URL the database refuses (a wrong user or database) is the operator's to fix.
                StoreError::Invalid(m) => ServerError::Config(format!("store {}: {m}", config.store.redacted())),
                other => ServerError::Store(other),
            })?;
        info!(store = %config.store.redacted(), "store: PostgreSQL");
        return Ok(Opened { store: Arc::new(store), kind });
    }
    keys.dir.create_private(names::DATABASE)?;
    let db = keys.dir.file(names::DATABASE);
    let secrets = keys.secrets.clone();
    let store = tasks::spawn_blocking(move || {
        SqliteStore::open_sealing_pins(&db, &|mac, digits| secrets.seal_pin(mac, digits))
    })
    .await
    .map_err(|e| ServerError::Config(e.to_string()))??;
    Ok(Opened { store: Arc::new(store), kind })
}

/// The store opened, and its kind.
struct Opened {
    store: Arc<dyn Store>,
    kind: StoreKind,
}

/// The four listeners, bound, and their addresses.
struct Listeners {
    wpi: TcpListener,
    secure: TcpListener,
    http: TcpListener,
    admin: TcpListener,
    wpi_addr: SocketAddr,
    secure_addr: SocketAddr,
    http_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self, ServerError> {
        let wpi = bind(config.wpi_listen).await?;
        let admin = bind(config.admin_listen).await?;
        let secure = bind(config.secure_listen).await?;
        let http = bind(config.http_listen).await?;
        let address = |l: &TcpListener, what: &str| {
            l.local_addr().map_err(|e| ServerError::io(format!("reading the {what} address"), e))
        };
        Ok(Self {
            wpi_addr: address(&wpi, "WPI")?,
            secure_addr: address(&secure, "secure")?,
            http_addr: address(&http, "HTTP")?,
            admin_addr: address(&admin, "admin")?,
            wpi,
            secure,
            http,
            admin,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|e| ServerError::io(format!("binding {addr}"), e))
}

/// What the listeners' handlers share, and the retention task.
struct Handlers {
    metrics: Arc<Metrics>,
    wpi: Arc<wpi::WpiState>,
    admin: Arc<admin::AdminState>,
    http: Arc<HttpRoutes>,
    retention: Option<JoinHandle<()>>,
}

impl Handlers {
    fn new(
        config: &Config,
        keys: &Keys,
        opened: Opened,
        listeners: &Listeners,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Self, ServerError> {
        let Opened { store, kind } = opened;
        let (files_dir, upload_dir) = files_dir(config, &keys.dir)?;
        let body_timeout = Duration::from_secs(config.body_timeout_secs);
        // Where phones reach the default-mode port, unless configured otherwise (behind NAT).
        let server_host = config.server_names.first().cloned().unwrap_or_else(|| listeners.wpi_addr.ip().to_string());
        let default_url = format!("https://{server_host}:{}", listeners.wpi_addr.port());
        let base_url = config.provisioning_base_url.clone().unwrap_or_else(|| default_url.clone());
        let files_base = config.files_base_url.clone().unwrap_or(default_url);
        let mut engine_config = engine_config(config, keys.fingerprint_key);
        engine_config.files_base_url = Some(format!("{}{}", files_base.trim_end_matches('/'), downloads::PREFIX));

        let contact = start_contact(config, store.clone(), kind, clock.clone(), metrics.clone(), shutdown.clone());
        let retention = retention::spawn(
            retention::RetentionPolicy::from_config(config),
            store.clone(),
            config.node_name.clone(),
            clock.clone(),
            shutdown.clone(),
        );
        let opened = Opened { store: store.clone(), kind };
        let provisioning =
            Arc::new(provisioning_state(config, keys, opened, clock.clone(), metrics.clone(), &base_url)?);
        let wpi = Arc::new(wpi::WpiState {
            engine: Engine::new(engine_config),
            store: store.clone(),
            sessions: sessions_for(kind, config, &store, &clock),
            locks: wpi::DeviceLocks::new(1024),
            max_body_bytes: config.max_body_bytes,
            body_timeout,
            bootstrap: bootstrap::BootstrapMaker {
                pki: keys.pki.clone(),
                secure_port: config.secure_port_advertised.unwrap_or(listeners.secure_addr.port()),
                pin_iterations: config.pin_iterations,
                max_pin_retries: config.max_pin_retries,
                certificate_days: config.device_certificate_days,
                key_type: config.device_key_type,
                secrets: keys.secrets.clone(),
                permits: bootstrap::IssuePermits::new(config.bootstrap_concurrency, config.bootstrap_queue),
                metrics: metrics.clone(),
            },
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            downloads: Arc::new(downloads::DownloadState {
                store: store.clone(),
                files_dir: files_dir.clone(),
                metrics: metrics.clone(),
            }),
            provisioning: provisioning.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            // Several nodes may handle one device's messages: the store excludes them.
            atomic_messages: kind == StoreKind::Postgres,
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).clamp(1, 4),
            ),
            contact: contact.clone(),
        });
        let admin = Arc::new(admin::AdminState {
            store: store.clone(),
            token: keys.token.clone(),
            max_body_bytes: 4 << 20,
            body_timeout,
            provisioning: provisioning.clone(),
            base_url,
            jobs: admin::jobs::JobsState {
                contact,
                files_dir,
                upload_dir,
                max_file_bytes: config.max_file_bytes,
                upload_timeout: Duration::from_secs(config.upload_timeout_secs),
            },
            clock: clock.clone(),
            metrics: metrics.clone(),
            readiness: admin::Readiness::default(),
            auth: admin::auth::Auth::new(console_policy(config), config.admin_tls),
            settings: settings_shown(config),
        });
        let dcmp = Arc::new(dcmp::DcmpState {
            store,
            limiter: dcmp::RateLimiter::new(config.dcmp_polls_per_second),
            clock,
            metrics: metrics.clone(),
        });
        let http = Arc::new(HttpRoutes { provisioning, dcmp });
        Ok(Self { metrics, wpi, admin, http, retention })
    }
}

/// The console sessions' timeouts.
fn console_policy(config: &Config) -> dls_accounts::SessionPolicy {
    dls_accounts::SessionPolicy {
        idle_secs: config.console_idle_timeout_secs,
        absolute_secs: config.console_session_max_secs,
        ..dls_accounts::SessionPolicy::default()
    }
}

/// The running configuration as the console's settings page shows it: every setting by its
/// name, the store's URL without its password.
fn settings_shown(config: &Config) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(config) else { return Vec::new() };
    map.into_iter()
        .map(|(name, value)| {
            let shown = match (name.as_str(), value) {
                ("store", _) => config.store.redacted(),
                (_, serde_json::Value::String(s)) => s,
                (_, serde_json::Value::Null) => "(not set)".to_owned(),
                (_, serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, other) => other.to_string(),
            };
            (name, shown)
        })
        .collect()
}

/// The engine's settings from the service's.
fn engine_config(config: &Config, fingerprint_key: [u8; 32]) -> EngineConfig {
    let mut engine = EngineConfig::new(fingerprint_key);
    engine.inventory_max_age_secs = config.inventory_max_age_secs;
    engine.unknown_devices = config.unknown_devices;
    engine.new_device_mode = config.new_device_mode;
    engine.max_tan_failures = config.max_tan_failures;
    engine.pin_lifetime_secs = config.pin_lifetime_secs;
    engine.bootstrap_reuse_secs = config.bootstrap_reuse_secs;
    engine.bootstrap_reissue_secs = config.bootstrap_reissue_secs;
    engine.mobility.max_item_bytes = config.mobility_max_item_bytes;
    engine.mobility.max_user_bytes = config.mobility_max_user_bytes;
    engine.mobility.logoff_grace_secs = config.mobility_logoff_grace_secs;
    engine
}

/// Provisioning files: the Digest verifier, the path pattern and the URL phones are given.
///
/// On one node (SQLite) the verifier keeps everything in memory, under a random nonce
/// secret of its own (a restart makes outstanding nonces stale rather than replayable). On a
/// shared store (PostgreSQL) every node derives the secret from `secrets.key` and shares the
/// counts used and the throttle's events through the store (`shared_digest`), so that a
/// phone challenged by one node authenticates on any, a replay is refused on every node, and
/// guesses are counted cluster-wide.
fn provisioning_state(
    config: &Config,
    keys: &Keys,
    opened: Opened,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    base_url: &str,
) -> Result<provisioning::ProvisioningState, ServerError> {
    let Opened { store, kind } = opened;
    let mut digest = dls_digest::Config::new(config.digest_realm.clone());
    digest.challenges = config.digest_algorithms.iter().filter_map(|a| dls_digest::Algorithm::from_name(a)).collect();
    let digest_error = |e: dls_digest::ConfigError| ServerError::Config(format!("digest: {e}"));
    let verifier = if kind == StoreKind::Postgres {
        let secret = keys.secrets.derive(shared_digest::NONCE_SECRET_LABEL);
        let shared = shared_digest::StoreDigest::new(store.clone(), metrics.clone())
            .map_err(|e| ServerError::Config(format!("digest: no random node id: {e}")))?;
        dls_digest::Verifier::new(digest, &secret).map_err(digest_error)?.with_shared_state(Box::new(shared))
    } else {
        dls_digest::Verifier::with_random_secret(digest).map_err(digest_error)?
    };
    let (prefix, suffix) = config.provisioning_path.split_once("{mac}").unwrap_or(("/provisioning/", ".xml"));
    Ok(provisioning::ProvisioningState {
        store,
        verifier,
        secrets: keys.secrets.clone(),
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
        server_url: base_url.to_owned(),
        clock,
        metrics,
    })
}

/// Starts the four listeners' tasks, each with its routes ([`crate::routes`]) and limits.
fn serve(
    config: &Config,
    keys: &Keys,
    listeners: Listeners,
    handlers: &Handlers,
    refused: &[Arc<limits::RefusalCounters>],
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, ServerError> {
    let limits = ListenerLimits {
        name: "wpi",
        max_connections: config.max_connections,
        max_per_source: config.max_connections_per_source.min(config.max_connections),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        tls_handshake_timeout: Duration::from_secs(config.tls_handshake_timeout_secs),
        max_header_bytes: config.max_header_bytes,
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
    };
    let tls = TlsAcceptor::from(tls::default_mode(&keys.pki)?);
    let admin_tls = config.admin_tls.then(|| tls.clone());
    let secure_tls = TlsAcceptor::from(tls::secure_mode(&keys.pki)?);
    let drain_state = handlers.wpi.clone();
    let drained: http::Drained = Arc::new(move || drain_state.is_idle());
    let (wpi, secure, plain, admin) =
        (handlers.wpi.clone(), handlers.wpi.clone(), handlers.http.clone(), handlers.admin.clone());
    Ok(vec![
        tasks::spawn(http::serve(
            listeners.wpi,
            Some(tls),
            move |req, info| routes::default_port(wpi.clone(), req, info),
            limits,
            shutdown.clone(),
            Some(drained.clone()),
            http::ListenerCounts { refused: refused[0].clone(), open: handlers.metrics.connections_open("wpi") },
        )),
        tasks::spawn(http::serve(
            listeners.secure,
            Some(secure_tls),
            move |req, info| routes::secure_port(secure.clone(), req, info),
            ListenerLimits { name: "secure", ..limits },
            shutdown.clone(),
            Some(drained),
            http::ListenerCounts { refused: refused[1].clone(), open: handlers.metrics.connections_open("secure") },
        )),
        tasks::spawn(http::serve(
            listeners.http,
            None,
            move |req, info| routes::http_port(plain.clone(), req, info),
            ListenerLimits { name: "http", ..limits },
            shutdown.clone(),
            None,
            http::ListenerCounts { refused: refused[2].clone(), open: handlers.metrics.connections_open("http") },
        )),
        tasks::spawn(http::serve(
            listeners.admin,
            admin_tls,
            move |req, info| routes::admin_port(admin.clone(), req, info),
            ListenerLimits {
                name: "admin",
                max_connections: ADMIN_MAX_CONNECTIONS,
                max_per_source: limits.max_per_source.min(ADMIN_MAX_PER_SOURCE),
                ..limits
            },
            shutdown.clone(),
            None,
            http::ListenerCounts { refused: refused[3].clone(), open: handlers.metrics.connections_open("admin") },
        )),
    ])
}

/// The admin API's connections at most (it serves administrators and scripts, not a fleet).
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// The admin API's connections from one source at most: a quarter of its cap, so that one
/// client (even without the token) cannot lock the administrators out.
const ADMIN_MAX_PER_SOURCE: usize = 16;

/// The URL clients on this host reach the admin API at: the listener's address, or
/// loopback when it is bound to all addresses (a name the server certificate holds).
fn admin_url(addr: SocketAddr, tls: bool) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// The file store's directory (`files-dir`, by default `files` in the data directory),
/// created private when missing, and this node's directory of uploads in it
/// (`.uploads-<node-name>`), emptied: what a crash left half-done. Another node's uploads
/// in a shared directory are not touched; nor are those an earlier version wrote at the top
/// (`.upload-<hex>`) unless older than any upload may last.
fn files_dir(config: &Config, dir: &DataDir) -> Result<(std::path::PathBuf, std::path::PathBuf), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = config.files_dir.clone().unwrap_or_else(|| dir.path().join(names::FILES));
    let uploads = path.join(format!(".uploads-{}", config.node_name));
    for p in [&path, &uploads] {
        if !p.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(|e| ServerError::io(format!("creating {}", p.display()), e))?;
        }
    }
    let oldest_upload = Duration::from_secs(config.upload_timeout_secs.saturating_add(config.body_timeout_secs));
    let listed =
        |p: &std::path::Path| std::fs::read_dir(p).map_err(|e| ServerError::io(format!("reading {}", p.display()), e));
    for entry in listed(&uploads)?.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    for entry in listed(&path)?.flatten() {
        let stale =
            entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > oldest_upload));
        if entry.file_name().to_string_lossy().starts_with(".upload-") && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok((path, uploads))
}

/// Starts the contact-me sender, and asks it to contact the devices whose jobs wait from
/// before a restart. Its schedule is in memory, or in the store when several nodes may
/// share it (a PostgreSQL store): each due contact-me is then claimed by one node.
fn start_contact(
    config: &Config,
    store: Arc<dyn Store>,
    kind: StoreKind,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> contact::ContactHandle {
    let policy = contact::ContactPolicy {
        attempt_timeout: Duration::from_secs(config.contact_me_timeout_secs),
        concurrency: config.contact_me_concurrency,
        dls_ip_addr: config.contact_me_dls_address.clone(),
        dls_ip_port: config.contact_me_dls_port,
        any_host: config.contact_me_any_host,
        ..contact::ContactPolicy::default()
    };
    let (lookup, counted) = (store.clone(), metrics.clone());
    let targets: contact::ContactTargets =
        Arc::new(move |mac, forced| match counted.store("contact_target", lookup.contact_target(mac, forced)) {
            Ok(target) => target,
            Err(e) => {
                tracing::error!(%mac, error = %e, "contact-me: store failed");
                None
            }
        });
    let recorder = store.clone();
    let report: contact::ContactReport = Arc::new(move |mac, attempt: &contact::ContactAttempt| {
        info!(%mac, uri = %attempt.uri, result = %attempt.result, "contact-me");
        metrics.contact_me(&attempt.result);
        let at = dls_engine::UnixTime(attempt.at_unix_secs);
        if let Err(e) = metrics.store("record_contact", recorder.record_contact(mac, at, &attempt.result.to_string())) {
            tracing::error!(%mac, error = %e, "contact-me: recording failed");
        }
    });
    let schedule = if kind == StoreKind::Postgres {
        contact::Schedule::Shared { store: store.clone(), node: config.node_name.clone() }
    } else {
        contact::Schedule::Local
    };
    let handle = contact::spawn(policy, schedule, targets, report, clock, shutdown);
    let seeding = handle.clone();
    tasks::spawn_blocking(move || match store.devices_with_pending_jobs(100_000) {
        Ok(macs) => {
            for mac in macs {
                let _ = seeding.request(mac);
            }
        }
        Err(e) => tracing::error!(error = %e, "contact-me: listing pending jobs failed"),
    });
    handle
}
