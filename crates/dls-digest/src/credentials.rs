//! What the verifier asks the credential store: [`CredentialLookup`] and [`Credential`].

use std::fmt;

use zeroize::Zeroizing;

use crate::algorithm::{Algorithm, HashFn};

/// A user's secret, as the store has it. `Debug` never shows it.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credential {
    /// The plaintext password.
    Password(Zeroizing<String>),
    /// Precomputed `H(username ":" realm ":" password)` in hex, one per hash function the store
    /// keeps. Only usable when the client sends the username exactly as it was hashed (for
    /// MACs: in the same case), and only for the hash functions listed.
    Ha1(Vec<(HashFn, Zeroizing<String>)>),
}

impl Credential {
    /// A plaintext password.
    pub fn password(password: impl Into<String>) -> Self {
        Self::Password(Zeroizing::new(password.into()))
    }

    /// H(A1) for `hash`, lowercase hex; `None` when a stored H(A1) is missing or not
    /// `hash.hex_len()` hex digits.
    pub(crate) fn ha1(&self, hash: HashFn, username: &str, realm: &str) -> Option<Zeroizing<String>> {
        match self {
            Self::Password(p) => Some(hash.hex(&[username.as_bytes(), realm.as_bytes(), p.as_bytes()])),
            Self::Ha1(list) => {
                let (_, hex) = list.iter().find(|(h, _)| *h == hash)?;
                (hex.len() == hash.hex_len() && hex.bytes().all(|c| c.is_ascii_hexdigit()))
                    .then(|| Zeroizing::new(hex.to_ascii_lowercase()))
            }
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::Ha1(list) => f.debug_tuple("Ha1").field(&list.iter().map(|(h, _)| h).collect::<Vec<_>>()).finish(),
        }
    }
}

/// The credential store could not answer. The server is at fault, not the client: the
/// verifier answers [`Outcome::Unavailable`](crate::Outcome::Unavailable) (`503`) and counts no
/// failure, so a store hiccup never throttles a good phone. The message is for the server's
/// log: it must name what failed, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The store could not be read (a database error, I/O): likely to pass.
    #[error("credential store unavailable (server fault): {0}")]
    Unavailable(String),
    /// The store has a credential for the user but it cannot be used (it does not unseal, or
    /// is not text): an operator must look.
    #[error("stored credential unusable (server fault): {0}")]
    Unusable(String),
}

/// The credential store, as the verifier sees it.
///
/// Calls happen outside the verifier's lock; each request makes at most one call.
pub trait CredentialLookup {
    /// The credential of `username`, exactly as the client sent it (decoded from `username*`
    /// when that was used); `Ok(None)` for an unknown user. A store of phones should match MAC
    /// usernames ignoring ASCII case: `001a2b3c4d5e` and `001A2B3C4D5E` are the same device.
    /// The digest itself is computed over the username as sent. `Err` only for the store's own
    /// failures, never for anything the client sent.
    fn credential(&self, username: &str) -> Result<Option<Credential>, LookupError>;

    /// For `userhash=true`: the user whose `H(username ":" realm)` with `hash` is `userhash`
    /// (lowercase hex; see [`userhash`]), and their credential. The default finds nobody, so
    /// hashed usernames fail like unknown users; a store that supports them keeps an index of
    /// the hashes (one lookup, no scan).
    fn credential_by_userhash(
        &self,
        userhash: &str,
        hash: HashFn,
    ) -> Result<Option<(String, Credential)>, LookupError> {
        let _ = (userhash, hash);
        Ok(None)
    }
}

/// Any `Fn(&str) -> Result<Option<Credential>, LookupError>` is a lookup (no `userhash`
/// support).
impl<F: Fn(&str) -> Result<Option<Credential>, LookupError>> CredentialLookup for F {
    fn credential(&self, username: &str) -> Result<Option<Credential>, LookupError> {
        self(username)
    }
}

/// `H(username ":" realm)` in lowercase hex: the `username` a client sends with
/// `userhash=true` under `algorithm`, for indexing a store.
pub fn userhash(algorithm: Algorithm, username: &str, realm: &str) -> String {
    algorithm.hash().hex(&[username.as_bytes(), realm.as_bytes()]).to_string()
}

/// Whether an authenticated `username` is the device `mac`: both exactly 12 hex digits, equal
/// ignoring ASCII case. A username that is not a MAC (shared fallback credentials) is never the
/// device; what such a user may fetch is the caller's policy.
pub fn is_same_device(username: &str, mac: &str) -> bool {
    let is_mac = |s: &str| s.len() == 12 && s.bytes().all(|c| c.is_ascii_hexdigit());
    is_mac(username) && is_mac(mac) && username.eq_ignore_ascii_case(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Credential::password("Circle of Life");
        let h = Credential::Ha1(vec![(HashFn::Md5, Zeroizing::new("939e7578ed9e3c518a452acee763bce9".into()))]);
        let d = format!("{p:?} {h:?}");
        assert!(!d.contains("Circle") && !d.contains("939e"), "{d}");
    }

    #[test]
    fn ha1_forms_agree() {
        let realm = "http-auth@example.org";
        let from_password =
            Credential::password("Circle of Life").ha1(HashFn::Md5, "Mufasa", realm).expect("test value");
        let stored = Credential::Ha1(vec![(HashFn::Md5, Zeroizing::new(from_password.to_ascii_uppercase()))]);
        assert_eq!(*stored.ha1(HashFn::Md5, "ignored", realm).expect("test value"), *from_password);
        assert!(stored.ha1(HashFn::Sha256, "Mufasa", realm).is_none());
        let short = Credential::Ha1(vec![(HashFn::Md5, Zeroizing::new("abc".into()))]);
        assert!(short.ha1(HashFn::Md5, "Mufasa", realm).is_none());
    }

    #[test]
    fn same_device() {
        assert!(is_same_device("001a2b3c4d5e", "001A2B3C4D5E"));
        assert!(!is_same_device("001a2b3c4d5e", "001a2b3c4d5f"));
        assert!(!is_same_device("fallback", "fallback"));
        assert!(!is_same_device("001a2b3c4d5", "001a2b3c4d5"));
    }
}
