//! Mobility (hot desking), driven in memory: the issue's sequences (logon, the interim
//! start-up, restore, logoff), refusals, a phone busy in the middle of a logon, a
//! connection lost between steps, one user on two phones (the forced logoff, the grace),
//! the administrator's jobs, and what never reaches the inventory.

use std::collections::BTreeMap;

use dls_engine::mobility::{MobilityInput, MobilityQuery, SavedData, Verdict, Whom, reported_password};
use dls_engine::{AuditKind, Change, Job, JobKind, JobState, MobilityChange, MobilityUser, Note, Refusal, UnixTime};
use dls_message::{Action, Item, MacAddr, Reason, ReasonForContact, ReplyStatus, WorkpointMessage};

use crate::harness::*;

/// A user as the in-memory store keeps it: every data value, and the password in clear
/// (the real shell checks an Argon2id hash).
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub(crate) user: MobilityUser,
    pub(crate) password: String,
}

/// The mobility part of an in-memory store, shared by the shells of several phones.
#[derive(Clone, Debug, Default)]
pub(crate) struct Users {
    pub(crate) users: BTreeMap<String, Kept>,
    /// Answer every password check "throttled".
    pub(crate) throttled: bool,
    /// The throttle's counts: (number, success).
    pub(crate) attempts: Vec<(String, bool)>,
    /// Jobs queued by forced logoffs, for the devices they are for.
    pub(crate) queued: Vec<(MacAddr, Job)>,
    next_job: i64,
}

impl Users {
    pub(crate) fn add(&mut self, number: &str, password: &str, items: Vec<Item>) {
        let user = MobilityUser { number: number.into(), items, ..MobilityUser::default() };
        self.users.insert(number.into(), Kept { user, password: password.into() });
    }

    /// What the shell loads for `q`: values of data only where asked.
    pub(crate) fn input(&self, mac: MacAddr, q: &MobilityQuery, msg: &WorkpointMessage) -> MobilityInput {
        let strip = |u: &MobilityUser, keep: &dyn Fn(&str) -> bool| {
            let mut u = u.clone();
            for d in &mut u.data {
                if !keep(&d.name) {
                    d.value = None;
                }
            }
            u
        };
        let here = self.users.values().find(|k| k.user.device == Some(mac));
        let named = q.named.as_ref().and_then(|n| self.users.get(n));
        let verdict = match q.check_password {
            None => Verdict::NotChecked,
            Some(_) if self.throttled => Verdict::Throttled,
            Some(whom) => match if whom == Whom::Named { named } else { here } {
                None => Verdict::UnknownUser,
                Some(k) if reported_password(msg) == Some(k.password.as_str()) => Verdict::Right,
                Some(_) => Verdict::Wrong,
            },
        };
        MobilityInput {
            here: here.map(|k| strip(&k.user, &|n| q.restore.iter().any(|r| r == n))),
            named: named.map(|k| strip(&k.user, &|_| false)),
            verdict,
            job_users: q
                .job_users
                .iter()
                .filter_map(|n| self.users.get(n))
                .map(|k| strip(&k.user, &|_| q.job_data.contains(&k.user.number)))
                .collect(),
        }
    }

    /// Whether the store would commit these changes (every `Expect` holds, one user a
    /// device): tried on a copy.
    pub(crate) fn expectations_hold(&self, mac: MacAddr, changes: &[Change]) -> bool {
        let mut copy = self.clone();
        changes.iter().all(|c| match c {
            Change::Mobility(m) => copy.try_apply(mac, m, UnixTime(0)),
            _ => true,
        })
    }

    pub(crate) fn apply(&mut self, mac: MacAddr, m: &MobilityChange, now: UnixTime) {
        assert!(self.try_apply(mac, m, now), "checked before: {m:?}");
    }

