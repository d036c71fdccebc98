//! The DLS service's storage seam: what the service asks of a database, with no database
//! in it.
//!
//! * The storage traits ([`traits`]), one per part of the service, and [`Store`], all of
//!   them, which the service holds as one `Arc<dyn Store>`:
//!   * [`ProtocolStore`] — the protocol path: what one phone message reads and writes,
//!     and [`ProtocolStore::run_message`], which runs one message (load, the engine,
//!     apply) under the backend's own exclusion of the device ([`with_device`] is its
//!     generic form);
//!   * [`DeviceStore`] — devices and profiles (the admin API);
//!   * [`SecurityStore`] — secure mode: security changes, certificates;
//!   * [`AuditStore`] — the audit log: devices' security events and administrative
//!     changes with their actors, filtered and paged;
//!   * [`AccountStore`] — console and API accounts, their API tokens, console sessions;
//!   * [`CredentialStore`] — HTTP Digest credentials for provisioning files;
//!   * [`JobStore`] — jobs, contact-me, deployment files and their downloads;
//!   * [`ContactStore`] — the contact-me schedule shared by the nodes;
//!   * [`MaintenanceStore`] — retention, and leases (work on one node at a time).
//!   * [`SessionStore`] — interaction sessions, for the node that gets an interaction's
//!     next message.
//!   * [`DigestStore`] — HTTP Digest state the nodes share: nonce counts used, throttle
//!     events.
//!   * [`MobilityStore`] — mobility users (hot desking): the administrator's part, and
//!     what a phone message needs of them.
//! * [`model`]: the records the traits speak in (also the admin API's JSON).
//! * [`rules`]: the domain rules every backend applies the same way — the validations,
//!   the secure-mode transitions and their audit texts, what a cancelled job or a deleted
//!   file does to jobs, the limits — as plain functions and types, so that a second
//!   backend calls them instead of copying them.
//! * [`dump`]: moving a whole database to another backend (`dls store migrate`): every
//!   table's rows in a backend-neutral form, [`dump::MigrationStore`], the copy and its
//!   verification.
//! * [`StoreError`]: why a call failed, by who is at fault, without a database type.
//!
//! The contract every backend keeps, beyond each method's documentation:
//! * Calls block and are safe from any thread; the async shell runs them off its executor.
//! * Time is passed in: a backend never reads a clock.
//! * Ids (jobs, files) are never handed out again, not even after the record they named
//!   was deleted (a deployment file is kept as `files/<id>`).
//! * Each write call is all or nothing; each read call sees one committed state.
//! * One message of a device is atomic as a whole: see [`ProtocolStore`].
//!
//! The implementations are crates of their own (`dls-store-sqlite`, `dls-store-postgres`), and
//! so is their common test suite: the conformance suite in `crates/dls-store/conformance/`,
//! which every backend's integration test binary includes with a one-line factory.

pub mod columns;
pub mod dump;
pub mod model;
pub mod rules;
pub mod traits;

mod error;

pub use error::StoreError;
pub use model::{
    Account, AdminAction, AuditFilter, AuditRecord, CertificateRecord, ConsoleSession, ContactClaim, ContactTarget,
    CredentialScope, DeviceDetails, DeviceFilter, DeviceSpec, DeviceSummary, DeviceUpdate, DigestEvent, EventKind,
    FallbackCredential, FileRecord, FleetSummary, JobFilter, JobRecord, LoggedOn, MobilityContext, NewAuditRecord,
    NewDigestEvent, NewFile, NewJob, NewUser, Pruned, SecuritySummary, SecurityUpdate, StoredUser, TokenRecord,
    UserDataInfo, UserDataValue, UserDetails, UserSummary, WrittenSummary,
};
pub use traits::{
    AccountStore, AuditStore, ContactStore, CredentialStore, DeviceStore, DigestStore, JobStore, MaintenanceStore,
    MessageFn, MobilityStore, ProtocolStore, SecurityStore, SessionStore, Store, with_device,
};
