//! `dls phone run|load`: simulated phones against any DLS — one phone's `start-up` with
//! every exchange printed, or a fleet for load tests (and the baseline the service's
//! benchmark compares with).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use dls_load::{self as load, DEFAULT_FIRST_MAC, Fleet, LoadConfig, LoadMode, Progress};
use dls_message::{Item, MacAddr, Reason};
use dls_workpoint::{ClientError, Phone, PinOutcome, SecureMaterial, ServerTrust, Traced, WpiClient};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::{AUTH, OTHER, fail, malformed};
use crate::io::read_input;

mod mobility;
mod report;

use report::{report_json, report_text};

/// The WPI port of a DLS when `--server` names none.
const DEFAULT_PORT: u16 = 18443;

#[derive(Debug, Subcommand)]
pub(crate) enum PhoneCmd {
    /// Run one simulated phone through a start-up against a DLS, printing every message.
    ///
    /// One line per message on stdout: `->` from the phone (reason, with the action it
    /// answers and its status), `<-` from the DLS (action), and the item count; `-v` adds
    /// each message's XML (a password the phone sends shown as ********). Exits 0 when the
    /// DLS ended the interaction with `CleanUp`.
    ///
    /// With --logon / --logoff a mobility user logs on and off after the start-up (hot
    /// desking; docs/mobility-phone.md), the same way printed.
    Run(RunArgs),
    /// Run a fleet of simulated phones against a DLS and report the interaction rate,
    /// latency percentiles and failures.
    ///
    /// Phone `i` has the MAC `--first-mac` plus `i` and about 350 items (function keys 1–9
    /// and 1001–1036, labels, SIP, LDAP, codecs, network …). `--concurrency` tasks, each
    /// with its own connection, take phones in turn until each has had one `start-up`
    /// interaction (or, with `--duration`, until the time is up, reusing phones
    /// round-robin). A new connection is always a full TLS handshake (no resumption).
    /// Latency is per successful interaction, first message to `CleanUp` (connecting
    /// included when it had to connect); the rate counts successful interactions. Exits 1
    /// if any interaction failed, after printing the summary.
    ///
    /// With `--pins FILE` (or `--nopin`) each phone bootstraps secure mode once instead — a
    /// secure-mode storm: start-up on the default port, the bootstrap, its PIN typed
    /// (PBKDF2 on the phone too), start-up on the secure port with mutual TLS, TAN and
    /// configuration. One interaction is then the whole bootstrap, and the PBKDF2 iteration
    /// count the phones saw is reported.
    Load(LoadArgs),
    /// Open keep-alive connections, each after one interaction, and hold them idle (for
    /// measuring a server's memory per connection). Prints `open N` when they are open;
    /// holds them until killed, or for --hold-secs.
    #[command(hide = true)]
    IdleConnections(IdleArgs),
}

/// Where the DLS is and how to trust it.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The DLS: HOST or HOST:PORT (port 18443 unless given; IPv6 as [ADDR]:PORT).
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_server)]
    server: String,
    /// Verify the server against the CA certificate(s) in this PEM file. Default: accept
    /// any certificate, as a phone in default mode does.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The phone's MAC address (00:1A:E8:3C:4D:5E, 00-1A-…, or 001AE83C4D5E).
    #[arg(long, value_parser = parse_mac)]
    mac: MacAddr,
    /// Extra phone items: a JSON array of items as `dls message decode` prints them,
    /// `[{"name":"e164","index":null,"value":"4989700712"}, {"name":"function-key-def",
    /// "index":1,"value":"30"}]` (`index` and `status` may be left out), or a whole message
    /// in that JSON, whose items are taken. They replace the phone's own items of the same
    /// name and index.
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// Print each message's XML too.
    #[arg(short, long)]
    verbose: bool,
    /// Seconds allowed for connecting and for each exchange.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout_secs: u64,
    /// The PIN typed at the phone when the DLS bootstraps secure mode with a PIN; repeat
    /// it to play a user who retries (each is one attempt). Also read from `DLS_PIN`.
    #[arg(long, value_name = "PIN", env = "DLS_PIN", hide_env_values = true)]
    pin: Vec<String>,
    /// Where the phone keeps its secure-mode state (certificate, key, CAs, port; mode
    /// 0600). With a saved state, the phone goes straight to the secure port.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The phone is in a call: it answers WriteItems `busy` (and, with --stay, calls back
    /// and installs `normal`-priority files only when the call ends, i.e. never).
    #[arg(long)]
    busy: bool,
    /// Keep the phone running after its start-up, printing every exchange as above: it
    /// answers contact-me, polls DCMP when its items carry `dcmp-url`, calls back when a
    /// CleanUp asks (`send-solicited`), downloads deployed files and firmware (reporting
    /// them, or starting up with the new version), and starts up again after Restart —
    /// until SIGINT/SIGTERM or --duration. Exits 0 when stopped.
    #[arg(long)]
    stay: bool,
    /// With --stay: where the phone listens for contact-me, ADDR:PORT (port 0: any; the
    /// address is printed as `contact-me listening on ADDR:PORT` and reported as the
    /// phone's `contact-me-uri`), or `none` for a phone behind NAT. Default 127.0.0.1:0.
    #[arg(long, value_name = "ADDR:PORT|none", requires = "stay", value_parser = parse_contact_listen)]
    contact_listen: Option<ContactListen>,
    /// With --stay: stop after this many seconds.
    #[arg(long, value_name = "SECS", requires = "stay")]
    duration: Option<f64>,
    #[command(flatten)]
    mobility: mobility::MobilityArgs,
}

