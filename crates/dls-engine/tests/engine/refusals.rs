//! What the engine refuses: a `CleanUp` that says why (`cleanup-reason`), a note for the
//! log, nothing recorded.

use dls_engine::config::UnknownDevicePolicy;
use dls_engine::{EngineConfig, Note, Refusal};
use dls_message::{Action, Item, Reason, ReasonForContact, ReplyStatus};

use crate::harness::*;

fn assert_refused(out: &dls_engine::Output, nonce: &str) {
    assert_clean_up(&out.reply, nonce);
    assert!(out.changes.is_empty(), "nothing recorded: {:?}", out.changes);
    assert!(out.session.is_none());
    let [Note::Refused(why)] = out.notes.as_slice() else { panic!("one refusal: {:?}", out.notes) };
    // The phone is told why, in the refusal's own words, and nothing else.
    let items = out.reply.items.as_deref().unwrap_or_default();
    assert_eq!(items.len(), 1, "{:?}", out.reply);
    assert_eq!(out.reply.item("cleanup-reason"), Some(why.cleanup_reason()));
}

#[test]
fn reply_to_without_a_session() {
    let mut sh = Shell::new();
    let out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, Some(vec![Item::new("mac-addr", MAC)])));
    assert_refused(&out, "N1");
}

#[test]
fn unknown_reason() {
    let mut sh = Shell::new();
    let out = sh.send(&msg("N1", ReasonForContact::new(Reason::Other("teleport".into())), Some(basic_items())));
    assert_refused(&out, "N1");
}

#[test]
fn no_mac_addr() {
    let mut sh = Shell::new();
    let out = sh.send(&msg("N1", ReasonForContact::new(Reason::StartUp), Some(vec![Item::new("e164", "1")])));
    assert_refused(&out, "N1");
    let out =
        sh.send(&msg("N2", ReasonForContact::new(Reason::StartUp), Some(vec![Item::new("mac-addr", "not-a-mac")])));
    assert_refused(&out, "N2");
    let out = sh.send(&msg("N3", ReasonForContact::new(Reason::StartUp), None));
    assert_refused(&out, "N3");
}

#[test]
fn nonce_from_an_earlier_interaction() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    sh.send(&reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory())));
    assert!(sh.session.is_none());
    let before = sh.device.clone();
    let out = sh.send(&start_up("N1"));
    assert_refused(&out, "N1");
    assert_eq!(sh.device, before);
}

#[test]
fn reply_to_an_action_not_asked() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    let out = sh.send(&reply("N1", Action::WriteItems, ReplyStatus::Accepted, None));
    assert_refused(&out, "N1");
}

#[test]
fn another_device_inside_a_session() {
    let mut sh = Shell::new();
    sh.send(&start_up("N1"));
    let out = sh.send(&reply(
        "N1",
        Action::ReadAllItems,
        ReplyStatus::Accepted,
        Some(vec![Item::new("mac-addr", "00:1A:E8:3C:4D:5F")]),
    ));
    assert_refused(&out, "N1");
}

#[test]
fn unknown_device_when_the_policy_rejects() {
    let mut config = EngineConfig::new(KEY);
    config.unknown_devices = UnknownDevicePolicy::Reject;
    let mut sh = Shell::with_config(config);
    let out = sh.send(&start_up("N1"));
    assert_refused(&out, "N1");
    assert!(!sh.device.known);
}

#[test]
fn fragmented_reply_beyond_the_limits() {
    let mut config = EngineConfig::new(KEY);
    config.max_collected_items = 5;
    let mut sh = Shell::with_config(config);
    sh.send(&start_up("N1"));
    for _ in 0..2 {
        let mut m = reply("N1", Action::ReadAllItems, ReplyStatus::Accepted, Some(inventory()[..3].to_vec()));
        m.header.fragment = Some(dls_message::Fragment::Next);
        let out = sh.send(&m);
        if out.reply.action == Action::CleanUp {
            assert!(out.notes.contains(&Note::Refused(Refusal::FragmentsOverLimits)));
            return;
        }
    }
    panic!("the limit was not enforced");
}
