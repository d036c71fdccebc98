//! Jobs and deployment files.

use std::net::{IpAddr, Ipv4Addr};

use dls_engine::{Change, FileRef, JobKind, JobState, JobUpdate, UnixTime};
use dls_message::Item;
use dls_store::traits::*;
use dls_store::{ContactTarget, JobFilter, NewFile, NewJob, StoreError};

use super::{mac, register, store};

fn write(value: &str) -> JobKind {
    JobKind::Write { items: vec![Item::new("sntp-addr", value)] }
}

fn new_file(name: &str) -> NewFile {
    NewFile {
        name: name.into(),
        file_type: "APP".into(),
        size: 1234,
        sha256: "ab".repeat(32),
        device_types: vec!["OpenStage 60".into()],
        software_type: Some("Siemens SIP".into()),
        software_version: Some("V3 R5.13.0".into()),
    }
}

fn update(id: i64, state: JobState) -> Change {
    Change::Job(JobUpdate { id, at: UnixTime(50), state, answer: Some(state.to_string()), ..JobUpdate::default() })
}

#[test]
fn jobs_are_queued_loaded_in_order_and_move_on() {
    let s = store();
    register(&s, mac(1), 10);
    let added = s
        .add_jobs(
            &[NewJob { mac: mac(1), kind: write("a") }, NewJob { mac: mac(1), kind: JobKind::Restart }],
            UnixTime(20),
        )
        .expect("adds");
    assert_eq!(added.len(), 2);
    assert!(added.iter().all(|j| j.state == JobState::Queued && j.created_at == UnixTime(20)));
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(snap.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![added[0].id, added[1].id]);
    assert!(s.has_pending_jobs(mac(1)).expect("pending"));
    assert_eq!(s.devices_with_pending_jobs(10).expect("lists"), vec![mac(1)]);

    s.apply(mac(1), &[update(added[0].id, JobState::Done)]).expect("applies");
    let refused = vec![Item::new("x", "").with_status(dls_message::ItemStatus::UnknownItem)];
    s.apply(
        mac(1),
        &[Change::Job(JobUpdate {
            id: added[1].id,
            at: UnixTime(60),
            state: JobState::Sent,
            unanswered: true,
            items: Some(refused.clone()),
            ..JobUpdate::default()
        })],
    )
    .expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(snap.jobs.len(), 1, "the done job is not given to the engine");
    assert_eq!(snap.jobs[0].attempts, 1);
    let second = s.job(added[1].id).expect("reads").expect("exists");
    assert_eq!(second.state, JobState::Sent);
    assert_eq!(second.items, refused);
    assert_eq!(second.updated_at, UnixTime(60));
    let done = s.job(added[0].id).expect("reads").expect("exists");
    assert_eq!((done.state, done.answer.as_deref()), (JobState::Done, Some("done")));
}

#[test]
fn listings_filter_by_device_and_state_newest_first() {
    let s = store();
    register(&s, mac(1), 10);
    register(&s, mac(2), 10);
    let a = s.add_jobs(&[NewJob { mac: mac(1), kind: write("a") }], UnixTime(20)).expect("adds");
    let b = s.add_jobs(&[NewJob { mac: mac(2), kind: write("b") }], UnixTime(21)).expect("adds");
    s.apply(mac(2), &[update(b[0].id, JobState::Failed)]).expect("applies");
    let all = s.jobs(&JobFilter::default()).expect("lists");
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), vec![b[0].id, a[0].id]);
    let one = s.jobs(&JobFilter { mac: Some(mac(1)), ..JobFilter::default() }).expect("lists");
    assert_eq!(one.len(), 1);
    let failed = s.jobs(&JobFilter { state: Some(JobState::Failed), ..JobFilter::default() }).expect("lists");
    assert_eq!(failed.iter().map(|j| j.mac).collect::<Vec<_>>(), vec![mac(2)]);
    assert_eq!(s.jobs(&JobFilter { limit: Some(1), ..JobFilter::default() }).expect("lists").len(), 1);
}

#[test]
fn a_job_for_an_unknown_device_is_refused_and_nothing_is_queued() {
    let s = store();
    register(&s, mac(1), 10);
    let e = s
        .add_jobs(&[NewJob { mac: mac(1), kind: write("a") }, NewJob { mac: mac(9), kind: write("b") }], UnixTime(20))
        .expect_err("refused");
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    assert!(s.jobs(&JobFilter::default()).expect("lists").is_empty(), "all or nothing");
}

#[test]
fn deleting_a_device_forgets_its_jobs() {
    let s = store();
    register(&s, mac(1), 10);
    s.add_jobs(&[NewJob { mac: mac(1), kind: write("a") }], UnixTime(20)).expect("adds");
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert!(s.jobs(&JobFilter::default()).expect("lists").is_empty());
    assert!(!s.has_pending_jobs(mac(1)).expect("pending"));
}

#[test]
fn cancel_stops_a_job_and_wins_over_a_late_engine_update() {
    let s = store();
    register(&s, mac(1), 10);
    let j = s.add_jobs(&[NewJob { mac: mac(1), kind: write("a") }], UnixTime(20)).expect("adds");
    let c = s.cancel_job(j[0].id, UnixTime(30)).expect("cancels");
    assert_eq!(c.state, JobState::Cancelled);
    assert!(matches!(s.cancel_job(j[0].id, UnixTime(31)), Err(StoreError::Conflict { .. })));
    assert!(matches!(s.cancel_job(999, UnixTime(31)), Err(StoreError::NotFound { .. })));
    s.apply(mac(1), &[update(j[0].id, JobState::Done)]).expect("applies");
    assert_eq!(s.job(j[0].id).expect("reads").expect("exists").state, JobState::Cancelled);
    assert!(s.load_device(mac(1)).expect("loads").jobs.is_empty());
}

