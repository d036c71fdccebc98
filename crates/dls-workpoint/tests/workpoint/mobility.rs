//! Mobility, the phone's side, against the scripted DLS answering the sequence of issue 17:
//! what the phone sends at logon and logoff (items, values, a fresh nonce per interaction),
//! the user's data restored and handed back (one reply signed with XML-DSig), refusals with
//! their reasons, and a password that never reaches a log or an observer.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dls_message::{Action, Item, ItemStatus, MacAddr, Reason, ReplyStatus, WorkpointMessage};
use dls_workpoint::mobility::{STATE_LOGGED_OFF, is_userdata};
use dls_workpoint::{
    MobilityError, MobilityStep, Phone, REDACTED, ServerTrust, Traced, USERDATA_ITEMS, UserPassword, WpiClient,
};

use crate::scripted::{ScriptedDls, Step, item, signed};

const LIMIT: Duration = Duration::from_secs(60);
const OWN: &str = "4989700710001";
const USER: &str = "4989700799001";
const PASSWORD: &str = "correct horse battery staple";
const SECURE: &str = "secure";

fn new_phone(last: u8) -> Phone {
    Phone::with_items(MacAddr::from_bytes([0, 0x1A, 0xE8, 0, 0x17, last]), [Item::new("e164", OWN)])
}

/// A client whose observer keeps every line it is shown (summary and XML).
fn client(dls: &ScriptedDls, shown: &Arc<Mutex<String>>) -> WpiClient {
    let mut c = WpiClient::new(&dls.wpi.to_string(), &ServerTrust::AcceptAny).expect("client");
    c.set_timeout(Duration::from_secs(20));
    let shown = shown.clone();
    c.observe(move |t: &Traced<'_>| {
        let mut s = shown.lock().expect("lock");
        s.push_str(&t.summary());
        s.push('\n');
        s.push_str(&t.xml());
        s.push('\n');
    });
    c
}

/// The logon's `WriteItems`: the state (`status="secure"`), the number, a profile item.
fn logon_written() -> Step {
    (
        Action::WriteItems,
        vec![
            Item::new("sip-mobility-state", "0").with_status(ItemStatus::Other(SECURE.into())),
            Item::new("e164", USER),
            Item::indexed("key-label-unicode", 1, "Hot desk"),
        ],
    )
}

fn restore_written(data: &[(&str, &[u8])]) -> Step {
    (Action::WriteItems, data.iter().map(|(n, b)| Item::indexed(*n, 1, B64.encode(b))).collect())
}

fn refused(reason: &str) -> Step {
    (Action::CleanUp, vec![Item::new("cleanup-reason", reason)])
}

/// Plans a logon's three interactions: `logon`, an empty start-up, `restore`.
fn plan_logon(dls: &ScriptedDls, logon: Vec<Step>, restore: Vec<Step>) {
    dls.plan(Reason::InventoryChanges, logon);
    dls.plan(Reason::StartUp, vec![]);
    dls.plan(Reason::InventoryChanges, restore);
}

fn userdata_of(phone: &Phone) -> Vec<(String, Vec<u8>)> {
    phone.userdata().iter().map(|d| (d.name.clone(), d.bytes().expect("base64"))).collect()
}

fn started(dls: &ScriptedDls) -> Vec<WorkpointMessage> {
    dls.interactions()
}

/// The `reply-to` messages answering `action`, whole.
fn replies(dls: &ScriptedDls, action: &Action) -> Vec<WorkpointMessage> {
    dls.state()
        .received
        .iter()
        .filter(|m| m.reason.value == Reason::ReplyTo && m.reason.action.as_ref() == Some(action))
        .cloned()
        .collect()
}

