//! The embedded implementation of [`Store`]: one SQLite file.
//!
//! * One connection behind a mutex: every call is short, and SQLite serialises writers
//!   anyway. Each call that writes runs in one `BEGIN IMMEDIATE` transaction; each call
//!   that reads several tables reads them in one transaction, so it sees one state.
//! * Durability: WAL with `synchronous=NORMAL` (the default, [`SqliteStore::open`]): a
//!   committed transaction survives the process being killed at any point. Against power
//!   loss or an operating-system crash the last transactions may be lost (never
//!   corrupted); [`SqliteStore::open_full_sync`] sets `synchronous=FULL`, which syncs the
//!   WAL at every commit and closes that window, at the cost of one `fsync` per message.
//! * Schema: `PRAGMA user_version` counts the [`MIGRATIONS`] applied; the missing ones
//!   are applied in one transaction at open. A database from a newer version, or a
//!   SQLite file that is not a DLS database (`PRAGMA application_id`), is refused with
//!   [`StoreError::Corrupt`] and left untouched.
//! * An item's "no index" is stored as [`NO_INDEX`] (-1), so that `(name, index)` can be
//!   part of a key; `Some(0)` is the real index 0.
//! * Nothing read back can make this module panic: a row it cannot understand is
//!   [`StoreError::Corrupt`].

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dls_engine::desired::resolve;
use dls_engine::{Change, Desired, DeviceSnapshot, ItemKey, Profile, UnixTime, WriteOutcome, WrittenRecord};
use dls_message::{Item, ItemStatus, MacAddr};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Params, Row, TransactionBehavior, params};

use crate::model::{DeviceDetails, DeviceFilter, DeviceSpec, DeviceSummary, DeviceUpdate, WrittenSummary};
use crate::{Store, StoreError};

/// `PRAGMA application_id` of a DLS database: "DLS1".
const APPLICATION_ID: i64 = 0x444C_5331;

/// How long a call waits for another process's write lock (e.g. the CLI's) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many nonces are kept per device (the most recent ones).
const NONCES_KEPT: i64 = 64;

/// The stored index of an item without an index.
const NO_INDEX: i64 = -1;

/// How many prepared statements are kept.
const STATEMENT_CACHE: usize = 64;

/// The longest profile name.
const MAX_PROFILE_NAME: usize = 64;

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
/// Never edit a released migration; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE devices (
        mac                       TEXT PRIMARY KEY NOT NULL,  -- 12 upper-case hex digits
        registered_at             INTEGER NOT NULL,           -- Unix seconds
        last_contact_at           INTEGER,
        last_reason               TEXT,
        inventory_at              INTEGER,
        last_phone_cleanup_reason TEXT,
        last_deployment_status    TEXT                        -- JSON array of items
    ) WITHOUT ROWID;

    -- Profiles assigned to a device, in order. Not a foreign key to `profiles`: the
    -- names are checked when assigned, and deleting a profile deletes its assignments.
    CREATE TABLE device_profiles (
        mac      TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        profile  TEXT NOT NULL,
        PRIMARY KEY (mac, position)
    ) WITHOUT ROWID;
    CREATE INDEX device_profiles_by_profile ON device_profiles (profile);

    CREATE TABLE device_overrides (
        mac      TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name     TEXT NOT NULL,
        idx      INTEGER NOT NULL,                            -- -1: no index
        value    TEXT NOT NULL,
        type     TEXT,
        PRIMARY KEY (mac, position)
    ) WITHOUT ROWID;

    -- `seq` orders a device's items by first report (an upsert keeps it).
    CREATE TABLE inventory (
        seq   INTEGER PRIMARY KEY,
        mac   TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        name  TEXT NOT NULL,
        idx   INTEGER NOT NULL,                               -- -1: no index
        value TEXT NOT NULL,
        type  TEXT,
        UNIQUE (mac, name, idx)
    );

    CREATE TABLE written (
        mac         TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        idx         INTEGER NOT NULL,                         -- -1: no index
        fingerprint BLOB NOT NULL,                            -- 32 bytes
        outcome     TEXT NOT NULL,                            -- `accepted` | `refused:<status>`
        PRIMARY KEY (mac, name, idx)
    ) WITHOUT ROWID;

    -- `seq` orders a device's nonces by first use; only the most recent are kept.
    CREATE TABLE nonces (
        seq     INTEGER PRIMARY KEY,
        mac     TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        nonce   TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        UNIQUE (mac, nonce)
    );

    CREATE TABLE profiles (
        name TEXT PRIMARY KEY NOT NULL,
        body TEXT NOT NULL                                    -- JSON, without the name
    ) WITHOUT ROWID;
    ",
];

