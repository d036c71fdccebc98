//! Secure mode: the security changes, `update_security`, the PIN, certificates, the audit
//! log, and the upgrade of a schema-1 database.

use dls_engine::{
    AuditEvent, AuditKind, BootstrapState, Change, DeviceSnapshot, IssuedCertificate, Security, SecurityMode, UnixTime,
};
use dls_message::MacAddr;
use dls_store::traits::*;
use dls_store::{AuditRecord, DeviceSpec, EventKind, SecuritySummary, SecurityUpdate, StoreError};

use super::{AT, contact, mac, register, store};

pub(crate) const PIN: &str = "918273645051";
pub(crate) const OTHER_PIN: &str = "564738291000777";

/// A stand-in for the caller's sealing of a PIN (the store keeps opaque bytes): no digit
/// of it survives.
pub(crate) fn sealed(digits: &str) -> Vec<u8> {
    let mut v = b"sealed:".to_vec();
    v.extend(digits.bytes().map(|b| b ^ 0x5A));
    v
}

pub(crate) fn new_pin(digits: &str) -> SecurityUpdate {
    SecurityUpdate { new_pin: Some(sealed(digits)), ..SecurityUpdate::default() }
}

pub(crate) fn set_mode(mode: SecurityMode) -> SecurityUpdate {
    SecurityUpdate { mode: Some(mode), ..SecurityUpdate::default() }
}

pub(crate) fn reset() -> SecurityUpdate {
    SecurityUpdate { reset: true, ..SecurityUpdate::default() }
}

pub(crate) fn issue(at: u64, serial: &str) -> Change {
    Change::IssueCertificate {
        at: UnixTime(at),
        certificate: IssuedCertificate { serial: serial.into(), not_after: UnixTime(at + 1000) },
    }
}

pub(crate) fn event(at: u64, kind: AuditKind, detail: &str) -> Change {
    Change::Audit(AuditEvent { at: UnixTime(at), kind, detail: detail.into() })
}

pub(crate) fn security(s: &dyn Store, mac: MacAddr) -> Security {
    s.load_device(mac).expect("loads").security
}

pub(crate) fn summary(s: &dyn Store, mac: MacAddr) -> SecuritySummary {
    s.device(mac).expect("reads").expect("exists").security
}

/// The audit log of a device, oldest first, as (kind, detail).
pub(crate) fn log(s: &dyn Store, mac: MacAddr) -> Vec<(AuditKind, String)> {
    let mut records = s.audit(Some(mac), 10_000).expect("audit");
    records.reverse();
    records
        .into_iter()
        .map(|r| match r.kind {
            EventKind::Security(kind) => (kind, r.detail),
            other => panic!("an administrative record among a device's security events: {other:?}"),
        })
        .collect()
}

pub(crate) fn kinds(s: &dyn Store, mac: MacAddr) -> Vec<AuditKind> {
    log(s, mac).into_iter().map(|(k, _)| k).collect()
}

/// (serial, revoked) of a device's certificates, newest first.
pub(crate) fn certificates(s: &dyn Store, mac: MacAddr) -> Vec<(String, Option<u64>)> {
    s.certificates(mac).expect("certificates").into_iter().map(|c| (c.serial, c.revoked_at.map(|t| t.0))).collect()
}

/// A device in `pin` mode that bootstrapped with certificate `serial`.
pub(crate) fn secured(s: &dyn Store, mac: MacAddr, serial: &str) {
    s.apply(mac, &[Change::Register { mode: SecurityMode::Pin }, contact(10)]).expect("registers");
    s.update_security(mac, &new_pin(PIN), AT).expect("issues a PIN");
    s.apply(mac, &[issue(20, serial)]).expect("issues");
    s.apply(mac, &[Change::Bootstrapped { at: UnixTime(30) }]).expect("bootstraps");
}

