//! A throw-away PostgreSQL server for tests, started by the tests themselves.
//!
//! The server is Debian's `postgresql` package (`apt-get install postgresql`): the newest
//! `/usr/lib/postgresql/*/bin` (or the directory named by `DLS_TEST_POSTGRES_BIN`) provides
//! `initdb`, `pg_ctl` and `postgres`. A test that needs the server and cannot find it fails
//! with [`Error::NotInstalled`]; nothing is skipped silently.
//!
//! ```no_run
//! use dls_test_postgres::TestPostgres;
//!
//! // One server per test binary, started by the first test that asks for it; every test
//! // takes a database of its own.
//! let pg = TestPostgres::shared().expect("a PostgreSQL server for the tests");
//! let db = pg.fresh_database().expect("a database");
//! let mut client = postgres::Client::connect(db.url(), postgres::NoTls).expect("connect");
//! client.batch_execute("CREATE TABLE t (x int)").expect("create");
//!
//! // A server of its own, for a test that stops or restarts it.
//! let own = TestPostgres::start().expect("a PostgreSQL server");
//! let db = own.database("restarts").expect("a database");
//! own.restart().expect("restart");
//! # let _ = db.socket_url();
//! ```
//!
//! What a server is:
//! - a temporary directory (`$TMPDIR/dls-test-postgres-*`) with the cluster in `data/`, the
//!   server's log in `server.log` and the Unix socket; run as root, the directory belongs to
//!   the `postgres` system user and `initdb`, `pg_ctl` and the server run as that user
//!   (`runuser -u postgres --`), since `initdb` refuses to run as root;
//! - `initdb` with trust authentication, UTF8, locale C and `--no-sync`; `pg_hba.conf`
//!   admits only the Unix socket and 127.0.0.1;
//! - listening on that socket and on 127.0.0.1 only, on a free ephemeral port (a port taken
//!   between its choice and the server's bind is retried with another);
//! - settings for tests: `max_connections = 100`, small `shared_buffers`, `fsync`,
//!   `synchronous_commit` and `full_page_writes` off (a crash of the machine loses the data,
//!   which a test does not keep anyway);
//! - the superuser `postgres`, without a password: [`Database::url`] is
//!   `postgres://postgres@127.0.0.1:PORT/NAME`, [`Database::socket_url`] the same over the
//!   socket (its directory percent-encoded as the host);
//! - TLS when asked ([`Options::tls`]: `ssl = on` with the given certificate and key, written
//!   0600 and owned by the server's user, as PostgreSQL requires; [`Options::client_certificates`]:
//!   TCP clients must log in with a certificate). [`TestCa`] makes the certificates, and
//!   [`TestPostgres::client_file`] writes what a client reads (its `sslrootcert`, …) where
//!   it goes away with the server.
//!
//! Every wait is bounded: a start or stop taking longer than 30 s fails, a start's error
//! carrying the tail of the server's log.
//!
//! How the server goes away:
//! - dropping a [`TestPostgres`] stops the server (`pg_ctl stop -m immediate`) and removes the
//!   directory;
//! - a watchdog guards every server, including the [shared](TestPostgres::shared) one, whose
//!   `static` is never dropped: a small `sh` process, started with the server in a process
//!   group of its own (a Ctrl-C of the tests does not reach it), that blocks reading a pipe
//!   whose only writer is the test process. When the test process ends, in any way (its end,
//!   a panic, SIGKILL), the kernel closes that pipe; the watchdog then stops the server and
//!   removes the directory;
//! - should the watchdog be killed too, the postmaster itself checks its data directory's
//!   lock file every minute and shuts down once the directory is gone; a directory left then
//!   (after killing both) stays in `$TMPDIR` until removed by hand.

