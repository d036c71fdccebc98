//! What only PostgreSQL has: several nodes (several `PostgresStore`s, as in several
//! processes) on one database, its schema's versions, its pool against a server that
//! restarts.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use dls_engine::{Change, JobKind, UnixTime};
use dls_message::Item;
use dls_store::traits::*;
use dls_store::{NewFile, NewJob, StoreError};
use dls_store_postgres::{PoolOptions, PostgresStore};

use crate::conformance::{REGISTER, contact, mac, profile};
use crate::server::{self, Database, Server};

fn open(database: &Database) -> PostgresStore {
    PostgresStore::open(&database.url).expect("opens")
}

fn counter(items: &[Item]) -> usize {
    items.iter().find(|i| i.name == "counter").map_or(0, |i| i.value.parse().expect("a number"))
}

/// Messages of one device on two nodes, from several threads each, the device unknown at
/// first: each reads a counter and writes it plus one (registering the device if it is
/// unknown). Were two of them to interleave, an increment would be lost — or the device
/// registered twice.
#[test]
fn messages_of_one_device_on_two_nodes_never_interleave() {
    const THREADS_PER_NODE: usize = 3;
    const ROUNDS: usize = 20;
    let database = server::shared().database();
    // As the service holds a store.
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(open(&database)), Arc::new(open(&database))];
    let threads: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(n, node)| (0..THREADS_PER_NODE).map(move |t| (n, t, Arc::clone(node))))
        .map(|(n, t, node)| {
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    with_device(&*node, mac(1), |device, _| -> Result<_, StoreError> {
                        let count = counter(&device.inventory);
                        std::thread::sleep(Duration::from_micros(300));
                        let mut changes = Vec::new();
                        if !device.known {
                            changes.extend([REGISTER, contact(1)]);
                        }
                        changes.push(Change::Nonce(format!("{n}-{t}-{round}")));
                        changes.push(Change::MergeInventory(vec![Item::new("counter", (count + 1).to_string())]));
                        Ok((changes, ()))
                    })
                    .expect("runs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ends");
    }
    let total = 2 * THREADS_PER_NODE * ROUNDS;
    for node in &nodes {
        let device = node.load_device(mac(1)).expect("loads");
        assert_eq!(counter(&device.inventory), total);
        assert_eq!(device.recent_nonces.len(), 64);
    }
}

/// A message whose transaction the database aborts in a deadlock is run again — its
/// closure called again, with a fresh load — and commits.
#[test]
fn a_message_caught_in_a_deadlock_is_run_again() {
    let database = server::shared().database();
    let s = Arc::new(open(&database));
    s.apply(mac(1), &[REGISTER, contact(1)]).expect("registers");
    let mut other = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    // This session looks for deadlocks late: the store's session finds this one first.
    other.batch_execute("SET deadlock_timeout = '30s'").expect("sets");
    let mut tx = other.transaction().expect("begins");
    tx.execute("UPDATE devices SET last_reason = 'held' WHERE mac = $1", &[&mac(1).to_string()])
        .expect("locks the row");
    let (called, seen) = std::sync::mpsc::channel();
    let store = Arc::clone(&s);
    let message = std::thread::spawn(move || {
        let mut calls = 0;
        let result = store.run_message(mac(1), &mut |_, _| {
            calls += 1;
            let _ = called.send(());
            Some(vec![contact(5)])
        });
        result.map(|()| calls)
    });
    seen.recv().expect("the message loads");
    // The message, holding the device's lock, now waits for the row; this session waiting
    // for the device's lock closes the circle.
    std::thread::sleep(Duration::from_millis(300));
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PostgresStore::device_lock_key(mac(1))])
        .expect("gets the lock when the message's transaction is aborted");
    tx.commit().expect("commits");
    assert_eq!(message.join().expect("thread ends").expect("the message commits"), 2);
    let details = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!((details.summary.last_contact, details.last_reason.as_deref()), (Some(UnixTime(5)), Some("start-up")));
}

