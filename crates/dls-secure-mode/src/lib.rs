//! `secure-mode-data`: everything a desk phone needs to enter secure mode (its client
//! certificate and key, the CA certificates to trust, the secure port), sealed with the
//! bootstrap PIN and bound to the phone's MAC address. Version 1 of the format is defined in
//! the project's `docs/secure-mode.md`.
//!
//! * [`Pin`]: generate, parse, show grouped; key part and TAN; constant-time TAN check.
//! * [`seal`] / [`seal_plaintext`] with [`SealParams`] (and [`Sealer`], its two steps apart):
//!   the server side.
//! * [`open`] and [`Envelope`] (parse the header first, then open): the phone side.
//! * [`derive_key`]: PBKDF2-HMAC-SHA256 over the PIN's key part.
//! * [`Error`] and [`ErrorKind`]: malformed input kept apart from failed authentication.
//! * [`MacAddr`] and [`Item`] are `dls-message`'s, re-exported.
//!
//! Key material (derived keys, PIN digits, plaintext buffers) is wiped when dropped. The
//! crate does no I/O apart from asking the operating system for random bytes.
//!
//! The phone side, opening what the server sent in `secure-mode-data`:
//!
//! ```
//! use dls_secure_mode::{open, MacAddr, Pin};
//!
//! let pin = Pin::parse("1234 5678 9")?; // typed by the user
//! let mac = MacAddr::parse("00:01:E3:25:EA:13")?; // the phone's own
//! let text = "AQAAA+iPyMz2wPNKfD6uM2+ZwbETHt+e2O//tuKChZ08NNqOzyEwxv9+z9s6VNlQC75R4tSMFb7KkycBbU9RS+t1FgcQ2SDCBw7NZ7w3vRFAW9bFatkWU4D1pz96Kr9AaLeAu7NLTfAyXdch3DGuhHbpgcoAENYgazSC/8zOyV+ZqIhAKuTubIH6wn/DKPbX1pY=";
//! match open(&pin, &mac, text) {
//!     Ok(items) => assert_eq!(items[0].value, "18444"), // install certificates, CAs, port
//!     Err(e) if e.is_authentication() => panic!("count one PIN attempt: {e}"),
//!     Err(e) => panic!("malformed, not a PIN attempt: {e}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The server side: a fresh PIN, sealed items (600,000 iterations by default; the
//! test-only parameters below keep the example fast), and the TAN checked later.
//!
//! ```
//! use dls_secure_mode::{open, seal, Item, MacAddr, Pin, SealParams};
//!
//! let pin = Pin::generate()?; // show `pin` (grouped) to the person installing the phone
//! let mac = MacAddr::parse("00:01:E3:25:EA:13")?;
//! let items = [Item::new("dls-secure-port", "18444")];
//! let params = SealParams::insecure_fixed_for_tests(1_000, [7; 16], [9; 12])?; // use SealParams::default()
//! let text = seal(&pin, &mac, &items, &params)?;
//! assert_eq!(open(&pin, &mac, &text)?, items);
//! assert!(pin.check_tan(pin.tan())); // the phone sends `bootstrapping-tan` over mutual TLS
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envelope;
mod error;
mod pin;
mod seal;

pub use dls_message::{Item, MacAddr};
pub use envelope::{
    DEFAULT_ITERATIONS, Envelope, HEADER_LEN, Header, KEY_LEN, MAX_ITERATIONS, MAX_RAW_LEN, MIN_OPEN_ITERATIONS,
    MIN_RAW_LEN, MIN_SEAL_ITERATIONS, NONCE_LEN, SALT_LEN, TAG_LEN, VERSION, derive_key, open,
};
pub use error::{Error, ErrorKind};
pub use pin::{DEFAULT_PIN_LENGTH, MAX_PIN_LENGTH, MIN_PIN_LENGTH, Pin, PinError, TAN_LENGTH};
pub use seal::{SealParams, Sealer, seal, seal_plaintext};
