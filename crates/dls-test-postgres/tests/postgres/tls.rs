//! TLS to the database: the server started with [`Options::tls`] and a certificate of a
//! [`TestCa`]; rustls with the ring provider (tokio-postgres-rustls) checks it against the CA;
//! OpenSSL, an implementation of its own, agrees; [`Options::client_certificates`] makes the
//! server ask for a client certificate.

use std::process::{Command, Stdio};
use std::{sync::Arc, time::Duration};

use dls_test_postgres::{Options, TestCa, TestPostgres};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::pool_with;

fn cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate")
}

/// A client configuration trusting `ca`, on ring.
fn client_config(ca: &TestCa) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(cert(ca.cert_pem())).expect("root");
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[test]
fn the_pool_connects_with_tls_and_checks_the_server_certificate() {
    let ca = TestCa::new("dls test database CA").expect("CA");
    let server = ca.server_cert(&["127.0.0.1", "localhost"]).expect("server certificate");
    let pg =
        TestPostgres::start_with(Options::default().tls(&server.cert_pem, &server.key_pem)).expect("server with TLS");
    let db = pg.database("tls").expect("database");
    let url = format!("{}?sslmode=require", db.url());

    let pool = pool_with(&url, MakeRustlsConnect::new(client_config(&ca)), 2, Duration::from_secs(10));
    let mut conn = pool.get().expect("a TLS connection");
    let row =
        conn.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the connection is encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."), "{}", row.get::<_, String>(1));

    // A client that trusts another CA refuses the server.
    let other = TestCa::new("another CA").expect("CA");
    let mut config: postgres::Config = url.parse().expect("url");
    config.connect_timeout(Duration::from_secs(10));
    let Err(err) = config.connect(MakeRustlsConnect::new(client_config(&other))) else {
        panic!("a connection to a server of an untrusted CA")
    };
    let chain = format!("{err:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");

    // Without TLS the same server still answers (the backend's sslmode=disable).
    let mut plain = postgres::Client::connect(db.url(), postgres::NoTls).expect("plain");
    let ssl: bool =
        plain.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).expect("ssl").get(0);
    assert!(!ssl);
}

/// Runs `openssl` with `args`, its input closed; (success, stdout and stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed for this test (apt-get install openssl)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The certificates [`TestCa`] makes, checked by OpenSSL rather than by rustls/webpki:
/// `openssl verify` accepts the server's chain for its IP address and host name and
/// refuses it for another CA, and `openssl s_client -starttls postgres` against the
/// running server completes the handshake, verified.
#[test]
fn openssl_verifies_the_test_certificates_and_the_running_server() {
    let ca = TestCa::new("dls test database CA").expect("CA");
    let server = ca.server_cert(&["127.0.0.1", "localhost"]).expect("server certificate");
    let pg =
        TestPostgres::start_with(Options::default().tls(&server.cert_pem, &server.key_pem)).expect("server with TLS");
    let ca_file = pg.client_file("ca.crt", ca.cert_pem()).expect("ca.crt");
    let cert_file = pg.client_file("server.crt", &server.cert_pem).expect("server.crt");
    let other = TestCa::new("another CA").expect("CA");
    let other_file = pg.client_file("other.crt", other.cert_pem()).expect("other.crt");
    let (ca_file, cert_file, other_file) =
        (ca_file.to_str().expect("utf-8"), cert_file.to_str().expect("utf-8"), other_file.to_str().expect("utf-8"));

    for check in [["-verify_ip", "127.0.0.1"], ["-verify_hostname", "localhost"]] {
        let (ok, text) =
            openssl(&["verify", "-purpose", "sslserver", check[0], check[1], "-CAfile", ca_file, cert_file]);
        assert!(ok && text.contains(": OK"), "{text}");
    }
    let (ok, text) = openssl(&["verify", "-verify_hostname", "db.example.com", "-CAfile", ca_file, cert_file]);
    assert!(!ok, "another host name: {text}");
    let (ok, text) = openssl(&["verify", "-CAfile", other_file, cert_file]);
    assert!(!ok, "another CA: {text}");

    let connect = format!("127.0.0.1:{}", pg.port());
    let (ok, text) = openssl(&[
        "s_client",
        "-starttls",
        "postgres",
        "-connect",
        &connect,
        "-CAfile",
        ca_file,
        "-verify_ip",
        "127.0.0.1",
        "-verify_return_error",
    ]);
    assert!(ok && text.contains("Verify return code: 0 (ok)"), "{text}");
    let (ok, text) = openssl(&[
        "s_client",
        "-starttls",
        "postgres",
        "-connect",
        &connect,
        "-CAfile",
        other_file,
        "-verify_return_error",
    ]);
    assert!(!ok, "OpenSSL refuses the server for another CA: {text}");
}

/// [`Options::client_certificates`]: a TCP client without a certificate is refused; with
/// one the CA issued for its user it logs in.
#[test]
fn a_server_that_asks_for_client_certificates() {
    let ca = TestCa::new("dls test database CA").expect("CA");
    let server = ca.server_cert(&["127.0.0.1"]).expect("server certificate");
    let pg = TestPostgres::start_with(
        Options::default().tls(&server.cert_pem, &server.key_pem).client_certificates(ca.cert_pem()),
    )
    .expect("server with client certificates");
    let db = pg.database("certs").expect("database");
    let mut config: postgres::Config = format!("{}?sslmode=require", db.url()).parse().expect("url");
    config.connect_timeout(Duration::from_secs(10));

    let err = config.connect(MakeRustlsConnect::new(client_config(&ca))).err().expect("no certificate: refused");
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION), "{err:?}");

    let client = ca.client_cert("postgres").expect("client certificate");
    let mut roots = RootCertStore::empty();
    roots.add(cert(ca.cert_pem())).expect("root");
    let with_cert = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![cert(&client.cert_pem)],
            PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).expect("key"),
        )
        .expect("client certificate");
    let mut conn = config.connect(MakeRustlsConnect::new(with_cert)).expect("logs in with its certificate");
    let row = conn
        .query_one("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("/CN=postgres"));
}
