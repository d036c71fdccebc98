//! The conformance suite of the storage traits: every store test that is not about one
//! backend, written once against [`dls_store::Store`], run by every backend.
//!
//! Not a crate of its own, nor a test target of `dls-store`: each backend's integration
//! test binary includes this directory as a module and gives it a factory, one line:
//!
//! ```ignore
//! #[path = "../../../dls-store/conformance/mod.rs"]
//! mod conformance;
//!
//! /// A fresh, empty store for one test (the suite calls it for every test).
//! pub(crate) fn backend() -> conformance::Fixture {
//!     conformance::Fixture::new(MyStore::connect_fresh().expect("opens"), ())
//! }
//! ```
//!
//! Every `#[test]` here then runs against that backend, the model-based property test
//! (`model`) included. A test that needs to look at or damage the database behind the
//! store's back is backend-specific and stays in the backend's own tests.
//!
//! The topics: `accounts` (accounts, API tokens, console sessions), `admin` (devices and
//! profiles), `audit_log` (administrative records, filters, pages), `changes` (the engine's changes),
//! `concurrency` (threads, one state per read), `contact` (the shared contact-me schedule
//! and leases), `credentials`, `desired`, `ids` (never
//! reused), `jobs` (and files), `message` (one message atomically), `mobility` (users, their
//! data, the throttle, the engine's mobility changes and their races), `model` (the property
//! test), `retention`, `rules` (the domain rules as the backends apply them), `security`,
//! `sessions` (interaction sessions), `digest` (Digest state shared by nodes).

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod audit_log;
pub(crate) mod changes;
pub(crate) mod concurrency;
pub(crate) mod contact;
pub(crate) mod credentials;
pub(crate) mod desired;
pub(crate) mod digest;
pub(crate) mod ids;
pub(crate) mod jobs;
pub(crate) mod message;
pub(crate) mod mobility;
pub(crate) mod model;
pub(crate) mod retention;
pub(crate) mod rules;
pub(crate) mod security;
pub(crate) mod sessions;

use std::any::Any;
use std::fmt::Debug;

use dls_accounts::Role;
use dls_engine::{
    Change, Desired, DeviceSnapshot, ItemKey, JobId, MobilityQuery, Profile, SecurityMode, UnixTime, WriteOutcome,
    WrittenRecord,
};
use dls_message::{Item, MacAddr, Reason};
use dls_store::{
    Account, AuditFilter, AuditRecord, CertificateRecord, ConsoleSession, ContactClaim, ContactTarget, CredentialScope,
    DeviceDetails, DeviceFilter, DeviceSpec, DeviceSummary, DeviceUpdate, DigestEvent, FallbackCredential, FileRecord,
    JobFilter, JobRecord, MobilityContext, NewAuditRecord, NewDigestEvent, NewFile, NewJob, NewUser, Pruned,
    SecurityUpdate, Store, StoreError, TokenRecord, UserDataValue, UserDetails, UserSummary,
};

/// A store under test, and whatever must live as long as it (a temporary directory, a
/// database to drop afterwards). It is a [`Store`] itself, by the store's implementation:
/// the suite sees the traits only.
pub(crate) struct Fixture {
    // Dropped in this order: the store, then what it lives in.
    store: Box<dyn DebugStore>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// `store`, kept with `keep`.
    pub(crate) fn new(store: impl Store + Debug, keep: impl Any + Send + Sync) -> Self {
        Self { store: Box::new(store), _keep: Box::new(keep) }
    }
}

/// A store that shows itself (the suite checks that no secret is in what it shows).
trait DebugStore: Store + Debug {}

impl<T: Store + Debug> DebugStore for T {}

impl Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

// The store's own implementation of every method, so that a fixture is a `Store` (and
// `&fixture` a `&dyn Store`) wherever the suite needs one.

