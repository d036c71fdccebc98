//! The verifier: [`Config`], [`Request`], and [`Verifier::verify`].

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::algorithm::{Algorithm, HashFn};
use crate::credentials::{CredentialLookup, LookupError};
use crate::header::{Authorization, ParseError, decode_ext_value};
use crate::nonce::{NonceKey, short_b64};
use crate::outcome::{BadRequest, ChallengeReason, Outcome};
use crate::replay::{NonceId, Replay, ReplayCache};
use crate::shared::SharedState;
use crate::throttle::{Attempt, Throttle, ThrottleConfig, ThrottleEvent};

/// Nonces issued up to this many seconds "in the future" (the caller's clock stepped back)
/// are still accepted. With [`SharedState`], also how far the clocks of the verifiers that
/// share it may differ: what they record is kept this much longer than it matters.
const FUTURE_TOLERANCE_SECS: u64 = 60;

/// Verifier settings. Start from [`Config::new`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The realm (1 to 256 characters, no control characters).
    pub realm: String,
    /// The challenges offered, one `WWW-Authenticate` value each, in order. Default: `[MD5]`
    /// (devices in the field may handle only that); `[SHA-256, MD5]` offers both. A client may
    /// answer with any algorithm whose hash function is offered, `-sess` variants included.
    /// `SHA-512-256` is accepted only when offered.
    pub challenges: Vec<Algorithm>,
    /// How long a nonce is usable, seconds (default 300).
    pub nonce_lifetime_secs: u64,
    /// Accept RFC 2069 responses (no `qop`, so no `cnonce`/`nc`; each nonce is then good for
    /// one request). Default false: only for a legacy device family that needs it.
    pub allow_rfc2069: bool,
    /// Send `userhash=true` in challenges (clients may hash the username). Default false.
    /// Hashed usernames from clients are accepted either way when the lookup supports them.
    pub offer_userhash: bool,
    /// Longest `Authorization` value accepted, bytes (default 4096).
    pub max_header_len: usize,
    /// Nonces held by the `nc` replay cache (default 16384; unused with
    /// [`Verifier::with_shared_state`], where the shared state remembers the counts used).
    pub replay_capacity: usize,
    /// Throttling of failures.
    pub throttle: ThrottleConfig,
    /// `Retry-After` of a `503` when the credential store fails, seconds (default 10).
    pub store_retry_after_secs: u64,
}

impl Config {
    /// Defaults for `realm`.
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
            challenges: vec![Algorithm::Md5],
            nonce_lifetime_secs: 300,
            allow_rfc2069: false,
            offer_userhash: false,
            max_header_len: 4096,
            replay_capacity: 16384,
            throttle: ThrottleConfig::default(),
            store_retry_after_secs: 10,
        }
    }
}

/// A configuration the verifier cannot work with (the server is at fault, not a client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The realm is empty, longer than 256 bytes, or has control characters.
    #[error("realm must be 1 to 256 bytes without control characters")]
    Realm,
    /// No challenge algorithm.
    #[error("at least one challenge algorithm is needed")]
    NoChallenge,
    /// A nonce lifetime of zero.
    #[error("nonce lifetime must be at least 1 second")]
    NonceLifetime,
    /// The operating system gave no random bytes for the secret.
    #[error("no random secret: {0}")]
    Random(String),
}

/// One request, as the verifier needs it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The method, as in the request line (`GET`).
    pub method: &'a str,
    /// The request target, as in the request line (`/provisioning/001a2b3c4d5e.xml`).
    pub target: &'a str,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a [u8]>,
    /// The client's address, for throttling.
    pub source: IpAddr,
    /// The time, unix seconds.
    pub now: u64,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("authorization_len", &self.authorization.map(<[u8]>::len))
            .field("source", &self.source)
            .field("now", &self.now)
            .finish()
    }
}

struct State {
    replay: ReplayCache,
    throttle: Throttle,
}

