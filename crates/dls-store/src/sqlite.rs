//! The embedded implementation of [`Store`]: one SQLite file.
//!
//! * Connections: one writer, behind a mutex (SQLite serialises writers anyway), and a
//!   small pool of read-only connections, so that reads run beside each other and beside
//!   the writer (WAL readers see the last committed state, never a half-done write, and
//!   whatever was committed before the read began: a read after a write sees it). Each
//!   call that writes runs in one `BEGIN IMMEDIATE` transaction; each call that reads
//!   several tables reads them in one transaction, so it sees one state. A database in
//!   memory (tests), or one where WAL is impossible, has the writer only, which then
//!   reads too.
//! * Statements are prepared once per connection and kept. The query planner's stability
//!   guarantee (`SQLITE_DBCONFIG_ENABLE_QPSG`) is on: without it SQLite marks a statement
//!   whose plan might depend on a bound value (a `LIMIT ?`, or `column = ?` outside the
//!   index it uses), and the statement cache's clearing of the bindings after every use
//!   then makes SQLite compile it again at its next step.
//! * Durability: WAL with `synchronous=NORMAL` (the default, [`SqliteStore::open`]): a
//!   committed transaction survives the process being killed at any point. Against power
//!   loss or an operating-system crash the last transactions may be lost (never
//!   corrupted); [`SqliteStore::open_full_sync`] sets `synchronous=FULL`, which syncs the
//!   WAL at every commit and closes that window, at the cost of one `fsync` per message.
//! * Checkpoints (copying the WAL into the database file, with their `fsync`s) run on a
//!   thread of their own, beside reads and writes, not after a commit while the next
//!   writes wait; the writer checkpoints itself only when the WAL reaches
//!   [`WAL_AUTOCHECKPOINT`] pages. They change nothing of the durability above.
//! * Schema: `PRAGMA user_version` counts the [`MIGRATIONS`] applied; the missing ones
//!   are applied in one transaction at open. A database from a newer version, or a
//!   SQLite file that is not a DLS database (`PRAGMA application_id`), is refused with
//!   [`StoreError::Corrupt`] and left untouched.
//! * A device's inventory is one record (`inventories.items`, see [`encode_items`]): the
//!   protocol path reads and replaces it whole, 360 items of a phone in one row rather
//!   than 360 rows. The three items the admin listing shows and filters by
//!   (`device-type`, `software-version`, `e164`, without index) are copied into
//!   `devices` when the inventory changes.
//! * An item's "no index" is stored as [`NO_INDEX`] (-1) where `(name, index)` is part of
//!   a key; `Some(0)` is the real index 0.
//! * Profiles are cached parsed, as of `profiles_version.version`, which triggers count
//!   up at every change of `profiles` (by any connection, e.g. another process's).
//! * Nothing read back can make this module panic: a row it cannot understand is
//!   [`StoreError::Corrupt`].
//! * Secure mode: a device's outstanding PIN is kept as the caller sealed it (opaque
//!   bytes, `pin_sealed`; the key is not the store's), read only by [`Store::pin`]; the
//!   engine and the admin API learn only whether there is one. The upgrade from a version
//!   that kept PINs in clear seals them with the caller's [`PinSealer`]
//!   ([`SqliteStore::open_sealing_pins`]) and drops the clear column. A PIN is wiped when
//!   the device bootstraps, fails to, or is put back in default mode. Bootstrap material
//!   kept for reuse (`pending_bootstraps`) is sealed by the caller too. At most one of a
//!   device's certificates is unrevoked: its current one. The audit log outlives deleted
//!   devices; only [`Store::prune`] deletes from it, by age.
//! * Retention: [`Store::prune`] deletes old audit records and old jobs that are over, by
//!   indexes on their times (`audit.at`; `jobs.updated_at` of the jobs over), at most
//!   [`PRUNE_BATCH`] rows per write transaction, so that the writer is given back between
//!   batches and a large backlog never holds up the protocol path.
//! * Digest credentials: a device's secret and the fallback credentials are stored as the
//!   caller sealed them (opaque bytes; the key is not the store's). A device's secret is
//!   in its own table, read only by [`Store::device_secret`], and deleted with the device;
//!   a profile's fallback credentials are deleted with the profile. Both are overwritten
//!   in their pages when deleted (`secure_delete`), like a PIN.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dls_engine::desired::resolve;
use dls_engine::{
    AuditEvent, AuditKind, BootstrapState, Change, Desired, DeviceSnapshot, IssuedCertificate, ItemKey, JobId,
    PendingBootstrap, Profile, SealedBootstrap, Security, SecurityMode, UnixTime, WriteOutcome, WrittenRecord,
};
use dls_message::{Item, ItemStatus, MacAddr};
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OpenFlags, OptionalExtension, Params, Row, TransactionBehavior, params,
};
use zeroize::Zeroizing;

use crate::model::{
    AuditRecord, CertificateRecord, ContactTarget, CredentialScope, DeviceDetails, DeviceFilter, DeviceSpec,
    DeviceSummary, DeviceUpdate, FallbackCredential, FileRecord, JobFilter, JobRecord, NewFile, NewJob, Pruned,
    SecuritySummary, SecurityUpdate, WrittenSummary,
};
use crate::{Store, StoreError};

mod jobs;

/// `PRAGMA application_id` of a DLS database: "DLS1".
const APPLICATION_ID: i64 = 0x444C_5331;

/// How long a call waits for another process's write lock (e.g. the CLI's) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many nonces are kept per device (the most recent ones).
const NONCES_KEPT: i64 = 64;

/// The stored index of an item without an index.
const NO_INDEX: i64 = -1;

/// How many prepared statements are kept, per connection.
const STATEMENT_CACHE: usize = 64;

/// How many read-only connections serve reads at once (besides the writer).
const READERS: usize = 4;

/// After how many commits the writer wakes the checkpointer.
const CHECKPOINT_COMMITS: u64 = 64;

/// How long the checkpointer waits at most before checkpointing what was committed.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);

/// The WAL's size, in pages, from which the writer checkpoints after its commits itself:
/// when the checkpointer falls behind, and so that the WAL restarts from its beginning
/// under constant writing (a checkpoint that new commits overtake never completes).
const WAL_AUTOCHECKPOINT: i64 = 4000;

/// The format of a stored inventory (the first byte of `inventories.items`).
const INVENTORY_FORMAT: u8 = 1;

/// The longest profile name.
const MAX_PROFILE_NAME: usize = 64;

/// The most audit records one call returns.
const MAX_AUDIT_LIMIT: usize = 10_000;

/// The most rows one write transaction of [`Store::prune`] deletes.
const PRUNE_BATCH: usize = 1000;

/// Deletes at most `?2` audit records from before `?1`, by the index `audit_by_time`.
const PRUNE_AUDIT: &str =
    "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit INDEXED BY audit_by_time WHERE at < ?1 LIMIT ?2)";

/// The largest sealed PIN kept (a 32-digit PIN sealed is some 60 bytes).
const MAX_SEALED_PIN: usize = 1024;

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
const REVOKED_BY_FACTORY_RESET: &str = "factory-reset";

/// One schema migration: SQL, then (if any) a step in Rust, in the same transaction.
struct Migration {
    sql: &'static str,
    then: Option<MigrationStep>,
}

/// A migration's step in Rust (e.g. moving data into a form SQL cannot make).
type MigrationStep = fn(&Connection, &Upgrade<'_>) -> Result<(), StoreError>;

/// Seals a device's PIN for keeping at rest with the caller's key: the device and the
/// PIN's digits in, the sealed bytes out (`None`: sealing failed). The store never holds
/// the key; it calls this only while upgrading a database that holds PINs in clear.
pub type PinSealer<'a> = &'a dyn Fn(MacAddr, &str) -> Option<Vec<u8>>;

/// What the migrations' Rust steps may need from the caller.
#[derive(Default)]
struct Upgrade<'a> {
    /// Seals the clear PINs of a schema-8 database (migration 9).
    pin_sealer: Option<PinSealer<'a>>,
}

