//! The DLS service: the async shell around the sans-IO engine.
//!
//! * [`start`]: prepares the data directory ([`datadir`], [`pki`]), opens the store and
//!   binds the listeners; returns a [`Running`] service.
//! * [`config`]: every setting, with the defaults of a zero-configuration start.
//! * `wpi`: the phones' endpoint, `POST /DeploymentService/LoginService` — read, decode,
//!   run the engine off the executor under the device's lock, commit, reply.
//! * `admin`: the admin API (JSON, bearer token).
//! * `http`: listeners with connection caps, TLS deadlines, keep-alive and graceful
//!   shutdown; `limits`: the cap per source and the bounded log of refused connections;
//!   `sessions`: interactions in progress, by cookie.
//! * [`tls`]: the one place the TLS provider and versions are chosen; `uri`: path segments
//!   and query strings decoded strictly, components encoded.
//! * `admin::jobs`: jobs, deployment files and contact-me in the admin API;
//!   `contact`: contact-me (`contact::planner`, sans-IO: one per phone per minute,
//!   backoff, the contact gap; `contact::sender`: the POST, timeouts, bounded concurrency;
//!   `contact::target`: the phone's URI and whom it may name); `dcmp`: polls from phones behind NAT; `downloads` and
//!   `files`: deployment files streamed from the file store (`Range`, per-job tokens) and
//!   uploads streamed into it.
//! * `retention`: the task that deletes old audit records and old jobs that are over
//!   (`audit-retention-days`, `job-retention-days`), hourly, off the executor.

mod admin;
mod bootstrap;
pub mod config;
mod contact;
pub mod datadir;
mod dcmp;
mod downloads;
mod error;
mod files;
mod http;
mod limits;
pub mod pki;
mod provisioning;
mod retention;
mod secrets;
mod sessions;
pub mod tls;
mod uri;
mod wpi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_engine::{Engine, EngineConfig};
use dls_store::Store;
use dls_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::info;
use zeroize::Zeroizing;

pub use config::Config;
pub use datadir::DataDir;
pub use error::ServerError;
pub use http::http1_builder;
pub use limits::RefusedConnections;
pub use wpi::LOGIN_SERVICE_PATH;

use crate::datadir::names;
use crate::http::ListenerLimits;

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

