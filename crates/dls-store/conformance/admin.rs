//! The admin API: devices and profiles, validation, listing.

use dls_engine::desired::GLOBAL_PROFILE;
use dls_engine::{AuditKind, Change, Profile, SecurityMode, UnixTime};
use dls_message::{Item, ItemStatus, MacAddr};
use dls_store::traits::*;
use dls_store::{DeviceFilter, DeviceSpec, DeviceUpdate, EventKind, SecurityUpdate, StoreError};

use super::{AT, Fixture, mac, profile, register, store};

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, mentions: &str) {
    match r {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains(mentions), "{msg:?} should mention {mentions:?}"),
        other => panic!("want Invalid, got {other:?}"),
    }
}

#[test]
fn add_device_then_read_it() {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    s.put_profile(&profile("floor-2", None, &[])).expect("puts");
    let spec = DeviceSpec {
        profiles: vec!["sales".into(), "floor-2".into()],
        overrides: vec![Item::new("e164", "4711"), Item::indexed("function-key-def", 0, "1")],
        ..Default::default()
    };
    s.add_device(mac(1), &spec, AT).expect("adds");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.registered_at, AT, "the time given, not the host's clock");
    assert_eq!(d.summary.profiles, spec.profiles);
    assert_eq!(d.overrides, spec.overrides);
    assert_eq!(d.summary.last_contact, None);
    assert!(d.inventory.is_empty() && d.written.is_empty() && d.last_deployment_status.is_empty());
    // Known to the protocol path too, and a first contact keeps the registration.
    assert!(s.load_device(mac(1)).expect("loads").known);
    register(&s, mac(1), 5);
    assert_eq!(s.device(mac(1)).expect("reads").expect("exists").registered_at, d.registered_at);

    let err = s.add_device(mac(1), &DeviceSpec::default(), AT).expect_err("exists");
    assert!(matches!(err, StoreError::Conflict { ref what } if what.contains("0001E325EA01")), "{err:?}");
}

#[test]
fn add_and_update_refuse_bad_specs() {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    assert_invalid(
        s.add_device(mac(1), &DeviceSpec { profiles: vec!["sals".into()], ..Default::default() }, AT),
        "sals",
    );
    assert_invalid(
        s.add_device(mac(1), &DeviceSpec { profiles: vec!["sales".into(), "sales".into()], ..Default::default() }, AT),
        "sales",
    );
    let with_status = Item::new("e164", "1").with_status(ItemStatus::Failed);
    assert_invalid(
        s.add_device(mac(1), &DeviceSpec { overrides: vec![with_status], ..Default::default() }, AT),
        "e164",
    );
    assert_invalid(
        s.add_device(mac(1), &DeviceSpec { overrides: vec![Item::new("", "1")], ..Default::default() }, AT),
        "name",
    );
    let twice = vec![Item::indexed("k", 0, "1"), Item::indexed("k", 0, "2")];
    assert_invalid(s.add_device(mac(1), &DeviceSpec { overrides: twice, ..Default::default() }, AT), "\"k\"");
    // Nothing was created.
    assert_eq!(s.device(mac(1)).expect("reads"), None);

    // The same key with and without index is fine.
    let both = vec![Item::new("k", "1"), Item::indexed("k", 0, "2")];
    s.add_device(
        mac(1),
        &DeviceSpec { profiles: vec!["sales".into()], overrides: both.clone(), ..Default::default() },
        AT,
    )
    .expect("adds");
    assert_invalid(
        s.update_device(mac(1), &DeviceUpdate { profiles: Some(vec!["nope".into()]), overrides: None }),
        "nope",
    );
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.profiles, vec!["sales"]);
    assert_eq!(d.overrides, both);
}

