//! The test server and the client crates of the PostgreSQL backend against it: the pool over
//! TCP and the Unix socket, transactions, advisory locks, a restart under load, TLS, and the
//! watchdog that stops a server whose test process was killed.

mod locks;
mod pool;
mod restart;
mod server;
mod tls;
mod watchdog;

use std::time::Duration;

use dls_test_postgres::TestPostgres;
use postgres::{
    NoTls, Socket,
    tls::{MakeTlsConnect, TlsConnect},
};
use r2d2_postgres::{PostgresConnectionManager, r2d2::Pool};

/// The pool of the backend: r2d2 over the synchronous `postgres` client.
pub(crate) type PgPool<T = NoTls> = Pool<PostgresConnectionManager<T>>;

/// The shared server of this binary; a missing PostgreSQL fails the test with the reason.
pub(crate) fn shared() -> &'static TestPostgres {
    match TestPostgres::shared() {
        Ok(pg) => pg,
        Err(err) => panic!("{err}"),
    }
}

/// A pool of `size` connections to `url`, failing a checkout after `timeout`.
pub(crate) fn pool_with<T>(url: &str, tls: T, size: u32, timeout: Duration) -> PgPool<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let config = url.parse().unwrap_or_else(|err| panic!("{url}: {err}"));
    Pool::builder()
        .max_size(size)
        .connection_timeout(timeout)
        .build(PostgresConnectionManager::new(config, tls))
        .unwrap_or_else(|err| panic!("pool to {url}: {err}"))
}

/// A plain pool of `size` connections.
pub(crate) fn pool(url: &str, size: u32) -> PgPool {
    pool_with(url, NoTls, size, Duration::from_secs(30))
}
