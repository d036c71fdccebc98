//! [`PostgresStore`]: opening the database, the pool of connections, and the transactions
//! every call runs in.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use dls_engine::Profile;
use dls_message::MacAddr;
use dls_store::StoreError;
use postgres::error::SqlState;
use postgres::{Client, Config, IsolationLevel};
use r2d2::PooledConnection;
use r2d2_postgres::PostgresConnectionManager;

use crate::devices::load_profiles;
use crate::schema;
use crate::sql::{RoundTrips, Statements, Tx, device_lock_key, is_retryable, one_line};
use crate::tls::{self, TlsParams};

type Manager = PostgresConnectionManager<tls::Connector>;

/// How many times a transaction that failed only because of another one beside it (a
/// serialisation failure, a deadlock) is run again before the failure is given.
const RETRIES: u32 = 8;

/// The pool's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// The most connections open at once (each call holds one for its transaction).
    pub max_connections: u32,
    /// How long a call waits for a connection (an idle one, or a new one) before it fails
    /// with [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// How long opening one connection may take, unless the URL sets `connect_timeout`.
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    /// 16 connections, a call waits 3 s for one, opening one takes 5 s at most. A phone
    /// waits for its answer: a database that gives no connection within 3 s is down or
    /// overloaded, and the phone is better told so (the service answers `503`) than kept.
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(3), connect_timeout: Duration::from_secs(5) }
    }
}

/// The [`Store`](dls_store::Store) on a PostgreSQL database, which several nodes (several
/// `PostgresStore`s, in as many processes) may share.
///
/// Shared between threads; calls block, each on a connection of the pool for one
/// transaction.
pub struct PostgresStore {
    pool: Pool,
    /// Every profile, parsed, as of a `profiles_version`.
    profiles: Mutex<Option<Arc<ProfileCache>>>,
    /// The round trips made ([`Self::round_trips`]).
    trips: RoundTrips,
}

/// The connection pool, dropped on a thread of its own: the `postgres` client closes a
/// connection by blocking on a runtime of its own, which panics on a thread that drives an
/// async runtime — where the service may drop its last reference to the store.
struct Pool(Option<r2d2::Pool<Manager>>);

impl std::ops::Deref for Pool {
    type Target = r2d2::Pool<Manager>;

    fn deref(&self) -> &Self::Target {
        // `None` only while being dropped.
        self.0.as_ref().expect("the pool lives as long as the store")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            // Joined: the connections are closed when the store's drop returns.
            let _ = std::thread::Builder::new().name("dls-pg-close".into()).spawn(move || drop(pool)).map(|t| t.join());
        }
    }
}

pub(crate) struct ProfileCache {
    /// `profiles_version.version` when read.
    pub(crate) version: i64,
    pub(crate) profiles: Vec<Profile>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("max_connections", &self.pool.max_size()).finish_non_exhaustive()
    }
}

/// How a call's transaction runs.
#[derive(Clone, Copy)]
enum Access {
    /// One snapshot of the database (`REPEATABLE READ`, read only).
    Read,
    /// [`Access::Read`], each statement planned for its parameters' values, never with a
    /// generic plan (`plan_cache_mode`), in the round trip of the `BEGIN`: for a query whose
    /// best plan depends on them (a search's pattern, by how many rows it matches).
    Search,
    /// `READ COMMITTED`: each statement sees what was committed when it began, so that a
    /// statement after an advisory lock sees what the lock's previous holder committed.
    Write,
    /// [`Access::Write`], the device's advisory lock taken first, in the round trip of the
    /// `BEGIN`.
    Locked(MacAddr),
    /// No transaction: one statement, which commits by itself.
    Single,
}

impl Access {
    /// What begins the transaction, in one round trip (the lock's key is a number this
    /// crate computes: nothing of the caller's is in the text).
    fn begin(self) -> Option<String> {
        const READ: &str = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        const WRITE: &str = "START TRANSACTION ISOLATION LEVEL READ COMMITTED";
        match self {
            Self::Read => Some(READ.to_owned()),
            Self::Search => Some(format!("{READ}; SET LOCAL plan_cache_mode = force_custom_plan")),
            Self::Write => Some(WRITE.to_owned()),
            Self::Locked(mac) => Some(format!("{WRITE}; SELECT pg_advisory_xact_lock({})", device_lock_key(mac))),
            Self::Single => None,
        }
    }
}

/// How one attempt at a call ended.
enum Attempt<T> {
    /// Its result (committed, or nothing committed).
    Done(Result<T, StoreError>),
    /// The connection was lost before anything could commit (a pooled connection that a
    /// restarted server dropped, say): the call may run again, on another connection.
    Lost(StoreError),
}

