//! The service's one clock. [`crate::start`] hands a [`SystemClock`] down to everything that
//! reads the time as part of what the service decides: the engine's `now`, what the store
//! records (registrations, security changes, jobs, files, contact-me attempts, audit), the
//! Digest nonces, interaction sessions' expiry, the DCMP rate limit, the contact-me
//! schedule (one per phone per minute, backoff) and the retention task.
//! [`crate::start_with_clock`] takes another, such as a [`ManualClock`] that tests move.
//!
//! Not on this clock: the deadlines that guard I/O against slow or silent peers (a TLS
//! handshake, a request body, an idle connection, a contact-me's own timeout, the shutdown
//! grace). They measure how long a socket waits, not when something happens, and stay on
//! tokio's timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dls_engine::UnixTime;
use tokio::sync::watch;

/// A wait for a [`Clock`]'s monotonic time to reach an instant.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wall-clock time, monotonic time, and waiting for the latter.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time in seconds: what is stored, shown, and compared with certificates.
    fn now(&self) -> UnixTime;
    /// Monotonic time: expiry, rate limits and schedules.
    fn instant(&self) -> Instant;
    /// Resolves once [`Clock::instant`] has reached `at`.
    fn sleep_until(&self, at: Instant) -> Sleep;
}

/// The host's clocks (and tokio's timer to wait).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, at: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(at.into()))
    }
}

/// A clock that moves only when [`ManualClock::advance`] is called; clones share it. For
/// tests: what depends on time happens exactly when the test says, however loaded the host.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    origin: Instant,
    unix_origin: u64,
    elapsed: watch::Sender<Duration>,
}

impl ManualClock {
    /// A clock that reads `unix` (seconds) until advanced.
    #[must_use]
    pub fn new(unix: UnixTime) -> Self {
        let (elapsed, _) = watch::channel(Duration::ZERO);
        Self { inner: Arc::new(ManualInner { origin: Instant::now(), unix_origin: unix.0, elapsed }) }
    }

    /// A clock that reads the host's time now until advanced: for tests whose peers check
    /// certificates the service issues against their own clock.
    #[must_use]
    pub fn from_system() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves both times forward by `by`, waking the waits that are then over.
    pub fn advance(&self, by: Duration) {
        self.inner.elapsed.send_modify(|e| *e += by);
    }

    fn elapsed(&self) -> Duration {
        *self.inner.elapsed.borrow()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.inner.unix_origin + self.elapsed().as_secs())
    }

    fn instant(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }

    fn sleep_until(&self, at: Instant) -> Sleep {
        let mut elapsed = self.inner.elapsed.subscribe();
        let origin = self.inner.origin;
        Box::pin(async move {
            // The sender lives as long as the clock; with the clock gone, time stands still.
            if elapsed.wait_for(|e| origin + *e >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(UnixTime(1_000));
        let start = clock.instant();
        assert_eq!((clock.now(), clock.instant()), (UnixTime(1_000), start));
        let wait = tokio::spawn(clock.sleep_until(start + Duration::from_secs(60)));
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "59 s are not 60");
        clock.advance(Duration::from_secs(1));
        wait.await.expect("the wait ends at 60 s");
        assert_eq!(clock.now(), UnixTime(1_060));
        assert_eq!(clock.instant() - start, Duration::from_secs(60));
    }
}
