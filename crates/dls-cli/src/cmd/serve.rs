//! `dls serve`: the service, configured by flags, environment and a TOML file (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use dls_engine::config::UnknownDevicePolicy;
use dls_server::{Config, LOGIN_SERVICE_PATH, ServerError};
use tracing_subscriber::EnvFilter;

use crate::exit::{fail, usage};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyType {
    EcdsaP256,
    Rsa2048,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UnknownDevices {
    Register,
    Reject,
}

/// Options of `dls serve`. Every option can also be set in the `--config` file (same
/// names, kebab-case); flags override the file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, env = "DLS_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory (database, keys, certificates, admin token). Default ./dls-data.
    #[arg(long, env = "DLS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The default-mode WPI listener (TLS). Default 0.0.0.0:18443.
    #[arg(long)]
    wpi_listen: Option<SocketAddr>,
    /// The admin API listener. Default 127.0.0.1:18081 (another address without
    /// --admin-tls gets a warning at start).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Serve the admin API over TLS with the service's server certificate (clients trust
    /// the data directory's ca.crt).
    #[arg(long)]
    admin_tls: bool,
    /// The secure-mode WPI listener (mutual TLS). Default 0.0.0.0:18444.
    #[arg(long)]
    secure_listen: Option<SocketAddr>,
    /// The plain-HTTP listener (provisioning files). Default 0.0.0.0:18080.
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// A Digest challenge to offer, in order (repeatable): MD5 (default), SHA-256, SHA-512-256.
    #[arg(long = "digest-algorithm")]
    digest_algorithms: Vec<String>,
    /// The base URL phones fetch provisioning files from (e.g. behind NAT).
    #[arg(long)]
    provisioning_base_url: Option<String>,
    /// The secure port phones are told (behind NAT). Default: the listener's.
    #[arg(long)]
    secure_port_advertised: Option<u16>,
    /// The security mode of devices seen for the first time: default, nopin or pin.
    #[arg(long)]
    new_device_mode: Option<dls_engine::SecurityMode>,
    /// The key of device certificates: ecdsa-p256 (default) or rsa-2048 (old firmware).
    #[arg(long, value_enum)]
    device_key_type: Option<KeyType>,
    /// PBKDF2 iterations for secure-mode-data (at least 100000).
    #[arg(long)]
    pin_iterations: Option<u32>,
    /// How long issued bootstrap material is sent again to a device's start-ups, in seconds.
    #[arg(long)]
    bootstrap_reuse_secs: Option<u64>,
    /// New bootstrap material for one device at most once in this many seconds.
    #[arg(long)]
    bootstrap_reissue_secs: Option<u64>,
    /// How many bootstrap issuances (key generation, PBKDF2) run at once (1 to 64).
    #[arg(long)]
    bootstrap_concurrency: Option<usize>,
    /// How many start-ups may wait for a bootstrap issuance (0 to 1024; beyond: server busy).
    #[arg(long)]
    bootstrap_queue: Option<usize>,
    /// A DNS name or IP address phones use to reach the service (repeatable).
    #[arg(long = "server-name")]
    server_names: Vec<String>,
    /// Keep-alive idle timeout in seconds (at least 30).
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// The largest request body in bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// The most concurrent connections per listener.
    #[arg(long)]
    max_connections: Option<usize>,
    /// The most concurrent connections per listener from one IPv4 address or IPv6 /64
    /// (connections still in their TLS handshake count). Default 64 (16 on the admin API).
    #[arg(long)]
    max_connections_per_source: Option<usize>,
    /// A full inventory older than this (seconds) is read again at start-up.
    #[arg(long)]
    inventory_max_age_secs: Option<u64>,
    /// Devices never seen before: register them, or reject them.
    #[arg(long, value_enum)]
    unknown_devices: Option<UnknownDevices>,
    /// Where phones download deployment files, as they see it (behind NAT: the external
    /// address), e.g. https://dls.example.com:18443.
    #[arg(long)]
    files_base_url: Option<String>,
    /// The largest deployment file accepted, in bytes.
    #[arg(long)]
    max_file_bytes: Option<u64>,
    /// The longest a deployment file's upload may take in all, in seconds.
    #[arg(long)]
    upload_timeout_secs: Option<u64>,
    /// The address a contact-me tells phones to call (`dls_ip_addr`).
    #[arg(long)]
    contact_me_dls_address: Option<String>,
    /// The port a contact-me tells phones to call (`dls_ip_port`).
    #[arg(long)]
    contact_me_dls_port: Option<u16>,
    /// Send contact-me to whatever host a phone's contact-me-uri names, not only to the
    /// address the phone last called from (phones behind NAT or a proxy).
    #[arg(long)]
    contact_me_any_host: bool,
    /// DCMP polls answered per second from one address.
    #[arg(long)]
    dcmp_polls_per_second: Option<u32>,
    /// Days audit records are kept after they were written (0: forever). Default 400.
    #[arg(long)]
    audit_retention_days: Option<u32>,
    /// Days jobs that are over (done, failed, cancelled) are kept after their last change
    /// (0: forever). Default 90.
    #[arg(long)]
    job_retention_days: Option<u32>,
    /// The node's name, on every log line and in the dls_node_info metric (1 to 64 of
    /// A-Z a-z 0-9 . _ -). Default: the host name.
    #[arg(long)]
    node_name: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
}

