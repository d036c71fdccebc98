//! DCMP polling: `202` makes the phone call in, `200` does nothing, anything else is an
//! error; a phone learns its `dcmp-url` from its items.

use std::time::Duration;

use dls_message::{Action, Item, MacAddr, Reason};
use dls_workpoint::agent::{Agent, AgentConfig, AgentEvent, Trigger};
use dls_workpoint::dcmp::{self, DcmpAnswer, DcmpError};
use dls_workpoint::{Phone, ServerTrust};

use crate::scripted::ScriptedDls;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_poll_reads_202_200_and_errors() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let mac = MacAddr::parse("00:1a:e8:00:00:07").expect("mac");
        let url = dls.dcmp_url();
        let poll = || dcmp::poll(&url, mac, &ServerTrust::AcceptAny, Duration::from_secs(5));
        assert_eq!(poll().await, Ok(DcmpAnswer::Nothing));
        dls.set_dcmp_status(202);
        assert_eq!(poll().await, Ok(DcmpAnswer::Pending));
        dls.set_dcmp_status(500);
        let e = poll().await.expect_err("500");
        assert_eq!(e, DcmpError::Status(500));
        assert_eq!(e.to_string(), "DCMP poll: HTTP 500");
        assert_eq!(dls.state().dcmp_requests, vec!["/dcmp/contact-me?device-id=00%3A1A%3AE8%3A00%3A00%3A07"; 3]);

        // Nothing listening: a one-line connection error.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/dcmp/", closed.local_addr().expect("addr"));
        drop(closed);
        let e = dcmp::poll(&url, mac, &ServerTrust::AcceptAny, Duration::from_secs(5)).await.expect_err("refused");
        assert!(matches!(e, DcmpError::Connect(_)) && !e.to_string().contains('\n'), "{e}");
        assert!(matches!(
            dcmp::poll("ftp://x/", mac, &ServerTrust::AcceptAny, Duration::from_secs(1)).await,
            Err(DcmpError::Url(_))
        ));
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_phone_behind_nat_polls_and_calls_in_on_202() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        // The DLS writes the DCMP settings through the profile at start-up.
        dls.plan(
            Reason::StartUp,
            vec![(
                Action::WriteItems,
                vec![Item::new("dcmp-url", dls.dcmp_url()), Item::new("dcmp-poll-interval", "1")],
            )],
        );
        dls.plan(Reason::Solicited, vec![(Action::WriteItems, vec![Item::new("e164", "4989700712")])]);
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.contact_listen = None;
        let phone = Phone::new(MacAddr::parse("00:1A:E8:00:00:08").expect("mac"));
        let mut agent = Agent::start(phone, config).await.expect("agent");
        assert_eq!(agent.contact_addr(), None);

        // 200: polled, nothing happens.
        let polled = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Dcmp(_))).await;
        assert!(matches!(polled, Some(AgentEvent::Dcmp(Ok(DcmpAnswer::Nothing)))), "{polled:?}");
        assert!(dls.wait_interactions(&Reason::Solicited, 1, Duration::from_millis(1500)).await.is_empty());
        assert!(
            dls.state().dcmp_requests.iter().all(|q| q == "/dcmp/contact-me?device-id=00%3A1A%3AE8%3A00%3A00%3A08")
        );

        // 202: the phone calls in as solicited.
        dls.set_dcmp_status(202);
        let done =
            agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Interaction { reason: Reason::Solicited, .. })).await;
        let Some(AgentEvent::Interaction { trigger, result, .. }) = done else { panic!("no solicited interaction") };
        assert_eq!(trigger, Trigger::Dcmp);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(agent.phone().get("e164", None), Some("4989700712"));

        // 500: reported as an error, the phone keeps polling.
        dls.set_dcmp_status(500);
        let failed = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Dcmp(Err(_)))).await;
        assert!(matches!(failed, Some(AgentEvent::Dcmp(Err(DcmpError::Status(500))))), "{failed:?}");
        let before = dls.state().dcmp_requests.len();
        dls.set_dcmp_status(200);
        let again = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Dcmp(Ok(_)))).await;
        assert!(again.is_some() && dls.state().dcmp_requests.len() > before);
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_phone_without_dcmp_url_does_not_poll() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.contact_listen = None;
        let mut agent =
            Agent::start(Phone::new(MacAddr::parse("00:1A:E8:00:00:09").expect("mac")), config).await.expect("agent");
        let started = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Interaction { .. })).await;
        assert!(started.is_some());
        assert!(agent.wait_for(Duration::from_millis(2500), |e| matches!(e, AgentEvent::Dcmp(_))).await.is_none());
        assert!(dls.state().dcmp_requests.is_empty());
        agent.stop().await;
    })
    .await
    .expect("in time");
}
