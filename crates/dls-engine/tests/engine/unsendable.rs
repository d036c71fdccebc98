//! Stored values a phone cannot be sent (a control character, no name, too large for one
//! `WriteItems`): skipped, recorded as the item's write outcome, noted once; the rest of
//! the configuration is written.

use dls_engine::{JobKind, JobState, Note, Output, UnixTime, WriteOutcome};
use dls_message::{Action, EncodeOptions, Item, Message, ReplyStatus, encode};

use crate::harness::*;

/// A known device with a fresh inventory (so a start-up goes straight to the writes).
fn known_shell() -> Shell {
    let mut sh = Shell::new();
    sh.device.known = true;
    sh.device.inventory = inventory().into_iter().filter(|i| i.status.is_none()).collect();
    sh.device.inventory_at = Some(sh.now);
    sh
}

/// The reply as the service would put it on the wire: encoding must succeed (the service
/// answered `500` when it did not).
fn wire(out: &Output) -> String {
    encode(&Message::Dls(out.reply.clone()), &EncodeOptions::default()).expect("the reply encodes")
}

fn not_sent_notes(out: &Output) -> Vec<(String, String)> {
    out.notes
        .iter()
        .filter_map(|n| match n {
            Note::ItemNotSent { item, reason } => Some((item.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn names(out: &Output) -> Vec<String> {
    out.reply.items.iter().flatten().map(|i| i.name.clone()).collect()
}

#[test]
fn a_stored_nul_in_the_global_profile_costs_the_phone_only_that_item() {
    let mut sh = known_shell();
    // As if inserted into the store directly, bypassing the admin API's checks.
    sh.set_profile(vec![
        Item::new("key-label-unicode", "evil\0label"),
        Item::new("sntp-addr", "ntp.example.net"),
        Item::new("", "no name"),
        Item::new("country-iso", "\u{1b}[2J"),
    ]);
    let out = sh.send(&start_up("U1"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(names(&out), vec!["sntp-addr"]);
    assert!(wire(&out).contains("ntp.example.net"));
    let notes = not_sent_notes(&out);
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert_eq!(notes[0].0, "\"key-label-unicode\"");
    assert!(notes[0].1.contains("U+0000"), "{notes:?}");
    assert_eq!(notes[1].0, "(no name)");
    assert!(notes[2].1.contains("U+001B"), "{notes:?}");
    // Recorded as each item's write outcome, with why.
    match sh.written("key-label-unicode").map(|w| &w.outcome) {
        Some(WriteOutcome::NotSent(why)) => assert!(why.contains("U+0000"), "{why}"),
        other => panic!("key-label-unicode: {other:?}"),
    }
    assert!(matches!(sh.written("").map(|w| &w.outcome), Some(WriteOutcome::NotSent(_))));
    assert!(matches!(sh.written("country-iso").map(|w| &w.outcome), Some(WriteOutcome::NotSent(_))));

    let out = sh.send(&reply("U1", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    assert_clean_up(&out.reply, "U1");
    assert_eq!(sh.written("sntp-addr").map(|w| &w.outcome), Some(&WriteOutcome::Accepted));

    // The next start-up neither tries nor notes the same values again.
    sh.now = UnixTime(sh.now.0 + 60);
    let out = sh.send(&start_up("U2"));
    assert_clean_up(&out.reply, "U2");
    assert!(not_sent_notes(&out).is_empty(), "{:?}", out.notes);
    wire(&out);
}

#[test]
fn a_fixed_value_is_written_at_the_next_start_up() {
    let mut sh = known_shell();
    sh.set_profile(vec![Item::new("key-label-unicode", "bad\u{1}")]);
    let out = sh.send(&start_up("F1"));
    assert_clean_up(&out.reply, "F1");
    assert_eq!(not_sent_notes(&out).len(), 1);
    sh.set_profile(vec![Item::new("key-label-unicode", "good")]);
    let out = sh.send(&start_up("F2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.item("key-label-unicode"), Some("good"));
    sh.send(&reply("F2", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    assert_eq!(sh.written("key-label-unicode").map(|w| &w.outcome), Some(&WriteOutcome::Accepted));
}

#[test]
fn one_item_too_large_for_a_write_items_does_not_drop_the_others() {
    let mut sh = known_shell();
    sh.set_profile(vec![Item::new("key-label-unicode", "x".repeat(60_000)), Item::new("sntp-addr", "ntp.example.net")]);
    let out = sh.send(&start_up("L1"));
    assert_eq!(out.reply.action, Action::WriteItems, "the valid item is written, not a bare CleanUp");
    assert_eq!(names(&out), vec!["sntp-addr"]);
    assert!(wire(&out).len() <= 50_000);
    let notes = not_sent_notes(&out);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].1.contains("more than one WriteItems message carries"), "{notes:?}");
    assert!(matches!(sh.written("key-label-unicode").map(|w| &w.outcome), Some(WriteOutcome::NotSent(_))));
}

#[test]
fn large_but_sendable_values_are_still_written_one_message_each() {
    let mut sh = known_shell();
    let items: Vec<Item> = (0..3).map(|i| Item::indexed("key-label-unicode", i, "y".repeat(30_000))).collect();
    sh.set_profile(items);
    let mut nonce = 0;
    let mut out = sh.send(&start_up("B0"));
    let mut sent = 0;
    while out.reply.action == Action::WriteItems {
        assert!(wire(&out).len() <= 50_000);
        sent += out.reply.items.as_ref().map_or(0, Vec::len);
        nonce += 1;
        out = sh.send(&reply(&format!("B{nonce}"), Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    }
    assert_eq!(sent, 3);
    assert!(not_sent_notes(&out).is_empty());
}

fn with_job(items: Vec<Item>) -> Shell {
    let mut sh = known_shell();
    sh.device.jobs = vec![dls_engine::Job {
        id: 1,
        kind: JobKind::Write { items },
        state: JobState::Queued,
        attempts: 0,
        accepted: false,
    }];
    sh
}

fn job_answer(sh: &Shell) -> (Option<JobState>, String) {
    let u = sh.job_log.iter().rev().find(|u| u.id == 1);
    (u.map(|u| u.state), u.and_then(|u| u.answer.clone()).unwrap_or_default())
}

#[test]
fn a_write_job_with_only_an_unsendable_value_fails_at_once_naming_it() {
    let mut sh = with_job(vec![Item::new("key-label-unicode", "a\0b")]);
    let out = sh.send(&start_up("J1"));
    wire(&out);
    assert_clean_up(&out.reply, "J1");
    let (state, answer) = job_answer(&sh);
    assert_eq!(state, Some(JobState::Failed));
    assert!(answer.contains("\"key-label-unicode\"") && answer.contains("U+0000"), "{answer}");
    assert!(!answer.contains("attempts"), "{answer}");
    assert!(sh.device.jobs.is_empty(), "the job is over");
    // A job's write is a one-off: it is not recorded as the item's write outcome.
    assert!(sh.written("key-label-unicode").is_none());
}

#[test]
fn a_write_job_skips_the_unsendable_item_and_writes_the_rest() {
    let mut sh =
        with_job(vec![Item::indexed("key-label-unicode", 2, "z".repeat(60_000)), Item::new("sntp-addr", "ntp")]);
    let out = sh.send(&start_up("J2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(names(&out), vec!["sntp-addr"]);
    assert_eq!(not_sent_notes(&out).len(), 1);
    sh.send(&reply("J2", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    let (state, answer) = job_answer(&sh);
    assert_eq!(state, Some(JobState::Done));
    assert!(answer.starts_with("1 items written, 0 refused, 1 not sent: \"key-label-unicode\" index 2: "), "{answer}");
}

#[test]
fn a_reassert_job_records_what_cannot_be_sent() {
    let mut sh = known_shell();
    sh.set_profile(vec![Item::new("key-label-unicode", "\u{FFFE}"), Item::new("sntp-addr", "ntp.new")]);
    // The start-up's own writes go first; the job's reassert follows.
    sh.device.jobs = vec![dls_engine::Job {
        id: 1,
        kind: JobKind::ReassertConfig,
        state: JobState::Queued,
        attempts: 0,
        accepted: false,
    }];
    let mut out = sh.send(&start_up("R1"));
    let mut n = 0;
    loop {
        wire(&out);
        n += 1;
        let m = match out.reply.action {
            Action::WriteItems => reply(&format!("R{n}"), Action::WriteItems, ReplyStatus::Accepted, Some(vec![])),
            Action::ReadAllItems => {
                reply(&format!("R{n}"), Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory()))
            }
            _ => break,
        };
        assert!(names(&out).iter().all(|n| n != "key-label-unicode"));
        out = sh.send(&m);
    }
    let (state, answer) = job_answer(&sh);
    assert_eq!(state, Some(JobState::Done), "{answer}");
    assert!(answer.contains("1 not sent"), "{answer}");
    assert!(matches!(sh.written("key-label-unicode").map(|w| &w.outcome), Some(WriteOutcome::NotSent(_))));
}

#[test]
fn a_write_job_answer_names_the_first_few_items_not_sent() {
    let mut items: Vec<Item> = (0..5).map(|i| Item::indexed("key-label-unicode", i, "\u{7}")).collect();
    items.push(Item::new("sntp-addr", "ntp"));
    let mut sh = with_job(items);
    let out = sh.send(&start_up("J3"));
    assert_eq!(names(&out), vec!["sntp-addr"]);
    assert_eq!(not_sent_notes(&out).len(), 5, "each is noted");
    sh.send(&reply("J3", Action::WriteItems, ReplyStatus::Accepted, Some(vec![])));
    let (state, answer) = job_answer(&sh);
    assert_eq!(state, Some(JobState::Done));
    assert!(answer.starts_with("1 items written, 0 refused, 5 not sent: \"key-label-unicode\" index 0: "), "{answer}");
    assert!(answer.contains("index 2: ") && !answer.contains("index 3: "), "{answer}");
    assert!(answer.ends_with("; and 2 more"), "{answer}");
}
