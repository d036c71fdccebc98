//! The phone's side of the WorkPoint Interface.
//!
//! * [`WpiClient`]: posts `WorkpointMessage`s to a DLS over keep-alive TLS, keeps the
//!   session cookie, checks answers as a phone would.
//! * [`Phone`]: a phone's items and its half of an interaction ([`Phone::interact`]):
//!   `ReadAllItems` (in fragments), `ReadItems`, `WriteItems` with per-item statuses,
//!   `busy`, `GetNextFragment`, `CleanUp`.
//! * [`secure`]: secure mode — the bootstrap material, opening `secure-mode-data` with a
//!   typed PIN ([`Phone::enter_pin`]), the mutual-TLS client for the secure port
//!   ([`Phone::secure_client`]), the `bootstrapping-tan` answer.
//! * [`tls`]: default-mode trust (none) and verified trust.

mod client;
pub mod load;
mod phone;
pub mod secure;
pub mod tls;

pub use client::{ClientError, LOGIN_SERVICE_PATH, Traced, WpiClient};
pub use load::{Fleet, Histogram, LoadConfig, LoadMode, LoadReport, Progress};
pub use phone::{Interaction, MAX_EXCHANGES, Phone, is_write_only, item_map, new_nonce};
pub use secure::{PendingPin, PinOutcome, SecureMaterial};
pub use tls::ServerTrust;