pub(crate) fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, want: &str) {
    match r {
        Err(StoreError::Invalid(m)) => assert!(m.contains(want), "{m:?} should contain {want:?}"),
        other => panic!("want Invalid({want:?}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The changes.

#[test]
fn register_sets_the_mode_of_a_new_device_only() {
    let s = store();
    s.apply(mac(1), &[contact(5), Change::Register { mode: SecurityMode::Pin }]).expect("registers");
    assert_eq!(security(&s, mac(1)), Security { mode: SecurityMode::Pin, ..Security::default() });
    assert_eq!(summary(&s, mac(1)), SecuritySummary { mode: SecurityMode::Pin, ..SecuritySummary::default() });
    // Registering a known device (a race of two first contacts) changes nothing.
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Nopin }]).expect("applies");
    assert_eq!(security(&s, mac(1)).mode, SecurityMode::Pin);
    // The first Register of a batch counts.
    s.apply(mac(2), &[Change::Register { mode: SecurityMode::Nopin }, Change::Register { mode: SecurityMode::Pin }])
        .expect("registers");
    assert_eq!(security(&s, mac(2)).mode, SecurityMode::Nopin);
    // Added by an administrator, and unknown: default.
    s.add_device(mac(3), &DeviceSpec::default(), AT).expect("adds");
    assert_eq!(security(&s, mac(3)), Security::default());
    assert_eq!(summary(&s, mac(3)), SecuritySummary::default());
    assert_eq!(security(&s, mac(4)), Security::default());
}

#[test]
fn an_issued_certificate_is_current_and_supersedes_the_previous() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    assert_eq!(security(&s, mac(1)).certificate, None);
    s.apply(mac(1), &[issue(100, "0A1B")]).expect("issues");
    assert_eq!(security(&s, mac(1)).certificate.as_deref(), Some("0A1B"));
    assert_eq!(summary(&s, mac(1)).certificate.as_deref(), Some("0A1B"));
    let records = s.certificates(mac(1)).expect("certificates");
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].mac, records[0].issued_at, records[0].not_after, records[0].revoked_at),
        (mac(1), UnixTime(100), UnixTime(1100), None)
    );

    // The next one: the first is revoked, at the time of the second. Newest first, even
    // with a clock that went back.
    s.apply(mac(1), &[issue(90, "FF00")]).expect("issues");
    assert_eq!(security(&s, mac(1)).certificate.as_deref(), Some("FF00"));
    assert_eq!(certificates(&s, mac(1)), vec![("FF00".into(), None), ("0A1B".into(), Some(90))]);
    // Two in one batch: only the last is current.
    s.apply(mac(1), &[issue(200, "01"), issue(201, "02")]).expect("issues");
    assert_eq!(security(&s, mac(1)).certificate.as_deref(), Some("02"));
    assert_eq!(
        certificates(&s, mac(1)),
        vec![("02".into(), None), ("01".into(), Some(201)), ("FF00".into(), Some(200)), ("0A1B".into(), Some(90))]
    );
    // Per device.
    assert!(s.certificates(mac(2)).expect("certificates").is_empty());
    assert!(s.certificates(mac(9)).expect("certificates").is_empty());
    assert_eq!(security(&s, mac(2)).certificate, None);
}

#[test]
fn a_certificate_serial_is_unique_and_upper_case_hex() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(1), &[issue(1, "ABCDEF0123456789")]).expect("issues");
    for device in [mac(1), mac(2)] {
        let err = s.apply(device, &[issue(2, "ABCDEF0123456789")]).expect_err("taken");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    }
    for bad in ["", "abcdef", "0x12", "12 34", "G1", &"A".repeat(65)] {
        assert_invalid(s.apply(mac(2), &[issue(2, bad)]), "serial");
    }
    s.apply(mac(2), &[issue(2, &"9".repeat(64))]).expect("64 digits are fine");
    // Times SQLite cannot hold.
    let far = Change::IssueCertificate {
        at: UnixTime(3),
        certificate: IssuedCertificate { serial: "77".into(), not_after: UnixTime(u64::MAX) },
    };
    assert_invalid(s.apply(mac(2), &[far]), "out of range");
    assert_invalid(s.apply(mac(2), &[issue(u64::MAX - 2000, "78")]), "out of range");
    // Nothing of the refused ones was kept.
    assert_eq!(certificates(&s, mac(1)), vec![("ABCDEF0123456789".into(), None)]);
    assert_eq!(certificates(&s, mac(2)), vec![("9".repeat(64), None)]);
}