/// Two nodes, three threads each, claiming from one schedule at once (small batches, the
/// same time): every due phone is claimed exactly once, and none twice while the claims
/// stand.
#[test]
fn each_due_phone_is_claimed_by_exactly_one_node() {
    const PHONES: u8 = 200;
    const THREADS_PER_NODE: usize = 3;
    let database = server::shared().database();
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(open(&database)), Arc::new(open(&database))];
    let now = UnixTime(1_700_000_000);
    for n in 0..PHONES {
        nodes[usize::from(n % 2)].contact_want(mac(n), now, false).expect("wants");
    }
    let start = Arc::new(Barrier::new(2 * THREADS_PER_NODE));
    let threads: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(n, node)| (0..THREADS_PER_NODE).map(move |t| (format!("node-{n}-{t}"), Arc::clone(node))))
        .map(|(name, node)| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                loop {
                    let claimed = node.contact_claim_due(&name, now, 7, 60).expect("claims");
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|c| c.mac));
                }
            })
        })
        .collect();
    let mut all: Vec<_> = threads.into_iter().flat_map(|t| t.join().expect("thread ends")).collect();
    let claims = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((claims, all.len()), (usize::from(PHONES), usize::from(PHONES)), "each phone exactly once");
    assert!(nodes[1].contact_claim_due("late", now, 1000, 60).expect("claims").is_empty());
}

fn new_file(name: &str) -> NewFile {
    NewFile {
        name: name.into(),
        file_type: "LOGO".into(),
        size: 1,
        sha256: "ab".repeat(32),
        device_types: Vec::new(),
        software_type: None,
        software_version: None,
    }
}

/// Ids come from sequences, which no node, delete or rolled-back insert hands out twice.
#[test]
fn ids_are_never_reused_across_nodes() {
    let database = server::shared().database();
    let (a, b) = (open(&database), open(&database));
    let first = a.add_file(&new_file("a.png"), UnixTime(1)).expect("adds").id;
    assert!(b.delete_file(first, UnixTime(2)).expect("deletes").is_some());
    let second = b.add_file(&new_file("b.png"), UnixTime(3)).expect("adds").id;
    assert!(second > first);
    // An insert that fails (the name is taken) is rolled back; its id is not given again.
    assert!(matches!(a.add_file(&new_file("b.png"), UnixTime(4)), Err(StoreError::Conflict { .. })));
    b.delete_file(second, UnixTime(5)).expect("deletes");
    let third = a.add_file(&new_file("c.png"), UnixTime(6)).expect("adds").id;
    assert!(third > second + 1, "file {third} after {second} and a failed insert");

    a.apply(mac(1), &[REGISTER, contact(1)]).expect("registers");
    let restart = [NewJob { mac: mac(1), kind: JobKind::Restart }];
    let job = a.add_jobs(&restart, UnixTime(10)).expect("adds")[0].id;
    b.cancel_job(job, UnixTime(11)).expect("cancels");
    assert_eq!(b.prune(None, Some(UnixTime(100))).expect("prunes").jobs, 1);
    let next = b.add_jobs(&restart, UnixTime(12)).expect("adds")[0].id;
    assert!(next > job);
    assert!(a.delete_device(mac(1)).expect("deletes"));
    a.apply(mac(1), &[REGISTER, contact(2)]).expect("registers");
    assert!(a.add_jobs(&restart, UnixTime(13)).expect("adds")[0].id > next);
}

/// A profile changed on one node is seen by another at its next read, though it caches
/// the profiles.
#[test]
fn a_profile_change_on_one_node_is_seen_by_the_other() {
    let database = server::shared().database();
    let (a, b) = (open(&database), open(&database));
    a.put_profile(&profile("global", None, &[("v", None, "1")])).expect("puts");
    assert_eq!(b.desired(mac(1)).expect("resolves").items, [Item::new("v", "1")]);
    a.put_profile(&profile("global", None, &[("v", None, "2")])).expect("puts");
    assert_eq!(b.desired(mac(1)).expect("resolves").items, [Item::new("v", "2")]);
    assert_eq!(b.profile("global").expect("reads").expect("exists").items, [Item::new("v", "2")]);
    assert!(a.delete_profile("global").expect("deletes"));
    assert!(b.desired(mac(1)).expect("resolves").items.is_empty());
    assert!(b.profiles().expect("lists").is_empty());
}

