//! Retention: a background task that deletes audit records and jobs that are over once they
//! are older than the configured number of days ([`Store::prune`]), shortly after the start
//! and then every hour, on a blocking thread.
//!
//! One node at a time: before each pruning the task takes (or renews) the store's lease
//! [`LEASE`] for an hour ([`MaintenanceStore::try_lease`](dls_store::MaintenanceStore::try_lease)); a node that does not get it
//! (another node holds it) skips this run. Of several nodes on one database, one prunes
//! each hour — the lease's holder renews it at its next run, and when it stops (it gives
//! the lease up) or dies (the lease expires), another node takes over at its next run.
//! A single node always gets its own lease.
//!
//! The times are plain code ([`RetentionPolicy::bounds`], time passed in); the task around
//! it only waits, runs it off the executor and logs.

use std::sync::Arc;
use std::time::Duration;

use dls_engine::UnixTime;
use dls_store::{Pruned, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use crate::Config;
use crate::clock::Clock;

/// How long after the start the first pruning runs: after the phones that call in at a
/// restart.
const FIRST_RUN: Duration = Duration::from_secs(60);

/// The time between the end of one pruning and the next.
const INTERVAL: Duration = Duration::from_secs(3600);

const SECS_PER_DAY: u64 = 24 * 3600;

/// The name of the store's lease that keeps retention to one node at a time.
pub(crate) const LEASE: &str = "retention";

/// How long records are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetentionPolicy {
    /// Days an audit record is kept after it was written; 0: forever.
    pub(crate) audit_days: u32,
    /// Days a job that is over is kept after its last change; 0: forever.
    pub(crate) job_days: u32,
}

impl RetentionPolicy {
    /// The configured policy (`audit-retention-days`, `job-retention-days`).
    pub(crate) fn from_config(config: &Config) -> Self {
        Self { audit_days: config.audit_retention_days, job_days: config.job_retention_days }
    }

    /// Whether nothing is ever deleted (then no task runs).
    pub(crate) fn keeps_everything(self) -> bool {
        self.audit_days == 0 && self.job_days == 0
    }

    /// The bounds given to [`Store::prune`] at `now`: for audit records and for jobs, what
    /// is older than that many days (`None`: kept forever). Before the epoch plus the
    /// retention, the bound is the epoch: nothing is deleted.
    pub(crate) fn bounds(self, now: UnixTime) -> (Option<UnixTime>, Option<UnixTime>) {
        (days_before(now, self.audit_days), days_before(now, self.job_days))
    }
}

fn days_before(now: UnixTime, days: u32) -> Option<UnixTime> {
    (days > 0).then(|| UnixTime(now.0.saturating_sub(u64::from(days) * SECS_PER_DAY)))
}

/// Prunes what the policy lets go at `now`. Blocks: call it off the executor.
pub(crate) fn prune(store: &dyn Store, policy: RetentionPolicy, now: UnixTime) -> Result<Pruned, StoreError> {
    let (audit_before, jobs_before) = policy.bounds(now);
    store.prune(audit_before, jobs_before)
}

/// Prunes at `now` if `node` gets (or holds) the lease [`LEASE`] until an hour later: `None`
/// (nothing done) when another node holds it.
pub(crate) fn prune_leased(
    store: &dyn Store,
    node: &str,
    policy: RetentionPolicy,
    now: UnixTime,
) -> Result<Option<Pruned>, StoreError> {
    let until = UnixTime(now.0.saturating_add(INTERVAL.as_secs()));
    if !store.try_lease(LEASE, node, now, until)? {
        return Ok(None);
    }
    prune(store, policy, now).map(Some)
}

