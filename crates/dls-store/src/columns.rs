//! How every backend writes the model's values as column values, and reads them back: the
//! same text for a write outcome, a security mode, a bootstrap state, an audit kind, a
//! credential scope and stored items in every database (so that `dls store migrate` copies
//! them as they are). Nothing read back can make a backend panic: a value these functions
//! cannot understand is [`StoreError::Corrupt`].

use dls_engine::{BootstrapState, PendingBootstrap, Security, SecurityMode, UnixTime, WriteOutcome};
use dls_message::{Item, ItemStatus, MacAddr};

use crate::{CredentialScope, SecuritySummary, StoreError};

/// The stored index of an item without an index (where `(name, index)` is part of a key;
/// `Some(0)` is the real index 0).
pub const NO_INDEX: i64 = -1;

/// `fallback_credentials.scope_kind` of the global scope (whose `profile` is `''`).
pub const SCOPE_GLOBAL: &str = "global";
/// `fallback_credentials.scope_kind` of a profile's scope.
pub const SCOPE_PROFILE: &str = "profile";

const ACCEPTED: &str = "accepted";
const REFUSED_PREFIX: &str = "refused:";
const NOT_SENT_PREFIX: &str = "not-sent:";

pub fn outcome_to_sql(outcome: &WriteOutcome) -> String {
    match outcome {
        WriteOutcome::Accepted => ACCEPTED.to_owned(),
        WriteOutcome::Refused(status) => format!("{REFUSED_PREFIX}{}", status.as_str()),
        WriteOutcome::NotSent(why) => format!("{NOT_SENT_PREFIX}{why}"),
    }
}

pub fn outcome_from_sql(text: &str) -> Result<WriteOutcome, StoreError> {
    if text == ACCEPTED {
        return Ok(WriteOutcome::Accepted);
    }
    if let Some(why) = text.strip_prefix(NOT_SENT_PREFIX) {
        return Ok(WriteOutcome::NotSent(why.to_owned()));
    }
    match text.strip_prefix(REFUSED_PREFIX) {
        Some(status) => Ok(WriteOutcome::Refused(ItemStatus::from_wire(status))),
        None => Err(StoreError::Corrupt(format!("write outcome {text:?}"))),
    }
}

pub fn mac_from_sql(text: &str) -> Result<MacAddr, StoreError> {
    MacAddr::parse(text).map_err(|_| StoreError::Corrupt(format!("device MAC {text:?}")))
}

pub fn items_to_json(items: &[Item]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Invalid(format!("items not serialisable: {e}")))
}

pub fn items_from_json(json: &str) -> Result<Vec<Item>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored items: {e}")))
}

pub fn mode_from_sql(text: &str) -> Result<SecurityMode, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("security mode {text:?}")))
}

pub fn state_from_sql(text: &str) -> Result<BootstrapState, StoreError> {
    match text {
        "not-bootstrapped" => Ok(BootstrapState::NotBootstrapped),
        "secured" => Ok(BootstrapState::Secured),
        "failed" => Ok(BootstrapState::Failed),
        other => Err(StoreError::Corrupt(format!("bootstrap state {other:?}"))),
    }
}

/// What an audit record tells of, by its kebab-case name (the inverse of
/// [`EventKind::as_str`](crate::EventKind::as_str)).
pub fn event_kind_from_sql(text: &str) -> Result<crate::EventKind, StoreError> {
    crate::EventKind::parse(text).ok_or_else(|| StoreError::Corrupt(format!("audit kind {text:?}")))
}

/// A role by its name.
pub fn role_from_sql(text: &str) -> Result<dls_accounts::Role, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("role {text:?}")))
}

/// A scope's `(scope_kind, profile)` columns.
pub fn scope_to_sql(scope: &CredentialScope) -> (&'static str, &str) {
    match scope {
        CredentialScope::Global => (SCOPE_GLOBAL, ""),
        CredentialScope::Profile(name) => (SCOPE_PROFILE, name),
    }
}

