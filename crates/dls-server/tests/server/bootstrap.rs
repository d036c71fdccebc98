//! Bootstrap issuance under attack: a client on the default port that repeats start-ups
//! quoting the MAC of a device being bootstrapped, alone or in a flood. The real phone must
//! keep the certificate it was given, the costly work must happen once per device, and a
//! flood must be bounded.

use std::time::Duration;

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::{Phone, PinOutcome, ServerTrust, WpiClient};
use serde_json::json;

use crate::common::TestServer;

fn phone(mac: &str) -> Phone {
    Phone::new(MacAddr::parse(mac).expect("mac"))
}

fn default_client(srv: &TestServer) -> WpiClient {
    let mut c = WpiClient::new(&format!("127.0.0.1:{}", srv.wpi.port()), &ServerTrust::AcceptAny).expect("client");
    c.set_timeout(Duration::from_secs(30));
    c
}

fn secure_client(p: &Phone) -> WpiClient {
    let mut c = p.secure_client("127.0.0.1").expect("secure client");
    c.set_timeout(Duration::from_secs(30));
    c
}

async fn add(srv: &TestServer, mac: &str, mode: &str) -> Option<String> {
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": mac, "mode": mode}))).await;
    assert_eq!(s, 201, "{v}");
    v["pin"].as_str().map(str::to_owned)
}

/// `(serial, revoked)` of the device's certificates.
async fn certificates(srv: &TestServer, mac: &str) -> Vec<(String, bool)> {
    let (s, v) = srv.admin("GET", &format!("/api/v1/devices/{mac}/certificates"), None).await;
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["serial"].as_str().unwrap_or_default().to_owned(), !c["revoked_at"].is_null()))
        .collect()
}

async fn audit_count(srv: &TestServer, mac: &str, kind: &str) -> usize {
    let (_, v) = srv.admin("GET", &format!("/api/v1/audit?mac={mac}"), None).await;
    v.as_array().into_iter().flatten().filter(|e| e["kind"] == kind).count()
}

async fn state(srv: &TestServer, mac: &str) -> String {
    let (_, d) = srv.admin("GET", &format!("/api/v1/devices/{mac}"), None).await;
    d["security"]["state"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn repeated_start_ups_quoting_a_pin_devices_mac_revoke_nothing() {
    let srv = TestServer::start().await;
    let (mac, key) = ("00:1A:E8:5E:10:01", "001AE85E1001");
    let pin = add(&srv, mac, "pin").await.expect("a PIN");
    let mut real = phone(mac);
    let r = real.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    let delivered = real.pending_pin.clone().expect("pending").secure_mode_data;
    let issued = certificates(&srv, key).await;
    assert_eq!(issued.len(), 1);

    // The attacker: the same MAC, again and again.
    for n in 0..6 {
        let mut attacker = phone(mac);
        let r = attacker.interact(&mut default_client(&srv), Reason::StartUp).await.expect("answered");
        assert_eq!(r.bootstrap.as_deref(), Some("pin"), "attempt {n}");
        let got = attacker.pending_pin.clone().expect("pending").secure_mode_data;
        assert_eq!(got, delivered, "the kept bundle, not a new one ({n})");
    }
    assert_eq!(certificates(&srv, key).await, issued, "no new certificate, nothing revoked");
    assert_eq!(audit_count(&srv, key, "certificate-issued").await, 1, "key generation and PBKDF2 once");
    assert_eq!(audit_count(&srv, key, "certificate-revoked").await, 0);
    assert_eq!(audit_count(&srv, key, "bootstrap-sent").await, 7);

    // The real phone completes its bootstrap over mutual TLS with what it was given.
    real.pin_entries.push_back(pin);
    assert_eq!(real.enter_pin().expect("open"), PinOutcome::Opened);
    let r = real.interact(&mut secure_client(&real), Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions.first(), Some(&Action::ReadItems), "the TAN: {r:?}");
    assert_eq!(state(&srv, key).await, "secured");
    srv.stop().await;
}

#[tokio::test]
async fn repeated_start_ups_quoting_a_nopin_devices_mac_revoke_nothing() {
    let mut srv = TestServer::start().await;
    let (mac, key) = ("00:1A:E8:5E:10:02", "001AE85E1002");
    add(&srv, mac, "nopin").await;
    let mut real = phone(mac);
    let r = real.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));
    let chain = real.secure.as_ref().expect("material").certificate_chain.clone();
    for n in 0..6 {
        let mut attacker = phone(mac);
        let r = attacker.interact(&mut default_client(&srv), Reason::StartUp).await.expect("answered");
        assert_eq!(r.bootstrap.as_deref(), Some("nopin"), "attempt {n}");
        assert_eq!(attacker.secure.as_ref().map(|m| m.certificate_chain.as_str()), Some(chain.as_str()), "{n}");
    }
    let certs = certificates(&srv, key).await;
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert!(!certs[0].1, "not revoked");
    assert_eq!(audit_count(&srv, key, "certificate-issued").await, 1);

    let r = real.interact(&mut secure_client(&real), Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.cleanup_reason, None, "{r:?}");
    assert_eq!(state(&srv, key).await, "secured");

    // The kept material is sealed at rest: the private key is nowhere in the database.
    let key_pem = real.secure.as_ref().expect("material").private_key.clone();
    let body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let probe = &body[..body.len().min(40)];
    if let Some(r) = srv.running.take() {
        r.shutdown().await;
    }
    for (name, bytes) in crate::pins::database_files(&srv.data()) {
        assert!(!bytes.windows(probe.len()).any(|w| w == probe.as_bytes()), "key in {name}");
        assert!(!bytes.windows(17).any(|w| w == b"BEGIN PRIVATE KEY"), "PEM in {name}");
    }
}