/// Starts the service with `config`: creates the data directory on first start (database,
/// CA, server certificate, admin token), binds the listeners, and serves until
/// [`Running::shutdown`].
///
/// # Errors
/// [`ServerError`]: bad configuration, an unusable data directory, a port in use, …
pub async fn start(config: Config) -> Result<Running, ServerError> {
    config.validate().map_err(ServerError::Config)?;
    let dir = DataDir::open(&config.data_dir)?;
    let external_ca = match (&config.ca_cert_file, &config.ca_key_file) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    if let Some((_, key)) = external_ca {
        datadir::secure_private_file(key, "ca-key-file")?;
    }
    let pki = Arc::new(pki::Pki::load_with(&dir, &config.server_names, external_ca)?);
    let token = Zeroizing::new(hex::encode(&*dir.secret(names::ADMIN_TOKEN, 32)?));
    let mut fingerprint_key = [0u8; 32];
    fingerprint_key.copy_from_slice(&dir.secret(names::FINGERPRINT_KEY, 32)?);
    dir.create_private(names::DATABASE)?;
    let secrets = Arc::new(
        secrets::SecretBox::new(&dir.secret(names::SECRETS_KEY, 32)?)
            .ok_or_else(|| ServerError::Config("secrets.key".into()))?,
    );
    let db = dir.file(names::DATABASE);
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking({
            // A database from an older version holds PINs in clear: they are sealed at this
            // first open, in the upgrade's transaction.
            let secrets = secrets.clone();
            move || SqliteStore::open_sealing_pins(&db, &|mac, digits| secrets.seal_pin(mac, digits))
        })
        .await
        .map_err(|e| ServerError::Config(e.to_string()))??,
    );

    let mut engine_config = EngineConfig::new(fingerprint_key);
    engine_config.inventory_max_age_secs = config.inventory_max_age_secs;
    engine_config.unknown_devices = config.unknown_devices;
    engine_config.new_device_mode = config.new_device_mode;
    engine_config.max_tan_failures = config.max_tan_failures;
    engine_config.pin_lifetime_secs = config.pin_lifetime_secs;
    engine_config.bootstrap_reuse_secs = config.bootstrap_reuse_secs;
    engine_config.bootstrap_reissue_secs = config.bootstrap_reissue_secs;
    let files_dir = files_dir(&dir)?;

    let wpi_listener = bind(config.wpi_listen).await?;
    let admin_listener = bind(config.admin_listen).await?;
    let secure_listener = bind(config.secure_listen).await?;
    let http_listener = bind(config.http_listen).await?;
    let http_addr = http_listener.local_addr().map_err(|e| ServerError::io("reading the HTTP address", e))?;
    let wpi_addr = wpi_listener.local_addr().map_err(|e| ServerError::io("reading the WPI address", e))?;
    let secure_addr = secure_listener.local_addr().map_err(|e| ServerError::io("reading the secure address", e))?;
    let admin_addr = admin_listener.local_addr().map_err(|e| ServerError::io("reading the admin address", e))?;
    let admin_url = admin_url(admin_addr, config.admin_tls);
    dir.write_private(names::ADMIN_URL, format!("{admin_url}\n").as_bytes())?;
    if !config.admin_tls && !admin_addr.ip().is_loopback() {
        tracing::warn!(
            %admin_addr,
            "the admin API listens on an address other than loopback without TLS: its token and everything it \
             carries cross the network in clear; bind it to 127.0.0.1, or set admin-tls (--admin-tls)"
        );
    }

    let limits = ListenerLimits {
        name: "wpi",
        max_connections: config.max_connections,
        max_per_source: config.max_connections_per_source.min(config.max_connections),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        tls_handshake_timeout: Duration::from_secs(config.tls_handshake_timeout_secs),
        max_header_bytes: config.max_header_bytes,
        shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
    };
    let body_timeout = Duration::from_secs(config.body_timeout_secs);
    let mut digest = dls_digest::Config::new(config.digest_realm.clone());
    digest.challenges = config.digest_algorithms.iter().filter_map(|a| dls_digest::Algorithm::from_name(a)).collect();
    let verifier =
        dls_digest::Verifier::with_random_secret(digest).map_err(|e| ServerError::Config(format!("digest: {e}")))?;
    let (prefix, suffix) = config.provisioning_path.split_once("{mac}").unwrap_or(("/provisioning/", ".xml"));
    // Where phones reach the default-mode port, unless configured otherwise (behind NAT).
    let server_host = config.server_names.first().cloned().unwrap_or_else(|| wpi_addr.ip().to_string());
    let default_url = format!("https://{server_host}:{}", wpi_addr.port());
    let base_url = config.provisioning_base_url.clone().unwrap_or_else(|| default_url.clone());
    let files_base = config.files_base_url.clone().unwrap_or(default_url);
    engine_config.files_base_url = Some(format!("{}{}", files_base.trim_end_matches('/'), downloads::PREFIX));
    let (tx, rx) = watch::channel(false);
    let forced: Arc<std::sync::Mutex<std::collections::HashSet<dls_message::MacAddr>>> = Arc::default();
    let contact = start_contact(&config, store.clone(), forced.clone(), rx.clone());
    let retention = retention::spawn(retention::RetentionPolicy::from_config(&config), store.clone(), rx.clone());
    let provisioning = Arc::new(provisioning::ProvisioningState {
        store: store.clone(),
        verifier,
        secrets: secrets.clone(),
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
        server_url: base_url.clone(),
    });
    let wpi_state = Arc::new(wpi::WpiState {
        engine: Engine::new(engine_config),
        store: store.clone(),
        sessions: sessions::Sessions::new(Duration::from_secs(config.session_timeout_secs), config.max_sessions),
        locks: wpi::DeviceLocks::new(1024),
        max_body_bytes: config.max_body_bytes,
        body_timeout,
        bootstrap: bootstrap::BootstrapMaker {
            pki: pki.clone(),
            secure_port: config.secure_port_advertised.unwrap_or(secure_addr.port()),
            pin_iterations: config.pin_iterations,
            max_pin_retries: config.max_pin_retries,
            certificate_days: config.device_certificate_days,
            key_type: config.device_key_type,
            secrets,
            permits: bootstrap::IssuePermits::new(config.bootstrap_concurrency, config.bootstrap_queue),
        },
        in_flight: std::sync::atomic::AtomicUsize::new(0),
        downloads: Arc::new(downloads::DownloadState { store: store.clone(), files_dir: files_dir.clone() }),
        provisioning: provisioning.clone(),
    });
    let admin_state = Arc::new(admin::AdminState {
        store,
        token,
        max_body_bytes: 4 << 20,
        body_timeout,
        provisioning: provisioning.clone(),
        base_url,
        jobs: admin::jobs::JobsState {
            contact,
            forced,
            files_dir: files_dir.clone(),
            max_file_bytes: config.max_file_bytes,
            upload_timeout: Duration::from_secs(config.upload_timeout_secs),
        },
    });
    let dcmp_state = Arc::new(dcmp::DcmpState {
        store: wpi_state.store.clone(),
        limiter: dcmp::RateLimiter::new(config.dcmp_polls_per_second),
    });

    let tls = TlsAcceptor::from(tls::default_mode(&pki)?);
    let admin_tls = config.admin_tls.then(|| tls.clone());
    let refused: Vec<Arc<limits::RefusalCounters>> = (0..4).map(|_| Arc::default()).collect();
    let secure_tls = TlsAcceptor::from(tls::secure_mode(&pki)?);
    let drain_state = wpi_state.clone();
    let drained: http::Drained = Arc::new(move || drain_state.is_idle());
    let secure_state = wpi_state.clone();
    let wpi_task = tokio::spawn(http::serve(
        wpi_listener,
        Some(tls),
        move |req, info| wpi::handle(wpi_state.clone(), req, info, false),
        limits,
        rx.clone(),
        Some(drained.clone()),
        refused[0].clone(),
    ));
    let secure_task = tokio::spawn(http::serve(
        secure_listener,
        Some(secure_tls),
        move |req, info| wpi::handle(secure_state.clone(), req, info, true),
        ListenerLimits { name: "secure", ..limits },
        rx.clone(),
        Some(drained),
        refused[1].clone(),
    ));
    let http_task = tokio::spawn(http::serve(
        http_listener,
        None,
        move |req, info| {
            let p = provisioning.clone();
            let d = dcmp_state.clone();
            async move {
                if p.matches(req.uri().path()) {
                    provisioning::handle(p, req, info).await
                } else if req.uri().path() == dcmp::PATH {
                    dcmp::handle(d, req, info).await
                } else {
                    http::text(hyper::StatusCode::NOT_FOUND, "not found\n")
                }
            }
        },
        ListenerLimits { name: "http", ..limits },
        rx.clone(),
        None,
        refused[2].clone(),
    ));
    let admin_task = tokio::spawn(http::serve(
        admin_listener,
        admin_tls,
        move |req, info| admin::handle(admin_state.clone(), req, info),
        ListenerLimits {
            name: "admin",
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_per_source: limits.max_per_source.min(ADMIN_MAX_PER_SOURCE),
            ..limits
        },
        rx,
        None,
        refused[3].clone(),
    ));
    info!(%wpi_addr, %secure_addr, %http_addr, %admin_url, data_dir = %dir.path().display(), "DLS service started");
    let mut tasks = vec![wpi_task, secure_task, http_task, admin_task];
    tasks.extend(retention);
    Ok(Running { wpi_addr, admin_addr, secure_addr, http_addr, admin_url, refused, shutdown: tx, tasks })
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|e| ServerError::io(format!("binding {addr}"), e))
}

