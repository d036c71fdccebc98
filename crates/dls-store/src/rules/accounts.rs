//! What a backend may store of accounts, API tokens, console sessions and the audit log's
//! administrative records, and the bounds of what it keeps.

use dls_accounts::names;
use dls_accounts::password;

use crate::StoreError;
use crate::model::{AuditFilter, NewAuditRecord};

/// The most API tokens one account may have.
pub const MAX_TOKENS_PER_ACCOUNT: usize = 100;

/// The most console sessions one account may have at once: a login beyond ends the one
/// used least lately.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 32;

/// A token's last use is recorded again only when it is older than this (seconds), so that
/// scripted use does not write at every request.
pub const TOKEN_USE_RESOLUTION_SECS: u64 = 60;

/// The longest detail of an audit record, bytes (longer is cut at a character boundary).
pub const MAX_AUDIT_DETAIL: usize = 1000;

/// The longest actor of an audit record: `account:token`.
pub const MAX_ACTOR: usize = 2 * names::MAX_NAME + 1;

/// The records an audit listing returns when its filter sets no limit.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;

/// An account's name, as [`names::check_account`] says.
///
/// # Errors
/// [`StoreError::Invalid`] with the rule.
pub fn check_account_name(name: &str) -> Result<(), StoreError> {
    names::check_account(name).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// An API token's name, as [`names::check_token`] says.
///
/// # Errors
/// [`StoreError::Invalid`] with the rule.
pub fn check_token_name(name: &str) -> Result<(), StoreError> {
    names::check_token(name).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A password hash to keep: an Argon2id PHC string within the bounds
/// ([`password::is_valid_hash`]). A store never sees a password.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_password_hash(phc: &str) -> Result<(), StoreError> {
    if !password::is_valid_hash(phc) {
        return Err(StoreError::Invalid("a password hash must be an Argon2id PHC string".into()));
    }
    Ok(())
}

/// What the store keys a token or a session by: a SHA-256 in lower-case hex.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() != 64 || !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::Invalid("a token or session key must be 64 lower-case hex digits".into()));
    }
    Ok(())
}

/// An audit record as it will be kept: its detail cut to [`MAX_AUDIT_DETAIL`] bytes and
/// rid of control characters (one line), its actor checked.
///
/// # Errors
/// [`StoreError::Invalid`] for an actor that is no `account`, `account:token` nor
/// `admin-token`.
pub fn audit_record(record: &NewAuditRecord) -> Result<NewAuditRecord, StoreError> {
    if let Some(actor) = &record.actor {
        check_actor(actor)?;
    }
    let mut detail: String = record.detail.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if detail.len() > MAX_AUDIT_DETAIL {
        let mut end = MAX_AUDIT_DETAIL;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    Ok(NewAuditRecord { detail, ..record.clone() })
}

/// An actor: `admin-token`, an account's name, or `account:token`.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_actor(actor: &str) -> Result<(), StoreError> {
    if actor == dls_accounts::ADMIN_TOKEN_ACTOR {
        return Ok(());
    }
    let ok = match actor.split_once(':') {
        Some((account, token)) => names::check_account(account).is_ok() && names::check_token(token).is_ok(),
        None => names::check_account(actor).is_ok(),
    };
    if !ok {
        return Err(StoreError::Invalid(format!(
            "an actor must be {:?}, an account's name or account:token",
            dls_accounts::ADMIN_TOKEN_ACTOR
        )));
    }
    Ok(())
}

/// How an audit listing's actor filter matches: the actor itself, and for an account's
/// name also its tokens' actors (`name:` to `name;`, the range of text after `name:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorMatch {
    /// The actor exactly.
    pub exact: String,
    /// Also the actors from `.0` (included) to `.1` (excluded), when the filter names an
    /// account.
    pub tokens: Option<(String, String)>,
}

/// The limit of an audit listing: [`DEFAULT_AUDIT_LIMIT`] unless set, at most
/// [`MAX_AUDIT_LIMIT`](crate::rules::MAX_AUDIT_LIMIT).
#[must_use]
pub fn audit_limit(filter: &AuditFilter) -> usize {
    filter.limit.unwrap_or(DEFAULT_AUDIT_LIMIT).min(crate::rules::MAX_AUDIT_LIMIT)
}

/// How a filter's actor matches (see [`ActorMatch`]); `None` when the filter names no actor.
#[must_use]
pub fn actor_match(filter: &AuditFilter) -> Option<ActorMatch> {
    let actor = filter.actor.as_ref()?;
    let tokens = (!actor.contains(':') && actor != dls_accounts::ADMIN_TOKEN_ACTOR)
        .then(|| (format!("{actor}:"), format!("{actor};")));
    Some(ActorMatch { exact: actor.clone(), tokens })
}

#[cfg(test)]
mod tests {
    use dls_engine::UnixTime;

    use super::*;
    use crate::model::{AdminAction, EventKind};

    fn record(actor: Option<&str>, detail: &str) -> NewAuditRecord {
        NewAuditRecord {
            at: UnixTime(1),
            actor: actor.map(Into::into),
            mac: None,
            kind: EventKind::Admin(AdminAction::DeviceAdded),
            detail: detail.into(),
        }
    }

    #[test]
    fn audit_records_are_one_bounded_line_by_a_known_kind_of_actor() {
        let r = audit_record(&record(Some("alice"), "two\nlines\u{1b}[31m")).expect("kept");
        assert_eq!(r.detail, "two lines [31m");
        let long = audit_record(&record(None, &"é".repeat(MAX_AUDIT_DETAIL))).expect("kept");
        assert!(long.detail.len() <= MAX_AUDIT_DETAIL && long.detail.len() >= MAX_AUDIT_DETAIL - 1);
        for ok in ["alice", "alice:ci", "admin-token"] {
            assert!(audit_record(&record(Some(ok), "")).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "a:b:c", "<script>", "alice:"] {
            assert!(audit_record(&record(Some(bad), "")).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_account_filter_matches_its_tokens_too() {
        let f = |a: &str| AuditFilter { actor: Some(a.into()), ..AuditFilter::default() };
        let m = actor_match(&f("alice")).expect("set");
        assert_eq!(m.tokens, Some(("alice:".into(), "alice;".into())));
        assert!("alice:ci" >= "alice:" && "alice:ci" < "alice;" && !("alice.b" >= "alice:" && "alice.b" < "alice;"));
        assert_eq!(actor_match(&f("alice:ci")).expect("set").tokens, None);
        assert_eq!(actor_match(&f("admin-token")).expect("set").tokens, None);
        assert_eq!(actor_match(&AuditFilter::default()), None);
        assert_eq!(audit_limit(&AuditFilter::default()), 100);
        assert_eq!(audit_limit(&AuditFilter { limit: Some(usize::MAX), ..AuditFilter::default() }), 10_000);
    }

    #[test]
    fn keys_and_hashes() {
        assert!(check_key(&"a".repeat(64)).is_ok());
        for bad in ["", "A".repeat(64).as_str(), "g".repeat(64).as_str(), "a".repeat(63).as_str()] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
        assert!(check_password_hash("plain").is_err());
    }
}