/// Verifies Digest `Authorization` headers. `Sync`: share one per realm; the replay cache and
/// throttle sit behind a short internal lock, never held while the lookup (or the shared
/// state) runs.
pub struct Verifier {
    config: Config,
    accepted: Vec<HashFn>,
    key: NonceKey,
    opaque: String,
    dummy_password: Zeroizing<String>,
    /// The next nonce's sequence number: from a random start, so that verifiers sharing the
    /// secret do not issue the same nonce in the same second.
    seq: AtomicU64,
    state: Mutex<State>,
    /// Where the replayed counts and the throttle's events are shared with other verifiers.
    shared: Option<Box<dyn SharedState>>,
    /// When this verifier last applied the others' events (unix seconds).
    caught_up: AtomicU64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// The digest parameters after validation.
struct DigestResponse<'a> {
    username: Username<'a>,
    realm: &'a str,
    nonce: &'a str,
    uri: &'a str,
    response: String,
    algorithm: Algorithm,
    cnonce: Option<&'a str>,
    /// `(qop, nc as sent, nc)`.
    qop: Option<(&'a str, &'a str, u32)>,
    opaque: Option<&'a str>,
}

enum Username<'a> {
    Plain(&'a str),
    Decoded(String),
    Hashed(&'a str),
}

impl Verifier {
    /// A verifier keyed with `secret` (32 random bytes). Nonces stay valid across verifiers
    /// with the same secret; the replay cache does not, so a secret kept across restarts lets
    /// a header captured shortly before a restart be replayed until its nonce expires — unless
    /// the verifiers keep the counts used in a [`SharedState`] ([`Self::with_shared_state`]).
    pub fn new(config: Config, secret: &[u8; 32]) -> Result<Self, ConfigError> {
        let realm = &config.realm;
        if realm.is_empty() || realm.len() > 256 || realm.chars().any(char::is_control) {
            return Err(ConfigError::Realm);
        }
        if config.challenges.is_empty() {
            return Err(ConfigError::NoChallenge);
        }
        if config.nonce_lifetime_secs == 0 {
            return Err(ConfigError::NonceLifetime);
        }
        let key = NonceKey::new(secret);
        let opaque = short_b64(&key.derive(b"opaque", realm.as_bytes()));
        let dummy_password = Zeroizing::new(hex::encode(key.derive(b"dummy password", realm.as_bytes())));
        let mut accepted: Vec<HashFn> = config.challenges.iter().map(|a| a.hash()).collect();
        accepted.dedup();
        let throttle_key = Zeroizing::new(key.derive(b"throttle usernames", realm.as_bytes()));
        let state = State {
            replay: ReplayCache::new(config.replay_capacity, config.nonce_lifetime_secs),
            throttle: Throttle::with_key(config.throttle.clone(), &throttle_key),
        };
        // Below 2^63: the counter does not wrap for centuries of challenges.
        let mut start = [0u8; 8];
        getrandom::fill(&mut start).map_err(|e| ConfigError::Random(e.to_string()))?;
        let seq = AtomicU64::new(u64::from_be_bytes(start) >> 1);
        let state = Mutex::new(state);
        Ok(Self {
            config,
            accepted,
            key,
            opaque,
            dummy_password,
            seq,
            state,
            shared: None,
            caught_up: AtomicU64::new(0),
        })
    }

    /// This verifier, sharing the counts used and the throttle's events with the other
    /// verifiers (other processes) that use `shared` and the same secret: a nonce one of
    /// them issued is accepted by any other, a `(nonce, nc)` once by all of them together,
    /// and failures count as if one verifier saw them all. The replay cache is then not used.
    #[must_use]
    pub fn with_shared_state(mut self, shared: Box<dyn SharedState>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// A verifier with a fresh random secret (`getrandom`).
    pub fn with_random_secret(config: Config) -> Result<Self, ConfigError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut_slice()).map_err(|e| ConfigError::Random(e.to_string()))?;
        Self::new(config, &secret)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Nonces held by the `nc` replay cache (at most `replay_capacity`).
    pub fn replay_cache_len(&self) -> usize {
        self.lock().replay.len()
    }

    /// Keys held by the throttle.
    pub fn throttle_len(&self) -> usize {
        self.lock().throttle.len()
    }

    /// Decides one request. Sans-IO: no clock, no logging; at most one lookup call, none when
    /// the request is throttled before it; with a [`SharedState`], at most two calls to it
    /// (none for a request without credentials).
    pub fn verify<L: CredentialLookup + ?Sized>(&self, req: &Request<'_>, lookup: &L) -> Outcome {
        let now = req.now;
        let Some(raw) = req.authorization else {
            return self.challenge(now, false, ChallengeReason::NoCredentials);
        };
        if raw.len() > self.config.max_header_len {
            return bad(BadRequest::TooLarge { limit: self.config.max_header_len });
        }
        let auth = match Authorization::parse(raw) {
            Ok(a) => a,
            Err(ParseError::NotDigest) => return self.challenge(now, false, ChallengeReason::OtherScheme),
            Err(e) => return bad(e.into()),
        };
        let r = match self.validate(&auth) {
            Ok(r) => r,
            Err(e) => return bad(e),
        };
        if r.uri != req.target {
            return bad(BadRequest::UriMismatch);
        }
        if r.realm != self.config.realm {
            return self.challenge(now, false, ChallengeReason::RealmMismatch);
        }
        // A username known before the lookup is checked before it, so a waiting pair costs
        // the store nothing; a hashed one once the lookup has resolved it.
        let sent = match &r.username {
            Username::Plain(u) => Some(*u),
            Username::Decoded(u) => Some(u.as_str()),
            Username::Hashed(_) => None,
        };
        let throttled = |verifier: &Self| {
            let u = sent?;
            let retry_after_secs = verifier.lock().throttle.check(req.source, u, now)?;
            Some(Outcome::Throttled { retry_after_secs })
        };
        // Held back by what this verifier counted already, and it caught up with the others
        // this second: no call to the shared state, so a flood of refused guesses costs the
        // store one read a second at most. (What the others counted since could only lift
        // the wait with a success.)
        if let Some(outcome) = throttled(self)
            && (self.shared.is_none() || self.caught_up.load(Ordering::Relaxed) >= now)
        {
            return outcome;
        }
        // What the other verifiers counted since, before this verifier decides.
        if self.shared.is_some() {
            if let Err(error) = self.catch_up(now) {
                return self.unavailable(error);
            }
            if let Some(outcome) = throttled(self) {
                return outcome;
            }
        }

        let hash = r.algorithm.hash();
        let found = match &r.username {
            Username::Plain(u) => lookup.credential(u).map(|c| ((*u).to_owned(), c)),
            Username::Decoded(u) => lookup.credential(u).map(|c| (u.clone(), c)),
            Username::Hashed(h) => {
                lookup.credential_by_userhash(&h.to_ascii_lowercase(), hash).map(|found| match found {
                    Some((u, c)) => (u, Some(c)),
                    None => ((*h).to_owned(), None),
                })
            }
        };
        // The store's own failure: not the client's, so not counted.
        let (username, credential) = match found {
            Ok(found) => found,
            Err(error) => return self.unavailable(error),
        };
        if sent.is_none()
            && let Some(retry_after_secs) = self.lock().throttle.check(req.source, &username, now)
        {
            return Outcome::Throttled { retry_after_secs };
        }

        // Unknown users, and users without a usable H(A1), cost what a password user costs.
        let known = credential.is_some();
        let stored = credential.as_ref().and_then(|c| c.ha1(hash, &username, &self.config.realm));
        let usable = stored.is_some();
        let ha1 = match stored {
            Some(h) => h,
            None => hash.hex(&[username.as_bytes(), self.config.realm.as_bytes(), self.dummy_password.as_bytes()]),
        };
        let expected = expected_response(&r, req.method, &ha1);
        let correct = bool::from(expected.as_bytes().ct_eq(r.response.as_bytes())) && usable;
        let nonce = self.open_nonce(&r, now);

        let subject = self.lock().throttle.subject(req.source, &username);
        if !correct {
            let event = ThrottleEvent { at: now, attempt: Attempt::Failed, subject };
            self.lock().throttle.apply(&event, now);
            if let Some(shared) = &self.shared
                && let Err(error) = shared.record_failure(&event, self.forget_before(now))
            {
                // Counted on this verifier only: a 503, as for any failure of the store,
                // rather than a 401 the others did not count.
                return self.unavailable(error);
            }
            let reason = match (known, usable) {
                (false, _) => ChallengeReason::UnknownUser,
                (true, false) => ChallengeReason::NoCredentialForAlgorithm,
                (true, true) => ChallengeReason::WrongResponse,
            };
            return self.challenge(now, false, reason);
        }
        let Some(nonce) = nonce else {
            return self.challenge(now, true, ChallengeReason::StaleNonce);
        };
        // RFC 2069 has no nc: its nonce is good for one request.
        let nc = r.qop.map_or(1, |(_, _, nc)| nc);
        if let Some(shared) = &self.shared {
            let event = ThrottleEvent { at: now, attempt: Attempt::Succeeded, subject };
            // Remembered as long as any verifier whose clock is behind ours may accept it.
            let expires_at =
                nonce.issued.saturating_add(self.config.nonce_lifetime_secs).saturating_add(FUTURE_TOLERANCE_SECS);
            return match shared.record_use(nonce, nc, expires_at, &event, self.forget_before(now)) {
                Ok(true) => {
                    self.lock().throttle.apply(&event, now);
                    Outcome::Accept { username, algorithm: r.algorithm }
                }
                Ok(false) => self.challenge(now, false, ChallengeReason::Replayed),
                Err(error) => self.unavailable(error),
            };
        }
        let verdict = {
            let mut state = self.lock();
            let verdict = state.replay.check(nonce, nc, now);
            if verdict.is_ok() {
                state.throttle.record_success(req.source, &username, now);
            }
            verdict
        };
        match verdict {
            Ok(()) => Outcome::Accept { username, algorithm: r.algorithm },
            Err(Replay::Seen) => self.challenge(now, false, ChallengeReason::Replayed),
            Err(_) => self.challenge(now, true, ChallengeReason::StaleNonce),
        }
    }

    /// Applies the events the other verifiers recorded since the last call (none without a
    /// shared state).
    fn catch_up(&self, now: u64) -> Result<(), LookupError> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let horizon = self.config.throttle.horizon_secs();
        let events = shared.events(now.saturating_sub(horizon))?;
        if !events.is_empty() {
            let mut state = self.lock();
            for event in &events {
                state.throttle.apply(event, now);
            }
        }
        self.caught_up.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Before when the shared throttle events no longer matter to any verifier: the
    /// throttle's horizon, and the clocks' tolerance, before `now`.
    fn forget_before(&self, now: u64) -> u64 {
        now.saturating_sub(self.config.throttle.horizon_secs()).saturating_sub(FUTURE_TOLERANCE_SECS)
    }

    /// `503`: the store (credentials or shared state) failed; nothing counted against the
    /// client.
    fn unavailable(&self, error: LookupError) -> Outcome {
        Outcome::Unavailable { error, retry_after_secs: self.config.store_retry_after_secs.max(1) }
    }

    /// The nonce's identity when it is ours, unexpired, and came with our `opaque`.
    fn open_nonce(&self, r: &DigestResponse<'_>, now: u64) -> Option<NonceId> {
        let id = self.key.open(r.nonce);
        let opaque_ok = r.opaque.is_some_and(|o| bool::from(o.as_bytes().ct_eq(self.opaque.as_bytes())));
        let id = id.filter(|_| opaque_ok)?;
        let fresh = id.issued.saturating_add(self.config.nonce_lifetime_secs) >= now
            && id.issued <= now.saturating_add(FUTURE_TOLERANCE_SECS);
        fresh.then_some(id)
    }

    fn challenge(&self, now: u64, stale: bool, reason: ChallengeReason) -> Outcome {
        let nonce = self.key.issue(NonceId { issued: now, seq: self.seq.fetch_add(1, Ordering::Relaxed) });
        let realm = quote(&self.config.realm);
        let userhash = if self.config.offer_userhash { ", userhash=true" } else { "" };
        let stale_param = if stale { ", stale=true" } else { "" };
        let www_authenticate = self
            .config
            .challenges
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", qop=\"auth\", algorithm={a}, nonce=\"{nonce}\", \
                     opaque=\"{}\"{userhash}{stale_param}",
                    self.opaque
                )
            })
            .collect();
        Outcome::Challenge { www_authenticate, stale, reason }
    }

    fn validate<'a>(&self, auth: &'a Authorization) -> Result<DigestResponse<'a>, BadRequest> {
        let need = |name: &'static str| auth.param(name).ok_or(BadRequest::MissingParameter(name));
        let userhash = match auth.param("userhash") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(BadRequest::BadUserhash),
        };
        let username = match (auth.param("username"), auth.param("username*")) {
            (Some(_), Some(_)) => return Err(BadRequest::AmbiguousUsername),
            (Some(u), None) if userhash => Username::Hashed(u),
            (Some(u), None) => Username::Plain(u),
            (None, Some(_)) if userhash => return Err(BadRequest::AmbiguousUsername),
            (None, Some(ext)) => Username::Decoded(decode_ext_value(ext).ok_or(BadRequest::BadUsernameEncoding)?),
            (None, None) => return Err(BadRequest::MissingParameter("username")),
        };
        let algorithm = match auth.param("algorithm") {
            None => Algorithm::Md5,
            Some(name) => Algorithm::from_name(name).ok_or(BadRequest::UnsupportedAlgorithm)?,
        };
        if !self.accepted.contains(&algorithm.hash()) {
            return Err(BadRequest::UnsupportedAlgorithm);
        }
        let cnonce = auth.param("cnonce");
        let qop = match auth.param("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_raw = need("nc")?;
                let valid = !nc_raw.is_empty() && nc_raw.len() <= 8 && nc_raw.bytes().all(|c| c.is_ascii_hexdigit());
                let nc = u32::from_str_radix(nc_raw, 16)
                    .ok()
                    .filter(|&n| valid && n > 0)
                    .ok_or(BadRequest::BadNonceCount)?;
                if cnonce.is_none() {
                    return Err(BadRequest::MissingParameter("cnonce"));
                }
                Some((q, nc_raw, nc))
            }
            Some(_) => return Err(BadRequest::UnsupportedQop),
            None if !self.config.allow_rfc2069 => return Err(BadRequest::Rfc2069NotAllowed),
            None if algorithm.is_session() && cnonce.is_none() => return Err(BadRequest::MissingParameter("cnonce")),
            None => None,
        };
        let response = need("response")?;
        if response.len() != algorithm.hash().hex_len() || !response.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(BadRequest::BadResponse);
        }
        Ok(DigestResponse {
            username,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: response.to_ascii_lowercase(),
            algorithm,
            cnonce,
            qop,
            opaque: auth.param("opaque"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn bad(reason: BadRequest) -> Outcome {
    Outcome::BadRequest { reason }
}

/// RFC 7616 section 3.4.1 (and RFC 2069 without `qop`).
fn expected_response(r: &DigestResponse<'_>, method: &str, ha1: &str) -> Zeroizing<String> {
    let hash = r.algorithm.hash();
    let cnonce = r.cnonce.unwrap_or("").as_bytes();
    let ha1 = if r.algorithm.is_session() {
        hash.hex(&[ha1.as_bytes(), r.nonce.as_bytes(), cnonce])
    } else {
        Zeroizing::new(ha1.to_owned())
    };
    let ha2 = hash.hex(&[method.as_bytes(), r.uri.as_bytes()]);
    match r.qop {
        Some((qop, nc, _)) => {
            hash.hex(&[ha1.as_bytes(), r.nonce.as_bytes(), nc.as_bytes(), cnonce, qop.as_bytes(), ha2.as_bytes()])
        }
        None => hash.hex(&[ha1.as_bytes(), r.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// The content of a quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors() {
        let secret = [1; 32];
        assert_eq!(Verifier::new(Config::new(""), &secret).err(), Some(ConfigError::Realm));
        assert_eq!(Verifier::new(Config::new("a\nb"), &secret).err(), Some(ConfigError::Realm));
        assert_eq!(Verifier::new(Config::new("x".repeat(257)), &secret).err(), Some(ConfigError::Realm));
        let mut c = Config::new("r");
        c.challenges.clear();
        assert_eq!(Verifier::new(c, &secret).err(), Some(ConfigError::NoChallenge));
        let mut c = Config::new("r");
        c.nonce_lifetime_secs = 0;
        assert_eq!(Verifier::new(c, &secret).err(), Some(ConfigError::NonceLifetime));
        assert!(Verifier::with_random_secret(Config::new("r")).is_ok());
    }

    #[test]
    fn realm_is_quoted_in_challenges() {
        let v = Verifier::new(Config::new(r#"a"b\c"#), &[1; 32]).expect("test value");
        let Outcome::Challenge { www_authenticate, .. } = v.challenge(0, false, ChallengeReason::NoCredentials) else {
            panic!()
        };
        let parsed = Authorization::parse(www_authenticate[0].as_bytes()).expect("test value");
        assert_eq!(parsed.param("realm"), Some(r#"a"b\c"#));
    }

    #[test]
    fn debug_shows_no_secret() {
        let v = Verifier::new(Config::new("r"), &[0xab; 32]).expect("test value");
        let d = format!("{v:?}");
        assert!(!d.contains(v.dummy_password.as_str()) && !d.contains("171, 171"), "{d}");
    }
}
