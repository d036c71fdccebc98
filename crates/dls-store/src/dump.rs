//! Moving a whole database from one backend to another (`dls store migrate`): the rows of
//! every table in a backend-neutral form ([`Row`], described by [`TABLES`]), the trait a
//! backend implements to give and take them ([`MigrationStore`]), and the copy with its
//! verification ([`copy`], [`digests`], [`compare`]).
//!
//! The dump is the schema's rows, not the traits' records: every column of every table,
//! ids and times kept, sealed secrets as the caller sealed them (opaque bytes: no key is
//! needed). Two things are in a form of their own, as both backends store them differently:
//! a device's inventory is the JSON array of its items (as [`dls_message::Item`]s
//! serialise; SQLite keeps a binary record), and a job's `accepted` is a boolean. The
//! high-water marks of the ids that are never handed out again (jobs, files) are the rows
//! of the pseudo-table [`SEQUENCES`], last. Accounts are copied with their password hashes
//! and API tokens (as their hashes: the tokens keep working). Not copied: the schema's
//! version (each backend has its own, the target is migrated when opened),
//! `profiles_version`, a counter that tells caches of the profiles they are stale (the
//! target's counts on), and what only lives while the service runs — phones' interaction
//! sessions, console sessions (everyone logs in again), the contact-me schedule and
//! leases, and the Digest tables of [`DigestStore`](crate::DigestStore) (minutes of
//! transient state) and the counts of the mobility throttle. Mobility users are copied with
//! their password hashes and saved data (`mobility_users`, `mobility_data`).
//!
//! The copy streams: the source's rows go to the target's one transaction through a
//! bounded channel, a table at a time, never the whole database in memory.

use std::fmt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sha2::{Digest as _, Sha256};

use crate::StoreError;

/// The type of a column in the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An integer ([`Value::Int`]).
    Int,
    /// Text ([`Value::Text`]).
    Text,
    /// Bytes ([`Value::Bytes`]): sealed secrets, fingerprints.
    Bytes,
    /// A boolean ([`Value::Bool`]).
    Bool,
    /// A device's inventory: the JSON array of its items, as `Item`s serialise
    /// ([`Value::Text`]).
    Items,
}

/// A column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name in both schemas.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Whether it may be NULL ([`Value::Null`]).
    pub nullable: bool,
}

/// A table of the dump.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// Its name in both schemas.
    pub name: &'static str,
    /// Every column, in the order of [`Row::values`].
    pub columns: &'static [Column],
    /// The columns of its primary key: rows are exported in their order (text compared
    /// as bytes).
    pub key: &'static [&'static str],
    /// The column that takes ids from a sequence (set past the highest copied on import).
    pub id: Option<&'static str>,
}

impl Table {
    /// The index of this table in [`TABLES`] (or [`SEQUENCES`]'s, one past them).
    #[must_use]
    pub fn position(&self) -> usize {
        TABLES.iter().position(|t| t.name == self.name).unwrap_or(TABLES.len())
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, nullable: false }
}

const fn opt(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, nullable: true }
}

use Kind::{Bool, Bytes, Int, Items, Text};

