//! `dls job …` and `dls file …`: jobs and deployment files, through the admin API.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ureq::http::Method;

use super::admin::{Client, Target, mac, print_json};
use crate::exit::{malformed, usage};
use crate::table;
use crate::upload::percent_encode;

/// Which devices a job is for.
#[derive(Debug, Args)]
pub(crate) struct Selection {
    /// One device (repeat for several).
    #[arg(long = "mac", value_name = "MAC")]
    macs: Vec<String>,
    /// Every device assigned this profile.
    #[arg(long, conflicts_with_all = ["macs", "device_type", "all"])]
    profile: Option<String>,
    /// Every device reporting this device-type (e.g. "OpenStage 60").
    #[arg(long, conflicts_with_all = ["macs", "all"])]
    device_type: Option<String>,
    /// Every device.
    #[arg(long, conflicts_with = "macs")]
    all: bool,
}

/// What a job does.
#[derive(Debug, Subcommand)]
pub(crate) enum JobKindCmd {
    /// Read items (`name` or `name[index]`), or everything when none is given.
    Read {
        /// The items.
        items: Vec<String>,
    },
    /// Write items: `name=value` or `name[index]=value`.
    Write {
        /// The items.
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Restart the phone.
    Restart,
    /// Reset the phone to factory settings.
    FactoryReset,
    /// Deploy a file from the file store (`dls file add`).
    DeployFile {
        /// The file's id.
        #[arg(long)]
        file: i64,
        /// normal (when idle) or immediate.
        #[arg(long)]
        priority: Option<String>,
    },
    /// Deploy firmware (an APP file) to the devices it is for that run an older version.
    DeployFirmware {
        /// The image's id.
        #[arg(long)]
        file: i64,
        /// normal (when idle) or immediate.
        #[arg(long)]
        priority: Option<String>,
        /// Also to devices that run this version or a newer one.
        #[arg(long)]
        force: bool,
    },
    /// Read the inventory afresh and write everything that differs from the desired
    /// configuration, passwords included.
    ReassertConfig,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobCmd {
    /// Queue a job; the devices are sent a contact-me at once. Example:
    /// `dls job add --mac 00:1A:E8:12:34:56 write sntp-addr=ntp.example.net`
    Add {
        #[command(flatten)]
        selection: Selection,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        kind: JobKindCmd,
        #[command(flatten)]
        target: Target,
    },
    /// List jobs, newest first.
    List {
        /// One device's.
        #[arg(long)]
        mac: Option<String>,
        /// In this state: queued, sent, busy-retry, done, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// A mobility user's logons and logoffs (the user's number).
        #[arg(long)]
        user: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show one job (JSON).
    Show {
        /// Its id.
        id: i64,
        #[command(flatten)]
        target: Target,
    },
    /// Cancel a job that is not over.
    Cancel {
        /// Its id.
        id: i64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FileCmd {
    /// Add a file to the file store (firmware, ring tone, logo, …); prints its record.
    Add {
        /// The file.
        path: PathBuf,
        /// Its file-type: APP (firmware), RINGTONE, MOH, PIC, LDAP, LOGO, SCREENSAVER, …
        #[arg(long = "type", value_name = "TYPE")]
        file_type: String,
        /// The name phones see (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// Firmware: a device type it is for (repeatable), when the image does not say.
        #[arg(long = "device-type")]
        device_types: Vec<String>,
        /// Firmware: its version (V3 R5.12.0), when the image does not say.
        #[arg(long)]
        software_version: Option<String>,
        /// Firmware: its software type.
        #[arg(long)]
        software_type: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the files.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a file; its deployments that are not over fail.
    Delete {
        /// Its id.
        id: i64,
        #[command(flatten)]
        target: Target,
    },
}

/// `name`, `name[3]`: an item's name and index.
fn item_key(s: &str) -> anyhow::Result<serde_json::Value> {
    let s = s.trim();
    let (name, index) = match s.strip_suffix(']').and_then(|r| r.split_once('[')) {
        Some((n, i)) => {
            (n, Some(i.parse::<u32>().map_err(|_| malformed(format!("{s:?}: the index is not a number")))?))
        }
        None => (s, None),
    };
    if name.is_empty() || name.contains(['[', ']', '=']) {
        return Err(malformed(format!("{s:?}: expected name or name[index]")));
    }
    Ok(serde_json::json!({ "name": name, "index": index }))
}

/// `name=value`, `name[3]=value`.
fn item(s: &str) -> anyhow::Result<serde_json::Value> {
    let (k, v) = s.split_once('=').ok_or_else(|| malformed(format!("{s:?}: expected name=value")))?;
    let mut i = item_key(k)?;
    i["value"] = serde_json::Value::String(v.to_owned());
    Ok(i)
}

fn job_body(kind: JobKindCmd) -> anyhow::Result<serde_json::Value> {
    Ok(match kind {
        JobKindCmd::Read { items } => {
            let items: Vec<_> = items.iter().map(|i| item_key(i)).collect::<anyhow::Result<_>>()?;
            serde_json::json!({ "kind": "read", "items": items })
        }
        JobKindCmd::Write { items } => {
            let items: Vec<_> = items.iter().map(|i| item(i)).collect::<anyhow::Result<_>>()?;
            serde_json::json!({ "kind": "write", "items": items })
        }
        JobKindCmd::Restart => serde_json::json!({ "kind": "restart" }),
        JobKindCmd::FactoryReset => serde_json::json!({ "kind": "factory-reset" }),
        JobKindCmd::ReassertConfig => serde_json::json!({ "kind": "reassert-config" }),
        JobKindCmd::DeployFile { file, priority } => {
            serde_json::json!({ "kind": "deploy-file", "file": file, "priority": priority })
        }
        JobKindCmd::DeployFirmware { file, priority, force } => {
            serde_json::json!({ "kind": "deploy-firmware", "file": file, "priority": priority, "force": force })
        }
    })
}

fn target_body(s: Selection) -> anyhow::Result<serde_json::Value> {
    if let Some(p) = s.profile {
        return Ok(serde_json::json!({ "profile": p }));
    }
    if let Some(t) = s.device_type {
        return Ok(serde_json::json!({ "device-type": t }));
    }
    if s.all {
        return Ok(serde_json::json!({ "all": true }));
    }
    match s.macs.as_slice() {
        [] => Err(usage("choose the devices: --mac MAC, --profile P, --device-type T or --all")),
        [one] => Ok(serde_json::json!({ "mac": mac(one)?.to_string() })),
        many => {
            let macs: Vec<String> =
                many.iter().map(|m| mac(m).map(|m| m.to_string())).collect::<anyhow::Result<_>>()?;
            Ok(serde_json::json!({ "macs": macs }))
        }
    }
}

fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("-")
}

fn colon_mac(v: &serde_json::Value) -> String {
    let raw = s(v, "mac");
    dls_message::MacAddr::parse(raw).map_or_else(|_| raw.to_owned(), |m| m.colon_separated())
}

pub(crate) fn run_job(cmd: JobCmd) -> anyhow::Result<()> {
    match cmd {
        JobCmd::Add { selection, json, kind, target } => {
            let body = serde_json::json!({ "target": target_body(selection)?, "job": job_body(kind)? });
            let v = Client::new(&target)?.call(Method::POST, "/api/v1/jobs", Some(serde_json::to_vec(&body)?))?;
            if json {
                return print_json(&v);
            }
            for j in v.get("jobs").and_then(|j| j.as_array()).into_iter().flatten() {
                let kind = j.pointer("/job/kind").and_then(|k| k.as_str()).unwrap_or("-");
                println!("job {} queued for {}: {kind}", j.get("id").unwrap_or(&serde_json::Value::Null), colon_mac(j));
            }
            for k in v.get("skipped").and_then(|j| j.as_array()).into_iter().flatten() {
                eprintln!("not queued for {}: {}", colon_mac(k), s(k, "reason"));
            }
            Ok(())
        }
        JobCmd::List { mac: m, state, user, limit, json, target } => {
            let mut q = Vec::new();
            if let Some(m) = m {
                q.push(format!("mac={}", mac(&m)?));
            }
            if let Some(st) = state {
                q.push(format!("state={}", percent_encode(&st)));
            }
            if let Some(u) = user {
                q.push(format!("user={}", percent_encode(&u)));
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            let path = if q.is_empty() { "/api/v1/jobs".to_owned() } else { format!("/api/v1/jobs?{}", q.join("&")) };
            let v = Client::new(&target)?.call(Method::GET, &path, None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["ID", "MAC", "KIND", "STATE", "ANSWER", "CONTACT-ME"]);
            for j in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    j.get("id").unwrap_or(&serde_json::Value::Null).to_string(),
                    table::cell(&colon_mac(j)),
                    table::cell(j.pointer("/job/kind").and_then(|k| k.as_str()).unwrap_or("-")),
                    table::cell(s(j, "state")),
                    table::cell(s(j, "answer")),
                    table::cell(s(j, "contact")),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        JobCmd::Show { id, target } => {
            print_json(&Client::new(&target)?.call(Method::GET, &format!("/api/v1/jobs/{id}"), None)?)
        }
        JobCmd::Cancel { id, target } => {
            Client::new(&target)?.call(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)?;
            println!("job {id} cancelled");
            Ok(())
        }
    }
}

pub(crate) fn run_file(cmd: FileCmd) -> anyhow::Result<()> {
    match cmd {
        FileCmd::Add { path, file_type, name, device_types, software_version, software_type, target } => {
            let name = match name {
                Some(n) => n,
                None => path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| usage(format!("{}: give --name", path.display())))?,
            };
            let mut q = vec![format!("name={}", percent_encode(&name)), format!("type={}", percent_encode(&file_type))];
            for d in &device_types {
                q.push(format!("device-type={}", percent_encode(d)));
            }
            if let Some(v) = &software_version {
                q.push(format!("software-version={}", percent_encode(v)));
            }
            if let Some(t) = &software_type {
                q.push(format!("software-type={}", percent_encode(t)));
            }
            print_json(&Client::new(&target)?.upload(&format!("/api/v1/files?{}", q.join("&")), &path)?)
        }
        FileCmd::List { json, target } => {
            let v = Client::new(&target)?.call(Method::GET, "/api/v1/files", None)?;
            if json {
                return print_json(&v);
            }
            let mut t = table::new(&["ID", "TYPE", "SIZE", "VERSION", "NAME"]);
            for f in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    f.get("id").unwrap_or(&serde_json::Value::Null).to_string(),
                    table::cell(s(f, "file_type")),
                    f.get("size").and_then(serde_json::Value::as_u64).unwrap_or(0).to_string(),
                    table::cell(s(f, "software_version")),
                    table::cell(s(f, "name")),
                ]);
            }
            table::print(&t);
            Ok(())
        }
        FileCmd::Delete { id, target } => {
            Client::new(&target)?.call(Method::DELETE, &format!("/api/v1/files/{id}"), None)?;
            println!("file {id} deleted");
            Ok(())
        }
    }
}