#[test]
fn update_device_changes_only_what_is_given() {
    let s = store();
    s.put_profile(&profile("a", None, &[])).expect("puts");
    s.put_profile(&profile("b", None, &[])).expect("puts");
    let err = s.update_device(mac(1), &DeviceUpdate::default()).expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    s.add_device(
        mac(1),
        &DeviceSpec { profiles: vec!["a".into()], overrides: vec![Item::new("x", "1")], ..Default::default() },
        AT,
    )
    .expect("adds");
    s.update_device(mac(1), &DeviceUpdate { profiles: Some(vec!["b".into(), "a".into()]), overrides: None })
        .expect("updates");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.profiles, vec!["b", "a"]);
    assert_eq!(d.overrides, vec![Item::new("x", "1")]);
    s.update_device(mac(1), &DeviceUpdate { profiles: None, overrides: Some(vec![]) }).expect("updates");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.profiles, vec!["b", "a"]);
    assert!(d.overrides.is_empty());
    s.update_device(mac(1), &DeviceUpdate { profiles: Some(vec![]), overrides: None }).expect("updates");
    assert!(s.device(mac(1)).expect("reads").expect("exists").summary.profiles.is_empty());
}

#[test]
fn delete_device_forgets_everything() {
    let s = store();
    s.put_profile(&profile("a", None, &[])).expect("puts");
    s.add_device(
        mac(1),
        &DeviceSpec { profiles: vec!["a".into()], overrides: vec![Item::new("x", "1")], ..Default::default() },
        AT,
    )
    .expect("adds");
    s.apply(
        mac(1),
        &[
            Change::Nonce("n".into()),
            Change::MergeInventory(vec![Item::new("e164", "1")]),
            Change::Written(vec![(super::key("p", None), super::record(1, dls_engine::WriteOutcome::Accepted))]),
        ],
    )
    .expect("applies");
    register(&s, mac(2), 1);
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert!(!s.delete_device(mac(1)).expect("deletes"));
    assert_eq!(s.device(mac(1)).expect("reads"), None);
    assert!(!s.load_device(mac(1)).expect("loads").known);
    // Registered again, it starts afresh.
    register(&s, mac(1), 9);
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert!(d.inventory.is_empty() && d.overrides.is_empty() && d.written.is_empty() && d.summary.profiles.is_empty());
    assert_eq!(s.load_device(mac(1)).expect("loads").recent_nonces, Vec::<String>::new());
    // The profile and the other device are untouched.
    assert!(s.profile("a").expect("reads").is_some());
    assert!(s.device(mac(2)).expect("reads").is_some());
}

#[test]
fn profiles_crud() {
    let s = store();
    assert!(s.profiles().expect("lists").is_empty());
    assert_eq!(s.profile("nope").expect("reads"), None);
    let full = Profile {
        name: "os60".into(),
        device_type: Some("OpenStage 60".into()),
        reassert_on_local_changes: Some(true),
        legacy_value_sanitising: Some(false),
        provisioning_template: Some("<cfg mac=\"{{mac}}\" a=\"{{item:sntp-addr}}\"/>".into()),
        items: vec![
            Item::indexed("function-key-def", 0, "30"),
            Item { item_type: Some("x".into()), ..Item::new("sntp-addr", "<&>") },
        ],
    };
    s.put_profile(&full).expect("puts");
    s.put_profile(&profile("b.x_y-1", None, &[])).expect("puts");
    s.put_profile(&profile(GLOBAL_PROFILE, None, &[("a", None, "1")])).expect("puts");
    assert_eq!(s.profile("os60").expect("reads"), Some(full));
    let names: Vec<String> = s.profiles().expect("lists").into_iter().map(|p| p.name).collect();
    assert_eq!(names, vec!["b.x_y-1", "global", "os60"]);
    // Replace.
    let replaced = profile("os60", None, &[("b", None, "2")]);
    s.put_profile(&replaced).expect("puts");
    assert_eq!(s.profile("os60").expect("reads"), Some(replaced));
    assert_eq!(s.profiles().expect("lists").len(), 3);
    // Delete.
    assert!(s.delete_profile("os60").expect("deletes"));
    assert!(!s.delete_profile("os60").expect("deletes"));
    assert_eq!(s.profile("os60").expect("reads"), None);
}

