//! The records the storage interface speaks in (also the admin API's JSON).

use std::net::IpAddr;

use dls_engine::{AuditKind, BootstrapState, ItemKey, SecurityMode, UnixTime, WriteOutcome};
use dls_message::{Item, MacAddr};
use serde::{Deserialize, Serialize};

/// Which devices to list. Every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceFilter {
    /// Devices assigned this profile.
    pub profile: Option<String>,
    /// Devices reporting this `device-type`.
    pub device_type: Option<String>,
    /// Devices whose MAC or `e164` contains this text (case-insensitive).
    pub search: Option<String>,
    /// The most devices returned (default: all).
    pub limit: Option<usize>,
}

/// A device in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// The device.
    pub mac: MacAddr,
    /// Its reported `device-type`.
    pub device_type: Option<String>,
    /// Its reported `software-version`.
    pub software_version: Option<String>,
    /// Its reported `e164`.
    pub e164: Option<String>,
    /// Its assigned profiles, in order.
    pub profiles: Vec<String>,
    /// Its last contact.
    pub last_contact: Option<UnixTime>,
}

/// The last write of one item, without the fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenSummary {
    /// The item.
    pub item: ItemKey,
    /// How the phone took it.
    pub outcome: WriteOutcome,
}

/// Everything known of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetails {
    /// The listing fields.
    #[serde(flatten)]
    pub summary: DeviceSummary,
    /// When it was registered.
    pub registered_at: UnixTime,
    /// Why it last called (`start-up`, …).
    pub last_reason: Option<String>,
    /// When its full inventory was last read.
    pub inventory_at: Option<UnixTime>,
    /// Its inventory: what it reported, last value each.
    pub inventory: Vec<Item>,
    /// Its own overrides of the desired configuration.
    pub overrides: Vec<Item>,
    /// The last write of each item.
    pub written: Vec<WrittenSummary>,
    /// Its last deployment status report (`file-deployment-*` items).
    pub last_deployment_status: Vec<Item>,
    /// The reason it gave the last time it ended an interaction itself.
    pub last_phone_cleanup_reason: Option<String>,
    /// Its security: mode, bootstrap state, certificate (never the PIN).
    pub security: SecuritySummary,
}

/// A device's security, as the admin API shows it: never the PIN or the TAN.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecuritySummary {
    /// `default`, `nopin` or `pin`.
    pub mode: SecurityMode,
    /// `not-bootstrapped`, `secured` or `failed`.
    pub state: BootstrapState,
    /// Whether a PIN is outstanding.
    pub pin_outstanding: bool,
    /// When the outstanding PIN was issued.
    pub pin_issued_at: Option<UnixTime>,
    /// Wrong TANs since the PIN was issued.
    pub tan_failures: u32,
    /// The current certificate's serial number.
    pub certificate: Option<String>,
}

/// A change to a device's security, made by an administrator. Applied in one transaction,
/// with its audit records.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityUpdate {
    /// Change the mode. To `default`: the outstanding PIN is wiped.
    pub mode: Option<SecurityMode>,
    /// Return the device to "not bootstrapped", revoking its current certificate.
    pub reset: bool,
    /// Issue this PIN, sealed by the caller (its digits generated from a CSPRNG and sealed
    /// with the caller's key: the store keeps opaque bytes, 1 to 1024 of them, never the
    /// digits): the previous one stops working, the TAN failures are cleared, and a failed
    /// device may bootstrap again. Refused for a device in state `secured` unless `reset`
    /// is set too.
    pub new_pin: Option<Vec<u8>>,
}

impl std::fmt::Debug for SecurityUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityUpdate")
            .field("mode", &self.mode)
            .field("reset", &self.reset)
            .field("new_pin", &self.new_pin.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A stored client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// The device.
    pub mac: MacAddr,
    /// Serial number, hex upper case.
    pub serial: String,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires.
    pub not_after: UnixTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When.
    pub at: UnixTime,
    /// The device.
    pub mac: MacAddr,
    /// What happened.
    pub kind: AuditKind,
    /// A one-line explanation (no secrets).
    pub detail: String,
}

/// A device registered by an administrator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSpec {
    /// Profiles to assign, in order.
    pub profiles: Vec<String>,
    /// Item overrides.
    pub overrides: Vec<Item>,
    /// Its Digest secret, sealed by the caller (as for [`crate::CredentialStore::set_device_secret`]).
    #[serde(skip)]
    pub secret: Option<Vec<u8>>,
    /// Its security mode and PIN (as for [`crate::SecurityStore::update_security`]), set in the
    /// same transaction as the rest.
    #[serde(skip)]
    pub security: Option<SecurityUpdate>,
}

/// Changes to a device; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceUpdate {
    /// Replace the assigned profiles.
    pub profiles: Option<Vec<String>>,
    /// Replace the overrides.
    pub overrides: Option<Vec<Item>>,
}

/// Where a fallback digest credential applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialScope {
    /// Every device.
    Global,
    /// Devices assigned this profile.
    Profile(String),
}

/// A fallback credential that applies to a device.
#[derive(Clone, PartialEq, Eq)]
pub struct FallbackCredential {
    /// Where it comes from.
    pub scope: CredentialScope,
    /// The username, exactly as configured.
    pub username: String,
    /// The sealed password.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for FallbackCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackCredential")
            .field("scope", &self.scope)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A job to queue for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// The device.
    pub mac: MacAddr,
    /// What to do.
    pub kind: dls_engine::JobKind,
}