use std::{
    fmt,
    fs::{self, OpenOptions},
    io::{self, Read, Write},
    net::{Ipv4Addr, TcpListener},
    os::unix::{
        fs::{MetadataExt, OpenOptionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tempfile::TempDir;

mod tls;

pub use tls::{Issued, TestCa};

/// The environment variable naming a directory with `initdb`, `pg_ctl` and `postgres`,
/// instead of the newest `/usr/lib/postgresql/*/bin`.
pub const BIN_ENV: &str = "DLS_TEST_POSTGRES_BIN";

/// Where Debian's `postgresql` package puts each major version's binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The longest wait for a start or a stop, in seconds (`pg_ctl -t`).
const WAIT_SECS: u64 = 30;
/// How many free ports a first start tries before giving up.
const PORT_ATTEMPTS: usize = 5;
/// How many lines of a log or of a command's output an error quotes.
const TAIL_LINES: usize = 12;
/// The bytes a Unix socket address holds for its path (`sun_path`, without the final NUL).
const SOCKET_PATH_MAX: usize = 107;

/// Why a test server could not be started, used or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No PostgreSQL installation was found.
    #[error(
        "no PostgreSQL server installed: no {DEBIAN_ROOT}/*/bin/initdb (install Debian's `postgresql` package: apt-get install postgresql, or set {BIN_ENV})"
    )]
    NotInstalled,
    /// A binary the server needs is not in the chosen directory.
    #[error("PostgreSQL binary {} is missing", .0.display())]
    MissingBinary(PathBuf),
    /// Run as root, but `postgres` (the user initdb and the server must run as) is unknown.
    #[error("running as root, but the `postgres` system user could not be given the server's directory: {0}")]
    NoPostgresUser(String),
    /// A program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// A command ran and failed.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// Which step (`initdb`, `pg_ctl stop`, ...).
        what: &'static str,
        /// How it ended.
        status: ExitStatus,
        /// The tail of what it printed.
        output: String,
    },
    /// A command did not finish in time and was killed.
    #[error("{what} did not finish within {WAIT_SECS} s and was killed")]
    Timeout {
        /// Which step.
        what: &'static str,
    },
    /// The server did not start (in time).
    #[error("PostgreSQL did not start on 127.0.0.1:{port} within {WAIT_SECS} s; server log: {log_tail}")]
    Start {
        /// The port it was to listen on.
        port: u16,
        /// The tail of the server's log.
        log_tail: String,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The socket's path does not fit a socket address.
    #[error(
        "the server's socket path {} would be longer than {SOCKET_PATH_MAX} bytes: set TMPDIR to a shorter directory",
        .0.display()
    )]
    SocketPathTooLong(PathBuf),
    /// A database name that is not letters, digits and underscores.
    #[error("invalid database name {0:?}: letters, digits and underscores only, at most 63 of them")]
    InvalidDatabaseName(String),
    /// A statement on the server failed.
    #[error("SQL on the test server failed: {}", sql_message(.0))]
    Sql(#[from] postgres::Error),
    /// The shared server failed to start (in this or an earlier test of the binary).
    #[error("the shared test server could not be started: {0}")]
    Shared(String),
    /// A test certificate could not be made ([`TestCa`]).
    #[error("test certificate: {0}")]
    Certificate(String),
}

/// The server's own message when it sent one (`postgres::Error` displays only "db error").
fn sql_message(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => err.to_string(),
    }
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what: what.into(), source }
}

/// TLS for the server: its certificate chain and private key, in PEM.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: String,
    key_pem: String,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// How to start a server ([`TestPostgres::start_with`]); the default is plain [`TestPostgres::start`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    tls: Option<ServerTls>,
    client_ca: Option<String>,
}

impl Options {
    /// Serves TLS (`ssl = on`) with this certificate chain and key (PEM); clients may still
    /// connect without TLS.
    #[must_use]
    pub fn tls(mut self, cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        self.tls = Some(ServerTls { cert_pem: cert_pem.into(), key_pem: key_pem.into() });
        self
    }

    /// With [`Self::tls`]: a client on 127.0.0.1 must connect with TLS and log in with a
    /// certificate this CA (PEM) issued for its user name (`hostssl … cert` in
    /// `pg_hba.conf`, `ssl_ca_file`); without one it is refused. The Unix socket is
    /// unchanged.
    #[must_use]
    pub fn client_certificates(mut self, ca_pem: impl Into<String>) -> Self {
        self.client_ca = Some(ca_pem.into());
        self
    }
}

/// A database on a test server, and how to reach it.
#[derive(Debug, Clone)]
pub struct Database {
    name: String,
    url: String,
    socket_url: String,
}

impl Database {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same over the Unix socket: `postgres://postgres@%2Fthe%2Fdirectory:PORT/NAME`.
    pub fn socket_url(&self) -> &str {
        &self.socket_url
    }
}

/// The watchdog that stops the server and removes its directory when the test process ends.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    /// The write end of the watchdog's stdin: never written, closed when the process ends.
    lifeline: ChildStdin,
}

#[derive(Debug)]
struct State {
    /// 0 until the first start has found a free one.
    port: u16,
    running: bool,
}

