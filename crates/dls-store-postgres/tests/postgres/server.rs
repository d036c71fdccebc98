//! The tests' PostgreSQL server: `dls-test-postgres` (a server of the installed binaries in
//! a temporary directory, shared by the test binary, stopped by a watchdog when the process
//! ends), with what these tests add: a fresh database per test that is dropped, connections
//! and all, with its guard; and a server of a test's own, for tests that stop it.

use std::ops::Deref;

use dls_test_postgres::TestPostgres;
use postgres::{Client, NoTls};

/// A running PostgreSQL server.
pub(crate) struct Server(ServerRef);

enum ServerRef {
    Shared(&'static TestPostgres),
    Own(TestPostgres),
}

/// The server the test binary shares.
pub(crate) fn shared() -> Server {
    Server(ServerRef::Shared(TestPostgres::shared().expect("PostgreSQL for the tests (apt-get install postgresql)")))
}

/// A fresh database on a server, dropped (connections and all) with this guard.
pub(crate) struct Database {
    pub(crate) url: String,
    name: String,
    admin_url: String,
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
            ServerRef::Shared(s) => s,
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

    /// A fresh, empty database.
    pub(crate) fn database(&self) -> Database {
        let db = self.fresh_database().expect("a fresh database");
        Database { url: db.url().to_owned(), name: db.name().to_owned(), admin_url: self.url("postgres") }
    }
}
