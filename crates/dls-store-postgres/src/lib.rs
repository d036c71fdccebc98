//! The DLS service's PostgreSQL storage backend: [`PostgresStore`], every trait of
//! [`dls_store`] on a PostgreSQL database that several nodes share.
//!
//! The modules, by concern:
//!
//! | module | what |
//! |---|---|
//! | `store` | [`PostgresStore`]: opening, the pool ([`PoolOptions`]), the transactions and their retries, the profile cache |
//! | `tls` | TLS to the database: libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey` on rustls (ring) |
//! | `schema` | the migrations (`schema_version`), applied at open under an advisory lock |
//! | `sql` | conversions between records and columns; errors; prepared statements; the devices' advisory locks |
//! | `inventory` | a device's inventory as one record (a JSON array), its merges |
//! | `protocol` | [`ProtocolStore`](dls_store::ProtocolStore): a message's load (one statement) and apply, `run_message` |
//! | `batch` | a message's changes written by one statement |
//! | `devices` | [`DeviceStore`](dls_store::DeviceStore): devices and profiles |
//! | `summary` | the fleet at a glance (`DeviceStore::fleet_summary`, the dashboard) |
//! | `security` | [`SecurityStore`](dls_store::SecurityStore): secure mode, certificates |
//! | `audit` | [`AuditStore`](dls_store::AuditStore): the audit log, its filters and pages |
//! | `accounts` | [`AccountStore`](dls_store::AccountStore): accounts, API tokens, console sessions (shared by the nodes) |
//! | `credentials` | [`CredentialStore`](dls_store::CredentialStore): Digest secrets |
//! | `jobs`, `files` | [`JobStore`](dls_store::JobStore): jobs, contact-me, deployment files |
//! | `contact` | [`ContactStore`](dls_store::ContactStore): the contact-me schedule the nodes claim from; the leases |
//! | `retention` | [`MaintenanceStore`](dls_store::MaintenanceStore): pruning in batches |
//! | `migrate` | [`MigrationStore`](dls_store::dump::MigrationStore): the whole database out and in (`dls store migrate`) |
//! | `sessions` | [`SessionStore`](dls_store::SessionStore): interaction sessions |
//! | `digest` | [`DigestStore`](dls_store::DigestStore): Digest nonce counts used and throttle events, followed by id under an advisory lock that makes ids visible in order |
//! | `mobility` | [`MobilityStore`](dls_store::MobilityStore): mobility users, their data, the throttle's rows; the engine's mobility changes |
//!
//! The domain rules (validations, the secure-mode transitions and their audit texts, what
//! happens to jobs) are [`dls_store::rules`]'; this crate stores what they decide.
//!
//! How it works:
//!
//! * Connections: a pool (`r2d2`, the blocking `postgres` client; 16 connections by
//!   default, opened when needed, not checked when taken: that costs a round trip per
//!   call). A call takes one for its transaction; a call whose connection turns out lost
//!   before its `COMMIT` was sent (one a restarted server dropped) committed nothing, and
//!   runs again on another connection — never after its `COMMIT` was sent. An
//!   unreachable database is [`StoreError::Unavailable`](dls_store::StoreError::Unavailable),
//!   in one line. Each new connection compresses with lz4 where the server has it.
//! * TLS: libpq's parameters in the URL — `sslmode` (`disable`, `prefer` (the default, as
//!   libpq's), `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert` and
//!   `sslkey` — mean what they mean to libpq, on rustls with the ring provider
//!   (`tokio-postgres-rustls`); where this is stricter than libpq, and why, is the `tls`
//!   module's. TLS that cannot be agreed at open (a certificate refused, no TLS under
//!   `require`) and files that cannot be used are
//!   [`StoreError::Invalid`](dls_store::StoreError::Invalid), in one line.
//! * Transactions: a read is one `REPEATABLE READ`, read-only transaction (one snapshot);
//!   a write is one `READ COMMITTED` transaction, committed whole or rolled back, and run
//!   again (a bounded number of times, the closure called again) after a deadlock or a
//!   serialisation failure. An interaction's session is put or taken by one statement,
//!   without a transaction around it.
//! * Round trips are counted ([`PostgresStore::round_trips`]). A phone's message costs 4
//!   (`BEGIN` with the device's lock, one statement reading everything the message needs,
//!   one writing everything it changes, `COMMIT`); `tests/postgres/round_trips.rs` holds
//!   the store to that.
//! * One message of a device (`run_message`) runs in one write transaction that first
//!   takes the device's transaction-scoped advisory lock (`pg_advisory_xact_lock`, keyed
//!   by the MAC in a namespace of its own): no other message of the device, on any node,
//!   runs between its load and its commit — a device not yet registered included — and
//!   as each statement of a `READ COMMITTED` transaction sees what was committed when it
//!   began, the load after the lock sees the previous holder's changes. `apply` and the
//!   admin's changes of one device (add, update, delete, security, secret) take the same
//!   lock, so that a message's load never sees half of one. The lock is taken in the
//!   round trip of the `BEGIN` (its key is a number: no parameter is needed).
//! * Schema: `schema_version` (one row) counts the migrations applied; the missing ones
//!   are applied at open in one transaction under an advisory lock, so that nodes
//!   starting at once migrate once. A database from a newer version, or with tables of
//!   another application, is refused with
//!   [`StoreError::Corrupt`](dls_store::StoreError::Corrupt) and left untouched.
//! * Ids of jobs and files are identity columns: a sequence never hands a value out
//!   twice, not after a delete nor after a rolled-back insert.
//! * Statements are prepared once per connection and kept with it. The device search is
//!   planned for each search's own pattern (`plan_cache_mode = force_custom_plan` in its
//!   transaction), so that the `pg_trgm` indexes serve a needle few devices match and a
//!   scan in MAC order one that many match (schema 7; without the extension, a scan).
//! * Profiles are cached parsed, as of `profiles_version.version`, which a trigger counts
//!   up in the transaction of every change of `profiles`: every node sees a change at its
//!   next read.
//! * Nothing read back can make this crate panic: a row it cannot understand is
//!   [`StoreError::Corrupt`](dls_store::StoreError::Corrupt). All SQL is parameterised
//!   (but for the number of a device's lock in a message's `BEGIN`, which the store
//!   computes from the MAC).
//! * Secrets (a device's PIN, its Digest secret, fallback credentials, bootstrap
//!   material) are stored as the caller sealed them: opaque bytes, the key is not the
//!   store's.

mod accounts;
mod audit;
mod batch;
mod contact;
mod credentials;
mod devices;
mod digest;
mod files;
mod inventory;
mod jobs;
mod migrate;
mod mobility;
mod protocol;
mod retention;
mod schema;
mod security;
mod sessions;
mod sql;
mod store;
mod summary;
mod tls;

pub use store::{PoolOptions, PostgresStore};
