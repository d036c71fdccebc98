//! `dls phone run --logon NUMBER --password-file F`, `--userdata NAME=FILE`, `--logoff`:
//! a user logs on and off at the simulated phone after its start-up ([`Phone::log_on`],
//! [`Phone::log_off`]); with `--state-dir` the phone remembers the user and their data
//! between runs (`mobility.json`, mode 0600).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use dls_workpoint::mobility::{MOBILITY_STATE, STATE_LOGGED_OFF, is_userdata};
use dls_workpoint::{MobilityError, Phone, UserPassword, WpiClient};
use zeroize::Zeroizing;

use crate::exit::{AUTH, OTHER, USAGE, fail, malformed, usage};

/// The options of `dls phone run` for mobility.
#[derive(Debug, Args)]
pub(crate) struct MobilityArgs {
    /// After the start-up, log the mobility user NUMBER on (the user's password from
    /// --password-file): the logon (inventory-changes with sip-mobility-state=0, the number,
    /// the password), the interim start-up, the restore of the user's data (userdata-*),
    /// each exchange printed; then one line per item of user data restored, with its size.
    /// A refusal (CleanUp with a cleanup-reason) exits 4, naming the reason.
    #[arg(long, value_name = "NUMBER", requires = "password_file", conflicts_with = "stay")]
    logon: Option<String>,
    /// A file whose first line is the user's password (for --logon, and sent with --logoff
    /// when given). Never printed, not even with -v.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// After the logon (or with a user logged on from --state-dir): the user changes an item
    /// of their data at the phone — its value becomes FILE's bytes (as Base64, at index 1) and
    /// it is handed back at the logoff. NAME is a userdata-* item, e.g. userdata-phonebook.
    /// Repeat for several.
    #[arg(long, value_name = "NAME=FILE", value_parser = parse_userdata, conflicts_with = "stay")]
    userdata: Vec<(String, PathBuf)>,
    /// After the logon: write each item of user data the phone holds into DIR, one file per
    /// item named after it, its bytes decoded.
    #[arg(long, value_name = "DIR", conflicts_with = "stay")]
    userdata_dir: Option<PathBuf>,
    /// At the end of the run, log the user off: the logoff (inventory-changes with
    /// sip-mobility-state=1 and modified-items; the DLS reads the changed data back), then a
    /// start-up with the phone's own number. The user is the one logged on in this run
    /// (--logon) or, with --state-dir, in an earlier one.
    #[arg(long, conflicts_with = "stay")]
    logoff: bool,
}

fn parse_userdata(s: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=FILE"))?;
    let name = name.trim();
    if !is_userdata(name) {
        return Err(format!("{name:?} is not a userdata-* item (e.g. userdata-phonebook)"));
    }
    if file.is_empty() {
        return Err(format!("{s:?} names no file"));
    }
    Ok((name.to_owned(), PathBuf::from(file)))
}

impl MobilityArgs {
    /// Whether the run does anything for mobility.
    pub(crate) fn wanted(&self) -> bool {
        self.logon.is_some() || self.logoff || !self.userdata.is_empty() || self.userdata_dir.is_some()
    }

    /// Checks what can be checked before the phone starts up (a user to log off or whose
    /// data to change, the password file); returns the password.
    pub(crate) fn check(&self, phone: &Phone) -> anyhow::Result<Option<UserPassword>> {
        let user = self.logon.is_some() || phone.mobility_user().is_some();
        if self.logoff && !user {
            return Err(usage(
                "--logoff: no user is logged on at this phone (give --logon, or the --state-dir of a run that did)",
            ));
        }
        if !self.userdata.is_empty() && !user {
            return Err(usage("--userdata: no user is logged on at this phone (give --logon)"));
        }
        if self.userdata_dir.is_some() && self.logon.is_none() {
            return Err(usage("--userdata-dir writes the user's data after --logon: give --logon"));
        }
        self.password_file.as_deref().map(read_password).transpose()
    }
}

/// The password on the first line of `path` (zeroized once read).
pub(crate) fn read_password(path: &Path) -> anyhow::Result<UserPassword> {
    let bytes = Zeroizing::new(crate::io::read_input(Some(path))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed(format!("{}: not UTF-8 text", path.display())))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(malformed(format!("{} holds no password on its first line", path.display())));
    }
    Ok(UserPassword::new(line))
}

/// A mobility error on one line with its exit code: a refusal of the message that carried the
/// password is an authentication failure (4); the caller's mistakes are usage (2).
pub(crate) fn mobility_error(e: &MobilityError, what: &str) -> anyhow::Error {
    match e {
        MobilityError::Refused { with_password: true, .. } => fail(AUTH, format!("{what}: {e}")),
        MobilityError::Client { step, source } => super::client_error(source, &format!("{what}: {step}")),
        MobilityError::NoUser | MobilityError::UserLoggedOn { .. } | MobilityError::Invalid(_) => {
            fail(USAGE, format!("{what}: {e}"))
        }
        _ => fail(OTHER, format!("{what}: {e}")),
    }
}

