//! A tiny test-only HTTP/1.1 server on `std::net`, protecting `GET /provisioning/<MAC>.xml`
//! with the verifier. A phone may fetch only its own file (or any file with the fallback
//! credentials). Bounded: read timeouts, a cap on the request head, and it stops (joining its
//! threads) when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dls_digest::{Authorization, Config, Outcome, Request, Verifier, is_same_device};

use crate::{FALLBACK_USER, Store};

const MAX_HEAD: usize = 16 * 1024;

/// What the server saw and answered, per request.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
    /// Parameters of the `Authorization` header, if it parsed.
    pub(crate) authorization: Option<Authorization>,
}

pub(crate) struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

struct Shared {
    verifier: Verifier,
    store: Store,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl TestServer {
    pub(crate) fn start(config: Config, store: Store) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            verifier: Verifier::with_random_secret(config).expect("verifier"),
            store,
            log: Arc::clone(&log),
        });
        let stop2 = Arc::clone(&stop);
        let acceptor = std::thread::spawn(move || {
            let mut connections = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                connections.push(std::thread::spawn(move || serve(stream, &shared)));
            }
            for c in connections {
                let _ = c.join();
            }
        });
        Self { addr, stop, acceptor: Some(acceptor), log }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(peer) = stream.peer_addr() else { return };
    let Ok(write_half) = stream.try_clone() else { return };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader) else { return };
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let (method, target) = (request_line.next().unwrap_or(""), request_line.next().unwrap_or(""));
        let mut authorization = None;
        let mut close = false;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("authorization") {
                    authorization = Some(value.trim().to_owned());
                } else if name.trim().eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let request = Request {
            method,
            target,
            authorization: authorization.as_deref().map(str::as_bytes),
            source: peer.ip(),
            now,
        };
        let mac = target.strip_prefix("/provisioning/").and_then(|p| p.strip_suffix(".xml")).unwrap_or("");
        let outcome = shared.verifier.verify(&request, &shared.store);
        let (status, headers, body) = match &outcome {
            Outcome::Accept { username, .. } if is_same_device(username, mac) || username == FALLBACK_USER => {
                (200, Vec::new(), format!("<provisioning mac=\"{}\"/>", mac.to_ascii_lowercase()))
            }
            Outcome::Accept { .. } => (403, Vec::new(), "forbidden".to_owned()),
            Outcome::Challenge { www_authenticate, .. } => (
                401,
                www_authenticate.iter().map(|w| format!("WWW-Authenticate: {w}")).collect(),
                "unauthorized".to_owned(),
            ),
            Outcome::Throttled { retry_after_secs } => {
                (429, vec![format!("Retry-After: {retry_after_secs}")], "too many requests".to_owned())
            }
            other => (other.status(), Vec::new(), "bad request".to_owned()),
        };
        shared.log.lock().expect("log").push(Exchange {
            status,
            outcome: outcome.clone(),
            authorization: authorization.and_then(|a| Authorization::parse(a.as_bytes()).ok()),
        });
        let mut response =
            format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n", body.len());
        for h in headers {
            response += &h;
            response += "\r\n";
        }
        response += "\r\n";
        response += &body;
        if out.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// The request head (request line and headers), or `None` at EOF, timeout, or over the cap.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.by_ref().take(MAX_HEAD as u64).read_line(&mut line).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        if line == "\r\n" || line == "\n" {
            return Some(head.trim_end().to_owned());
        }
        head += &line;
    }
}
