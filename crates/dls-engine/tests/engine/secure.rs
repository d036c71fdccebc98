//! Secure mode: bootstrap on the default port, the secure port, the TAN, refusals, and what
//! an accepted factory reset does to it.

use dls_engine::{
    AuditKind, Bootstrap, BootstrapKind, BootstrapNeed, BootstrapState, BootstrapSupply, Change, Channel, EngineConfig,
    IssuedCertificate, Job, JobKind, JobState, SealedBootstrap, SecurityMode, UnixTime, WRONG_TAN,
};
use dls_message::{Action, Item, MacAddr, Reason, ReasonForContact, ReplyStatus};

use crate::harness::*;

fn secure_device(sh: &mut Shell, mode: SecurityMode, tan: Option<&str>) {
    sh.device.known = true;
    sh.device.security.mode = mode;
    sh.device.security.pin_outstanding = tan.is_some();
    sh.tan = tan.map(str::to_owned);
    sh.device.security.pin_issued_at = tan.map(|_| sh.now);
}

fn material(kind: &str, serial: &str) -> Bootstrap {
    Bootstrap {
        items: vec![
            Item::new("goto-secure-mode", kind),
            Item::new("secure-mode-data", "AQ=="),
            Item::new("max-pin-retries", "3"),
        ],
        certificate: IssuedCertificate { serial: serial.into(), not_after: UnixTime(9_999_999_999) },
    }
}

/// `material` newly issued, as the shell supplies it.
fn issued(kind: &str, serial: &str) -> BootstrapSupply {
    BootstrapSupply::Issued { bootstrap: material(kind, serial), sealed: SealedBootstrap(serial.as_bytes().to_vec()) }
}

fn secure_channel(serial: &str) -> Channel {
    Channel::Secure { certificate_mac: Some(MacAddr::parse(MAC).expect("mac")), certificate_serial: serial.into() }
}

fn needed(sh: &Shell, nonce: &str) -> Option<BootstrapNeed> {
    sh.engine.bootstrap_needed(sh.now, &start_up(nonce), sh.session.as_ref(), &sh.channel, &sh.device)
}

#[test]
fn pin_bootstrap_then_tan_then_provisioning() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.example.net")]);
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    assert_eq!(needed(&sh, "N1"), Some(BootstrapNeed::Issue(BootstrapKind::Pin)));
    sh.bootstrap = Some(issued("pin", "AA01"));
    let out = sh.send(&start_up("N1"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("goto-secure-mode"), Some("pin"));
    assert_eq!(sh.device.security.certificate.as_deref(), Some("AA01"));
    assert!(sh.audit.contains(&AuditKind::BootstrapSent) && sh.audit.contains(&AuditKind::CertificateIssued));
    let out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "N1");
    assert!(out.session.is_none());

    // A phone that restarts before its user typed the PIN gets the same bundle again.
    assert_eq!(needed(&sh, "N2"), Some(BootstrapNeed::Reuse(BootstrapKind::Pin)));

    // On the secure port: the TAN first.
    sh.channel = secure_channel("AA01");
    assert_eq!(needed(&sh, "N3"), None, "no bootstrap material on the secure port");
    let out = sh.send(&start_up("N3"));
    assert_eq!(out.reply.action, Action::ReadItems);
    assert_eq!(out.reply.items.as_deref(), Some(&[Item::new("bootstrapping-tan", "")][..]));
    let out = sh.send(&reply(
        "N3",
        Action::ReadItems,
        ReplyStatus::Accepted,
        Some(vec![Item::new("bootstrapping-tan", "321")]),
    ));
    assert_eq!(sh.device.security.state, BootstrapState::Secured);
    assert!(!sh.device.security.pin_outstanding && sh.tan.is_none(), "the PIN is wiped");
    assert_eq!(sh.tan_given, 1, "the TAN opened for its check only");
    assert!(sh.audit.contains(&AuditKind::TanRight) && sh.audit.contains(&AuditKind::Bootstrapped));
    // … and the interaction goes on as a normal start-up.
    assert_eq!(out.reply.action, Action::ReadAllItems);
    let out = sh.send(&reply("N3", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert_eq!(out.reply.action, Action::WriteItems);
    let out = sh.send(&reply("N3", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "N3");

    // From now on the default port refuses the device, with a reason and an audit record.
    sh.channel = Channel::Default;
    assert_eq!(needed(&sh, "N4"), None);
    sh.audit.clear();
    let out = sh.send(&start_up("N4"));
    assert_clean_up(&out.reply, "N4");
    assert_eq!(out.reply.items.as_ref().map(Vec::len), Some(1));
    assert!(out.reply.item("cleanup-reason").is_some());
    assert_eq!(sh.audit, vec![AuditKind::DefaultPortRefused]);
    assert!(
        out.changes.iter().all(|c| matches!(c, Change::Audit(_))),
        "nothing but the audit record: {:?}",
        out.changes
    );
}

#[test]
fn nopin_bootstrap_completes_at_the_first_secure_contact() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Nopin, None);
    assert_eq!(needed(&sh, "N1"), Some(BootstrapNeed::Issue(BootstrapKind::Nopin)));
    sh.bootstrap = Some(issued("nopin", "BB02"));
    assert_eq!(sh.send(&start_up("N1")).reply.action, Action::WriteItems);
    assert_clean_up(&sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, None)).reply, "N1");
    sh.channel = secure_channel("BB02");
    let out = sh.send(&start_up("N2"));
    assert_eq!(out.reply.action, Action::ReadAllItems, "straight to the normal start-up");
    assert_eq!(sh.device.security.state, BootstrapState::Secured);
}

