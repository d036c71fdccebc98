//! The storage traits: one per part of the service that uses the store, and [`Store`], all
//! of them.
//!
//! Why this cut (`docs/ARCHITECTURE.md` has the longer version): each trait is what one
//! caller needs and what one backend module implements — the protocol path (every phone
//! message: hot, per-device, atomic), the admin API's devices and profiles, secure mode
//! (security state machine and its audit log), Digest credentials (secrets, sealed), jobs
//! and files (which refer to each other: deleting a file fails its jobs, a download is a
//! job's file), and maintenance (retention, batched). A function that needs only jobs can
//! take `&dyn JobStore`, a test double implements only what it is used for, and a backend
//! can be written and reviewed one part at a time.

use dls_accounts::Role;
use dls_engine::{Change, Desired, DeviceSnapshot, JobId, MobilityQuery, Profile, UnixTime};
use dls_message::MacAddr;

use crate::StoreError;
use crate::model::{
    Account, AuditFilter, AuditRecord, CertificateRecord, ConsoleSession, ContactClaim, ContactTarget, CredentialScope,
    DeviceDetails, DeviceFilter, DeviceSpec, DeviceSummary, DeviceUpdate, DigestEvent, FallbackCredential, FileRecord,
    FleetSummary, JobFilter, JobRecord, MobilityContext, NewAuditRecord, NewDigestEvent, NewFile, NewJob, NewUser,
    Pruned, SecurityUpdate, TokenRecord, UserDataValue, UserDetails, UserSummary,
};

/// The caller's part of one message, run by [`ProtocolStore::run_message`]: given what the
/// store holds of the device, the changes to commit (`Some`, possibly empty), or `None` to
/// commit nothing.
pub type MessageFn<'a> = dyn FnMut(&DeviceSnapshot, &Desired) -> Option<Vec<Change>> + 'a;

/// The protocol path: what one phone message reads and writes.
///
/// # Atomicity of one message
///
/// One message of a device is handled as *load → engine → apply*; two messages of the
/// same device must not interleave (the second would decide on a state the first is about
/// to change: a nonce accepted twice, a job sent twice, an inventory lost). What a backend
/// guarantees:
///
/// * [`Self::run_message`] runs the whole of it under the backend's own exclusion of the
///   device, whatever process or node the other message is handled by. SQLite: its one
///   writer transaction (`BEGIN IMMEDIATE`), which excludes every other writer of the
///   file; PostgreSQL: a transaction holding a transaction-scoped advisory lock on the
///   device's MAC (which a device not yet registered has too).
/// * [`Self::load_for_message`] reads one committed state, and [`Self::apply`] commits all
///   of a message's changes or none, but nothing excludes another message of the device
///   between them: a caller that uses them must serialise a device's messages itself. The
///   service does, with its per-device locks, which is enough in one process and not
///   across nodes.
pub trait ProtocolStore: Send + Sync {
    /// What the engine needs to know of a device (an unknown device gives
    /// [`DeviceSnapshot::unknown`]).
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError>;

    /// The device's desired configuration: its profiles layered (see
    /// [`dls_engine::desired`]), for its reported `device-type`, assigned profiles and
    /// overrides. An unknown device gets what applies to every device.
    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError>;

