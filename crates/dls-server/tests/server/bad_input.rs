//! Bad input gets a clear, bounded answer, never a panic or a stuck task, and changes
//! nothing stored.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use dls_message::{Action, Message};

use crate::common::TestServer;

const STARTUP: &str = r#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="NONCE" maxItems="-1"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name="mac-addr">00:1A:E8:3C:4D:5E</Item></ItemList></Message></WorkpointMessage>"#;

async fn device_count(srv: &TestServer) -> usize {
    srv.admin("GET", "/api/v1/devices", None).await.1.as_array().map_or(0, Vec::len)
}

fn decode_dls(body: &[u8]) -> dls_message::DlsMessage {
    match dls_message::decode(body) {
        Ok(Message::Dls(m)) => m,
        other => panic!("not a DLSMessage: {other:?}"),
    }
}

#[tokio::test]
async fn malformed_and_misdirected_messages() {
    let srv = TestServer::start().await;
    let mut c = srv.client();
    for (body, want) in [
        (&b"<WorkpointMessage><Message"[..], 400),
        (b"not xml at all", 400),
        (b"<!DOCTYPE x [<!ENTITY a 'a'>]><WorkpointMessage/>", 400),
        (b"<DLSMessage><Message nonce=\"n\"><Action>CleanUp</Action></Message></DLSMessage>", 400),
        (b"", 400),
    ] {
        let (status, _, text) = c.post(body.to_vec()).await.expect("answered");
        assert_eq!(status.as_u16(), want, "{}", String::from_utf8_lossy(body));
        let t = String::from_utf8_lossy(&text);
        assert!(t.ends_with('\n') && t.trim_end().lines().count() == 1, "one clear line: {t:?}");
    }
    assert_eq!(device_count(&srv).await, 0, "nothing stored");
    srv.stop().await;
}

#[tokio::test]
async fn protocol_refusals_say_why_in_their_clean_up() {
    // A phone (or a simulator counting successes) must be able to tell a refusal from a
    // finished interaction: every refusal's CleanUp carries a cleanup-reason.
    let srv = TestServer::start().await;
    let mut c = srv.client();
    let reply_without_session = r#"<WorkpointMessage><Message nonce="R1"><ReasonForContact action="WriteItems" status="accepted">reply-to</ReasonForContact><ItemList/></Message></WorkpointMessage>"#;
    let unknown_reason = r#"<WorkpointMessage><Message nonce="R2"><ReasonForContact>teleport</ReasonForContact><ItemList><Item name="mac-addr">001AE83C4D5E</Item></ItemList></Message></WorkpointMessage>"#;
    for (xml, nonce, why) in [
        (reply_without_session, "R1", "no interaction in progress"),
        (unknown_reason, "R2", "reason for contact not supported"),
    ] {
        let (status, _, body) = c.post(xml.as_bytes().to_vec()).await.expect("answered");
        assert_eq!(status.as_u16(), 200);
        let m = decode_dls(&body);
        assert_eq!(m.action, Action::CleanUp);
        assert_eq!(m.header.nonce, nonce);
        assert_eq!(m.item("cleanup-reason"), Some(why));
        assert_eq!(m.items.as_ref().map(Vec::len), Some(1), "only the reason: {m:?}");
    }
    assert_eq!(device_count(&srv).await, 0);

    // A nonce replayed from an earlier interaction.
    let first = STARTUP.replace("NONCE", "REPLAYED");
    let (_, _, body) = c.post(first.as_bytes().to_vec()).await.expect("answered");
    assert_eq!(decode_dls(&body).action, Action::ReadAllItems);
    c.forget_session();
    let (_, _, body) = c.post(first.as_bytes().to_vec()).await.expect("answered");
    let m = decode_dls(&body);
    assert_eq!(m.action, Action::CleanUp);
    assert_eq!(m.item("cleanup-reason"), Some("nonce already used"));
    srv.stop().await;
}

#[tokio::test]
async fn http_limits() {
    let srv = TestServer::start_with(|c| {
        c.max_body_bytes = 64 << 10;
        // A mobility user's data item must fit a phone's reply: small ones with this body.
        c.mobility_max_item_bytes = 1 << 10;
    })
    .await;
    let mut c = srv.client();
    // Over the body limit, declared.
    let big = format!("{}{}", STARTUP, " ".repeat(70 << 10));
    let (status, _, _) = c.post(big.into_bytes()).await.expect("answered");
    assert_eq!(status.as_u16(), 413);

    // Wrong path and method, through curl (an independent client).
    let ca = crate::common::write(srv.dir.path(), "ca.pem", &srv.ca_pem());
    let url = format!("https://127.0.0.1:{}", srv.wpi.port());
    let (_, out, err) = crate::common::run(
        tokio::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/other")),
        20,
    )
    .await;
    assert_eq!(out, "404", "{err}");
    let (_, out, err) = crate::common::run(
        tokio::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/DeploymentService/LoginService")),
        20,
    )
    .await;
    assert_eq!(out, "405", "{err}");
    // Over the limit, chunked (no Content-Length): cut off while reading.
    let body = crate::common::write(srv.dir.path(), "big.xml", &"x".repeat(100 << 10));
    let (_, out, err) = crate::common::run(
        tokio::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
            ])
            .arg(format!("@{}", body.display()))
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("{url}/DeploymentService/LoginService")),
        20,
    )
    .await;
    assert_eq!(out, "413", "{err}");
    // Headers too large.
    let (_, out, err) = crate::common::run(
        tokio::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-H"])
            .arg(format!("X-Big: {}", "a".repeat(40 << 10)))
            .arg("--cacert")
            .arg(&ca)
            .args(["-d", "x"])
            .arg(format!("{url}/DeploymentService/LoginService")),
        20,
    )
    .await;
    // hyper answers 431, or closes the connection before the client has sent it all.
    assert!(out == "431" || out == "000", "{out} {err}");
    assert_eq!(device_count(&srv).await, 0, "nothing stored");
    let (_, _, body) = c.post(STARTUP.replace("NONCE", "AFTER-LIMITS").into_bytes()).await.expect("still serving");
    assert_eq!(decode_dls(&body).action, Action::ReadAllItems);
    srv.stop().await;
}