#[test]
fn tan_failures_count_and_bootstrapped_wipes_the_pin() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(10)]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    let sec = security(&s, mac(1));
    assert!(sec.pin_outstanding);
    assert_eq!(sec.pin_issued_at, Some(AT), "the time is the one passed in");
    s.apply(mac(1), &[Change::TanFailed]).expect("applies");
    s.apply(mac(1), &[Change::TanFailed, Change::TanFailed]).expect("applies");
    let sec = security(&s, mac(1));
    assert_eq!(sec.tan_failures, 3);
    assert!(sec.pin_outstanding);
    let sum = summary(&s, mac(1));
    assert!(sum.pin_outstanding);
    assert_eq!((sum.tan_failures, sum.pin_issued_at, sum.state), (3, Some(AT), BootstrapState::NotBootstrapped));
    assert_eq!(s.pin(mac(1)).expect("reads"), Some(sealed(PIN)));

    s.apply(mac(1), &[issue(40, "C0FFEE"), Change::Bootstrapped { at: UnixTime(41) }]).expect("bootstraps");
    assert_eq!(
        security(&s, mac(1)),
        Security {
            mode: SecurityMode::Pin,
            state: BootstrapState::Secured,
            pin_outstanding: false,
            pin_issued_at: None,
            tan_failures: 0,
            certificate: Some("C0FFEE".into()),
            pending: None,
        }
    );
    assert_eq!(
        summary(&s, mac(1)),
        SecuritySummary {
            mode: SecurityMode::Pin,
            state: BootstrapState::Secured,
            pin_outstanding: false,
            pin_issued_at: None,
            tan_failures: 0,
            certificate: Some("C0FFEE".into()),
        }
    );
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
}

