//! Several nodes on one PostgreSQL database (`store = "postgres://…"`): any node serves any
//! phone, and a device's messages stay atomic across nodes. A real PostgreSQL server, started
//! by the tests (`dls-test-postgres`); without one these tests fail, they never skip. The
//! nodes here run in this process; the tests that SIGKILL a node (a `dls serve` process)
//! mid-storm and mid-contact-me are `dls-cli`'s (`tests/cli/cluster.rs`), whose tests Cargo
//! gives the `dls` binary to.

use std::sync::Arc;
use std::time::Duration;

use dls_message::{Action, MacAddr, Reason};
use dls_server::StoreLocation;
use dls_test_postgres::TestPostgres;
use dls_workpoint::{Phone, PinOutcome, ServerTrust, WpiClient};
use serde_json::json;

use crate::common::TestServer;

/// A fresh database on the tests' PostgreSQL server: its URL.
fn database() -> String {
    let server = TestPostgres::shared().expect("PostgreSQL for the cluster tests (apt-get install postgresql)");
    server.fresh_database().expect("a fresh database").url().to_owned()
}

/// The configuration of a node with a data directory (and keys) of its own in `dir`, on
/// loopback ports, its store `store`.
fn fresh_node(dir: &std::path::Path, store: String) -> dls_server::Config {
    let mut config = dls_server::Config::default();
    config.data_dir = dir.join("data");
    for listen in [&mut config.wpi_listen, &mut config.admin_listen, &mut config.secure_listen, &mut config.http_listen]
    {
        *listen = "127.0.0.1:0".parse().expect("addr");
    }
    config.store = StoreLocation::new(store);
    config
}

/// Two nodes of a cluster: data directories and listeners of their own, the keys and the
/// database shared.
async fn nodes(url: &str) -> (TestServer, TestServer) {
    let store = StoreLocation::new(url);
    let first = store.clone();
    let a = TestServer::start_with(move |c| c.store = first).await;
    let b = TestServer::join(&a, move |c| c.store = store).await;
    (a, b)
}

#[tokio::test]
async fn any_node_serves_any_phone() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    let (status, _) = b
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.example.net"}]})),
        )
        .await;
    assert_eq!(status, 200);

    // The first start-up through node A: read in full, configured with node B's profile.
    let mut phone = Phone::new(MacAddr::parse("00:1A:E8:3C:10:01").expect("mac"));
    let first = phone.interact(&mut a.client(), Reason::StartUp).await.expect("start-up on A");
    assert_eq!(first.actions, [Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert_eq!(phone.get("sntp-addr", None), Some("ntp.example.net"));

    // Node B knows it: a repeat start-up is one exchange, and its admin API lists it. Its
    // store's round trips to the database are counted in /metrics.
    let trips =
        |samples: &crate::metrics::Samples| crate::metrics::value(samples, "dls_store_database_round_trips_total");
    let before = trips(&crate::metrics::scrape(&b).await.1);
    let again = phone.interact(&mut b.client(), Reason::StartUp).await.expect("start-up on B");
    assert_eq!(again.actions, [Action::CleanUp], "a known phone, nothing to write");
    let (text, samples) = crate::metrics::scrape(&b).await;
    assert!(before > 0.0 && trips(&samples) >= before + 3.0, "a message costs 3 round trips or more: {before}, {text}");
    let (status, devices) = b.admin("GET", "/api/v1/devices", None).await;
    assert_eq!((status, devices[0]["mac"].as_str()), (200, Some("001AE83C1001")), "{devices}");

    // A change made through A reaches the phone through B.
    let (status, _) = a
        .admin("PATCH", "/api/v1/devices/001AE83C1001", Some(json!({"overrides": [{"name": "e164", "value": "4711"}]})))
        .await;
    assert_eq!(status, 200);
    let third = phone.interact(&mut b.client(), Reason::StartUp).await.expect("start-up on B");
    assert_eq!(third.actions, [Action::WriteItems, Action::CleanUp]);
    assert_eq!(phone.get("e164", None), Some("4711"));
    a.stop().await;
    b.stop().await;
}

/// Many devices, each starting up through both nodes at once: every device's messages are
/// handled one after the other (the store excludes them across nodes), every interaction
/// ends with a `CleanUp`, and every device is stored with its configuration written.
#[tokio::test]
async fn many_devices_through_both_nodes_at_once_all_end_configured() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (status, _) = a
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.example.net"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let mut runs = tokio::task::JoinSet::new();
    for n in 0..12u8 {
        for node in [a.clone(), b.clone()] {
            runs.spawn(async move {
                let mut phone = Phone::new(MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x3C, 0x20, n]));
                let r = phone.interact(&mut node.client(), Reason::StartUp).await.expect("start-up");
                assert_eq!(r.actions.last(), Some(&Action::CleanUp), "{:?}", r.actions);
                assert_eq!(r.cleanup_reason, None, "no refusal: {r:?}");
            });
        }
    }
    while let Some(r) = runs.join_next().await {
        r.expect("a phone's run");
    }
    let (_, devices) = b.admin("GET", "/api/v1/devices", None).await;
    assert_eq!(devices.as_array().map(Vec::len), Some(12), "{devices}");
    for d in devices.as_array().into_iter().flatten() {
        let (_, details) = a.admin("GET", &format!("/api/v1/devices/{}", d["mac"].as_str().expect("mac")), None).await;
        assert!(details["written"].to_string().contains("sntp-addr"), "{details}");
    }
    for node in [a, b] {
        Arc::into_inner(node).expect("the only reference").stop().await;
    }
}