/// `--contact-listen`: an address, or none (behind NAT).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContactListen(Option<std::net::SocketAddr>);

fn parse_contact_listen(s: &str) -> Result<ContactListen, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(ContactListen(None));
    }
    s.trim()
        .parse()
        .map(|a| ContactListen(Some(a)))
        .map_err(|_| format!("{s:?} is not ADDR:PORT (e.g. 127.0.0.1:0, [::]:8085) or none"))
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How many distinct phones. Default: 100, or with --pins as many as the file has.
    #[arg(long)]
    phones: Option<usize>,
    /// How many interactions in flight at once (one connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Close the connection after every interaction (each then begins with a handshake).
    #[arg(long)]
    new_connection_per_interaction: bool,
    /// Stop starting interactions after this many seconds, reusing phones round-robin
    /// until then. Default: one interaction per phone.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// The first phone's MAC; phone i has this MAC plus i.
    #[arg(long, value_parser = parse_mac, default_value_t = DEFAULT_FIRST_MAC)]
    first_mac: MacAddr,
    /// Seconds one interaction may take before it counts as a failure (`timeout`).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout_secs: u64,
    /// Baseline for a server that does not speak WPI (e.g. the `bare_tls_server` example
    /// of dls-server): each interaction posts 3 fixed bodies — phone 0's start-up message,
    /// its whole inventory as the ReadAllItems reply, an empty WriteItems reply — and
    /// accepts any 200 answer.
    #[arg(long)]
    baseline: bool,
    /// With --baseline: post only the first N of those bodies per interaction — 1 is what
    /// a known phone whose configuration is in step posts at its start-up.
    #[arg(long, value_name = "N", default_value_t = load::BASELINE_REQUESTS, requires = "baseline",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=3))]
    baseline_requests: usize,
    /// Secure-mode storm: every phone bootstraps once, its user typing the PIN this file
    /// gives for its MAC — one `MAC PIN` per line (MAC colon-separated as `dls device list`
    /// prints it, or any common spelling; PIN as `dls device add --mode pin` printed it;
    /// `#` comments). The devices must be in `pin` (or `nopin`) mode and not yet
    /// bootstrapped.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["baseline", "duration", "nopin"])]
    pins: Option<PathBuf>,
    /// Secure-mode storm without PINs: every phone bootstraps once, its device being in
    /// `nopin` mode (e.g. `dls serve --new-device-mode nopin`).
    #[arg(long, conflicts_with_all = ["baseline", "duration"])]
    nopin: bool,
    /// Mobility mix: this share of the phones (in percent; spread evenly) log a user on after
    /// their start-up, change the user's phone book (userdata-phonebook) and log the user off,
    /// every time they run. The k-th such phone logs on user --mobility-first-user + k; those
    /// users (as many as the share of --phones) must exist on the DLS with the password of
    /// --mobility-password-file (or --mobility-password). Logon and logoff latencies are
    /// reported; failures are counted by step and reason (e.g. `logon cleanup: mobility:
    /// logon refused`), and a phone book restored that is not the one the run saved at the
    /// user's last logoff as `restore-mismatch`.
    #[arg(long, value_name = "PERCENT", conflicts_with_all = ["baseline", "pins", "nopin"],
          value_parser = clap::value_parser!(u8).range(1..=100))]
    mobility_share: Option<u8>,
    /// The mobility mix's first user number; user k is this number plus k.
    #[arg(long, value_name = "NUMBER", default_value = "4989700800000", requires = "mobility_share")]
    mobility_first_user: String,
    /// A file whose first line is every mobility user's password.
    #[arg(long, value_name = "FILE", requires = "mobility_share", conflicts_with = "mobility_password")]
    mobility_password_file: Option<PathBuf>,
    /// Every mobility user's password, on the command line (for test users only: other
    /// processes can read it).
    #[arg(long, value_name = "PASSWORD", requires = "mobility_share")]
    mobility_password: Option<String>,
    /// The size of the phone book each mobile phone writes before the logoff, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4096, requires = "mobility_share")]
    mobility_userdata_bytes: usize,
    /// Print one JSON object on the last line instead of the summary: phones,
    /// interactions, failures, failures_by_kind, interactions_per_second,
    /// latency_ms {p50, p90, p99, max} (and mode, concurrency, seconds, connections, …;
    /// for bootstraps pbkdf2_iterations and pin_entry_ms).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// How many connections.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The first phone's MAC; connection i runs phone i's start-up.
    #[arg(long, value_parser = parse_mac, default_value_t = DEFAULT_FIRST_MAC)]
    first_mac: MacAddr,
    /// How many connections are being opened at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Post the baseline's start-up body instead of running an interaction.
    #[arg(long)]
    baseline: bool,
    /// Hold the connections this long, then exit. Default: until killed.
    #[arg(long, value_name = "SECS")]
    hold_secs: Option<u64>,
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    MacAddr::parse(s).map_err(|e| e.to_string())
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address, as `host:port`.
fn parse_server(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not HOST or HOST:PORT");
    if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        return match after {
            "" => Ok(format!("[{host}]:{DEFAULT_PORT}")),
            p => match p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
                Some(port) if !host.is_empty() => Ok(format!("[{host}]:{port}")),
                _ => Err(bad()),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok(format!("{s}:{DEFAULT_PORT}")),
        1 => match s.split_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_owned()),
            _ => Err(bad()),
        },
        // A bare IPv6 address.
        _ if s.parse::<std::net::Ipv6Addr>().is_ok() => Ok(format!("[{s}]:{DEFAULT_PORT}")),
        _ => Err(bad()),
    }
}

