//! The phone's side of the WorkPoint Interface.
//!
//! * [`WpiClient`]: posts `WorkpointMessage`s to a DLS over keep-alive TLS, keeps the
//!   session cookie, checks answers as a phone would.
//! * [`Phone`]: a phone's items and its half of an interaction ([`Phone::interact`]):
//!   `ReadAllItems` (in fragments), `ReadItems`, `WriteItems` with per-item statuses,
//!   `busy`, `GetNextFragment`, `CleanUp`.
//! * [`tls`]: default-mode trust (none) and verified trust.

mod client;
mod phone;
pub mod tls;

pub use client::{ClientError, LOGIN_SERVICE_PATH, WpiClient};
pub use phone::{Interaction, MAX_EXCHANGES, Phone, is_write_only, item_map, new_nonce};
pub use tls::ServerTrust;
