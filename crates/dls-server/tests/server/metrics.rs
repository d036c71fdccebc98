//! Operating a node: `GET /metrics` scraped by `curl` and read by a strict parser of the
//! Prometheus text format, `GET /readyz` before and while the store fails, and the node's
//! name on every log line.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dls_message::{Action, MacAddr, Message, Reason};
use dls_workpoint::Phone;
use dls_workpoint::contact::ContactListener;
use tokio::process::Command;

use crate::common::{Logs, TestServer, run, sql};

const MAC: &str = "00:1A:E8:3C:4D:5E";
const NODE: &str = "node-7.metrics";

/// `curl -i`: the status, the headers (lower-case names) and the body.
async fn curl(args: &[&str], url: &str) -> (u16, BTreeMap<String, String>, String) {
    let (code, out, err) =
        run(Command::new("curl").args(["-sS", "-i", "--max-time", "10"]).args(args).arg(url), 30).await;
    assert_eq!(code, 0, "curl failed: {err}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The scrape, without a token.
pub(crate) async fn scrape(srv: &TestServer) -> (String, Samples) {
    let (status, headers, body) = curl(&[], &format!("http://{}/metrics", srv.admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{headers:?}"
    );
    let samples = parse(&body).unwrap_or_else(|e| panic!("not the Prometheus text format: {e}\n{body}"));
    (body, samples)
}

/// Samples by series, as printed: `name{label="value",…}` (labels in their printed order).
pub(crate) type Samples = BTreeMap<String, f64>;

pub(crate) fn value(samples: &Samples, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

fn valid_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// A histogram's series (labels but `le`): its buckets `(le, count)` in order, its `_count`.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>);

/// A strict reader of the Prometheus text format (version 0.0.4) as this service writes
/// it: only `# HELP` and `# TYPE` comments, each once per family and before its samples;
/// every sample of the family just typed (`_bucket`, `_sum`, `_count` for a histogram);
/// names and label names of the allowed characters; label values quoted, with only `\\`,
/// `\"` and `\n` escaped; a number (or `+Inf`, `-Inf`, `NaN`) and no timestamp; no series
/// twice; a histogram's buckets cumulative, ending in `+Inf` equal to its `_count`.
fn parse(text: &str) -> Result<Samples, String> {
    if !text.ends_with('\n') {
        return Err("the text does not end with a line feed".into());
    }
    let mut samples = Samples::new();
    let (mut helped, mut typed) = (BTreeSet::new(), BTreeSet::new());
    let mut family: Option<(String, String)> = None;
    let mut histograms: BTreeMap<String, HistogramSeries> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| at("a bare comment"))?;
            let (name, rest) = rest.split_once(' ').ok_or_else(|| at("a comment without text"))?;
            if !valid_name(name, true) {
                return Err(at("a bad metric name"));
            }
            match keyword {
                "HELP" => {
                    if !helped.insert(name.to_owned()) || typed.contains(name) {
                        return Err(at("HELP twice, or after TYPE"));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                        return Err(at("an unknown type"));
                    }
                    if !typed.insert(name.to_owned()) {
                        return Err(at("TYPE twice"));
                    }
                    family = Some((name.to_owned(), rest.to_owned()));
                }
                _ => return Err(at("a comment other than HELP or TYPE")),
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value"))?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(at("a bad metric name"));
        }
        let (family_name, kind) = family.as_ref().ok_or_else(|| at("a sample before any TYPE"))?;
        let suffix = name.strip_prefix(family_name.as_str()).ok_or_else(|| at("a sample of another family"))?;
        let allowed: &[&str] = if kind == "histogram" { &["_bucket", "_sum", "_count"] } else { &[""] };
        if !allowed.contains(&suffix) {
            return Err(at("a sample name its family's type does not allow"));
        }
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                if !labels.is_empty() {
                    rest = rest.strip_prefix(',').ok_or_else(|| at("labels not separated by a comma"))?;
                }
                let (key, after) = rest.split_once("=\"").ok_or_else(|| at("a label without =\""))?;
                if !valid_name(key, false) || key.starts_with("__") || labels.iter().any(|(k, _)| k == key) {
                    return Err(at("a bad or repeated label name"));
                }
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("a bad escape in a label value")),
                        },
                        Some((_, c)) => value.push(c),
                        None => return Err(at("an unterminated label value")),
                    }
                };
                labels.push((key.to_owned(), value));
                rest = &after[end + 1..];
            }
        }
        let number = rest.strip_prefix(' ').ok_or_else(|| at("no space before the value"))?;
        if number.contains(' ') {
            return Err(at("more than a value (a timestamp?)"));
        }
        let v: f64 = match number {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            n => n.parse().map_err(|_| at("a value that is not a number"))?,
        };
        if kind == "histogram" {
            let mut other: Vec<String> =
                labels.iter().filter(|(k, _)| k != "le").map(|(k, v)| format!("{k}={v:?}")).collect();
            other.sort();
            let entry = histograms.entry(format!("{family_name}{{{}}}", other.join(","))).or_default();
            match suffix {
                "_bucket" => {
                    let le = labels.iter().find(|(k, _)| k == "le").ok_or_else(|| at("a bucket without le"))?;
                    let bound =
                        if le.1 == "+Inf" { f64::INFINITY } else { le.1.parse().map_err(|_| at("a bad le"))? };
                    entry.0.push((bound, v));
                }
                "_count" => entry.1 = Some(v),
                _ => {}
            }
        }
        let series = line[..line.len() - number.len() - 1].to_owned();
        if samples.insert(series, v).is_some() {
            return Err(at("a series twice"));
        }
    }
    for (series, (buckets, count)) in histograms {
        let ordered = buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let last = buckets.last().copied();
        if !ordered || last.map(|b| b.0) != Some(f64::INFINITY) || last.map(|b| b.1) != count {
            return Err(format!(
                "{series}: buckets not cumulative, or not ending in +Inf = _count: {buckets:?} {count:?}"
            ));
        }
    }
    Ok(samples)
}