/// The same start-up (one nonce) sent to both nodes at once, for many devices: the store
/// excludes a device's messages across nodes, so exactly one node accepts it and the other
/// sees the nonce used — never both accepted, never an error. (Without the exclusion both
/// nodes load the device before either commits.)
#[tokio::test]
async fn a_nonce_is_accepted_by_one_node_only() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    for round in 0..3u8 {
        let mut sends = tokio::task::JoinSet::new();
        for n in 0..16u8 {
            let start = dls_message::WorkpointMessage {
                header: dls_message::Header {
                    nonce: format!("NONCE-{round}-{n}"),
                    max_items: Some(-1),
                    fragment: None,
                },
                reason: dls_message::ReasonForContact::new(Reason::StartUp),
                items: Some(vec![dls_message::Item::new("mac-addr", format!("00:1A:E8:3C:3{round}:{n:02X}"))]),
            };
            for node in [&a, &b] {
                let (message, mut client) = (start.clone(), node.client());
                sends.spawn(async move { (n, client.exchange(&message).await.expect("answered")) });
            }
        }
        let mut answers: Vec<Vec<String>> = vec![Vec::new(); 16];
        while let Some(r) = sends.join_next().await {
            let (n, reply) = r.expect("a send");
            let what = match (&reply.action, reply.item("cleanup-reason")) {
                (Action::ReadAllItems, _) => "accepted".to_owned(),
                (Action::CleanUp, Some(why)) => why.to_owned(),
                other => format!("{other:?}"),
            };
            answers[usize::from(n)].push(what);
        }
        for (n, mut got) in answers.into_iter().enumerate() {
            got.sort();
            assert_eq!(got, ["accepted", "nonce already used"], "device {n} of round {round}");
        }
    }
    a.stop().await;
    b.stop().await;
}

