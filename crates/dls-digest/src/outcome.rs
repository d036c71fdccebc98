//! What the verifier decides, organised by who is at fault, each with its HTTP status.

use std::fmt;

use crate::algorithm::Algorithm;
use crate::credentials::LookupError;
use crate::header::ParseError;

/// The verifier's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Authenticated: serve the request (after the caller's own authorisation, such as
    /// [`is_same_device`](crate::is_same_device)).
    Accept {
        /// The username: as sent, decoded from `username*`, or resolved from `userhash`.
        username: String,
        /// The algorithm the client used.
        algorithm: Algorithm,
    },
    /// Not authenticated (no credentials, wrong credentials, unknown user, replay, stale nonce):
    /// answer `401` with one `WWW-Authenticate` header per value.
    Challenge {
        /// One `WWW-Authenticate` value per offered algorithm, all with the same new nonce.
        www_authenticate: Vec<String>,
        /// `stale=true` was set: the digest was right but its nonce is no longer usable.
        stale: bool,
        /// Why, for the caller's log. Never send it to the client: it tells unknown users from
        /// wrong passwords, which the response itself never does.
        reason: ChallengeReason,
    },
    /// The client sent something malformed or refused by policy: answer `400`.
    BadRequest {
        /// Why, for the caller's log (contains no secret).
        reason: BadRequest,
    },
    /// Too many recent failures for this username from this source (or, under a ceiling, too
    /// soon after this pair's last failure): answer `429` with `Retry-After: retry_after_secs`.
    Throttled {
        /// Seconds until an attempt is evaluated again (at least 1).
        retry_after_secs: u64,
    },
    /// The credential store (or the [`SharedState`](crate::SharedState)) failed: the server
    /// is at fault. Answer `503` with `Retry-After: retry_after_secs` and log `error` (it
    /// holds no secret). Not counted as a failure.
    Unavailable {
        /// What failed, for the server's log.
        error: LookupError,
        /// [`Config::store_retry_after_secs`](crate::Config::store_retry_after_secs).
        retry_after_secs: u64,
    },
}

impl Outcome {
    /// The HTTP status to answer with (`200` for [`Outcome::Accept`]: the status of a response
    /// that serves the resource).
    pub fn status(&self) -> u16 {
        match self {
            Self::Accept { .. } => 200,
            Self::Challenge { .. } => 401,
            Self::BadRequest { reason } => reason.status(),
            Self::Throttled { .. } => 429,
            Self::Unavailable { .. } => 503,
        }
    }
}

/// Why a [`Outcome::Challenge`] was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeReason {
    /// No `Authorization` header.
    NoCredentials,
    /// An `Authorization` header with another scheme (such as `Basic`).
    OtherScheme,
    /// A realm other than ours (for example remembered from an earlier configuration).
    RealmMismatch,
    /// The lookup does not know the username (counted as a failure).
    UnknownUser,
    /// Wrong digest (counted as a failure).
    WrongResponse,
    /// The user is known but the store has no usable H(A1) for the client's hash function
    /// (counted as a failure).
    NoCredentialForAlgorithm,
    /// A correct digest whose (nonce, nc) was already accepted (not counted as a failure: it
    /// tests no password, and counting it would let an eavesdropper lock a phone out).
    Replayed,
    /// A correct digest for a nonce that expired or is not ours (sent with `stale=true`).
    StaleNonce,
}

impl ChallengeReason {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCredentials => "no credentials",
            Self::OtherScheme => "other authentication scheme",
            Self::RealmMismatch => "realm mismatch",
            Self::UnknownUser => "unknown user",
            Self::WrongResponse => "wrong response",
            Self::NoCredentialForAlgorithm => "no credential for this algorithm",
            Self::Replayed => "replayed nonce count",
            Self::StaleNonce => "stale nonce",
        }
    }
}

impl fmt::Display for ChallengeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request is a `400 Bad Request`. The client is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRequest {
    /// The `Authorization` value is longer than the limit.
    #[error("Authorization header longer than {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The `Authorization` value does not parse.
    #[error("malformed Authorization header: {0}")]
    Malformed(#[from] ParseError),
    /// A required parameter is missing.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// Both `username` and `username*`, or `username*` with `userhash=true`.
    #[error("ambiguous username (username with username*, or username* with userhash)")]
    AmbiguousUsername,
    /// `username*` is not a UTF-8 RFC 8187 value.
    #[error("username* is not a valid UTF-8 ext-value")]
    BadUsernameEncoding,
    /// `userhash` is neither `true` nor `false`.
    #[error("userhash is neither true nor false")]
    BadUserhash,
    /// An `algorithm` that is unknown or not accepted by this configuration.
    #[error("algorithm not supported")]
    UnsupportedAlgorithm,
    /// A `qop` other than `auth` (`auth-int` is not supported).
    #[error("qop not supported (only auth)")]
    UnsupportedQop,
    /// No `qop`: an RFC 2069 client, and RFC 2069 is not allowed.
    #[error("no qop (RFC 2069 client) and RFC 2069 is not allowed")]
    Rfc2069NotAllowed,
    /// `nc` is not 1 to 8 hex digits, or is zero.
    #[error("nc is not 1 to 8 hex digits above zero")]
    BadNonceCount,
    /// `response` is not a hex digest of the algorithm's length.
    #[error("response is not a hex digest of the expected length")]
    BadResponse,
    /// `uri` is not the request target.
    #[error("uri does not match the request target")]
    UriMismatch,
}

impl BadRequest {
    /// The HTTP status: `400`.
    pub fn status(&self) -> u16 {
        400
    }
}