/// A job, as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: dls_engine::JobId,
    /// The device.
    pub mac: MacAddr,
    /// What it does.
    pub job: dls_engine::JobKind,
    /// Where it is.
    pub state: dls_engine::JobState,
    /// When it was queued.
    pub created_at: UnixTime,
    /// When it last changed.
    pub updated_at: UnixTime,
    /// Times it was sent without an answer.
    pub attempts: u32,
    /// Whether the phone accepted it (a deployment in progress).
    pub accepted: bool,
    /// What the phone answered, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Items of the answer: values read, or items refused with their statuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// The last contact-me sent for it, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_at: Option<UnixTime>,
}

/// A phone a node claimed in the shared contact-me schedule
/// ([`ContactStore::contact_claim_due`](crate::ContactStore::contact_claim_due)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactClaim {
    /// The phone.
    pub mac: MacAddr,
    /// An administrator asked for the contact-me: it goes even without pending jobs.
    pub forced: bool,
}

/// Where to send a device's contact-me.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactTarget {
    /// The `contact-me-uri` the phone reported.
    pub uri: String,
    /// The address the phone last called the DLS from, when known.
    pub caller: Option<IpAddr>,
}

impl ContactTarget {
    /// A target.
    #[must_use]
    pub fn new(uri: impl Into<String>, caller: Option<IpAddr>) -> Self {
        Self { uri: uri.into(), caller }
    }
}

/// Which jobs to list. Every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobFilter {
    /// One device's.
    pub mac: Option<MacAddr>,
    /// In this state.
    pub state: Option<dls_engine::JobState>,
    /// The most jobs returned, newest first (default 1,000).
    pub limit: Option<usize>,
}

/// A deployment file to record (its content is in the file store already).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFile {
    /// The name phones see (`file-name`).
    pub name: String,
    /// `file-type`: `APP` (firmware), `RINGTONE`, `MOH`, `PIC`, `LDAP`, `LOGO`, `SCREENSAVER`, …
    pub file_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Firmware: the device types it is for (empty: not known).
    #[serde(default)]
    pub device_types: Vec<String>,
    /// Firmware: its `software-type`.
    #[serde(default)]
    pub software_type: Option<String>,
    /// Firmware: its version (`V3 R5.12.0`).
    #[serde(default)]
    pub software_version: Option<String>,
}

/// A deployment file in the file store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Its id (its content is `files/<id>` in the data directory).
    pub id: i64,
    /// The recorded fields.
    #[serde(flatten)]
    pub file: NewFile,
    /// When it was added.
    pub added_at: UnixTime,
}

/// What [`MaintenanceStore::prune`](crate::MaintenanceStore::prune) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pruned {
    /// Audit records.
    pub audit_records: u64,
    /// Jobs that were over.
    pub jobs: u64,
}

impl Pruned {
    /// Whether nothing was deleted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.audit_records == 0 && self.jobs == 0
    }
}

/// A mobility user to create (`dls user add`).
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The number, normalised ([`dls_engine::mobility::normalise_number`]).
    pub number: String,
    /// A display name.
    pub name: Option<String>,
    /// The password's Argon2id hash, in the PHC string format (never the password).
    pub password_hash: String,
    /// The mobility profiles, in order (later wins).
    pub profiles: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("number", &self.number)
            .field("name", &self.name)
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

/// Where a mobility user is logged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOn {
    /// The device.
    pub mac: MacAddr,
    /// Since when.
    pub since: UnixTime,
}

/// A mobility user in a listing (never the password or its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The number.
    pub number: String,
    /// The display name.
    pub name: Option<String>,
    /// The mobility profiles, in order.
    pub profiles: Vec<String>,
    /// Where the user is logged on, if anywhere.
    pub logged_on: Option<LoggedOn>,
    /// When a forced logoff was asked for (it is pending).
    pub logoff_requested_at: Option<UnixTime>,
    /// How many data items are saved.
    pub data_items: u64,
    /// Their decoded size in all, bytes.
    pub data_bytes: u64,
    /// When the user was created.
    pub created_at: UnixTime,
}

/// One saved data item of a user, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDataInfo {
    /// The item (`userdata-…`).
    pub name: String,
    /// Its decoded size, bytes.
    pub size: u64,
    /// When it was saved.
    pub saved_at: UnixTime,
}

/// A mobility user with the list of its saved data (never the data, the password or its
/// hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    /// The listing fields.
    #[serde(flatten)]
    pub summary: UserSummary,
    /// The saved data, by name.
    pub data: Vec<UserDataInfo>,
}

/// One saved data item of a user, with its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDataValue {
    /// The item.
    pub name: String,
    /// Its value, the Base64 text the phone sent.
    pub value: String,
    /// Its decoded size, bytes.
    pub size: u64,
    /// When it was saved.
    pub saved_at: UnixTime,
}

impl std::fmt::Debug for UserDataValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDataValue").field("name", &self.name).field("size", &self.size).finish_non_exhaustive()
    }
}

/// A mobility user as the protocol path needs it: the engine's view, and the password
/// hash the shell checks a phone's password against.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// The engine's view.
    pub user: dls_engine::MobilityUser,
    /// The password's Argon2id hash (PHC string).
    pub password_hash: String,
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser").field("user", &self.user).finish_non_exhaustive()
    }
}

/// What [`MobilityStore::mobility_context`](crate::MobilityStore::mobility_context) loads
/// for one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MobilityContext {
    /// The user logged on at the device.
    pub here: Option<StoredUser>,
    /// The user the query named (a logon, a restore), if the store knows it.
    pub named: Option<StoredUser>,
    /// The users the device's mobility jobs name, that the store knows.
    pub job_users: Vec<dls_engine::MobilityUser>,
    /// The throttle's state for the password check the query asks for.
    pub throttle: crate::rules::mobility::ThrottleState,
}
