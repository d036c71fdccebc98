//! TLS to the database: rustls with the ring provider (tokio-postgres-rustls), the server's
//! certificate checked against a test CA.

use std::{sync::Arc, time::Duration};

use dls_test_postgres::{Options, TestPostgres};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::pool_with;

struct TestCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> TestCa {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    TestCa { cert: cert.der().clone(), issuer: Issuer::new(params, key) }
}

/// A client configuration trusting `ca`, on ring.
fn client_config(ca: &TestCa) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.clone()).expect("root");
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[test]
fn the_pool_connects_with_tls_and_checks_the_server_certificate() {
    let ca = new_ca("dls test database CA");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &ca.issuer).expect("server certificate");
    let pg =
        TestPostgres::start_with(Options::default().tls(cert.pem(), key.serialize_pem())).expect("server with TLS");
    let db = pg.database("tls").expect("database");
    let url = format!("{}?sslmode=require", db.url());

    let pool = pool_with(&url, MakeRustlsConnect::new(client_config(&ca)), 2, Duration::from_secs(10));
    let mut conn = pool.get().expect("a TLS connection");
    let row =
        conn.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "the connection is encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."), "{}", row.get::<_, String>(1));

    // A client that trusts another CA refuses the server.
    let other = new_ca("another CA");
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