#[test]
fn bootstrap_failed_wipes_the_pin_and_may_revoke() {
    let s = store();
    for n in [1, 2] {
        s.apply(mac(n), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
        s.update_security(mac(n), &new_pin(PIN), AT).expect("issues");
        s.apply(mac(n), &[issue(10, &format!("{n}0")), Change::TanFailed]).expect("applies");
    }
    // Without revocation: the certificate stays current; the failures stay counted.
    s.apply(mac(1), &[Change::BootstrapFailed { at: UnixTime(50), revoke_certificate: false }]).expect("fails");
    let sec = security(&s, mac(1));
    assert_eq!(
        (sec.state, sec.pin_outstanding, sec.pin_issued_at, sec.tan_failures, sec.certificate.as_deref()),
        (BootstrapState::Failed, false, None, 1, Some("10"))
    );
    assert!(!summary(&s, mac(1)).pin_outstanding);
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
    // With: revoked at the failure, and no longer current.
    s.apply(mac(2), &[Change::BootstrapFailed { at: UnixTime(60), revoke_certificate: true }]).expect("fails");
    let sec = security(&s, mac(2));
    assert_eq!((sec.state, sec.pin_outstanding, sec.certificate), (BootstrapState::Failed, false, None));
    assert_eq!(summary(&s, mac(2)).certificate, None);
    assert_eq!(certificates(&s, mac(2)), vec![("20".into(), Some(60))]);
    // Nothing to revoke is fine.
    s.apply(mac(2), &[Change::BootstrapFailed { at: UnixTime(70), revoke_certificate: true }]).expect("fails");
    assert_eq!(certificates(&s, mac(2)), vec![("20".into(), Some(60))]);
}

#[test]
fn a_security_reset_in_a_failing_batch_changes_nothing() {
    let s = store();
    secured(&s, mac(1), "C1");
    let before = (security(&s, mac(1)), certificates(&s, mac(1)), log(&s, mac(1)));
    let r = s.apply(
        mac(1),
        &[
            Change::SecurityReset { at: UnixTime(50) },
            event(50, AuditKind::DeviceReset, "factory reset"),
            Change::SecurityReset { at: UnixTime(u64::MAX) },
        ],
    );
    assert!(r.is_err(), "{r:?}");
    assert_eq!((security(&s, mac(1)), certificates(&s, mac(1)), log(&s, mac(1))), before);
    assert_eq!(security(&s, mac(1)).state, BootstrapState::Secured);
}

#[test]
fn audit_events_are_kept_newest_first() {
    let s = store();
    register(&s, mac(1), 1);
    register(&s, mac(2), 1);
    s.apply(mac(1), &[event(10, AuditKind::BootstrapSent, "certificate AA"), event(11, AuditKind::TanWrong, "1 of 3")])
        .expect("applies");
    s.apply(mac(2), &[event(5, AuditKind::DefaultPortRefused, "")]).expect("applies");
    s.apply(mac(1), &[event(12, AuditKind::Bootstrapped, "certificate AA")]).expect("applies");

    let all = s.audit(None, 100).expect("audit");
    let got: Vec<(u64, MacAddr, AuditKind)> = all
        .iter()
        .filter_map(|r| match r.kind {
            EventKind::Security(kind) => Some((r.at.0, r.mac?, kind)),
            EventKind::Admin(_) => None,
        })
        .collect();
    // By order of writing, not by time.
    assert_eq!(
        got,
        vec![
            (12, mac(1), AuditKind::Bootstrapped),
            (5, mac(2), AuditKind::DefaultPortRefused),
            (11, mac(1), AuditKind::TanWrong),
            (10, mac(1), AuditKind::BootstrapSent),
        ]
    );
    let two: Vec<AuditRecord> = s.audit(Some(mac(1)), 2).expect("audit");
    let ids = [two[0].id, two[1].id];
    assert!(ids[0] > ids[1], "{ids:?}");
    assert_eq!(
        two,
        vec![
            AuditRecord {
                id: ids[0],
                at: UnixTime(12),
                actor: None,
                mac: Some(mac(1)),
                kind: AuditKind::Bootstrapped.into(),
                detail: "certificate AA".into()
            },
            AuditRecord {
                id: ids[1],
                at: UnixTime(11),
                actor: None,
                mac: Some(mac(1)),
                kind: AuditKind::TanWrong.into(),
                detail: "1 of 3".into()
            },
        ]
    );
    assert_eq!(s.audit(Some(mac(2)), 100).expect("audit").len(), 1);
    assert!(s.audit(Some(mac(3)), 100).expect("audit").is_empty());
    assert!(s.audit(None, 0).expect("audit").is_empty());
    // Out of range: refused with the rest of the batch.
    assert_invalid(s.apply(mac(1), &[event(1, AuditKind::TanRight, ""), event(u64::MAX, AuditKind::TanRight, "")]), "");
    assert_eq!(s.audit(None, 100).expect("audit").len(), 4);
}

#[test]
fn audit_listings_are_capped() {
    let s = store();
    register(&s, mac(1), 1);
    let batch: Vec<Change> = (0..10_005).map(|n| event(n, AuditKind::TanWrong, "")).collect();
    s.apply(mac(1), &batch).expect("applies");
    for m in [None, Some(mac(1))] {
        let records = s.audit(m, usize::MAX).expect("audit");
        assert_eq!(records.len(), 10_000);
        assert_eq!((records[0].at, records[9_999].at), (UnixTime(10_004), UnixTime(5)));
    }
}

// ---------------------------------------------------------------------------------------
// update_security.

#[test]
fn update_security_of_an_unknown_device_is_not_found() {
    let s = store();
    for update in [SecurityUpdate::default(), reset(), set_mode(SecurityMode::Pin), new_pin(PIN)] {
        let err = s.update_security(mac(1), &update, AT).expect_err("unknown");
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
    assert!(s.audit(None, 100).expect("audit").is_empty());
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
}

#[test]
fn a_sealed_pin_is_opaque_but_bounded() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
    for bad in [vec![], vec![7; 1025]] {
        // Also with a reset and a mode change in the same update: none of it happens.
        let update = SecurityUpdate { mode: Some(SecurityMode::Nopin), reset: true, new_pin: Some(bad), actor: None };
        assert_invalid(s.update_security(mac(1), &update, AT), "sealed PIN");
    }
    assert_eq!(security(&s, mac(1)), Security { mode: SecurityMode::Pin, ..Security::default() });
    assert!(s.audit(None, 100).expect("audit").is_empty());
    // The limits themselves are fine, and any bytes are kept as they are.
    for ok in [vec![0], vec![0xFF; 1024], b"x\0y".to_vec()] {
        s.update_security(mac(1), &SecurityUpdate { new_pin: Some(ok.clone()), ..SecurityUpdate::default() }, AT)
            .expect("issues");
        assert_eq!(s.pin(mac(1)).expect("reads"), Some(ok));
    }
    assert!(security(&s, mac(1)).pin_outstanding);
}

#[test]
fn a_new_pin_replaces_the_outstanding_one_and_clears_failures() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[Change::TanFailed, Change::TanFailed]).expect("applies");
    s.update_security(mac(1), &new_pin(OTHER_PIN), AT).expect("issues");
    let sec = security(&s, mac(1));
    assert_eq!((sec.pin_outstanding, sec.tan_failures), (true, 0));
    assert_eq!(s.pin(mac(1)).expect("reads"), Some(sealed(OTHER_PIN)));
    assert_eq!(
        log(&s, mac(1)),
        vec![
            (AuditKind::PinIssued, "PIN issued".into()),
            (AuditKind::PinIssued, "PIN issued, replacing the outstanding one".into())
        ]
    );
}