/// The schema, one migration per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
/// Never edit a released migration; append a new one.
const MIGRATIONS: &[Migration] = &[
    // 1: the initial schema.
    Migration {
        sql: "
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
        outcome     TEXT NOT NULL,                            -- `accepted` | `refused:<status>` | `not-sent:<why>`
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
        then: None,
    },
    // 2: secure mode — a device's security state, its certificates, the audit log.
    Migration {
        sql: "
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
        then: None,
    },
    // 3: HTTP Digest credentials for provisioning-file downloads. The secrets are sealed
    // by the caller: opaque bytes here.
    Migration {
        sql: "
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
        then: None,
    },
    // 4: a device's inventory as one record (the rows of `inventory` are moved into it,
    // then the table is dropped: `move_inventories`), with copies in `devices` of the
    // items the admin listing shows; a counter of profile changes.
    Migration {
        sql: "
    CREATE TABLE inventories (
        mac   TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        items BLOB NOT NULL                                   -- see `encode_items`
    );

    -- Copies of the inventory's items without index of these names (NULL: none).
    ALTER TABLE devices ADD COLUMN device_type TEXT;
    ALTER TABLE devices ADD COLUMN software_version TEXT;
    ALTER TABLE devices ADD COLUMN e164 TEXT;

    -- Counts the changes of `profiles`, so that a cache of them knows when it is stale.
    CREATE TABLE profiles_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO profiles_version (id, version) VALUES (1, 0);
    CREATE TRIGGER profiles_inserted AFTER INSERT ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    CREATE TRIGGER profiles_updated AFTER UPDATE ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    CREATE TRIGGER profiles_deleted AFTER DELETE ON profiles
        BEGIN UPDATE profiles_version SET version = version + 1; END;
    ",
        then: Some(move_inventories),
    },
    // 5: jobs and deployment files.
    Migration {
        sql: "
    CREATE TABLE files (
        id               INTEGER PRIMARY KEY,
        name             TEXT NOT NULL,                       -- file-name
        file_type        TEXT NOT NULL,                       -- file-type
        size             INTEGER NOT NULL,
        sha256           TEXT NOT NULL,                       -- hex
        device_types     TEXT NOT NULL DEFAULT '[]',          -- JSON list (firmware)
        software_type    TEXT,
        software_version TEXT,
        added_at         INTEGER NOT NULL,
        UNIQUE (file_type, name)
    );

    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY,
        mac         TEXT NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        kind        TEXT NOT NULL,                            -- JSON of dls_engine::JobKind
        state       TEXT NOT NULL,                            -- queued, sent, busy-retry, done, failed, cancelled
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,               -- sent without an answer
        accepted    INTEGER NOT NULL DEFAULT 0,               -- a deployment the phone accepted
        answer      TEXT,                                     -- the phone's answer, in words
        items       TEXT,                                     -- JSON items of the answer
        token       TEXT UNIQUE,                              -- a deployment's download token
        file_id     INTEGER,                                  -- a deployment's file
        contact     TEXT,                                     -- the last contact-me, in words
        contact_at  INTEGER
    );
    -- The jobs not over, by device: the protocol path reads them at every message.
    CREATE INDEX jobs_open ON jobs (mac, id) WHERE state IN ('queued', 'sent', 'busy-retry');
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE INDEX jobs_by_file ON jobs (file_id) WHERE file_id IS NOT NULL;
    ",
        then: None,
    },
    // 6: the address a device last called from (where its contact-me may go).
    Migration {
        sql: "
    ALTER TABLE devices ADD COLUMN last_address TEXT;  -- an IP address, canonical form
    ",
        then: None,
    },
    // 7: retention (`Store::prune`) — old audit records and old jobs that are over are
    // deleted by age, without reading the whole table.
    Migration {
        sql: "
    CREATE INDEX audit_by_time ON audit (at);
    -- The jobs that are over, by their last change (the same terms as `jobs::PRUNE`).
    CREATE INDEX jobs_over_by_time ON jobs (updated_at) WHERE state IN ('done', 'failed', 'cancelled');
    ",
        then: None,
    },
    // 8: bootstrap material kept for reuse — a device's repeated start-ups before it
    // bootstraps get the material issued first (sealed by the caller: opaque bytes here).
    Migration {
        sql: "
    CREATE TABLE pending_bootstraps (
        mac       TEXT PRIMARY KEY NOT NULL REFERENCES devices (mac) ON DELETE CASCADE,
        serial    TEXT NOT NULL,                             -- its certificate
        issued_at INTEGER NOT NULL,
        sealed    BLOB NOT NULL
    ) WITHOUT ROWID;
    ",
        then: None,
    },
    // 9: PINs sealed at rest by the caller (`pin_sealed`, opaque bytes here): the clear
    // PINs of older versions are sealed with the caller's `PinSealer` and the clear column
    // is dropped (`seal_pins`).
    Migration {
        sql: "
    ALTER TABLE devices ADD COLUMN pin_sealed BLOB;           -- NULL: no PIN outstanding
    ",
        then: Some(seal_pins),
    },
    // 10: secrets a phone reported (passwords, keys, TANs) are no longer kept: the ones
    // earlier versions stored in inventories and job answers are removed
    // (`scrub_reported_secrets`).
    Migration { sql: "", then: Some(scrub_reported_secrets) },
];

/// The largest sealed bootstrap material kept.
const MAX_SEALED_BOOTSTRAP: usize = 1 << 20;

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
/// Shared between threads; calls block. Reads take one of a few read-only connections
/// (waiting only when all are busy); writes take the one writing connection.
pub struct SqliteStore {
    // Dropped in this order: the writer closes last, so that it checkpoints the WAL and
    // removes it.
    /// The read-only connections; none in memory (the writer reads too).
    readers: Pool,
    /// Checkpoints the WAL beside the writer; none in memory.
    checkpointer: Option<Checkpointer>,
    /// The one connection that writes.
    writer: Mutex<Connection>,
    /// Every profile, parsed, as of a `profiles_version`.
    profiles: Mutex<Option<Arc<ProfileCache>>>,
}

struct ProfileCache {
    /// `profiles_version.version` when read.
    version: i64,
    profiles: Vec<Profile>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("readers", &self.readers.size).finish_non_exhaustive()
    }
}

/// Idle read-only connections; a read takes one and gives it back.
struct Pool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
    /// How many connections there are (idle or taken).
    size: usize,
}

impl Pool {
    fn new(connections: Vec<Connection>) -> Self {
        Self { size: connections.len(), idle: Mutex::new(connections), returned: Condvar::new() }
    }

    /// An idle connection (waiting for one if all are taken); `None` if there are none.
    fn take(&self) -> Option<Lease<'_>> {
        if self.size == 0 {
            return None;
        }
        // Only pushes and pops happen under this lock: a poisoned one is still sound.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = idle.pop() {
                return Some(Lease { pool: self, conn: Some(conn) });
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A read-only connection taken from the [`Pool`], given back when dropped.
struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Connection>,
}

impl Deref for Lease<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A transaction is rolled back when dropped, on an error or a panic too; in case
        // one was left open all the same, it must not pin an old state of the database.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        self.pool.returned.notify_one();
    }
}

/// A thread that copies the WAL's pages into the database (a passive checkpoint) every
/// [`CHECKPOINT_COMMITS`] commits or after [`CHECKPOINT_IDLE`], on its own connection,
/// rather than the writer doing it after a commit while writes wait. The copy and its
/// `fsync`s then run beside reads and writes.
struct Checkpointer {
    shared: Arc<CheckpointerShared>,
    thread: Option<JoinHandle<()>>,
}

struct CheckpointerShared {
    /// Commits so far.
    commits: AtomicU64,
    /// Whether to end.
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Checkpointer {
    /// Starts the thread, with a connection to the database at `path`; `None` if either
    /// fails (the writer then checkpoints as SQLite does by default).
    fn start(path: &Path, synchronous: &str) -> Option<Self> {
        let conn = Connection::open(path).ok()?;
        // The checkpoint's `fsync`s follow this connection's setting.
        conn.pragma_update(None, "synchronous", synchronous).ok()?;
        let shared =
            Arc::new(CheckpointerShared { commits: AtomicU64::new(0), stop: Mutex::new(false), wake: Condvar::new() });
        let thread = std::thread::Builder::new()
            .name("dls-store-checkpoint".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_checkpoints(&conn, &shared)
            })
            .ok()?;
        Some(Self { shared, thread: Some(thread) })
    }

