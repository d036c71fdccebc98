//! Errors of the service, by who is at fault.

/// Why the service could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The operator's configuration is wrong (exit code 2 in the CLI).
    #[error("configuration: {0}")]
    Config(String),
    /// Our own I/O failed: binding a port, the data directory.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificates or keys could not be made or read.
    #[error("PKI: {0}")]
    Pki(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] dls_store::StoreError),
}

impl ServerError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }
}

impl From<rcgen::Error> for ServerError {
    fn from(e: rcgen::Error) -> Self {
        Self::Pki(e.to_string())
    }
}

impl From<rustls::Error> for ServerError {
    fn from(e: rustls::Error) -> Self {
        Self::Pki(e.to_string())
    }
}
