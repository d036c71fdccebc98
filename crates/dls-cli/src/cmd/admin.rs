//! `dls device …` and `dls profile …`: clients of a running service's admin API. They find
//! the service through its data directory (the admin address and token `serve` writes
//! there) or through `--server URL --token T`. An `https://` admin API (`serve
//! --admin-tls`) is verified against `--cacert`, else the data directory's `ca.crt`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use dls_engine::{Profile, SecurityMode};
use dls_message::MacAddr;
use ureq::http::{Method, StatusCode, header};

use crate::exit::{AUTH, MALFORMED, OTHER, fail, malformed};
use crate::table;
use crate::upload::{Upload, percent_encode};

/// Where the admin API is.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The service's data directory (holds the admin address and token).
    #[arg(long, env = "DLS_DATA_DIR", default_value = "dls-data", global = true)]
    data_dir: PathBuf,
    /// The admin API's URL (e.g. http://127.0.0.1:18081, or https://… with `serve
    /// --admin-tls`), instead of the data directory's.
    #[arg(long, env = "DLS_SERVER", global = true)]
    server: Option<String>,
    /// The CA certificate (PEM) an https:// admin API is verified against. Default: the
    /// data directory's ca.crt.
    #[arg(long, env = "DLS_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// The admin token, instead of the data directory's (prefer the environment variable).
    #[arg(long, env = "DLS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCmd {
    /// Register a device before its first contact. With `--mode pin`, prints the PIN
    /// (digits only) and nothing else on stdout.
    Add {
        /// Its MAC address (any common spelling).
        #[arg(long)]
        mac: String,
        /// A profile to assign (repeatable, in order).
        #[arg(long = "profile")]
        profiles: Vec<String>,
        /// Its security mode: default, nopin or pin.
        #[arg(long)]
        mode: Option<SecurityMode>,
        /// Its digest secret ("MAC-ID"), for phones that pull a provisioning file. Prefer
        /// `dls device set-secret --secret-file` (a command line is visible to other users).
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Set (or clear) a device's digest secret ("MAC-ID").
    SetSecret {
        /// Its MAC address.
        mac: String,
        /// The secret.
        #[arg(long, conflicts_with_all = ["secret_file", "clear"])]
        secret: Option<String>,
        /// A file holding the secret (first line).
        #[arg(long, conflicts_with = "clear")]
        secret_file: Option<PathBuf>,
        /// Remove the secret.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Print the URL a phone fetches its provisioning file from (for a redirect service).
    ProvisioningUrl {
        /// Its MAC address.
        mac: String,
        /// Embed the device's credentials: `https://MAC:SECRET@host/…`.
        #[arg(long)]
        embed_credentials: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Change a device's security mode; with `pin`, prints the new PIN alone on stdout.
    SetMode {
        /// Its MAC address.
        mac: String,
        /// default, nopin or pin.
        mode: SecurityMode,
        #[command(flatten)]
        target: Target,
    },
    /// Issue a fresh PIN (the old one stops working); prints it alone on stdout.
    Pin {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// Return a device to "not bootstrapped" (its certificate is revoked), e.g. after a
    /// factory reset; for a `pin` device a new PIN is issued and printed alone on stdout.
    Reset {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// List devices.
    List {
        /// Only devices with this profile.
        #[arg(long)]
        profile: Option<String>,
        /// Only devices of this type (e.g. "OpenStage 60").
        #[arg(long)]
        device_type: Option<String>,
        /// Only devices whose MAC or number contains this.
        #[arg(long)]
        search: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show a device with its inventory (JSON).
    Show {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a device's profiles.
    Assign {
        /// Its MAC address.
        mac: String,
        /// The profiles, in order (none: remove all).
        #[arg(long = "profile")]
        profiles: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Show a device's merged desired configuration (JSON).
    Desired {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// Forget a device.
    Delete {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send the device a contact-me now, so that it calls in (`solicited`); at most one
    /// per minute per phone.
    Contact {
        /// Its MAC address.
        mac: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCmd {
    /// Create or replace a profile from a TOML file.
    Set {
        /// The profile's name (`global` applies to every device).
        name: String,
        /// The TOML file: optional `device-type`, `reassert-on-local-changes`,
        /// `legacy-value-sanitising`, then `[[item]]` tables with `name`, `value`, `index`.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// List profiles: a table, or JSON with `--json`.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show one profile (JSON).
    Show {
        /// The profile's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a profile.
    Delete {
        /// The profile's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// A blocking client of the admin API (`ureq`): one agent, no proxy from the environment,
/// no redirects followed, every status answered to the caller.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `scheme://host:port`, to which the API's paths are appended.
    base: String,
    /// `host:port`, for messages.
    authority: String,
    token: String,
}

/// The longest an admin call may take, and how an error says so.
const CALL_TIMEOUT: (Duration, &str) = (Duration::from_secs(30), "the admin API did not answer within 30 s");
/// The longest an upload may take: a large image over a slow link takes long.
const UPLOAD_TIMEOUT: (Duration, &str) = (Duration::from_secs(3600), "the upload did not finish within an hour");
/// The largest answer read.
const MAX_ANSWER: u64 = 256 << 20;

impl Client {
    pub(crate) fn new(t: &Target) -> anyhow::Result<Self> {
        let url = match &t.server {
            Some(s) => s.clone(),
            None => std::fs::read_to_string(t.data_dir.join("admin-url")).with_context(|| {
                format!(
                    "no running service found in {} (start `dls serve`, or pass --server and --token)",
                    t.data_dir.display()
                )
            })?,
        };
        let token = match &t.token {
            Some(s) => s.clone(),
            None => std::fs::read_to_string(t.data_dir.join("admin-token"))
                .with_context(|| format!("reading the admin token in {}", t.data_dir.display()))?,
        };
        let (authority, https) = admin_url(url.trim())?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .proxy(None)
            .user_agent(concat!("dls/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(CALL_TIMEOUT.0));
        if https {
            config = config.tls_config(tls_for(t)?);
        }
        let scheme = if https { "https" } else { "http" };
        Ok(Self {
            agent: config.build().new_agent(),
            base: format!("{scheme}://{authority}"),
            authority,
            token: token.trim().to_owned(),
        })
    }

    /// A request to `path` with the bearer token.
    fn request(&self, method: Method, path: &str) -> ureq::http::request::Builder {
        ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    /// Calls the API with an optional JSON body; returns the JSON answer.
    pub(crate) fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<serde_json::Value> {
        let req = self.request(method, path);
        let sent = match body {
            Some(body) => self.agent.run(req.header(header::CONTENT_TYPE, "application/json").body(body)?),
            None => self.agent.run(req.body(())?),
        };
        self.answer(sent, CALL_TIMEOUT.1)
    }

    /// Posts the file at `file` as the body of `path`, streamed with its exact length
    /// announced and a progress bar (`Upload`); returns the JSON answer.
    pub(crate) fn upload(&self, path: &str, file: &Path) -> anyhow::Result<serde_json::Value> {
        let f = std::fs::File::open(file).map_err(|e| malformed(format!("{}: {e}", file.display())))?;
        let size = f.metadata().with_context(|| format!("reading {}", file.display()))?.len();
        let mut body = Upload::new(f, size);
        let req = self
            .request(Method::POST, path)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(ureq::SendBody::from_reader(&mut body))?;
        let req = self.agent.configure_request(req).timeout_global(Some(UPLOAD_TIMEOUT.0)).build();
        self.answer(self.agent.run(req), UPLOAD_TIMEOUT.1)
    }

    /// The JSON answer of a successful call, or the error with its exit code.
    fn answer(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        timed_out: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let mut resp = sent.map_err(|e| self.transport_error(e, timed_out))?;
        let status = resp.status();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| self.transport_error(e, timed_out).context("reading the answer"))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        // A JSON error, or the first line of a text one (e.g. plain HTTP to a TLS port).
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).lines().next().unwrap_or("").to_owned();
        let message = match value.get("error").and_then(|e| e.as_str()) {
            Some(e) => e.to_owned(),
            None if !text.is_empty() && !text.chars().any(char::is_control) => text,
            None => "request failed".to_owned(),
        };
        let code = match status {
            // 422: well-formed, but holds something a phone cannot be sent (the message names it).
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => MALFORMED,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => AUTH,
            StatusCode::PAYLOAD_TOO_LARGE => MALFORMED,
            _ => OTHER,
        };
        Err(fail(code, format!("{message} ({})", status.as_u16())))
    }

    /// What went wrong below HTTP, said as the CLI says it.
    fn transport_error(&self, e: ureq::Error, timed_out: &str) -> anyhow::Error {
        use std::io::ErrorKind as K;
        let at = &self.authority;
        match e {
            ureq::Error::Timeout(_) => fail(OTHER, timed_out),
            ureq::Error::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
                anyhow::anyhow!("TLS with the admin API at {at}: {e}")
            }
            e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_)) => {
                anyhow::anyhow!("TLS with the admin API at {at}: {e}")
            }
            ureq::Error::Io(e)
                if matches!(
                    e.kind(),
                    K::ConnectionRefused | K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable
                ) =>
            {
                anyhow::anyhow!("connecting to the admin API at {at} (is `dls serve` running?): {e}")
            }
            e @ (ureq::Error::HostNotFound | ureq::Error::ConnectionFailed) => {
                anyhow::anyhow!("connecting to the admin API at {at} (is `dls serve` running?): {e}")
            }
            ureq::Error::Io(e) => anyhow::anyhow!("the admin API at {at}: {e}"),
            e => anyhow::anyhow!("the admin API at {at}: {e}"),
        }
    }
}

/// The parts of an admin URL (`url`): `host:port` to connect to (the scheme's port when
/// none is given) and whether it is `https`. Anything but a bare
/// `http(s)://host[:port][/]` is a usage error: the API's paths are the CLI's to add, and a
/// token is never taken from a URL. An IP-address host stays one: TLS verifies it as an
/// address, not as a name.
fn admin_url(text: &str) -> anyhow::Result<(String, bool)> {
    let bad = |why: &str| crate::exit::usage(format!("the admin URL {text:?} {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("must start with http:// or https://")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold a user or password (pass --token)"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must be only a scheme, a host and a port"));
    }
    // `Host`'s display puts an IPv6 address in brackets.
    let host = url.host().ok_or_else(|| bad("names no host"))?;
    let port = url.port_or_known_default().ok_or_else(|| bad("names no port"))?;
    Ok((format!("{host}:{port}"), https))
}

/// The TLS settings of an https:// admin API: the service's crypto provider (ring), trusting
/// `--cacert` or the data directory's `ca.crt`, and nothing else.
fn tls_for(t: &Target) -> anyhow::Result<ureq::tls::TlsConfig> {
    let ca_file = t.cacert.clone().unwrap_or_else(|| t.data_dir.join("ca.crt"));
    let pem = std::fs::read(&ca_file)
        .with_context(|| format!("reading the CA certificate {} (or pass --cacert)", ca_file.display()))?;
    let bad = |why: String| malformed(format!("{}: CA certificate: {why}", ca_file.display()));
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| bad(e.to_string()))? {
            ureq::tls::PemItem::Certificate(cert) => {
                // What the verifier will be given must be a usable trust anchor.
                rustls::RootCertStore::empty()
                    .add(rustls::pki_types::CertificateDer::from(cert.der()))
                    .map_err(|e| bad(e.to_string()))?;
                roots.push(cert.to_owned());
            }
            _ => continue,
        }
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(dls_server::tls::provider())
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .build())
}

pub(crate) fn mac(s: &str) -> anyhow::Result<MacAddr> {
    MacAddr::parse(s).map_err(|e| malformed(format!("{s:?}: {e}")))
}

pub(crate) fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints the PIN in an answer alone on stdout, or says that none was issued.
fn print_pin(v: &serde_json::Value) -> anyhow::Result<()> {
    match v.get("pin").and_then(|p| p.as_str()) {
        Some(p) => {
            println!("{p}");
            Ok(())
        }
        None => Err(fail(OTHER, "the service issued no PIN")),
    }
}

fn security(target: &Target, m: MacAddr, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    Client::new(target)?.call(Method::POST, &format!("/api/v1/devices/{m}/security"), Some(serde_json::to_vec(&body)?))
}

pub(crate) fn run_device(cmd: DeviceCmd) -> anyhow::Result<()> {
    match cmd {
        DeviceCmd::Add { mac: m, profiles, mode, secret, target } => {
            let m = mac(&m)?;
            let body =
                serde_json::json!({ "mac": m.to_string(), "profiles": profiles, "mode": mode, "secret": secret });
            let v = Client::new(&target)?.call(Method::POST, "/api/v1/devices", Some(serde_json::to_vec(&body)?))?;
            if mode == Some(SecurityMode::Pin) { print_pin(&v) } else { print_json(&v) }
        }
        DeviceCmd::SetMode { mac: m, mode, target } => {
            let m = mac(&m)?;
            let pin = mode == SecurityMode::Pin;
            let v = security(&target, m, serde_json::json!({ "mode": mode, "new_pin": pin }))?;
            if pin { print_pin(&v) } else { Ok(()) }
        }
        DeviceCmd::SetSecret { mac: m, secret, secret_file, clear, target } => {
            let m = mac(&m)?;
            let path = format!("/api/v1/devices/{m}/secret");
            if clear {
                Client::new(&target)?.call(Method::DELETE, &path, None)?;
                return Ok(());
            }
            let secret = match (secret, secret_file) {
                (Some(s), None) => s,
                (None, Some(f)) => first_line(&f)?,
                _ => return Err(crate::exit::usage("give --secret, --secret-file or --clear")),
            };
            let body = serde_json::json!({ "secret": secret });
            Client::new(&target)?.call(Method::PUT, &path, Some(serde_json::to_vec(&body)?))?;
            Ok(())
        }
        DeviceCmd::ProvisioningUrl { mac: m, embed_credentials, target } => {
            let m = mac(&m)?;
            let q = if embed_credentials { "?embed=true" } else { "" };
            let v =
                Client::new(&target)?.call(Method::GET, &format!("/api/v1/devices/{m}/provisioning-url{q}"), None)?;
            println!("{}", v.get("url").and_then(|u| u.as_str()).unwrap_or_default());
            Ok(())
        }
        DeviceCmd::Pin { mac: m, target } => {
            print_pin(&security(&target, mac(&m)?, serde_json::json!({ "new_pin": true }))?)
        }
        DeviceCmd::Reset { mac: m, target } => {
            let m = mac(&m)?;
            let shown = Client::new(&target)?.call(Method::GET, &format!("/api/v1/devices/{m}"), None)?;
            let pin = shown.pointer("/security/mode").and_then(|v| v.as_str()) == Some("pin");
            let v = security(&target, m, serde_json::json!({ "reset": true, "new_pin": pin }))?;
            if pin { print_pin(&v) } else { Ok(()) }
        }
        DeviceCmd::List { profile, device_type, search, json, target } => {
            let mut q = Vec::new();
            for (k, v) in [("profile", profile), ("device-type", device_type), ("search", search)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", percent_encode(&v)));
                }
            }
            let path =
                if q.is_empty() { "/api/v1/devices".to_owned() } else { format!("/api/v1/devices?{}", q.join("&")) };
            let v = Client::new(&target)?.call(Method::GET, &path, None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["MAC", "TYPE", "VERSION", "E164", "LAST CONTACT", "PROFILES"]);
            for d in v.as_array().into_iter().flatten() {
                let s = |k: &str| table::cell(d.get(k).and_then(|x| x.as_str()).unwrap_or("-"));
                let profiles: Vec<&str> = d
                    .get("profiles")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect();
                t.add_row(vec![
                    s("mac"),
                    s("device_type"),
                    s("software_version"),
                    s("e164"),
                    table::local_time(d.get("last_contact").and_then(serde_json::Value::as_u64)),
                    table::cell(&profiles.join(",")),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        DeviceCmd::Show { mac: m, target } => {
            let m = mac(&m)?;
            print_json(&Client::new(&target)?.call(Method::GET, &format!("/api/v1/devices/{m}"), None)?)
        }
        DeviceCmd::Assign { mac: m, profiles, target } => {
            let m = mac(&m)?;
            let body = serde_json::json!({ "profiles": profiles });
            let v = Client::new(&target)?.call(
                Method::PATCH,
                &format!("/api/v1/devices/{m}"),
                Some(serde_json::to_vec(&body)?),
            )?;
            print_json(&v)
        }
        DeviceCmd::Desired { mac: m, target } => {
            let m = mac(&m)?;
            print_json(&Client::new(&target)?.call(Method::GET, &format!("/api/v1/devices/{m}/desired"), None)?)
        }
        DeviceCmd::Delete { mac: m, target } => {
            let m = mac(&m)?;
            Client::new(&target)?.call(Method::DELETE, &format!("/api/v1/devices/{m}"), None)?;
            Ok(())
        }
        DeviceCmd::Contact { mac: m, target } => {
            let m = mac(&m)?;
            Client::new(&target)?.call(Method::POST, &format!("/api/v1/devices/{m}/contact"), None)?;
            println!("contact-me requested for {}", m.colon_separated());
            Ok(())
        }
    }
}

pub(crate) fn run_profile(cmd: ProfileCmd) -> anyhow::Result<()> {
    match cmd {
        ProfileCmd::Set { name, file, target } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let profile: Profile = toml::from_str(&text)
                .map_err(|e| malformed(format!("{}: {}", file.display(), e.to_string().replace('\n', " "))))?;
            let v = Client::new(&target)?.call(
                Method::PUT,
                &format!("/api/v1/profiles/{}", percent_encode(&name)),
                Some(serde_json::to_vec(&profile)?),
            )?;
            print_json(&v)
        }
        ProfileCmd::List { json, target } => {
            let v = Client::new(&target)?.call(Method::GET, "/api/v1/profiles", None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["NAME", "DEVICE TYPE", "ITEMS", "REASSERT", "TEMPLATE"]);
            for p in v.as_array().into_iter().flatten() {
                let items = p.get("item").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
                let yes_no = |k: &str| {
                    if p.get(k).and_then(serde_json::Value::as_bool) == Some(true) { "yes" } else { "no" }
                };
                let template = if p.get("provisioning-template").is_some_and(|t| !t.is_null()) { "yes" } else { "no" };
                t.add_row(vec![
                    table::cell(p.get("name").and_then(|x| x.as_str()).unwrap_or("-")),
                    table::cell(p.get("device-type").and_then(|x| x.as_str()).unwrap_or("(any)")),
                    items.to_string(),
                    yes_no("reassert-on-local-changes").to_owned(),
                    template.to_owned(),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        ProfileCmd::Show { name, target } => print_json(&Client::new(&target)?.call(
            Method::GET,
            &format!("/api/v1/profiles/{}", percent_encode(&name)),
            None,
        )?),
        ProfileCmd::Delete { name, target } => {
            Client::new(&target)?.call(Method::DELETE, &format!("/api/v1/profiles/{}", percent_encode(&name)), None)?;
            Ok(())
        }
    }
}

/// `dls audit`: the security events and administrative changes, of one device or of all.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only this device's events.
    #[arg(long)]
    mac: Option<String>,
    /// Only this actor's changes (an account's name also matches its API tokens').
    #[arg(long)]
    actor: Option<String>,
    /// Only events of this kind (e.g. pin-issued, device-added, login-failed).
    #[arg(long)]
    kind: Option<String>,
    /// The most events (newest first).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run_audit(args: AuditArgs) -> anyhow::Result<()> {
    let mut path = format!("/api/v1/audit?limit={}", args.limit);
    if let Some(m) = &args.mac {
        path.push_str(&format!("&mac={}", mac(m)?));
    }
    if let Some(a) = &args.actor {
        path.push_str(&format!("&actor={}", percent_encode(a)));
    }
    if let Some(k) = &args.kind {
        path.push_str(&format!("&kind={}", percent_encode(k)));
    }
    let v = Client::new(&args.target)?.call(Method::GET, &path, None)?;
    if args.json {
        return print_json(&v);
    }
    let mut t = table::new(&["AT", "ACTOR", "MAC", "EVENT", "DETAIL"]);
    for e in v.as_array().into_iter().flatten() {
        let s = |k: &str, none: &str| table::cell(e.get(k).and_then(|x| x.as_str()).unwrap_or(none));
        t.add_row(vec![
            table::local_time(e.get("at").and_then(serde_json::Value::as_u64)),
            s("actor", "-"),
            s("mac", "-"),
            s("kind", "-"),
            s("detail", ""),
        ]);
    }
    table::print(&t);
    Ok(())
}

/// The first line of a secret file.
fn first_line(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(malformed(format!("{} holds no secret on its first line", path.display())));
    }
    Ok(line)
}

/// `dls credentials …`: fallback digest credentials.
#[derive(Debug, Subcommand)]
pub(crate) enum CredentialsCmd {
    /// Set a fallback credential (tried by phones after their own MAC credentials).
    SetFallback {
        /// For devices with this profile.
        #[arg(long, conflicts_with = "global", required_unless_present = "global")]
        profile: Option<String>,
        /// For every device.
        #[arg(long)]
        global: bool,
        /// The username.
        #[arg(long)]
        user: String,
        /// A file holding the password (first line).
        #[arg(long)]
        password_file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a fallback credential.
    RemoveFallback {
        /// Of this profile.
        #[arg(long, conflicts_with = "global", required_unless_present = "global")]
        profile: Option<String>,
        /// The global one.
        #[arg(long)]
        global: bool,
        /// The username.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        target: Target,
    },
    /// List fallback credentials (never their passwords): a table, or JSON with `--json`.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

fn scope(profile: Option<String>) -> serde_json::Value {
    match profile {
        Some(p) => serde_json::json!({ "profile": p }),
        None => serde_json::json!("global"),
    }
}

pub(crate) fn run_credentials(cmd: CredentialsCmd) -> anyhow::Result<()> {
    match cmd {
        CredentialsCmd::SetFallback { profile, global: _, user, password_file, target } => {
            let body = serde_json::json!({ "scope": scope(profile), "username": user, "password": first_line(&password_file)? });
            Client::new(&target)?.call(
                Method::PUT,
                "/api/v1/credentials/fallback",
                Some(serde_json::to_vec(&body)?),
            )?;
            Ok(())
        }
        CredentialsCmd::RemoveFallback { profile, global: _, user, target } => {
            let body = serde_json::json!({ "scope": scope(profile), "username": user });
            Client::new(&target)?.call(
                Method::DELETE,
                "/api/v1/credentials/fallback",
                Some(serde_json::to_vec(&body)?),
            )?;
            Ok(())
        }
        CredentialsCmd::List { json, target } => {
            let v = Client::new(&target)?.call(Method::GET, "/api/v1/credentials/fallback", None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["SCOPE", "USERNAME"]);
            for c in v.as_array().into_iter().flatten() {
                let scope = match c.get("scope") {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other
                        .get("profile")
                        .and_then(|p| p.as_str())
                        .map_or_else(|| other.to_string(), |p| format!("profile {p}")),
                    None => "-".to_owned(),
                };
                t.add_row(vec![
                    table::cell(&scope),
                    table::cell(c.get("username").and_then(|u| u.as_str()).unwrap_or("-")),
                ]);
            }
            table::print(&t);
            Ok(())
        }
    }
}

#[cfg(test)]
mod url_tests {
    use super::admin_url;

    #[test]
    fn admin_urls_are_parsed_with_their_default_ports() {
        let parts = |t: &str| admin_url(t).map_err(|e| e.to_string());
        assert_eq!(parts("http://127.0.0.1:18081"), Ok(("127.0.0.1:18081".to_owned(), false)));
        assert_eq!(parts("http://127.0.0.1:18081/"), Ok(("127.0.0.1:18081".to_owned(), false)));
        assert_eq!(parts("https://dls.example.com"), Ok(("dls.example.com:443".to_owned(), true)));
        assert_eq!(parts("HTTPS://[::1]:8443"), Ok(("[::1]:8443".to_owned(), true)));
        for bad in ["ftp://h:1", "127.0.0.1:18081", "http://u:p@h:1", "http://h:1/api", "http://h:1/?x", "http://"] {
            assert!(parts(bad).is_err(), "{bad}");
        }
    }
}
