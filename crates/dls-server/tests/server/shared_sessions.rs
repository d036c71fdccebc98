//! Interactions that go on on another node: two services on one PostgreSQL database (and
//! one data directory: the same keys), a phone's messages sent now to one, now to the
//! other, as an HTTP balancer may — and to the second after the first stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dls_message::{Action, DlsMessage, Fragment, Header, Item, ReasonForContact, ReplyStatus, WorkpointMessage};
use dls_server::ManualClock;
use dls_test_postgres::{Database, TestPostgres};
use dls_workpoint::{ServerTrust, WpiClient};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestServer, admin_request};

/// Two nodes sharing a database and a data directory (and a clock).
struct Cluster {
    a: Option<TestServer>,
    b: TestServer,
    data: PathBuf,
    db: Database,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(clock: &ManualClock) -> Self {
        // The PostgreSQL clients block: off the test's runtime.
        let db = tokio::task::spawn_blocking(|| {
            TestPostgres::shared().expect("a PostgreSQL server").fresh_database().expect("a database")
        })
        .await
        .expect("the server starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let node = |name: &'static str| {
            let (url, data) = (db.url().to_owned(), data.clone());
            move |c: &mut dls_server::Config| {
                c.store = dls_server::StoreLocation::new(url);
                c.data_dir = data;
                c.node_name = name.to_owned();
                c.session_timeout_secs = 60;
            }
        };
        let a = TestServer::start_with_clock(node("node-a"), Arc::new(clock.clone())).await;
        let b = TestServer::start_with_clock(node("node-b"), Arc::new(clock.clone())).await;
        Self { a: Some(a), b, data, db, _dir: dir }
    }

    fn a(&self) -> &TestServer {
        self.a.as_ref().expect("node A runs")
    }

    fn client(&self, wpi: SocketAddr) -> WpiClient {
        let ca = std::fs::read_to_string(self.data.join("ca.crt")).expect("ca.crt");
        let mut c =
            WpiClient::new(&format!("127.0.0.1:{}", wpi.port()), &ServerTrust::Verify(vec![ca])).expect("client");
        c.set_timeout(Duration::from_secs(10));
        c
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = std::fs::read_to_string(self.data.join("admin-token")).expect("token");
        admin_request(self.b.admin, method, path, Some(token.trim()), body).await
    }

    /// The sessions in the database: id and body.
    async fn stored_sessions(&self) -> Vec<(String, Vec<u8>)> {
        let url = self.db.url().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
            let rows = c.query("SELECT id, body FROM wpi_sessions", &[]).expect("reads");
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        })
        .await
        .expect("reads the sessions")
    }

    async fn stop(mut self) {
        if let Some(a) = self.a.take() {
            a.stop().await;
        }
        self.b.stop().await;
    }
}

/// The phone's messages of one interaction: a start-up, its inventory in two fragments,
/// and its answer to the `WriteItems`.
struct Phone {
    mac: &'static str,
    nonce: String,
}

impl Phone {
    fn new(mac: &'static str) -> Self {
        Self { mac, nonce: dls_workpoint::new_nonce() }
    }

    fn message(&self, reason: ReasonForContact, items: Option<Vec<Item>>, fragment: Fragment) -> WorkpointMessage {
        WorkpointMessage {
            header: Header { nonce: self.nonce.clone(), max_items: Some(-1), fragment: Some(fragment) },
            reason,
            items,
        }
    }

    fn start_up(&self) -> WorkpointMessage {
        let items = vec![Item::new("mac-addr", self.mac), Item::new("device-type", "OpenStage 60")];
        self.message(ReasonForContact::new(dls_message::Reason::StartUp), Some(items), Fragment::Final)
    }

    /// The inventory's first fragment: with a password the phone reports (as some do).
    fn first_fragment(&self) -> WorkpointMessage {
        let items = vec![
            Item::new("mac-addr", self.mac),
            Item::new("device-type", "OpenStage 60"),
            Item::new("user-pwd", "typed-by-the-user"),
        ];
        self.message(
            ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted),
            Some(items),
            Fragment::Next,
        )
    }

    fn last_fragment(&self) -> WorkpointMessage {
        let items = vec![Item::new("sntp-addr", "ntp.old.example"), Item::new("e164", "4711")];
        self.message(
            ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted),
            Some(items),
            Fragment::Final,
        )
    }

    fn written(&self, reply: &DlsMessage) -> WorkpointMessage {
        self.message(
            ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Accepted),
            reply.items.clone(),
            Fragment::Final,
        )
    }
}

/// What a node answered, as compared between runs.
fn seen(reply: &DlsMessage) -> (Action, Vec<(String, Option<u32>, String)>) {
    let items = reply.items.iter().flatten().map(|i| (i.name.clone(), i.index, i.value.clone())).collect();
    (reply.action.clone(), items)
}

/// The device as the admin API shows it, but its MAC and times.
async fn device(cluster: &Cluster, mac: &str) -> Value {
    let (status, mut d) = cluster.admin("GET", &format!("/api/v1/devices/{}", mac.replace(':', "")), None).await;
    assert_eq!(status, 200, "{d}");
    let object = d.as_object_mut().expect("an object");
    object.retain(|k, _| !k.contains("mac") && !k.contains("contact") && !k.ends_with("_at") && k != "registered");
    if let Some(inventory) = object.get_mut("inventory").and_then(Value::as_array_mut) {
        inventory.retain(|i| i["name"] != "mac-addr");
    }
    d
}

