//! Integration tests of dls-store-sqlite: the conformance suite of the storage traits
//! (shared with every backend, `crates/dls-store/conformance/`), then what only SQLite
//! has, one module per topic.

#[path = "../../../dls-store/conformance/mod.rs"]
mod conformance;

mod file;
mod on_disk;
mod throughput;
mod upgrades;

use std::path::PathBuf;

use dls_store_sqlite::SqliteStore;

/// The conformance suite's factory: a fresh database file of its own (WAL, the readers
/// beside the writer: as the service runs it), in a temporary directory.
pub(crate) fn backend() -> conformance::Fixture {
    let (dir, _, store) = file_store();
    conformance::Fixture::new(store, dir)
}

/// A store on a fresh file: its directory (deleted when dropped), its path, the store.
pub(crate) fn file_store() -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dls.db");
    let s = SqliteStore::open(&path).expect("opens");
    (dir, path, s)
}

/// A plain SQLite connection to a store's file, beside the store (to look at or damage it).
pub(crate) fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

/// The schema version a database file holds (`PRAGMA user_version`).
pub(crate) fn user_version(c: &rusqlite::Connection) -> i64 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("pragma")
}
