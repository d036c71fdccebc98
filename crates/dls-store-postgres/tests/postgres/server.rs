//! A PostgreSQL server for the tests (until the shared harness, `dls-test-postgres`,
//! replaces this module): the installed binaries (`/usr/lib/postgresql/<version>/bin`), a
//! cluster in a temporary directory, run by the `postgres` user when the tests run as root,
//! on a free port of the loopback, without durability (`fsync=off`).
//!
//! One server is shared by the whole test binary ([`shared`]), started at first use; each
//! test gets a fresh database ([`Server::database`], dropped with its guard). A test that
//! stops the server starts its own ([`Server::start`]). Statics are never dropped: a
//! watchdog process stops a server and removes its directory when the test process ends.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

/// A running PostgreSQL server.
pub(crate) struct Server {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    /// Stops the server when this process ends (it outlives it).
    watchdog: Option<Child>,
}

/// The server the test binary shares.
pub(crate) fn shared() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A fresh database on a server, dropped (connections and all) with this guard.
pub(crate) struct Database {
    pub(crate) url: String,
    name: String,
    admin_url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
        }
    }
}

impl Server {
    /// Starts a server of its own (stopped when dropped, or when the process ends).
    pub(crate) fn start() -> Self {
        let bin = binaries();
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("dls-pg-{}-{stamp}", std::process::id()));
        std::fs::create_dir(&dir).expect("creates the server's directory");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").args(["postgres:", path(&dir)]));
        }
        let port = free_port();
        let mut server = Self { bin, dir, port, as_postgres, watchdog: None };
        server.run_as_postgres(
            "initdb",
            &["-D", &server.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
        );
        server.watchdog = Some(server.watch());
        server.start_again();
        server
    }

    /// Starts the server again after [`Self::stop`].
    pub(crate) fn start_again(&self) {
        let options = format!(
            "-k {} -p {} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300",
            path(&self.dir),
            self.port
        );
        let log = self.dir.join("server.log");
        self.run_as_postgres("pg_ctl", &["-D", &self.data(), "-l", path(&log), "-w", "-o", &options, "start"]);
    }

    /// Stops the server (its connections are cut).
    pub(crate) fn stop(&self) {
        self.run_as_postgres("pg_ctl", &["-D", &self.data(), "-w", "-m", "fast", "stop"]);
    }

    /// The URL of a database on this server.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A connection as the superuser, to the `postgres` database.
    pub(crate) fn admin(&self) -> Client {
        Client::connect(&self.url("postgres"), NoTls).expect("connects to the test server")
    }

    /// A fresh, empty database.
    pub(crate) fn database(&self) -> Database {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("dls_test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.admin().batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("creates a database");
        Database { url: self.url(&name), name, admin_url: self.url("postgres") }
    }

    fn data(&self) -> String {
        path(&self.dir.join("data")).to_owned()
    }

    /// Stops the server and removes its directory when this process ends, whatever way.
    fn watch(&self) -> Child {
        let pg_ctl = self.bin.join("pg_ctl");
        let script = format!(
            "while [ -e /proc/{pid} ]; do sleep 1; done; '{pg_ctl}' -D '{data}' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = path(&pg_ctl),
            data = self.data(),
            dir = path(&self.dir),
        );
        let mut command = self.command("sh");
        command.args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // A process group of its own: an interrupt of the tests does not stop it.
        command.process_group(0);
        command.spawn().expect("starts the server's watchdog")
    }

    fn command(&self, program: &str) -> Command {
        let program = if program == "sh" { PathBuf::from("sh") } else { self.bin.join(program) };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run_as_postgres(&self, program: &str, args: &[&str]) {
        run(self.command(program).args(args));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of the newest installed PostgreSQL's programs.
fn binaries() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "the PostgreSQL tests need a PostgreSQL server installed (no /usr/lib/postgresql/<version>/bin/initdb; \
             e.g. apt-get install postgresql)"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds a port");
    listener.local_addr().expect("has an address").port()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn run(command: &mut Command) {
    let out = command.stdin(Stdio::null()).output().expect("runs a PostgreSQL program");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
