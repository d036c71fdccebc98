//! Mobility users: the administrator's part, what a message loads of them, and the
//! engine's mobility changes — a user at one device, a device with one user, a stale
//! revision losing the race, saved data within the transaction, the throttle's counts.

use std::sync::{Arc, Barrier};

use dls_engine::mobility::{UserData, Whom};
use dls_engine::{Change, JobKind, JobState, MobilityChange, MobilityQuery, UnixTime};

use dls_store::rules::mobility::ThrottleConfig;
use dls_store::traits::*;
use dls_store::{JobFilter, NewUser, StoreError};

use super::{AT, mac, profile, register, store, t, triples};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
const HASH2: &str = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNoaGFzaA";

fn user(number: &str, profiles: &[&str]) -> NewUser {
    NewUser {
        number: number.into(),
        name: Some(format!("User {number}")),
        password_hash: HASH.into(),
        profiles: profiles.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn expect(number: &str, revision: i64) -> Change {
    Change::Mobility(MobilityChange::Expect { number: number.into(), revision })
}

fn log_on(number: &str, at: u64) -> Change {
    Change::Mobility(MobilityChange::LogOn { number: number.into(), at: UnixTime(at) })
}

fn log_off(number: &str) -> Change {
    Change::Mobility(MobilityChange::LogOff { number: number.into() })
}

fn data(name: &str, value: &str, size: u64) -> UserData {
    UserData { name: name.into(), value: value.into(), size }
}

fn save(number: &str, items: Vec<UserData>, at: u64) -> Change {
    Change::Mobility(MobilityChange::SaveData { number: number.into(), items, at: UnixTime(at) })
}

fn named(s: &dyn Store, number: &str) -> dls_store::StoredUser {
    let q = MobilityQuery { named: Some(number.into()), ..MobilityQuery::default() };
    s.mobility_context(mac(99), &q).expect("loads").named.expect("known")
}

#[test]
fn users_are_added_listed_shown_changed_and_deleted() {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    s.add_user(&user("+49891234", &["sales"]), AT).expect("adds");
    s.add_user(&NewUser { name: None, ..user("100", &[]) }, AT).expect("adds");
    assert!(matches!(s.add_user(&user("+49891234", &[]), AT), Err(StoreError::Conflict { .. })));
    for bad in [
        user("+49 89 1234", &[]),
        user("abc", &[]),
        user("101", &["missing"]),
        user("102", &["sales", "sales"]),
        NewUser { password_hash: "hunter2".into(), ..user("103", &[]) },
        NewUser { name: Some("a\u{7}b".into()), ..user("104", &[]) },
    ] {
        let e = s.add_user(&bad, AT).expect_err("refused");
        assert!(matches!(e, StoreError::Invalid(_)), "{bad:?}: {e:?}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let listed = s.users().expect("lists");
    assert_eq!(listed.iter().map(|u| u.number.as_str()).collect::<Vec<_>>(), ["+49891234", "100"]);
    assert_eq!(listed[0].profiles, ["sales"]);
    assert_eq!((listed[0].logged_on, listed[0].data_items, listed[0].created_at), (None, 0, AT));
    assert_eq!(listed[1].name, None);
    let shown = s.user("+49891234").expect("reads").expect("exists");
    assert_eq!((shown.summary.name.as_deref(), shown.data.len()), (Some("User +49891234"), 0));
    assert_eq!(s.user("999").expect("reads"), None);
    // What is shown never holds the hash.
    assert!(!format!("{listed:?}{shown:?}").contains("argon2"));
    assert!(!serde_json::to_string(&shown).expect("json").contains("argon2"));

    let before = named(&s, "100").user.revision;
    s.set_user_password("100", HASH2).expect("sets");
    let after = named(&s, "100");
    assert_eq!((after.password_hash.as_str(), after.user.revision), (HASH2, before + 1));
    assert!(matches!(s.set_user_password("999", HASH2), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_user_password("100", "plain"), Err(StoreError::Invalid(_))));
    s.set_user_profiles("100", &["sales".into()]).expect("sets");
    assert_eq!(named(&s, "100").user.revision, before + 2);
    assert!(matches!(s.set_user_profiles("100", &["missing".into()]), Err(StoreError::Invalid(_))));
    assert!(matches!(s.set_user_profiles("999", &[]), Err(StoreError::NotFound { .. })));

    assert!(s.delete_user("100").expect("deletes"));
    assert!(!s.delete_user("100").expect("deletes"));
    assert_eq!(s.users().expect("lists").len(), 1);
}

#[test]
fn a_logon_is_recorded_with_the_message_and_loaded_with_the_users_items() {
    let s = store();
    s.put_profile(&profile("global", None, &[("sntp-addr", None, "ntp")])).expect("puts");
    s.put_profile(&profile("sales", None, &[("key", Some(1), "a"), ("lang", None, "de")])).expect("puts");
    s.put_profile(&profile("boss", None, &[("key", Some(1), "b")])).expect("puts");
    s.put_profile(&profile("gone", None, &[("lang", None, "fr")])).expect("puts");
    s.add_user(&user("200", &["sales", "boss", "gone"]), AT).expect("adds");
    assert!(s.delete_profile("gone").expect("deletes"), "a user's profile may be deleted");
    register(&s, mac(1), 1);
    let r = named(&s, "200").user.revision;
    s.apply(mac(1), &[Change::Nonce("n1".into()), expect("200", r), log_on("200", 50)]).expect("logs on");

    let ctx = s.mobility_context(mac(1), &MobilityQuery::default()).expect("loads");
    let here = ctx.here.expect("logged on here").user;
    assert_eq!((here.number.as_str(), here.device, here.since), ("200", Some(mac(1)), Some(UnixTime(50))));
    assert_eq!(here.revision, r + 1);
    // The user's profiles in order, the later winning; a missing one skipped; not global.
    assert_eq!(triples(&here.items), [t("key", Some(1), "b"), t("lang", None, "de")]);
    let summary = s.user("200").expect("reads").expect("exists").summary;
    assert_eq!(summary.logged_on, Some(dls_store::LoggedOn { mac: mac(1), since: UnixTime(50) }));
    assert_eq!(s.mobility_context(mac(2), &MobilityQuery::default()).expect("loads").here, None);

    s.apply(mac(1), &[expect("200", r + 1), log_off("200")]).expect("logs off");
    assert_eq!(s.mobility_context(mac(1), &MobilityQuery::default()).expect("loads").here, None);
    assert_eq!(s.user("200").expect("reads").expect("exists").summary.logged_on, None);
    assert_eq!(s.load_device(mac(1)).expect("loads").recent_nonces, ["n1"]);
}

#[test]
fn a_stale_revision_fails_the_whole_message_as_contended() {
    let s = store();
    s.add_user(&user("300", &[]), AT).expect("adds");
    register(&s, mac(1), 1);
    let r = named(&s, "300").user.revision;
    s.set_user_password("300", HASH2).expect("changed meanwhile");
    let e = s.apply(mac(1), &[Change::Nonce("lost".into()), expect("300", r), log_on("300", 5)]).expect_err("stale");
    assert!(matches!(e, StoreError::Contended { .. }), "{e:?}");
    assert!(e.to_string().contains("try again"), "{e}");
    assert!(s.load_device(mac(1)).expect("loads").recent_nonces.is_empty(), "nothing committed");
    assert_eq!(named(&s, "300").user.device, None);
    // An unknown user is no revision either.
    assert!(matches!(s.apply(mac(1), &[expect("301", 0)]), Err(StoreError::Contended { .. })));
}

#[test]
fn one_user_per_device_and_one_device_per_user() {
    let s = store();
    s.add_user(&user("400", &[]), AT).expect("adds");
    s.add_user(&user("401", &[]), AT).expect("adds");
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(1), &[expect("400", 0), log_on("400", 10)]).expect("logs on");
    // Another user at the same device, without logging the first off: refused.
    let e = s.apply(mac(1), &[expect("401", 0), log_on("401", 11)]).expect_err("taken");
    assert!(matches!(e, StoreError::Contended { .. }), "{e:?}");
    // Logged off first, in the same message: accepted.
    s.apply(mac(1), &[expect("400", 1), log_off("400"), expect("401", 0), log_on("401", 12)]).expect("replaces");
    assert_eq!(named(&s, "401").user.device, Some(mac(1)));
    assert_eq!(named(&s, "400").user.device, None);
    // A user logged on at another device moves (the engine logs it off the first first).
    s.apply(mac(2), &[expect("401", 1), log_on("401", 13)]).expect("moves");
    assert_eq!(named(&s, "401").user.device, Some(mac(2)));
    assert_eq!(s.mobility_context(mac(1), &MobilityQuery::default()).expect("loads").here, None);
    // Deleting the device logs its user off.
    assert!(s.delete_device(mac(2)).expect("deletes"));
    let u = s.user("401").expect("reads").expect("exists").summary;
    assert_eq!(u.logged_on, None);
}

#[test]
fn two_phones_logging_one_user_on_at_once_one_wins() {
    let s = Arc::new(store());
    s.add_user(&user("500", &[]), AT).expect("adds");
    for n in 1..=4 {
        register(s.as_ref(), mac(n), 1);
    }
    let r = named(s.as_ref(), "500").user.revision;
    let barrier = Arc::new(Barrier::new(4));
    let outcomes: Vec<Result<(), StoreError>> = (1..=4u8)
        .map(|n| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                with_device(s.as_ref(), mac(n), |_, _| -> Result<_, StoreError> {
                    Ok((vec![Change::Nonce(format!("n{n}")), expect("500", r), log_on("500", u64::from(n))], ()))
                })
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("joins"))
        .collect();
    let won: Vec<u8> = (1..=4u8).filter(|n| outcomes[usize::from(*n) - 1].is_ok()).collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    for o in outcomes.iter().filter(|o| o.is_err()) {
        assert!(matches!(o, Err(StoreError::Contended { .. })), "{o:?}");
    }
    assert_eq!(named(s.as_ref(), "500").user.device, Some(mac(won[0])));
    for n in (1..=4u8).filter(|n| *n != won[0]) {
        assert!(s.load_device(mac(n)).expect("loads").recent_nonces.is_empty(), "the losers committed nothing");
    }
}

#[test]
fn data_is_saved_replaced_deleted_listed_and_loaded_when_asked() {
    let s = store();
    s.add_user(&user("600", &[]), AT).expect("adds");
    register(&s, mac(1), 1);
    s.apply(mac(1), &[expect("600", 0), log_on("600", 10)]).expect("logs on");
    s.apply(
        mac(1),
        &[
            expect("600", 1),
            save("600", vec![data("userdata-phonebook", "aGVsbG8=", 5), data("userdata-ldap", "QQ==", 1)], 20),
        ],
    )
    .expect("saves");
    s.apply(
        mac(1),
        &[expect("600", 2), save("600", vec![data("userdata-phonebook", "aGk=", 2), data("userdata-ldap", "", 0)], 30)],
    )
    .expect("replaces and deletes");
    let shown = s.user("600").expect("reads").expect("exists");
    assert_eq!((shown.summary.data_items, shown.summary.data_bytes), (1, 2));
    assert_eq!(shown.data.len(), 1);
    assert_eq!(
        (shown.data[0].name.as_str(), shown.data[0].size, shown.data[0].saved_at),
        ("userdata-phonebook", 2, UnixTime(30))
    );
    assert!(!serde_json::to_string(&shown).expect("json").contains("aGk="), "names, sizes, dates; not the data");
    let v = s.user_data("600", "userdata-phonebook").expect("reads").expect("saved");
    assert_eq!((v.value.as_str(), v.size), ("aGk=", 2));
    assert_eq!(s.user_data("600", "userdata-ldap").expect("reads"), None);
    assert_eq!(s.user_data("999", "userdata-phonebook").expect("reads"), None);

    // Loaded for a message: sizes always, values only of what is asked.
    let ctx = s.mobility_context(mac(1), &MobilityQuery::default()).expect("loads");
    let here = ctx.here.expect("here").user;
    assert_eq!((here.data.len(), here.data[0].size, here.data[0].value.as_deref()), (1, 2, None));
    let restore = MobilityQuery { restore: vec!["userdata-phonebook".into()], ..MobilityQuery::default() };
    let here = s.mobility_context(mac(1), &restore).expect("loads").here.expect("here").user;
    assert_eq!(here.data[0].value.as_deref(), Some("aGk="));
    let jobs = MobilityQuery {
        job_users: vec!["600".into(), "601".into()],
        job_data: vec!["600".into()],
        ..MobilityQuery::default()
    };
    let ctx = s.mobility_context(mac(2), &jobs).expect("loads");
    assert_eq!(ctx.job_users.len(), 1, "an unknown user is left out");
    assert_eq!(ctx.job_users[0].data[0].value.as_deref(), Some("aGk="));
    // Deleting the user deletes its data.
    s.apply(mac(1), &[expect("600", 3), log_off("600")]).expect("logs off");
    assert!(s.delete_user("600").expect("deletes"));
    s.add_user(&user("600", &[]), AT).expect("again");
    assert_eq!(s.user("600").expect("reads").expect("exists").data, []);
}

#[test]
fn forced_logoffs_and_administrator_jobs_are_queued_once() {
    let s = store();
    s.add_user(&user("700", &[]), AT).expect("adds");
    s.add_user(&user("701", &[]), AT).expect("adds");
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    // Not logged on: no logoff to queue.
    assert!(matches!(s.queue_logoff("700", UnixTime(5)), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.queue_logoff("799", UnixTime(5)), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.queue_logon("799", mac(1), UnixTime(5)), Err(StoreError::NotFound { .. })));
    assert!(matches!(s.queue_logon("700", mac(9), UnixTime(5)), Err(StoreError::NotFound { .. })));
    let logon = s.queue_logon("700", mac(1), UnixTime(5)).expect("queues");
    assert_eq!(
        (logon.mac, logon.job.clone(), logon.state),
        (mac(1), JobKind::MobilityLogon { number: "700".into() }, JobState::Queued)
    );
    s.apply(mac(1), &[expect("700", 0), log_on("700", 10)]).expect("logs on");
    // Logged on at 1: a logon at 2 is refused, at 1 again is not.
    let e = s.queue_logon("700", mac(2), UnixTime(11)).expect_err("elsewhere");
    assert!(matches!(e, StoreError::Conflict { .. }) && e.to_string().contains("log it off first"), "{e}");
    s.queue_logon("700", mac(1), UnixTime(11)).expect("the same device");

    // A logon at 2 asks for the forced logoff at 1: recorded, and one job queued at 1.
    let request =
        Change::Mobility(MobilityChange::RequestLogoff { number: "700".into(), device: mac(1), at: UnixTime(20) });
    s.apply(mac(2), &[expect("700", 1), request.clone()]).expect("requests");
    s.apply(mac(2), &[request]).expect("requests again");
    let job = s.queue_logoff("700", UnixTime(30)).expect("the open one");
    let open: Vec<_> = s
        .jobs(&JobFilter { mac: Some(mac(1)), ..JobFilter::default() })
        .expect("lists")
        .into_iter()
        .filter(|j| j.job == JobKind::MobilityLogoff { number: "700".into() })
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].id, job.id);
    assert_eq!(named(&s, "700").user.logoff_requested_at, Some(UnixTime(20)), "the first request's time stays");
    assert!(s.has_pending_jobs(mac(1)).expect("pending"));
    // Logged off: the request is forgotten.
    s.apply(mac(1), &[expect("700", 2), log_off("700")]).expect("logs off");
    assert_eq!(named(&s, "700").user.logoff_requested_at, None);

    // A user's jobs, newest first, whatever the device; not another user's, nor other kinds.
    s.queue_logon("701", mac(2), UnixTime(40)).expect("queues");
    s.add_jobs(&[dls_store::NewJob { mac: mac(1), kind: JobKind::Restart }], UnixTime(41)).expect("queues");
    let of = |number: &str, limit: Option<usize>| -> Vec<(JobKind, u64)> {
        s.jobs(&JobFilter { user: Some(number.into()), limit, ..JobFilter::default() })
            .expect("lists")
            .into_iter()
            .map(|j| (j.job, j.created_at.0))
            .collect()
    };
    let logon = JobKind::MobilityLogon { number: "700".into() };
    let logoff = JobKind::MobilityLogoff { number: "700".into() };
    assert_eq!(of("700", None), [(logoff.clone(), 20), (logon.clone(), 11), (logon, 5)]);
    assert_eq!(of("700", Some(1)), [(logoff, 20)]);
    assert_eq!(of("701", None), [(JobKind::MobilityLogon { number: "701".into() }, 40)]);
    assert_eq!(of("70", None), [], "the whole number, not a part");
    assert_eq!(of("' OR 1=1 --", None), []);
}

#[test]
fn the_throttle_counts_attempts_in_the_store() {
    let s = store();
    register(&s, mac(1), 1);
    let attempt = |number: &str, success: bool, at: u64| {
        Change::Mobility(MobilityChange::Attempt { number: number.into(), success, at: UnixTime(at) })
    };
    let config = ThrottleConfig::default();
    let check =
        MobilityQuery { named: Some("800".into()), check_password: Some(Whom::Named), ..MobilityQuery::default() };
    // Counted for a number the store does not know, too.
    for _ in 0..5 {
        let state = s.mobility_context(mac(1), &check).expect("loads").throttle;
        assert_eq!(config.wait(&state, 1000), None);
        s.apply(mac(1), &[attempt("800", false, 1000)]).expect("counts");
    }
    let state = s.mobility_context(mac(1), &check).expect("loads").throttle;
    assert_eq!(config.wait(&state, 1000), Some(60));
    assert!(state.pair.is_some() && state.user.is_some() && state.device.is_some());
    // Another device's first attempt for that number is not held.
    register(&s, mac(2), 1);
    let other = s.mobility_context(mac(2), &check).expect("loads").throttle;
    assert_eq!(other.pair, None);
    assert_eq!(config.wait(&other, 1000), None);
    // After the wait, a success forgets the pair.
    s.apply(mac(1), &[attempt("800", true, 1060)]).expect("counts");
    let state = s.mobility_context(mac(1), &check).expect("loads").throttle;
    assert_eq!(state.pair, None);
    assert_eq!(config.wait(&state, 1060), None);
    // Rows that restrict nothing any more are deleted by later attempts.
    s.apply(mac(2), &[attempt("801", false, 100_000)]).expect("counts");
    let state = s.mobility_context(mac(1), &check).expect("loads").throttle;
    assert_eq!(state, dls_store::rules::mobility::ThrottleState::default());
}

#[test]
fn unsupported_or_bad_mobility_changes_commit_nothing() {
    let s = store();
    s.add_user(&user("900", &[]), AT).expect("adds");
    register(&s, mac(1), 1);
    let too_large = data("userdata-x", "QQ==", u64::MAX);
    let e = s.apply(mac(1), &[Change::Nonce("x".into()), expect("900", 0), save("900", vec![too_large], 1)]);
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
    assert!(s.load_device(mac(1)).expect("loads").recent_nonces.is_empty());
    assert_eq!(named(&s, "900").user.revision, 0);
}
