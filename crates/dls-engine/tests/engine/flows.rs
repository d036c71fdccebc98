//! Interactions as the protocol reference describes them.

use dls_engine::{Change, Note, UnixTime, WriteOutcome};
use dls_message::{Action, Item, ItemStatus, Reason, ReasonForContact, ReplyStatus};

use crate::harness::*;

/// Runs a start-up of a new device through ReadAllItems; returns the engine's answer to the
/// inventory.
fn first_start_up(sh: &mut Shell) -> dls_engine::Output {
    let out = sh.send(&start_up("N1"));
    assert_eq!(out.reply.action, Action::ReadAllItems);
    assert_eq!(out.reply.header.nonce, "N1");
    assert!(out.reply.items.is_none());
    assert!(out.changes.contains(&Change::Register { mode: dls_engine::SecurityMode::Default }));
    assert!(out.session.is_some());
    sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())))
}

#[test]
fn start_up_of_a_new_device_reads_everything_writes_the_difference_and_cleans_up() {
    let mut sh = Shell::new();
    sh.set_profile(vec![
        Item::new("sntp-addr", "ntp.example.net"),
        Item::new("country-iso", "DE"),
        Item::indexed("function-key-def", 0, "31"),
        Item::new("admin-pwd", "s3cret"),
    ]);
    let out = first_start_up(&mut sh);
    assert!(sh.device.known);
    assert_eq!(sh.device.inventory_at, Some(sh.now));
    // The inventory holds what the phone reported, without the failed item.
    assert!(sh.device.inventory.iter().all(|i| i.name != "user-pwd-unicode"));
    assert_eq!(out.reply.action, Action::WriteItems);
    let names: Vec<(String, Option<u32>)> =
        out.reply.items.unwrap_or_default().into_iter().map(|i| (i.name, i.index)).collect();
    assert_eq!(
        names,
        vec![("sntp-addr".into(), None), ("function-key-def".into(), Some(0)), ("admin-pwd".into(), None)]
    );

    // The phone accepts all but one.
    let refused = vec![Item::indexed("function-key-def", 0, "31").with_status(ItemStatus::InvalidIndex)];
    let out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, Some(refused)));
    assert_clean_up(&out.reply, "N1");
    assert!(out.reply.items.is_none(), "nothing pending: a bare CleanUp");
    assert!(out.session.is_none());
    assert!(out.notes.contains(&Note::ItemsRefused(1)));
    assert_eq!(sh.written("sntp-addr").map(|w| &w.outcome), Some(&WriteOutcome::Accepted));
    assert_eq!(sh.written("admin-pwd").map(|w| &w.outcome), Some(&WriteOutcome::Accepted));
    // The accepted value is now the inventory's; the password is not stored anywhere.
    assert!(sh.device.inventory.iter().any(|i| i.name == "sntp-addr" && i.value == "ntp.example.net"));
    assert!(sh.device.inventory.iter().all(|i| i.name != "admin-pwd"));
    // Nothing the engine asks to persist holds the password.
    assert!(!format!("{:?}", sh.log).contains("s3cret"));

    // Next start-up, inventory fresh: nothing to write (the refused item's value has not
    // changed, and the password was written once).
    sh.now = UnixTime(sh.now.0 + 60);
    let out = sh.send(&start_up("N2"));
    assert_clean_up(&out.reply, "N2");
    assert!(out.session.is_none());
}