impl dls_store::ProtocolStore for Fixture {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        self.store.load_device(mac)
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        self.store.desired(mac)
    }

    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        self.store.load_for_message(mac)
    }

    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        self.store.apply(mac, changes)
    }

    fn run_message(&self, mac: MacAddr, f: &mut dls_store::MessageFn<'_>) -> Result<(), StoreError> {
        self.store.run_message(mac, f)
    }

    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.pin(mac)
    }

    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.pending_bootstrap(mac)
    }
}

impl dls_store::DeviceStore for Fixture {
    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError> {
        self.store.list_devices(filter)
    }

    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError> {
        self.store.device(mac)
    }

    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec, at: UnixTime) -> Result<(), StoreError> {
        self.store.add_device(mac, spec, at)
    }

    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError> {
        self.store.update_device(mac, update)
    }

    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError> {
        self.store.delete_device(mac)
    }

    fn fleet_summary(&self, since: UnixTime) -> Result<dls_store::FleetSummary, StoreError> {
        self.store.fleet_summary(since)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        self.store.profiles()
    }

    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        self.store.profile(name)
    }

    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        self.store.put_profile(profile)
    }

    fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        self.store.delete_profile(name)
    }
}

impl dls_store::SecurityStore for Fixture {
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError> {
        self.store.update_security(mac, update, at)
    }

    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError> {
        self.store.certificates(mac)
    }
}

impl dls_store::AuditStore for Fixture {
    fn record_audit(&self, record: &NewAuditRecord) -> Result<(), StoreError> {
        self.store.record_audit(record)
    }

    fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit_log(filter)
    }

    fn audit(&self, mac: Option<MacAddr>, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit(mac, limit)
    }
}

impl dls_store::AccountStore for Fixture {
    fn add_account(&self, name: &str, role: Role, password_hash: &str, at: UnixTime) -> Result<Account, StoreError> {
        self.store.add_account(name, role, password_hash, at)
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.store.accounts()
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.store.account(name)
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.store.password_hash(name)
    }

    fn set_role(&self, name: &str, role: Role, at: UnixTime) -> Result<Account, StoreError> {
        self.store.set_role(name, role, at)
    }

    fn set_password(&self, name: &str, password_hash: &str, at: UnixTime) -> Result<(), StoreError> {
        self.store.set_password(name, password_hash, at)
    }

    fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        self.store.delete_account(name)
    }

    fn record_login(&self, name: &str, at: UnixTime) -> Result<(), StoreError> {
        self.store.record_login(name, at)
    }

    fn add_token(&self, account: &str, name: &str, key: &str, at: UnixTime) -> Result<TokenRecord, StoreError> {
        self.store.add_token(account, name, key, at)
    }

    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        self.store.tokens(account)
    }

    fn use_token(&self, key: &str, at: UnixTime) -> Result<Option<(Account, String)>, StoreError> {
        self.store.use_token(key, at)
    }

    fn revoke_token(&self, account: &str, name: &str) -> Result<bool, StoreError> {
        self.store.revoke_token(account, name)
    }

    fn add_console_session(&self, key: &str, account: &str, at: UnixTime) -> Result<(), StoreError> {
        self.store.add_console_session(key, account, at)
    }

    fn console_session(&self, key: &str) -> Result<Option<ConsoleSession>, StoreError> {
        self.store.console_session(key)
    }

    fn touch_console_session(&self, key: &str, at: UnixTime) -> Result<(), StoreError> {
        self.store.touch_console_session(key, at)
    }

    fn delete_console_session(&self, key: &str) -> Result<bool, StoreError> {
        self.store.delete_console_session(key)
    }

    fn prune_console_sessions(&self, idle_before: UnixTime, created_before: UnixTime) -> Result<u64, StoreError> {
        self.store.prune_console_sessions(idle_before, created_before)
    }
}

