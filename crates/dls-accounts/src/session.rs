//! [`SessionPolicy`]: when a console session ends.

/// A console session's timeouts, in seconds: it ends after `idle_secs` without a request,
/// and `absolute_secs` after the login whatever happens. `touch_secs` is how stale the
/// stored time of its last request may get before a request records it again (so that a
/// page's requests do not each write to the store): the idle timeout may be that much
/// longer in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Idle timeout. Default 1,800 (30 minutes).
    pub idle_secs: u64,
    /// Absolute timeout. Default 43,200 (12 hours: a working day).
    pub absolute_secs: u64,
    /// Default 60.
    pub touch_secs: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle_secs: 1800, absolute_secs: 12 * 3600, touch_secs: 60 }
    }
}

/// What [`SessionPolicy::check`] says of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// It is valid; `touch`: record this request's time as its last.
    Valid {
        /// Record the time of this request.
        touch: bool,
    },
    /// It has ended (idle or absolute timeout): back to the login page.
    Expired,
}

impl SessionPolicy {
    /// A session created at `created` and last seen at `last_seen`, at `now` (Unix seconds).
    #[must_use]
    pub fn check(&self, created: u64, last_seen: u64, now: u64) -> SessionCheck {
        let idle_end = last_seen.saturating_add(self.idle_secs);
        let absolute_end = created.saturating_add(self.absolute_secs);
        if now >= idle_end || now >= absolute_end {
            return SessionCheck::Expired;
        }
        SessionCheck::Valid { touch: now >= last_seen.saturating_add(self.touch_secs) }
    }

    /// The oldest last request and the oldest login a session may have at `now` and still
    /// be valid: sessions older than either may be deleted.
    #[must_use]
    pub fn expired_before(&self, now: u64) -> (u64, u64) {
        (now.saturating_sub(self.idle_secs), now.saturating_sub(self.absolute_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::{SessionCheck, SessionPolicy};

    #[test]
    fn idle_and_absolute_timeouts() {
        let p = SessionPolicy { idle_secs: 100, absolute_secs: 1000, touch_secs: 10 };
        assert_eq!(p.check(0, 0, 0), SessionCheck::Valid { touch: false });
        assert_eq!(p.check(0, 0, 9), SessionCheck::Valid { touch: false });
        assert_eq!(p.check(0, 0, 10), SessionCheck::Valid { touch: true });
        assert_eq!(p.check(0, 0, 99), SessionCheck::Valid { touch: true });
        assert_eq!(p.check(0, 0, 100), SessionCheck::Expired, "idle");
        assert_eq!(p.check(0, 950, 999), SessionCheck::Valid { touch: true });
        assert_eq!(p.check(0, 990, 1000), SessionCheck::Expired, "absolute, though active");
        assert_eq!(p.check(u64::MAX - 5, u64::MAX - 5, u64::MAX), SessionCheck::Expired);
        assert_eq!(p.expired_before(1500), (1400, 500));
        assert_eq!(p.expired_before(5), (0, 0));
    }
}
