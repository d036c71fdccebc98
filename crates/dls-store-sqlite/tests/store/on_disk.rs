//! Secrets overwritten in the file, and rows damaged or changed behind the store's back.

use dls_store::traits::*;
use std::path::Path;

use dls_engine::{AuditKind, Change, Security, SecurityMode, UnixTime};
use dls_store::{SecuritySummary, StoreError};

use crate::conformance::credentials::{SECRET, global, of, pair};
use crate::conformance::security::{
    OTHER_PIN, PIN, certificates, event, issue, kinds, new_pin, sealed, security, set_mode, summary,
};
use crate::conformance::{AT, contact, profile};

use crate::conformance::{mac, register};
use crate::{file_store, raw};

#[test]
fn a_deleted_secret_is_gone_from_the_file() {
    let (_dir, path, s) = file_store();
    let secret_of = |n: u8| format!("SEALED-SECRET-OF-DEVICE-{n}-b7e2").into_bytes();
    for n in 1..=3 {
        register(&s, mac(n), 1);
        s.set_device_secret(mac(n), Some(&secret_of(n))).expect("sets");
    }
    s.put_profile(&profile("sales", None, &[])).expect("puts");
    s.set_fallback_credential(&of("sales"), "ops", Some(b"SEALED-FALLBACK-PROFILE-91c3")).expect("sets");
    s.set_fallback_credential(&global(), "ops", Some(b"SEALED-FALLBACK-GLOBAL-2f0d")).expect("sets");
    let checkpoint = || raw(&path).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoints");
    let in_file = |needle: &[u8]| std::fs::read(&path).expect("reads").windows(needle.len()).any(|w| w == needle);
    checkpoint();
    assert!((1..=3).all(|n| in_file(&secret_of(n))), "written");
    assert!(in_file(b"SEALED-FALLBACK-PROFILE-91c3") && in_file(b"SEALED-FALLBACK-GLOBAL-2f0d"), "written");
    // Every way one is removed.
    s.set_device_secret(mac(1), None).expect("clears");
    assert!(s.delete_device(mac(2)).expect("deletes"));
    assert!(s.delete_profile("sales").expect("deletes"));
    s.set_fallback_credential(&global(), "ops", None).expect("removes");
    checkpoint();
    assert!(!in_file(&secret_of(1)), "cleared");
    assert!(!in_file(&secret_of(2)), "deleted with the device");
    assert!(!in_file(b"SEALED-FALLBACK-PROFILE-91c3"), "deleted with the profile");
    assert!(!in_file(b"SEALED-FALLBACK-GLOBAL-2f0d"), "removed");
    assert!(in_file(&secret_of(3)), "kept");
}

#[test]
fn damaged_credential_rows_are_corrupt_not_panics() {
    let (_dir, path, s) = file_store();
    register(&s, mac(1), 1);
    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    let damage = |sql: &str| raw(&path).execute_batch(sql).expect("damages");
    let assert_corrupt = |what: &str| {
        let listing = s.list_fallback_credentials();
        assert!(matches!(listing, Err(StoreError::Corrupt(_))), "{what}: {listing:?}");
        let applying = s.fallback_credentials(mac(1));
        assert!(matches!(applying, Err(StoreError::Corrupt(_))), "{what}: {applying:?}");
    };
    damage("INSERT INTO fallback_credentials VALUES ('everyone', '', 'a', x'00')");
    let listing = s.list_fallback_credentials();
    assert!(matches!(listing, Err(StoreError::Corrupt(_))), "kind: {listing:?}");
    // A device's credentials are those of its profiles and the global ones: it reads no other.
    assert!(s.fallback_credentials(mac(1)).expect("reads").is_empty());
    damage("UPDATE fallback_credentials SET scope_kind = 'global', profile = 'sales'");
    assert_corrupt("global with a profile");
    damage("UPDATE fallback_credentials SET profile = '', username = x'ff'");
    assert_corrupt("blob username");
    damage("UPDATE fallback_credentials SET username = 'a', sealed = 'text'");
    let applying = s.fallback_credentials(mac(1));
    assert!(matches!(applying, Err(StoreError::Corrupt(_))), "text secret: {applying:?}");
    assert_eq!(s.list_fallback_credentials().expect("lists, without secrets"), [pair(global(), "a")]);
    damage("DELETE FROM fallback_credentials");
    assert!(s.list_fallback_credentials().expect("lists").is_empty());

    damage("UPDATE device_secrets SET sealed = 'text'");
    assert!(matches!(s.device_secret(mac(1)), Err(StoreError::Corrupt(_))));
    damage("UPDATE device_secrets SET sealed = x'0102'");
    assert_eq!(s.device_secret(mac(1)).expect("reads"), Some(vec![1, 2]));
}

