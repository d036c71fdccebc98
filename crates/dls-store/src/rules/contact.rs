//! The contact-me pacing: when the next contact-me to a phone may go, after an attempt.
//!
//! One function for both schedules: the service's in-memory planner (one node) and the
//! store's `contact_schedule` ([`ContactStore`](crate::ContactStore), several nodes), so
//! that the rules are written once. Times are [`Duration`]s from any origin the caller
//! chooses (the planner: its clock's start; a store: the Unix epoch).

use std::time::Duration;

/// How contact-me requests to one phone are paced (the service's policy as applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactPacing {
    /// The shortest interval between two contact-me requests to one phone.
    pub min_interval: Duration,
    /// After a `204`, no new contact-me before this (the phone's contact gap).
    pub after_success: Duration,
    /// The delay after the first failure; it doubles with each further failure.
    pub backoff_base: Duration,
    /// The longest delay after failures.
    pub backoff_cap: Duration,
}

impl ContactPacing {
    /// The delay before the next contact-me after the `failures`-th failure in a row:
    /// `min(backoff_cap, backoff_base·2^(failures-1))`, never less than `min_interval`.
    #[must_use]
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(31);
        self.backoff_base
            .checked_mul(factor)
            .map_or(self.backoff_cap, |d| d.min(self.backoff_cap))
            .max(self.min_interval)
    }

    /// After an attempt that ended at `now`, of a phone with `failures` failures in a row
    /// before it and whose next contact-me was not due before `next_at`: the failures in a
    /// row after it and the earliest time of the next contact-me. After a success (`204`)
    /// the count restarts and the next is [`after_success`](Self::after_success) away;
    /// after a failure it is [`backoff`](Self::backoff) away. Never earlier than `next_at`.
    #[must_use]
    pub fn after_attempt(&self, failures: u32, next_at: Duration, now: Duration, success: bool) -> (u32, Duration) {
        let (failures, delay) = if success {
            (0, self.after_success)
        } else {
            let failures = failures.saturating_add(1);
            (failures, self.backoff(failures))
        };
        (failures, now.saturating_add(delay).max(next_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    const PACING: ContactPacing =
        ContactPacing { min_interval: s(60), after_success: s(300), backoff_base: s(60), backoff_cap: s(3600) };

    #[test]
    fn failures_double_to_the_cap_and_a_success_restarts() {
        let delays: Vec<u64> = (1..=9).map(|n| PACING.backoff(n).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(PACING.backoff(u32::MAX), s(3600));
        assert_eq!(PACING.after_attempt(0, s(0), s(100), false), (1, s(160)));
        assert_eq!(PACING.after_attempt(3, s(0), s(100), false), (4, s(580)));
        assert_eq!(PACING.after_attempt(7, s(0), s(100), true), (0, s(400)));
        assert_eq!(PACING.after_attempt(0, s(1000), s(100), true), (0, s(1000)), "never earlier than before");
        let short = ContactPacing { backoff_base: s(10), backoff_cap: s(100), ..PACING };
        let delays: Vec<u64> = (1..=6).map(|n| short.backoff(n).as_secs()).collect();
        assert_eq!(delays, [60, 60, 60, 80, 100, 100], "never below the minimum interval");
    }
}
