//! [`SqliteStore`]: opening the file, the connections, and the transactions every call
//! runs in.

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dls_engine::Profile;
use dls_store::StoreError;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::devices::load_profiles;
use crate::pool::{Checkpointer, Pool};
use crate::schema::{MIGRATIONS, PinSealer, Upgrade, check_compatible, migrate, migrate_to, schema_latest};
use crate::sql::Db;

/// How long a call waits for another process's write lock (e.g. the CLI's) before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many prepared statements are kept, per connection.
const STATEMENT_CACHE: usize = 64;

/// How many read-only connections serve reads at once (besides the writer).
pub(crate) const READERS: usize = 4;

/// The WAL's size, in pages, from which the writer checkpoints after its commits itself:
/// when the checkpointer falls behind, and so that the WAL restarts from its beginning
/// under constant writing (a checkpoint that new commits overtake never completes).
const WAL_AUTOCHECKPOINT: i64 = 4000;

/// How hard SQLite syncs a commit to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Synchronous {
    /// Survives the process being killed.
    Normal,
    /// Also survives power loss.
    Full,
}

/// The embedded [`Store`](dls_store::Store): one SQLite file (WAL), or memory for tests.
///
/// Shared between threads; calls block. Reads take one of a few read-only connections
/// (waiting only when all are busy); writes take the one writing connection.
pub struct SqliteStore {
    // Dropped in this order: the writer closes last, so that it checkpoints the WAL and
    // removes it.
    /// The read-only connections; none in memory (the writer reads too).
    pub(crate) readers: Pool,
    /// Checkpoints the WAL beside the writer; none in memory.
    checkpointer: Option<Checkpointer>,
    /// The one connection that writes.
    writer: Mutex<Connection>,
    /// Every profile, parsed, as of a `profiles_version`.
    profiles: Mutex<Option<Arc<ProfileCache>>>,
}

