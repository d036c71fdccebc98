//! `dls store migrate`: a SQLite database copied into PostgreSQL (a server of
//! `dls-test-postgres`), verified; a non-empty target, a bad URL, an unreachable or
//! malformed database refused with their exit codes.

use dls_engine::{JobKind, Profile, UnixTime};
use dls_message::{Item, MacAddr};
use dls_store::traits::*;
use dls_store::{DeviceSpec, NewFile, NewJob, SecurityUpdate};
use dls_store_sqlite::SqliteStore;
use dls_test_postgres::TestPostgres;

use crate::common::dls;

/// A SQLite database with two devices (one with a sealed PIN), a profile, a file and a job.
fn sqlite_database(path: &std::path::Path) {
    let store = SqliteStore::open(path).expect("opens");
    let profile =
        Profile { name: "office".into(), items: vec![Item::new("sntp-addr", "10.0.0.1")], ..Profile::default() };
    store.put_profile(&profile).expect("profile");
    let one = MacAddr::from_bytes([0, 1, 0xE3, 0, 0, 1]);
    let spec = DeviceSpec { profiles: vec!["office".into()], secret: Some(vec![1; 40]), ..DeviceSpec::default() };
    store.add_device(one, &spec, UnixTime(1_700_000_000)).expect("device");
    let pin = SecurityUpdate {
        mode: Some(dls_engine::SecurityMode::Pin),
        new_pin: Some(vec![7; 48]),
        ..SecurityUpdate::default()
    };
    let two = MacAddr::from_bytes([0, 1, 0xE3, 0, 0, 2]);
    store
        .add_device(two, &DeviceSpec { security: Some(pin), ..DeviceSpec::default() }, UnixTime(1_700_000_001))
        .expect("device");
    let file = NewFile {
        name: "logo.png".into(),
        file_type: "LOGO".into(),
        size: 3,
        sha256: "cd".repeat(32),
        device_types: vec![],
        software_type: None,
        software_version: None,
    };
    store.add_file(&file, UnixTime(5)).expect("file");
    store.add_jobs(&[NewJob { mac: one, kind: JobKind::Restart }], UnixTime(6)).expect("job");
}

#[test]
fn a_sqlite_database_moves_to_postgresql_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dls.db");
    sqlite_database(&path);
    let before = std::fs::read(&path).expect("reads");
    let server = TestPostgres::shared().expect("a PostgreSQL server");
    let database = server.fresh_database().expect("a database");
    let from = format!("sqlite:{}", path.display());

    let run = dls(&["store", "migrate", "--from", &from, "--to", database.url()], b"");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "no progress bar without a terminal: {run:?}");
    for line in [
        "devices: 2 rows copied, verified",
        "profiles: 1 rows copied, verified",
        "device_secrets: 1 rows copied, verified",
        "files: 1 rows copied, verified",
        "jobs: 1 rows copied, verified",
        "audit: ",
    ] {
        assert!(run.stdout.lines().any(|l| l.starts_with(line)), "{line:?} in {}", run.stdout);
    }
    assert!(run.stdout.contains("files/"), "says to copy the files: {}", run.stdout);
    assert_eq!(std::fs::read(&path).expect("reads"), before, "the source is not changed");

    // Again into the same database: refused, in one line.
    let again = dls(&["store", "migrate", "--from", &from, "--to", database.url()], b"");
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(again.stderr.lines().count(), 1, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");
    assert!(again.stdout.is_empty(), "{again:?}");

    // And back into a new SQLite file: the same rows.
    let back = dir.path().join("back.db");
    let to = format!("sqlite:{}", back.display());
    let run_back = dls(&["store", "migrate", "--from", database.url(), "--to", &to], b"");
    assert_eq!(run_back.code, 0, "{run_back:?}");
    let summary = |s: &str| s.lines().filter(|l| l.contains(" rows copied")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(summary(&run.stdout), summary(&run_back.stdout));
}

#[test]
fn bad_locations_and_unreachable_or_malformed_databases_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dls.db");
    sqlite_database(&path);
    let from = format!("sqlite:{}", path.display());
    for (args, code, says) in [
        (vec!["--from", from.as_str(), "--to", "mysql://db/dls"], 2, "expected sqlite:PATH or a postgres:// URL"),
        (vec!["--from", from.as_str(), "--to", "mysql://u:hunter2@db/dls"], 2, "mysql"),
        (vec!["--from", "sqlite:", "--to", "postgres://h/db"], 2, "needs a path"),
        (vec!["--from", from.as_str(), "--to", from.as_str()], 2, "the same database"),
        (vec!["--from", from.as_str(), "--to", "postgres://dls@127.0.0.1:1/dls?connect_timeout=2"], 1, "target"),
        (vec!["--from", "sqlite:/nonexistent/dls.db", "--to", "postgres://h/db"], 1, "no database file"),
    ] {
        let mut all = vec!["store", "migrate"];
        all.extend(args.iter().copied());
        let run = dls(&all, b"");
        assert_eq!(run.code, code, "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {run:?}");
        assert!(!run.stderr.contains("hunter2"), "no password shown: {run:?}");
    }
    // Not a database at all: malformed (3).
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).expect("writes");
    let to = format!("sqlite:{}", dir.path().join("out.db").display());
    let run = dls(&["store", "migrate", "--from", &format!("sqlite:{}", junk.display()), "--to", &to], b"");
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}