#[test]
fn profile_names_are_checked() {
    let s = store();
    for bad in ["", "a b", "../etc", "ä", "a/b", "tab\t", &"x".repeat(65)] {
        assert_invalid(s.put_profile(&profile(bad, None, &[])), "profile name");
    }
    s.put_profile(&profile(&"x".repeat(64), None, &[])).expect("64 characters are fine");
    assert_eq!(s.profiles().expect("lists").len(), 1);
}

#[test]
fn deleting_a_profile_removes_its_assignments() {
    let s = store();
    for name in ["a", "b", "c"] {
        s.put_profile(&profile(name, None, &[])).expect("puts");
    }
    s.add_device(mac(1), &DeviceSpec { profiles: vec!["a".into(), "b".into(), "c".into()], ..Default::default() }, AT)
        .expect("adds");
    s.add_device(mac(2), &DeviceSpec { profiles: vec!["b".into()], ..Default::default() }, AT).expect("adds");
    assert!(s.delete_profile("b").expect("deletes"));
    assert_eq!(s.device(mac(1)).expect("reads").expect("exists").summary.profiles, vec!["a", "c"]);
    assert!(s.device(mac(2)).expect("reads").expect("exists").summary.profiles.is_empty());
    let filter = DeviceFilter { profile: Some("b".into()), ..Default::default() };
    assert!(s.list_devices(&filter).expect("lists").is_empty());
    // Re-created, it is not assigned again by itself.
    s.put_profile(&profile("b", None, &[])).expect("puts");
    assert!(s.list_devices(&filter).expect("lists").is_empty());
}

/// Three phones: 01 (OpenStage 60, e164 4711, sales), 02 (OpenStage 40, e164 +49 89 4712,
/// sales and floor), 03 (nothing reported, floor).
fn fleet() -> Fixture {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    s.put_profile(&profile("floor", None, &[])).expect("puts");
    type Phone<'a> = (u8, Option<(&'a str, &'a str, &'a str)>, &'a [&'a str]);
    let phones: [Phone<'_>; 3] = [
        (3, None, &["floor"]),
        (1, Some(("OpenStage 60", "V3 R5.1", "4711")), &["sales"]),
        (2, Some(("OpenStage 40", "V3 R4.0", "+49 89 4712")), &["sales", "floor"]),
    ];
    for (n, inventory, profiles) in phones {
        let profiles: Vec<String> = profiles.iter().map(|p| (*p).to_owned()).collect();
        s.add_device(mac(n), &DeviceSpec { profiles, ..Default::default() }, AT).expect("adds");
        if let Some((device_type, version, e164)) = inventory {
            s.apply(
                mac(n),
                &[
                    super::contact(100 + u64::from(n)),
                    Change::ReplaceInventory {
                        items: vec![
                            Item::new("device-type", device_type),
                            Item::new("software-version", version),
                            Item::new("e164", e164),
                            Item::indexed("e164", 1, "999"),
                        ],
                        at: UnixTime(100),
                    },
                ],
            )
            .expect("applies");
        }
    }
    s
}

fn listed(s: &dyn Store, filter: DeviceFilter) -> Vec<u8> {
    s.list_devices(&filter).expect("lists").iter().map(|d| d.mac.octets()[5]).collect()
}

