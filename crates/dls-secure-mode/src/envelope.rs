//! The version-1 envelope: header, key derivation, associated data, and opening.
//!
//! ```text
//! raw    = header || ciphertext || tag
//! header = 0x01 || iterations (u32, big-endian) || salt (16) || nonce (12)     33 bytes
//! key    = PBKDF2-HMAC-SHA256(PIN key part, salt, iterations, 32 bytes)
//! aad    = header || normalised MAC (12 upper-case hex digits)                45 bytes
//! text   = Base64(raw), standard alphabet with padding
//! ```

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dls_message::{Item, Limits, MacAddr};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::pin::Pin;

/// The only envelope version, the first byte.
pub const VERSION: u8 = 1;
/// The length of the random salt.
pub const SALT_LEN: usize = 16;
/// The length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// The length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// The length of the derived AES-256 key.
pub const KEY_LEN: usize = 32;
/// The length of the header: version, iterations, salt, nonce.
pub const HEADER_LEN: usize = 1 + 4 + SALT_LEN + NONCE_LEN;
/// The smallest decoded envelope: a header and a tag around an empty plaintext.
pub const MIN_RAW_LEN: usize = HEADER_LEN + TAG_LEN;
/// The largest decoded envelope an opener accepts (and a sealer produces): 1 MiB.
pub const MAX_RAW_LEN: usize = 1 << 20;
/// The fewest PBKDF2 iterations an opener accepts.
pub const MIN_OPEN_ITERATIONS: u32 = 1_000;
/// The fewest PBKDF2 iterations a production sealer uses.
pub const MIN_SEAL_ITERATIONS: u32 = 100_000;
/// The PBKDF2 iterations a sealer uses by default.
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// The most PBKDF2 iterations an opener accepts, so that a forged blob cannot make a phone spin.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// The length of the associated data: the header and the normalised MAC.
const AAD_LEN: usize = HEADER_LEN + 12;