    fn try_apply(&mut self, mac: MacAddr, m: &MobilityChange, now: UnixTime) -> bool {
        match m {
            MobilityChange::Expect { number, revision } => match self.users.get_mut(number) {
                Some(k) if k.user.revision == *revision => {
                    k.user.revision += 1;
                    true
                }
                _ => false,
            },
            MobilityChange::LogOn { number, at } => {
                if self.users.values().any(|k| k.user.device == Some(mac) && &k.user.number != number) {
                    return false;
                }
                let Some(k) = self.users.get_mut(number) else { return false };
                (k.user.device, k.user.since, k.user.logoff_requested_at) = (Some(mac), Some(*at), None);
                true
            }
            MobilityChange::LogOff { number } => {
                if let Some(k) = self.users.get_mut(number) {
                    (k.user.device, k.user.since, k.user.logoff_requested_at) = (None, None, None);
                }
                true
            }
            MobilityChange::SaveData { number, items, .. } => {
                let Some(k) = self.users.get_mut(number) else { return false };
                for d in items {
                    k.user.data.retain(|s| s.name != d.name);
                    if !d.value.is_empty() {
                        k.user.data.push(SavedData {
                            name: d.name.clone(),
                            size: d.size,
                            value: Some(d.value.clone()),
                        });
                    }
                }
                true
            }
            MobilityChange::RequestLogoff { number, device, at } => {
                let Some(k) = self.users.get_mut(number) else { return false };
                k.user.logoff_requested_at = Some(*at);
                let kind = JobKind::MobilityLogoff { number: number.clone() };
                if !self.queued.iter().any(|(m, j)| m == device && j.kind == kind) {
                    self.next_job += 1;
                    let job =
                        Job { id: 100 + self.next_job, kind, state: JobState::Queued, attempts: 0, accepted: false };
                    self.queued.push((*device, job));
                }
                let _ = now;
                true
            }
            MobilityChange::Attempt { number, success, .. } => {
                self.attempts.push((number.clone(), *success));
                true
            }
            other => panic!("unknown mobility change {other:?}"),
        }
    }

    pub(crate) fn user(&self, number: &str) -> &MobilityUser {
        &self.users.get(number).expect("a user").user
    }
}

const USER: &str = "+4989123";
const PASSWORD: &str = "typed-at-the-phone";
const BASIC: &str = "4989700712";
const ALL_DATA: &str = "userdata-vu1,userdata-call-log,userdata-ring-tone,userdata-phonebook,userdata-call-group,\
userdata-voice-record,userdata-picture,userdata-ring-tone-mp3,userdata-screensaver,userdata-ldap";

/// A known phone whose inventory is fresh, with a profile of its own, and the user.
fn phone(last: u8) -> Shell {
    let mut sh = Shell::new();
    sh.mac = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x3C, 0x4D, last]);
    sh.set_profile(vec![Item::new("sntp-addr", "ntp.example.net"), Item::indexed("key-label-unicode", 1, "Reception")]);
    sh.device.known = true;
    sh.device.inventory = phone_items(&sh, "1", BASIC);
    sh.device
        .inventory
        .extend([Item::new("sntp-addr", "ntp.example.net"), Item::indexed("key-label-unicode", 1, "Reception")]);
    sh.device.inventory_at = Some(sh.now);
    sh
}

/// Two phones sharing one store of users.
fn two_phones() -> (Shell, Shell) {
    let a = phone(0x01);
    let mut b = phone(0x02);
    b.users = a.users.clone();
    a.users.borrow_mut().add(
        USER,
        PASSWORD,
        vec![Item::indexed("key-label-unicode", 1, "Anna"), Item::new("language-iso", "de")],
    );
    (a, b)
}

/// What a mobility phone reports in every message.
fn phone_items(sh: &Shell, state: &str, e164: &str) -> Vec<Item> {
    vec![
        Item::new("device-type", "OpenStage 60"),
        Item::new("mac-addr", sh.mac.to_string()),
        Item::new("contact-me-uri", "http://192.0.2.41:8085/contact_dls.html/ContactDLS"),
        Item::new("configuration-changed-flag", "false"),
        Item::new("sip-mobility-state", state),
        Item::new("e164", e164),
        Item::new("basic-e164", BASIC),
        Item::new("mobility-enabled", "true"),
    ]
}

fn message(
    sh: &Shell,
    nonce: &str,
    reason: Reason,
    state: &str,
    e164: &str,
    extra: &[(&str, &str)],
) -> WorkpointMessage {
    let mut items = phone_items(sh, state, e164);
    for (n, v) in extra {
        items.retain(|i| i.name != *n);
        items.push(Item::new(*n, *v));
    }
    msg(nonce, ReasonForContact::new(reason), Some(items))
}