#[test]
fn a_failed_device_may_retry_with_a_new_pin() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[Change::TanFailed, Change::BootstrapFailed { at: UnixTime(9), revoke_certificate: true }])
        .expect("fails");
    assert_eq!(security(&s, mac(1)).state, BootstrapState::Failed);
    s.update_security(mac(1), &new_pin(OTHER_PIN), AT).expect("issues");
    let sec = security(&s, mac(1));
    assert_eq!((sec.state, sec.pin_outstanding, sec.tan_failures), (BootstrapState::NotBootstrapped, true, 0));
}

#[test]
fn a_secured_device_needs_a_reset_before_a_new_pin() {
    let s = store();
    secured(&s, mac(1), "5EC");
    let before = (s.load_device(mac(1)).expect("loads"), s.device(mac(1)).expect("reads"), log(&s, mac(1)));
    for update in [new_pin(OTHER_PIN), SecurityUpdate { mode: Some(SecurityMode::Nopin), ..new_pin(OTHER_PIN) }] {
        match s.update_security(mac(1), &update, AT) {
            Err(StoreError::Invalid(m)) => assert_eq!(m, "device is bootstrapped; reset it first"),
            other => panic!("{other:?}"),
        }
    }
    // Nothing changed, nothing audited (the mode change of the refused update neither).
    assert_eq!((s.load_device(mac(1)).expect("loads"), s.device(mac(1)).expect("reads"), log(&s, mac(1))), before);

    // With a reset: the certificate is revoked, and the new PIN issued.
    let t0 = UnixTime(AT.0 + 60);
    s.update_security(mac(1), &SecurityUpdate { reset: true, ..new_pin(OTHER_PIN) }, t0).expect("resets");
    let sec = security(&s, mac(1));
    assert_eq!(
        (sec.mode, sec.state, sec.pin_outstanding, sec.certificate),
        (SecurityMode::Pin, BootstrapState::NotBootstrapped, true, None)
    );
    let revoked = s.certificates(mac(1)).expect("certificates")[0].revoked_at.expect("revoked").0;
    assert_eq!(revoked, t0.0);
    assert_eq!(
        log(&s, mac(1)),
        vec![
            (AuditKind::PinIssued, "PIN issued".into()),
            (AuditKind::DeviceReset, "reset to not-bootstrapped (was secured)".into()),
            (AuditKind::CertificateRevoked, "certificate 5EC revoked: reset".into()),
            (AuditKind::PinIssued, "PIN issued".into()),
        ]
    );
    // The records of one update share their time.
    let times: Vec<u64> = s.audit(Some(mac(1)), 3).expect("audit").iter().map(|r| r.at.0).collect();
    assert_eq!(times, vec![t0.0; 3]);
}

#[test]
fn reset_then_mode_then_pin_in_one_update() {
    let s = store();
    secured(&s, mac(1), "5EC");
    s.apply(mac(1), &[Change::TanFailed]).expect("applies");
    let update = SecurityUpdate { mode: Some(SecurityMode::Nopin), reset: true, ..new_pin(OTHER_PIN) };
    s.update_security(mac(1), &update, AT).expect("updates");
    assert_eq!(
        kinds(&s, mac(1))[1..],
        [AuditKind::DeviceReset, AuditKind::CertificateRevoked, AuditKind::ModeChanged, AuditKind::PinIssued]
    );
    assert_eq!(log(&s, mac(1))[3].1, "from pin to nopin");
    let sec = security(&s, mac(1));
    assert_eq!(
        (sec.mode, sec.state, sec.pin_outstanding, sec.tan_failures, sec.certificate),
        (SecurityMode::Nopin, BootstrapState::NotBootstrapped, true, 0, None)
    );
}