fn schema_version(database: &Database) -> i64 {
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    c.query_one("SELECT version FROM schema_version", &[]).expect("reads").get(0)
}

/// The tables of a database, by name.
fn tables(database: &Database) -> Vec<String> {
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    c.query("SELECT tablename::TEXT FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
        .expect("lists")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_database_of_a_newer_version_is_refused_and_left_untouched() {
    let database = server::shared().database();
    open(&database).apply(mac(1), &[REGISTER, contact(1)]).expect("registers");
    let newer = PostgresStore::schema_version() + 1;
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    c.execute("UPDATE schema_version SET version = $1", &[&newer]).expect("updates");
    let before = tables(&database);
    match PostgresStore::open(&database.url) {
        Err(StoreError::Corrupt(msg)) => {
            assert!(msg.contains("newer") && !msg.contains('\n'), "{msg:?}");
        }
        other => panic!("want Corrupt, got {other:?}"),
    }
    assert_eq!((schema_version(&database), tables(&database)), (newer, before));
}

#[test]
fn a_database_of_another_application_is_refused_and_left_untouched() {
    let database = server::shared().database();
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    c.batch_execute("CREATE TABLE devices (serial INTEGER)").expect("creates");
    match PostgresStore::open(&database.url) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("devices") && !msg.contains('\n'), "{msg:?}"),
        other => panic!("want Corrupt, got {other:?}"),
    }
    assert_eq!(tables(&database), ["devices"]);
}

/// Nodes starting at once on a fresh database: one migrates, the others find it done.
#[test]
fn nodes_starting_at_once_migrate_once() {
    let database = Arc::new(server::shared().database());
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (database, barrier) = (Arc::clone(&database), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::open(&database.url).map(drop)
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ends").expect("opens");
    }
    assert_eq!(schema_version(&database), PostgresStore::schema_version());
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    let rows: i64 = c.query_one("SELECT count(*) FROM schema_version", &[]).expect("counts").get(0);
    assert_eq!(rows, 1);
}

#[test]
fn a_database_that_does_not_exist_is_a_clear_error() {
    let url = server::shared().url("no_such_database");
    match PostgresStore::open(&url) {
        Err(StoreError::Invalid(msg)) => {
            assert!(
                msg.contains("no_such_database") && msg.contains("does not exist") && !msg.contains('\n'),
                "{msg:?}"
            );
        }
        other => panic!("want Invalid, got {other:?}"),
    }
}

/// The server restarts under a store: a call while it is down fails, at once and saying
/// so; the calls after it is back succeed, on new connections.
#[test]
fn the_pool_recovers_after_the_server_restarts() {
    let server = Server::start();
    let database = server.database();
    let mut options = PoolOptions::default();
    options.acquire_timeout = Duration::from_secs(1);
    let s = PostgresStore::open_with(&database.url, &options).expect("opens");
    s.apply(mac(1), &[REGISTER, contact(1)]).expect("registers");
    assert!(s.load_device(mac(1)).expect("loads").known);

    server.stop();
    match s.load_device(mac(1)) {
        Err(StoreError::Unavailable(msg)) => assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}"),
        other => panic!("want Unavailable, got {other:?}"),
    }
    assert!(matches!(s.apply(mac(1), &[contact(2)]), Err(StoreError::Unavailable(_))));

    server.start_again();
    assert!(s.load_device(mac(1)).expect("loads after the restart").known);
    s.apply(mac(1), &[contact(3)]).expect("applies after the restart");
    let details = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(details.summary.last_contact, Some(UnixTime(3)));
}

