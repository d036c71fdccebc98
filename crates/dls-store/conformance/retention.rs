//! Retention: `Store::prune` deletes old audit records and old jobs that are over.

use dls_engine::{AuditEvent, AuditKind, Change, FileRef, JobId, JobKind, JobState, JobUpdate, UnixTime};
use dls_message::Item;
use dls_store::traits::*;
use dls_store::{JobFilter, NewFile, NewJob};

use super::{mac, register, store};

pub(crate) fn event(at: u64, detail: &str) -> Change {
    Change::Audit(AuditEvent { at: UnixTime(at), kind: AuditKind::TanWrong, detail: detail.into() })
}

/// The audit log's times, newest first.
pub(crate) fn audit_times(s: &dyn Store) -> Vec<u64> {
    s.audit(None, 10_000).expect("audit").iter().map(|r| r.at.0).collect()
}

pub(crate) fn write_job() -> JobKind {
    JobKind::Write { items: vec![Item::new("sntp-addr", "ntp")] }
}

/// Queues a job for device 1 at `created`.
pub(crate) fn queue(s: &dyn Store, kind: JobKind, created: u64) -> JobId {
    s.add_jobs(&[NewJob { mac: mac(1), kind }], UnixTime(created)).expect("adds")[0].id
}

/// Moves a job to `state` at `at`, as the engine does.
pub(crate) fn move_job(s: &dyn Store, id: JobId, state: JobState, at: u64) {
    s.apply(mac(1), &[Change::Job(JobUpdate { id, at: UnixTime(at), state, ..JobUpdate::default() })])
        .expect("applies");
}

/// Every job's id, in order.
pub(crate) fn job_ids(s: &dyn Store) -> Vec<JobId> {
    let mut ids: Vec<JobId> = s.jobs(&JobFilter::default()).expect("lists").iter().map(|j| j.id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn audit_records_before_the_bound_go_the_others_stay() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(1), &[event(10, "a"), event(30, "b"), event(25, "at the bound")]).expect("applies");
    s.apply(mac(2), &[event(20, "c"), event(40, "d")]).expect("applies");
    // A deleted device's records are pruned like the others.
    assert!(s.delete_device(mac(2)).expect("deletes"));

    let pruned = s.prune(Some(UnixTime(25)), None).expect("prunes");
    assert_eq!((pruned.audit_records, pruned.jobs), (2, 0));
    assert!(!pruned.is_empty());
    assert_eq!(audit_times(&s), [40, 25, 30], "newest first by order of writing; 25 is not before 25");
    assert_eq!(s.audit(Some(mac(1)), 10).expect("audit").len(), 2);

    // Again: nothing more to delete; new records are kept.
    s.apply(mac(1), &[event(50, "e")]).expect("applies");
    assert!(s.prune(Some(UnixTime(25)), None).expect("prunes").is_empty());
    assert_eq!(audit_times(&s), [50, 40, 25, 30]);
    // A bound past every time the store can hold deletes everything.
    assert_eq!(s.prune(Some(UnixTime(u64::MAX)), None).expect("prunes").audit_records, 4);
    assert!(audit_times(&s).is_empty());
}

#[test]
fn old_jobs_that_are_over_go_open_and_recent_ones_stay() {
    let s = store();
    register(&s, mac(1), 1);
    let done_old = queue(&s, write_job(), 10);
    move_job(&s, done_old, JobState::Done, 50);
    let failed_old = queue(&s, write_job(), 10);
    move_job(&s, failed_old, JobState::Failed, 60);
    let cancelled_old = queue(&s, write_job(), 10);
    s.cancel_job(cancelled_old, UnixTime(70)).expect("cancels");
    // Queued long ago, over only recently: its last change counts.
    let done_recent = queue(&s, write_job(), 10);
    move_job(&s, done_recent, JobState::Done, 200);
    let at_the_bound = queue(&s, write_job(), 10);
    move_job(&s, at_the_bound, JobState::Done, 100);
    // Not over, however old: never deleted.
    let queued = queue(&s, write_job(), 10);
    let sent = queue(&s, JobKind::Restart, 10);
    move_job(&s, sent, JobState::Sent, 20);
    let busy = queue(&s, JobKind::Restart, 10);
    move_job(&s, busy, JobState::BusyRetry, 20);
    s.apply(mac(1), &[event(5, "old audit record")]).expect("applies");

    let pruned = s.prune(None, Some(UnixTime(100))).expect("prunes");
    assert_eq!((pruned.jobs, pruned.audit_records), (3, 0));
    assert_eq!(job_ids(&s), [done_recent, at_the_bound, queued, sent, busy]);
    for gone in [done_old, failed_old, cancelled_old] {
        assert_eq!(s.job(gone).expect("reads"), None);
    }
    let open: Vec<JobId> = s.load_device(mac(1)).expect("loads").jobs.iter().map(|j| j.id).collect();
    assert_eq!(open, [queued, sent, busy], "the engine still gets the open jobs");
    assert!(s.has_pending_jobs(mac(1)).expect("pending"));
    assert_eq!(audit_times(&s), [5], "no audit bound: the audit log is kept");

    // Far later, the open jobs are still kept; the others go.
    let pruned = s.prune(None, Some(UnixTime(1_000_000))).expect("prunes");
    assert_eq!(pruned.jobs, 2);
    assert_eq!(job_ids(&s), [queued, sent, busy]);
}