/// Prunes now (if `node` gets the lease), on a blocking thread, and logs the outcome: one
/// info line when something was deleted, an error line on failure. `None` on failure or
/// when another node holds the lease.
async fn prune_and_log(store: Arc<dyn Store>, node: String, policy: RetentionPolicy, now: UnixTime) -> Option<Pruned> {
    match crate::tasks::spawn_blocking(move || prune_leased(&*store, &node, policy, now)).await {
        Ok(Ok(None)) => {
            debug!("retention: another node prunes this hour");
            None
        }
        Ok(Ok(Some(pruned))) => {
            if !pruned.is_empty() {
                info!(
                    audit_records = pruned.audit_records,
                    jobs = pruned.jobs,
                    audit_retention_days = policy.audit_days,
                    job_retention_days = policy.job_days,
                    "retention: deleted old audit records and jobs"
                );
            }
            Some(pruned)
        }
        Ok(Err(e)) => {
            error!(error = %e, "retention: pruning failed");
            None
        }
        Err(e) => {
            error!(error = %e, "retention: the pruning thread failed");
            None
        }
    }
}

/// Starts the retention task on the current tokio runtime, unless the policy keeps
/// everything. It runs until `shutdown` becomes `true` (or its sender is dropped); a pruning
/// in progress then finishes on its blocking thread, unwaited (each of its batches is
/// committed by itself).
pub(crate) fn spawn(
    policy: RetentionPolicy,
    store: Arc<dyn Store>,
    node: String,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if policy.keeps_everything() {
        debug!("retention: audit records and jobs are kept forever");
        return None;
    }
    // The schedule is fixed here, not when the task first runs.
    let first = clock.instant() + FIRST_RUN;
    Some(crate::tasks::spawn(run(policy, store, node, clock, first, shutdown)))
}