/// How hard SQLite syncs a commit to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Synchronous {
    /// Survives the process being killed.
    Normal,
    /// Also survives power loss.
    Full,
}

/// The embedded [`Store`]: one SQLite file (WAL), or memory for tests.
///
/// Shared between threads; calls block (each holds the one connection for its duration).
pub struct SqliteStore {
    inner: Mutex<Inner>,
}

struct Inner {
    conn: Connection,
    /// Every profile, parsed, as of `PRAGMA data_version` (which changes when another
    /// connection, e.g. the CLI's, commits). Cleared when this store changes a profile.
    profiles: Option<ProfileCache>,
}

struct ProfileCache {
    data_version: i64,
    profiles: Vec<Profile>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates, with mode 0600) the database at `path`, with
    /// `synchronous=NORMAL`: committed changes survive the process being killed, not
    /// necessarily a power loss (see [`Self::open_full_sync`]). Applies pending schema
    /// migrations.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if `path` is a directory or cannot be created;
    /// [`StoreError::Corrupt`] if the file is not a DLS database or is from a newer
    /// version; [`StoreError::Database`] if SQLite fails.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Normal)
    }

    /// Like [`Self::open`], with `synchronous=FULL`: committed changes also survive power
    /// loss or an operating-system crash, at the cost of an `fsync` per transaction.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_full_sync(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Full)
    }

    /// A fresh database in memory, gone when dropped. For tests.
    ///
    /// # Errors
    /// [`StoreError::Database`] if SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().db()?;
        conn.pragma_update(None, "foreign_keys", true).db()?;
        migrate(&mut conn)?;
        Ok(Self::from_connection(conn))
    }

    fn open_with(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        if path.is_dir() {
            return Err(StoreError::Invalid(format!(
                "the database path {} is a directory; give a file name",
                path.display()
            )));
        }
        create_private(path)?;
        let mut conn = Connection::open(path).db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        // Before anything changes the file: a file that is not SQLite fails here, and a
        // database this build must not touch is refused.
        check_compatible(&conn)?;
        // Where WAL is impossible (no shared memory, e.g. some network file systems)
        // SQLite keeps its rollback journal: as safe against a killed process, slower.
        let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).db()?;
        let sync = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).db()?;
        conn.pragma_update(None, "foreign_keys", true).db()?;
        migrate(&mut conn)?;
        Ok(Self::from_connection(conn))
    }

    fn from_connection(conn: Connection) -> Self {
        // Room for every statement of this module (rusqlite's default is 16).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Self { inner: Mutex::new(Inner { conn, profiles: None }) }
    }

    /// The latest schema version this build knows (what `PRAGMA user_version` holds after
    /// [`Self::open`]).
    #[must_use]
    pub fn schema_version() -> i64 {
        schema_latest()
    }

    /// The connection, for one call.
    ///
    /// A panic while the lock was held poisons it. The panic can only have happened in
    /// this module, between statements: a transaction it left open is rolled back (as
    /// rusqlite does when unwinding drops it) and the profile cache is dropped, after
    /// which the store is sound again and the poison is cleared, rather than failing
    /// every later call.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        match self.inner.lock() {
            Ok(guard) => Ok(guard),
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                guard.profiles = None;
                if !guard.conn.is_autocommit() {
                    guard.conn.execute_batch("ROLLBACK").db()?;
                }
                self.inner.clear_poison();
                Ok(guard)
            }
        }
    }
}

/// Creates `path` with mode 0600 unless it exists, so that SQLite (which creates files
/// 0644) opens a file only the service's user can read.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(format!("cannot create the database file {}: {e}", path.display()))),
    }
}