#[test]
fn a_changed_password_is_written_once_more() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("admin-pwd", "one")]);
    let out = first_start_up(&mut sh);
    assert_eq!(out.reply.action, Action::WriteItems);
    sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    sh.set_profile(vec![Item::new("admin-pwd", "two")]);
    let out = sh.send(&start_up("N2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.items.as_deref(), Some(&[Item::new("admin-pwd", "two")][..]));
}

#[test]
fn a_refused_item_is_retried_only_when_its_value_changes() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("socketed-headset-mode", "1")]);
    first_start_up(&mut sh);
    sh.send(&reply(
        "N1",
        Action::WriteItems,
        ReplyStatus::Accepted,
        Some(vec![Item::new("socketed-headset-mode", "").with_status(ItemStatus::UnknownItem)]),
    ));
    assert_eq!(
        sh.written("socketed-headset-mode").map(|w| &w.outcome),
        Some(&WriteOutcome::Refused(ItemStatus::UnknownItem))
    );
    assert_eq!(sh.send(&start_up("N2")).reply.action, Action::CleanUp);
    sh.set_profile(vec![Item::new("socketed-headset-mode", "2")]);
    assert_eq!(sh.send(&start_up("N3")).reply.action, Action::WriteItems);
}

#[test]
fn known_device_with_fresh_inventory_skips_the_read() {
    let mut sh = Shell::new();
    first_start_up(&mut sh);
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.new.example")]);
    let out = sh.send(&start_up("N2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.items.as_deref(), Some(&[Item::new("sntp-addr", "ntp.new.example")][..]));
}

#[test]
fn changed_flag_or_old_inventory_reads_again() {
    let mut sh = Shell::new();
    first_start_up(&mut sh);
    let mut m = start_up("N2");
    if let Some(items) = m.items.as_mut() {
        for i in items.iter_mut().filter(|i| i.name == "configuration-changed-flag") {
            i.value = "true".into();
        }
    }
    assert_eq!(sh.send(&m).reply.action, Action::ReadAllItems);
    sh.session = None;
    sh.now = UnixTime(sh.now.0 + 24 * 3600 + 1);
    assert_eq!(sh.send(&start_up("N3")).reply.action, Action::ReadAllItems);
}

#[test]
fn phone_fragments_are_collected_with_get_next_fragment() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    let all = inventory();
    let (a, b) = all.split_at(3);
    let (b, c) = b.split_at(2);
    for part in [a, b] {
        let mut m = reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(part.to_vec()));
        m.header.fragment = Some(dls_message::Fragment::Next);
        let out = sh.send(&m);
        assert_eq!(out.reply.action, Action::GetNextFragment);
        assert!(
            out.changes.iter().all(|c| !matches!(c, Change::ReplaceInventory { .. })),
            "nothing stored before the last fragment"
        );
    }
    let out = sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(c.to_vec())));
    assert_clean_up(&out.reply, "N1");
    let stored: Vec<&str> = sh.device.inventory.iter().map(|i| i.name.as_str()).collect();
    let want: Vec<&str> = all.iter().filter(|i| i.status.is_none()).map(|i| i.name.as_str()).collect();
    assert_eq!(stored, want);
}

#[test]
fn long_writes_are_split_within_max_items_and_each_acknowledged() {
    let mut sh = Shell::new();
    let items: Vec<Item> = (0..10).map(|i| Item::indexed("key-label-unicode", i, format!("Key {i}"))).collect();
    sh.set_profile(items.clone());
    let mut m = start_up("N1");
    m.header.max_items = Some(3);
    sh.send(&m);
    let mut out = sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(basic_items())));
    let mut sent = Vec::new();
    while out.reply.action == Action::WriteItems {
        let part = out.reply.items.clone().unwrap_or_default();
        assert!(part.len() <= 3, "{}", part.len());
        sent.extend(part);
        out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    }
    assert_clean_up(&out.reply, "N1");
    assert_eq!(sent, items);
    assert_eq!(sh.device.written.len(), 10);
}

#[test]
fn busy_keeps_the_work_and_asks_for_a_callback() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.example.net")]);
    first_start_up(&mut sh);
    let out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Busy, None));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(out.reply.item("send-solicited"), Some("true"));
    assert!(out.notes.contains(&Note::Busy));
    assert!(sh.device.written.is_empty(), "nothing recorded as written");
    // The callback: solicited, and the work is done.
    let out = sh.send(&msg("N2", ReasonForContact::new(Reason::Solicited), Some(basic_items())));
    assert_eq!(out.reply.action, Action::WriteItems);
    let out = sh.send(&reply("N2", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    assert_clean_up(&out.reply, "N2");
    assert!(out.reply.items.is_none());
}

#[test]
fn failed_actions_end_the_interaction() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    let out = sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Failed, None));
    assert_clean_up(&out.reply, "N1");
    assert!(matches!(out.notes.as_slice(), [Note::ActionFailed(_)]));
    assert!(sh.device.inventory_at.is_none());
}