#[test]
fn reset_without_a_certificate_and_an_empty_update() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Nopin }]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[Change::TanFailed, Change::BootstrapFailed { at: UnixTime(5), revoke_certificate: false }])
        .expect("fails");
    s.update_security(mac(1), &reset(), AT).expect("resets");
    assert_eq!(log(&s, mac(1))[1..], [(AuditKind::DeviceReset, "reset to not-bootstrapped (was failed)".into())]);
    assert_eq!(security(&s, mac(1)), Security { mode: SecurityMode::Nopin, ..Security::default() });
    // Nothing asked, nothing done.
    s.update_security(mac(1), &SecurityUpdate::default(), AT).expect("updates");
    assert_eq!(kinds(&s, mac(1)).len(), 2);
}

#[test]
fn mode_changes_are_audited_and_default_wipes_the_pin() {
    let s = store();
    register(&s, mac(1), 1);
    // The same mode: nothing to record.
    s.update_security(mac(1), &set_mode(SecurityMode::Default), AT).expect("updates");
    assert!(log(&s, mac(1)).is_empty());
    s.update_security(mac(1), &set_mode(SecurityMode::Pin), AT).expect("updates");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[Change::TanFailed]).expect("applies");
    // To nopin: the PIN stays.
    s.update_security(mac(1), &set_mode(SecurityMode::Nopin), AT).expect("updates");
    assert!(summary(&s, mac(1)).pin_outstanding);
    // To default: the PIN is wiped.
    s.update_security(mac(1), &set_mode(SecurityMode::Default), AT).expect("updates");
    let sum = summary(&s, mac(1));
    assert_eq!(
        (sum.mode, sum.pin_outstanding, sum.pin_issued_at, sum.tan_failures),
        (SecurityMode::Default, false, None, 1)
    );
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
    assert!(!security(&s, mac(1)).pin_outstanding);
    // Without a PIN, nothing to say about one.
    s.update_security(mac(1), &set_mode(SecurityMode::Pin), AT).expect("updates");
    s.update_security(mac(1), &set_mode(SecurityMode::Default), AT).expect("updates");
    assert_eq!(
        log(&s, mac(1)),
        vec![
            (AuditKind::ModeChanged, "from default to pin".into()),
            (AuditKind::PinIssued, "PIN issued".into()),
            (AuditKind::ModeChanged, "from pin to nopin".into()),
            (AuditKind::ModeChanged, "from nopin to default; outstanding PIN wiped".into()),
            (AuditKind::ModeChanged, "from default to pin".into()),
            (AuditKind::ModeChanged, "from pin to default".into()),
        ]
    );
    // To default and a new PIN in one update: in that order, so the new PIN is outstanding.
    s.update_security(mac(1), &set_mode(SecurityMode::Pin), AT).expect("updates");
    s.update_security(mac(1), &new_pin(OTHER_PIN), AT).expect("issues");
    s.update_security(mac(1), &SecurityUpdate { mode: Some(SecurityMode::Default), ..new_pin(PIN) }, AT)
        .expect("updates");
    assert_eq!(s.pin(mac(1)).expect("reads"), Some(sealed(PIN)));
    assert_eq!(
        log(&s, mac(1))[8..],
        [
            (AuditKind::ModeChanged, "from pin to default; outstanding PIN wiped".into()),
            (AuditKind::PinIssued, "PIN issued".into()),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// The PIN stays secret.

#[test]
fn the_pin_is_only_given_by_pin() {
    let s = store();
    assert_eq!(s.pin(mac(1)).expect("reads"), None, "unknown device");
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(1)]).expect("registers");
    assert_eq!(s.pin(mac(1)).expect("reads"), None, "none issued");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[issue(2, "AB"), event(3, AuditKind::BootstrapSent, "certificate AB")]).expect("applies");

    let details = s.device(mac(1)).expect("reads").expect("exists");
    assert!(details.security.pin_outstanding);
    let json = serde_json::to_string(&details).expect("serialises");
    assert!(!json.contains(PIN), "{json}");
    assert!(json.contains("\"pin_outstanding\":true"), "{json}");
    let listing = serde_json::to_string(&s.list_devices(&Default::default()).expect("lists")).expect("serialises");
    assert!(!listing.contains(PIN));
    let audit = serde_json::to_string(&s.audit(None, 100).expect("audit")).expect("serialises");
    assert!(!audit.contains(PIN) && !audit.contains("051"), "{audit}");
    // Nor do the debug forms show it, or the TAN.
    let snapshot = s.load_device(mac(1)).expect("loads");
    assert!(snapshot.security.pin_outstanding);
    let debug = format!("{snapshot:?} {details:?} {:?}", new_pin(PIN));
    assert!(!debug.contains(PIN) && !debug.contains("\"051\""), "{debug}");

    assert_eq!(s.pin(mac(1)).expect("reads"), Some(sealed(PIN)));
}