fn schema_latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// The schema version of a DLS database this build can open, or why it cannot.
fn check_compatible(conn: &Connection) -> Result<usize, StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).db()?;
    let application_id: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).db()?;
    if version == 0 && application_id == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", [], |r| r.get(0))
            .db()?;
        if objects > 0 {
            return Err(StoreError::Corrupt("a SQLite database, but not a DLS one (it has other tables)".into()));
        }
    } else if application_id != APPLICATION_ID {
        return Err(StoreError::Corrupt(format!(
            "a SQLite database, but not a DLS one (application_id {application_id:#x})"
        )));
    }
    let latest = schema_latest();
    if version > latest {
        return Err(StoreError::Corrupt(format!(
            "schema version {version}, newer than this version of dls knows ({latest}); use a newer dls"
        )));
    }
    usize::try_from(version).map_err(|_| StoreError::Corrupt(format!("schema version {version}")))
}

/// Applies the missing migrations in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Again, under the write lock: another process may have migrated meanwhile.
    let start = check_compatible(&tx)?;
    let Some(pending) = MIGRATIONS.get(start..).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for sql in pending {
        tx.execute_batch(sql).db()?;
    }
    tx.pragma_update(None, "user_version", schema_latest()).db()?;
    tx.pragma_update(None, "application_id", APPLICATION_ID).db()?;
    tx.commit().db()
}

// ---------------------------------------------------------------------------------------
// Conversions between records and columns.

/// Maps rusqlite's errors: what it could not convert, or a damaged file, is corrupt data.
trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(format!("unreadable column: {e}")),
            rusqlite::Error::SqliteFailure(ref f, _)
                if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) =>
            {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Database(other),
        })
    }
}

fn time_to_sql(t: UnixTime) -> Result<i64, StoreError> {
    i64::try_from(t.0).map_err(|_| StoreError::Invalid(format!("time {} out of range", t.0)))
}

fn time_from_sql(v: i64) -> Result<UnixTime, StoreError> {
    u64::try_from(v).map(UnixTime).map_err(|_| StoreError::Corrupt(format!("negative time {v}")))
}

fn opt_time_from_sql(v: Option<i64>) -> Result<Option<UnixTime>, StoreError> {
    v.map(time_from_sql).transpose()
}

fn index_to_sql(index: Option<u32>) -> i64 {
    index.map_or(NO_INDEX, i64::from)
}

fn index_from_sql(v: i64) -> Result<Option<u32>, StoreError> {
    if v == NO_INDEX {
        return Ok(None);
    }
    u32::try_from(v).map(Some).map_err(|_| StoreError::Corrupt(format!("item index {v}")))
}

const ACCEPTED: &str = "accepted";
const REFUSED_PREFIX: &str = "refused:";

fn outcome_to_sql(outcome: &WriteOutcome) -> String {
    match outcome {
        WriteOutcome::Accepted => ACCEPTED.to_owned(),
        WriteOutcome::Refused(status) => format!("{REFUSED_PREFIX}{}", status.as_str()),
    }
}

fn outcome_from_sql(text: &str) -> Result<WriteOutcome, StoreError> {
    if text == ACCEPTED {
        return Ok(WriteOutcome::Accepted);
    }
    match text.strip_prefix(REFUSED_PREFIX) {
        Some(status) => Ok(WriteOutcome::Refused(ItemStatus::from_wire(status))),
        None => Err(StoreError::Corrupt(format!("write outcome {text:?}"))),
    }
}

fn mac_from_sql(text: &str) -> Result<MacAddr, StoreError> {
    MacAddr::parse(text).map_err(|_| StoreError::Corrupt(format!("device MAC {text:?}")))
}

fn items_to_json(items: &[Item]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Invalid(format!("items not serialisable: {e}")))
}

fn items_from_json(json: &str) -> Result<Vec<Item>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored items: {e}")))
}

fn now() -> UnixTime {
    UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// An item's columns as read: name, index, value, type.
type ItemRow = (String, i64, String, Option<String>);

fn item_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn item_from_row((name, idx, value, item_type): ItemRow) -> Result<Item, StoreError> {
    Ok(Item { name, index: index_from_sql(idx)?, status: None, value, item_type })
}

/// Every row of a query.
fn query_all<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let rows = stmt.query_map(params, f).db()?;
    rows.collect::<rusqlite::Result<Vec<T>>>().db()
}

