//! Jobs end to end: the admin API queues them, contact-me or DCMP brings the phone, the
//! phone runs them; deployment files are downloaded over HTTPS (by `curl` too).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_server::{Clock, ManualClock};

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::Phone;
use dls_workpoint::contact::ContactListener;
use serde_json::json;

use crate::common::{TestServer, run};

const MAC: &str = "00:1A:E8:70:00:01";

fn mac() -> MacAddr {
    MacAddr::parse(MAC).expect("mac")
}

/// A phone whose contact-me URI points at `listener`.
fn phone_listening_at(addr: Option<SocketAddr>) -> Phone {
    let mut p = Phone::new(mac());
    let uri = match addr {
        Some(a) => format!("http://{a}/contact_dls.html/ContactDLS"),
        // "Behind NAT": a URI nobody answers at.
        None => "http://127.0.0.1:9/contact_dls.html/ContactDLS".to_owned(),
    };
    p.set("contact-me-uri", None, &uri);
    p
}

/// Registers the phone with a first start-up (its inventory, hence its contact-me URI).
async fn first_start_up(server: &TestServer, phone: &mut Phone) {
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp));
}

async fn add_job(server: &TestServer, job: serde_json::Value) -> serde_json::Value {
    let (status, v) = server.admin("POST", "/api/v1/jobs", Some(json!({ "target": { "mac": MAC }, "job": job }))).await;
    assert_eq!(status, 201, "{v}");
    v["jobs"][0].clone()
}

async fn job(server: &TestServer, id: &serde_json::Value) -> serde_json::Value {
    let (status, v) = server.admin("GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn a_write_job_reaches_an_idle_phone_through_contact_me() {
    let server = TestServer::start().await;
    let mut listener =
        ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::ZERO).await.expect("binds");
    let mut phone = phone_listening_at(Some(listener.local_addr()));
    first_start_up(&server, &mut phone).await;

    let j =
        add_job(&server, json!({ "kind": "write", "items": [{ "name": "sntp-addr", "value": "ntp.example.net" }] }))
            .await;
    assert_eq!(j["state"], "queued");
    // The contact-me arrives within seconds; the phone calls in.
    listener.next(Duration::from_secs(10)).await.expect("a contact-me");
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert!(r.actions.contains(&Action::WriteItems), "{:?}", r.actions);
    assert!(!r.send_solicited);
    assert_eq!(phone.get("sntp-addr", None), Some("ntp.example.net"));
    let done = job(&server, &j["id"]).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["answer"], "1 items written, 0 refused");
    assert_eq!(done["contact"], "contact-me answered 204");
    server.stop().await;
}