/// Secure mode across nodes (the keys and the database shared): a `pin` device bootstraps
/// through node A, answers the TAN and starts up on node B's secure port, and node B's
/// default port refuses it; a `nopin` device bootstraps through B and starts up on A's
/// secure port.
#[tokio::test]
async fn a_device_bootstrapped_through_one_node_is_secured_on_every_node() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    let default_client = |node: &TestServer| {
        let port = node.wpi.port();
        let mut c = WpiClient::new(&format!("127.0.0.1:{port}"), &ServerTrust::AcceptAny).expect("client");
        c.set_timeout(Duration::from_secs(20));
        c
    };
    let secure_client = |node: &TestServer, p: &Phone| {
        let material = p.secure.as_ref().expect("bootstrapped");
        let address = format!("127.0.0.1:{}", node.secure.port());
        let mut c = WpiClient::with_tls(&address, material.client_config().expect("TLS")).expect("client");
        c.set_timeout(Duration::from_secs(20));
        c
    };

    let (status, added) =
        a.admin("POST", "/api/v1/devices", Some(json!({"mac": "00:1A:E8:5E:10:01", "mode": "pin"}))).await;
    assert_eq!(status, 201, "{added}");
    let pin = added["pin"].as_str().expect("a PIN").to_owned();
    let mut p = Phone::new(MacAddr::parse("00:1A:E8:5E:10:01").expect("mac"));
    let r = p.interact(&mut default_client(&a), Reason::StartUp).await.expect("bootstrap on A");
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    p.pin_entries.push_back(pin);
    assert_eq!(p.enter_pin().expect("opens"), PinOutcome::Opened);
    let r = p.interact(&mut secure_client(&b, &p), Reason::StartUp).await.expect("secure start-up on B");
    assert_eq!(r.actions.first(), Some(&Action::ReadItems), "the TAN, checked by B: {r:?}");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp));
    let r = p.interact(&mut default_client(&b), Reason::StartUp).await.expect("answered");
    assert_eq!((r.actions.as_slice(), r.cleanup_reason.is_some()), ([Action::CleanUp].as_slice(), true), "{r:?}");

    let (status, _) =
        b.admin("POST", "/api/v1/devices", Some(json!({"mac": "00:1A:E8:5E:10:02", "mode": "nopin"}))).await;
    assert_eq!(status, 201);
    let mut q = Phone::new(MacAddr::parse("00:1A:E8:5E:10:02").expect("mac"));
    let r = q.interact(&mut default_client(&b), Reason::StartUp).await.expect("bootstrap on B");
    assert_eq!(r.bootstrap.as_deref(), Some("nopin"));
    let r = q.interact(&mut secure_client(&a, &q), Reason::StartUp).await.expect("secure start-up on A");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp), "{r:?}");
    let (_, d) = a.admin("GET", "/api/v1/devices/001AE85E1002", None).await;
    assert_eq!(d["security"]["state"], "secured", "{d}");
    a.stop().await;
    b.stop().await;
}

/// The database goes away while phones call: they get `503` with `Retry-After` (nothing
/// half-written), the admin API `503`, `/readyz` `503`; when it is back the node reconnects
/// by itself and every phone completes.
#[tokio::test]
async fn the_database_restarted_under_load() {
    // A server of this test's own: stopping the shared one would break the others.
    let (pg, url) = tokio::task::spawn_blocking(|| {
        let pg = TestPostgres::start().expect("PostgreSQL (apt-get install postgresql)");
        let url = pg.fresh_database().expect("a database").url().to_owned();
        (pg, url)
    })
    .await
    .expect("starts");
    let store = StoreLocation::new(url);
    let srv = TestServer::start_with(move |c| c.store = store).await;
    let (status, _) = srv
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [{"name": "sntp-addr", "value": "ntp.example.net"}]})),
        )
        .await;
    assert_eq!(status, 200);
    let start_up = |n: u32| {
        format!(
            r#"<WorkpointMessage xmlns="http://www.siemens.com/DLS"><Message nonce="N{n}" maxItems="-1"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name="mac-addr">00:1A:E8:3C:40:{:02X}</Item></ItemList></Message></WorkpointMessage>"#,
            n % 256
        )
    };
    let mut c = srv.client();
    let (status, _, _) = c.post(start_up(1).into_bytes()).await.expect("answered");
    assert_eq!(status, 200);

    let pg = Arc::new(pg);
    let stopping = pg.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await.expect("joins").expect("stops");
    for n in 2..5 {
        c.forget_session();
        let (status, headers, body) = c.post(start_up(n).into_bytes()).await.expect("answered");
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"60"[..]));
    }
    let (status, body) = srv.admin("GET", "/api/v1/devices", None).await;
    assert_eq!(status, 503, "{body}");
    let ready = crate::common::admin_request(srv.admin, "GET", "/readyz", None, None).await;
    assert_eq!(ready.0, 503, "{:?}", ready.1);

    let starting = pg.clone();
    tokio::task::spawn_blocking(move || starting.start_again()).await.expect("joins").expect("starts again");
    // The pool opens new connections: every phone completes, none half-written.
    let mut runs = tokio::task::JoinSet::new();
    for n in 0..8u8 {
        let mut client = srv.client();
        runs.spawn(async move {
            let mut phone = Phone::new(MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x3C, 0x41, n]));
            let r = phone.interact(&mut client, Reason::StartUp).await.expect("start-up after the restart");
            assert_eq!(r.actions, [Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
        });
    }
    while let Some(r) = runs.join_next().await {
        r.expect("a phone's run");
    }
    let ready = crate::common::admin_request(srv.admin, "GET", "/readyz", None, None).await;
    assert_eq!(ready.0, 200);
    let (status, devices) = srv.admin("GET", "/api/v1/devices", None).await;
    assert_eq!((status, devices.as_array().map(Vec::len)), (200, Some(9)), "{devices}");
    srv.stop().await;
}