/// Every table of the dump, in the order they are exported and imported (a table before
/// those that refer to it).
pub const TABLES: &[Table] = &[
    Table {
        name: "devices",
        columns: &[
            col("mac", Text),
            col("registered_at", Int),
            opt("last_contact_at", Int),
            opt("last_reason", Text),
            opt("inventory_at", Int),
            opt("last_phone_cleanup_reason", Text),
            opt("last_deployment_status", Text),
            col("security_mode", Text),
            col("bootstrap_state", Text),
            opt("pin_sealed", Bytes),
            opt("pin_issued_at", Int),
            col("tan_failures", Int),
            opt("certificate_serial", Text),
            opt("device_type", Text),
            opt("software_version", Text),
            opt("e164", Text),
            opt("last_address", Text),
        ],
        key: &["mac"],
        id: None,
    },
    Table {
        name: "device_profiles",
        columns: &[col("mac", Text), col("position", Int), col("profile", Text)],
        key: &["mac", "position"],
        id: None,
    },
    Table {
        name: "device_overrides",
        columns: &[
            col("mac", Text),
            col("position", Int),
            col("name", Text),
            col("idx", Int),
            col("value", Text),
            opt("type", Text),
        ],
        key: &["mac", "position"],
        id: None,
    },
    Table { name: "inventories", columns: &[col("mac", Text), col("items", Items)], key: &["mac"], id: None },
    Table {
        name: "written",
        columns: &[
            col("mac", Text),
            col("name", Text),
            col("idx", Int),
            col("fingerprint", Bytes),
            col("outcome", Text),
        ],
        key: &["mac", "name", "idx"],
        id: None,
    },
    Table {
        name: "nonces",
        columns: &[col("seq", Int), col("mac", Text), col("nonce", Text), col("seen_at", Int)],
        key: &["seq"],
        id: Some("seq"),
    },
    Table { name: "profiles", columns: &[col("name", Text), col("body", Text)], key: &["name"], id: None },
    Table {
        name: "certificates",
        columns: &[
            col("seq", Int),
            col("serial", Text),
            col("mac", Text),
            col("issued_at", Int),
            col("not_after", Int),
            opt("revoked_at", Int),
            opt("revoke_reason", Text),
        ],
        key: &["seq"],
        id: Some("seq"),
    },
    Table {
        name: "audit",
        columns: &[
            col("seq", Int),
            col("at", Int),
            opt("mac", Text),
            opt("actor", Text),
            col("kind", Text),
            col("detail", Text),
        ],
        key: &["seq"],
        id: Some("seq"),
    },
    Table { name: "device_secrets", columns: &[col("mac", Text), col("sealed", Bytes)], key: &["mac"], id: None },
    Table {
        name: "fallback_credentials",
        columns: &[col("scope_kind", Text), col("profile", Text), col("username", Text), col("sealed", Bytes)],
        key: &["scope_kind", "profile", "username"],
        id: None,
    },
    Table {
        name: "pending_bootstraps",
        columns: &[col("mac", Text), col("serial", Text), col("issued_at", Int), col("sealed", Bytes)],
        key: &["mac"],
        id: None,
    },
    Table {
        name: "files",
        columns: &[
            col("id", Int),
            col("name", Text),
            col("file_type", Text),
            col("size", Int),
            col("sha256", Text),
            col("device_types", Text),
            opt("software_type", Text),
            opt("software_version", Text),
            col("added_at", Int),
        ],
        key: &["id"],
        id: Some("id"),
    },
    Table {
        name: "jobs",
        columns: &[
            col("id", Int),
            col("mac", Text),
            col("kind", Text),
            col("state", Text),
            col("created_at", Int),
            col("updated_at", Int),
            col("attempts", Int),
            col("accepted", Bool),
            opt("answer", Text),
            opt("items", Text),
            opt("token", Text),
            opt("file_id", Int),
            opt("contact", Text),
            opt("contact_at", Int),
        ],
        key: &["id"],
        id: Some("id"),
    },
    Table {
        name: "accounts",
        columns: &[
            col("name", Text),
            col("role", Text),
            col("password_hash", Text),
            col("created_at", Int),
            col("updated_at", Int),
            opt("last_login_at", Int),
        ],
        key: &["name"],
        id: None,
    },
    Table {
        name: "api_tokens",
        columns: &[
            col("key", Text),
            col("account", Text),
            col("name", Text),
            col("created_at", Int),
            opt("last_used_at", Int),
        ],
        key: &["key"],
        id: None,
    },
    Table {
        name: "mobility_users",
        columns: &[
            col("number", Text),
            opt("name", Text),
            col("password_hash", Text),
            col("profiles", Text),
            opt("device", Text),
            opt("since", Int),
            opt("logoff_requested_at", Int),
            col("revision", Int),
            col("created_at", Int),
        ],
        key: &["number"],
        id: None,
    },
    Table {
        name: "mobility_data",
        columns: &[col("number", Text), col("name", Text), col("value", Text), col("size", Int), col("saved_at", Int)],
        key: &["number", "name"],
        id: None,
    },
];

/// The pseudo-table of the high-water marks of the ids never handed out again: one row
/// `(table, last)` for each of [`SEQUENCE_TABLES`], `last` the highest id ever handed
/// out (0: none), which may be above the highest id copied (the newest were deleted).
pub const SEQUENCES: &Table =
    &Table { name: "sequences", columns: &[col("table", Text), col("last", Int)], key: &["table"], id: None };

/// The tables whose ids are never handed out again, whose high-water marks are the rows
/// of [`SEQUENCES`], in this order.
pub const SEQUENCE_TABLES: &[&str] = &["files", "jobs"];

/// A value of a column.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("Null"),
            Self::Int(n) => write!(f, "Int({n})"),
            Self::Text(s) => write!(f, "Text({s:?})"),
            // Sealed secrets are not shown.
            Self::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            Self::Bool(b) => write!(f, "Bool({b})"),
        }
    }
}

