//! The listeners: accept with a connection cap and a cap per source (refusals logged in
//! bounded summaries, see `limits`), TLS handshake with a deadline, HTTP/1.1 with
//! keep-alive and header limits, graceful shutdown. Shared by every port.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::limits;

/// A response body: complete in memory (hyper writes its exact `Content-Length`), or
/// streamed (deployment files, read from disk piece by piece) with a `Content-Length` the
/// handler sets. Never chunked: phones cannot read chunked bodies.
pub(crate) type Body =
    http_body_util::Either<Full<Bytes>, http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>>;

/// A response.
pub(crate) type Resp = Response<Body>;

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Either::Left(Full::new(bytes.into()))
}

/// What a handler knows of the connection a request came in on.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    /// The client certificate, on a listener that requires one (already verified by TLS).
    pub(crate) client: Option<ClientIdentity>,
}

/// A verified client certificate: its subject CN and serial number.
#[derive(Clone, Debug)]
pub(crate) struct ClientIdentity {
    pub(crate) common_name: Option<String>,
    /// Hex, upper case, without leading zero bytes.
    pub(crate) serial: String,
}

fn client_identity(conn: &rustls::ServerConnection) -> Option<ClientIdentity> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
    Some(ClientIdentity { common_name, serial: serial_hex(cert.raw_serial()) })
}

/// A serial number as upper-case hex without leading zero bytes.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len().saturating_sub(1));
    hex::encode_upper(&raw[start..])
}

/// Limits of one listener.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListenerLimits {
    /// The listener's name in log lines (`wpi`, `secure`, `http`, `admin`).
    pub(crate) name: &'static str,
    pub(crate) max_connections: usize,
    /// The most connections open at once from one source (`limits::Source`), counted
    /// from the accept: a connection that has not finished its TLS handshake or sent a
    /// request counts.
    pub(crate) max_per_source: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) tls_handshake_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) shutdown_grace: Duration,
}

/// The HTTP/1.1 settings of every listener: keep-alive, `idle_timeout` both between
/// requests and for a request's head, a head of at most `max_header_bytes` (8 KiB at least)
/// and 64 headers. Public so that the benchmark's bare server uses exactly these.
#[must_use]
pub fn http1_builder(idle_timeout: Duration, max_header_bytes: usize) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(idle_timeout)
        .max_buf_size(max_header_bytes.max(8192))
        .max_headers(64);
    builder
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// What a listener counts, for the metrics: the connections it refused, by cause, and
/// those open now.
#[derive(Clone, Debug)]
pub(crate) struct ListenerCounts {
    pub(crate) refused: Arc<limits::RefusalCounters>,
    pub(crate) open: prometheus_client::metrics::gauge::Gauge,
}

/// Says whether a listener may close its connections (no interaction in progress).
pub(crate) type Drained = Arc<dyn Fn() -> bool + Send + Sync>;

