//! The service's configuration: every field settable in a TOML file (its kebab-case name)
//! and, in the CLI, by a flag of the same name and an environment variable `DLS_<NAME>`
//! (`dls serve --help`). The defaults are what `dls serve` does with no configuration at all.

use std::net::SocketAddr;
use std::path::PathBuf;

use dls_engine::config::UnknownDevicePolicy;
use serde::{Deserialize, Serialize};

/// The longest retention in days (100 years); longer is surely a mistake (0 keeps forever).
const MAX_RETENTION_DAYS: u32 = 36_500;

/// The configuration of `dls serve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Where the database, keys and certificates live. Default `./dls-data`.
    pub data_dir: PathBuf,
    /// The default-mode WPI listener (TLS). Default `0.0.0.0:18443`.
    pub wpi_listen: SocketAddr,
    /// The admin API listener (bearer token; plain HTTP unless `admin-tls`). Default
    /// `127.0.0.1:18081`. Bound to an address other than loopback without `admin-tls`, the
    /// service warns at start (the token would cross the network in clear).
    pub admin_listen: SocketAddr,
    /// Serve the admin API over TLS with the service's server certificate (clients trust
    /// the data directory's `ca.crt`). Default false.
    pub admin_tls: bool,
    /// The secure-mode WPI listener (mutual TLS). Default `0.0.0.0:18444`.
    pub secure_listen: SocketAddr,
    /// The plain-HTTP listener (provisioning files for phones that pull one). Default
    /// `0.0.0.0:18080`.
    pub http_listen: SocketAddr,
    /// The path of provisioning files; `{mac}` stands for the 12 hex digits. Default
    /// `/provisioning/{mac}.xml`.
    pub provisioning_path: String,
    /// The base URL phones use to fetch provisioning files (for `dls device
    /// provisioning-url`). Default `https://<first server name>:<WPI port>`.
    pub provisioning_base_url: Option<String>,
    /// The HTTP Digest realm. Default `DLS`.
    pub digest_realm: String,
    /// The Digest challenges offered, in order: `MD5` (default; what devices in the field
    /// handle), `SHA-256`, `SHA-512-256`. Named `digest-algorithm` (one flag per algorithm);
    /// a file may also say `digest-algorithms`.
    #[serde(rename = "digest-algorithm", alias = "digest-algorithms")]
    pub digest_algorithms: Vec<String>,
    /// The port phones are told to use for secure mode (`dls-secure-port`), when it differs
    /// from the listener's (NAT, port forwarding). Default: the listener's port.
    pub secure_port_advertised: Option<u16>,
    /// The security mode given to devices seen for the first time: `default`, `nopin`, or
    /// `pin` (registered waiting for an administrator to issue a PIN). Default `default`.
    pub new_device_mode: dls_engine::SecurityMode,
    /// PBKDF2 iterations for `secure-mode-data` (at least 100,000). Default 600,000.
    pub pin_iterations: u32,
    /// `max-pin-retries` sent to phones. Default 3.
    pub max_pin_retries: u32,
    /// Wrong TANs before a device's certificate is revoked. Default 3.
    pub max_tan_failures: u32,
    /// A PIN expires this long after it is issued. Default 7 days.
    pub pin_lifetime_secs: u64,
    /// Bootstrap material (certificate and key; for `pin` the sealed bundle) issued to a
    /// device is sent again, unchanged, to its default-port start-ups for this long, until
    /// it bootstraps: repeated start-ups quoting its MAC issue and revoke nothing. Default
    /// 7 days.
    pub bootstrap_reuse_secs: u64,
    /// New bootstrap material is issued to one device at most once in this many seconds.
    /// Default 600.
    pub bootstrap_reissue_secs: u64,
    /// How many bootstrap issuances (key generation, PBKDF2) run at once. Default 1.
    pub bootstrap_concurrency: usize,
    /// How many start-ups may wait (10 s at most) for an issuance to free up; one that finds
    /// the queue full, or waits in vain, gets a `CleanUp` ("server busy"). Default 32.
    pub bootstrap_queue: usize,
    /// Validity of device certificates, in days. Default 3650.
    pub device_certificate_days: u32,
    /// The key of device certificates: `ecdsa-p256` (default) or `rsa-2048` (old firmware).
    pub device_key_type: crate::pki::DeviceKeyType,
    /// An enterprise CA certificate (PEM) to use instead of the generated CA; with
    /// `ca-key-file`.
    pub ca_cert_file: Option<PathBuf>,
    /// The enterprise CA's private key (PEM, PKCS#8).
    pub ca_key_file: Option<PathBuf>,
    /// Extra DNS names and IP addresses phones use to reach the service (server
    /// certificate SANs). Named `server-name` (one flag per name); a file may also say
    /// `server-names`.
    #[serde(rename = "server-name", alias = "server-names")]
    pub server_names: Vec<String>,
    /// Keep-alive idle timeout, and the time a client has to send a request's headers.
    /// Phones need at least 30 s. Default 60.
    pub idle_timeout_secs: u64,
    /// The time a client has to send a request body. Default 30.
    pub body_timeout_secs: u64,
    /// The time a client has to complete the TLS handshake. Default 10.
    pub tls_handshake_timeout_secs: u64,
    /// The largest request body; larger gets `413`. Default 2 MiB: a phone's reply carrying
    /// a mobility user's largest data item (`mobility-max-item-bytes`, Base64) fits.
    pub max_body_bytes: usize,
    /// The largest request head (line and headers); larger gets `431`. Default 16 KiB.
    pub max_header_bytes: usize,
    /// The most concurrent connections per listener; more are closed at once. Default 4096.
    pub max_connections: usize,
    /// The most concurrent connections per listener from one source (an IPv4 address, an
    /// IPv6 /64), counted from the accept (a connection still in its TLS handshake
    /// counts); more are closed at once. More than `max-connections` means `max-connections`.
    /// Default 64: a phone
    /// holds one connection at a time, so 64 leaves room for a small office behind one
    /// NAT address, while one client needs 64 addresses to fill the default cap of 4096.
    /// The admin API allows at most 16 per source (and 64 in all).
    pub max_connections_per_source: usize,
    /// A session (one interaction) is forgotten after this long without a message.
    /// Default 300.
    pub session_timeout_secs: u64,
    /// The most sessions held at once. Default 100,000.
    pub max_sessions: usize,
    /// A full inventory older than this is read again at start-up. Default one day.
    pub inventory_max_age_secs: u64,
    /// What to do with devices never seen before: `register` (default) or `reject`.
    pub unknown_devices: UnknownDevicePolicy,
    /// How long shutdown waits for interactions in flight. Default 30.
    pub shutdown_grace_secs: u64,
    /// Where phones download deployment files, as they must see it (behind NAT: the
    /// external address), e.g. `https://dls.example.com:18443`. Default: the first server
    /// name (or the listener's address) and the default-mode port.
    pub files_base_url: Option<String>,
    /// Where deployment files are kept. Default `files` in the data directory. Several
    /// nodes on one PostgreSQL store must each be given the same shared directory (an NFS
    /// export, a cluster file system), so that every node can stream every file
    /// (`docs/cluster.md`).
    pub files_dir: Option<PathBuf>,
    /// The largest deployment file accepted (bytes). Default 2 GiB.
    pub max_file_bytes: u64,
    /// The longest a deployment file's upload may take in all (seconds; besides the idle
    /// timeout between its pieces). Default 3600.
    pub upload_timeout_secs: u64,
    /// The address and port a contact-me tells the phone to call (`dls_ip_addr`,
    /// `dls_ip_port`); not sent by default (the phone calls the DLS it knows).
    pub contact_me_dls_address: Option<String>,
    /// See `contact-me-dls-address`.
    pub contact_me_dls_port: Option<u16>,
    /// Contact-me requests in flight at once, across the fleet. Default 32.
    pub contact_me_concurrency: usize,
    /// How long one contact-me may take (seconds). Default 5.
    pub contact_me_timeout_secs: u64,
    /// Send contact-me to whatever host a phone's `contact-me-uri` names. Default false:
    /// only to the IP address the phone last called from (a caller of the unauthenticated
    /// default-mode port must not make the DLS post to other hosts).
    pub contact_me_any_host: bool,
    /// DCMP polls answered per second from one address (a burst of 4 times as many is
    /// allowed); more get `429`. Default 5.
    pub dcmp_polls_per_second: u32,
    /// Audit records (`dls audit`) are deleted this many days after they were written; 0
    /// keeps them forever. At most 36,500. Default 400 (a yearly audit and some margin).
    pub audit_retention_days: u32,
    /// Jobs that are over (done, failed, cancelled) are deleted this many days after their
    /// last change; 0 keeps them forever. Jobs not over are never deleted, nor the files
    /// they deploy. At most 36,500. Default 90.
    pub job_retention_days: u32,
    /// The node's name: a field of every log line the service writes (`node=…`) and the
    /// `node` label of the `dls_node_info` metric, so that the lines and metrics of several
    /// nodes can be told apart. 1 to 64 of `A-Z a-z 0-9 . _ -`. Default: the host name
    /// (as `gethostname` gives it), cut to 64 characters, any other character replaced by
    /// `-`.
    pub node_name: String,
    /// Where the service keeps its state: `sqlite` (the default: `dls.sqlite` in the data
    /// directory, one node) or a PostgreSQL URL, `postgres://user:password@host:port/database`,
    /// which several nodes share (`docs/cluster.md`), TLS to it asked with libpq's parameters
    /// (`?sslmode=verify-full&sslrootcert=PATH`, …). Its password is never logged.
    pub store: StoreLocation,
    /// Keep the sessions of interactions in progress in the store rather than in this
    /// process: a message of an interaction that reaches another node (a balancer's
    /// choice, or the first node stopped) goes on there. Always so with a PostgreSQL store;
    /// with SQLite it costs a write per message and lets an interaction outlive a restart.
    /// Default false.
    pub shared_sessions: bool,
    /// A console session ends after this long without a request (seconds). 60 to 86,400.
    /// Default 1,800 (30 minutes).
    pub console_idle_timeout_secs: u64,
    /// A console session ends this long after its login, whatever happens (seconds); at
    /// least the idle timeout, at most 7 days. Default 43,200 (12 hours).
    pub console_session_max_secs: u64,
    /// Mobility: how long a forced logoff (a user logging on at another phone) may take
    /// before the logon elsewhere goes ahead, the user logged off the first phone without
    /// its data (seconds, 1 to 86400). Default 300.
    pub mobility_logoff_grace_secs: u64,
    /// Mobility: the largest user data item (`userdata-*`) kept, decoded (bytes). A phone's
    /// reply carrying one must fit `max-body-bytes`. Default 1 MiB.
    pub mobility_max_item_bytes: u64,
    /// Mobility: the most user data kept for one user, decoded (bytes; at least
    /// `mobility-max-item-bytes`, at most 10 MiB: what a restore has still to send travels
    /// in the interaction's session, at most 16 MiB encoded). Default 8 MiB.
    pub mobility_max_user_bytes: u64,
}

