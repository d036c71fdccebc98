//! Digest credentials: a device's sealed secret, the fallback credentials of profiles and
//! of every device, and the upgrade of a schema-2 database.

use dls_engine::{Change, SecurityMode};
use dls_message::{Item, MacAddr};
use dls_store::traits::*;
use dls_store::{CredentialScope, DeviceSpec, DeviceUpdate, FallbackCredential, StoreError};

use super::{AT, Fixture, REGISTER, contact, mac, profile, register, store};

/// A sealed secret, as the caller would store it: bytes that are not text.
pub(crate) const SECRET: &[u8] = b"\x00\xffSEALED-DEVICE-SECRET-7d1c\x80\x01";
pub(crate) const OTHER_SECRET: &[u8] = b"\x01SEALED-OTHER-SECRET-40aa";

pub(crate) fn global() -> CredentialScope {
    CredentialScope::Global
}

pub(crate) fn of(name: &str) -> CredentialScope {
    CredentialScope::Profile(name.into())
}

/// A sealed fallback password, by name.
pub(crate) fn sealed(name: &str) -> Vec<u8> {
    format!("\u{0}sealed:{name}").into_bytes()
}

/// Sets a fallback credential whose sealed password is `sealed(username)`.
pub(crate) fn set(s: &dyn Store, scope: &CredentialScope, username: &str) {
    s.set_fallback_credential(scope, username, Some(&sealed(username))).expect("sets");
}

/// `(scope, username)` of what applies to a device, in order, checking each secret.
pub(crate) fn applying(s: &dyn Store, mac: MacAddr) -> Vec<(CredentialScope, String)> {
    s.fallback_credentials(mac)
        .expect("reads")
        .into_iter()
        .map(|FallbackCredential { scope, username, sealed: secret }| {
            assert_eq!(secret, sealed(&username), "{username}");
            (scope, username)
        })
        .collect()
}

pub(crate) fn listed(s: &dyn Store) -> Vec<(CredentialScope, String)> {
    s.list_fallback_credentials().expect("lists")
}

pub(crate) fn pair(scope: CredentialScope, username: &str) -> (CredentialScope, String) {
    (scope, username.into())
}

pub(crate) fn with_profiles(names: &[&str]) -> Fixture {
    let s = store();
    for name in names {
        s.put_profile(&profile(name, None, &[])).expect("puts");
    }
    s
}

pub(crate) fn assign(s: &dyn Store, mac: MacAddr, names: &[&str]) {
    let profiles = Some(names.iter().map(|&n| n.to_owned()).collect());
    s.update_device(mac, &DeviceUpdate { profiles, overrides: None }).expect("assigns");
}

pub(crate) fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, want: &str) {
    match r {
        Err(StoreError::Invalid(m)) => assert!(m.contains(want), "{m:?} should contain {want:?}"),
        other => panic!("want Invalid({want:?}), got {other:?}"),
    }
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, want: &str) {
    match r {
        Err(StoreError::NotFound { what }) => assert!(what.contains(want), "{what:?} should contain {want:?}"),
        other => panic!("want NotFound({want:?}), got {other:?}"),
    }
}

/// Whether `text` shows `secret` in any of the forms a serialiser or `Debug` would give.
pub(crate) fn shows(text: &str, secret: &[u8]) -> bool {
    let marker = &secret[2..14];
    let numbers = |sep: &str| secret.iter().map(u8::to_string).collect::<Vec<_>>().join(sep);
    let hex = |upper: bool| {
        secret.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect::<String>()
    };
    [String::from_utf8_lossy(marker).into_owned(), numbers(","), numbers(", "), hex(true), hex(false)]
        .iter()
        .any(|form| text.contains(form.as_str()))
}

// ---------------------------------------------------------------------------------------
// A device's secret.