impl<T> Attempt<T> {
    /// `e`, before the commit: a lost connection committed nothing — the server rolls
    /// back a transaction whose connection ended.
    fn failed(e: StoreError) -> Self {
        if matches!(e, StoreError::Unavailable(_)) { Self::Lost(e) } else { Self::Done(Err(e)) }
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with the parameters PostgreSQL's connection URIs take, TLS's included: `sslmode`,
    /// `sslrootcert`, `sslcert`, `sslkey` as libpq reads them; see the crate's
    /// documentation), with the default pool ([`PoolOptions::default`]), and applies the
    /// pending schema migrations.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a URL that is not a `postgres://` URL, TLS parameters
    /// or files that cannot be used, a database that refuses the login or does not exist,
    /// or TLS that cannot be agreed (a certificate refused, a server without TLS under
    /// `sslmode=require`); [`StoreError::Unavailable`] if the
    /// database cannot be reached;
    /// [`StoreError::Corrupt`] if it is not a DLS database or is from a newer version (it
    /// is left untouched); [`StoreError::Database`] if a migration fails.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &PoolOptions::default())
    }

    /// Like [`Self::open`], with the pool's settings.
    ///
    /// # Errors
    /// As [`Self::open`]; [`StoreError::Invalid`] for a pool of no connections.
    pub fn open_with(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        let (config, tls) = parse_url(url, options)?;
        if options.max_connections == 0 {
            return Err(StoreError::Invalid("a pool of no connections".into()));
        }
        let connector = tls.connector()?;
        // One connection first, by itself: a database that cannot be reached or refuses
        // the login says why at once (a pool would retry until its timeout), and it migrates.
        let mut client = config.connect(connector.clone()).map_err(|e| connect_error(e, &tls))?;
        schema::migrate(&mut client)?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections)
            // Connections are opened when needed and kept while used.
            .min_idle(Some(0))
            .idle_timeout(Some(Duration::from_secs(300)))
            .connection_timeout(options.acquire_timeout)
            // Not checked when taken (a round trip per call): a call that finds its
            // connection lost before anything committed runs again on another (`run`).
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .connection_customizer(Box::new(Lz4))
            .build(PostgresConnectionManager::new(config, connector))
            .map_err(|e| StoreError::Unavailable(one_line(&e)))?;
        Ok(Self { pool: Pool(Some(pool)), profiles: Mutex::new(None), trips: RoundTrips::default() })
    }

    /// Creates the schema of `version` (not the latest) in the empty database at `url`,
    /// as an older version of dls left it: for the tests of the upgrades.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a version this build does not know; otherwise as
    /// [`Self::open`].
    #[doc(hidden)]
    pub fn create_at_schema_version(url: &str, version: usize) -> Result<(), StoreError> {
        if i64::try_from(version).map_or(true, |v| v > schema::latest()) {
            return Err(StoreError::Invalid(format!("no schema version {version}")));
        }
        let (config, tls) = parse_url(url, &PoolOptions::default())?;
        let mut client = config.connect(tls.connector()?).map_err(|e| connect_error(e, &tls))?;
        schema::migrate_to(&mut client, version)
    }

    /// The latest schema version this build knows (what `schema_version.version` holds
    /// after [`Self::open`]).
    #[must_use]
    pub fn schema_version() -> i64 {
        schema::latest()
    }

    /// The key of the advisory lock that excludes a device's messages: a transaction that
    /// takes it (`SELECT pg_advisory_xact_lock(<key>)`) waits for the device's message in
    /// flight on any node, and holds off the next ones until it ends. For tools that change
    /// a device's rows beside running nodes.
    #[must_use]
    pub fn device_lock_key(mac: MacAddr) -> i64 {
        device_lock_key(mac)
    }

    fn connection(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Unavailable(one_line(&e)))
    }

    /// Runs `f` in one read transaction: one snapshot of the database.
    pub(crate) fn read<T>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.run(Access::Read, f)
    }

    /// [`Self::read`], each statement planned for its parameters' values ([`Access::Search`]).
    pub(crate) fn search<T>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.run(Access::Search, f)
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds, rolled back if not; run
    /// again (`f` called again) if it failed only because of another transaction beside it.
    pub(crate) fn write<T>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.run(Access::Write, f)
    }

    /// Runs `f` in one write transaction that first takes the device's advisory lock
    /// ([`crate::sql::lock_device`]), as [`Self::write`] does.
    pub(crate) fn locked<T>(
        &self,
        mac: MacAddr,
        f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(Access::Locked(mac), f)
    }

    /// Runs the one statement `f` runs, without a transaction (it commits by itself; a
    /// second statement fails). Only for a statement that has the same effect when run
    /// twice (an upsert, a delete by key): after a lost connection it is run again.
    pub(crate) fn single<T>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.run(Access::Single, f)
    }

    /// The database round trips this store has made since it was opened: every request
    /// sent and waited for — `BEGIN` (with what is sent with it), a statement, the
    /// preparing of a statement the connection had not prepared yet, `COMMIT`, `ROLLBACK`,
    /// a batch of a cursor. Connecting (and migrating, at open) is not counted. What a
    /// message costs is the difference across it: `tests/postgres/round_trips.rs` holds
    /// it to its figures.
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.trips.get()
    }

    /// Runs `f` until it commits or fails for good: again after a serialisation failure or
    /// a deadlock (a bounded number of times, after a short wait), and again on another
    /// connection when the one it had was lost before anything could commit — so that the
    /// pool need not check each connection when taken (a round trip per call) to replace
    /// those a restarted server dropped. Never again once its `COMMIT` was sent.
    fn run<T>(&self, access: Access, mut f: impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let (mut conflicts, mut lost) = (0, 0);
        loop {
            let mut conn = self.connection()?;
            let mut statements = PooledConnection::extensions_mut(&mut conn).remove::<Statements>().unwrap_or_default();
            let attempt = attempt(&mut conn, &mut statements, &self.trips, access, &mut f);
            PooledConnection::extensions_mut(&mut conn).insert(statements);
            // Back to the pool, which drops it if it is closed.
            drop(conn);
            match attempt {
                Attempt::Done(Err(e)) if conflicts < RETRIES && is_retryable(&e) => {
                    conflicts += 1;
                    std::thread::sleep(backoff(conflicts));
                }
                Attempt::Done(result) => return result,
                // Each idle connection of the pool may be one the server dropped; then a
                // new one.
                Attempt::Lost(_) if lost < self.pool.max_size() => lost += 1,
                Attempt::Lost(e) => return Err(e),
            }
        }
    }

    /// Runs `f` in one transaction, once: never again after a serialisation failure, as
    /// `f` consumes what it is given (a migration's rows) or hands on what it reads; on
    /// another connection only when the one it had was lost at the `BEGIN`.
    pub(crate) fn once<T>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        let mut lost = 0;
        loop {
            let mut conn = self.connection()?;
            let builder = conn.build_transaction();
            let builder = if write {
                builder.isolation_level(IsolationLevel::ReadCommitted)
            } else {
                builder.isolation_level(IsolationLevel::RepeatableRead).read_only(true)
            };
            self.trips.count();
            let tx = match builder.start().map_err(crate::sql::db_error) {
                Ok(tx) => tx,
                Err(StoreError::Unavailable(_)) if lost < self.pool.max_size() => {
                    lost += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut statements = Statements::default();
            let mut tx = Tx::counted(tx, &mut statements, &self.trips);
            let f = f.take().ok_or_else(|| StoreError::Io("a transaction ran twice".into()))?;
            let out = f(&mut tx)?;
            tx.commit()?;
            return Ok(out);
        }
    }

    /// Every profile as of the caller's transaction, in which `profiles_version` is
    /// `version`: the cached ones unless a profile changed since they were read.
    pub(crate) fn profiles_at(&self, tx: &mut Tx<'_>, version: i64) -> Result<Arc<ProfileCache>, StoreError> {
        // The cache is replaced whole under this lock: a poisoned one is still sound.
        let cached = self.profiles.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(cache) = cached.filter(|c| c.version == version) {
            return Ok(cache);
        }
        // The version and the profiles of one statement: in a write transaction, a later
        // statement may see a later state than `version`'s.
        let fresh = Arc::new(load_profiles(tx)?);
        let mut cache = self.profiles.lock().unwrap_or_else(PoisonError::into_inner);
        // A reader of an older state must not replace a newer cache.
        if cache.as_ref().is_none_or(|c| c.version < fresh.version) {
            *cache = Some(Arc::clone(&fresh));
        }
        Ok(fresh)
    }
}

