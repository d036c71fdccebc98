//! Ids of jobs and files are never handed out again, not even after the newest was deleted
//! (a file's content is kept as `files/<id>`: a repeated id would serve another file).

use dls_engine::{Change, FileRef, JobId, JobKind, JobState, JobUpdate, UnixTime};
use dls_store::traits::*;
use dls_store::{JobFilter, NewFile, NewJob};

use super::{mac, register, store};

fn new_file(name: &str) -> NewFile {
    NewFile {
        name: name.into(),
        file_type: "LOGO".into(),
        size: 1,
        sha256: "ef".repeat(32),
        device_types: Vec::new(),
        software_type: None,
        software_version: None,
    }
}

fn restart(s: &dyn Store, n: u8) -> JobId {
    s.add_jobs(&[NewJob { mac: mac(n), kind: JobKind::Restart }], UnixTime(10)).expect("adds")[0].id
}

#[test]
fn deleting_the_newest_file_never_gives_its_id_again() {
    let s = store();
    let a = s.add_file(&new_file("a.png"), UnixTime(1)).expect("adds").id;
    let b = s.add_file(&new_file("b.png"), UnixTime(2)).expect("adds").id;
    assert!(b > a);
    assert!(s.delete_file(b, UnixTime(3)).expect("deletes").is_some());
    let c = s.add_file(&new_file("c.png"), UnixTime(4)).expect("adds").id;
    assert!(c > b, "file {c} after the deleted {b}");
    // Every file gone: still no id again, and the name of a deleted file is free.
    for id in [a, c] {
        s.delete_file(id, UnixTime(5)).expect("deletes");
    }
    let again = s.add_file(&new_file("b.png"), UnixTime(6)).expect("adds").id;
    assert!(again > c, "file {again} after the deleted {c}");
    assert_eq!(s.files().expect("lists").iter().map(|f| f.id).collect::<Vec<_>>(), [again]);
}

#[test]
fn deleting_the_newest_job_never_gives_its_id_again() {
    let s = store();
    register(&s, mac(1), 1);
    let first = restart(&s, 1);
    let newest = restart(&s, 1);
    assert!(newest > first);
    // Over, then pruned: the newest job is gone.
    s.cancel_job(newest, UnixTime(20)).expect("cancels");
    assert_eq!(s.prune(None, Some(UnixTime(1_000))).expect("prunes").jobs, 1);
    assert_eq!(s.job(newest).expect("reads"), None);
    let next = restart(&s, 1);
    assert!(next > newest, "job {next} after the deleted {newest}");

    // Gone with its device too.
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert!(s.jobs(&JobFilter::default()).expect("lists").is_empty());
    register(&s, mac(1), 30);
    let after = restart(&s, 1);
    assert!(after > next, "job {after} after the deleted {next}");
}

/// A deployment token and its job never point at a later job or file with a reused id.
#[test]
fn a_deployment_of_a_deleted_file_does_not_reach_a_new_one() {
    let s = store();
    register(&s, mac(1), 1);
    let old = s.add_file(&new_file("old.png"), UnixTime(1)).expect("adds");
    let file = FileRef {
        file_id: old.id,
        name: old.file.name.clone(),
        file_type: old.file.file_type.clone(),
        priority: "normal".into(),
        token: "t-old".into(),
    };
    let job =
        s.add_jobs(&[NewJob { mac: mac(1), kind: JobKind::DeployFile { file } }], UnixTime(2)).expect("adds")[0].id;
    s.apply(
        mac(1),
        &[Change::Job(JobUpdate { id: job, at: UnixTime(3), state: JobState::Sent, ..JobUpdate::default() })],
    )
    .expect("applies");
    s.delete_file(old.id, UnixTime(4)).expect("deletes");
    let new = s.add_file(&new_file("new.png"), UnixTime(5)).expect("adds");
    assert_ne!(new.id, old.id);
    assert_eq!(s.download("t-old").expect("reads"), None);
}