/// A PostgreSQL server in a temporary directory, stopped and removed on drop (see the
/// crate's documentation).
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    /// Run initdb, pg_ctl and the server as `postgres` through runuser (we are root).
    as_postgres: bool,
    dir: TempDir,
    data: PathBuf,
    log: PathBuf,
    state: Mutex<State>,
    watchdog: Mutex<Option<Watchdog>>,
}

impl TestPostgres {
    /// Starts a server of its own (for a test that stops or restarts it; others take
    /// [`TestPostgres::shared`]).
    pub fn start() -> Result<Self, Error> {
        Self::start_with(Options::default())
    }

    /// Starts a server of its own with these options.
    pub fn start_with(options: Options) -> Result<Self, Error> {
        let bin = find_bin_dir()?;
        check_binaries(&bin)?;
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("dls-test-postgres-")
            .tempdir()
            .map_err(io_error("create the server's temporary directory"))?;
        // The socket is DIR/.s.PGSQL.PORT, PORT at most 5 digits.
        let socket = dir.path().join(".s.PGSQL.65535");
        if socket.as_os_str().len() > SOCKET_PATH_MAX {
            return Err(Error::SocketPathTooLong(socket));
        }
        if as_postgres {
            let out = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .stdin(Stdio::null())
                .output()
                .map_err(|source| Error::Spawn { program: "chown".into(), source })?;
            if !out.status.success() {
                return Err(Error::NoPostgresUser(tail(&out.stderr)));
            }
        }
        let pg = Self {
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            bin,
            as_postgres,
            dir,
            state: Mutex::new(State { port: 0, running: false }),
            watchdog: Mutex::new(None),
        };
        // The watchdog first: whatever happens from here on, the directory goes away.
        pg.spawn_watchdog()?;
        pg.init(&options)?;
        pg.start_server()?;
        Ok(pg)
    }

