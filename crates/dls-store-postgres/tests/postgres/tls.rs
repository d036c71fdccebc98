//! TLS to the database, as the URL's libpq parameters ask (`sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey`), against real servers: the shared one (TLS, a certificate for
//! 127.0.0.1), a plain one, and one that asks for client certificates. Whether a
//! connection is encrypted is asked of the server (`pg_stat_ssl`), not taken from the
//! client.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dls_engine::UnixTime;
use dls_store::traits::*;
use dls_store::{DeviceSpec, StoreError};
use dls_store_postgres::PostgresStore;
use dls_test_postgres::{Options, TestCa, TestPostgres};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use postgres::{Client, NoTls};

use crate::conformance::mac;
use crate::server;

fn encoded(path: &Path) -> String {
    utf8_percent_encode(path.to_str().expect("a UTF-8 path"), NON_ALPHANUMERIC).to_string()
}

/// (encrypted, all) connections the server has open to `database`, and their client
/// certificates' subjects, asked over another connection.
fn connections(admin: &mut Client, database: &str) -> (i64, i64, Vec<String>) {
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*), \
                    coalesce(array_agg(s.client_dn) FILTER (WHERE s.client_dn IS NOT NULL), '{}') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
            &[&database],
        )
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1), row.get(2))
}

/// A plain connection to the server's `postgres` database over TCP.
fn admin(server: &server::Server) -> Client {
    Client::connect(&server.url("postgres"), NoTls).expect("admin connects")
}

fn database_name(url: &str) -> &str {
    url.rsplit('/').next().and_then(|tail| tail.split('?').next()).expect("a database")
}

/// A device added and read back: the store works over the connection.
fn round_trip(store: &PostgresStore) {
    store.add_device(mac(7), &DeviceSpec::default(), UnixTime(1_700_000_000)).expect("adds");
    assert!(store.device(mac(7)).expect("reads").is_some());
}

fn invalid(result: Result<PostgresStore, StoreError>) -> String {
    match result {
        Err(StoreError::Invalid(m)) => {
            assert!(!m.contains('\n') && !m.contains("hunter2"), "one line, no password: {m}");
            m
        }
        other => panic!("want Invalid, got {other:?}"),
    }
}

#[test]
fn verify_full_connects_encrypted_and_the_store_works() {
    let server = server::shared();
    let database = server.database();
    let url = database.verified_url.as_deref().expect("the shared server's");
    let store = PostgresStore::open(url).expect("opens with verify-full");
    round_trip(&store);
    let (encrypted, all, _) = connections(&mut admin(&server), database_name(&database.url));
    assert!(all >= 1 && encrypted == all, "every connection of the store is encrypted: {encrypted} of {all}");
}

