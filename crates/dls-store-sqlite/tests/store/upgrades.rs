//! Schema upgrades: databases as older versions of dls left them.

use dls_engine::{AuditKind, BootstrapState, Change, JobState, Security, SecurityMode, UnixTime};
use dls_message::{Item, MacAddr};
use dls_store::traits::*;
use dls_store::{DeviceFilter, DeviceSpec, JobFilter, SecuritySummary, SecurityUpdate, StoreError};

use crate::conformance::credentials::{SECRET, applying, global, listed, of, pair, set};
use crate::conformance::retention::audit_times;
use crate::conformance::security::{OTHER_PIN, PIN, assert_invalid, issue, kinds, new_pin, sealed, security};
use crate::conformance::{AT, REGISTER, contact, profile, t, triples};
use dls_store_sqlite::SqliteStore;

use crate::conformance::{mac, register};
use crate::file::assert_corrupt;
use crate::on_disk::revocations;
use crate::{raw, user_version};

/// Versions before schema 10 stored what phones reported, passwords included: the upgrade
/// removes them from inventories and job answers, and keeps the rest.
#[test]
fn the_upgrade_to_schema_10_removes_reported_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let m = mac(8);
    {
        let s = SqliteStore::open(&path).expect("opens");
        register(&s, m, 1);
        // As an earlier engine asked: the phone's report, its passwords included.
        let reported = vec![
            Item::new("sntp-addr", "ntp.example.net"),
            Item::new("user-pwd", "hunter2-user"),
            Item::new("admin-pwd-unicode", "hunter2-admin"),
            Item::indexed("ldap-pwd", 1, "hunter2-ldap"),
        ];
        s.apply(m, &[Change::MergeInventory(reported)]).expect("applies");
    }
    let c = raw(&path);
    c.execute_batch(
        "INSERT INTO jobs (mac, kind, state, created_at, updated_at, items)
             VALUES ('0001E325EA08', '{\"kind\": \"restart\"}', 'done', 5, 10,
                     '[{\"name\":\"sip-pwd\",\"value\":\"hunter2-sip\"},{\"name\":\"e164\",\"value\":\"100\"}]');
         PRAGMA user_version = 9;",
    )
    .expect("goes back to schema 9");
    drop(c);
    let s = SqliteStore::open(&path).expect("upgrades");
    assert_eq!(user_version(&raw(&path)), SqliteStore::schema_version());
    let d = s.device(m).expect("reads").expect("exists");
    assert_eq!(triples(&d.inventory), [t("sntp-addr", None, "ntp.example.net")]);
    drop(s);
    let bytes = std::fs::read(&path).expect("reads the file");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("hunter2"), "a reported secret is still in the database file");
    assert!(text.contains("ntp.example.net"));
}

/// A schema 6 database gets the indexes of schema 7, and its old rows are pruned.
#[test]
fn a_schema_6_database_is_upgraded_and_pruned() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 6).expect("creates");
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at) VALUES ('0001E325EA01', 1);
             INSERT INTO audit (at, mac, kind, detail) VALUES (10, '0001E325EA01', 'tan-wrong', ''),
                                                              (90, '0001E325EA09', 'tan-wrong', '');
             INSERT INTO jobs (mac, kind, state, created_at, updated_at)
                 VALUES ('0001E325EA01', '{\"kind\": \"restart\"}', 'done', 5, 10),
                        ('0001E325EA01', '{\"kind\": \"restart\"}', 'queued', 5, 5);",
        )
        .expect("inserts");
    let s = SqliteStore::open(&path).expect("upgrades");
    let version = user_version(&raw(&path));
    assert_eq!(version, SqliteStore::schema_version());
    let indexes: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN ('audit_by_time', 'jobs_over_by_time')",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(indexes, 2);
    let pruned = s.prune(Some(UnixTime(50)), Some(UnixTime(50))).expect("prunes");
    assert_eq!((pruned.audit_records, pruned.jobs), (1, 1));
    assert_eq!(audit_times(&s), [90]);
    let left = s.jobs(&JobFilter::default()).expect("lists");
    assert_eq!(left.iter().map(|j| j.state).collect::<Vec<_>>(), [JobState::Queued]);
}

