//! Secrets at rest: digest passwords (device secrets, fallback credentials) are sealed with
//! AES-256-GCM under a key kept in the data directory (`secrets.key`, mode 0600), and bound
//! to what they belong to (associated data), so a sealed value moved to another device or
//! username does not open. HTTP Digest needs the password itself (or H(A1)), so a slow
//! one-way hash is not an option: encryption keeps a stolen database useless without the key.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use dls_message::MacAddr;
use dls_secure_mode::Pin;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Seals and opens secrets.
pub(crate) struct SecretBox {
    key: Zeroizing<[u8; 32]>,
}

impl SecretBox {
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let key: [u8; 32] = key.try_into().ok()?;
        Some(Self { key: Zeroizing::new(key) })
    }

    fn aad(context: &str) -> Vec<u8> {
        let mut aad = b"dls-secret-v1\0".to_vec();
        aad.extend_from_slice(context.as_bytes());
        aad
    }

    /// `version || nonce || ciphertext || tag`, with a fresh random nonce.
    pub(crate) fn seal(&self, context: &str, secret: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let mut body = Zeroizing::new(secret.to_vec());
        let tag = Aes256Gcm::new((&*self.key).into())
            .encrypt_inout_detached(&Nonce::from(nonce), &Self::aad(context), body.as_mut_slice().into())
            .ok()?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + secret.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        Some(out)
    }

    /// A key for another use, derived from this one: `HMAC-SHA256(key, label)`. Every node
    /// with the same `secrets.key` derives the same; a label names one use, so no two uses
    /// share a key, and none is the sealing key.
    pub(crate) fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        // HMAC takes a key of any length: this constructor cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&*self.key).unwrap_or_else(|_| unreachable!());
        Mac::update(&mut mac, label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The secret, if `sealed` was sealed by this key for `context` and is intact.
    pub(crate) fn open(&self, context: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let tag = Tag::try_from(tag).ok()?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        Aes256Gcm::new((&*self.key).into())
            .decrypt_inout_detached(&Nonce::from(nonce), &Self::aad(context), buf.as_mut_slice().into(), &tag)
            .ok()?;
        Some(buf)
    }
}

impl SecretBox {
    fn pin_context(mac: MacAddr) -> String {
        format!("pin:{mac}")
    }

    /// A device's PIN (its digits) sealed for the store.
    pub(crate) fn seal_pin(&self, mac: MacAddr, digits: &str) -> Option<Vec<u8>> {
        self.seal(&Self::pin_context(mac), digits.as_bytes())
    }

    /// A device's PIN opened again, for the moment of sealing its bundle or checking its
    /// TAN; wiped when dropped.
    pub(crate) fn open_pin(&self, mac: MacAddr, sealed: &[u8]) -> Option<Pin> {
        let digits = self.open(&Self::pin_context(mac), sealed)?;
        Pin::parse(std::str::from_utf8(&digits).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let b = SecretBox::new(&[9; 32]).expect("key");
        let sealed = b.seal("device:001A2B3C4D5E", b"s3cret").expect("sealed");
        assert_eq!(b.open("device:001A2B3C4D5E", &sealed).as_deref().map(Vec::as_slice), Some(&b"s3cret"[..]));
        assert!(b.open("device:001A2B3C4D5F", &sealed).is_none(), "bound to its owner");
        assert!(
            SecretBox::new(&[8; 32]).expect("key").open("device:001A2B3C4D5E", &sealed).is_none(),
            "bound to the key"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(b.open("device:001A2B3C4D5E", &tampered).is_none());
        assert!(b.open("device:001A2B3C4D5E", &sealed[..10]).is_none());
        assert_ne!(sealed, b.seal("device:001A2B3C4D5E", b"s3cret").expect("sealed"), "fresh nonces");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn derived_keys_depend_on_the_key_and_the_label() {
        let (a, b) = (SecretBox::new(&[9; 32]).expect("key"), SecretBox::new(&[8; 32]).expect("key"));
        let k = a.derive("dls digest nonce v1");
        assert_eq!(*k, *SecretBox::new(&[9; 32]).expect("key").derive("dls digest nonce v1"), "the same on every node");
        assert_ne!(*k, *b.derive("dls digest nonce v1"));
        assert_ne!(*k, *a.derive("another use"));
        assert_ne!(*k, [9; 32]);
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let mut jefe = [0u8; 32];
        jefe[..4].copy_from_slice(b"Jefe");
        let ours = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("any length");
        let padded = <Hmac<Sha256> as KeyInit>::new_from_slice(&jefe).expect("any length");
        let (ours, padded) = (
            ours.chain_update(b"what do ya want for nothing?").finalize().into_bytes(),
            padded.chain_update(b"what do ya want for nothing?").finalize().into_bytes(),
        );
        assert_eq!(ours, padded, "HMAC pads a short key with zeros");
        assert_eq!(
            hex::encode(*SecretBox::new(&jefe).expect("key").derive("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pins_are_bound_to_their_device() {
        let b = SecretBox::new(&[9; 32]).expect("key");
        let (one, two) = (MacAddr::parse("001A2B3C4D5E").expect("mac"), MacAddr::parse("001A2B3C4D5F").expect("mac"));
        let sealed = b.seal_pin(one, "918273645546907").expect("sealed");
        assert!(!sealed.windows(3).any(|w| w == b"907") && !sealed.windows(12).any(|w| w == b"918273645546"));
        assert_eq!(b.open_pin(one, &sealed).map(|p| p.tan().to_owned()).as_deref(), Some("907"));
        assert!(b.open_pin(two, &sealed).is_none());
        assert!(b.open_pin(one, &b.seal_pin(one, "12ab").expect("sealed")).is_none(), "not a PIN");
    }
}
