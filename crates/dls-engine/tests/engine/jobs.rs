//! Jobs: each kind's action, the phone's answers, busy, send-solicited, deployments.

use dls_engine::{Change, EngineConfig, FileRef, ItemKey, Job, JobKind, JobState, SecurityMode, UnixTime};
use dls_message::{Action, DlsMessage, Fragment, Item, ItemStatus, Reason, ReasonForContact, ReplyStatus};

use crate::harness::*;

const BASE: &str = "https://dls.example.net:18443/files/";

fn config() -> EngineConfig {
    let mut c = EngineConfig::new(KEY);
    c.files_base_url = Some(BASE.into());
    c
}

/// A known device with a fresh inventory and nothing to write; `jobs` queued.
fn shell_with(jobs: Vec<JobKind>) -> Shell {
    let mut sh = Shell::with_config(config());
    sh.device.known = true;
    sh.device.inventory = inventory().into_iter().filter(|i| i.status.is_none()).collect();
    sh.device.inventory_at = Some(sh.now);
    sh.device.jobs = jobs
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Job { id: i as i64 + 1, kind, state: JobState::Queued, attempts: 0, accepted: false })
        .collect();
    sh
}

fn solicited(nonce: &str) -> dls_message::WorkpointMessage {
    msg(nonce, ReasonForContact::new(Reason::Solicited), Some(basic_items()))
}

fn send_solicited(m: &DlsMessage) -> bool {
    m.item("send-solicited") == Some("true")
}

fn state_of(sh: &Shell, id: i64) -> Option<JobState> {
    sh.job_log.iter().rev().find(|u| u.id == id).map(|u| u.state)
}

fn answer_of(sh: &Shell, id: i64) -> String {
    sh.job_log.iter().rev().find(|u| u.id == id).and_then(|u| u.answer.clone()).unwrap_or_default()
}

fn file(name: &str, file_type: &str) -> FileRef {
    FileRef {
        file_id: 7,
        name: name.into(),
        file_type: file_type.into(),
        priority: "normal".into(),
        token: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn write_job(items: Vec<Item>) -> JobKind {
    JobKind::Write { items }
}

#[test]
fn a_write_job_runs_in_the_solicited_interaction_and_completes() {
    let mut sh = shell_with(vec![write_job(vec![Item::new("sntp-addr", "ntp.example.net")])]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.header.nonce, "S1");
    assert_eq!(out.reply.item("sntp-addr"), Some("ntp.example.net"));
    assert_eq!(state_of(&sh, 1), Some(JobState::Sent));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "S1");
    assert!(!send_solicited(&out.reply), "nothing remains");
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
    assert_eq!(answer_of(&sh, 1), "1 items written, 0 refused");
    assert!(sh.device.inventory.iter().any(|i| i.name == "sntp-addr" && i.value == "ntp.example.net"));
    assert!(sh.device.jobs.is_empty());
}

#[test]
fn jobs_run_in_order_after_the_configuration() {
    let mut sh = shell_with(vec![
        write_job(vec![Item::new("country-iso", "FR")]),
        JobKind::Read { items: vec![ItemKey { name: "e164".into(), index: None }] },
    ]);
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.profile.example")]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.item("sntp-addr"), Some("ntp.profile.example"), "the configuration first");
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_eq!(out.reply.item("country-iso"), Some("FR"));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_eq!(out.reply.action, Action::ReadItems);
    assert_eq!(out.reply.items.as_deref().map(<[Item]>::len), Some(1));
    let out = sh.send(&reply("S1", Action::ReadItems, ReplyStatus::Accepted, Some(vec![Item::new("e164", "4930")])));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
    assert_eq!(state_of(&sh, 2), Some(JobState::Done));
    assert!(sh.device.inventory.iter().any(|i| i.name == "e164" && i.value == "4930"));
    let read = sh.job_log.iter().rev().find(|u| u.id == 2).and_then(|u| u.items.clone()).unwrap_or_default();
    assert_eq!(read, vec![Item::new("e164", "4930")]);
}

#[test]
fn a_busy_phone_keeps_the_job_and_every_clean_up_asks_for_a_callback() {
    let mut sh = shell_with(vec![write_job(vec![Item::new("sntp-addr", "ntp.example.net")])]);
    sh.send(&solicited("S1"));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Busy, None));
    assert_clean_up(&out.reply, "S1");
    assert!(send_solicited(&out.reply));
    assert_eq!(state_of(&sh, 1), Some(JobState::BusyRetry));
    assert_eq!(sh.device.jobs.len(), 1);

    // Any other interaction meanwhile ends with send-solicited too.
    let out = sh.send(&msg("L1", ReasonForContact::new(Reason::LocalChanges), Some(basic_items())));
    assert_clean_up(&out.reply, "L1");
    assert!(send_solicited(&out.reply));

    // The callback runs it.
    let out = sh.send(&solicited("S2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    let out = sh.send(&reply("S2", Action::WriteItems, ReplyStatus::Accepted, None));
    assert!(!send_solicited(&out.reply));
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
}

#[test]
fn refused_items_are_recorded_and_a_write_of_only_refused_items_fails() {
    let mut sh = shell_with(vec![
        write_job(vec![Item::new("sntp-addr", "a"), Item::new("no-such-item", "b")]),
        write_job(vec![Item::new("no-such-item", "c")]),
    ]);
    sh.send(&solicited("S1"));
    let refused = vec![Item::new("no-such-item", "").with_status(ItemStatus::UnknownItem)];
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, Some(refused.clone())));
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
    assert_eq!(answer_of(&sh, 1), "1 items written, 1 refused");
    assert_eq!(out.reply.action, Action::WriteItems);
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, Some(refused)));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(state_of(&sh, 2), Some(JobState::Failed));
    let items = sh.job_log.iter().rev().find(|u| u.id == 2).and_then(|u| u.items.clone()).unwrap_or_default();
    assert_eq!(items[0].status, Some(ItemStatus::UnknownItem));
}

