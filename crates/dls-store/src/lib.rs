//! The DLS service's storage.
//!
//! * [`Store`]: the narrow interface the service uses. The protocol path needs three calls
//!   per phone message — [`Store::load_device`], [`Store::desired`] and
//!   [`Store::apply`] (all of one message's changes in one transaction); the admin API
//!   needs the rest. A PostgreSQL backend for multi-node deployments would implement the
//!   same trait; nothing above it would change.
//! * [`model`]: the records the interface speaks in.
//! * [`SqliteStore`]: the embedded implementation (one file, WAL, schema migrations).

pub mod model;
mod sqlite;

use dls_engine::{Change, Desired, DeviceSnapshot, JobId, Profile, UnixTime};
use dls_message::MacAddr;

pub use model::{
    AuditRecord, CertificateRecord, ContactTarget, CredentialScope, DeviceDetails, DeviceFilter, DeviceSpec,
    DeviceSummary, DeviceUpdate, FallbackCredential, FileRecord, JobFilter, JobRecord, NewFile, NewJob, Pruned,
    SecuritySummary, SecurityUpdate, WrittenSummary,
};
pub use sqlite::{PinSealer, SqliteStore};

/// Why a storage call failed, by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The caller asked for something that does not exist (HTTP 404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The caller asked to create something that exists already (HTTP 409).
    #[error("{what} exists already")]
    Conflict {
        /// What exists.
        what: String,
    },
    /// The caller's request is invalid (HTTP 400), e.g. a reserved or empty name.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database file could not be created or opened: our own I/O (HTTP 500).
    #[error("{0}")]
    Io(String),
    /// The database failed: our fault (HTTP 500).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database holds data this version cannot read, or is from a newer version.
    #[error("store is corrupt or from a newer version: {0}")]
    Corrupt(String),
}