// ---------------------------------------------------------------------------------------
// Deletion, atomicity, damage.

#[test]
fn deleting_a_device_deletes_its_certificates_but_not_its_audit_log() {
    let s = store();
    secured(&s, mac(1), "AA");
    secured(&s, mac(2), "BB");
    s.apply(mac(1), &[event(40, AuditKind::Bootstrapped, "certificate AA")]).expect("applies");
    let log_before = log(&s, mac(1));
    assert_eq!(log_before.len(), 2);
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert!(s.certificates(mac(1)).expect("certificates").is_empty());
    assert_eq!(log(&s, mac(1)), log_before);
    assert_eq!(s.pin(mac(1)).expect("reads"), None);
    // Registered again, it starts afresh, with its history.
    register(&s, mac(1), 50);
    assert_eq!(security(&s, mac(1)), Security::default());
    s.update_security(mac(1), &set_mode(SecurityMode::Nopin), AT).expect("updates");
    assert_eq!(kinds(&s, mac(1)), [AuditKind::PinIssued, AuditKind::Bootstrapped, AuditKind::ModeChanged]);
    // Its old serial is forgotten with it.
    s.apply(mac(1), &[issue(60, "AA")]).expect("issues");
    let err = s.apply(mac(2), &[issue(60, "AA")]).expect_err("taken");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

#[test]
fn a_failing_batch_of_security_changes_leaves_no_trace() {
    let s = store();
    let batch = |with_register: bool| {
        let mut batch = vec![];
        if with_register {
            batch.push(Change::Register { mode: SecurityMode::Pin });
        }
        batch.extend([
            contact(100),
            issue(100, "DEAD"),
            event(100, AuditKind::CertificateIssued, "certificate DEAD"),
            Change::TanFailed,
            Change::BootstrapFailed { at: UnixTime(100), revoke_certificate: true },
            issue(101, "BEEF"),
            Change::Bootstrapped { at: UnixTime(101) },
            event(101, AuditKind::Bootstrapped, "certificate BEEF"),
            // Refused after everything else was written.
            Change::ReplaceInventory { items: vec![], at: UnixTime(u64::MAX) },
        ]);
        batch
    };
    // A new device: not even registered.
    assert_invalid(s.apply(mac(1), &batch(true)), "out of range");
    assert_eq!(s.load_device(mac(1)).expect("loads"), DeviceSnapshot::unknown());
    assert!(s.audit(None, 100).expect("audit").is_empty());
    assert!(s.certificates(mac(1)).expect("certificates").is_empty());

    // A known device, with a PIN and a certificate: unchanged.
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, issue(50, "CAFE")]).expect("applies");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues");
    s.apply(mac(1), &[Change::TanFailed]).expect("applies");
    let before = || {
        (
            s.load_device(mac(1)).expect("loads"),
            s.device(mac(1)).expect("reads"),
            s.certificates(mac(1)).expect("certificates"),
            s.audit(None, 100).expect("audit"),
            s.pin(mac(1)).expect("reads"),
        )
    };
    let kept = before();
    assert_invalid(s.apply(mac(1), &batch(false)), "out of range");
    assert_eq!(before(), kept);
    // Also when the certificate is the failing change.
    let err = s.apply(mac(1), &[Change::Bootstrapped { at: UnixTime(1) }, issue(60, "CAFE")]).expect_err("taken");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(before(), kept);
    // And the store still works.
    s.apply(mac(1), &[issue(70, "F00D"), Change::Bootstrapped { at: UnixTime(70) }]).expect("applies");
    assert_eq!(security(&s, mac(1)).state, BootstrapState::Secured);
}

// ---------------------------------------------------------------------------------------
// Bootstrap material kept for reuse.