pub(crate) fn run(cmd: PhoneCmd) -> anyhow::Result<()> {
    match cmd {
        PhoneCmd::Run(a) => run_one(a),
        PhoneCmd::Load(a) => run_load(a),
        PhoneCmd::IdleConnections(a) => run_idle(a),
    }
}

fn trust_of(ca: Option<&Path>) -> anyhow::Result<ServerTrust> {
    let Some(path) = ca else { return Ok(ServerTrust::AcceptAny) };
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(malformed(format!("{}: no PEM certificate in it", path.display())));
    }
    Ok(ServerTrust::Verify(vec![pem]))
}

/// A client error on one line, with what the run was doing; a bad CA file is malformed
/// input, anything else exit code 1.
fn client_error(e: &ClientError, what: &str) -> anyhow::Error {
    match e {
        ClientError::Tls(m) if m.starts_with("CA certificate") => malformed(format!("{what}: {e}")),
        _ => fail(OTHER, format!("{what}: {e}")),
    }
}

fn items_of(path: &Path) -> anyhow::Result<Vec<Item>> {
    let bytes = read_input(Some(path))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| malformed(format!("{}: not JSON: {e}", path.display())))?;
    let items = match value {
        serde_json::Value::Object(mut m) => m.remove("items").unwrap_or(serde_json::Value::Null),
        other => other,
    };
    let items: Vec<Item> = serde_json::from_value(items).map_err(|e| {
        malformed(format!("{}: not a JSON array of items ({{\"name\",\"index\",\"value\"}}): {e}", path.display()))
    })?;
    if let Some(i) = items.iter().find(|i| i.name.is_empty()) {
        return Err(malformed(format!("{}: an item has an empty name (value {:?})", path.display(), i.value)));
    }
    Ok(items)
}

fn runtime(current_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    b.enable_all().build().context("starting the runtime")
}

