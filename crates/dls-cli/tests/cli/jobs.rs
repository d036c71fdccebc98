//! `dls job` and `dls file` against the real `dls serve` and a `dls phone run --stay`.

use crate::common::{dls, serve};
use crate::phone::{lines_until, spawn_phone};

/// `dls ARGS… --data-dir DATA`.
fn admin(data: &std::path::Path, args: &[&str]) -> crate::common::Run {
    let mut all: Vec<&str> = args.to_vec();
    let d = data.to_string_lossy().into_owned();
    all.extend(["--data-dir", &d]);
    dls(&all, b"")
}

#[test]
fn a_write_job_changes_a_running_phone_within_seconds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let s = serve(&data);
    let mac = "00:1A:E8:00:00:41";
    let (mut child, rx) = spawn_phone(&["--server", &s.wpi, "--mac", mac, "--stay", "-v"]);
    let lines = lines_until(&rx, |l| l.starts_with("ended with CleanUp"));
    assert!(lines.iter().any(|l| l.starts_with("contact-me listening on")), "{lines:?}");

    let started = std::time::Instant::now();
    let run = admin(&data, &["job", "add", "--mac", mac, "write", "sntp-addr=ntp.example.net"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("job 1 queued for 00:1A:E8:00:00:41: write"), "{}", run.stdout);
    // The service sends a contact-me; the phone calls in and takes the write.
    let lines = lines_until(&rx, |l| l.contains("<Item name=\"sntp-addr\">ntp.example.net</Item>"));
    assert!(lines.iter().any(|l| l == "contact-me"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("-> solicited")), "{lines:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "within seconds");
    let lines = lines_until(&rx, |l| l.starts_with("ended with CleanUp"));
    assert!(lines.last().is_some_and(|l| l.contains("1 items written")), "{lines:?}");

    let run = admin(&data, &["job", "list", "--mac", mac]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let row = run.stdout.lines().nth(1).unwrap_or_default().to_owned();
    assert!(row.contains("write") && row.contains("done") && row.contains("contact-me answered 204"), "{}", run.stdout);
    let run = admin(&data, &["job", "show", "1"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["answer"], "1 items written, 0 refused", "{v}");
    assert_eq!(v["job"]["items"][0]["value"], "ntp.example.net", "{v}");

    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert_eq!(child.wait().expect("exit").code(), Some(0));
}

#[test]
fn job_and_file_commands_give_clear_errors() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let _s = serve(&data);
    let cases: [(&[&str], i32, &str); 7] = [
        (&["job", "add", "--mac", "00:1A:E8:00:00:99", "restart"], 1, "not found (404)"),
        (&["job", "add", "restart"], 2, "choose the devices"),
        (&["job", "add", "--mac", "nonsense", "restart"], 3, "nonsense"),
        (&["job", "add", "--all", "write", "no-equals-sign"], 3, "expected name=value"),
        (&["job", "list", "--state", "sideways"], 3, "state \"sideways\""),
        (&["job", "cancel", "42"], 1, "not found (404)"),
        (&["file", "add", "/no/such/file", "--type", "LOGO"], 3, "/no/such/file"),
    ];
    for (args, code, text) in cases {
        let run = admin(&data, args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(text), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "one line: {}", run.stderr);
    }
}

#[test]
fn files_are_added_listed_and_deleted() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let _s = serve(&data);
    let image = tmp.path().join("os60-V3R5.13.0.img");
    std::fs::write(&image, dls_engine::firmware::fake_image(&["OpenStage 60"], "Siemens SIP", "V3 R5.13.0", 200_000))
        .expect("image");
    let run = admin(&data, &["file", "add", &image.to_string_lossy(), "--type", "APP"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "", "no progress bar when stderr is not a terminal");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["software_version"], "V3 R5.13.0");
    assert_eq!(v["name"], "os60-V3R5.13.0.img");
    let run = admin(&data, &["file", "list"]);
    assert!(run.stdout.contains("os60-V3R5.13.0.img") && run.stdout.contains("200"), "{}", run.stdout);
    let run = admin(&data, &["file", "add", &image.to_string_lossy(), "--type", "APP"]);
    assert_eq!(run.code, 1, "a second file of that name and type: {}", run.stderr);
    assert!(run.stderr.contains("409"), "{}", run.stderr);
    let run = admin(&data, &["file", "delete", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(admin(&data, &["file", "list", "--json"]).stdout.trim(), "[]");
}