/// The storage interface of the DLS service. Implementations are safe to share between
/// threads; calls block (the async shell runs them off its executor).
pub trait Store: Send + Sync + 'static {
    // The protocol path.

    /// What the engine needs to know of a device (an unknown device gives
    /// [`DeviceSnapshot::unknown`]).
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError>;

    /// The device's desired configuration: its profiles layered (see
    /// [`dls_engine::desired`]), for its reported `device-type`, assigned profiles and
    /// overrides. An unknown device gets what applies to every device.
    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError>;

    /// [`Store::load_device`] and [`Store::desired`] as of one state of the store: what
    /// the engine needs for one message.
    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        Ok((self.load_device(mac)?, self.desired(mac)?))
    }

    /// Persists one message's changes for `mac`, all or nothing, in one transaction.
    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError>;

    // The admin API.

    /// Devices matching `filter`, ordered by MAC.
    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError>;

    /// One device with its inventory, or `None`.
    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError>;

    /// Registers a device ahead of its first contact, with its profiles, overrides, secret
    /// and security, in one transaction: on any error nothing is stored. `at` is its
    /// registration time (the store never reads a clock). [`StoreError::Conflict`] if known.
    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec, at: UnixTime) -> Result<(), StoreError>;

    /// Changes a device's profiles or overrides. [`StoreError::NotFound`] if unknown.
    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError>;

    /// Forgets a device and everything recorded about it. `false` if it was unknown.
    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError>;

    /// Every profile, by name.
    fn profiles(&self) -> Result<Vec<Profile>, StoreError>;

    /// One profile, or `None`.
    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError>;

    /// Creates or replaces a profile (its `name` field names it).
    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError>;

    /// Deletes a profile and its assignments. `false` if it did not exist.
    fn delete_profile(&self, name: &str) -> Result<bool, StoreError>;

    // Secure mode.

    /// Changes a device's security (mode, reset, new PIN) with its audit records, in one
    /// transaction, at `at`. [`StoreError::NotFound`] if unknown; [`StoreError::Invalid`] for
    /// a PIN on a secured device without `reset`.
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError>;

    /// The device's outstanding PIN as the caller sealed it ([`SecurityUpdate::new_pin`]),
    /// for sealing `secure-mode-data` and checking the TAN; `None` if none.
    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;

    /// The bootstrap material kept for a device (as the caller sealed it, see
    /// [`dls_engine::Change::KeepBootstrap`]); `None` if none is kept or the device is
    /// unknown. It is dropped when the device bootstraps, fails to, is reset, gets a new PIN
    /// or another mode, and when a new certificate is issued to it.
    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;

    /// The audit log, newest first, for one device or all, at most `limit` records.
    fn audit(&self, mac: Option<MacAddr>, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// The certificates issued to a device, newest first.
    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError>;

    // Digest credentials for provisioning-file downloads. Secrets arrive sealed by the
    // caller (the store keeps opaque ciphertext, never a password).

    /// Sets (`Some`) or clears (`None`) a device's sealed secret (its "MAC-ID").
    /// [`StoreError::NotFound`] if the device is unknown.
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError>;

    /// A device's sealed secret, if any (`None` for an unknown device too).
    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets (`Some`) or removes (`None`) a fallback credential for a scope.
    /// [`StoreError::Invalid`] for an empty or over-long username (1–128 characters), one
    /// with control characters, or a profile that does not exist; removing one that does not
    /// exist is [`StoreError::NotFound`].
    fn set_fallback_credential(
        &self,
        scope: &CredentialScope,
        username: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError>;

    /// The fallback credentials that apply to a device: those of its assigned profiles in
    /// assignment order, then the global ones. A device the store does not know gets the
    /// global ones.
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError>;

    /// Every fallback credential, without secrets (admin listing).
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError>;

    // Jobs.

    /// Queues jobs, all or none. [`StoreError::NotFound`] if a device is unknown.
    fn add_jobs(&self, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError>;

    /// Jobs matching `filter`, newest first.
    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError>;

    /// One job, or `None`.
    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Cancels a job that is not over. [`StoreError::NotFound`] if unknown,
    /// [`StoreError::Conflict`] if it is over already.
    fn cancel_job(&self, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError>;

    /// Whether a device has jobs the DLS still has to send (queued, busy-retry, or sent
    /// without an answer): what a DCMP poll answers.
    fn has_pending_jobs(&self, mac: MacAddr) -> Result<bool, StoreError>;

    /// The devices that have jobs the DLS still has to send, oldest job first.
    fn devices_with_pending_jobs(&self, limit: usize) -> Result<Vec<MacAddr>, StoreError>;

    /// Where to send a contact-me for a device: its reported `contact-me-uri` and the
    /// address it last called from, when it has pending jobs or `always`; `None` otherwise.
    fn contact_target(&self, mac: MacAddr, always: bool) -> Result<Option<ContactTarget>, StoreError>;

    /// Records a contact-me attempt on the device's pending jobs.
    fn record_contact(&self, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError>;

    /// The job a deployment download token belongs to, with its file, while the job is
    /// sent and not over.
    fn download(&self, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError>;

    // Deployment files (their content is kept by the caller, by id).

    /// Records a file. [`StoreError::Conflict`] if a file of that type and name exists.
    fn add_file(&self, file: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError>;

    /// Every file.
    fn files(&self) -> Result<Vec<FileRecord>, StoreError>;

    /// One file, or `None`.
    fn file(&self, id: i64) -> Result<Option<FileRecord>, StoreError>;

    /// Forgets a file; the jobs that deploy it and are not over fail. `None` if unknown.
    fn delete_file(&self, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError>;

    // Retention.

    /// Deletes the audit records from before `audit_before`, and the jobs that are over
    /// (done, failed, cancelled) and last changed before `jobs_before`; `None` deletes none
    /// of that kind. Jobs not over are kept whatever their age, and so are deployment files
    /// (a deleted job's file stays, with the other jobs that deploy it). Deletes in small
    /// transactions, one after the other, so that the protocol path never waits long for
    /// the store: each is committed by itself, and an error leaves those before it done.
    /// Returns how many records of each kind were deleted.
    fn prune(&self, audit_before: Option<UnixTime>, jobs_before: Option<UnixTime>) -> Result<Pruned, StoreError>;
}