/// [`Config::store`]: `sqlite`, or a `postgres://` (`postgresql://`) URL. Its `Debug` and
/// [`StoreLocation::redacted`] leave the password out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreLocation(String);

/// The kinds of store a [`StoreLocation`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// The embedded SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL database, shared by the nodes that use it.
    Postgres,
}

impl StoreLocation {
    /// The embedded SQLite store.
    #[must_use]
    pub fn sqlite() -> Self {
        Self("sqlite".to_owned())
    }

    /// `location` as given (checked by [`Self::kind`]).
    #[must_use]
    pub fn new(location: impl Into<String>) -> Self {
        Self(location.into())
    }

    /// The location as given, password included: for opening the store only.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Which store this is; an error (one line) for anything but `sqlite` and a
    /// `postgres://` URL with a host.
    ///
    /// # Errors
    /// A message naming what is wrong, without the password.
    pub fn kind(&self) -> Result<StoreKind, String> {
        if self.0 == "sqlite" {
            return Ok(StoreKind::Sqlite);
        }
        let url = url::Url::parse(&self.0).map_err(|e| format!("store: not sqlite nor a postgres:// URL ({e})"))?;
        match url.scheme() {
            "postgres" | "postgresql" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(StoreKind::Postgres),
            "postgres" | "postgresql" => Err(format!("store: {} names no host", self.redacted())),
            other => Err(format!("store: the scheme {other:?} is neither sqlite nor postgres://")),
        }
    }

