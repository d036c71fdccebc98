//! `dls phone run --logon/--userdata/--logoff` against a scripted DLS (the service's side of
//! mobility is tested with `dls serve` elsewhere): what is printed, the exit codes, the user's
//! data written out, the state kept between runs, and a password never printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dls_message::{Action, DlsMessage, EncodeOptions, Item, Message, Reason, WorkpointMessage};

use crate::common::dls;

const OWN: &str = "4989700710001";
const USER: &str = "4989700799001";
const PASSWORD: &str = "correct horse battery staple";
/// "book v1" and "book v2" in Base64.
const BOOK_V1: &str = "Ym9vayB2MQ==";
const BOOK_V2: &str = "Ym9vayB2Mg==";

/// One answer of the scripted DLS: an action, its items, and whether it is sent enveloped in
/// an XML-DSig `Signature`.
type Answer = (Action, Vec<Item>, bool);

/// A DLS over TLS on 127.0.0.1 (blocking, one thread per connection) that answers the
/// interactions in the order they start with the answers scripted for them, then `CleanUp`;
/// it records every message. Stops when dropped.
struct ScriptedDls {
    addr: String,
    received: Arc<Mutex<Vec<WorkpointMessage>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedDls {
    fn start(script: Vec<Vec<Answer>>) -> Self {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = key.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let tls = Arc::new(tls);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new((script, Vec::<Answer>::new())));
        let (rec, halt) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let (tls, rec, script) = (tls.clone(), rec.clone(), script.clone());
                std::thread::spawn(move || serve(tcp, &tls, &rec, &script));
            }
        });
        Self { addr, received, stop }
    }

    fn received(&self) -> Vec<WorkpointMessage> {
        self.received.lock().expect("lock").clone()
    }

    /// The messages that started interactions.
    fn interactions(&self) -> Vec<WorkpointMessage> {
        self.received().into_iter().filter(|m| m.reason.value != Reason::ReplyTo).collect()
    }
}

impl Drop for ScriptedDls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then stops.
        let _ = TcpStream::connect(&self.addr);
    }
}

type Script = Mutex<(Vec<Vec<Answer>>, Vec<Answer>)>;

/// One connection: HTTP/1.1 requests with a `Content-Length`, answered in turn.
fn serve(tcp: TcpStream, tls: &Arc<rustls::ServerConfig>, received: &Mutex<Vec<WorkpointMessage>>, script: &Script) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let Ok(conn) = rustls::ServerConnection::new(tls.clone()) else { return };
    let mut stream = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.unwrap_or(0).min(16 << 20)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let Ok(Message::Workpoint(m)) = dls_message::decode(&body) else { return };
        received.lock().expect("lock").push(m.clone());
        let (action, items, signed) = {
            let mut s = script.lock().expect("lock");
            if m.reason.value != Reason::ReplyTo {
                let next = if s.0.is_empty() { Vec::new() } else { s.0.remove(0) };
                s.1 = next;
            }
            if m.header.more_fragments() {
                (Action::GetNextFragment, Vec::new(), false)
            } else if s.1.is_empty() {
                (Action::CleanUp, Vec::new(), false)
            } else {
                s.1.remove(0)
            }
        };
        let xml = dls_message::encode(
            &Message::Dls(DlsMessage::new(m.header.nonce, action, Some(items))),
            &EncodeOptions::default(),
        )
        .expect("encodes");
        let xml = if signed { enveloped(&xml) } else { xml };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n", xml.len());
        let out = stream.get_mut();
        if out
            .write_all(head.as_bytes())
            .and_then(|()| out.write_all(xml.as_bytes()))
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

/// An encoded `DLSMessage` in an XML-DSig `Signature` (placeholder signature).
fn enveloped(xml: &str) -> String {
    let body = xml.split_once("?>").map_or(xml, |(_, rest)| rest);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
         <ds:SignedInfo><ds:Reference URI=\"#DLSMessage\"/></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue>\
         <ds:KeyInfo/><ds:Object Id=\"DLSMessage\">{body}</ds:Object></ds:Signature>\n"
    )
}

fn logon_answer() -> Vec<Answer> {
    vec![(
        Action::WriteItems,
        vec![
            Item::new("sip-mobility-state", "0").with_status(dls_message::ItemStatus::Other("secure".into())),
            Item::new("e164", USER),
        ],
        false,
    )]
}

/// The files a run needs: the phone's items (its own number) and the password.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("items.json"), format!(r#"[{{"name":"e164","value":"{OWN}"}}]"#))
            .expect("items");
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).expect("password");
        std::fs::write(dir.path().join("book-v2"), "book v2").expect("book");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