    /// [`Self::load_device`] and [`Self::desired`] as of one state of the store: what
    /// the engine needs for one message.
    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        Ok((self.load_device(mac)?, self.desired(mac)?))
    }

    /// Persists one message's changes for `mac`, all or nothing, in one transaction.
    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError>;

    /// One message as a whole: loads what [`Self::load_for_message`] loads, calls `f` with
    /// it, and applies the changes `f` returns as [`Self::apply`] does, in one transaction
    /// under the backend's exclusion of the device (see the trait's documentation), so
    /// that no other message of the device — from this process or another node — runs in
    /// between. `f` returning `None` commits nothing.
    ///
    /// `f` runs while the device (for SQLite: every writer) is excluded: it must be short
    /// (the engine is), with anything slow (a key derivation) done before. A backend may
    /// call `f` again, with a fresh load, when its transaction had to be retried (a
    /// serialisation failure); only the last call's changes are committed.
    ///
    /// # Errors
    /// As [`Self::load_for_message`] and [`Self::apply`]; on any error nothing is
    /// committed.
    fn run_message(&self, mac: MacAddr, f: &mut MessageFn<'_>) -> Result<(), StoreError>;

    /// The device's outstanding PIN as the caller sealed it ([`SecurityUpdate::new_pin`]),
    /// for sealing `secure-mode-data` and checking the TAN; `None` if none (or the device
    /// is unknown).
    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;

    /// The bootstrap material kept for a device (as the caller sealed it, see
    /// [`dls_engine::Change::KeepBootstrap`]); `None` if none is kept or the device is
    /// unknown. It is dropped when the device bootstraps, fails to, is reset, gets a new PIN
    /// or another mode, and when a new certificate is issued to it.
    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;
}

/// One message of a device, atomically: [`ProtocolStore::run_message`] for a closure that
/// also returns a value of its own, or fails with the caller's error (then nothing is
/// committed). Works on `dyn Store` as on a concrete backend.
///
/// # Errors
/// `f`'s error, or the store's (converted with `From`).
pub fn with_device<S, T, E>(
    store: &S,
    mac: MacAddr,
    mut f: impl FnMut(&DeviceSnapshot, &Desired) -> Result<(Vec<Change>, T), E>,
) -> Result<T, E>
where
    S: ProtocolStore + ?Sized,
    E: From<StoreError>,
{
    let mut last: Option<Result<T, E>> = None;
    store.run_message(mac, &mut |device, desired| match f(device, desired) {
        Ok((changes, value)) => {
            last = Some(Ok(value));
            Some(changes)
        }
        Err(e) => {
            last = Some(Err(e));
            None
        }
    })?;
    last.unwrap_or_else(|| Err(StoreError::Invalid("the store ran no message".into()).into()))
}

/// Devices and profiles, as the admin API manages them.
pub trait DeviceStore: Send + Sync {
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

    /// Forgets a device and everything recorded about it (but its audit records). `false`
    /// if it was unknown.
    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError>;

    /// The fleet at a glance: devices by type, version and security mode, those that called
    /// in since `since`, pending bootstraps, open jobs and jobs failed since `since`, security
    /// refusals since `since`. One consistent read.
    fn fleet_summary(&self, since: UnixTime) -> Result<FleetSummary, StoreError>;

    /// Every profile, by name.
    fn profiles(&self) -> Result<Vec<Profile>, StoreError>;

    /// One profile, or `None`.
    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError>;

    /// Creates or replaces a profile (its `name` field names it; see
    /// [`rules::check_profile_name`](crate::rules::check_profile_name)).
    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError>;

    /// Deletes a profile, its assignments and its fallback credentials. `false` if it did
    /// not exist.
    fn delete_profile(&self, name: &str) -> Result<bool, StoreError>;
}

/// Secure mode, as the admin API manages it (the protocol path's part is in
/// [`ProtocolStore`]).
pub trait SecurityStore: Send + Sync {
    /// Changes a device's security (mode, reset, new PIN) with its audit records, in one
    /// transaction, at `at`, as [`rules::security::plan`](crate::rules::security::plan)
    /// says. [`StoreError::NotFound`] if unknown; [`StoreError::Invalid`] for a PIN on a
    /// secured device without `reset`.
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError>;

    /// The certificates issued to a device, newest first by order of issue; empty for an
    /// unknown device.
    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError>;
}

/// Digest credentials for provisioning-file downloads. Secrets arrive sealed by the caller
/// (the store keeps opaque ciphertext, never a password).
pub trait CredentialStore: Send + Sync {
    /// Sets (`Some`) or clears (`None`) a device's sealed secret (its "MAC-ID").
    /// [`StoreError::NotFound`] if the device is unknown; clearing a device's secret when it
    /// has none is no error.
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError>;

