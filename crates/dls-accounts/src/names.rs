//! What an account's name and an API token's name may be.
//!
//! Both are 1 to [`MAX_NAME`] characters of `a-z 0-9 . _ - @` (an account; lower case, so
//! that `Alice` and `alice` cannot be two accounts) or `A-Z a-z 0-9 . _ -` (a token),
//! starting with a letter or a digit. Neither holds `:`, so that an actor written
//! `account:token` (a request made with one of the account's API tokens) is unambiguous,
//! nor anything that needs escaping in a URL path, a log line or a page.

use crate::ADMIN_TOKEN_ACTOR;

/// The longest name.
pub const MAX_NAME: usize = 64;

/// Why a name is refused, in words (for a `400` or a form's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadName(pub String);

fn check(name: &str, what: &str, allowed: fn(char) -> bool, rule: &str) -> Result<(), BadName> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_NAME || !first_ok || !name.chars().all(allowed) {
        return Err(BadName(format!("{what} must be 1 to {MAX_NAME} of {rule}, starting with a letter or a digit")));
    }
    Ok(())
}

/// Checks an account's name.
///
/// # Errors
/// [`BadName`] saying the rule; `admin-token` is reserved (the admin token's actor).
pub fn check_account(name: &str) -> Result<(), BadName> {
    check(name, "an account name", |c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '@'), "a-z 0-9 . _ - @")?;
    if name == ADMIN_TOKEN_ACTOR {
        return Err(BadName(format!("{ADMIN_TOKEN_ACTOR:?} is reserved for the service's admin token")));
    }
    Ok(())
}

/// Checks an API token's name (unique per account).
///
/// # Errors
/// [`BadName`] saying the rule.
pub fn check_token(name: &str) -> Result<(), BadName> {
    check(name, "a token name", |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'), "A-Z a-z 0-9 . _ -")
}

/// The actor of a request made with `account`'s API token `token`: `account:token`.
#[must_use]
pub fn token_actor(account: &str, token: &str) -> String {
    format!("{account}:{token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        for good in ["alice", "a", "bob.smith@example.com", "ops_1-2", &"a".repeat(64)] {
            assert_eq!(check_account(good), Ok(()), "{good}");
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "a:b", "<script>", "é", "a/b", &"a".repeat(65), "admin-token"] {
            assert!(check_account(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_names() {
        for good in ["ci", "Nightly-Backup_2.0", &"T".repeat(64)] {
            assert_eq!(check_token(good), Ok(()), "{good}");
        }
        for bad in ["", "_x", "a:b", "a b", "a@b", "<b>", &"t".repeat(65)] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
        assert_eq!(token_actor("alice", "ci"), "alice:ci");
    }
}