fn logon(sh: &Shell, nonce: &str, number: &str, password: &str) -> WorkpointMessage {
    message(sh, nonce, Reason::InventoryChanges, "0", number, &[("user-pwd", password)])
}

fn restore(sh: &Shell, nonce: &str) -> WorkpointMessage {
    message(sh, nonce, Reason::InventoryChanges, "0", USER, &[("requested-items", ALL_DATA)])
}

fn logoff(sh: &Shell, nonce: &str, password: Option<&str>, modified: &str) -> WorkpointMessage {
    let mut extra = vec![("configuration-changed-flag", "true"), ("modified-items", modified)];
    if let Some(p) = password {
        extra.push(("user-pwd", p));
    }
    message(sh, nonce, Reason::InventoryChanges, "1", USER, &extra)
}

fn accepted(nonce: &str, action: Action, items: Option<Vec<Item>>) -> WorkpointMessage {
    reply(nonce, action, ReplyStatus::Accepted, items)
}

fn reason(out: &dls_engine::Output) -> Option<&str> {
    out.reply.item("cleanup-reason")
}

fn item<'a>(out: &'a dls_engine::Output, name: &str) -> Option<&'a Item> {
    out.reply.items.iter().flatten().find(|i| i.name == name)
}

/// Logs the user on at `sh` through the phone's two messages.
fn log_on(sh: &mut Shell, nonce: &str) {
    let out = sh.send(&logon(sh, nonce, USER, PASSWORD));
    assert_eq!(out.reply.action, Action::WriteItems, "{out:?}");
    let out = sh.send(&accepted(nonce, Action::WriteItems, None));
    assert_clean_up(&out.reply, nonce);
    assert_eq!(sh.users.borrow().user(USER).device, Some(sh.mac));
}

#[test]
fn the_issues_logon_interim_start_up_restore_and_logoff() {
    let (mut a, _) = two_phones();
    // 1. inventory-changes, state 0, e164 = the user's, user-pwd.
    let out = a.send(&logon(&a, "L1", USER, PASSWORD));
    assert_eq!(out.reply.action, Action::WriteItems);
    let state = item(&out, "sip-mobility-state").expect("state written");
    assert_eq!((state.value.as_str(), state.status.as_ref().map(|s| s.as_str())), ("0", Some("secure")));
    assert_eq!(item(&out, "e164").map(|i| i.value.as_str()), Some(USER));
    assert_eq!(item(&out, "key-label-unicode").map(|i| i.value.as_str()), Some("Anna"), "the user's profile wins");
    assert_eq!(item(&out, "language-iso").map(|i| i.value.as_str()), Some("de"));
    // Recorded before the reply is sent, in the message's transaction.
    assert_eq!(a.users.borrow().user(USER).device, Some(a.mac));
    assert_eq!(a.users.borrow().attempts, [(USER.to_owned(), true)]);
    // 2. reply-to accepted: CleanUp, audited.
    let out = a.send(&accepted("L1", Action::WriteItems, None));
    assert_clean_up(&out.reply, "L1");
    assert!(a.audit.contains(&AuditKind::MobilityLogon));
    // Nothing of the protocol or the user's number became the device's inventory.
    let inv = &a.device.inventory;
    assert!(inv.iter().all(|i| i.name != "user-pwd"));
    assert_eq!(inv.iter().find(|i| i.name == "e164").map(|i| i.value.as_str()), Some(BASIC));
    assert!(!format!("{:?}", a.log).contains(PASSWORD));

    // 3. start-up, state 2, the user's e164: the device's own configuration does not
    // overwrite the user's items.
    a.now = UnixTime(a.now.0 + 30);
    let mut items = phone_items(&a, "2", USER);
    items.push(Item::indexed("key-label-unicode", 1, "Anna"));
    let out = a.send(&msg("S1", ReasonForContact::new(Reason::StartUp), Some(items)));
    assert_clean_up(&out.reply, "S1");
    assert!(reason(&out).is_none());

    // 4. restore: no data saved yet, CleanUp.
    let out = a.send(&restore(&a, "R1"));
    assert_clean_up(&out.reply, "R1");
    assert!(reason(&out).is_none(), "{out:?}");

    // Logoff 1: ReadItems of the modified items.
    let out = a.send(&logoff(&a, "O1", Some(PASSWORD), "userdata-phonebook,userdata-call-log"));
    assert_eq!(out.reply.action, Action::ReadItems);
    let asked: Vec<&str> = out.reply.items.iter().flatten().map(|i| i.name.as_str()).collect();
    assert_eq!(asked, ["userdata-phonebook", "userdata-call-log"]);
    // 2. reply-to with the values (and one not asked for, ignored): stored, logged off.
    let values = vec![
        Item::indexed("userdata-phonebook", 1, "UGhvbmUgYm9vaw=="),
        Item::indexed("userdata-call-log", 1, "Q2FsbHM"),
        Item::indexed("userdata-picture", 1, "UGlj"),
    ];
    let out = a.send(&accepted("O1", Action::ReadItems, Some(values)));
    assert_clean_up(&out.reply, "O1");
    let users = a.users.borrow();
    let u = users.user(USER);
    assert_eq!(u.device, None);
    let saved: Vec<(&str, u64)> = u.data.iter().map(|d| (d.name.as_str(), d.size)).collect();
    assert_eq!(saved, [("userdata-phonebook", 10), ("userdata-call-log", 5)]);
    drop(users);
    assert!(a.audit.contains(&AuditKind::MobilityLogoff));
    assert!(a.device.inventory.iter().all(|i| !i.name.starts_with("userdata-") && i.name != "modified-items"));

    // 3. start-up, state 1, e164 back: the device's own configuration where it differs.
    let mut items = phone_items(&a, "1", BASIC);
    items.push(Item::indexed("key-label-unicode", 1, "Anna"));
    let out = a.send(&msg("S2", ReasonForContact::new(Reason::StartUp), Some(items)));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(item(&out, "key-label-unicode").map(|i| i.value.as_str()), Some("Reception"));
}