    /// The server shared by the tests of this binary, started by the first call; a start that
    /// failed fails every later call too. Stopped when the test process ends (by the
    /// watchdog: a `static` is never dropped). Do not stop or restart it: other tests use it.
    pub fn shared() -> Result<&'static Self, Error> {
        static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Self::start().map_err(|e| e.to_string())) {
            Ok(pg) => Ok(pg),
            Err(message) => Err(Error::Shared(message.clone())),
        }
    }

    /// The port the server listens on at 127.0.0.1 (also in its socket's name).
    pub fn port(&self) -> u16 {
        self.lock_state().port
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The directory of the PostgreSQL binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Writes a file for the test's clients (a CA certificate for `sslrootcert`, …) in the
    /// server's temporary directory, readable by its owner only, and returns its path; it
    /// goes away with the server.
    pub fn client_file(&self, name: &str, contents: &str) -> Result<PathBuf, Error> {
        let path = self.dir.path().join(name);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .map_err(io_error(format!("write {}", path.display())))?;
        Ok(path)
    }

    /// The last lines of the server's log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 0)
    }

    /// Creates the database `name` (letters, digits, underscores) and returns it; an existing
    /// one is an error.
    pub fn database(&self, name: &str) -> Result<Database, Error> {
        if name.is_empty() || name.len() > 63 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::InvalidDatabaseName(name.to_owned()));
        }
        let mut client = self.admin_config().connect(postgres::NoTls)?;
        client.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.database_handle(name))
    }

    /// Creates a database with a name of its own (unique in this server) and returns it.
    pub fn fresh_database(&self) -> Result<Database, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        self.database(&name)
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are ended). Stopping a
    /// stopped server does nothing.
    pub fn stop(&self) -> Result<(), Error> {
        let mut state = self.lock_state();
        if state.running {
            self.pg_ctl_stop("fast")?;
            state.running = false;
        }
        Ok(())
    }

    /// Starts the stopped server again, on the same port and socket. Starting a running
    /// server does nothing.
    pub fn start_again(&self) -> Result<(), Error> {
        self.start_server()
    }

    /// Stops and starts the server ([`stop`](Self::stop), [`start_again`](Self::start_again)).
    pub fn restart(&self) -> Result<(), Error> {
        self.stop()?;
        self.start_again()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn database_handle(&self, name: &str) -> Database {
        let port = self.port();
        let host = self.dir.path().to_string_lossy();
        Database {
            name: name.to_owned(),
            url: format!("postgres://postgres@127.0.0.1:{port}/{name}"),
            socket_url: format!("postgres://postgres@{}:{port}/{name}", utf8_percent_encode(&host, NON_ALPHANUMERIC)),
        }
    }

    /// The superuser's connection to the `postgres` database over the socket.
    fn admin_config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(self.dir.path())
            .port(self.port())
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(WAIT_SECS));
        config
    }

    /// A command running `program` of the PostgreSQL binaries, as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        // A directory the postgres user can enter (the test's may be private to root), and
        // messages in one language.
        cmd.current_dir(self.dir.path()).env("LC_ALL", "C").stdin(Stdio::null());
        cmd
    }

    fn spawn_watchdog(&self) -> Result<(), Error> {
        // `read` returns at the end of its input: once the test process, the pipe's only
        // writer (std opens pipes close-on-exec, so no other child inherits it), is gone.
        const SCRIPT: &str = r#"trap '' HUP INT
dir=$1
shift
read -r _ || :
"$@" >/dev/null 2>&1
rm -rf -- "$dir"
"#;
        let stop = self.stop_command("immediate");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("dls-test-postgres-watchdog")
            .arg(self.dir.path())
            .arg(stop.get_program())
            .args(stop.get_args())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn { program: "sh (the server's watchdog)".into(), source })?;
        let lifeline = child.stdin.take().ok_or_else(|| Error::Io {
            what: "the watchdog's stdin".into(),
            source: io::ErrorKind::BrokenPipe.into(),
        })?;
        *self.watchdog.lock().unwrap_or_else(PoisonError::into_inner) = Some(Watchdog { child, lifeline });
        Ok(())
    }

    fn init(&self, options: &Options) -> Result<(), Error> {
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.data).args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        run("initdb", initdb)?;

        let socket_dir = self.dir.path().to_string_lossy().replace('\'', "''");
        let mut conf = format!(
            "\n# dls-test-postgres\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 100\n\
             shared_buffers = 32MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n"
        );
        if let Some(tls) = &options.tls {
            self.write_server_file("server.crt", &tls.cert_pem)?;
            self.write_server_file("server.key", &tls.key_pem)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let tcp = match &options.client_ca {
            Some(ca) => {
                self.write_server_file("client-ca.crt", ca)?;
                conf.push_str("ssl_ca_file = 'client-ca.crt'\n");
                "hostssl all all 127.0.0.1/32 cert\n"
            }
            None => "host all all 127.0.0.1/32 trust\n",
        };
        let conf_path = self.data.join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&conf_path)
            .and_then(|mut file| file.write_all(conf.as_bytes()))
            .map_err(io_error(format!("append to {}", conf_path.display())))?;
        // Only the socket and the loopback address, without passwords.
        let hba = format!("local all all trust\n{tcp}");
        let hba_path = self.data.join("pg_hba.conf");
        fs::write(&hba_path, hba).map_err(io_error(format!("write {}", hba_path.display())))
    }

    /// Writes a file of the data directory, mode 0600, owned like the directory.
    fn write_server_file(&self, name: &str, contents: &str) -> Result<(), Error> {
        let path = self.data.join(name);
        let what = format!("write {}", path.display());
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .map_err(io_error(what.clone()))?;
        let owner = fs::metadata(&self.data).map_err(io_error(what.clone()))?;
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).map_err(io_error(what))
    }

    /// Starts the server: on its port when it has one, else on a free one (retried when
    /// another process takes it first).
    fn start_server(&self) -> Result<(), Error> {
        let mut state = self.lock_state();
        if state.running {
            return Ok(());
        }
        let fixed = state.port != 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = if fixed { state.port } else { free_port()? };
            let log_start = fs::metadata(&self.log).map_or(0, |m| m.len());
            let mut pg_ctl = self.command("pg_ctl");
            pg_ctl.arg("start").arg("-D").arg(&self.data).arg("-l").arg(&self.log).args([
                "-w",
                "-t",
                &WAIT_SECS.to_string(),
                "-s",
                "-o",
                &format!("-p {port}"),
            ]);
            match run("pg_ctl start", pg_ctl) {
                Ok(_) => {
                    state.port = port;
                    state.running = true;
                    return Ok(());
                }
                Err(err) => {
                    // A server still starting after the wait must not outlive the error.
                    let _ = self.pg_ctl_stop("immediate");
                    let log_tail = log_tail(&self.log, log_start);
                    let taken = log_tail.contains("Address already in use");
                    if taken && !fixed && attempt < PORT_ATTEMPTS {
                        continue;
                    }
                    return Err(match err {
                        Error::Command { .. } | Error::Timeout { .. } => Error::Start { port, log_tail },
                        other => other,
                    });
                }
            }
        }
    }

    fn stop_command(&self, mode: &str) -> Command {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("stop").arg("-D").arg(&self.data).args(["-m", mode, "-w", "-t", &WAIT_SECS.to_string(), "-s"]);
        pg_ctl
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), Error> {
        run("pg_ctl stop", self.stop_command(mode)).map(drop)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut state.running, false) {
            // Nothing to keep: no shutdown checkpoint.
            let _ = self.pg_ctl_stop("immediate");
        }
        // Closing the lifeline wakes the watchdog, which stops (again: nothing running) and
        // removes the directory; wait for it, so that no process of ours outlives the drop.
        if let Some(Watchdog { mut child, lifeline }) =
            self.watchdog.get_mut().unwrap_or_else(PoisonError::into_inner).take()
        {
            drop(lifeline);
            if wait_bounded(&mut child).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/*/bin` with an `initdb`, or `$DLS_TEST_POSTGRES_BIN`.
fn find_bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let mut newest: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(DEBIAN_ROOT).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(version) =
            name.to_str().and_then(|v| v.split('.').map(|n| n.parse::<u32>().ok()).collect::<Option<Vec<_>>>())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").is_file() && newest.as_ref().is_none_or(|(v, _)| version > *v) {
            newest = Some((version, bin));
        }
    }
    newest.map(|(_, bin)| bin).ok_or(Error::NotInstalled)
}

/// The binaries a server needs are all in `bin`.
fn check_binaries(bin: &Path) -> Result<(), Error> {
    for name in ["initdb", "pg_ctl", "postgres"] {
        if !bin.join(name).is_file() {
            return Err(Error::MissingBinary(bin.join(name)));
        }
    }
    Ok(())
}

/// A free port on 127.0.0.1 (free now: the caller retries when it is taken before its bind).
fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(io_error("find a free port on 127.0.0.1"))
}

/// Runs a command to its end (at most [`WAIT_SECS`] and a margin), returning its output; a
/// failure carries the tail of what it printed.
fn run(what: &'static str, mut cmd: Command) -> Result<String, Error> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|source| Error::Spawn { program, source })?;
    let stdout = child.stdout.take().map(read_in_thread);
    let stderr = child.stderr.take().map(read_in_thread);
    let Some(status) = wait_bounded(&mut child) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Timeout { what });
    };
    let mut output = Vec::new();
    for reader in [stdout, stderr].into_iter().flatten() {
        output.extend(reader.join().unwrap_or_default());
    }
    if status.success() {
        Ok(String::from_utf8_lossy(&output).into_owned())
    } else {
        Err(Error::Command { what, status, output: tail(&output) })
    }
}

fn read_in_thread(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for a child for [`WAIT_SECS`] and a margin; `None` when it is still running.
fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECS + 10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// The last lines of some output, on one line.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
    if tail.is_empty() { "(no output)".to_owned() } else { tail }
}

/// The last lines of the server's log from byte `from` on, on one line.
fn log_tail(log: &Path, from: u64) -> String {
    match fs::read(log) {
        Ok(bytes) => tail(bytes.get(usize::try_from(from).unwrap_or(0)..).unwrap_or(&bytes)),
        Err(err) => format!("(no log at {}: {err})", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_on_one_line() {
        let text: String = (1..=20).map(|i| format!("line {i}\n\n")).collect();
        let tail = tail(text.as_bytes());
        assert!(tail.starts_with("line 9 | line 10"), "{tail}");
        assert!(tail.ends_with("line 20"), "{tail}");
        assert_eq!(super::tail(b"\n \n"), "(no output)");
    }

    #[test]
    fn the_newest_installed_version_is_chosen() {
        let bin = find_bin_dir().expect("PostgreSQL's binaries");
        check_binaries(&bin).expect("initdb, pg_ctl and postgres");
    }

    #[test]
    fn a_missing_binary_is_named() {
        let empty = tempfile::tempdir().expect("dir");
        let err = check_binaries(empty.path()).expect_err("no binaries");
        let message = err.to_string();
        assert!(message.contains("initdb") && message.contains("is missing"), "{message}");
        let not_installed = Error::NotInstalled.to_string();
        assert!(not_installed.contains("apt-get install postgresql"), "{not_installed}");
    }
}
