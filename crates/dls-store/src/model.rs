//! The records the storage interface speaks in (also the admin API's JSON).

use std::net::IpAddr;

use dls_accounts::Role;
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
    /// Devices reporting this `software-version`.
    pub software_version: Option<String>,
    /// Devices whose MAC or `e164` contains this text (case-insensitive).
    pub search: Option<String>,
    /// Only the devices past this MAC in the listing's order (keyset pagination: the last
    /// MAC of the previous page).
    pub after: Option<MacAddr>,
    /// MACs in descending order (default: ascending).
    pub descending: bool,
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
    /// Who makes the change (see [`AuditRecord::actor`]): its audit records name them.
    pub actor: Option<String>,
}

impl std::fmt::Debug for SecurityUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityUpdate")
            .field("mode", &self.mode)
            .field("reset", &self.reset)
            .field("new_pin", &self.new_pin.as_ref().map(|_| "<redacted>"))
            .field("actor", &self.actor)
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

/// One record of the audit log: a phone's security event (a bootstrap, a wrong TAN; no
/// actor), or an administrative change with the account or token that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its place in the log: larger is later (the cursor of [`AuditFilter::before`]).
    pub id: i64,
    /// When.
    pub at: UnixTime,
    /// Who: an account's name, `account:token` for one of its API tokens, `admin-token`;
    /// `None` for what a phone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The device it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// What happened.
    pub kind: EventKind,
    /// A one-line explanation (no secrets).
    pub detail: String,
}

/// An administrative change (or a login) to record in the audit log
/// ([`AuditStore::record_audit`](crate::AuditStore::record_audit)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditRecord {
    /// When.
    pub at: UnixTime,
    /// Who (see [`AuditRecord::actor`]).
    pub actor: Option<String>,
    /// The device it is about, if any.
    pub mac: Option<MacAddr>,
    /// What happened.
    pub kind: EventKind,
    /// A one-line explanation, no secrets (at most
    /// [`rules::accounts::MAX_AUDIT_DETAIL`](crate::rules::accounts::MAX_AUDIT_DETAIL) bytes;
    /// longer is cut).
    pub detail: String,
}

/// What an audit record tells of: a phone's security event, or an administrative change.
/// Both are written as their kebab-case name (`bootstrapped`, `device-added`), and the two
/// sets of names are apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventKind {
    /// A security event of a device (the engine's, or an administrator's secure-mode change).
    Security(AuditKind),
    /// An administrative change.
    Admin(AdminAction),
}

impl From<AuditKind> for EventKind {
    fn from(kind: AuditKind) -> Self {
        Self::Security(kind)
    }
}

impl From<AdminAction> for EventKind {
    fn from(action: AdminAction) -> Self {
        Self::Admin(action)
    }
}

impl EventKind {
    /// Its kebab-case name, as stored.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Security(k) => k.as_str(),
            Self::Admin(a) => a.as_str(),
        }
    }

    /// The kind of that name, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

/// An administrative change, or a login, as the audit log names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AdminAction {
    /// A device was registered.
    DeviceAdded,
    /// A device's profiles or overrides were changed.
    DeviceChanged,
    /// A device was forgotten.
    DeviceDeleted,
    /// A device's Digest secret was set.
    SecretSet,
    /// A device's Digest secret was removed.
    SecretCleared,
    /// A profile was created or replaced.
    ProfileSaved,
    /// A profile was deleted.
    ProfileDeleted,
    /// A fallback credential was set.
    CredentialSet,
    /// A fallback credential was removed.
    CredentialRemoved,
    /// Jobs were queued.
    JobsQueued,
    /// A job was cancelled.
    JobCancelled,
    /// A contact-me was asked for.
    ContactRequested,
    /// A deployment file was added.
    FileAdded,
    /// A deployment file was deleted.
    FileDeleted,
    /// An account was created.
    AccountCreated,
    /// An account's role was changed.
    RoleChanged,
    /// An account's password was reset.
    PasswordReset,
    /// An account was deleted.
    AccountDeleted,
    /// An API token was created.
    TokenCreated,
    /// An API token was revoked.
    TokenRevoked,
    /// Someone logged in to the console.
    LoginSucceeded,
    /// A console login failed (a wrong password, or no such account).
    LoginFailed,
    /// Someone logged out.
    LoggedOut,
    /// A mobility user was created.
    UserAdded,
    /// A mobility user was deleted, with its saved data.
    UserDeleted,
    /// A mobility user's password was set (never the password in the record).
    UserPasswordSet,
    /// A mobility user's profiles were set.
    UserProfilesSet,
    /// One saved data item of a mobility user was read, with its value (personal data).
    UserDataRead,
    /// A mobility user's logon at a device was queued (a `mobility-logon` job).
    UserLogonQueued,
    /// A mobility user's logoff was queued (a `mobility-logoff` job).
    UserLogoffQueued,
}

