//! Starting a service for a test, and talking to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dls_server::{Config, Running};
use dls_workpoint::{ServerTrust, WpiClient};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

pub(crate) struct TestServer {
    pub(crate) running: Option<Running>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) wpi: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) secure: SocketAddr,
    pub(crate) http: SocketAddr,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_clock(tweak, std::sync::Arc::new(dls_server::SystemClock)).await
    }

    /// A service whose every time decision reads `clock` (a [`dls_server::ManualClock`]
    /// makes rate limits and schedules happen exactly when the test moves it).
    pub(crate) async fn start_with_clock(
        tweak: impl FnOnce(&mut Config),
        clock: std::sync::Arc<dyn dls_server::Clock>,
    ) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), tweak, clock).await
    }

    /// Another node of `first`'s cluster: a data directory of its own that holds the keys
    /// every node of a cluster shares (`docs/cluster.md`), copied from `first`'s.
    pub(crate) async fn join(first: &Self, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::join_with_clock(first, tweak, std::sync::Arc::new(dls_server::SystemClock)).await
    }

    /// [`Self::join`] on `clock`.
    pub(crate) async fn join_with_clock(
        first: &Self,
        tweak: impl FnOnce(&mut Config),
        clock: std::sync::Arc<dyn dls_server::Clock>,
    ) -> Self {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::DirBuilder::new().mode(0o700).create(&data).expect("data dir");
        for name in ["ca.crt", "ca.key", "secrets.key", "fingerprint.key", "admin-token"] {
            let to = data.join(name);
            std::fs::copy(first.data().join(name), &to).expect("copies a key");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("0600");
        }
        Self::start_in(dir, tweak, clock).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
        clock: std::sync::Arc<dyn dls_server::Clock>,
    ) -> Self {
        let mut config = Config::default();
        config.data_dir = dir.path().join("data");
        config.wpi_listen = "127.0.0.1:0".parse().expect("addr");
        config.admin_listen = "127.0.0.1:0".parse().expect("addr");
        config.secure_listen = "127.0.0.1:0".parse().expect("addr");
        config.http_listen = "127.0.0.1:0".parse().expect("addr");
        config.pin_iterations = 100_000;
        config.shutdown_grace_secs = 5;
        tweak(&mut config);
        let running = dls_server::start_with_clock(config, clock).await.expect("service starts");
        let (wpi, admin, secure, http) = (running.wpi_addr, running.admin_addr, running.secure_addr, running.http_addr);
        Self { running: Some(running), dir, wpi, admin, secure, http }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data().join("ca.crt")).expect("ca.crt")
    }

    /// A phone client that verifies the server against the service's CA (stricter than a
    /// default-mode phone, which verifies nothing).
    pub(crate) fn client(&self) -> WpiClient {
        let mut c =
            WpiClient::new(&format!("127.0.0.1:{}", self.wpi.port()), &ServerTrust::Verify(vec![self.ca_pem()]))
                .expect("client");
        c.set_timeout(Duration::from_secs(10));
        c
    }

    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.data().join("admin-token")).expect("token").trim().to_owned()
    }

    /// One admin API request; returns status and JSON.
    pub(crate) async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        admin_request(self.admin, method, path, Some(&self.token()), body).await
    }

    pub(crate) async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub(crate) async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("admin connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|b| serde_json::to_vec(&b).expect("json")).unwrap_or_default();
    let resp = sender.send_request(req.body(Full::new(Bytes::from(body))).expect("request")).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Runs a command with a deadline, without blocking the runtime the service runs on;
/// returns (exit code, stdout, stderr).
pub(crate) async fn run(cmd: &mut tokio::process::Command, secs: u64) -> (i32, String, String) {
    let name = format!("{cmd:?}");
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish in {secs} s"))
        .unwrap_or_else(|e| panic!("{name} must be installed for this test: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The log lines the service writes on this thread, captured while this lives (a
/// `#[tokio::test]` runtime runs on one thread: the service's listeners log on it).
pub(crate) struct Logs {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub(crate) fn capture() -> Self {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        Self { buf, _guard: tracing::subscriber::set_default(subscriber) }
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let buf = self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect()
    }
}

/// Runs one SQL statement on the service's database from outside (Python's `sqlite3`), as
/// another process would: e.g. renaming a table makes the store fail under the running
/// service.
pub(crate) async fn sql(srv: &TestServer, statement: &str) {
    let db = srv.data().join("dls.sqlite");
    let script =
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=10)\nc.execute(sys.argv[2])\nc.commit()";
    let (code, out, err) =
        run(tokio::process::Command::new("python3").args(["-c", script]).arg(&db).arg(statement), 30).await;
    assert_eq!(code, 0, "{out}{err}");
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// One request to the admin listener with the headers given; returns the status, the
/// response's headers and its body.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("admin connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = sender.send_request(req.body(Full::new(Bytes::from(body))).expect("request")).await.expect("response");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, bytes.to_vec())
}