// ---------------------------------------------------------------------------------------
// Reads.

fn device_exists(conn: &Connection, mac: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM devices WHERE mac = ?1").db()?.exists([mac]).db()
}

fn load_inventory(conn: &Connection, mac: &str) -> Result<Vec<Item>, StoreError> {
    query_all(conn, "SELECT name, idx, value, type FROM inventory WHERE mac = ?1 ORDER BY seq", [mac], item_row)?
        .into_iter()
        .map(item_from_row)
        .collect()
}

fn load_overrides(conn: &Connection, mac: &str) -> Result<Vec<Item>, StoreError> {
    query_all(
        conn,
        "SELECT name, idx, value, type FROM device_overrides WHERE mac = ?1 ORDER BY position",
        [mac],
        item_row,
    )?
    .into_iter()
    .map(item_from_row)
    .collect()
}

fn load_assigned(conn: &Connection, mac: &str) -> Result<Vec<String>, StoreError> {
    query_all(conn, "SELECT profile FROM device_profiles WHERE mac = ?1 ORDER BY position", [mac], |r| r.get(0))
}

/// The device's written records, ordered by item key.
fn load_written(conn: &Connection, mac: &str) -> Result<Vec<(ItemKey, WrittenRecord)>, StoreError> {
    let rows: Vec<(String, i64, Vec<u8>, String)> = query_all(
        conn,
        "SELECT name, idx, fingerprint, outcome FROM written WHERE mac = ?1 ORDER BY name, idx",
        [mac],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    rows.into_iter()
        .map(|(name, idx, fingerprint, outcome)| {
            let fingerprint: [u8; 32] = fingerprint
                .try_into()
                .map_err(|v: Vec<u8>| StoreError::Corrupt(format!("fingerprint of {} bytes", v.len())))?;
            let key = ItemKey { name, index: index_from_sql(idx)? };
            Ok((key, WrittenRecord { fingerprint, outcome: outcome_from_sql(&outcome)? }))
        })
        .collect()
}

fn load_profiles(conn: &Connection) -> Result<Vec<Profile>, StoreError> {
    let rows: Vec<(String, String)> =
        query_all(conn, "SELECT name, body FROM profiles ORDER BY name", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.into_iter()
        .map(|(name, body)| {
            let mut profile: Profile = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("stored profile {name:?}: {e}")))?;
            profile.name = name;
            Ok(profile)
        })
        .collect()
}

/// Every profile, from the cache unless another connection committed since it was filled.
fn cached_profiles<'c>(conn: &Connection, cache: &'c mut Option<ProfileCache>) -> Result<&'c [Profile], StoreError> {
    let data_version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0)).db()?;
    let entry = match cache.take() {
        Some(c) if c.data_version == data_version => cache.insert(c),
        _ => cache.insert(ProfileCache { data_version, profiles: load_profiles(conn)? }),
    };
    Ok(&entry.profiles)
}

/// The value of an inventory item without index.
fn find_value<'i>(inventory: &'i [Item], name: &str) -> Option<&'i str> {
    inventory.iter().find(|i| i.name == name && i.index.is_none()).map(|i| i.value.as_str())
}

// ---------------------------------------------------------------------------------------
// Writes.

fn upsert_inventory(conn: &Connection, mac: &str, item: &Item) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO inventory (mac, name, idx, value, type) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (mac, name, idx) DO UPDATE SET value = excluded.value, type = excluded.type",
    )
    .db()?
    .execute(params![mac, item.name, index_to_sql(item.index), item.value, item.item_type])
    .db()?;
    Ok(())
}

fn insert_nonce(conn: &Connection, mac: &str, nonce: &str) -> Result<(), StoreError> {
    // `seen_at`: the device's last contact, which a Contact earlier in the batch has set.
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO nonces (mac, nonce, seen_at)
             VALUES (?1, ?2, (SELECT coalesce(last_contact_at, registered_at) FROM devices WHERE mac = ?1))",
        )
        .db()?
        .execute(params![mac, nonce])
        .db()?;
    if inserted > 0 {
        conn.prepare_cached(
            "DELETE FROM nonces WHERE mac = ?1 AND seq <
             (SELECT seq FROM nonces WHERE mac = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )
        .db()?
        .execute(params![mac, NONCES_KEPT - 1])
        .db()?;
    }
    Ok(())
}