pub fn scope_from_sql(kind: &str, profile: String) -> Result<CredentialScope, StoreError> {
    match (kind, profile.is_empty()) {
        (SCOPE_GLOBAL, true) => Ok(CredentialScope::Global),
        (SCOPE_PROFILE, false) => Ok(CredentialScope::Profile(profile)),
        _ => Err(StoreError::Corrupt(format!("credential scope {kind:?} of profile {profile:?}"))),
    }
}

pub fn count_from_sql(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("count {v}")))
}

/// A time as a column (`BIGINT`/`INTEGER` seconds); [`StoreError::Invalid`] past `i64`.
pub fn time_to_sql(t: UnixTime) -> Result<i64, StoreError> {
    i64::try_from(t.0).map_err(|_| StoreError::Invalid(format!("time {} out of range", t.0)))
}

/// A time column; negative is corrupt.
pub fn time_from_sql(v: i64) -> Result<UnixTime, StoreError> {
    u64::try_from(v).map(UnixTime).map_err(|_| StoreError::Corrupt(format!("negative time {v}")))
}

/// A time column that may be NULL.
pub fn opt_time_from_sql(v: Option<i64>) -> Result<Option<UnixTime>, StoreError> {
    v.map(time_from_sql).transpose()
}

/// An item's index as a column ([`NO_INDEX`] for none).
pub fn index_to_sql(index: Option<u32>) -> i64 {
    index.map_or(NO_INDEX, i64::from)
}

/// An item's index column.
pub fn index_from_sql(v: i64) -> Result<Option<u32>, StoreError> {
    if v == NO_INDEX {
        return Ok(None);
    }
    u32::try_from(v).map(Some).map_err(|_| StoreError::Corrupt(format!("item index {v}")))
}

/// A device's security columns, as read (the sealed PIN itself is read apart, only when
/// needed): what the engine gets ([`Self::into_security`]) and what the admin API shows
/// ([`Self::into_summary`]).
#[derive(Debug)]
pub struct SecurityColumns {
    /// The security mode.
    pub mode: SecurityMode,
    state: BootstrapState,
    pin_outstanding: bool,
    pin_issued_at: Option<UnixTime>,
    tan_failures: u32,
    /// The current certificate, if it exists and is not revoked.
    certificate: Option<String>,
    /// The bootstrap material kept for reuse.
    pending: Option<PendingBootstrap>,
}

/// The columns [`SecurityColumns::from_sql`] reads, in their stored types: the device's
/// mode, bootstrap state, whether a PIN is outstanding, when it was issued, TAN failures,
/// its current unrevoked certificate's serial, and the kept bootstrap material's serial and
/// time of issue.
pub type SecuritySql = (String, String, bool, Option<i64>, i64, Option<String>, Option<String>, Option<i64>);

impl SecurityColumns {
    /// The columns read; a value these cannot be is [`StoreError::Corrupt`].
    ///
    /// # Errors
    /// [`StoreError::Corrupt`].
    pub fn from_sql(
        (mode, state, pin_outstanding, pin_issued_at, tan_failures, certificate, pending_serial, pending_at): SecuritySql,
    ) -> Result<Self, StoreError> {
        let pending = match (pending_serial, pending_at) {
            (Some(serial), Some(at)) => Some(PendingBootstrap { serial, issued_at: time_from_sql(at)? }),
            _ => None,
        };
        Ok(Self {
            mode: mode_from_sql(&mode)?,
            state: state_from_sql(&state)?,
            pin_outstanding,
            pin_issued_at: opt_time_from_sql(pin_issued_at)?,
            tan_failures: count_from_sql(tan_failures)?,
            certificate,
            pending,
        })
    }

    /// What the engine needs.
    #[must_use]
    pub fn into_security(self) -> Security {
        Security {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding,
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
            pending: self.pending,
        }
    }

