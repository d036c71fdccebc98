//! The service's configuration: every field settable in a TOML file and, in the CLI, by
//! flag. The defaults are what `dls serve` does with no configuration at all.

use std::net::SocketAddr;
use std::path::PathBuf;

use dls_engine::config::UnknownDevicePolicy;
use serde::{Deserialize, Serialize};

/// The configuration of `dls serve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Where the database, keys and certificates live. Default `./dls-data`.
    pub data_dir: PathBuf,
    /// The default-mode WPI listener (TLS). Default `0.0.0.0:18443`.
    pub wpi_listen: SocketAddr,
    /// The admin API listener (plain HTTP, bearer token). Default `127.0.0.1:18081`.
    pub admin_listen: SocketAddr,
    /// Extra DNS names and IP addresses phones use to reach the service (server
    /// certificate SANs).
    pub server_names: Vec<String>,
    /// Keep-alive idle timeout, and the time a client has to send a request's headers.
    /// Phones need at least 30 s. Default 60.
    pub idle_timeout_secs: u64,
    /// The time a client has to send a request body. Default 30.
    pub body_timeout_secs: u64,
    /// The time a client has to complete the TLS handshake. Default 10.
    pub tls_handshake_timeout_secs: u64,
    /// The largest request body; larger gets `413`. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The largest request head (line and headers); larger gets `431`. Default 16 KiB.
    pub max_header_bytes: usize,
    /// The most concurrent connections per listener; more are closed at once. Default 4096.
    pub max_connections: usize,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("dls-data"),
            wpi_listen: SocketAddr::from(([0, 0, 0, 0], 18443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 18081)),
            server_names: Vec::new(),
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            max_connections: 4096,
            session_timeout_secs: 300,
            max_sessions: 100_000,
            inventory_max_age_secs: 24 * 3600,
            unknown_devices: UnknownDevicePolicy::Register,
            shutdown_grace_secs: 30,
        }
    }
}

impl Config {
    /// Parses a TOML configuration file's text; missing fields take their defaults.
    ///
    /// # Errors
    /// The TOML error, as one line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().replace('\n', " "))
    }

    /// Checks the values that can be wrong.
    ///
    /// # Errors
    /// What is wrong, as one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_secs < 30 {
            return Err("idle-timeout-secs must be at least 30 (phones keep connections that long)".into());
        }
        if self.max_connections == 0 || self.max_sessions == 0 {
            return Err("max-connections and max-sessions must be positive".into());
        }
        if self.max_header_bytes < 8192 {
            return Err("max-header-bytes must be at least 8192".into());
        }
        Ok(())
    }
}
