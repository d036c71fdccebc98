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