fn run_one(a: RunArgs) -> anyhow::Result<()> {
    let trust = trust_of(a.server.ca.as_deref())?;
    let extra = a.items.as_deref().map(items_of).transpose()?.unwrap_or_default();
    let mut phone = Phone::with_items(a.mac, extra);
    phone.pin_entries.extend(a.pin.iter().cloned());
    phone.busy = a.busy;
    let host = a.server.server.rsplit_once(':').map_or(a.server.server.as_str(), |(h, _)| h).to_owned();
    let verbose = a.verbose;
    let timeout = Duration::from_secs(a.timeout_secs.max(1));
    let prepare = |client: &mut WpiClient| {
        client.set_timeout(timeout);
        client.observe(move |t: &Traced<'_>| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", t.summary());
            if verbose {
                let _ = writeln!(out, "{}", t.xml().trim_end());
            }
            let _ = out.flush();
        });
    };
    let what = format!("phone {} at {}", a.mac.colon_separated(), a.server.server);
    let rt = runtime(true)?;
    if let Some(saved) = a.state_dir.as_deref().map(load_state).transpose()?.flatten() {
        phone.secure = Some(saved);
    }
    if let Some(dir) = a.state_dir.as_deref() {
        mobility::load_state(dir, &mut phone)?;
    }
    if a.stay {
        if phone.secure.is_some() {
            println!("secure mode: using the saved certificate");
        }
        return stay(&a, phone, trust, &rt);
    }
    // Before anything is sent: a run that cannot do what it is asked fails at once.
    let password = a.mobility.check(&phone)?;
    let (r, mut client) = if phone.secure.is_some() {
        println!("secure mode: using the saved certificate");
        let mut client = phone.secure_client(&host).map_err(|e| client_error(&e, &what))?;
        prepare(&mut client);
        let r = rt.block_on(phone.interact(&mut client, Reason::StartUp)).map_err(|e| client_error(&e, &what))?;
        (r, client)
    } else {
        let mut client = WpiClient::new(&a.server.server, &trust).map_err(|e| client_error(&e, "the client"))?;
        prepare(&mut client);
        let first = rt.block_on(phone.interact(&mut client, Reason::StartUp)).map_err(|e| client_error(&e, &what))?;
        match first.bootstrap.as_deref() {
            None => (first, client),
            Some(kind) => {
                if kind == "pin" {
                    open_with_pins(&mut phone, &rt, &mut client, &what)?;
                }
                println!("secure mode ({kind}): switching to {host}:{}", phone.secure.as_ref().map_or(0, |m| m.port));
                if let Some(dir) = a.state_dir.as_deref() {
                    save_state(dir, phone.secure.as_ref())?;
                }
                let mut secure = phone.secure_client(&host).map_err(|e| client_error(&e, &what))?;
                prepare(&mut secure);
                let r =
                    rt.block_on(phone.interact(&mut secure, Reason::StartUp)).map_err(|e| client_error(&e, &what))?;
                (r, secure)
            }
        }
    };
    println!("{}", ended(&r));
    if a.mobility.wanted() {
        mobility::run(&a.mobility, password.as_ref(), &mut phone, &mut client, &rt, a.state_dir.as_deref(), &what)?;
    }
    Ok(())
}

/// The line that closes an interaction's transcript.
fn ended(r: &dls_workpoint::Interaction) -> String {
    let plural = if r.exchanges == 1 { "" } else { "s" };
    let deploy = match r.deployments.len() {
        0 => String::new(),
        1 => ", 1 file to deploy".to_owned(),
        n => format!(", {n} files to deploy"),
    };
    format!(
        "ended with CleanUp after {} exchange{plural}: {} items written, {} refused{deploy}{}{}",
        r.exchanges,
        r.written.len(),
        r.refused.len(),
        if r.send_solicited { ", the DLS asks the phone to call back" } else { "" },
        r.cleanup_reason.as_deref().map_or_else(String::new, |c| format!(" (cleanup-reason: {c})"))
    )
}