#[test]
fn wrong_tans_up_to_the_limit_revoke_the_certificate() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.device.security.certificate = Some("CC03".into());
    sh.channel = secure_channel("CC03");
    for attempt in 1..=3u32 {
        let nonce = format!("T{attempt}");
        assert_eq!(sh.send(&start_up(&nonce)).reply.action, Action::ReadItems, "attempt {attempt}");
        let out = sh.send(&reply(
            &nonce,
            Action::ReadItems,
            ReplyStatus::Accepted,
            Some(vec![Item::new("bootstrapping-tan", "999")]),
        ));
        assert_clean_up(&out.reply, &nonce);
        assert_eq!(out.reply.item("cleanup-reason"), Some(WRONG_TAN));
        assert_eq!(sh.device.security.tan_failures, attempt);
    }
    assert_eq!(sh.device.security.state, BootstrapState::Failed);
    assert!(sh.device.security.certificate.is_none(), "revoked");
    assert!(sh.audit.contains(&AuditKind::BootstrapFailed) && sh.audit.contains(&AuditKind::CertificateRevoked));
    // The revoked certificate is refused from now on.
    let out = sh.send(&start_up("T4"));
    assert_clean_up(&out.reply, "T4");
    assert!(sh.audit.ends_with(&[AuditKind::CertificateRefused]));
    // A TAN of the wrong length, or missing, is wrong too (no panic, no timing shortcut).
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.device.security.certificate = Some("CC03".into());
    sh.channel = secure_channel("CC03");
    for given in [vec![Item::new("bootstrapping-tan", "32")], vec![Item::new("bootstrapping-tan", "3210")], vec![]] {
        sh.send(&start_up("X"));
        let out = sh.send(&reply("X", Action::ReadItems, ReplyStatus::Accepted, Some(given)));
        assert_eq!(out.reply.item("cleanup-reason"), Some(WRONG_TAN));
        sh.device.recent_nonces.clear();
    }
}

