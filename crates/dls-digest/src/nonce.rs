//! Stateless nonces and `opaque`: a timestamp and a sequence number, authenticated with
//! HMAC-SHA256 under the server secret.
//!
//! Layout before base64url (no padding, 43 characters):
//! `issued (u64 BE, unix seconds) || seq (u64 BE) || HMAC-SHA256(key, "nonce" || issued || seq)[..16]`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::replay::NonceId;

const TAG_LEN: usize = 16;
const RAW_LEN: usize = 16 + TAG_LEN;
const ENCODED_LEN: usize = 43;

/// The keyed HMAC state, derived once from the server secret (which is not kept).
#[derive(Clone)]
pub(crate) struct NonceKey {
    mac: Hmac<Sha256>,
}

impl NonceKey {
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        // HMAC takes keys of any length; the fallible constructor cannot fail here, and
        // `new` with a block-sized key is the same function (HMAC pads keys with zeros).
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(secret);
        let mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        zeroize::Zeroize::zeroize(&mut block);
        Self { mac }
    }

    /// `HMAC(key, label || data)`.
    pub(crate) fn derive(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        Mac::update(&mut m, &(label.len() as u64).to_be_bytes());
        Mac::update(&mut m, label);
        Mac::update(&mut m, data);
        m.finalize().into_bytes().into()
    }

    pub(crate) fn issue(&self, id: NonceId) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&id.issued.to_be_bytes());
        raw[8..16].copy_from_slice(&id.seq.to_be_bytes());
        let tag = self.derive(b"nonce", &raw[..16]);
        raw[16..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce's identity when this key issued it; `None` for anything else.
    pub(crate) fn open(&self, nonce: &str) -> Option<NonceId> {
        if nonce.len() != ENCODED_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        let n = URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw).ok()?;
        if n != RAW_LEN {
            return None;
        }
        let tag = self.derive(b"nonce", &raw[..16]);
        if !bool::from(tag[..TAG_LEN].ct_eq(&raw[16..])) {
            return None;
        }
        let issued = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let seq = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        Some(NonceId { issued, seq })
    }
}

/// 16 bytes of `derive(label, data)` in base64url: for `opaque`.
pub(crate) fn short_b64(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(&bytes[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_open_and_tamper() {
        let k = NonceKey::new(&[7; 32]);
        let id = NonceId { issued: 1_700_000_000, seq: 42 };
        let n = k.issue(id);
        assert_eq!(n.len(), ENCODED_LEN);
        assert_eq!(k.open(&n), Some(id));
        assert_eq!(NonceKey::new(&[8; 32]).open(&n), None);
        // Flip each character: never accepted as another valid nonce.
        for i in 0..n.len() {
            let mut t = n.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).expect("test value");
            assert!(k.open(&t).is_none_or(|got| got == id), "position {i}");
        }
        assert_eq!(k.open(""), None);
        assert_eq!(k.open(&format!("{}a", "é".repeat(21))), None);
        assert_ne!(k.issue(NonceId { issued: 1_700_000_000, seq: 43 }), n);
    }

    #[test]
    fn key_equals_hmac_over_short_key() {
        let secret = [0x5a; 32];
        let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).expect("test value");
        Mac::update(&mut reference, b"xyz");
        let mut ours = NonceKey::new(&secret).mac;
        Mac::update(&mut ours, b"xyz");
        assert_eq!(reference.finalize().into_bytes(), ours.finalize().into_bytes());
    }
}
