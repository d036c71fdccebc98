//! `dls account …`: console and API accounts and their API tokens, through the admin API
//! (admin only: the admin token, or an admin account's API token).
//!
//! A new or reset password comes from `--password-file` (its first line), or is typed at
//! a prompt (twice, not echoed: `rpassword`) when stdin is a terminal, or else the service
//! makes a one-time password, printed alone on stdout for the new user to change.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use ureq::http::Method;
use zeroize::Zeroizing;

use super::admin::{Client, Target, print_json};
use crate::exit::{malformed, usage};
use crate::table;
use crate::upload::percent_encode;

/// A role: viewer (reads everything but secrets), operator (also devices, profiles, jobs,
/// files, PINs), admin (also accounts, credentials, settings).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCmd {
    /// Create an account. Its password: --password-file, else a prompt on a terminal, else
    /// a one-time password printed alone on stdout.
    Add {
        /// Its name: 1 to 64 of a-z 0-9 . _ - @.
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A file whose first line is the password (at least 10 characters).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// List accounts: a table, or JSON with --json.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete an account, its API tokens and its console sessions.
    Delete {
        /// The account.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Change an account's role (its sessions and tokens get it at their next request).
    SetRole {
        /// The account.
        name: String,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
        #[command(flatten)]
        target: Target,
    },
    /// Reset an account's password (its console sessions end). The password as for `add`.
    ResetPassword {
        /// The account.
        name: String,
        /// A file whose first line is the new password.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// An account's API tokens (for scripts: `Authorization: Bearer dls_…`).
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token; prints it alone on stdout, the only time it is shown.
    Add {
        /// The account it acts for (with its role).
        account: String,
        /// Its name, unique per account (A-Z a-z 0-9 . _ -).
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List an account's tokens (never the tokens themselves).
    List {
        /// The account.
        account: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token: refused from its next request on.
    Revoke {
        /// The account.
        account: String,
        /// The token's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// The password of `--password-file`, or typed at a prompt, or `None` (the service makes
/// a one-time password).
fn password(file: Option<&Path>) -> anyhow::Result<Option<Zeroizing<String>>> {
    if let Some(path) = file {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
        let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_owned());
        if line.is_empty() {
            return Err(malformed(format!("{} holds no password on its first line", path.display())));
        }
        return Ok(Some(line));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let first = Zeroizing::new(rpassword::prompt_password("Password: ").context("reading the password")?);
    let again = Zeroizing::new(rpassword::prompt_password("Again: ").context("reading the password")?);
    if first != again {
        return Err(usage("the two passwords differ"));
    }
    if first.is_empty() {
        return Ok(None);
    }
    Ok(Some(first))
}

fn body(value: &serde_json::Value) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(Some(serde_json::to_vec(value)?))
}

pub(crate) fn run_account(cmd: AccountCmd) -> anyhow::Result<()> {
    match cmd {
        AccountCmd::Add { name, role, password_file, target } => {
            let password = password(password_file.as_deref())?;
            let mut request = serde_json::json!({ "name": name, "role": role.as_str() });
            if let Some(p) = &password {
                request["password"] = serde_json::Value::String(p.to_string());
            }
            let answer = Client::new(&target)?.call(Method::POST, "/api/v1/accounts", body(&request)?)?;
            match answer.get("password").and_then(|p| p.as_str()) {
                Some(one_time) => println!("{one_time}"),
                None => eprintln!("account {name} created ({})", role.as_str()),
            }
            Ok(())
        }
        AccountCmd::List { json, target } => {
            let v = Client::new(&target)?.call(Method::GET, "/api/v1/accounts", None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["NAME", "ROLE", "CREATED", "LAST LOGIN"]);
            for a in v.as_array().into_iter().flatten() {
                let s = |k: &str| table::cell(a.get(k).and_then(|x| x.as_str()).unwrap_or("-"));
                t.add_row(vec![
                    s("name"),
                    s("role"),
                    table::local_time(a.get("created_at").and_then(serde_json::Value::as_u64)),
                    table::local_time(a.get("last_login_at").and_then(serde_json::Value::as_u64)),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        AccountCmd::Delete { name, target } => {
            Client::new(&target)?.call(Method::DELETE, &format!("/api/v1/accounts/{}", percent_encode(&name)), None)?;
            Ok(())
        }
        AccountCmd::SetRole { name, role, target } => {
            let request = serde_json::json!({ "role": role.as_str() });
            let path = format!("/api/v1/accounts/{}", percent_encode(&name));
            Client::new(&target)?.call(Method::PATCH, &path, body(&request)?)?;
            Ok(())
        }
        AccountCmd::ResetPassword { name, password_file, target } => {
            let password = password(password_file.as_deref())?;
            let request = match &password {
                Some(p) => serde_json::json!({ "password": p.as_str() }),
                None => serde_json::json!({}),
            };
            let path = format!("/api/v1/accounts/{}/password", percent_encode(&name));
            let answer = Client::new(&target)?.call(Method::POST, &path, body(&request)?)?;
            if let Some(one_time) = answer.get("password").and_then(|p| p.as_str()) {
                println!("{one_time}");
            }
            Ok(())
        }
        AccountCmd::Token(cmd) => run_token(cmd),
    }
}

fn run_token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Add { account, name, target } => {
            let path = format!("/api/v1/accounts/{}/tokens", percent_encode(&account));
            let answer =
                Client::new(&target)?.call(Method::POST, &path, body(&serde_json::json!({ "name": name }))?)?;
            let token = answer.get("token").and_then(|t| t.as_str()).context("the service answered no token")?;
            println!("{token}");
            Ok(())
        }
        TokenCmd::List { account, json, target } => {
            let path = format!("/api/v1/accounts/{}/tokens", percent_encode(&account));
            let v = Client::new(&target)?.call(Method::GET, &path, None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["NAME", "CREATED", "LAST USED"]);
            for tok in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    table::cell(tok.get("name").and_then(|x| x.as_str()).unwrap_or("-")),
                    table::local_time(tok.get("created_at").and_then(serde_json::Value::as_u64)),
                    table::local_time(tok.get("last_used_at").and_then(serde_json::Value::as_u64)),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        TokenCmd::Revoke { account, name, target } => {
            let path = format!("/api/v1/accounts/{}/tokens/{}", percent_encode(&account), percent_encode(&name));
            Client::new(&target)?.call(Method::DELETE, &path, None)?;
            Ok(())
        }
    }
}
