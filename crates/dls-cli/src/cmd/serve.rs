//! `dls serve`: the service. Its configuration is layered: the defaults
//! (`Config::default()`), then the `--config` TOML file, then the environment
//! (`DLS_<SETTING>`), then the flags; each layer overrides the settings it names.
//!
//! clap reads the environment and the flags into [`Settings`] (a flag wins over its
//! variable); what they set is laid over the file's configuration key by key, by the names
//! both share with `Config`'s serde form, so no setting is merged by hand.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use dls_server::{Config, LOGIN_SERVICE_PATH, ServerError};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::exit::{fail, usage};

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum KeyType {
    EcdsaP256,
    #[value(name = "rsa-2048", alias = "rsa2048")]
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum UnknownDevices {
    Register,
    Reject,
}

/// Options of `dls serve`.
#[derive(Debug, Args)]
#[command(after_help = LAYERS)]
pub(crate) struct ServeArgs {
    /// A TOML configuration file: the settings below by their names, e.g.
    /// max-connections = 100, server-name = ["dls.example.com"].
    #[arg(long, env = "DLS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the configuration the layers give, as a --config file, and exit.
    #[arg(long)]
    print_config: bool,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
    #[command(flatten)]
    settings: Settings,
}

/// How the layers combine, after the list of options in `--help`.
const LAYERS: &str = "Every setting is taken from, lowest first: its default, the --config file \
(name = value), the environment (DLS_NAME, e.g. DLS_MAX_CONNECTIONS=100), the flag (--name). \
A list (--server-name, --digest-algorithm) is a repeated flag, comma-separated in the variable, an \
array in the file, and a higher layer replaces it whole. A boolean is --name (true) or --name=false, \
DLS_NAME=true or false.";

/// Every setting of `dls_server::Config`, each under its name there: the flag `--name`, the
/// environment variable `DLS_NAME`, the key `name` of the `--config` file. Unset ones are
/// `None` (or an empty list) and leave the lower layers' value.
#[derive(Debug, Args, Serialize)]
#[command(next_help_heading = "Settings (also DLS_NAME in the environment, name in the --config file)")]
#[serde(rename_all = "kebab-case")]
struct Settings {
    /// The data directory (database, keys, certificates, admin token). Default ./dls-data.
    #[arg(long, env = "DLS_DATA_DIR", value_name = "DIR")]
    data_dir: Option<String>,
    /// The default-mode WPI listener (TLS). Default 0.0.0.0:18443.
    #[arg(long, env = "DLS_WPI_LISTEN", value_name = "ADDR:PORT")]
    wpi_listen: Option<SocketAddr>,
    /// The admin API listener. Default 127.0.0.1:18081 (another address without
    /// --admin-tls gets a warning at start).
    #[arg(long, env = "DLS_ADMIN_LISTEN", value_name = "ADDR:PORT")]
    admin_listen: Option<SocketAddr>,
    /// Serve the admin API over TLS with the service's server certificate (clients trust
    /// the data directory's ca.crt). Default false.
    #[arg(long, env = "DLS_ADMIN_TLS", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    admin_tls: Option<bool>,
    /// The secure-mode WPI listener (mutual TLS). Default 0.0.0.0:18444.
    #[arg(long, env = "DLS_SECURE_LISTEN", value_name = "ADDR:PORT")]
    secure_listen: Option<SocketAddr>,
    /// The plain-HTTP listener (provisioning files, DCMP). Default 0.0.0.0:18080.
    #[arg(long, env = "DLS_HTTP_LISTEN", value_name = "ADDR:PORT")]
    http_listen: Option<SocketAddr>,
    /// The path of provisioning files, {mac} standing for the 12 hex digits. Default
    /// /provisioning/{mac}.xml.
    #[arg(long, env = "DLS_PROVISIONING_PATH", value_name = "PATH")]
    provisioning_path: Option<String>,
    /// The base URL phones fetch provisioning files from (e.g. behind NAT). Default https://
    /// with the first server name and the WPI listener's port.
    #[arg(long, env = "DLS_PROVISIONING_BASE_URL", value_name = "URL")]
    provisioning_base_url: Option<String>,
    /// The HTTP Digest realm of provisioning files. Default DLS.
    #[arg(long, env = "DLS_DIGEST_REALM", value_name = "REALM")]
    digest_realm: Option<String>,
    /// A Digest challenge to offer, in order (repeatable): MD5 (default), SHA-256, SHA-512-256.
    #[arg(long, env = "DLS_DIGEST_ALGORITHM", value_name = "ALGORITHM", value_delimiter = ',')]
    digest_algorithm: Vec<String>,
    /// The secure port phones are told (behind NAT). Default: the listener's.
    #[arg(long, env = "DLS_SECURE_PORT_ADVERTISED", value_name = "PORT")]
    secure_port_advertised: Option<u16>,
    /// The security mode of devices seen for the first time: default, nopin or pin.
    /// Default default.
    #[arg(long, env = "DLS_NEW_DEVICE_MODE", value_name = "MODE")]
    new_device_mode: Option<dls_engine::SecurityMode>,
    /// PBKDF2 iterations for secure-mode-data (100000 to 10000000). Default 600000.
    #[arg(long, env = "DLS_PIN_ITERATIONS", value_name = "N")]
    pin_iterations: Option<u32>,
    /// The max-pin-retries phones are sent. Default 3.
    #[arg(long, env = "DLS_MAX_PIN_RETRIES", value_name = "N")]
    max_pin_retries: Option<u32>,
    /// Wrong TANs before a device's certificate is revoked. Default 3.
    #[arg(long, env = "DLS_MAX_TAN_FAILURES", value_name = "N")]
    max_tan_failures: Option<u32>,
    /// A PIN expires this many seconds after it is issued. Default 604800 (7 days).
    #[arg(long, env = "DLS_PIN_LIFETIME_SECS", value_name = "SECS")]
    pin_lifetime_secs: Option<u64>,
    /// How long issued bootstrap material is sent again to a device's start-ups, in seconds.
    /// Default 604800 (7 days).
    #[arg(long, env = "DLS_BOOTSTRAP_REUSE_SECS", value_name = "SECS")]
    bootstrap_reuse_secs: Option<u64>,
    /// New bootstrap material for one device at most once in this many seconds. Default 600.
    #[arg(long, env = "DLS_BOOTSTRAP_REISSUE_SECS", value_name = "SECS")]
    bootstrap_reissue_secs: Option<u64>,
    /// How many bootstrap issuances (key generation, PBKDF2) run at once (1 to 64). Default 1.
    #[arg(long, env = "DLS_BOOTSTRAP_CONCURRENCY", value_name = "N")]
    bootstrap_concurrency: Option<usize>,
    /// How many start-ups may wait for a bootstrap issuance (0 to 1024; beyond: server busy).
    /// Default 32.
    #[arg(long, env = "DLS_BOOTSTRAP_QUEUE", value_name = "N")]
    bootstrap_queue: Option<usize>,
    /// Validity of device certificates, in days. Default 3650.
    #[arg(long, env = "DLS_DEVICE_CERTIFICATE_DAYS", value_name = "DAYS")]
    device_certificate_days: Option<u32>,
    /// The key of device certificates: ecdsa-p256 (default) or rsa-2048 (old firmware).
    #[arg(long, env = "DLS_DEVICE_KEY_TYPE", value_name = "TYPE", value_enum)]
    device_key_type: Option<KeyType>,
    /// An enterprise CA certificate (PEM) to use instead of the generated CA; with
    /// --ca-key-file.
    #[arg(long, env = "DLS_CA_CERT_FILE", value_name = "FILE")]
    ca_cert_file: Option<String>,
    /// The enterprise CA's private key (PEM, PKCS#8); with --ca-cert-file.
    #[arg(long, env = "DLS_CA_KEY_FILE", value_name = "FILE")]
    ca_key_file: Option<String>,
    /// A DNS name or IP address phones use to reach the service (repeatable).
    #[arg(long, env = "DLS_SERVER_NAME", value_name = "NAME", value_delimiter = ',')]
    server_name: Vec<String>,
    /// Keep-alive idle timeout, and the time to send a request's headers, in seconds (at
    /// least 30). Default 60.
    #[arg(long, env = "DLS_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    idle_timeout_secs: Option<u64>,
    /// The time a client has to send a request body, in seconds. Default 30.
    #[arg(long, env = "DLS_BODY_TIMEOUT_SECS", value_name = "SECS")]
    body_timeout_secs: Option<u64>,
    /// The time a client has to complete the TLS handshake, in seconds. Default 10.
    #[arg(long, env = "DLS_TLS_HANDSHAKE_TIMEOUT_SECS", value_name = "SECS")]
    tls_handshake_timeout_secs: Option<u64>,
    /// The largest request body in bytes; larger gets 413. Default 2097152 (a phone's reply
    /// carrying a mobility user's largest data item must fit).
    #[arg(long, env = "DLS_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// The largest request head (line and headers) in bytes, at least 8192; larger gets 431.
    /// Default 16384.
    #[arg(long, env = "DLS_MAX_HEADER_BYTES", value_name = "BYTES")]
    max_header_bytes: Option<usize>,
    /// The most concurrent connections per listener. Default 4096 (64 on the admin API).
    #[arg(long, env = "DLS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// The most concurrent connections per listener from one IPv4 address or IPv6 /64
    /// (connections still in their TLS handshake count). Default 64 (16 on the admin API).
    #[arg(long, env = "DLS_MAX_CONNECTIONS_PER_SOURCE", value_name = "N")]
    max_connections_per_source: Option<usize>,
    /// A session (one interaction) is forgotten after this many seconds without a message.
    /// Default 300.
    #[arg(long, env = "DLS_SESSION_TIMEOUT_SECS", value_name = "SECS")]
    session_timeout_secs: Option<u64>,
    /// The most sessions held at once. Default 100000.
    #[arg(long, env = "DLS_MAX_SESSIONS", value_name = "N")]
    max_sessions: Option<usize>,
    /// A full inventory older than this (seconds) is read again at start-up. Default 86400.
    #[arg(long, env = "DLS_INVENTORY_MAX_AGE_SECS", value_name = "SECS")]
    inventory_max_age_secs: Option<u64>,
    /// Devices never seen before: register them (default), or reject them.
    #[arg(long, env = "DLS_UNKNOWN_DEVICES", value_name = "POLICY", value_enum)]
    unknown_devices: Option<UnknownDevices>,
    /// How long shutdown waits for interactions in flight, in seconds. Default 30.
    #[arg(long, env = "DLS_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    shutdown_grace_secs: Option<u64>,
    /// Where phones download deployment files, as they see it (behind NAT: the external
    /// address), e.g. https://dls.example.com:18443.
    #[arg(long, env = "DLS_FILES_BASE_URL", value_name = "URL")]
    files_base_url: Option<String>,
    /// Where deployment files are kept. Default DATA_DIR/files. Nodes of a cluster share
    /// one directory (NFS, a cluster file system): see docs/cluster.md.
    #[arg(long, env = "DLS_FILES_DIR", value_name = "DIR")]
    files_dir: Option<String>,
    /// The largest deployment file accepted, in bytes. Default 2147483648 (2 GiB).
    #[arg(long, env = "DLS_MAX_FILE_BYTES", value_name = "BYTES")]
    max_file_bytes: Option<u64>,
    /// The longest a deployment file's upload may take in all, in seconds. Default 3600.
    #[arg(long, env = "DLS_UPLOAD_TIMEOUT_SECS", value_name = "SECS")]
    upload_timeout_secs: Option<u64>,
    /// The address a contact-me tells phones to call (dls_ip_addr). Default: not sent.
    #[arg(long, env = "DLS_CONTACT_ME_DLS_ADDRESS", value_name = "ADDRESS")]
    contact_me_dls_address: Option<String>,
    /// The port a contact-me tells phones to call (dls_ip_port). Default: not sent.
    #[arg(long, env = "DLS_CONTACT_ME_DLS_PORT", value_name = "PORT")]
    contact_me_dls_port: Option<u16>,
    /// Contact-me requests in flight at once, across the fleet. Default 32.
    #[arg(long, env = "DLS_CONTACT_ME_CONCURRENCY", value_name = "N")]
    contact_me_concurrency: Option<usize>,
    /// How long one contact-me may take, in seconds. Default 5.
    #[arg(long, env = "DLS_CONTACT_ME_TIMEOUT_SECS", value_name = "SECS")]
    contact_me_timeout_secs: Option<u64>,
    /// Send contact-me to whatever host a phone's contact-me-uri names, not only to the
    /// address the phone last called from (phones behind NAT or a proxy). Default false.
    #[arg(long, env = "DLS_CONTACT_ME_ANY_HOST", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    contact_me_any_host: Option<bool>,
    /// DCMP polls answered per second from one address. Default 5.
    #[arg(long, env = "DLS_DCMP_POLLS_PER_SECOND", value_name = "N")]
    dcmp_polls_per_second: Option<u32>,
    /// Days audit records are kept after they were written (0: forever). Default 400.
    #[arg(long, env = "DLS_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    audit_retention_days: Option<u32>,
    /// Days jobs that are over (done, failed, cancelled) are kept after their last change
    /// (0: forever). Default 90.
    #[arg(long, env = "DLS_JOB_RETENTION_DAYS", value_name = "DAYS")]
    job_retention_days: Option<u32>,
    /// The node's name, on every log line and in the dls_node_info metric (1 to 64 of
    /// A-Z a-z 0-9 . _ -). Default: the host name.
    #[arg(long, env = "DLS_NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,
    /// Where the state is kept: sqlite (the data directory's dls.sqlite; default) or a
    /// PostgreSQL URL, postgres://user:password@host:port/database, that several nodes share;
    /// TLS with libpq's parameters: ?sslmode=verify-full&sslrootcert=CA-FILE (sslmode
    /// disable, prefer (default), require, verify-ca, verify-full; sslcert, sslkey).
    #[arg(long, env = "DLS_STORE", value_name = "sqlite|URL")]
    store: Option<String>,
    /// Keep the sessions of interactions in progress in the store, so that an interaction
    /// goes on on another node (always so with a PostgreSQL store). Default false.
    #[arg(long, env = "DLS_SHARED_SESSIONS", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    shared_sessions: Option<bool>,
    /// A console session ends after this many seconds without a request (60 to 86400).
    /// Default 1800.
    #[arg(long, env = "DLS_CONSOLE_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    console_idle_timeout_secs: Option<u64>,
    /// A console session ends this many seconds after its login, whatever happens (at most
    /// 604800). Default 43200.
    #[arg(long, env = "DLS_CONSOLE_SESSION_MAX_SECS", value_name = "SECS")]
    console_session_max_secs: Option<u64>,
    /// Mobility: seconds a forced logoff (the user logging on at another phone) may take
    /// before that logon goes ahead without the first phone's data (1 to 86400). Default 300.
    #[arg(long, env = "DLS_MOBILITY_LOGOFF_GRACE_SECS", value_name = "SECS")]
    mobility_logoff_grace_secs: Option<u64>,
    /// Mobility: the largest user data item kept, decoded bytes (its Base64 must fit
    /// max-body-bytes). Default 1048576.
    #[arg(long, env = "DLS_MOBILITY_MAX_ITEM_BYTES", value_name = "BYTES")]
    mobility_max_item_bytes: Option<u64>,
    /// Mobility: the most user data kept for one user, decoded bytes (at most 10485760).
    /// Default 8388608.
    #[arg(long, env = "DLS_MOBILITY_MAX_USER_BYTES", value_name = "BYTES")]
    mobility_max_user_bytes: Option<u64>,
}

/// The configuration the layers give, validated: the defaults, the `--config` file, then
/// what the environment and the flags set.
fn config_of(args: &ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Config::from_toml(&text).map_err(|e| usage(format!("{}: {e}", p.display())))?
        }
        None => Config::default(),
    };
    let config = overlay(file, &args.settings)?;
    config.validate().map_err(usage)?;
    Ok(config)
}