/// Text PostgreSQL cannot store (a NUL character, which SQLite takes) is refused as
/// invalid, and nothing of the batch is kept.
#[test]
fn text_postgresql_cannot_store_is_invalid() {
    let database = server::shared().database();
    let s = open(&database);
    let r = s.apply(mac(1), &[REGISTER, contact(1), Change::Nonce("n\0".into())]);
    assert!(matches!(r, Err(StoreError::Invalid(ref m)) if !m.contains('\n')), "{r:?}");
    assert!(!s.load_device(mac(1)).expect("loads").known);
}

/// Rows damaged behind the store's back are corrupt, never a panic.
#[test]
fn damaged_rows_are_corrupt() {
    let database = server::shared().database();
    let s = open(&database);
    s.apply(mac(1), &[REGISTER, contact(1), Change::MergeInventory(vec![Item::new("a", "1")])]).expect("applies");
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    for damage in [
        "UPDATE inventories SET items = '[{\"nom\": 1}]'",
        "UPDATE devices SET security_mode = 'fortress'",
        "UPDATE devices SET registered_at = -5",
        "UPDATE devices SET tan_failures = 99999999999",
    ] {
        let mut tx = c.transaction().expect("begins");
        tx.batch_execute(damage).expect("damages");
        tx.commit().expect("commits");
        let loaded = s.load_device(mac(1)).and_then(|_| s.device(mac(1)));
        assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{damage}: {loaded:?}");
        drop(s.delete_device(mac(1)));
        s.apply(mac(1), &[REGISTER, contact(1), Change::MergeInventory(vec![Item::new("a", "1")])]).expect("applies");
    }
    c.batch_execute("UPDATE profiles_version SET version = version + 1; INSERT INTO profiles VALUES ('p', '{')")
        .expect("damages");
    assert!(matches!(s.desired(mac(1)), Err(StoreError::Corrupt(_))));
}

/// The pool's connections write compressed values with lz4 (where the server has it): a
/// large inventory is stored so.
#[test]
fn large_values_are_compressed_with_lz4() {
    let database = server::shared().database();
    let s = open(&database);
    let items: Vec<Item> = (0..400).map(|k| Item::indexed("key-label-unicode", k, format!("Key {k}"))).collect();
    s.apply(mac(1), &[REGISTER, contact(1), Change::MergeInventory(items)]).expect("applies");
    let mut c = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    let lz4 = c.batch_execute("SET default_toast_compression = lz4").is_ok();
    let row = c.query_one("SELECT pg_column_compression(items) FROM inventories", &[]).expect("reads");
    let method: Option<String> = row.get(0);
    assert_eq!(method.as_deref(), Some(if lz4 { "lz4" } else { "pglz" }));
}

/// A message whose connection is lost before its commit (its backend terminated, as a
/// restarting server does) committed nothing: it runs again, its closure called again on
/// a fresh load, on another connection, and commits once.
#[test]
fn a_message_whose_connection_is_lost_runs_again_and_commits_once() {
    let database = server::shared().database();
    let s = open(&database);
    s.apply(mac(1), &[REGISTER, contact(1), Change::MergeInventory(vec![Item::new("counter", "0")])])
        .expect("registers");
    let mut admin = postgres::Client::connect(&database.url, postgres::NoTls).expect("connects");
    let mut calls = 0;
    s.run_message(mac(1), &mut |device, _| {
        calls += 1;
        if calls == 1 {
            // Every connection of the store, this message's included; each waited for
            // until its process has ended (5 s at most).
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = 'dls'",
                    &[],
                )
                .expect("terminates");
        }
        let next = counter(&device.inventory) + 1;
        Some(vec![
            Change::Nonce(format!("n{next}")),
            Change::MergeInventory(vec![Item::new("counter", next.to_string())]),
        ])
    })
    .expect("runs again and commits");
    assert_eq!(calls, 2);
    let device = s.load_device(mac(1)).expect("loads");
    assert_eq!(counter(&device.inventory), 1, "committed once");
    assert_eq!(device.recent_nonces, ["n1"]);
}
