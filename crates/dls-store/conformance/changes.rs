//! `apply` and `load_device`: every `Change`, atomicity.

use dls_engine::{Change, DeviceSnapshot, UnixTime, WriteOutcome};
use dls_message::{Item, ItemStatus, Reason};
use dls_store::StoreError;
use dls_store::traits::*;

use super::{REGISTER, contact, key, mac, record, register, store, t, triples};

#[test]
fn register_and_contact() {
    let s = store();
    assert_eq!(s.load_device(mac(1)).expect("loads"), DeviceSnapshot::unknown());
    s.apply(mac(1), &[REGISTER, contact(100), Change::Nonce("n1".into())]).expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert!(snap.known);
    assert_eq!(snap.recent_nonces, vec!["n1"]);
    assert!(snap.inventory.is_empty() && snap.written.is_empty() && snap.inventory_at.is_none());
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.registered_at, UnixTime(100));
    assert_eq!(d.summary.last_contact, Some(UnixTime(100)));
    assert_eq!(d.last_reason.as_deref(), Some("start-up"));

    // Registering again is harmless: the registration time stays.
    s.apply(mac(1), &[REGISTER, Change::Contact { at: UnixTime(200), reason: Reason::Solicited }]).expect("applies");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.registered_at, UnixTime(100));
    assert_eq!(d.summary.last_contact, Some(UnixTime(200)));
    assert_eq!(d.last_reason.as_deref(), Some("solicited"));

    // An unknown reason word round-trips.
    s.apply(mac(1), &[Change::Contact { at: UnixTime(300), reason: Reason::Other("new-reason".into()) }])
        .expect("applies");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.last_reason.as_deref(), Some("new-reason"));
}

#[test]
fn register_takes_the_time_of_the_contact_in_the_batch() {
    let s = store();
    // Register after the contact in the batch: still registered before anything else.
    s.apply(mac(1), &[contact(42), REGISTER]).expect("applies");
    assert_eq!(s.device(mac(1)).expect("reads").expect("exists").registered_at, UnixTime(42));
    s.apply(mac(2), &[REGISTER]).expect("applies");
    let d = s.device(mac(2)).expect("reads").expect("exists");
    assert_eq!(d.registered_at, UnixTime(0));
    assert_eq!(d.summary.last_contact, None);
}

#[test]
fn an_unknown_device_needs_register() {
    let s = store();
    for batch in [vec![contact(1)], vec![Change::Nonce("n".into())], vec![]] {
        let err = s.apply(mac(1), &batch).expect_err("unknown device");
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
    assert_eq!(s.load_device(mac(1)).expect("loads"), DeviceSnapshot::unknown());
    // A known device may get an empty batch.
    register(&s, mac(1), 1);
    s.apply(mac(1), &[]).expect("applies");
}

#[test]
fn merge_inventory_upserts_in_order_and_skips_items_with_status() {
    let s = store();
    register(&s, mac(1), 1);
    let typed = Item { item_type: Some("t".into()), ..Item::new("a", "1") };
    s.apply(
        mac(1),
        &[Change::MergeInventory(vec![
            typed.clone(),
            Item::new("b", "2"),
            Item::new("c", "x").with_status(ItemStatus::Failed),
        ])],
    )
    .expect("applies");
    s.apply(
        mac(1),
        &[Change::MergeInventory(vec![
            Item::new("d", "4"),
            Item::new("b", "3"),
            Item::new("a", "ignored").with_status(ItemStatus::ReadOnly),
        ])],
    )
    .expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(triples(&snap.inventory), vec![t("a", None, "1"), t("b", None, "3"), t("d", None, "4")]);
    assert_eq!(snap.inventory[0], typed);
    assert!(snap.inventory.iter().all(|i| i.status.is_none()));
    // A merge is not a full inventory.
    assert_eq!(snap.inventory_at, None);
}

#[test]
fn replace_inventory_replaces() {
    let s = store();
    register(&s, mac(1), 1);
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("a", "1"), Item::new("b", "2")])]).expect("applies");
    s.apply(
        mac(1),
        &[Change::ReplaceInventory {
            items: vec![
                Item::new("c", "3"),
                Item::new("a", "9"),
                Item::new("e", "").with_status(ItemStatus::UnknownItem),
                Item::new("c", "33"),
            ],
            at: UnixTime(500),
        }],
    )
    .expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(triples(&snap.inventory), vec![t("c", None, "33"), t("a", None, "9")]);
    assert_eq!(snap.inventory_at, Some(UnixTime(500)));

    // An empty full inventory empties it.
    s.apply(mac(1), &[Change::ReplaceInventory { items: vec![], at: UnixTime(600) }]).expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert!(snap.inventory.is_empty());
    assert_eq!(snap.inventory_at, Some(UnixTime(600)));
}