#[test]
fn a_device_secret_round_trips_and_clears() {
    let s = store();
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None, "unknown device");
    assert_not_found(s.set_device_secret(mac(1), Some(SECRET)), "0001E325EA01");
    assert_not_found(s.set_device_secret(mac(1), None), "0001E325EA01");
    assert_eq!(s.device(mac(1)).expect("reads"), None, "not registered by the attempt");

    register(&s, mac(1), 1);
    s.add_device(mac(2), &DeviceSpec::default(), AT).expect("adds");
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None, "none set");
    s.set_device_secret(mac(1), None).expect("clearing none is no error");

    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    s.set_device_secret(mac(2), Some(OTHER_SECRET)).expect("sets");
    assert_eq!(s.device_secret(mac(1)).expect("reads").as_deref(), Some(SECRET));
    assert_eq!(s.device_secret(mac(2)).expect("reads").as_deref(), Some(OTHER_SECRET));
    // Replaced, then cleared, each device on its own.
    s.set_device_secret(mac(1), Some(OTHER_SECRET)).expect("replaces");
    assert_eq!(s.device_secret(mac(1)).expect("reads").as_deref(), Some(OTHER_SECRET));
    s.set_device_secret(mac(1), None).expect("clears");
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None);
    assert_eq!(s.device_secret(mac(2)).expect("reads").as_deref(), Some(OTHER_SECRET));
    // Opaque bytes: even none, which is not "no secret".
    s.set_device_secret(mac(1), Some(&[])).expect("sets");
    assert_eq!(s.device_secret(mac(1)).expect("reads"), Some(Vec::new()));
    let big = vec![0xA5; 64 * 1024];
    s.set_device_secret(mac(1), Some(&big)).expect("sets");
    assert_eq!(s.device_secret(mac(1)).expect("reads"), Some(big));
}

#[test]
fn the_protocol_path_keeps_a_device_secret() {
    let s = store();
    register(&s, mac(1), 1);
    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    s.apply(mac(1), &[REGISTER, contact(2), Change::ReplaceInventory { items: vec![], at: dls_engine::UnixTime(2) }])
        .expect("applies");
    s.update_device(mac(1), &DeviceUpdate { profiles: Some(vec![]), overrides: Some(vec![Item::new("x", "1")]) })
        .expect("updates");
    assert_eq!(s.device_secret(mac(1)).expect("reads").as_deref(), Some(SECRET));
}

#[test]
fn deleting_a_device_deletes_its_secret() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    s.set_device_secret(mac(2), Some(OTHER_SECRET)).expect("sets");
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None);
    assert_not_found(s.set_device_secret(mac(1), Some(SECRET)), "device");
    // Registered again, it starts without one; the other keeps its own.
    register(&s, mac(1), 2);
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None);
    assert_eq!(s.device_secret(mac(2)).expect("reads").as_deref(), Some(OTHER_SECRET));
}

#[test]
fn secrets_are_not_in_the_admin_output_nor_debug() {
    let s = with_profiles(&["sales"]);
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(1)]).expect("registers");
    assign(&s, mac(1), &["sales"]);
    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    s.set_fallback_credential(&of("sales"), "ops", Some(OTHER_SECRET)).expect("sets");
    assert!(shows(&format!("{SECRET:?}"), SECRET) && shows("SEALED-DEVICE", SECRET), "the check finds it");

    let details = s.device(mac(1)).expect("reads").expect("exists");
    let json = serde_json::to_string(&details).expect("serialises");
    assert!(!shows(&json, SECRET), "{json}");
    let listing = serde_json::to_string(&s.list_devices(&Default::default()).expect("lists")).expect("serialises");
    assert!(!shows(&listing, SECRET), "{listing}");
    let credentials = s.fallback_credentials(mac(1)).expect("reads");
    assert_eq!(credentials[0].sealed, OTHER_SECRET);
    let debug = format!(
        "{details:?} {:?} {:?} {credentials:?} {:?} {s:?}",
        s.load_device(mac(1)).expect("loads"),
        s.desired(mac(1)).expect("desired"),
        s.list_fallback_credentials().expect("lists"),
    );
    assert!(!shows(&debug, SECRET) && !shows(&debug, OTHER_SECRET), "{debug}");
    assert!(debug.contains("\"ops\""), "the username is shown: {debug}");
    let listed = serde_json::to_string(&s.list_fallback_credentials().expect("lists")).expect("serialises");
    assert_eq!(listed, r#"[[{"profile":"sales"},"ops"]]"#);
}

// ---------------------------------------------------------------------------------------
// Fallback credentials.