impl dls_store::CredentialStore for Fixture {
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError> {
        self.store.set_device_secret(mac, sealed)
    }

    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.device_secret(mac)
    }

    fn set_fallback_credential(
        &self,
        scope: &CredentialScope,
        username: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.store.set_fallback_credential(scope, username, sealed)
    }

    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError> {
        self.store.fallback_credentials(mac)
    }

    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError> {
        self.store.list_fallback_credentials()
    }
}

impl dls_store::JobStore for Fixture {
    fn add_jobs(&self, jobs: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
        self.store.add_jobs(jobs, at)
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        self.store.jobs(filter)
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.store.job(id)
    }

    fn cancel_job(&self, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.store.cancel_job(id, at)
    }

    fn has_pending_jobs(&self, mac: MacAddr) -> Result<bool, StoreError> {
        self.store.has_pending_jobs(mac)
    }

    fn devices_with_pending_jobs(&self, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
        self.store.devices_with_pending_jobs(limit)
    }

    fn contact_target(&self, mac: MacAddr, always: bool) -> Result<Option<ContactTarget>, StoreError> {
        self.store.contact_target(mac, always)
    }

    fn record_contact(&self, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
        self.store.record_contact(mac, at, result)
    }

    fn download(&self, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
        self.store.download(token)
    }

    fn add_file(&self, file: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
        self.store.add_file(file, at)
    }

    fn files(&self) -> Result<Vec<FileRecord>, StoreError> {
        self.store.files()
    }

    fn file(&self, id: i64) -> Result<Option<FileRecord>, StoreError> {
        self.store.file(id)
    }

    fn delete_file(&self, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
        self.store.delete_file(id, at)
    }
}

impl dls_store::MaintenanceStore for Fixture {
    fn prune(&self, audit_before: Option<UnixTime>, jobs_before: Option<UnixTime>) -> Result<Pruned, StoreError> {
        self.store.prune(audit_before, jobs_before)
    }

    fn try_lease(&self, name: &str, node: &str, now: UnixTime, until: UnixTime) -> Result<bool, StoreError> {
        self.store.try_lease(name, node, now, until)
    }

    fn release_lease(&self, name: &str, node: &str) -> Result<(), StoreError> {
        self.store.release_lease(name, node)
    }
}

impl dls_store::ContactStore for Fixture {
    fn contact_want(&self, mac: MacAddr, now: UnixTime, forced: bool) -> Result<(), StoreError> {
        self.store.contact_want(mac, now, forced)
    }

    fn contact_claim_due(
        &self,
        node: &str,
        now: UnixTime,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<ContactClaim>, StoreError> {
        self.store.contact_claim_due(node, now, limit, lease_secs)
    }

    fn contact_finished(
        &self,
        mac: MacAddr,
        node: &str,
        now: UnixTime,
        success: bool,
        pacing: &dls_store::rules::contact::ContactPacing,
    ) -> Result<(), StoreError> {
        self.store.contact_finished(mac, node, now, success, pacing)
    }

    fn contact_cancel(&self, mac: MacAddr, node: &str) -> Result<(), StoreError> {
        self.store.contact_cancel(mac, node)
    }

    fn contact_next_due(&self) -> Result<Option<UnixTime>, StoreError> {
        self.store.contact_next_due()
    }
}

impl dls_store::SessionStore for Fixture {
    fn put_session(&self, id: &str, mac: MacAddr, expires_at: UnixTime, bytes: &[u8]) -> Result<(), StoreError> {
        self.store.put_session(id, mac, expires_at, bytes)
    }

    fn take_session(&self, id: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.take_session(id, now)
    }

    fn prune_sessions(&self, now: UnixTime, keep_at_most: usize) -> Result<u64, StoreError> {
        self.store.prune_sessions(now, keep_at_most)
    }
}

impl dls_store::DigestStore for Fixture {
    fn record_digest_use(
        &self,
        nonce: &[u8],
        nc: u32,
        expires_at: UnixTime,
        event: &NewDigestEvent,
        forget_before: UnixTime,
    ) -> Result<bool, StoreError> {
        self.store.record_digest_use(nonce, nc, expires_at, event, forget_before)
    }