/// One row of a table: its values in the order of [`Table::columns`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its table (one of [`TABLES`], or [`SEQUENCES`]).
    pub table: &'static Table,
    /// Its values.
    pub values: Vec<Value>,
}

impl Row {
    /// A row, checked against its table: as many values as columns, each of the column's
    /// kind (or NULL where allowed). [`StoreError::Corrupt`] if not.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming the table and the column.
    pub fn new(table: &'static Table, values: Vec<Value>) -> Result<Self, StoreError> {
        let row = Self { table, values };
        row.check()?;
        Ok(row)
    }

    /// Whether the values fit the table (see [`Self::new`]).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming the table and the column.
    pub fn check(&self) -> Result<(), StoreError> {
        let table = self.table;
        if self.values.len() != table.columns.len() {
            return Err(StoreError::Corrupt(format!(
                "a row of {} with {} values, not {}",
                table.name,
                self.values.len(),
                table.columns.len()
            )));
        }
        for (column, value) in table.columns.iter().zip(&self.values) {
            let fits = match (column.kind, value) {
                (_, Value::Null) => column.nullable,
                (Int, Value::Int(_)) | (Bytes, Value::Bytes(_)) | (Bool, Value::Bool(_)) => true,
                (Text | Items, Value::Text(_)) => true,
                _ => false,
            };
            if !fits {
                return Err(StoreError::Corrupt(format!("{}.{}: {value:?}", table.name, column.name)));
            }
        }
        Ok(())
    }

    /// The value of the column `name` (`None`: no such column).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.table.columns.iter().position(|c| c.name == name).and_then(|i| self.values.get(i))
    }
}

/// What a backend gives and takes for moving a whole database (see the module's
/// documentation). Not part of [`Store`](crate::Store): only the migration tool uses it.
pub trait MigrationStore: Send + Sync {
    /// Every row, from one snapshot of the database: the tables of [`TABLES`] in their
    /// order, each in the order of its key, then the rows of [`SEQUENCES`]. Streams: each
    /// row goes to `sink` as it is read; an error of `sink` stops the export and is
    /// returned.
    ///
    /// # Errors
    /// `sink`'s error; [`StoreError::Corrupt`] for a row the dump cannot hold; the
    /// database's.
    fn export(&self, sink: &mut dyn FnMut(Row) -> Result<(), StoreError>) -> Result<(), StoreError>;

    /// Whether no table of [`TABLES`] holds a row.
    ///
    /// # Errors
    /// The database's.
    fn is_empty(&self) -> Result<bool, StoreError>;

    /// Writes `rows` (in the order [`Self::export`] gives them) into this database in one
    /// transaction, committed only when `rows` ended without error: on any error nothing
    /// is written. Ids and times are kept; the sequences are set past the highest id
    /// copied and the high-water marks of [`SEQUENCES`], so that no id is handed out again.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the database is not empty (checked in the transaction,
    /// before anything is written); the first error of `rows`; [`StoreError::Corrupt`] for
    /// a row that does not fit its table, or out of order; the database's.
    fn import(&self, rows: &mut dyn Iterator<Item = Result<Row, StoreError>>) -> Result<(), StoreError>;
}

/// A table's fingerprint: its rows counted, and the SHA-256 of their canonical encoding in
/// the order of the export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDigest {
    /// The table ([`TABLES`]' names, then [`SEQUENCES`]').
    pub table: &'static str,
    /// How many rows.
    pub rows: u64,
    /// SHA-256 of the rows.
    pub sha256: [u8; 32],
}

/// Computes [`TableDigest`]s of rows as they pass, for every table of the dump (those
/// without rows too).
#[derive(Debug)]
pub struct Digester {
    tables: Vec<(u64, Sha256)>,
}

impl Default for Digester {
    fn default() -> Self {
        Self { tables: (0..=TABLES.len()).map(|_| (0, Sha256::new())).collect() }
    }
}

impl Digester {
    /// Counts and hashes one row.
    pub fn add(&mut self, row: &Row) {
        let Some((rows, hash)) = self.tables.get_mut(row.table.position()) else { return };
        *rows += 1;
        let mut buf = Vec::new();
        for value in &row.values {
            encode(value, &mut buf);
        }
        hash.update((buf.len() as u64).to_be_bytes());
        hash.update(&buf);
    }