#[test]
fn a_fallback_credential_round_trips_and_is_removed() {
    let s = with_profiles(&["sales"]);
    assert!(listed(&s).is_empty());
    assert!(applying(&s, mac(1)).is_empty());
    set(&s, &global(), "admin");
    set(&s, &of("sales"), "admin");
    assert_eq!(listed(&s), [pair(global(), "admin"), pair(of("sales"), "admin")]);
    let unknown = s.fallback_credentials(mac(9)).expect("reads");
    assert_eq!(unknown, [FallbackCredential { scope: global(), username: "admin".into(), sealed: sealed("admin") }]);

    // Setting again replaces the secret, in its scope only.
    s.set_fallback_credential(&global(), "admin", Some(SECRET)).expect("replaces");
    assert_eq!(s.fallback_credentials(mac(9)).expect("reads")[0].sealed, SECRET);
    register(&s, mac(1), 1);
    assign(&s, mac(1), &["sales"]);
    let secrets: Vec<Vec<u8>> = s.fallback_credentials(mac(1)).expect("reads").into_iter().map(|c| c.sealed).collect();
    assert_eq!(secrets, [sealed("admin"), SECRET.to_vec()]);
    assert_eq!(listed(&s).len(), 2);

    // Removed once; then there is nothing to remove.
    s.set_fallback_credential(&global(), "admin", None).expect("removes");
    assert_eq!(listed(&s), [pair(of("sales"), "admin")]);
    assert_not_found(s.set_fallback_credential(&global(), "admin", None), "\"admin\"");
    assert_not_found(s.set_fallback_credential(&of("sales"), "Admin", None), "\"sales\"");
    s.set_fallback_credential(&of("sales"), "admin", None).expect("removes");
    assert!(listed(&s).is_empty());
    assert!(applying(&s, mac(1)).is_empty());

    // Opaque bytes, even none.
    s.set_fallback_credential(&global(), "empty", Some(&[])).expect("sets");
    assert_eq!(s.fallback_credentials(mac(1)).expect("reads")[0].sealed, Vec::<u8>::new());
}

#[test]
fn usernames_are_1_to_128_characters_without_control_characters() {
    let s = with_profiles(&["sales"]);
    for scope in [global(), of("sales")] {
        for sealed in [Some(SECRET), None] {
            assert_invalid(s.set_fallback_credential(&scope, "", sealed), "1 to 128");
            assert_invalid(s.set_fallback_credential(&scope, &"u".repeat(129), sealed), "1 to 128");
            assert_invalid(s.set_fallback_credential(&scope, &"é".repeat(129), sealed), "1 to 128");
            for bad in ["a\nb", "a\rb", "tab\t", "\0", "del\u{7f}", "c1\u{85}", "\u{1b}[31m"] {
                assert_invalid(s.set_fallback_credential(&scope, bad, sealed), "control");
            }
        }
    }
    assert!(listed(&s).is_empty(), "nothing stored");
    // Characters, not bytes: 128 two-byte characters fit. Anything else printable goes,
    // kept exactly as given.
    let long = "é".repeat(128);
    for username in [long.as_str(), "x", "Admin User", "o'brien \"q\" :;\\", "пользователь", "👤"] {
        set(&s, &global(), username);
    }
    assert_eq!(listed(&s).len(), 6);
    assert!(applying(&s, mac(1)).contains(&pair(global(), &long)));
    set(&s, &global(), "admin");
    set(&s, &global(), "ADMIN");
    assert_eq!(listed(&s).len(), 8, "usernames are case-sensitive");
}

#[test]
fn a_profile_scope_needs_the_profile() {
    let s = with_profiles(&["sales"]);
    for sealed in [Some(SECRET), None] {
        assert_invalid(s.set_fallback_credential(&of("nope"), "admin", sealed), "\"nope\"");
        assert_invalid(s.set_fallback_credential(&of(""), "admin", sealed), "\"\"");
        assert_invalid(s.set_fallback_credential(&of("Sales"), "admin", sealed), "\"Sales\"");
    }
    assert!(listed(&s).is_empty());
    // A profile replaced keeps its credentials.
    set(&s, &of("sales"), "admin");
    s.put_profile(&profile("sales", Some("OpenStage 60"), &[("a", None, "1")])).expect("replaces");
    assert_eq!(listed(&s), [pair(of("sales"), "admin")]);
}

