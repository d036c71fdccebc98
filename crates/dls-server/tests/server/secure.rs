//! Secure mode end to end over real sockets: both bootstraps with the project's phone,
//! every refusal, and `openssl s_client` / `curl` against the secure port.

use std::time::Duration;

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::{ClientError, Phone, PinOutcome, ServerTrust, WpiClient};
use serde_json::json;
use tokio::process::Command;

use crate::common::{TestServer, run, write};

fn phone(mac: &str) -> Phone {
    Phone::new(MacAddr::parse(mac).expect("mac"))
}

/// A default-mode client, as a phone has: it does not verify the server.
fn default_client(srv: &TestServer) -> WpiClient {
    let mut c = WpiClient::new(&format!("127.0.0.1:{}", srv.wpi.port()), &ServerTrust::AcceptAny).expect("client");
    c.set_timeout(Duration::from_secs(20));
    c
}

fn secure_client(srv: &TestServer, p: &Phone) -> WpiClient {
    let mut c = p.secure_client("127.0.0.1").expect("secure client");
    assert_eq!(p.secure.as_ref().map(|m| m.port), Some(srv.secure.port()), "dls-secure-port names the listener");
    c.set_timeout(Duration::from_secs(20));
    c
}

async fn add(srv: &TestServer, mac: &str, mode: &str) -> Option<String> {
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": mac, "mode": mode}))).await;
    assert_eq!(s, 201, "{v}");
    v["pin"].as_str().map(str::to_owned)
}

async fn audit_kinds(srv: &TestServer, mac: &str) -> Vec<String> {
    let (_, v) = srv.admin("GET", &format!("/api/v1/audit?mac={mac}"), None).await;
    v.as_array().into_iter().flatten().filter_map(|e| e["kind"].as_str().map(str::to_owned)).collect()
}

async fn configured(srv: &TestServer) {
    let (s, _) = srv
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.secure.example"}]})),
        )
        .await;
    assert_eq!(s, 200);
}

/// Bootstraps `mac` in `nopin` mode; returns the phone, in secure mode.
async fn nopin_phone(srv: &TestServer, mac: &str) -> Phone {
    add(srv, mac, "nopin").await;
    let mut p = phone(mac);
    let r = p.interact(&mut default_client(srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));
    p
}

