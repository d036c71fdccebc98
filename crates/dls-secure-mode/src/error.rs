//! Why sealing or opening failed, sorted into the kinds a caller acts on.

use crate::envelope::{MAX_ITERATIONS, MAX_RAW_LEN, MIN_OPEN_ITERATIONS, MIN_RAW_LEN};

/// Why [`crate::seal`] or [`crate::open`] failed. [`Error::kind`] sorts the variants into
/// what a caller does about them; messages are one line and never contain key material,
/// PIN digits or plaintext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not Base64 (standard alphabet, `=` padding; ASCII white space is ignored).
    #[error("secure-mode-data is not valid Base64: {0}")]
    Base64(String),
    /// The decoded size is outside 49 bytes (header and tag) to 1 MiB.
    #[error("secure-mode-data of {size} bytes is outside the allowed {MIN_RAW_LEN} to {MAX_RAW_LEN} bytes")]
    Size {
        /// The decoded size (for sealing: the size the result would have).
        size: usize,
    },
    /// The first byte is not a version this crate knows (only 1).
    #[error("secure-mode-data version {0} is not supported (want 1)")]
    Version(u8),
    /// The iteration count in the header is outside what an opener accepts.
    #[error(
        "secure-mode-data asks for {0} PBKDF2 iterations; an opener accepts {MIN_OPEN_ITERATIONS} to {MAX_ITERATIONS}"
    )]
    Iterations(u32),
    /// The plaintext is not a valid `ItemList` document: after opening, the data
    /// authenticated (so the PIN and MAC were right) but its sealer put something else
    /// inside; before sealing, the caller's document is not one. Kind [`ErrorKind::Malformed`]:
    /// it must not count as a PIN attempt. Only the position is shown, never the content.
    #[error("the plaintext is not a valid ItemList document (line {line}, column {column})")]
    Plaintext {
        /// The line (from 1) where the XML decoder stopped.
        line: usize,
        /// The column (from 1, in characters) where the XML decoder stopped.
        column: usize,
    },
    /// The items cannot be written as XML (e.g. an empty name, or U+0000 in a value).
    #[error("the items cannot be sealed: {0}")]
    Encode(dls_message::EncodeError),
    /// Wrong PIN, wrong MAC address, or altered data: these cannot be told apart, by design.
    /// On a phone, each one counts as one PIN attempt.
    #[error("authentication failed: wrong PIN, wrong MAC address, or altered data")]
    Authentication,
    /// An iteration count for sealing outside [`crate::MIN_SEAL_ITERATIONS`] (or 1,000 for the
    /// test-only parameters) to [`MAX_ITERATIONS`].
    #[error("{given} PBKDF2 iterations is outside the range for sealing, {min} to {MAX_ITERATIONS}")]
    SealIterations {
        /// The count asked for.
        given: u32,
        /// The smallest count allowed by the constructor used.
        min: u32,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

/// What a caller does about an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is not well-formed `secure-mode-data` (or, for sealing, not a valid item
    /// list). Report it; it is not a PIN attempt. The CLI exits with 3.
    Malformed,
    /// Wrong PIN, wrong MAC or tampering. Counts as one PIN attempt. The CLI exits with 4.
    Authentication,
    /// A parameter the caller chose is out of range (an iteration count). The CLI exits with 2.
    InvalidParameter,
    /// The environment failed (no randomness).
    Environment,
}

impl Error {
    /// What a caller does about this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Base64(_)
            | Self::Size { .. }
            | Self::Version(_)
            | Self::Iterations(_)
            | Self::Plaintext { .. }
            | Self::Encode(_) => ErrorKind::Malformed,
            Self::Authentication => ErrorKind::Authentication,
            Self::SealIterations { .. } => ErrorKind::InvalidParameter,
            Self::Random(_) => ErrorKind::Environment,
        }
    }

    /// Whether this is the authentication failure (wrong PIN, wrong MAC, tampering).
    #[must_use]
    pub fn is_authentication(&self) -> bool {
        self.kind() == ErrorKind::Authentication
    }

    /// Whether the input was malformed (not a PIN attempt).
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        self.kind() == ErrorKind::Malformed
    }

    pub(crate) fn plaintext(e: &dls_message::DecodeError) -> Self {
        Self::Plaintext { line: e.line(), column: e.column() }
    }
}