pub(crate) fn keep(at: u64, serial: &str, sealed: &[u8]) -> Change {
    Change::KeepBootstrap {
        at: UnixTime(at),
        serial: serial.into(),
        sealed: dls_engine::SealedBootstrap(sealed.to_vec()),
    }
}

pub(crate) fn pending(s: &dyn Store, mac: MacAddr) -> Option<(String, u64)> {
    security(s, mac).pending.map(|p| (p.serial, p.issued_at.0))
}

#[test]
fn kept_bootstrap_material_lives_until_the_bootstrap_ends() {
    let s = store();
    s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(10)]).expect("registers");
    s.update_security(mac(1), &new_pin(PIN), AT).expect("issues a PIN");
    assert_eq!((pending(&s, mac(1)), s.pending_bootstrap(mac(1)).expect("reads")), (None, None));
    s.apply(mac(1), &[issue(20, "AB01"), keep(20, "AB01", b"sealed-1")]).expect("keeps");
    assert_eq!(pending(&s, mac(1)), Some(("AB01".into(), 20)));
    assert_eq!(s.pending_bootstrap(mac(1)).expect("reads").as_deref(), Some(&b"sealed-1"[..]));
    // A new certificate replaces it.
    s.apply(mac(1), &[issue(30, "AB02"), keep(30, "AB02", b"sealed-2")]).expect("keeps");
    assert_eq!(pending(&s, mac(1)), Some(("AB02".into(), 30)));
    assert_eq!(s.pending_bootstrap(mac(1)).expect("reads").as_deref(), Some(&b"sealed-2"[..]));
    // A certificate issued without it drops the old one.
    s.apply(mac(1), &[issue(35, "AB03")]).expect("issues");
    assert_eq!(s.pending_bootstrap(mac(1)).expect("reads"), None);

    // Whatever ends the bootstrap drops it.
    type End = Box<dyn Fn(&dyn Store)>;
    let ends: Vec<End> = vec![
        Box::new(|s| s.apply(mac(1), &[Change::Bootstrapped { at: UnixTime(40) }]).expect("applies")),
        Box::new(|s| {
            s.apply(mac(1), &[Change::BootstrapFailed { at: UnixTime(40), revoke_certificate: false }])
                .expect("applies");
        }),
        Box::new(|s| s.apply(mac(1), &[Change::SecurityReset { at: UnixTime(40) }]).expect("applies")),
        Box::new(|s| s.update_security(mac(1), &new_pin(OTHER_PIN), AT).expect("new PIN")),
        Box::new(|s| s.update_security(mac(1), &set_mode(SecurityMode::Nopin), AT).expect("mode")),
        Box::new(|s| s.update_security(mac(1), &reset(), AT).expect("reset")),
        Box::new(|s| assert!(s.delete_device(mac(1)).expect("deletes"))),
    ];
    for (n, end) in ends.iter().enumerate() {
        if s.device(mac(1)).expect("reads").is_none() {
            s.apply(mac(1), &[Change::Register { mode: SecurityMode::Pin }, contact(10)]).expect("registers");
        }
        s.update_security(mac(1), &SecurityUpdate { reset: true, ..new_pin(PIN) }, AT).expect("again");
        s.update_security(mac(1), &set_mode(SecurityMode::Pin), AT).expect("pin mode");
        let serial = format!("AC{n:02}");
        s.apply(mac(1), &[issue(50, &serial), keep(50, &serial, b"sealed")]).expect("keeps");
        assert!(pending(&s, mac(1)).is_some(), "{n}");
        end(&s);
        assert_eq!(s.pending_bootstrap(mac(1)).expect("reads"), None, "{n}");
        if s.device(mac(1)).expect("reads").is_some() {
            assert_eq!(pending(&s, mac(1)), None, "{n}");
        }
    }
    // Nothing unbounded or empty is kept, and a bad serial is refused.
    s.apply(mac(2), &[Change::Register { mode: SecurityMode::Nopin }, contact(10)]).expect("registers");
    assert_invalid(s.apply(mac(2), &[keep(60, "AD01", b"")]), "sealed bootstrap");
    assert_invalid(s.apply(mac(2), &[keep(60, "AD01", &vec![1; (1 << 20) + 1])]), "sealed bootstrap");
    assert!(s.apply(mac(2), &[keep(60, "not hex", b"x")]).is_err());
    assert_eq!(s.pending_bootstrap(mac(2)).expect("reads"), None);
}