#[test]
fn data_written_at_logoff_on_one_phone_comes_back_at_the_restore_on_another() {
    let (mut a, mut b) = two_phones();
    log_on(&mut a, "L1");
    a.send(&logoff(&a, "O1", None, "userdata-phonebook"));
    a.send(&accepted("O1", Action::ReadItems, Some(vec![Item::indexed("userdata-phonebook", 1, "Qm9vaw==")])));
    log_on(&mut b, "L2");
    let out = b.send(&restore(&b, "R2"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(out.reply.items, Some(vec![Item::indexed("userdata-phonebook", 1, "Qm9vaw==")]));
    let out = b.send(&accepted("R2", Action::WriteItems, None));
    assert_clean_up(&out.reply, "R2");
    // A logoff without modified-items logs off at once and keeps the data.
    let out = b.send(&logoff(&b, "O2", None, ""));
    assert_clean_up(&out.reply, "O2");
    assert_eq!(b.users.borrow().user(USER).device, None);
    assert_eq!(b.users.borrow().user(USER).data.len(), 1);
}

#[test]
fn wrong_passwords_unknown_users_and_the_throttle_are_refused_and_audited() {
    let (mut a, _) = two_phones();
    for (number, password, why) in [
        (USER, "wrong", "mobility: logon refused"),
        ("+4900000", PASSWORD, "mobility: logon refused"),
        ("not a number", PASSWORD, "mobility: logon refused"),
    ] {
        let before = a.device.inventory.clone();
        let out = a.send(&logon(&a, "W1", number, password));
        assert_clean_up(&out.reply, "W1");
        assert_eq!(reason(&out), Some(why));
        assert!(out.session.is_none());
        assert_eq!(a.device.inventory, before, "no state change");
        assert_eq!(a.audit.last(), Some(&AuditKind::MobilityRefused));
        assert!(out.notes.contains(&Note::Refused(Refusal::MobilityLogonRefused)));
    }
    // Unknown user and wrong password look the same to the phone, are counted, and told
    // apart in the audit.
    assert_eq!(a.users.borrow().attempts, [(USER.to_owned(), false), ("+4900000".to_owned(), false)]);
    let details: Vec<String> = a
        .log
        .iter()
        .filter_map(|c| match c {
            Change::Audit(e) if e.kind == AuditKind::MobilityRefused => Some(e.detail.clone()),
            _ => None,
        })
        .collect();
    assert!(details[0].contains("wrong password") && details[1].contains("unknown user"), "{details:?}");
    assert!(!format!("{details:?}{:?}", a.log).contains("wrong\""), "no password in the audit");
    assert_eq!(a.users.borrow().user(USER).device, None);

    a.users.borrow_mut().throttled = true;
    let out = a.send(&logon(&a, "W2", USER, PASSWORD));
    assert_eq!(reason(&out), Some("mobility: too many attempts, try later"));
    assert_eq!(a.users.borrow().attempts.len(), 2, "a throttled attempt is not counted");
    a.users.borrow_mut().throttled = false;
    log_on(&mut a, "W3");
}

#[test]
fn a_phone_busy_in_the_middle_of_a_logon_undoes_it() {
    let (mut a, _) = two_phones();
    a.send(&logon(&a, "L1", USER, PASSWORD));
    assert_eq!(a.users.borrow().user(USER).device, Some(a.mac));
    let out = a.send(&reply("L1", Action::WriteItems, ReplyStatus::Busy, None));
    assert_clean_up(&out.reply, "L1");
    assert!(out.notes.contains(&Note::Busy));
    assert_eq!(a.users.borrow().user(USER).device, None, "undone");
    assert_eq!(a.audit.last(), Some(&AuditKind::MobilityRefused));
    // So is a failed one.
    a.send(&logon(&a, "L2", USER, PASSWORD));
    a.send(&reply("L2", Action::WriteItems, ReplyStatus::Failed, None));
    assert_eq!(a.users.borrow().user(USER).device, None);
    log_on(&mut a, "L3");
}

#[test]
fn a_connection_lost_between_steps_leaves_the_phones_report_to_decide() {
    let (mut a, _) = two_phones();
    // The logon's reply never comes: the user stays recorded here.
    let out = a.send(&logon(&a, "L1", USER, PASSWORD));
    assert_eq!(out.reply.action, Action::WriteItems);
    a.session = None;
    // The phone took it: its start-up says state 2, and the user's items stay.
    a.now = UnixTime(a.now.0 + 60);
    let out = a.send(&message(&a, "S1", Reason::StartUp, "2", USER, &[]));
    assert_eq!(out.reply.action, Action::WriteItems, "the user's items, never written yet");
    assert_eq!(item(&out, "key-label-unicode").map(|i| i.value.as_str()), Some("Anna"));
    assert!(item(&out, "e164").is_none(), "the phone reports the user's number already");
    a.send(&accepted("S1", Action::WriteItems, None));
    // The logoff's reply is lost: the phone's start-up in state 1 logs the user off,
    // without its data.
    let out = a.send(&logoff(&a, "O1", None, "userdata-phonebook"));
    assert_eq!(out.reply.action, Action::ReadItems);
    a.session = None;
    let out = a.send(&message(&a, "S2", Reason::StartUp, "1", BASIC, &[]));
    assert_eq!(a.users.borrow().user(USER).device, None);
    assert!(a.users.borrow().user(USER).data.is_empty());
    let detail = a.log.iter().rev().find_map(|c| match c {
        Change::Audit(e) if e.kind == AuditKind::MobilityLogoff => Some(e.detail.clone()),
        _ => None,
    });
    assert!(detail.is_some_and(|d| d.contains("data not saved")));
    // And the device gets its own configuration back.
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(item(&out, "key-label-unicode").map(|i| i.value.as_str()), Some("Reception"));
}

#[test]
fn one_user_two_phones_the_forced_logoff_then_the_retry() {
    let (mut a, mut b) = two_phones();
    log_on(&mut a, "L1");
    a.send(&restore(&a, "R1"));
    // B: refused, and a forced logoff of A is queued.
    let out = b.send(&logon(&b, "B1", USER, PASSWORD));
    assert_eq!(reason(&out), Some("mobility: user logged on at another phone; logging off there, try again"));
    assert_eq!(b.audit.last(), Some(&AuditKind::MobilityForcedLogoff));
    let queued: Vec<(MacAddr, Job)> = std::mem::take(&mut b.users.borrow_mut().queued);
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].0, &queued[0].1.kind), (a.mac, &JobKind::MobilityLogoff { number: USER.into() }));
    // Again within the grace: refused, no second job.
    let out = b.send(&logon(&b, "B2", USER, PASSWORD));
    assert_eq!(reason(&out), Some("mobility: user logged on at another phone; logging off there, try again"));
    assert!(b.users.borrow().queued.is_empty());

    // A calls in (contact-me): its data is read and saved, its identity written back.
    a.device.jobs = queued.into_iter().map(|(_, j)| j).collect();
    let out = a.send(&message(&a, "A1", Reason::Solicited, "0", USER, &[]));
    // The configuration first (the user's, nothing to write), then the job.
    assert_eq!(out.reply.action, Action::ReadItems, "{out:?}");
    assert_eq!(out.reply.items.as_ref().map(Vec::len), Some(10));
    let out = a.send(&accepted(
        "A1",
        Action::ReadItems,
        Some(vec![
            Item::indexed("userdata-phonebook", 1, "Qm9vaw=="),
            Item::new("userdata-ldap", "").with_status(dls_message::ItemStatus::UnknownItem),
        ]),
    ));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(item(&out, "e164").map(|i| i.value.as_str()), Some(BASIC));
    let state = item(&out, "sip-mobility-state").expect("state");
    assert_eq!((state.value.as_str(), state.status.as_ref().map(|s| s.as_str())), ("1", Some("secure")));
    assert_eq!(item(&out, "key-label-unicode").map(|i| i.value.as_str()), Some("Reception"), "A's own item");
    assert!(item(&out, "language-iso").is_none(), "not one of A's");
    assert_eq!(a.users.borrow().user(USER).device, Some(a.mac), "until the phone accepts");
    let out = a.send(&accepted("A1", Action::WriteItems, None));
    assert_clean_up(&out.reply, "A1");
    assert_eq!(a.users.borrow().user(USER).device, None);
    assert_eq!(a.users.borrow().user(USER).data.len(), 1);
    assert!(a.job_log.iter().any(|u| u.state == JobState::Done));

    // B's retry succeeds.
    log_on(&mut b, "B3");
}

