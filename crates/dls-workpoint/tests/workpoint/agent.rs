//! The agent keeps a phone alive: it answers contact-me, calls back on `send-solicited`
//! (when not busy), runs deployments, and starts up again after `Restart` and new firmware.

use std::net::SocketAddr;
use std::time::Duration;

use dls_message::{Action, Item, MacAddr, Reason, ReplyStatus};
use dls_workpoint::Phone;
use dls_workpoint::agent::{Agent, AgentConfig, AgentEvent, Trigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::scripted::{ScriptedDls, Served, file_items, item};

const LIMIT: Duration = Duration::from_secs(60);

fn phone(last: u8) -> Phone {
    Phone::new(MacAddr::parse(&format!("00:1A:E8:00:01:{last:02X}")).expect("mac"))
}

async fn start(dls: &ScriptedDls, phone: Phone) -> Agent {
    let mut config = AgentConfig::new(dls.wpi.to_string());
    config.exchange_timeout = Duration::from_secs(10);
    Agent::start(phone, config).await.expect("agent")
}

/// Waits for the next interaction for `reason`; returns its trigger and report.
async fn interaction(agent: &mut Agent, reason: Reason) -> (Trigger, dls_workpoint::Interaction) {
    let e = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Interaction { reason: r, .. } if *r == reason)).await;
    match e {
        Some(AgentEvent::Interaction { trigger, result: Ok(report), .. }) => (trigger, report),
        other => panic!("no {reason} interaction: {other:?}"),
    }
}

