//! The server itself: databases, URLs, names, and what a drop leaves.

use std::{fs, net::TcpStream, path::Path};

use dls_test_postgres::{Error, TestPostgres};

use crate::shared;

#[test]
fn fresh_databases_are_distinct_and_reachable_both_ways() {
    let pg = shared();
    let a = pg.fresh_database().expect("database a");
    let b = pg.fresh_database().expect("database b");
    assert_ne!(a.name(), b.name());
    assert_eq!(a.url(), format!("postgres://postgres@127.0.0.1:{}/{}", pg.port(), a.name()));
    assert!(a.socket_url().starts_with("postgres://postgres@%2F"), "{}", a.socket_url());
    for url in [a.url(), a.socket_url()] {
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect(url);
        let row = client
            .query_one(
                "SELECT current_database(), current_setting('server_encoding'), current_setting('lc_collate')",
                &[],
            )
            .expect("settings");
        assert_eq!(row.get::<_, String>(0), a.name());
        assert_eq!(row.get::<_, String>(1), "UTF8");
        assert_eq!(row.get::<_, String>(2), "C");
    }
}

#[test]
fn the_server_has_the_test_settings_and_listens_on_loopback_only() {
    let pg = shared();
    let db = pg.fresh_database().expect("database");
    let mut client = postgres::Client::connect(db.url(), postgres::NoTls).expect("connect");
    for (name, value) in [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "100"),
    ] {
        let row = client.query_one("SELECT current_setting($1)", &[&name]).expect(name);
        assert_eq!(row.get::<_, String>(0), value, "{name}");
    }
}

#[test]
fn a_database_name_is_checked_and_an_existing_one_refused() {
    let pg = shared();
    assert!(matches!(pg.database("x\"; DROP"), Err(Error::InvalidDatabaseName(_))));
    assert!(matches!(pg.database(""), Err(Error::InvalidDatabaseName(_))));
    let name = format!("named_{}", std::process::id());
    pg.database(&name).expect("first");
    let err = pg.database(&name).expect_err("second");
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn a_dropped_server_is_stopped_and_its_directory_removed() {
    let pg = TestPostgres::start().expect("server");
    let dir = pg.socket_dir().to_path_buf();
    let port = pg.port();
    let pid = postmaster_pid(pg.data_dir());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(!alive(pid), "postmaster {pid} still runs");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
}

/// The postmaster's PID, the first line of `postmaster.pid`.
pub(crate) fn postmaster_pid(data: &Path) -> u32 {
    let text = fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    text.lines().next().and_then(|l| l.trim().parse().ok()).expect("a PID")
}

/// Whether a process runs (a zombie, ended but not yet reaped by its new parent, does not).
pub(crate) fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}