impl AdminAction {
    /// Every action, in the order above.
    pub const ALL: [Self; 30] = [
        Self::DeviceAdded,
        Self::DeviceChanged,
        Self::DeviceDeleted,
        Self::SecretSet,
        Self::SecretCleared,
        Self::ProfileSaved,
        Self::ProfileDeleted,
        Self::CredentialSet,
        Self::CredentialRemoved,
        Self::JobsQueued,
        Self::JobCancelled,
        Self::ContactRequested,
        Self::FileAdded,
        Self::FileDeleted,
        Self::AccountCreated,
        Self::RoleChanged,
        Self::PasswordReset,
        Self::AccountDeleted,
        Self::TokenCreated,
        Self::TokenRevoked,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoggedOut,
        Self::UserAdded,
        Self::UserDeleted,
        Self::UserPasswordSet,
        Self::UserProfilesSet,
        Self::UserDataRead,
        Self::UserLogonQueued,
        Self::UserLogoffQueued,
    ];

    /// Its kebab-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeviceAdded => "device-added",
            Self::DeviceChanged => "device-changed",
            Self::DeviceDeleted => "device-deleted",
            Self::SecretSet => "secret-set",
            Self::SecretCleared => "secret-cleared",
            Self::ProfileSaved => "profile-saved",
            Self::ProfileDeleted => "profile-deleted",
            Self::CredentialSet => "credential-set",
            Self::CredentialRemoved => "credential-removed",
            Self::JobsQueued => "jobs-queued",
            Self::JobCancelled => "job-cancelled",
            Self::ContactRequested => "contact-requested",
            Self::FileAdded => "file-added",
            Self::FileDeleted => "file-deleted",
            Self::AccountCreated => "account-created",
            Self::RoleChanged => "role-changed",
            Self::PasswordReset => "password-reset",
            Self::AccountDeleted => "account-deleted",
            Self::TokenCreated => "token-created",
            Self::TokenRevoked => "token-revoked",
            Self::LoginSucceeded => "login-succeeded",
            Self::LoginFailed => "login-failed",
            Self::LoggedOut => "logged-out",
            Self::UserAdded => "user-added",
            Self::UserDeleted => "user-deleted",
            Self::UserPasswordSet => "user-password-set",
            Self::UserProfilesSet => "user-profiles-set",
            Self::UserDataRead => "user-data-read",
            Self::UserLogonQueued => "user-logon-queued",
            Self::UserLogoffQueued => "user-logoff-queued",
        }
    }
}

/// Which audit records to list: every set field must match. Newest first, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditFilter {
    /// About this device.
    pub mac: Option<MacAddr>,
    /// By this actor: an account's name matches the account's own records and those of its
    /// API tokens (`name:token`); `name:token` matches that token's only.
    pub actor: Option<String>,
    /// Of this kind.
    pub kind: Option<EventKind>,
    /// At or after this time.
    pub since: Option<UnixTime>,
    /// Before this time.
    pub until: Option<UnixTime>,
    /// With an id below this one: the next page after a page whose last record had it.
    pub before: Option<i64>,
    /// The most records returned (default 100, at most
    /// [`rules::MAX_AUDIT_LIMIT`](crate::rules::MAX_AUDIT_LIMIT)).
    pub limit: Option<usize>,
}