#[test]
fn list_devices_with_filters() {
    let s = fleet();
    let all = s.list_devices(&DeviceFilter::default()).expect("lists");
    assert_eq!(all.iter().map(|d| d.mac).collect::<Vec<_>>(), vec![mac(1), mac(2), mac(3)]);
    assert_eq!(all[0].device_type.as_deref(), Some("OpenStage 60"));
    assert_eq!(all[0].software_version.as_deref(), Some("V3 R5.1"));
    assert_eq!(all[0].e164.as_deref(), Some("4711"));
    assert_eq!(all[0].last_contact, Some(UnixTime(101)));
    assert_eq!(all[1].profiles, vec!["sales", "floor"]);
    assert_eq!((all[2].device_type.as_ref(), all[2].e164.as_ref(), all[2].last_contact), (None, None, None));
    // The listing agrees with the details.
    assert_eq!(s.device(mac(2)).expect("reads").expect("exists").summary, all[1]);

    let f =
        |profile: Option<&str>, device_type: Option<&str>, search: Option<&str>, limit: Option<usize>| DeviceFilter {
            profile: profile.map(Into::into),
            device_type: device_type.map(Into::into),
            search: search.map(Into::into),
            limit,
            ..DeviceFilter::default()
        };
    assert_eq!(listed(&s, f(Some("sales"), None, None, None)), vec![1, 2]);
    assert_eq!(listed(&s, f(Some("floor"), None, None, None)), vec![2, 3]);
    assert_eq!(listed(&s, f(Some("nope"), None, None, None)), Vec::<u8>::new());
    assert_eq!(listed(&s, f(None, Some("OpenStage 40"), None, None)), vec![2]);
    assert_eq!(listed(&s, f(None, Some("openstage 40"), None, None)), Vec::<u8>::new());
    // Search: a MAC in any spelling and case, or part of an e164.
    assert_eq!(listed(&s, f(None, None, Some("ea:03"), None)), vec![3]);
    assert_eq!(listed(&s, f(None, None, Some("0001e325ea0"), None)), vec![1, 2, 3]);
    assert_eq!(listed(&s, f(None, None, Some("471"), None)), vec![1, 2]);
    assert_eq!(listed(&s, f(None, None, Some("89 47"), None)), vec![2]);
    assert_eq!(listed(&s, f(None, None, Some("999"), None)), Vec::<u8>::new());
    assert_eq!(listed(&s, f(None, None, Some(""), None)), vec![1, 2, 3]);
    assert_eq!(listed(&s, f(None, None, Some(":"), None)), Vec::<u8>::new());
    // Limit, and everything together.
    assert_eq!(listed(&s, f(None, None, None, Some(2))), vec![1, 2]);
    assert_eq!(listed(&s, f(None, None, None, Some(0))), Vec::<u8>::new());
    assert_eq!(listed(&s, f(None, None, None, Some(usize::MAX))), vec![1, 2, 3]);
    assert_eq!(listed(&s, f(Some("sales"), Some("OpenStage 60"), Some("4711"), Some(5))), vec![1]);
    assert_eq!(listed(&s, f(Some("floor"), None, Some("471"), None)), vec![2]);
}

/// The console's pages: by software version, descending, and a page after a MAC (keyset
/// pagination), with the other filters.
#[test]
fn list_devices_a_page_at_a_time() {
    let s = fleet();
    let page = |after: Option<u8>, descending: bool, limit: Option<usize>| DeviceFilter {
        after: after.map(mac),
        descending,
        limit,
        ..DeviceFilter::default()
    };
    assert_eq!(listed(&s, page(None, false, Some(2))), vec![1, 2]);
    assert_eq!(listed(&s, page(Some(2), false, Some(2))), vec![3]);
    assert_eq!(listed(&s, page(Some(3), false, Some(2))), Vec::<u8>::new());
    assert_eq!(listed(&s, page(None, true, Some(2))), vec![3, 2]);
    assert_eq!(listed(&s, page(Some(2), true, None)), vec![1]);
    assert_eq!(listed(&s, page(Some(1), true, None)), Vec::<u8>::new());
    let version = |v: &str| DeviceFilter { software_version: Some(v.into()), ..DeviceFilter::default() };
    assert_eq!(listed(&s, version("V3 R5.1")), vec![1]);
    assert_eq!(listed(&s, version("nope")), Vec::<u8>::new());
    let both = DeviceFilter { profile: Some("floor".into()), after: Some(mac(2)), ..DeviceFilter::default() };
    assert_eq!(listed(&s, both), vec![3]);
}