// ---------------------------------------------------------------------------------------
// The schema upgrade.

#[test]
fn a_schema_2_database_is_upgraded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 2).expect("creates");
    {
        let c = raw(&path);
        let version = user_version(&c);
        assert_eq!(version, 2);
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('device_secrets', 'fallback_credentials')",
                [],
                |r| r.get(0),
            )
            .expect("counts");
        assert_eq!(tables, 0, "schema 2 has no digest credentials");
        // What dls 2 wrote.
        c.execute_batch(
            "INSERT INTO devices (mac, registered_at, last_contact_at, security_mode, bootstrap_state)
                 VALUES ('0001E325EA01', 100, 200, 'pin', 'secured');
             INSERT INTO profiles (name, body) VALUES ('sales', '{}');
             INSERT INTO device_profiles (mac, position, profile) VALUES ('0001E325EA01', 0, 'sales');
             INSERT INTO certificates (serial, mac, issued_at, not_after) VALUES ('AB', '0001E325EA01', 150, 9999);
             UPDATE devices SET certificate_serial = 'AB';",
        )
        .expect("inserts");
    }

    let s = SqliteStore::open(&path).expect("upgrades");
    let version = user_version(&raw(&path));
    assert_eq!(version, SqliteStore::schema_version());
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!(d.summary.profiles, ["sales"]);
    assert_eq!(d.security.certificate.as_deref(), Some("AB"));
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None);
    assert!(s.fallback_credentials(mac(1)).expect("reads").is_empty());
    assert!(listed(&s).is_empty());

    // The credentials work on the upgraded file, and the upgrade is done once.
    s.set_device_secret(mac(1), Some(SECRET)).expect("sets");
    set(&s, &of("sales"), "ops");
    set(&s, &global(), "ops");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopens");
    assert_eq!(s.device_secret(mac(1)).expect("reads").as_deref(), Some(SECRET));
    assert_eq!(applying(&s, mac(1)), [pair(of("sales"), "ops"), pair(global(), "ops")]);
    // Deletion cascades on the upgraded file too.
    assert!(s.delete_profile("sales").expect("deletes"));
    assert!(s.delete_device(mac(1)).expect("deletes"));
    let left: i64 = raw(&path)
        .query_row(
            "SELECT (SELECT count(*) FROM device_secrets) + (SELECT count(*) FROM fallback_credentials)",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(left, 1, "the global credential");
    register(&s, mac(1), 300);
    assert_eq!(s.device_secret(mac(1)).expect("reads"), None);
}

// ---------------------------------------------------------------------------------------
// The schema upgrade.