#[test]
fn index_zero_and_no_index_are_distinct_keys() {
    let s = store();
    register(&s, mac(1), 1);
    s.apply(
        mac(1),
        &[
            Change::MergeInventory(vec![
                Item::new("key", "none"),
                Item::indexed("key", 0, "zero"),
                Item::indexed("key", 1, "one"),
                Item::indexed("key", u32::MAX, "max"),
            ]),
            Change::Written(vec![
                (key("pwd", None), record(1, WriteOutcome::Accepted)),
                (key("pwd", Some(0)), record(2, WriteOutcome::Accepted)),
            ]),
        ],
    )
    .expect("applies");
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::indexed("key", 0, "ZERO")])]).expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(
        triples(&snap.inventory),
        vec![
            t("key", None, "none"),
            t("key", Some(0), "ZERO"),
            t("key", Some(1), "one"),
            t("key", Some(u32::MAX), "max")
        ]
    );
    assert_eq!(snap.written.len(), 2);
    assert_eq!(snap.written[&key("pwd", None)].fingerprint, [1; 32]);
    assert_eq!(snap.written[&key("pwd", Some(0))].fingerprint, [2; 32]);
}

#[test]
fn written_records_round_trip_and_update() {
    let s = store();
    register(&s, mac(1), 1);
    let refused_odd = WriteOutcome::Refused(ItemStatus::Other("some new status".into()));
    let not_sent = WriteOutcome::NotSent("the value holds U+0000 at character 2, which XML 1.0 cannot carry".into());
    s.apply(
        mac(1),
        &[Change::Written(vec![
            (key("a", None), record(1, WriteOutcome::Accepted)),
            (key("b", Some(3)), record(2, WriteOutcome::Refused(ItemStatus::ReadOnly))),
            (key("c", None), record(3, refused_odd.clone())),
            (key("d", None), record(4, not_sent.clone())),
        ])],
    )
    .expect("applies");
    s.apply(
        mac(1),
        &[Change::Written(vec![(key("a", None), record(9, WriteOutcome::Refused(ItemStatus::InvalidData)))])],
    )
    .expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(snap.written.len(), 4);
    assert_eq!(snap.written[&key("d", None)], record(4, not_sent.clone()));
    assert_eq!(snap.written[&key("a", None)], record(9, WriteOutcome::Refused(ItemStatus::InvalidData)));
    assert_eq!(snap.written[&key("b", Some(3))], record(2, WriteOutcome::Refused(ItemStatus::ReadOnly)));
    assert_eq!(snap.written[&key("c", None)], record(3, refused_odd.clone()));
    // The admin view: by key, without fingerprints.
    let d = s.device(mac(1)).expect("reads").expect("exists");
    let written: Vec<_> = d.written.iter().map(|w| (w.item.clone(), w.outcome.clone())).collect();
    assert_eq!(
        written,
        vec![
            (key("a", None), WriteOutcome::Refused(ItemStatus::InvalidData)),
            (key("b", Some(3)), WriteOutcome::Refused(ItemStatus::ReadOnly)),
            (key("c", None), refused_odd),
            (key("d", None), not_sent),
        ]
    );
}

#[test]
fn deployment_status_and_phone_cleanup_are_kept() {
    let s = store();
    register(&s, mac(1), 1);
    let report = vec![
        Item::indexed("file-deployment-status", 1, "ok"),
        Item::new("file-deployment-name", "x").with_status(ItemStatus::Failed),
    ];
    s.apply(
        mac(1),
        &[Change::DeploymentStatus(report.clone()), Change::PhoneCleanUp { reason: Some("user-abort".into()) }],
    )
    .expect("applies");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.last_deployment_status, report);
    assert_eq!(d.last_phone_cleanup_reason.as_deref(), Some("user-abort"));
    // Neither is inventory.
    assert!(d.inventory.is_empty());

    s.apply(mac(1), &[Change::DeploymentStatus(vec![]), Change::PhoneCleanUp { reason: None }]).expect("applies");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert!(d.last_deployment_status.is_empty());
    assert_eq!(d.last_phone_cleanup_reason, None);
}

