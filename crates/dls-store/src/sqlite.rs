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
//! * Secure mode: a device's outstanding PIN is kept in the clear (the file is private),
//!   since sealing `secure-mode-data` needs it; only [`Store::pin`] reads it whole, the
//!   engine gets its TAN, the admin API only whether there is one. It is wiped when the
//!   device bootstraps, fails to, or is put back in default mode. At most one of a
//!   device's certificates is unrevoked: its current one. The audit log is never pruned
//!   and outlives deleted devices.
//! * Digest credentials: a device's secret and the fallback credentials are stored as the
//!   caller sealed them (opaque bytes; the key is not the store's). A device's secret is
//!   in its own table, read only by [`Store::device_secret`], and deleted with the device;
//!   a profile's fallback credentials are deleted with the profile. Both are overwritten
//!   in their pages when deleted (`secure_delete`), like a PIN.

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dls_engine::desired::resolve;
use dls_engine::{
    AuditEvent, AuditKind, BootstrapState, Change, Desired, DeviceSnapshot, IssuedCertificate, ItemKey, Profile,
    Security, SecurityMode, UnixTime, WriteOutcome, WrittenRecord,
};
use dls_message::{Item, ItemStatus, MacAddr};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Params, Row, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::model::{
    AuditRecord, CertificateRecord, CredentialScope, DeviceDetails, DeviceFilter, DeviceSpec, DeviceSummary,
    DeviceUpdate, FallbackCredential, SecuritySummary, SecurityUpdate, WrittenSummary,
};
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

/// The most audit records one call returns.
const MAX_AUDIT_LIMIT: usize = 10_000;

/// How many decimal digits a PIN has.
const PIN_DIGITS: RangeInclusive<usize> = 9..=32;

/// How many of the PIN's last digits make its TAN.
const TAN_DIGITS: usize = 3;

/// The longest certificate serial number, in hex digits (RFC 5280 allows 20 octets; some
/// room beyond).
const MAX_SERIAL: usize = 64;

/// The longest fallback credential username, in characters.
const MAX_USERNAME: usize = 128;

/// `fallback_credentials.scope_kind`; the global scope's `profile` is `''`.
const SCOPE_GLOBAL: &str = "global";
const SCOPE_PROFILE: &str = "profile";

