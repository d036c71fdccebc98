//! Passwords: Argon2id hashes in the PHC string format (`$argon2id$v=19$m=…`), with the
//! `argon2` crate's default parameters — 19 MiB of memory, 2 passes, 1 lane, which are
//! OWASP's recommendation for Argon2id — and a 16-byte salt from the operating system's
//! CSPRNG.
//!
//! Verification compares in constant time (the `argon2` crate's), and costs the same for an
//! account that does not exist ([`verify`] with `None` checks against a hash made once per
//! process), so that the time of an answer does not tell which accounts exist. A stored
//! hash whose parameters would cost more than [`MAX_MEMORY_KIB`] or [`MAX_PASSES`] is
//! refused rather than computed.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// The shortest password accepted (characters).
pub const MIN_PASSWORD: usize = 10;
/// The longest password accepted (bytes).
pub const MAX_PASSWORD: usize = 1024;
/// The longest PHC string kept.
pub const MAX_HASH: usize = 256;
/// The most memory a stored hash may ask for, KiB (256 MiB).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes a stored hash may ask for.
pub const MAX_PASSES: u32 = 16;

/// Why a password or a hash is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The password breaks a rule (too short, too long, a control character).
    #[error("{0}")]
    Rule(String),
    /// Hashing failed (the operating system gave no random salt).
    #[error("hashing the password failed: {0}")]
    Hashing(String),
}

/// Checks the rules a new password must meet: at least [`MIN_PASSWORD`] characters, at most
/// [`MAX_PASSWORD`] bytes, no control characters (they would be typed by mistake, or not
/// be typeable at all at a login form).
///
/// # Errors
/// [`PasswordError::Rule`] saying which.
pub fn check_rules(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::Rule(format!("a password must have at least {MIN_PASSWORD} characters")));
    }
    if password.len() > MAX_PASSWORD {
        return Err(PasswordError::Rule(format!("a password must have at most {MAX_PASSWORD} bytes")));
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::Rule("a password must not hold control characters".into()));
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes a password (after [`check_rules`]) with a fresh random salt: the PHC string to
/// store.
///
/// # Errors
/// [`PasswordError::Rule`]; [`PasswordError::Hashing`] if no salt could be had.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_rules(password)?;
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let phc = hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(phc.to_string())
}

/// Whether `phc` is a hash this crate would verify: an Argon2id PHC string of at most
/// [`MAX_HASH`] characters whose cost is within the bounds.
#[must_use]
pub fn is_valid_hash(phc: &str) -> bool {
    parse(phc).is_some()
}

fn parse(phc: &str) -> Option<(PasswordHash, Params)> {
    if phc.len() > MAX_HASH || !phc.starts_with("$argon2id$") {
        return None;
    }
    let parsed = PasswordHash::new(phc).ok()?;
    let params = Params::try_from(&parsed).ok()?;
    (params.m_cost() <= MAX_MEMORY_KIB && params.t_cost() <= MAX_PASSES && params.p_cost() <= 16)
        .then_some((parsed, params))
}

/// A hash of no one's password, made once per process: what an unknown account's login is
/// checked against, so that it costs what a known one does.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut random = [0_u8; 32];
        let _ = getrandom::fill(&mut random);
        let password = Zeroizing::new(hex::encode(random));
        hash_unchecked(&password).unwrap_or_default()
    })
}

/// Whether `password` is the one `stored` was made from. `None` (no such account) costs the
/// same and is `false`; so is a stored hash that is not a valid one ([`is_valid_hash`]).
#[must_use]
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (known, phc) = match stored {
        Some(phc) => (true, phc),
        None => (false, decoy()),
    };
    if parse(phc).is_none() || password.len() > MAX_PASSWORD {
        return false;
    }
    // The hash's own parameters (bounded by `parse`); the comparison is constant-time.
    let same = hasher().verify_password(password.as_bytes(), phc).is_ok();
    known && same
}

/// A one-time password for an account created or reset without one: 20 characters of an
/// alphabet without look-alikes (`0 O 1 l I`), about 115 bits, from the CSPRNG.
///
/// # Errors
/// [`PasswordError::Hashing`] if the operating system gave no randomness.
pub fn generate() -> Result<Zeroizing<String>, PasswordError> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    // The largest multiple of the alphabet's size that fits a byte: bytes above are drawn
    // again, so that every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u16;
    let mut out = Zeroizing::new(String::with_capacity(20));
    let mut buf = Zeroizing::new([0_u8; 64]);
    while out.len() < 20 {
        getrandom::fill(buf.as_mut()).map_err(|e| PasswordError::Hashing(e.to_string()))?;
        for &b in buf.iter() {
            if u16::from(b) < limit && out.len() < 20 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse battery").expect("hashes");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(is_valid_hash(&phc));
        assert!(verify("correct horse battery", Some(&phc)));
        assert!(!verify("correct horse batterY", Some(&phc)));
        assert!(!verify("", Some(&phc)));
        assert!(!verify("correct horse battery", None), "no account: false, whatever the password");
        let again = hash("correct horse battery").expect("hashes");
        assert_ne!(phc, again, "a fresh salt each time");
    }

    #[test]
    fn rules_and_bad_hashes() {
        assert!(hash("short").is_err());
        assert!(hash(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(hash("tab\tinside password").is_err());
        assert_eq!(check_rules("ten chars!"), Ok(()));
        for bad in ["", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", &"$argon2id$".repeat(40)] {
            assert!(!is_valid_hash(bad), "{bad}");
            assert!(!verify("anything at all", Some(bad)));
        }
        // A stored hash that would cost 4 GiB is not computed.
        let costly = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo";
        assert!(!is_valid_hash(costly));
    }

    #[test]
    fn one_time_passwords_are_random_and_pass_the_rules() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert_eq!(a.len(), 20);
        assert_ne!(*a, *b);
        assert_eq!(check_rules(&a), Ok(()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }
}
