//! Typing the PINs after a `pin` bootstrap ([`Phone::enter_pins`]): wrong PINs then the
//! right one open the bundle; only wrong ones make the phone send `clean-up` with
//! `password retries exceeded`.

use std::time::Duration;

use dls_message::{Action, Item, MacAddr, Reason};
use dls_secure_mode::{Pin, SealParams};
use dls_workpoint::{Phone, PinOutcome, PinsError, PinsOutcome, RETRIES_EXCEEDED, ServerTrust, WpiClient};

use crate::scripted::{ScriptedDls, item};

const LIMIT: Duration = Duration::from_secs(60);
const RIGHT: &str = "123456789012345";
const MAC: &str = "00:1A:E8:00:03:01";

/// The bootstrap `WriteItems` of a `pin` bootstrap: the material sealed with [`RIGHT`],
/// three tries.
fn bootstrap_items() -> Vec<Item> {
    let material = [
        Item::new(
            "dls-client-certificate",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        ),
        Item::indexed("dls-server-ca", 0, "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"),
        Item::new("dls-secure-port", "18444"),
    ];
    let params = SealParams::insecure_fixed_for_tests(1_000, [7; 16], [9; 12]).expect("params");
    let pin = Pin::parse(RIGHT).expect("pin");
    let sealed = dls_secure_mode::seal(&pin, &MacAddr::parse(MAC).expect("mac"), &material, &params).expect("sealed");
    vec![Item::new("goto-secure-mode", "pin"), Item::new("secure-mode-data", sealed), Item::new("max-pin-retries", "3")]
}