#[test]
fn a_failed_answer_fails_that_job_and_the_next_one_runs() {
    let mut sh = shell_with(vec![JobKind::Restart, write_job(vec![Item::new("sntp-addr", "x")])]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::Restart);
    let out = sh.send(&reply("S1", Action::Restart, ReplyStatus::Failed, None));
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
    assert_eq!(answer_of(&sh, 1), "the phone answered failed");
    assert_eq!(out.reply.action, Action::WriteItems);
}

#[test]
fn a_write_job_larger_than_max_items_is_split() {
    let items: Vec<Item> = (1..=5).map(|i| Item::indexed("key-label-unicode", i, format!("K{i}"))).collect();
    let mut sh = shell_with(vec![write_job(items)]);
    let mut m = solicited("S1");
    m.header.max_items = Some(2);
    let out = sh.send(&m);
    assert_eq!(out.reply.items.as_deref().map(<[Item]>::len), Some(2));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_eq!(out.reply.items.as_deref().map(<[Item]>::len), Some(2));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_eq!(out.reply.items.as_deref().map(<[Item]>::len), Some(1));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(answer_of(&sh, 1), "5 items written, 0 refused");
}

#[test]
fn a_read_all_job_collects_fragments() {
    let mut sh = shell_with(vec![JobKind::Read { items: vec![] }]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::ReadAllItems);
    let mut first = reply("S1", Action::ReadAllItems, ReplyStatus::Accepted, Some(vec![Item::new("a", "1")]));
    first.header.fragment = Some(Fragment::Next);
    let out = sh.send(&first);
    assert_eq!(out.reply.action, Action::GetNextFragment);
    let out = sh.send(&reply("S1", Action::ReadAllItems, ReplyStatus::Accepted, Some(vec![Item::new("b", "2")])));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(answer_of(&sh, 1), "2 items read");
    let names: Vec<&str> = sh.device.inventory.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn restart_ends_the_interaction_and_the_rest_waits_for_the_start_up() {
    let mut sh = shell_with(vec![JobKind::Restart, write_job(vec![Item::new("sntp-addr", "x")])]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::Restart);
    assert!(out.reply.items.is_none());
    let out = sh.send(&reply("S1", Action::Restart, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "S1");
    assert!(send_solicited(&out.reply), "a job remains");
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
    let out = sh.send(&start_up("U1"));
    assert_eq!(out.reply.item("sntp-addr"), Some("x"));
}

#[test]
fn factory_reset_sends_the_password_and_type() {
    let mut sh = shell_with(vec![JobKind::FactoryReset]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::Restart);
    assert_eq!(out.reply.item("restart-password"), Some("124816"));
    assert_eq!(out.reply.item("restart-type"), Some("FactoryReset"));
    let out = sh.send(&reply("S1", Action::Restart, ReplyStatus::Accepted, None));
    assert_eq!(answer_of(&sh, 1), "factory reset accepted");
    // A default-mode device that never was bootstrapped has no secure-mode state to lose;
    // its configuration it loses.
    assert!(out.changes.iter().all(|c| matches!(c, Change::Job(_) | Change::ForgetConfiguration)), "{:?}", out.changes);
    assert!(out.changes.contains(&Change::ForgetConfiguration));
    assert!(sh.audit.is_empty());
}

#[test]
fn after_a_factory_reset_the_configuration_is_read_and_written_again() {
    let mut sh = shell_with(vec![]);
    sh.set_profile(vec![Item::new("admin-pwd", "s3cret"), Item::new("country-iso", "DE")]);
    // The password is written once; the next start-up writes nothing.
    let out = sh.send(&start_up("U0"));
    assert_eq!(out.reply.item("admin-pwd"), Some("s3cret"));
    sh.send(&reply("U0", Action::WriteItems, ReplyStatus::Accepted, None));
    let out = sh.send(&start_up("U1"));
    assert_clean_up(&out.reply, "U1");

    sh.device.jobs =
        vec![Job { id: 7, kind: JobKind::FactoryReset, state: JobState::Queued, attempts: 0, accepted: false }];
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.item("restart-type"), Some("FactoryReset"));
    sh.send(&reply("S1", Action::Restart, ReplyStatus::Accepted, None));
    // The phone comes back with its factory settings: read it all, write the password again.
    let out = sh.send(&start_up("U2"));
    assert_eq!(out.reply.action, Action::ReadAllItems);
    let out = sh.send(&reply("U2", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("admin-pwd"), Some("s3cret"));
}

#[test]
fn a_file_deployment_completes_with_the_phones_status_report() {
    let mut sh = shell_with(vec![JobKind::DeployFile { file: file("ring 1.mp3", "RINGTONE") }]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::FileDeployment);
    assert_eq!(out.reply.item("file-type"), Some("RINGTONE"));
    assert_eq!(out.reply.item("file-name"), Some("ring 1.mp3"));
    assert_eq!(out.reply.item("file-https-base-url"), Some(&*format!("{BASE}0123456789abcdef0123456789abcdef/")));
    assert_eq!(out.reply.item("file-priority"), Some("normal"));
    let out = sh.send(&reply("S1", Action::FileDeployment, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "S1");
    assert!(!send_solicited(&out.reply), "an accepted deployment is not work for the DLS");
    assert_eq!(sh.device.jobs[0].state, JobState::Sent);
    assert!(sh.device.jobs[0].accepted);

    // A report about another file changes nothing; the right one completes the job.
    let report = |name: &str, status: &str| {
        let mut items = basic_items();
        items.extend([
            Item::new("file-deployment-name", name),
            Item::new("file-deployment-type", "RINGTONE"),
            Item::new("file-deployment-status", status),
            Item::new("file-deployment-date", "2026-11-22"),
            Item::new("file-deployment-time", "10:00:00"),
        ]);
        items
    };
    sh.send(&msg("R1", ReasonForContact::new(Reason::Status), Some(report("other.mp3", "ok"))));
    assert_eq!(sh.device.jobs.len(), 1);
    let out = sh.send(&msg("R2", ReasonForContact::new(Reason::Status), Some(report("ring 1.mp3", "ok"))));
    assert_clean_up(&out.reply, "R2");
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
}

#[test]
fn a_failed_file_deployment_report_fails_the_job() {
    let mut sh = shell_with(vec![JobKind::DeployFile { file: file("logo.png", "LOGO") }]);
    sh.send(&solicited("S1"));
    sh.send(&reply("S1", Action::FileDeployment, ReplyStatus::Accepted, None));
    let mut items = basic_items();
    items.extend([Item::new("file-deployment-name", "logo.png"), Item::new("file-deployment-status", "failed")]);
    sh.send(&msg("R1", ReasonForContact::new(Reason::Status), Some(items)));
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
}

fn firmware_job() -> JobKind {
    JobKind::DeployFirmware {
        file: file("fw-V3R5.13.0.img", "APP"),
        sw_type: Some("Siemens SIP".into()),
        sw_version: "V3 R5.13.0".into(),
    }
}

fn start_up_with_version(nonce: &str, version: &str) -> dls_message::WorkpointMessage {
    let mut items = basic_items();
    for i in &mut items {
        if i.name == "software-version" {
            i.value = version.into();
        }
    }
    msg(nonce, ReasonForContact::new(Reason::StartUp), Some(items))
}

/// A firmware job sent and accepted.
fn accepted_firmware() -> Shell {
    let mut sh = shell_with(vec![firmware_job()]);
    let out = sh.send(&solicited("S1"));
    assert_eq!(out.reply.action, Action::SoftwareDeployment);
    assert_eq!(out.reply.item("file-type"), Some("APP"));
    assert_eq!(out.reply.item("file-sw-version"), Some("V3 R5.13.0"));
    assert_eq!(out.reply.item("file-sw-type"), Some("Siemens SIP"));
    sh.send(&reply("S1", Action::SoftwareDeployment, ReplyStatus::Accepted, None));
    assert_eq!(state_of(&sh, 1), Some(JobState::Sent));
    sh
}

#[test]
fn a_firmware_deployment_completes_at_the_start_up_with_the_new_version() {
    let mut sh = accepted_firmware();
    sh.send(&start_up_with_version("U1", "V3 R5.13.0"));
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
    assert_eq!(answer_of(&sh, 1), "the phone started with V3 R5.13.0");
}

#[test]
fn a_start_up_with_another_version_fails_the_firmware_deployment() {
    let mut sh = accepted_firmware();
    sh.send(&start_up_with_version("U1", "V3 R5.12.0"));
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
    assert!(answer_of(&sh, 1).contains("not V3 R5.13.0"), "{}", answer_of(&sh, 1));
}

#[test]
fn a_failed_download_report_fails_the_firmware_deployment() {
    let mut sh = accepted_firmware();
    let mut items = basic_items();
    items.extend([
        Item::new("file-deployment-name", "fw-V3R5.13.0.img"),
        Item::new("file-deployment-type", "APP"),
        Item::new("file-deployment-status", "failed"),
    ]);
    sh.send(&msg("R1", ReasonForContact::new(Reason::Status), Some(items)));
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
}

#[test]
fn deployments_fail_without_a_download_url() {
    let mut sh = Shell::with_config(EngineConfig::new(KEY));
    sh.device.known = true;
    sh.device.inventory = basic_items();
    sh.device.inventory_at = Some(sh.now);
    sh.device.jobs = vec![Job { id: 1, kind: firmware_job(), state: JobState::Queued, attempts: 0, accepted: false }];
    let out = sh.send(&solicited("S1"));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
}

#[test]
fn a_job_sent_without_an_answer_is_retried_then_fails() {
    let mut sh = shell_with(vec![JobKind::Restart]);
    for (n, nonce) in ["S1", "S2", "S3"].iter().enumerate() {
        let out = sh.send(&solicited(nonce));
        assert_eq!(out.reply.action, Action::Restart, "attempt {}", n + 1);
        sh.session = None; // the connection broke before the phone answered
        sh.now = UnixTime(sh.now.0 + 10);
    }
    let out = sh.send(&solicited("S4"));
    assert_clean_up(&out.reply, "S4");
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
    assert_eq!(answer_of(&sh, 1), "no answer after 3 attempts");
}

#[test]
fn a_phone_that_ends_the_interaction_fails_the_job_it_was_sent() {
    let mut sh = shell_with(vec![write_job(vec![Item::new("sntp-addr", "x")])]);
    sh.send(&solicited("S1"));
    let out = sh.send(&msg(
        "S1",
        ReasonForContact::new(Reason::CleanUp),
        Some(vec![Item::new("cleanup-reason", "XML parse error")]),
    ));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(state_of(&sh, 1), Some(JobState::Failed));
    assert!(answer_of(&sh, 1).contains("XML parse error"));
}

#[test]
fn reassert_reads_afresh_and_rewrites_write_only_items() {
    let mut sh = shell_with(vec![JobKind::ReassertConfig]);
    sh.set_profile(vec![Item::new("admin-pwd", "s3cret"), Item::new("country-iso", "DE")]);
    // The password was written before: a normal start-up would not write it again.
    let out = sh.send(&start_up("U0"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("admin-pwd"), Some("s3cret"));
    let out = sh.send(&reply("U0", Action::WriteItems, ReplyStatus::Accepted, None));
    // …then the reassert job: read everything, write everything that differs.
    assert_eq!(out.reply.action, Action::ReadAllItems);
    let out = sh.send(&reply("U0", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("admin-pwd"), Some("s3cret"));
    assert_eq!(out.reply.item("country-iso"), None, "the phone reports DE already");
    let out = sh.send(&reply("U0", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "U0");
    assert_eq!(state_of(&sh, 1), Some(JobState::Done));
}

#[test]
fn jobs_never_run_over_the_default_port_for_a_secure_mode_device() {
    let mut sh = shell_with(vec![write_job(vec![Item::new("sntp-addr", "x")])]);
    sh.device.security.mode = SecurityMode::Nopin;
    let out = sh.send(&msg("L1", ReasonForContact::new(Reason::LocalChanges), Some(basic_items())));
    assert_clean_up(&out.reply, "L1");
    assert!(!send_solicited(&out.reply));
    assert!(sh.job_log.is_empty());
}

#[test]
fn status_and_local_changes_do_not_run_jobs_but_ask_for_a_callback() {
    let mut sh = shell_with(vec![JobKind::Restart]);
    let out = sh.send(&msg("L1", ReasonForContact::new(Reason::InventoryChanges), Some(basic_items())));
    assert_clean_up(&out.reply, "L1");
    assert!(send_solicited(&out.reply));
    assert!(sh.job_log.is_empty());
}

#[test]
fn at_most_the_configured_number_of_jobs_run_in_one_interaction() {
    let mut c = config();
    c.max_jobs_per_interaction = 2;
    let mut sh = shell_with((0..3).map(|i| write_job(vec![Item::new("sntp-addr", format!("n{i}"))])).collect());
    sh.engine = dls_engine::Engine::new(c);
    let mut out = sh.send(&solicited("S1"));
    let mut writes = 0;
    while out.reply.action == Action::WriteItems {
        writes += 1;
        out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    }
    assert_eq!(writes, 2);
    assert!(send_solicited(&out.reply), "the third waits for the callback");
}

#[test]
fn a_reply_for_another_action_than_the_job_sent_is_refused() {
    let mut sh = shell_with(vec![JobKind::Restart]);
    sh.send(&solicited("S1"));
    let out = sh.send(&reply("S1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(out.reply.item("cleanup-reason"), Some(dls_engine::Refusal::UnexpectedReply.cleanup_reason()));
    assert_eq!(state_of(&sh, 1), Some(JobState::Sent), "still unanswered: retried at the next callback");
}
