//! Mobility (hot desking) over TLS, from a test client that is not `dls-workpoint`: the
//! messages are written by hand in the shape of the issue's sequences and posted with a
//! bare hyper client over tokio-rustls (with the `JSESSIONID` cookie handled here); the
//! replies decoded. The logon, interim start-up, restore and logoff sequences; refusals,
//! each audited (wrong password, throttled and then let through, unknown user, no user
//! logged on, bad data, bad modified-items, a secured device on the default port); one
//! user on two phones (the forced logoff through contact-me, the grace); the
//! administrator's jobs; and two nodes on PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_message::{Action, DlsMessage, Message};
use dls_server::{ManualClock, StoreLocation};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::common::{Logs, TestServer, sql};

const USER: &str = "+4989123456";
const PASSWORD: &str = "typed-at-the-phone";
const DATA_NAMES: &str = "userdata-vu1,userdata-call-log,userdata-ring-tone,userdata-phonebook,userdata-call-group,\
userdata-voice-record,userdata-picture,userdata-ring-tone-mp3,userdata-screensaver,userdata-ldap";

/// One TLS connection to a node's default-mode port, kept alive as a phone keeps it.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(srv: &TestServer) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for p in pem::parse_many(srv.ca_pem()).expect("the CA's PEM") {
            roots.add(rustls_pki_types::CertificateDer::from(p.contents().to_vec())).expect("a CA certificate");
        }
        let config = rustls::ClientConfig::builder_with_provider(dls_server::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(srv.wpi).await.expect("connects");
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("a name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("HTTP/1.1");
        tokio::spawn(conn);
        Self { sender }
    }
}

/// A phone as the test drives it: its MAC, its own number, its cookie, and the next nonce.
struct RawPhone {
    mac: String,
    basic: String,
    cookie: Option<String>,
    nonce: u32,
    contact_uri: String,
}

impl RawPhone {
    fn new(mac: &str, basic: &str) -> Self {
        Self {
            mac: mac.into(),
            basic: basic.into(),
            cookie: None,
            nonce: 0,
            contact_uri: "http://127.0.0.1:9/contact_dls.html/ContactDLS".into(),
        }
    }

    fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        format!("{:08X}{:024X}", u32::from_str_radix(&self.mac[self.mac.len() - 2..], 16).unwrap_or(0), self.nonce)
    }

    /// Posts `xml`; returns the reply, decoded, and keeps the session cookie.
    async fn post(&mut self, conn: &mut Conn, xml: String) -> DlsMessage {
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri("/DeploymentService/LoginService")
            .header("host", "127.0.0.1")
            .header("content-type", "text/xml");
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("JSESSIONID={c}"));
        }
        let resp =
            conn.sender.send_request(req.body(Full::new(Bytes::from(xml))).expect("request")).await.expect("answered");
        assert_eq!(resp.status().as_u16(), 200);
        if let Some(set) = resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = set.strip_prefix("JSESSIONID=").and_then(|r| r.split(';').next()).map(str::to_owned);
        }
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let reply = match dls_message::decode(&body) {
            Ok(Message::Dls(m)) => m,
            other => panic!("not a DLSMessage: {other:?}"),
        };
        if reply.action == Action::CleanUp {
            self.cookie = None;
        }
        reply
    }

    /// The items every message of this phone carries: as the issue's phone, in state
    /// `state` with number `e164`.
    fn items(&self, state: &str, e164: &str) -> String {
        format!(
            r#"<Item name="device-type">OpenStage 60</Item><Item name="software-version">V3 R5.12.0</Item><Item name="contact-me-uri">{uri}</Item><Item name="mac-addr">{mac}</Item><Item name="configuration-changed-flag">false</Item><Item name="sip-mobility-state">{state}</Item><Item name="e164">{e164}</Item><Item name="basic-e164">{basic}</Item><Item name="mobility-enabled">true</Item>"#,
            uri = self.contact_uri,
            mac = self.mac,
            basic = self.basic
        )
    }

    fn opening(&mut self, reason: &str, state: &str, e164: &str, extra: &str) -> String {
        let mut items = self.items(state, e164);
        if extra.contains("configuration-changed-flag") {
            items = items.replace(r#"<Item name="configuration-changed-flag">false</Item>"#, "");
        }
        format!(
            r#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="{}" maxItems="-1" fragment="final"><ReasonForContact>{reason}</ReasonForContact><ItemList>{items}{extra}</ItemList></Message></WorkpointMessage>"#,
            self.next_nonce()
        )
    }

    fn reply_to(&mut self, action: &str, status: &str, items: &str) -> String {
        format!(
            r#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="{}" maxItems="-1" fragment="final"><ReasonForContact action="{action}" status="{status}">reply-to</ReasonForContact><ItemList>{items}</ItemList></Message></WorkpointMessage>"#,
            self.next_nonce()
        )
    }

    /// First contact: start-up, the inventory read, nothing to write.
    async fn register(&mut self, conn: &mut Conn) {
        let m = self.opening("start-up", "1", &self.basic.clone(), "");
        let r = self.post(conn, m).await;
        assert_eq!(r.action, Action::ReadAllItems, "{r:?}");
        let items = self.items("1", &self.basic.clone());
        let m = self.reply_to("ReadAllItems", "accepted", &items);
        let r = self.post(conn, m).await;
        assert_eq!(r.action, Action::CleanUp, "{r:?}");
    }

    async fn logon(&mut self, conn: &mut Conn, password: &str) -> DlsMessage {
        let m = self.opening("inventory-changes", "0", USER, &format!(r#"<Item name="user-pwd">{password}</Item>"#));
        self.post(conn, m).await
    }

    async fn accept_write(&mut self, conn: &mut Conn) -> DlsMessage {
        let m = self.reply_to("WriteItems", "accepted", "");
        self.post(conn, m).await
    }

    async fn restore(&mut self, conn: &mut Conn) -> DlsMessage {
        let m = self.opening(
            "inventory-changes",
            "0",
            USER,
            &format!(r#"<Item name="requested-items">{DATA_NAMES}</Item>"#),
        );
        self.post(conn, m).await
    }

    async fn logoff(&mut self, conn: &mut Conn, password: Option<&str>, modified: &str) -> DlsMessage {
        let mut extra = format!(
            r#"<Item name="configuration-changed-flag">true</Item><Item name="modified-items">{modified}</Item>"#
        );
        if let Some(p) = password {
            extra.push_str(&format!(r#"<Item name="user-pwd">{p}</Item>"#));
        }
        let m = self.opening("inventory-changes", "1", USER, &extra);
        self.post(conn, m).await
    }

    async fn send_data(&mut self, conn: &mut Conn, items: &[(&str, &str)]) -> DlsMessage {
        let xml: String = items.iter().map(|(n, v)| format!(r#"<Item name="{n}" index="1">{v}</Item>"#)).collect();
        let m = self.reply_to("ReadItems", "accepted", &xml);
        self.post(conn, m).await
    }
}

fn reason(m: &DlsMessage) -> Option<&str> {
    m.item("cleanup-reason")
}

fn value<'a>(m: &'a DlsMessage, name: &str) -> Option<&'a str> {
    m.items.iter().flatten().find(|i| i.name == name).map(|i| i.value.as_str())
}

async fn add_user(srv: &TestServer, profiles: &[&str]) {
    let (status, v) = srv
        .admin(
            "POST",
            "/api/v1/users",
            Some(json!({"number": "+49 89 123456", "password": PASSWORD, "profiles": profiles})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
}

async fn user(srv: &TestServer) -> serde_json::Value {
    let (status, v) = srv.admin("GET", "/api/v1/users/+4989123456", None).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn audit(srv: &TestServer, mac: &str) -> Vec<(String, String)> {
    let (_, v) = srv.admin("GET", &format!("/api/v1/audit?mac={mac}"), None).await;
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["kind"].as_str().unwrap_or("").to_owned(), r["detail"].as_str().unwrap_or("").to_owned()))
        .collect()
}

async fn profile_sales(srv: &TestServer) {
    let (status, _) = srv
        .admin(
            "PUT",
            "/api/v1/profiles/sales",
            Some(json!({"item": [{"name": "key-label-unicode", "index": 1, "value": "Anna"}, {"name": "language-iso", "value": "de"}]})),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_issues_sequences_from_logon_to_logoff_and_the_data_on_another_phone() {
    let logs = Logs::capture();
    let srv = TestServer::start().await;
    profile_sales(&srv).await;
    add_user(&srv, &["sales"]).await;
    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:01", "4930100");
    a.register(&mut conn).await;

    // Logon 1: WriteItems with the user's configuration, sip-mobility-state written secure.
    let r = a.logon(&mut conn, PASSWORD).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    let state = r.items.iter().flatten().find(|i| i.name == "sip-mobility-state").expect("the state");
    assert_eq!((state.value.as_str(), state.status.as_ref().map(|s| s.as_str())), ("0", Some("secure")));
    assert_eq!((value(&r, "e164"), value(&r, "language-iso")), (Some(USER), Some("de")));
    // Logon 2: reply-to accepted, CleanUp.
    let r = a.accept_write(&mut conn).await;
    assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, None));
    let u = user(&srv).await;
    assert_eq!(u["logged_on"]["mac"], "001AE82D3F01", "{u}");
    // The device page: the user apart, the device's own number, no password.
    let (_, device) = srv.admin("GET", "/api/v1/devices/001AE82D3F01", None).await;
    assert_eq!(device["mobility-user"]["number"], USER, "{device}");
    assert_eq!(device["e164"], "4930100", "{device}");
    let shown = device.to_string();
    assert!(!shown.contains(PASSWORD) && !shown.contains("user-pwd"), "{shown}");
    // Logon 3: start-up in state 2 with the user's number: the device's configuration does
    // not overwrite the user's (nothing to write: the phone has the user's items).
    let m = a.opening("start-up", "2", USER, r#"<Item name="key-label-unicode" index="1">Anna</Item>"#);
    let r = a.post(&mut conn, m).await;
    assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, None), "{r:?}");
    // Logon 4: the restore; no data kept yet: CleanUp.
    let r = a.restore(&mut conn).await;
    assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, None), "{r:?}");

    // Logoff 1: ReadItems of the modified items.
    let r = a.logoff(&mut conn, Some(PASSWORD), "userdata-phonebook,userdata-call-log").await;
    assert_eq!(r.action, Action::ReadItems, "{r:?}");
    assert_eq!(r.items.as_ref().map(Vec::len), Some(2));
    // Logoff 2: the values (the simulator's Base64 shape, trailing bits and all).
    let book = "UGhvbmUgYm9vayBvZiBBbm5hCj==";
    let r = a.send_data(&mut conn, &[("userdata-phonebook", book), ("userdata-call-log", "Q2FsbHM=")]).await;
    assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, None), "{r:?}");
    let u = user(&srv).await;
    assert!(u["logged_on"].is_null(), "{u}");
    assert_eq!(u["data"].as_array().map(Vec::len), Some(2), "{u}");
    // Logoff 3: start-up in state 1, its own number back.
    let m = a.opening("start-up", "1", "4930100", "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::CleanUp, "{r:?}");
    let kinds: Vec<String> = audit(&srv, "001AE82D3F01").await.into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"mobility-logon".to_owned()) && kinds.contains(&"mobility-logoff".to_owned()), "{kinds:?}");
    let (_, device) = srv.admin("GET", "/api/v1/devices/001AE82D3F01", None).await;
    let inventory = device["inventory"].to_string();
    for never in ["user-pwd", "requested-items", "modified-items", "userdata-", PASSWORD, USER] {
        assert!(!inventory.contains(never), "{never} in the inventory: {inventory}");
    }

    // Phone B: the user logs on there, and the restore brings the data back.
    let mut b = RawPhone::new("00:1A:E8:2D:3F:02", "4930200");
    b.register(&mut conn).await;
    assert_eq!(b.logon(&mut conn, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(b.accept_write(&mut conn).await.action, Action::CleanUp);
    let r = b.restore(&mut conn).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    let book_item = r.items.iter().flatten().find(|i| i.name == "userdata-phonebook").expect("the phone book");
    assert_eq!((book_item.index, book_item.value.as_str()), (Some(1), book));
    assert_eq!(value(&r, "userdata-call-log"), Some("Q2FsbHM="));
    assert_eq!(b.accept_write(&mut conn).await.action, Action::CleanUp);
    srv.stop().await;
    // The passwords (the admin's, the phone's) were never logged; the interactions were.
    let lines = logs.lines();
    assert!(lines.iter().any(|l| l.contains("inventory-changes")), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains(PASSWORD)), "{lines:#?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_audited_and_throttled_never_for_good() {
    let clock = ManualClock::from_system();
    let srv = TestServer::start_with_clock(|_| {}, Arc::new(clock.clone())).await;
    add_user(&srv, &[]).await;
    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:11", "4930111");
    a.register(&mut conn).await;
    for _ in 0..5 {
        let r = a.logon(&mut conn, "wrong").await;
        assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, Some("mobility: logon refused")));
    }
    // Held now, even with the right password (it is not checked).
    let r = a.logon(&mut conn, PASSWORD).await;
    assert_eq!(reason(&r), Some("mobility: too many attempts, try later"));
    assert!(user(&srv).await["logged_on"].is_null());
    let records = audit(&srv, "001AE82D3F11").await;
    assert!(records.iter().any(|(k, d)| k == "mobility-refused" && d.contains("wrong password")), "{records:?}");
    assert!(records.iter().any(|(k, d)| k == "mobility-refused" && d.contains("not checked")), "{records:?}");
    assert!(records.iter().all(|(_, d)| !d.contains("wrong\"") && !d.contains(PASSWORD)), "{records:?}");
    // Another phone's first attempt for the user is not held.
    let mut other = RawPhone::new("00:1A:E8:2D:3F:12", "4930112");
    other.register(&mut conn).await;
    let r = other.logon(&mut conn, PASSWORD).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    let r = other.reply_to("WriteItems", "failed", "");
    assert_eq!(other.post(&mut conn, r).await.action, Action::CleanUp);
    // After the wait, the right password works at the first phone.
    clock.advance(Duration::from_secs(60));
    let r = a.logon(&mut conn, PASSWORD).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(user(&srv).await["logged_on"]["mac"], "001AE82D3F11");
    srv.stop().await;
}

