//! The web console in a real browser: the Playwright suite in `tests/browser/`, driving
//! Debian's headless Chromium against one `dls serve` started here on ephemeral loopback
//! ports, in a temporary data directory.
//!
//! This test owns every process of the run: the service (killed when dropped, stopped with
//! SIGTERM at the end), and the suite, started in a process group of its own with a deadline
//! (Playwright's own `globalTimeout` is shorter). Past the deadline the group — Playwright,
//! its workers and the `dls phone run`s they started — gets SIGINT, which makes Playwright
//! close its browsers, then SIGKILL. What the suite needs and cannot find (Node.js, the npm
//! packages, Chromium) fails the test with one line saying what to install: it never passes
//! silently.
//!
//! The suite gets the service in `DLS_E2E_*` variables (`tests/browser/harness/env.ts`);
//! `DLS_BROWSER_GREP` runs only the tests whose title matches, `DLS_CHROMIUM` names another
//! Chromium than `/usr/bin/chromium`, `DLS_UPDATE_SCREENSHOTS=1` refreshes `docs/console/`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::serve;

/// How long the whole suite may take before its processes are killed (Playwright stops
/// itself after 240 s: `globalTimeout` in playwright.config.ts).
const DEADLINE: Duration = Duration::from_secs(300);
/// After SIGINT past the deadline, how long Playwright has to close its browsers.
const GRACE: Duration = Duration::from_secs(10);
/// The command that installs the suite's npm packages, as package-lock.json pins them.
const NPM_CI: &str = "cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("DLS_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Node.js 20 or later (Playwright's minimum) is on the PATH.
fn check_node() -> Result<(), String> {
    let out = Command::new("node").arg("--version").stdin(Stdio::null()).output().map_err(|_| {
        "browser tests: `node` not found: install Node.js 20 or later with npm (`apt-get install nodejs npm` where Debian's is 20+)"
            .to_owned()
    })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(m) if m >= 20 => Ok(()),
        _ => Err(format!("browser tests: Node.js {version:?} is too old or unknown: install Node.js 20 or later")),
    }
}

fn version_in(file: &Path, pointer: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    json.pointer(pointer)?.as_str().map(str::to_owned)
}

/// `node_modules` holds the `@playwright/test` that package-lock.json pins.
fn check_packages(suite: &Path) -> Result<(), String> {
    let pinned = version_in(&suite.join("package-lock.json"), "/packages/node_modules~1@playwright~1test/version")
        .ok_or_else(|| {
            format!("browser tests: no @playwright/test in {}", suite.join("package-lock.json").display())
        })?;
    match version_in(&suite.join("node_modules/@playwright/test/package.json"), "/version") {
        None => Err(format!(
            "browser tests: tests/browser/node_modules is missing (npm packages not installed): run `{NPM_CI}`"
        )),
        Some(v) if v != pinned => Err(format!(
            "browser tests: @playwright/test {v} is installed but package-lock.json pins {pinned}: run `{NPM_CI}`"
        )),
        Some(_) => Ok(()),
    }
}

/// Chromium is where the suite will launch it.
fn check_chromium(path: &Path) -> Result<(), String> {
    if path.is_file() {
        Ok(())
    } else {
        Err(format!("browser tests: Chromium not found at {}: run `apt-get install chromium`", path.display()))
    }
}

/// Sends `signal` to the process group `pgid` (the suite's, which this test created).
fn signal_group(signal: &str, pgid: u32) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
}

#[test]
fn the_console_in_headless_chromium() {
    let suite = suite_dir();
    if let Err(why) = check_node().and_then(|()| check_packages(&suite)).and_then(|()| check_chromium(&chromium())) {
        panic!("{why}");
    }

    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let served = serve(&data);
    let token = std::fs::read_to_string(data.join("admin-token")).expect("admin-token");
    let log_path = tmp.path().join("playwright.log");
    let log = std::fs::File::create(&log_path).expect("log file");

    let mut cmd = Command::new("node");
    cmd.arg("node_modules/@playwright/test/cli.js")
        .arg("test")
        .current_dir(&suite)
        .env("DLS_E2E_ADMIN_URL", &served.admin)
        .env("DLS_E2E_ADMIN_TOKEN", token.trim())
        .env("DLS_E2E_WPI", &served.wpi)
        .env("DLS_E2E_CA", data.join("ca.crt"))
        .env("DLS_E2E_DATA_DIR", &data)
        .env("DLS_E2E_BIN", env!("CARGO_BIN_EXE_dls"))
        .env("DLS_CHROMIUM", chromium())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        // A group of its own: everything the suite starts can be stopped together.
        .process_group(0);
    if let Ok(grep) = std::env::var("DLS_BROWSER_GREP") {
        cmd.args(["--grep", &grep]);
    }
    let mut child = cmd.spawn().expect("node starts");
    let pgid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(DEADLINE) {
        Ok(status) => Some(status.expect("waiting for the suite")),
        Err(_) => {
            // Past the deadline: Playwright closes its browsers on SIGINT.
            signal_group("-INT", pgid);
            let _ = rx.recv_timeout(GRACE);
            None
        }
    };
    // Whatever of the group is left (nothing, after a clean run) is ended.
    signal_group("-KILL", pgid);
    waiter.join().expect("waiter");
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{output}");

    let stderr = served.stop();
    match status {
        None => panic!(
            "the browser suite did not finish within {} s and was killed; its output:\n{output}",
            DEADLINE.as_secs()
        ),
        Some(s) if !s.success() => panic!(
            "the browser suite failed ({s}); traces and screenshots of failed tests are in tests/browser/test-results/; its output:\n{output}"
        ),
        Some(_) => {}
    }
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "dls serve panicked during the browser suite: {stderr:#?}");
}

#[test]
fn a_missing_npm_install_or_chromium_fails_with_one_line_saying_what_to_run() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::copy(suite_dir().join("package-lock.json"), tmp.path().join("package-lock.json")).expect("copy");
    let why = check_packages(tmp.path()).expect_err("no node_modules");
    assert!(why.contains("node_modules is missing") && why.ends_with(&format!("run `{NPM_CI}`")), "{why}");
    assert_eq!(why.lines().count(), 1, "{why}");

    let installed = tmp.path().join("node_modules/@playwright/test");
    std::fs::create_dir_all(&installed).expect("mkdir");
    std::fs::write(installed.join("package.json"), r#"{"name":"@playwright/test","version":"0.0.1"}"#).expect("write");
    let why = check_packages(tmp.path()).expect_err("another version");
    assert!(why.contains("@playwright/test 0.0.1 is installed but package-lock.json pins"), "{why}");

    let why = check_chromium(&tmp.path().join("no-chromium")).expect_err("no chromium");
    assert!(why.ends_with("run `apt-get install chromium`"), "{why}");
    assert_eq!(why.lines().count(), 1, "{why}");
}
