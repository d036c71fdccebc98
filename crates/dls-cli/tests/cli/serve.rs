//! `dls serve`, the real binary: zero-configuration start, phones provisioned, the CLI as
//! admin client, SIGTERM, and SIGKILL at a random moment followed by a restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::{Phone, ServerTrust, WpiClient};

use crate::common::{Served, dls, serve};

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl must be installed for this test");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn client(s: &Served, data: &Path) -> WpiClient {
    let ca = std::fs::read_to_string(data.join("ca.crt")).expect("ca.crt");
    let mut c = WpiClient::new(&s.wpi, &ServerTrust::Verify(vec![ca])).expect("client");
    c.set_timeout(Duration::from_secs(10));
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn profile(dir: &Path, items: usize, tag: &str) -> String {
    let mut toml = String::new();
    for i in 0..items {
        toml.push_str(&format!("[[item]]\nname = \"key-label-unicode\"\nindex = {i}\nvalue = \"{tag} {i}\"\n"));
    }
    let p = dir.join(format!("{tag}.toml"));
    std::fs::write(&p, toml).expect("profile file");
    p.to_string_lossy().into_owned()
}

#[test]
fn zero_configuration_start_then_phone_cli_and_sigterm() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let s = serve(&data);
    let d = data.to_string_lossy().into_owned();

    let run = dls(&["profile", "set", "global", &profile(tmp.path(), 3, "v1"), "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A table for people, JSON with --json.
    let run = dls(&["profile", "list", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<Vec<&str>> = run.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "DEVICE", "TYPE", "ITEMS", "REASSERT", "TEMPLATE"], "{}", run.stdout);
    assert_eq!(lines[1], ["global", "(any)", "3", "no", "no"], "{}", run.stdout);
    let run = dls(&["profile", "list", "--json", "--data-dir", &d], b"");
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(listed[0]["name"], "global");
    assert_eq!(listed[0]["item"].as_array().map(Vec::len), Some(3));

    let mut phone = Phone::new(MacAddr::parse("00:1A:E8:00:00:01").expect("mac"));
    let mut c = client(&s, &data);
    let r = rt().block_on(phone.interact(&mut c, Reason::StartUp)).expect("start-up");
    assert_eq!(r.actions, vec![Action::ReadAllItems, Action::WriteItems, Action::CleanUp]);
    assert_eq!(phone.get("key-label-unicode", Some(2)), Some("v1 2"));

    let run = dls(&["device", "list", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("001AE8000001") && run.stdout.contains("OpenStage 60"), "{}", run.stdout);
    let run = dls(&["device", "show", "00-1a-e8-00-00-01", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(shown["mac"], "001AE8000001");
    let run = dls(&["device", "show", "001AE8000002", "--data-dir", &d], b"");
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);
    let run = dls(&["device", "show", "not-a-mac", "--data-dir", &d], b"");
    assert_eq!(run.code, 3, "{}", run.stderr);
    let run = dls(
        &[
            "device",
            "list",
            "--server",
            &std::fs::read_to_string(data.join("admin-url")).expect("url"),
            "--token",
            "wrong",
        ],
        b"",
    );
    assert_eq!(run.code, 4, "{}", run.stderr);

    // A profile change reaches the phone at its next start-up, as a minimal diff.
    std::fs::write(tmp.path().join("v2.toml"), "[[item]]\nname = \"key-label-unicode\"\nindex = 0\nvalue = \"v1 0\"\n[[item]]\nname = \"key-label-unicode\"\nindex = 1\nvalue = \"changed\"\n[[item]]\nname = \"key-label-unicode\"\nindex = 2\nvalue = \"v1 2\"\n").expect("write");
    let run = dls(&["profile", "set", "global", &tmp.path().join("v2.toml").to_string_lossy(), "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = rt().block_on(phone.interact(&mut c, Reason::StartUp)).expect("start-up");
    assert_eq!(r.actions, vec![Action::WriteItems, Action::CleanUp]);
    assert_eq!(r.written.len(), 1);
    assert_eq!(phone.get("key-label-unicode", Some(1)), Some("changed"));

    // SIGTERM: a clean exit.
    let mut s = s;
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = s.child.try_wait().expect("wait") {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "dls serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_at_any_moment_loses_no_committed_change_and_leaves_no_half_update() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let d = data.to_string_lossy().into_owned();
    let s = serve(&data);
    // 12 items written in messages of 4: a device holds 0, 4, 8 or 12 of them, never another
    // count, if every message's changes are committed whole.
    assert_eq!(dls(&["profile", "set", "global", &profile(tmp.path(), 12, "x"), "--data-dir", &d], b"").code, 0);

    let wpi = s.wpi.clone();
    let ca = std::fs::read_to_string(data.join("ca.crt")).expect("ca.crt");
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let done2 = done.clone();
    let worker = std::thread::spawn(move || {
        rt().block_on(async move {
            for n in 0..2000u32 {
                let mac = MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x10, (n >> 8) as u8, n as u8]);
                let mut phone = Phone::new(mac);
                phone.max_items = 4;
                let Ok(mut c) = WpiClient::new(&wpi, &ServerTrust::Verify(vec![ca.clone()])) else { return };
                c.set_timeout(Duration::from_secs(2));
                match phone.interact(&mut c, Reason::StartUp).await {
                    Ok(r) if r.actions.last() == Some(&Action::CleanUp) => {
                        done2.lock().expect("lock").push(mac.to_string());
                    }
                    _ => return,
                }
            }
        });
    });
    // Kill once 20 phones are through, with the worker's next phones in flight: the test
    // waits for that state, not for a time.
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.lock().expect("lock").len() < 20 {
        assert!(!worker.is_finished() && Instant::now() < deadline, "20 phones did not complete");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(s); // SIGKILL
    worker.join().expect("worker");
    let completed = done.lock().expect("lock").clone();
    assert!(!completed.is_empty(), "some phones completed before the kill");
    eprintln!("{} phones completed before SIGKILL", completed.len());

    let _s = serve(&data);
    let run = dls(&["device", "list", "--json", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).expect("JSON");
    let listed: Vec<String> = list.iter().filter_map(|v| v["mac"].as_str().map(str::to_owned)).collect();
    for mac in &completed {
        assert!(listed.contains(mac), "{mac} completed its interaction but is not stored");
    }
    for mac in &listed {
        let run = dls(&["device", "show", mac, "--data-dir", &d], b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        let written = v["written"].as_array().map_or(0, Vec::len);
        assert_eq!(written % 4, 0, "{mac}: {written} items recorded as written: a half-applied message");
        if completed.contains(mac) {
            assert_eq!(written, 12, "{mac} finished: everything written is recorded");
        }
    }
}

#[test]
fn secure_mode_commands_print_pins_alone_and_audit_lists_the_events() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let _s = serve(&data);
    let d = data.to_string_lossy().into_owned();
    let digits = |out: &str| {
        out.trim_end_matches('\n').len() == 15
            && out.trim_end().bytes().all(|b| b.is_ascii_digit())
            && out.lines().count() == 1
    };

    let run = dls(&["device", "add", "--mac", "00:1A:E8:00:00:10", "--mode", "pin", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(digits(&run.stdout), "the PIN alone on stdout: {:?}", run.stdout);
    let first = run.stdout;

    let run = dls(&["device", "pin", "001AE8000010", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(digits(&run.stdout) && run.stdout != first, "a fresh PIN: {:?}", run.stdout);

    let run = dls(&["device", "set-mode", "001AE8000010", "nopin", "--data-dir", &d], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let run = dls(&["device", "set-mode", "001AE8000010", "pin", "--data-dir", &d], b"");
    assert!(run.code == 0 && digits(&run.stdout), "{:?} {}", run.stdout, run.stderr);
    let run = dls(&["device", "reset", "001AE8000010", "--data-dir", &d], b"");
    assert!(
        run.code == 0 && digits(&run.stdout),
        "a pin device gets a new PIN on reset: {:?} {}",
        run.stdout,
        run.stderr
    );
    let run = dls(&["device", "set-mode", "001AE8000010", "teleport", "--data-dir", &d], b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = dls(&["device", "pin", "001AE8000099", "--data-dir", &d], b"");
    assert_eq!((run.code, run.stderr.lines().count()), (1, 1), "{}", run.stderr);

    let run = dls(&["device", "show", "001AE8000010", "--data-dir", &d], b"");
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(shown["security"]["mode"], "pin");
    assert_eq!(shown["security"]["pin_outstanding"], true);
    assert!(!run.stdout.contains(first.trim()), "no PIN in device show");

    let run = dls(&["audit", "--mac", "00-1a-e8-00-00-10", "--json", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let events: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).expect("JSON");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in ["pin-issued", "mode-changed", "device-reset"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let table = dls(&["audit", "--data-dir", &d], b"");
    assert!(table.stdout.lines().count() > kinds.len(), "a table with a header: {}", table.stdout);
}

#[test]
fn digest_protected_provisioning_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let s = serve(&data);
    let d = data.to_string_lossy().into_owned();
    let run = dls(&["device", "add", "--mac", "00:1A:2B:3C:4D:5E", "--secret", "MACID-1", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("MACID-1"));
    let run = dls(&["device", "add", "--mac", "00:1A:2B:3C:4D:5F", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "shared-secret\n").expect("pw");
    let run = dls(
        &[
            "credentials",
            "set-fallback",
            "--global",
            "--user",
            "site",
            "--password-file",
            &pw.to_string_lossy(),
            "--data-dir",
            &d,
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = dls(
        &[
            "credentials",
            "set-fallback",
            "--profile",
            "nope",
            "--user",
            "x",
            "--password-file",
            &pw.to_string_lossy(),
            "--data-dir",
            &d,
        ],
        b"",
    );
    assert_eq!(run.code, 3, "an unknown profile: {}", run.stderr);
    let run = dls(&["credentials", "list", "--data-dir", &d], b"");
    assert!(run.stdout.starts_with("SCOPE") && run.stdout.contains("global"), "{}", run.stdout);
    assert!(run.stdout.contains("site") && !run.stdout.contains("shared-secret"), "{}", run.stdout);
    let run = dls(&["credentials", "list", "--json", "--data-dir", &d], b"");
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|c| c["username"] == "site")), "{listed}");
    assert!(!run.stdout.contains("shared-secret"), "{}", run.stdout);

    let run = dls(&["device", "provisioning-url", "001a2b3c4d5e", "--embed-credentials", "--data-dir", &d], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let url = run.stdout.trim().to_owned();
    assert!(
        url.starts_with("https://001A2B3C4D5E:MACID-1@") && url.ends_with("/provisioning/001A2B3C4D5E.xml"),
        "{url}"
    );

    // curl --digest with the device's credentials, over HTTPS on the default-mode port.
    let ca = data.join("ca.crt").to_string_lossy().into_owned();
    let file = format!("https://{}/provisioning/001A2B3C4D5E.xml", s.wpi);
    let (code, body) = curl(&["--digest", "-u", "001A2B3C4D5E:MACID-1", "--cacert", &ca, &file]);
    assert_eq!(code, 0);
    assert!(body.contains("<MAC_ADDRESS value=\"001A2B3C4D5E\"/>"), "the built-in default file: {body}");
    // The global fallback works for the other device too; its own MAC without a secret does not.
    let other = format!("https://{}/provisioning/001A2B3C4D5F.xml", s.wpi);
    let (_, body) = curl(&["--digest", "-u", "site:shared-secret", "--cacert", &ca, &other]);
    assert!(body.contains("001A2B3C4D5F"), "{body}");
    // Another device's credentials never get this file.
    let (_, body) = curl(&["--digest", "-u", "001A2B3C4D5E:MACID-1", "--cacert", &ca, "-w", "%{http_code}", &other]);
    assert!(body.ends_with("401") && !body.contains("MAC_ADDRESS"), "{body}");
}

#[test]
fn phone_run_bootstraps_with_a_pin_and_then_uses_the_secure_port() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let s = serve(&data);
    let d = data.to_string_lossy().into_owned();
    let pin = dls(&["device", "add", "--mac", "00:1A:E8:00:00:20", "--mode", "pin", "--data-dir", &d], b"")
        .stdout
        .trim()
        .to_owned();
    assert_eq!(pin.len(), 15);
    let state = tmp.path().join("phone");
    let st = state.to_string_lossy().into_owned();

    let run = dls(
        &["phone", "run", "--server", &s.wpi, "--mac", "00:1A:E8:00:00:20", "--pin", &pin, "--state-dir", &st],
        b"",
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("PIN accepted") && run.stdout.contains("switching to"), "{}", run.stdout);
    assert!(run.stdout.contains("ReadItems"), "the TAN is asked on the secure port: {}", run.stdout);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(state.join("secure-mode.json")).expect("state saved").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Next time: straight to the secure port; the default port would refuse it.
    let run = dls(&["phone", "run", "--server", &s.wpi, "--mac", "00:1A:E8:00:00:20", "--state-dir", &st], b"");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("using the saved certificate"), "{}", run.stdout);
    let run = dls(&["phone", "run", "--server", &s.wpi, "--mac", "00:1A:E8:00:00:20"], b"");
    assert!(run.stdout.contains("device is in secure mode"), "refused on the default port: {}", run.stdout);

    // Wrong PINs until the phone's retries run out: exit 4, and the device shows failed.
    let other = dls(&["device", "add", "--mac", "00:1A:E8:00:00:21", "--mode", "pin", "--data-dir", &d], b"");
    assert_eq!(other.code, 0);
    let run = dls(
        &[
            "phone",
            "run",
            "--server",
            &s.wpi,
            "--mac",
            "00:1A:E8:00:00:21",
            "--pin",
            "111111111111111",
            "--pin",
            "222222222222222",
            "--pin",
            "333333333333333",
        ],
        b"",
    );
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let shown: serde_json::Value =
        serde_json::from_str(&dls(&["device", "show", "001AE8000021", "--data-dir", &d], b"").stdout).expect("JSON");
    assert_eq!(shown["security"]["state"], "failed");
}

/// Shell completions and the manual page come from clap's own definition of the command,
/// so they list every subcommand; bash checks the script's syntax.
#[test]
fn completions_and_the_manual_page_cover_every_subcommand() {
    let subcommands = ["serve", "device", "credentials", "job", "file", "audit", "profile", "phone", "message", "pin"];
    let bash = dls(&["completions", "bash"], b"");
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for s in subcommands {
        assert!(bash.stdout.contains(s), "{s} in the bash completions");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("dls.bash");
    std::fs::write(&script, &bash.stdout).expect("writes");
    let syntax = Command::new("bash").arg("-n").arg(&script).output().expect("bash runs");
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    for shell in ["zsh", "fish"] {
        let run = dls(&["completions", shell], b"");
        assert!(run.code == 0 && run.stdout.contains("serve"), "{shell}: {}", run.stderr);
    }
    assert_eq!(dls(&["completions", "tcsh"], b"").code, 2, "an unknown shell is a usage error");

    let man = dls(&["man"], b"");
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.contains(".TH dls 1"), "a roff manual page");
    for s in subcommands {
        assert!(man.stdout.contains(s), "{s} in the manual page");
    }
    // groff, an independent reader, takes it (UTF-8, as man reads it) without a warning,
    // all warnings enabled.
    let page = dir.path().join("dls.1");
    std::fs::write(&page, &man.stdout).expect("writes");
    let groff = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff is needed for this test (Debian: groff-base)");
    assert!(groff.status.success() && groff.stderr.is_empty(), "{}", String::from_utf8_lossy(&groff.stderr));
}
