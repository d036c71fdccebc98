//! The DLS service's embedded storage backend: [`SqliteStore`], every trait of
//! [`dls_store`] on one SQLite file.
//!
//! The modules, by concern:
//!
//! | module | what |
//! |---|---|
//! | `store` | [`SqliteStore`]: opening, the writer and the readers, the transactions |
//! | `pool` | the idle read-only connections, the WAL checkpointer thread |
//! | `schema` | the migrations (`PRAGMA user_version`) and their steps in Rust |
//! | `sql` | conversions between records and columns; statement helpers |
//! | `inventory` | a device's inventory as one record (its encoding, merges) |
//! | `protocol` | [`ProtocolStore`](dls_store::ProtocolStore): a message's load and apply |
//! | `devices` | [`DeviceStore`](dls_store::DeviceStore): devices and profiles |
//! | `summary` | the fleet at a glance (`DeviceStore::fleet_summary`, the dashboard) |
//! | `security` | [`SecurityStore`](dls_store::SecurityStore): secure mode, certificates |
//! | `audit` | [`AuditStore`](dls_store::AuditStore): the audit log, its filters and pages |
//! | `accounts` | [`AccountStore`](dls_store::AccountStore): accounts, API tokens, console sessions |
//! | `credentials` | [`CredentialStore`](dls_store::CredentialStore): Digest secrets |
//! | `jobs`, `files` | [`JobStore`](dls_store::JobStore): jobs, contact-me, deployment files |
//! | `retention` | [`MaintenanceStore`](dls_store::MaintenanceStore): pruning in batches |
//! | `migrate` | [`MigrationStore`](dls_store::dump::MigrationStore): the whole database out and in (`dls store migrate`) |
//! | `sessions` | [`SessionStore`](dls_store::SessionStore): interaction sessions |
//! | `digest` | [`DigestStore`](dls_store::DigestStore): Digest nonce counts used and throttle events, for nodes sharing the file |
//! | `mobility` | [`MobilityStore`](dls_store::MobilityStore): mobility users, their data, the throttle's rows; the engine's mobility changes |
//!
//! The domain rules (validations, the secure-mode transitions and their audit texts, what
//! happens to jobs) are [`dls_store::rules`]'; this crate stores what they decide.
//!
//! How it works:
//!
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
//!   `WAL_AUTOCHECKPOINT` pages. They change nothing of the durability above.
//! * Schema: `PRAGMA user_version` counts the `MIGRATIONS` applied; the missing ones
//!   are applied in one transaction at open. A database from a newer version, or a
//!   SQLite file that is not a DLS database (`PRAGMA application_id`), is refused with
//!   [`StoreError::Corrupt`](dls_store::StoreError::Corrupt) and left untouched.
//! * A device's inventory is one record (`inventories.items`, see `inventory`): the
//!   protocol path reads and replaces it whole, 360 items of a phone in one row rather
//!   than 360 rows. The three items the admin listing shows and filters by
//!   (`device-type`, `software-version`, `e164`, without index) are copied into
//!   `devices` when the inventory changes.
//! * The device search (a substring of the MAC or `e164`) reads `device_search`, an FTS5
//!   table with the `trigram` tokenizer that triggers keep in step with `devices`; its
//!   rowid is the MAC as a number, so it lists devices in MAC order and a page stops when
//!   full. Needles under 3 characters scan `devices` (see `devices::SEARCH_DEVICES`).
//! * An item's "no index" is stored as `dls_store::columns::NO_INDEX` (-1) where `(name, index)` is part of
//!   a key; `Some(0)` is the real index 0.
//! * Profiles are cached parsed, as of `profiles_version.version`, which triggers count
//!   up at every change of `profiles` (by any connection, e.g. another process's).
//! * Nothing read back can make this module panic: a row it cannot understand is
//!   [`StoreError::Corrupt`](dls_store::StoreError::Corrupt).
//! * Secure mode: a device's outstanding PIN is kept as the caller sealed it (opaque
//!   bytes, `pin_sealed`; the key is not the store's), read only by `pin`; the
//!   engine and the admin API learn only whether there is one. The upgrade from a version
//!   that kept PINs in clear seals them with the caller's [`PinSealer`]
//!   ([`SqliteStore::open_sealing_pins`]) and drops the clear column. A PIN is wiped when
//!   the device bootstraps, fails to, or is put back in default mode. Bootstrap material
//!   kept for reuse (`pending_bootstraps`) is sealed by the caller too. At most one of a
//!   device's certificates is unrevoked: its current one. The audit log outlives deleted
//!   devices; only `prune` deletes from it, by age.
//! * Retention: `prune` deletes old audit records and old jobs that are over, by
//!   indexes on their times (`audit.at`; `jobs.updated_at` of the jobs over), at most
//!   `PRUNE_BATCH` rows per write transaction, so that the writer is given back between
//!   batches and a large backlog never holds up the protocol path.
//! * Digest credentials: a device's secret and the fallback credentials are stored as the
//!   caller sealed them (opaque bytes; the key is not the store's). A device's secret is
//!   in its own table, read only by `device_secret`, and deleted with the device;
//!   a profile's fallback credentials are deleted with the profile. Both are overwritten
//!   in their pages when deleted (`secure_delete`), like a PIN.

//! * Ids of jobs and files are never handed out again (`AUTOINCREMENT`, schema 11).
//! * One message as a whole (`run_message`) is one `BEGIN IMMEDIATE` transaction: SQLite's
//!   single writer is the device's exclusion, across processes too.

mod accounts;
mod audit;
mod contact;
mod credentials;
mod devices;
mod digest;
mod files;
mod inventory;
mod jobs;
mod migrate;
mod mobility;
mod pool;
mod protocol;
mod retention;
mod schema;
mod security;
mod sessions;
mod sql;
mod store;
mod summary;
#[cfg(test)]
mod tests;

pub use schema::PinSealer;
pub use store::SqliteStore;