/// Posts a contact-me as a DLS does; returns the status line.
async fn contact_me(addr: SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = "ContactMe=true&dls_ip_addr=127.0.0.1&dls_ip_port=18443";
    let req = format!(
        "POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.expect("read");
    resp.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn contact_me_is_answered_with_a_solicited_interaction() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.plan(Reason::Solicited, vec![(Action::WriteItems, vec![Item::new("e164", "4989700713")])]);
        let mut agent = start(&dls, phone(1)).await;
        let addr = agent.contact_addr().expect("listening");
        let (trigger, _) = interaction(&mut agent, Reason::StartUp).await;
        assert_eq!(trigger, Trigger::Boot);
        let up = dls.wait_interactions(&Reason::StartUp, 1, LIMIT).await;
        assert_eq!(item(&up[0], "contact-me-uri"), Some(format!("http://{addr}/contact_dls.html/ContactDLS").as_str()));

        assert_eq!(contact_me(addr).await, "HTTP/1.1 204 No Content");
        let seen = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::ContactMe(_))).await;
        assert!(matches!(seen, Some(AgentEvent::ContactMe(c)) if c.dls_ip_port == Some(18443)));
        let (trigger, report) = interaction(&mut agent, Reason::Solicited).await;
        assert_eq!(trigger, Trigger::ContactMe);
        assert_eq!(report.actions, [Action::WriteItems, Action::CleanUp]);
        assert_eq!(agent.phone().get("e164", None), Some("4989700713"));
        let solicited = dls.wait_interactions(&Reason::Solicited, 1, LIMIT).await;
        assert_eq!(item(&solicited[0], "mac-addr"), Some("00:1A:E8:00:01:01"));

        let phone = agent.stop().await;
        assert_eq!(phone.get("e164", None), Some("4989700713"));
        // Stopped: nothing listens any more.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn send_solicited_makes_the_phone_call_back_at_once() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.plan(Reason::StartUp, vec![(Action::CleanUp, vec![Item::new("send-solicited", "true")])]);
        dls.plan(Reason::Solicited, vec![(Action::WriteItems, vec![Item::new("sntp-addr", "ntp.example.net")])]);
        let mut agent = start(&dls, phone(2)).await;
        let (_, report) = interaction(&mut agent, Reason::StartUp).await;
        assert!(report.send_solicited);
        let (trigger, report) = interaction(&mut agent, Reason::Solicited).await;
        assert_eq!((trigger, report.send_solicited), (Trigger::SendSolicited, false));
        assert_eq!(agent.phone().get("sntp-addr", None), Some("ntp.example.net"));
        // No more callbacks once the DLS stops asking.
        assert!(dls.wait_interactions(&Reason::Solicited, 2, Duration::from_millis(500)).await.len() == 1);
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_busy_phone_calls_back_when_the_call_ends() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let write = (Action::WriteItems, vec![Item::new("sntp-addr", "ntp.example.net")]);
        dls.plan(Reason::StartUp, vec![write.clone(), (Action::CleanUp, vec![Item::new("send-solicited", "true")])]);
        dls.plan(Reason::Solicited, vec![write]);
        let mut busy = phone(3);
        busy.busy = true;
        let mut agent = start(&dls, busy).await;
        let (_, report) = interaction(&mut agent, Reason::StartUp).await;
        assert!(report.send_solicited);
        assert_eq!(dls.replies_to(&Action::WriteItems), [Some(ReplyStatus::Busy)]);
        // In a call: no callback.
        assert!(dls.wait_interactions(&Reason::Solicited, 1, Duration::from_millis(1000)).await.is_empty());
        agent.set_busy(false);
        let (trigger, _) = interaction(&mut agent, Reason::Solicited).await;
        assert_eq!(trigger, Trigger::SendSolicited);
        assert_eq!(dls.replies_to(&Action::WriteItems), [Some(ReplyStatus::Busy), Some(ReplyStatus::Accepted)]);
        assert_eq!(agent.phone().get("sntp-addr", None), Some("ntp.example.net"));
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn restart_deployments_and_firmware_through_the_agent() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        dls.serve("/files/j1/logo.png", Served::Bytes(b"PNG logo".to_vec()));
        dls.serve("/files/j2/fw.img", Served::Generated(100_000));
        let mut fw = file_items("APP", "fw.img", &dls.base_url("j2"));
        fw.push(Item::new("file-sw-version", "V3 R6.0.0"));
        let mut logo = file_items("LOGO", "logo.png", &dls.base_url("j1"));
        logo.push(Item::new("file-priority", "immediate"));
        logo.retain(|i| !(i.name == "file-priority" && i.value == "normal"));
        // Boot: Restart. Second start-up: a file, reported by status. Its CleanUp asks for a
        // callback, which brings firmware; the phone then starts up with the new version.
        dls.plan(Reason::StartUp, vec![(Action::Restart, Vec::new())]);
        dls.plan(Reason::StartUp, vec![(Action::FileDeployment, logo)]);
        dls.plan(Reason::Status, vec![(Action::CleanUp, vec![Item::new("send-solicited", "true")])]);
        dls.plan(Reason::Solicited, vec![(Action::SoftwareDeployment, fw)]);
        let mut agent = start(&dls, phone(4)).await;

        assert_eq!(interaction(&mut agent, Reason::StartUp).await.0, Trigger::Boot);
        assert_eq!(interaction(&mut agent, Reason::StartUp).await.0, Trigger::Restart);
        let e = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Deployment(_))).await;
        assert!(matches!(&e, Some(AgentEvent::Deployment(o)) if o.ok()), "{e:?}");
        assert_eq!(interaction(&mut agent, Reason::Status).await.0, Trigger::Deployment);
        assert_eq!(interaction(&mut agent, Reason::Solicited).await.0, Trigger::SendSolicited);
        let e = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Deployment(_))).await;
        assert!(matches!(&e, Some(AgentEvent::Deployment(o)) if o.ok() && o.deployment.is_software()), "{e:?}");
        assert_eq!(interaction(&mut agent, Reason::StartUp).await.0, Trigger::Firmware);

        let starts = dls.wait_interactions(&Reason::StartUp, 3, LIMIT).await;
        let versions: Vec<_> = starts.iter().map(|m| item(m, "software-version")).collect();
        assert_eq!(versions, [Some("V3 R5.12.0"), Some("V3 R5.12.0"), Some("V3 R6.0.0")]);
        let status = dls.wait_interactions(&Reason::Status, 1, LIMIT).await;
        assert_eq!(item(&status[0], "file-deployment-status"), Some("ok"));
        let phone = agent.stop().await;
        let files: Vec<_> = phone.installed.iter().map(|f| (f.name.as_str(), f.file_type.as_str())).collect();
        assert_eq!(files, [("logo.png", "LOGO"), ("fw.img", "APP")]);
        assert_eq!(phone.get("software-version", None), Some("V3 R6.0.0"));
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn an_unreachable_dls_is_reported_and_retried() {
    tokio::time::timeout(LIMIT, async {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let mut config = AgentConfig::new(addr.to_string());
        config.retry_interval = Duration::from_millis(200);
        let mut agent = Agent::start(phone(5), config).await.expect("agent");
        for _ in 0..2 {
            let e = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Interaction { .. })).await;
            assert!(
                matches!(&e, Some(AgentEvent::Interaction { reason: Reason::StartUp, result: Err(m), .. }) if m.contains("connection")),
                "{e:?}"
            );
        }
        assert!(!agent.is_finished());
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_dls_that_always_asks_for_a_callback_gets_them_spaced() {
    tokio::time::timeout(LIMIT, async {
        let dls = ScriptedDls::start().await;
        let again = vec![(Action::CleanUp, vec![Item::new("send-solicited", "true")])];
        for _ in 0..20 {
            dls.plan(Reason::Solicited, again.clone());
        }
        dls.plan(Reason::StartUp, again);
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.retry_interval = Duration::from_secs(2);
        let agent = Agent::start(phone(6), config).await.expect("agent");
        // Ten callbacks at once, then one per retry interval.
        assert_eq!(dls.wait_interactions(&Reason::Solicited, 10, Duration::from_secs(20)).await.len(), 10);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(dls.wait_interactions(&Reason::Solicited, 11, Duration::from_millis(500)).await.len(), 10);
        assert_eq!(dls.wait_interactions(&Reason::Solicited, 11, Duration::from_secs(5)).await.len(), 11);
        agent.stop().await;
    })
    .await
    .expect("in time");
}

/// A DLS with a LOGO file deployed at start-up; returns it and the file's base URL.
async fn dls_with_a_file(dir: &str) -> ScriptedDls {
    let dls = ScriptedDls::start().await;
    dls.serve(&format!("/files/{dir}/logo.png"), Served::Bytes(b"PNG logo".to_vec()));
    dls.plan(Reason::StartUp, vec![(Action::FileDeployment, file_items("LOGO", "logo.png", &dls.base_url(dir)))]);
    dls
}

/// The next `status` interaction's result.
async fn status_result(agent: &mut Agent) -> (Trigger, Result<dls_workpoint::Interaction, String>) {
    let e = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Interaction { reason: Reason::Status, .. })).await;
    match e {
        Some(AgentEvent::Interaction { trigger, result, .. }) => (trigger, result),
        other => panic!("no status interaction: {other:?}"),
    }
}

