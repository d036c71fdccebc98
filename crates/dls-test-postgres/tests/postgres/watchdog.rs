//! A test process killed outright (SIGKILL: no drop, no exit handler) does not leave its
//! server behind: the watchdog stops it and removes its directory.

use std::{
    env,
    io::{BufRead, BufReader},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use dls_test_postgres::TestPostgres;

use crate::server::{alive, postmaster_pid};

const CHILD_ENV: &str = "DLS_TEST_POSTGRES_WATCHDOG_CHILD";

/// Run by `a_killed_test_process_leaves_no_server` in a child process of this binary: starts
/// the shared server, says where it is, and waits to be killed. Does nothing otherwise.
#[test]
#[ignore = "a helper of a_killed_test_process_leaves_no_server"]
fn child_that_starts_a_server_and_waits() {
    if env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = TestPostgres::shared().expect("server");
    println!("READY {} {} {}", pg.port(), postmaster_pid(pg.data_dir()), pg.socket_dir().display());
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_test_process_leaves_no_server() {
    let mut child = Command::new(env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "watchdog::child_that_starts_a_server_and_waits",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child test process");
    let stdout = child.stdout.take().expect("stdout");
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some((_, rest)) = line.split_once("READY ") {
            ready = Some(rest.to_owned());
            break;
        }
    }
    let Some(ready) = ready else {
        let _ = child.kill();
        let status = child.wait().expect("child");
        panic!("the child ended ({status}) without starting its server");
    };
    let mut fields = ready.splitn(3, ' ');
    let port: u16 = fields.next().and_then(|p| p.parse().ok()).expect("port");
    let pid: u32 = fields.next().and_then(|p| p.parse().ok()).expect("pid");
    let dir = PathBuf::from(fields.next().expect("dir"));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "the child's server answers");

    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");

    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) || dir.exists() {
        assert!(Instant::now() < deadline, "postmaster {pid} or {} outlived the killed test process", dir.display());
        thread::sleep(Duration::from_millis(50));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
}