#[tokio::test]
async fn pin_bootstrap_end_to_end() {
    let srv = TestServer::start().await;
    configured(&srv).await;
    let pin = add(&srv, "00:1A:E8:5E:00:01", "pin").await.expect("a PIN is issued");
    assert!(pin.len() == 15 && pin.bytes().all(|b| b.is_ascii_digit()), "{pin}");
    let mut p = phone("00:1A:E8:5E:00:01");

    // Default port: the bootstrap WriteItems carries only the sealed bundle.
    let r = p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.actions, vec![Action::WriteItems, Action::CleanUp]);
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    assert!(p.get("sntp-addr", None).is_none(), "no configuration before secure mode");
    // The user types the PIN at the phone.
    p.pin_entries.push_back(pin.clone());
    assert_eq!(p.enter_pin().expect("open"), PinOutcome::Opened);

    // Secure port: mutual TLS, the server verified against the delivered CA, the TAN, then
    // a normal start-up.
    let mut c = secure_client(&srv, &p);
    let r = p.interact(&mut c, Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions, vec![Action::ReadItems, Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert_eq!(p.get("sntp-addr", None), Some("ntp.secure.example"));
    // Later start-ups go straight to work.
    let r = p.interact(&mut c, Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions, vec![Action::CleanUp]);

    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE85E0001", None).await;
    assert_eq!(d["security"]["state"], "secured");
    assert_eq!(d["security"]["pin_outstanding"], false, "the PIN is wiped");
    assert!(!d.to_string().contains(&pin));
    let kinds = audit_kinds(&srv, "001AE85E0001").await;
    for k in ["pin-issued", "certificate-issued", "bootstrap-sent", "tan-right", "bootstrapped"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }

    // The default port now refuses the device, with a reason, and says so in the audit log.
    let mut d = default_client(&srv);
    let r = p.interact(&mut d, Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert!(r.cleanup_reason.is_some());
    assert!(audit_kinds(&srv, "001AE85E0001").await.contains(&"default-port-refused".to_owned()));
    srv.stop().await;
}

#[tokio::test]
async fn nopin_bootstrap_end_to_end_and_a_restarted_phone_gets_the_same_bundle() {
    let srv = TestServer::start().await;
    configured(&srv).await;
    let mut p = nopin_phone(&srv, "00:1A:E8:5E:00:02").await;
    let r = p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions, vec![Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert_eq!(p.get("sntp-addr", None), Some("ntp.secure.example"));

    // pin mode: a phone restarting before its user typed the PIN gets the same bundle again.
    let pin = add(&srv, "00:1A:E8:5E:00:03", "pin").await.expect("pin");
    let mut q = phone("00:1A:E8:5E:00:03");
    q.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    let first = q.pending_pin.clone().expect("pending").secure_mode_data;
    q.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap again");
    let second = q.pending_pin.clone().expect("pending").secure_mode_data;
    assert_eq!(first, second, "the kept bundle, not a new one");
    q.pin_entries.push_back(pin);
    assert_eq!(q.enter_pin().expect("open"), PinOutcome::Opened, "same PIN");
    let r = q.interact(&mut secure_client(&srv, &q), Reason::StartUp).await.expect("secure");
    assert_eq!(r.actions.first(), Some(&Action::ReadItems));
    srv.stop().await;
}

#[tokio::test]
async fn wrong_pins_at_the_phone_then_a_new_pin() {
    let srv = TestServer::start().await;
    add(&srv, "00:1A:E8:5E:00:04", "pin").await.expect("pin");
    let mut p = phone("00:1A:E8:5E:00:04");
    p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    p.pin_entries.extend(["111111111111111".to_owned(), "222222222222222".to_owned(), "333333333333333".to_owned()]);
    assert_eq!(p.enter_pin().expect("typed"), PinOutcome::Wrong { left: 2 });
    assert_eq!(p.enter_pin().expect("typed"), PinOutcome::Wrong { left: 1 });
    assert_eq!(p.enter_pin().expect("typed"), PinOutcome::RetriesExceeded);
    let answer = p.clean_up(&mut default_client(&srv), "password retries exceeded").await.expect("answered");
    assert_eq!(answer.action, Action::CleanUp);
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE85E0004", None).await;
    assert_eq!(d["security"]["state"], "failed");
    // Until an administrator issues a new PIN, the device gets no bootstrap.
    let r = p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert!(r.bootstrap.is_none());
    let (s, v) = srv.admin("POST", "/api/v1/devices/001AE85E0004/security", Some(json!({"new_pin": true}))).await;
    assert_eq!(s, 200, "{v}");
    let pin = v["pin"].as_str().expect("pin").to_owned();
    let r = p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    p.pin_entries.push_back(pin);
    assert_eq!(p.enter_pin().expect("open"), PinOutcome::Opened);
    srv.stop().await;
}

#[tokio::test]
async fn wrong_tans_lock_the_device_out() {
    let srv = TestServer::start().await;
    let pin = add(&srv, "00:1A:E8:5E:00:05", "pin").await.expect("pin");
    let mut p = phone("00:1A:E8:5E:00:05");
    p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    p.pin_entries.push_back(pin);
    p.enter_pin().expect("open");
    p.tan = Some("000".into());
    let mut c = secure_client(&srv, &p);
    for _ in 0..3 {
        let r = p.interact(&mut c, Reason::StartUp).await.expect("answered");
        assert_eq!(r.actions, vec![Action::ReadItems, Action::CleanUp]);
        assert_eq!(r.cleanup_reason.as_deref(), Some("wrong TAN from device"));
    }
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE85E0005", None).await;
    assert_eq!(d["security"]["state"], "failed");
    assert_eq!(d["security"]["certificate"], serde_json::Value::Null, "revoked");
    // The certificate no longer works.
    let r = p.interact(&mut c, Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    let kinds = audit_kinds(&srv, "001AE85E0005").await;
    assert_eq!(kinds.iter().filter(|k| *k == "tan-wrong").count(), 3);
    assert!(
        kinds.contains(&"certificate-revoked".to_owned()) && kinds.contains(&"certificate-refused".to_owned()),
        "{kinds:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn certificate_refusals() {
    let srv = TestServer::start().await;
    let mut a = nopin_phone(&srv, "00:1A:E8:5E:00:0A").await;
    let mut b = nopin_phone(&srv, "00:1A:E8:5E:00:0B").await;
    a.interact(&mut secure_client(&srv, &a), Reason::StartUp).await.expect("A works");

    // Device A's certificate, device B's MAC.
    let mut impostor = Phone::new(b.mac());
    impostor.secure = a.secure.clone();
    let r = impostor.interact(&mut secure_client(&srv, &impostor), Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert!(audit_kinds(&srv, "001AE85E000A").await.contains(&"certificate-mismatch".to_owned()));
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE85E000B", None).await;
    assert_eq!(d["security"]["state"], "not-bootstrapped", "B is untouched");

    // A revoked certificate: reset A (e.g. after a factory reset).
    let (s, _) = srv.admin("POST", "/api/v1/devices/001AE85E000A/security", Some(json!({"reset": true}))).await;
    assert_eq!(s, 200);
    let r = a.interact(&mut secure_client(&srv, &a), Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert_eq!(r.cleanup_reason.as_deref(), Some("certificate revoked"));
    // … and A can be bootstrapped again on the default port.
    let r = a.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));

    // No client certificate, a certificate from another CA, an expired one: no handshake.
    let ca = srv.ca_pem();
    let mut bare = WpiClient::new(&format!("127.0.0.1:{}", srv.secure.port()), &ServerTrust::Verify(vec![ca.clone()]))
        .expect("client");
    bare.set_timeout(Duration::from_secs(10));
    let err = b.interact(&mut bare, Reason::StartUp).await.expect_err("no client certificate");
    assert!(matches!(err, ClientError::Tls(_) | ClientError::Connect(_)), "{err}");

    let other_ca = rcgen::generate_simple_self_signed(vec!["other".into()]).expect("other CA");
    let mut foreign = b.secure.clone().expect("material");
    foreign.certificate_chain = other_ca.cert.pem();
    foreign.private_key = zeroize::Zeroizing::new(other_ca.signing_key.serialize_pem());
    let mut c = WpiClient::with_tls(&format!("127.0.0.1:{}", srv.secure.port()), foreign.client_config().expect("tls"))
        .expect("client");
    c.set_timeout(Duration::from_secs(10));
    assert!(b.interact(&mut c, Reason::StartUp).await.is_err(), "a certificate from another CA");

    let expired = expired_certificate(&srv, b.mac());
    let mut old = b.secure.clone().expect("material");
    old.certificate_chain = expired.0;
    old.private_key = zeroize::Zeroizing::new(expired.1);
    let mut c = WpiClient::with_tls(&format!("127.0.0.1:{}", srv.secure.port()), old.client_config().expect("tls"))
        .expect("client");
    c.set_timeout(Duration::from_secs(10));
    assert!(b.interact(&mut c, Reason::StartUp).await.is_err(), "an expired certificate");

    // B's own certificate still works.
    b.interact(&mut secure_client(&srv, &b), Reason::StartUp).await.expect("B works");
    srv.stop().await;
}

/// A certificate for `mac` signed by the service's own CA, expired yesterday.
fn expired_certificate(srv: &TestServer, mac: MacAddr) -> (String, String) {
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(srv.data().join("ca.key")).expect("ca.key")).expect("key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&srv.ca_pem(), ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, mac.to_string());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.signed_by(&key, &issuer).expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn a_replayed_reply_to_with_a_stale_session_is_refused() {
    let srv = TestServer::start().await;
    let mut c = default_client(&srv);
    let nonce = dls_workpoint::new_nonce();
    let start = dls_message::WorkpointMessage {
        header: dls_message::Header { nonce: nonce.clone(), max_items: Some(-1), fragment: None },
        reason: dls_message::ReasonForContact::new(Reason::StartUp),
        items: Some(vec![dls_message::Item::new("mac-addr", "00:1A:E8:5E:00:0C")]),
    };
    assert_eq!(c.exchange(&start).await.expect("answered").action, Action::ReadAllItems);
    let cookie = c.cookie().expect("cookie").to_owned();
    let reply = dls_message::WorkpointMessage {
        header: dls_message::Header { nonce, max_items: Some(-1), fragment: None },
        reason: dls_message::ReasonForContact::reply_to(Action::ReadAllItems, dls_message::ReplyStatus::Accepted),
        items: Some(vec![dls_message::Item::new("mac-addr", "00:1A:E8:5E:00:0C")]),
    };
    assert_eq!(c.exchange(&reply).await.expect("answered").action, Action::CleanUp, "interaction over");
    // The same reply-to again, with the old cookie, on a new connection.
    let mut replay = default_client(&srv);
    replay.set_cookie(&cookie);
    let m = replay.exchange(&reply).await.expect("answered");
    assert_eq!(m.action, Action::CleanUp);
    assert_eq!(m.item("cleanup-reason"), Some("no interaction in progress"), "refused, and says why");
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE85E000C", None).await;
    assert!(d["inventory_at"].as_u64().is_some(), "the interaction's inventory was stored");
    srv.stop().await;
}

#[tokio::test]
async fn openssl_and_curl_on_the_secure_port() {
    let srv = TestServer::start().await;
    let p = nopin_phone(&srv, "00:1A:E8:5E:00:0D").await;
    let m = p.secure.clone().expect("material");
    let dir = srv.dir.path();
    let ca = write(dir, "ca.pem", &m.server_cas.join("\n"));
    let cert = write(dir, "device.crt", &m.certificate_chain);
    let key = write(dir, "device.key", &m.private_key);
    let addr = format!("127.0.0.1:{}", srv.secure.port());

    // Without a client certificate: the handshake fails (TLS 1.2 fails in the handshake;
    // TLS 1.3 reports the alert when the client reads).
    let (code, out, err) = run(
        Command::new("sh").arg("-c").arg(format!(
            "printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | openssl s_client -connect {addr} -tls1_2 -CAfile {} -verify_return_error -quiet",
            ca.display()
        )),
        30,
    )
    .await;
    assert_ne!(code, 0, "refused without a client certificate: {out}{err}");
    // With the device certificate: verified both ways.
    let (code, out, err) = run(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-brief", "-verify_return_error", "-CAfile"])
            .arg(&ca)
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key),
        30,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(format!("{out}{err}").contains("Verification: OK"), "{out}{err}");
    // curl with the device certificate posts a start-up and is answered.
    let body = write(
        dir,
        "startup.xml",
        &include_str!("../../../../tests/samples/wpi/startup.xml").replace("00:1A:E8:3C:4D:5E", "00:1A:E8:5E:00:0D"),
    );
    let (code, out, err) = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-H", "Content-Type: text/xml", "--cacert"])
            .arg(&ca)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("https://127.0.0.1:{}/DeploymentService/LoginService", srv.secure.port())),
        30,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<Action>ReadAllItems</Action>"), "{out}");
    // curl without one: refused.
    let (code, _, _) = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("https://127.0.0.1:{}/DeploymentService/LoginService", srv.secure.port())),
        30,
    )
    .await;
    assert_ne!(code, 0);
    srv.stop().await;
}

#[tokio::test]
async fn an_enterprise_ca_issues_the_certificates() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Enterprise Phones CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca = params.self_signed(&key).expect("CA");
    let ca_file = write(tmp.path(), "enterprise.crt", &ca.pem());
    let key_file = write(tmp.path(), "enterprise.key", &key.serialize_pem());
    let srv = TestServer::start_with(|c| {
        c.ca_cert_file = Some(ca_file.clone());
        c.ca_key_file = Some(key_file.clone());
    })
    .await;
    // The default port's certificate verifies against the enterprise CA alone.
    let mut c =
        WpiClient::new(&format!("127.0.0.1:{}", srv.wpi.port()), &ServerTrust::Verify(vec![ca.pem()])).expect("client");
    c.set_timeout(Duration::from_secs(20));
    add(&srv, "00:1A:E8:5E:00:0E", "nopin").await;
    let mut p = phone("00:1A:E8:5E:00:0E");
    let r = p.interact(&mut c, Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));
    // The phone is told to trust exactly that CA, and its certificate chains to it.
    let m = p.secure.clone().expect("material");
    assert_eq!(m.server_cas.len(), 1);
    assert_eq!(m.server_cas[0].trim(), ca.pem().trim());
    p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    srv.stop().await;
}

