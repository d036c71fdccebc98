//! The phone's side of the WorkPoint Interface.
//!
//! * [`WpiClient`]: posts `WorkpointMessage`s to a DLS over keep-alive TLS, keeps the
//!   session cookie, checks answers as a phone would.
//! * [`Phone`]: a phone's items and its half of an interaction ([`Phone::interact`]):
//!   `ReadAllItems` (in fragments), `ReadItems`, `WriteItems` with per-item statuses,
//!   `busy`, `GetNextFragment`, `Restart`, `FileDeployment` / `SoftwareDeployment`,
//!   `CleanUp`.
//! * [`deploy`]: file and firmware deployments — the `file-*` items, the HTTPS download
//!   (streamed, checked, bounded), the installed files, the `status` report and the
//!   `start-up` after new firmware ([`Phone::run_deployments`]).
//! * [`dcmp`]: polling the DLS from behind NAT (`dcmp-url`, `202` = call in).
//! * [`agent`]: a phone kept alive ([`Agent`]): start-up (and the switch to secure mode),
//!   contact-me, DCMP, `send-solicited` callbacks, deployments, restarts, until stopped.
//! * [`secure`]: secure mode — the bootstrap material, opening `secure-mode-data` with a
//!   typed PIN ([`Phone::enter_pin`], or the PINs one after another until the phone's
//!   retries run out: [`Phone::enter_pins`]), the mutual-TLS client for the secure port
//!   ([`Phone::secure_client`]), the `bootstrapping-tan` answer.
//! * [`mobility`]: a user logs on and off at the phone ([`Phone::log_on`],
//!   [`Phone::log_off`]); the user's data (`userdata-*`) goes with them.
//! * [`tls`]: default-mode trust (none) and verified trust.
//! * [`contact`]: the contact-me listener (`204`, with the phone's contact gap).
//!
//! A phone's start-up against a DLS (`examples/start_up.rs` runs the same):
//!
//! ```no_run
//! use dls_message::{MacAddr, Reason};
//! use dls_workpoint::{Phone, ServerTrust, WpiClient};
//!
//! # async fn start_up() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = WpiClient::new("dls.example.com:18443", &ServerTrust::AcceptAny)?;
//! let mut phone = Phone::new(MacAddr::parse("00:1A:E8:3C:4D:5E")?);
//! let report = phone.interact(&mut client, Reason::StartUp).await?;
//! assert_eq!(report.actions.last(), Some(&dls_message::Action::CleanUp));
//! if report.bootstrap.as_deref() == Some("pin") {
//!     phone.pin_entries.push_back("123456789012345".into()); // what the user types
//!     phone.enter_pin()?;
//! }
//! if phone.secure.is_some() {
//!     let mut secure = phone.secure_client("dls.example.com")?;
//!     phone.interact(&mut secure, Reason::StartUp).await?; // mutual TLS, TAN, configuration
//! }
//! # Ok(())
//! # }
//! ```

pub mod agent;
mod client;
pub mod contact;
pub mod dcmp;
pub mod deploy;
mod http;
pub mod mobility;
mod phone;
pub mod secure;
pub mod tls;

pub use agent::{Agent, AgentConfig, AgentEvent, EventHook, Observer, Trigger};
pub use client::{ClientError, DEFAULT_MAX_ANSWER_BYTES, LOGIN_SERVICE_PATH, REDACTED, Traced, WpiClient};
pub use contact::{CONTACT_ME_PATH, ContactListener, ContactMe};
pub use dcmp::{DcmpAnswer, DcmpError};
pub use deploy::{Deployment, DeploymentKind, DeploymentOutcome, DownloadLimits, InstalledFile};
pub use mobility::{Logoff, Logon, MobilityError, MobilityStep, USERDATA_ITEMS, UserData, UserPassword};
pub use phone::{Interaction, MAX_EXCHANGES, Phone, is_write_only, item_map, new_nonce};
pub use secure::{PendingPin, PinOutcome, PinsError, PinsOutcome, RETRIES_EXCEEDED, SecureMaterial};
pub use tls::ServerTrust;
