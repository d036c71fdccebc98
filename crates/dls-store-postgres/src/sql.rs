//! Conversions between records and columns, the mapping of the driver's errors, and
//! [`Tx`]: a transaction with the connection's prepared statements.
//!
//! Nothing read back can make this crate panic: a value these functions cannot understand
//! is [`StoreError::Corrupt`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use dls_message::{Item, MacAddr};
use dls_store::StoreError;
use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, GenericClient, Portal, Row, Statement, Transaction};

pub(crate) use dls_store::columns::{
    SCOPE_GLOBAL, SCOPE_PROFILE, count_from_sql, index_from_sql, index_to_sql, items_from_json, items_to_json,
    mac_from_sql, opt_time_from_sql, outcome_from_sql, outcome_to_sql, scope_from_sql, scope_to_sql, time_from_sql,
    time_to_sql,
};

/// A statement's parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The statements prepared on one connection, by their SQL (kept in the pooled
/// connection's extensions between calls).
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

/// The database round trips a store has made (see [`crate::PostgresStore::round_trips`]):
/// every request [`Tx`] sends and waits for — a `BEGIN`, a statement, a `prepare`, a
/// `COMMIT` or `ROLLBACK`, a batch of a cursor — is one.
#[derive(Debug, Default)]
pub(crate) struct RoundTrips(AtomicU64);

impl RoundTrips {
    pub(crate) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One transaction of a call, with the connection's prepared statements: every statement
/// is prepared once per connection, then only bound and executed (one round trip).
pub(crate) struct Tx<'a> {
    conn: Conn<'a>,
    statements: &'a mut Statements,
    trips: Option<&'a RoundTrips>,
}

/// Whose transaction a [`Tx`] is.
enum Conn<'a> {
    /// The driver's (it has cursors: [`Tx::bind`]); `None` once committed.
    Driver(Option<Transaction<'a>>),
    /// This crate's own, on the connection: its `BEGIN` sent together with the statements
    /// that open it (a device's lock), in one round trip ([`Tx::begin`]).
    Own {
        client: &'a mut Client,
        /// Whether a transaction is open on the connection (rolled back when dropped).
        open: bool,
    },
    /// No transaction: one statement, which commits by itself ([`Tx::single`]).
    Single {
        client: &'a mut Client,
        /// Whether the statement was run.
        used: bool,
    },
}