    /// What an administrator's change starts from ([`crate::rules::security::plan`]).
    #[must_use]
    pub fn before(&self) -> crate::rules::security::SecurityBefore {
        crate::rules::security::SecurityBefore {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding,
        }
    }

    /// What the admin API shows.
    #[must_use]
    pub fn into_summary(self) -> SecuritySummary {
        SecuritySummary {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding,
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
        }
    }
}

/// A mobility user's columns, as read (`mobility_users`): what the admin API shows
/// ([`Self::summary`]) and what the protocol path needs ([`Self::stored`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct UserColumns {
    /// `number`.
    pub number: String,
    /// `name`.
    pub name: Option<String>,
    /// `password_hash`.
    pub password_hash: String,
    /// `profiles`: the names, in order.
    pub profiles: Vec<String>,
    /// `device`.
    pub device: Option<MacAddr>,
    /// `since`.
    pub since: Option<UnixTime>,
    /// `logoff_requested_at`.
    pub logoff_requested_at: Option<UnixTime>,
    /// `revision`.
    pub revision: i64,
    /// `created_at`.
    pub created_at: UnixTime,
}

/// A user's mobility profiles as a column: a JSON array of names.
pub fn profiles_to_sql(profiles: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(profiles).map_err(|e| StoreError::Invalid(format!("profiles not serialisable: {e}")))
}

impl UserColumns {
    /// The columns read back, in the order of the dump's `mobility_users` (`number, name,
    /// password_hash, profiles, device, since, logoff_requested_at, revision, created_at`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a value that cannot be.
    #[allow(clippy::too_many_arguments, reason = "one argument per column")]
    pub fn read(
        number: String,
        name: Option<String>,
        password_hash: String,
        profiles: &str,
        device: Option<&str>,
        since: Option<i64>,
        logoff_requested_at: Option<i64>,
        revision: i64,
        created_at: i64,
    ) -> Result<Self, StoreError> {
        let profiles = serde_json::from_str(profiles)
            .map_err(|_| StoreError::Corrupt(format!("the profiles of user {number:?}")))?;
        Ok(Self {
            profiles,
            device: device.map(mac_from_sql).transpose()?,
            since: opt_time_from_sql(since)?,
            logoff_requested_at: opt_time_from_sql(logoff_requested_at)?,
            revision,
            created_at: time_from_sql(created_at)?,
            number,
            name,
            password_hash,
        })
    }

    /// Where the user is logged on: a device and since when (a device without a time, as a
    /// deleted device leaves none, is not a logon).
    #[must_use]
    pub fn logged_on(&self) -> Option<crate::LoggedOn> {
        match (self.device, self.since) {
            (Some(mac), Some(since)) => Some(crate::LoggedOn { mac, since }),
            _ => None,
        }
    }

    /// The listing's fields, with the count and size of the saved data.
    #[must_use]
    pub fn summary(&self, data_items: u64, data_bytes: u64) -> crate::UserSummary {
        crate::UserSummary {
            number: self.number.clone(),
            name: self.name.clone(),
            profiles: self.profiles.clone(),
            logged_on: self.logged_on(),
            logoff_requested_at: self.logoff_requested_at,
            data_items,
            data_bytes,
            created_at: self.created_at,
        }
    }

    /// The protocol path's view: its profiles' items layered from `profiles` (those that
    /// no longer exist are skipped), and `data`.
    #[must_use]
    pub fn stored(
        self,
        profiles: &[dls_engine::Profile],
        data: Vec<dls_engine::mobility::SavedData>,
    ) -> crate::StoredUser {
        let logged_on = self.logged_on();
        crate::StoredUser {
            user: dls_engine::MobilityUser {
                items: dls_engine::mobility::user_items(profiles, &self.profiles),
                number: self.number,
                revision: self.revision,
                device: logged_on.map(|l| l.mac),
                since: logged_on.map(|l| l.since),
                logoff_requested_at: self.logoff_requested_at,
                data,
            },
            password_hash: self.password_hash,
        }
    }
}
