//! The domain rules every backend applies the same way, as plain functions: what a
//! backend may store, the limits of what it returns, the secure-mode transitions
//! ([`security`]), what happens to jobs ([`jobs`]), and the bounds of the shared Digest
//! state ([`digest`]). A backend calls these; it never
//! restates them.

use std::collections::HashSet;

use dls_engine::ItemKey;
use dls_message::Item;

use crate::StoreError;

pub mod accounts;
pub mod contact;
pub mod digest;
pub mod jobs;
pub mod mobility;
pub mod security;

/// The audit kinds that are a phone refused for its security (the dashboard counts them).
pub const REFUSAL_KINDS: &[dls_engine::AuditKind] = &[
    dls_engine::AuditKind::DefaultPortRefused,
    dls_engine::AuditKind::CertificateMismatch,
    dls_engine::AuditKind::CertificateRefused,
    dls_engine::AuditKind::PinUnavailable,
    dls_engine::AuditKind::TanWrong,
];

/// How many nonces are kept per device (the most recent ones).
pub const NONCES_KEPT: usize = 64;

/// The longest profile name.
pub const MAX_PROFILE_NAME: usize = 64;

/// The most audit records one call returns.
pub const MAX_AUDIT_LIMIT: usize = 10_000;

/// The largest sealed PIN kept (a 32-digit PIN sealed is some 60 bytes).
pub const MAX_SEALED_PIN: usize = 1024;

/// The largest sealed bootstrap material kept.
pub const MAX_SEALED_BOOTSTRAP: usize = 1 << 20;

/// The longest certificate serial number, in hex digits (RFC 5280 allows 20 octets; some
/// room beyond).
pub const MAX_SERIAL: usize = 64;

/// The longest fallback credential username, in characters.
pub const MAX_USERNAME: usize = 128;

/// The longest deployment file name or type, in bytes.
pub const MAX_FILE_NAME: usize = 255;

/// The longest interaction session id a store keeps, in bytes (the service's are 64 hex
/// digits: a SHA-256 of the cookie).
pub const MAX_SESSION_ID: usize = 128;

/// The largest encoded interaction session a store keeps (the engine's own bound,
/// `dls_engine::session::MAX_ENCODED_BYTES`).
pub const MAX_SESSION_BYTES: usize = dls_engine::session::MAX_ENCODED_BYTES;

/// An interaction session's id and encoding are opaque, but not empty nor unbounded; the
/// id is ASCII letters and digits.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_session(id: &str, bytes: &[u8]) -> Result<(), StoreError> {
    check_session_id(id)?;
    if bytes.is_empty() || bytes.len() > MAX_SESSION_BYTES {
        return Err(StoreError::Invalid(format!("a session of {} bytes (1 to {MAX_SESSION_BYTES})", bytes.len())));
    }
    Ok(())
}

/// A session id: 1 to [`MAX_SESSION_ID`] ASCII letters and digits.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_session_id(id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_SESSION_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StoreError::Invalid(format!(
            "a session id must be 1 to {MAX_SESSION_ID} ASCII letters and digits"
        )));
    }
    Ok(())
}

/// A sealed PIN is opaque, but not empty nor unbounded.
///
/// # Errors
/// [`StoreError::Invalid`] for an empty one or one over [`MAX_SEALED_PIN`] bytes.
pub fn check_sealed_pin(sealed: &[u8]) -> Result<(), StoreError> {
    if sealed.is_empty() || sealed.len() > MAX_SEALED_PIN {
        return Err(StoreError::Invalid(format!("a sealed PIN of {} bytes (1 to {MAX_SEALED_PIN})", sealed.len())));
    }
    Ok(())
}

/// Sealed bootstrap material is opaque, but not empty nor unbounded.
///
/// # Errors
/// [`StoreError::Invalid`] for empty material or more than [`MAX_SEALED_BOOTSTRAP`] bytes.
pub fn check_sealed_bootstrap(sealed: &[u8]) -> Result<(), StoreError> {
    if sealed.is_empty() || sealed.len() > MAX_SEALED_BOOTSTRAP {
        return Err(StoreError::Invalid(format!("sealed bootstrap material of {} bytes", sealed.len())));
    }
    Ok(())
}

/// Checks a certificate serial number: 1 to 64 upper-case hex digits, as the engine
/// compares it with the one a phone presents.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_serial(serial: &str) -> Result<(), StoreError> {
    let valid = !serial.is_empty()
        && serial.len() <= MAX_SERIAL
        && serial.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "certificate serial number {serial:?}: use 1 to {MAX_SERIAL} upper-case hex digits"
        )))
    }
}