impl Drop for Tx<'_> {
    /// An open transaction of our own is rolled back (the driver's rolls itself back).
    fn drop(&mut self) {
        if let Conn::Own { client, open: true } = &mut self.conn
            && !client.is_closed()
        {
            if let Some(t) = self.trips {
                t.count();
            }
            // A connection that cannot roll back is broken: the server ends the
            // transaction with it.
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}

impl<'a> Tx<'a> {
    /// The driver's transaction `tx` (its `BEGIN` is not counted).
    pub(crate) fn new(tx: Transaction<'a>, statements: &'a mut Statements) -> Self {
        Self { conn: Conn::Driver(Some(tx)), statements, trips: None }
    }

    /// [`Self::new`], counting its round trips (its `BEGIN` is the caller's to count).
    pub(crate) fn counted(tx: Transaction<'a>, statements: &'a mut Statements, trips: &'a RoundTrips) -> Self {
        Self { conn: Conn::Driver(Some(tx)), statements, trips: Some(trips) }
    }

    /// Begins a transaction with `begin`: a `START TRANSACTION …` and the statements to run
    /// first in it, of the simple protocol (no parameters), sent in one round trip.
    pub(crate) fn begin(
        client: &'a mut Client,
        statements: &'a mut Statements,
        trips: &'a RoundTrips,
        begin: &str,
    ) -> Result<Self, StoreError> {
        trips.count();
        let result = client.batch_execute(begin).db();
        // Open even when a statement after the `BEGIN` failed: dropped, it rolls back.
        let tx = Self { conn: Conn::Own { client, open: true }, statements, trips: Some(trips) };
        result.map(|()| tx)
    }

    /// No transaction: the one statement the caller runs commits by itself (a second one
    /// is refused, as nothing would make the two atomic).
    pub(crate) fn single(client: &'a mut Client, statements: &'a mut Statements, trips: &'a RoundTrips) -> Self {
        Self { conn: Conn::Single { client, used: false }, statements, trips: Some(trips) }
    }

    fn count(&self) {
        if let Some(t) = self.trips {
            t.count();
        }
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        match &mut self.conn {
            Conn::Driver(tx) => {
                let tx = tx.take().ok_or_else(|| StoreError::Io("a transaction committed twice".into()))?;
                self.count();
                tx.commit().db()
            }
            Conn::Own { client, open } => {
                // Whatever the outcome, there is nothing left to roll back.
                *open = false;
                if let Some(t) = self.trips {
                    t.count();
                }
                client.batch_execute("COMMIT").db()
            }
            Conn::Single { .. } => Ok(()),
        }
    }

    /// The driver's client or transaction, for one more request.
    fn client(&mut self) -> Result<&mut dyn Requests, StoreError> {
        self.count();
        match &mut self.conn {
            Conn::Driver(Some(tx)) => Ok(tx),
            Conn::Driver(None) => Err(StoreError::Io("a statement after the commit".into())),
            Conn::Own { client, .. } => Ok(*client),
            Conn::Single { client, used } => {
                if std::mem::replace(used, true) {
                    return Err(StoreError::Io("a second statement without a transaction".into()));
                }
                Ok(*client)
            }
        }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.0.get(sql) {
            return Ok(statement.clone());
        }
        self.count();
        let statement = match &mut self.conn {
            Conn::Driver(Some(tx)) => tx.prepare(sql),
            Conn::Driver(None) => return Err(StoreError::Io("a statement after the commit".into())),
            Conn::Own { client, .. } | Conn::Single { client, .. } => client.prepare(sql),
        }
        .db()?;
        self.statements.0.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Every row of a query.
    pub(crate) fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        self.client()?.query(&statement, params).db()
    }

    /// The one row of a query, if any (more than one is an error).
    pub(crate) fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        self.client()?.query_opt(&statement, params).db()
    }

    /// The one row of a query.
    pub(crate) fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        self.client()?.query_one(&statement, params).db()
    }

    /// Runs a statement; how many rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        self.client()?.execute(&statement, params).db()
    }

    /// Whether a query gives a row.
    pub(crate) fn exists(&mut self, sql: &str, params: Params<'_>) -> Result<bool, StoreError> {
        Ok(!self.query(sql, params)?.is_empty())
    }

    fn driver(&mut self) -> Result<&mut Transaction<'a>, StoreError> {
        self.count();
        match &mut self.conn {
            Conn::Driver(Some(tx)) => Ok(tx),
            _ => Err(StoreError::Io("a cursor needs the driver's transaction".into())),
        }
    }

    /// A cursor over a query's rows, read a batch at a time with [`Self::query_portal`]
    /// (a table read whole without holding it in memory). In the driver's transaction only.
    pub(crate) fn bind(&mut self, sql: &str, params: Params<'_>) -> Result<Portal, StoreError> {
        self.driver()?.bind(sql, params).db()
    }

    /// The next (at most) `max_rows` rows of a cursor; none when it is exhausted.
    pub(crate) fn query_portal(&mut self, portal: &Portal, max_rows: i32) -> Result<Vec<Row>, StoreError> {
        self.driver()?.query_portal(portal, max_rows).db()
    }

    /// Statements without parameters, not prepared (the migrations).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client()?.batch_execute(sql).db()
    }
}