    fn record_digest_event(&self, event: &NewDigestEvent, forget_before: UnixTime) -> Result<(), StoreError> {
        self.store.record_digest_event(event, forget_before)
    }

    fn digest_events(&self, after: i64, since: UnixTime, limit: usize) -> Result<Vec<DigestEvent>, StoreError> {
        self.store.digest_events(after, since, limit)
    }
}

impl dls_store::MobilityStore for Fixture {
    fn add_user(&self, user: &NewUser, at: UnixTime) -> Result<(), StoreError> {
        self.store.add_user(user, at)
    }

    fn users(&self) -> Result<Vec<UserSummary>, StoreError> {
        self.store.users()
    }

    fn user(&self, number: &str) -> Result<Option<UserDetails>, StoreError> {
        self.store.user(number)
    }

    fn delete_user(&self, number: &str) -> Result<bool, StoreError> {
        self.store.delete_user(number)
    }

    fn set_user_password(&self, number: &str, password_hash: &str) -> Result<(), StoreError> {
        self.store.set_user_password(number, password_hash)
    }

    fn set_user_profiles(&self, number: &str, profiles: &[String]) -> Result<(), StoreError> {
        self.store.set_user_profiles(number, profiles)
    }

    fn user_data(&self, number: &str, name: &str) -> Result<Option<UserDataValue>, StoreError> {
        self.store.user_data(number, name)
    }

    fn mobility_context(&self, mac: MacAddr, query: &MobilityQuery) -> Result<MobilityContext, StoreError> {
        self.store.mobility_context(mac, query)
    }

    fn queue_logon(&self, number: &str, mac: MacAddr, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.store.queue_logon(number, mac, at)
    }

    fn queue_logoff(&self, number: &str, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.store.queue_logoff(number, at)
    }
}

/// The time of the admin changes the tests make (devices added, security changed).
pub(crate) const AT: UnixTime = UnixTime(1_700_000_000);

/// A fresh, empty store of the backend under test.
pub(crate) fn store() -> Fixture {
    crate::backend()
}

/// A device's MAC, by number.
pub(crate) fn mac(n: u8) -> MacAddr {
    MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, n])
}

/// Registration in default mode.
pub(crate) const REGISTER: Change = Change::Register { mode: SecurityMode::Default };

pub(crate) fn contact(at: u64) -> Change {
    Change::Contact { at: UnixTime(at), reason: Reason::StartUp }
}

/// Registers `mac` as the engine does at a first contact.
pub(crate) fn register(store: &dyn Store, mac: MacAddr, at: u64) {
    store.apply(mac, &[REGISTER, contact(at)]).expect("registers");
}

pub(crate) fn key(name: &str, index: Option<u32>) -> ItemKey {
    ItemKey { name: name.into(), index }
}

pub(crate) fn record(byte: u8, outcome: WriteOutcome) -> WrittenRecord {
    WrittenRecord { fingerprint: [byte; 32], outcome }
}

pub(crate) fn profile(name: &str, device_type: Option<&str>, items: &[(&str, Option<u32>, &str)]) -> Profile {
    Profile {
        name: name.into(),
        device_type: device_type.map(Into::into),
        items: items.iter().map(|(n, i, v)| Item { index: *i, ..Item::new(*n, *v) }).collect(),
        ..Profile::default()
    }
}

/// `(name, index, value)` of items, for compact assertions.
pub(crate) fn triples(items: &[Item]) -> Vec<(String, Option<u32>, String)> {
    items.iter().map(|i| (i.name.clone(), i.index, i.value.clone())).collect()
}

pub(crate) fn t(name: &str, index: Option<u32>, value: &str) -> (String, Option<u32>, String) {
    (name.into(), index, value.into())
}