    /// The location without its password (the URL's, or a `password` parameter's), for
    /// logs and messages.
    #[must_use]
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("*****"));
                }
                if url.query_pairs().any(|(k, _)| k == "password") {
                    let pairs: Vec<(String, String)> = url
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" { "*****".to_owned() } else { v.into_owned() };
                            (k.into_owned(), v)
                        })
                        .collect();
                    url.query_pairs_mut().clear().extend_pairs(pairs);
                }
                url.to_string()
            }
            Err(_) if self.0 == "sqlite" => self.0.clone(),
            Err(_) => "(not a URL)".to_owned(),
        }
    }
}

impl Default for StoreLocation {
    fn default() -> Self {
        Self::sqlite()
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoreLocation").field(&self.redacted()).finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("dls-data"),
            wpi_listen: SocketAddr::from(([0, 0, 0, 0], 18443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 18081)),
            admin_tls: false,
            secure_listen: SocketAddr::from(([0, 0, 0, 0], 18444)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 18080)),
            provisioning_path: "/provisioning/{mac}.xml".to_owned(),
            provisioning_base_url: None,
            digest_realm: "DLS".to_owned(),
            digest_algorithms: vec!["MD5".to_owned()],
            secure_port_advertised: None,
            new_device_mode: dls_engine::SecurityMode::Default,
            pin_iterations: 600_000,
            max_pin_retries: 3,
            max_tan_failures: 3,
            pin_lifetime_secs: 7 * 24 * 3600,
            bootstrap_reuse_secs: 7 * 24 * 3600,
            bootstrap_reissue_secs: 600,
            bootstrap_concurrency: 1,
            bootstrap_queue: 32,
            device_certificate_days: 3650,
            device_key_type: crate::pki::DeviceKeyType::EcdsaP256,
            ca_cert_file: None,
            ca_key_file: None,
            server_names: Vec::new(),
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            max_body_bytes: 2 << 20,
            max_header_bytes: 16 << 10,
            max_connections: 4096,
            max_connections_per_source: 64,
            session_timeout_secs: 300,
            max_sessions: 100_000,
            inventory_max_age_secs: 24 * 3600,
            unknown_devices: UnknownDevicePolicy::Register,
            shutdown_grace_secs: 30,
            files_base_url: None,
            files_dir: None,
            max_file_bytes: 2 << 30,
            upload_timeout_secs: 3600,
            contact_me_dls_address: None,
            contact_me_dls_port: None,
            contact_me_concurrency: 32,
            contact_me_timeout_secs: 5,
            contact_me_any_host: false,
            dcmp_polls_per_second: 5,
            audit_retention_days: 400,
            job_retention_days: 90,
            node_name: default_node_name(),
            store: StoreLocation::sqlite(),
            shared_sessions: false,
            console_idle_timeout_secs: 1800,
            console_session_max_secs: 12 * 3600,
            mobility_logoff_grace_secs: 300,
            mobility_max_item_bytes: 1 << 20,
            mobility_max_user_bytes: 8 << 20,
        }
    }
}

