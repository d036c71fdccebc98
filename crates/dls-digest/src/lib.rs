//! Server-side HTTP Digest access authentication (RFC 7616), sans-IO and independent of any
//! HTTP library: the caller passes method, request target, `Authorization` value, source
//! address and time, and gets an [`Outcome`] to turn into a response.
//!
//! * [`Verifier`]: [`Verifier::verify`] decides a [`Request`]; [`Config`] sets the realm, the
//!   challenges offered (default one `MD5`), nonce lifetime, RFC 2069 and `userhash` switches,
//!   and limits.
//! * [`Outcome`]: accept / challenge (`401`) / bad request (`400`, [`BadRequest`]) /
//!   throttled (`429`) / store unavailable (`503`), each with [`Outcome::status`];
//!   [`ChallengeReason`] for logs.
//! * [`CredentialLookup`] and [`Credential`]: the store, asked for a plaintext password or
//!   precomputed H(A1) by username, or by [`userhash`], answering [`LookupError`] for its own
//!   failures; [`is_same_device`] for "a phone fetches only its own file".
//! * [`Authorization`]: the header parser ([`ParseError`]), and [`decode_ext_value`] for
//!   `username*`.
//! * [`Algorithm`] and [`HashFn`]: MD5, SHA-256 and SHA-512/256, with `-sess` variants.
//! * [`ReplayCache`]: bounded `nc` replay protection; [`Throttle`]: failure counting per
//!   (username, source) pair, with per-username and per-source ceilings that only delay
//!   ([`ThrottleConfig`]); [`ThrottleEvent`] ([`Attempt`], [`ThrottleSubject`]): one counted
//!   attempt, which [`Throttle::apply`] counts at its own time, in any order.
//! * [`SharedState`]: for several processes (the nodes of a cluster) with one secret — the
//!   counts used and the throttle's events, kept where all of them reach
//!   ([`Verifier::with_shared_state`]): a replay is refused by every verifier, and a guesser
//!   who spreads over them is counted as by one.
//!
//! Nonces are stateless (a timestamp and HMAC-SHA256 under the server secret), digests are
//! compared in constant time, unknown users cost what known ones cost and get the same `401`.
//! The crate does no I/O and no logging; secrets never appear in `Debug` output or errors.
//! See `docs/digest.md` for the design.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use dls_digest::{Authorization, Config, Credential, HashFn, Outcome, Request, Verifier};
//!
//! let verifier = Verifier::new(Config::new("dls"), &[42; 32])?;
//! // The store: MAC usernames match ignoring case.
//! let lookup = |user: &str| {
//!     Ok(user.eq_ignore_ascii_case("001a2b3c4d5e").then(|| Credential::password("123456789012")))
//! };
//! let uri = "/provisioning/001a2b3c4d5e.xml";
//! let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let first = Request { method: "GET", target: uri, authorization: None, source, now: 1_700_000_000 };
//!
//! // No credentials: 401 with one challenge.
//! let outcome = verifier.verify(&first, &lookup);
//! let Outcome::Challenge { www_authenticate, .. } = outcome else { unreachable!() };
//! assert_eq!(www_authenticate.len(), 1);
//!
//! // The phone answers the challenge (computed here by hand).
//! let challenge = Authorization::parse(www_authenticate[0].as_bytes())?;
//! let nonce = challenge.param("nonce").unwrap_or_default();
//! let opaque = challenge.param("opaque").unwrap_or_default();
//! let md5 = |parts: &[&str]| HashFn::Md5.hex(&parts.iter().map(|p| p.as_bytes()).collect::<Vec<_>>());
//! let ha1 = md5(&["001A2B3C4D5E", "dls", "123456789012"]);
//! let ha2 = md5(&["GET", uri]);
//! let response = md5(&[&ha1, nonce, "00000001", "0a4f113b", "auth", &ha2]);
//! let header = format!(
//!     "Digest username=\"001A2B3C4D5E\", realm=\"dls\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, \
//!      nc=00000001, cnonce=\"0a4f113b\", response=\"{}\", opaque=\"{opaque}\"",
//!     response.as_str()
//! );
//! let second = Request { authorization: Some(header.as_bytes()), now: first.now + 2, ..first };
//! let outcome = verifier.verify(&second, &lookup);
//! assert!(matches!(&outcome, Outcome::Accept { username, .. } if username == "001A2B3C4D5E"));
//! assert_eq!(outcome.status(), 200);
//!
//! // The same header again is a replay: a fresh challenge.
//! assert_eq!(verifier.verify(&second, &lookup).status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod algorithm;
mod credentials;
mod header;
mod nonce;
mod outcome;
mod replay;
mod shared;
mod throttle;
mod verifier;

pub use algorithm::{Algorithm, HashFn};
pub use credentials::{Credential, CredentialLookup, LookupError, is_same_device, userhash};
pub use header::{Authorization, ParseError, decode_ext_value};
pub use outcome::{BadRequest, ChallengeReason, Outcome};
pub use replay::{NonceId, Replay, ReplayCache};
pub use shared::SharedState;
pub use throttle::{Attempt, Throttle, ThrottleConfig, ThrottleEvent, ThrottleSubject};
pub use verifier::{Config, ConfigError, Request, Verifier};
