//! `dls serve`'s configuration through the real binary: every setting of `Config` taken
//! from a file, from the environment and from a flag, listed by `--help`; the layers'
//! order; bad input. `--print-config` shows what the layers give without starting anything.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::common::Run;

/// Every setting of `dls_server::Config`, none at its default, valid together. A setting
/// added to `Config` fails [`every_setting_is_a_file_key_a_variable_and_a_flag`] until it
/// is here, and then until the file, the environment and a flag all set it.
const EVERY_SETTING: &str = r#"
data-dir = "/srv/dls"
wpi-listen = "127.0.0.1:28443"
admin-listen = "127.0.0.1:28081"
admin-tls = true
secure-listen = "127.0.0.1:28444"
http-listen = "127.0.0.1:28080"
provisioning-path = "/prov/{mac}.cfg"
provisioning-base-url = "https://prov.example.com:28443"
digest-realm = "2024"
digest-algorithm = ["SHA-256", "MD5"]
secure-port-advertised = 30444
new-device-mode = "nopin"
pin-iterations = 200000
max-pin-retries = 5
max-tan-failures = 4
pin-lifetime-secs = 86400
bootstrap-reuse-secs = 7200
bootstrap-reissue-secs = 60
bootstrap-concurrency = 2
bootstrap-queue = 8
device-certificate-days = 365
device-key-type = "rsa-2048"
ca-cert-file = "/etc/dls/ca.crt"
ca-key-file = "/etc/dls/ca.key"
server-name = ["dls.example.com", "192.0.2.10"]
idle-timeout-secs = 90
body-timeout-secs = 20
tls-handshake-timeout-secs = 5
max-body-bytes = 4194304
max-header-bytes = 32768
max-connections = 1000
max-connections-per-source = 10
session-timeout-secs = 120
max-sessions = 5000
inventory-max-age-secs = 3600
unknown-devices = "reject"
shutdown-grace-secs = 10
files-base-url = "https://files.example.com:28443"
files-dir = "/srv/shared/dls-files"
max-file-bytes = 1073741824
upload-timeout-secs = 600
contact-me-dls-address = "192.0.2.10"
contact-me-dls-port = 28443
contact-me-concurrency = 8
contact-me-timeout-secs = 3
contact-me-any-host = true
dcmp-polls-per-second = 2
audit-retention-days = 730
job-retention-days = 30
node-name = "dls-node-2"
store = "postgres://dls@db.example.com:5432/dls"
shared-sessions = true
console-idle-timeout-secs = 900
console-session-max-secs = 28800
mobility-logoff-grace-secs = 600
mobility-max-item-bytes = 2097152
mobility-max-user-bytes = 10485760
"#;