/// The logon, the user's changes and the logoff the options ask for, after the start-up,
/// on `client` (the port the start-up used); the mobility state saved in `state_dir`.
pub(crate) fn run(
    a: &MobilityArgs,
    password: Option<&UserPassword>,
    phone: &mut Phone,
    client: &mut WpiClient,
    rt: &tokio::runtime::Runtime,
    state_dir: Option<&Path>,
    what: &str,
) -> anyhow::Result<()> {
    let result = steps(a, password, phone, client, rt, what);
    // What the phone holds now is what it remembers, whatever failed.
    if let Some(dir) = state_dir {
        save_state(dir, phone)?;
    }
    result
}

fn steps(
    a: &MobilityArgs,
    password: Option<&UserPassword>,
    phone: &mut Phone,
    client: &mut WpiClient,
    rt: &tokio::runtime::Runtime,
    what: &str,
) -> anyhow::Result<()> {
    if let Some(number) = a.logon.as_deref() {
        let password = password.ok_or_else(|| usage("--logon needs --password-file"))?;
        let logon = rt.block_on(phone.log_on(client, number, password)).map_err(|e| mobility_error(&e, what))?;
        println!(
            "logged on as {}: {} items written, {} refused",
            logon.user.escape_debug(),
            logon.logon.written.len(),
            logon.logon.refused.len()
        );
        print_userdata(phone);
        if let Some(dir) = a.userdata_dir.as_deref() {
            write_userdata(dir, phone)?;
        }
    }
    if !a.userdata.is_empty() {
        if phone.mobility_user().is_none() {
            return Err(usage("--userdata: no user is logged on at this phone (give --logon)"));
        }
        for (name, file) in &a.userdata {
            let bytes = crate::io::read_input(Some(file))?;
            phone.set_userdata(name, &bytes).map_err(|e| usage(e.to_string()))?;
            println!("{name} changed: {} bytes", bytes.len());
        }
    }
    if a.logoff {
        if phone.mobility_user().is_none() {
            return Err(usage(
                "--logoff: no user is logged on at this phone (give --logon, or the --state-dir of a run that did)",
            ));
        }
        let logoff = rt.block_on(phone.log_off(client, password)).map_err(|e| mobility_error(&e, what))?;
        let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        println!("logged off {}: user data saved: {}", logoff.user.escape_debug(), list(&logoff.saved));
        if !logoff.unsaved.is_empty() {
            println!("warning: the DLS did not read back {}: those changes are lost", logoff.unsaved.join(", "));
        }
    }
    Ok(())
}

/// One line per item of user data the phone holds, with its size.
fn print_userdata(phone: &Phone) {
    let data = phone.userdata();
    if data.is_empty() {
        println!("no user data restored");
    }
    for d in data {
        match d.bytes() {
            Ok(b) => println!("user data {}: {} bytes", d.name, b.len()),
            Err(e) => println!("user data {}: {e}", d.name),
        }
    }
}

/// Writes each item of user data into `dir`, one file per item (mode 0600: the user's).
fn write_userdata(dir: &Path, phone: &Phone) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for d in phone.userdata() {
        let bytes = d.bytes().map_err(|e| fail(OTHER, e))?;
        write_private(&dir.join(&d.name), &bytes)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

const STATE_FILE: &str = "mobility.json";

/// The phone's mobility items, as kept in the state directory.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    e164: String,
    basic_e164: String,
    sip_mobility_state: String,
    /// The user's data: name → Base64.
    #[serde(default)]
    userdata: BTreeMap<String, String>,
    /// The names changed since the logon.
    #[serde(default)]
    modified: Vec<String>,
}

/// Puts the mobility state saved in `dir` (if any) on `phone`.
pub(crate) fn load_state(dir: &Path, phone: &mut Phone) -> anyhow::Result<()> {
    let p = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", p.display()))),
    };
    let s: State = serde_json::from_str(&text).map_err(|e| malformed(format!("{}: {e}", p.display())))?;
    phone.set("e164", None, &s.e164);
    phone.set("basic-e164", None, &s.basic_e164);
    phone.set(MOBILITY_STATE, None, &s.sip_mobility_state);
    phone.set("mobility-enabled", None, "true");
    for (name, value) in &s.userdata {
        let modified = s.modified.contains(name);
        phone.put_userdata(name, value, modified).map_err(|e| malformed(format!("{}: {e}", p.display())))?;
    }
    if let Some(user) = phone.mobility_user() {
        println!("mobility: user {} is logged on (from {})", user.escape_debug(), p.display());
    }
    Ok(())
}

/// Saves the phone's mobility state in `dir`.
fn save_state(dir: &Path, phone: &Phone) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let get = |n: &str| phone.get(n, None).unwrap_or_default().to_owned();
    let state = State {
        e164: get("e164"),
        basic_e164: phone.basic_e164().to_owned(),
        sip_mobility_state: phone.get(MOBILITY_STATE, None).unwrap_or(STATE_LOGGED_OFF).to_owned(),
        userdata: phone.userdata().into_iter().map(|d| (d.name, d.base64)).collect(),
        modified: phone.modified_userdata(),
    };
    write_private(&dir.join(STATE_FILE), serde_json::to_string(&state)?.as_bytes())
}
