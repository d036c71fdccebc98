//! `dls serve --store 'postgres://…?sslmode=…'`, the real binary: TLS to the database with
//! the server's certificate verified (the phones served, every connection encrypted as the
//! database sees it), and the TLS failures that stop the start: exit code 2, one line,
//! naming the cause, never the password.

use std::path::Path;
use std::time::Duration;

use dls_message::{Action, MacAddr, Reason};
use dls_test_postgres::{Options, TestCa, TestPostgres};
use dls_workpoint::{Phone, ServerTrust, WpiClient};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::common::{dls, serve_with};

fn encoded(path: &Path) -> String {
    utf8_percent_encode(path.to_str().expect("a UTF-8 path"), NON_ALPHANUMERIC).to_string()
}

/// A server with TLS, its certificate (for 127.0.0.1) issued by `ca`.
fn tls_server(ca: &TestCa) -> TestPostgres {
    let cert = ca.server_cert(&["127.0.0.1"]).expect("server certificate");
    TestPostgres::start_with(Options::default().tls(cert.cert_pem, cert.key_pem)).expect("PostgreSQL with TLS")
}

#[test]
fn serve_on_a_database_over_verified_tls() {
    let ca = TestCa::new("database CA").expect("CA");
    let pg = tls_server(&ca);
    let database = pg.fresh_database().expect("a database");
    let ca_file = pg.client_file("ca.crt", ca.cert_pem()).expect("ca.crt");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        database.url().replacen("postgres@", "postgres:hunter2@", 1),
        encoded(&ca_file)
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let served = serve_with(&data, &["--store", &url]);

    // A phone starts up through it; the admin API lists it.
    let service_ca = std::fs::read_to_string(data.join("ca.crt")).expect("ca.crt");
    let mut client = WpiClient::new(&served.wpi, &ServerTrust::Verify(vec![service_ca])).expect("client");
    client.set_timeout(Duration::from_secs(10));
    let mut phone = Phone::new(MacAddr::parse("00:1A:E8:7A:00:01").expect("mac"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let r = runtime.block_on(phone.interact(&mut client, Reason::StartUp)).expect("start-up");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp), "{r:?}");
    let run = dls(&["device", "list", "--json", "--data-dir", data.to_str().expect("utf-8")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("001AE87A0001"), "{}", run.stdout);

    // The database sees only encrypted connections from the service.
    let mut config = postgres::Config::new();
    config.host_path(pg.socket_dir()).port(pg.port()).user("postgres").dbname("postgres");
    let mut admin = config.connect(postgres::NoTls).expect("admin over the socket");
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = $1",
            &[&database.name()],
        )
        .expect("pg_stat_ssl");
    let (encrypted, all): (i64, i64) = (row.get(0), row.get(1));
    assert!(all >= 1 && encrypted == all, "{encrypted} of {all} connections encrypted");

    let stderr = served.stop();
    assert!(!stderr.iter().any(|l| l.contains("hunter2")), "{stderr:?}");
}

#[test]
fn tls_that_cannot_be_agreed_stops_the_start_with_one_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("utf-8");
    let serve = |store: &str| {
        let mut args = vec!["serve", "--data-dir", data, "--store", store];
        for flag in ["--wpi-listen", "--secure-listen", "--http-listen", "--admin-listen"] {
            args.extend([flag, "127.0.0.1:0"]);
        }
        dls(&args, b"")
    };
    let ca = TestCa::new("database CA").expect("CA");
    let pg = tls_server(&ca);
    let url = pg.fresh_database().expect("a database").url().replacen("postgres@", "postgres:hunter2@", 1);
    let other = pg.client_file("other-ca.crt", TestCa::new("another CA").expect("CA").cert_pem()).expect("file");
    let plain = TestPostgres::shared().expect("PostgreSQL (apt-get install postgresql)");
    let plain_url = plain.fresh_database().expect("a database").url().replacen("postgres@", "postgres:hunter2@", 1);
    let missing = tmp.path().join("no-such-ca.crt");

    for (store, cause) in [
        (format!("{url}?sslmode=verify-full&sslrootcert={}", encoded(&other)), "UnknownIssuer"),
        (format!("{plain_url}?sslmode=require"), "server does not support TLS"),
        (format!("{url}?sslmode=verify-full&sslrootcert={}", encoded(&missing)), "no-such-ca.crt"),
        (format!("{url}?sslmode=verify-full"), "needs sslrootcert"),
        (format!("{url}?sslmode=verify"), "sslmode must be"),
    ] {
        let run = serve(&store);
        assert_eq!(run.code, 2, "{store}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("dls:")).collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        assert!(lines[0].contains(cause), "{cause}: {}", lines[0]);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }
}