#[test]
fn a_forced_logoff_the_phone_does_not_answer_in_time_lets_the_other_logon_go_ahead() {
    let (mut a, mut b) = two_phones();
    log_on(&mut a, "L1");
    b.send(&logon(&b, "B1", USER, PASSWORD));
    b.now = UnixTime(b.now.0 + 299);
    let out = b.send(&logon(&b, "B2", USER, PASSWORD));
    assert_eq!(reason(&out), Some("mobility: user logged on at another phone; logging off there, try again"));
    b.now = UnixTime(b.now.0 + 1);
    let out = b.send(&logon(&b, "B3", USER, PASSWORD));
    assert_eq!(out.reply.action, Action::WriteItems, "{out:?}");
    assert!(b.audit.contains(&AuditKind::MobilityForcedLogoff));
    b.send(&accepted("B3", Action::WriteItems, None));
    assert_eq!(b.users.borrow().user(USER).device, Some(b.mac));
    // The job stays: A gets its identity back when it comes (it still says state 0).
    let queued: Vec<Job> = std::mem::take(&mut b.users.borrow_mut().queued).into_iter().map(|(_, j)| j).collect();
    a.device.jobs = queued;
    a.now = b.now;
    let out = a.send(&message(&a, "A1", Reason::Solicited, "0", USER, &[]));
    assert_eq!(out.reply.action, Action::WriteItems, "{out:?}");
    assert_eq!(item(&out, "e164").map(|i| i.value.as_str()), Some(BASIC));
    let out = a.send(&accepted("A1", Action::WriteItems, None));
    assert_clean_up(&out.reply, "A1");
    assert_eq!(b.users.borrow().user(USER).device, Some(b.mac), "the user stays at B");
}

