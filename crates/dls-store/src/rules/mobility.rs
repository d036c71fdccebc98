//! Mobility users: what the store accepts of them, and the throttle of wrong passwords.
//!
//! # The throttle
//!
//! Wrong passwords are counted per **pair** (user number, device): a token bucket of
//! `pair_burst` failures refilling one every `pair_interval_secs`, so a pair at its limit
//! waits at most `pair_interval_secs`. Two **ceilings** bound what many pairs do together:
//! per user (guesses of one user at many phones) and per device (one phone trying many
//! users). Neither refuses by itself; one that is exceeded puts its user or device **under
//! pressure**, and under pressure a pair that failed in the last `pressure_interval_secs`
//! waits until that long after its last failure, while a pair with no recent failure is
//! admitted at once when only its user is under pressure — so a guesser at other phones
//! never stops the user's first attempt at the phone in front of them — and waits for the
//! device's next token (at most `device_interval_secs`) when its device is. A success
//! forgets the pair and gives the user and the device one failure back. Every delay is
//! bounded: nobody is ever locked out for good. The same rules as `dls_digest::Throttle`'s
//! (`docs/digest.md`), on rows kept in the store so that every node counts together.

use dls_message::MacAddr;

use crate::StoreError;

/// The longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 128;

/// The most mobility profiles of one user.
pub const MAX_USER_PROFILES: usize = 16;

/// The longest password hash kept (an Argon2id PHC string is about 100 bytes).
pub const MAX_PASSWORD_HASH: usize = 512;

/// The most users one listing returns.
pub const MAX_USERS_LISTED: usize = 100_000;

/// Refuses a number that is not in its normalised form.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_number(number: &str) -> Result<(), StoreError> {
    match dls_engine::mobility::normalise_number(number) {
        Some(n) if n == number => Ok(()),
        _ => Err(StoreError::Invalid(format!(
            "number {number:?}: digits only, with one optional leading +, up to {} digits",
            dls_engine::mobility::MAX_NUMBER_DIGITS
        ))),
    }
}

/// Refuses a display name that is too long or holds control characters.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_display_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "display name: 1 to {MAX_DISPLAY_NAME} characters, no control characters"
        )));
    }
    Ok(())
}

/// Refuses what is not an Argon2id hash in the PHC string format.
///
/// # Errors
/// [`StoreError::Invalid`] (without the hash).
pub fn check_password_hash(hash: &str) -> Result<(), StoreError> {
    if !hash.starts_with("$argon2id$") || hash.len() > MAX_PASSWORD_HASH || !hash.is_ascii() {
        return Err(StoreError::Invalid("the password hash is not an Argon2id PHC string".into()));
    }
    Ok(())
}

/// Refuses a list of mobility profiles that is too long, names a profile twice or a name
/// that is not a profile name (whether each exists is the backend's check).
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_user_profiles(profiles: &[String]) -> Result<(), StoreError> {
    if profiles.len() > MAX_USER_PROFILES {
        return Err(StoreError::Invalid(format!("at most {MAX_USER_PROFILES} mobility profiles")));
    }
    for (i, p) in profiles.iter().enumerate() {
        crate::rules::check_profile_name(p)?;
        if profiles[..i].contains(p) {
            return Err(StoreError::Invalid(format!("profile {p:?} named twice")));
        }
    }
    Ok(())
}

/// The error of a user that does not exist.
#[must_use]
pub fn user_not_found(number: &str) -> StoreError {
    StoreError::not_found(format!("user {number}"))
}

/// The error of a change of a user that lost a race (its revision changed).
#[must_use]
pub fn contended(number: &str) -> StoreError {
    StoreError::Contended { what: format!("user {number}") }
}

/// Whether a `mobility-logon` job may be queued for `number` at `mac`, given the device
/// it is logged on at: not while it is logged on at another (an administrator logs it
/// off first).
///
/// # Errors
/// [`StoreError::Conflict`].
pub fn check_queue_logon(number: &str, logged_on: Option<MacAddr>, mac: MacAddr) -> Result<(), StoreError> {
    match logged_on {
        Some(other) if other != mac => Err(StoreError::Conflict {
            what: format!("user {number} is logged on at {other}; log it off first: a logon"),
        }),
        _ => Ok(()),
    }
}