/// A phone bootstrapped in `pin` mode by `dls`, waiting for its PIN, and its client.
async fn bootstrapped(dls: &ScriptedDls, typed: &[&str]) -> (Phone, WpiClient) {
    dls.plan(Reason::StartUp, vec![(Action::WriteItems, bootstrap_items())]);
    let mut client = WpiClient::new(&dls.wpi.to_string(), &ServerTrust::AcceptAny).expect("client");
    client.set_timeout(Duration::from_secs(10));
    let mut phone = Phone::new(MacAddr::parse(MAC).expect("mac"));
    let r = phone.interact(&mut client, Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    assert!(phone.pending_pin.is_some());
    phone.pin_entries.extend(typed.iter().map(|p| (*p).to_owned()));
    (phone, client)
}

fn clean_ups(dls: &ScriptedDls) -> Vec<dls_message::WorkpointMessage> {
    dls.interactions().into_iter().filter(|m| m.reason.value == Reason::CleanUp).collect()
}

#[tokio::test]
async fn wrong_pins_then_the_right_one_open_the_bundle() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let (mut phone, mut client) = bootstrapped(&dls, &["111111111111111", "222222222222222", RIGHT]).await;
        let mut seen = Vec::new();
        let typed = phone
            .enter_pins(&mut client, |p, o| {
                seen.push((format!("{o:?}"), p.pending_pin.as_ref().map(|pp| pp.failures)));
            })
            .await
            .expect("typed");
        assert!(matches!(typed, PinsOutcome::Opened), "{typed:?}");
        assert_eq!(
            seen,
            [
                (format!("{:?}", PinOutcome::Wrong { left: 2 }), Some(1)),
                (format!("{:?}", PinOutcome::Wrong { left: 1 }), Some(2)),
                (format!("{:?}", PinOutcome::Opened), None),
            ]
        );
        assert_eq!(phone.secure.as_ref().map(|m| m.port), Some(18444));
        assert_eq!(phone.tan.as_deref(), Some("345"));
        assert!(phone.pin_entries.is_empty());
        assert!(clean_ups(&dls).is_empty(), "nothing sent");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn only_wrong_pins_send_clean_up_with_password_retries_exceeded() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let wrong = ["111111111111111", "222222222222222", "333333333333333", RIGHT];
        let (mut phone, mut client) = bootstrapped(&dls, &wrong).await;
        let mut seen = Vec::new();
        let typed = phone
            .enter_pins(&mut client, |_, o| {
                // Shown before the clean-up goes out.
                assert!(clean_ups(&dls).is_empty());
                seen.push(format!("{o:?}"));
            })
            .await
            .expect("typed");
        match &typed {
            PinsOutcome::RetriesExceeded { answer } => assert_eq!(answer.action, Action::CleanUp),
            other => panic!("{other:?}"),
        }
        let expected: Vec<_> =
            [PinOutcome::Wrong { left: 2 }, PinOutcome::Wrong { left: 1 }, PinOutcome::RetriesExceeded]
                .iter()
                .map(|o| format!("{o:?}"))
                .collect();
        assert_eq!(seen, expected);
        let sent = clean_ups(&dls);
        assert_eq!(sent.len(), 1);
        assert_eq!(item(&sent[0], "cleanup-reason"), Some(RETRIES_EXCEEDED));
        assert_eq!(RETRIES_EXCEEDED, "password retries exceeded");
        assert_eq!(item(&sent[0], "mac-addr"), Some(MAC));
        assert!(phone.pending_pin.is_none() && phone.secure.is_none());
        assert_eq!(phone.pin_entries.len(), 1, "the phone stops asking once the retries are exceeded");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn running_out_of_pins_or_typing_garbage_sends_nothing() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let (mut phone, mut client) = bootstrapped(&dls, &["111111111111111"]).await;
        let typed = phone.enter_pins(&mut client, |_, _| {}).await.expect("typed");
        assert!(matches!(typed, PinsOutcome::NoPinLeft), "{typed:?}");
        assert_eq!(phone.pending_pin.as_ref().map(|p| p.failures), Some(1), "the bundle still waits");

        phone.pin_entries.push_back("not a PIN".into());
        let e = phone.enter_pins(&mut client, |_, _| {}).await.expect_err("not a PIN");
        assert!(matches!(e, PinsError::Open(_)), "{e:?}");
        assert!(e.to_string().starts_with("secure-mode-data: "), "{e}");
        assert!(clean_ups(&dls).is_empty());
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_clean_up_that_cannot_be_sent_is_an_error() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let (mut phone, mut client) = bootstrapped(&dls, &["111111111111111"; 3]).await;
        dls.refuse(Reason::CleanUp, 503);
        let e = phone.enter_pins(&mut client, |_, _| {}).await.expect_err("refused");
        assert!(matches!(&e, PinsError::CleanUp(c) if c.kind() == "http-status"), "{e:?}");
        assert!(e.to_string().starts_with("wrong PIN: retries exceeded; sending clean-up failed: HTTP 503"), "{e}");
        assert_eq!(clean_ups(&dls).len(), 1);
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn the_agent_reports_each_pin_and_the_clean_up_as_events() {
    use dls_workpoint::agent::{Agent, AgentConfig, AgentEvent};

    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.plan(Reason::StartUp, vec![(Action::WriteItems, bootstrap_items())]);
        let mut phone = Phone::new(MacAddr::parse(MAC).expect("mac"));
        phone.pin_entries.extend(["111111111111111", "222222222222222", "333333333333333"].map(str::to_owned));
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.exchange_timeout = Duration::from_secs(10);
        let mut agent = Agent::start(phone, config).await.expect("agent");
        let mut said = Vec::new();
        while said.len() < 3 {
            match agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Note(_) | AgentEvent::Error(_))).await {
                Some(AgentEvent::Note(n) | AgentEvent::Error(n)) => said.push(n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            said,
            [
                "wrong PIN (2 tries left)",
                "wrong PIN (1 tries left)",
                "wrong PIN: retries exceeded; the phone sent clean-up (password retries exceeded)",
            ]
        );
        let sent = clean_ups(&dls);
        assert_eq!(sent.len(), 1);
        assert_eq!(item(&sent[0], "cleanup-reason"), Some(RETRIES_EXCEEDED));
        let phone = agent.stop().await;
        assert!(phone.secure.is_none() && phone.pending_pin.is_none());
    })
    .await
    .expect("in time");
}