/// A node whose keys are not those of the nodes that share its store is refused at start,
/// with one line, before it serves a phone (it would re-write what it cannot recognise and
/// fail to open what the others sealed).
#[tokio::test]
async fn a_node_with_other_keys_is_refused() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let e = dls_server::start(fresh_node(dir.path(), url)).await.expect_err("other keys");
    let text = e.to_string();
    assert!(matches!(e, dls_server::ServerError::Config(_)), "{e:?}");
    assert!(text.contains("keys") && !text.contains('\n'), "{text}");
    a.stop().await;
    b.stop().await;
}

/// A store URL that does not work stops the start with one clear error, its password never
/// shown.
#[tokio::test]
async fn a_wrong_or_unreachable_database_stops_the_start() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let dir = tempfile::tempdir().expect("temp dir");
    let start = |store: String| dls_server::start(fresh_node(dir.path(), store));
    // Nothing listens on port 1.
    let e = start("postgres://dls:hunter2@127.0.0.1:1/dls".into()).await.expect_err("unreachable");
    let text = e.to_string();
    assert!(matches!(e, dls_server::ServerError::Store(_)), "{e:?}");
    assert!(!text.contains("hunter2") && !text.contains('\n'), "{text}");
    // A database that does not exist on a server that does: the operator's to fix.
    let missing = format!("{}_missing", url.trim_end_matches('/'));
    let e = start(missing).await.expect_err("no such database");
    assert!(matches!(e, dls_server::ServerError::Config(_)), "{e:?}");
    // Not a store at all.
    let e = start("mysql://db.example.com/dls".into()).await.expect_err("not a store");
    assert!(matches!(e, dls_server::ServerError::Config(ref m) if m.contains("mysql")), "{e:?}");
}

/// The MAC and secret of the phone that fetches its provisioning file in the Digest tests.
const PHONE: &str = "001A2B3C4D5E";
const PHONE_SECRET: &str = "MACID-4711-cluster";

/// One plain-HTTP `GET` of `path` on `node`'s provisioning listener, from the loopback
/// address `127.0.0.<from>` (a phone's or a guesser's own address): the status, the
/// `WWW-Authenticate` values and the body.
async fn get(node: &TestServer, from: u8, path: &str, authorization: Option<&str>) -> (u16, Vec<String>, String) {
    use http_body_util::{BodyExt, Empty};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, from], 0))).expect("binds a loopback address");
    let stream = socket.connect(node.http).await.expect("connects");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().uri(path).header("host", node.http.to_string());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp =
        sender.send_request(req.body(Empty::<hyper::body::Bytes>::new()).expect("request")).await.expect("answered");
    let status = resp.status().as_u16();
    let challenges =
        resp.headers().get_all("www-authenticate").iter().map(|v| v.to_str().expect("ASCII").to_owned()).collect();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, challenges, String::from_utf8_lossy(&body).into_owned())
}

