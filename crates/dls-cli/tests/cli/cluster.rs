//! Nodes of a cluster on one PostgreSQL database (a server of `dls-test-postgres`) dying
//! with SIGKILL in the middle of their work; the node killed is always a real `dls serve`
//! process (this binary's tests are the ones Cargo gives the `dls` binary to):
//!
//! * in the middle of a storm of phones: the phones that fail retry on the other node and
//!   complete; no device is lost, none is left with half a message applied;
//! * in the middle of a contact-me it claimed: the other node (in this process, on a manual
//!   clock, so that the claim's minute passes at once) sends the contact-me once the claim
//!   has ended, and only once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dls_engine::UnixTime;
use dls_message::{Action, MacAddr, Reason};
use dls_server::{ManualClock, StoreLocation};
use dls_test_postgres::TestPostgres;
use dls_workpoint::{Phone, ServerTrust, WpiClient};
use serde_json::json;

use crate::common::{Served, dls, serve_with};

/// A safety net for what the tests wait for: never reached when they pass.
const LIMIT: Duration = Duration::from_secs(60);

/// A fresh database on the shared test server: its URL.
fn database() -> String {
    let pg = TestPostgres::shared().expect("PostgreSQL for the cluster tests (apt-get install postgresql)");
    pg.fresh_database().expect("a fresh database").url().to_owned()
}

/// `dls serve` on `data` with the store at `url`, named `name`.
fn node(data: &Path, url: &str, name: &str) -> Served {
    serve_with(data, &["--store", url, "--node-name", name])
}

/// A data directory for another node of `first`'s cluster: the keys every node shares
/// (`docs/cluster.md`), copied from `first`'s.
fn join(first: &Path, data: &Path) {
    std::fs::DirBuilder::new().mode(0o700).create(data).expect("data dir");
    for name in ["ca.crt", "ca.key", "secrets.key", "fingerprint.key", "admin-token"] {
        let to = data.join(name);
        std::fs::copy(first.join(name), &to).expect("copies a key");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("0600");
    }
}

/// `dls ARGS --data-dir DATA` (an admin command through that node's API), its JSON answer.
fn admin(data: &Path, args: &[&str]) -> serde_json::Value {
    let data = data.to_str().expect("utf-8");
    let run = dls(&[args, &["--data-dir", data]].concat(), b"");
    assert_eq!(run.code, 0, "dls {args:?}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("dls {args:?}: {e}: {}", run.stdout))
}

/// SIGKILL, and the process reaped.
fn kill(mut served: Served) {
    served.child.kill().expect("SIGKILL");
    let status = served.child.wait().expect("reaped");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
}

fn phone_client(wpi: &str, ca: &str) -> WpiClient {
    let mut c = WpiClient::new(wpi, &ServerTrust::Verify(vec![ca.to_owned()])).expect("client");
    c.set_timeout(Duration::from_secs(10));
    c
}

/// The storm's items: 24 key labels, which phones take in messages of at most 4 (6 of
/// them: a phone spends most of its interaction between two of them).
const ITEMS: u32 = 24;
const PER_MESSAGE: i64 = 4;
const PHONES: usize = 48;
/// Phones in flight at once.
const WORKERS: usize = 6;
/// Node A is killed once this many phones completed on it.
const KILL_AFTER: usize = 12;

fn storm_mac(n: usize) -> MacAddr {
    MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x5C, 0x00, u8::try_from(n).expect("a small fleet")])
}

/// Where a phone of the storm completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Completed {
    OnA,
    /// On B, after its interaction with A failed (A killed under it, or already gone).
    RetriedOnB,
}

#[derive(Default)]
struct StormState {
    completed_on_a: usize,
    /// Set once A is killed and the database was looked at: failed phones may retry.
    retry: bool,
    phones: Vec<(Phone, Completed)>,
}

#[derive(Default)]
struct Storm {
    next: AtomicUsize,
    state: Mutex<StormState>,
    changed: Condvar,
}