/// Why a certificate was revoked (`certificates.revoke_reason`).
const SUPERSEDED: &str = "superseded";
const REVOKED_BY_RESET: &str = "reset";
const REVOKED_BY_BOOTSTRAP_FAILURE: &str = "bootstrap-failed";

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
    // 2: secure mode — a device's security state, its certificates, the audit log.
    "
    ALTER TABLE devices ADD COLUMN security_mode TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE devices ADD COLUMN bootstrap_state TEXT NOT NULL DEFAULT 'not-bootstrapped';
    ALTER TABLE devices ADD COLUMN pin TEXT;                  -- digits; NULL: none outstanding
    ALTER TABLE devices ADD COLUMN pin_issued_at INTEGER;
    ALTER TABLE devices ADD COLUMN tan_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN certificate_serial TEXT;   -- the current certificate

    -- `seq` orders a device's certificates by issue (the clock may go back; `seq` does not).
    -- At most one of a device's certificates is unrevoked: its current one.
    CREATE TABLE certificates (
        seq           INTEGER PRIMARY KEY,
        serial        TEXT NOT NULL UNIQUE,                  -- hex, upper case
        mac           TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        issued_at     INTEGER NOT NULL,
        not_after     INTEGER NOT NULL,
        revoked_at    INTEGER,
        revoke_reason TEXT                                   -- `superseded`, `reset`, …
    );
    CREATE INDEX certificates_by_mac ON certificates (mac, seq);

    -- Not a foreign key: the audit log outlives the devices it tells of.
    CREATE TABLE audit (
        seq    INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL,
        mac    TEXT NOT NULL,
        kind   TEXT NOT NULL,                                -- `AuditKind`, kebab-case
        detail TEXT NOT NULL
    );
    CREATE INDEX audit_by_mac ON audit (mac, seq);
    ",
    // 3: HTTP Digest credentials for provisioning-file downloads. The secrets are sealed
    // by the caller: opaque bytes here.
    "
    -- A device's secret (its MAC-ID), apart from `devices` so that no query of a
    -- device reads it by accident; deleted with the device.
    CREATE TABLE device_secrets (
        mac    TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        sealed BLOB NOT NULL
    ) WITHOUT ROWID;

    -- Fallback credentials, several usernames per scope. Not a foreign key to `profiles`
    -- (the global scope has none): deleting a profile deletes its credentials.
    CREATE TABLE fallback_credentials (
        scope_kind TEXT NOT NULL,                            -- `global` | `profile`
        profile    TEXT NOT NULL,                            -- '': the global scope
        username   TEXT NOT NULL,
        sealed     BLOB NOT NULL,
        PRIMARY KEY (scope_kind, profile, username)
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
        conn.pragma_update(None, "secure_delete", "FAST").db()?;
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
        // A wiped PIN is overwritten in its page, not only unlinked (older copies of the
        // page may stay in the WAL until it is checkpointed and reused).
        conn.pragma_update(None, "secure_delete", "FAST").db()?;
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

    /// Creates the database at `path` as an older version of dls left it: with only the
    /// first `version` schema migrations applied (a database at that version or newer is
    /// left as it is). For tests of the schema upgrades; not part of the API.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a version this build does not know; otherwise as
    /// [`Self::open`].
    #[doc(hidden)]
    pub fn create_at_schema_version(path: &Path, version: usize) -> Result<(), StoreError> {
        if version > MIGRATIONS.len() {
            return Err(StoreError::Invalid(format!("no schema version {version}")));
        }
        create_private(path)?;
        let mut conn = Connection::open(path).db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        migrate_to(&mut conn, version)
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
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations up to schema version `target` in one transaction (never down).
fn migrate_to(conn: &mut Connection, target: usize) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Again, under the write lock: another process may have migrated meanwhile.
    let start = check_compatible(&tx)?;
    let Some(pending) = MIGRATIONS.get(start..target).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for sql in pending {
        tx.execute_batch(sql).db()?;
    }
    let version = i64::try_from(target).map_err(|_| StoreError::Invalid(format!("schema version {target}")))?;
    tx.pragma_update(None, "user_version", version).db()?;
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

fn mode_from_sql(text: &str) -> Result<SecurityMode, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("security mode {text:?}")))
}

fn state_to_sql(state: BootstrapState) -> &'static str {
    match state {
        BootstrapState::NotBootstrapped => "not-bootstrapped",
        BootstrapState::Secured => "secured",
        BootstrapState::Failed => "failed",
    }
}

fn state_from_sql(text: &str) -> Result<BootstrapState, StoreError> {
    match text {
        "not-bootstrapped" => Ok(BootstrapState::NotBootstrapped),
        "secured" => Ok(BootstrapState::Secured),
        "failed" => Ok(BootstrapState::Failed),
        other => Err(StoreError::Corrupt(format!("bootstrap state {other:?}"))),
    }
}

/// An audit kind by its kebab-case name (the inverse of [`AuditKind::as_str`]).
fn kind_from_sql(text: &str) -> Result<AuditKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("audit kind {text:?}")))
}

/// A scope's `(scope_kind, profile)` columns.
fn scope_to_sql(scope: &CredentialScope) -> (&'static str, &str) {
    match scope {
        CredentialScope::Global => (SCOPE_GLOBAL, ""),
        CredentialScope::Profile(name) => (SCOPE_PROFILE, name),
    }
}