#[tokio::test]
async fn a_status_report_the_dls_refused_is_sent_again_and_then_no_more() {
    tokio::time::timeout(LIMIT, async {
        let dls = dls_with_a_file("r1").await;
        dls.refuse(Reason::Status, 503);
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.exchange_timeout = Duration::from_secs(10);
        config.retry_interval = Duration::from_millis(100);
        let mut agent = Agent::start(phone(7), config).await.expect("agent");

        let (trigger, first) = status_result(&mut agent).await;
        assert_eq!(trigger, Trigger::Deployment);
        assert!(matches!(&first, Err(m) if m.contains("HTTP 503")), "{first:?}");
        let (trigger, second) = status_result(&mut agent).await;
        assert_eq!(trigger, Trigger::Deployment);
        assert_eq!(second.expect("delivered").actions, [Action::CleanUp]);

        // The same report twice, dated when the deployment ended.
        let sent = dls.wait_interactions(&Reason::Status, 2, LIMIT).await;
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].items, sent[1].items);
        assert_eq!(item(&sent[1], "file-deployment-name"), Some("logo.png"));
        assert_eq!(item(&sent[1], "file-deployment-status"), Some("ok"));
        // Delivered: dropped, never sent again.
        assert_eq!(dls.wait_interactions(&Reason::Status, 3, Duration::from_millis(1500)).await.len(), 2);
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_status_report_goes_again_at_once_when_the_dls_is_back() {
    tokio::time::timeout(LIMIT, async {
        let dls = dls_with_a_file("r2").await;
        dls.refuse(Reason::Status, 503);
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.exchange_timeout = Duration::from_secs(10);
        // Far beyond the test's limit: only the interaction that reaches the DLS can bring
        // the report again.
        config.retry_interval = Duration::from_secs(3600);
        let mut agent = Agent::start(phone(8), config).await.expect("agent");
        let addr = agent.contact_addr().expect("listening");
        assert!(status_result(&mut agent).await.1.is_err());

        assert_eq!(contact_me(addr).await, "HTTP/1.1 204 No Content");
        let (trigger, _) = interaction(&mut agent, Reason::Solicited).await;
        assert_eq!(trigger, Trigger::ContactMe);
        let (trigger, again) = status_result(&mut agent).await;
        assert_eq!(trigger, Trigger::Deployment);
        assert!(again.is_ok(), "{again:?}");
        assert_eq!(dls.wait_interactions(&Reason::Status, 2, LIMIT).await.len(), 2);
        agent.stop().await;
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn a_status_report_is_dropped_after_the_last_attempt() {
    tokio::time::timeout(LIMIT, async {
        let dls = dls_with_a_file("r3").await;
        for _ in 0..10 {
            dls.refuse(Reason::Status, 503);
        }
        let mut config = AgentConfig::new(dls.wpi.to_string());
        config.exchange_timeout = Duration::from_secs(10);
        config.retry_interval = Duration::from_millis(20);
        let mut agent = Agent::start(phone(9), config).await.expect("agent");
        let dropped = agent.wait_for(LIMIT, |e| matches!(e, AgentEvent::Error(m) if m.contains("status report"))).await;
        assert!(
            matches!(&dropped, Some(AgentEvent::Error(m)) if m.contains("logo.png") && m.contains("dropped")),
            "{dropped:?}"
        );
        let attempts = dls_workpoint::agent::STATUS_ATTEMPTS as usize;
        assert_eq!(dls.wait_interactions(&Reason::Status, attempts, LIMIT).await.len(), attempts);
        // Given up: not sent again.
        let more = dls.wait_interactions(&Reason::Status, attempts + 1, Duration::from_millis(1000)).await;
        assert_eq!(more.len(), attempts);
        agent.stop().await;
    })
    .await
    .expect("in time");
}
