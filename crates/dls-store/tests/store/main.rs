//! Integration tests of dls-store's SQLite implementation, one module per topic.

mod admin;
mod changes;
mod credentials;
mod desired;
mod file;
mod jobs;
mod model;
mod retention;
mod security;
mod throughput;

use dls_engine::{Change, ItemKey, Profile, SecurityMode, UnixTime, WriteOutcome, WrittenRecord};
use dls_message::{Item, MacAddr, Reason};
use dls_store::{SqliteStore, Store};

/// The time of the admin changes the tests make (devices added, security changed).
pub(crate) const AT: UnixTime = UnixTime(1_700_000_000);

/// A fresh in-memory store.
pub(crate) fn store() -> SqliteStore {
    SqliteStore::open_in_memory().expect("in-memory store opens")
}

/// A device's MAC, by number.
pub(crate) fn mac(n: u8) -> MacAddr {
    MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, n])
}

/// Registration in default mode.
pub(crate) const REGISTER: Change = Change::Register { mode: SecurityMode::Default };

pub(crate) fn contact(at: u64) -> Change {
    Change::Contact { at: UnixTime(at), reason: Reason::StartUp }
}

/// Registers `mac` as the engine does at a first contact.
pub(crate) fn register(store: &SqliteStore, mac: MacAddr, at: u64) {
    store.apply(mac, &[REGISTER, contact(at)]).expect("registers");
}

pub(crate) fn key(name: &str, index: Option<u32>) -> ItemKey {
    ItemKey { name: name.into(), index }
}

pub(crate) fn record(byte: u8, outcome: WriteOutcome) -> WrittenRecord {
    WrittenRecord { fingerprint: [byte; 32], outcome }
}

pub(crate) fn profile(name: &str, device_type: Option<&str>, items: &[(&str, Option<u32>, &str)]) -> Profile {
    Profile {
        name: name.into(),
        device_type: device_type.map(Into::into),
        items: items.iter().map(|(n, i, v)| Item { index: *i, ..Item::new(*n, *v) }).collect(),
        ..Profile::default()
    }
}

/// `(name, index, value)` of items, for compact assertions.
pub(crate) fn triples(items: &[Item]) -> Vec<(String, Option<u32>, String)> {
    items.iter().map(|i| (i.name.clone(), i.index, i.value.clone())).collect()
}

pub(crate) fn t(name: &str, index: Option<u32>, value: &str) -> (String, Option<u32>, String) {
    (name.into(), index, value.into())
}

/// A plain SQLite connection to a store's file, beside the store (to look at or damage it).
pub(crate) fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

/// The schema version a database file holds (`PRAGMA user_version`).
pub(crate) fn user_version(c: &rusqlite::Connection) -> i64 {
    c.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("pragma")
}
