//! `desired`: profiles layered for a device, through the store.

use dls_engine::desired::GLOBAL_PROFILE;
use dls_engine::{Change, Profile, UnixTime};
use dls_message::{Item, ValueEscaping};
use dls_store::traits::*;
use dls_store::{DeviceSpec, DeviceUpdate};

use super::{AT, Fixture, mac, profile, register, store, t, triples};

fn with_profiles() -> Fixture {
    let s = store();
    let mut global = profile(GLOBAL_PROFILE, None, &[("sntp-addr", None, "ntp.global"), ("country-iso", None, "DE")]);
    global.reassert_on_local_changes = Some(false);
    s.put_profile(&global).expect("puts");
    let mut os60 = profile(
        "os60",
        Some("OpenStage 60"),
        &[("country-iso", None, "AT"), ("function-key-def", Some(0), "1"), ("function-key-def", Some(1), "2")],
    );
    os60.reassert_on_local_changes = Some(true);
    s.put_profile(&os60).expect("puts");
    s.put_profile(&profile("os40", Some("OpenStage 40"), &[("country-iso", None, "CH")])).expect("puts");
    let mut sales = profile("sales", None, &[("sntp-addr", None, "ntp.sales"), ("function-key-def", Some(1), "30")]);
    sales.legacy_value_sanitising = Some(true);
    s.put_profile(&sales).expect("puts");
    s.put_profile(&profile("unused", None, &[("vlan-id", None, "5")])).expect("puts");
    s
}

fn report_type(s: &dyn Store, device_type: &str) {
    s.apply(
        mac(1),
        &[Change::ReplaceInventory {
            items: vec![Item::new("device-type", device_type), Item::indexed("device-type", 0, "not this one")],
            at: UnixTime(2),
        }],
    )
    .expect("applies");
}

#[test]
fn layers_global_type_assigned_and_overrides() {
    let s = with_profiles();
    register(&s, mac(1), 1);
    report_type(&s, "OpenStage 60");
    s.update_device(
        mac(1),
        &DeviceUpdate {
            profiles: Some(vec!["sales".into()]),
            overrides: Some(vec![Item::new("e164", "100"), Item::indexed("function-key-def", 0, "9")]),
        },
    )
    .expect("updates");
    let d = s.desired(mac(1)).expect("resolves");
    assert_eq!(
        triples(&d.items),
        vec![
            t("sntp-addr", None, "ntp.sales"),
            t("country-iso", None, "AT"),
            t("function-key-def", Some(0), "9"),
            t("function-key-def", Some(1), "30"),
            t("e164", None, "100"),
        ]
    );
    assert_eq!(d.layers, vec!["global", "os60", "sales", "device"]);
    assert!(d.reassert_on_local_changes);
    assert_eq!(d.value_escaping, ValueEscaping::LegacySanitise);

    // Another type: its profile instead.
    report_type(&s, "OpenStage 40");
    let d = s.desired(mac(1)).expect("resolves");
    assert_eq!(d.layers, vec!["global", "os40", "sales", "device"]);
    assert!(!d.reassert_on_local_changes);
}

#[test]
fn an_unknown_or_bare_device_gets_what_applies_to_all() {
    let s = with_profiles();
    let d = s.desired(mac(9)).expect("resolves");
    assert_eq!(d.layers, vec!["global"]);
    assert_eq!(triples(&d.items), vec![t("sntp-addr", None, "ntp.global"), t("country-iso", None, "DE")]);
    // Registered, no inventory yet: the same.
    register(&s, mac(9), 1);
    assert_eq!(s.desired(mac(9)).expect("resolves").layers, vec!["global"]);
    // No profiles at all: nothing.
    let empty = store();
    assert_eq!(empty.desired(mac(9)).expect("resolves"), Default::default());
}

#[test]
fn profile_changes_are_seen_at_once() {
    let s = with_profiles();
    s.add_device(mac(1), &DeviceSpec { profiles: vec!["sales".into(), "unused".into()], ..Default::default() }, AT)
        .expect("adds");
    assert_eq!(s.desired(mac(1)).expect("resolves").layers, vec!["global", "sales", "unused"]);
    // Replace a profile: the cache is not stale.
    s.put_profile(&profile(GLOBAL_PROFILE, None, &[("sntp-addr", None, "ntp.new")])).expect("puts");
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    let d = s.desired(mac(1)).expect("resolves");
    assert_eq!(triples(&d.items), vec![t("sntp-addr", None, "ntp.new"), t("vlan-id", None, "5")]);
    // Delete one: gone from the layers and from the assignment.
    assert!(s.delete_profile("unused").expect("deletes"));
    assert_eq!(s.desired(mac(1)).expect("resolves").layers, vec!["global", "sales"]);
    assert_eq!(s.device(mac(1)).expect("reads").expect("exists").summary.profiles, vec!["sales"]);
    // A new typed profile applies at the next message.
    register(&s, mac(1), 1);
    report_type(&s, "OpenStage 80");
    let os80 = Profile { device_type: Some("OpenStage 80".into()), ..profile("os80", None, &[]) };
    s.put_profile(&os80).expect("puts");
    assert_eq!(s.desired(mac(1)).expect("resolves").layers, vec!["global", "os80", "sales"]);
}