/// What [`Tx`] asks of the driver's client and of its transaction alike.
trait Requests {
    fn query(&mut self, statement: &Statement, params: Params<'_>) -> Result<Vec<Row>, postgres::Error>;
    fn query_opt(&mut self, statement: &Statement, params: Params<'_>) -> Result<Option<Row>, postgres::Error>;
    fn query_one(&mut self, statement: &Statement, params: Params<'_>) -> Result<Row, postgres::Error>;
    fn execute(&mut self, statement: &Statement, params: Params<'_>) -> Result<u64, postgres::Error>;
    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error>;
}

macro_rules! requests {
    ($t:ty) => {
        impl Requests for $t {
            fn query(&mut self, statement: &Statement, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
                GenericClient::query(self, statement, params)
            }
            fn query_opt(&mut self, statement: &Statement, params: Params<'_>) -> Result<Option<Row>, postgres::Error> {
                GenericClient::query_opt(self, statement, params)
            }
            fn query_one(&mut self, statement: &Statement, params: Params<'_>) -> Result<Row, postgres::Error> {
                GenericClient::query_one(self, statement, params)
            }
            fn execute(&mut self, statement: &Statement, params: Params<'_>) -> Result<u64, postgres::Error> {
                GenericClient::execute(self, statement, params)
            }
            fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
                GenericClient::batch_execute(self, sql)
            }
        }
    };
}

requests!(Client);
requests!(Transaction<'_>);

/// Maps the driver's errors.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, postgres::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(db_error)
    }
}

/// What a driver error means for the caller: the database unreachable (its server down,
/// restarting, out of connections) is [`StoreError::Unavailable`]; a duplicate key a
/// [`StoreError::Conflict`]; text PostgreSQL cannot store (a NUL character) invalid;
/// anything else the database's fault, with the driver's error kept as the source (a
/// serialisation failure is recognised there: [`is_retryable`]).
pub(crate) fn db_error(e: postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        let unavailable = code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
        if unavailable {
            return StoreError::Unavailable(one_line(&e));
        }
        if *code == SqlState::UNIQUE_VIOLATION {
            let what = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("a unique key").to_owned();
            return StoreError::Conflict { what: format!("a row with that key ({what})") };
        }
        if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *code == SqlState::UNTRANSLATABLE_CHARACTER {
            return StoreError::Invalid(format!("text the database cannot store: {}", one_line(&e)));
        }
        return StoreError::database(DriverError(e));
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        return StoreError::Unavailable(one_line(&e));
    }
    StoreError::database(DriverError(e))
}

/// The driver's error as [`StoreError::Database`]'s source: shown on one line (the
/// server's detail and hint included), the driver's error its own source.
#[derive(Debug)]
pub(crate) struct DriverError(pub(crate) postgres::Error);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&one_line(&self.0))
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// An error and its sources, on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let flat = |e: &dyn std::error::Error| e.to_string().replace(['\n', '\r'], " ");
    let mut text = flat(e);
    let mut source = e.source();
    while let Some(s) = source {
        let more = flat(s);
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Whether a transaction failed only because another one ran beside it (a serialisation
/// failure or a deadlock), so that running it again may succeed.
pub(crate) fn is_retryable(e: &StoreError) -> bool {
    let StoreError::Database(source) = e else { return false };
    source
        .downcast_ref::<DriverError>()
        .and_then(|e| e.0.code())
        .is_some_and(|code| *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Column `i` of a row: a value of another type (or NULL where none may be) is corrupt.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(format!("unreadable column {i}: {}", one_line(&e))))
}

/// A count or a limit as a bound parameter.
pub(crate) fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An item from its columns: name, index, value, type.
pub(crate) fn item_from_row(row: &Row) -> Result<Item, StoreError> {
    Ok(Item {
        name: get(row, 0)?,
        index: index_from_sql(get(row, 1)?)?,
        status: None,
        value: get(row, 2)?,
        item_type: get(row, 3)?,
    })
}

pub(crate) fn device_exists(tx: &mut Tx<'_>, mac: &str) -> Result<bool, StoreError> {
    tx.exists("SELECT 1 FROM devices WHERE mac = $1", &[&mac])
}

/// The namespace of the devices' advisory locks: the lock of a device is this plus its
/// MAC (48 bits), so that no device's lock is the migrations' (`schema::MIGRATION_LOCK`).
const DEVICE_LOCKS: i64 = 0x444C << 48;

/// The advisory lock key of a device.
pub(crate) fn device_lock_key(mac: MacAddr) -> i64 {
    let o = mac.octets();
    DEVICE_LOCKS | i64::from_be_bytes([0, 0, o[0], o[1], o[2], o[3], o[4], o[5]])
}

/// Excludes every other transaction that locks the device (its messages, the admin's
/// changes of it), on any connection of any node, until this one ends.
pub(crate) fn lock_device(tx: &mut Tx<'_>, mac: MacAddr) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&device_lock_key(mac)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot read\nthe row")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn errors_are_shown_on_one_line_with_their_sources() {
        let e = Outer(std::io::Error::other("disk\non fire"));
        assert_eq!(one_line(&e), "cannot read the row: disk on fire");
    }

    #[test]
    fn device_lock_keys_are_the_mac_in_a_namespace_of_their_own() {
        let a = device_lock_key(MacAddr::from_bytes([0, 0, 0, 0, 0, 0]));
        let b = device_lock_key(MacAddr::from_bytes([0xFF; 6]));
        assert_eq!((a, b), (0x444C_0000_0000_0000, 0x444C_FFFF_FFFF_FFFF));
        assert_ne!(a >> 48, crate::schema::MIGRATION_LOCK >> 48);
    }
}