#[tokio::test]
async fn refusals_say_why_are_audited_and_change_nothing() {
    let srv = TestServer::start_with(|c| c.mobility_max_item_bytes = 16).await;
    add_user(&srv, &[]).await;
    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:21", "4930121");
    a.register(&mut conn).await;
    // An unknown user; a logoff and a restore where no user is logged on.
    let m = a.opening("inventory-changes", "0", "+4900000", &format!(r#"<Item name="user-pwd">{PASSWORD}</Item>"#));
    assert_eq!(reason(&a.post(&mut conn, m).await), Some("mobility: logon refused"));
    assert_eq!(reason(&a.logoff(&mut conn, None, "").await), Some("mobility: no user logged on here"));
    assert_eq!(reason(&a.restore(&mut conn).await), Some("mobility: no user logged on here"));
    let records = audit(&srv, "001AE82D3F21").await;
    assert!(records.iter().any(|(_, d)| d.contains("unknown user")), "{records:?}");
    assert_eq!(records.iter().filter(|(k, _)| k == "mobility-refused").count(), 3, "{records:?}");

    assert_eq!(a.logon(&mut conn, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    // modified-items naming what is not user data.
    let r = a.logoff(&mut conn, None, "userdata-phonebook,sip-pwd").await;
    assert_eq!(reason(&r), Some("mobility: bad modified-items"));
    // Data that is not Base64, and data over the limit (16 bytes here).
    for bad in ["not*base64", "VGhpcyBpcyBtb3JlIHRoYW4gc2l4dGVlbiBieXRlcw=="] {
        assert_eq!(a.logoff(&mut conn, None, "userdata-phonebook").await.action, Action::ReadItems);
        let r = a.send_data(&mut conn, &[("userdata-phonebook", bad)]).await;
        assert_eq!(reason(&r), Some("mobility: bad user data"));
    }
    let u = user(&srv).await;
    assert_eq!((u["logged_on"]["mac"].as_str(), u["data"].as_array().map(Vec::len)), (Some("001AE82D3F21"), Some(0)));
    let records = audit(&srv, "001AE82D3F21").await;
    assert!(records.iter().any(|(_, d)| d.contains("not Base64")), "{records:?}");
    assert!(records.iter().any(|(_, d)| d.contains("\"sip-pwd\"")), "{records:?}");
    srv.stop().await;
}

#[tokio::test]
async fn a_logon_on_a_secured_device_over_the_default_port_is_refused() {
    let srv = TestServer::start().await;
    add_user(&srv, &[]).await;
    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:31", "4930131");
    a.register(&mut conn).await;
    sql(&srv, "UPDATE devices SET security_mode = 'nopin', bootstrap_state = 'secured' WHERE mac = '001AE82D3F31'")
        .await;
    let r = a.logon(&mut conn, PASSWORD).await;
    assert_eq!(reason(&r), Some("device is in secure mode"));
    assert!(user(&srv).await["logged_on"].is_null());
    let records = audit(&srv, "001AE82D3F31").await;
    assert!(records.iter().any(|(k, _)| k == "default-port-refused"), "{records:?}");
    srv.stop().await;
}

/// A phone's contact-me endpoint: answers `204` and says so.
async fn contact_me_listener() -> (SocketAddr, tokio::sync::mpsc::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.windows(14).any(|w| w == b"ContactMe=true") {
                    break;
                }
            }
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nServer: DlsClient\r\nContent-Length: 0\r\n\r\n").await;
            let _ = tx.send(()).await;
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn one_user_two_phones_the_forced_logoff_through_contact_me_then_the_retry() {
    let srv = TestServer::start().await;
    profile_sales(&srv).await;
    add_user(&srv, &["sales"]).await;
    let mut conn = Conn::open(&srv).await;
    let (listening, mut contacted) = contact_me_listener().await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:41", "4930141");
    a.contact_uri = format!("http://{listening}/contact_dls.html/ContactDLS");
    a.register(&mut conn).await;
    let mut b = RawPhone::new("00:1A:E8:2D:3F:42", "4930142");
    b.register(&mut conn).await;
    assert_eq!(a.logon(&mut conn, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);

    // B: refused, and A is asked to call in.
    let r = b.logon(&mut conn, PASSWORD).await;
    assert_eq!(reason(&r), Some("mobility: user logged on at another phone; logging off there, try again"));
    tokio::time::timeout(Duration::from_secs(10), contacted.recv()).await.expect("a contact-me within seconds");
    let (_, jobs) = srv.admin("GET", "/api/v1/jobs?mac=001AE82D3F41", None).await;
    assert_eq!(jobs[0]["job"]["kind"], "mobility-logoff", "{jobs}");

    // A calls in: its data read, its identity written back.
    let m = a.opening("solicited", "0", USER, "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::ReadItems, "{r:?}");
    assert_eq!(r.items.as_ref().map(Vec::len), Some(10));
    let r = a.send_data(&mut conn, &[("userdata-phonebook", "Qm9vaw==")]).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!((value(&r, "e164"), value(&r, "sip-mobility-state")), (Some("4930141"), Some("1")));
    let r = a.accept_write(&mut conn).await;
    assert_eq!(r.action, Action::CleanUp, "{r:?}");
    let u = user(&srv).await;
    assert!(u["logged_on"].is_null(), "{u}");
    assert_eq!(u["data"][0]["name"], "userdata-phonebook");
    let (_, job) = srv.admin("GET", &format!("/api/v1/jobs/{}", jobs[0]["id"]), None).await;
    assert_eq!(job["state"], "done", "{job}");

    // B's retry succeeds, and the data follows.
    assert_eq!(b.logon(&mut conn, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(b.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(value(&b.restore(&mut conn).await, "userdata-phonebook"), Some("Qm9vaw=="));
    srv.stop().await;
}

#[tokio::test]
async fn a_forced_logoff_not_finished_in_the_grace_lets_the_logon_go_ahead() {
    let clock = ManualClock::from_system();
    let srv = TestServer::start_with_clock(|c| c.mobility_logoff_grace_secs = 120, Arc::new(clock.clone())).await;
    add_user(&srv, &[]).await;
    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:51", "4930151");
    a.register(&mut conn).await;
    let mut b = RawPhone::new("00:1A:E8:2D:3F:52", "4930152");
    b.register(&mut conn).await;
    assert_eq!(a.logon(&mut conn, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    assert!(b.logon(&mut conn, PASSWORD).await.item("cleanup-reason").is_some());
    clock.advance(Duration::from_secs(119));
    assert!(b.logon(&mut conn, PASSWORD).await.item("cleanup-reason").is_some(), "within the grace");
    clock.advance(Duration::from_secs(1));
    let r = b.logon(&mut conn, PASSWORD).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!(b.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(user(&srv).await["logged_on"]["mac"], "001AE82D3F52");
    let records = audit(&srv, "001AE82D3F52").await;
    assert!(records.iter().any(|(k, d)| k == "mobility-forced-logoff" && d.contains("did not finish")), "{records:?}");
    // When A comes back (still saying state 0), its own identity is written back.
    let m = a.opening("start-up", "0", USER, "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!((value(&r, "e164"), value(&r, "sip-mobility-state")), (Some("4930151"), Some("1")));
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(user(&srv).await["logged_on"]["mac"], "001AE82D3F52", "the user stays at B");
    srv.stop().await;
}

#[tokio::test]
async fn the_administrators_logon_and_logoff_are_jobs_the_phone_runs() {
    let srv = TestServer::start().await;
    profile_sales(&srv).await;
    add_user(&srv, &["sales"]).await;
    let mut conn = Conn::open(&srv).await;
    let (listening, mut contacted) = contact_me_listener().await;
    let mut a = RawPhone::new("00:1A:E8:2D:3F:61", "4930161");
    a.contact_uri = format!("http://{listening}/contact_dls.html/ContactDLS");
    a.register(&mut conn).await;

    let (status, v) =
        srv.admin("POST", "/api/v1/users/%2B4989123456/logon", Some(json!({"mac": "00:1A:E8:2D:3F:61"}))).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["job"]["job"]["kind"], "mobility-logon");
    tokio::time::timeout(Duration::from_secs(10), contacted.recv()).await.expect("a contact-me");
    let m = a.opening("solicited", "1", "4930161", "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!((value(&r, "sip-mobility-state"), value(&r, "e164")), (Some("0"), Some(USER)));
    assert_eq!(value(&r, "language-iso"), Some("de"));
    assert!(user(&srv).await["logged_on"].is_null(), "recorded when the phone accepts");
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(user(&srv).await["logged_on"]["mac"], "001AE82D3F61");
    let (_, job) = srv.admin("GET", &format!("/api/v1/jobs/{}", v["job"]["id"]), None).await;
    assert_eq!(job["state"], "done", "{job}");
    // A logon elsewhere while logged on here: refused at queue time.
    let (status, e) =
        srv.admin("POST", "/api/v1/users/+4989123456/logon", Some(json!({"mac": "00:1A:E8:2D:3F:62"}))).await;
    assert_eq!(status, 409, "{e}");
    assert!(e["error"].as_str().is_some_and(|m| m.contains("log it off first")), "{e}");

    // The logoff: the data read and kept, the identity back.
    let (status, v) = srv.admin("POST", "/api/v1/users/+4989123456/logoff", None).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["job"]["job"]["kind"], "mobility-logoff");
    let m = a.opening("solicited", "0", USER, "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::ReadItems, "{r:?}");
    let r = a.send_data(&mut conn, &[("userdata-ldap", "TERBUA==")]).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    let u = user(&srv).await;
    assert!(u["logged_on"].is_null(), "{u}");
    assert_eq!(u["data"][0]["name"], "userdata-ldap");
    let (status, d) = srv.admin("GET", "/api/v1/users/+4989123456/data/userdata-ldap", None).await;
    assert_eq!((status, d["value"].as_str(), d["size"].as_u64()), (200, Some("TERBUA=="), Some(4)));
    let (status, _) = srv.admin("POST", "/api/v1/users/+4989123456/logoff", None).await;
    assert_eq!(status, 404, "not logged on");
    srv.stop().await;
}

/// A logon queued for a phone the service has not read yet: the interaction reads its
/// inventory first and starts the job in the phone's reply, mid-session; the user's state is
/// loaded for that message too (it once failed the job: "the users' state was not loaded").
#[tokio::test]
async fn a_logon_queued_for_a_new_phone_runs_after_its_inventory_is_read() {
    let srv = TestServer::start().await;
    profile_sales(&srv).await;
    add_user(&srv, &["sales"]).await;
    let mac = "00:1A:E8:2D:3F:71";
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({ "mac": mac }))).await.0, 201);
    let (status, v) = srv.admin("POST", "/api/v1/users/+4989123456/logon", Some(json!({ "mac": mac }))).await;
    assert_eq!(status, 201, "{v}");

    let mut conn = Conn::open(&srv).await;
    let mut a = RawPhone::new(mac, "4930171");
    let m = a.opening("start-up", "1", "4930171", "");
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::ReadAllItems, "{r:?}");
    let items = a.items("1", "4930171");
    let m = a.reply_to("ReadAllItems", "accepted", &items);
    let r = a.post(&mut conn, m).await;
    assert_eq!(r.action, Action::WriteItems, "{r:?}");
    assert_eq!((value(&r, "sip-mobility-state"), value(&r, "e164")), (Some("0"), Some(USER)));
    assert_eq!(a.accept_write(&mut conn).await.action, Action::CleanUp);
    assert_eq!(user(&srv).await["logged_on"]["mac"], "001AE82D3F71");
    let (_, job) = srv.admin("GET", &format!("/api/v1/jobs/{}", v["job"]["id"]), None).await;
    assert_eq!(job["state"], "done", "{job}");
    srv.stop().await;
}

/// Two nodes on one PostgreSQL database: the logon's messages through node A and B, the
/// logoff's through B and A (their sessions shared); the data saved by one node restored
/// through the other.
#[tokio::test]
async fn two_nodes_logon_on_one_logoff_on_the_other() {
    let url = tokio::task::spawn_blocking(|| {
        let server = dls_test_postgres::TestPostgres::shared().expect("PostgreSQL for the cluster tests");
        server.fresh_database().expect("a fresh database").url().to_owned()
    })
    .await
    .expect("database");
    let store = StoreLocation::new(&url);
    let first = store.clone();
    let node_a = TestServer::start_with(move |c| c.store = first).await;
    let node_b = TestServer::join(&node_a, move |c| c.store = store).await;
    add_user(&node_b, &[]).await;
    let (mut to_a, mut to_b) = (Conn::open(&node_a).await, Conn::open(&node_b).await);
    let mut phone = RawPhone::new("00:1A:E8:2D:3F:71", "4930171");
    phone.register(&mut to_a).await;

    assert_eq!(phone.logon(&mut to_a, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(phone.accept_write(&mut to_b).await.action, Action::CleanUp, "the session goes on at B");
    assert_eq!(user(&node_a).await["logged_on"]["mac"], "001AE82D3F71");

    assert_eq!(phone.logoff(&mut to_b, Some(PASSWORD), "userdata-phonebook").await.action, Action::ReadItems);
    let r = phone.send_data(&mut to_a, &[("userdata-phonebook", "Qm9vaw==")]).await;
    assert_eq!((r.action.clone(), reason(&r)), (Action::CleanUp, None), "{r:?}");
    let u = user(&node_b).await;
    assert!(u["logged_on"].is_null(), "{u}");
    assert_eq!(u["data"][0]["size"], 4);

    // Logged on again through B, the data comes back through A.
    assert_eq!(phone.logon(&mut to_b, PASSWORD).await.action, Action::WriteItems);
    assert_eq!(phone.accept_write(&mut to_b).await.action, Action::CleanUp);
    assert_eq!(value(&phone.restore(&mut to_a).await, "userdata-phonebook"), Some("Qm9vaw=="));
    node_a.stop().await;
    node_b.stop().await;
}
