//! The database file: persistence, permissions, schema versions, damaged data, sharing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use dls_engine::{Change, UnixTime, WriteOutcome};
use dls_message::Item;
use dls_store::{DeviceSpec, SqliteStore, Store, StoreError};
use rusqlite::Connection;

use crate::{REGISTER, contact, key, mac, profile, record, register};

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "want Corrupt, got {r:?}");
}

fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

#[test]
fn a_reopened_store_has_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let (snapshot, details, desired) = {
        let s = SqliteStore::open(&path).expect("opens");
        s.put_profile(&profile("sales", None, &[("sntp-addr", None, "ntp")])).expect("puts");
        s.add_device(mac(2), &DeviceSpec { profiles: vec!["sales".into()], overrides: vec![Item::new("e164", "1")] })
            .expect("adds");
        s.apply(
            mac(1),
            &[
                REGISTER,
                contact(100),
                Change::Nonce("n1".into()),
                Change::ReplaceInventory { items: vec![Item::new("device-type", "OpenStage 60")], at: UnixTime(100) },
                Change::Written(vec![(key("pwd", None), record(7, WriteOutcome::Accepted))]),
                Change::DeploymentStatus(vec![Item::new("file-deployment-status", "ok")]),
                Change::PhoneCleanUp { reason: Some("done".into()) },
            ],
        )
        .expect("applies");
        (s.load_device(mac(1)).expect("loads"), s.device(mac(2)).expect("reads"), s.desired(mac(2)).expect("resolves"))
    };
    // Full sync opens the same file.
    let s = SqliteStore::open_full_sync(&path).expect("reopens");
    assert_eq!(s.load_device(mac(1)).expect("loads"), snapshot);
    assert_eq!(s.device(mac(2)).expect("reads"), details);
    assert_eq!(s.desired(mac(2)).expect("resolves"), desired);
    assert_eq!(s.list_devices(&Default::default()).expect("lists").len(), 2);
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.last_phone_cleanup_reason.as_deref(), Some("done"));
    assert_eq!(d.last_deployment_status, vec![Item::new("file-deployment-status", "ok")]);
    drop(s);
    // And the file is what was asked for.
    let c = raw(&path);
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
    assert_eq!(mode, "wal");
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("pragma");
    assert_eq!(version, SqliteStore::schema_version());
}

#[test]
fn the_files_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let s = SqliteStore::open(&path).expect("opens");
    register(&s, mac(1), 1);
    for file in ["dls.db", "dls.db-wal", "dls.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(file)).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
    }
}

#[test]
fn bad_paths_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = SqliteStore::open(dir.path()).expect_err("a directory");
    assert!(matches!(err, StoreError::Invalid(ref m) if m.contains("directory")), "{err:?}");
    let err = SqliteStore::open(&dir.path().join("missing/dls.db")).expect_err("no parent");
    assert!(matches!(err, StoreError::Io(_)), "{err:?}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    drop(SqliteStore::open(&path).expect("opens"));
    let newer = SqliteStore::schema_version() + 1;
    raw(&path).pragma_update(None, "user_version", newer).expect("sets");
    assert_corrupt(SqliteStore::open(&path));
    // Untouched.
    let version: i64 = raw(&path).query_row("PRAGMA user_version", [], |r| r.get(0)).expect("pragma");
    assert_eq!(version, newer);
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Some other application's SQLite database.
    let other = dir.path().join("other.db");
    raw(&other).execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").expect("creates");
    assert_corrupt(SqliteStore::open(&other));
    let journal: String = raw(&other).query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
    assert_eq!(journal, "delete", "left as it was");
    // Another application's id.
    let tagged = dir.path().join("tagged.db");
    raw(&tagged).pragma_update(None, "application_id", 1234).expect("sets");
    assert_corrupt(SqliteStore::open(&tagged));
    // Not SQLite at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).expect("writes");
    assert_corrupt(SqliteStore::open(&junk));
    // An empty file is a new database.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("writes");
    SqliteStore::open(&empty).expect("opens");
}

