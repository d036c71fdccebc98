//! The DLS protocol engine, sans-IO.
//!
//! The engine holds no sockets, no clock and no database. For every message a phone sends,
//! the service's shell gives it what it knows — the device's [`DeviceSnapshot`], the
//! interaction's [`Session`] (if the message belongs to one), the device's desired
//! configuration ([`Desired`]) and the time — and gets back an [`Output`]: the
//! `DLSMessage` to answer with, the session to keep (or none, when the interaction is
//! over) and the [`Change`]s to persist, which the shell commits in one transaction
//! *before* it sends the reply. Everything here is deterministic and tested in memory.
//!
//! * [`Engine`]: the entry point, [`Engine::handle`].
//! * [`session`]: the state of one interaction between two messages.
//! * [`device`]: what the engine knows of a device, and the [`Change`]s it asks for.
//! * [`desired`]: profiles and their layering into one desired configuration.
//! * [`diff`]: which items must be written, given what the phone reported.
//! * [`refusal`]: why a message was refused, and the `cleanup-reason` the phone is told.
//! * [`secret_items`]: items whose values are secrets, never persisted from a phone.
//! * [`security`]: secure mode — modes, bootstrap state, channels, audit events.
//! * [`jobs`]: server-initiated work (jobs) and its states.
//! * [`firmware`]: software versions and firmware image headers.
//! * [`mobility`]: hot desking — users logging on and off at any phone.
//! * [`config`]: the engine's policies.

pub mod config;
pub mod desired;
pub mod device;
pub mod diff;
mod engine;
pub mod firmware;
mod job_run;
pub mod jobs;
pub mod mobility;
pub mod refusal;
pub mod secret_items;
pub mod security;
pub mod session;

pub use config::EngineConfig;
pub use desired::{Desired, Profile};
pub use device::{Change, DeviceSnapshot, ItemKey, Note, UnixTime, WriteOutcome, WrittenRecord};
pub use engine::{Engine, Input, Output};
pub use jobs::{FileRef, Job, JobId, JobKind, JobState, JobUpdate};
pub use mobility::{MobilityChange, MobilityInput, MobilityQuery, MobilityUser, Verdict};
pub use refusal::{Refusal, WRONG_TAN};
pub use security::{
    AuditEvent, AuditKind, Bootstrap, BootstrapKind, BootstrapNeed, BootstrapState, BootstrapSupply, Channel,
    IssuedCertificate, PendingBootstrap, SealedBootstrap, Security, SecurityMode,
};
pub use session::{Session, SessionCodecError};