    /// Rows counted so far of the table at `position` in [`TABLES`] ([`SEQUENCES`]: one past).
    #[must_use]
    pub fn rows(&self, position: usize) -> u64 {
        self.tables.get(position).map_or(0, |t| t.0)
    }

    /// The digests, in the order of [`TABLES`], then [`SEQUENCES`]'.
    #[must_use]
    pub fn finish(self) -> Vec<TableDigest> {
        let names = TABLES.iter().map(|t| t.name).chain([SEQUENCES.name]);
        names
            .zip(self.tables)
            .map(|(table, (rows, hash))| TableDigest { table, rows, sha256: hash.finalize().into() })
            .collect()
    }
}

/// The canonical encoding of a value: a tag, then its bytes (length-prefixed where they vary).
fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Int(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Text(s) => {
            out.push(2);
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(3);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        }
        Value::Bool(b) => out.extend_from_slice(&[4, u8::from(*b)]),
    }
}

/// The digests of every table of a store, from one export.
///
/// # Errors
/// The store's.
pub fn digests(store: &dyn MigrationStore) -> Result<Vec<TableDigest>, StoreError> {
    let mut digester = Digester::default();
    store.export(&mut |row| {
        digester.add(&row);
        Ok(())
    })?;
    Ok(digester.finish())
}

/// Why a copy failed, and on which side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The target holds data: nothing was written.
    #[error("the target database is not empty; migrate only into an empty database")]
    NotEmpty,
    /// Reading the source failed: nothing was written.
    #[error("the source database: {0}")]
    Source(#[source] StoreError),
    /// Writing the target failed: nothing was written (its transaction rolled back).
    #[error("the target database: {0}")]
    Target(#[source] StoreError),
    /// The copy differs from the source: the copy was committed, and the target must be
    /// emptied before another attempt.
    #[error(
        "verification failed: table {table} has {target_rows} rows in the target and {source_rows} in the \
         source{what}; the copy was committed: empty the target database (drop and create it) before migrating again",
        what = if source_rows == target_rows { ", with different contents" } else { "" }
    )]
    Mismatch {
        /// The first table that differs.
        table: &'static str,
        /// Its rows in the source.
        source_rows: u64,
        /// Its rows in the target.
        target_rows: u64,
    },
}

/// The first table whose digests differ, as [`MigrateError::Mismatch`].
///
/// # Errors
/// [`MigrateError::Mismatch`].
pub fn compare(source: &[TableDigest], target: &[TableDigest]) -> Result<(), MigrateError> {
    for (s, t) in source.iter().zip(target) {
        if s != t {
            return Err(MigrateError::Mismatch { table: s.table, source_rows: s.rows, target_rows: t.rows });
        }
    }
    if source.len() != target.len() {
        return Err(MigrateError::Mismatch { table: "?", source_rows: 0, target_rows: 0 });
    }
    Ok(())
}

/// How many rows the export may be ahead of the import.
const IN_FLIGHT: usize = 1024;

enum Message {
    Row(Row),
    Failed(StoreError),
    Done,
}

/// The rows of the export thread, for the import: a channel that closes without
/// [`Message::Done`] (the export thread died) is an error, so that the import never
/// commits a partial copy.
struct Incoming<'a> {
    rx: &'a Receiver<Message>,
    done: bool,
}

impl Iterator for Incoming<'_> {
    type Item = Result<Row, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rx.recv() {
            Ok(Message::Row(row)) => Some(Ok(row)),
            Ok(Message::Done) => {
                self.done = true;
                None
            }
            Ok(Message::Failed(e)) => {
                self.done = true;
                Some(Err(e))
            }
            Err(_) => {
                self.done = true;
                Some(Err(StoreError::Io("the export of the source stopped early".into())))
            }
        }
    }
}