#[test]
fn damaged_rows_are_corrupt_not_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let s = SqliteStore::open(&path).expect("opens");
    register(&s, mac(1), 1);
    let damage = |sql: &str| raw(&path).execute_batch(sql).expect("damages");
    let healthy = |s: &SqliteStore| {
        s.load_device(mac(1)).expect("loads");
        s.device(mac(1)).expect("reads");
    };

    damage("INSERT INTO written VALUES ('0001E325EA01', 'a', -1, x'0102', 'accepted')");
    assert_corrupt(s.load_device(mac(1)));
    assert_corrupt(s.device(mac(1)));
    damage("DELETE FROM written; INSERT INTO written VALUES ('0001E325EA01', 'a', -1, zeroblob(32), 'maybe')");
    assert_corrupt(s.load_device(mac(1)));
    damage("DELETE FROM written");
    healthy(&s);

    damage("INSERT INTO inventory (mac, name, idx, value) VALUES ('0001E325EA01', 'a', -7, 'v')");
    assert_corrupt(s.load_device(mac(1)));
    damage("UPDATE inventory SET idx = 4294967296");
    assert_corrupt(s.load_device(mac(1)));
    damage("UPDATE inventory SET idx = 1, value = x'ff'");
    assert_corrupt(s.load_device(mac(1)));
    damage("DELETE FROM inventory");
    healthy(&s);

    damage("UPDATE devices SET inventory_at = -5");
    assert_corrupt(s.load_device(mac(1)));
    damage("UPDATE devices SET inventory_at = NULL, last_deployment_status = '{not json'");
    assert_corrupt(s.device(mac(1)));
    damage("UPDATE devices SET last_deployment_status = NULL");
    healthy(&s);

    damage("INSERT INTO devices (mac, registered_at) VALUES ('not a mac', 0)");
    assert_corrupt(s.list_devices(&Default::default()));
    damage("DELETE FROM devices WHERE mac = 'not a mac'");

    damage("INSERT INTO profiles VALUES ('bad', '{\"unknown-field\": 1}')");
    assert_corrupt(s.profiles());
    assert_corrupt(s.desired(mac(1)));
    damage("DELETE FROM profiles");
    s.desired(mac(1)).expect("resolves");
}

#[test]
fn changes_by_another_connection_are_seen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let server = SqliteStore::open(&path).expect("opens");
    let cli = SqliteStore::open(&path).expect("opens again");
    cli.put_profile(&profile("global", None, &[("a", None, "1")])).expect("puts");
    assert_eq!(server.desired(mac(1)).expect("resolves").items, vec![Item::new("a", "1")]);
    // The server's profile cache notices the other connection's commit.
    cli.put_profile(&profile("global", None, &[("a", None, "2")])).expect("puts");
    assert_eq!(server.desired(mac(1)).expect("resolves").items, vec![Item::new("a", "2")]);
    assert!(cli.delete_profile("global").expect("deletes"));
    assert!(server.desired(mac(1)).expect("resolves").items.is_empty());
    assert!(server.profiles().expect("lists").is_empty());
}

#[test]
fn shared_between_threads() {
    fn is_store<S: Store>(_: &S) {}
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Arc::new(SqliteStore::open(&dir.path().join("dls.db")).expect("opens"));
    is_store(&*s);
    let threads: Vec<_> = (1..=4_u8)
        .map(|n| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let mut batch = vec![REGISTER, contact(i), Change::Nonce(format!("n{i}"))];
                    batch.push(Change::MergeInventory(vec![Item::indexed("k", u32::try_from(i).expect("small"), "v")]));
                    s.apply(mac(n), &batch).expect("applies");
                    s.desired(mac(n)).expect("resolves");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ends");
    }
    for n in 1..=4 {
        let snap = s.load_device(mac(n)).expect("loads");
        assert_eq!(snap.recent_nonces.len(), 25);
        assert_eq!(snap.inventory.len(), 25);
    }
}