/// The devices a search lists (`limit`, `after` and `descending` as given), in order.
fn searched(
    s: &dyn Store,
    search: &str,
    limit: Option<usize>,
    after: Option<MacAddr>,
    descending: bool,
) -> Vec<MacAddr> {
    let filter = DeviceFilter { search: Some(search.into()), limit, after, descending, ..DeviceFilter::default() };
    s.list_devices(&filter).expect("lists").iter().map(|d| d.mac).collect()
}

/// `mac` reports `e164` (`None`: no `e164` at all) in a new inventory.
fn reports_e164(s: &dyn Store, mac: MacAddr, e164: Option<&str>) {
    let mut items = vec![Item::new("device-type", "OpenStage 60")];
    items.extend(e164.map(|n| Item::new("e164", n)));
    s.apply(mac, &[super::contact(100), Change::ReplaceInventory { items, at: UnixTime(100) }]).expect("applies");
}

/// The console's search (issue 16), which the backends serve from trigram indexes: a
/// substring of the MAC in the forms the console accepts (any case, `:`, `-` or `.`
/// between the digits, a fragment anywhere) or of the `e164` (anywhere in it, case
/// ignored); needles shorter than a trigram too; the characters that mean something to the
/// indexes' query languages (`%`, `_`, `\`, `"`) as themselves; by pages, both ways.
#[test]
fn search_finds_substrings_of_the_mac_and_the_e164() {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    let a = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0xAB, 0xCD, 0x01]);
    let b = MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x12, 0x34, 0x56]);
    let c = MacAddr::from_bytes([0x00, 0x01, 0xE3, 0xAB, 0xCD, 0x02]);
    for (m, e164) in [(a, Some("+49 89 7220 1234")), (b, Some("+49 30 5550 999 Ext")), (c, None)] {
        let profiles = if m == b { vec!["sales".to_owned()] } else { Vec::new() };
        s.add_device(m, &DeviceSpec { profiles, ..Default::default() }, AT).expect("adds");
        reports_e164(&s, m, e164);
    }
    let find = |q: &str| searched(&s, q, None, None, false);
    // The e164: a substring anywhere, case ignored.
    for q in ["7220", "89 7220 12", "0 1234", "+49 89 7220 1234", "7220 1"] {
        assert_eq!(find(q), [a], "{q:?}");
    }
    for q in ["Ext", "EXT", "ext", "999 e", "+49 30"] {
        assert_eq!(find(q), [b], "{q:?}");
    }
    assert_eq!(find("+49"), [b, a]);
    // Either: b's MAC, a's number.
    assert_eq!(find("1234"), [b, a]);
    // The MAC: any case, with or without separators, a fragment anywhere (MAC order).
    for q in ["ab:cd", "ABCD", "Ab-Cd", "ab.cd", "AbCd0"] {
        assert_eq!(find(q), [c, a], "{q:?}");
    }
    for q in ["001ae8abcd01", "00:1A:E8:AB:CD:01", "00-1a-e8-ab-cd-01", "001a.e8ab.cd01", "1a:e8", "cd01", "E8AB"] {
        assert_eq!(find(q), [a], "{q:?}");
    }
    assert_eq!(find("e3:12:34"), [b]);
    assert_eq!(find("0001e3"), [b, c]);
    // Shorter than a trigram.
    assert_eq!(find("ab"), [c, a]);
    assert_eq!(find("9"), [b, a]);
    assert_eq!(find("x"), [b]);
    assert_eq!(find("z"), Vec::<MacAddr>::new());
    assert_eq!(find("q:"), Vec::<MacAddr>::new());
    // Nothing matches: a number no device has, and characters taken as themselves.
    for q in [
        "5555555",
        "7220 5",
        "%",
        "_",
        "\\",
        "\"",
        "89%7220",
        "89_7220",
        "7220\"",
        "\"7220\"",
        "ab%cd",
        "a_cd",
        "ab*",
        "7220\u{0}",
        "\u{0}\u{0}\u{0}",
        "ab\ncd",
        "7220 1234 \u{1F600}",
    ] {
        assert_eq!(find(q), Vec::<MacAddr>::new(), "{q:?}");
    }
    // A page at a time, both ways, and with the other filters.
    assert_eq!(searched(&s, "abcd", Some(1), None, false), [c]);
    assert_eq!(searched(&s, "abcd", Some(1), Some(c), false), [a]);
    assert_eq!(searched(&s, "abcd", Some(1), Some(a), false), Vec::<MacAddr>::new());
    assert_eq!(searched(&s, "abcd", None, None, true), [a, c]);
    assert_eq!(searched(&s, "abcd", Some(1), Some(a), true), [c]);
    assert_eq!(searched(&s, "+49", Some(5), Some(b), false), [a]);
    assert_eq!(searched(&s, "+49", None, Some(a), true), [b]);
    let sales = |q: &str| {
        let filter = DeviceFilter { search: Some(q.into()), profile: Some("sales".into()), ..DeviceFilter::default() };
        s.list_devices(&filter).expect("lists").iter().map(|d| d.mac).collect::<Vec<_>>()
    };
    assert_eq!((sales("+49"), sales("7220"), sales("0001e3")), (vec![b], vec![], vec![b]));
}

