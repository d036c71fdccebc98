//! `dls serve` and what is around it: a data directory with loose permissions, one of
//! another user, and the admin API over TLS reached by the CLI.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{dls, serve, serve_with};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("exists").permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
}

#[test]
fn a_loose_data_directory_is_tightened_with_one_line_each() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    serve(&data).stop();
    // What the attack found: a 0777 directory, a 0644 admin token and CA key.
    set_mode(&data, 0o777);
    for f in ["admin-token", "ca.key"] {
        set_mode(&data.join(f), 0o644);
    }
    let served = serve(&data);
    let d = data.to_string_lossy().into_owned();
    let run = dls(&["device", "list", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "the service runs: {}", run.stderr);
    let stderr = served.stop();
    assert_eq!(mode(&data), 0o700);
    for f in ["admin-token", "ca.key", "server.key", "secrets.key", "fingerprint.key", "dls.sqlite"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let warnings: Vec<&String> = stderr.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 3, "one line each: {stderr:#?}");
    for (what, old) in [("the data directory", "0777"), ("admin-token", "0644"), ("ca.key", "0644")] {
        assert!(
            warnings.iter().any(|l| l.contains(what) && l.contains(&format!("(mode {old}); tightened to"))),
            "{what}: {warnings:#?}"
        );
    }
    // Tight now: no warning at the next start.
    let stderr = serve(&data).stop();
    assert!(!stderr.iter().any(|l| l.contains("WARN")), "{stderr:#?}");
}

#[test]
fn every_log_line_names_the_node_in_text_and_json() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    serve(&data).stop();
    for json in [false, true] {
        // Three WARN lines at start (a loose directory, token and key), and the node's name
        // on each.
        set_mode(&data, 0o777);
        for f in ["admin-token", "ca.key"] {
            set_mode(&data.join(f), 0o644);
        }
        let mut flags = vec!["--node-name", "dls-node-7"];
        if json {
            flags.push("--log-json");
        }
        let stderr = serve_with(&data, &flags).stop();
        let lines: Vec<&String> = stderr.iter().filter(|l| l.contains("WARN") || l.contains("\"level\"")).collect();
        assert_eq!(lines.len(), 3, "{stderr:#?}");
        for line in lines {
            if json {
                let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                assert_eq!(v["spans"][0]["node"], "dls-node-7", "{line}");
            } else {
                assert!(line.contains("node{node=dls-node-7}"), "{line}");
            }
        }
    }
}

#[test]
fn a_data_directory_of_another_user_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    serve(&data).stop();
    // Only root can give a directory away; as another user the unit test of the check
    // (another uid for the service) stands in for this one.
    if std::os::unix::fs::chown(&data, Some(65_534), None).is_err() {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_dls"))
        .args(["serve", "--wpi-listen", "127.0.0.1:0", "--secure-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dls serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dls serve did not refuse the data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("belongs to the user with uid 65534"), "{stderr}");
}

#[test]
fn the_cli_reaches_an_admin_api_over_tls() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let served = serve_with(&data, &["--admin-tls"]);
    let d = data.to_string_lossy().into_owned();
    assert!(served.admin.starts_with("https://127.0.0.1:"), "{}", served.admin);
    let port = served.admin.rsplit(':').next().expect("port").to_owned();
    // The data directory: the https:// URL and the CA it trusts.
    let run = dls(&["device", "list", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("MAC"), "{}", run.stdout);
    // --server and --cacert, from elsewhere.
    let token = std::fs::read_to_string(data.join("admin-token")).expect("token");
    let ca = data.join("ca.crt").to_string_lossy().into_owned();
    let url = format!("https://localhost:{port}");
    let elsewhere = tmp.path().join("nowhere").to_string_lossy().into_owned();
    let args = ["profile", "list", "--server", &url, "--token", token.trim(), "--data-dir", &elsewhere];
    let run = dls(&[&args[..], &["--cacert", &ca]].concat(), b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Without a CA to trust: a clear error.
    let run = dls(&args, b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("reading the CA certificate") && run.stderr.contains("--cacert"), "{}", run.stderr);
    // Another CA: the server is not trusted.
    let other = tmp.path().join("other.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=other CA", "-keyout"])
        .arg(tmp.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl must be installed for this test");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let run = dls(&[&args[..], &["--cacert", &other.to_string_lossy()]].concat(), b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("TLS") && run.stderr.to_lowercase().contains("certificate"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    // Plain HTTP to the TLS port: told to use https://.
    let plain = format!("http://127.0.0.1:{port}");
    let run = dls(&["profile", "list", "--server", &plain, "--token", token.trim()], b"");
    assert_eq!(run.code, 3, "a 400, as the CLI reports them");
    assert!(run.stderr.contains("this port speaks HTTPS (TLS): use an https:// URL (400)"), "{}", run.stderr);
    let stderr = served.stop();
    assert!(!stderr.iter().any(|l| l.contains("WARN")), "loopback: no warning: {stderr:#?}");
}
