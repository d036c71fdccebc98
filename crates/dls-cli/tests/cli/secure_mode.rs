//! `dls pin` and `dls secure-mode-data`: PINs on stdout, sealed text, items as JSON, and
//! exit codes 2 (usage), 3 (malformed), 4 (authentication failed) with one line on stderr.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::{Run, data_dir, dls};

fn vectors() -> Value {
    let path = data_dir().join("vectors/secure-mode-data.json");
    serde_json::from_slice(&std::fs::read(path).expect("vector file")).expect("JSON")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} is a string"))
}

/// The items of a vector in the CLI's JSON shape.
fn expected_items(v: &Value) -> Value {
    let items = v["items"].as_array().expect("items");
    Value::Array(
        items
            .iter()
            .map(|i| json!({"name": i["name"], "index": i["index"], "status": null, "value": i["value"]}))
            .collect(),
    )
}

fn assert_fails(run: &Run, code: i32, what: &str) {
    assert_eq!(run.code, code, "{what}: stderr {}", run.stderr);
    assert!(run.stdout.is_empty(), "{what}: stdout {:?}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{what}: one line: {:?}", run.stderr);
    assert!(run.stderr.starts_with("dls: ") || run.stderr.starts_with("error: "), "{what}: {}", run.stderr);
}

/// Runs `dls` with `DLS_PIN` set to `pin` (or removed), which `common::dls` cannot do.
fn dls_with_env_pin(args: &[&str], pin: Option<&str>, stdin: &[u8]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dls"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    match pin {
        Some(p) => cmd.env("DLS_PIN", p),
        None => cmd.env_remove("DLS_PIN"),
    };
    let mut child = cmd.spawn().expect("dls starts");
    {
        use std::io::Write;
        let mut sin = child.stdin.take().expect("stdin");
        let _ = sin.write_all(stdin);
    }
    let out = child.wait_with_output().expect("dls runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn pin_generate_prints_digits_only() {
    let a = dls(&["pin", "generate"], b"");
    let b = dls(&["pin", "generate"], b"");
    for run in [&a, &b] {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.is_empty(), "{}", run.stderr);
        let digits = run.stdout.strip_suffix('\n').expect("one line");
        assert_eq!(digits.len(), 15, "{digits}");
        assert!(digits.bytes().all(|c| c.is_ascii_digit()), "{digits}");
    }
    assert_ne!(a.stdout, b.stdout, "two fresh PINs are different");
}

#[test]
fn pin_generate_length_bounds() {
    for n in [9, 32] {
        let run = dls(&["pin", "generate", "--length", &n.to_string()], b"");
        assert_eq!(run.code, 0, "{n}: {}", run.stderr);
        let digits = run.stdout.trim_end();
        assert_eq!(digits.len(), n);
        assert!(digits.bytes().all(|c| c.is_ascii_digit()), "{digits}");
    }
    for n in ["8", "33", "0"] {
        let run = dls(&["pin", "generate", "--length", n], b"");
        assert_fails(&run, 2, n);
        assert!(run.stderr.contains("9 to 32"), "{}", run.stderr);
    }
}

#[test]
fn open_prints_every_vector_as_json() {
    let v = vectors();
    let positives = v["positive"].as_array().expect("positive");
    assert!(positives.len() >= 10);
    for case in positives {
        let name = s(case, "name");
        let run = dls(
            &["secure-mode-data", "open", "--pin", s(case, "pin"), "--mac", s(case, "mac")],
            s(case, "secure_mode_data").as_bytes(),
        );
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let got: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
        assert_eq!(got, expected_items(case), "{name}");
    }
}

#[test]
fn open_reads_a_file_and_the_pin_from_the_environment() {
    let v = vectors();
    let case = v["positive"]
        .as_array()
        .expect("positive")
        .iter()
        .find(|c| c["name"] == "wrapped-base64-opens")
        .expect("vector");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("smd.txt");
    std::fs::write(&file, s(case, "secure_mode_data_wrapped")).expect("write");
    let run = dls_with_env_pin(
        &["secure-mode-data", "open", "--mac", s(case, "mac"), file.to_str().expect("path")],
        Some(s(case, "pin")),
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).expect("JSON"), expected_items(case));
    // Neither --pin nor DLS_PIN: a usage error.
    let run = dls_with_env_pin(
        &["secure-mode-data", "open", "--mac", s(case, "mac"), file.to_str().expect("path")],
        None,
        b"",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--pin"), "{}", run.stderr);
}

#[test]
fn negative_vectors_exit_3_or_4_with_one_line() {
    let v = vectors();
    for case in v["negative"].as_array().expect("negative") {
        let name = s(case, "name");
        let code = match s(case, "error") {
            "malformed" => 3,
            "authentication" => 4,
            other => panic!("{name}: {other}"),
        };
        let run = dls(
            &["secure-mode-data", "open", "--pin", s(case, "pin"), "--mac", s(case, "mac")],
            s(case, "secure_mode_data").as_bytes(),
        );
        assert_fails(&run, code, name);
    }
}