/// What the search finds follows the devices at once (the backends' indexes are kept in
/// step with them): a device added, registered by its first contact, reporting another
/// `e164` or none, deleted, and added again.
#[test]
fn search_follows_devices_as_they_change() {
    let s = store();
    let a = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x00, 0x00, 0x01]);
    let d = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0xFE, 0xDC, 0xBA]);
    s.add_device(a, &DeviceSpec::default(), AT).expect("adds");
    reports_e164(&s, a, Some("+49 89 7220 1234"));
    let find = |q: &str| searched(&s, q, None, None, false);
    assert_eq!(find("fedcba"), Vec::<MacAddr>::new());
    // Added by the admin API, then reporting numbers.
    s.add_device(d, &DeviceSpec::default(), AT).expect("adds");
    assert_eq!((find("fe:dc:ba"), find("7220")), (vec![d], vec![a]));
    reports_e164(&s, d, Some("+49 89 7220 5555"));
    assert_eq!((find("7220"), find("7220 5555"), find("dcba")), (vec![a, d], vec![d], vec![d]));
    reports_e164(&s, d, Some("+1 212 555 0100"));
    assert_eq!((find("7220"), find("212 555"), find("7220 5555")), (vec![a], vec![d], vec![]));
    reports_e164(&s, d, None);
    assert_eq!((find("212 555"), find("fedcba")), (vec![], vec![d]));
    reports_e164(&s, d, Some("+1 212 555 0100"));
    // Deleted: found by nothing; added again (registered by its first contact): by its
    // MAC only until it reports its number.
    assert!(s.delete_device(d).expect("deletes"));
    assert_eq!((find("212 555"), find("fedcba"), find("1ae8")), (vec![], vec![], vec![a]));
    register(&s, d, 200);
    assert_eq!((find("212 555"), find("fedcba"), find("1ae8")), (vec![], vec![d], vec![a, d]));
    reports_e164(&s, d, Some("+1 212 555 0100"));
    assert_eq!(find("212 555"), [d]);
    // Another device's number is not its own.
    assert!(s.delete_device(a).expect("deletes"));
    assert_eq!((find("7220"), find("1ae8")), (vec![], vec![d]));
}

