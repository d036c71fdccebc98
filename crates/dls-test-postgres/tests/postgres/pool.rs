//! The backend's client: the r2d2 pool of synchronous connections, over TCP and the socket,
//! in transactions, and from tokio's blocking threads.

use crate::{pool, shared};

#[test]
fn the_pool_runs_transactions_over_tcp_and_the_socket() {
    let db = shared().fresh_database().expect("database");
    for (i, url) in [db.url(), db.socket_url()].into_iter().enumerate() {
        let pool = pool(url, 4);
        let mut conn = pool.get().expect(url);
        let table = format!("t{i}");
        conn.batch_execute(&format!("CREATE TABLE {table} (k text PRIMARY KEY, v bigint NOT NULL)")).expect("create");

        let mut tx = conn.transaction().expect("begin");
        tx.execute(&format!("INSERT INTO {table} VALUES ($1, $2)"), &[&"kept", &1_i64]).expect("insert");
        tx.commit().expect("commit");

        let mut tx = conn.transaction().expect("begin");
        tx.execute(&format!("INSERT INTO {table} VALUES ($1, $2)"), &[&"dropped", &2_i64]).expect("insert");
        tx.rollback().expect("rollback");

        // Another connection of the pool sees the committed row only.
        let mut other = pool.get().expect("second connection");
        let keys: Vec<String> = other
            .query(&format!("SELECT k FROM {table} ORDER BY k"), &[])
            .expect("select")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, ["kept"], "{url}");

        // A failed statement aborts its transaction, not the connection.
        let mut tx = other.transaction().expect("begin");
        let dup = tx.execute(&format!("INSERT INTO {table} VALUES ($1, $2)"), &[&"kept", &3_i64]);
        assert!(dup.is_err(), "a duplicate key is refused");
        drop(tx);
        let n: i64 = other.query_one(&format!("SELECT count(*) FROM {table}"), &[]).expect("count").get(0);
        assert_eq!(n, 1);
    }
}

#[test]
fn the_pool_works_from_tokio_blocking_threads() {
    let db = shared().fresh_database().expect("database");
    let pool = pool(db.url(), 4);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let sums = runtime.block_on(async {
        let tasks: Vec<_> = (0..8_i64)
            .map(|i| {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get().expect("connection");
                    conn.query_one("SELECT $1::bigint + 1", &[&i]).expect("query").get::<_, i64>(0)
                })
            })
            .collect();
        let mut sums = Vec::new();
        for task in tasks {
            sums.push(task.await.expect("task"));
        }
        sums
    });
    assert_eq!(sums, (1..=8).collect::<Vec<i64>>());
}