#[tokio::test]
async fn rsa_2048_device_keys_for_old_firmware() {
    let srv = TestServer::start_with(|c| c.device_key_type = dls_server::pki::DeviceKeyType::Rsa2048).await;
    let mut p = nopin_phone(&srv, "00:1A:E8:5E:00:0F").await;
    let m = p.secure.clone().expect("material");
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(m.certificate_chain.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .expect("PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).expect("X.509");
    let spki = cert.public_key();
    assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.113549.1.1.1", "an RSA key");
    assert!(spki.subject_public_key.data.len() > 256, "2048 bits");
    assert_eq!(cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()), Some("001AE85E000F"));
    // The phone authenticates with it on the secure port.
    let r = p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions.first(), Some(&Action::ReadAllItems));
    srv.stop().await;
}

#[tokio::test]
async fn jobs_of_a_secured_device_run_on_the_secure_port_only() {
    let srv = TestServer::start().await;
    let mac = "00:1A:E8:5E:00:51";
    let mut p = nopin_phone(&srv, mac).await;
    p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    let (s, v) = srv
        .admin(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "target": { "mac": mac }, "job": { "kind": "write", "items": [{ "name": "e164", "value": "4930123" }] } })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // On the default port the device is refused, and nothing is sent to it.
    let r = p.interact(&mut default_client(&srv), Reason::Solicited).await.expect("default port");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert_eq!(r.cleanup_reason.as_deref(), Some("device is in secure mode"));
    assert_eq!(p.get("e164", None), Some(""));
    // Over mutual TLS it runs.
    let r = p.interact(&mut secure_client(&srv, &p), Reason::Solicited).await.expect("secure port");
    assert!(r.actions.contains(&Action::WriteItems), "{:?}", r.actions);
    assert_eq!(p.get("e164", None), Some("4930123"));
    let (_, jobs) = srv.admin("GET", &format!("/api/v1/jobs?mac={mac}"), None).await;
    assert_eq!(jobs[0]["state"], "done", "{jobs}");
    srv.stop().await;
}

