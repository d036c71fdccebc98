//! Unit tests of what only this crate can see: statement caching, query plans.
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use dls_engine::{Change, ItemKey, Profile, SecurityMode, UnixTime, WriteOutcome, WrittenRecord};
use dls_message::{Item, MacAddr, Reason};
use rusqlite::{Connection, StatementStatus};

use dls_store::{AuditStore, DeviceFilter, DeviceStore, MaintenanceStore, ProtocolStore};
use rusqlite::config::DbConfig;

use crate::SqliteStore;

/// Every statement [`Cached::cached`] was asked for.
static USED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

pub(crate) fn used(sql: &str) {
    let mut used = USED.lock().unwrap_or_else(PoisonError::into_inner);
    if !used.contains(sql) {
        used.insert(sql.to_owned());
    }
}

/// How often each statement used so far was compiled again on `conn`.
fn reprepared(conn: &Connection) -> Vec<(i32, String)> {
    let used = USED.lock().unwrap_or_else(PoisonError::into_inner).clone();
    used.into_iter()
        .filter_map(|sql| {
            // A statement this connection never ran is prepared afresh here: 0.
            let count = conn.prepare_cached(&sql).expect("prepares").get_status(StatementStatus::RePrepare);
            (count > 0).then_some((count, sql))
        })
        .collect()
}

fn mac(n: u8) -> MacAddr {
    MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, n])
}

/// A phone's first start-up and a later one, as the service stores them, and the
/// admin API's reads.
fn exercise(s: &SqliteStore, n: u8) {
    let mac = mac(n);
    let message = |changes: &[Change]| {
        s.load_device(mac).expect("loads");
        s.desired(mac).expect("resolves");
        s.apply(mac, changes).expect("applies");
    };
    let contact = Change::Contact { at: UnixTime(100), reason: Reason::StartUp };
    let items: Vec<Item> = (0..40).map(|i| Item::indexed("function-key-def", i, "1")).collect();
    let written = vec![(
        ItemKey { name: "sntp-addr".into(), index: None },
        WrittenRecord { fingerprint: [1; 32], outcome: WriteOutcome::Accepted },
    )];
    for round in 0..3 {
        message(&[
            Change::Register { mode: SecurityMode::Default },
            contact.clone(),
            Change::Nonce(format!("{n}-{round}-1")),
            Change::MergeInventory(vec![Item::new("device-type", "OpenStage 60")]),
        ]);
        message(&[
            Change::Nonce(format!("{n}-{round}-2")),
            Change::ReplaceInventory { items: items.clone(), at: UnixTime(100) },
        ]);
        message(&[
            Change::Nonce(format!("{n}-{round}-3")),
            Change::Written(written.clone()),
            Change::MergeInventory(vec![Item::new("sntp-addr", "ntp")]),
            Change::PhoneCleanUp { reason: None },
        ]);
        s.list_devices(&DeviceFilter { limit: Some(5), ..DeviceFilter::default() }).expect("lists");
        s.device(mac).expect("reads");
        s.audit(Some(mac), 10).expect("reads");
        s.pin(mac).expect("reads");
        s.prune(Some(UnixTime(50)), Some(UnixTime(50))).expect("prunes");
    }
}

/// The deletes of `prune` find their rows by the indexes of schema 7, never by reading
/// the whole table.
#[test]
fn pruning_finds_its_rows_by_index() {
    let s = SqliteStore::open_in_memory().expect("opens");
    let conn = s.writer().expect("writer");
    for (sql, index) in [(crate::retention::PRUNE_AUDIT, "audit_by_time"), (crate::jobs::PRUNE, "jobs_over_by_time")] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepares")
            .query_map(rusqlite::params![50, 1000], |r| r.get(3))
            .expect("runs")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert!(plan.iter().any(|step| step.contains(index)), "{sql}: {plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN")), "{sql}: {plan:?}");
    }
}

/// The cause of the re-preparing that `SQLITE_DBCONFIG_ENABLE_QPSG` prevents, as of
/// SQLite 3.54: the planner marks `mac = ?1` in a statement like this one as a value
/// its plan might depend on, and clearing the bindings (which the statement cache does
/// whenever a statement goes back to it) then expires the statement.
#[test]
fn without_the_planner_guarantee_cached_statements_are_compiled_again() {
    let conn = Connection::open_in_memory().expect("opens");
    conn.execute_batch(
        "CREATE TABLE nonces (seq INTEGER PRIMARY KEY, mac TEXT NOT NULL, nonce TEXT NOT NULL, UNIQUE (mac, nonce));
         INSERT INTO nonces (mac, nonce) VALUES ('A', 'n');",
    )
    .expect("creates");
    let sql = "SELECT nonce FROM nonces WHERE mac = ?1 ORDER BY seq";
    let run = |conn: &Connection| {
        for _ in 0..3 {
            let mut stmt = conn.prepare_cached(sql).expect("prepares");
            stmt.query_map(["A"], |r| r.get::<_, String>(0)).expect("runs").for_each(drop);
        }
        conn.prepare_cached(sql).expect("prepares").get_status(StatementStatus::RePrepare)
    };
    assert_eq!(run(&conn), 2, "compiled again at each use after the first");
    conn.flush_prepared_statement_cache();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).expect("configures");
    assert_eq!(run(&conn), 0);
}

#[test]
fn cached_statements_are_never_compiled_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SqliteStore::open(&dir.path().join("dls.db")).expect("opens");
    let global = Profile {
        name: "global".into(),
        items: vec![Item::new("sntp-addr", "ntp"), Item::indexed("key-label-unicode", 1, "Team")],
        ..Profile::default()
    };
    s.put_profile(&global).expect("puts");
    for n in 1..=4 {
        exercise(&s, n);
    }
    assert_eq!(s.readers.size, crate::store::READERS);
    assert!(!USED.lock().unwrap_or_else(PoisonError::into_inner).is_empty());
    assert_eq!(reprepared(&s.writer().expect("writer")), [], "the writer");
    // Every reader, at once.
    let readers: Vec<_> = (0..s.readers.size).map(|_| s.readers.take().expect("a reader")).collect();
    for reader in &readers {
        assert_eq!(reprepared(reader), [], "a reader");
    }
    drop(readers);

    // In memory: one connection for everything.
    let s = SqliteStore::open_in_memory().expect("opens");
    s.put_profile(&global).expect("puts");
    exercise(&s, 1);
    exercise(&s, 1);
    assert_eq!(reprepared(&s.writer().expect("writer")), []);
}
