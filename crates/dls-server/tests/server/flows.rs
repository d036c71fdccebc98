//! A phone-shaped client against the real service.

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::Phone;
use serde_json::json;

use crate::common::TestServer;

fn phone(mac: &str) -> Phone {
    Phone::new(MacAddr::parse(mac).expect("mac"))
}

#[tokio::test]
async fn start_up_read_all_write_clean_up_then_minimal_diffs() {
    let srv = TestServer::start().await;
    let (s, _) = srv
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [
                {"name": "sntp-addr", "value": "ntp.example.net"},
                {"name": "function-key-def", "index": 0, "value": "30"},
                {"name": "admin-pwd", "value": "s3cret"},
            ]})),
        )
        .await;
    assert_eq!(s, 200);
    let mut p = phone("00:1A:E8:3C:4D:5E");
    p.set("sntp-addr", None, "ntp.old.example");
    let mut c = srv.client();

    let first = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(first.actions, vec![Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert!(c.cookie().is_some(), "a session cookie was set");
    assert_eq!(c.connections_opened(), 1, "one keep-alive connection for the interaction");
    assert_eq!(p.get("sntp-addr", None), Some("ntp.example.net"));
    assert_eq!(p.get("function-key-def", Some(0)), Some("30"));
    assert_eq!(p.get("admin-pwd", None), Some("s3cret"));

    // Nothing differs: the next start-up writes nothing.
    let second = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(second.actions, vec![Action::CleanUp]);

    // A profile change reaches the phone as a minimal diff.
    srv.admin(
        "PUT",
        "/api/v1/profiles/global",
        Some(json!({"item": [
            {"name": "sntp-addr", "value": "ntp2.example.net"},
            {"name": "function-key-def", "index": 0, "value": "30"},
            {"name": "admin-pwd", "value": "s3cret"},
        ]})),
    )
    .await;
    let third = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(third.actions, vec![Action::WriteItems, Action::CleanUp]);
    assert_eq!(third.written.len(), 1, "{:?}", third.written);
    assert_eq!(p.get("sntp-addr", None), Some("ntp2.example.net"));

    // The admin API shows the device, its inventory and its last contact.
    let (s, d) = srv.admin("GET", "/api/v1/devices/001AE83C4D5E", None).await;
    assert_eq!(s, 200);
    assert_eq!(d["device_type"], "OpenStage 60");
    assert!(d["last_contact"].as_u64().is_some());
    assert!(
        d["inventory"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["name"] == "sntp-addr" && i["value"] == "ntp2.example.net"))
    );
    assert!(!d.to_string().contains("s3cret"), "the password is not stored in the inventory");
    srv.stop().await;
}

#[tokio::test]
async fn fragmentation_both_ways() {
    let srv = TestServer::start().await;
    let items: Vec<serde_json::Value> =
        (0..25).map(|i| json!({"name": "key-label-unicode", "index": i, "value": format!("Key {i}")})).collect();
    srv.admin("PUT", "/api/v1/profiles/global", Some(json!({ "item": items }))).await;
    let mut p = phone("001AE83C0001");
    for i in 0..40 {
        p.set("function-key-def", Some(i), "30");
    }
    p.reply_fragment_items = Some(7);
    p.max_items = 4;
    let mut c = srv.client();
    let r = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    let next = r.actions.iter().filter(|a| **a == Action::GetNextFragment).count();
    let writes = r.actions.iter().filter(|a| **a == Action::WriteItems).count();
    assert!(next >= 7, "phone reply sent in fragments: {:?}", r.actions);
    assert_eq!(writes, 7, "25 items in messages of at most 4: {:?}", r.actions);
    assert_eq!(r.written.len(), 25);
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE83C0001", None).await;
    let inv = d["inventory"].as_array().map_or(0, Vec::len);
    // 12 identity items and 40 keys, from 8 fragments (written-only labels are not reported).
    assert_eq!(inv, 52, "the whole fragmented inventory was stored");
    srv.stop().await;
}

#[tokio::test]
async fn busy_phone_is_asked_to_call_back_and_gets_the_work_then() {
    let srv = TestServer::start().await;
    srv.admin(
        "PUT",
        "/api/v1/profiles/global",
        Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.example.net"}]})),
    )
    .await;
    let mut p = phone("001AE83C0002");
    p.busy = true;
    let mut c = srv.client();
    let r = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert!(r.send_solicited, "CleanUp carries send-solicited=true");
    assert_ne!(p.get("sntp-addr", None), Some("ntp.example.net"));
    p.busy = false;
    let r = p.interact(&mut c, Reason::Solicited).await.expect("interaction");
    assert_eq!(r.actions, vec![Action::WriteItems, Action::CleanUp]);
    assert!(!r.send_solicited);
    assert_eq!(p.get("sntp-addr", None), Some("ntp.example.net"));
    srv.stop().await;
}

