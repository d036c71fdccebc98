//! A restart of the database under load: the pool's broken connections are replaced, and
//! every worker gets through again.

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use dls_test_postgres::{Error, TestPostgres};

use crate::{pool, pool_with};

#[test]
fn the_pool_reconnects_after_a_restart_under_load() {
    let pg = TestPostgres::start().expect("server");
    let db = pg.database("restarts").expect("database");
    let pool = pool(db.url(), 4);
    pool.get()
        .expect("connection")
        .batch_execute("CREATE TABLE hits (worker int, at timestamptz DEFAULT now())")
        .expect("create");

    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let after_restart = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4_i32)
        .map(|worker| {
            let (pool, stop, restarted, after) = (pool.clone(), stop.clone(), restarted.clone(), after_restart.clone());
            thread::spawn(move || {
                let mut failures = 0_u64;
                while !stop.load(Ordering::SeqCst) {
                    let was_restarted = restarted.load(Ordering::SeqCst);
                    let ok = pool.get().is_ok_and(|mut conn| {
                        conn.execute("INSERT INTO hits (worker) VALUES ($1)", &[&worker]).is_ok()
                    });
                    match (ok, was_restarted) {
                        (true, true) => {
                            after.fetch_add(1, Ordering::SeqCst);
                        }
                        (true, false) => {}
                        (false, _) => failures += 1,
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                failures
            })
        })
        .collect();

    thread::sleep(Duration::from_millis(300));
    pg.restart().expect("restart");
    restarted.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while after_restart.load(Ordering::SeqCst) < 40 {
        assert!(Instant::now() < deadline, "the workers did not get through after the restart: {}", pg.log_tail());
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let failures: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();

    // The committed rows survived the restart (a fast shutdown checkpoints).
    let mut conn = pool.get().expect("connection after the restart");
    let workers_seen: i64 = conn.query_one("SELECT count(DISTINCT worker) FROM hits", &[]).expect("count").get(0);
    assert_eq!(workers_seen, 4);
    eprintln!("restart under load: {failures} failed operations during the outage");
}

#[test]
fn a_stopped_server_fails_checkouts_until_it_is_started_again() {
    let pg = TestPostgres::start().expect("server");
    let db = pg.database("stops").expect("database");
    let port = pg.port();
    let pool = pool_with(db.socket_url(), postgres::NoTls, 2, Duration::from_secs(2));
    pool.get().expect("connection").batch_execute("SELECT 1").expect("query");

    pg.stop().expect("stop");
    pg.stop().expect("a second stop does nothing");
    let Err(err) = pool.get() else { panic!("a connection without a server") };
    assert!(!err.to_string().is_empty());

    pg.start_again().expect("start again");
    pg.start_again().expect("a second start does nothing");
    assert_eq!(pg.port(), port, "the same port after a restart");
    let mut conn = pool.get().expect("connection after the start");
    let one: i32 = conn.query_one("SELECT 1", &[]).expect("query").get(0);
    assert_eq!(one, 1);
}

#[test]
fn a_start_on_a_taken_port_fails_with_the_server_log() {
    let pg = TestPostgres::start().expect("server");
    let port = pg.port();
    pg.stop().expect("stop");
    // Another process takes the port meanwhile: the restart cannot move (clients know the
    // port), so it fails, saying why.
    let squatter = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let err = pg.start_again().expect_err("the port is taken");
    let message = err.to_string();
    assert!(matches!(err, Error::Start { .. }), "{message}");
    assert!(message.contains("Address already in use"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    drop(squatter);
    pg.start_again().expect("start once the port is free");
    assert_eq!(pg.port(), port);
}