/// `(serial, revoked_at, revoke_reason)` of every certificate, in order of issue.
pub(crate) fn revocations(path: &Path) -> Vec<(String, Option<i64>, Option<String>)> {
    let c = raw(path);
    let mut stmt = c.prepare("SELECT serial, revoked_at, revoke_reason FROM certificates ORDER BY seq").expect("sql");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

#[test]
fn security_reset_returns_the_device_to_not_bootstrapped_and_keeps_its_mode() {
    let (_dir, path, s) = file_store();
    // A pin device, bootstrapped with its second certificate (the first one superseded).
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(10)]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues a PIN");
    s.apply(mac(1), &[issue(20, "A1"), issue(21, "A2"), Change::TanFailed]).expect("issues");
    s.apply(mac(1), &[Change::Bootstrapped { at: UnixTime(30) }, Change::TanFailed]).expect("bootstraps");
    assert_eq!(security(&s, mac(1)).tan_failures, 1);
    // The factory reset: the change and its audit records, in one batch.
    s.apply(
        mac(1),
        &[
            Change::SecurityReset { at: UnixTime(50) },
            event(50, AuditKind::DeviceReset, "factory-reset job 9 accepted"),
            event(50, AuditKind::CertificateRevoked, "serial A2: factory reset (job 9)"),
        ],
    )
    .expect("resets");
    assert_eq!(security(&s, mac(1)), Security { mode: SecurityMode::Pin, ..Security::default() });
    assert_eq!(summary(&s, mac(1)), SecuritySummary { mode: SecurityMode::Pin, ..SecuritySummary::default() });
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
    assert_eq!(
        revocations(&path),
        vec![("A1".into(), Some(21), Some("superseded".into())), ("A2".into(), Some(50), Some("factory-reset".into()))]
    );
    assert_eq!(kinds(&s, mac(1))[1..], [AuditKind::DeviceReset, AuditKind::CertificateRevoked]);

    // A nopin device that was not bootstrapped yet but had a certificate and an outstanding
    // PIN (left from an earlier mode): the PIN is wiped too, the mode stays.
    s.apply(mac(2), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
    s.update_security(mac(2), &new_pin(PIN), AT).expect("issues a PIN");
    s.apply(mac(2), &[issue(60, "B1")]).expect("issues");
    raw(&path).execute_batch("UPDATE devices SET security_mode = 'nopin' WHERE mac = '0001E325EA02'").expect("mode");
    assert!(summary(&s, mac(2)).pin_outstanding);
    s.apply(mac(2), &[Change::SecurityReset { at: UnixTime(70) }]).expect("resets");
    assert_eq!(security(&s, mac(2)), Security { mode: SecurityMode::Nopin, ..Security::default() });
    assert!(!summary(&s, mac(2)).pin_outstanding);
    assert_eq!(certificates(&s, mac(2)), vec![("B1".into(), Some(70))]);
    // The other device is untouched, and a second reset has nothing left to revoke.
    assert_eq!(security(&s, mac(1)).mode, SecurityMode::Pin);
    s.apply(mac(2), &[Change::SecurityReset { at: UnixTime(80) }]).expect("resets again");
    assert_eq!(certificates(&s, mac(2)), vec![("B1".into(), Some(70))]);
}

#[test]
fn a_certificate_revoked_behind_the_stores_back_is_not_current() {
    let (_dir, path, s) = file_store();
    register(&s, mac(1), 1);
    s.apply(mac(1), &[issue(10, "AA")]).expect("issues");
    raw(&path).execute_batch("UPDATE certificates SET revoked_at = 11").expect("revokes");
    assert_eq!(security(&s, mac(1)).certificate, None);
    assert_eq!(summary(&s, mac(1)).certificate, None);
    // Nor one of another device's.
    register(&s, mac(2), 1);
    raw(&path).execute_batch("UPDATE certificates SET revoked_at = NULL, mac = '0001E325EA02'").expect("moves");
    assert_eq!(security(&s, mac(1)).certificate, None);
}

#[test]
fn a_wiped_pin_is_gone_from_the_file() {
    let (_dir, path, s) = file_store();
    let pin_of = |n: u8| format!("91827364505{n}");
    for n in 1..=6 {
        s.apply(mac(n), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
        s.update_security(mac(n), &new_pin(&pin_of(n)), AT).expect("issues");
    }
    let checkpoint = || raw(&path).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoints");
    let in_file = |pin: &str| {
        let kept = sealed(pin);
        let bytes = std::fs::read(&path).expect("reads");
        assert!(!bytes.windows(pin.len()).any(|w| w == pin.as_bytes()), "never in clear");
        bytes.windows(kept.len()).any(|w| w == kept.as_slice())
    };
    checkpoint();
    assert!((1..=6).all(|n| in_file(&pin_of(n))), "written");
    // Every way a PIN is wiped.
    s.apply(mac(1), &[Change::Bootstrapped { at: UnixTime(1) }]).expect("bootstraps");
    s.apply(mac(2), &[Change::BootstrapFailed { at: UnixTime(1), revoke_certificate: false }]).expect("fails");
    s.update_security(mac(3), &set_mode(SecurityMode::Default), AT).expect("updates");
    s.update_security(mac(4), &new_pin(OTHER_PIN), AT).expect("replaces");
    assert!(s.delete_device(mac(5)).expect("deletes"));
    // The pages that held them are overwritten, with the old cells zeroed (`secure_delete`).
    checkpoint();
    for n in 1..=5 {
        assert!(!in_file(&pin_of(n)), "the PIN of device {n} is still in the file");
    }
    assert!(in_file(&pin_of(6)) && in_file(OTHER_PIN), "outstanding");
}

#[test]
fn damaged_security_rows_are_corrupt_not_panics() {
    let (_dir, path, s) = file_store();
    register(&s, mac(1), 1);
    let damage = |sql: &str| raw(&path).execute_batch(sql).expect("damages");
    let assert_corrupt = |what: &str| {
        let load = s.load_device(mac(1));
        assert!(matches!(load, Err(StoreError::Corrupt(_))), "{what}: {load:?}");
        let read = s.device(mac(1));
        assert!(matches!(read, Err(StoreError::Corrupt(_))), "{what}: {read:?}");
    };
    damage("UPDATE devices SET security_mode = 'paranoid'");
    assert_corrupt("mode");
    damage("UPDATE devices SET security_mode = 'pin', bootstrap_state = 'bootstrapped'");
    assert_corrupt("state");
    damage("UPDATE devices SET bootstrap_state = 'secured', tan_failures = -1");
    assert_corrupt("negative failures");
    damage("UPDATE devices SET tan_failures = 4294967296");
    assert_corrupt("failures");
    damage("UPDATE devices SET tan_failures = 0, pin_issued_at = -1");
    assert_corrupt("issue time");
    damage("UPDATE devices SET pin_issued_at = 1, pin_sealed = 'text, not bytes'");
    assert!(matches!(s.pin(mac(1)), Err(StoreError::Corrupt(_))));
    damage("UPDATE devices SET pin_sealed = x'00'");
    assert!(security(&s, mac(1)).pin_outstanding);

    // The failure count saturates.
    damage("UPDATE devices SET tan_failures = 4294967295");
    s.apply(mac(1), &[Change::TanFailed]).expect("applies");
    assert_eq!(security(&s, mac(1)).tan_failures, u32::MAX);

    damage("INSERT INTO audit (at, mac, kind, detail) VALUES (1, '0001E325EA01', 'tan-guessed', '')");
    assert!(matches!(s.audit(None, 10), Err(StoreError::Corrupt(_))));
    damage("UPDATE audit SET kind = 'tan-right', mac = 'nope'");
    assert!(matches!(s.audit(None, 10), Err(StoreError::Corrupt(_))));
    damage("UPDATE audit SET mac = '0001E325EA01', at = -3");
    assert!(matches!(s.audit(Some(mac(1)), 10), Err(StoreError::Corrupt(_))));
    damage("DELETE FROM audit");

    s.apply(mac(1), &[issue(1, "AB")]).expect("issues");
    damage("UPDATE certificates SET not_after = -1");
    assert!(matches!(s.certificates(mac(1)), Err(StoreError::Corrupt(_))));
}

/// Each revoked certificate is stored with why it was revoked (`RevokeReason`).
#[test]
fn revocations_are_stored_with_their_reason() {
    let (_dir, path, s) = file_store();
    register(&s, mac(1), 1);
    s.apply(mac(1), &[issue(10, "A1"), issue(11, "A2")]).expect("issues");
    s.apply(mac(1), &[Change::BootstrapFailed { at: UnixTime(12), revoke_certificate: true }]).expect("fails");
    s.apply(mac(1), &[issue(13, "A3")]).expect("issues");
    s.update_security(mac(1), &dls_store::SecurityUpdate { reset: true, ..Default::default() }, UnixTime(14))
        .expect("resets");
    s.apply(mac(1), &[issue(15, "A4")]).expect("issues");
    s.apply(mac(1), &[Change::SecurityReset { at: UnixTime(16) }]).expect("resets");
    s.apply(mac(1), &[issue(17, "A5")]).expect("issues");
    assert_eq!(
        revocations(&path),
        vec![
            ("A1".into(), Some(11), Some("superseded".into())),
            ("A2".into(), Some(12), Some("bootstrap-failed".into())),
            ("A3".into(), Some(14), Some("reset".into())),
            ("A4".into(), Some(16), Some("factory-reset".into())),
            ("A5".into(), None, None),
        ]
    );
}