#[test]
fn a_schema_1_database_is_upgraded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 1).expect("creates");
    {
        let c = raw(&path);
        let version = user_version(&c);
        assert_eq!(version, 1);
        let tables: i64 = c
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name IN ('certificates', 'audit')", [], |r| r.get(0))
            .expect("counts");
        assert_eq!(tables, 0, "schema 1 has no secure mode");
        // What dls 1 wrote.
        c.execute_batch(
            "INSERT INTO devices (mac, registered_at, last_contact_at, last_reason, inventory_at)
                 VALUES ('0001E325EA01', 100, 200, 'start-up', 150);
             INSERT INTO inventory (mac, name, idx, value) VALUES ('0001E325EA01', 'device-type', -1, 'OpenStage 60');
             INSERT INTO nonces (mac, nonce, seen_at) VALUES ('0001E325EA01', 'n1', 200);
             INSERT INTO profiles (name, body) VALUES ('sales', '{}');
             INSERT INTO device_profiles (mac, position, profile) VALUES ('0001E325EA01', 0, 'sales');",
        )
        .expect("inserts");
    }
    // A newer schema is never taken down.
    SqliteStore::create_at_schema_version(&path, 0).expect("leaves it");
    assert!(SqliteStore::create_at_schema_version(&dir.path().join("x.db"), 99).is_err());

    let s = SqliteStore::open(&path).expect("upgrades");
    let version = user_version(&raw(&path));
    assert_eq!(version, SqliteStore::schema_version());
    let snap = s.load_device(mac(1)).expect("loads");
    assert!(snap.known);
    assert_eq!(snap.recent_nonces, vec!["n1"]);
    assert_eq!(snap.inventory_at, Some(UnixTime(150)));
    assert_eq!(snap.security, Security::default());
    let d = s.device(mac(1)).expect("reads").expect("exists");
    assert_eq!((d.registered_at, d.summary.profiles.clone()), (UnixTime(100), vec!["sales".to_owned()]));
    assert_eq!(d.summary.device_type.as_deref(), Some("OpenStage 60"));
    assert_eq!(d.security, SecuritySummary::default());

    // Secure mode works on the upgraded file, deletion cascades to certificates, and the
    // upgrade is done once.
    s.update_security(mac(1), &SecurityUpdate { mode: Some(SecurityMode::Pin), ..new_pin(PIN) }, AT).expect("updates");
    s.apply(mac(1), &[issue(300, "AB"), Change::Bootstrapped { at: UnixTime(301) }]).expect("applies");
    drop(s);
    let s = SqliteStore::open(&path).expect("reopens");
    assert_eq!(security(&s, mac(1)).state, BootstrapState::Secured);
    assert_eq!(kinds(&s, mac(1)), [AuditKind::ModeChanged, AuditKind::PinIssued]);
    assert!(s.delete_device(mac(1)).expect("deletes"));
    assert!(revocations(&path).is_empty());
    assert_eq!(kinds(&s, mac(1)).len(), 2);
    // The rest of schema 1 is intact.
    s.put_profile(&profile("more", None, &[("a", None, "1")])).expect("puts");
    s.add_device(
        mac(2),
        &DeviceSpec { profiles: vec!["sales".into()], overrides: vec![Item::new("x", "1")], ..Default::default() },
        AT,
    )
    .expect("adds");
    s.apply(mac(3), &[REGISTER, contact(1)]).expect("registers");
}

// ---------------------------------------------------------------------------------------
// PINs sealed at rest: the upgrade of a database that holds them in clear.

#[test]
fn a_schema_8_database_with_a_clear_pin_is_upgraded_to_sealed_pins() {
    const CLEAR: &str = "918273645546907";
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 8).expect("creates");
    raw(&path)
        .execute_batch(&format!(
            "INSERT INTO devices (mac, registered_at, security_mode, pin, pin_issued_at)
                 VALUES ('0001E325EA01', 100, 'pin', '{CLEAR}', 150);
             INSERT INTO devices (mac, registered_at, security_mode) VALUES ('0001E325EA02', 100, 'nopin');"
        ))
        .expect("what dls at schema 8 wrote");

    // Without the key, the store does not upgrade it, and changes nothing.
    assert_invalid(SqliteStore::open(&path), "PINs in clear");
    assert_eq!(user_version(&raw(&path)), 8);
    // A sealer that fails changes nothing either.
    let failing = |_: MacAddr, _: &str| None;
    assert!(matches!(SqliteStore::open_sealing_pins(&path, &failing), Err(StoreError::Io(_))));
    let pin: String =
        raw(&path).query_row("SELECT pin FROM devices WHERE pin IS NOT NULL", [], |r| r.get(0)).expect("kept");
    assert_eq!((user_version(&raw(&path)), pin.as_str()), (8, CLEAR));

    let seen = std::cell::RefCell::new(Vec::new());
    let sealer = |mac: MacAddr, digits: &str| {
        seen.borrow_mut().push(mac);
        Some(sealed(digits))
    };
    let s = SqliteStore::open_sealing_pins(&path, &sealer).expect("upgrades");
    assert_eq!(seen.borrow().as_slice(), &[mac(1)], "the clear PINs only");
    assert_eq!(user_version(&raw(&path)), SqliteStore::schema_version());
    assert_eq!(s.pin(mac(1)).expect("reads"), Some(sealed(CLEAR)));
    assert_eq!(s.pin(mac(2)).expect("reads"), None);
    let sec = security(&s, mac(1));
    assert_eq!((sec.pin_outstanding, sec.pin_issued_at), (true, Some(UnixTime(150))));
    let columns: Vec<String> = {
        let c = raw(&path);
        let mut stmt = c.prepare("SELECT name FROM pragma_table_info('devices')").expect("sql");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    };
    assert!(!columns.iter().any(|c| c == "pin") && columns.iter().any(|c| c == "pin_sealed"), "{columns:?}");
    // The upgraded store works on, and is not upgraded again.
    s.update_security(mac(2), &new_pin(OTHER_PIN), AT).expect("issues");
    drop(s);
    SqliteStore::open(&path).expect("reopens without a sealer");

    // Nothing of the PIN is left in the file: not the PIN, its key part, or its TAN.
    for name in ["dls.db", "dls.db-wal"] {
        let Ok(bytes) = std::fs::read(dir.path().join(name)) else { continue };
        for needle in [CLEAR, &CLEAR[..12], &CLEAR[12..], OTHER_PIN, &OTHER_PIN[12..]] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in {name}");
        }
    }
}