/// The envelope's header: what an opener learns before any key is derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    pub(crate) iterations: u32,
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The PBKDF2 iteration count, within [`MIN_OPEN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    #[must_use]
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The key derivation's salt.
    #[must_use]
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The AES-GCM nonce.
    #[must_use]
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The 33 header bytes as they stand in the envelope.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = VERSION;
        b[1..5].copy_from_slice(&self.iterations.to_be_bytes());
        b[5..5 + SALT_LEN].copy_from_slice(&self.salt);
        b[5 + SALT_LEN..].copy_from_slice(&self.nonce);
        b
    }

    fn from_bytes(b: &[u8; HEADER_LEN]) -> Result<Self, Error> {
        if b[0] != VERSION {
            return Err(Error::Version(b[0]));
        }
        let iterations = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
        if !(MIN_OPEN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::Iterations(iterations));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&b[5..5 + SALT_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[5 + SALT_LEN..]);
        Ok(Self { iterations, salt, nonce })
    }

    /// The associated data: the header bytes, then the normalised MAC in ASCII.
    fn aad(&self, mac: &MacAddr) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[..HEADER_LEN].copy_from_slice(&self.to_bytes());
        let mac = mac.to_string();
        aad[HEADER_LEN..].copy_from_slice(mac.as_bytes());
        aad
    }
}

/// Derives the AES-256 key: PBKDF2-HMAC-SHA256 over the ASCII digits of the PIN's key part
/// (never the TAN). This is the slow step, by design; the result is wiped when dropped.
///
/// `iterations` is taken as given: the bounds are enforced where headers are made and
/// read ([`crate::SealParams`], [`Envelope::parse`]).
#[must_use]
pub fn derive_key(pin: &Pin, salt: &[u8; SALT_LEN], iterations: u32) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(pin.key_part().as_bytes(), salt, iterations, &mut *key);
    key
}

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Encrypts `raw[HEADER_LEN..]` in place and appends the tag. `raw` must begin with
/// `header`'s bytes and have room for the tag, so that it is not reallocated.
pub(crate) fn encrypt(key: &[u8; KEY_LEN], header: &Header, mac: &MacAddr, raw: &mut Vec<u8>) -> Result<(), Error> {
    let nonce = Nonce::from(header.nonce);
    let aad = header.aad(mac);
    let size = raw.len() + TAG_LEN;
    let body = raw.get_mut(HEADER_LEN..).ok_or(Error::Size { size })?;
    let tag = cipher(key).encrypt_inout_detached(&nonce, &aad, body.into()).map_err(|_| Error::Size { size })?;
    raw.extend_from_slice(&tag);
    Ok(())
}

/// Parsed `secure-mode-data`: a header that passed the checks, and the sealed bytes.
///
/// [`Envelope::parse`] does everything that needs no key (Base64, size, version, iteration
/// range), so a caller can look at [`Envelope::header`] before paying for the key
/// derivation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    header: Header,
    /// Ciphertext followed by the tag (at least [`TAG_LEN`] bytes).
    sealed: Vec<u8>,
}

impl Envelope {
    /// Decodes and checks `secure-mode-data` text. ASCII white space anywhere is ignored
    /// (XML may wrap the text).
    ///
    /// # Errors
    /// [`Error::Base64`], [`Error::Size`], [`Error::Version`], [`Error::Iterations`]: all
    /// of kind [`crate::ErrorKind::Malformed`].
    pub fn parse(text: &str) -> Result<Self, Error> {
        // Count first, so that an oversize input is refused before anything is allocated.
        let count = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
        if count % 4 != 0 {
            return Err(Error::Base64(format!("{count} characters is not a multiple of 4")));
        }
        let padding = text.bytes().rev().filter(|b| !b.is_ascii_whitespace()).take(2).filter(|&b| b == b'=').count();
        let size = (count / 4 * 3).saturating_sub(padding);
        if !(MIN_RAW_LEN..=MAX_RAW_LEN).contains(&size) {
            return Err(Error::Size { size });
        }
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let raw = STANDARD.decode(&compact).map_err(|e| Error::Base64(e.to_string()))?;
        let (head, sealed) = raw.split_first_chunk::<HEADER_LEN>().ok_or(Error::Size { size: raw.len() })?;
        let header = Header::from_bytes(head)?;
        Ok(Self { header, sealed: sealed.to_vec() })
    }

    /// The header: iteration count, salt and nonce.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Derives the key from `pin` (the slow step) and opens the envelope for `mac`.
    ///
    /// # Errors
    /// [`Error::Authentication`] for a wrong PIN, a wrong MAC or altered data;
    /// [`Error::Plaintext`] if the data authenticates but is not an `ItemList`.
    pub fn open(&self, pin: &Pin, mac: &MacAddr) -> Result<Vec<Item>, Error> {
        let key = derive_key(pin, &self.header.salt, self.header.iterations);
        self.open_with_key(&key, mac)
    }

    /// Opens the envelope with an already derived key (see [`derive_key`]) and decodes the
    /// items, in order.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub fn open_with_key(&self, key: &[u8; KEY_LEN], mac: &MacAddr) -> Result<Vec<Item>, Error> {
        let plaintext = self.decrypt_with_key(key, mac)?;
        dls_message::decode_item_list(&plaintext, &Limits::default()).map_err(|e| Error::plaintext(&e))
    }

    /// Decrypts and authenticates, returning the plaintext bytes (wiped when dropped)
    /// without decoding them.
    ///
    /// # Errors
    /// [`Error::Authentication`] for a wrong key, a wrong MAC or altered data.
    pub fn decrypt_with_key(&self, key: &[u8; KEY_LEN], mac: &MacAddr) -> Result<Zeroizing<Vec<u8>>, Error> {
        let split = self.sealed.len().checked_sub(TAG_LEN).ok_or(Error::Authentication)?;
        let (ciphertext, tag) = self.sealed.split_at(split);
        let tag = Tag::try_from(tag).map_err(|_| Error::Authentication)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let nonce = Nonce::from(self.header.nonce);
        let aad = self.header.aad(mac);
        cipher(key)
            .decrypt_inout_detached(&nonce, &aad, buf.as_mut_slice().into(), &tag)
            .map_err(|_| Error::Authentication)?;
        Ok(buf)
    }
}

/// Opens `secure-mode-data` text with the PIN's key part for the phone `mac`, and returns
/// the items, in order. The phone side of the exchange.
///
/// # Errors
/// [`Error::Authentication`] (kind [`crate::ErrorKind::Authentication`]) for a wrong PIN,
/// a wrong MAC or altered data; an error of kind [`crate::ErrorKind::Malformed`] for
/// anything else.
pub fn open(pin: &Pin, mac: &MacAddr, text: &str) -> Result<Vec<Item>, Error> {
    Envelope::parse(text)?.open(pin, mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = Header { iterations: 600_000, salt: [0xAA; SALT_LEN], nonce: [0x55; NONCE_LEN] };
        let b = h.to_bytes();
        assert_eq!(b.len(), 33);
        assert_eq!(&b[..5], &[1, 0x00, 0x09, 0x27, 0xC0]);
        assert_eq!(&b[5..21], &[0xAA; 16]);
        assert_eq!(&b[21..], &[0x55; 12]);
        assert_eq!(Header::from_bytes(&b), Ok(h));
        let mac = MacAddr::parse("00:01:e3:25:ea:13").unwrap_or_else(|e| panic!("{e}"));
        let aad = h.aad(&mac);
        assert_eq!(&aad[..33], &b);
        assert_eq!(&aad[33..], b"0001E325EA13");
    }

    #[test]
    fn header_bounds() {
        let mut b = Header { iterations: 0, salt: [0; SALT_LEN], nonce: [0; NONCE_LEN] }.to_bytes();
        for (n, ok) in
            [(0, false), (999, false), (1_000, true), (10_000_000, true), (10_000_001, false), (u32::MAX, false)]
        {
            b[1..5].copy_from_slice(&u32::to_be_bytes(n));
            assert_eq!(Header::from_bytes(&b).is_ok(), ok, "{n}");
        }
        b[0] = 0;
        assert_eq!(Header::from_bytes(&b), Err(Error::Version(0)));
    }

    #[test]
    fn size_bounds_are_checked_before_decoding() {
        // 48 bytes: header + 15.
        let short = STANDARD.encode([1u8; 48]);
        assert_eq!(Envelope::parse(&short), Err(Error::Size { size: 48 }));
        // 1 MiB is allowed (the Base64 of 1,048,576 bytes ends in "=="), one more byte is not.
        let largest = format!("{}==", "A".repeat(MAX_RAW_LEN.div_ceil(3) * 4 - 2));
        assert!(!matches!(Envelope::parse(&largest), Err(Error::Size { .. })));
        let big = format!("{}=", "A".repeat(MAX_RAW_LEN.div_ceil(3) * 4 - 1));
        assert_eq!(Envelope::parse(&big), Err(Error::Size { size: MAX_RAW_LEN + 1 }));
        assert_eq!(Envelope::parse(""), Err(Error::Size { size: 0 }));
        assert!(matches!(Envelope::parse("AAA"), Err(Error::Base64(_))));
    }
}
