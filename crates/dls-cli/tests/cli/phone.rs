//! `dls phone run|load` against the real `dls serve`, and against no server at all.

use std::path::Path;

use crate::common::{Served, dls};

/// Starts `dls serve` on ephemeral ports with a `global` profile of `items` key labels.
fn serve(tmp: &Path, items: usize) -> Served {
    let data = tmp.join("data");
    let served = crate::common::serve(&data);
    let mut toml = String::new();
    for i in 1..=items {
        toml.push_str(&format!("[[item]]\nname = \"key-label-unicode\"\nindex = {i}\nvalue = \"Desk {i}\"\n"));
    }
    let profile = tmp.join("global.toml");
    std::fs::write(&profile, toml).expect("profile file");
    let run =
        dls(&["profile", "set", "global", &profile.to_string_lossy(), "--data-dir", &data.to_string_lossy()], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    served
}

#[test]
fn one_phone_runs_a_start_up_and_prints_every_exchange() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 2);
    let ca = tmp.path().join("data/ca.crt").to_string_lossy().into_owned();
    let items = tmp.path().join("items.json");
    std::fs::write(
        &items,
        r#"[{"name":"e164","index":null,"value":"4989700712"},{"name":"function-key-def","index":1,"value":"30"}]"#,
    )
    .expect("items file");
    let items = items.to_string_lossy().into_owned();

    let run =
        dls(&["phone", "run", "--server", &s.wpi, "--mac", "00:1A:E8:00:00:01", "--ca", &ca, "--items", &items], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "-> start-up, 12 items",
            "<- ReadAllItems, 0 items",
            "-> reply-to ReadAllItems accepted, 13 items",
            "<- WriteItems, 2 items",
            "-> reply-to WriteItems accepted, 0 items",
            "<- CleanUp, 0 items",
            "ended with CleanUp after 3 exchanges: 2 items written, 0 refused",
        ],
        "{}",
        run.stdout
    );

    // The second start-up: the inventory is fresh and nothing differs. `-v` shows the XML
    // of both sides; the server's port is given explicitly, a bare host would mean 18443.
    let run = dls(&["phone", "run", "--server", &s.wpi, "--mac", "001AE8000001", "-v"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("-> start-up, 12 items\n<?xml"), "{}", run.stdout);
    assert!(run.stdout.contains("<Item name=\"mac-addr\">00:1A:E8:00:00:01</Item>"), "{}", run.stdout);
    assert!(run.stdout.contains("<- CleanUp, 0 items\n<?xml"), "{}", run.stdout);
    assert!(run.stdout.contains("<DLSMessage"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("ended with CleanUp after 1 exchange: 0 items written, 0 refused\n"),
        "{}",
        run.stdout
    );

    // Malformed items: exit 3, one line.
    std::fs::write(tmp.path().join("bad.json"), r#"[{"index":1}]"#).expect("write");
    let bad = tmp.path().join("bad.json").to_string_lossy().into_owned();
    let run = dls(&["phone", "run", "--server", &s.wpi, "--mac", "001AE8000002", "--items", &bad], b"");
    assert_eq!((run.code, run.stderr.lines().count()), (3, 1), "{}", run.stderr);
}

#[test]
fn a_fleet_of_fifty_phones_runs_without_failures() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 20);
    let run = dls(&["phone", "load", "--server", &s.wpi, "--phones", "50", "--concurrency", "4", "--json"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let last = run.stdout.lines().last().expect("a line");
    let v: serde_json::Value = serde_json::from_str(last).expect("JSON on the last line");
    for key in ["phones", "interactions", "failures", "failures_by_kind", "interactions_per_second", "latency_ms"] {
        assert!(v.get(key).is_some(), "{key} missing: {last}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(v["latency_ms"][key].as_f64().is_some_and(|ms| ms > 0.0), "latency_ms.{key}: {last}");
    }
    assert_eq!(
        (v["phones"].as_u64(), v["interactions"].as_u64(), v["failures"].as_u64()),
        (Some(50), Some(50), Some(0))
    );
    assert_eq!(v["failures_by_kind"], serde_json::json!({}));
    assert!(v["interactions_per_second"].as_f64().is_some_and(|r| r > 0.0), "{last}");
    // First start-ups: ReadAllItems, WriteItems, CleanUp.
    assert_eq!(v["exchanges"].as_u64(), Some(150), "{last}");
    assert_eq!(v["connections"].as_u64(), Some(4), "{last}");

    // The same phones on new connections: known now, so start-up and CleanUp only.
    let run = dls(
        &[
            "phone",
            "load",
            "--server",
            &s.wpi,
            "--phones",
            "8",
            "--concurrency",
            "2",
            "--new-connection-per-interaction",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("8 interactions, 0 failed"), "{}", run.stdout);
    assert!(run.stdout.contains("8 connections opened, 8 requests"), "{}", run.stdout);
}

#[test]
fn no_server_gives_one_line_and_a_non_zero_exit() {
    // Port 1 on the loopback: nothing listens there.
    let run = dls(&["phone", "run", "--server", "127.0.0.1:1", "--mac", "00:1A:E8:00:00:01"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("connection"), "{}", run.stderr);

    // A load run prints its summary, then fails.
    let run = dls(&["phone", "load", "--server", "127.0.0.1:1", "--phones", "3", "--concurrency", "2", "--json"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!((v["failures"].as_u64(), v["failures_by_kind"]["connect"].as_u64()), (Some(3), Some(3)));

    for args in [
        ["phone", "run", "--server", "127.0.0.1:99999", "--mac", "00:1A:E8:00:00:01"],
        ["phone", "run", "--server", "127.0.0.1:1", "--mac", "not-a-mac"],
    ] {
        let run = dls(&args, b"");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
}

/// Runs `dls phone run ARGS…` in the background; its stdout lines arrive on the channel.
pub(crate) fn spawn_phone(args: &[&str]) -> (crate::common::KillOnDrop, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dls"))
        .args(["phone", "run"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dls phone run starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (crate::common::KillOnDrop(child), rx)
}

/// Lines from `rx` until one satisfies `done` (within 30 s); all of them.
pub(crate) fn lines_until(rx: &std::sync::mpsc::Receiver<String>, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut lines = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let stop = done(&line);
                lines.push(line);
                if stop {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    lines
}

#[test]
fn a_phone_that_stays_answers_contact_me_until_sigterm() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 1);
    let (mut child, rx) = spawn_phone(&["--server", &s.wpi, "--mac", "00:1A:E8:00:00:31", "--stay"]);
    let lines = lines_until(&rx, |l| l.starts_with("ended with CleanUp"));
    assert_eq!(lines.first().map(|l| l.starts_with("contact-me listening on 127.0.0.1:")), Some(true), "{lines:?}");
    assert_eq!(lines.get(1).map(String::as_str), Some("-> start-up, 12 items"), "{lines:?}");
    let addr = lines[0].trim_start_matches("contact-me listening on ").to_owned();

    // A contact-me: answered 204, then the phone calls in as solicited.
    let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let body = "ContactMe=true";
    write!(
        tcp,
        "POST /contact_dls.html/ContactDLS HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut resp = String::new();
    let _ = tcp.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    let lines = lines_until(&rx, |l| l.starts_with("-> solicited"));
    assert!(lines.iter().any(|l| l == "contact-me"), "{lines:?}");
    assert!(lines.last().is_some_and(|l| l.starts_with("-> solicited, ")), "{lines:?}");

    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let lines = lines_until(&rx, |l| l == "stopped");
    assert_eq!(lines.last().map(String::as_str), Some("stopped"), "{lines:?}");
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}

#[test]
fn a_phone_behind_nat_stays_for_its_duration() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 1);
    let (mut child, rx) = spawn_phone(&[
        "--server",
        &s.wpi,
        "--mac",
        "00:1A:E8:00:00:32",
        "--stay",
        "--contact-listen",
        "none",
        "--duration",
        "1",
        "--busy",
    ]);
    let lines = lines_until(&rx, |l| l == "stopped");
    assert_eq!(lines.first().map(String::as_str), Some("no contact-me listener: the phone is behind NAT"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("ended with CleanUp")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("stopped"), "{lines:?}");
    assert_eq!(child.wait().expect("exit").code(), Some(0));

    // The agent's options need --stay; a bad address is a usage error.
    for args in [
        ["phone", "run", "--server", "127.0.0.1:1", "--mac", "00:1A:E8:00:00:01", "--contact-listen", "none"],
        ["phone", "run", "--server", "127.0.0.1:1", "--mac", "00:1A:E8:00:00:01", "--duration", "1"],
        ["phone", "run", "--server", "127.0.0.1:1", "--mac", "00:1A:E8:00:00:01", "--stay", "--contact-listen=x"],
    ] {
        let run = dls(&args, b"");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_fleet_of_pin_devices_bootstraps_secure_mode() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 3);
    let d = tmp.path().join("data").to_string_lossy().into_owned();
    // The fleet's first three MACs (`--first-mac` is 00:1A:E8:80:00:00 by default).
    let macs = ["00:1A:E8:80:00:00", "00:1A:E8:80:00:01", "00:1A:E8:80:00:02"];
    let mut pins = String::from("# MAC PIN\n");
    for mac in macs {
        let run = dls(&["device", "add", "--mac", mac, "--mode", "pin", "--data-dir", &d], b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
        pins.push_str(&format!("{mac} {}", run.stdout));
    }
    let file = tmp.path().join("pins.txt");
    std::fs::write(&file, pins).expect("PIN file");
    let file = file.to_string_lossy().into_owned();

    let run = dls(&["phone", "load", "--server", &s.wpi, "--pins", &file, "--phones", "3", "--json"], b"");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let last = run.stdout.lines().last().expect("a line");
    let v: serde_json::Value = serde_json::from_str(last).expect("JSON on the last line");
    assert_eq!(
        (v["phones"].as_u64(), v["interactions"].as_u64(), v["failures"].as_u64()),
        (Some(3), Some(3), Some(0)),
        "{last}"
    );
    assert_eq!(v["failures_by_kind"], serde_json::json!({}), "{last}");
    assert_eq!(v["mode"], "bootstrap", "{last}");
    // The iteration count the phones read in secure-mode-data (the test service's).
    assert_eq!(v["pbkdf2_iterations"].as_u64(), Some(100_000), "{last}");
    assert!(v["latency_ms"]["p50"].as_f64().is_some_and(|ms| ms > 0.0), "{last}");
    assert!(v["pin_entry_ms"]["max"].as_f64().is_some_and(|ms| ms > 0.0), "{last}");
    // Each: start-up → bootstrap WriteItems → CleanUp on the default port; start-up → TAN
    // (ReadItems) → ReadAllItems → WriteItems of the profile → CleanUp on the secure port.
    assert_eq!(v["exchanges"].as_u64(), Some(18), "{last}");
    for mac in macs {
        let run = dls(&["device", "show", mac, "--data-dir", &d], b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
        let shown: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        assert_eq!(shown["security"]["state"], "secured", "{mac}: {}", run.stdout);
    }

    // Again: secured devices are refused on the default port, with the reason as the kind.
    let run = dls(&["phone", "load", "--server", &s.wpi, "--pins", &file, "--json"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!((v["phones"].as_u64(), v["failures"].as_u64()), (Some(3), Some(3)), "as many phones as PINs");
    let kinds = v["failures_by_kind"].as_object().expect("kinds");
    assert!(kinds.keys().all(|k| k.starts_with("cleanup: ")), "{kinds:?}");
}

#[test]
fn a_phone_that_stays_bootstraps_secure_mode_and_moves_to_the_secure_port() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let s = serve(tmp.path(), 1);
    let d = tmp.path().join("data").to_string_lossy().into_owned();
    let pin = dls(&["device", "add", "--mac", "00:1A:E8:00:00:33", "--mode", "pin", "--data-dir", &d], b"");
    assert_eq!(pin.code, 0, "{}", pin.stderr);
    let pin = pin.stdout.trim().to_owned();
    let st = tmp.path().join("phone").to_string_lossy().into_owned();
    let (mut child, rx) =
        spawn_phone(&["--server", &s.wpi, "--mac", "00:1A:E8:00:00:33", "--pin", &pin, "--state-dir", &st, "--stay"]);
    // The bootstrap on the default port, then the start-up on the secure port (TAN asked).
    let mut lines = lines_until(&rx, |l| l.starts_with("ended with CleanUp"));
    lines.extend(lines_until(&rx, |l| l.starts_with("ended with CleanUp")));
    let at = |want: &str| lines.iter().position(|l| l.starts_with(want));
    let order = [
        at("-> start-up"),
        at("PIN accepted"),
        at("secure mode (pin): switching to 127.0.0.1:"),
        at("secure-mode state saved in"),
        at("<- ReadItems"),
    ];
    assert!(order.iter().all(Option::is_some) && order.is_sorted(), "{lines:?}");
    assert!(Path::new(&st).join("secure-mode.json").exists());

    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}