#[test]
fn a_schema_3_database_is_upgraded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 3).expect("creates");
    // What dls 3 wrote: inventory rows, in an order (`seq`) that is not the keys' order.
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at, last_contact_at, inventory_at)
                 VALUES ('0001E325EA01', 100, 200, 150), ('0001E325EA02', 100, NULL, NULL),
                        ('0001E325EA03', 100, NULL, NULL);
             INSERT INTO inventory (seq, mac, name, idx, value, type) VALUES
                 (7, '0001E325EA01', 'e164', -1, '4711', NULL),
                 (3, '0001E325EA01', 'device-type', -1, 'OpenStage 60', NULL),
                 (4, '0001E325EA02', 'device-type', -1, 'OpenStage 40', NULL),
                 (9, '0001E325EA01', 'function-key-def', 0, 'zero', 'x'),
                 (5, '0001E325EA01', 'software-version', -1, 'V3', NULL),
                 (8, '0001E325EA01', 'function-key-def', -1, 'none', NULL);
             INSERT INTO profiles (name, body) VALUES ('os60', '{\"device-type\": \"OpenStage 60\", \"item\": [{\"name\": \"a\", \"value\": \"1\"}]}');",
        )
        .expect("inserts");

    let s = SqliteStore::open(&path).expect("upgrades");
    let version = user_version(&raw(&path));
    assert_eq!(version, SqliteStore::schema_version());
    let tables: i64 = raw(&path)
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'inventory'", [], |r| r.get(0))
        .expect("counts");
    assert_eq!(tables, 0, "the rows moved");
    let snap = s.load_device(mac(1)).expect("loads");
    let typed = Item { item_type: Some("x".into()), ..Item::indexed("function-key-def", 0, "zero") };
    assert_eq!(
        snap.inventory,
        [
            Item::new("device-type", "OpenStage 60"),
            Item::new("software-version", "V3"),
            Item::new("e164", "4711"),
            Item::new("function-key-def", "none"),
            typed,
        ]
    );
    assert_eq!(snap.inventory_at, Some(UnixTime(150)));
    assert_eq!(s.load_device(mac(2)).expect("loads").inventory, [Item::new("device-type", "OpenStage 40")]);
    assert!(s.load_device(mac(3)).expect("loads").inventory.is_empty());
    // The listing and the profiles by device type see the moved items.
    let listed = s.list_devices(&DeviceFilter::default()).expect("lists");
    assert_eq!(
        (listed[0].device_type.as_deref(), listed[0].software_version.as_deref(), listed[0].e164.as_deref()),
        (Some("OpenStage 60"), Some("V3"), Some("4711"))
    );
    assert_eq!(listed[1].device_type.as_deref(), Some("OpenStage 40"));
    assert_eq!(listed[2].device_type, None);
    assert_eq!(s.desired(mac(1)).expect("resolves").items, [Item::new("a", "1")]);
    assert!(s.desired(mac(2)).expect("resolves").items.is_empty());
    // Profile changes after the upgrade are seen.
    s.put_profile(&profile("os60", Some("OpenStage 60"), &[("a", None, "2")])).expect("puts");
    assert_eq!(s.desired(mac(1)).expect("resolves").items, [Item::new("a", "2")]);
    // The inventory goes on from there, and goes with its device.
    s.apply(mac(1), &[Change::MergeInventory(vec![Item::new("e164", "4712"), Item::new("new", "n")])])
        .expect("applies");
    let inventory = s.load_device(mac(1)).expect("loads").inventory;
    assert_eq!((inventory.len(), inventory[2].value.as_str(), inventory[5].name.as_str()), (6, "4712", "new"));
    assert!(s.delete_device(mac(1)).expect("deletes"));
    let left: Vec<String> = raw(&path)
        .prepare("SELECT mac FROM inventories")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("reads")
        .collect::<Result<_, _>>()
        .expect("reads");
    assert_eq!(left, ["0001E325EA02"]);
    drop(s);
    SqliteStore::open(&path).expect("reopens");
}