async fn put_profile(cluster: &Cluster) {
    let (status, body) = cluster
        .admin(
            "PUT",
            "/api/v1/profiles/global",
            Some(json!({"item": [
                {"name": "sntp-addr", "value": "ntp.example.net"},
                {"name": "admin-pwd", "value": "s3cret"},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn sha256_hex(s: &str) -> String {
    hex::encode_upper(Sha256::digest(s.as_bytes()))
}

/// One interaction whose messages go to `to[0]`, `to[1]`, … in turn (the cookie with
/// them); what the nodes answered.
async fn interact(
    cluster: &Cluster,
    phone: &Phone,
    to: [SocketAddr; 4],
) -> Vec<(Action, Vec<(String, Option<u32>, String)>)> {
    let mut answers = Vec::new();
    let mut cookie: Option<String> = None;
    let mut last: Option<DlsMessage> = None;
    for (step, wpi) in to.into_iter().enumerate() {
        let mut client = cluster.client(wpi);
        if let Some(id) = &cookie {
            client.set_cookie(id);
        }
        let message = match step {
            0 => phone.start_up(),
            1 => phone.first_fragment(),
            2 => phone.last_fragment(),
            _ => phone.written(last.as_ref().expect("a reply")),
        };
        let reply = client.exchange(&message).await.expect("answered");
        cookie = cookie.or_else(|| client.cookie().map(str::to_owned));
        answers.push(seen(&reply));
        last = Some(reply);
    }
    answers
}

#[tokio::test]
async fn an_interaction_goes_on_on_the_other_node() {
    let clock = ManualClock::from_system();
    let cluster = Cluster::start(&clock).await;
    put_profile(&cluster).await;
    let (a, b) = (cluster.a().wpi, cluster.b.wpi);

    // On one node, as a reference.
    let one = Phone::new("00:1A:E8:3C:10:01");
    let on_one_node = interact(&cluster, &one, [a, a, a, a]).await;
    let actions: Vec<Action> = on_one_node.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(actions, [Action::ReadAllItems, Action::GetNextFragment, Action::WriteItems, Action::CleanUp]);
    assert!(cluster.stored_sessions().await.is_empty(), "an interaction over leaves no session");

    // Every message to the other node than the one before.
    let two = Phone::new("00:1A:E8:3C:10:02");
    let across = interact(&cluster, &two, [a, b, a, b]).await;
    assert_eq!(across, on_one_node, "the same answers");
    assert_eq!(device(&cluster, two.mac).await, device(&cluster, one.mac).await, "the same device state");
    assert!(cluster.stored_sessions().await.is_empty());

    // What the store holds between two messages: the session under the SHA-256 of its
    // cookie, without the password the phone reported.
    let three = Phone::new("00:1A:E8:3C:10:03");
    let mut client = cluster.client(a);
    client.exchange(&three.start_up()).await.expect("answered");
    let cookie = client.cookie().expect("a cookie").to_owned();
    client.exchange(&three.first_fragment()).await.expect("answered");
    let stored = cluster.stored_sessions().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, sha256_hex(&cookie), "the cookie is not stored, its hash is");
    let body = String::from_utf8_lossy(&stored[0].1);
    assert!(body.contains("OpenStage 60"), "the fragment so far is kept: {body}");
    assert!(!body.contains("typed-by-the-user") && !body.contains(&cookie), "{body}");

    // The session expires on the service's clock, whichever node put it.
    clock.advance(Duration::from_secs(61));
    let mut client = cluster.client(b);
    client.set_cookie(&cookie);
    let refused = client.exchange(&three.last_fragment()).await.expect("answered");
    assert_eq!(
        (&refused.action, refused.item("cleanup-reason")),
        (&Action::CleanUp, Some("no interaction in progress")),
        "{refused:?}"
    );
    assert!(cluster.stored_sessions().await.is_empty(), "the expired session was taken out");
    cluster.stop().await;
}

#[tokio::test]
async fn an_interaction_goes_on_after_its_node_stopped() {
    let clock = ManualClock::from_system();
    let mut cluster = Cluster::start(&clock).await;
    put_profile(&cluster).await;
    let phone = Phone::new("00:1A:E8:3C:20:01");
    let a = cluster.a().wpi;
    let mut client = cluster.client(a);
    assert_eq!(client.exchange(&phone.start_up()).await.expect("answered").action, Action::ReadAllItems);
    let cookie = client.cookie().expect("a cookie").to_owned();
    assert_eq!(client.exchange(&phone.first_fragment()).await.expect("answered").action, Action::GetNextFragment);
    drop(client);
    cluster.a.take().expect("node A").stop().await;
    assert!(tokio::net::TcpStream::connect(a).await.is_err(), "node A is gone");

    let mut client = cluster.client(cluster.b.wpi);
    client.set_cookie(&cookie);
    let write = client.exchange(&phone.last_fragment()).await.expect("answered");
    assert_eq!(write.action, Action::WriteItems, "{write:?}");
    let written: Vec<(&str, &str)> =
        write.items.iter().flatten().map(|i| (i.name.as_str(), i.value.as_str())).collect();
    assert_eq!(written, [("sntp-addr", "ntp.example.net"), ("admin-pwd", "s3cret")]);
    let end = client.exchange(&phone.written(&write)).await.expect("answered");
    assert_eq!(end.action, Action::CleanUp, "{end:?}");
    assert_eq!(end.item("cleanup-reason"), None, "{end:?}");

    let d = device(&cluster, phone.mac).await;
    let inventory = d["inventory"].as_array().expect("an inventory");
    let value = |name: &str| inventory.iter().find(|i| i["name"] == name).map(|i| i["value"].clone());
    assert_eq!(value("device-type"), Some(json!("OpenStage 60")), "both fragments are in the inventory: {d}");
    assert_eq!(value("e164"), Some(json!("4711")));
    assert_eq!(value("user-pwd"), None, "{d}");
    cluster.stop().await;
}
