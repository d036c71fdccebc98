//! PINs at rest: sealed with the service's `secrets.key`, never in the database in clear —
//! neither a fresh one nor one an older version left in clear (sealed at the first start).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::{Phone, PinOutcome, ServerTrust, WpiClient};
use serde_json::json;

use crate::common::TestServer;

/// The database file and its WAL (if any), as bytes; the database must exist.
pub(crate) fn database_files(data: &Path) -> Vec<(String, Vec<u8>)> {
    let main = std::fs::read(data.join("dls.sqlite")).expect("the database file");
    let mut files = vec![("dls.sqlite".to_owned(), main)];
    if let Ok(wal) = std::fs::read(data.join("dls.sqlite-wal")) {
        files.push(("dls.sqlite-wal".to_owned(), wal));
    }
    files
}

/// Every value of every table, as text (blobs lossily), with where it is.
fn every_value(db: &Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(db).expect("opens");
    let tables: Vec<String> = {
        let mut stmt = c.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").expect("sql");
        stmt.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("rows")
    };
    let mut values = Vec::new();
    for t in tables {
        let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).expect("sql");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..n {
                let v = match row.get_ref(i).expect("value") {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    other => format!("{other:?}"),
                };
                values.push((format!("{t}.{i}"), v));
            }
        }
    }
    values
}

/// Nothing of `pin` in the database: not in the files, and no value is the PIN, its key
/// part or its TAN, or holds the PIN or key part.
fn assert_no_clear_pin(data: &Path, pin: &str) {
    let (key_part, tan) = pin.split_at(pin.len() - 3);
    for (name, bytes) in database_files(data) {
        for needle in [pin, key_part] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in {name}");
        }
    }
    for (at, v) in every_value(&data.join("dls.sqlite")) {
        assert!(!v.contains(key_part) && v.trim() != tan, "the PIN or its TAN in {at}: {v:?}");
    }
}

fn default_client(srv: &TestServer) -> WpiClient {
    let mut c = WpiClient::new(&format!("127.0.0.1:{}", srv.wpi.port()), &ServerTrust::AcceptAny).expect("client");
    c.set_timeout(Duration::from_secs(30));
    c
}

/// The pin flow end to end: bootstrap on the default port, the PIN at the phone, the TAN on
/// the secure port.
async fn bootstrap_with_pin(srv: &TestServer, mac: &str, pin: &str) {
    let mut p = Phone::new(MacAddr::parse(mac).expect("mac"));
    let r = p.interact(&mut default_client(srv), Reason::StartUp).await.expect("bootstrap");
    assert_eq!(r.bootstrap.as_deref(), Some("pin"));
    p.pin_entries.push_back(pin.to_owned());
    assert_eq!(p.enter_pin().expect("open"), PinOutcome::Opened);
    let mut c = p.secure_client("127.0.0.1").expect("secure client");
    c.set_timeout(Duration::from_secs(30));
    let r = p.interact(&mut c, Reason::StartUp).await.expect("secure start-up");
    assert_eq!(r.actions.first(), Some(&Action::ReadItems), "{r:?}");
    assert_eq!(r.cleanup_reason, None, "the TAN is right: {r:?}");
    let (_, d) = srv.admin("GET", &format!("/api/v1/devices/{}", mac.replace(':', "")), None).await;
    assert_eq!(d["security"]["state"], "secured", "{d}");
}

#[tokio::test]
async fn an_outstanding_pin_is_sealed_in_the_database() {
    let mut srv = TestServer::start().await;
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "00:1A:E8:5E:30:01", "mode": "pin"}))).await;
    assert_eq!(s, 201, "{v}");
    let pin = v["pin"].as_str().expect("the fresh PIN, once").to_owned();
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "00:1A:E8:5E:30:02", "mode": "pin"}))).await;
    assert_eq!(s, 201, "{v}");
    let other = v["pin"].as_str().expect("PIN").to_owned();
    // Outstanding, and after the bundle was sealed with it (the kept material too).
    let mut p = Phone::new(MacAddr::parse("00:1A:E8:5E:30:02").expect("mac"));
    p.interact(&mut default_client(&srv), Reason::StartUp).await.expect("bootstrap");
    if let Some(r) = srv.running.take() {
        r.shutdown().await;
    }
    assert_no_clear_pin(&srv.data(), &pin);
    assert_no_clear_pin(&srv.data(), &other);
}

#[tokio::test]
async fn a_clear_pin_from_an_older_version_is_sealed_at_the_first_start_and_still_works() {
    const CLEAR: &str = "918273645546907";
    let pre = tempfile::tempdir().expect("temp dir");
    let data = pre.path().join("data");
    std::fs::create_dir(&data).expect("creates");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("private");
    let db = data.join("dls.sqlite");
    dls_store_sqlite::SqliteStore::create_at_schema_version(&db, 8).expect("schema 8");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    rusqlite::Connection::open(&db)
        .expect("opens")
        .execute(
            "INSERT INTO devices (mac, registered_at, security_mode, pin, pin_issued_at) VALUES (?1, ?2, 'pin', ?3, ?2)",
            rusqlite::params!["001AE85E3003", i64::try_from(now).expect("time"), CLEAR],
        )
        .expect("what dls at schema 8 wrote");

    let data_dir = data.clone();
    let mut srv = TestServer::start_with(move |c| c.data_dir = data_dir).await;
    // The test's helpers look for the data directory in the server's own temporary one.
    let _unused = std::mem::replace(&mut srv.dir, pre);
    // The device's PIN is the one it had: the pin flow works end to end.
    bootstrap_with_pin(&srv, "00:1A:E8:5E:30:03", CLEAR).await;
    // A second device, with a PIN issued after the upgrade, stays outstanding.
    let (s, v) = srv.admin("POST", "/api/v1/devices", Some(json!({"mac": "00:1A:E8:5E:30:04", "mode": "pin"}))).await;
    assert_eq!(s, 201, "{v}");
    let fresh = v["pin"].as_str().expect("PIN").to_owned();
    if let Some(r) = srv.running.take() {
        r.shutdown().await;
    }
    assert_no_clear_pin(&data, CLEAR);
    assert_no_clear_pin(&data, &fresh);
}