#[test]
fn an_upgrade_that_cannot_read_the_old_rows_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 3).expect("creates");
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at) VALUES ('0001E325EA01', 100);
             INSERT INTO inventory (mac, name, idx, value) VALUES ('0001E325EA01', 'a', -7, 'v');",
        )
        .expect("inserts");
    assert_corrupt(SqliteStore::open(&path));
    let version = user_version(&raw(&path));
    assert_eq!(version, 3, "left as it was");
    raw(&path).execute_batch("UPDATE inventory SET idx = 1").expect("repairs");
    let s = SqliteStore::open(&path).expect("upgrades");
    assert_eq!(s.load_device(mac(1)).expect("loads").inventory, [Item::indexed("a", 1, "v")]);
}

/// Schema 11 makes the ids of jobs and files `AUTOINCREMENT`: the rows keep their ids, the
/// indexes of the jobs are there again, and from then on a deleted newest id is never
/// handed out again (before, SQLite gave the largest id plus one).
#[test]
fn the_upgrade_to_schema_11_keeps_ids_and_never_reuses_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 10).expect("creates");
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at) VALUES ('0001E325EA01', 1);
             INSERT INTO files (id, name, file_type, size, sha256, added_at) VALUES
                 (3, 'a.png', 'LOGO', 1, 'ab', 5), (7, 'b.png', 'LOGO', 1, 'ab', 6);
             INSERT INTO jobs (id, mac, kind, state, created_at, updated_at, token, file_id) VALUES
                 (4, '0001E325EA01', '{\"kind\": \"restart\"}', 'queued', 10, 10, NULL, NULL),
                 (9, '0001E325EA01', '{\"kind\": \"restart\"}', 'done', 10, 20, NULL, NULL);",
        )
        .expect("inserts");
    let s = SqliteStore::open(&path).expect("upgrades");
    assert_eq!(user_version(&raw(&path)), SqliteStore::schema_version());
    let autoincrement: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('jobs', 'files') AND sql LIKE '%AUTOINCREMENT%'",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(autoincrement, 2);
    let indexes: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'jobs'
             AND name IN ('jobs_open', 'jobs_by_state', 'jobs_by_file', 'jobs_over_by_time')",
            [],
            |r| r.get(0),
        )
        .expect("counts");
    assert_eq!(indexes, 4);
    assert_eq!(s.files().expect("lists").iter().map(|f| f.id).collect::<Vec<_>>(), [3, 7]);
    assert_eq!(s.jobs(&JobFilter::default()).expect("lists").iter().map(|j| j.id).collect::<Vec<_>>(), [9, 4]);
    assert_eq!(s.load_device(mac(1)).expect("loads").jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [4]);

    // The newest of each deleted: the next id is still a fresh one.
    s.delete_file(7, UnixTime(30)).expect("deletes");
    let file = s
        .add_file(
            &dls_store::NewFile {
                name: "c.png".into(),
                file_type: "LOGO".into(),
                size: 1,
                sha256: "ab".into(),
                device_types: Vec::new(),
                software_type: None,
                software_version: None,
            },
            UnixTime(31),
        )
        .expect("adds");
    assert_eq!(file.id, 8);
    assert_eq!(s.prune(None, Some(UnixTime(1_000))).expect("prunes").jobs, 1);
    let job = s
        .add_jobs(&[dls_store::NewJob { mac: mac(1), kind: dls_engine::JobKind::Restart }], UnixTime(32))
        .expect("adds");
    assert_eq!(job[0].id, 10);
}