#[tokio::test]
async fn refused_items_are_recorded_and_not_resent() {
    let srv = TestServer::start().await;
    srv.admin(
        "PUT",
        "/api/v1/profiles/global",
        Some(json!({"item": [
            {"name": "socketed-headset-mode", "value": "1"},
            {"name": "device-type", "value": "OpenStage 80"},
        ]})),
    )
    .await;
    let mut p = phone("001AE83C0003");
    p.unknown_items.insert("socketed-headset-mode".into());
    let mut c = srv.client();
    let r = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(r.refused.len(), 2, "{:?}", r.refused);
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE83C0003", None).await;
    let written = d["written"].to_string();
    assert!(written.contains("unknown item") && written.contains("read only"), "{written}");
    let r = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_an_interaction_in_flight() {
    let mut srv = TestServer::start().await;
    srv.admin(
        "PUT",
        "/api/v1/profiles/global",
        Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.example.net"}]})),
    )
    .await;
    let mut c = srv.client();
    let nonce = dls_workpoint::new_nonce();
    let start = dls_message::WorkpointMessage {
        header: dls_message::Header { nonce: nonce.clone(), max_items: Some(-1), fragment: None },
        reason: dls_message::ReasonForContact::new(Reason::StartUp),
        items: Some(vec![dls_message::Item::new("mac-addr", "00:1A:E8:3C:00:04")]),
    };
    let r = c.exchange(&start).await.expect("start-up answered");
    assert_eq!(r.action, Action::ReadAllItems);
    let running = srv.running.take().expect("running");
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!stopping.is_finished(), "shutdown waits for the interaction in flight");
    // New connections are no longer accepted.
    let mut other = srv.client();
    assert!(other.exchange(&start).await.is_err());
    // The interaction in flight completes.
    let reply = dls_message::WorkpointMessage {
        header: dls_message::Header { nonce, max_items: Some(-1), fragment: None },
        reason: dls_message::ReasonForContact::reply_to(Action::ReadAllItems, dls_message::ReplyStatus::Accepted),
        items: Some(vec![dls_message::Item::new("mac-addr", "00:1A:E8:3C:00:04")]),
    };
    let r = c.exchange(&reply).await.expect("answered during shutdown");
    assert_eq!(r.action, Action::WriteItems);
    let done = dls_message::WorkpointMessage {
        reason: dls_message::ReasonForContact::reply_to(Action::WriteItems, dls_message::ReplyStatus::Accepted),
        items: Some(vec![]),
        ..reply
    };
    let r = c.exchange(&done).await.expect("answered during shutdown");
    assert_eq!(r.action, Action::CleanUp);
    tokio::time::timeout(std::time::Duration::from_secs(5), stopping).await.expect("shutdown completes").expect("task");
}

/// An interaction's session lasts `session-timeout-secs` on the service's clock: a `reply-to`
/// within it goes on, one after it is refused (a manual clock: no waiting, no race).
#[tokio::test]
async fn a_session_expires_on_the_service_clock() {
    let clock = dls_server::ManualClock::from_system();
    let srv = TestServer::start_with_clock(|c| c.session_timeout_secs = 60, std::sync::Arc::new(clock.clone())).await;
    let mut c = srv.client();
    let start_up = |mac: &str| dls_message::WorkpointMessage {
        header: dls_message::Header { nonce: dls_workpoint::new_nonce(), max_items: Some(-1), fragment: None },
        reason: dls_message::ReasonForContact::new(Reason::StartUp),
        items: Some(vec![dls_message::Item::new("mac-addr", mac)]),
    };
    let reply_to = |start: &dls_message::WorkpointMessage| dls_message::WorkpointMessage {
        reason: dls_message::ReasonForContact::reply_to(Action::ReadAllItems, dls_message::ReplyStatus::Accepted),
        ..start.clone()
    };
    // 59 s after the start-up: the interaction goes on.
    let first = start_up("00:1A:E8:3C:00:05");
    assert_eq!(c.exchange(&first).await.expect("start-up answered").action, Action::ReadAllItems);
    clock.advance(std::time::Duration::from_secs(59));
    assert_eq!(c.exchange(&reply_to(&first)).await.expect("answered").action, Action::CleanUp);
    // 61 s after another start-up: the session is gone, the reply-to refused.
    let mut c = srv.client();
    let second = start_up("00:1A:E8:3C:00:06");
    assert_eq!(c.exchange(&second).await.expect("start-up answered").action, Action::ReadAllItems);
    clock.advance(std::time::Duration::from_secs(61));
    let refused = c.exchange(&reply_to(&second)).await.expect("answered");
    assert_eq!(
        (&refused.action, refused.item("cleanup-reason")),
        (&Action::CleanUp, Some("no interaction in progress")),
        "{refused:?}"
    );
    srv.stop().await;
}