#[test]
fn a_lost_logon_or_a_forced_logoff_without_the_phone_writes_its_identity_back() {
    let (mut a, _) = two_phones();
    // The phone says a user is logged on, but none is here.
    let out = a.send(&message(&a, "S1", Reason::StartUp, "2", "+4955555", &[]));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(item(&out, "e164").map(|i| i.value.as_str()), Some(BASIC));
    assert_eq!(item(&out, "sip-mobility-state").map(|i| i.value.as_str()), Some("1"));
    assert!(a.audit.contains(&AuditKind::MobilityLogoff));
    let out = a.send(&accepted("S1", Action::WriteItems, None));
    assert_clean_up(&out.reply, "S1");
    assert_eq!(a.device.inventory.iter().find(|i| i.name == "e164").map(|i| i.value.as_str()), Some(BASIC));
}

#[test]
fn logoffs_and_restores_that_cannot_be_are_refused_without_a_change() {
    let (mut a, _) = two_phones();
    for (m, why) in [
        (logoff(&a, "X1", None, ""), "mobility: no user logged on here"),
        (restore(&a, "X2"), "mobility: no user logged on here"),
        (
            message(&a, "X3", Reason::InventoryChanges, "7", USER, &[("user-pwd", PASSWORD)]),
            "mobility: bad sip-mobility-state",
        ),
    ] {
        let out = a.send(&m);
        assert_eq!(reason(&out), Some(why));
        assert_eq!(a.audit.last(), Some(&AuditKind::MobilityRefused));
    }
    log_on(&mut a, "L1");
    let before = a.users.borrow().user(USER).clone();
    for (m, why) in [
        (logoff(&a, "X4", Some("wrong"), ""), "mobility: logoff refused"),
        (logoff(&a, "X5", None, "userdata-phonebook,sip-pwd"), "mobility: bad modified-items"),
        (
            message(&a, "X6", Reason::InventoryChanges, "0", "+4977", &[("requested-items", "userdata-ldap")]),
            "mobility: no user logged on here",
        ),
    ] {
        let out = a.send(&m);
        assert_eq!(reason(&out), Some(why), "{out:?}");
        assert_eq!(a.users.borrow().user(USER).device, Some(a.mac), "still logged on");
    }
    // Data that is not Base64, or over the per-item limit: refused, nothing saved.
    let mut config = dls_engine::EngineConfig::new(KEY);
    let mut limits = dls_engine::mobility::MobilityLimits::default();
    limits.max_item_bytes = 8;
    config.mobility = limits;
    a.engine = dls_engine::Engine::new(config);
    for (nonce, value) in [("X7", "not base64!"), ("X8", "VGhpcyBpcyBtb3JlIHRoYW4gOCBieXRlcw==")] {
        a.send(&logoff(&a, nonce, None, "userdata-phonebook"));
        let out =
            a.send(&accepted(nonce, Action::ReadItems, Some(vec![Item::indexed("userdata-phonebook", 1, value)])));
        assert_eq!(reason(&out), Some("mobility: bad user data"));
        assert_eq!(a.users.borrow().user(USER).device, Some(a.mac));
        assert!(a.users.borrow().user(USER).data.is_empty());
    }
    assert_eq!(a.users.borrow().user(USER).revision, before.revision);
}