/// A device is added with its secret and its security mode and PIN in one transaction:
/// when any part is refused, nothing of it is stored (the admin API once made three
/// transactions of it, and a failure left a device half-created).
#[test]
fn a_device_is_added_whole_or_not_at_all() {
    let s = store();
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    let pin = SecurityUpdate { mode: Some(SecurityMode::Pin), reset: false, new_pin: Some(vec![7; 40]), actor: None };
    let whole = DeviceSpec {
        profiles: vec!["sales".into()],
        secret: Some(vec![1; 48]),
        security: Some(pin.clone()),
        ..Default::default()
    };
    s.add_device(mac(1), &whole, AT).expect("adds");
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.profiles, ["sales"]);
    assert_eq!((d.security.mode, d.security.pin_outstanding), (SecurityMode::Pin, true));
    assert_eq!(s.device_secret(mac(1)).expect("reads"), Some(vec![1; 48]));
    let kinds: Vec<EventKind> = s.audit(Some(mac(1)), 10).expect("audit").into_iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&AuditKind::PinIssued.into()) && kinds.contains(&AuditKind::ModeChanged.into()),
        "{kinds:?}"
    );

    // The sealed PIN is refused (empty), after the device and its secret were written in
    // the transaction: neither is stored.
    let bad_pin = SecurityUpdate { new_pin: Some(Vec::new()), ..pin };
    let refused = DeviceSpec { secret: Some(vec![2; 48]), security: Some(bad_pin), ..Default::default() };
    assert!(s.add_device(mac(2), &refused, AT).is_err());
    assert!(s.device(mac(2)).expect("reads").is_none(), "no half-created device");
    assert_eq!(s.device_secret(mac(2)).expect("reads"), None);
    assert!(s.audit(Some(mac(2)), 10).expect("audit").is_empty());
}

#[test]
fn the_fleet_summary_counts_devices_jobs_and_refusals() {
    use dls_engine::{AuditEvent, AuditKind, JobKind};
    use dls_store::NewJob;
    let s = store();
    assert_eq!(s.fleet_summary(UnixTime(0)).expect("counts"), dls_store::FleetSummary::default());
    for (n, device_type, version, at) in
        [(1, "OpenStage 60", "V3", 100), (2, "OpenStage 60", "V2", 200), (3, "OpenStage 40", "V3", 300)]
    {
        register(&s, mac(n), at);
        let items = vec![Item::new("device-type", device_type), Item::new("software-version", version)];
        s.apply(mac(n), &[Change::MergeInventory(items)]).expect("inventory");
    }
    register(&s, mac(4), 50);
    let pin = SecurityUpdate { mode: Some(SecurityMode::Nopin), ..SecurityUpdate::default() };
    s.update_security(mac(4), &pin, AT).expect("mode");
    let refused = |at: u64, kind| Change::Audit(AuditEvent { at: UnixTime(at), kind, detail: String::new() });
    s.apply(mac(1), &[refused(150, AuditKind::DefaultPortRefused), refused(250, AuditKind::TanWrong)]).expect("audit");
    s.apply(mac(1), &[refused(260, AuditKind::BootstrapSent)]).expect("audit: not a refusal");
    let jobs = s
        .add_jobs(
            &[NewJob { mac: mac(1), kind: JobKind::Restart }, NewJob { mac: mac(2), kind: JobKind::Restart }],
            UnixTime(10),
        )
        .expect("jobs");
    s.cancel_job(jobs[1].id, UnixTime(11)).expect("cancels");

    let f = s.fleet_summary(UnixTime(200)).expect("counts");
    assert_eq!(f.devices, 4);
    assert_eq!(f.by_type, [("OpenStage 60".to_owned(), 2), (String::new(), 1), ("OpenStage 40".to_owned(), 1)]);
    assert_eq!(f.by_version, [("V3".to_owned(), 2), (String::new(), 1), ("V2".to_owned(), 1)]);
    assert_eq!(f.by_mode, [("default".to_owned(), 3), ("nopin".to_owned(), 1)]);
    assert_eq!((f.contacted, f.bootstraps_pending, f.jobs_open, f.jobs_failed, f.refusals), (2, 1, 1, 0, 1));
    assert_eq!(s.fleet_summary(UnixTime(0)).expect("counts").refusals, 2);
}
