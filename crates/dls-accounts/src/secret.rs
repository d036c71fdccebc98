//! API tokens and console session ids: 256 bits from the operating system's CSPRNG, in hex;
//! what the store keeps of them (a SHA-256, so that a copy of the database holds nothing a
//! client could present); and a session's CSRF token.
//!
//! Looking a token's hash up in the store is not a secret comparison: the hash of a 256-bit
//! random value tells nothing of another, so an index lookup is safe where comparing the
//! tokens themselves would not be.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every API token starts with (so that a leaked one is recognised by secret scanners
/// and never mistaken for the admin token, which is bare hex).
pub const TOKEN_PREFIX: &str = "dls_";

/// The length of a session id and of a token's random part: 32 bytes in hex.
const RANDOM_HEX: usize = 64;

/// The operating system gave no randomness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no randomness from the operating system: {0}")]
pub struct NoRandomness(String);

fn random_hex() -> Result<Zeroizing<String>, NoRandomness> {
    let mut bytes = Zeroizing::new([0_u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_ref())))
}

/// A new API token: `dls_` and 64 hex digits. Shown once, to whoever created it; the store
/// keeps [`token_hash`] of it.
///
/// # Errors
/// [`NoRandomness`].
pub fn new_token() -> Result<Zeroizing<String>, NoRandomness> {
    let random = random_hex()?;
    Ok(Zeroizing::new(format!("{TOKEN_PREFIX}{}", random.as_str())))
}

/// Whether `text` has the form of an API token (and so is worth a store lookup).
#[must_use]
pub fn is_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX)
        .is_some_and(|r| r.len() == RANDOM_HEX && r.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

fn hashed(label: &[u8], secret: &str) -> String {
    hex::encode(Sha256::new().chain_update(label).chain_update(secret.as_bytes()).finalize())
}

/// What the store keeps of an API token: the SHA-256 of a label and the token, hex.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hashed(b"dls api token v1\0", token)
}

/// A new console session id: 64 hex digits, the session cookie's value.
///
/// # Errors
/// [`NoRandomness`].
pub fn new_session_id() -> Result<Zeroizing<String>, NoRandomness> {
    random_hex()
}

/// Whether `text` has the form of a session id.
#[must_use]
pub fn is_session_id(text: &str) -> bool {
    text.len() == RANDOM_HEX && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What the store keeps of a session id (its key there): a SHA-256, hex.
#[must_use]
pub fn session_key(session_id: &str) -> String {
    hashed(b"dls console session v1\0", session_id)
}

/// The CSRF token of a session: HMAC-SHA256 keyed by (a hash of) the session id, in hex. A page of the
/// session carries it; every state-changing request must send it back ([`csrf_matches`]).
/// Another site can make the browser send the cookie, but cannot read the page, and the
/// token cannot be computed without the cookie's value, which scripts never see
/// (`HttpOnly`). Nothing needs storing: it is derived anew from the cookie.
#[must_use]
pub fn csrf_token(session_id: &str) -> String {
    hex::encode(csrf_mac(session_id))
}

fn csrf_mac(session_id: &str) -> [u8; 32] {
    // The key: the session id's SHA-256, zero-padded to the block, as HMAC pads a short key.
    let mut key = [0_u8; 64];
    key[..32]
        .copy_from_slice(&Sha256::new().chain_update(b"dls console csrf key v1\0").chain_update(session_id).finalize());
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key.into());
    mac.update(b"dls console csrf v1");
    mac.finalize().into_bytes().into()
}

/// Whether `given` is the session's CSRF token, compared in constant time.
#[must_use]
pub fn csrf_matches(session_id: &str, given: &str) -> bool {
    let Ok(given) = hex::decode(given.as_bytes()) else { return false };
    given.len() == 32 && bool::from(given.as_slice().ct_eq(&csrf_mac(session_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_recognised() {
        let a = new_token().expect("random");
        let b = new_token().expect("random");
        assert_ne!(*a, *b);
        assert!(is_token(&a) && is_token(&b));
        assert_eq!(a.len(), 4 + 64);
        for bad in ["", "dls_", "dls_abc", &a.to_uppercase(), &format!("{}0", a.as_str()), &a[4..]] {
            assert!(!is_token(bad), "{bad}");
        }
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn session_ids_keys_and_csrf_tokens() {
        let id = new_session_id().expect("random");
        assert!(is_session_id(&id));
        assert!(!is_session_id(&id[1..]) && !is_session_id("zz"));
        let key = session_key(&id);
        assert_ne!(key, *id, "the store never holds the id itself");
        assert_ne!(key, token_hash(&id), "keys of sessions and tokens are apart");
        let csrf = csrf_token(&id);
        assert!(csrf_matches(&id, &csrf));
        assert!(!csrf_matches(&id, &csrf[..63]));
        assert!(!csrf_matches(&id, ""));
        assert!(!csrf_matches(&id, "not hex at all"));
        let other = new_session_id().expect("random");
        assert!(!csrf_matches(&other, &csrf), "another session's token does not do");
        assert_ne!(csrf, *id);
    }
}
