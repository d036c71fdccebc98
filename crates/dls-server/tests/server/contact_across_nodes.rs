//! Two nodes on one PostgreSQL database (`store = "postgres://…"`), each on its own manual
//! clock: a due contact-me is sent by one node, the contact gap holds across the nodes, and
//! retention runs on the node that holds the lease.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_engine::{AuditEvent, AuditKind, Change, SecurityMode, UnixTime};
use dls_message::{Action, MacAddr, Reason};
use dls_server::{Clock, ManualClock};
use dls_store::{AuditStore, MaintenanceStore, ProtocolStore};
use dls_store_postgres::PostgresStore;
use dls_test_postgres::{Database, TestPostgres};
use dls_workpoint::Phone;
use dls_workpoint::contact::ContactListener;
use serde_json::json;

use crate::common::TestServer;

const MAC: &str = "00:1A:E8:70:00:C1";

/// A safety net for what the tests wait for: never reached when they pass.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs blocking code (the synchronous PostgreSQL client) on the test's runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn database() -> Database {
    blocking(|| TestPostgres::shared().expect("PostgreSQL starts").fresh_database().expect("a database"))
}

/// A node on `database`, named `node`, on `clock`; with `first`, another node of its cluster
/// (`first`'s keys copied).
async fn node(database: &Database, node: &str, clock: &ManualClock, first: Option<&TestServer>) -> TestServer {
    let (url, name) = (database.url().to_owned(), node.to_owned());
    let tweak = move |c: &mut dls_server::Config| {
        c.store = dls_server::StoreLocation::new(url);
        c.node_name = name;
    };
    match first {
        Some(first) => TestServer::join_with_clock(first, tweak, Arc::new(clock.clone())).await,
        None => TestServer::start_with_clock(tweak, Arc::new(clock.clone())).await,
    }
}

/// Two clocks that read the same, starting at the host's time (the phone checks the
/// service's certificate against the host's clock).
fn clocks() -> (ManualClock, ManualClock) {
    let a = ManualClock::from_system();
    let b = ManualClock::new(a.now());
    (a, b)
}

fn advance(clocks: &[&ManualClock], by: Duration) {
    for c in clocks {
        c.advance(by);
    }
}

fn phone_listening_at(addr: SocketAddr) -> Phone {
    let mut p = Phone::new(MacAddr::parse(MAC).expect("mac"));
    p.set("contact-me-uri", None, &format!("http://{addr}/contact_dls.html/ContactDLS"));
    p
}

/// The time of the newest job's last contact-me, once it is `at` (on whichever node).
async fn contact_recorded_at(server: &TestServer, at: u64) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (_, jobs) = server.admin("GET", &format!("/api/v1/jobs?mac={MAC}&limit=1"), None).await;
        if jobs[0]["contact_at"] == json!(at) {
            assert_eq!(jobs[0]["contact"], "contact-me answered 204");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no contact-me recorded at {at}: {jobs}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A job queued through node A's admin API gets one contact-me, from either node; asked
/// again on both nodes within the phone's contact gap, neither sends one before it is over,
/// and then one of them does, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_one_contact_me_and_keep_the_contact_gap() {
    let database = database();
    let (clock_a, clock_b) = clocks();
    let start = clock_a.now().0;
    let a = node(&database, "node-a", &clock_a, None).await;
    let b = node(&database, "node-b", &clock_b, Some(&a)).await;
    let mut listener =
        ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::ZERO).await.expect("binds");
    let mut phone = phone_listening_at(listener.local_addr());
    let r = phone.interact(&mut a.client(), Reason::StartUp).await.expect("start-up");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp));

    let (status, v) =
        a.admin("POST", "/api/v1/jobs", Some(json!({ "target": { "mac": MAC }, "job": { "kind": "restart" } }))).await;
    assert_eq!(status, 201, "{v}");
    listener.next(LIMIT).await.expect("a contact-me");
    contact_recorded_at(&b, start).await;

    // The phone has not called: its job still waits. Both nodes are asked again.
    advance(&[&clock_a, &clock_b], Duration::from_secs(299));
    for server in [&a, &b] {
        let (status, _) = server.admin("POST", &format!("/api/v1/devices/{MAC}/contact"), None).await;
        assert_eq!(status, 202);
    }
    assert_eq!(listener.next(Duration::from_millis(500)).await, None, "none within the contact gap");
    advance(&[&clock_a, &clock_b], Duration::from_secs(1));
    listener.next(LIMIT).await.expect("the next contact-me once the gap is over");
    // Recorded at the end of the gap: not sent a second earlier by either node.
    contact_recorded_at(&a, start + 300).await;
    assert_eq!(listener.next(Duration::from_millis(500)).await, None, "one contact-me, not one per node");
    a.stop().await;
    b.stop().await;
}