#[test]
fn a_user_logs_on_changes_the_phone_book_and_logs_off_in_one_run() {
    let f = Files::new();
    let dls_ = ScriptedDls::start(vec![
        vec![],
        logon_answer(),
        vec![],
        vec![(Action::WriteItems, vec![Item::indexed("userdata-phonebook", 1, BOOK_V1)], true)],
        vec![(Action::ReadItems, vec![Item::indexed("userdata-phonebook", 1, "")], false)],
        vec![],
    ]);
    let (items, password, out) = (f.path("items.json"), f.path("password"), f.path("out"));
    let book = format!("userdata-phonebook={}", f.path("book-v2"));
    let run = dls(
        &[
            "phone",
            "run",
            "--server",
            &dls_.addr,
            "--mac",
            "00:1A:E8:00:17:10",
            "--items",
            &items,
            "--logon",
            USER,
            "--password-file",
            &password,
            "--userdata-dir",
            &out,
            "--userdata",
            &book,
            "--logoff",
            "-v",
        ],
        b"",
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in [
        &format!("logged on as {USER}: 2 items written, 0 refused"),
        "<- WriteItems, 1 item (enveloped in an XML-DSig Signature, not verified)",
        "user data userdata-phonebook: 7 bytes",
        "userdata-phonebook changed: 7 bytes",
        &format!("logged off {USER}: user data saved: userdata-phonebook"),
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line:?} missing:\n{}", run.stdout);
    }
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD), "{}", run.stdout);
    assert_eq!(run.stdout.matches("<Item name=\"user-pwd\">********</Item>").count(), 2, "{}", run.stdout);
    // The data restored at logon, written out for the user to see (0600).
    let restored = std::path::Path::new(&out).join("userdata-phonebook");
    assert_eq!(std::fs::read(&restored).expect("written"), b"book v1");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&restored).expect("meta").permissions().mode() & 0o777, 0o600);

    let reasons: Vec<String> = dls_.interactions().iter().map(|m| m.reason.value.to_string()).collect();
    assert_eq!(
        reasons,
        ["start-up", "inventory-changes", "start-up", "inventory-changes", "inventory-changes", "start-up"]
    );
    let read_back: Vec<Item> = dls_
        .received()
        .into_iter()
        .filter(|m| m.reason.action == Some(Action::ReadItems))
        .flat_map(|m| m.items.unwrap_or_default())
        .collect();
    assert_eq!(read_back, [Item::indexed("userdata-phonebook", 1, BOOK_V2)]);
}

#[test]
fn a_refused_logon_exits_4_with_the_reason_on_one_line() {
    let f = Files::new();
    let dls_ = ScriptedDls::start(vec![
        vec![],
        vec![(Action::CleanUp, vec![Item::new("cleanup-reason", "mobility: logon refused")], false)],
    ]);
    let (items, password) = (f.path("items.json"), f.path("password"));
    let args = [
        "phone",
        "run",
        "--server",
        &dls_.addr,
        "--mac",
        "00:1A:E8:00:17:11",
        "--items",
        &items,
        "--logon",
        USER,
        "--password-file",
        &password,
        "-v",
    ];
    let run = dls(&args, b"");
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("logon refused by the DLS: mobility: logon refused"), "{}", run.stderr);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    assert_eq!(dls_.interactions().len(), 2, "no step after the refusal");
}

#[test]
fn with_a_state_dir_the_phone_remembers_its_user_between_runs() {
    let f = Files::new();
    let dls_ = ScriptedDls::start(vec![
        vec![],
        logon_answer(),
        vec![],
        vec![(Action::WriteItems, vec![Item::indexed("userdata-phonebook", 1, BOOK_V1)], false)],
        vec![],
        vec![(Action::ReadItems, vec![Item::indexed("userdata-phonebook", 1, "")], false)],
        vec![],
    ]);
    let (items, password, state) = (f.path("items.json"), f.path("password"), f.path("state"));
    let book = format!("userdata-phonebook={}", f.path("book-v2"));
    let base = [
        "phone",
        "run",
        "--server",
        &dls_.addr,
        "--mac",
        "00:1A:E8:00:17:12",
        "--items",
        &items,
        "--state-dir",
        &state,
    ];
    let run = dls(&[&base[..], &["--logon", USER, "--password-file", &password]].concat(), b"");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let file = std::path::Path::new(&state).join("mobility.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).expect("saved").permissions().mode() & 0o777, 0o600);
    let saved = std::fs::read_to_string(&file).expect("state");
    assert!(!saved.contains(PASSWORD), "{saved}");

    // A later run: the phone starts up as the user's, then the user edits and logs off
    // (without a password: the phone authenticated its user).
    let run = dls(&[&base[..], &["--userdata", &book, "--logoff"]].concat(), b"");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("mobility: user {USER} is logged on")), "{}", run.stdout);
    let started = dls_.interactions();
    let second_boot = &started[4];
    assert_eq!(
        (second_boot.reason.value.as_str(), second_boot.item("sip-mobility-state"), second_boot.item("e164")),
        ("start-up", Some("0"), Some(USER))
    );
    let logoff = &started[5];
    assert_eq!((logoff.item("modified-items"), logoff.item("user-pwd")), (Some("userdata-phonebook"), None));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("state")).expect("JSON");
    assert_eq!((v["e164"].as_str(), v["sip_mobility_state"].as_str()), (Some(OWN), Some("1")));
    assert_eq!(v["userdata"], serde_json::json!({}));

    // Nobody left to log off: refused before anything is sent.
    let sent = dls_.received().len();
    let run = dls(&[&base[..], &["--logoff"]].concat(), b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no user is logged on"), "{}", run.stderr);
    assert_eq!(dls_.received().len(), sent);
}