#[test]
fn nonces_keep_the_64_most_recent() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(2), &[Change::Nonce("other".into())]).expect("applies");
    for n in 0..40 {
        s.apply(mac(1), &[Change::Nonce(format!("n{n}"))]).expect("applies");
    }
    // Several in one batch, with a duplicate (ignored: it keeps its place).
    let batch: Vec<Change> =
        (40..100).map(|n| Change::Nonce(format!("n{n}"))).chain([Change::Nonce("n99".into())]).collect();
    s.apply(mac(1), &batch).expect("applies");
    let want: Vec<String> = (36..100).map(|n| format!("n{n}")).collect();
    assert_eq!(s.load_device(mac(1)).expect("loads").recent_nonces, want);
    // A forgotten nonce is new again.
    s.apply(mac(1), &[Change::Nonce("n0".into())]).expect("applies");
    let got = s.load_device(mac(1)).expect("loads").recent_nonces;
    assert_eq!(got.len(), 64);
    assert_eq!(got.first().map(String::as_str), Some("n37"));
    assert_eq!(got.last().map(String::as_str), Some("n0"));
    // Pruning is per device.
    assert_eq!(s.load_device(mac(2)).expect("loads").recent_nonces, vec!["other"]);
}

#[test]
fn a_failing_batch_leaves_no_trace() {
    let s = store();
    let bad_last = |first: bool| {
        let mut batch = vec![];
        if first {
            batch.push(REGISTER);
        }
        batch.extend([
            contact(1000),
            Change::Nonce("late".into()),
            Change::MergeInventory(vec![Item::new("x", "1")]),
            Change::Written(vec![(key("x", None), record(5, WriteOutcome::Accepted))]),
            Change::DeploymentStatus(vec![Item::new("file-deployment-status", "ok")]),
            Change::PhoneCleanUp { reason: Some("r".into()) },
            // A time SQLite cannot hold: refused, after everything else was written.
            Change::ReplaceInventory { items: vec![], at: UnixTime(u64::MAX) },
        ]);
        batch
    };

    // A new device: not even registered.
    let err = s.apply(mac(1), &bad_last(true)).expect_err("refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(s.load_device(mac(1)).expect("loads"), DeviceSnapshot::unknown());
    assert_eq!(s.device(mac(1)).expect("reads"), None);
    assert!(s.list_devices(&Default::default()).expect("lists").is_empty());

    // A known device: unchanged.
    s.apply(
        mac(1),
        &[
            REGISTER,
            contact(10),
            Change::Nonce("early".into()),
            Change::ReplaceInventory { items: vec![Item::new("x", "0")], at: UnixTime(10) },
        ],
    )
    .expect("applies");
    let (snap, details) = (s.load_device(mac(1)).expect("loads"), s.device(mac(1)).expect("reads"));
    assert!(s.apply(mac(1), &bad_last(false)).is_err());
    assert_eq!(s.load_device(mac(1)).expect("loads"), snap);
    assert_eq!(s.device(mac(1)).expect("reads"), details);
    // And the store still works.
    s.apply(mac(1), &[contact(20)]).expect("applies");
}

#[test]
fn times_out_of_range_are_refused() {
    let s = store();
    let err = s.apply(mac(1), &[REGISTER, contact(u64::MAX)]).expect_err("refused");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    // The largest time SQLite holds is fine.
    s.apply(mac(1), &[REGISTER, contact(i64::MAX as u64)]).expect("applies");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.last_contact, Some(UnixTime(i64::MAX as u64)));
}

#[test]
fn devices_do_not_share_state() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("a", "1")])]).expect("applies");
    s.apply(mac(2), &[Change::ReplaceInventory { items: vec![Item::new("a", "2")], at: UnixTime(5) }])
        .expect("applies");
    assert_eq!(triples(&s.load_device(mac(1)).expect("loads").inventory), vec![t("a", None, "1")]);
    assert_eq!(triples(&s.load_device(mac(2)).expect("loads").inventory), vec![t("a", None, "2")]);
    assert_eq!(s.load_device(mac(1)).expect("loads").inventory_at, None);
}

#[test]
fn a_forgotten_configuration_is_read_and_written_again() {
    let s = store();
    register(&s, mac(1), 1);
    let items = vec![Item::new("a", "1")];
    s.apply(
        mac(1),
        &[
            Change::ReplaceInventory { items, at: UnixTime(5) },
            Change::Written(vec![(key("admin-pwd", None), record(1, WriteOutcome::Accepted))]),
        ],
    )
    .expect("applies");
    s.apply(mac(1), &[Change::ForgetConfiguration]).expect("applies");
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(snap.inventory_at, None, "stale: read again at the next start-up");
    assert!(snap.written.is_empty(), "write-only items are written again");
    assert_eq!(triples(&snap.inventory), vec![t("a", None, "1")], "what was reported stays until then");
}