/// The file store's directory, created private; uploads a crash left half-done are removed.
fn files_dir(dir: &DataDir) -> Result<std::path::PathBuf, ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    let path = dir.path().join(names::FILES);
    if !path.is_dir() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| ServerError::io(format!("creating {}", path.display()), e))?;
    }
    let entries = std::fs::read_dir(&path).map_err(|e| ServerError::io(format!("reading {}", path.display()), e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".upload-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(path)
}

/// Starts the contact-me sender, and asks it to contact the devices whose jobs wait from
/// before a restart.
fn start_contact(
    config: &Config,
    store: Arc<dyn Store>,
    forced: Arc<std::sync::Mutex<std::collections::HashSet<dls_message::MacAddr>>>,
    shutdown: watch::Receiver<bool>,
) -> contact::ContactHandle {
    use std::sync::PoisonError;
    let policy = contact::ContactPolicy {
        attempt_timeout: Duration::from_secs(config.contact_me_timeout_secs),
        concurrency: config.contact_me_concurrency,
        dls_ip_addr: config.contact_me_dls_address.clone(),
        dls_ip_port: config.contact_me_dls_port,
        any_host: config.contact_me_any_host,
        ..contact::ContactPolicy::default()
    };
    let lookup = store.clone();
    let targets: contact::ContactTargets = Arc::new(move |mac| {
        let was_forced = forced.lock().unwrap_or_else(PoisonError::into_inner).remove(&mac);
        match lookup.contact_target(mac, was_forced) {
            Ok(target) => target,
            Err(e) => {
                tracing::error!(%mac, error = %e, "contact-me: store failed");
                None
            }
        }
    });
    let recorder = store.clone();
    let report: contact::ContactReport = Arc::new(move |mac, attempt: &contact::ContactAttempt| {
        info!(%mac, uri = %attempt.uri, result = %attempt.result, "contact-me");
        if let Err(e) =
            recorder.record_contact(mac, dls_engine::UnixTime(attempt.at_unix_secs), &attempt.result.to_string())
        {
            tracing::error!(%mac, error = %e, "contact-me: recording failed");
        }
    });
    let handle = contact::spawn(policy, targets, report, shutdown);
    let seeding = handle.clone();
    tokio::task::spawn_blocking(move || match store.devices_with_pending_jobs(100_000) {
        Ok(macs) => {
            for mac in macs {
                let _ = seeding.request(mac);
            }
        }
        Err(e) => tracing::error!(error = %e, "contact-me: listing pending jobs failed"),
    });
    handle
}
