//! The shell's part of mobility (`docs/mobility.md`): the users' passwords — Argon2id,
//! hashed for the admin API and verified for a phone's logon here, on a blocking thread,
//! never inside a device's transaction (a check takes tens of milliseconds and 19 MiB) —,
//! the throttle checked before a password is, and what one message loads of the users for
//! the engine ([`dls_engine::Engine::mobility_query`]).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use dls_engine::mobility::{MobilityInput, MobilityQuery, Verdict, Whom, reported_password};
use dls_engine::{Change, MobilityChange, UnixTime};
use dls_message::{MacAddr, WorkpointMessage};
use dls_store::rules::mobility::ThrottleConfig;
use dls_store::{MobilityContext, Store, StoreError};
use zeroize::Zeroize;

/// The shortest password an administrator may set.
pub(crate) const MIN_PASSWORD_CHARS: usize = 4;

/// The longest password an administrator may set, and the longest a phone's is checked.
pub(crate) const MAX_PASSWORD_CHARS: usize = 128;

/// Why a password was not hashed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PasswordError {
    /// Not a password this service takes.
    #[error("a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, without control characters")]
    Invalid,
    /// No random salt, or the hash failed: our fault.
    #[error("the password could not be hashed: {0}")]
    Hashing(String),
}

/// Argon2id with the crate's defaults, OWASP's recommendation: 19 MiB, 2 passes, one lane.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// Whether `password` is one an administrator may set.
pub(crate) fn check_password(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) || password.chars().any(char::is_control) {
        return Err(PasswordError::Invalid);
    }
    Ok(())
}

/// `password`'s Argon2id hash, a PHC string, with a random 16-byte salt. Blocks (run it
/// off the executor).
pub(crate) fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hashing(format!("no random source: {e}")))?;
    argon2()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` is the one `hash` was made of (the comparison is the crate's,
/// constant-time). Blocks.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    password.chars().count() <= MAX_PASSWORD_CHARS && argon2().verify_password(password.as_bytes(), hash).is_ok()
}

/// A hash no password is known to match: an unknown user's logon is checked against it,
/// so that it takes as long as a known user's.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 24];
        // Without randomness, a fixed text still makes a hash that costs the same.
        let _ = getrandom::fill(&mut secret);
        let text: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&text).unwrap_or_default()
    })
}

/// What the engine is told of the password the message carries, as `query` asks: not
/// checked while the throttle holds the (user, device) pair, else checked against the
/// user's hash (an unknown user's against [`dummy_hash`]).
fn verdict(query: &MobilityQuery, ctx: &MobilityContext, message: &WorkpointMessage, now: UnixTime) -> Verdict {
    let (Some(whom), Some(password)) = (query.check_password, reported_password(message)) else {
        return Verdict::NotChecked;
    };
    let user = match whom {
        Whom::Named => ctx.named.as_ref(),
        Whom::Here => ctx.here.as_ref(),
    };
    if (user.is_some() || query.named.is_some()) && ThrottleConfig::default().wait(&ctx.throttle, now.0).is_some() {
        return Verdict::Throttled;
    }
    match (user, whom) {
        (Some(u), _) if verify_password(password, &u.password_hash) => Verdict::Right,
        (Some(_), _) => Verdict::Wrong,
        (None, Whom::Named) => {
            if query.named.is_some() {
                let _ = verify_password(password, dummy_hash());
            }
            Verdict::UnknownUser
        }
        (None, Whom::Here) => Verdict::NotChecked,
    }
}

/// What one message of `mac` needs of the users, as `query` says, with the password it
/// carries checked. Blocks: a store read, and an Argon2id check.
pub(crate) fn load(
    store: &dyn Store,
    mac: MacAddr,
    query: &MobilityQuery,
    message: &WorkpointMessage,
    now: UnixTime,
) -> Result<MobilityInput, StoreError> {
    let ctx = store.mobility_context(mac, query)?;
    let verdict = verdict(query, &ctx, message, now);
    Ok(MobilityInput {
        here: ctx.here.map(|s| s.user),
        named: ctx.named.map(|s| s.user),
        verdict,
        job_users: ctx.job_users,
    })
}

/// Whether what was loaded for `loaded` serves `wanted` too (the same message: the users
/// of the device's jobs are the only part that may grow once the device is loaded).
pub(crate) fn covers(loaded: &MobilityQuery, wanted: &MobilityQuery) -> bool {
    wanted.job_users.iter().all(|n| loaded.job_users.contains(n))
        && wanted.job_data.iter().all(|n| loaded.job_data.contains(n))
        && loaded.named == wanted.named
        && loaded.check_password == wanted.check_password
        && loaded.restore == wanted.restore
}

/// The devices whose forced logoff a message's changes asked for: they get a contact-me.
pub(crate) fn logoffs_requested(changes: &[Change]) -> Vec<MacAddr> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Mobility(MobilityChange::RequestLogoff { device, .. }) => Some(*device),
            _ => None,
        })
        .collect()
}

/// Wipes what the phone sent under secret items' names (a typed password) once the
/// message is handled.
pub(crate) fn wipe_secrets(message: &mut WorkpointMessage) {
    for item in message.items.iter_mut().flatten().filter(|i| dls_engine::secret_items::is_secret(&i.name)) {
        item.value.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let hash = hash_password("secret-1").expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(dls_store::rules::mobility::check_password_hash(&hash).is_ok());
        assert!(verify_password("secret-1", &hash));
        assert!(!verify_password("secret-2", &hash));
        assert!(!verify_password("secret-1", "not a hash"));
        assert_ne!(hash, hash_password("secret-1").expect("hashes"), "a fresh salt each time");
        for bad in ["", "abc", "a\nbcd", &"x".repeat(129)] {
            assert!(matches!(hash_password(bad), Err(PasswordError::Invalid)), "{bad:?}");
        }
        assert!(!verify_password(&"x".repeat(129), &hash));
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn the_throttle_is_checked_before_the_password() {
        let hash = hash_password("secret-1").expect("hashes");
        let user = dls_store::StoredUser { user: dls_engine::MobilityUser::default(), password_hash: hash };
        let message = |pwd: &str| WorkpointMessage {
            header: dls_message::Header { nonce: "n".into(), max_items: None, fragment: None },
            reason: dls_message::ReasonForContact::new(dls_message::Reason::InventoryChanges),
            items: Some(vec![dls_message::Item::new("user-pwd", pwd)]),
        };
        let query =
            MobilityQuery { named: Some("1".into()), check_password: Some(Whom::Named), ..MobilityQuery::default() };
        let mut ctx = MobilityContext { named: Some(user), ..MobilityContext::default() };
        assert_eq!(verdict(&query, &ctx, &message("secret-1"), UnixTime(1000)), Verdict::Right);
        assert_eq!(verdict(&query, &ctx, &message("secret-2"), UnixTime(1000)), Verdict::Wrong);
        let c = ThrottleConfig::default();
        for _ in 0..5 {
            ctx.throttle = c.after(&ctx.throttle, false, 1000);
        }
        assert_eq!(verdict(&query, &ctx, &message("secret-1"), UnixTime(1000)), Verdict::Throttled);
        assert_eq!(verdict(&query, &ctx, &message("secret-1"), UnixTime(1060)), Verdict::Right, "after the wait");
        ctx.named = None;
        ctx.throttle = Default::default();
        assert_eq!(verdict(&query, &ctx, &message("secret-1"), UnixTime(1000)), Verdict::UnknownUser);
        assert_eq!(verdict(&MobilityQuery::default(), &ctx, &message("x"), UnixTime(1000)), Verdict::NotChecked);
    }
}