impl Storm {
    fn lock(&self) -> std::sync::MutexGuard<'_, StormState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits (bounded) until `ready` holds.
    fn wait_for(&self, what: &str, ready: impl Fn(&StormState) -> bool) {
        let deadline = Instant::now() + LIMIT;
        let mut state = self.lock();
        while !ready(&state) {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_else(|| panic!("{what}: not in time"));
            state = self.changed.wait_timeout(state, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}

/// One of the storm's phone workers: phones taken in turn, each starting up through A; one
/// whose interaction with A fails waits for the test's word, then starts up through B (as a
/// phone calls again, and a balancer sends it to a node that lives) and must complete.
fn storm_worker(storm: &Storm, a: &str, b: &str, ca: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    loop {
        let n = storm.next.fetch_add(1, Ordering::Relaxed);
        if n >= PHONES {
            return;
        }
        let mut phone = Phone::new(storm_mac(n));
        phone.max_items = PER_MESSAGE;
        let on_a = runtime.block_on(phone.interact(&mut phone_client(a, ca), Reason::StartUp));
        let completed = match on_a {
            Ok(r) if r.actions.last() == Some(&Action::CleanUp) => {
                assert_eq!(r.cleanup_reason, None, "{r:?}");
                storm.lock().completed_on_a += 1;
                storm.changed.notify_all();
                Completed::OnA
            }
            _ => {
                storm.wait_for("the retry", |s| s.retry);
                let r = runtime
                    .block_on(phone.interact(&mut phone_client(b, ca), Reason::StartUp))
                    .unwrap_or_else(|e| panic!("{} retried on B: {e}", storm_mac(n)));
                assert_eq!((r.actions.last(), r.cleanup_reason.as_deref()), (Some(&Action::CleanUp), None), "{r:?}");
                Completed::RetriedOnB
            }
        };
        storm.lock().phones.push((phone, completed));
        storm.changed.notify_all();
    }
}

/// The items of the admin API's `items` JSON, by (name, index).
fn items_of(json: &serde_json::Value) -> std::collections::BTreeMap<(String, Option<u64>), String> {
    json.as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let key = (i["name"].as_str().expect("name").to_owned(), i["index"].as_u64());
            (key, i["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Node A is killed (SIGKILL) in the middle of a storm of phones, with interactions in
/// flight: right after, every device in the database holds whole messages only (a multiple
/// of 4 of the 24 items recorded as written, never a part of a message); the phones that
/// failed start up again through node B and complete; in the end every phone is a device,
/// with every item written and recorded, and its inventory what the phone reported.
#[test]
fn a_node_killed_in_a_storm_loses_no_device_and_leaves_none_half_updated() {
    let url = database();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = node(&data_a, &url, "node-a");
    join(&data_a, &data_b);
    let b = node(&data_b, &url, "node-b");
    let mut toml = String::new();
    for i in 0..ITEMS {
        toml.push_str(&format!("[[item]]\nname = \"key-label-unicode\"\nindex = {i}\nvalue = \"storm {i}\"\n"));
    }
    let profile = tmp.path().join("storm.toml");
    std::fs::write(&profile, toml).expect("profile");
    let run = dls(
        &["profile", "set", "global", profile.to_str().expect("utf-8"), "--data-dir", data_a.to_str().expect("utf-8")],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    let ca = std::fs::read_to_string(data_a.join("ca.crt")).expect("ca.crt");
    let storm = Arc::new(Storm::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (storm, a, b, ca) = (storm.clone(), a.wpi.clone(), b.wpi.clone(), ca.clone());
            std::thread::spawn(move || storm_worker(&storm, &a, &b, &ca))
        })
        .collect();
    // The signal: that many phones through A, the workers' next ones in flight.
    storm.wait_for("phones completing on A", |s| s.completed_on_a >= KILL_AFTER);
    kill(a);

    // Nothing runs on B yet: the database as A left it.
    let devices = admin(&data_b, &["device", "list", "--json"]);
    let mut partial = 0;
    for device in devices.as_array().expect("a list") {
        let mac = device["mac"].as_str().expect("mac");
        let details = admin(&data_b, &["device", "show", mac]);
        let written = details["written"].as_array().map_or(0, Vec::len);
        assert_eq!(written % 4, 0, "{mac}: {written} items recorded as written, a message half applied");
        partial += usize::from(written != 0 && written != ITEMS as usize);
    }
    storm.lock().retry = true;
    storm.changed.notify_all();
    for worker in workers {
        worker.join().expect("a storm worker");
    }

    let state = storm.lock();
    let retried = state.phones.iter().filter(|(_, c)| *c == Completed::RetriedOnB).count();
    eprintln!(
        "{} phones completed on A before SIGKILL, {retried} retried on B, {partial} devices left between messages",
        state.phones.len() - retried
    );
    assert!(retried >= 1, "at least the phones in flight when A died retried");
    assert_eq!(state.phones.len(), PHONES);
    let listed = admin(&data_b, &["device", "list", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(PHONES), "no device lost: {listed}");
    for (phone, completed) in &state.phones {
        let mac = phone.mac().to_string();
        let details = admin(&data_b, &["device", "show", &mac]);
        let written = details["written"].as_array().expect("written");
        assert_eq!(written.len(), ITEMS as usize, "{mac} ({completed:?}): every item recorded as written");
        for w in written {
            assert_eq!((&w["item"]["name"], &w["outcome"]), (&json!("key-label-unicode"), &json!("Accepted")), "{w}");
        }
        for i in 0..ITEMS {
            assert_eq!(phone.get("key-label-unicode", Some(i)), Some(format!("storm {i}").as_str()), "{mac}");
        }
        // The inventory is what the phone reported when it was read: every item of it is
        // the phone's value, and none of what the phone reported is missing (the items the
        // service wrote are recorded as written, not necessarily read back).
        let reported = items_of(&serde_json::to_value(phone.reported_items()).expect("json"));
        let inventory = items_of(&details["inventory"]);
        for (key, value) in &inventory {
            assert_eq!(reported.get(key), Some(value), "{mac} ({completed:?}): {key:?} in the inventory");
        }
        for key in reported.keys().filter(|(name, _)| name != "key-label-unicode") {
            assert!(inventory.contains_key(key), "{mac} ({completed:?}): {key:?} missing from the inventory");
        }
    }
    drop(state);
    b.stop();
}

/// A phone's contact-me listener that holds the first request it gets (reads it, never
/// answers) and answers `204` to the others; every request's arrival is sent on a channel.
struct Phone204 {
    addr: SocketAddr,
    requests: mpsc::Receiver<usize>,
}

impl Phone204 {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("addr");
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                stream.set_read_timeout(Some(LIMIT)).expect("timeout");
                if !read_request(&mut stream) {
                    continue;
                }
                if tx.send(n).is_err() {
                    return;
                }
                if n == 0 {
                    held.push(stream);
                } else {
                    let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                }
            }
        });
        Self { addr, requests }
    }

    /// The next request's number, if one comes within `timeout`.
    fn next(&self, timeout: Duration) -> Option<usize> {
        self.requests.recv_timeout(timeout).ok()
    }
}

/// Reads a request's head and its body (by `Content-Length`); false if the peer went away.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Ok(n) = stream.read(&mut buf) else { return false };
        if n == 0 || bytes.len() > 64 * 1024 {
            return false;
        }
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text.starts_with("POST /contact_dls.html/ContactDLS ");
            }
        }
    }
}