/// The `Authorization` a phone sends in answer to `challenge` (MD5, `qop=auth`), count `nc`.
fn digest_answer(challenge: &str, user: &str, password: &str, uri: &str, nc: u32) -> String {
    let c = dls_digest::Authorization::parse(challenge.as_bytes()).expect("a challenge");
    let param = |name: &str| c.param(name).expect("in the challenge").to_owned();
    let (realm, nonce, opaque) = (param("realm"), param("nonce"), param("opaque"));
    let md5 = |parts: &[&str]| {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        dls_digest::HashFn::Md5.hex(&parts).to_string()
    };
    let (nc, cnonce) = (format!("{nc:08x}"), "0a4f113b");
    let ha1 = md5(&[user, &realm, password]);
    let response = md5(&[&ha1, &nonce, &nc, cnonce, "auth", &md5(&["GET", uri])]);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, \
         cnonce=\"{cnonce}\", response=\"{response}\", opaque=\"{opaque}\""
    )
}

/// A challenge of `node` to a request from `127.0.0.<from>` without credentials.
async fn challenge_of(node: &TestServer, from: u8, path: &str) -> String {
    let (status, challenges, _) = get(node, from, path, None).await;
    assert_eq!((status, challenges.len()), (401, 1), "{challenges:?}");
    challenges.into_iter().next().unwrap_or_default()
}

/// Registers the phone with its Digest secret, through `node`.
async fn provision_phone(node: &TestServer) {
    let (status, body) =
        node.admin("POST", "/api/v1/devices", Some(json!({"mac": PHONE, "secret": PHONE_SECRET}))).await;
    assert_eq!(status, 201, "{body}");
}

/// HTTP Digest across nodes: a phone challenged by node A fetches its file from node B; the
/// same `Authorization` again is refused by B and by A; the next count of the nonce is good
/// on A; a node restarted keeps refusing it (the counts used are in the database).
#[tokio::test]
async fn a_phone_challenged_by_one_node_fetches_its_file_from_the_other_and_no_node_takes_a_replay() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let (a, b) = nodes(&url).await;
    provision_phone(&a).await;
    let path = format!("/provisioning/{PHONE}.xml");
    let challenge = challenge_of(&a, 2, &path).await;
    let first = digest_answer(&challenge, PHONE, PHONE_SECRET, &path, 1);
    let (status, _, body) = get(&b, 2, &path, Some(&first)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("value=\"{PHONE}\"")), "its own file: {body}");
    for (name, node) in [("B", &b), ("A", &a)] {
        let (status, challenges, body) = get(node, 2, &path, Some(&first)).await;
        assert_eq!((status, challenges.len()), (401, 1), "a replay on {name}: {body}");
        assert!(!challenges[0].contains("stale=true"), "a replay, not a stale nonce: {challenges:?}");
    }
    // The phone's next request on the same nonce, to the node that issued it.
    let second = digest_answer(&challenge, PHONE, PHONE_SECRET, &path, 2);
    assert_eq!(get(&a, 2, &path, Some(&second)).await.0, 200);
    // A wrong secret with a nonce of A, on B: a plain 401, as on one node.
    let wrong = digest_answer(&challenge, PHONE, "not-the-secret", &path, 3);
    let (status, challenges, _) = get(&b, 2, &path, Some(&wrong)).await;
    assert_eq!((status, challenges.iter().any(|c| c.contains("stale=true"))), (401, false));
    // A node that starts again (its memory gone) still refuses the replay.
    b.stop().await;
    let store = StoreLocation::new(url.clone());
    let c = TestServer::join(&a, move |c| c.store = store).await;
    assert_eq!(get(&c, 2, &path, Some(&second)).await.0, 401, "a replay after a restart");
    let third = digest_answer(&challenge, PHONE, PHONE_SECRET, &path, 4);
    assert_eq!(get(&c, 2, &path, Some(&third)).await.0, 200, "A's nonce on a node started since");
    a.stop().await;
    c.stop().await;
}

