//! Random phone behaviour never panics and always ends in `CleanUp`.

use dls_engine::Output;
use dls_message::{Action, Fragment, Item, ItemStatus, Reason, ReasonForContact, ReplyStatus};
use proptest::prelude::*;

use crate::harness::*;

#[derive(Clone, Debug)]
enum Choice {
    Accept { fragment_next: bool, refuse_first: bool },
    Fail,
    Busy,
    WrongAction,
    Garbage(u8),
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        6 => (any::<bool>(), any::<bool>()).prop_map(|(fragment_next, refuse_first)| Choice::Accept { fragment_next, refuse_first }),
        1 => Just(Choice::Fail),
        1 => Just(Choice::Busy),
        1 => Just(Choice::WrongAction),
        1 => any::<u8>().prop_map(Choice::Garbage),
    ]
}

fn opening() -> impl Strategy<Value = Reason> {
    prop::sample::select(vec![
        Reason::StartUp,
        Reason::Solicited,
        Reason::LocalChanges,
        Reason::InventoryChanges,
        Reason::Status,
        Reason::CleanUp,
        Reason::ReplyTo,
        Reason::Other("x".into()),
    ])
}

const USER: &str = "+4989123";
const PASSWORD: &str = "hunter2-mobility";

/// A mobility phone's opening message: a logon (right or wrong password), a restore, a
/// logoff with modified data, a start-up that says a user is logged on, one in another
/// state.
fn mobility_opening(kind: u8, state: &str) -> dls_message::WorkpointMessage {
    let mut items = basic_items();
    items.extend([Item::new("sip-mobility-state", state), Item::new("basic-e164", "4989700712")]);
    let (reason, extra): (Reason, Vec<Item>) = match kind {
        1 => (Reason::InventoryChanges, vec![Item::new("user-pwd", PASSWORD), Item::new("e164", USER)]),
        2 => (Reason::InventoryChanges, vec![Item::new("user-pwd", "wrong"), Item::new("e164", USER)]),
        3 => (Reason::InventoryChanges, vec![Item::new("requested-items", "userdata-phonebook,userdata-ldap")]),
        4 => (Reason::InventoryChanges, vec![Item::new("modified-items", "userdata-phonebook,userdata-ldap")]),
        5 => (Reason::Solicited, vec![Item::new("e164", USER)]),
        _ => (Reason::StartUp, vec![Item::new("e164", USER)]),
    };
    for e in extra {
        items.retain(|i| i.name != e.name);
        items.push(e);
    }
    msg("N0", ReasonForContact::new(reason), Some(items))
}

/// The phone's next message, given the DLS's last answer and a random choice.
fn answer(nonce: &str, last: &Output, c: &Choice) -> dls_message::WorkpointMessage {
    let action = match last.reply.action {
        Action::GetNextFragment => Action::ReadAllItems,
        ref a => a.clone(),
    };
    match c {
        Choice::Accept { fragment_next, refuse_first } => {
            let mut items: Vec<Item> = last.reply.items.clone().unwrap_or_else(inventory);
            if *refuse_first {
                if let Some(first) = items.first_mut() {
                    first.status = Some(ItemStatus::Failed);
                }
            } else if action == Action::WriteItems {
                items.clear();
            }
            let mut m = reply(nonce, action, ReplyStatus::Accepted, Some(items));
            if *fragment_next {
                m.header.fragment = Some(Fragment::Next);
            }
            m
        }
        Choice::Fail => reply(nonce, action, ReplyStatus::Failed, None),
        Choice::Busy => reply(nonce, action, ReplyStatus::Busy, None),
        Choice::WrongAction => reply(nonce, Action::Restart, ReplyStatus::Accepted, None),
        Choice::Garbage(b) => msg(nonce, ReasonForContact::new(Reason::Other(format!("g{b}"))), None),
    }
}