/// `dls phone run --stay`: the phone kept alive by an agent, every exchange and event
/// printed, until SIGINT/SIGTERM or `--duration`.
fn stay(a: &RunArgs, phone: Phone, trust: ServerTrust, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use dls_workpoint::agent::{Agent, AgentConfig};

    let duration = match a.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => return Err(crate::exit::usage("--duration must be a positive number of seconds")),
        None => None,
    };
    let mut config = AgentConfig::new(a.server.server.clone());
    config.trust = trust;
    config.exchange_timeout = Duration::from_secs(a.timeout_secs.max(1));
    config.contact_listen = match a.contact_listen {
        Some(ContactListen(addr)) => addr,
        None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let verbose = a.verbose;
    config.observer = Some(Arc::new(move |t: &Traced<'_>| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", t.summary());
        if verbose {
            let _ = writeln!(out, "{}", t.xml().trim_end());
        }
        let _ = out.flush();
    }));
    let host = a.server.server.rsplit_once(':').map_or(a.server.server.as_str(), |(h, _)| h).to_owned();
    let state_dir = a.state_dir.clone();
    config.on_event = Some(Arc::new(move |e: &dls_workpoint::AgentEvent, phone: &Phone| {
        print_event(e, &host, state_dir.as_deref(), phone);
    }));
    rt.block_on(async move {
        let agent =
            Agent::start(phone, config).await.map_err(|e| fail(OTHER, format!("the contact-me listener: {e}")))?;
        match agent.contact_addr() {
            Some(addr) => println!("contact-me listening on {addr}"),
            None => println!("no contact-me listener: the phone is behind NAT"),
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        let deadline = duration.map(|d| tokio::time::Instant::now() + d);
        let until = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            () = until => {}
        }
        agent.stop().await;
        println!("stopped");
        Ok(())
    })
}

/// One agent event, as a line on stdout (or none); saves the secure-mode state when the
/// phone switches to secure mode.
fn print_event(e: &dls_workpoint::AgentEvent, host: &str, state_dir: Option<&Path>, phone: &Phone) {
    use dls_workpoint::{AgentEvent, DcmpAnswer};

    let line = match e {
        AgentEvent::Interaction { result: Ok(r), .. } => ended(r),
        AgentEvent::Interaction { reason, trigger, result: Err(err) } => {
            format!("{reason} ({}) failed: {err}", trigger.as_str())
        }
        AgentEvent::ContactMe(c) => match (&c.dls_ip_addr, c.dls_ip_port) {
            (Some(addr), Some(port)) => format!("contact-me from {addr}:{port}"),
            (Some(addr), None) => format!("contact-me from {addr}"),
            _ => "contact-me".to_owned(),
        },
        AgentEvent::Dcmp(Ok(DcmpAnswer::Pending)) => "DCMP: jobs pending".to_owned(),
        AgentEvent::Dcmp(Ok(DcmpAnswer::Nothing)) => return,
        AgentEvent::Dcmp(Err(err)) => err.to_string(),
        AgentEvent::Deployment(o) => {
            let d = &o.deployment;
            match &o.result {
                Ok(f) => format!("deployed {} ({}): {} bytes, sha256 {}", d.file_name, d.file_type, f.size, f.sha256),
                Err(err) => format!("deployment of {} ({}) failed: {err}", d.file_name, d.file_type),
            }
        }
        AgentEvent::SecureMode { kind, port } => {
            println!("secure mode ({kind}): switching to {host}:{port}");
            if let Some(dir) = state_dir
                && let Err(err) = save_state(dir, phone.secure.as_ref())
            {
                println!("saving the secure-mode state failed: {}", crate::exit::one_line(&err));
            }
            return;
        }
        AgentEvent::Note(n) => n.clone(),
        AgentEvent::Error(err) => format!("error: {err}"),
        _ => return,
    };
    println!("{line}");
}

/// Types the given PINs until the bundle opens; when the phone's retries run out it sends
/// `clean-up` with `password retries exceeded`, as a phone does ([`Phone::enter_pins`]).
fn open_with_pins(
    phone: &mut Phone,
    rt: &tokio::runtime::Runtime,
    client: &mut WpiClient,
    what: &str,
) -> anyhow::Result<()> {
    use dls_workpoint::PinsOutcome;

    let typed = rt.block_on(phone.enter_pins(client, |_, typed| match typed {
        PinOutcome::Opened => println!("PIN accepted: secure-mode-data opened"),
        PinOutcome::Wrong { left } => println!("wrong PIN ({left} tries left)"),
        PinOutcome::RetriesExceeded => {}
    }));
    match typed.map_err(|e| client_error(e.client_error(), what))? {
        PinsOutcome::Opened => Ok(()),
        PinsOutcome::RetriesExceeded { .. } => {
            Err(fail(AUTH, "wrong PIN: retries exceeded; the phone sent clean-up (password retries exceeded)"))
        }
        // No PIN left to type (or an outcome this version does not know).
        _ => Err(fail(AUTH, "the DLS bootstrapped secure mode with a PIN: give the right --pin")),
    }
}