impl Config {
    /// Parses a TOML configuration file's text; missing settings take their defaults, unknown
    /// ones are refused.
    ///
    /// # Errors
    /// What is wrong, as one line: where, the setting, the problem (`line 3:
    /// max-connections: invalid type: string "many", expected usize`).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| toml_error(text, e))
    }

    /// Checks the values that can be wrong.
    ///
    /// # Errors
    /// What is wrong, as one line.
    pub fn validate(&self) -> Result<(), String> {
        self.store.kind()?;
        if self.idle_timeout_secs < 30 {
            return Err("idle-timeout-secs must be at least 30 (phones keep connections that long)".into());
        }
        if self.max_connections == 0 || self.max_sessions == 0 {
            return Err("max-connections and max-sessions must be positive".into());
        }
        if self.max_connections_per_source == 0 {
            return Err("max-connections-per-source must be positive".into());
        }
        if self.pin_iterations < 100_000 || self.pin_iterations > 10_000_000 {
            return Err("pin-iterations must be between 100000 and 10000000".into());
        }
        if self.max_pin_retries == 0 || self.max_tan_failures == 0 {
            return Err("max-pin-retries and max-tan-failures must be positive".into());
        }
        if self.bootstrap_concurrency == 0 || self.bootstrap_concurrency > 64 {
            return Err("bootstrap-concurrency must be between 1 and 64".into());
        }
        if self.bootstrap_queue > 1024 {
            return Err("bootstrap-queue must be at most 1024".into());
        }
        if self.bootstrap_reuse_secs >= u64::from(self.device_certificate_days) * 86_400 {
            return Err("bootstrap-reuse-secs must be shorter than device-certificate-days".into());
        }
        let pattern = &self.provisioning_path;
        if !pattern.starts_with('/') || pattern.matches("{mac}").count() != 1 {
            return Err("provisioning-path must start with / and hold {mac} once".into());
        }
        for a in &self.digest_algorithms {
            if dls_digest::Algorithm::from_name(a).is_none() {
                return Err(format!("unknown digest algorithm {a:?} (MD5, SHA-256, SHA-512-256)"));
            }
        }
        if self.digest_algorithms.is_empty() {
            return Err("digest-algorithm must name at least one algorithm".into());
        }
        if self.ca_cert_file.is_some() != self.ca_key_file.is_some() {
            return Err("ca-cert-file and ca-key-file go together".into());
        }
        if let Some(u) = &self.files_base_url
            && (!u.starts_with("https://") || u.len() > 1024 || u.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err("files-base-url must be an https:// URL".into());
        }
        if self.upload_timeout_secs == 0 || self.upload_timeout_secs > 7 * 24 * 3600 {
            return Err("upload-timeout-secs must be 1 to 604800 (a week)".into());
        }
        if self.contact_me_concurrency == 0 || self.contact_me_timeout_secs == 0 || self.dcmp_polls_per_second == 0 {
            return Err(
                "contact-me-concurrency, contact-me-timeout-secs and dcmp-polls-per-second must be positive".into()
            );
        }
        if self.max_header_bytes < 8192 {
            return Err("max-header-bytes must be at least 8192".into());
        }
        if self.audit_retention_days > MAX_RETENTION_DAYS || self.job_retention_days > MAX_RETENTION_DAYS {
            return Err(format!(
                "audit-retention-days and job-retention-days must be at most {MAX_RETENTION_DAYS} (0 keeps forever)"
            ));
        }
        check_node_name(&self.node_name)?;
        if !(60..=86_400).contains(&self.console_idle_timeout_secs)
            || self.console_session_max_secs < self.console_idle_timeout_secs
            || self.console_session_max_secs > 7 * 86_400
        {
            return Err("console-idle-timeout-secs must be 60 to 86400, and console-session-max-secs at least that \
                        and at most 604800 (7 days)"
                .into());
        }
        self.check_mobility()
    }

    /// The mobility settings, and `max-body-bytes` against them: a phone sends a user data
    /// item whole in one message, Base64 (4 bytes for every 3), with its envelope.
    fn check_mobility(&self) -> Result<(), String> {
        if self.mobility_logoff_grace_secs == 0 || self.mobility_logoff_grace_secs > 86_400 {
            return Err("mobility-logoff-grace-secs must be 1 to 86400 (a day)".into());
        }
        if self.mobility_max_item_bytes == 0 || self.mobility_max_item_bytes > self.mobility_max_user_bytes {
            return Err("mobility-max-item-bytes must be positive and at most mobility-max-user-bytes".into());
        }
        if self.mobility_max_user_bytes > 10 << 20 {
            return Err("mobility-max-user-bytes must be at most 10485760 (10 MiB)".into());
        }
        let needed = self.mobility_reply_bytes();
        if (self.max_body_bytes as u64) < needed {
            return Err(format!(
                "max-body-bytes ({}) must admit a phone's reply carrying a mobility-max-item-bytes item ({} bytes \
                 decoded): at least {needed}",
                self.max_body_bytes, self.mobility_max_item_bytes
            ));
        }
        Ok(())
    }

    /// The body of a phone's reply carrying the largest user data item: its Base64 and 16
    /// KiB for the envelope and the phone's other items.
    #[must_use]
    pub fn mobility_reply_bytes(&self) -> u64 {
        self.mobility_max_item_bytes.div_ceil(3).saturating_mul(4).saturating_add(16 << 10)
    }
}