/// `below` with every setting `settings` sets replaced: both are serialized under the
/// setting names, the set ones (neither `None` nor an empty list) are laid over, and the
/// result is read back as a `Config`.
fn overlay(below: Config, settings: &Settings) -> anyhow::Result<Config> {
    let serde_json::Value::Object(mut merged) = serde_json::to_value(&below).context("the configuration")? else {
        anyhow::bail!("the configuration is not a table of settings");
    };
    let serde_json::Value::Object(set) = serde_json::to_value(settings).context("the settings")? else {
        anyhow::bail!("the settings are not a table");
    };
    for (name, value) in set {
        let unset = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
        if !unset {
            merged.insert(name, value);
        }
    }
    // Every value comes typed from clap; a failure here is a setting of `Settings` that
    // `Config` does not take (the test of every setting finds it).
    serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| usage(format!("a setting: {e}")))
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = config_of(&args)?;
    if args.print_config {
        let text = toml::to_string(&config).context("printing the configuration")?;
        print!("{text}");
        return Ok(());
    }
    let log_json = args.log_json;
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

    /// The configuration of `dls serve args…`, the environment ignored: a `DLS_…` variable
    /// of the shell running the tests changes nothing here (tests/cli/serve_config.rs runs
    /// the binary with variables set).
    fn config(args: &[&str]) -> anyhow::Result<dls_server::Config> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_args(|a| a.env(None::<&str>));
        let matches = command.try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))?;
        config_of(&Cli::from_arg_matches(&matches)?.serve)
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

    #[test]
    fn sessions_stay_in_memory_unless_shared() {
        assert!(!config(&[]).expect("defaults").shared_sessions);
        assert!(config(&["--shared-sessions"]).expect("flag").shared_sessions);
        assert!(!config(&["--shared-sessions=false"]).expect("flag").shared_sessions);
        let c = config(&["--store", "postgres://dls@db.example.net/dls"]).expect("a PostgreSQL store");
        assert_eq!(c.store.as_str(), "postgres://dls@db.example.net/dls");
        assert!(config(&["--store", "/var/lib/dls.db"]).is_err(), "validated");
    }

    /// The settings of `Config`, by their names: the keys of its serde form (`None` ones
    /// serialize as null, so none is missed).
    fn setting_names() -> Vec<String> {
        let serde_json::Value::Object(map) = serde_json::to_value(dls_server::Config::default()).expect("serializes")
        else {
            panic!("Config serializes as a table");
        };
        map.keys().cloned().collect()
    }

    /// Every setting of `Config` is a flag of the same name with the variable `DLS_NAME`, and
    /// every flag of `Settings` is a setting of `Config`.
    #[test]
    fn every_setting_is_a_flag_and_an_environment_variable() {
        use clap::CommandFactory;
        let command = Cli::command();
        let names = setting_names();
        assert!(names.len() >= 48, "{names:?}");
        for name in &names {
            let arg = command.get_arguments().find(|a| a.get_long() == Some(name.as_str()));
            let arg = arg.unwrap_or_else(|| panic!("no flag --{name}"));
            let env = format!("DLS_{}", name.to_uppercase().replace('-', "_"));
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env.as_str()), "--{name}");
            assert!(arg.get_help().is_some_and(|h| !h.to_string().is_empty()), "--{name} has a help text");
        }
        let own = ["config", "print-config", "log-json", "help"];
        for arg in command.get_arguments() {
            let long = arg.get_long().unwrap_or_default();
            assert!(own.contains(&long) || names.iter().any(|n| n == long), "--{long} is no setting of Config");
        }
    }

    #[test]
    fn flags_replace_lists_and_set_booleans_either_way() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dls.toml");
        std::fs::write(&file, "server-name = [\"a.example\"]\nadmin-tls = true\ndigest-algorithms = [\"SHA-256\"]\n")
            .expect("writes");
        let file = file.to_string_lossy().into_owned();
        let c = config(&["--config", &file]).expect("file");
        assert_eq!((c.server_names.as_slice(), c.admin_tls), (&["a.example".to_owned()][..], true));
        assert_eq!(c.digest_algorithms, ["SHA-256"]);
        let c = config(&["--config", &file, "--server-name", "b.example", "--server-name", "c.example,192.0.2.1"])
            .expect("flags");
        assert_eq!(c.server_names, ["b.example", "c.example", "192.0.2.1"], "replaced, not appended");
        assert_eq!(c.digest_algorithms, ["SHA-256"], "untouched by the flags");
        let c = config(&["--config", &file, "--admin-tls=false"]).expect("off");
        assert!(!c.admin_tls);
        let c = config(&["--admin-tls=yes", "--contact-me-any-host"]).expect("on");
        assert!(c.admin_tls && c.contact_me_any_host);
        let c = config(&["--digest-algorithm", "SHA-512-256", "--digest-algorithm", "MD5"]).expect("list");
        assert_eq!(c.digest_algorithms, ["SHA-512-256", "MD5"]);
        let c = config(&["--device-key-type", "rsa-2048", "--unknown-devices", "reject", "--new-device-mode", "pin"])
            .expect("enums");
        assert_eq!(c.device_key_type, dls_server::pki::DeviceKeyType::Rsa2048);
        assert_eq!(c.unknown_devices, dls_engine::config::UnknownDevicePolicy::Reject);
        assert_eq!(c.new_device_mode, dls_engine::SecurityMode::Pin);
        assert!(config(&["--digest-algorithm", "SHA-1"]).is_err(), "the merged result is validated");
    }

    #[test]
    fn no_configuration_is_exactly_the_defaults() {
        assert_eq!(config(&[]).expect("defaults"), dls_server::Config::default());
    }

    #[test]
    fn a_bad_file_is_a_usage_error_naming_the_setting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("dls.toml");
        for (text, want) in [
            ("max-conections = 5\n", "dls.toml: line 1: unknown setting `max-conections`"),
            ("max-connections = \"many\"\n", "dls.toml: line 1: max-connections: invalid type"),
            ("idle-timeout-secs = 10\n", "idle-timeout-secs must be at least 30"),
        ] {
            std::fs::write(&file, text).expect("writes");
            let e = config(&["--config", &file.to_string_lossy()]).expect_err(text);
            assert_eq!(crate::exit::code_of(&e), crate::exit::USAGE, "{e}");
            let shown = crate::exit::one_line(&e);
            assert!(shown.contains(want), "{text:?}: {shown}");
        }
        let missing = dir.path().join("missing.toml");
        let e = config(&["--config", &missing.to_string_lossy()]).expect_err("no file");
        assert_eq!(crate::exit::code_of(&e), crate::exit::OTHER, "{e}");
    }
}