    /// A device's sealed secret, if any (`None` for an unknown device too).
    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets (`Some`) or removes (`None`) a fallback credential for a scope.
    /// [`StoreError::Invalid`] for a username [`rules::check_username`](crate::rules::check_username)
    /// refuses, or a profile that does not exist (for a removal too); removing one that
    /// does not exist is [`StoreError::NotFound`]. A username is matched exactly.
    fn set_fallback_credential(
        &self,
        scope: &CredentialScope,
        username: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError>;

    /// The fallback credentials that apply to a device: those of its assigned profiles in
    /// assignment order, then the global ones; within a scope, by username (as `str`
    /// orders). A device the store does not know gets the global ones.
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError>;

    /// Every fallback credential, without secrets (admin listing): the global scope first,
    /// then the profiles by name; within a scope, by username.
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError>;
}

/// Jobs, contact-me, and deployment files (their content is kept by the caller, by id).
pub trait JobStore: Send + Sync {
    /// Queues jobs, all or none. [`StoreError::NotFound`] if a device or a file is unknown.
    /// Each gets an id never handed out before.
    fn add_jobs(&self, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError>;

    /// Jobs matching `filter`, newest first.
    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError>;

    /// One job, or `None`.
    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Cancels a job that is not over ([`rules::jobs::cancel`](crate::rules::jobs::cancel)).
    /// [`StoreError::NotFound`] if unknown, [`StoreError::Conflict`] if it is over already.
    fn cancel_job(&self, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError>;

    /// Whether a device has jobs the DLS still has to send
    /// ([`rules::jobs::is_pending`](crate::rules::jobs::is_pending)): what a DCMP poll answers.
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

    /// Records a file, with an id never handed out before.
    /// [`StoreError::Conflict`] if a file of that type and name exists.
    fn add_file(&self, file: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError>;

    /// Every file, by id.
    fn files(&self) -> Result<Vec<FileRecord>, StoreError>;

    /// One file, or `None`.
    fn file(&self, id: i64) -> Result<Option<FileRecord>, StoreError>;

    /// Forgets a file; the jobs that deploy it and are not over fail
    /// ([`rules::jobs::file_deleted`](crate::rules::jobs::file_deleted)). `None` if unknown.
    fn delete_file(&self, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError>;
}

/// Maintenance: retention, and the leases that keep it to one node at a time.
pub trait MaintenanceStore: Send + Sync {
    /// Deletes the audit records from before `audit_before`, and the jobs that are over
    /// (done, failed, cancelled) and last changed before `jobs_before`; `None` deletes none
    /// of that kind. Jobs not over are kept whatever their age, and so are deployment files
    /// (a deleted job's file stays, with the other jobs that deploy it). Deletes in small
    /// transactions, one after the other, so that the protocol path never waits long for
    /// the store: each is committed by itself, and an error leaves those before it done.
    /// Returns how many records of each kind were deleted.
    fn prune(&self, audit_before: Option<UnixTime>, jobs_before: Option<UnixTime>) -> Result<Pruned, StoreError>;

    /// Takes or renews the lease `name` for `node` until `until`, at `now`: `true` if
    /// `node` holds it now — it was free, had expired (`until` not after `now`), or was
    /// `node`'s already — `false` if another node holds it. For work that must run on
    /// one node at a time (retention), whatever the number of nodes on the database.
    fn try_lease(&self, name: &str, node: &str, now: UnixTime, until: UnixTime) -> Result<bool, StoreError>;

    /// Gives the lease `name` up if `node` holds it (a no-op otherwise).
    fn release_lease(&self, name: &str, node: &str) -> Result<(), StoreError>;

    /// The requests this store has sent to a database server and waited for since it was
    /// opened (each statement, `BEGIN` and `COMMIT` included), for `/metrics`; `None` for a
    /// store that works in the process (SQLite), which has no round trips to count.
    fn database_round_trips(&self) -> Option<u64> {
        None
    }
}

/// The contact-me schedule kept in the store (`contact_schedule`): one row per phone with
/// its next permitted time, its failures in a row, whether it is wanted, and the node that
/// has claimed it until when. For several nodes on one database: each due contact-me is
/// claimed by one node, and the pacing ([`rules::contact`](crate::rules::contact)) holds
/// across the nodes.
///
/// A backend guarantees that [`Self::contact_claim_due`] never hands one phone to two
/// callers while a claim stands, whatever process or node they are in.
pub trait ContactStore: Send + Sync {
    /// `mac` needs contacting (a job was queued, an administrator asked): it is due at its
    /// next permitted time, or at `now` if it has none. Idempotent; `forced` (contact it
    /// even without pending jobs) is kept until the next attempt ends.
    fn contact_want(&self, mac: MacAddr, now: UnixTime, forced: bool) -> Result<(), StoreError>;

    /// Claims for `node`, until `now + lease_secs`, at most `limit` phones that are wanted,
    /// due (next permitted time not after `now`) and not claimed (or whose claim has
    /// expired: its end not after `now`), earliest due first. Forgets the phones that are
    /// neither wanted nor claimed and whose next permitted time has passed.
    fn contact_claim_due(
        &self,
        node: &str,
        now: UnixTime,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<ContactClaim>, StoreError>;

    /// The attempt `node` claimed for `mac` ended at `now` (`success`: the phone answered
    /// `204`): the failures in a row and the next permitted time are as
    /// [`ContactPacing::after_attempt`](crate::rules::contact::ContactPacing::after_attempt)
    /// says, the phone stays wanted, `forced` is cleared, and `node`'s claim is given up.
    fn contact_finished(
        &self,
        mac: MacAddr,
        node: &str,
        now: UnixTime,
        success: bool,
        pacing: &crate::rules::contact::ContactPacing,
    ) -> Result<(), StoreError>;

    /// `node` claimed `mac` but sent nothing (nothing is pending any more): the phone is
    /// no longer wanted, `node`'s claim is given up, its next permitted time stays.
    fn contact_cancel(&self, mac: MacAddr, node: &str) -> Result<(), StoreError>;

    /// When a phone is next due, for the sender's wake-up: the earliest time a wanted phone
    /// may be claimed (its next permitted time, or its claim's end if that is later);
    /// `None` when no phone is wanted.
    fn contact_next_due(&self) -> Result<Option<UnixTime>, StoreError>;
}

/// Interaction sessions kept between two messages of a phone, for the node that gets the
/// next one, whichever it is: the engine's `Session` encoded (`Session::to_bytes`), by an
/// id the caller chooses (the service: a SHA-256 of the session cookie, in hex).
///
/// A session is taken, not read: [`Self::take_session`] removes it in the same statement,
/// so that of two messages with the same cookie (on one node or two) one gets the session
/// and the other none. A session is valid until its `expires_at` (excluded), by the time
/// the caller passes (the store reads no clock); expired ones are never handed out and go
/// with [`Self::prune_sessions`].
pub trait SessionStore: Send + Sync {
    /// Keeps `bytes` as the session `id` of device `mac` until `expires_at`, replacing a
    /// session of that id. [`StoreError::Invalid`] for what
    /// [`rules::check_session`](crate::rules::check_session) refuses.
    fn put_session(&self, id: &str, mac: MacAddr, expires_at: UnixTime, bytes: &[u8]) -> Result<(), StoreError>;

    /// Removes the session `id` and returns it, unless it expired by `now` (then it is
    /// removed too, and `None` returned); `None` if there is none.
    fn take_session(&self, id: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes the sessions expired by `now`, then, of those left, all but the
    /// `keep_at_most` that expire last. Returns how many were deleted.
    fn prune_sessions(&self, now: UnixTime, keep_at_most: usize) -> Result<u64, StoreError>;
}

/// The audit log: the security events of devices (written with the protocol's changes and
/// with [`SecurityStore::update_security`]) and the administrative changes, each with its
/// actor, in one log, newest first. It outlives the devices and accounts it tells of; only
/// [`MaintenanceStore::prune`] deletes from it, by age.
pub trait AuditStore: Send + Sync {
    /// Appends an administrative change (or a login) to the log, as
    /// [`rules::accounts::audit_record`](crate::rules::accounts::audit_record) keeps it.
    /// [`StoreError::Invalid`] for an actor it refuses or a time past `i64`.
    fn record_audit(&self, record: &NewAuditRecord) -> Result<(), StoreError>;

    /// The records that match `filter`, newest first (by order of writing), at most its
    /// limit ([`rules::accounts::audit_limit`](crate::rules::accounts::audit_limit)). A
    /// page after another: `before` set to the last record's id.
    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    /// The audit log, newest first, for one device or all, at most `limit` records
    /// (capped at [`rules::MAX_AUDIT_LIMIT`](crate::rules::MAX_AUDIT_LIMIT)). Records of
    /// deleted devices are kept, and listed.
    fn audit(&self, mac: Option<MacAddr>, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.audit_log(&AuditFilter { mac, limit: Some(limit), ..AuditFilter::default() })
    }
}

/// Console and API accounts, their API tokens and their console sessions. A store keeps a
/// password only as its Argon2id hash, and a token or a session only as a SHA-256 of it
/// (`key`): what it holds cannot be presented by a client. An account's tokens and
/// sessions go with it.
pub trait AccountStore: Send + Sync {
    /// Creates an account. [`StoreError::Conflict`] if the name is taken;
    /// [`StoreError::Invalid`] for a name or hash the rules refuse
    /// ([`rules::accounts`](crate::rules::accounts)).
    fn add_account(&self, name: &str, role: Role, password_hash: &str, at: UnixTime) -> Result<Account, StoreError>;

    /// Every account, by name.
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// One account, or `None`.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;

    /// An account's password hash, for checking a login; `None` if there is no such account.
    fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Changes an account's role. [`StoreError::NotFound`] if unknown.
    fn set_role(&self, name: &str, role: Role, at: UnixTime) -> Result<Account, StoreError>;

    /// Replaces an account's password hash and ends its console sessions (whoever knew the
    /// old password is logged out). [`StoreError::NotFound`] if unknown.
    fn set_password(&self, name: &str, password_hash: &str, at: UnixTime) -> Result<(), StoreError>;

    /// Deletes an account with its tokens and sessions. `false` if it did not exist.
    fn delete_account(&self, name: &str) -> Result<bool, StoreError>;

    /// Records a successful console login.
    fn record_login(&self, name: &str, at: UnixTime) -> Result<(), StoreError>;

    /// Adds an API token of `account`, kept as `key` (the token's SHA-256, hex).
    /// [`StoreError::NotFound`] for an unknown account, [`StoreError::Conflict`] if the
    /// account has a token of that name, [`StoreError::Invalid`] beyond
    /// [`MAX_TOKENS_PER_ACCOUNT`](crate::rules::accounts::MAX_TOKENS_PER_ACCOUNT).
    fn add_token(&self, account: &str, name: &str, key: &str, at: UnixTime) -> Result<TokenRecord, StoreError>;

    /// The API tokens of one account, or of all, by account and name.
    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenRecord>, StoreError>;

    /// The account and token name of the token kept as `key`, recording its use at `at`
    /// (at most once per [`TOKEN_USE_RESOLUTION_SECS`](crate::rules::accounts::TOKEN_USE_RESOLUTION_SECS));
    /// `None` if no token is kept as `key`.
    fn use_token(&self, key: &str, at: UnixTime) -> Result<Option<(Account, String)>, StoreError>;

    /// Revokes (deletes) an account's token. `false` if there was none of that name.
    fn revoke_token(&self, account: &str, name: &str) -> Result<bool, StoreError>;

    /// Starts a console session of `account`, kept as `key` (a SHA-256 of its id), at `at`;
    /// the account's sessions beyond
    /// [`MAX_SESSIONS_PER_ACCOUNT`](crate::rules::accounts::MAX_SESSIONS_PER_ACCOUNT) that
    /// were used least lately end. [`StoreError::NotFound`] for an unknown account.
    fn add_console_session(&self, key: &str, account: &str, at: UnixTime) -> Result<(), StoreError>;

    /// The session kept as `key`, with its account, or `None`. Whether it has expired is the
    /// caller's to decide (its policy, [`dls_accounts::SessionPolicy`]).
    fn console_session(&self, key: &str) -> Result<Option<ConsoleSession>, StoreError>;

    /// Records a request of the session at `at` (its last seen time never goes back).
    fn touch_console_session(&self, key: &str, at: UnixTime) -> Result<(), StoreError>;

    /// Ends a session (a logout, or an expired one). `false` if there was none.
    fn delete_console_session(&self, key: &str) -> Result<bool, StoreError>;

    /// Deletes the sessions last seen before `idle_before` or made before `created_before`
    /// (expired by the caller's policy). Returns how many.
    fn prune_console_sessions(&self, idle_before: UnixTime, created_before: UnixTime) -> Result<u64, StoreError>;
}

/// HTTP Digest state shared by the nodes of one store (`docs/digest.md`): the nonce counts
/// used, so that a replayed `Authorization` is refused on every node, and the throttle's
/// events, so that each node counts the failures of all of them.
///
/// Both tables are pruned as they are written: each recording call also deletes at most
/// [`rules::digest::DIGEST_PRUNE_BATCH`](crate::rules::digest::DIGEST_PRUNE_BATCH) rows of
/// each that no longer matter, more than it adds, so the tables hold about what was
/// recorded within their lifetimes. Only the service's evaluated attempts are recorded, so
/// requests without credentials never grow them.
///
/// A backend guarantees, whatever process or node the callers are in:
/// * of several [`Self::record_digest_use`] calls for one `(nonce, nc)`, at most one returns
///   `true` while the use is remembered;
/// * event ids increase in the order events become visible: once a reader has read an event
///   of id `n`, no event of id `n` or below appears later (a follower reading "after the
///   last id seen" misses none), and ids are never handed out again.
pub trait DigestStore: Send + Sync {
    /// Records the first use of count `nc` of `nonce` (opaque bytes, see
    /// [`rules::digest::check_use`](crate::rules::digest::check_use)), remembered at least
    /// until `expires_at`, and with it `event` (the success), in one transaction: `true`. If
    /// that use is remembered already: `false`, and nothing recorded. Forgets some uses that
    /// expired before `event.at` and events from before `forget_before`.
    fn record_digest_use(
        &self,
        nonce: &[u8],
        nc: u32,
        expires_at: UnixTime,
        event: &NewDigestEvent,
        forget_before: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Records `event` (a failure) for the other nodes; forgets some events from before
    /// `forget_before`.
    fn record_digest_event(&self, event: &NewDigestEvent, forget_before: UnixTime) -> Result<(), StoreError>;

    /// The events after id `after` at or after `since`, by id, at most `limit` (capped at
    /// [`rules::digest::MAX_DIGEST_EVENTS`](crate::rules::digest::MAX_DIGEST_EVENTS)).
    fn digest_events(&self, after: i64, since: UnixTime, limit: usize) -> Result<Vec<DigestEvent>, StoreError>;
}

/// Mobility users (hot desking): the administrator's part, and what the protocol path
/// loads for a message ([`Self::mobility_context`]). What a message changes of a user
/// (logged on, off, its data saved, the throttle's counts) are
/// [`dls_engine::MobilityChange`]s applied with the message's other changes
/// ([`ProtocolStore::apply`], [`ProtocolStore::run_message`]): a
/// [`MobilityChange::Expect`](dls_engine::MobilityChange::Expect) whose revision is not the
/// user's fails the whole transaction with [`StoreError::Contended`].
///
/// A user is logged on at one device at most, and a device has one user logged on at
/// most; deleting a device logs its user off. Numbers are kept normalised
/// ([`rules::mobility::check_number`](crate::rules::mobility::check_number)).
pub trait MobilityStore: Send + Sync {
    /// Creates a user at `at`. [`StoreError::Conflict`] if the number exists;
    /// [`StoreError::Invalid`] for what [`rules::mobility`](crate::rules::mobility) refuses
    /// or a profile that does not exist.
    fn add_user(&self, user: &NewUser, at: UnixTime) -> Result<(), StoreError>;

    /// Every user, by number.
    fn users(&self) -> Result<Vec<UserSummary>, StoreError>;

    /// One user with the list of its saved data, or `None`.
    fn user(&self, number: &str) -> Result<Option<UserDetails>, StoreError>;

    /// Deletes a user and its data (logged on or not: the phone's next report restores its
    /// identity). `false` if it did not exist.
    fn delete_user(&self, number: &str) -> Result<bool, StoreError>;

    /// Replaces a user's password hash. [`StoreError::NotFound`] if unknown.
    fn set_user_password(&self, number: &str, password_hash: &str) -> Result<(), StoreError>;

    /// Replaces a user's mobility profiles. [`StoreError::NotFound`] if unknown,
    /// [`StoreError::Invalid`] as for [`Self::add_user`].
    fn set_user_profiles(&self, number: &str, profiles: &[String]) -> Result<(), StoreError>;

    /// One saved data item of a user, with its value; `None` if the user or the item does
    /// not exist.
    fn user_data(&self, number: &str, name: &str) -> Result<Option<UserDataValue>, StoreError>;

    /// What one message of `mac` needs of the users, as `query` says, from one state of
    /// the store: the user logged on at `mac`, the user `query` names, the users of the
    /// device's mobility jobs (with their data values when `query.job_data` names them),
    /// the values of the saved items `query.restore` names of the user logged on here, and
    /// the throttle's rows of the password check (`query.check_password`: the named user,
    /// or the one here).
    fn mobility_context(&self, mac: MacAddr, query: &MobilityQuery) -> Result<MobilityContext, StoreError>;

    /// Queues a `mobility-logon` job of `number` for `mac` at `at` (`dls user logon`).
    /// [`StoreError::NotFound`] for an unknown user or device; [`StoreError::Conflict`]
    /// when the user is logged on at another device.
    fn queue_logon(&self, number: &str, mac: MacAddr, at: UnixTime) -> Result<JobRecord, StoreError>;

    /// Queues a `mobility-logoff` job of `number` for the device it is logged on at, and
    /// records the request at `at` (`dls user logoff`); an open one is returned instead of
    /// a second. [`StoreError::NotFound`] for an unknown user; [`StoreError::Conflict`]
    /// when it is not logged on.
    fn queue_logoff(&self, number: &str, at: UnixTime) -> Result<JobRecord, StoreError>;
}

/// The whole storage interface of the DLS service: every part. Implemented for every type
/// that implements the parts, so the service holds one `Arc<dyn Store>`. Implementations
/// are safe to share between threads; calls block (the async shell runs them off its
/// executor).
pub trait Store:
    ProtocolStore
    + DeviceStore
    + SecurityStore
    + CredentialStore
    + JobStore
    + ContactStore
    + MaintenanceStore
    + SessionStore
    + AuditStore
    + AccountStore
    + DigestStore
    + MobilityStore
    + 'static
{
}

impl<T> Store for T where
    T: ProtocolStore
        + DeviceStore
        + SecurityStore
        + CredentialStore
        + JobStore
        + ContactStore
        + MaintenanceStore
        + SessionStore
        + AuditStore
        + AccountStore
        + DigestStore
        + MobilityStore
        + 'static
{
}