/// A TOML error on one line, naming the setting: toml's own rendering quotes the line under
/// a caret over several lines, and serde's unknown-field message lists every setting.
fn toml_error(text: &str, mut e: toml::de::Error) -> String {
    let line = e.span().map(|span| text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1);
    let message = match e.message().split_once(", expected one of") {
        Some((unknown, _)) if unknown.starts_with("unknown field") => unknown.replacen("field", "setting", 1),
        _ => e.message().to_owned(),
    };
    // Without its input, the error renders as the message and then the key it belongs to.
    e.set_input(None);
    let rendered = e.to_string();
    let key = rendered.lines().find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')));
    let message = message.trim().replace(['\n', '\r'], " ");
    match (line, key) {
        (Some(line), Some(key)) => format!("line {line}: {key}: {message}"),
        (Some(line), None) => format!("line {line}: {message}"),
        (None, Some(key)) => format!("{key}: {message}"),
        (None, None) => message,
    }
}

/// The longest node name.
const MAX_NODE_NAME: usize = 64;

/// Whether `c` may stand in a node name.
fn node_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NODE_NAME || !name.chars().all(node_name_char) {
        return Err(format!("node-name must be 1 to {MAX_NODE_NAME} of A-Z a-z 0-9 . _ - (got {name:?})"));
    }
    Ok(())
}