/// A console or API account (never its password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its name (see [`dls_accounts::names::check_account`]).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub created_at: UnixTime,
    /// When its role or password last changed.
    pub updated_at: UnixTime,
    /// Its last successful console login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_at: Option<UnixTime>,
}

/// An account's API token, as listed (never the token, nor its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The account it acts for.
    pub account: String,
    /// Its name, unique per account (see [`dls_accounts::names::check_token`]).
    pub name: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it was last used (recorded at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<UnixTime>,
}

/// A console session, as the store keeps it: by a hash of its id, with its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The account logged in (as it is now: a changed role applies at once).
    pub account: Account,
    /// When the session was made (the login).
    pub created_at: UnixTime,
    /// Its last request, as last recorded.
    pub last_seen_at: UnixTime,
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
    /// The mobility jobs (logons and logoffs) of this user (its number, normalised).
    pub user: Option<String>,
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

/// The fleet at a glance (the console's dashboard), counted by the store in one read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// Devices registered.
    pub devices: u64,
    /// Devices by reported `device-type` (`""`: not reported yet), most first, at most
    /// [`FleetSummary::TOP`].
    pub by_type: Vec<(String, u64)>,
    /// Devices by reported `software-version`, as `by_type`.
    pub by_version: Vec<(String, u64)>,
    /// Devices by security mode (`default`, `nopin`, `pin`), most first.
    pub by_mode: Vec<(String, u64)>,
    /// Devices that called in at or after the time asked.
    pub contacted: u64,
    /// Devices in a secure mode that have not bootstrapped yet.
    pub bootstraps_pending: u64,
    /// Jobs not over (queued, sent, waiting to retry).
    pub jobs_open: u64,
    /// Jobs that failed at or after the time asked.
    pub jobs_failed: u64,
    /// Security refusals recorded at or after the time asked (audit kinds of
    /// [`rules::REFUSAL_KINDS`](crate::rules::REFUSAL_KINDS)).
    pub refusals: u64,
}

impl FleetSummary {
    /// The most groups of a breakdown.
    pub const TOP: usize = 20;
}

/// An HTTP Digest throttle event to record for the other nodes
/// ([`DigestStore`](crate::DigestStore)): which node, when, failure or success, and whom it
/// counts against — opaque bytes to the store (the service's keyed hash of the username and
/// the source address's key; never a password, never a clear username).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDigestEvent {
    /// The recording node's own random id: a node skips its own events.
    pub origin: i64,
    /// When it happened.
    pub at: UnixTime,
    /// An authenticated attempt (else a failed one).
    pub success: bool,
    /// Whom it counts against (1 to [`rules::digest::MAX_DIGEST_KEY`](crate::rules::digest::MAX_DIGEST_KEY) bytes).
    pub subject: Vec<u8>,
}

/// A recorded [`NewDigestEvent`], with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestEvent {
    /// Its id: ids increase in the order events become visible, and are never handed out
    /// again.
    pub id: i64,
    /// What was recorded.
    pub event: NewDigestEvent,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is listed once, and its name is the one stored and parsed back: the
    /// audit filters (the API's `kind=`, the console's choice) know every kind.
    #[test]
    fn every_event_kind_is_listed_and_named_as_stored() {
        let mut names = std::collections::HashSet::new();
        let kinds =
            AuditKind::ALL.iter().map(|&k| EventKind::from(k)).chain(AdminAction::ALL.iter().map(|&a| a.into()));
        for kind in kinds {
            assert!(names.insert(kind.as_str()), "{} twice", kind.as_str());
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::Value::String(kind.as_str().to_owned())));
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        for name in ["user-added", "user-data-read", "user-logon-queued", "mobility-logon"] {
            assert!(names.contains(name), "{name}");
        }
    }
}