#[test]
fn a_device_gets_its_profiles_credentials_in_assignment_order_then_the_global_ones() {
    let s = with_profiles(&["p1", "p2", "p3", "p4"]);
    set(&s, &global(), "g2");
    set(&s, &global(), "g1");
    set(&s, &of("p1"), "bob");
    set(&s, &of("p1"), "alice");
    set(&s, &of("p2"), "unassigned");
    set(&s, &of("p3"), "zed");
    set(&s, &of("p3"), "g1");
    // p4: none.
    let globals = [pair(global(), "g1"), pair(global(), "g2")];

    register(&s, mac(1), 1);
    assert_eq!(applying(&s, mac(1)), globals, "no profiles");
    assign(&s, mac(1), &["p3", "p4", "p1"]);
    let want = [
        pair(of("p3"), "g1"),
        pair(of("p3"), "zed"),
        pair(of("p1"), "alice"),
        pair(of("p1"), "bob"),
        pair(global(), "g1"),
        pair(global(), "g2"),
    ];
    assert_eq!(applying(&s, mac(1)), want);
    assign(&s, mac(1), &["p1", "p3"]);
    assert_eq!(
        applying(&s, mac(1))[..4],
        [pair(of("p1"), "alice"), pair(of("p1"), "bob"), pair(of("p3"), "g1"), pair(of("p3"), "zed")]
    );
    // Another device, and an unknown one.
    s.add_device(mac(2), &DeviceSpec { profiles: vec!["p2".into()], overrides: vec![], ..Default::default() }, AT)
        .expect("adds");
    assert_eq!(applying(&s, mac(2)), [pair(of("p2"), "unassigned"), globals[0].clone(), globals[1].clone()]);
    assert_eq!(applying(&s, mac(9)), globals);
    // A deleted device is unknown again.
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert_eq!(applying(&s, mac(1)), globals);
}

#[test]
fn the_listing_is_ordered_by_scope_then_username() {
    let s = with_profiles(&["b-prof", "a-prof", "Z-prof"]);
    let all = [
        pair(of("b-prof"), "x"),
        pair(global(), "zed"),
        pair(of("a-prof"), "émile"),
        pair(of("a-prof"), "Zoe"),
        pair(of("Z-prof"), "x"),
        pair(global(), "Admin"),
        pair(of("a-prof"), "alice"),
        pair(global(), "admin"),
    ];
    for (scope, username) in &all {
        set(&s, scope, username);
    }
    let mut want = all.to_vec();
    want.sort();
    assert_eq!(want[..3], [pair(global(), "Admin"), pair(global(), "admin"), pair(global(), "zed")]);
    assert_eq!(listed(&s), want, "as CredentialScope and str order them");
    // Within a profile, a device sees them in the same order.
    register(&s, mac(1), 1);
    assign(&s, mac(1), &["a-prof"]);
    assert_eq!(applying(&s, mac(1))[..3], want[4..7]);
}

#[test]
fn deleting_a_profile_deletes_its_credentials() {
    let s = with_profiles(&["sales", "support"]);
    set(&s, &of("sales"), "a");
    set(&s, &of("sales"), "b");
    set(&s, &of("support"), "a");
    set(&s, &global(), "a");
    s.add_device(
        mac(1),
        &DeviceSpec { profiles: vec!["sales".into(), "support".into()], overrides: vec![], ..Default::default() },
        AT,
    )
    .expect("adds");
    assert_eq!(applying(&s, mac(1)).len(), 4);

    assert!(s.delete_profile("sales").expect("deletes"));
    assert_eq!(listed(&s), [pair(global(), "a"), pair(of("support"), "a")]);
    assert_eq!(applying(&s, mac(1)), [pair(of("support"), "a"), pair(global(), "a")]);
    assert_invalid(s.set_fallback_credential(&of("sales"), "a", None), "\"sales\"");
    // Created again, it starts without any.
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    assert_eq!(listed(&s).len(), 2);
    assert_not_found(s.set_fallback_credential(&of("sales"), "a", None), "fallback credential");
    // Deleting a missing profile touches nothing.
    assert!(!s.delete_profile("nope").expect("deletes"));
    assert_eq!(listed(&s).len(), 2);
}