/// Runs `dls args…` with exactly the `DLS_…` variables given (the test's own are removed).
fn dls_env(args: &[&str], env: &[(String, String)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dls"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DLS_") {
            command.env_remove(name);
        }
    }
    let out = command.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).output().expect("dls runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// `dls serve --print-config args…` with `env`, read back as a table.
fn printed(args: &[&str], env: &[(String, String)]) -> toml::Table {
    let run = dls_env(&[&["serve", "--print-config"][..], args].concat(), env);
    assert_eq!(run.code, 0, "{args:?} {env:?}: {}", run.stderr);
    toml::from_str(&run.stdout).unwrap_or_else(|e| panic!("--print-config prints TOML: {e}\n{}", run.stdout))
}

/// The names of `Config`'s settings: the keys of its serde form (`None` ones serialize as
/// null, so none is missed).
fn setting_names() -> BTreeSet<String> {
    let config = serde_json::to_value(dls_server::Config::default()).expect("serializes");
    config.as_object().expect("a table").keys().cloned().collect()
}

fn variable(name: &str) -> String {
    format!("DLS_{}", name.to_uppercase().replace('-', "_"))
}

/// A value as an environment variable or a flag's argument takes it (lists apart).
fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn every_setting_is_a_file_key_a_variable_and_a_flag() {
    let every: toml::Table = toml::from_str(EVERY_SETTING).expect("the sample parses");
    let sampled: BTreeSet<String> = every.keys().cloned().collect();
    assert_eq!(sampled, setting_names(), "EVERY_SETTING must hold every setting of Config");
    let defaults = printed(&[], &[]);
    for (name, value) in &every {
        assert_ne!(defaults.get(name), Some(value), "{name}: the sample must differ from the default");
    }

    // (a) the --config file
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dls.toml");
    std::fs::write(&file, EVERY_SETTING).expect("writes");
    assert_eq!(printed(&["--config", &file.to_string_lossy()], &[]), every, "from the file");

    // (b) the environment: DLS_NAME, lists comma-separated
    let env: Vec<(String, String)> = every
        .iter()
        .map(|(name, value)| {
            let text = match value {
                toml::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
                other => plain(other),
            };
            (variable(name), text)
        })
        .collect();
    assert_eq!(printed(&[], &env), every, "from the environment");

    // (c) the flags: --name value, lists repeated, a boolean true as the bare flag
    let mut flags = Vec::new();
    for (name, value) in &every {
        match value {
            toml::Value::Array(items) => {
                for item in items {
                    flags.extend([format!("--{name}"), plain(item)]);
                }
            }
            toml::Value::Boolean(true) => flags.push(format!("--{name}")),
            other => flags.extend([format!("--{name}"), plain(other)]),
        }
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    assert_eq!(printed(&flags, &[]), every, "from the flags");

    // (d) `dls serve --help` lists each, with its variable (the README's promise)
    let help = dls_env(&["serve", "--help"], &[]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    for name in &sampled {
        let flag = format!("--{name}");
        let listed = help
            .stdout
            .match_indices(&flag)
            .any(|(at, _)| help.stdout[at + flag.len()..].starts_with([' ', '[', '\n']));
        assert!(listed, "{flag} in dls serve --help");
        assert!(help.stdout.contains(&format!("[env: {}=]", variable(name))), "{name}'s variable in --help");
    }
}

#[test]
fn no_configuration_gives_the_defaults_of_config() {
    let expected = toml::Table::try_from(dls_server::Config::default()).expect("serializes");
    assert_eq!(printed(&[], &[]), expected);
}

#[test]
fn a_flag_overrides_the_environment_which_overrides_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dls.toml");
    std::fs::write(
        &file,
        "max-connections = 100\nmax-sessions = 100\nadmin-tls = true\ncontact-me-any-host = true\n\
         server-name = [\"file.example\"]\ndigest-algorithm = [\"SHA-256\"]\n",
    )
    .expect("writes");
    let file = file.to_string_lossy().into_owned();
    let get = |t: &toml::Table, k: &str| t.get(k).cloned().unwrap_or_else(|| panic!("{k} printed"));
    let int = |n: i64| toml::Value::Integer(n);
    let list = |l: &[&str]| toml::Value::Array(l.iter().map(|s| toml::Value::String((*s).to_owned())).collect());

    let t = printed(&["--config", &file], &[]);
    assert_eq!(get(&t, "max-connections"), int(100));
    assert_eq!(get(&t, "admin-tls"), toml::Value::Boolean(true));
    assert_eq!(get(&t, "server-name"), list(&["file.example"]));
    assert_eq!(get(&t, "max-connections-per-source"), int(64), "not in the file: the default");

    // The file given by DLS_CONFIG, overridden by the environment.
    let env = vars(&[
        ("DLS_CONFIG", &file),
        ("DLS_MAX_CONNECTIONS", "200"),
        ("DLS_ADMIN_TLS", "false"),
        ("DLS_CONTACT_ME_ANY_HOST", "0"),
        ("DLS_SERVER_NAME", "env.example,192.0.2.1"),
    ]);
    let t = printed(&[], &env);
    assert_eq!(get(&t, "max-connections"), int(200));
    assert_eq!(get(&t, "max-sessions"), int(100), "the file's, where the environment says nothing");
    assert_eq!(get(&t, "admin-tls"), toml::Value::Boolean(false), "a boolean set off from a lower layer's true");
    assert_eq!(get(&t, "contact-me-any-host"), toml::Value::Boolean(false));
    assert_eq!(get(&t, "server-name"), list(&["env.example", "192.0.2.1"]), "the list replaced");
    assert_eq!(get(&t, "digest-algorithm"), list(&["SHA-256"]));

    // Flags over both.
    let t = printed(
        &["--max-connections", "300", "--admin-tls", "--server-name", "flag.example", "--server-name", "flag2.example"],
        &env,
    );
    assert_eq!(get(&t, "max-connections"), int(300));
    assert_eq!(get(&t, "admin-tls"), toml::Value::Boolean(true), "the bare flag: true over the environment's false");
    assert_eq!(get(&t, "server-name"), list(&["flag.example", "flag2.example"]));
    assert_eq!(get(&t, "max-sessions"), int(100));
    let t = printed(&["--config", &file, "--admin-tls=false", "--digest-algorithm", "MD5"], &[]);
    assert_eq!(get(&t, "admin-tls"), toml::Value::Boolean(false), "--name=false over the file's true");
    assert_eq!(get(&t, "digest-algorithm"), list(&["MD5"]));
}

#[test]
fn bad_configuration_is_a_usage_error_on_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dls.toml");
    let path = file.to_string_lossy().into_owned();
    for (text, want) in [
        ("max-connections = 10\nmax-conections = 5\n", "line 2: unknown setting `max-conections`"),
        ("max-connections = \"many\"\n", "line 1: max-connections: invalid type: string \"many\""),
        ("admin-tls = \"yes\"\n", "line 1: admin-tls: invalid type"),
        ("[listeners]\nwpi-listen = \"0.0.0.0:1\"\n", "line 1: unknown setting `listeners`"),
    ] {
        std::fs::write(&file, text).expect("writes");
        let run = dls_env(&["serve", "--config", &path], &[]);
        assert_eq!(run.code, 2, "{text:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(run.stderr.contains(&format!("{path}: {want}")), "{text:?}: {}", run.stderr);
    }

    // Validation runs on the merged result: each layer alone is fine.
    std::fs::write(&file, "device-certificate-days = 1\n").expect("writes");
    let run = dls_env(&["serve", "--config", &path], &vars(&[("DLS_BOOTSTRAP_REUSE_SECS", "86400")]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.trim_end(), "dls: bootstrap-reuse-secs must be shorter than device-certificate-days");

    // A bad value in the environment: clap's usage error, naming the variable.
    let run = dls_env(&["serve", "--print-config"], &vars(&[("DLS_MAX_SESSIONS", "lots")]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--max-sessions") && run.stderr.contains("environment variable DLS_MAX_SESSIONS"),
        "{}",
        run.stderr
    );
    let run = dls_env(&["serve", "--print-config", "--max-sessions", "lots"], &[]);
    assert!(run.code == 2 && !run.stderr.contains("environment"), "{}", run.stderr);
}

/// `--store`: anything but sqlite and a postgres:// URL is a usage error (2); a database
/// that cannot be reached stops the start with one line (1); the password is never shown.
#[test]
fn a_store_that_cannot_be_used_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let listen = ["--wpi-listen", "127.0.0.1:0", "--secure-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"];
    let serve = |store: &str| {
        let mut args = vec!["serve", "--data-dir", data, "--admin-listen", "127.0.0.1:0", "--store", store];
        args.extend(listen);
        dls_env(&args, &[])
    };
    let run = serve("mysql://dls:hunter2@db.example.com/dls");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("mysql") && !run.stderr.contains("hunter2"), "{}", run.stderr);
    // Nothing listens on port 1.
    let run = serve("postgres://dls:hunter2@127.0.0.1:1/dls");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().filter(|l| l.starts_with("dls:")).count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("unavailable") && !run.stderr.contains("hunter2"), "{}", run.stderr);
}