/// The claim of `mac`'s contact-me in the schedule: (node, until).
fn claim(url: &str, mac: MacAddr) -> (Option<String>, Option<i64>) {
    let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connects");
    let row = db
        .query_one("SELECT claimed_by, claimed_until FROM contact_schedule WHERE mac = $1", &[&mac.to_string()])
        .expect("the phone's row of the schedule");
    (row.get(0), row.get(1))
}

/// Node A claims a due contact-me and is killed (SIGKILL) while the phone has not answered:
/// the claim stays in the database until it ends. Node B (on a manual clock) sends nothing
/// while the claim stands, sends the contact-me the moment it has ended, and once only.
#[test]
fn a_contact_me_claimed_by_a_node_that_dies_is_sent_once_by_another_when_the_claim_ends() {
    let url = database();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = node(&data_a, &url, "node-a");
    let listener = Phone204::start();
    let mac = MacAddr::parse("00:1A:E8:5C:C0:01").expect("mac");
    let mut phone = Phone::new(mac);
    phone.set("contact-me-uri", None, &format!("http://{}/contact_dls.html/ContactDLS", listener.addr));
    let ca = std::fs::read_to_string(data_a.join("ca.crt")).expect("ca.crt");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let r = runtime.block_on(phone.interact(&mut phone_client(&a.wpi, &ca), Reason::StartUp)).expect("start-up");
    assert_eq!(r.actions.last(), Some(&Action::CleanUp));

    let data = data_a.to_str().expect("utf-8");
    let run = dls(&["job", "add", "--mac", &mac.to_string(), "--data-dir", data, "restart"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A claimed the phone and sent its contact-me, which the phone holds unanswered.
    assert_eq!(listener.next(LIMIT), Some(0), "A's contact-me");
    kill(a);
    let (holder, until) = claim(&url, mac);
    assert_eq!(holder.as_deref(), Some("node-a"), "the dead node's claim stands");
    let until = u64::try_from(until.expect("a claim's end")).expect("a time");

    // B, a second before the claim ends.
    join(&data_a, &data_b);
    let clock = ManualClock::new(UnixTime(until - 1));
    let mut config = dls_server::Config::default();
    config.data_dir = data_b.clone();
    for listen in [&mut config.wpi_listen, &mut config.admin_listen, &mut config.secure_listen, &mut config.http_listen]
    {
        *listen = "127.0.0.1:0".parse().expect("addr");
    }
    config.store = StoreLocation::new(url.clone());
    config.node_name = "node-b".to_owned();
    let b = runtime.block_on(dls_server::start_with_clock(config, Arc::new(clock.clone()))).expect("node B starts");
    assert_eq!(listener.next(Duration::from_millis(500)), None, "nothing while A's claim stands");
    assert_eq!(claim(&url, mac).0.as_deref(), Some("node-a"));

    clock.advance(Duration::from_secs(1));
    assert_eq!(listener.next(LIMIT), Some(1), "B's contact-me once the claim has ended");
    // Recorded by B at the claim's end, answered.
    let deadline = Instant::now() + LIMIT;
    let job = loop {
        let jobs = admin(&data_b, &["job", "list", "--json", "--mac", &mac.to_string(), "--limit", "1"]);
        if jobs[0]["contact_at"] == json!(until) {
            break jobs[0].clone();
        }
        assert!(Instant::now() < deadline, "no contact-me recorded at {until}: {jobs}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(job["contact"], "contact-me answered 204", "{job}");
    assert_eq!(claim(&url, mac), (None, None), "B gave its claim up");

    // Once: B looks at the schedule again (it does at least every 2 s of its clock), and
    // sends nothing within the phone's contact gap.
    clock.advance(Duration::from_secs(2));
    assert_eq!(listener.next(Duration::from_millis(500)), None, "one contact-me, not two");
    runtime.block_on(b.shutdown());
}