#[tokio::test]
async fn garbage_instead_of_tls_and_clients_that_stop() {
    let srv = TestServer::start_with(|c| c.tls_handshake_timeout_secs = 1).await;
    let addr = srv.wpi;
    tokio::task::spawn_blocking(move || {
        // Plain HTTP on the TLS port: the connection is closed, promptly.
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(b"POST /DeploymentService/LoginService HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n == 0 || !buf.starts_with(b"HTTP/1.1 200"), "no HTTP answer over plain text");
        // A client that connects and says nothing is dropped after the handshake deadline.
        let mut idle = TcpStream::connect(addr).expect("connect");
        idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let started = std::time::Instant::now();
        let n = idle.read(&mut buf).unwrap_or(1);
        assert_eq!(n, 0, "closed by the server");
        assert!(started.elapsed() < Duration::from_secs(4));
    })
    .await
    .expect("raw clients");

    // A client that stops mid-request (declared 1000 bytes, sent 10, gone).
    let ca = srv.ca_pem();
    let mut c = srv.client();
    let stopped = tokio::spawn(async move {
        let cfg = dls_workpoint::tls::client_config(&dls_workpoint::ServerTrust::Verify(vec![ca])).expect("tls");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name"), tcp)
            .await
            .expect("handshake");
        use tokio::io::AsyncWriteExt;
        tls.write_all(
            b"POST /DeploymentService/LoginService HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<Workpoint",
        )
        .await
        .expect("write");
        tls.flush().await.expect("flush");
        drop(tls);
    });
    stopped.await.expect("client task");
    // The service goes on serving.
    let (_, _, body) = c.post(STARTUP.replace("NONCE", "AFTER").into_bytes()).await.expect("still serving");
    assert_eq!(decode_dls(&body).action, Action::ReadAllItems);
    srv.stop().await;
}

/// A phone that reports passwords (a mobility phone's `user-pwd`, a firmware that fills
/// in `admin-pwd` in its inventory): nothing of them is stored or shown.
#[tokio::test]
async fn passwords_a_phone_reports_are_neither_stored_nor_shown() {
    let srv = TestServer::start().await;
    let mut c = srv.client();
    let start = r#"<WorkpointMessage><Message nonce="P1" maxItems="-1"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name="mac-addr">00:1A:E8:3C:4D:5E</Item><Item name="user-pwd">leaked-user-secret</Item></ItemList></Message></WorkpointMessage>"#;
    let (_, headers, body) = c.post(start.as_bytes().to_vec()).await.expect("answered");
    assert_eq!(decode_dls(&body).action, Action::ReadAllItems);
    let set_cookie = headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session cookie");
    let id = set_cookie.split(';').next().and_then(|kv| kv.strip_prefix("JSESSIONID=")).expect("JSESSIONID");
    c.set_cookie(id);
    let all = r#"<WorkpointMessage><Message nonce="P1" maxItems="-1"><ReasonForContact action="ReadAllItems" status="accepted">reply-to</ReasonForContact><ItemList><Item name="mac-addr">00:1A:E8:3C:4D:5E</Item><Item name="sntp-addr">ntp.example.net</Item><Item name="admin-pwd">leaked-admin-secret</Item><Item name="sip-pwd">leaked-sip-secret</Item></ItemList></Message></WorkpointMessage>"#;
    let (_, _, body) = c.post(all.as_bytes().to_vec()).await.expect("answered");
    let m = decode_dls(&body);
    assert_eq!((&m.action, m.item("cleanup-reason")), (&Action::CleanUp, None), "{m:?}");
    let logon = r#"<WorkpointMessage><Message nonce="P2" maxItems="-1"><ReasonForContact>inventory-changes</ReasonForContact><ItemList><Item name="mac-addr">00:1A:E8:3C:4D:5E</Item><Item name="user-pwd-unicode">leaked-user-secret</Item></ItemList></Message></WorkpointMessage>"#;
    c.forget_session();
    let (_, _, body) = c.post(logon.as_bytes().to_vec()).await.expect("answered");
    assert_eq!(decode_dls(&body).action, Action::CleanUp);

    let (status, shown) = srv.admin("GET", "/api/v1/devices/001AE83C4D5E", None).await;
    assert_eq!(status, 200);
    let shown = shown.to_string();
    assert!(shown.contains("ntp.example.net"), "the rest of the inventory is there: {shown}");
    assert!(!shown.contains("leaked"), "a reported password is shown: {shown}");
    // The database and its write-ahead log, as they are on disk.
    let mut stored = String::new();
    for name in ["dls.sqlite", "dls.sqlite-wal"] {
        let bytes = std::fs::read(srv.data().join(name)).unwrap_or_default();
        stored.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(stored.contains("ntp.example.net"), "the inventory is on disk");
    assert!(!stored.contains("leaked"), "a reported password is on disk");
    srv.stop().await;
}
