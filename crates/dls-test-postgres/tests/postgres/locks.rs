//! Advisory transaction locks exclude across connections (what several nodes on one database
//! will coordinate with).

use std::{
    thread,
    time::{Duration, Instant},
};

use crate::{pool, shared};

const KEY: i64 = 0x0d15_0015;

#[test]
fn an_advisory_xact_lock_excludes_a_second_connection_until_commit() {
    let db = shared().fresh_database().expect("database");
    let pool = pool(db.url(), 3);
    let mut holder = pool.get().expect("holder");
    let mut tx = holder.transaction().expect("begin");
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY]).expect("lock");

    // A second connection cannot have it meanwhile...
    let mut other = pool.get().expect("other");
    let got: bool = other.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&KEY]).expect("try").get(0);
    assert!(!got, "the lock is held by the first connection");

    // ...and one that asks for it waits, visibly to the server, until the holder commits.
    let waiter = thread::spawn(move || {
        let mut conn = pool.get().expect("waiter");
        let mut tx = conn.transaction().expect("begin");
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY]).expect("lock after wait");
        tx.commit().expect("commit");
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = other
            .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted", &[])
            .expect("pg_locks")
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the waiter never queued for the lock");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!waiter.is_finished(), "the waiter got the lock while it was held");
    tx.commit().expect("commit releases the lock");
    waiter.join().expect("the waiter gets the lock after the commit");

    // Released at the waiter's commit too.
    let got: bool = other.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&KEY]).expect("try").get(0);
    assert!(got);
}
