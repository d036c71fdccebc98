//! The database file: persistence, permissions, schema versions, damaged data, sharing
//! with another connection.

use std::os::unix::fs::PermissionsExt;

use dls_engine::{Change, UnixTime, WriteOutcome};
use dls_message::Item;
use dls_store::traits::*;
use dls_store::{DeviceSpec, StoreError};
use dls_store_sqlite::SqliteStore;

use crate::conformance::{AT, REGISTER, contact, key, mac, profile, record, register};
use crate::{raw, user_version};

pub(crate) fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "want Corrupt, got {r:?}");
}

#[test]
fn a_reopened_store_has_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let (snapshot, details, desired) = {
        let s = SqliteStore::open(&path).expect("opens");
        s.put_profile(&profile("sales", None, &[("sntp-addr", None, "ntp")])).expect("puts");
        s.add_device(
            mac(2),
            &DeviceSpec {
                profiles: vec!["sales".into()],
                overrides: vec![Item::new("e164", "1")],
                ..Default::default()
            },
            AT,
        )
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
    let version = user_version(&c);
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
    let version = user_version(&raw(&path));
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

    // A stored inventory: format 1, 1 item: "a" (1 byte), no index, "v", no type.
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("a", "v")])]).expect("applies");
    let stored: Vec<u8> = raw(&path).query_row("SELECT items FROM inventories", [], |r| r.get(0)).expect("reads");
    assert_eq!(stored, [1, 1, 1, b'a', 0, 1, b'v', 0]);
    for bad in [
        "x''",                         // empty
        "x'0201016100017600'",         // unknown format
        "x'010101610001760000'",       // a byte too many
        "x'01010161000176'",           // cut short
        "x'0102016100017600'",         // 2 items, 1 there
        "x'01ffffffffffffffffff01'",   // a count far beyond the bytes
        "x'010101618180808010017600'", // index 2^32: beyond u32
        "x'01010161000260ff00'",       // a value that is not UTF-8
        "x'0101016100017602ff'",       // a type that is not UTF-8
        "'text'",                      // not a blob
    ] {
        damage(&format!("UPDATE inventories SET items = {bad}"));
        assert_corrupt(s.load_device(mac(1)));
        assert_corrupt(s.device(mac(1)));
        // A merge does not write over what it cannot read.
        assert_corrupt(s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("b", "1")])]));
    }
    damage("UPDATE inventories SET items = x'0101016100017600'");
    assert_eq!(s.load_device(mac(1)).expect("loads").inventory, [Item::new("a", "v")]);
    // A full inventory replaces a damaged one.
    damage("UPDATE inventories SET items = x'00'");
    s.apply(mac(1), &[Change::ReplaceInventory { items: vec![Item::new("b", "2")], at: UnixTime(5) }])
        .expect("replaces");
    assert_eq!(s.load_device(mac(1)).expect("loads").inventory, [Item::new("b", "2")]);
    damage("DELETE FROM inventories");
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

/// A deleted device's inventory is overwritten in the file, not only unlinked:
/// `secure_delete=FAST` does not overwrite the pages a deletion frees (it did not for the
/// rows of schema 3 either), so the inventory is zeroed in place first.
#[test]
fn a_deleted_devices_inventory_is_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let marker = "marker-3f9a1c";
    {
        let s = SqliteStore::open(&path).expect("opens");
        let items: Vec<Item> = (0..200).map(|i| Item::indexed("item", i, format!("{marker} {i:04}"))).collect();
        s.apply(mac(1), &[REGISTER, Change::ReplaceInventory { items, at: UnixTime(1) }]).expect("applies");
        register(&s, mac(2), 1);
        assert!(s.delete_device(mac(1)).expect("deletes"));
    }
    // Closed: everything is in the database file.
    assert!(!dir.path().join("dls.db-wal").exists());
    let file = std::fs::read(&path).expect("reads");
    assert!(!file.windows(marker.len()).any(|w| w == marker.as_bytes()), "the inventory is still in the file");
}

#[test]
fn a_merge_that_changes_nothing_does_not_rewrite_the_inventory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let s = SqliteStore::open(&path).expect("opens");
    register(&s, mac(1), 1);
    let items = vec![Item::new("a", "1"), Item::indexed("k", 2, "x"), Item::new("b", "2")];
    s.apply(mac(1), &[Change::ReplaceInventory { items, at: UnixTime(5) }]).expect("applies");
    raw(&path)
        .execute_batch(
            "CREATE TABLE inventory_writes (n INTEGER);
             CREATE TRIGGER count_inventory_writes AFTER UPDATE ON inventories
             BEGIN INSERT INTO inventory_writes VALUES (1); END;",
        )
        .expect("trigger");
    let writes =
        || -> i64 { raw(&path).query_row("SELECT count(*) FROM inventory_writes", [], |r| r.get(0)).expect("count") };
    // What a phone reports at every start-up: the same values.
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("b", "2"), Item::indexed("k", 2, "x")])]).expect("applies");
    assert_eq!(writes(), 0);
    // A value that changed, an item that is new, or a type that changed: written.
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("b", "3")])]).expect("applies");
    assert_eq!(writes(), 1);
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("c", "1")])]).expect("applies");
    assert_eq!(writes(), 2);
    let typed = Item { item_type: Some("t".into()), ..Item::new("a", "1") };
    s.apply(mac(1), &[Change::MergeInventory(vec![typed.clone()])]).expect("applies");
    assert_eq!(writes(), 3);
    let snap = s.load_device(mac(1)).expect("loads");
    assert_eq!(snap.inventory[0], typed);
    assert_eq!(snap.inventory.iter().map(|i| i.value.as_str()).collect::<Vec<_>>(), ["1", "x", "3", "1"]);
}

/// `run_message` excludes the messages of a device handled by another store on the same
/// file (another process, the CLI), not only those of its own: it holds SQLite's one
/// writer from the load to the commit.
#[test]
fn a_message_excludes_another_connections_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let stores = [SqliteStore::open(&path).expect("opens"), SqliteStore::open(&path).expect("opens again")];
    register(&stores[0], mac(1), 1);
    std::thread::scope(|scope| {
        for (t, s) in stores.iter().enumerate() {
            scope.spawn(move || {
                for round in 0..20 {
                    with_device(s, mac(1), |device, _| -> Result<_, StoreError> {
                        let count: usize = device
                            .inventory
                            .iter()
                            .find(|i| i.name == "counter")
                            .map_or(0, |i| i.value.parse().expect("a number"));
                        std::thread::sleep(std::time::Duration::from_micros(300));
                        let counter = Item::new("counter", (count + 1).to_string());
                        Ok((vec![Change::Nonce(format!("{t}-{round}")), Change::MergeInventory(vec![counter])], ()))
                    })
                    .expect("runs");
                }
            });
        }
    });
    let device = stores[1].load_device(mac(1)).expect("loads");
    assert_eq!(device.inventory, [Item::new("counter", "40")]);
}
