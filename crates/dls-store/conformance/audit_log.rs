//! The audit log as one log (`AuditStore`): the devices' security events and the
//! administrative changes with their actors, filtered by device, actor, kind and time, in
//! pages, bounded; the actor of an administrator's secure-mode change.

use dls_engine::{AuditKind, SecurityMode, UnixTime};
use dls_store::traits::*;
use dls_store::{AdminAction, AuditFilter, DeviceSpec, EventKind, NewAuditRecord, SecurityUpdate, StoreError};

use super::security::{event, sealed};
use super::{AT, mac, register, store};

fn admin(at: u64, actor: &str, mac: Option<u8>, action: AdminAction, detail: &str) -> NewAuditRecord {
    NewAuditRecord {
        at: UnixTime(at),
        actor: Some(actor.into()),
        mac: mac.map(super::mac),
        kind: action.into(),
        detail: detail.into(),
    }
}

/// (at, actor, kind) of a listing.
fn brief(s: &dyn Store, filter: &AuditFilter) -> Vec<(u64, Option<String>, &'static str)> {
    s.audit_log(filter).expect("lists").into_iter().map(|r| (r.at.0, r.actor, r.kind.as_str())).collect()
}

fn seeded() -> super::Fixture {
    let s = store();
    register(&s, mac(1), 1);
    s.record_audit(&admin(10, "alice", Some(1), AdminAction::DeviceChanged, "profiles sales")).expect("records");
    s.apply(mac(1), &[event(11, AuditKind::BootstrapSent, "certificate AA")]).expect("applies");
    s.record_audit(&admin(12, "alice:ci", None, AdminAction::ProfileSaved, "profile sales")).expect("records");
    s.record_audit(&admin(13, "bob", None, AdminAction::AccountCreated, "account carol (viewer)")).expect("records");
    s.record_audit(&admin(14, "admin-token", Some(2), AdminAction::DeviceAdded, "")).expect("records");
    s.record_audit(&NewAuditRecord {
        at: UnixTime(15),
        actor: None,
        mac: None,
        kind: AdminAction::LoginFailed.into(),
        detail: "no such account \"mallory\" from 192.0.2.7".into(),
    })
    .expect("records");
    s.record_audit(&admin(16, "alice.b", None, AdminAction::FileAdded, "")).expect("records");
    s
}

#[test]
fn one_log_newest_first_with_actors() {
    let s = seeded();
    let all = s.audit_log(&AuditFilter::default()).expect("lists");
    assert_eq!(all.len(), 7);
    let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let phone = all.iter().find(|r| r.kind == EventKind::Security(AuditKind::BootstrapSent)).expect("kept");
    assert_eq!((phone.actor.as_deref(), phone.mac), (None, Some(mac(1))), "a phone's event has no actor");
    let added = all.iter().find(|r| r.kind == EventKind::Admin(AdminAction::DeviceAdded)).expect("kept");
    assert_eq!(
        (added.actor.as_deref(), added.mac),
        (Some("admin-token"), Some(mac(2))),
        "of a device never registered"
    );
    // The old listing of one device, and of all, still works.
    assert_eq!(s.audit(Some(mac(1)), 100).expect("lists").len(), 2);
    assert_eq!(s.audit(None, 3).expect("lists").len(), 3);
}

#[test]
fn filters_by_device_actor_kind_and_time() {
    let s = seeded();
    let f = AuditFilter::default;
    assert_eq!(
        brief(&s, &AuditFilter { mac: Some(mac(1)), ..f() }),
        [(11, None, "bootstrap-sent"), (10, Some("alice".into()), "device-changed")]
    );
    // An account's name matches its tokens too, and not another account that starts alike.
    assert_eq!(
        brief(&s, &AuditFilter { actor: Some("alice".into()), ..f() }),
        [(12, Some("alice:ci".into()), "profile-saved"), (10, Some("alice".into()), "device-changed")]
    );
    assert_eq!(brief(&s, &AuditFilter { actor: Some("alice:ci".into()), ..f() }).len(), 1);
    assert_eq!(brief(&s, &AuditFilter { actor: Some("admin-token".into()), ..f() }).len(), 1);
    assert!(brief(&s, &AuditFilter { actor: Some("nobody".into()), ..f() }).is_empty());
    assert_eq!(
        brief(&s, &AuditFilter { kind: Some(AdminAction::LoginFailed.into()), ..f() }),
        [(15, None, "login-failed")]
    );
    assert_eq!(brief(&s, &AuditFilter { kind: Some(AuditKind::BootstrapSent.into()), ..f() }).len(), 1);
    // Time: since included, until excluded.
    let times: Vec<u64> = brief(&s, &AuditFilter { since: Some(UnixTime(12)), until: Some(UnixTime(15)), ..f() })
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(times, [14, 13, 12]);
    // Together: every set field must match.
    let both = AuditFilter { mac: Some(mac(1)), actor: Some("alice".into()), since: Some(UnixTime(10)), ..f() };
    assert_eq!(brief(&s, &both), [(10, Some("alice".into()), "device-changed")]);
    let none = AuditFilter { mac: Some(mac(1)), kind: Some(AdminAction::ProfileSaved.into()), ..f() };
    assert!(brief(&s, &none).is_empty());
    // Times past what a store holds match as bounds do.
    assert_eq!(brief(&s, &AuditFilter { until: Some(UnixTime(u64::MAX)), ..f() }).len(), 7);
    assert!(brief(&s, &AuditFilter { since: Some(UnixTime(u64::MAX)), ..f() }).is_empty());
}