const STATE_FILE: &str = "secure-mode.json";

fn load_state(dir: &Path) -> anyhow::Result<Option<SecureMaterial>> {
    let p = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", p.display()))),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| malformed(format!("{}: {e}", p.display())))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let (Some(chain), Some(key), Some(port)) =
        (s("certificate_chain"), s("private_key"), v.get("port").and_then(serde_json::Value::as_u64))
    else {
        return Err(malformed(format!("{} is not a saved secure-mode state", p.display())));
    };
    let cas = v
        .get("server_cas")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    Ok(Some(SecureMaterial {
        certificate_chain: chain,
        private_key: zeroize::Zeroizing::new(key),
        server_cas: cas,
        port: u16::try_from(port).map_err(|_| malformed("port out of range"))?,
    }))
}

fn save_state(dir: &Path, m: Option<&SecureMaterial>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(m) = m else { return Ok(()) };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let v = serde_json::json!({
        "certificate_chain": m.certificate_chain,
        "private_key": m.private_key.as_str(),
        "server_cas": m.server_cas,
        "port": m.port,
    });
    let p = dir.join(STATE_FILE);
    let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(serde_json::to_string(&v)?.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &p).with_context(|| format!("saving {}", p.display()))?;
    println!("secure-mode state saved in {}", p.display());
    Ok(())
}

/// A progress bar on stderr (`indicatif`), drawn only when stderr is a terminal: for a
/// count of phones, interactions done of the total with rate and ETA; for a timed run, the
/// seconds elapsed of the duration with the interactions so far.
fn spawn_progress(
    rt: &tokio::runtime::Runtime,
    progress: Arc<Progress>,
    total: Option<u64>,
    duration: Option<Duration>,
) -> (ProgressBar, Option<tokio::task::JoinHandle<()>>) {
    let (len, template) = match (total, duration) {
        (_, Some(d)) => (Some(d.as_secs()), "{bar:30} {pos}/{len} s  {msg}"),
        (Some(t), None) => (Some(t), "{bar:30} {pos}/{len} interactions  {per_sec}  ETA {eta}  {msg}"),
        (None, None) => (None, "{pos} interactions  {per_sec}  {msg}"),
    };
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    if bar.is_hidden() {
        return (bar, None);
    }
    let shown = bar.clone();
    let ticker = rt.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let n = progress.interactions();
            let failed = progress.failures();
            if duration.is_some() {
                let elapsed = shown.elapsed();
                #[allow(clippy::cast_precision_loss)]
                let rate = if elapsed.is_zero() { 0.0 } else { n as f64 / elapsed.as_secs_f64() };
                shown.set_position(elapsed.as_secs());
                shown.set_message(format!("{n} interactions, {failed} failed, {rate:.0}/s"));
            } else {
                shown.set_position(n);
                shown.set_message(format!("{failed} failed"));
            }
        }
    });
    (bar, Some(ticker))
}