#[test]
fn certificates_of_other_devices_or_old_certificates_are_refused() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Nopin, None);
    sh.device.security.state = BootstrapState::Secured;
    sh.device.security.certificate = Some("DD04".into());
    // Device A's certificate, device B's mac-addr.
    sh.channel = secure_channel("DD04");
    let mut m = start_up("N1");
    if let Some(items) = m.items.as_mut() {
        for i in items.iter_mut().filter(|i| i.name == "mac-addr") {
            i.value = "00:1A:E8:3C:4D:5F".into();
        }
    }
    let out = sh.send(&m);
    assert_clean_up(&out.reply, "N1");
    assert_eq!(sh.audit, vec![AuditKind::CertificateMismatch]);
    // A superseded certificate.
    sh.channel = secure_channel("DD03");
    let out = sh.send(&start_up("N2"));
    assert_clean_up(&out.reply, "N2");
    assert_eq!(sh.audit.last(), Some(&AuditKind::CertificateRefused));
    // A certificate whose subject is not a MAC.
    sh.channel = Channel::Secure { certificate_mac: None, certificate_serial: "DD04".into() };
    assert_clean_up(&sh.send(&start_up("N3")).reply, "N3");
    // The right one works.
    sh.channel = secure_channel("DD04");
    assert_ne!(sh.send(&start_up("N4")).reply.action, Action::CleanUp);
}

#[test]
fn no_usable_pin_no_bootstrap() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.now = UnixTime(sh.now.0 + 7 * 24 * 3600 + 1);
    assert_eq!(needed(&sh, "N1"), None, "expired PIN");
    let out = sh.send(&start_up("N1"));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(out.reply.item("cleanup-reason"), Some("no valid PIN"));
    assert_eq!(sh.audit, vec![AuditKind::PinUnavailable]);
    assert!(sh.device.inventory.is_empty(), "no configuration over the unauthenticated port");
}

#[test]
fn pin_retries_exceeded_at_the_phone_fails_the_bootstrap() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.device.security.certificate = Some("EE05".into());
    let items = vec![Item::new("mac-addr", MAC), Item::new("cleanup-reason", "password retries exceeded")];
    let out = sh.send(&msg("N1", ReasonForContact::new(Reason::CleanUp), Some(items)));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(sh.device.security.state, BootstrapState::Failed);
    assert!(sh.device.security.certificate.is_none());
    assert!(sh.audit.contains(&AuditKind::BootstrapFailed));
    // Until an administrator issues a new PIN.
    assert_eq!(needed(&sh, "N2"), None);
    let out = sh.send(&start_up("N2"));
    assert!(out.reply.item("cleanup-reason").is_some_and(|r| r.contains("new PIN")));
}