/// Applies one message's changes inside the caller's transaction.
fn apply_changes(conn: &Connection, mac: &str, changes: &[Change]) -> Result<(), StoreError> {
    if !device_exists(conn, mac)? {
        if !changes.iter().any(|c| matches!(c, Change::Register)) {
            return Err(StoreError::NotFound { what: format!("device {mac}") });
        }
        let at = changes
            .iter()
            .find_map(|c| match c {
                Change::Contact { at, .. } => Some(*at),
                _ => None,
            })
            .unwrap_or_default();
        conn.execute("INSERT INTO devices (mac, registered_at) VALUES (?1, ?2)", params![mac, time_to_sql(at)?])
            .db()?;
    }
    for change in changes {
        match change {
            // Done above, before any other change of the batch.
            Change::Register => {}
            Change::Contact { at, reason } => {
                conn.prepare_cached("UPDATE devices SET last_contact_at = ?2, last_reason = ?3 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?, reason.as_str()])
                    .db()?;
            }
            Change::Nonce(nonce) => insert_nonce(conn, mac, nonce)?,
            Change::MergeInventory(items) => {
                for item in items.iter().filter(|i| i.status.is_none()) {
                    upsert_inventory(conn, mac, item)?;
                }
            }
            Change::ReplaceInventory { items, at } => {
                conn.prepare_cached("UPDATE devices SET inventory_at = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?])
                    .db()?;
                conn.prepare_cached("DELETE FROM inventory WHERE mac = ?1").db()?.execute([mac]).db()?;
                for item in items.iter().filter(|i| i.status.is_none()) {
                    upsert_inventory(conn, mac, item)?;
                }
            }
            Change::Written(records) => {
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT INTO written (mac, name, idx, fingerprint, outcome) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (mac, name, idx)
                         DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome",
                    )
                    .db()?;
                for (key, record) in records {
                    stmt.execute(params![
                        mac,
                        key.name,
                        index_to_sql(key.index),
                        record.fingerprint.as_slice(),
                        outcome_to_sql(&record.outcome)
                    ])
                    .db()?;
                }
            }
            Change::DeploymentStatus(items) => {
                conn.prepare_cached("UPDATE devices SET last_deployment_status = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, items_to_json(items)?])
                    .db()?;
            }
            Change::PhoneCleanUp { reason } => {
                conn.prepare_cached("UPDATE devices SET last_phone_cleanup_reason = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, reason])
                    .db()?;
            }
            // A change this version does not know must not be dropped silently.
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// Checks that every profile named exists, once each.
fn check_assignable(conn: &Connection, names: &[String]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    let mut stmt = conn.prepare_cached("SELECT 1 FROM profiles WHERE name = ?1").db()?;
    for name in names {
        if !seen.insert(name.as_str()) {
            return Err(StoreError::Invalid(format!("profile {name:?} assigned twice")));
        }
        if !stmt.exists([name]).db()? {
            return Err(StoreError::Invalid(format!("no profile named {name:?}")));
        }
    }
    Ok(())
}

/// Checks overrides: named, without a status (only phones send one), each key once.
fn check_overrides(items: &[Item]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for item in items {
        if item.name.is_empty() {
            return Err(StoreError::Invalid("an override without a name".into()));
        }
        if item.status.is_some() {
            return Err(StoreError::Invalid(format!("override {:?} has a status", item.name)));
        }
        if !seen.insert(ItemKey::of(item)) {
            return Err(StoreError::Invalid(match item.index {
                Some(i) => format!("override {:?} index {i} given twice", item.name),
                None => format!("override {:?} given twice", item.name),
            }));
        }
    }
    Ok(())
}

fn replace_assigned(conn: &Connection, mac: &str, names: &[String]) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM device_profiles WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt =
        conn.prepare_cached("INSERT INTO device_profiles (mac, position, profile) VALUES (?1, ?2, ?3)").db()?;
    for (position, name) in (0_i64..).zip(names) {
        stmt.execute(params![mac, position, name]).db()?;
    }
    Ok(())
}

fn replace_overrides(conn: &Connection, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM device_overrides WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO device_overrides (mac, position, name, idx, value, type) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .db()?;
    for (position, item) in (0_i64..).zip(items) {
        stmt.execute(params![mac, position, item.name, index_to_sql(item.index), item.value, item.item_type]).db()?;
    }
    Ok(())
}

/// Checks a profile name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn check_profile_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PROFILE_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "profile name {name:?}: use 1 to {MAX_PROFILE_NAME} of the characters A-Z a-z 0-9 . _ -"
        )))
    }
}