#[test]
fn bad_mobility_options_are_refused_before_anything_is_sent() {
    let f = Files::new();
    std::fs::write(f.dir.path().join("empty"), "\n").expect("empty");
    let empty = f.path("empty");
    let book = format!("userdata-phonebook={}", f.path("book-v2"));
    let server = ["phone", "run", "--server", "127.0.0.1:1", "--mac", "00:1A:E8:00:17:13"];
    for (extra, code, says) in [
        (vec!["--logon", USER], 2, "--password-file"),
        (vec!["--logon", USER, "--password-file", &empty], 3, "no password"),
        (vec!["--logoff"], 2, "no user is logged on"),
        (vec!["--userdata", &book], 2, "no user is logged on"),
        (vec!["--logon", USER, "--password-file", &empty, "--userdata", "phonebook=x"], 2, "userdata-*"),
        (vec!["--logon", USER, "--stay"], 2, "cannot be used with"),
    ] {
        let run = dls(&[&server[..], &extra[..]].concat(), b"");
        assert_eq!(run.code, code, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{extra:?}: {}", run.stderr);
    }
}

#[test]
fn a_load_run_with_a_mobility_mix_reports_logons_logoffs_and_refusals() {
    let logon = |user: &str| {
        vec![(
            Action::WriteItems,
            vec![Item::new("sip-mobility-state", "0"), Item::new("e164", user), Item::new("key-label-unicode", "Hot")],
            false,
        )]
    };
    // Four phones one at a time, half of them mobile (phones 1 and 3, users …000 and …001);
    // the second user's logon is refused.
    let dls_ = ScriptedDls::start(vec![
        vec![],
        vec![],
        logon("4989700790000"),
        vec![],
        vec![],
        vec![(Action::ReadItems, vec![Item::indexed("userdata-phonebook", 1, "")], false)],
        vec![],
        vec![],
        vec![],
        vec![(Action::CleanUp, vec![Item::new("cleanup-reason", "mobility: logon refused")], false)],
    ]);
    let run = dls(
        &[
            "phone",
            "load",
            "--server",
            &dls_.addr,
            "--phones",
            "4",
            "--concurrency",
            "1",
            "--mobility-share",
            "50",
            "--mobility-first-user",
            "4989700790000",
            "--mobility-password",
            PASSWORD,
            "--mobility-userdata-bytes",
            "3000",
            "--json",
        ],
        b"",
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!((v["interactions"].as_u64(), v["failures"].as_u64()), (Some(4), Some(1)), "{v}");
    assert_eq!(v["failures_by_kind"]["logon cleanup: mobility: logon refused"].as_u64(), Some(1), "{v}");
    assert_eq!((v["mobility"]["logons"].as_u64(), v["mobility"]["logoffs"].as_u64()), (Some(1), Some(1)), "{v}");
    assert!(v["mobility"]["logon_ms"]["p50"].as_f64().is_some_and(|ms| ms > 0.0), "{v}");
    assert!(!run.stdout.contains(PASSWORD));

    let started = dls_.interactions();
    let logons: Vec<(Option<&str>, Option<&str>)> = started
        .iter()
        .filter(|m| m.item("user-pwd").is_some() && m.item("sip-mobility-state") == Some("0"))
        .map(|m| (m.item("e164"), m.item("mac-addr")))
        .collect();
    assert_eq!(
        logons,
        [(Some("4989700790000"), Some("00:1A:E8:80:00:01")), (Some("4989700790001"), Some("00:1A:E8:80:00:03"))]
    );
    // The phone book handed back: 3000 bytes, 4000 in Base64.
    let book: Vec<Item> = dls_
        .received()
        .into_iter()
        .filter(|m| m.reason.action == Some(Action::ReadItems))
        .flat_map(|m| m.items.unwrap_or_default())
        .collect();
    assert_eq!(book.len(), 1);
    assert_eq!((book[0].name.as_str(), book[0].value.len()), ("userdata-phonebook", 4000));

    // The summary says it in words.
    let run = dls(
        &[
            "phone",
            "load",
            "--server",
            "127.0.0.1:1",
            "--phones",
            "2",
            "--mobility-share",
            "50",
            "--mobility-password",
            "x",
        ],
        b"",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("mobility logons: 0, ms: p50 -"), "{}", run.stdout);
    let run = dls(&["phone", "load", "--server", "127.0.0.1:1", "--mobility-share", "50"], b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--mobility-password"), "{}", run.stderr);
}
