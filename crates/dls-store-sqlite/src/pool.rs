//! Connections: the idle read-only ones ([`Pool`], [`Lease`]) and the thread that
//! checkpoints the WAL beside the writer ([`Checkpointer`]).

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// After how many commits the writer wakes the checkpointer.
const CHECKPOINT_COMMITS: u64 = 64;

/// How long the checkpointer waits at most before checkpointing what was committed.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);

/// Idle read-only connections; a read takes one and gives it back.
pub(crate) struct Pool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
    /// How many connections there are (idle or taken).
    pub(crate) size: usize,
}

impl Pool {
    pub(crate) fn new(connections: Vec<Connection>) -> Self {
        Self { size: connections.len(), idle: Mutex::new(connections), returned: Condvar::new() }
    }

    /// An idle connection (waiting for one if all are taken); `None` if there are none.
    pub(crate) fn take(&self) -> Option<Lease<'_>> {
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
pub(crate) struct Lease<'p> {
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
pub(crate) struct Checkpointer {
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
    pub(crate) fn start(path: &Path, synchronous: &str) -> Option<Self> {
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
    pub(crate) fn committed(&self) {
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