#[tokio::test]
async fn a_flood_of_bootstrap_start_ups_is_bounded() {
    let srv = TestServer::start_with(|c| {
        c.new_device_mode = dls_engine::SecurityMode::Nopin;
        c.bootstrap_concurrency = 1;
        // No queue: a start-up that finds the one issuance busy is answered at once.
        c.bootstrap_queue = 0;
    })
    .await;
    // Eight MACs (new devices, registered by their first start-up), four clients each, at once.
    let macs: Vec<String> = (0..8).map(|n| format!("00:1A:E8:5E:20:{n:02X}")).collect();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        for mac in &macs {
            let (mut p, mut c) = (phone(mac), default_client(&srv));
            tasks.push(tokio::spawn(async move { p.interact(&mut c, Reason::StartUp).await.expect("answered") }));
        }
    }
    let (mut bootstraps, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.expect("task");
        match (r.bootstrap.as_deref(), r.cleanup_reason.as_deref()) {
            (Some("nopin"), _) => bootstraps += 1,
            (None, Some("server busy; try again later")) => busy += 1,
            other => panic!("neither a bootstrap nor busy: {other:?} {r:?}"),
        }
    }
    assert_eq!(bootstraps + busy, 32);
    // One issuance per device at most, whatever the interleaving; nothing revoked.
    let mut issued = 0;
    for mac in &macs {
        let key = mac.replace(':', "");
        let certs = certificates(&srv, &key).await;
        assert!(certs.len() <= 1, "{mac}: {certs:?}");
        assert!(certs.iter().all(|(_, revoked)| !revoked));
        issued += certs.len();
    }
    assert!(issued >= 1 && issued <= bootstraps, "{issued} issued, {bootstraps} bootstraps");

    // One at a time, every device gets its bootstrap, still one certificate each.
    for mac in &macs {
        let mut p = phone(mac);
        let r = p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("answered");
        assert_eq!(r.bootstrap.as_deref(), Some("nopin"), "{mac}: {r:?}");
        assert_eq!(certificates(&srv, &mac.replace(':', "")).await.len(), 1, "{mac}");
    }
    srv.stop().await;
}