fn config_of(args: ServeArgs) -> anyhow::Result<(Config, bool)> {
    let mut config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Config::from_toml(&text).map_err(|e| usage(format!("{}: {e}", p.display())))?
        }
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(a) = args.wpi_listen {
        config.wpi_listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = a;
    }
    if args.admin_tls {
        config.admin_tls = true;
    }
    if let Some(a) = args.secure_listen {
        config.secure_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    if !args.digest_algorithms.is_empty() {
        config.digest_algorithms = args.digest_algorithms;
    }
    if let Some(u) = args.provisioning_base_url {
        config.provisioning_base_url = Some(u);
    }
    if let Some(p) = args.secure_port_advertised {
        config.secure_port_advertised = Some(p);
    }
    if let Some(m) = args.new_device_mode {
        config.new_device_mode = m;
    }
    if let Some(k) = args.device_key_type {
        config.device_key_type = match k {
            KeyType::EcdsaP256 => dls_server::pki::DeviceKeyType::EcdsaP256,
            KeyType::Rsa2048 => dls_server::pki::DeviceKeyType::Rsa2048,
        };
    }
    if let Some(n) = args.pin_iterations {
        config.pin_iterations = n;
    }
    if let Some(v) = args.bootstrap_reuse_secs {
        config.bootstrap_reuse_secs = v;
    }
    if let Some(v) = args.bootstrap_reissue_secs {
        config.bootstrap_reissue_secs = v;
    }
    if let Some(v) = args.bootstrap_concurrency {
        config.bootstrap_concurrency = v;
    }
    if let Some(v) = args.bootstrap_queue {
        config.bootstrap_queue = v;
    }
    config.server_names.extend(args.server_names);
    if let Some(v) = args.idle_timeout_secs {
        config.idle_timeout_secs = v;
    }
    if let Some(v) = args.max_body_bytes {
        config.max_body_bytes = v;
    }
    if let Some(v) = args.max_connections {
        config.max_connections = v;
    }
    if let Some(v) = args.max_connections_per_source {
        config.max_connections_per_source = v;
    }
    if let Some(v) = args.inventory_max_age_secs {
        config.inventory_max_age_secs = v;
    }
    if let Some(u) = args.unknown_devices {
        config.unknown_devices = match u {
            UnknownDevices::Register => UnknownDevicePolicy::Register,
            UnknownDevices::Reject => UnknownDevicePolicy::Reject,
        };
    }
    if let Some(v) = args.files_base_url {
        config.files_base_url = Some(v);
    }
    if let Some(v) = args.max_file_bytes {
        config.max_file_bytes = v;
    }
    if let Some(v) = args.upload_timeout_secs {
        config.upload_timeout_secs = v;
    }
    if let Some(v) = args.contact_me_dls_address {
        config.contact_me_dls_address = Some(v);
    }
    if let Some(v) = args.contact_me_dls_port {
        config.contact_me_dls_port = Some(v);
    }
    if args.contact_me_any_host {
        config.contact_me_any_host = true;
    }
    if let Some(v) = args.dcmp_polls_per_second {
        config.dcmp_polls_per_second = v;
    }
    if let Some(v) = args.audit_retention_days {
        config.audit_retention_days = v;
    }
    if let Some(v) = args.job_retention_days {
        config.job_retention_days = v;
    }
    if let Some(v) = args.node_name {
        config.node_name = v;
    }
    config.validate().map_err(usage)?;
    Ok((config, args.log_json))
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (config, log_json) = config_of(args)?;
    let filter = EnvFilter::try_from_env("DLS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        // Before the addresses are printed: whoever waits for them may signal at once.
        let signals = Signals::install()?;
        let running = dls_server::start(config).await.map_err(|e| match e {
            ServerError::Config(m) => usage(m),
            other => fail(crate::exit::OTHER, other),
        })?;
        println!("dls: WPI (default mode) on https://{}{LOGIN_SERVICE_PATH}", running.wpi_addr);
        println!("dls: WPI (secure mode, mutual TLS) on https://{}{LOGIN_SERVICE_PATH}", running.secure_addr);
        println!(
            "dls: provisioning files and DCMP on http://{} (provisioning files and deployment downloads over HTTPS on the default-mode port)",
            running.http_addr
        );
        println!("dls: admin API on {}", running.admin_url);
        signals.wait().await;
        eprintln!("dls: shutting down; finishing interactions in flight");
        running.shutdown().await;
        Ok(())
    })
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{ServeArgs, config_of};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<dls_server::Config> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        Ok(config_of(cli.serve)?.0)
    }

    #[test]
    fn retention_flags_override_the_file_and_the_defaults() {
        let c = config(&[]).expect("defaults");
        assert_eq!((c.audit_retention_days, c.job_retention_days), (400, 90));
        let c = config(&["--audit-retention-days", "0", "--job-retention-days", "30"]).expect("flags");
        assert_eq!((c.audit_retention_days, c.job_retention_days), (0, 30));

        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dls.toml");
        std::fs::write(&file, "audit-retention-days = 730\njob-retention-days = 14\n").expect("writes");
        let file = file.to_string_lossy().into_owned();
        let c = config(&["--config", &file]).expect("file");
        assert_eq!((c.audit_retention_days, c.job_retention_days), (730, 14));
        let c = config(&["--config", &file, "--job-retention-days", "0"]).expect("file and flag");
        assert_eq!((c.audit_retention_days, c.job_retention_days), (730, 0));

        assert!(config(&["--job-retention-days", "36501"]).is_err(), "validated");
        assert!(config(&["--audit-retention-days", "-1"]).is_err(), "not a number of days");
    }

    #[test]
    fn connection_limits_and_admin_tls_from_flags_and_file() {
        let c = config(&[]).expect("defaults");
        assert_eq!((c.max_connections, c.max_connections_per_source, c.admin_tls), (4096, 64, false));
        let c = config(&["--max-connections-per-source", "8", "--admin-tls"]).expect("flags");
        assert_eq!((c.max_connections_per_source, c.admin_tls), (8, true));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dls.toml");
        std::fs::write(&file, "max-connections-per-source = 256\nadmin-tls = true\n").expect("writes");
        let file = file.to_string_lossy().into_owned();
        let c = config(&["--config", &file]).expect("file");
        assert_eq!((c.max_connections_per_source, c.admin_tls), (256, true));
        let c = config(&["--config", &file, "--max-connections-per-source", "32"]).expect("file and flag");
        assert_eq!(c.max_connections_per_source, 32);
        assert!(config(&["--max-connections-per-source", "0"]).is_err(), "validated");
    }

    #[test]
    fn contact_me_goes_to_the_callers_address_unless_any_host_is_allowed() {
        assert!(!config(&[]).expect("defaults").contact_me_any_host);
        assert!(config(&["--contact-me-any-host"]).expect("flag").contact_me_any_host);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dls.toml");
        std::fs::write(&file, "contact-me-any-host = true\n").expect("writes");
        let c = config(&["--config", &file.to_string_lossy()]).expect("file");
        assert!(c.contact_me_any_host);
    }
}