/// The device a `mobility-logoff` job of `number` goes to: where it is logged on.
///
/// # Errors
/// [`StoreError::NotFound`] when it is not logged on.
pub fn logoff_device(number: &str, logged_on: Option<MacAddr>) -> Result<MacAddr, StoreError> {
    logged_on.ok_or_else(|| StoreError::not_found(format!("a logon of user {number}")))
}

/// The throttle's limits (see the [module](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Failures a (user, device) pair may make at once before its attempts are spaced.
    /// Default 5.
    pub pair_burst: u32,
    /// A pair's budget refills one failure per this many seconds. Default 60.
    pub pair_interval_secs: u64,
    /// Failures for one user, at every device, at once before the user is under pressure.
    /// Default 20.
    pub user_burst: u32,
    /// The user's budget refills one failure per this many seconds. Default 30.
    pub user_interval_secs: u64,
    /// Failures at one device, for every user, at once before the device is under
    /// pressure. Default 20.
    pub device_burst: u32,
    /// The device's budget refills one failure per this many seconds. Default 30.
    pub device_interval_secs: u64,
    /// Under pressure, a pair that has failed waits this long after its last failure.
    /// Default 300: the longest anyone waits.
    pub pressure_interval_secs: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            pair_burst: 5,
            pair_interval_secs: 60,
            user_burst: 20,
            user_interval_secs: 30,
            device_burst: 20,
            device_interval_secs: 30,
            pressure_interval_secs: 300,
        }
    }
}

/// One stored bucket: its theoretical arrival time (the bucket is full again then) and
/// the last failure counted in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleRow {
    /// When the bucket is full again (Unix seconds).
    pub tat: u64,
    /// The last failure (Unix seconds).
    pub last: u64,
}

/// The rows of one password check: the pair's, the user's, the device's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// The (user, device) pair's.
    pub pair: Option<ThrottleRow>,
    /// The user's.
    pub user: Option<ThrottleRow>,
    /// The device's.
    pub device: Option<ThrottleRow>,
}

/// The keys of a check's rows in the store: pair, user, device.
#[must_use]
pub fn throttle_keys(number: &str, mac: MacAddr) -> [String; 3] {
    [format!("pair:{number}:{mac}"), format!("user:{number}"), format!("device:{mac}")]
}

#[derive(Clone, Copy)]
struct Rate {
    interval: u64,
    burst: u32,
}

impl Rate {
    fn tolerance(self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }

    fn enabled(self) -> bool {
        self.burst > 0 && self.interval > 0
    }

    fn wait(self, tat: u64, now: u64) -> u64 {
        if !self.enabled() {
            return 0;
        }
        tat.saturating_sub(self.tolerance()).saturating_sub(now)
    }

    fn consume(self, tat: u64, now: u64) -> u64 {
        let cap = now.saturating_add(self.tolerance()).saturating_add(self.interval);
        tat.max(now).saturating_add(self.interval).min(cap)
    }

    fn refund(self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(self.interval).max(now)
    }
}

impl ThrottleConfig {
    fn pair(&self) -> Rate {
        Rate { interval: self.pair_interval_secs, burst: self.pair_burst }
    }

    fn user(&self) -> Rate {
        Rate { interval: self.user_interval_secs, burst: self.user_burst }
    }

    fn device(&self) -> Rate {
        Rate { interval: self.device_interval_secs, burst: self.device_burst }
    }

    /// `Some(seconds)` when a password check must wait now (it is refused unchecked).
    #[must_use]
    pub fn wait(&self, s: &ThrottleState, now: u64) -> Option<u64> {
        let pair_wait = s.pair.map_or(0, |p| self.pair().wait(p.tat, now));
        let user_wait = s.user.map_or(0, |u| self.user().wait(u.tat, now));
        let device_wait = s.device.map_or(0, |d| self.device().wait(d.tat, now));
        // Only the device's own budget holds a fresh pair, never the user's.
        let mut wait = pair_wait.max(device_wait);
        let recent = s.pair.map(|p| p.last.saturating_add(self.pressure_interval_secs)).filter(|&t| t > now);
        if let Some(until) = recent.filter(|_| user_wait > 0 || device_wait > 0) {
            wait = wait.max(until - now);
        }
        (wait > 0).then_some(wait)
    }