/// One attempt at a call on `client`: `BEGIN` (with what `access` sends with it), `f`,
/// `COMMIT`; or `f`'s one statement alone.
fn attempt<T>(
    client: &mut Client,
    statements: &mut Statements,
    trips: &RoundTrips,
    access: Access,
    f: &mut impl FnMut(&mut Tx<'_>) -> Result<T, StoreError>,
) -> Attempt<T> {
    let mut tx = match access.begin() {
        None => Tx::single(client, statements, trips),
        Some(begin) => match Tx::begin(client, statements, trips, &begin) {
            Ok(tx) => tx,
            Err(e) => return Attempt::failed(e),
        },
    };
    // On error the transaction is rolled back when dropped.
    match f(&mut tx) {
        // Never run again once the `COMMIT` is sent: it may have committed.
        Ok(out) => Attempt::Done(tx.commit().map(|()| out)),
        Err(e) => Attempt::failed(e),
    }
}

/// Each new connection writes the values PostgreSQL compresses (a device's inventory, a
/// JSON array of hundreds of items rewritten at a phone's first start-up) with lz4, which
/// compresses several times faster than the default pglz: the backend's CPU per first
/// start-up fell by about 5 % (docs/BENCHMARKS.md). A server built without lz4 refuses the
/// setting; the connection then keeps its default.
#[derive(Debug)]
struct Lz4;

impl r2d2::CustomizeConnection<Client, postgres::Error> for Lz4 {
    fn on_acquire(&self, client: &mut Client) -> Result<(), postgres::Error> {
        // Outside a transaction: a refused setting leaves nothing to roll back.
        let _ = client.batch_execute("SET default_toast_compression = lz4");
        Ok(())
    }
}

/// Why the first connection failed: the login refused, the database missing or TLS not
/// agreed is the URL's fault (invalid); anything else (no server there, a timeout) is
/// unavailable.
fn connect_error(e: postgres::Error, tls: &TlsParams) -> StoreError {
    if tls::refused(&e) {
        let message = format!("TLS to the database failed (sslmode={}): {}{}", tls.mode, one_line(&e), tls::hint(&e));
        return StoreError::Invalid(message);
    }
    let refused = e.code().is_some_and(|c| c.code().starts_with("28") || *c == SqlState::INVALID_CATALOG_NAME);
    let message = format!("cannot connect to the database: {}", one_line(&e));
    if refused { StoreError::Invalid(message) } else { StoreError::Unavailable(message) }
}

/// A few milliseconds, more at every attempt, with some jitter so that the transactions
/// that collided do not collide again.
fn backoff(attempt: u32) -> Duration {
    let jitter = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_micros() % 2000);
    Duration::from_micros(u64::from(attempt.min(6)) * 2000 + u64::from(jitter))
}