    /// Counts a commit, waking the thread when there are enough to checkpoint.
    fn committed(&self) {
        let commits = self.shared.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if commits.is_multiple_of(CHECKPOINT_COMMITS) {
            // Under the lock, so that the wake-up cannot fall between the thread's count
            // and its wait.
            let _stop = self.shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_checkpoints(conn: &Connection, shared: &CheckpointerShared) {
    let mut done = 0;
    let mut idle = false;
    let mut stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
    while !*stop {
        let commits = shared.commits.load(Ordering::Relaxed);
        if commits - done >= CHECKPOINT_COMMITS || (idle && commits != done) {
            drop(stop);
            // Copies what no reader still needs, waiting for nobody and blocking nobody.
            // A failure is harmless: the next checkpoint, or the writer's, copies it.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            done = commits;
            idle = false;
            stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        let (guard, waited) = shared.wake.wait_timeout(stop, CHECKPOINT_IDLE).unwrap_or_else(PoisonError::into_inner);
        stop = guard;
        idle = waited.timed_out();
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
    fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
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
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
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
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
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

    /// Runs `delete` (a statement deleting at most `?2` rows from before `?1`) in write
    /// transactions of at most [`PRUNE_BATCH`] rows until it deletes fewer: the writer is
    /// given back between batches. Returns how many rows were deleted.
    fn delete_in_batches(&self, delete: &str, before: UnixTime) -> Result<u64, StoreError> {
        // No stored time is later than `i64::MAX`: a later bound deletes everything too.
        let before = i64::try_from(before.0).unwrap_or(i64::MAX);
        let limit = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let mut total = 0_u64;
        loop {
            let deleted = self.write(|tx| tx.cached(delete).db()?.execute(params![before, limit]).db())?;
            total = total.saturating_add(u64::try_from(deleted).unwrap_or(u64::MAX));
            if deleted < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Every profile as of the caller's transaction, in which `profiles_version` is
    /// `version`: the cached ones unless a profile changed since they were read.
    fn profiles_at(&self, conn: &Connection, version: i64) -> Result<Arc<ProfileCache>, StoreError> {
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
fn tune(conn: &Connection) -> Result<(), StoreError> {
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
fn migrate(conn: &mut Connection, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len(), upgrade)
}

/// Applies the migrations up to schema version `target` in one transaction (never down).
fn migrate_to(conn: &mut Connection, target: usize, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Again, under the write lock: another process may have migrated meanwhile.
    let start = check_compatible(&tx)?;
    let Some(pending) = MIGRATIONS.get(start..target).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    for migration in pending {
        tx.execute_batch(migration.sql).db()?;
        if let Some(then) = migration.then {
            then(&tx, upgrade)?;
        }
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
const NOT_SENT_PREFIX: &str = "not-sent:";

fn outcome_to_sql(outcome: &WriteOutcome) -> String {
    match outcome {
        WriteOutcome::Accepted => ACCEPTED.to_owned(),
        WriteOutcome::Refused(status) => format!("{REFUSED_PREFIX}{}", status.as_str()),
        WriteOutcome::NotSent(why) => format!("{NOT_SENT_PREFIX}{why}"),
    }
}

fn outcome_from_sql(text: &str) -> Result<WriteOutcome, StoreError> {
    if text == ACCEPTED {
        return Ok(WriteOutcome::Accepted);
    }
    if let Some(why) = text.strip_prefix(NOT_SENT_PREFIX) {
        return Ok(WriteOutcome::NotSent(why.to_owned()));
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

/// A sealed PIN is opaque, but not empty nor unbounded.
fn check_sealed_pin(sealed: &[u8]) -> Result<(), StoreError> {
    if sealed.is_empty() || sealed.len() > MAX_SEALED_PIN {
        return Err(StoreError::Invalid(format!("a sealed PIN of {} bytes (1 to {MAX_SEALED_PIN})", sealed.len())));
    }
    Ok(())
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
    let mut stmt = conn.cached(sql).db()?;
    let rows = stmt.query_map(params, f).db()?;
    rows.collect::<rusqlite::Result<Vec<T>>>().db()
}

/// Statements from the connection's cache: prepared at their first use on a connection,
/// then kept (and never compiled again: see [`tune`] and the test of it).
trait Cached {
    fn cached(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>>;
}

impl Cached for Connection {
    fn cached(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>> {
        #[cfg(test)]
        tests::used(sql);
        self.prepare_cached(sql)
    }
}

// ---------------------------------------------------------------------------------------
// Reads.

fn device_exists(conn: &Connection, mac: &str) -> Result<bool, StoreError> {
    conn.cached("SELECT 1 FROM devices WHERE mac = ?1").db()?.exists([mac]).db()
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

/// `profiles_version.version`: changes whenever a profile does.
fn profiles_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.cached("SELECT version FROM profiles_version").db()?.query_row([], |r| r.get(0)).db()
}

/// A device's security columns, as read. The (sealed) PIN itself is read only by `pin`.
struct SecurityRow {
    mode: SecurityMode,
    state: BootstrapState,
    pin_outstanding: bool,
    pin_issued_at: Option<UnixTime>,
    tan_failures: u32,
    /// The current certificate, if it exists and is not revoked.
    certificate: Option<String>,
    /// The bootstrap material kept for reuse.
    pending: Option<PendingBootstrap>,
}

impl SecurityRow {
    fn into_security(self) -> Security {
        Security {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding,
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
            pending: self.pending,
        }
    }

    fn into_summary(self) -> SecuritySummary {
        SecuritySummary {
            mode: self.mode,
            state: self.state,
            pin_outstanding: self.pin_outstanding,
            pin_issued_at: self.pin_issued_at,
            tan_failures: self.tan_failures,
            certificate: self.certificate,
        }
    }
}

/// A device's security, or `None` if the device is unknown.
fn load_security(conn: &Connection, mac: &str) -> Result<Option<SecurityRow>, StoreError> {
    type Columns = (String, String, bool, Option<i64>, i64, Option<String>, Option<String>, Option<i64>);
    let row: Option<Columns> = conn
        .cached(
            "SELECT d.security_mode, d.bootstrap_state, d.pin_sealed IS NOT NULL, d.pin_issued_at, d.tan_failures,
                    (SELECT c.serial FROM certificates c
                     WHERE c.serial = d.certificate_serial AND c.mac = d.mac AND c.revoked_at IS NULL),
                    p.serial, p.issued_at
             FROM devices d LEFT JOIN pending_bootstraps p ON p.mac = d.mac WHERE d.mac = ?1",
        )
        .db()?
        .query_row([mac], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .optional()
        .db()?;
    let Some((mode, state, pin_outstanding, pin_issued_at, tan_failures, certificate, pending_serial, pending_at)) =
        row
    else {
        return Ok(None);
    };
    let pending = match (pending_serial, pending_at) {
        (Some(serial), Some(at)) => Some(PendingBootstrap { serial, issued_at: time_from_sql(at)? }),
        _ => None,
    };
    Ok(Some(SecurityRow {
        mode: mode_from_sql(&mode)?,
        state: state_from_sql(&state)?,
        pin_outstanding,
        pin_issued_at: opt_time_from_sql(pin_issued_at)?,
        tan_failures: count_from_sql(tan_failures)?,
        certificate,
        pending,
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

// ---------------------------------------------------------------------------------------
// Inventories.

/// An inventory item, borrowed: from a stored inventory or from a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ItemRef<'a> {
    name: &'a str,
    index: Option<u32>,
    value: &'a str,
    item_type: Option<&'a str>,
}

impl<'a> ItemRef<'a> {
    fn of(item: &'a Item) -> Self {
        Self { name: &item.name, index: item.index, value: &item.value, item_type: item.item_type.as_deref() }
    }

    fn to_item(self) -> Item {
        Item {
            name: self.name.to_owned(),
            index: self.index,
            status: None,
            value: self.value.to_owned(),
            item_type: self.item_type.map(str::to_owned),
        }
    }
}

/// `base` with `items` merged in, as an upsert by item key would: an item whose key is
/// there changes its value and type in place, a new key goes to the end; items with a
/// status (a phone's refusals) are skipped. Also whether anything changed.
fn merge_items<'a>(mut base: Vec<ItemRef<'a>>, items: &'a [Item]) -> (Vec<ItemRef<'a>>, bool) {
    let mut at: HashMap<(&str, Option<u32>), usize> = HashMap::with_capacity(base.len() + items.len());
    at.extend(base.iter().enumerate().map(|(position, i)| ((i.name, i.index), position)));
    base.reserve(items.len());
    let mut changed = false;
    for item in items.iter().filter(|i| i.status.is_none()) {
        let new = ItemRef::of(item);
        match at.entry((&item.name, item.index)) {
            Entry::Occupied(e) => {
                let stored = &mut base[*e.get()];
                changed |= *stored != new;
                *stored = new;
            }
            Entry::Vacant(e) => {
                e.insert(base.len());
                base.push(new);
                changed = true;
            }
        }
    }
    (base, changed)
}

/// The stored form of an inventory: [`INVENTORY_FORMAT`], the number of items, then each
/// item's name, index (0: none, else the index + 1), value and type (0: none, else its
/// length + 1, then its bytes). Numbers are LEB128 varints; a string is its length in
/// bytes, then its UTF-8.
fn encode_items(items: &[ItemRef<'_>]) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.name.len() + i.value.len() + i.item_type.map_or(0, str::len) + 8).sum();
    let mut out = Vec::with_capacity(size + 11);
    out.push(INVENTORY_FORMAT);
    put_varint(&mut out, length(items.len()));
    for item in items {
        put_str(&mut out, item.name);
        put_varint(&mut out, item.index.map_or(0, |i| u64::from(i) + 1));
        put_str(&mut out, item.value);
        match item.item_type {
            None => out.push(0),
            Some(t) => {
                put_varint(&mut out, length(t.len()) + 1);
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
    out
}

/// A length as stored (lossless: no `usize` is wider than 64 bits).
fn length(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(u8::try_from(n & 0x7f).unwrap_or_default() | 0x80);
        n >>= 7;
    }
    out.push(u8::try_from(n).unwrap_or_default());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, length(s.len()));
    out.extend_from_slice(s.as_bytes());
}

/// The items of a stored inventory (see [`encode_items`]), borrowed from it; `None` if
/// it is damaged.
fn decode_items(stored: &[u8]) -> Option<Vec<ItemRef<'_>>> {
    let (&format, mut rest) = stored.split_first()?;
    if format != INVENTORY_FORMAT {
        return None;
    }
    let count = usize::try_from(varint(&mut rest)?).ok()?;
    // An item takes 4 bytes at least: a larger count is damage (and must not allocate).
    if count > rest.len() / 4 {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let name = text(&mut rest)?;
        let index = match varint(&mut rest)? {
            0 => None,
            i => Some(u32::try_from(i - 1).ok()?),
        };
        let value = text(&mut rest)?;
        let item_type = match varint(&mut rest)? {
            0 => None,
            n => Some(std::str::from_utf8(bytes(&mut rest, n - 1)?).ok()?),
        };
        items.push(ItemRef { name, index, value, item_type });
    }
    rest.is_empty().then_some(items)
}

fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn bytes<'a>(input: &mut &'a [u8], n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok().filter(|n| *n <= input.len())?;
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Some(taken)
}

fn text<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    let n = varint(input)?;
    std::str::from_utf8(bytes(input, n)?).ok()
}

/// A stored inventory's items, or [`StoreError::Corrupt`].
fn decode_stored<'a>(stored: ValueRef<'a>, mac: &str) -> Result<Vec<ItemRef<'a>>, StoreError> {
    match stored {
        ValueRef::Null => Some(Vec::new()),
        ValueRef::Blob(b) => decode_items(b),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt(format!("the inventory of device {mac}")))
}

/// A stored inventory (`inventories.items`, NULL: none) as items.
fn inventory_from_sql(stored: ValueRef<'_>, mac: &str) -> Result<Vec<Item>, StoreError> {
    Ok(decode_stored(stored, mac)?.into_iter().map(ItemRef::to_item).collect())
}

fn load_inventory(conn: &Connection, mac: &str) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.cached("SELECT items FROM inventories WHERE mac = ?1").db()?;
    let mut rows = stmt.query([mac]).db()?;
    match rows.next().db()? {
        Some(row) => inventory_from_sql(row.get_ref(0).db()?, mac),
        None => Ok(Vec::new()),
    }
}

/// An inventory in its stored form, with the items copied into `devices`.
struct Encoded<'a> {
    stored: Vec<u8>,
    device_type: Option<&'a str>,
    software_version: Option<&'a str>,
    e164: Option<&'a str>,
}

impl<'a> Encoded<'a> {
    fn new(items: &[ItemRef<'a>]) -> Self {
        let find = |name: &str| items.iter().find(|i| i.name == name && i.index.is_none()).map(|i| i.value);
        Encoded {
            stored: encode_items(items),
            device_type: find("device-type"),
            software_version: find("software-version"),
            e164: find("e164"),
        }
    }

    /// The inventory `items` make (see [`merge_items`]), as a replacement.
    fn replacing(items: &'a [Item]) -> Self {
        Self::new(&merge_items(Vec::new(), items).0)
    }
}

/// Stores the device's inventory.
fn store_inventory(conn: &Connection, mac: &str, inventory: &Encoded<'_>) -> Result<(), StoreError> {
    conn.cached(
        "INSERT INTO inventories (mac, items) VALUES (?1, ?2) ON CONFLICT (mac) DO UPDATE SET items = excluded.items",
    )
    .db()?
    .execute(params![mac, inventory.stored])
    .db()?;
    conn.cached("UPDATE devices SET device_type = ?2, software_version = ?3, e164 = ?4 WHERE mac = ?1")
        .db()?
        .execute(params![mac, inventory.device_type, inventory.software_version, inventory.e164])
        .db()?;
    Ok(())
}

/// Merges `items` into the device's inventory (see [`merge_items`]); writes nothing when
/// they change nothing (a phone reports the same items at every start-up).
fn merge_inventory(conn: &Connection, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    if items.iter().all(|i| i.status.is_some()) {
        return Ok(());
    }
    let stored: Option<Vec<u8>> = conn
        .cached("SELECT items FROM inventories WHERE mac = ?1")
        .db()?
        .query_row([mac], |r| r.get(0))
        .optional()
        .db()?;
    let base = match &stored {
        Some(stored) => decode_stored(ValueRef::Blob(stored), mac)?,
        None => Vec::new(),
    };
    let (merged, changed) = merge_items(base, items);
    if !changed && stored.is_some() {
        return Ok(());
    }
    store_inventory(conn, mac, &Encoded::new(&merged))
}

/// Migration 9: seals the clear PINs of older versions with the caller's sealer into
/// `pin_sealed`, then drops the clear column (its values overwritten: `secure_delete`).
/// Without a sealer, a database that holds a clear PIN is not upgraded.
fn seal_pins(conn: &Connection, upgrade: &Upgrade<'_>) -> Result<(), StoreError> {
    // Not cached: it runs once.
    let rows: Vec<(String, Zeroizing<String>)> = {
        let mut stmt = conn.prepare("SELECT mac, pin FROM devices WHERE pin IS NOT NULL ORDER BY mac").db()?;
        stmt.query_map([], |r| Ok((r.get(0)?, Zeroizing::new(r.get::<_, String>(1)?))))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?
    };
    if !rows.is_empty() {
        let Some(seal) = upgrade.pin_sealer else {
            return Err(StoreError::Invalid(
                "the database holds PINs in clear from an older version of dls; `dls serve` seals them with \
                 its secrets key when it starts"
                    .into(),
            ));
        };
        let mut update = conn.prepare("UPDATE devices SET pin_sealed = ?2, pin = NULL WHERE mac = ?1").db()?;
        for (mac, pin) in &rows {
            let sealed = seal(mac_from_sql(mac)?, pin).ok_or_else(|| StoreError::Io("sealing a PIN failed".into()))?;
            check_sealed_pin(&sealed)?;
            update.execute(params![mac, sealed]).db()?;
        }
    }
    conn.execute_batch("ALTER TABLE devices DROP COLUMN pin").db()
}

/// Migration 4: moves the rows of `inventory` (schema 1 to 3) into `inventories`, in
/// their order, one device at a time, and drops the table.
fn move_inventories(conn: &Connection, _: &Upgrade<'_>) -> Result<(), StoreError> {
    // Not cached: it runs once.
    let mut stmt = conn
        .prepare(
            "SELECT mac, name, idx, value, type FROM inventory
             WHERE mac IN (SELECT mac FROM devices) ORDER BY mac, seq",
        )
        .db()?;
    let mut rows = stmt.query([]).db()?;
    let mut device: Option<String> = None;
    let mut items = Vec::new();
    while let Some(row) = rows.next().db()? {
        let mac: String = row.get(0).db()?;
        if device.as_ref() != Some(&mac)
            && let Some(done) = device.replace(mac)
        {
            store_inventory(conn, &done, &Encoded::replacing(&items))?;
            items.clear();
        }
        items.push(item_from_row((row.get(1).db()?, row.get(2).db()?, row.get(3).db()?, row.get(4).db()?))?);
    }
    if let Some(done) = device {
        store_inventory(conn, &done, &Encoded::replacing(&items))?;
    }
    drop(rows);
    drop(stmt);
    conn.execute_batch("DROP TABLE inventory").db()
}

/// Migration 10: removes the items [`dls_engine::secret_items::is_secret`] names from every
/// stored inventory and job answer.
fn scrub_reported_secrets(conn: &Connection, _: &Upgrade<'_>) -> Result<(), StoreError> {
    use dls_engine::secret_items::is_secret;
    // Not cached: it runs once.
    let mut stmt = conn.prepare("SELECT mac, items FROM inventories").db()?;
    let inventories: Vec<(String, Vec<u8>)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?.collect::<Result<_, _>>().db()?;
    drop(stmt);
    for (mac, stored) in &inventories {
        let items = decode_stored(ValueRef::Blob(stored), mac)?;
        if items.iter().any(|i| is_secret(i.name)) {
            let kept: Vec<ItemRef<'_>> = items.into_iter().filter(|i| !is_secret(i.name)).collect();
            store_inventory(conn, mac, &Encoded::new(&kept))?;
        }
    }
    let mut stmt = conn.prepare("SELECT id, items FROM jobs WHERE items IS NOT NULL").db()?;
    let answers: Vec<(i64, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?.collect::<Result<_, _>>().db()?;
    drop(stmt);
    for (id, json) in answers {
        let mut items = items_from_json(&json)?;
        let before = items.len();
        items.retain(|i| !is_secret(&i.name));
        if items.len() != before {
            conn.execute("UPDATE jobs SET items = ?2 WHERE id = ?1", params![id, items_to_json(&items)?]).db()?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writes.

fn insert_nonce(conn: &Connection, mac: &str, nonce: &str) -> Result<(), StoreError> {
    // `seen_at`: the device's last contact, which a Contact earlier in the batch has set.
    let inserted = conn
        .cached(
            "INSERT OR IGNORE INTO nonces (mac, nonce, seen_at)
             VALUES (?1, ?2, (SELECT coalesce(last_contact_at, registered_at) FROM devices WHERE mac = ?1))",
        )
        .db()?
        .execute(params![mac, nonce])
        .db()?;
    if inserted > 0 {
        conn.cached(
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
    if conn.cached("SELECT 1 FROM certificates WHERE serial = ?1").db()?.exists([&certificate.serial]).db()? {
        return Err(StoreError::Conflict { what: format!("certificate serial number {}", certificate.serial) });
    }
    revoke_certificates(conn, mac, at, SUPERSEDED)?;
    drop_pending(conn, mac)?;
    conn.cached("INSERT INTO certificates (serial, mac, issued_at, not_after) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![certificate.serial, mac, issued_at, not_after])
        .db()?;
    conn.cached("UPDATE devices SET certificate_serial = ?2 WHERE mac = ?1")
        .db()?
        .execute(params![mac, certificate.serial])
        .db()?;
    Ok(())
}

/// Forgets the bootstrap material kept for the device, if any.
/// A security change of the device `key` at `at` (see [`SecurityUpdate`]), with its audit
/// records, in the caller's transaction.
fn change_security(conn: &Connection, key: &str, at: UnixTime, update: &SecurityUpdate) -> Result<(), StoreError> {
    if let Some(pin) = &update.new_pin {
        check_sealed_pin(pin)?;
    }
    let Some(before) = load_security(conn, key)? else {
        return Err(StoreError::NotFound { what: format!("device {key}") });
    };
    if update.new_pin.is_some() && before.state == BootstrapState::Secured && !update.reset {
        return Err(StoreError::Invalid("device is bootstrapped; reset it first".into()));
    }
    let audit = |kind: AuditKind, detail: &str| insert_audit(conn, key, at, kind, detail);
    let mut pin_outstanding = before.pin_outstanding;
    // Material issued before a reset, a mode change or a new PIN is never sent again
    // (for `pin` it is sealed with the PIN it replaces).
    if update.reset || update.new_pin.is_some() || update.mode.is_some_and(|m| m != before.mode) {
        drop_pending(conn, key)?;
    }

    if update.reset {
        conn.cached("UPDATE devices SET bootstrap_state = ?2, tan_failures = 0 WHERE mac = ?1")
            .db()?
            .execute(params![key, BootstrapState::NotBootstrapped.as_str()])
            .db()?;
        audit(AuditKind::DeviceReset, &format!("reset to not-bootstrapped (was {})", before.state.as_str()))?;
        for serial in revoke_certificates(conn, key, at, REVOKED_BY_RESET)? {
            audit(AuditKind::CertificateRevoked, &format!("certificate {serial} revoked: {REVOKED_BY_RESET}"))?;
        }
    }

    if let Some(mode) = update.mode.filter(|m| *m != before.mode) {
        let wipe = mode == SecurityMode::Default && pin_outstanding;
        conn.cached(
            "UPDATE devices SET security_mode = ?2,
                                pin_sealed = CASE WHEN ?3 THEN NULL ELSE pin_sealed END,
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
        conn.cached(
            "UPDATE devices SET pin_sealed = ?2, pin_issued_at = ?3, tan_failures = 0,
                                bootstrap_state = CASE bootstrap_state WHEN ?4 THEN ?5 ELSE bootstrap_state END
             WHERE mac = ?1",
        )
        .db()?
        .execute(params![
            key,
            pin.as_slice(),
            time_to_sql(at)?,
            BootstrapState::Failed.as_str(),
            BootstrapState::NotBootstrapped.as_str()
        ])
        .db()?;
        let detail = if pin_outstanding { "PIN issued, replacing the outstanding one" } else { "PIN issued" };
        audit(AuditKind::PinIssued, detail)?;
    }
    Ok(())
}

/// Sets (`Some`) or removes (`None`) the sealed secret of the device `key`, in the
/// caller's transaction.
fn put_device_secret(conn: &Connection, key: &str, sealed: Option<&[u8]>) -> Result<(), StoreError> {
    match sealed {
        Some(sealed) => conn
            .cached(
                "INSERT INTO device_secrets (mac, sealed) VALUES (?1, ?2)
                 ON CONFLICT (mac) DO UPDATE SET sealed = excluded.sealed",
            )
            .db()?
            .execute(params![key, sealed])
            .db()?,
        None => conn.cached("DELETE FROM device_secrets WHERE mac = ?1").db()?.execute([key]).db()?,
    };
    Ok(())
}

fn drop_pending(conn: &Connection, mac: &str) -> Result<(), StoreError> {
    conn.cached("DELETE FROM pending_bootstraps WHERE mac = ?1").db()?.execute([mac]).db()?;
    Ok(())
}

/// Keeps the bootstrap material just issued to the device, for its current certificate.
fn keep_bootstrap(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    serial: &str,
    sealed: &SealedBootstrap,
) -> Result<(), StoreError> {
    check_serial(serial)?;
    if sealed.0.is_empty() || sealed.0.len() > MAX_SEALED_BOOTSTRAP {
        return Err(StoreError::Invalid(format!("sealed bootstrap material of {} bytes", sealed.0.len())));
    }
    conn.cached(
        "INSERT INTO pending_bootstraps (mac, serial, issued_at, sealed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (mac) DO UPDATE SET serial = excluded.serial, issued_at = excluded.issued_at,
                                         sealed = excluded.sealed",
    )
    .db()?
    .execute(params![mac, serial, time_to_sql(at)?, sealed.0.as_slice()])
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
        conn.cached(
            "UPDATE certificates SET revoked_at = ?2, revoke_reason = ?3 WHERE mac = ?1 AND revoked_at IS NULL",
        )
        .db()?
        .execute(params![mac, at, reason])
        .db()?;
    }
    conn.cached("UPDATE devices SET certificate_serial = NULL WHERE mac = ?1").db()?.execute([mac]).db()?;
    Ok(serials)
}

fn insert_audit(conn: &Connection, mac: &str, at: UnixTime, kind: AuditKind, detail: &str) -> Result<(), StoreError> {
    conn.cached("INSERT INTO audit (at, mac, kind, detail) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![time_to_sql(at)?, mac, kind.as_str(), detail])
        .db()?;
    Ok(())
}

/// Applies one message's changes inside the caller's transaction.
///
/// `replacements`: for each change, its inventory encoded if it is a `ReplaceInventory`
/// (done before the transaction, which it does not depend on).
fn apply_changes(
    conn: &Connection,
    mac: &str,
    changes: &[Change],
    replacements: &[Option<Encoded<'_>>],
) -> Result<(), StoreError> {
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
    for (i, change) in changes.iter().enumerate() {
        match change {
            // Done above, before any other change of the batch. A known device keeps its
            // registration time and its mode (an administrator may have changed it).
            Change::Register { .. } => {}
            Change::Contact { at, reason } => {
                conn.cached("UPDATE devices SET last_contact_at = ?2, last_reason = ?3 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?, reason.as_str()])
                    .db()?;
            }
            Change::Nonce(nonce) => insert_nonce(conn, mac, nonce)?,
            Change::MergeInventory(items) => merge_inventory(conn, mac, items)?,
            Change::ReplaceInventory { items, at } => {
                conn.cached("UPDATE devices SET inventory_at = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?])
                    .db()?;
                match replacements.get(i).and_then(Option::as_ref) {
                    Some(encoded) => store_inventory(conn, mac, encoded)?,
                    None => store_inventory(conn, mac, &Encoded::replacing(items))?,
                }
            }
            Change::Written(records) => {
                let mut stmt = conn
                    .cached(
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
                conn.cached("UPDATE devices SET last_deployment_status = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, items_to_json(items)?])
                    .db()?;
            }
            Change::PhoneCleanUp { reason } => {
                conn.cached("UPDATE devices SET last_phone_cleanup_reason = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, reason])
                    .db()?;
            }
            Change::IssueCertificate { at, certificate } => issue_certificate(conn, mac, *at, certificate)?,
            Change::KeepBootstrap { at, serial, sealed } => keep_bootstrap(conn, mac, *at, serial, sealed)?,
            Change::Bootstrapped { at } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin_sealed = NULL, pin_issued_at = NULL, tan_failures = 0
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::Secured.as_str()])
                .db()?;
            }
            Change::TanFailed => {
                conn.cached("UPDATE devices SET tan_failures = min(tan_failures + 1, ?2) WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, u32::MAX])
                    .db()?;
            }
            Change::BootstrapFailed { at, revoke_certificate } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin_sealed = NULL, pin_issued_at = NULL WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::Failed.as_str()])
                .db()?;
                if *revoke_certificate {
                    revoke_certificates(conn, mac, *at, REVOKED_BY_BOOTSTRAP_FAILURE)?;
                }
            }
            // The phone forgot its secure-mode state; the mode stays.
            Change::SecurityReset { at } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, tan_failures = 0, pin_sealed = NULL, pin_issued_at = NULL
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::NotBootstrapped.as_str()])
                .db()?;
                revoke_certificates(conn, mac, *at, REVOKED_BY_FACTORY_RESET)?;
            }
            Change::ForgetConfiguration => {
                conn.cached("UPDATE devices SET inventory_at = NULL WHERE mac = ?1").db()?.execute([mac]).db()?;
                conn.cached("DELETE FROM written WHERE mac = ?1").db()?.execute([mac]).db()?;
            }
            Change::CalledFrom(ip) => {
                conn.cached("UPDATE devices SET last_address = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, ip.to_canonical().to_string()])
                    .db()?;
            }
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(conn, mac, *at, *kind, detail)?,
            Change::Job(update) => jobs::apply_update(conn, mac, update)?,
            // A change this version does not know must not be dropped silently.
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// Checks that every profile named exists, once each.
fn check_assignable(conn: &Connection, names: &[String]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    let mut stmt = conn.cached("SELECT 1 FROM profiles WHERE name = ?1").db()?;
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
    conn.cached("DELETE FROM device_profiles WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt = conn.cached("INSERT INTO device_profiles (mac, position, profile) VALUES (?1, ?2, ?3)").db()?;
    for (position, name) in (0_i64..).zip(names) {
        stmt.execute(params![mac, position, name]).db()?;
    }
    Ok(())
}

fn replace_overrides(conn: &Connection, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    conn.cached("DELETE FROM device_overrides WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt = conn
        .cached("INSERT INTO device_overrides (mac, position, name, idx, value, type) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
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

/// What the engine needs to know of a device, read in the caller's transaction.
fn snapshot(tx: &Connection, mac: &str) -> Result<DeviceSnapshot, StoreError> {
    let mut stmt = tx
        .cached(
            "SELECT d.inventory_at, i.items FROM devices d LEFT JOIN inventories i ON i.mac = d.mac
             WHERE d.mac = ?1",
        )
        .db()?;
    let mut rows = stmt.query([mac]).db()?;
    let Some(row) = rows.next().db()? else {
        return Ok(DeviceSnapshot::unknown());
    };
    let inventory_at: Option<i64> = row.get(0).db()?;
    let inventory = inventory_from_sql(row.get_ref(1).db()?, mac)?;
    drop(rows);
    let nonces = query_all(tx, "SELECT nonce FROM nonces WHERE mac = ?1 ORDER BY seq", [mac], |r| r.get(0))?;
    let security = load_security(tx, mac)?.map(SecurityRow::into_security).unwrap_or_default();
    Ok(DeviceSnapshot {
        known: true,
        inventory,
        inventory_at: opt_time_from_sql(inventory_at)?,
        written: load_written(tx, mac)?.into_iter().collect(),
        recent_nonces: nonces,
        security,
        jobs: jobs::open_jobs(tx, mac)?,
    })
}

/// What a device's desired configuration is made of, as read in one transaction.
struct DesiredInputs {
    profiles: Arc<ProfileCache>,
    device_type: Option<String>,
    assigned: Vec<String>,
    overrides: Vec<Item>,
}

impl DesiredInputs {
    /// The profiles layered (outside the transaction: it reads nothing).
    fn resolve(&self) -> Desired {
        resolve(&self.profiles.profiles, self.device_type.as_deref(), &self.assigned, &self.overrides)
    }
}

impl SqliteStore {
    /// What the device's desired configuration is made of, read in the caller's
    /// transaction. An unknown device has no inventory, assignments nor overrides: only
    /// what applies to every device.
    fn desired_inputs(&self, tx: &Connection, mac: &str) -> Result<DesiredInputs, StoreError> {
        let (version, device_type): (i64, Option<String>) = tx
            .cached("SELECT (SELECT version FROM profiles_version), (SELECT device_type FROM devices WHERE mac = ?1)")
            .db()?
            .query_row([mac], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?;
        Ok(DesiredInputs {
            profiles: self.profiles_at(tx, version)?,
            device_type,
            assigned: load_assigned(tx, mac)?,
            overrides: load_overrides(tx, mac)?,
        })
    }
}

// ---------------------------------------------------------------------------------------

impl Store for SqliteStore {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        let mac = mac.to_string();
        self.read(|tx| snapshot(tx, &mac))
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        let mac = mac.to_string();
        let inputs = self.read(|tx| self.desired_inputs(tx, &mac))?;
        Ok(inputs.resolve())
    }

    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        let mac = mac.to_string();
        let (device, inputs) = self.read(|tx| Ok((snapshot(tx, &mac)?, self.desired_inputs(tx, &mac)?)))?;
        Ok((device, inputs.resolve()))
    }

    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        let mac = mac.to_string();
        // Not under the writer's lock: what depends on nothing stored.
        let replacements: Vec<Option<Encoded<'_>>> = changes
            .iter()
            .map(|c| match c {
                Change::ReplaceInventory { items, .. } => Some(Encoded::replacing(items)),
                _ => None,
            })
            .collect();
        // On error, everything is rolled back.
        self.write(|tx| apply_changes(tx, &mac, changes, &replacements))
    }

    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError> {
        let search = filter.search.as_deref().filter(|s| !s.is_empty());
        // A MAC is stored as 12 upper-case hex digits: match the search without separators.
        let mac_needle = search
            .map(|s| s.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect::<String>().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.read(|tx| {
            type SummaryRow = (String, Option<String>, Option<String>, Option<String>, Option<i64>);
            let rows: Vec<SummaryRow> = query_all(
                tx,
                "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at
                 FROM devices d
                 WHERE (?1 IS NULL OR EXISTS
                           (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
                   AND (?2 IS NULL OR d.device_type = ?2)
                   AND (?3 IS NULL OR instr(d.mac, ?4) > 0 OR instr(lower(d.e164), lower(?3)) > 0)
                 ORDER BY d.mac
                 LIMIT ?5",
                params![filter.profile, filter.device_type, search, mac_needle, limit],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            rows.into_iter()
                .map(|(mac, device_type, software_version, e164, last_contact)| {
                    Ok(DeviceSummary {
                        profiles: load_assigned(tx, &mac)?,
                        mac: mac_from_sql(&mac)?,
                        device_type,
                        software_version,
                        e164,
                        last_contact: opt_time_from_sql(last_contact)?,
                    })
                })
                .collect()
        })
    }

    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            type DeviceRow = (
                i64,
                Option<i64>,
                Option<String>,
                Option<i64>,
                Option<String>,
                Option<String>,
                (Option<String>, Option<String>, Option<String>),
            );
            let row: Option<DeviceRow> = tx
                .cached(
                    "SELECT registered_at, last_contact_at, last_reason, inventory_at,
                            last_phone_cleanup_reason, last_deployment_status, device_type, software_version, e164
                     FROM devices WHERE mac = ?1",
                )
                .db()?
                .query_row([&key], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        (r.get(6)?, r.get(7)?, r.get(8)?),
                    ))
                })
                .optional()
                .db()?;
            let Some((registered_at, last_contact, last_reason, inventory_at, cleanup_reason, deployment, identity)) =
                row
            else {
                return Ok(None);
            };
            let (device_type, software_version, e164) = identity;
            let summary = DeviceSummary {
                mac,
                device_type,
                software_version,
                e164,
                profiles: load_assigned(tx, &key)?,
                last_contact: opt_time_from_sql(last_contact)?,
            };
            let written = load_written(tx, &key)?
                .into_iter()
                .map(|(item, record)| WrittenSummary { item, outcome: record.outcome })
                .collect();
            Ok(Some(DeviceDetails {
                summary,
                registered_at: time_from_sql(registered_at)?,
                last_reason,
                inventory_at: opt_time_from_sql(inventory_at)?,
                overrides: load_overrides(tx, &key)?,
                inventory: load_inventory(tx, &key)?,
                written,
                last_deployment_status: deployment.as_deref().map(items_from_json).transpose()?.unwrap_or_default(),
                last_phone_cleanup_reason: cleanup_reason,
                security: load_security(tx, &key)?.map(SecurityRow::into_summary).unwrap_or_default(),
            }))
        })
    }

    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec, at: UnixTime) -> Result<(), StoreError> {
        let mac = mac.to_string();
        check_overrides(&spec.overrides)?;
        // One transaction: a device is added with everything asked for, or not at all.
        self.write(|tx| {
            if device_exists(tx, &mac)? {
                return Err(StoreError::Conflict { what: format!("device {mac}") });
            }
            check_assignable(tx, &spec.profiles)?;
            tx.cached("INSERT INTO devices (mac, registered_at) VALUES (?1, ?2)")
                .db()?
                .execute(params![mac, time_to_sql(at)?])
                .db()?;
            replace_assigned(tx, &mac, &spec.profiles)?;
            replace_overrides(tx, &mac, &spec.overrides)?;
            if let Some(sealed) = &spec.secret {
                put_device_secret(tx, &mac, Some(sealed))?;
            }
            match &spec.security {
                Some(update) => change_security(tx, &mac, at, update),
                None => Ok(()),
            }
        })
    }

    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError> {
        let mac = mac.to_string();
        if let Some(overrides) = &update.overrides {
            check_overrides(overrides)?;
        }
        self.write(|tx| {
            if !device_exists(tx, &mac)? {
                return Err(StoreError::NotFound { what: format!("device {mac}") });
            }
            if let Some(profiles) = &update.profiles {
                check_assignable(tx, profiles)?;
                replace_assigned(tx, &mac, profiles)?;
            }
            if let Some(overrides) = &update.overrides {
                replace_overrides(tx, &mac, overrides)?;
            }
            Ok(())
        })
    }

    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let mac = mac.to_string();
        let deleted = self.write(|tx| {
            // `secure_delete=FAST` does not overwrite the pages a deletion frees, such as
            // an inventory's overflow pages: it is overwritten first (in place, as the
            // size stays the same).
            tx.cached("UPDATE inventories SET items = zeroblob(length(items)) WHERE mac = ?1")
                .db()?
                .execute([&mac])
                .db()?;
            // The foreign keys delete the rest (its inventory, certificates and secret
            // too), except the audit log, which outlives the device.
            tx.cached("DELETE FROM devices WHERE mac = ?1").db()?.execute([&mac]).db()
        })?;
        Ok(deleted > 0)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let cache = self.read(|tx| self.profiles_at(tx, profiles_version(tx)?))?;
        Ok(cache.profiles.clone())
    }

    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        let cache = self.read(|tx| self.profiles_at(tx, profiles_version(tx)?))?;
        Ok(cache.profiles.iter().find(|p| p.name == name).cloned())
    }

    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        check_profile_name(&profile.name)?;
        let body = serde_json::to_string(&Profile { name: String::new(), ..profile.clone() })
            .map_err(|e| StoreError::Invalid(format!("profile not serialisable: {e}")))?;
        // An upsert, not `INSERT OR REPLACE`: the row is updated in place.
        self.write(|tx| {
            tx.cached(
                "INSERT INTO profiles (name, body) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            )
            .db()?
            .execute(params![profile.name, body])
            .db()?;
            Ok(())
        })
    }

    fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = self.write(|tx| {
            tx.cached("DELETE FROM device_profiles WHERE profile = ?1").db()?.execute([name]).db()?;
            tx.cached("DELETE FROM fallback_credentials WHERE scope_kind = ?1 AND profile = ?2")
                .db()?
                .execute([SCOPE_PROFILE, name])
                .db()?;
            tx.cached("DELETE FROM profiles WHERE name = ?1").db()?.execute([name]).db()
        })?;
        Ok(deleted > 0)
    }

    /// In this order, each part audited: `reset` (which keeps an outstanding PIN), then
    /// `mode` (only if it differs), then `new_pin` (9 to 32 ASCII digits, checked before
    /// anything changes, like the refusal for a secured device). The audit records' time
    /// is `at`.
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| change_security(tx, &key, at, update))
    }

    /// `Ok(None)` for an unknown device too.
    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT pin_sealed FROM devices WHERE mac = ?1 AND pin_sealed IS NOT NULL")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
    }

    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT sealed FROM pending_bootstraps WHERE mac = ?1")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
    }

    /// `limit` is capped at 10,000. Records of deleted devices are kept, and listed.
    fn audit(&self, mac: Option<MacAddr>, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_AUDIT_LIMIT)).unwrap_or(0);
        type AuditRow = (i64, String, String, String);
        let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        // Two statements, so that the one for a device uses the index on (mac, seq).
        let rows: Vec<AuditRow> = self.read(|tx| match mac {
            Some(mac) => query_all(
                tx,
                "SELECT at, mac, kind, detail FROM audit WHERE mac = ?1 ORDER BY seq DESC LIMIT ?2",
                params![mac.to_string(), limit],
                row,
            ),
            None => query_all(tx, "SELECT at, mac, kind, detail FROM audit ORDER BY seq DESC LIMIT ?1", [limit], row),
        })?;
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
        type CertificateRow = (String, i64, i64, Option<i64>);
        let rows: Vec<CertificateRow> = self.read(|tx| {
            query_all(
                tx,
                "SELECT serial, issued_at, not_after, revoked_at FROM certificates WHERE mac = ?1 ORDER BY seq DESC",
                [mac.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })?;
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
        self.write(|tx| {
            if !device_exists(tx, &key)? {
                return Err(StoreError::NotFound { what: format!("device {key}") });
            }
            put_device_secret(tx, &key, sealed)
        })
    }

    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT sealed FROM device_secrets WHERE mac = ?1")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
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
        self.write(|tx| {
            if let CredentialScope::Profile(name) = scope
                && !tx.cached("SELECT 1 FROM profiles WHERE name = ?1").db()?.exists([name]).db()?
            {
                return Err(StoreError::Invalid(format!("no profile named {name:?}")));
            }
            match sealed {
                Some(sealed) => {
                    tx.cached(
                        "INSERT INTO fallback_credentials (scope_kind, profile, username, sealed)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (scope_kind, profile, username) DO UPDATE SET sealed = excluded.sealed",
                    )
                    .db()?
                    .execute(params![kind, profile, username, sealed])
                    .db()?;
                }
                None => {
                    let deleted = tx
                        .cached(
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
            Ok(())
        })
    }

    /// Within a scope, by username (byte order of its UTF-8, as `str` orders).
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError> {
        type CredentialRow = (String, String, String, Vec<u8>);
        // One statement: one state of both parts.
        let rows: Vec<CredentialRow> = self.read(|tx| {
            query_all(
                tx,
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
            )
        })?;
        rows.into_iter()
            .map(|(kind, profile, username, sealed)| {
                Ok(FallbackCredential { scope: scope_from_sql(&kind, profile)?, username, sealed })
            })
            .collect()
    }

    /// Ordered as [`CredentialScope`] and `str` order them: the global scope first, then
    /// the profiles by name; within a scope, by username.
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = self.read(|tx| {
            query_all(
                tx,
                "SELECT scope_kind, profile, username FROM fallback_credentials
                 ORDER BY scope_kind <> ?1, profile, username",
                [SCOPE_GLOBAL],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        rows.into_iter().map(|(kind, profile, username)| Ok((scope_from_sql(&kind, profile)?, username))).collect()
    }

    fn add_jobs(&self, new: &[NewJob], at: UnixTime) -> Result<Vec<JobRecord>, StoreError> {
        self.write(|tx| jobs::add_jobs(tx, new, at))
    }

    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        self.read(|tx| jobs::jobs(tx, filter))
    }

    fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read(|tx| jobs::job(tx, id))
    }

    fn cancel_job(&self, id: JobId, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.write(|tx| jobs::cancel_job(tx, id, at))
    }

    fn has_pending_jobs(&self, mac: MacAddr) -> Result<bool, StoreError> {
        self.read(|tx| jobs::has_pending_jobs(tx, mac))
    }

    fn devices_with_pending_jobs(&self, limit: usize) -> Result<Vec<MacAddr>, StoreError> {
        self.read(|tx| jobs::devices_with_pending_jobs(tx, limit))
    }

    fn contact_target(&self, mac: MacAddr, always: bool) -> Result<Option<ContactTarget>, StoreError> {
        self.read(|tx| jobs::contact_target(tx, mac, always))
    }

    fn record_contact(&self, mac: MacAddr, at: UnixTime, result: &str) -> Result<(), StoreError> {
        self.write(|tx| jobs::record_contact(tx, mac, at, result))
    }

    fn download(&self, token: &str) -> Result<Option<(JobRecord, FileRecord)>, StoreError> {
        self.read(|tx| jobs::download(tx, token))
    }

    fn add_file(&self, file: &NewFile, at: UnixTime) -> Result<FileRecord, StoreError> {
        self.write(|tx| jobs::add_file(tx, file, at))
    }

    fn files(&self) -> Result<Vec<FileRecord>, StoreError> {
        self.read(jobs::files)
    }

    fn file(&self, id: i64) -> Result<Option<FileRecord>, StoreError> {
        self.read(|tx| jobs::file(tx, id))
    }

    fn delete_file(&self, id: i64, at: UnixTime) -> Result<Option<FileRecord>, StoreError> {
        self.write(|tx| jobs::delete_file(tx, id, at))
    }

    /// Batches of at most `PRUNE_BATCH` (1,000) rows, the audit log's first. Rows only: the
    /// deployment files a deleted job referred to stay in the file store and in `files`
    /// (`jobs.file_id` is no foreign key; nothing refers to a job).
    fn prune(&self, audit_before: Option<UnixTime>, jobs_before: Option<UnixTime>) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        if let Some(before) = audit_before {
            pruned.audit_records = self.delete_in_batches(PRUNE_AUDIT, before)?;
        }
        if let Some(before) = jobs_before {
            pruned.jobs = self.delete_in_batches(jobs::PRUNE, before)?;
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};

    use dls_engine::{Change, ItemKey, Profile, SecurityMode, UnixTime, WriteOutcome, WrittenRecord};
    use dls_message::{Item, MacAddr, Reason};
    use rusqlite::{Connection, StatementStatus};

    use super::{DbConfig, SqliteStore};
    use crate::{DeviceFilter, Store};

    /// Every statement [`Cached::cached`] was asked for.
    static USED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    pub(super) fn used(sql: &str) {
        let mut used = USED.lock().unwrap_or_else(PoisonError::into_inner);
        if !used.contains(sql) {
            used.insert(sql.to_owned());
        }
    }

    /// How often each statement used so far was compiled again on `conn`.
    fn reprepared(conn: &Connection) -> Vec<(i32, String)> {
        let used = USED.lock().unwrap_or_else(PoisonError::into_inner).clone();
        used.into_iter()
            .filter_map(|sql| {
                // A statement this connection never ran is prepared afresh here: 0.
                let count = conn.prepare_cached(&sql).expect("prepares").get_status(StatementStatus::RePrepare);
                (count > 0).then_some((count, sql))
            })
            .collect()
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr::from_bytes([0x00, 0x01, 0xE3, 0x25, 0xEA, n])
    }

    /// A phone's first start-up and a later one, as the service stores them, and the
    /// admin API's reads.
    fn exercise(s: &SqliteStore, n: u8) {
        let mac = mac(n);
        let message = |changes: &[Change]| {
            s.load_device(mac).expect("loads");
            s.desired(mac).expect("resolves");
            s.apply(mac, changes).expect("applies");
        };
        let contact = Change::Contact { at: UnixTime(100), reason: Reason::StartUp };
        let items: Vec<Item> = (0..40).map(|i| Item::indexed("function-key-def", i, "1")).collect();
        let written = vec![(
            ItemKey { name: "sntp-addr".into(), index: None },
            WrittenRecord { fingerprint: [1; 32], outcome: WriteOutcome::Accepted },
        )];
        for round in 0..3 {
            message(&[
                Change::Register { mode: SecurityMode::Default },
                contact.clone(),
                Change::Nonce(format!("{n}-{round}-1")),
                Change::MergeInventory(vec![Item::new("device-type", "OpenStage 60")]),
            ]);
            message(&[
                Change::Nonce(format!("{n}-{round}-2")),
                Change::ReplaceInventory { items: items.clone(), at: UnixTime(100) },
            ]);
            message(&[
                Change::Nonce(format!("{n}-{round}-3")),
                Change::Written(written.clone()),
                Change::MergeInventory(vec![Item::new("sntp-addr", "ntp")]),
                Change::PhoneCleanUp { reason: None },
            ]);
            s.list_devices(&DeviceFilter { limit: Some(5), ..DeviceFilter::default() }).expect("lists");
            s.device(mac).expect("reads");
            s.audit(Some(mac), 10).expect("reads");
            s.pin(mac).expect("reads");
            s.prune(Some(UnixTime(50)), Some(UnixTime(50))).expect("prunes");
        }
    }

    /// The deletes of `prune` find their rows by the indexes of schema 7, never by reading
    /// the whole table.
    #[test]
    fn pruning_finds_its_rows_by_index() {
        let s = SqliteStore::open_in_memory().expect("opens");
        let conn = s.writer().expect("writer");
        for (sql, index) in [(super::PRUNE_AUDIT, "audit_by_time"), (super::jobs::PRUNE, "jobs_over_by_time")] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("prepares")
                .query_map(rusqlite::params![50, 1000], |r| r.get(3))
                .expect("runs")
                .collect::<Result<_, _>>()
                .expect("reads");
            assert!(plan.iter().any(|step| step.contains(index)), "{sql}: {plan:?}");
            assert!(!plan.iter().any(|step| step.starts_with("SCAN")), "{sql}: {plan:?}");
        }
    }

    /// The cause of the re-preparing that `SQLITE_DBCONFIG_ENABLE_QPSG` prevents, as of
    /// SQLite 3.54: the planner marks `mac = ?1` in a statement like this one as a value
    /// its plan might depend on, and clearing the bindings (which the statement cache does
    /// whenever a statement goes back to it) then expires the statement.
    #[test]
    fn without_the_planner_guarantee_cached_statements_are_compiled_again() {
        let conn = Connection::open_in_memory().expect("opens");
        conn.execute_batch(
            "CREATE TABLE nonces (seq INTEGER PRIMARY KEY, mac TEXT NOT NULL, nonce TEXT NOT NULL, UNIQUE (mac, nonce));
             INSERT INTO nonces (mac, nonce) VALUES ('A', 'n');",
        )
        .expect("creates");
        let sql = "SELECT nonce FROM nonces WHERE mac = ?1 ORDER BY seq";
        let run = |conn: &Connection| {
            for _ in 0..3 {
                let mut stmt = conn.prepare_cached(sql).expect("prepares");
                stmt.query_map(["A"], |r| r.get::<_, String>(0)).expect("runs").for_each(drop);
            }
            conn.prepare_cached(sql).expect("prepares").get_status(StatementStatus::RePrepare)
        };
        assert_eq!(run(&conn), 2, "compiled again at each use after the first");
        conn.flush_prepared_statement_cache();
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).expect("configures");
        assert_eq!(run(&conn), 0);
    }

    #[test]
    fn cached_statements_are_never_compiled_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = SqliteStore::open(&dir.path().join("dls.db")).expect("opens");
        let global = Profile {
            name: "global".into(),
            items: vec![Item::new("sntp-addr", "ntp"), Item::indexed("key-label-unicode", 1, "Team")],
            ..Profile::default()
        };
        s.put_profile(&global).expect("puts");
        for n in 1..=4 {
            exercise(&s, n);
        }
        assert_eq!(s.readers.size, super::READERS);
        assert!(!USED.lock().unwrap_or_else(PoisonError::into_inner).is_empty());
        assert_eq!(reprepared(&s.writer().expect("writer")), [], "the writer");
        // Every reader, at once.
        let readers: Vec<_> = (0..s.readers.size).map(|_| s.readers.take().expect("a reader")).collect();
        for reader in &readers {
            assert_eq!(reprepared(reader), [], "a reader");
        }
        drop(readers);

        // In memory: one connection for everything.
        let s = SqliteStore::open_in_memory().expect("opens");
        s.put_profile(&global).expect("puts");
        exercise(&s, 1);
        exercise(&s, 1);
        assert_eq!(reprepared(&s.writer().expect("writer")), []);
    }
}