#[test]
fn new_devices_follow_the_policy() {
    let mut config = EngineConfig::new(KEY);
    config.new_device_mode = SecurityMode::Nopin;
    let mut sh = Shell::with_config(config);
    assert_eq!(needed(&sh, "N1"), Some(BootstrapNeed::Issue(BootstrapKind::Nopin)));
    sh.bootstrap = Some(issued("nopin", "FF06"));
    let out = sh.send(&start_up("N1"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert!(out.changes.contains(&Change::Register { mode: SecurityMode::Nopin }));
    assert_eq!(sh.device.security.mode, SecurityMode::Nopin);
}

/// A device bootstrapped in `mode` with certificate `serial`, on the secure port, with a
/// factory-reset job queued (id 7).
fn secured_with_factory_reset(mode: SecurityMode, serial: &str) -> Shell {
    let mut sh = Shell::new();
    secure_device(&mut sh, mode, None);
    sh.device.security.state = BootstrapState::Secured;
    sh.device.security.certificate = Some(serial.into());
    sh.device.inventory = inventory().into_iter().filter(|i| i.status.is_none()).collect();
    sh.device.inventory_at = Some(sh.now);
    sh.device.jobs =
        vec![Job { id: 7, kind: JobKind::FactoryReset, state: JobState::Queued, attempts: 0, accepted: false }];
    sh.channel = secure_channel(serial);
    sh
}

fn solicited(nonce: &str) -> dls_message::WorkpointMessage {
    msg(nonce, ReasonForContact::new(Reason::Solicited), Some(basic_items()))
}

/// The last answer recorded for job `id`.
fn job_answer(sh: &Shell, id: i64) -> String {
    sh.job_log.iter().rev().find(|u| u.id == id).and_then(|u| u.answer.clone()).unwrap_or_default()
}

/// Runs the queued factory reset; the phone answers `status`. Returns the changes of the
/// message that answered the `Restart`.
fn run_factory_reset(sh: &mut Shell, nonce: &str, status: ReplyStatus) -> Vec<Change> {
    let out = sh.send(&solicited(nonce));
    assert_eq!(out.reply.action, Action::Restart);
    assert_eq!(out.reply.item("restart-type"), Some("FactoryReset"));
    let out = sh.send(&reply(nonce, Action::Restart, status, None));
    assert_clean_up(&out.reply, nonce);
    out.changes
}

#[test]
fn an_accepted_factory_reset_returns_a_nopin_device_to_not_bootstrapped() {
    let mut sh = secured_with_factory_reset(SecurityMode::Nopin, "AB10");
    sh.audit.clear();
    let changes = run_factory_reset(&mut sh, "F1", ReplyStatus::Accepted);
    // The reset, its audit records and the job's end: one message, one transaction.
    assert!(changes.contains(&Change::SecurityReset { at: sh.now }), "{changes:?}");
    let done = changes.iter().any(|c| matches!(c, Change::Job(u) if u.id == 7 && u.state == JobState::Done));
    assert!(done, "{changes:?}");
    let details: Vec<(AuditKind, String)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Audit(e) => Some((e.kind, e.detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert_eq!(details[0].0, AuditKind::DeviceReset);
    assert!(details[0].1.contains("factory-reset job 7") && details[0].1.contains("was secured"), "{details:?}");
    assert_eq!(details[1].0, AuditKind::CertificateRevoked);
    assert!(details[1].1.contains("AB10") && details[1].1.contains("factory reset"), "{details:?}");
    let answer = job_answer(&sh, 7);
    assert!(answer.starts_with("factory reset accepted"), "{answer}");
    assert!(answer.contains("bootstrapped again"), "{answer}");
    assert_eq!(sh.device.security.mode, SecurityMode::Nopin, "the mode stays");
    assert_eq!(sh.device.security.state, BootstrapState::NotBootstrapped);
    assert_eq!(sh.device.security.certificate, None);

    // The old certificate is refused on the secure port.
    let out = sh.send(&start_up("F2"));
    assert_clean_up(&out.reply, "F2");
    assert_eq!(out.reply.item("cleanup-reason"), Some("certificate revoked"));
    assert_eq!(sh.audit.last(), Some(&AuditKind::CertificateRefused));

    // The phone, reset, starts up on the default port: it is bootstrapped again.
    sh.channel = Channel::Default;
    assert_eq!(needed(&sh, "F3"), Some(BootstrapNeed::Issue(BootstrapKind::Nopin)));
    sh.bootstrap = Some(issued("nopin", "AB11"));
    let out = sh.send(&start_up("F3"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("goto-secure-mode"), Some("nopin"));
    assert_clean_up(&sh.send(&reply("F3", Action::WriteItems, ReplyStatus::Accepted, None)).reply, "F3");
    sh.channel = secure_channel("AB11");
    let out = sh.send(&start_up("F4"));
    assert_eq!(out.reply.item("cleanup-reason"), None, "accepted with its new certificate");
    assert_eq!(sh.device.security.state, BootstrapState::Secured);
}

#[test]
fn an_accepted_factory_reset_of_a_pin_device_needs_a_new_pin() {
    let mut sh = secured_with_factory_reset(SecurityMode::Pin, "AC20");
    sh.device.security.tan_failures = 2;
    run_factory_reset(&mut sh, "F1", ReplyStatus::Accepted);
    assert_eq!(
        job_answer(&sh, 7),
        "factory reset accepted; the device must be bootstrapped again (a new PIN is needed)"
    );
    let s = &sh.device.security;
    assert_eq!(
        (s.mode, s.state, s.certificate.as_deref(), s.pin_outstanding, s.tan_failures),
        (SecurityMode::Pin, BootstrapState::NotBootstrapped, None, false, 0)
    );
    assert!(sh.audit.ends_with(&[AuditKind::DeviceReset, AuditKind::CertificateRevoked]), "{:?}", sh.audit);
    // No PIN: no bootstrap, and the default port says why.
    sh.channel = Channel::Default;
    assert_eq!(needed(&sh, "F2"), None);
    let out = sh.send(&start_up("F2"));
    assert_eq!(out.reply.item("cleanup-reason"), Some("no valid PIN"));
    // With a new PIN (the administrator's part), it bootstraps again.
    sh.device.security.pin_outstanding = true;
    sh.tan = Some("654".into());
    sh.device.security.pin_issued_at = Some(sh.now);
    assert_eq!(needed(&sh, "F3"), Some(BootstrapNeed::Issue(BootstrapKind::Pin)));
}

#[test]
fn a_refused_or_busy_factory_reset_changes_no_security_state() {
    for status in [ReplyStatus::Failed, ReplyStatus::Busy] {
        let mut sh = secured_with_factory_reset(SecurityMode::Nopin, "AD30");
        let changes = run_factory_reset(&mut sh, "F1", status.clone());
        assert!(!changes.iter().any(|c| matches!(c, Change::SecurityReset { .. })), "{status}: {changes:?}");
        assert!(!sh.audit.contains(&AuditKind::DeviceReset), "{status}");
        assert_eq!(sh.device.security.state, BootstrapState::Secured, "{status}");
        assert_eq!(sh.device.security.certificate.as_deref(), Some("AD30"), "{status}");
    }
}

#[test]
fn a_factory_reset_right_after_the_tan_resets_the_fresh_bootstrap() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.device.security.certificate = Some("AE40".into());
    sh.device.inventory = inventory().into_iter().filter(|i| i.status.is_none()).collect();
    sh.device.inventory_at = Some(sh.now);
    sh.device.jobs =
        vec![Job { id: 3, kind: JobKind::FactoryReset, state: JobState::Queued, attempts: 0, accepted: false }];
    sh.channel = secure_channel("AE40");
    assert_eq!(sh.send(&start_up("T1")).reply.action, Action::ReadItems);
    let out = sh.send(&reply(
        "T1",
        Action::ReadItems,
        ReplyStatus::Accepted,
        Some(vec![Item::new("bootstrapping-tan", "321")]),
    ));
    assert_eq!(out.reply.action, Action::Restart);
    assert_eq!(sh.device.security.state, BootstrapState::Secured);
    let out = sh.send(&reply("T1", Action::Restart, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "T1");
    assert_eq!(sh.device.security.state, BootstrapState::NotBootstrapped);
    assert_eq!(sh.device.security.certificate, None);
    let reset = out.changes.iter().find_map(|c| match c {
        Change::Audit(e) if e.kind == AuditKind::DeviceReset => Some(e.detail.clone()),
        _ => None,
    });
    assert!(reset.is_some_and(|d| d.contains("was secured")));
}

#[test]
fn a_default_mode_device_with_leftover_secure_state_is_reset_too() {
    // Bootstrapped in nopin, then switched back to default by an administrator.
    let mut sh = secured_with_factory_reset(SecurityMode::Nopin, "AF50");
    sh.device.security.mode = SecurityMode::Default;
    sh.channel = Channel::Default;
    let changes = run_factory_reset(&mut sh, "F1", ReplyStatus::Accepted);
    assert!(changes.contains(&Change::SecurityReset { at: sh.now }), "{changes:?}");
    assert!(job_answer(&sh, 7).starts_with("factory reset accepted"));
    assert_eq!(sh.device.security.mode, SecurityMode::Default);
    assert_eq!(
        (sh.device.security.state, sh.device.security.certificate.as_deref()),
        (BootstrapState::NotBootstrapped, None)
    );
}

/// The certificate-issuing changes of `out`.
fn issuances(changes: &[Change]) -> usize {
    changes.iter().filter(|c| matches!(c, Change::IssueCertificate { .. })).count()
}

#[test]
fn repeated_default_port_start_ups_get_the_kept_material_and_revoke_nothing() {
    for (mode, kind, word) in
        [(SecurityMode::Pin, BootstrapKind::Pin, "pin"), (SecurityMode::Nopin, BootstrapKind::Nopin, "nopin")]
    {
        let mut sh = Shell::new();
        secure_device(&mut sh, mode, (mode == SecurityMode::Pin).then_some("321"));
        assert_eq!(needed(&sh, "N1"), Some(BootstrapNeed::Issue(kind)));
        sh.bootstrap = Some(issued(word, "AA01"));
        let out = sh.send(&start_up("N1"));
        assert_eq!(issuances(&out.changes), 1);
        assert!(out.changes.iter().any(|c| matches!(c, Change::KeepBootstrap { serial, .. } if serial == "AA01")));
        let first = out.reply.items.clone();
        let pending = sh.device.security.pending.clone().expect("kept");
        assert_eq!((pending.serial.as_str(), pending.issued_at), ("AA01", sh.now));

        // The attacker (or the phone, restarted) quotes the MAC again and again: the kept
        // material, no new certificate, nothing revoked — until the window ends.
        for n in 0..5u64 {
            sh.now = UnixTime(sh.now.0 + 3600);
            let nonce = format!("R{n}");
            assert_eq!(needed(&sh, &nonce), Some(BootstrapNeed::Reuse(kind)), "{word} {n}");
            sh.bootstrap = Some(BootstrapSupply::Reused(material(word, "AA01")));
            sh.audit.clear();
            let out = sh.send(&start_up(&nonce));
            assert_eq!(out.reply.action, Action::WriteItems);
            assert_eq!(out.reply.items, first, "the same material");
            assert_eq!(issuances(&out.changes), 0, "{:?}", out.changes);
            assert!(!out.changes.iter().any(|c| matches!(c, Change::KeepBootstrap { .. })));
            assert_eq!(sh.audit, vec![AuditKind::BootstrapSent]);
            assert_eq!(sh.device.security.certificate.as_deref(), Some("AA01"));
        }
        // The real phone still completes its bootstrap with the certificate it was given.
        sh.channel = secure_channel("AA01");
        let out = sh.send(&start_up("S1"));
        assert_ne!(out.reply.item("cleanup-reason"), Some("certificate revoked"), "{word}");
        assert_eq!(out.reply.action, if mode == SecurityMode::Pin { Action::ReadItems } else { Action::ReadAllItems });
    }
}

#[test]
fn kept_material_is_reused_within_the_window_only() {
    let mut config = EngineConfig::new(KEY);
    config.bootstrap_reuse_secs = 100;
    config.bootstrap_reissue_secs = 50;
    let mut sh = Shell::with_config(config);
    secure_device(&mut sh, SecurityMode::Nopin, None);
    sh.bootstrap = Some(issued("nopin", "AB01"));
    sh.send(&start_up("N1"));
    let issued_at = sh.now;
    sh.now = UnixTime(issued_at.0 + 100);
    assert_eq!(needed(&sh, "N2"), Some(BootstrapNeed::Reuse(BootstrapKind::Nopin)), "at the window's end");
    sh.now = UnixTime(issued_at.0 + 101);
    assert_eq!(needed(&sh, "N3"), Some(BootstrapNeed::Issue(BootstrapKind::Nopin)), "after it");
    sh.bootstrap = Some(issued("nopin", "AB02"));
    let out = sh.send(&start_up("N3"));
    assert_eq!(issuances(&out.changes), 1);
    assert_eq!(sh.device.security.pending.as_ref().map(|p| p.serial.as_str()), Some("AB02"));
}

#[test]
fn reissue_is_rate_limited_per_device() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Nopin, None);
    sh.bootstrap = Some(issued("nopin", "AC01"));
    sh.send(&start_up("N1"));
    // The kept material no longer matches the device's certificate (changed behind the
    // engine's back): it is not sent, and no new material is issued for 600 s.
    sh.device.security.certificate = Some("AC00".into());
    sh.now = UnixTime(sh.now.0 + 599);
    assert_eq!(needed(&sh, "N2"), None);
    sh.audit.clear();
    let out = sh.send(&start_up("N2"));
    assert_clean_up(&out.reply, "N2");
    assert_eq!(out.reply.item("cleanup-reason"), Some("bootstrap issued recently; try again later"));
    assert!(out.changes.is_empty(), "{:?}", out.changes);
    sh.now = UnixTime(sh.now.0 + 1);
    assert_eq!(needed(&sh, "N3"), Some(BootstrapNeed::Issue(BootstrapKind::Nopin)));
}

#[test]
fn no_material_now_or_stale_material_is_a_clean_up() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.bootstrap = Some(BootstrapSupply::Unavailable);
    let out = sh.send(&start_up("N1"));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(out.reply.item("cleanup-reason"), Some("server busy; try again later"));
    assert!(out.changes.is_empty(), "nothing issued, nothing recorded: {:?}", out.changes);
    // Material for another certificate than the device's current one is never sent.
    sh.device.security.certificate = Some("AD01".into());
    sh.bootstrap = Some(BootstrapSupply::Reused(material("pin", "AD00")));
    let out = sh.send(&start_up("N2"));
    assert_clean_up(&out.reply, "N2");
    assert!(out.changes.is_empty());
}

#[test]
fn the_tan_is_asked_of_the_shell_only_to_check_it() {
    let mut sh = Shell::new();
    secure_device(&mut sh, SecurityMode::Pin, Some("321"));
    sh.device.security.certificate = Some("AE01".into());
    let tan_reply =
        reply("T1", Action::ReadItems, ReplyStatus::Accepted, Some(vec![Item::new("bootstrapping-tan", "321")]));
    // Not on the default port, not for a start-up, not without the session that asked.
    assert!(!dls_engine::Engine::tan_needed(&start_up("T1"), None, &sh.channel));
    sh.channel = secure_channel("AE01");
    assert!(!dls_engine::Engine::tan_needed(&tan_reply, None, &sh.channel));
    assert_eq!(sh.send(&start_up("T1")).reply.action, Action::ReadItems);
    assert_eq!(sh.tan_given, 0);
    assert!(dls_engine::Engine::tan_needed(&tan_reply, sh.session.as_ref(), &sh.channel));
    // A shell that cannot give the TAN: the phone's answer is not taken as right.
    let kept = sh.tan.take();
    let out = sh.send(&tan_reply);
    assert_eq!(out.reply.item("cleanup-reason"), Some(WRONG_TAN));
    assert_eq!(sh.device.security.state, BootstrapState::NotBootstrapped);
    sh.tan = kept;
    sh.device.recent_nonces.clear();
    sh.send(&start_up("T2"));
    let out = sh.send(&reply(
        "T2",
        Action::ReadItems,
        ReplyStatus::Accepted,
        Some(vec![Item::new("bootstrapping-tan", "321")]),
    ));
    assert_eq!(out.reply.action, Action::ReadAllItems);
    assert_eq!((sh.device.security.state, sh.tan_given), (BootstrapState::Secured, 1));
}