#[test]
fn contact_targets_need_pending_jobs_and_a_contact_me_uri() {
    let s = store();
    register(&s, mac(1), 10);
    s.add_jobs(&[NewJob { mac: mac(1), kind: write("a") }], UnixTime(20)).expect("adds");
    assert_eq!(s.contact_target(mac(1), false).expect("reads"), None, "no contact-me-uri reported yet");
    let uri = "http://192.0.2.7:8085/contact_dls.html/ContactDLS";
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("contact-me-uri", uri)])]).expect("applies");
    assert_eq!(s.contact_target(mac(1), false).expect("reads"), Some(ContactTarget::new(uri, None)));
    // The address it calls from, as the engine saw it: an IPv4-mapped address as IPv4.
    let mapped = IpAddr::from(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    s.apply(mac(1), &[Change::CalledFrom(mapped)]).expect("applies");
    let target = s.contact_target(mac(1), false).expect("reads").expect("a target");
    assert_eq!(target.caller, Some(IpAddr::from([192, 0, 2, 7])));
    assert_eq!(target.uri, uri);
    s.record_contact(mac(1), UnixTime(25), "contact-me answered 204").expect("records");
    let j = &s.jobs(&JobFilter::default()).expect("lists")[0];
    assert_eq!(j.contact.as_deref(), Some("contact-me answered 204"));
    assert_eq!(j.contact_at, Some(UnixTime(25)));
    s.apply(mac(1), &[update(j.id, JobState::Done)]).expect("applies");
    assert_eq!(s.contact_target(mac(1), false).expect("reads"), None, "nothing pending any more");
    assert_eq!(s.contact_target(mac(1), true).expect("reads").map(|t| t.uri).as_deref(), Some(uri), "unless asked");
    assert_eq!(s.contact_target(mac(9), true).expect("reads"), None, "an unknown device has no URI");
}

#[test]
fn an_accepted_deployment_is_not_pending_but_downloadable() {
    let s = store();
    register(&s, mac(1), 10);
    let f = s.add_file(&new_file("fw.img"), UnixTime(5)).expect("adds");
    let file = FileRef {
        file_id: f.id,
        name: "fw.img".into(),
        file_type: "APP".into(),
        priority: "normal".into(),
        token: "tok1".into(),
    };
    let kind = JobKind::DeployFirmware { file, sw_type: None, sw_version: "V3 R5.13.0".into() };
    let j = s.add_jobs(&[NewJob { mac: mac(1), kind }], UnixTime(20)).expect("adds");
    assert_eq!(s.download("tok1").expect("reads"), None, "not sent yet");
    s.apply(
        mac(1),
        &[Change::Job(JobUpdate {
            id: j[0].id,
            at: UnixTime(30),
            state: JobState::Sent,
            accepted: true,
            ..JobUpdate::default()
        })],
    )
    .expect("applies");
    assert!(!s.has_pending_jobs(mac(1)).expect("pending"));
    let (job, file) = s.download("tok1").expect("reads").expect("found");
    assert_eq!((job.id, file.id), (j[0].id, f.id));
    assert_eq!(s.download("tok2").expect("reads"), None);

    // Deleting the file fails the job and ends the download.
    assert!(s.delete_file(f.id, UnixTime(40)).expect("deletes").is_some());
    assert_eq!(s.job(j[0].id).expect("reads").expect("exists").state, JobState::Failed);
    assert_eq!(s.download("tok1").expect("reads"), None);
    assert_eq!(s.delete_file(f.id, UnixTime(40)).expect("deletes"), None);
}

#[test]
fn files_are_recorded_once_per_type_and_name() {
    let s = store();
    let f = s.add_file(&new_file("fw.img"), UnixTime(5)).expect("adds");
    assert_eq!(s.file(f.id).expect("reads").as_ref(), Some(&f));
    assert_eq!(f.file.device_types, vec!["OpenStage 60".to_owned()]);
    assert!(matches!(s.add_file(&new_file("fw.img"), UnixTime(6)), Err(StoreError::Conflict { .. })));
    let other = NewFile { file_type: "RINGTONE".into(), ..new_file("fw.img") };
    s.add_file(&other, UnixTime(6)).expect("another type, same name");
    assert_eq!(s.files().expect("lists").len(), 2);
    for bad in ["", "a/b", "a\nb"] {
        assert!(matches!(s.add_file(&new_file(bad), UnixTime(7)), Err(StoreError::Invalid(_))), "{bad:?}");
    }
    let e = s
        .add_jobs(
            &[NewJob {
                mac: mac(1),
                kind: JobKind::DeployFile {
                    file: FileRef {
                        file_id: 999,
                        name: "x".into(),
                        file_type: "LOGO".into(),
                        priority: "normal".into(),
                        token: "t".into(),
                    },
                },
            }],
            UnixTime(8),
        )
        .expect_err("unknown device or file");
    assert!(matches!(e, StoreError::NotFound { .. }));
}
