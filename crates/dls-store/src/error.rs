//! [`StoreError`]: why a storage call failed, the same for every backend.

/// Why a storage call failed, by who is at fault.
///
/// No variant names a database crate: a backend maps its own errors into these (its
/// driver's error goes into [`StoreError::Database`] as a boxed source), so that the
/// crates above compile no backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The caller asked for something that does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The caller asked to create something that exists already (HTTP 409).
    #[error("{what} exists already")]
    Conflict {
        /// What exists.
        what: String,
    },
    /// The caller's request is invalid (HTTP 400), e.g. a reserved or empty name.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database file could not be created or opened: our own I/O (HTTP 500).
    #[error("{0}")]
    Io(String),
    /// The database failed: our fault (HTTP 500). The source is the backend's own error
    /// (its driver's), kept for the log.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The database holds data this version cannot read, or is from a newer version.
    #[error("store is corrupt or from a newer version: {0}")]
    Corrupt(String),
    /// Another change of the same record won a race (two phones logging one mobility user
    /// on at once, on one node or two): nothing was committed, and the same request may
    /// succeed if tried again. The WPI path answers it with a `CleanUp` that says so, the
    /// admin API with `409`.
    #[error("{what} was changed meanwhile; try again")]
    Contended {
        /// What changed.
        what: String,
    },
    /// The database cannot be reached now (a database server down, restarting, or out of
    /// connections): nobody's fault, try again later (HTTP 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A [`StoreError::Database`] of a backend's error.
    pub fn database(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Database(Box::new(source))
    }

    /// A [`StoreError::NotFound`] of `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::NotFound { what: what.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreError;

    #[test]
    fn a_database_error_keeps_its_source() {
        let io = std::io::Error::other("disk on fire");
        let e = StoreError::database(io);
        assert_eq!(e.to_string(), "database error: disk on fire");
        let source = std::error::Error::source(&e).expect("has a source");
        assert_eq!(source.to_string(), "disk on fire");
        assert_eq!(StoreError::not_found("device 1").to_string(), "device 1 not found");
        let down = StoreError::Unavailable("connection refused".into());
        assert_eq!(down.to_string(), "database unavailable: connection refused");
    }
}