#[test]
fn the_administrators_logon_writes_configuration_and_data_then_records_it() {
    let (mut a, _) = two_phones();
    a.users.borrow_mut().users.get_mut(USER).expect("user").user.data =
        vec![SavedData { name: "userdata-phonebook".into(), size: 4, value: Some("Qm9vaw==".into()) }];
    a.device.jobs = vec![Job {
        id: 7,
        kind: JobKind::MobilityLogon { number: USER.into() },
        state: JobState::Queued,
        attempts: 0,
        accepted: false,
    }];
    let out = a.send(&message(&a, "J1", Reason::Solicited, "1", BASIC, &[]));
    assert_eq!(out.reply.action, Action::WriteItems, "{out:?}");
    assert_eq!(item(&out, "sip-mobility-state").map(|i| i.value.as_str()), Some("0"));
    assert_eq!(item(&out, "e164").map(|i| i.value.as_str()), Some(USER));
    assert_eq!(item(&out, "userdata-phonebook"), Some(&Item::indexed("userdata-phonebook", 1, "Qm9vaw==")));
    assert_eq!(a.users.borrow().user(USER).device, None, "recorded when the phone accepts");
    let out = a.send(&accepted("J1", Action::WriteItems, None));
    assert_clean_up(&out.reply, "J1");
    assert_eq!(a.users.borrow().user(USER).device, Some(a.mac));
    assert!(a.job_log.iter().any(|u| u.id == 7 && u.state == JobState::Done));
    assert!(a.audit.contains(&AuditKind::MobilityLogon));
    // Its data is never part of the device's written configuration.
    assert!(a.device.written.keys().all(|k| !k.name.starts_with("userdata-")));
}