pub(crate) struct ProfileCache {
    /// `profiles_version.version` when read.
    version: i64,
    pub(crate) profiles: Vec<Profile>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("readers", &self.readers.size).finish_non_exhaustive()
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
    /// A database from an older version that still holds PINs in clear is not upgraded
    /// here ([`StoreError::Invalid`], nothing changed): see [`Self::open_sealing_pins`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Normal, &Upgrade::default())
    }

    /// Like [`Self::open`]; the upgrade of a database from an older version that holds
    /// PINs in clear seals them with `sealer`, in the upgrade's transaction, and drops the
    /// clear column.
    ///
    /// # Errors
    /// As [`Self::open`]; [`StoreError::Io`] if `sealer` fails (nothing is changed).
    pub fn open_sealing_pins(path: &Path, sealer: PinSealer<'_>) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Normal, &Upgrade { pin_sealer: Some(sealer) })
    }

    /// Like [`Self::open`], with `synchronous=FULL`: committed changes also survive power
    /// loss or an operating-system crash, at the cost of an `fsync` per transaction.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_full_sync(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Full, &Upgrade::default())
    }

    /// Opens the existing database at `path` read-only, changing nothing in it: for
    /// reading a whole database out (`dls store migrate`). Its schema must be this
    /// version's: an older database is not upgraded here (`dls serve` upgrades it).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if there is no file at `path`, or its schema is older than
    /// this version's; otherwise as [`Self::open`].
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Invalid(format!("no database file at {}", path.display())));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).db()?;
        conn.busy_timeout(BUSY_TIMEOUT).db()?;
        let version = check_compatible(&conn)?;
        if version != MIGRATIONS.len() {
            return Err(StoreError::Invalid(format!(
                "the database {} has schema version {version}, older than this version of dls's ({}): run this \
                 version's `dls serve` on it once to upgrade it first",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        tune(&conn)?;
        Ok(Self::new(conn, Vec::new(), None))
    }

    /// A fresh database in memory, gone when dropped. For tests.
    ///
    /// # Errors
    /// [`StoreError::Database`] if SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().db()?;
        tune(&conn)?;
        conn.pragma_update(None, "foreign_keys", true).db()?;
        conn.pragma_update(None, "secure_delete", "FAST").db()?;
        migrate(&mut conn, &Upgrade::default())?;
        Ok(Self::new(conn, Vec::new(), None))
    }

    fn open_with(path: &Path, synchronous: Synchronous, upgrade: &Upgrade<'_>) -> Result<Self, StoreError> {
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
        // SQLite keeps its rollback journal: as safe against a killed process, slower,
        // and without readers beside the writer.
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).db()?;
        let sync = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).db()?;
        conn.pragma_update(None, "foreign_keys", true).db()?;
        // A wiped PIN is overwritten in its page, not only unlinked (older copies of the
        // page may stay in the WAL until it is checkpointed and reused).
        conn.pragma_update(None, "secure_delete", "FAST").db()?;
        tune(&conn)?;
        migrate(&mut conn, upgrade)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Self::new(conn, Vec::new(), None));
        }
        let readers = (0..READERS).map(|_| open_reader(path)).collect::<Result<Vec<_>, _>>()?;
        let checkpointer = Checkpointer::start(path, sync);
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT).db()?;
        }
        Ok(Self::new(conn, readers, checkpointer))
    }

    fn new(writer: Connection, readers: Vec<Connection>, checkpointer: Option<Checkpointer>) -> Self {
        Self { readers: Pool::new(readers), checkpointer, writer: Mutex::new(writer), profiles: Mutex::new(None) }
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
        migrate_to(&mut conn, version, &Upgrade::default())
    }

    /// The writing connection, for one call.
    ///
    /// A panic while the lock was held poisons it. The panic can only have happened in
    /// this module, between statements: a transaction it left open is rolled back (as
    /// rusqlite does when unwinding drops it), after which the store is sound again and
    /// the poison is cleared, rather than failing every later call.
    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        match self.writer.lock() {
            Ok(guard) => Ok(guard),
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                if !guard.is_autocommit() {
                    guard.execute_batch("ROLLBACK").db()?;
                }
                self.writer.clear_poison();
                Ok(guard)
            }
        }
    }

    /// Runs `f` in one read transaction: on a read-only connection, or on the writer if
    /// there are none.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        match self.readers.take() {
            Some(mut conn) => {
                // Rolled back when dropped: it changed nothing.
                let tx = conn.transaction().db()?;
                f(&tx)
            }
            None => {
                let mut conn = self.writer()?;
                let tx = conn.transaction().db()?;
                f(&tx)
            }
        }
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`), committed if `f` succeeds,
    /// rolled back if not.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        drop(conn);
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
        Ok(out)
    }

    /// Every profile as of the caller's transaction, in which `profiles_version` is
    /// `version`: the cached ones unless a profile changed since they were read.
    pub(crate) fn profiles_at(&self, conn: &Connection, version: i64) -> Result<Arc<ProfileCache>, StoreError> {
        // The cache is replaced whole under this lock: a poisoned one is still sound.
        let cached = self.profiles.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(cache) = cached.filter(|c| c.version == version) {
            return Ok(cache);
        }
        let fresh = Arc::new(ProfileCache { version, profiles: load_profiles(conn)? });
        let mut cache = self.profiles.lock().unwrap_or_else(PoisonError::into_inner);
        // A reader of an older state must not replace a newer cache.
        if cache.as_ref().is_none_or(|c| c.version < version) {
            *cache = Some(Arc::clone(&fresh));
        }
        Ok(fresh)
    }
}

/// Settings of every connection: room for every statement of this module (rusqlite's
/// default is 16), and plans that do not depend on bound values (so that a cached
/// statement is never compiled again, see the module's documentation).
pub(crate) fn tune(conn: &Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).db()?;
    Ok(())
}

/// A read-only connection to the (migrated, WAL) database at `path`.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    tune(&conn)?;
    Ok(conn)
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
