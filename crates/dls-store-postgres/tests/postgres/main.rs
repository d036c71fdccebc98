//! Integration tests of dls-store-postgres, on a PostgreSQL server the tests start
//! (`server`): the conformance suite of the storage traits (shared with every backend,
//! `crates/dls-store/conformance/`), over TLS with the server's certificate verified, then
//! what only PostgreSQL has — several nodes on one database, its schema and its pool
//! (`nodes`), TLS's modes and refusals (`tls`), the device search's trigram indexes
//! (`search`) — and what a message costs in round trips (`round_trips`).

#[path = "../../../dls-store/conformance/mod.rs"]
mod conformance;

mod migrate;
mod nodes;
mod round_trips;
mod search;
mod server;
mod tls;

use dls_store_postgres::PostgresStore;

/// The conformance suite's factory: a fresh database of its own on the shared server,
/// reached with `sslmode=verify-full`.
pub(crate) fn backend() -> conformance::Fixture {
    let database = server::shared().database();
    let store = PostgresStore::open(database.verified_url.as_deref().expect("the shared server's")).expect("opens");
    conformance::Fixture::new(store, database)
}