async fn run(
    policy: RetentionPolicy,
    store: Arc<dyn Store>,
    node: String,
    clock: Arc<dyn Clock>,
    first: std::time::Instant,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move {
        // An error: the sender is gone, which stops the task too.
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stop);
    let mut next = first;
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = clock.sleep_until(next) => {}
        }
        tokio::select! {
            () = &mut stop => break,
            _ = prune_and_log(store.clone(), node.clone(), policy, clock.now()) => {}
        }
        // Hourly from the first run; a run that took longer than that is followed at once.
        next = (next + INTERVAL).max(clock.instant());
    }
    // Another node may take over at its next run, without waiting for the lease to expire.
    let release = crate::tasks::spawn_blocking(move || store.release_lease(LEASE, &node)).await;
    if let Ok(Err(e)) = release {
        debug!(error = %e, "retention: giving the lease up failed");
    }
    debug!("retention task stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use dls_engine::{AuditEvent, AuditKind, Change, JobKind, JobState, JobUpdate, SecurityMode, UnixTime};
    use dls_message::MacAddr;
    use dls_store::{AuditStore, JobFilter, JobStore, MaintenanceStore, NewJob, ProtocolStore, Store};
    use dls_store_sqlite::SqliteStore;
    use tokio::sync::watch;

    use super::{RetentionPolicy, SECS_PER_DAY, prune, prune_and_log, prune_leased, spawn};
    use crate::Config;
    use crate::clock::{Clock, ManualClock};

    /// A safety net for the tests that wait for the task: never reached when they pass.
    const LIMIT: Duration = Duration::from_secs(30);

    const DAY: u64 = SECS_PER_DAY;

    fn policy(audit_days: u32, job_days: u32) -> RetentionPolicy {
        RetentionPolicy { audit_days, job_days }
    }

    fn mac() -> MacAddr {
        MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, 0x01])
    }

    /// A store with audit records written at `audit` and jobs that were done at `jobs_done`
    /// (each a time), and one job still queued from the beginning of time.
    fn store_with(audit: &[u64], jobs_done: &[u64]) -> SqliteStore {
        let s = SqliteStore::open_in_memory().expect("opens");
        s.apply(mac(), &[Change::Register { mode: SecurityMode::Default }]).expect("registers");
        let events: Vec<Change> = audit
            .iter()
            .map(|at| Change::Audit(AuditEvent { at: UnixTime(*at), kind: AuditKind::TanWrong, detail: String::new() }))
            .collect();
        s.apply(mac(), &events).expect("applies");
        s.add_jobs(&[NewJob { mac: mac(), kind: JobKind::Restart }], UnixTime(0)).expect("adds");
        for at in jobs_done {
            let id = s.add_jobs(&[NewJob { mac: mac(), kind: JobKind::Restart }], UnixTime(0)).expect("adds")[0].id;
            let done = JobUpdate { id, at: UnixTime(*at), state: JobState::Done, ..JobUpdate::default() };
            s.apply(mac(), &[Change::Job(done)]).expect("applies");
        }
        s
    }

    /// `(audit records, jobs)` left.
    fn left(s: &SqliteStore) -> (usize, usize) {
        (s.audit(None, 10_000).expect("audit").len(), s.jobs(&JobFilter::default()).expect("lists").len())
    }

    #[test]
    fn bounds_are_the_retention_days_before_now_or_none() {
        let now = UnixTime(1_000 * DAY + 123);
        assert_eq!(policy(400, 90).bounds(now), (Some(UnixTime(600 * DAY + 123)), Some(UnixTime(910 * DAY + 123))));
        assert_eq!(policy(0, 1).bounds(now), (None, Some(UnixTime(999 * DAY + 123))));
        assert_eq!(policy(1, 0).bounds(now), (Some(UnixTime(999 * DAY + 123)), None));
        assert_eq!(policy(0, 0).bounds(now), (None, None));
        // A clock near the epoch: nothing is old enough.
        assert_eq!(policy(400, 90).bounds(UnixTime(5)), (Some(UnixTime(0)), Some(UnixTime(0))));
        // The longest retention the configuration allows, and more, without overflow.
        assert_eq!(policy(u32::MAX, 36_500).bounds(now), (Some(UnixTime(0)), Some(UnixTime(0))));
        assert!(policy(0, 0).keeps_everything());
        assert!(!policy(0, 90).keeps_everything());
        assert!(!policy(400, 0).keeps_everything());
    }

    #[test]
    fn the_policy_is_the_configured_one() {
        assert_eq!(RetentionPolicy::from_config(&Config::default()), policy(400, 90));
        let config = Config::from_toml("audit-retention-days = 0\njob-retention-days = 7\n").expect("parses");
        assert_eq!(RetentionPolicy::from_config(&config), policy(0, 7));
    }

    #[test]
    fn prune_deletes_what_is_older_than_the_retention() {
        let now = UnixTime(1_000 * DAY);
        let s = store_with(&[100 * DAY, 700 * DAY, 999 * DAY], &[500 * DAY, 950 * DAY, 999 * DAY]);
        assert_eq!(left(&s), (3, 4));
        let pruned = prune(&s, policy(400, 90), now).expect("prunes");
        assert_eq!((pruned.audit_records, pruned.jobs), (1, 1));
        assert_eq!(left(&s), (2, 3), "the queued job stays");
        let pruned = prune(&s, policy(0, 1), now).expect("prunes");
        assert_eq!((pruned.audit_records, pruned.jobs), (0, 1), "0: the audit log is kept");
        assert!(prune(&s, policy(0, 0), now).expect("prunes").is_empty());
        assert_eq!(left(&s), (2, 2));
    }

    /// Two nodes on one store: the one that gets the lease prunes, the other does nothing
    /// until the lease has expired (an hour) or was given up.
    #[test]
    fn one_node_at_a_time_prunes() {
        let now = 20_000 * DAY;
        let s = store_with(&[now - 500 * DAY, now - 499 * DAY], &[]);
        let old = |s: &SqliteStore, at: u64| {
            let event = AuditEvent { at: UnixTime(at), kind: AuditKind::TanWrong, detail: String::new() };
            s.apply(mac(), &[Change::Audit(event)]).expect("applies");
        };
        let p = policy(400, 0);
        assert_eq!(prune_leased(&s, "a", p, UnixTime(now)).expect("prunes").map(|x| x.audit_records), Some(2));
        old(&s, now - 500 * DAY);
        assert_eq!(prune_leased(&s, "b", p, UnixTime(now + 10)).expect("runs"), None, "a holds the lease");
        assert_eq!(prune_leased(&s, "b", p, UnixTime(now + 3599)).expect("runs"), None, "for an hour");
        assert_eq!(left(&s).0, 1, "b pruned nothing");
        assert_eq!(prune_leased(&s, "b", p, UnixTime(now + 3600)).expect("prunes").map(|x| x.audit_records), Some(1));
        old(&s, now - 500 * DAY);
        assert_eq!(prune_leased(&s, "a", p, UnixTime(now + 3601)).expect("runs"), None, "b holds it now");
        s.release_lease(super::LEASE, "b").expect("releases");
        assert_eq!(prune_leased(&s, "a", p, UnixTime(now + 3602)).expect("prunes").map(|x| x.audit_records), Some(1));
    }

    #[tokio::test]
    async fn a_pruning_runs_off_the_executor_at_the_time_given() {
        let now = 20_000 * DAY;
        let s = Arc::new(store_with(&[now - 500 * DAY, now - DAY], &[now - 100 * DAY, now - DAY]));
        let store: Arc<dyn Store> = s.clone();
        let pruned = prune_and_log(store.clone(), "a".into(), policy(400, 90), UnixTime(now)).await.expect("prunes");
        assert_eq!((pruned.audit_records, pruned.jobs), (1, 1));
        assert_eq!(left(&s), (1, 2));
        assert!(
            prune_and_log(store.clone(), "a".into(), policy(400, 90), UnixTime(now)).await.expect("prunes").is_empty()
        );
        assert!(prune_and_log(store, "b".into(), policy(400, 90), UnixTime(now)).await.is_none(), "a holds the lease");
    }

    /// The task runs a minute after the start, then hourly, at the clock's time: a manual
    /// clock makes each run happen exactly when the test moves it.
    #[tokio::test]
    async fn the_task_prunes_a_minute_after_the_start_then_hourly() {
        let start = 20_000 * DAY;
        let clock = ManualClock::new(UnixTime(start));
        // One audit record 401 days old, one 30 minutes short of 400 days (kept at the first
        // run, older than 400 days at the second).
        let s = Arc::new(store_with(&[start - 401 * DAY, start - 400 * DAY + 1800], &[]));
        let store: Arc<dyn Store> = s.clone();
        let (tx, rx) = watch::channel(false);
        let task = spawn(policy(400, 0), store, "a".into(), Arc::new(clock.clone()), rx).expect("a task");
        let wait_for = |audit: usize| {
            let s = s.clone();
            async move {
                tokio::time::timeout(LIMIT, async {
                    while left(&s).0 != audit {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await
                .expect("pruned in time");
            }
        };
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert_eq!(left(&s).0, 2, "nothing before the first minute");
        clock.advance(Duration::from_secs(1));
        wait_for(1).await;
        // The second record turns 400 days old 1,800 s later; the next run is an hour after
        // the first.
        clock.advance(Duration::from_secs(3599));
        tokio::task::yield_now().await;
        assert_eq!(left(&s).0, 1, "no run before the hour is over");
        clock.advance(Duration::from_secs(1));
        wait_for(0).await;
        tx.send_replace(true);
        tokio::time::timeout(LIMIT, task).await.expect("stops").expect("ends cleanly");
    }

    #[tokio::test]
    async fn the_task_stops_at_shutdown() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().expect("opens"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(UnixTime(20_000 * DAY)));
        assert!(
            spawn(policy(0, 0), store.clone(), "a".into(), clock.clone(), watch::channel(false).1).is_none(),
            "nothing to prune"
        );

        let (tx, rx) = watch::channel(false);
        let task = spawn(policy(400, 90), store.clone(), "a".into(), clock.clone(), rx).expect("a task");
        tx.send_replace(true);
        tokio::time::timeout(LIMIT, task).await.expect("stops").expect("ends cleanly");

        // A dropped sender stops it too.
        let (tx, rx) = watch::channel(false);
        let task = spawn(policy(400, 0), store, "a".into(), clock, rx).expect("a task");
        drop(tx);
        tokio::time::timeout(LIMIT, task).await.expect("stops").expect("ends cleanly");
    }
}