fn scope_from_sql(kind: &str, profile: String) -> Result<CredentialScope, StoreError> {
    match (kind, profile.is_empty()) {
        (SCOPE_GLOBAL, true) => Ok(CredentialScope::Global),
        (SCOPE_PROFILE, false) => Ok(CredentialScope::Profile(profile)),
        _ => Err(StoreError::Corrupt(format!("credential scope {kind:?} of profile {profile:?}"))),
    }
}

fn count_from_sql(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("count {v}")))
}

fn is_pin(pin: &str) -> bool {
    PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Checks a new PIN's form. The message never holds the PIN.
fn check_pin(pin: &str) -> Result<(), StoreError> {
    if is_pin(pin) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("a PIN is {} to {} decimal digits", PIN_DIGITS.start(), PIN_DIGITS.end())))
    }
}

/// Checks a certificate serial number: 1 to 64 upper-case hex digits, as the engine
/// compares it with the one a phone presents.
fn check_serial(serial: &str) -> Result<(), StoreError> {
    let valid = !serial.is_empty()
        && serial.len() <= MAX_SERIAL
        && serial.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "certificate serial number {serial:?}: use 1 to {MAX_SERIAL} upper-case hex digits"
        )))
    }
}

/// Checks a fallback credential's username: 1 to 128 characters, none a control
/// character. The message does not repeat a rejected username.
fn check_username(username: &str) -> Result<(), StoreError> {
    let length = username.chars().count();
    if length == 0 || length > MAX_USERNAME {
        return Err(StoreError::Invalid(format!("a username is 1 to {MAX_USERNAME} characters, not {length}")));
    }
    if username.chars().any(char::is_control) {
        return Err(StoreError::Invalid("a username has no control characters".into()));
    }
    Ok(())
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

/// A device's security columns, as read. The PIN itself is read only by `pin`.
struct SecurityRow {
    mode: SecurityMode,
    state: BootstrapState,
    /// The outstanding PIN's TAN: its last digits.
    tan: Option<String>,
    pin_issued_at: Option<UnixTime>,
    tan_failures: u32,
    /// The current certificate, if it exists and is not revoked.
    certificate: Option<String>,
}

impl SecurityRow {
    fn pin_outstanding(&self) -> bool {
        self.tan.is_some()
    }

    fn into_security(self) -> Security {
        Security {
            mode: self.mode,
            state: self.state,
            tan: self.tan,
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
        }
    }

    fn into_summary(self) -> SecuritySummary {
        SecuritySummary {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding(),
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
        }
    }
}

/// A device's security, or `None` if the device is unknown.
fn load_security(conn: &Connection, mac: &str) -> Result<Option<SecurityRow>, StoreError> {
    type Columns = (String, String, Option<String>, Option<i64>, i64, Option<String>);
    let row: Option<Columns> = conn
        .prepare_cached(
            // The TAN: the last `TAN_DIGITS` (3) of the PIN, which stays in the database.
            "SELECT d.security_mode, d.bootstrap_state, substr(d.pin, -3), d.pin_issued_at, d.tan_failures,
                    (SELECT c.serial FROM certificates c
                     WHERE c.serial = d.certificate_serial AND c.mac = d.mac AND c.revoked_at IS NULL)
             FROM devices d WHERE d.mac = ?1",
        )
        .db()?
        .query_row([mac], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()
        .db()?;
    let Some((mode, state, tan, pin_issued_at, tan_failures, certificate)) = row else {
        return Ok(None);
    };
    if let Some(tan) = &tan {
        if tan.len() != TAN_DIGITS || !tan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::Corrupt(format!("the PIN of device {mac} is not decimal digits")));
        }
    }
    Ok(Some(SecurityRow {
        mode: mode_from_sql(&mode)?,
        state: state_from_sql(&state)?,
        tan,
        pin_issued_at: opt_time_from_sql(pin_issued_at)?,
        tan_failures: count_from_sql(tan_failures)?,
        certificate,
    }))
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

/// Makes `certificate` the device's current certificate, revoking the previous one.
fn issue_certificate(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    certificate: &IssuedCertificate,
) -> Result<(), StoreError> {
    check_serial(&certificate.serial)?;
    let (issued_at, not_after) = (time_to_sql(at)?, time_to_sql(certificate.not_after)?);
    if conn.prepare_cached("SELECT 1 FROM certificates WHERE serial = ?1").db()?.exists([&certificate.serial]).db()? {
        return Err(StoreError::Conflict { what: format!("certificate serial number {}", certificate.serial) });
    }
    revoke_certificates(conn, mac, at, SUPERSEDED)?;
    conn.prepare_cached("INSERT INTO certificates (serial, mac, issued_at, not_after) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![certificate.serial, mac, issued_at, not_after])
        .db()?;
    conn.prepare_cached("UPDATE devices SET certificate_serial = ?2 WHERE mac = ?1")
        .db()?
        .execute(params![mac, certificate.serial])
        .db()?;
    Ok(())
}

/// Revokes the device's current certificate (every unrevoked one: there is at most one)
/// and clears `certificate_serial`. Gives the serial numbers revoked, oldest first.
fn revoke_certificates(conn: &Connection, mac: &str, at: UnixTime, reason: &str) -> Result<Vec<String>, StoreError> {
    let at = time_to_sql(at)?;
    let serials: Vec<String> = query_all(
        conn,
        "SELECT serial FROM certificates WHERE mac = ?1 AND revoked_at IS NULL ORDER BY seq",
        [mac],
        |r| r.get(0),
    )?;
    if !serials.is_empty() {
        conn.prepare_cached(
            "UPDATE certificates SET revoked_at = ?2, revoke_reason = ?3 WHERE mac = ?1 AND revoked_at IS NULL",
        )
        .db()?
        .execute(params![mac, at, reason])
        .db()?;
    }
    conn.prepare_cached("UPDATE devices SET certificate_serial = NULL WHERE mac = ?1").db()?.execute([mac]).db()?;
    Ok(serials)
}

fn insert_audit(conn: &Connection, mac: &str, at: UnixTime, kind: AuditKind, detail: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit (at, mac, kind, detail) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![time_to_sql(at)?, mac, kind.as_str(), detail])
        .db()?;
    Ok(())
}

/// Applies one message's changes inside the caller's transaction.
fn apply_changes(conn: &Connection, mac: &str, changes: &[Change]) -> Result<(), StoreError> {
    if !device_exists(conn, mac)? {
        // The first Register of the batch gives the mode.
        let Some(mode) = changes.iter().find_map(|c| match c {
            Change::Register { mode } => Some(*mode),
            _ => None,
        }) else {
            return Err(StoreError::NotFound { what: format!("device {mac}") });
        };
        let at = changes
            .iter()
            .find_map(|c| match c {
                Change::Contact { at, .. } => Some(*at),
                _ => None,
            })
            .unwrap_or_default();
        conn.execute(
            "INSERT INTO devices (mac, registered_at, security_mode) VALUES (?1, ?2, ?3)",
            params![mac, time_to_sql(at)?, mode.as_str()],
        )
        .db()?;
    }
    for change in changes {
        match change {
            // Done above, before any other change of the batch. A known device keeps its
            // registration time and its mode (an administrator may have changed it).
            Change::Register { .. } => {}
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
            Change::IssueCertificate { at, certificate } => issue_certificate(conn, mac, *at, certificate)?,
            Change::Bootstrapped { at } => {
                time_to_sql(*at)?;
                conn.prepare_cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin = NULL, pin_issued_at = NULL, tan_failures = 0
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, state_to_sql(BootstrapState::Secured)])
                .db()?;
            }
            Change::TanFailed => {
                conn.prepare_cached("UPDATE devices SET tan_failures = min(tan_failures + 1, ?2) WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, u32::MAX])
                    .db()?;
            }
            Change::BootstrapFailed { at, revoke_certificate } => {
                time_to_sql(*at)?;
                conn.prepare_cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin = NULL, pin_issued_at = NULL WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, state_to_sql(BootstrapState::Failed)])
                .db()?;
                if *revoke_certificate {
                    revoke_certificates(conn, mac, *at, REVOKED_BY_BOOTSTRAP_FAILURE)?;
                }
            }
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(conn, mac, *at, *kind, detail)?,
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
        let security = load_security(&tx, &mac)?.map(SecurityRow::into_security).unwrap_or_default();
        Ok(DeviceSnapshot {
            known: true,
            inventory: load_inventory(&tx, &mac)?,
            inventory_at: opt_time_from_sql(inventory_at)?,
            written: load_written(&tx, &mac)?.into_iter().collect(),
            recent_nonces: nonces,
            security,
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
            security: load_security(&tx, &key)?.map(SecurityRow::into_summary).unwrap_or_default(),
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
        // One statement: its own transaction; the foreign keys delete the rest (its
        // certificates and secret too), except the audit log, which outlives the device.
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
        tx.execute("DELETE FROM fallback_credentials WHERE scope_kind = ?1 AND profile = ?2", [SCOPE_PROFILE, name])
            .db()?;
        let deleted = tx.execute("DELETE FROM profiles WHERE name = ?1", [name]).db()?;
        tx.commit().db()?;
        Ok(deleted > 0)
    }

    /// In this order, each part audited: `reset` (which keeps an outstanding PIN), then
    /// `mode` (only if it differs), then `new_pin` (9 to 32 ASCII digits, checked before
    /// anything changes, like the refusal for a secured device). The audit records' time
    /// is this host's clock.
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate) -> Result<(), StoreError> {
        if let Some(pin) = &update.new_pin {
            check_pin(pin)?;
        }
        let key = mac.to_string();
        let at = now();
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        let Some(before) = load_security(&tx, &key)? else {
            return Err(StoreError::NotFound { what: format!("device {key}") });
        };
        if update.new_pin.is_some() && before.state == BootstrapState::Secured && !update.reset {
            return Err(StoreError::Invalid("device is bootstrapped; reset it first".into()));
        }
        let audit = |kind: AuditKind, detail: &str| insert_audit(&tx, &key, at, kind, detail);
        let mut pin_outstanding = before.pin_outstanding();

        if update.reset {
            tx.prepare_cached("UPDATE devices SET bootstrap_state = ?2, tan_failures = 0 WHERE mac = ?1")
                .db()?
                .execute(params![key, state_to_sql(BootstrapState::NotBootstrapped)])
                .db()?;
            audit(AuditKind::DeviceReset, &format!("reset to not-bootstrapped (was {})", state_to_sql(before.state)))?;
            for serial in revoke_certificates(&tx, &key, at, REVOKED_BY_RESET)? {
                audit(AuditKind::CertificateRevoked, &format!("certificate {serial} revoked: {REVOKED_BY_RESET}"))?;
            }
        }

        if let Some(mode) = update.mode.filter(|m| *m != before.mode) {
            let wipe = mode == SecurityMode::Default && pin_outstanding;
            tx.prepare_cached(
                "UPDATE devices SET security_mode = ?2,
                                    pin = CASE WHEN ?3 THEN NULL ELSE pin END,
                                    pin_issued_at = CASE WHEN ?3 THEN NULL ELSE pin_issued_at END
                 WHERE mac = ?1",
            )
            .db()?
            .execute(params![key, mode.as_str(), wipe])
            .db()?;
            let mut detail = format!("from {} to {}", before.mode.as_str(), mode.as_str());
            if wipe {
                detail.push_str("; outstanding PIN wiped");
                pin_outstanding = false;
            }
            audit(AuditKind::ModeChanged, &detail)?;
        }

        if let Some(pin) = &update.new_pin {
            // A failed bootstrap may be retried with the new PIN.
            tx.prepare_cached(
                "UPDATE devices SET pin = ?2, pin_issued_at = ?3, tan_failures = 0,
                                    bootstrap_state = CASE bootstrap_state WHEN ?4 THEN ?5 ELSE bootstrap_state END
                 WHERE mac = ?1",
            )
            .db()?
            .execute(params![
                key,
                pin.as_str(),
                time_to_sql(at)?,
                state_to_sql(BootstrapState::Failed),
                state_to_sql(BootstrapState::NotBootstrapped)
            ])
            .db()?;
            let detail = if pin_outstanding { "PIN issued, replacing the outstanding one" } else { "PIN issued" };
            audit(AuditKind::PinIssued, detail)?;
        }
        tx.commit().db()
    }

    /// `Ok(None)` for an unknown device too. A stored PIN that is not 9 to 32 digits is
    /// [`StoreError::Corrupt`] (never sealed into anything).
    fn pin(&self, mac: MacAddr) -> Result<Option<Zeroizing<String>>, StoreError> {
        let inner = self.lock()?;
        let pin: Option<Zeroizing<String>> = inner
            .conn
            .prepare_cached("SELECT pin FROM devices WHERE mac = ?1 AND pin IS NOT NULL")
            .db()?
            .query_row([mac.to_string()], |r| r.get::<_, String>(0).map(Zeroizing::new))
            .optional()
            .db()?;
        match pin {
            Some(pin) if !is_pin(&pin) => Err(StoreError::Corrupt(format!(
                "the PIN of device {mac} is not {} to {} decimal digits",
                PIN_DIGITS.start(),
                PIN_DIGITS.end()
            ))),
            pin => Ok(pin),
        }
    }

    /// `limit` is capped at 10,000. Records of deleted devices are kept, and listed.
    fn audit(&self, mac: Option<MacAddr>, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_AUDIT_LIMIT)).unwrap_or(0);
        let inner = self.lock()?;
        type AuditRow = (i64, String, String, String);
        let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        // Two statements, so that the one for a device uses the index on (mac, seq).
        let rows: Vec<AuditRow> = match mac {
            Some(mac) => query_all(
                &inner.conn,
                "SELECT at, mac, kind, detail FROM audit WHERE mac = ?1 ORDER BY seq DESC LIMIT ?2",
                params![mac.to_string(), limit],
                row,
            )?,
            None => query_all(
                &inner.conn,
                "SELECT at, mac, kind, detail FROM audit ORDER BY seq DESC LIMIT ?1",
                [limit],
                row,
            )?,
        };
        rows.into_iter()
            .map(|(at, mac, kind, detail)| {
                Ok(AuditRecord {
                    at: time_from_sql(at)?,
                    mac: mac_from_sql(&mac)?,
                    kind: kind_from_sql(&kind)?,
                    detail,
                })
            })
            .collect()
    }

    /// Newest first by order of issue; empty for an unknown device (a deleted device's
    /// certificates are deleted with it).
    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError> {
        let inner = self.lock()?;
        type CertificateRow = (String, i64, i64, Option<i64>);
        let rows: Vec<CertificateRow> = query_all(
            &inner.conn,
            "SELECT serial, issued_at, not_after, revoked_at FROM certificates WHERE mac = ?1 ORDER BY seq DESC",
            [mac.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(serial, issued_at, not_after, revoked_at)| {
                Ok(CertificateRecord {
                    mac,
                    serial,
                    issued_at: time_from_sql(issued_at)?,
                    not_after: time_from_sql(not_after)?,
                    revoked_at: opt_time_from_sql(revoked_at)?,
                })
            })
            .collect()
    }

    /// Clearing a device's secret when it has none is no error.
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError> {
        let key = mac.to_string();
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        if !device_exists(&tx, &key)? {
            return Err(StoreError::NotFound { what: format!("device {key}") });
        }
        match sealed {
            Some(sealed) => tx
                .prepare_cached(
                    "INSERT INTO device_secrets (mac, sealed) VALUES (?1, ?2)
                     ON CONFLICT (mac) DO UPDATE SET sealed = excluded.sealed",
                )
                .db()?
                .execute(params![key, sealed])
                .db()?,
            None => tx.prepare_cached("DELETE FROM device_secrets WHERE mac = ?1").db()?.execute([&key]).db()?,
        };
        tx.commit().db()
    }

    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock()?;
        inner
            .conn
            .prepare_cached("SELECT sealed FROM device_secrets WHERE mac = ?1")
            .db()?
            .query_row([mac.to_string()], |r| r.get(0))
            .optional()
            .db()
    }

    /// The username is checked, and the profile's existence, for a removal too (then
    /// [`StoreError::NotFound`] if there is no such credential). A username is matched
    /// exactly: case and Unicode form matter.
    fn set_fallback_credential(
        &self,
        scope: &CredentialScope,
        username: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        check_username(username)?;
        let (kind, profile) = scope_to_sql(scope);
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        if let CredentialScope::Profile(name) = scope {
            if !tx.prepare_cached("SELECT 1 FROM profiles WHERE name = ?1").db()?.exists([name]).db()? {
                return Err(StoreError::Invalid(format!("no profile named {name:?}")));
            }
        }
        match sealed {
            Some(sealed) => {
                tx.prepare_cached(
                    "INSERT INTO fallback_credentials (scope_kind, profile, username, sealed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope_kind, profile, username) DO UPDATE SET sealed = excluded.sealed",
                )
                .db()?
                .execute(params![kind, profile, username, sealed])
                .db()?;
            }
            None => {
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM fallback_credentials WHERE scope_kind = ?1 AND profile = ?2 AND username = ?3",
                    )
                    .db()?
                    .execute(params![kind, profile, username])
                    .db()?;
                if deleted == 0 {
                    let what = match scope {
                        CredentialScope::Global => format!("global fallback credential {username:?}"),
                        CredentialScope::Profile(name) => {
                            format!("fallback credential {username:?} of profile {name:?}")
                        }
                    };
                    return Err(StoreError::NotFound { what });
                }
            }
        }
        tx.commit().db()
    }

    /// Within a scope, by username (byte order of its UTF-8, as `str` orders).
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError> {
        let inner = self.lock()?;
        type CredentialRow = (String, String, String, Vec<u8>);
        // One statement: one state of both parts.
        let rows: Vec<CredentialRow> = query_all(
            &inner.conn,
            "SELECT f.scope_kind, f.profile, f.username, f.sealed, 0 AS part, p.position
             FROM device_profiles p
             JOIN fallback_credentials f ON f.scope_kind = ?2 AND f.profile = p.profile
             WHERE p.mac = ?1
             UNION ALL
             SELECT scope_kind, profile, username, sealed, 1, 0
             FROM fallback_credentials WHERE scope_kind = ?3
             ORDER BY 5, 6, 3",
            params![mac.to_string(), SCOPE_PROFILE, SCOPE_GLOBAL],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(kind, profile, username, sealed)| {
                Ok(FallbackCredential { scope: scope_from_sql(&kind, profile)?, username, sealed })
            })
            .collect()
    }

    /// Ordered as [`CredentialScope`] and `str` order them: the global scope first, then
    /// the profiles by name; within a scope, by username.
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError> {
        let inner = self.lock()?;
        let rows: Vec<(String, String, String)> = query_all(
            &inner.conn,
            "SELECT scope_kind, profile, username FROM fallback_credentials
             ORDER BY scope_kind <> ?1, profile, username",
            [SCOPE_GLOBAL],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        rows.into_iter().map(|(kind, profile, username)| Ok((scope_from_sql(&kind, profile)?, username))).collect()
    }
}
