//! How every backend writes the model's values as column values, and reads them back: the
//! same text for a write outcome, a security mode, a bootstrap state, an audit kind, a
//! credential scope and stored items in every database (so that `dls store migrate` copies
//! them as they are). Nothing read back can make a backend panic: a value these functions
//! cannot understand is [`StoreError::Corrupt`].

use dls_engine::{AuditKind, BootstrapState, SecurityMode, WriteOutcome};
use dls_message::{Item, ItemStatus, MacAddr};

use crate::{CredentialScope, StoreError};

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

/// An audit kind by its kebab-case name (the inverse of [`AuditKind::as_str`]).
pub fn kind_from_sql(text: &str) -> Result<AuditKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("audit kind {text:?}")))
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
