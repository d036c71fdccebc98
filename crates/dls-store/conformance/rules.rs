//! The domain rules of `dls_store::rules`, as every backend must apply them.

use dls_engine::{Change, FileRef, JobKind, JobState, JobUpdate, UnixTime};
use dls_store::rules::jobs::{file_deleted, is_pending};
use dls_store::traits::*;
use dls_store::{NewFile, NewJob};

use super::{mac, register, store};

/// Every (state, accepted) a job can be in, each on a device of its own.
fn every_state() -> Vec<(u8, JobState, bool)> {
    JobState::ALL
        .into_iter()
        .flat_map(|s| [(s, false), (s, true)])
        .zip(1_u8..)
        .map(|((state, accepted), n)| (n, state, accepted))
        .collect()
}

fn move_to(s: &dyn Store, n: u8, id: i64, state: JobState, accepted: bool) {
    if state != JobState::Queued || accepted {
        let update = JobUpdate { id, at: UnixTime(20), state, accepted, ..JobUpdate::default() };
        s.apply(mac(n), &[Change::Job(update)]).expect("applies");
    }
}

#[test]
fn pending_jobs_are_those_the_rule_names() {
    let s = store();
    let combos = every_state();
    for &(n, state, accepted) in &combos {
        register(&s, mac(n), 1);
        let id = s.add_jobs(&[NewJob { mac: mac(n), kind: JobKind::Restart }], UnixTime(10)).expect("adds")[0].id;
        move_to(&s, n, id, state, accepted);
    }
    let listed = s.devices_with_pending_jobs(100).expect("lists");
    for &(n, state, accepted) in &combos {
        let want = is_pending(state, accepted);
        assert_eq!(s.has_pending_jobs(mac(n)).expect("reads"), want, "{state} accepted={accepted}");
        assert_eq!(listed.contains(&mac(n)), want, "{state} accepted={accepted}");
    }
}

#[test]
fn deleting_a_file_ends_the_jobs_the_rule_names() {
    let s = store();
    let file = s
        .add_file(
            &NewFile {
                name: "ring.mp3".into(),
                file_type: "RINGTONE".into(),
                size: 3,
                sha256: "01".repeat(32),
                device_types: Vec::new(),
                software_type: None,
                software_version: None,
            },
            UnixTime(1),
        )
        .expect("adds");
    let mut jobs = Vec::new();
    for (n, state, accepted) in every_state() {
        register(&s, mac(n), 1);
        let deploy = JobKind::DeployFile {
            file: FileRef {
                file_id: file.id,
                name: file.file.name.clone(),
                file_type: file.file.file_type.clone(),
                priority: "normal".into(),
                token: format!("token-{n}"),
            },
        };
        let id = s.add_jobs(&[NewJob { mac: mac(n), kind: deploy }], UnixTime(10)).expect("adds")[0].id;
        move_to(&s, n, id, state, accepted);
        jobs.push((id, s.job(id).expect("reads").expect("exists")));
    }
    assert_eq!(s.delete_file(file.id, UnixTime(99)).expect("deletes"), Some(file));
    for (id, before) in jobs {
        let after = s.job(id).expect("reads").expect("kept");
        match file_deleted(before.state) {
            Some(end) => {
                assert_eq!(
                    (after.state, after.answer.as_deref()),
                    (end.state, Some(end.answer)),
                    "was {}",
                    before.state
                );
                assert_eq!(after.updated_at, UnixTime(99));
            }
            None => assert_eq!(after, before),
        }
    }
}