/// Guesses spread over both nodes are counted as on one node: a guesser at one address is
/// throttled after the pair's allowance of one node (`pair_burst` of the default
/// `ThrottleConfig`, the time standing still), not twice it; 30 addresses guessing the
/// phone's MAC, half on each node, put the username under pressure on both nodes (20 is the
/// ceiling; 15 per node would not); and the real phone at its own address fetches its file
/// through either node all along.
#[tokio::test]
async fn guesses_spread_over_both_nodes_count_as_on_one_and_never_lock_the_phone_out() {
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let clock = Arc::new(dls_server::ManualClock::from_system());
    let (first, store) = (StoreLocation::new(url.clone()), StoreLocation::new(url));
    let a = TestServer::start_with_clock(move |c| c.store = first, clock.clone()).await;
    let b = TestServer::join_with_clock(&a, move |c| c.store = store, clock.clone()).await;
    provision_phone(&a).await;
    let path = format!("/provisioning/{PHONE}.xml");
    let nodes = [&a, &b];
    let defaults = dls_digest::ThrottleConfig::default();

    // One guesser address, alternating: challenged by one node, answering the other.
    let mut evaluated = 0;
    let throttled = loop {
        assert!(evaluated <= 2 * defaults.pair_burst, "never throttled");
        let (from, to) = (nodes[evaluated as usize % 2], nodes[(evaluated as usize + 1) % 2]);
        let guess = digest_answer(&challenge_of(from, 3, &path).await, PHONE, &format!("guess{evaluated}"), &path, 1);
        match get(to, 3, &path, Some(&guess)).await {
            (401, _, _) => evaluated += 1,
            (429, _, _) => break evaluated,
            (status, _, body) => panic!("guess {evaluated}: {status} {body}"),
        }
    };
    assert_eq!(throttled, defaults.pair_burst, "one node's allowance, whichever node the guesses reach");
    for node in nodes {
        let guess = digest_answer(&challenge_of(node, 3, &path).await, PHONE, "again", &path, 1);
        assert_eq!(get(node, 3, &path, Some(&guess)).await.0, 429, "every node holds the guesser back");
    }
    // The phone, from its own address, through each node.
    for (i, node) in nodes.into_iter().enumerate() {
        let answer = digest_answer(&challenge_of(nodes[(i + 1) % 2], 2, &path).await, PHONE, PHONE_SECRET, &path, 1);
        let (status, _, body) = get(node, 2, &path, Some(&answer)).await;
        assert_eq!(status, 200, "{body}");
    }

    // 30 addresses, one wrong guess each, half on each node: the username ceiling (20) is
    // exceeded cluster-wide, so an address that guessed waits; a fresh address never does.
    clock.advance(Duration::from_secs(3600));
    for n in 0..30u8 {
        let node = nodes[usize::from(n) % 2];
        let guess = digest_answer(&challenge_of(node, 10 + n, &path).await, PHONE, "guess", &path, 1);
        assert_eq!(get(node, 10 + n, &path, Some(&guess)).await.0, 401, "guess from address {n}: evaluated");
    }
    for (n, node) in [(0u8, &a), (1, &b), (2, &a), (3, &b)] {
        let guess = digest_answer(&challenge_of(node, 10 + n, &path).await, PHONE, "again", &path, 1);
        assert_eq!(get(node, 10 + n, &path, Some(&guess)).await.0, 429, "address {n} under pressure");
    }
    for (i, node) in nodes.into_iter().enumerate() {
        let answer = digest_answer(&challenge_of(nodes[(i + 1) % 2], 2, &path).await, PHONE, PHONE_SECRET, &path, 1);
        assert_eq!(get(node, 2, &path, Some(&answer)).await.0, 200, "the phone during the attack");
    }
    a.stop().await;
    b.stop().await;
}

