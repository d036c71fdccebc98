//! Secrets a phone reports (a mobility phone's `user-pwd`, a firmware that answers
//! `ReadAllItems` with its passwords) never reach what the engine asks to persist.

use dls_engine::{Change, JobKind, JobState};
use dls_message::{Action, Item, Reason, ReasonForContact, ReplyStatus};

use crate::harness::*;

const SECRETS: [(&str, &str); 4] = [
    ("user-pwd", "hunter2-user"),
    ("admin-pwd", "hunter2-admin"),
    ("sip-pwd", "hunter2-sip"),
    ("ldap-pwd", "hunter2-ldap"),
];

fn with_secrets(mut items: Vec<Item>) -> Vec<Item> {
    items.extend(SECRETS.iter().map(|(n, v)| Item::new(*n, *v)));
    items
}

fn assert_no_secret_persisted(sh: &Shell) {
    let persisted = format!("{:?} {:?} {:?}", sh.log, sh.device.inventory, sh.job_log);
    for (name, value) in SECRETS {
        assert!(!persisted.contains(value), "{name}'s value persisted: {persisted}");
    }
    assert!(sh.device.inventory.iter().all(|i| !dls_engine::secret_items::is_secret(&i.name)));
}

#[test]
fn passwords_in_a_start_up_and_a_read_all_reply_are_not_kept() {
    let mut sh = Shell::new();
    let first = msg("N1", ReasonForContact::new(Reason::StartUp), Some(with_secrets(basic_items())));
    assert_eq!(sh.send(&first).reply.action, Action::ReadAllItems);
    let out = sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(with_secrets(inventory()))));
    assert_clean_up(&out.reply, "N1");
    // The rest of the inventory is kept.
    assert!(sh.device.inventory.iter().any(|i| i.name == "sntp-addr"));
    assert!(sh.log.iter().any(|c| matches!(c, Change::ReplaceInventory { .. })));
    assert_no_secret_persisted(&sh);
}

#[test]
fn a_mobility_logon_report_keeps_no_user_password() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    let logon = vec![
        Item::new("mac-addr", MAC),
        Item::new("sip-mobility-state", "0"),
        Item::new("e164", "4989700799"),
        Item::new("user-pwd", "hunter2-user"),
        Item::new("user-pwd-unicode", "hunter2-user"),
    ];
    // Refused (no such user): nothing is recorded.
    sh.send(&msg("N2", ReasonForContact::new(Reason::InventoryChanges), Some(logon.clone())));
    assert!(sh.device.inventory.iter().all(|i| i.name != "sip-mobility-state"));
    assert_no_secret_persisted(&sh);
    // Accepted: the rest of the report is, but neither the password nor the user's number.
    sh.users.borrow_mut().add("4989700799", "hunter2-user", vec![]);
    sh.send(&msg("N3", ReasonForContact::new(Reason::InventoryChanges), Some(logon)));
    assert!(sh.device.inventory.iter().any(|i| i.name == "sip-mobility-state"), "the rest is recorded");
    assert!(sh.device.inventory.iter().all(|i| i.value != "4989700799"), "the user's e164 is not the device's");
    assert_no_secret_persisted(&sh);
}

#[test]
fn a_read_job_does_not_keep_the_passwords_it_reads() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    sh.device.jobs = vec![dls_engine::Job {
        id: 1,
        kind: JobKind::Read {
            items: vec![
                dls_engine::ItemKey { name: "admin-pwd".into(), index: None },
                dls_engine::ItemKey { name: "sntp-addr".into(), index: None },
            ],
        },
        state: JobState::Queued,
        attempts: 0,
        accepted: false,
    }];
    let out = sh.send(&msg("S1", ReasonForContact::new(Reason::Solicited), Some(basic_items())));
    assert_eq!(out.reply.action, Action::ReadItems);
    let answer = vec![Item::new("admin-pwd", "hunter2-admin"), Item::new("sntp-addr", "ntp.example.net")];
    sh.send(&reply("S1", Action::ReadItems, ReplyStatus::Accepted, Some(answer)));
    let done = sh.job_log.iter().rev().find(|u| u.state == JobState::Done).expect("the job is done");
    let items = done.items.as_deref().unwrap_or_default();
    assert!(items.iter().any(|i| i.name == "sntp-addr"), "{items:?}");
    assert_no_secret_persisted(&sh);
}