/// The connection settings of a `postgres://` URL, with the pool's connect timeout unless
/// the URL sets one, and its TLS parameters.
fn parse_url(url: &str, options: &PoolOptions) -> Result<(Config, TlsParams), StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Invalid("the database URL must begin with postgres:// or postgresql://".into()));
    }
    let (url, tls) = tls::split_url(url)?;
    let mut config: Config =
        url.parse().map_err(|e| StoreError::Invalid(format!("the database URL: {}", one_line(&e))))?;
    if config.get_hosts().is_empty() {
        return Err(StoreError::Invalid("the database URL names no host".into()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("dls");
    }
    // What the server says beside its answers (a migration's `RAISE NOTICE`): the node's log.
    config.notice_callback(|notice| tracing::info!(severity = notice.severity(), "PostgreSQL: {}", notice.message()));
    tls.configure(&mut config);
    Ok((config, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        let options = PoolOptions::default();
        for bad in ["", "host=localhost", "mysql://x/y", "postgres://", "postgres://[::1/db", "postgres://h:99999/db"] {
            let r = PostgresStore::open_with(bad, &options);
            assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad:?}: {r:?}");
        }
        let (config, _) =
            parse_url("postgres://u:secret@db.example:6543/dls?connect_timeout=2", &options).expect("parses");
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(config.get_application_name(), Some("dls"));
        let (config, _) = parse_url("postgresql://db.example/dls", &options).expect("parses");
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(5)));
        let none = PoolOptions { max_connections: 0, ..PoolOptions::default() };
        assert!(matches!(PostgresStore::open_with("postgres://h/db", &none), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn an_unreachable_database_is_unavailable_in_one_line() {
        // Port 1 on the loopback: nothing listens there.
        let options = PoolOptions { acquire_timeout: Duration::from_millis(300), ..PoolOptions::default() };
        let r = PostgresStore::open_with("postgres://dls@127.0.0.1:1/dls", &options);
        match r {
            Err(StoreError::Unavailable(msg)) => assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}"),
            other => panic!("want Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_stays_short() {
        assert!(backoff(1) < backoff(6));
        assert!(backoff(100) < Duration::from_millis(20));
    }
}