/// Copies every row of `source` into `target`, which must be empty, in one transaction of
/// the target, then reads the target back and compares its [`digests`] with those of the
/// rows read from the source. `progress` is called with each row copied (from the export's
/// thread). Returns the source's digests (each table's rows copied).
///
/// # Errors
/// [`MigrateError::NotEmpty`], [`MigrateError::Source`] and [`MigrateError::Target`] with
/// nothing written; [`MigrateError::Mismatch`] when the copy was committed but differs.
pub fn copy(
    source: &dyn MigrationStore,
    target: &dyn MigrationStore,
    progress: &(dyn Fn(&Row) + Sync),
) -> Result<Vec<TableDigest>, MigrateError> {
    if !target.is_empty().map_err(MigrateError::Target)? {
        return Err(MigrateError::NotEmpty);
    }
    let (tx, rx): (SyncSender<Message>, Receiver<Message>) = sync_channel(IN_FLIGHT);
    let (exported, imported) = std::thread::scope(|s| {
        let exporter = s.spawn(move || {
            let mut digester = Digester::default();
            let result = source.export(&mut |row| {
                digester.add(&row);
                progress(&row);
                tx.send(Message::Row(row)).map_err(|_| StoreError::Io("the import stopped".into()))
            });
            match result {
                Ok(()) => {
                    let _ = tx.send(Message::Done);
                    Ok(digester.finish())
                }
                Err(e) => {
                    let _ = tx.send(Message::Failed(StoreError::Io("the export of the source failed".into())));
                    Err(e)
                }
            }
        });
        let imported = target.import(&mut Incoming { rx: &rx, done: false });
        // Unblocks an exporter waiting to send when the import stopped.
        drop(rx);
        let exported =
            exporter.join().unwrap_or_else(|_| Err(StoreError::Io("the export of the source panicked".into())));
        (exported, imported)
    });
    // The source's error first: the import's is then only its consequence.
    let source_digests = exported.map_err(MigrateError::Source)?;
    match imported {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(MigrateError::NotEmpty),
        Err(e) => return Err(MigrateError::Target(e)),
    }
    let target_digests = digests(target).map_err(MigrateError::Target)?;
    compare(&source_digests, &target_digests)?;
    Ok(source_digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_against_their_table() {
        let ok = Row::new(SEQUENCES, vec![Value::Text("jobs".into()), Value::Int(3)]);
        assert!(ok.is_ok());
        let short = Row::new(SEQUENCES, vec![Value::Text("jobs".into())]);
        assert!(matches!(short, Err(StoreError::Corrupt(_))));
        let null = Row::new(SEQUENCES, vec![Value::Text("jobs".into()), Value::Null]);
        assert!(matches!(null, Err(StoreError::Corrupt(_))));
        let devices = &TABLES[0];
        let mut values = vec![Value::Null; devices.columns.len()];
        values[0] = Value::Text("0001E325EA01".into());
        values[1] = Value::Int(1);
        values[7] = Value::Text("default".into());
        values[8] = Value::Text("not-bootstrapped".into());
        values[11] = Value::Int(0);
        assert!(Row::new(devices, values.clone()).is_ok());
        values[9] = Value::Text("not bytes".into());
        assert!(matches!(Row::new(devices, values), Err(StoreError::Corrupt(m)) if m.contains("pin_sealed")));
    }

    #[test]
    fn digests_tell_rows_and_their_order_apart() {
        let row = |t: &str, n| Row::new(SEQUENCES, vec![Value::Text(t.into()), Value::Int(n)]).expect("fits");
        let digest = |rows: &[Row]| {
            let mut d = Digester::default();
            rows.iter().for_each(|r| d.add(r));
            d.finish()
        };
        let a = digest(&[row("files", 1), row("jobs", 2)]);
        assert_eq!(a.len(), TABLES.len() + 1);
        assert_eq!(a.last().map(|d| d.rows), Some(2));
        assert_eq!(a, digest(&[row("files", 1), row("jobs", 2)]));
        assert!(compare(&a, &digest(&[row("jobs", 2), row("files", 1)])).is_err());
        let e = compare(&a, &digest(&[row("files", 1), row("jobs", 3)])).expect_err("differs");
        assert!(e.to_string().contains("table sequences has 2 rows"), "{e}");
        let e = compare(&a, &digest(&[row("files", 1)])).expect_err("differs");
        assert!(matches!(e, MigrateError::Mismatch { table: "sequences", source_rows: 2, target_rows: 1 }));
        // Text and bytes of the same content differ; so do values split differently.
        let mut x = Digester::default();
        x.add(&row("ab", 1));
        let mut y = Digester::default();
        y.add(&row("a", 1));
        assert_ne!(x.finish(), y.finish());
    }

    #[test]
    fn every_table_has_its_key_and_id_among_its_columns() {
        for table in TABLES.iter().chain([SEQUENCES]) {
            for key in table.key.iter().chain(table.id.as_slice()) {
                assert!(table.columns.iter().any(|c| c.name == *key), "{}.{key}", table.name);
            }
        }
        for name in SEQUENCE_TABLES {
            assert!(TABLES.iter().any(|t| t.name == *name && t.id.is_some()), "{name}");
        }
    }
}