/// Schema 17 indexes the MACs and numbers for the console's search (FTS5, trigrams): an
/// existing database's devices are indexed by the upgrade (once, when it runs again); the
/// index follows what another process writes to `devices` (its triggers); and a search
/// finds exactly what a scan of the table finds.
#[test]
fn the_upgrade_to_schema_17_indexes_the_devices_for_the_search() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    SqliteStore::create_at_schema_version(&path, 16).expect("creates");
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at, e164) VALUES ('0001E325EA01', 1, '+49 89 7220 1234'),
                                                                   ('001AE8ABCD02', 1, '+49 30 555 Ext'),
                                                                   ('FFFFFFFFFFFF', 1, NULL);",
        )
        .expect("inserts");
    let searched = |s: &SqliteStore, q: &str| {
        let filter = DeviceFilter { search: Some(q.into()), ..DeviceFilter::default() };
        s.list_devices(&filter).expect("lists").iter().map(|d| d.mac.to_string()).collect::<Vec<_>>()
    };
    let indexed = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM device_search", [], |r| r.get(0)).expect("counts")
    };
    let s = SqliteStore::open(&path).expect("upgrades");
    assert_eq!(user_version(&raw(&path)), SqliteStore::schema_version());
    assert_eq!(searched(&s, "7220 12"), ["0001E325EA01"]);
    assert_eq!(searched(&s, "ab-cd-02"), ["001AE8ABCD02"]);
    assert_eq!(searched(&s, "ff:ff:ff:ff"), ["FFFFFFFFFFFF"]);
    assert_eq!(searched(&s, "EXT"), ["001AE8ABCD02"]);
    // The rowid of each is its MAC as a number (the index's order is the MACs').
    let keys: Vec<(String, i64)> = raw(&path)
        .prepare("SELECT mac, rowid FROM device_search ORDER BY rowid")
        .expect("prepares")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("reads")
        .collect::<Result<_, _>>()
        .expect("reads");
    let want =
        [("0001E325EA01", 0x0001_E325_EA01), ("001AE8ABCD02", 0x001A_E8AB_CD02), ("FFFFFFFFFFFF", 0xFFFF_FFFF_FFFF)];
    assert_eq!(keys, want.map(|(m, k)| (m.to_owned(), k)));
    drop(s);

    // Run again (an older version's database taken back), the index is made anew, once.
    raw(&path).execute_batch("PRAGMA user_version = 16").expect("goes back");
    let s = SqliteStore::open(&path).expect("upgrades again");
    assert_eq!(indexed(&raw(&path)), 3);

    // Another process writes to `devices`: the triggers keep the index in step.
    raw(&path)
        .execute_batch(
            "INSERT INTO devices (mac, registered_at, e164) VALUES ('0001E325EA03', 1, '+49 89 7220 9999');
             UPDATE devices SET e164 = '+1 212 555 0100' WHERE mac = '0001E325EA01';
             UPDATE devices SET last_contact_at = 5 WHERE mac = '001AE8ABCD02';
             DELETE FROM devices WHERE mac = 'FFFFFFFFFFFF';",
        )
        .expect("writes");
    assert_eq!(searched(&s, "7220"), ["0001E325EA03"]);
    assert_eq!(searched(&s, "212 555"), ["0001E325EA01"]);
    assert_eq!(searched(&s, "30 555"), ["001AE8ABCD02"]);
    assert_eq!(searched(&s, "ffffff"), Vec::<String>::new());
    assert_eq!(indexed(&raw(&path)), 3);
    // The index is consistent with what it holds (FTS5's own check).
    raw(&path).execute_batch("INSERT INTO device_search (device_search) VALUES ('integrity-check')").expect("checks");
}