#[test]
fn the_parser_refuses_what_is_not_the_text_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"a\\\"b\"} 2\n";
    assert_eq!(parse(good).expect("parses").get("a_total{x=\"1\",y=\"a\\\"b\"}"), Some(&2.0));
    for bad in [
        "# TYPE a counter\na 1",
        "a 1\n",
        "# TYPE a counter\nb 1\n",
        "# TYPE a counter\na{x=1} 1\n",
        "# TYPE a counter\na{x=\"1\"} one\n",
        "# TYPE a counter\na 1 1700000000\n",
        "# TYPE a counter\na 1\na 2\n",
        "# TYPE a counter\n# TYPE a counter\n",
        "# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# EOF\n",
        "\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

fn decode_dls(body: &[u8]) -> dls_message::DlsMessage {
    match dls_message::decode(body) {
        Ok(Message::Dls(m)) => m,
        other => panic!("not a DLSMessage: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_count_what_the_node_did_and_hold_no_phone_string_and_every_log_line_names_the_node() {
    let logs = Logs::capture();
    let srv = TestServer::start_with(|c| c.node_name = NODE.to_owned()).await;
    let (_, before) = scrape(&srv).await;
    assert_eq!(
        value(&before, &format!("dls_node_info{{node=\"{NODE}\",version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        1.0
    );
    assert_eq!(value(&before, "dls_digest_requests_total{outcome=\"challenge\"}"), 0.0);

    // A phone's start-up, its contact-me URI at a listener of the test's.
    let mut listener =
        ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::ZERO).await.expect("binds");
    let mut phone = Phone::new(MacAddr::parse(MAC).expect("mac"));
    phone.set("contact-me-uri", None, &format!("http://{}/contact_dls.html/ContactDLS", listener.local_addr()));
    let mut c = srv.client();
    let r = phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
    assert_eq!(r.actions.first(), Some(&Action::ReadAllItems));
    let exchanges = r.actions.len();

    // Refused messages: a reply-to outside any interaction, a reason no phone should send
    // (the engine refuses both), and a body that is not a message at all (400).
    let reply_without_session = r#"<WorkpointMessage><Message nonce="NONCE-SECRET-42"><ReasonForContact action="WriteItems" status="accepted">reply-to</ReasonForContact><ItemList/></Message></WorkpointMessage>"#;
    let teleport = r#"<WorkpointMessage><Message nonce="NONCE-SECRET-43"><ReasonForContact>teleport</ReasonForContact><ItemList><Item name="mac-addr">001AE83C4D5E</Item></ItemList></Message></WorkpointMessage>"#;
    for xml in [reply_without_session, teleport] {
        c.forget_session();
        let (status, _, body) = c.post(xml.as_bytes().to_vec()).await.expect("answered");
        assert_eq!(status.as_u16(), 200);
        assert_eq!(decode_dls(&body).action, Action::CleanUp);
    }
    let (status, _, _) = c.post(b"<WorkpointMessage><Message".to_vec()).await.expect("answered");
    assert_eq!(status.as_u16(), 400);

    // A DCMP poll (nothing pending), a malformed one, and Digest challenges (no
    // credentials; a username that is no device's).
    let dcmp = format!("http://{}/dcmp/contact-me", srv.http);
    assert_eq!(curl(&[], &format!("{dcmp}?device-id=001AE83C4D5E")).await.0, 200);
    assert_eq!(curl(&[], &format!("{dcmp}?device-id=not-a-mac")).await.0, 400);
    let file = format!("http://{}/provisioning/001AE83C4D5E.xml", srv.http);
    assert_eq!(curl(&[], &file).await.0, 401);
    assert_eq!(curl(&["--digest", "-u", "nosuchuser:guessed-password"], &file).await.0, 401);

    // A contact-me the administrator asks for: the phone is contacted (the sender records
    // it on a blocking thread, whose log line must name the node too).
    let (status, v) = srv.admin("POST", "/api/v1/devices/001AE83C4D5E/contact", None).await;
    assert_eq!(status, 202, "{v}");
    listener.next(Duration::from_secs(10)).await.expect("a contact-me");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (text, samples) = loop {
        let (text, samples) = scrape(&srv).await;
        if samples.get("dls_contact_me_total{result=\"contacted\"}") == Some(&1.0) {
            break (text, samples);
        }
        assert!(tokio::time::Instant::now() < deadline, "the contact-me is not counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let wpi = |reason: &str, outcome: &str| {
        samples
            .get(&format!("dls_wpi_messages_total{{port=\"default\",reason=\"{reason}\",outcome=\"{outcome}\"}}"))
            .copied()
    };
    assert_eq!(wpi("start-up", "ReadAllItems"), Some(1.0), "{text}");
    assert!(wpi("reply-to", "CleanUp").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        wpi("reply-to", "CleanUp").unwrap_or(0.0)
            + wpi("reply-to", "WriteItems").unwrap_or(0.0)
            + wpi("reply-to", "ReadItems").unwrap_or(0.0),
        exchanges as f64,
        "the interaction's replies, and the refused reply-to: {text}"
    );
    assert_eq!(wpi("other", "CleanUp"), Some(1.0), "an unknown reason is `other`: {text}");
    assert_eq!(wpi("none", "4xx"), Some(1.0), "{text}");
    let handled: f64 = samples.iter().filter(|(k, _)| k.starts_with("dls_wpi_messages_total{")).map(|(_, v)| v).sum();
    assert_eq!(handled, (exchanges + 3) as f64, "{text}");
    assert_eq!(value(&samples, "dls_wpi_message_duration_seconds_count{port=\"default\"}"), handled);
    assert!(value(&samples, "dls_wpi_message_duration_seconds_sum{port=\"default\"}") > 0.0);
    assert_eq!(value(&samples, "dls_wpi_refusals_total{refusal=\"reply_without_session\"}"), 1.0);
    assert_eq!(value(&samples, "dls_wpi_refusals_total{refusal=\"unknown_reason\"}"), 1.0);
    assert_eq!(value(&samples, "dls_dcmp_polls_total{status=\"200\"}"), 1.0);
    assert_eq!(value(&samples, "dls_dcmp_polls_total{status=\"400\"}"), 1.0);
    // Three: `curl --digest` asks without credentials first, then with them.
    assert_eq!(value(&samples, "dls_digest_requests_total{outcome=\"challenge\"}"), 3.0);
    assert_eq!(value(&samples, "dls_digest_requests_total{outcome=\"accept\"}"), 0.0);
    for operation in ["load_for_message", "apply", "has_pending_jobs", "contact_target", "record_contact", "device"] {
        let calls = value(&samples, &format!("dls_store_calls_total{{operation=\"{operation}\"}}"));
        assert!(calls >= 1.0, "{operation}: {text}");
    }
    assert!(!samples.keys().any(|k| k.starts_with("dls_store_errors_total")), "no store error: {text}");
    assert!(
        !samples.keys().any(|k| k.starts_with("dls_store_database_round_trips")),
        "SQLite works in the process: no round trips to count: {text}"
    );
    assert!(value(&samples, "dls_connections_open{listener=\"admin\"}") >= 1.0, "the scrape's own connection");
    assert_eq!(value(&samples, "dls_connections_refused_total{listener=\"wpi\",cause=\"per_source_cap\"}"), 0.0);

    // Nothing a phone or a caller sent, nor an address: no MAC in any spelling, no nonce,
    // no unknown reason's word, no username, no URI.
    for secret in [
        MAC,
        "001AE83C4D5E",
        "001ae83c4d5e",
        "00-1A-E8",
        "teleport",
        "NONCE-SECRET",
        "nosuchuser",
        "guessed-password",
        "127.0.0.1",
        "contact_dls",
        "OpenStage",
    ] {
        assert!(!text.to_ascii_lowercase().contains(&secret.to_ascii_lowercase()), "{secret:?} in the scrape:\n{text}");
    }

    // /metrics needs no token; the API still does.
    assert_eq!(curl(&[], &format!("http://{}/api/v1/devices", srv.admin)).await.0, 401);
    srv.stop().await;

    // Every line the service wrote names the node, the contact-me recorded on a blocking
    // thread included.
    let lines = logs.lines();
    let tag = format!("node{{node={NODE}}}");
    assert!(lines.iter().any(|l| l.contains("contact-me") && l.contains("answered 204")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("WARN") && l.contains("refused")), "{lines:#?}");
    assert!(lines.len() >= 10, "{lines:#?}");
    for line in &lines {
        assert!(line.contains(&tag), "a line without the node's name: {line}");
    }
}

#[tokio::test]
async fn readyz_answers_while_the_store_answers_and_healthz_stays_a_liveness_check() {
    let srv = TestServer::start().await;
    let url = |path: &str| format!("http://{}{path}", srv.admin);
    let (status, _, body) = curl(&[], &url("/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ready\"}"));

    // The store fails under the running service: not ready, with one line that says why;
    // still alive.
    sql(&srv, "ALTER TABLE devices RENAME TO devices_away").await;
    let (status, headers, body) = curl(&[], &url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/json"));
    assert_eq!(body.lines().count(), 1, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(error["error"].as_str().is_some_and(|e| e.starts_with("the store failed")), "{body}");
    let (status, _, body) = curl(&[], &url("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (_, samples) = scrape(&srv).await;
    assert_eq!(value(&samples, "dls_store_errors_total{operation=\"list_devices\"}"), 1.0);
    assert_eq!(value(&samples, "dls_store_calls_total{operation=\"list_devices\"}"), 2.0);

    sql(&srv, "ALTER TABLE devices_away RENAME TO devices").await;
    assert_eq!(curl(&[], &url("/readyz")).await.0, 200);
    srv.stop().await;
}