/// Audit records this old are pruned (the default keeps them 400 days).
fn old_records(store: &PostgresStore, mac: MacAddr, now: u64, n: u64) {
    let at = now - 500 * 24 * 3600;
    let events: Vec<Change> = (0..n)
        .map(|i| {
            Change::Audit(AuditEvent { at: UnixTime(at + i), kind: AuditKind::TanWrong, detail: format!("old {i}") })
        })
        .collect();
    blocking(|| store.apply(mac, &events)).expect("applies");
}

fn audit_count(store: &PostgresStore) -> usize {
    blocking(|| store.audit(None, 100)).expect("audit").len()
}

fn try_lease(store: &PostgresStore, node: &str, now: UnixTime, until: UnixTime) -> bool {
    blocking(|| store.try_lease("retention", node, now, until)).expect("leases")
}

async fn wait_for_audit(store: &PostgresStore, count: usize) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while audit_count(store) != count {
        assert!(tokio::time::Instant::now() < deadline, "audit records never came to {count}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Of two nodes, the one that holds the retention lease prunes; when it stops it gives
/// the lease up, and the other prunes at its next hourly run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_the_node_that_holds_the_lease() {
    let database = database();
    let store = blocking(|| PostgresStore::open(database.url())).expect("opens");
    let (clock_a, clock_b) = clocks();
    let now = clock_a.now().0;
    let mac = MacAddr::parse(MAC).expect("mac");
    blocking(|| store.apply(mac, &[Change::Register { mode: SecurityMode::Default }])).expect("registers");
    old_records(&store, mac, now, 3);
    let a = node(&database, "node-a", &clock_a, None).await;
    let b = node(&database, "node-b", &clock_b, Some(&a)).await;

    // The first run, a minute after the start, on both nodes: one gets the lease and prunes.
    advance(&[&clock_a, &clock_b], Duration::from_secs(60));
    wait_for_audit(&store, 0).await;
    let (t, until) = (UnixTime(now + 60), UnixTime(now + 60 + 3600));
    // Renewing a lease one holds succeeds; another's, not: which node holds it.
    let a_holds = try_lease(&store, "node-a", t, until);
    let b_holds = try_lease(&store, "node-b", t, until);
    assert!(a_holds != b_holds, "exactly one node holds the lease: a {a_holds}, b {b_holds}");
    assert!(!try_lease(&store, "a third node", t, until), "held");
    let (holder, other, other_clock) = if a_holds { (a, b, clock_b) } else { (b, a, clock_a) };

    // The holder stops (and gives the lease up); the other prunes at its next run.
    holder.stop().await;
    old_records(&store, mac, now, 2);
    assert_eq!(audit_count(&store), 2);
    other_clock.advance(Duration::from_secs(3600));
    wait_for_audit(&store, 0).await;
    let later = UnixTime(now + 60 + 3600);
    assert!(!try_lease(&store, "a third node", later, later), "the other holds it");
    other.stop().await;
    blocking(|| drop(store));
}
