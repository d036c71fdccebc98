//! Running the binary under test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of `dls` gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `dls args…` with `stdin`, bounded by the test harness's own timeout.
pub(crate) fn dls(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dls"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dls starts");
    let mut sin = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit before reading everything (e.g. an oversize input): ignore EPIPE.
        let _ = sin.write_all(&input);
    });
    let out = child.wait_with_output().expect("dls runs");
    let _ = writer.join();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository's `tests/` folder (shared test data).
pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests")
}

/// A running `dls serve`, killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    /// The default-mode WPI address.
    pub(crate) wpi: String,
    /// The secure-mode WPI address.
    #[allow(dead_code)]
    pub(crate) secure: String,
    /// The plain-HTTP address (provisioning files, DCMP).
    #[allow(dead_code)]
    pub(crate) http: String,
    /// The admin API's URL.
    #[allow(dead_code)]
    pub(crate) admin: String,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Served {
    /// Stops the service with SIGTERM; returns what it wrote on stderr.
    #[allow(dead_code)]
    pub(crate) fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let status = self.child.wait().expect("dls serve stops");
        assert!(status.success(), "{status:?}");
        self.stderr.take().map(|t| t.join().expect("stderr reader")).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dls serve` on ephemeral ports and waits for it to print its addresses.
pub(crate) fn serve(data: &Path) -> Served {
    serve_with(data, &[])
}

/// [`serve`] with more flags.
pub(crate) fn serve_with(data: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dls"))
        .args([
            "serve",
            "--wpi-listen",
            "127.0.0.1:0",
            "--secure-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--http-listen", "127.0.0.1:0", "--pin-iterations", "100000", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("DLS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dls serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let stderr = Some(std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut wpi, mut secure, mut http, mut admin) = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("admin API on ") => {
                admin = line.split("admin API on ").nth(1).map(str::to_owned);
                break;
            }
            Ok(line) if line.contains("DCMP on http://") => {
                http = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
            }
            Ok(line) => {
                let addr = line.split("https://").nth(1).and_then(|rest| rest.split('/').next()).map(str::to_owned);
                if line.contains("(default mode)") {
                    wpi = addr;
                } else if line.contains("(secure mode") {
                    secure = addr;
                }
            }
            Err(_) => {}
        }
    }
    let wpi = wpi.expect("dls serve printed its WPI address");
    let secure = secure.expect("dls serve printed its secure address");
    let http = http.expect("dls serve printed its HTTP address");
    let admin = admin.expect("dls serve printed its admin URL");
    Served { child, wpi, secure, http, admin, stderr }
}

/// A child process, killed when dropped (a failing test leaves nothing running).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