#[test]
fn a_certificate_of_another_ca_or_for_another_host_is_refused() {
    let server = server::shared();
    let database = server.database();
    let dir = tempfile::tempdir().expect("dir");
    let other = dir.path().join("other-ca.crt");
    std::fs::write(&other, TestCa::new("another CA").expect("CA").cert_pem()).expect("write");
    let with_password = database.url.replacen("postgres@", "postgres:hunter2@", 1);

    for mode in ["verify-full", "verify-ca", "require", "prefer"] {
        let url = format!("{with_password}?sslmode={mode}&sslrootcert={}", encoded(&other));
        let m = invalid(PostgresStore::open(&url));
        assert!(m.contains(&format!("sslmode={mode}")) && m.contains("not issued by a CA of sslrootcert"), "{m}");
    }

    // The certificate names 127.0.0.1, not localhost: verify-full refuses the host, while
    // verify-ca checks the issuer only.
    let ca = encoded(server.ca_file().expect("the shared server's CA"));
    let by_name = with_password.replacen("127.0.0.1", "localhost", 1);
    let m = invalid(PostgresStore::open(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}")));
    assert!(m.contains("does not name the URL's host"), "{m}");
    let store = PostgresStore::open(&format!("{by_name}?sslmode=verify-ca&sslrootcert={ca}")).expect("verify-ca");
    round_trip(&store);
}

/// `require` and `prefer` without `sslrootcert` encrypt without checking the certificate
/// (libpq's meaning); `disable` does not encrypt.
#[test]
fn require_and_prefer_encrypt_and_disable_does_not() {
    let server = server::shared();
    for (mode, want_encrypted) in [("require", true), ("prefer", true), ("disable", false)] {
        let database = server.database();
        let store = PostgresStore::open(&format!("{}?sslmode={mode}", database.url)).expect("opens");
        round_trip(&store);
        let (encrypted, all, _) = connections(&mut admin(&server), database_name(&database.url));
        assert!(all >= 1, "{mode}");
        assert_eq!(encrypted, if want_encrypted { all } else { 0 }, "{mode}");
    }
}

/// A server without TLS: `require` and the verify modes are refused, naming the cause;
/// `prefer` (the default) connects in plain text.
#[test]
fn a_server_without_tls_is_refused_unless_tls_is_only_preferred() {
    let plain = TestPostgres::shared().expect("PostgreSQL (apt-get install postgresql)");
    let database = plain.fresh_database().expect("a database");
    let url = database.url().replacen("postgres@", "postgres:hunter2@", 1);
    let ca = encoded(server::shared().ca_file().expect("a CA file"));
    for query in ["sslmode=require".to_owned(), format!("sslmode=verify-full&sslrootcert={ca}")] {
        let m = invalid(PostgresStore::open(&format!("{url}?{query}")));
        assert!(m.contains("server does not support TLS"), "{m}");
    }
    let store = PostgresStore::open(&format!("{url}?sslmode=prefer")).expect("prefer: plain text");
    round_trip(&store);
    drop(store);
    let mut admin = Client::connect(&format!("postgres://postgres@127.0.0.1:{}/postgres", plain.port()), NoTls)
        .expect("admin connects");
    // The default is prefer.
    let store = PostgresStore::open(&url).expect("prefer: plain text");
    assert!(store.device(mac(7)).expect("reads").is_some());
    let (encrypted, all, _) = connections(&mut admin, database.name());
    assert_eq!((encrypted, all >= 1), (0, true));
    drop(store);
}

/// A server that asks for client certificates: without one the login is refused; with
/// `sslcert` and `sslkey` the store logs in (the server saw the certificate); a key file
/// others may read is refused before any connection.
#[test]
fn a_client_certificate_is_sent_when_given() {
    let ca = TestCa::new("client CA").expect("CA");
    let cert = ca.server_cert(&["127.0.0.1"]).expect("server certificate");
    let pg = TestPostgres::start_with(
        Options::default().tls(&cert.cert_pem, &cert.key_pem).client_certificates(ca.cert_pem()),
    )
    .expect("PostgreSQL with client certificates");
    let database = pg.fresh_database().expect("a database");
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("root.crt");
    std::fs::write(&root, ca.cert_pem()).expect("write");
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", database.url(), encoded(&root));

    let m = invalid(PostgresStore::open(&url));
    assert!(m.contains("certificate"), "{m}");

    let client = ca.client_cert("postgres").expect("client certificate");
    let (crt, key) = (dir.path().join("client.crt"), dir.path().join("client.key"));
    std::fs::write(&crt, &client.cert_pem).expect("write");
    std::fs::write(&key, &client.key_pem).expect("write");
    let with_cert = format!("{url}&sslcert={}&sslkey={}", encoded(&crt), encoded(&key));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let m = invalid(PostgresStore::open(&with_cert));
    assert!(m.contains("sslkey") && m.contains("0600"), "{m}");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let store = PostgresStore::open(&with_cert).expect("logs in with its certificate");
    round_trip(&store);
    // Over the socket: TCP asks for a certificate.
    let mut config = postgres::Config::new();
    config.host_path(pg.socket_dir()).port(pg.port()).user("postgres").dbname("postgres");
    let mut admin = config.connect(NoTls).expect("admin over the socket");
    let (encrypted, all, subjects) = connections(&mut admin, database.name());
    assert!(all >= 1 && encrypted == all, "{encrypted} of {all}");
    assert!(subjects.len() as i64 == all && subjects.iter().all(|d| d == "/CN=postgres"), "{subjects:?}");
}