// ---------------------------------------------------------------------------------------

impl Store for SqliteStore {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        let mac = mac.to_string();
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction().db()?;
        let inventory_at: Option<Option<i64>> = tx
            .prepare_cached("SELECT inventory_at FROM devices WHERE mac = ?1")
            .db()?
            .query_row([&mac], |r| r.get(0))
            .optional()
            .db()?;
        let Some(inventory_at) = inventory_at else {
            return Ok(DeviceSnapshot::unknown());
        };
        let nonces = query_all(&tx, "SELECT nonce FROM nonces WHERE mac = ?1 ORDER BY seq", [&mac], |r| r.get(0))?;
        Ok(DeviceSnapshot {
            known: true,
            inventory: load_inventory(&tx, &mac)?,
            inventory_at: opt_time_from_sql(inventory_at)?,
            written: load_written(&tx, &mac)?.into_iter().collect(),
            recent_nonces: nonces,
        })
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        let mac = mac.to_string();
        let mut guard = self.lock()?;
        let Inner { conn, profiles } = &mut *guard;
        let tx = conn.transaction().db()?;
        // An unknown device has no inventory, assignments nor overrides: only what
        // applies to every device.
        let device_type: Option<String> = tx
            .prepare_cached("SELECT value FROM inventory WHERE mac = ?1 AND name = 'device-type' AND idx = ?2")
            .db()?
            .query_row(params![mac, NO_INDEX], |r| r.get(0))
            .optional()
            .db()?;
        let assigned = load_assigned(&tx, &mac)?;
        let overrides = load_overrides(&tx, &mac)?;
        let profiles = cached_profiles(&tx, profiles)?;
        Ok(resolve(profiles, device_type.as_deref(), &assigned, &overrides))
    }

    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        let mac = mac.to_string();
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        // On error, dropping `tx` rolls everything back.
        apply_changes(&tx, &mac, changes)?;
        tx.commit().db()
    }

    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError> {
        let search = filter.search.as_deref().filter(|s| !s.is_empty());
        // A MAC is stored as 12 upper-case hex digits: match the search without separators.
        let mac_needle = search
            .map(|s| s.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect::<String>().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction().db()?;
        type SummaryRow = (String, Option<String>, Option<String>, Option<String>, Option<i64>);
        let rows: Vec<SummaryRow> = query_all(
            &tx,
            "SELECT d.mac, t.value, s.value, e.value, d.last_contact_at
             FROM devices d
             LEFT JOIN inventory t ON t.mac = d.mac AND t.name = 'device-type' AND t.idx = -1
             LEFT JOIN inventory s ON s.mac = d.mac AND s.name = 'software-version' AND s.idx = -1
             LEFT JOIN inventory e ON e.mac = d.mac AND e.name = 'e164' AND e.idx = -1
             WHERE (?1 IS NULL OR EXISTS
                       (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
               AND (?2 IS NULL OR t.value = ?2)
               AND (?3 IS NULL OR instr(d.mac, ?4) > 0 OR instr(lower(e.value), lower(?3)) > 0)
             ORDER BY d.mac
             LIMIT ?5",
            params![filter.profile, filter.device_type, search, mac_needle, limit],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        rows.into_iter()
            .map(|(mac, device_type, software_version, e164, last_contact)| {
                Ok(DeviceSummary {
                    profiles: load_assigned(&tx, &mac)?,
                    mac: mac_from_sql(&mac)?,
                    device_type,
                    software_version,
                    e164,
                    last_contact: opt_time_from_sql(last_contact)?,
                })
            })
            .collect()
    }

    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError> {
        let key = mac.to_string();
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction().db()?;
        type DeviceRow = (i64, Option<i64>, Option<String>, Option<i64>, Option<String>, Option<String>);
        let row: Option<DeviceRow> = tx
            .prepare_cached(
                "SELECT registered_at, last_contact_at, last_reason, inventory_at,
                        last_phone_cleanup_reason, last_deployment_status
                 FROM devices WHERE mac = ?1",
            )
            .db()?
            .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .optional()
            .db()?;
        let Some((registered_at, last_contact, last_reason, inventory_at, cleanup_reason, deployment)) = row else {
            return Ok(None);
        };
        let inventory = load_inventory(&tx, &key)?;
        let summary = DeviceSummary {
            mac,
            device_type: find_value(&inventory, "device-type").map(str::to_owned),
            software_version: find_value(&inventory, "software-version").map(str::to_owned),
            e164: find_value(&inventory, "e164").map(str::to_owned),
            profiles: load_assigned(&tx, &key)?,
            last_contact: opt_time_from_sql(last_contact)?,
        };
        let written = load_written(&tx, &key)?
            .into_iter()
            .map(|(item, record)| WrittenSummary { item, outcome: record.outcome })
            .collect();
        Ok(Some(DeviceDetails {
            summary,
            registered_at: time_from_sql(registered_at)?,
            last_reason,
            inventory_at: opt_time_from_sql(inventory_at)?,
            overrides: load_overrides(&tx, &key)?,
            inventory,
            written,
            last_deployment_status: deployment.as_deref().map(items_from_json).transpose()?.unwrap_or_default(),
            last_phone_cleanup_reason: cleanup_reason,
        }))
    }

    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec) -> Result<(), StoreError> {
        let mac = mac.to_string();
        check_overrides(&spec.overrides)?;
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        if device_exists(&tx, &mac)? {
            return Err(StoreError::Conflict { what: format!("device {mac}") });
        }
        check_assignable(&tx, &spec.profiles)?;
        tx.execute("INSERT INTO devices (mac, registered_at) VALUES (?1, ?2)", params![mac, time_to_sql(now())?])
            .db()?;
        replace_assigned(&tx, &mac, &spec.profiles)?;
        replace_overrides(&tx, &mac, &spec.overrides)?;
        tx.commit().db()
    }

    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError> {
        let mac = mac.to_string();
        if let Some(overrides) = &update.overrides {
            check_overrides(overrides)?;
        }
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        if !device_exists(&tx, &mac)? {
            return Err(StoreError::NotFound { what: format!("device {mac}") });
        }
        if let Some(profiles) = &update.profiles {
            check_assignable(&tx, profiles)?;
            replace_assigned(&tx, &mac, profiles)?;
        }
        if let Some(overrides) = &update.overrides {
            replace_overrides(&tx, &mac, overrides)?;
        }
        tx.commit().db()
    }

    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let inner = self.lock()?;
        // One statement: its own transaction; the foreign keys delete the rest.
        let deleted = inner.conn.execute("DELETE FROM devices WHERE mac = ?1", [mac.to_string()]).db()?;
        Ok(deleted > 0)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let mut guard = self.lock()?;
        let Inner { conn, profiles } = &mut *guard;
        Ok(cached_profiles(conn, profiles)?.to_vec())
    }

    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        let mut guard = self.lock()?;
        let Inner { conn, profiles } = &mut *guard;
        Ok(cached_profiles(conn, profiles)?.iter().find(|p| p.name == name).cloned())
    }

    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        check_profile_name(&profile.name)?;
        let body = serde_json::to_string(&Profile { name: String::new(), ..profile.clone() })
            .map_err(|e| StoreError::Invalid(format!("profile not serialisable: {e}")))?;
        let mut inner = self.lock()?;
        inner.profiles = None;
        // An upsert, not `INSERT OR REPLACE`: the row is updated in place.
        inner
            .conn
            .execute(
                "INSERT INTO profiles (name, body) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                params![profile.name, body],
            )
            .db()?;
        Ok(())
    }

    fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        inner.profiles = None;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        tx.execute("DELETE FROM device_profiles WHERE profile = ?1", [name]).db()?;
        let deleted = tx.execute("DELETE FROM profiles WHERE name = ?1", [name]).db()?;
        tx.commit().db()?;
        Ok(deleted > 0)
    }
}
