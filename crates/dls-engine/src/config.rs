//! The engine's policies.

/// What the engine does with a device it has never seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownDevicePolicy {
    /// Register it and provision it with what applies to everyone (the default).
    #[default]
    Register,
    /// Answer with a bare `CleanUp` and record nothing.
    Reject,
}

/// The engine's policies. The defaults are what a fresh install does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// A device whose full inventory is older than this (seconds) is read again
    /// (`ReadAllItems`) at its next start-up. Default: one day.
    pub inventory_max_age_secs: u64,
    /// Unknown devices: register (default) or reject.
    pub unknown_devices: UnknownDevicePolicy,
    /// The most items collected from one fragmented phone reply. Default 20,000.
    pub max_collected_items: usize,
    /// The most bytes of item names and values collected from one fragmented reply.
    /// Default 4 MiB.
    pub max_collected_bytes: usize,
    /// The security mode given to devices seen for the first time. Default `default`.
    /// (`pin` registers them waiting for a PIN that an administrator issues.)
    pub new_device_mode: crate::security::SecurityMode,
    /// Wrong TANs allowed before the device's certificate is revoked and a new PIN is
    /// required. Default 3.
    pub max_tan_failures: u32,
    /// A PIN expires this long after it was issued (seconds). Default 7 days.
    pub pin_lifetime_secs: u64,
    /// The key that makes the fingerprints of written values ([`crate::diff::fingerprint`])
    /// useless to anyone who reads the store without it. 32 random bytes, kept by the shell.
    pub fingerprint_key: [u8; 32],
    /// Bootstrap material issued to a device is sent again, unchanged (same certificate,
    /// nothing revoked), to its start-ups within this many seconds of issue, until it
    /// bootstraps. Default 7 days (the default PIN lifetime).
    pub bootstrap_reuse_secs: u64,
    /// New bootstrap material is issued to one device at most once in this many seconds
    /// (when the kept material cannot be reused). Default 600.
    pub bootstrap_reissue_secs: u64,
    /// Where phones download deployment files: `file-https-base-url` is this followed by
    /// the job's token and `/` (e.g. `https://dls.example.com:18443/files/`). Without it,
    /// deployment jobs fail.
    pub files_base_url: Option<String>,
    /// A job sent this many times without an answer (the connection broke) fails. Default 3.
    pub max_job_attempts: u32,
    /// The most jobs run in one interaction; the rest wait for the callback that
    /// `send-solicited` asks for. Default 64.
    pub max_jobs_per_interaction: usize,
    /// Mobility: the user data limits and the forced logoff's grace.
    pub mobility: crate::mobility::MobilityLimits,
}

impl EngineConfig {
    /// The defaults, with the given fingerprint key.
    #[must_use]
    pub fn new(fingerprint_key: [u8; 32]) -> Self {
        Self {
            inventory_max_age_secs: 24 * 3600,
            unknown_devices: UnknownDevicePolicy::Register,
            max_collected_items: 20_000,
            max_collected_bytes: 4 << 20,
            new_device_mode: crate::security::SecurityMode::Default,
            max_tan_failures: 3,
            pin_lifetime_secs: 7 * 24 * 3600,
            bootstrap_reuse_secs: 7 * 24 * 3600,
            bootstrap_reissue_secs: 600,
            fingerprint_key,
            files_base_url: None,
            max_job_attempts: 3,
            max_jobs_per_interaction: 64,
            mobility: crate::mobility::MobilityLimits::default(),
        }
    }
}