/// Checks a fallback credential's username: 1 to 128 characters, none a control
/// character. The message does not repeat a rejected username.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_username(username: &str) -> Result<(), StoreError> {
    let length = username.chars().count();
    if length == 0 || length > MAX_USERNAME {
        return Err(StoreError::Invalid(format!("a username is 1 to {MAX_USERNAME} characters, not {length}")));
    }
    if username.chars().any(char::is_control) {
        return Err(StoreError::Invalid("a username has no control characters".into()));
    }
    Ok(())
}

/// Checks a profile name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_profile_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "profile name {name:?}: use 1 to {MAX_PROFILE_NAME} of the characters A-Z a-z 0-9 . _ -"
        )))
    }
}

/// Checks a device's overrides: named, without a status (only phones send one), each key
/// once.
///
/// # Errors
/// [`StoreError::Invalid`] naming the override.
pub fn check_overrides(items: &[Item]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for item in items {
        if item.name.is_empty() {
            return Err(StoreError::Invalid("an override without a name".into()));
        }
        if item.status.is_some() {
            return Err(StoreError::Invalid(format!("override {:?} has a status", item.name)));
        }
        if !seen.insert(ItemKey::of(item)) {
            return Err(StoreError::Invalid(match item.index {
                Some(i) => format!("override {:?} index {i} given twice", item.name),
                None => format!("override {:?} given twice", item.name),
            }));
        }
    }
    Ok(())
}

/// Checks a device's profile assignment: each profile once, each one that exists
/// (`exists` asks the backend, in its transaction).
///
/// # Errors
/// [`StoreError::Invalid`] for a profile named twice or one that does not exist; `exists`'s
/// error.
pub fn check_assignment(
    names: &[String],
    mut exists: impl FnMut(&str) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(StoreError::Invalid(format!("profile {name:?} assigned twice")));
        }
        if !exists(name)? {
            return Err(no_such_profile(name));
        }
    }
    Ok(())
}

/// The error for a profile named that does not exist (an assignment, a credential's
/// scope).
#[must_use]
pub fn no_such_profile(name: &str) -> StoreError {
    StoreError::Invalid(format!("no profile named {name:?}"))
}

/// Checks a deployment file's name or type (`what`): 1 to 255 bytes, without control
/// characters or `/` (it becomes part of a download URL).
///
/// # Errors
/// [`StoreError::Invalid`] naming the rule.
pub fn check_file_text(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > MAX_FILE_NAME || s.chars().any(char::is_control) || s.contains('/') {
        return Err(StoreError::Invalid(format!(
            "a file's {what} must be 1 to {MAX_FILE_NAME} bytes, without control characters or '/'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dls_message::Item;

    use super::*;

    fn invalid(r: Result<(), StoreError>) -> String {
        match r {
            Err(StoreError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_checks_accept_their_bounds_and_refuse_beyond() {
        assert!(check_profile_name(&"a".repeat(MAX_PROFILE_NAME)).is_ok());
        assert!(invalid(check_profile_name(&"a".repeat(MAX_PROFILE_NAME + 1))).contains("1 to 64"));
        assert!(check_profile_name("sales/x").is_err());
        assert!(check_serial("0A1B").is_ok());
        assert!(check_serial("0a1b").is_err());
        assert!(check_serial("").is_err());
        assert!(check_username(&"é".repeat(MAX_USERNAME)).is_ok());
        assert!(invalid(check_username("a\u{7}b")).contains("control"));
        assert!(check_sealed_pin(&[0; MAX_SEALED_PIN]).is_ok());
        assert!(check_sealed_pin(&[]).is_err());
        assert!(check_sealed_bootstrap(&[1]).is_ok());
        assert!(check_sealed_bootstrap(&vec![1; MAX_SEALED_BOOTSTRAP + 1]).is_err());
        assert!(check_file_text("name", "fw.img").is_ok());
        assert!(invalid(check_file_text("type", "a/b")).contains("file's type"));
    }

    #[test]
    fn overrides_and_assignments() {
        assert!(check_overrides(&[Item::new("a", "1"), Item::indexed("a", 1, "2")]).is_ok());
        assert!(invalid(check_overrides(&[Item::indexed("a", 1, "1"), Item::indexed("a", 1, "2")])).contains("twice"));
        let names = ["x".to_owned(), "y".to_owned()];
        assert!(check_assignment(&names, |_| Ok(true)).is_ok());
        assert!(invalid(check_assignment(&names, |n| Ok(n == "x"))).contains("no profile named \"y\""));
        let twice = ["x".to_owned(), "x".to_owned()];
        assert!(invalid(check_assignment(&twice, |_| Ok(true))).contains("assigned twice"));
    }
}