/// Log lines of every level, from every crate, while the guard lives.
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn logon_and_logoff_send_the_sequence_of_the_issue() {
    tokio::time::timeout(LIMIT, async {
        let (logs, _guard) = capture_logs();
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let mut phone = new_phone(1);
        let password = UserPassword::new(PASSWORD);

        plan_logon(
            &dls,
            vec![logon_written()],
            vec![signed(restore_written(&[("userdata-phonebook", b"book v1"), ("userdata-ldap", b"ldap")]))],
        );
        let logon = phone.log_on(&mut c, USER, &password).await.expect("logon");
        assert_eq!(logon.user, USER);
        assert_eq!(logon.restored, ["userdata-phonebook", "userdata-ldap"]);
        assert_eq!(logon.restore.unverified_signatures, 1, "the restore came signed");
        assert_eq!(logon.logon.unverified_signatures + logon.start_up.unverified_signatures, 0);
        assert_eq!(phone.mobility_user(), Some(USER));
        assert_eq!(phone.get("key-label-unicode", Some(1)), Some("Hot desk"), "the user's configuration");
        assert_eq!(
            userdata_of(&phone),
            [("userdata-phonebook".to_owned(), b"book v1".to_vec()), ("userdata-ldap".to_owned(), b"ldap".to_vec())]
        );
        assert!(phone.modified_userdata().is_empty(), "restored data is not a change");

        // The user edits the phone book, then logs off.
        phone.set_userdata("userdata-phonebook", b"book v2").expect("edit");
        dls.plan(Reason::InventoryChanges, vec![(Action::ReadItems, vec![Item::indexed("userdata-phonebook", 1, "")])]);
        dls.plan(
            Reason::StartUp,
            vec![(
                Action::WriteItems,
                vec![
                    Item::new("sip-mobility-state", STATE_LOGGED_OFF).with_status(ItemStatus::Other(SECURE.into())),
                    Item::new("e164", OWN),
                ],
            )],
        );
        let logoff = phone.log_off(&mut c, Some(&password)).await.expect("logoff");
        assert_eq!(logoff.user, USER);
        assert_eq!(
            (logoff.saved.as_slice(), logoff.unsaved.as_slice()),
            (&["userdata-phonebook".to_owned()][..], &[][..])
        );
        assert_eq!(phone.mobility_user(), None);
        assert_eq!(phone.get("e164", None), Some(OWN));
        assert_eq!(phone.get("sip-mobility-state", None), Some(STATE_LOGGED_OFF));
        assert!(phone.userdata().is_empty(), "the user's data left with the user");

        // What the phone sent, interaction by interaction.
        let got = started(&dls);
        let reasons: Vec<&str> = got.iter().map(|m| m.reason.value.as_str()).collect();
        assert_eq!(reasons, ["inventory-changes", "start-up", "inventory-changes", "inventory-changes", "start-up"]);
        let want: [&[(&str, Option<&str>)]; 5] = [
            &[
                ("sip-mobility-state", Some("0")),
                ("e164", Some(USER)),
                ("basic-e164", Some(OWN)),
                ("mobility-enabled", Some("true")),
                ("user-pwd", Some(PASSWORD)),
                ("requested-items", None),
                ("modified-items", None),
            ],
            &[("sip-mobility-state", Some("2")), ("e164", Some(USER)), ("basic-e164", Some(OWN)), ("user-pwd", None)],
            &[
                ("sip-mobility-state", Some("0")),
                ("e164", Some(USER)),
                ("requested-items", Some(&USERDATA_ITEMS.join(","))),
                ("user-pwd", None),
            ],
            &[
                ("sip-mobility-state", Some("1")),
                ("configuration-changed-flag", Some("true")),
                ("user-pwd", Some(PASSWORD)),
                ("modified-items", Some("userdata-phonebook")),
                ("e164", Some(USER)),
                ("basic-e164", Some(OWN)),
            ],
            &[("sip-mobility-state", Some("1")), ("e164", Some(OWN)), ("basic-e164", Some(OWN)), ("user-pwd", None)],
        ];
        for (n, (m, want)) in got.iter().zip(want).enumerate() {
            for (name, value) in want {
                assert_eq!(item(m, name), *value, "interaction {n}, {name}");
            }
            assert_eq!(item(m, "mac-addr"), Some("00:1A:E8:00:17:01"), "interaction {n}");
            assert!(!m.items.iter().flatten().any(|i| is_userdata(&i.name)), "interaction {n} reports no user data");
        }
        assert_eq!(
            USERDATA_ITEMS.join(","),
            "userdata-vu1,userdata-call-log,userdata-ring-tone,userdata-phonebook,userdata-call-group,\
             userdata-voice-record,userdata-picture,userdata-ring-tone-mp3,userdata-screensaver,userdata-ldap"
        );
        // A fresh nonce for each interaction, kept through its replies.
        let mut nonces: Vec<&str> = got.iter().map(|m| m.header.nonce.as_str()).collect();
        assert!(nonces.iter().all(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit())), "{nonces:?}");
        nonces.sort_unstable();
        nonces.dedup();
        assert_eq!(nonces.len(), 5);
        // The replies: the logon's and the restore's WriteItems accepted, the ReadItems
        // answered with the phone book (index 1) and nothing else.
        assert_eq!(dls.replies_to(&Action::WriteItems), vec![Some(ReplyStatus::Accepted); 3]);
        let read = replies(&dls, &Action::ReadItems);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].reason.status, Some(ReplyStatus::Accepted));
        assert_eq!(
            read[0].items.as_deref(),
            Some(&[Item::indexed("userdata-phonebook", 1, B64.encode(b"book v2"))][..])
        );

        // Byte-shaped: the restore's request as the simulator writes it; the password only in
        // the two messages that carry it.
        let bodies: Vec<String> = dls.state().bodies.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        let requested = format!("<Item name=\"requested-items\">{}</Item>", USERDATA_ITEMS.join(","));
        assert_eq!(bodies.iter().filter(|b| b.contains(&requested)).count(), 1);
        assert_eq!(bodies.iter().filter(|b| b.contains(PASSWORD)).count(), 2);
        assert_eq!(bodies.iter().filter(|b| b.contains("<Item name=\"user-pwd\">")).count(), 2);

        // Never in a log, nor shown to an observer (which sees it redacted), and the signed
        // answer is said to be unverified.
        let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
        let shown = shown.lock().expect("shown").clone();
        assert!(!logs.contains(PASSWORD), "{logs}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert_eq!(shown.matches(&format!("<Item name=\"user-pwd\">{REDACTED}</Item>")).count(), 2, "{shown}");
        assert!(shown.contains("<- WriteItems, 2 items (enveloped in an XML-DSig Signature, not verified)"), "{shown}");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_refused_logon_names_the_reason_and_changes_nothing() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let mut phone = new_phone(2);
        let password = UserPassword::new("wrong");
        dls.plan(Reason::InventoryChanges, vec![refused("mobility: logon refused")]);
        let e = phone.log_on(&mut c, USER, &password).await.expect_err("refused");
        assert!(
            matches!(&e, MobilityError::Refused { step: MobilityStep::Logon, reason, with_password: true } if reason == "mobility: logon refused"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "logon refused by the DLS: mobility: logon refused");
        assert_eq!(e.kind(), "logon cleanup: mobility: logon refused");
        assert_eq!(phone.mobility_user(), None);
        assert_eq!(phone.get("e164", None), Some(OWN));
        assert_eq!(started(&dls).len(), 1, "the flow ended there");

        // A refusal at a later step ends the flow too, naming it.
        plan_logon(&dls, vec![logon_written()], vec![refused("mobility: no user logged on here")]);
        let e = phone.log_on(&mut c, USER, &password).await.expect_err("restore refused");
        assert!(matches!(&e, MobilityError::Refused { step: MobilityStep::Restore, with_password: false, .. }), "{e:?}");
        assert_eq!(e.to_string(), "restore of the user's data refused by the DLS: mobility: no user logged on here");

        // A logon the DLS does not confirm (nothing written) is not a logon.
        let mut other = new_phone(3);
        dls.plan(Reason::InventoryChanges, vec![]);
        let e = other.log_on(&mut c, USER, &password).await.expect_err("not confirmed");
        assert!(matches!(e, MobilityError::NotConfirmed { step: MobilityStep::Logon, .. }), "{e:?}");
        assert_eq!(other.mobility_user(), None);

        // The caller's mistakes, before anything is sent.
        let sent = dls.state().received.len();
        assert!(matches!(other.log_off(&mut c, None).await, Err(MobilityError::NoUser)));
        assert!(matches!(other.log_on(&mut c, " ", &password).await, Err(MobilityError::Invalid(_))));
        assert!(matches!(phone.log_on(&mut c, USER, &password).await, Err(MobilityError::UserLoggedOn { .. })));
        assert_eq!(dls.state().received.len(), sent);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_refused_logoff_leaves_the_user_logged_on_with_their_data() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let mut phone = new_phone(4);
        let password = UserPassword::new(PASSWORD);
        plan_logon(&dls, vec![logon_written()], vec![]);
        let logon = phone.log_on(&mut c, USER, &password).await.expect("logon");
        assert!(logon.restored.is_empty(), "nothing saved yet: CleanUp");
        phone.set_userdata("userdata-call-log", b"calls").expect("edit");

        dls.plan(Reason::InventoryChanges, vec![refused("mobility: logon refused")]);
        let e = phone.log_off(&mut c, Some(&password)).await.expect_err("refused");
        assert!(matches!(&e, MobilityError::Refused { step: MobilityStep::Logoff, with_password: true, .. }), "{e:?}");
        assert_eq!(phone.mobility_user(), Some(USER));
        assert_eq!(phone.modified_userdata(), ["userdata-call-log"]);
        assert_eq!(started(&dls).last().map(|m| m.reason.value.clone()), Some(Reason::InventoryChanges), "no start-up");

        // Without a password, and a DLS that does not read the changed data: the logoff
        // goes on and says what was not saved.
        dls.plan(Reason::InventoryChanges, vec![]);
        let logoff = phone.log_off(&mut c, None).await.expect("logoff");
        assert_eq!(logoff.unsaved, ["userdata-call-log"]);
        let m = &started(&dls)[started(&dls).len() - 2];
        assert_eq!((item(m, "user-pwd"), item(m, "modified-items")), (None, Some("userdata-call-log")));
        assert_eq!(phone.mobility_user(), None);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn data_handed_back_at_logoff_on_phone_a_comes_back_at_logon_on_phone_b() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let password = UserPassword::new(PASSWORD);
        // A phone book larger than one protocol message (50 kB) and than the codec's default
        // limit (1 MiB) once in Base64, and a small one.
        let book: Vec<u8> = (0..900_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let ldap = b"ldap://directory.example.com".to_vec();

        let mut a = new_phone(5);
        plan_logon(&dls, vec![logon_written()], vec![]);
        a.log_on(&mut c, USER, &password).await.expect("logon at A");
        a.set_userdata("userdata-phonebook", &book).expect("book");
        a.set_userdata("userdata-ldap", &ldap).expect("ldap");
        dls.plan(
            Reason::InventoryChanges,
            vec![(
                Action::ReadItems,
                vec![Item::indexed("userdata-ldap", 1, ""), Item::indexed("userdata-phonebook", 1, "")],
            )],
        );
        dls.plan(Reason::StartUp, vec![]);
        let logoff = a.log_off(&mut c, Some(&password)).await.expect("logoff at A");
        assert_eq!(logoff.saved, ["userdata-ldap", "userdata-phonebook"]);

        // What the DLS got (over however many fragments), as a DLS would keep it.
        let read = replies(&dls, &Action::ReadItems);
        let kept: Vec<Item> = read.iter().flat_map(|m| m.items.clone().unwrap_or_default()).collect();
        assert_eq!(kept.len(), 2);
        assert!(read.len() == 2 && read[0].header.more_fragments(), "the big item travels alone");

        let mut b = new_phone(6);
        plan_logon(&dls, vec![logon_written()], vec![(Action::WriteItems, kept)]);
        let logon = b.log_on(&mut c, USER, &password).await.expect("logon at B");
        assert_eq!(logon.restored, ["userdata-ldap", "userdata-phonebook"]);
        assert_eq!(userdata_of(&b), [("userdata-ldap".to_owned(), ldap), ("userdata-phonebook".to_owned(), book)]);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn restored_data_that_is_not_base64_or_at_another_index_is_refused_item_by_item() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let mut phone = new_phone(7);
        plan_logon(
            &dls,
            vec![logon_written()],
            vec![(
                Action::WriteItems,
                vec![
                    Item::indexed("userdata-phonebook", 1, "not base64!"),
                    Item::indexed("userdata-ldap", 2, "AAAA"),
                    Item::new("userdata-picture", "cGljdHVyZQ"),
                ],
            )],
        );
        let logon = phone.log_on(&mut c, USER, &UserPassword::new(PASSWORD)).await.expect("logon");
        assert_eq!(logon.restored, ["userdata-picture"], "written without an index, kept at 1, padding optional");
        let statuses: Vec<(String, Option<ItemStatus>)> =
            logon.restore.refused.iter().map(|i| (i.name.clone(), i.status.clone())).collect();
        assert_eq!(
            statuses,
            [
                ("userdata-phonebook".to_owned(), Some(ItemStatus::InvalidData)),
                ("userdata-ldap".to_owned(), Some(ItemStatus::InvalidIndex))
            ]
        );
        assert_eq!(userdata_of(&phone), [("userdata-picture".to_owned(), b"picture".to_vec())]);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn the_dls_may_log_the_user_off_by_itself() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let shown = Arc::new(Mutex::new(String::new()));
        let mut c = client(&dls, &shown);
        let mut phone = new_phone(8);
        plan_logon(&dls, vec![logon_written()], vec![restore_written(&[("userdata-phonebook", b"book")])]);
        phone.log_on(&mut c, USER, &UserPassword::new(PASSWORD)).await.expect("logon");

        // A forced logoff on the phone's next call: every userdata-* read (no index), then the
        // phone's own identity written back.
        dls.plan(
            Reason::Solicited,
            vec![
                (Action::ReadItems, USERDATA_ITEMS.iter().map(|n| Item::new(*n, "")).collect()),
                (
                    Action::WriteItems,
                    vec![
                        Item::new("e164", OWN),
                        Item::new("sip-mobility-state", STATE_LOGGED_OFF).with_status(ItemStatus::Other(SECURE.into())),
                    ],
                ),
            ],
        );
        phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
        let read = replies(&dls, &Action::ReadItems);
        let answered = read.last().and_then(|m| m.items.clone()).unwrap_or_default();
        assert_eq!(answered.len(), 10);
        for i in &answered {
            if i.name == "userdata-phonebook" {
                assert_eq!((i.index, i.status.as_ref(), i.value.as_str()), (None, None, B64.encode(b"book").as_str()));
            } else {
                assert_eq!(i.status, Some(ItemStatus::Failed), "{} is not held", i.name);
            }
        }
        assert_eq!(phone.mobility_user(), None);
        assert!(phone.userdata().is_empty());
    })
    .await
    .expect("in time");
}
