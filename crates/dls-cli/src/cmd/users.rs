//! `dls user …`: mobility users (hot desking), through a running service's admin API. A
//! password comes from `--password-file` (its first line) or, on a terminal, a prompt
//! without echo (twice); it is sent to the service, which keeps only its Argon2id hash.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use ureq::http::Method;
use zeroize::Zeroizing;

use super::admin::{Client, Target, mac, print_json};
use crate::exit::{malformed, usage};
use crate::table;
use crate::upload::percent_encode;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Create a mobility user: the number users log on with at a phone, a password, and
    /// the profiles whose items the phone gets while the user is logged on.
    Add {
        /// The user's number (its E.164 as the phones show it; +49 89 1234 and +49891234
        /// are the same).
        #[arg(long)]
        e164: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
        /// A mobility profile (repeatable, in order: a later one's items win).
        #[arg(long = "profile")]
        profiles: Vec<String>,
        /// A file holding the password (first line). Without it, the password is asked for
        /// on the terminal.
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// List the users: where each is logged on, how much data is kept.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show a user (JSON) with its saved data's names, sizes and dates; with `--data NAME`,
    /// that item's content instead.
    Show {
        /// The user's number.
        number: String,
        /// Write this saved item's content (decoded) to `--output`, or to stdout (as its
        /// Base64 when stdout is a terminal).
        #[arg(long)]
        data: Option<String>,
        /// The file `--data` writes.
        #[arg(long, requires = "data")]
        output: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Forget a user and its saved data (a phone it is logged on at gets its own identity
    /// back when it next reports).
    Delete {
        /// The user's number.
        number: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set a user's password.
    SetPassword {
        /// The user's number.
        number: String,
        /// A file holding the password (first line); without it, a prompt on the terminal.
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a user's mobility profiles.
    SetProfiles {
        /// The user's number.
        number: String,
        /// The profiles, in order (none: remove all).
        #[arg(long = "profile")]
        profiles: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Log a user on at a phone: at the phone's next interaction (it is sent a contact-me),
    /// the user's configuration and data are written. Prints the job's id.
    Logon {
        /// The user's number.
        number: String,
        /// The phone's MAC address.
        #[arg(long)]
        mac: String,
        #[command(flatten)]
        target: Target,
    },
    /// Log a user off the phone it is logged on at: its data is read and kept, the phone's
    /// own identity written back. Prints the job's id.
    Logoff {
        /// The user's number.
        number: String,
        #[command(flatten)]
        target: Target,
    },
}

/// A user's path in the admin API.
fn path(number: &str) -> String {
    format!("/api/v1/users/{}", percent_encode(number.trim()))
}

/// The password: the file's first line, or typed twice on the terminal.
fn password(file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    if let Some(file) = file {
        let text =
            Zeroizing::new(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?);
        let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            return Err(malformed(format!("{} holds no password on its first line", file.display())));
        }
        return Ok(line);
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage("give --password-file (no terminal to ask the password on)"));
    }
    let first = Zeroizing::new(rpassword::prompt_password("Password: ").context("reading the password")?);
    let again = Zeroizing::new(rpassword::prompt_password("Again: ").context("reading the password")?);
    if first != again {
        return Err(malformed("the passwords differ"));
    }
    Ok(first)
}

fn print_job(v: &serde_json::Value) {
    let id = v.pointer("/job/id").and_then(serde_json::Value::as_i64).unwrap_or_default();
    let mac = v.pointer("/job/mac").and_then(|m| m.as_str()).unwrap_or("-");
    println!("job {id} queued for {mac}");
}

/// Writes a saved item's content: decoded to `output`, or to stdout (Base64 on a terminal).
fn write_data(v: &serde_json::Value, output: Option<&Path>) -> anyhow::Result<()> {
    let text = v.get("value").and_then(|x| x.as_str()).unwrap_or_default();
    let bytes = dls_engine::mobility::decode(text).ok_or_else(|| malformed("the saved item is not Base64"))?;
    match output {
        Some(file) => std::fs::write(file, &bytes).with_context(|| format!("writing {}", file.display())),
        None if std::io::stdout().is_terminal() => {
            eprintln!("(Base64; --output FILE writes the content itself)");
            println!("{text}");
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes).and_then(|()| out.flush()).context("writing to stdout")
        }
    }
}

pub(crate) fn run(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add { e164, name, profiles, password_file, target } => {
            let client = Client::new(&target)?;
            let password = password(password_file.as_deref())?;
            let body = serde_json::to_vec(&serde_json::json!({
                "number": e164, "name": name, "profiles": profiles, "password": password.as_str(),
            }))?;
            print_json(&client.call(Method::POST, "/api/v1/users", Some(body))?)
        }
        UserCmd::List { json, target } => {
            let v = Client::new(&target)?.call(Method::GET, "/api/v1/users", None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["NUMBER", "NAME", "PROFILES", "LOGGED ON AT", "SINCE", "DATA"]);
            for u in v.as_array().into_iter().flatten() {
                let s = |k: &str| table::cell(u.get(k).and_then(|x| x.as_str()).unwrap_or("-"));
                let profiles: Vec<&str> = u
                    .get("profiles")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect();
                let at = u.pointer("/logged_on/mac").and_then(|m| m.as_str()).unwrap_or("-");
                let since = u.pointer("/logged_on/since").and_then(serde_json::Value::as_u64);
                let items = u.get("data_items").and_then(serde_json::Value::as_u64).unwrap_or(0);
                let bytes = u.get("data_bytes").and_then(serde_json::Value::as_u64).unwrap_or(0);
                t.add_row(vec![
                    s("number"),
                    s("name"),
                    table::cell(&profiles.join(",")),
                    table::cell(at),
                    if since.is_some() { table::local_time(since) } else { "-".to_owned() },
                    format!("{items} items, {bytes} bytes"),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        UserCmd::Show { number, data, output, target } => {
            let client = Client::new(&target)?;
            match data {
                Some(name) => {
                    let v =
                        client.call(Method::GET, &format!("{}/data/{}", path(&number), percent_encode(&name)), None)?;
                    write_data(&v, output.as_deref())
                }
                None => print_json(&client.call(Method::GET, &path(&number), None)?),
            }
        }
        UserCmd::Delete { number, target } => {
            Client::new(&target)?.call(Method::DELETE, &path(&number), None)?;
            Ok(())
        }
        UserCmd::SetPassword { number, password_file, target } => {
            let client = Client::new(&target)?;
            let password = password(password_file.as_deref())?;
            let body = serde_json::to_vec(&serde_json::json!({ "password": password.as_str() }))?;
            client.call(Method::PUT, &format!("{}/password", path(&number)), Some(body))?;
            Ok(())
        }
        UserCmd::SetProfiles { number, profiles, target } => {
            let body = serde_json::to_vec(&serde_json::json!({ "profiles": profiles }))?;
            print_json(&Client::new(&target)?.call(Method::PUT, &format!("{}/profiles", path(&number)), Some(body))?)
        }
        UserCmd::Logon { number, mac: m, target } => {
            let body = serde_json::to_vec(&serde_json::json!({ "mac": mac(&m)?.to_string() }))?;
            let v = Client::new(&target)?.call(Method::POST, &format!("{}/logon", path(&number)), Some(body))?;
            print_job(&v);
            Ok(())
        }
        UserCmd::Logoff { number, target } => {
            let v = Client::new(&target)?.call(Method::POST, &format!("{}/logoff", path(&number)), None)?;
            print_job(&v);
            Ok(())
        }
    }
}
