//! `dls message decode|encode`: JSON out, canonical XML back, exit 3 on malformed input.

use crate::common::{data_dir, dls};

#[test]
fn decode_prints_the_expected_json_for_every_sample() {
    let dir = data_dir().join("samples/wpi");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json")).expect("JSON");
    for (name, want) in expected.as_object().expect("object") {
        let path = dir.join(name);
        let run = dls(&["message", "decode", path.to_str().expect("utf-8 path")], b"");
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let got: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
        assert_eq!(&got, want, "{name}");
    }
}

#[test]
fn encode_turns_the_json_back_into_canonical_xml() {
    let sample = std::fs::read(data_dir().join("samples/wpi/reply-readallitems.xml")).expect("sample");
    let json = dls(&["message", "decode", "-"], &sample);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let xml = dls(&["message", "encode"], json.stdout.as_bytes());
    assert_eq!(xml.code, 0, "{}", xml.stderr);
    assert!(xml.stdout.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WorkpointMessage xmlns=\"http://www.siemens.com/DLS\">"
    ));
    let again = dls(&["message", "decode"], xml.stdout.as_bytes());
    assert_eq!(again.stdout, json.stdout);
}

fn assert_malformed(args: &[&str], input: &[u8], what: &str) {
    let run = dls(args, input);
    assert_eq!(run.code, 3, "{what}: exit {} stderr {}", run.code, run.stderr);
    assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
    assert_eq!(run.stderr.lines().count(), 1, "{what}: one line: {:?}", run.stderr);
    assert!(run.stderr.starts_with("dls: "), "{what}: {}", run.stderr);
}

#[test]
fn hostile_documents_exit_3_with_one_line() {
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">&c;</Item></ItemList></Message></WorkpointMessage>";
    let xxe = "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">&x;</Item></ItemList></Message></WorkpointMessage>";
    let deep = format!(
        "<WorkpointMessage><Message nonce=\"n\">{}{}</Message></WorkpointMessage>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    let mut big = b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"x\">".to_vec();
    big.resize(8 << 20, b'x');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("billion laughs", laughs.into()),
        ("external entity", xxe.into()),
        ("100,000 nested elements", deep.into_bytes()),
        ("8 MiB body", big),
        ("invalid UTF-8", b"<WorkpointMessage><Message nonce=\"\xFF\xFE\"/></WorkpointMessage>".to_vec()),
        ("missing nonce", b"<WorkpointMessage><Message><ReasonForContact>start-up</ReasonForContact></Message></WorkpointMessage>".to_vec()),
        ("item without a name", b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item>v</Item></ItemList></Message></WorkpointMessage>".to_vec()),
        ("non-numeric index", b"<WorkpointMessage><Message nonce=\"n\"><ReasonForContact>start-up</ReasonForContact><ItemList><Item name=\"a\" index=\"x1\">v</Item></ItemList></Message></WorkpointMessage>".to_vec()),
    ];
    for (what, input) in cases {
        assert_malformed(&["message", "decode"], &input, what);
    }
    let larger_than_the_cli_reads = vec![b' '; (16 << 20) + 1];
    assert_malformed(&["message", "decode"], &larger_than_the_cli_reads, "17 MiB on stdin");
}

#[test]
fn bad_json_exits_3_and_bad_usage_exits_2() {
    assert_malformed(&["message", "encode"], b"{not json", "broken JSON");
    assert_malformed(&["message", "encode"], br#"{"kind":"Envelope","nonce":"n"}"#, "unknown kind");
    assert_malformed(
        &["message", "encode"],
        br#"{"kind":"DLSMessage","nonce":"n","action":null,"items":null}"#,
        "missing action",
    );
    assert_malformed(
        &["message", "encode"],
        br#"{"kind":"DLSMessage","nonce":"n","action":"CleanUp","items":[{"name":"x","value":"\u0000"}]}"#,
        "NUL in value",
    );
    let run = dls(&["message", "frobnicate"], b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = dls(&["message", "decode", "/nonexistent/file.xml"], b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}