#[test]
fn no_bound_prunes_nothing() {
    let s = store();
    register(&s, mac(1), 1);
    let done = queue(&s, write_job(), 10);
    move_job(&s, done, JobState::Done, 20);
    s.apply(mac(1), &[event(5, "old")]).expect("applies");
    let pruned = s.prune(None, None).expect("prunes");
    assert!(pruned.is_empty());
    assert_eq!(pruned, dls_store::Pruned::default());
    assert_eq!(job_ids(&s), [done]);
    assert_eq!(audit_times(&s), [5]);
    // A bound at the beginning of time deletes nothing either.
    assert!(s.prune(Some(UnixTime(0)), Some(UnixTime(0))).expect("prunes").is_empty());
    // Each kind by its own bound.
    assert_eq!(s.prune(Some(UnixTime(6)), None).expect("prunes").audit_records, 1);
    assert_eq!(job_ids(&s), [done]);
}

/// More rows than one write transaction deletes (1,000): several batches, all counted.
#[test]
fn more_than_a_batch_is_pruned() {
    // The batches go through the writer beside the readers, as in the service.
    let s = store();
    register(&s, mac(1), 1);
    let old: Vec<Change> = (0..2_500).map(|n| event(1_000 + n, "old")).collect();
    s.apply(mac(1), &old).expect("applies");
    s.apply(mac(1), &[event(10_000, "recent"), event(10_001, "recent")]).expect("applies");
    let jobs: Vec<NewJob> = (0..2_345).map(|_| NewJob { mac: mac(1), kind: JobKind::Restart }).collect();
    let added = s.add_jobs(&jobs, UnixTime(100)).expect("adds");
    let updates: Vec<Change> = added
        .iter()
        .enumerate()
        .map(|(n, j)| {
            // Every fifth one stays open.
            let state = if n % 5 == 0 { JobState::BusyRetry } else { JobState::Done };
            Change::Job(JobUpdate { id: j.id, at: UnixTime(500), state, ..JobUpdate::default() })
        })
        .collect();
    s.apply(mac(1), &updates).expect("applies");

    let pruned = s.prune(Some(UnixTime(5_000)), Some(UnixTime(1_000))).expect("prunes");
    assert_eq!(pruned.audit_records, 2_500);
    assert_eq!(pruned.jobs, 2_345 - 469);
    assert_eq!(audit_times(&s), [10_001, 10_000]);
    let left = s.jobs(&JobFilter { limit: Some(10_000), ..JobFilter::default() }).expect("lists");
    assert_eq!(left.len(), 469);
    assert!(left.iter().all(|j| j.state == JobState::BusyRetry));
    assert!(s.prune(Some(UnixTime(5_000)), Some(UnixTime(1_000))).expect("prunes").is_empty());

    // Exactly one batch, then nothing: the loop ends at a batch that is not full.
    s.apply(mac(1), &(0..1_000).map(|n| event(2_000 + n, "old")).collect::<Vec<_>>()).expect("applies");
    assert_eq!(s.prune(Some(UnixTime(5_000)), None).expect("prunes").audit_records, 1_000);
    assert_eq!(audit_times(&s), [10_001, 10_000]);
}

pub(crate) fn new_file(name: &str) -> NewFile {
    NewFile {
        name: name.into(),
        file_type: "RINGTONE".into(),
        size: 10,
        sha256: "cd".repeat(32),
        device_types: Vec::new(),
        software_type: None,
        software_version: None,
    }
}

pub(crate) fn deploy(file_id: i64, token: &str) -> JobKind {
    JobKind::DeployFile {
        file: FileRef {
            file_id,
            name: "ring.mp3".into(),
            file_type: "RINGTONE".into(),
            priority: "normal".into(),
            token: token.into(),
        },
    }
}

/// Pruning deletes jobs, never the files they deploy; a file's other jobs go on.
#[test]
fn a_pruned_deployment_leaves_its_file() {
    let s = store();
    register(&s, mac(1), 1);
    let f = s.add_file(&new_file("ring.mp3"), UnixTime(5)).expect("adds");
    let done = queue(&s, deploy(f.id, "tok-done"), 10);
    move_job(&s, done, JobState::Done, 20);
    let running = queue(&s, deploy(f.id, "tok-running"), 10);
    s.apply(
        mac(1),
        &[Change::Job(JobUpdate {
            id: running,
            at: UnixTime(20),
            state: JobState::Sent,
            accepted: true,
            ..JobUpdate::default()
        })],
    )
    .expect("applies");
    // A job whose file was deleted before (it failed then).
    let other = s.add_file(&new_file("other.mp3"), UnixTime(5)).expect("adds");
    let orphan = queue(&s, deploy(other.id, "tok-orphan"), 10);
    assert!(s.delete_file(other.id, UnixTime(30)).expect("deletes").is_some());
    assert_eq!(s.job(orphan).expect("reads").expect("exists").state, JobState::Failed);

    assert_eq!(s.prune(None, Some(UnixTime(1_000))).expect("prunes").jobs, 2);
    assert_eq!(job_ids(&s), [running]);
    assert_eq!(s.file(f.id).expect("reads").as_ref(), Some(&f), "the file stays");
    assert_eq!(s.files().expect("lists"), std::slice::from_ref(&f));
    let (job, file) = s.download("tok-running").expect("reads").expect("still downloadable");
    assert_eq!((job.id, file.id), (running, f.id));
    assert_eq!(s.download("tok-done").expect("reads"), None);
    // The file can still be deleted; its remaining job fails as usual, and goes later.
    assert!(s.delete_file(f.id, UnixTime(40)).expect("deletes").is_some());
    assert_eq!(s.job(running).expect("reads").expect("exists").state, JobState::Failed);
    assert_eq!(s.prune(None, Some(UnixTime(1_000))).expect("prunes").jobs, 1);
    assert!(job_ids(&s).is_empty());
    // A token of a pruned job may be used again (the column is unique).
    queue(&s, deploy(s.add_file(&new_file("again.mp3"), UnixTime(50)).expect("adds").id, "tok-done"), 50);
}