/// Serves connections from `listener` until `shutdown` turns true; then stops accepting,
/// waits until `drained` says no interaction is in progress, and lets the requests in
/// flight finish — all within the grace period. Connections over the caps are closed at
/// once and counted in `counts`; they are logged as a summary line at most every
/// [`limits::REFUSAL_LOG_INTERVAL`]. The connections open are counted there too.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
    drained: Option<Drained>,
    counts: ListenerCounts,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let sources = limits::SourceSlots::new(limits.max_per_source);
    let mut refusals = limits::RefusalLog::new(limits::REFUSAL_LOG_INTERVAL);
    let log = |s: limits::RefusalSummary| s.log(limits.name, limits.max_connections, limits.max_per_source);
    let local = listener.local_addr().ok();
    loop {
        let due = refusals.due();
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = sleep_until(due) => {
                if let Some(summary) = refusals.flush(std::time::Instant::now()) {
                    log(summary);
                }
                continue;
            }
            _ = shutdown.changed() => break,
        };
        let source = limits::Source::of(peer.ip());
        let admitted = match sources.try_acquire(source) {
            None => Err(limits::Refusal::PerSourceCap),
            Some(slot) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Ok((slot, permit)),
                Err(_) => Err(limits::Refusal::GlobalCap),
            },
        };
        let (slot, permit) = match admitted {
            Ok(x) => x,
            Err(why) => {
                drop(tcp);
                counts.refused.count(why);
                if let Some(summary) = refusals.refuse(std::time::Instant::now(), source, why) {
                    log(summary);
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handler = handler.clone();
        let counted = crate::metrics::OpenConnection::new(&counts.open);
        crate::tasks::spawn(async move {
            let _held = (permit, slot, counted);
            let builder = http1_builder(limits.idle_timeout, limits.max_header_bytes);
            let service = move |info: ConnInfo| {
                hyper::service::service_fn(move |req| {
                    let fut = handler(req, info.clone());
                    async move { Ok::<_, Infallible>(fut.await) }
                })
            };
            let result = match tls {
                Some(acceptor) => {
                    let handshake = async move {
                        if looks_like_plain_http(&tcp).await {
                            refuse_plain_http(tcp).await;
                            return None;
                        }
                        Some(acceptor.accept(tcp).await)
                    };
                    match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                        Ok(Some(Ok(stream))) => {
                            let info = ConnInfo { peer, client: client_identity(stream.get_ref().1) };
                            watcher.watch(builder.serve_connection(TokioIo::new(stream), service(info))).await
                        }
                        Ok(None) => {
                            debug!(%peer, "plain HTTP on a TLS port: answered 400");
                            return;
                        }
                        Ok(Some(Err(e))) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    let info = ConnInfo { peer, client: None };
                    watcher.watch(builder.serve_connection(TokioIo::new(tcp), service(info))).await
                }
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if let Some(summary) = refusals.flush(std::time::Instant::now()) {
        log(summary);
    }
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    debug!(?local, open = graceful.count(), "listener closed; finishing interactions in flight");
    if let Some(drained) = drained {
        while !drained() && tokio::time::Instant::now() < deadline && graceful.count() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if tokio::time::timeout_at(deadline, graceful.shutdown()).await.is_err() {
        warn!(?local, "shutdown grace period over; closing remaining connections");
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Whether a client on a TLS port began with what looks like an HTTP request line (an
/// upper-case letter; a TLS handshake record begins with 0x16).
async fn looks_like_plain_http(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// The answer to plain HTTP on a TLS port: a `400` that says so, after reading the request
/// head (at most 16 KiB; within the handshake deadline of the caller), so that closing
/// does not reset the connection before the client has read the answer.
async fn refuse_plain_http(mut tcp: TcpStream) {
    const BODY: &str = "this port speaks HTTPS (TLS): use an https:// URL\n";
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < 16 << 10 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    if tcp.write_all(answer.as_bytes()).await.is_ok() {
        let _ = tcp.shutdown().await;
    }
}

/// Why a request body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit (`413`).
    TooLarge,
    /// Not received in time (`408`).
    Timeout,
    /// The client broke off (`400`).
    Broken,
}

impl BodyError {
    pub(crate) fn response(&self) -> Resp {
        let mut r = match self {
            Self::TooLarge => text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            Self::Timeout => text(StatusCode::REQUEST_TIMEOUT, "request body not received in time\n"),
            Self::Broken => text(StatusCode::BAD_REQUEST, "request body could not be read\n"),
        };
        r.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
        r
    }
}

/// The most bytes read and thrown away after a body went over its limit, so that the
/// client has sent its request before the `413` (closing on unread data would reset the
/// connection and lose the answer).
const DRAIN_BYTES: usize = 8 << 20;

/// Reads a request body of at most `limit` bytes within `timeout`.
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = req.into_body();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf: Vec<u8> =
        Vec::with_capacity(declared.map_or(8192, |n| usize::try_from(n).unwrap_or(limit)).min(limit));
    let mut over = false;
    let mut drained = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) if over => return Err(BodyError::TooLarge),
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) if over => return Err(BodyError::TooLarge),
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(_))) if over => return Err(BodyError::TooLarge),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        if over {
            drained += data.len();
            if drained > DRAIN_BYTES {
                return Err(BodyError::TooLarge);
            }
        } else if buf.len() + data.len() > limit {
            over = true;
            buf = Vec::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
}
