//! Items a phone cannot be sent: refused with `422` where they enter (the admin API), and,
//! when stored all the same (before the check existed, or by a hand on the database),
//! skipped by the engine without costing the phone the rest of its configuration.

use dls_engine::Profile;
use dls_message::{Action, Item, MacAddr, Reason};
use dls_store::DeviceStore;
use dls_store_sqlite::SqliteStore;
use dls_workpoint::Phone;
use serde_json::{Value, json};

use crate::common::TestServer;

const MAC: &str = "00:1A:E8:3C:4D:77";

/// A `PUT` with a body that is not made by `serde_json` (so it may be invalid JSON).
async fn put_raw(srv: &TestServer, path: &str, body: &'static [u8]) -> (u16, Value) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let stream = tokio::net::TcpStream::connect(srv.admin).await.expect("admin connects");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("PUT")
        .uri(path)
        .header("host", srv.admin.to_string())
        .header("authorization", format!("Bearer {}", srv.token()))
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn error_of(v: &Value) -> String {
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// What an attacker (or a careless script) posted, and what the refusal must name.
fn hostile_items() -> Vec<(Value, &'static str)> {
    vec![
        (json!({"name": "key-label-unicode", "index": 2, "value": "a\u{0}b"}), "U+0000"),
        (json!({"name": "key-label-unicode", "value": "\u{1b}[2J"}), "U+001B"),
        (json!({"name": "key-label-unicode", "value": "x\u{1}"}), "U+0001"),
        (json!({"name": "key-label-unicode", "value": "\u{FFFE}"}), "U+FFFE"),
        (json!({"name": "", "value": "no name"}), "no name"),
        (json!({"name": "sntp addr", "value": "v"}), "U+0020"),
        (json!({"name": "key-label-unicode", "value": "x".repeat(60_000)}), "more than one WriteItems"),
    ]
}

#[tokio::test]
async fn an_admin_client_posting_unsendable_items_gets_422_and_nothing_is_stored() {
    let srv = TestServer::start().await;
    for (bad, why) in hostile_items() {
        let items = json!([{"name": "sntp-addr", "value": "ntp.example.net"}, bad]);

        let (s, v) = srv.admin("PUT", "/api/v1/profiles/global", Some(json!({ "item": items }))).await;
        assert_eq!(s, 422, "{bad}: {v}");
        let e = error_of(&v);
        assert!(e.starts_with("profile \"global\": item "), "{e}");
        assert!(e.contains("(#2 in the list)") && e.contains(why), "{e}");
        assert!(!e.contains('\0') && !e.contains('\u{1b}') && e.len() < 300, "one short line: {e:?}");
        let (s, _) = srv.admin("GET", "/api/v1/profiles/global", None).await;
        assert_eq!(s, 404, "nothing stored");

        let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": MAC, "overrides": items}))).await;
        assert_eq!(s, 422, "{bad}: {v}");
        assert!(error_of(&v).starts_with("overrides: item "), "{v}");
        assert_eq!(srv.admin("GET", "/api/v1/devices/001AE83C4D77", None).await.0, 404, "nothing stored");

        let job = json!({"target": {"all": true}, "job": {"kind": "write", "items": items}});
        let (s, v) = srv.admin("POST", "/api/v1/jobs", Some(job)).await;
        assert_eq!(s, 422, "{bad}: {v}");
        assert!(error_of(&v).starts_with("write job: item "), "{v}");
    }
    // Overrides of a device that exists: refused, the old ones kept.
    let (s, _) = srv
        .admin("POST", "/api/v1/devices", Some(json!({"mac": MAC, "overrides": [{"name": "e164", "value": "100"}]})))
        .await;
    assert_eq!(s, 201);
    let bad = json!({"overrides": [{"name": "e164", "value": "1\u{0}"}]});
    let (s, v) = srv.admin("PATCH", "/api/v1/devices/001AE83C4D77", Some(bad)).await;
    assert_eq!(s, 422, "{v}");
    assert!(error_of(&v).contains("\"e164\" (#1 in the list)"), "{v}");
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE83C4D77/desired", None).await;
    assert_eq!(d["items"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d["items"][0]["value"], "100", "{d}");
    assert_eq!(srv.admin("GET", "/api/v1/jobs", None).await.1, json!([]), "no job was queued");

    // A provisioning template XML cannot carry.
    let (s, v) = srv
        .admin("PUT", "/api/v1/profiles/p1", Some(json!({"provisioning-template": "<a>\u{0}</a>", "item": []})))
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(error_of(&v).contains("provisioning template holds U+0000"), "{v}");
    // A lone surrogate is not even JSON.
    let (s, _) = put_raw(&srv, "/api/v1/profiles/p2", br#"{"item":[{"name":"a","value":"\ud800"}]}"#).await;
    assert_eq!(s, 400);
    assert_eq!(srv.admin("GET", "/api/v1/profiles", None).await.1, json!([]), "no profile was stored");
    srv.stop().await;
}

#[tokio::test]
async fn items_a_phone_can_be_sent_are_accepted_and_written() {
    let srv = TestServer::start().await;
    let label = "Tab\there, line\nbreak, CR\r, <&> \"quoted\", Grüße, 😀";
    let items = json!([
        {"name": "sntp-addr", "value": "ntp.example.net"},
        {"name": "key-label-unicode", "index": 1, "value": label},
        {"name": "key-label-unicode", "index": 2, "value": "y".repeat(40_000)},
    ]);
    let (s, v) = srv.admin("PUT", "/api/v1/profiles/global", Some(json!({ "item": items }))).await;
    assert_eq!(s, 200, "{v}");
    let job = json!({"target": {"mac": MAC}, "job": {"kind": "write", "items": [{"name": "e164", "value": "200"}]}});
    assert_eq!(srv.admin("POST", "/api/v1/devices", Some(json!({"mac": MAC}))).await.0, 201);
    assert_eq!(srv.admin("POST", "/api/v1/jobs", Some(job)).await.0, 201);
    let mut p = Phone::new(MacAddr::parse(MAC).expect("mac"));
    let mut c = srv.client();
    let i = p.interact(&mut c, Reason::StartUp).await.expect("interaction");
    assert_eq!(i.actions.last(), Some(&Action::CleanUp));
    assert_eq!(p.get("sntp-addr", None), Some("ntp.example.net"));
    assert_eq!(p.get("key-label-unicode", Some(1)), Some(label));
    assert_eq!(p.get("key-label-unicode", Some(2)).map(str::len), Some(40_000));
    assert_eq!(p.get("e164", None), Some("200"));
    srv.stop().await;
}

/// Puts `items` in the `global` profile straight into the database, past the admin API.
fn store_global(srv: &TestServer, items: Vec<Item>) {
    let store = SqliteStore::open(&srv.data().join("dls.sqlite")).expect("opens the service's database");
    store.put_profile(&Profile { name: "global".into(), items, ..Profile::default() }).expect("stores");
}

#[tokio::test]
async fn a_bad_value_already_in_the_global_profile_does_not_break_start_ups() {
    let srv = TestServer::start().await;
    store_global(
        &srv,
        vec![
            Item::new("key-label-unicode", "evil\0"),
            Item::new("sntp-addr", "ntp.example.net"),
            Item::new("", "nameless"),
            Item::indexed("function-key-def", 0, "30"),
        ],
    );
    for n in 0..3u8 {
        let mac = MacAddr::parse(&format!("00:1A:E8:3C:50:0{n}")).expect("mac");
        let mut p = Phone::new(mac);
        let mut c = srv.client();
        // The phone got 500 here, and so did every phone of the fleet.
        let i = p.interact(&mut c, Reason::StartUp).await.expect("the service answers");
        assert_eq!(i.actions, vec![Action::ReadAllItems, Action::WriteItems, Action::CleanUp], "phone {n}");
        assert_eq!(p.get("sntp-addr", None), Some("ntp.example.net"));
        assert_eq!(p.get("function-key-def", Some(0)), Some("30"));
        assert!(p.get("key-label-unicode", None).is_none());
        // The skip is the item's write outcome, with why.
        let (s, d) = srv.admin("GET", &format!("/api/v1/devices/{mac}"), None).await;
        assert_eq!(s, 200);
        let written = d["written"].as_array().cloned().unwrap_or_default();
        let outcome = |name: &str| {
            written.iter().find(|w| w["item"]["name"] == name).map(|w| w["outcome"].clone()).unwrap_or(Value::Null)
        };
        assert!(outcome("key-label-unicode")["NotSent"].as_str().is_some_and(|w| w.contains("U+0000")), "{d}");
        assert!(outcome("")["NotSent"].as_str().is_some_and(|w| w.contains("no name")), "{d}");
        assert_eq!(outcome("sntp-addr"), json!("Accepted"));
        // And the next start-up is quiet: nothing to write, nothing tried again.
        let i = p.interact(&mut c, Reason::StartUp).await.expect("the service answers");
        assert_eq!(i.actions, vec![Action::CleanUp]);
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_item_too_large_for_one_write_items_does_not_cost_the_phone_its_other_writes() {
    let srv = TestServer::start().await;
    store_global(
        &srv,
        vec![Item::new("key-label-unicode", "x".repeat(60_000)), Item::new("sntp-addr", "ntp.example.net")],
    );
    let mut p = Phone::new(MacAddr::parse(MAC).expect("mac"));
    let mut c = srv.client();
    let i = p.interact(&mut c, Reason::StartUp).await.expect("the service answers");
    assert_eq!(i.actions, vec![Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert_eq!(p.get("sntp-addr", None), Some("ntp.example.net"), "written, not dropped with the large item");
    let (_, d) = srv.admin("GET", "/api/v1/devices/001AE83C4D77", None).await;
    assert!(d["written"].to_string().contains("more than one WriteItems message carries"), "{d}");
    srv.stop().await;
}

#[tokio::test]
async fn a_stored_value_xml_cannot_carry_is_left_out_of_a_provisioning_file() {
    let srv = TestServer::start().await;
    let template = "<Provider><Account user=\"{{item:sip-user-id}}\" name=\"{{item:display-id}}\"/></Provider>";
    store_global(&srv, vec![Item::new("sip-user-id", "4711\0"), Item::new("display-id", "Desk 12")]);
    // The template, past the admin API too.
    let store = SqliteStore::open(&srv.data().join("dls.sqlite")).expect("opens");
    let mut global = store.profile("global").expect("reads").expect("exists");
    global.provisioning_template = Some(template.into());
    store.put_profile(&global).expect("stores");
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": MAC, "secret": "MACID-1"}))).await;
    assert_eq!(s, 201, "{v}");
    let url = format!("http://127.0.0.1:{}/provisioning/001AE83C4D77.xml", srv.http.port());
    let (code, out, err) = crate::common::run(
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "--digest", "-u", "001AE83C4D77:MACID-1"])
            .arg(&url),
        30,
    )
    .await;
    assert_eq!(code, 0, "curl: {err}");
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    assert_eq!(status, "200", "{body}");
    assert_eq!(body, "<Provider><Account user=\"\" name=\"Desk 12\"/></Provider>");
    srv.stop().await;
}