/// The host name as the kernel has it (what `gethostname` returns; else `/etc/hostname`),
/// made a valid node name; `dls` when there is none.
fn default_node_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty());
    node_name_of(host.as_deref().unwrap_or("dls"))
}

/// `host` as a node name: at most 64 characters, any character a node name cannot hold
/// replaced by `-`.
fn node_name_of(host: &str) -> String {
    let name: String = host.chars().take(MAX_NODE_NAME).map(|c| if node_name_char(c) { c } else { '-' }).collect();
    if name.is_empty() { "dls".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::{Config, StoreKind, StoreLocation, node_name_of};

    #[test]
    fn a_store_is_sqlite_or_a_postgres_url_and_its_password_is_never_shown() {
        assert_eq!(Config::default().store.kind(), Ok(StoreKind::Sqlite));
        let pg = StoreLocation::new("postgres://dls:hunter2@db.example.com:5432/dls");
        assert_eq!(pg.kind(), Ok(StoreKind::Postgres));
        assert_eq!(pg.redacted(), "postgres://dls:*****@db.example.com:5432/dls");
        assert!(!format!("{pg:?}").contains("hunter2"));
        let config = Config { store: pg.clone(), ..Config::default() };
        assert!(!format!("{config:?}").contains("hunter2"), "Config's Debug shows no password");
        assert_eq!(pg.as_str(), "postgres://dls:hunter2@db.example.com:5432/dls", "opened as given");
        let tls =
            StoreLocation::new("postgres://dls@db/dls?sslmode=verify-full&password=hunter2&sslrootcert=/etc/ca.pem");
        assert_eq!(tls.kind(), Ok(StoreKind::Postgres));
        let shown = tls.redacted();
        assert!(!shown.contains("hunter2") && shown.contains("password=*****"), "{shown}");
        assert!(shown.contains("sslmode=verify-full") && shown.contains("sslrootcert=%2Fetc%2Fca.pem"), "{shown}");
        assert_eq!(StoreLocation::new("postgresql://db/dls").kind(), Ok(StoreKind::Postgres));
        for bad in ["", "sqlite:", "mysql://db/dls", "postgres:///dls", "not a url"] {
            let e = StoreLocation::new(bad).kind().expect_err(bad);
            assert!(!e.contains('\n'), "{e}");
        }
        let e = Config::from_toml("store = \"mysql://u:pw@db/dls\"").and_then(|c| c.validate()).expect_err("refused");
        assert!(e.contains("mysql") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn the_node_name_defaults_to_the_host_name_and_is_checked() {
        let config = Config::default();
        assert_eq!(config.validate(), Ok(()), "the default node name is valid: {:?}", config.node_name);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("a host name");
        assert_eq!(config.node_name, node_name_of(host.trim()));
        assert_eq!(node_name_of("dls-a.example.net"), "dls-a.example.net");
        assert_eq!(node_name_of("bad name\n\u{1b}[31m\"x"), "bad-name---31m-x");
        assert_eq!(node_name_of(&"a".repeat(300)).len(), 64);
        assert_eq!(node_name_of(""), "dls");
        let config = Config::from_toml("node-name = \"dls-b_2\"\n").expect("parses");
        assert_eq!((config.node_name.as_str(), config.validate()), ("dls-b_2", Ok(())));
        for bad in ["", "a b", "x\ny", "a\"b", "é"] {
            let config = Config { node_name: bad.to_owned(), ..Config::default() };
            assert!(config.validate().expect_err(bad).contains("node-name"), "{bad:?}");
        }
        let long = Config { node_name: "n".repeat(65), ..Config::default() };
        assert!(long.validate().is_err());
    }

    #[test]
    fn file_errors_are_one_line_naming_the_setting() {
        for (text, want) in [
            ("max-connections = 10\nmax-conections = 5\n", "line 2: unknown setting `max-conections`"),
            ("idle-timeout-secs = 60\nmax-connections = \"many\"\n", "line 2: max-connections: invalid type"),
            ("admin-tls = \"yes\"\n", "line 1: admin-tls: invalid type"),
            ("server-name = [\"a\",\n  3]\n", "line 2: server-name: invalid type"),
            ("unknown-devices = \"maybe\"\n", "line 1: unknown-devices: unknown variant `maybe`"),
            ("wpi-listen = \"nowhere\"\n", "line 1: wpi-listen: invalid socket address"),
            ("max-connections = \n", "line 1: "),
        ] {
            let e = Config::from_toml(text).expect_err(text);
            assert!(e.starts_with(want) && !e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn list_settings_take_the_singular_and_the_plural_name() {
        let c = Config::from_toml("server-name = [\"a\", \"b\"]\ndigest-algorithm = [\"SHA-256\"]\n").expect("parses");
        assert_eq!((c.server_names, c.digest_algorithms), (vec!["a".into(), "b".into()], vec!["SHA-256".into()]));
        let c = Config::from_toml("server-names = [\"a\"]\ndigest-algorithms = [\"MD5\"]\n").expect("parses");
        assert_eq!((c.server_names, c.digest_algorithms), (vec!["a".into()], vec!["MD5".into()]));
    }

    #[test]
    fn retention_defaults_parse_and_bounds() {
        let config = Config::default();
        assert_eq!((config.audit_retention_days, config.job_retention_days), (400, 90));
        assert_eq!(config.validate(), Ok(()));
        let config = Config::from_toml("audit-retention-days = 0\njob-retention-days = 36500\n").expect("parses");
        assert_eq!((config.audit_retention_days, config.job_retention_days), (0, 36_500));
        assert_eq!(config.validate(), Ok(()));
        let config = Config::from_toml("job-retention-days = 36501\n").expect("parses");
        let e = config.validate().expect_err("too long");
        assert!(e.contains("job-retention-days"), "{e}");
        assert!(Config::from_toml("audit-retention-days = -1\n").is_err());
    }

    #[test]
    fn mobility_settings_and_the_body_limit_go_together() {
        let config = Config::default();
        assert_eq!(
            (config.mobility_logoff_grace_secs, config.mobility_max_item_bytes, config.mobility_max_user_bytes),
            (300, 1 << 20, 8 << 20)
        );
        assert_eq!(config.validate(), Ok(()), "the defaults go together");
        assert!(config.mobility_reply_bytes() <= config.max_body_bytes as u64);
        let small_body = Config::from_toml(
            "max-body-bytes = 1048576
",
        )
        .expect("parses");
        let e = small_body.validate().expect_err("a 1 MiB item does not fit a 1 MiB body");
        assert!(e.contains("max-body-bytes") && e.contains("mobility-max-item-bytes") && !e.contains('\n'), "{e}");
        let fits = Config::from_toml("max-body-bytes = 1048576\nmobility-max-item-bytes = 524288\n").expect("parses");
        assert_eq!(fits.validate(), Ok(()));
        for bad in [
            "mobility-logoff-grace-secs = 0\n",
            "mobility-logoff-grace-secs = 86401\n",
            "mobility-max-item-bytes = 0\n",
            "mobility-max-user-bytes = 1000\n",
            "mobility-max-user-bytes = 10485761\nmobility-max-item-bytes = 1024\n",
        ] {
            let e = Config::from_toml(bad).expect("parses").validate().expect_err(bad);
            assert!(e.contains("mobility-"), "{bad}: {e}");
        }
    }

    #[test]
    fn bootstrap_settings_parse_and_bounds() {
        let config = Config::default();
        assert_eq!(
            (config.bootstrap_reuse_secs, config.bootstrap_reissue_secs, config.bootstrap_concurrency),
            (604_800, 600, 1)
        );
        let config =
            Config::from_toml("bootstrap-reuse-secs = 3600\nbootstrap-reissue-secs = 60\nbootstrap-concurrency = 2\n")
                .expect("parses");
        assert_eq!(
            (config.bootstrap_reuse_secs, config.bootstrap_reissue_secs, config.bootstrap_concurrency),
            (3600, 60, 2)
        );
        assert_eq!(config.validate(), Ok(()));
        for bad in ["bootstrap-concurrency = 0\n", "bootstrap-concurrency = 65\n", "bootstrap-queue = 1025\n"] {
            let e = Config::from_toml(bad).expect("parses").validate().expect_err("out of bounds");
            let setting = bad.split(' ').next().unwrap_or_default();
            assert!(e.contains(setting), "{e}");
        }
        let e = Config::from_toml("device-certificate-days = 1\nbootstrap-reuse-secs = 86400\n")
            .expect("parses")
            .validate()
            .expect_err("outlives the certificate");
        assert!(e.contains("bootstrap-reuse-secs"), "{e}");
    }
}