#[tokio::test]
async fn a_factory_reset_job_returns_a_nopin_device_to_bootstrapping() {
    let srv = TestServer::start().await;
    configured(&srv).await;
    let mac = "00:1A:E8:5E:00:52";
    let key = "001AE85E0052";
    let mut p = nopin_phone(&srv, mac).await;
    p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    let (_, d) = srv.admin("GET", &format!("/api/v1/devices/{key}"), None).await;
    assert_eq!(d["security"]["state"], "secured", "{d}");
    let old_serial = d["security"]["certificate"].as_str().expect("a certificate").to_owned();
    let old_material = p.secure.clone().expect("secure-mode material");

    let (s, v) = srv
        .admin("POST", "/api/v1/jobs", Some(json!({ "target": { "mac": mac }, "job": { "kind": "factory-reset" } })))
        .await;
    assert_eq!(s, 201, "{v}");
    // Over mutual TLS the phone accepts the factory reset, and forgets its secure mode.
    let r = p.interact(&mut secure_client(&srv, &p), Reason::Solicited).await.expect("secure port");
    assert_eq!(r.restart.as_deref(), Some("FactoryReset"), "{r:?}");
    assert!(p.secure.is_none(), "the phone lost its certificate");
    let (_, jobs) = srv.admin("GET", &format!("/api/v1/jobs?mac={mac}"), None).await;
    assert_eq!(jobs[0]["state"], "done", "{jobs}");
    let answer = jobs[0]["answer"].as_str().unwrap_or_default();
    assert!(answer.starts_with("factory reset accepted") && answer.contains("bootstrapped again"), "{answer}");
    // … and so does the service, in the same transaction.
    let (_, d) = srv.admin("GET", &format!("/api/v1/devices/{key}"), None).await;
    assert_eq!(d["security"]["mode"], "nopin", "{d}");
    assert_eq!(d["security"]["state"], "not-bootstrapped", "{d}");
    assert_eq!(d["security"]["certificate"], serde_json::Value::Null, "{d}");
    let kinds = audit_kinds(&srv, key).await;
    assert!(
        kinds.contains(&"device-reset".to_owned()) && kinds.contains(&"certificate-revoked".to_owned()),
        "{kinds:?}"
    );

    // The old certificate is refused on the secure port.
    let mut ghost = phone(mac);
    ghost.secure = Some(old_material);
    let r = ghost.interact(&mut secure_client(&srv, &ghost), Reason::StartUp).await.expect("answered");
    assert_eq!(r.actions, vec![Action::CleanUp]);
    assert_eq!(r.cleanup_reason.as_deref(), Some("certificate revoked"));
    assert!(audit_kinds(&srv, key).await.contains(&"certificate-refused".to_owned()));

    // The reset phone starts up on the default port: it is bootstrapped again, with a new
    // certificate, and works on the secure port.
    let r = p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));
    let r = p.interact(&mut secure_client(&srv, &p), Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.cleanup_reason, None, "{r:?}");
    let (_, d) = srv.admin("GET", &format!("/api/v1/devices/{key}"), None).await;
    assert_eq!(d["security"]["state"], "secured", "{d}");
    let new_serial = d["security"]["certificate"].as_str().expect("a certificate");
    assert_ne!(new_serial, old_serial);
    srv.stop().await;
}