/// `curl` over HTTPS trusting `node`'s CA: the exit code and what it wrote on stdout.
async fn curl_from(node: &TestServer, args: &[&str], url: &str) -> (i32, Vec<u8>) {
    let ca = node.data().join("ca.crt");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&ca)
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[tokio::test]
async fn nodes_sharing_a_files_dir_serve_every_file_and_leave_each_others_uploads_alone() {
    use dls_engine::firmware::fake_image;
    let url = tokio::task::spawn_blocking(database).await.expect("database");
    let shared = tempfile::tempdir().expect("shared files dir");
    let files = shared.path().join("files");
    let (store_a, store_b) = (StoreLocation::new(&url), StoreLocation::new(&url));
    let (files_a, files_b) = (files.clone(), files.clone());
    let a = TestServer::start_with(move |c| {
        c.store = store_a;
        c.node_name = "node-a".into();
        c.files_dir = Some(files_a);
    })
    .await;
    // An upload of node A's in progress, and one an earlier version left at the top an hour
    // ago (longer than any upload may last) and one it is writing now: node B's start
    // removes the stale one only.
    std::fs::write(files.join(".uploads-node-a").join(".upload-0123"), b"half").expect("writes");
    let stale = files.join(".upload-00aa");
    std::fs::write(&stale, b"left by a crash").expect("writes");
    let old = std::time::SystemTime::now() - Duration::from_secs(3 * 3600 + 60);
    std::fs::File::options().write(true).open(&stale).expect("opens").set_modified(old).expect("mtime");
    std::fs::write(files.join(".upload-00bb"), b"being written").expect("writes");
    let b = TestServer::join(&a, move |c| {
        c.store = store_b;
        c.node_name = "node-b".into();
        c.files_dir = Some(files_b);
        c.upload_timeout_secs = 3 * 3600;
    })
    .await;
    assert!(files.join(".uploads-node-a").join(".upload-0123").exists(), "node A's upload in progress stays");
    assert!(files.join(".upload-00bb").exists(), "a recent upload of an earlier version stays");
    assert!(!stale.exists(), "one older than any upload may last is removed");
    assert!(files.join(".uploads-node-b").is_dir());

    // Uploaded through A, deployed through B: the phone's download and curl's ranges on B.
    let mac = MacAddr::parse("00:1A:E8:3C:F1:01").expect("mac");
    let mut phone = Phone::new(mac);
    phone.interact(&mut a.client(), Reason::StartUp).await.expect("start-up on A");
    let image = fake_image(&["OpenStage 60"], "Siemens SIP", "V3 R5.13.0", 200_000);
    let (status, file) = crate::deploy::upload(&a, "name=os60.img&type=APP", image.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(std::fs::read(files.join(file["id"].to_string())).expect("in the shared directory"), image);
    let (status, v) = b
        .admin(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "target": { "mac": "001AE83CF101" }, "job": { "kind": "deploy-firmware", "file": file["id"] } })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let r = phone.interact(&mut b.client(), Reason::Solicited).await.expect("solicited on B");
    assert_eq!(r.deployments.len(), 1, "{:?}", r.actions);
    let on_b = r.deployments[0].url.clone();
    assert!(on_b.starts_with(&format!("https://127.0.0.1:{}/files/", b.wpi.port())), "{on_b}");
    let (code, body) = curl_from(&b, &[], &on_b).await;
    assert_eq!((code, body == image), (0, true), "the whole file from node B");
    let (code, body) = curl_from(&b, &["-r", "1000-1999"], &on_b).await;
    assert_eq!((code, body.as_slice()), (0, &image[1000..2000]), "a range from node B");
    let on_a = on_b.replacen(&format!(":{}/", b.wpi.port()), &format!(":{}/", a.wpi.port()), 1);
    let (code, body) = curl_from(&a, &["-r", "199000-"], &on_a).await;
    assert_eq!((code, body.as_slice()), (0, &image[199_000..]), "and from node A");

    // Deleted through B: gone from the shared directory, for A too.
    let (status, _) = b.admin("DELETE", &format!("/api/v1/files/{}", file["id"]), None).await;
    assert_eq!(status, 200);
    assert!(!files.join(file["id"].to_string()).exists());
    let (_, body) = curl_from(&a, &["-o", "/dev/null", "-w", "%{http_code}"], &on_a).await;
    assert_eq!(String::from_utf8_lossy(&body), "404");
    a.stop().await;
    b.stop().await;
}