#[test]
fn a_user_changed_meanwhile_makes_the_message_fail_as_busy() {
    let (a, mut b) = two_phones();
    // The store's user changes between the load and the commit (another node won).
    let out = {
        let q = dls_engine::Engine::mobility_query(&logon(&a, "L1", USER, PASSWORD), None, Some(&a.device))
            .expect("mobility");
        assert_eq!((q.named.as_deref(), q.check_password), (Some(USER), Some(Whom::Named)));
        b.users.borrow_mut().users.get_mut(USER).expect("user").user.revision += 1;
        let input = {
            let mut i = a.users.borrow().input(a.mac, &q, &logon(&a, "L1", USER, PASSWORD));
            i.named.as_mut().expect("named").revision -= 1;
            i
        };
        let m = logon(&a, "L1", USER, PASSWORD);
        let out = a.engine.handle(dls_engine::Input {
            now: a.now,
            message: &m,
            channel: &a.channel,
            session: None,
            device: &a.device,
            desired: &a.desired,
            bootstrap: None,
            peer: None,
            tan: None,
            mobility: Some(&input),
        });
        assert!(!a.users.borrow().expectations_hold(a.mac, &out.changes));
        dls_engine::Engine::contended(&m)
    };
    assert_eq!(reason(&out), Some("mobility: busy, try again"));
    assert!(out.changes.is_empty() && out.session.is_none());
    log_on(&mut b, "L2");
}

#[test]
fn another_user_logging_on_at_a_phone_replaces_the_one_recorded_there() {
    let (mut a, _) = two_phones();
    a.users.borrow_mut().add("+4911", "other", vec![]);
    log_on(&mut a, "L1");
    let out = a.send(&logon(&a, "L2", "+4911", "other"));
    assert_eq!(out.reply.action, Action::WriteItems);
    assert_eq!(a.users.borrow().user(USER).device, None);
    assert_eq!(a.users.borrow().user("+4911").device, Some(a.mac));
}

#[test]
fn a_mobility_request_on_the_default_port_of_a_device_to_be_secured_is_refused() {
    let (mut a, _) = two_phones();
    a.device.security.mode = dls_engine::SecurityMode::Nopin;
    let out = a.send(&logon(&a, "L1", USER, PASSWORD));
    assert_eq!(reason(&out), Some(Refusal::SecuredOnDefaultPort.cleanup_reason()));
    assert_eq!(a.users.borrow().user(USER).device, None);
}

#[test]
fn queries_name_what_the_shell_must_load() {
    let a = phone(1);
    let q = |m: &WorkpointMessage| dls_engine::Engine::mobility_query(m, None, Some(&a.device));
    assert_eq!(q(&start_up("N")), None, "a phone that reports no mobility state");
    let plain = q(&message(&a, "N", Reason::StartUp, "1", BASIC, &[])).expect("reports a state");
    assert_eq!(plain, MobilityQuery::default());
    let l = q(&logon(&a, "N", "+49 89 123", PASSWORD)).expect("logon");
    assert_eq!((l.named.as_deref(), l.check_password), (Some(USER), Some(Whom::Named)));
    let r = q(&restore(&a, "N")).expect("restore");
    assert_eq!(r.restore.len(), 10);
    assert_eq!(q(&logoff(&a, "N", Some("x"), "")).expect("logoff").check_password, Some(Whom::Here));
    assert_eq!(q(&logoff(&a, "N", None, "")).expect("logoff").check_password, None);
    let mut jobs = a.device.clone();
    jobs.jobs.push(Job {
        id: 1,
        kind: JobKind::MobilityLogon { number: "7".into() },
        state: JobState::Queued,
        attempts: 0,
        accepted: false,
    });
    let j = dls_engine::Engine::mobility_query(&start_up("N"), None, Some(&jobs)).expect("jobs");
    assert_eq!((j.job_users, j.job_data), (vec!["7".to_owned()], vec!["7".to_owned()]));
}