#[tokio::test]
async fn a_contact_me_goes_only_to_the_address_the_phone_calls_from() {
    let server = TestServer::start().await;
    // Listening on 127.0.0.2 (loopback too), while the phone calls from 127.0.0.1: a URI
    // that names another host than the caller is not contacted.
    let mut listener =
        ContactListener::bind("127.0.0.2:0".parse().expect("addr"), Duration::ZERO).await.expect("binds");
    let mut phone = phone_listening_at(Some(listener.local_addr()));
    first_start_up(&server, &mut phone).await;
    let j = add_job(&server, json!({ "kind": "restart" })).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let contact = loop {
        let j = job(&server, &j["id"]).await;
        if let Some(c) = j["contact"].as_str() {
            break c.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no contact-me recorded: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        contact,
        "contact-me not sent: the contact-me-uri's host 127.0.0.2 is not the address the phone calls from (127.0.0.1)"
    );
    assert_eq!(listener.next(Duration::from_millis(500)).await, None, "nothing reached the listener");
    server.stop().await;
}

/// However many jobs and contact requests come in, a phone gets one contact-me; the next
/// one only once the phone's contact gap (300 s after a contact-me it answered) is over on
/// the service's clock: a manual clock, so the test never depends on how loaded the host is.
#[tokio::test]
async fn a_burst_of_jobs_sends_one_contact_me_and_the_next_after_the_contact_gap() {
    // Starting now: the phone checks the service's certificate against the host's clock.
    let clock = ManualClock::from_system();
    let start = clock.now().0;
    let server = TestServer::start_with_clock(|_| {}, Arc::new(clock.clone())).await;
    let mut listener =
        ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::ZERO).await.expect("binds");
    let mut phone = phone_listening_at(Some(listener.local_addr()));
    first_start_up(&server, &mut phone).await;
    for i in 0..20 {
        add_job(&server, json!({ "kind": "write", "items": [{ "name": "e164", "value": format!("49{i}") }] })).await;
        let (status, _) = server.admin("POST", &format!("/api/v1/devices/{MAC}/contact"), None).await;
        assert_eq!(status, 202);
    }
    listener.next(Duration::from_secs(10)).await.expect("one contact-me");
    // The phone has not called: its jobs still wait, but nothing more within the gap.
    clock.advance(Duration::from_secs(299));
    let (status, _) = server.admin("POST", &format!("/api/v1/devices/{MAC}/contact"), None).await;
    assert_eq!(status, 202);
    assert_eq!(listener.next(Duration::from_millis(500)).await, None, "none within the contact gap");
    clock.advance(Duration::from_secs(1));
    listener.next(Duration::from_secs(10)).await.expect("the next contact-me once the gap is over");
    // Recorded at the clock's time, not the host's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, jobs) = server.admin("GET", &format!("/api/v1/jobs?mac={MAC}&limit=1"), None).await;
        if jobs[0]["contact_at"] == json!(start + 300) {
            assert_eq!(jobs[0]["contact"], "contact-me answered 204");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the second contact-me is not recorded: {jobs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_busy_phone_gets_the_job_at_its_callback() {
    let server = TestServer::start().await;
    let mut phone = phone_listening_at(None);
    first_start_up(&server, &mut phone).await;
    let j =
        add_job(&server, json!({ "kind": "write", "items": [{ "name": "sntp-addr", "value": "ntp.busy.example" }] }))
            .await;
    phone.busy = true;
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert!(r.send_solicited, "busy: the DLS asks for a callback");
    assert_eq!(job(&server, &j["id"]).await["state"], "busy-retry");
    // Busy or not, every CleanUp asks for the callback while the job waits.
    let r = phone.interact(&mut c, Reason::LocalChanges).await.expect("local changes");
    assert!(r.send_solicited);
    phone.busy = false;
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("callback");
    assert!(!r.send_solicited);
    assert_eq!(phone.get("sntp-addr", None), Some("ntp.busy.example"));
    assert_eq!(job(&server, &j["id"]).await["state"], "done");
    server.stop().await;
}

async fn dcmp(server: &TestServer, query: &str) -> u16 {
    let url = format!("http://{}/dcmp/contact-me?{query}", server.http);
    let (_, out, _) =
        run(tokio::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]), 10).await;
    out.trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn dcmp_says_whether_jobs_wait() {
    let server = TestServer::start().await;
    let mut phone = phone_listening_at(None);
    first_start_up(&server, &mut phone).await;
    assert_eq!(dcmp(&server, &format!("device-id={MAC}")).await, 200, "nothing pending");
    let j = add_job(&server, json!({ "kind": "restart" })).await;
    assert_eq!(dcmp(&server, &format!("device-id={MAC}")).await, 202);
    assert_eq!(dcmp(&server, "device-id=00:1A:E8:99:99:99").await, 200, "an unknown device: say nothing");
    assert_eq!(dcmp(&server, "device-id=not-a-mac").await, 400);
    assert_eq!(dcmp(&server, "other=1").await, 400);
    // The phone behind NAT polls, calls in, runs the job.
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert_eq!(r.restart.as_deref(), Some("Restart"));
    assert_eq!(job(&server, &j["id"]).await["state"], "done");
    assert_eq!(dcmp(&server, &format!("device-id={MAC}")).await, 200);
    server.stop().await;
}

/// One address polling DCMP faster than `dcmp-polls-per-second` gets `429` past its burst
/// (four times the rate), and its allowance back as the service's clock moves on.
#[tokio::test]
async fn a_dcmp_flood_from_one_address_is_limited() {
    let clock = ManualClock::from_system();
    let server = TestServer::start_with_clock(|c| c.dcmp_polls_per_second = 1, Arc::new(clock.clone())).await;
    let url = format!("http://{}/dcmp/contact-me?device-id={MAC}", server.http);
    let flood = |n: usize| {
        // One curl, n requests on one connection.
        let urls: Vec<String> = std::iter::repeat_n(url.clone(), n).collect();
        async move {
            let mut cmd = tokio::process::Command::new("curl");
            cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}\\n"]).args(&urls);
            let (_, out, _) = run(&mut cmd, 20).await;
            // Only the first URL's body goes to -o; the status codes are the 3-digit lines.
            out.lines().filter(|l| l.len() == 3 && l.parse::<u16>().is_ok()).map(str::to_owned).collect::<Vec<_>>()
        }
    };
    let codes = flood(30).await;
    assert_eq!(codes.len(), 30);
    assert!(codes[..4].iter().all(|c| c == "200") && codes[4..].iter().all(|c| c == "429"), "{codes:?}");
    // Two seconds later: two more.
    clock.advance(Duration::from_secs(2));
    let codes = flood(5).await;
    assert_eq!(codes, ["200", "200", "429", "429", "429"]);
    server.stop().await;
}

#[tokio::test]
async fn job_requests_that_make_no_sense_are_refused() {
    let server = TestServer::start().await;
    let mut phone = phone_listening_at(None);
    first_start_up(&server, &mut phone).await;
    let cases = [
        (json!({ "target": { "mac": "00:1A:E8:99:99:99" }, "job": { "kind": "restart" } }), 404),
        (json!({ "target": { "mac": MAC, "all": true }, "job": { "kind": "restart" } }), 400),
        (json!({ "target": {}, "job": { "kind": "restart" } }), 400),
        (json!({ "target": { "mac": MAC }, "job": { "kind": "explode" } }), 400),
        (json!({ "target": { "mac": MAC }, "job": { "kind": "write", "items": [] } }), 400),
        (json!({ "target": { "mac": MAC }, "job": { "kind": "deploy-file", "file": 42 } }), 404),
        (json!({ "target": { "mac": MAC }, "job": { "kind": "deploy-file", "file": 1, "priority": "now" } }), 404),
    ];
    for (body, want) in cases {
        let (status, v) = server.admin("POST", "/api/v1/jobs", Some(body.clone())).await;
        assert_eq!(status, want, "{body} → {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert_eq!(server.admin("GET", "/api/v1/jobs?state=nonsense", None).await.0, 400);
    assert_eq!(server.admin("POST", "/api/v1/jobs/999/cancel", None).await.0, 404);
    assert_eq!(server.admin("GET", "/api/v1/jobs", None).await.1, json!([]), "nothing was queued");

    // A job for a device that is then deleted goes with it.
    let j = add_job(&server, json!({ "kind": "restart" })).await;
    let (status, v) = server.admin("POST", &format!("/api/v1/jobs/{}/cancel", j["id"]), None).await;
    assert_eq!((status, v["state"].as_str()), (200, Some("cancelled")));
    assert_eq!(server.admin("POST", &format!("/api/v1/jobs/{}/cancel", j["id"]), None).await.0, 409);
    add_job(&server, json!({ "kind": "restart" })).await;
    assert_eq!(server.admin("DELETE", &format!("/api/v1/devices/{MAC}"), None).await.0, 200);
    assert_eq!(server.admin("GET", "/api/v1/jobs", None).await.1, json!([]));
    assert_eq!(dcmp(&server, &format!("device-id={MAC}")).await, 200);
    server.stop().await;
}

#[tokio::test]
async fn restart_and_factory_reset_jobs_run_end_to_end() {
    let server = TestServer::start().await;
    let mut phone = phone_listening_at(None);
    first_start_up(&server, &mut phone).await;
    let restart = add_job(&server, json!({ "kind": "restart" })).await;
    let reset = add_job(&server, json!({ "kind": "factory-reset" })).await;
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert_eq!(r.restart.as_deref(), Some("Restart"));
    assert!(r.send_solicited, "the factory reset still waits");
    assert_eq!(job(&server, &restart["id"]).await["answer"], "restart accepted");
    // The phone reboots: its start-up runs the next job.
    let r = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
    assert_eq!(r.restart.as_deref(), Some("FactoryReset"));
    assert!(!r.send_solicited);
    let done = job(&server, &reset["id"]).await;
    assert_eq!((done["state"].as_str(), done["answer"].as_str()), (Some("done"), Some("factory reset accepted")));
    // A default-mode device that never was bootstrapped: no secure-mode state to reset (the
    // device's audit records are the two jobs queued, by the admin token).
    let (_, audit) = server.admin("GET", "/api/v1/audit?mac=001AE8700001", None).await;
    let kinds: Vec<(&str, &str)> = audit
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["kind"].as_str().unwrap_or(""), r["actor"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds, [("jobs-queued", "admin-token"), ("jobs-queued", "admin-token")], "{audit}");
    server.stop().await;
}

#[tokio::test]
async fn a_read_job_records_the_values() {
    let server = TestServer::start().await;
    let mut phone = phone_listening_at(None);
    phone.set("sntp-addr", None, "ntp.phone.example");
    first_start_up(&server, &mut phone).await;
    let j = add_job(&server, json!({ "kind": "read", "items": [{ "name": "sntp-addr" }, { "name": "no-such-item" }] }))
        .await;
    let mut c = server.client();
    phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    let done = job(&server, &j["id"]).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["items"][0]["name"].as_str(), done["items"][0]["value"].as_str()),
        (Some("sntp-addr"), Some("ntp.phone.example"))
    );
    assert_eq!(done["items"][1]["status"], "unknown item");
    server.stop().await;
}

#[tokio::test]
async fn a_phone_behind_nat_gets_its_job_through_dcmp_polling() {
    use dls_workpoint::{Agent, AgentConfig, AgentEvent, Trigger};
    let server = TestServer::start().await;
    // The profile tells phones to poll, every second.
    let dcmp_url = format!("http://{}/dcmp/", server.http);
    let items = json!([{ "name": "dcmp-url", "value": dcmp_url }, { "name": "dcmp-poll-interval", "value": "1" }]);
    let (status, _) = server.admin("PUT", "/api/v1/profiles/global", Some(json!({ "item": items }))).await;
    assert_eq!(status, 200);
    let mut config = AgentConfig::new(format!("127.0.0.1:{}", server.wpi.port()));
    config.trust = dls_workpoint::ServerTrust::Verify(vec![server.ca_pem()]);
    config.contact_listen = None; // behind NAT: nobody can reach the phone
    let mut agent = Agent::start(phone_listening_at(None), config).await.expect("agent starts");
    let booted = agent
        .wait_for(Duration::from_secs(15), |e| matches!(e, AgentEvent::Interaction { trigger: Trigger::Boot, .. }))
        .await;
    assert!(booted.is_some(), "the phone started up");
    assert_eq!(agent.phone().get("dcmp-url", None), Some(dcmp_url.as_str()));

    let j =
        add_job(&server, json!({ "kind": "write", "items": [{ "name": "sntp-addr", "value": "ntp.nat.example" }] }))
            .await;
    let called = agent
        .wait_for(Duration::from_secs(15), |e| matches!(e, AgentEvent::Interaction { trigger: Trigger::Dcmp, .. }))
        .await;
    assert!(called.is_some(), "a DCMP 202 made the phone call in");
    assert_eq!(agent.phone().get("sntp-addr", None), Some("ntp.nat.example"));
    let done = job(&server, &j["id"]).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(
        done["contact"].as_str().is_some_and(|c| c.starts_with("contact-me failed")),
        "the contact-me could not reach it: {done}"
    );
    agent.stop().await;
    server.stop().await;
}
