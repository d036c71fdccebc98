//! Sealing: the server side of the exchange.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dls_message::{Item, Limits, MacAddr};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{
    DEFAULT_ITERATIONS, HEADER_LEN, Header, KEY_LEN, MAX_ITERATIONS, MAX_RAW_LEN, MIN_OPEN_ITERATIONS,
    MIN_SEAL_ITERATIONS, NONCE_LEN, SALT_LEN, TAG_LEN, derive_key, encrypt,
};
use crate::error::Error;
use crate::pin::Pin;

/// How to seal: the iteration count, and (for tests only) a fixed salt and nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealParams {
    iterations: u32,
    fixed: Option<([u8; SALT_LEN], [u8; NONCE_LEN])>,
}

impl Default for SealParams {
    /// [`DEFAULT_ITERATIONS`] (600,000), fresh random salt and nonce.
    fn default() -> Self {
        Self { iterations: DEFAULT_ITERATIONS, fixed: None }
    }
}

impl SealParams {
    /// Production parameters: `iterations` PBKDF2 iterations, fresh random salt and nonce
    /// for every seal.
    ///
    /// # Errors
    /// [`Error::SealIterations`] unless `100_000 <= iterations <= 10_000_000`.
    pub fn new(iterations: u32) -> Result<Self, Error> {
        check_iterations(iterations, MIN_SEAL_ITERATIONS)?;
        Ok(Self { iterations, fixed: None })
    }

    /// **For tests and known-answer vectors only.** A fixed salt and nonce (so the output is
    /// reproducible, and a nonce may be reused: never do this with real data) and as few as
    /// 1,000 iterations.
    ///
    /// # Errors
    /// [`Error::SealIterations`] unless `1_000 <= iterations <= 10_000_000`.
    pub fn insecure_fixed_for_tests(
        iterations: u32,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, Error> {
        check_iterations(iterations, MIN_OPEN_ITERATIONS)?;
        Ok(Self { iterations, fixed: Some((salt, nonce)) })
    }

    /// The PBKDF2 iteration count.
    #[must_use]
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

fn check_iterations(given: u32, min: u32) -> Result<(), Error> {
    if (min..=MAX_ITERATIONS).contains(&given) { Ok(()) } else { Err(Error::SealIterations { given, min }) }
}

/// A derived key and the header it belongs to, ready to seal **one** plaintext: the two
/// steps of [`seal`] apart, so that the key derivation (slow by design) and the rest
/// (encoding, AES-GCM, Base64) can be timed and reasoned about separately.
///
/// Consumed by sealing, so that a salt and nonce are never used twice.
pub struct Sealer {
    header: Header,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("header", &self.header).finish_non_exhaustive()
    }
}

impl Sealer {
    /// Draws the salt and nonce (unless `params` fixes them) and derives the key from the
    /// PIN's key part.
    ///
    /// # Errors
    /// [`Error::Random`] if the operating system's random generator fails.
    pub fn new(pin: &Pin, params: &SealParams) -> Result<Self, Error> {
        let (salt, nonce) = match params.fixed {
            Some(fixed) => fixed,
            None => {
                let mut salt = [0u8; SALT_LEN];
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
                getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
                (salt, nonce)
            }
        };
        let header = Header { iterations: params.iterations, salt, nonce };
        let key = derive_key(pin, &header.salt, header.iterations);
        Ok(Self { header, key })
    }

    /// The header the result will carry.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encodes `items` as an `ItemList` document and seals it for `mac`.
    ///
    /// # Errors
    /// [`Error::Encode`] if the items cannot be written as XML; [`Error::Size`] if the
    /// result would exceed 1 MiB.
    pub fn seal(self, mac: &MacAddr, items: &[Item]) -> Result<String, Error> {
        let plaintext = Zeroizing::new(dls_message::encode_item_list(items).map_err(Error::Encode)?);
        self.seal_bytes(mac, plaintext.as_bytes())
    }

    /// Seals `plaintext` exactly as given, after checking that it is an `ItemList`
    /// document an opener will accept.
    ///
    /// # Errors
    /// [`Error::Plaintext`] if it is not; [`Error::Size`] if the result would exceed 1 MiB.
    pub fn seal_plaintext(self, mac: &MacAddr, plaintext: &[u8]) -> Result<String, Error> {
        check_size(plaintext)?;
        let mut items =
            dls_message::decode_item_list(plaintext, &Limits::default()).map_err(|e| Error::plaintext(&e))?;
        for item in &mut items {
            item.value.zeroize();
        }
        self.seal_bytes(mac, plaintext)
    }

    fn seal_bytes(self, mac: &MacAddr, plaintext: &[u8]) -> Result<String, Error> {
        check_size(plaintext)?;
        // Reserved in full so that the buffer is never reallocated (which would leave a copy
        // of the plaintext behind); it is encrypted in place and wiped when dropped.
        let mut raw = Zeroizing::new(Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN));
        raw.extend_from_slice(&self.header.to_bytes());
        raw.extend_from_slice(plaintext);
        encrypt(&self.key, &self.header, mac, &mut raw)?;
        Ok(STANDARD.encode(raw.as_slice()))
    }
}

fn check_size(plaintext: &[u8]) -> Result<(), Error> {
    let size = HEADER_LEN + TAG_LEN + plaintext.len();
    if size > MAX_RAW_LEN { Err(Error::Size { size }) } else { Ok(()) }
}

/// Seals `items` for the phone `mac` with the PIN's key part: the server side of the
/// exchange. Returns the Base64 text for the item `secure-mode-data`.
///
/// # Errors
/// [`Error::Encode`] if the items cannot be written as XML, [`Error::Size`] if the result
/// would exceed 1 MiB, [`Error::Random`] if the random generator fails.
pub fn seal(pin: &Pin, mac: &MacAddr, items: &[Item], params: &SealParams) -> Result<String, Error> {
    Sealer::new(pin, params)?.seal(mac, items)
}

/// Seals an already encoded `ItemList` document byte for byte (e.g. a known-answer
/// vector's plaintext). Prefer [`seal`].
///
/// # Errors
/// [`Error::Plaintext`] if `plaintext` is not an `ItemList` document an opener accepts;
/// otherwise as [`seal`].
pub fn seal_plaintext(pin: &Pin, mac: &MacAddr, plaintext: &[u8], params: &SealParams) -> Result<String, Error> {
    check_size(plaintext)?;
    Sealer::new(pin, params)?.seal_plaintext(mac, plaintext)
}
