//! Real clients against the test server: curl (`--digest`) and Python `requests`
//! (`HTTPDigestAuth`). CI installs both; a missing tool fails the test with a message saying
//! what to install.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dls_digest::{Algorithm, ChallengeReason, Config, Outcome};

use crate::server::TestServer;
use crate::{FALLBACK_PASS, FALLBACK_USER, MAC_A, MAC_B, SECRET_A, SECRET_B, Store, target};

/// Runs a command, killing it after `limit`.
fn run(cmd: &mut Command, what: &str, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} is required by this test and could not be started: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
        }
    }
    child.wait_with_output().expect("output")
}

/// `(status, body)` of a `curl --digest` GET.
fn curl(url: &str, user: &str, pass: &str) -> (u16, String) {
    let out = run(
        Command::new("curl").args(["-sS", "--max-time", "10", "--digest", "-u", &format!("{user}:{pass}")]).args([
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ]),
        "curl (apt-get install curl)",
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    split_status(&String::from_utf8_lossy(&out.stdout), "curl")
}

const PYTHON: &str = r#"
import sys
try:
    import requests
    from requests.auth import HTTPDigestAuth
except ImportError:
    sys.exit("the Python module requests is required: python3 -m pip install requests")
args = sys.argv[1:]
for i in range(0, len(args), 3):
    r = requests.get(args[i], auth=HTTPDigestAuth(args[i + 1], args[i + 2]), timeout=10)
    sys.stdout.write("%d %s\n" % (r.status_code, r.text))
"#;

/// `(status, body)` of Python `requests` GETs with `HTTPDigestAuth`, one interpreter for all.
fn python(requests: &[(&str, &str, &str)]) -> Vec<(u16, String)> {
    let args = requests.iter().flat_map(|(url, user, pass)| [*url, *user, *pass]);
    let out = run(
        Command::new("python3").args(["-c", PYTHON]).args(args),
        "python3 (with requests: python3 -m pip install requests)",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<(u16, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (code, body) = l.split_once(' ').unwrap_or((l, ""));
            (code.parse().unwrap_or_else(|_| panic!("python3: no status in {l:?}")), body.to_owned())
        })
        .collect();
    assert_eq!(results.len(), requests.len(), "python3 output: {results:?}");
    results
}

/// curl, one process per request.
fn curls(requests: &[(&str, &str, &str)]) -> Vec<(u16, String)> {
    requests.iter().map(|(url, user, pass)| curl(url, user, pass)).collect()
}

fn split_status(out: &str, what: &str) -> (u16, String) {
    let (body, code) = out.rsplit_once('\n').unwrap_or_else(|| panic!("{what}: unexpected output {out:?}"));
    (code.trim().parse().unwrap_or_else(|_| panic!("{what}: no status in {out:?}")), body.to_owned())
}

fn body(mac: &str) -> String {
    format!("<provisioning mac=\"{mac}\"/>")
}

/// The last accepted exchange's algorithm and the `Authorization` parameter `name` it carried.
fn last_accept(server: &TestServer, name: &str) -> (Algorithm, Option<String>) {
    let ex = server.exchanges();
    let e = ex.iter().rev().find(|e| matches!(e.outcome, Outcome::Accept { .. })).expect("an accepted request");
    let Outcome::Accept { algorithm, .. } = e.outcome else { unreachable!() };
    (algorithm, e.authorization.as_ref().and_then(|a| a.param(name)).map(str::to_owned))
}

type Client = fn(&[(&str, &str, &str)]) -> Vec<(u16, String)>;

fn device_checks(client: Client, server: &TestServer) {
    let (url_a, url_b) = (server.url(&target(MAC_A)), server.url(&target(MAC_B)));
    let upper = MAC_A.to_ascii_uppercase();
    let results = client(&[
        (&url_a, MAC_A, SECRET_A),
        (&url_a, &upper, SECRET_A),
        (&url_a, FALLBACK_USER, FALLBACK_PASS),
        (&url_a, MAC_A, SECRET_B),
        (&url_a, "0000deadbeef", SECRET_A),
        // Device B's valid credentials never get A's file.
        (&url_a, MAC_B, SECRET_B),
        (&url_b, MAC_B, SECRET_B),
    ]);
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 200, 401, 401, 403, 200]);
    assert_eq!(results[0].1, body(MAC_A));
    assert_eq!(results[1].1, body(MAC_A));
    assert_eq!(results[6].1, body(MAC_B));
    let ex = server.exchanges();
    assert!(ex.iter().any(|e| matches!(e.outcome, Outcome::Challenge { reason: ChallengeReason::NoCredentials, .. })));
    assert!(ex.iter().any(|e| matches!(e.outcome, Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. })));
    assert!(ex.iter().any(|e| matches!(e.outcome, Outcome::Challenge { reason: ChallengeReason::UnknownUser, .. })));
    assert!(ex.iter().all(|e| !matches!(e.outcome, Outcome::BadRequest { .. } | Outcome::Throttled { .. })), "{ex:?}");
    let served: Vec<u16> = ex.iter().map(|e| e.status).filter(|&s| s != 401).collect();
    assert_eq!(served, [200, 200, 200, 403, 200]);
}