fn run_load(a: LoadArgs) -> anyhow::Result<()> {
    let pins = match a.pins.as_deref() {
        Some(path) => {
            let text = String::from_utf8(read_input(Some(path))?)
                .map_err(|_| malformed(format!("{}: not UTF-8 text", path.display())))?;
            Some(load::Pins::parse(&text).map_err(|e| malformed(format!("{}: {e}", path.display())))?)
        }
        None => None,
    };
    let phones = a.phones.unwrap_or_else(|| pins.as_ref().map_or(100, load::Pins::len));
    if phones == 0 || a.concurrency == 0 {
        return Err(crate::exit::usage("--phones and --concurrency must be at least 1"));
    }
    let duration = match a.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => return Err(crate::exit::usage("--duration must be a positive number of seconds")),
        None => None,
    };
    let mut config = LoadConfig::new(a.server.server.clone(), phones, a.concurrency);
    config.trust = trust_of(a.server.ca.as_deref())?;
    config.first_mac = a.first_mac;
    config.new_connection_per_interaction = a.new_connection_per_interaction;
    config.duration = duration;
    config.interaction_timeout = Duration::from_secs(a.timeout_secs.max(1));
    config.mode = match (a.baseline, pins.is_some() || a.nopin) {
        (true, _) => LoadMode::Baseline,
        (false, true) => LoadMode::Bootstrap,
        (false, false) => LoadMode::Phones,
    };
    config.pins = pins.unwrap_or_default();
    config.baseline_requests = a.baseline_requests;
    if let Some(share) = a.mobility_share {
        let password = match (&a.mobility_password_file, &a.mobility_password) {
            (Some(file), _) => mobility::read_password(file)?,
            (None, Some(p)) if !p.is_empty() => dls_workpoint::UserPassword::new(p.as_str()),
            _ => {
                return Err(crate::exit::usage(
                    "--mobility-share needs --mobility-password-file or --mobility-password",
                ));
            }
        };
        let mut mix = load::MobilityMix::new(share, a.mobility_first_user.trim(), password)
            .map_err(|e| crate::exit::usage(format!("--mobility-first-user: {e}")))?;
        mix.userdata_bytes = a.mobility_userdata_bytes;
        config.mobility = Some(mix);
    }
    let rt = runtime(false)?;
    let progress = Arc::new(Progress::default());
    let total = duration.is_none().then_some(phones as u64);
    let (bar, ticker) = spawn_progress(&rt, progress.clone(), total, duration);
    let result = rt.block_on(load::run(config, progress));
    if let Some(t) = ticker {
        t.abort();
    }
    bar.finish_and_clear();
    let mut report = result.map_err(|e| client_error(&e, &format!("load against {}", a.server.server)))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", report_json(&mut report))?;
    } else {
        write!(out, "{}", report_text(&mut report))?;
    }
    out.flush()?;
    if report.failures > 0 {
        return Err(fail(OTHER, format!("{} of {} interactions failed", report.failures, report.interactions)));
    }
    Ok(())
}

fn run_idle(a: IdleArgs) -> anyhow::Result<()> {
    let mut config = LoadConfig::new(a.server.server.clone(), a.count, a.concurrency);
    config.trust = trust_of(a.server.ca.as_deref())?;
    config.first_mac = a.first_mac;
    config.mode = if a.baseline { LoadMode::Baseline } else { LoadMode::Phones };
    let fleet = Arc::new(Fleet::new(config).map_err(|e| client_error(&e, "the clients"))?);
    let first_body = load::baseline_bodies(a.first_mac)
        .map_err(|e| client_error(&e, "the baseline"))?
        .into_iter()
        .next()
        .unwrap_or_default();
    let rt = runtime(false)?;
    let what = format!("connections to {}", a.server.server);
    rt.block_on(async move {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency.max(1) {
            let fleet = fleet.clone();
            let next = next.clone();
            let count = a.count;
            let baseline = a.baseline;
            let first_body = first_body.clone();
            tasks.push(tokio::spawn(async move {
                let mut clients = Vec::new();
                let mut failures = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let Ok(mut c) = fleet.client() else { return (clients, failures + 1) };
                    // The baseline posts only its first body (one request), as a
                    // keep-alive connection between interactions has seen.
                    let ok = if baseline {
                        c.post(first_body.clone()).await.is_ok_and(|(s, _, _)| s.is_success())
                    } else {
                        fleet.interact(&mut c, i).await.is_ok()
                    };
                    if ok {
                        clients.push(c);
                    } else {
                        failures += 1;
                    }
                }
                (clients, failures)
            }));
        }
        let mut clients = Vec::new();
        let mut failures = 0;
        for t in tasks {
            let (c, f) = t.await.map_err(|e| fail(OTHER, format!("{what}: {e}")))?;
            clients.extend(c);
            failures += f;
        }
        if failures > 0 {
            return Err(fail(OTHER, format!("{what}: {failures} of {} could not be opened", a.count)));
        }
        println!("open {}", clients.len());
        std::io::stdout().flush()?;
        match a.hold_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        drop(clients);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_server;

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server("dls.example.net").as_deref(), Ok("dls.example.net:18443"));
        assert_eq!(parse_server("127.0.0.1:443").as_deref(), Ok("127.0.0.1:443"));
        assert_eq!(parse_server("[::1]").as_deref(), Ok("[::1]:18443"));
        assert_eq!(parse_server("[::1]:8443").as_deref(), Ok("[::1]:8443"));
        assert_eq!(parse_server("::1").as_deref(), Ok("[::1]:18443"));
        for bad in ["", "host:", "host:99999", ":443", "https://dls", "[::1", "[]:1", "a b"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }
}