fn job_kind(k: u8) -> dls_engine::JobKind {
    use dls_engine::{FileRef, JobKind};
    let file = |t: &str| FileRef {
        file_id: 1,
        name: "f.bin".into(),
        file_type: t.into(),
        priority: "normal".into(),
        token: "t".into(),
    };
    match k {
        0 => JobKind::Write { items: vec![Item::new("sntp-addr", "x"), Item::indexed("key-label-unicode", 1, "K")] },
        1 => JobKind::Read { items: vec![] },
        2 => JobKind::Read { items: vec![dls_engine::ItemKey { name: "e164".into(), index: None }] },
        3 => JobKind::Restart,
        4 => JobKind::DeployFile { file: file("LOGO") },
        5 => JobKind::DeployFirmware { file: file("APP"), sw_type: None, sw_version: "V3 R6.0.0".into() },
        6 => JobKind::MobilityLogon { number: USER.into() },
        7 => JobKind::MobilityLogoff { number: USER.into() },
        _ => JobKind::ReassertConfig,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_interaction_ends_in_clean_up(
        opening in opening(),
        desired in prop::collection::vec(("[a-z]{1,8}", prop::option::of(0u32..4), "[a-z0-9]{0,6}"), 0..20),
        max_items in prop::option::of(1i64..6),
        choices in prop::collection::vec(choice(), 1..60),
        known in any::<bool>(),
        jobs in prop::collection::vec(0u8..9, 0..6),
        mobility in 0u8..8,
        state in prop::sample::select(vec!["0", "1", "2", "x"]),
        logged_on_here in any::<bool>(),
        user_data in any::<bool>(),
    ) {
        let mut config = dls_engine::EngineConfig::new(KEY);
        config.files_base_url = Some("https://dls.example/files/".into());
        let mut sh = Shell::with_config(config);
        sh.device.jobs = jobs.iter().enumerate().map(|(i, k)| dls_engine::Job {
            id: i as i64,
            kind: job_kind(*k),
            state: dls_engine::JobState::Queued,
            attempts: 0,
            accepted: false,
        }).collect();
        sh.set_profile(desired.into_iter().map(|(n, i, v)| Item { index: i, ..Item::new(n, v) }).collect());
        if known {
            sh.device.known = true;
            sh.device.inventory = inventory();
            sh.device.inventory_at = Some(sh.now);
        }
        sh.users.borrow_mut().add(USER, PASSWORD, vec![Item::indexed("key-label-unicode", 1, "Anna")]);
        if logged_on_here {
            let mut users = sh.users.borrow_mut();
            let user = &mut users.users.get_mut(USER).expect("added").user;
            user.device = Some(sh.mac);
            if user_data {
                user.data.push(dls_engine::mobility::SavedData {
                    name: "userdata-phonebook".into(),
                    size: 4,
                    value: Some("Qm9vaw==".into()),
                });
            }
        }
        let mut first = if mobility == 0 {
            msg("N0", ReasonForContact::new(opening), Some(basic_items()))
        } else {
            mobility_opening(mobility, state)
        };
        first.header.max_items = max_items;
        let mut out = sh.send(&first);
        prop_assert_eq!(&out.reply.header.nonce, "N0");
        let mut steps = 0;
        for (i, c) in choices.iter().enumerate() {
            if out.session.is_none() {
                prop_assert_eq!(&out.reply.action, &Action::CleanUp);
                break;
            }
            if let Some(limit) = max_items
                && out.reply.action == Action::WriteItems {
                    prop_assert!(out.reply.items.as_ref().map_or(0, Vec::len) <= usize::try_from(limit).unwrap_or(usize::MAX));
                }
            let nonce = format!("N{}", i % 3);
            let m = answer(&nonce, &out, c);
            out = sh.send(&m);
            prop_assert_eq!(&out.reply.header.nonce, &nonce);
            steps += 1;
        }
        // A phone that keeps accepting finishes: drive it to the end.
        while out.session.is_some() {
            prop_assert!(steps < 10_000, "does not end");
            let m = answer("N9", &out, &Choice::Accept { fragment_next: false, refuse_first: false });
            out = sh.send(&m);
            steps += 1;
        }
        prop_assert_eq!(out.reply.action, Action::CleanUp);
        // The password a phone sent is never persisted; a device has one user at most.
        let persisted = format!("{:?} {:?}", sh.log, sh.device.inventory);
        prop_assert!(!persisted.contains(PASSWORD));
        let here = sh.users.borrow().users.values().filter(|k| k.user.device == Some(sh.mac)).count();
        prop_assert!(here <= 1);
    }
}