fn server_with(challenges: &[Algorithm], offer_userhash: bool) -> TestServer {
    let mut config = Config::new("dls provisioning");
    config.challenges = challenges.to_vec();
    config.offer_userhash = offer_userhash;
    TestServer::start(config, Store::phones_in("dls provisioning"))
}

#[test]
fn curl_md5() {
    let server = server_with(&[Algorithm::Md5], false);
    device_checks(curls, &server);
    assert_eq!(last_accept(&server, "algorithm").0, Algorithm::Md5);
}

#[test]
fn curl_sha256() {
    let server = server_with(&[Algorithm::Sha256], false);
    let url = server.url(&target(MAC_A));
    assert_eq!(curl(&url, MAC_A, SECRET_A), (200, body(MAC_A)));
    assert_eq!(last_accept(&server, "algorithm"), (Algorithm::Sha256, Some("SHA-256".into())));
    assert_eq!(curl(&url, MAC_A, SECRET_B).0, 401);
}

#[test]
fn curl_sha256_and_md5_offered() {
    let server = server_with(&[Algorithm::Sha256, Algorithm::Md5], false);
    assert_eq!(curl(&server.url(&target(MAC_A)), MAC_A, SECRET_A), (200, body(MAC_A)));
}

#[test]
fn curl_userhash() {
    let server = server_with(&[Algorithm::Sha256], true);
    assert_eq!(curl(&server.url(&target(MAC_A)), MAC_A, SECRET_A), (200, body(MAC_A)));
    let (_, userhash) = last_accept(&server, "userhash");
    assert_eq!(userhash.as_deref(), Some("true"), "curl did not hash the username");
    let (_, username) = last_accept(&server, "username");
    assert_eq!(username, Some(dls_digest::userhash(Algorithm::Sha256, MAC_A, "dls provisioning")));
}

#[test]
fn python_requests_md5() {
    let server = server_with(&[Algorithm::Md5], false);
    device_checks(python, &server);
    assert_eq!(last_accept(&server, "algorithm").0, Algorithm::Md5);
}

#[test]
fn python_requests_sha256_and_md5_sess() {
    let offers = [
        (vec![Algorithm::Sha256], Algorithm::Sha256),
        (vec![Algorithm::Md5Sess], Algorithm::Md5Sess),
        (vec![Algorithm::Sha256, Algorithm::Md5], Algorithm::Md5),
    ];
    let servers: Vec<TestServer> = offers.iter().map(|(offered, _)| server_with(offered, false)).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url(&target(MAC_A))).collect();
    let requests: Vec<(&str, &str, &str)> =
        urls.iter().flat_map(|u| [(u.as_str(), MAC_A, SECRET_A), (u.as_str(), MAC_A, SECRET_B)]).collect();
    let results = python(&requests);
    for (i, ((offered, used), server)) in offers.iter().zip(&servers).enumerate() {
        assert_eq!(results[2 * i], (200, body(MAC_A)), "{offered:?}");
        assert_eq!(results[2 * i + 1].0, 401, "{offered:?}");
        assert_eq!(last_accept(server, "algorithm").0, *used, "{offered:?}");
    }
}
