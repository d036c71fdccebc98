//! The tests' PostgreSQL server: `dls-test-postgres` (a server of the installed binaries in
//! a temporary directory, stopped by a watchdog when the process ends), with what these
//! tests add: the server the test binary shares, which serves TLS (as a production database
//! does; plain connections are still accepted); a fresh database per test that is dropped,
//! connections and all, with its guard; and a server of a test's own, for tests that stop
//! it.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::OnceLock;

use dls_test_postgres::{Options, TestCa, TestPostgres};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use postgres::{Client, NoTls};

/// A running PostgreSQL server.
pub(crate) struct Server(ServerRef);

enum ServerRef {
    Shared(&'static SharedServer),
    Own(TestPostgres),
}

/// The shared server, and the file of the CA that issued its certificate.
struct SharedServer {
    pg: TestPostgres,
    ca_file: PathBuf,
}

/// The server the test binary shares: TLS on, with a certificate for 127.0.0.1 of a CA
/// made for the run.
pub(crate) fn shared() -> Server {
    static SHARED: OnceLock<SharedServer> = OnceLock::new();
    Server(ServerRef::Shared(SHARED.get_or_init(|| {
        let ca = TestCa::new("dls-store-postgres tests CA").expect("a CA");
        let cert = ca.server_cert(&["127.0.0.1"]).expect("a server certificate");
        let pg = TestPostgres::start_with(Options::default().tls(cert.cert_pem, cert.key_pem))
            .expect("PostgreSQL for the tests (apt-get install postgresql)");
        let ca_file = pg.client_file("ca.crt", ca.cert_pem()).expect("ca.crt");
        SharedServer { pg, ca_file }
    })))
}

/// A fresh database on a server, dropped (connections and all) with this guard.
pub(crate) struct Database {
    /// Its URL, without TLS parameters (`sslmode=prefer`: TLS on the shared server, unchecked).
    pub(crate) url: String,
    /// On the shared server: its URL with `sslmode=verify-full` and the CA's file.
    pub(crate) verified_url: Option<String>,
    name: String,
    admin_url: String,
}

impl Database {
    /// The database's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
        }
    }
}

impl Deref for Server {
    type Target = TestPostgres;

    fn deref(&self) -> &TestPostgres {
        match &self.0 {
            ServerRef::Shared(s) => &s.pg,
            ServerRef::Own(s) => s,
        }
    }
}

impl Server {
    /// Starts a server of its own (stopped when dropped, or when the process ends).
    pub(crate) fn start() -> Self {
        Self(ServerRef::Own(TestPostgres::start().expect("PostgreSQL for the tests (apt-get install postgresql)")))
    }

    /// Starts the server again after [`Self::stop`].
    pub(crate) fn start_again(&self) {
        TestPostgres::start_again(self).expect("the server starts again");
    }

    /// Stops the server (its connections are cut).
    pub(crate) fn stop(&self) {
        TestPostgres::stop(self).expect("the server stops");
    }

    /// The URL of a database on this server.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port())
    }

    /// The file of the CA that issued the server's certificate (the shared server's).
    pub(crate) fn ca_file(&self) -> Option<&std::path::Path> {
        match &self.0 {
            ServerRef::Shared(s) => Some(&s.ca_file),
            ServerRef::Own(_) => None,
        }
    }

    /// A fresh, empty database.
    pub(crate) fn database(&self) -> Database {
        let db = self.fresh_database().expect("a fresh database");
        let verified_url = self.ca_file().map(|ca| {
            let ca = utf8_percent_encode(ca.to_str().expect("a UTF-8 path"), NON_ALPHANUMERIC);
            format!("{}?sslmode=verify-full&sslrootcert={ca}", db.url())
        });
        Database { url: db.url().to_owned(), verified_url, name: db.name().to_owned(), admin_url: self.url("postgres") }
    }
}