#[test]
fn pages_follow_each_other_without_gaps_or_repeats() {
    let s = seeded();
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.audit_log(&AuditFilter { before, limit: Some(3), ..AuditFilter::default() }).expect("lists");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.at.0));
    }
    assert_eq!(seen, [16, 15, 14, 13, 12, 11, 10]);
    assert!(s.audit_log(&AuditFilter { limit: Some(0), ..AuditFilter::default() }).expect("lists").is_empty());
    let capped = AuditFilter { limit: Some(usize::MAX), ..AuditFilter::default() };
    assert_eq!(s.audit_log(&capped).expect("lists").len(), 7);
}

#[test]
fn records_are_one_line_bounded_and_their_actors_checked() {
    let s = store();
    let long = "x\n".repeat(5000);
    s.record_audit(&admin(1, "alice", None, AdminAction::DeviceAdded, &long)).expect("records");
    let r = s.audit_log(&AuditFilter::default()).expect("lists").remove(0);
    assert!(r.detail.len() <= 1000 && !r.detail.contains('\n'), "{}", r.detail.len());
    for bad in ["<script>", "Alice", "a:b:c", ""] {
        let err = s.record_audit(&admin(2, bad, None, AdminAction::DeviceAdded, "")).expect_err(bad);
        assert!(matches!(err, StoreError::Invalid(_)), "{bad:?}: {err:?}");
    }
    let err = s.record_audit(&admin(u64::MAX, "alice", None, AdminAction::DeviceAdded, "")).expect_err("time");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(s.audit_log(&AuditFilter::default()).expect("lists").len(), 1);
}

#[test]
fn an_administrators_secure_mode_change_names_its_actor() {
    let s = store();
    let spec = DeviceSpec {
        security: Some(SecurityUpdate {
            mode: Some(SecurityMode::Pin),
            new_pin: Some(sealed("12345678")),
            actor: Some("alice".into()),
            ..SecurityUpdate::default()
        }),
        ..DeviceSpec::default()
    };
    s.add_device(mac(1), &spec, AT).expect("adds");
    let update =
        SecurityUpdate { new_pin: Some(sealed("87654321")), actor: Some("bob:ci".into()), ..SecurityUpdate::default() };
    s.update_security(mac(1), &update, UnixTime(AT.0 + 1)).expect("changes");
    let records = s.audit_log(&AuditFilter { mac: Some(mac(1)), ..AuditFilter::default() }).expect("lists");
    let actors: Vec<(&str, Option<&str>)> = records.iter().map(|r| (r.kind.as_str(), r.actor.as_deref())).collect();
    assert_eq!(actors[0], ("pin-issued", Some("bob:ci")));
    assert!(actors[1..].iter().all(|(_, a)| *a == Some("alice")), "{actors:?}");
    // An actor the rules refuse changes nothing.
    let bad = SecurityUpdate { reset: true, actor: Some("<b>".into()), ..SecurityUpdate::default() };
    assert!(matches!(s.update_security(mac(1), &bad, UnixTime(AT.0 + 2)), Err(StoreError::Invalid(_))));
    assert_eq!(
        s.audit_log(&AuditFilter { mac: Some(mac(1)), ..AuditFilter::default() }).expect("lists").len(),
        records.len()
    );
}

#[test]
fn retention_prunes_administrative_records_too() {
    let s = seeded();
    let pruned = s.prune(Some(UnixTime(13)), None).expect("prunes");
    assert_eq!(pruned.audit_records, 3);
    let times: Vec<u64> = brief(&s, &AuditFilter::default()).iter().map(|b| b.0).collect();
    assert_eq!(times, [16, 15, 14, 13]);
}