#[test]
fn wrong_pin_exits_4_and_garbage_exits_3() {
    let v = vectors();
    let basic = &v["positive"][0];
    let text = s(basic, "secure_mode_data").as_bytes();
    let run = dls(&["secure-mode-data", "open", "--pin", "1111 2222 3333 321", "--mac", s(basic, "mac")], text);
    assert_fails(&run, 4, "wrong PIN");
    assert_eq!(run.stderr, "dls: authentication failed: wrong PIN, wrong MAC address, or altered data\n");
    let run = dls(&["secure-mode-data", "open", "--pin", s(basic, "pin"), "--mac", "00:01:E3:00:00:99"], text);
    assert_fails(&run, 4, "wrong MAC");
    for (garbage, what) in [
        (&b"hello, world"[..], "not Base64"),
        (b"", "empty"),
        (b"\xff\xfe\xfd\xfc", "not UTF-8"),
        (b"AAAA", "too short"),
    ] {
        let run = dls(&["secure-mode-data", "open", "--pin", s(basic, "pin"), "--mac", s(basic, "mac")], garbage);
        assert_fails(&run, 3, what);
    }
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let xml = b"<ItemList><Item name=\"dls-secure-port\">18444</Item></ItemList>";
    let pin = "123456789012345";
    let mac = "00:01:E3:25:EA:13";
    let cases: [(&[&str], &str); 6] = [
        (
            &["secure-mode-data", "seal", "--pin", pin, "--mac", mac, "--iterations", "99999"],
            "--iterations below the production floor",
        ),
        (
            &["secure-mode-data", "seal", "--pin", pin, "--mac", mac, "--iterations", "10000001"],
            "--iterations above the maximum",
        ),
        (&["secure-mode-data", "seal", "--pin", "12345678", "--mac", mac], "8-digit PIN"),
        (&["secure-mode-data", "seal", "--pin", "1234x5678901", "--mac", mac], "letter in PIN"),
        (&["secure-mode-data", "open", "--pin", pin, "--mac", "00:01:E3:25:EA"], "short MAC"),
        (&["secure-mode-data", "open", "--pin", pin, "--mac", "00.01.E3.25.EA.13"], "dotted MAC"),
    ];
    for (args, what) in cases {
        let run = dls(args, xml);
        assert_fails(&run, 2, what);
        assert!(!run.stderr.contains("12345678"), "{what}: the PIN is not echoed: {}", run.stderr);
    }
}

#[test]
fn seal_refuses_what_is_not_an_item_list() {
    for (input, what) in [
        (&b"<WorkpointMessage/>"[..], "another root"),
        (b"<ItemList><Item>x</Item></ItemList>", "item without a name"),
        (b"not xml", "text"),
    ] {
        let run = dls(
            &[
                "secure-mode-data",
                "seal",
                "--pin",
                "123456789012345",
                "--mac",
                "0001E325EA13",
                "--iterations",
                "100000",
            ],
            input,
        );
        assert_fails(&run, 3, what);
    }
}

/// The production floor (100,000 iterations) applies, so this is the slow test: two key
/// derivations at 100,000 iterations.
#[test]
fn seal_then_open_round_trip() {
    let v = vectors();
    let case = v["positive"]
        .as_array()
        .expect("positive")
        .iter()
        .find(|c| c["name"] == "declaration-and-whitespace")
        .expect("vector");
    let pin = "9876-5432-1098-765";
    let sealed = dls_with_env_pin(
        &["secure-mode-data", "seal", "--mac", "00-01-e3-25-ea-13", "--iterations", "100000", "-"],
        Some(pin),
        s(case, "plaintext").as_bytes(),
    );
    assert_eq!(sealed.code, 0, "{}", sealed.stderr);
    let text = sealed.stdout.trim_end();
    assert_eq!(sealed.stdout.lines().count(), 1);
    // 01 000186A0 (version 1, 100,000 iterations) is "AQABhq" and a seventh character whose
    // first four bits are 0000 (the last two are the salt's).
    assert!(text.starts_with("AQABhq") && matches!(text.as_bytes()[6], b'A'..=b'D'), "{text}");
    let opened = dls(
        &["secure-mode-data", "open", "--pin", "987654321098765", "--mac", "0001E325EA13"],
        sealed.stdout.as_bytes(),
    );
    assert_eq!(opened.code, 0, "{}", opened.stderr);
    assert_eq!(serde_json::from_str::<Value>(&opened.stdout).expect("JSON"), expected_items(case));
}

#[test]
fn help_names_the_environment_variable_and_never_shows_its_value() {
    for sub in ["seal", "open"] {
        let run = dls_with_env_pin(&["secure-mode-data", sub, "--help"], Some("555566667777888"), b"");
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("DLS_PIN"), "{}", run.stdout);
        assert!(!run.stdout.contains("555566667777888"), "{}", run.stdout);
    }
}