    /// The rows after a check at `now` (`success`: the password was right).
    #[must_use]
    pub fn after(&self, s: &ThrottleState, success: bool, now: u64) -> ThrottleState {
        if success {
            let refund =
                |rate: Rate, row: Option<ThrottleRow>| row.map(|r| ThrottleRow { tat: rate.refund(r.tat, now), ..r });
            return ThrottleState {
                pair: None,
                user: refund(self.user(), s.user),
                device: refund(self.device(), s.device),
            };
        }
        let consume = |rate: Rate, row: Option<ThrottleRow>| {
            let tat = row.map_or(now, |r| r.tat);
            Some(ThrottleRow { tat: rate.consume(tat, now), last: now })
        };
        ThrottleState {
            pair: consume(self.pair(), s.pair),
            user: consume(self.user(), s.user),
            device: consume(self.device(), s.device),
        }
    }

    /// When a row stops mattering (it may be deleted from then on).
    #[must_use]
    pub fn expires(&self, row: ThrottleRow) -> u64 {
        row.tat.max(row.last.saturating_add(self.pressure_interval_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(c: &ThrottleConfig, s: &mut ThrottleState, now: u64) {
        *s = c.after(s, false, now);
    }

    #[test]
    fn a_pair_waits_after_its_burst_and_never_longer_than_an_interval() {
        let c = ThrottleConfig::default();
        let mut s = ThrottleState::default();
        for _ in 0..5 {
            assert_eq!(c.wait(&s, 1000), None);
            fail(&c, &mut s, 1000);
        }
        assert_eq!(c.wait(&s, 1000), Some(60));
        assert_eq!(c.wait(&s, 1059), Some(1));
        assert_eq!(c.wait(&s, 1060), None, "after the wait, the next attempt is checked");
        // However long it goes on, one more attempt per interval.
        for t in (1060..100_000).step_by(60) {
            assert_eq!(c.wait(&s, t), None);
            fail(&c, &mut s, t);
        }
        let success = c.after(&s, true, 100_000);
        assert_eq!(success.pair, None);
        assert_eq!(c.wait(&success, 100_000), None);
    }

    #[test]
    fn a_guesser_elsewhere_does_not_stop_a_first_attempt_here() {
        let c = ThrottleConfig::default();
        // The user's ceiling is exceeded by guesses at other phones.
        let mut elsewhere = ThrottleState::default();
        for t in 0..100 {
            elsewhere = c.after(&elsewhere, false, 1000 + t / 10);
        }
        let here = ThrottleState { pair: None, user: elsewhere.user, device: None };
        assert_eq!(c.wait(&here, 1010), None, "a fresh pair goes through");
        // A pair that failed lately waits, at most the pressure interval.
        let mut here = here;
        fail(&c, &mut here, 1010);
        let wait = c.wait(&here, 1011).expect("under pressure");
        assert!(wait <= 300, "{wait}");
        assert_eq!(c.wait(&here, 1310), None);
    }

    #[test]
    fn a_device_trying_many_users_waits_for_its_tokens() {
        let c = ThrottleConfig::default();
        let mut device = None;
        for t in 0..20 {
            let s = c.after(&ThrottleState { device, ..ThrottleState::default() }, false, 1000 + t);
            device = s.device;
        }
        let fresh = ThrottleState { pair: None, user: None, device };
        let wait = c.wait(&fresh, 1020).expect("the device is at its ceiling");
        assert!(wait <= 30, "{wait}");
        assert_eq!(c.wait(&fresh, 1020 + wait), None);
    }

    #[test]
    fn rows_expire() {
        let c = ThrottleConfig::default();
        let s = c.after(&ThrottleState::default(), false, 1000);
        let pair = s.pair.expect("a row");
        assert_eq!(c.expires(pair), 1300);
        assert_eq!(throttle_keys("+491", MacAddr::from_bytes([0, 1, 2, 3, 4, 5]))[0], "pair:+491:000102030405");
    }

    #[test]
    fn what_the_store_accepts() {
        assert!(check_number("+49891234").is_ok());
        assert!(check_number("+49 89 1234").is_err(), "not normalised");
        assert!(check_display_name("Anna Meier").is_ok());
        assert!(check_display_name("a\nb").is_err());
        assert!(check_display_name(" ").is_err());
        assert!(check_password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").is_ok());
        assert!(check_password_hash("plain").is_err());
        assert!(check_user_profiles(&["a".into(), "b".into()]).is_ok());
        assert!(check_user_profiles(&["a".into(), "a".into()]).is_err());
        assert!(check_user_profiles(&vec!["p".to_owned(); 17]).is_err());
    }
}