#[test]
fn local_changes_are_recorded_and_reasserted_only_by_policy() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.example.net")]);
    first_start_up(&mut sh);
    sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    let mut items = vec![Item::new("mac-addr", MAC), Item::new("sntp-addr", "ntp.user-typed.example")];
    let out = sh.send(&msg("N2", ReasonForContact::new(Reason::LocalChanges), Some(items.clone())));
    assert_clean_up(&out.reply, "N2");
    assert!(sh.device.inventory.iter().any(|i| i.name == "sntp-addr" && i.value == "ntp.user-typed.example"));
    sh.desired.reassert_on_local_changes = true;
    items[1].value = "ntp.again.example".into();
    let out = sh.send(&msg("N3", ReasonForContact::new(Reason::InventoryChanges), Some(items)));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("sntp-addr"), Some("ntp.example.net"));
}

#[test]
fn status_reports_are_recorded() {
    let mut sh = Shell::new();
    let mut items = vec![Item::new("mac-addr", MAC)];
    items.extend([Item::new("file-deployment-name", "ring.mp3"), Item::new("file-deployment-status", "ok")]);
    let out = sh.send(&msg("N1", ReasonForContact::new(Reason::Status), Some(items)));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(sh.deployment.len(), 2);
}

#[test]
fn a_phone_clean_up_is_recorded_and_answered() {
    let mut sh = Shell::new();
    let items = vec![Item::new("mac-addr", MAC), Item::new("cleanup-reason", "password retries exceeded")];
    let out = sh.send(&msg("N1", ReasonForContact::new(Reason::CleanUp), Some(items)));
    assert_clean_up(&out.reply, "N1");
    assert_eq!(sh.phone_cleanup, Some(Some("password retries exceeded".into())));
    // Within an interaction too (no mac-addr needed there).
    sh.send(&start_up("N2"));
    let out = sh.send(&msg(
        "N2",
        ReasonForContact::new(Reason::CleanUp),
        Some(vec![Item::new("cleanup-reason", "parse error")]),
    ));
    assert_clean_up(&out.reply, "N2");
    assert!(out.session.is_none());
}

#[test]
fn replies_carry_the_nonce_they_answer_even_when_the_phone_switches() {
    let mut sh = Shell::new();
    sh.set_profile(vec![Item::new("sntp-addr", "x")]);
    sh.send(&start_up("AAAA"));
    let out = sh.send(&reply("BBBB", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert_eq!(out.reply.header.nonce, "BBBB");
    assert!(out.changes.contains(&Change::Nonce("BBBB".into())));
    let out = sh.send(&reply("CCCC", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_clean_up(&out.reply, "CCCC");
}

#[test]
fn the_address_a_phone_calls_from_is_recorded_once_per_interaction() {
    let mut sh = Shell::new();
    let out = sh.send(&start_up("N1"));
    assert_eq!(out.reply.action, Action::ReadAllItems);
    assert!(out.changes.contains(&Change::CalledFrom(PEER)));
    assert_eq!(sh.called_from, Some(PEER));
    // Within the interaction, not again.
    let out = sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert!(!out.changes.iter().any(|c| matches!(c, Change::CalledFrom(_))), "{:?}", out.changes);
    // A shell that does not know the peer records nothing.
    sh.peer = None;
    sh.now = UnixTime(sh.now.0 + 60);
    let out = sh.send(&start_up("N2"));
    assert!(!out.changes.iter().any(|c| matches!(c, Change::CalledFrom(_))));
}
