//! The phone's contact-me listener: `POST /contact_dls.html/ContactDLS` with the form body
//! `ContactMe=true` (optionally `&dls_ip_addr=…&dls_ip_port=…`), answered `204 No Content`
//! with `Server: DlsClient`, as phones do. The phone then calls the DLS (`solicited`).
//! Requests within the phone's contact gap are answered but ignored, as real phones do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Mutex, mpsc, watch};

/// The path phones listen on.
pub const CONTACT_ME_PATH: &str = "/contact_dls.html/ContactDLS";

/// A contact-me the phone accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactMe {
    /// `dls_ip_addr`, when the DLS named itself.
    pub dls_ip_addr: Option<String>,
    /// `dls_ip_port`, when the DLS named itself.
    pub dls_ip_port: Option<u16>,
}

/// A running contact-me listener. Dropping it stops the listener.
#[derive(Debug)]
pub struct ContactListener {
    addr: SocketAddr,
    requests: mpsc::Receiver<ContactMe>,
    _stop: watch::Sender<bool>,
}

struct State {
    gap: Duration,
    last: Mutex<Option<tokio::time::Instant>>,
    tx: mpsc::Sender<ContactMe>,
}

impl ContactListener {
    /// Listens on `addr` (port 0 for any); contact-me requests less than `gap` after the
    /// last accepted one are answered `204` and ignored (real phones default to 300 s).
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind(addr: SocketAddr, gap: Duration) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, requests) = mpsc::channel(16);
        let (stop, mut stopped) = watch::channel(false);
        let state = Arc::new(State { gap, last: Mutex::new(None), tx });
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stopped.changed() => return,
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, requests, _stop: stop })
    }

    /// The address listened on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next accepted contact-me, or `None` if none comes within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<ContactMe> {
        tokio::time::timeout(timeout, self.requests.recv()).await.ok().flatten()
    }

    /// The next accepted contact-me, waiting as long as it takes; `None` once the listener
    /// has stopped.
    pub async fn recv(&mut self) -> Option<ContactMe> {
        self.requests.recv().await
    }

    /// An accepted contact-me already waiting, if any (without waiting).
    pub fn try_next(&mut self) -> Option<ContactMe> {
        self.requests.try_recv().ok()
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    r.headers_mut().insert(header::SERVER, HeaderValue::from_static("DlsClient"));
    r
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Empty<Bytes>> {
    if req.uri().path() != CONTACT_ME_PATH {
        return status(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::POST {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Ok(Ok(body)) =
        tokio::time::timeout(Duration::from_secs(10), Limited::new(req.into_body(), 4096).collect()).await
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    let body = body.to_bytes();
    let Ok(form) = std::str::from_utf8(&body) else { return status(StatusCode::BAD_REQUEST) };
    let mut contact = None;
    let mut request = ContactMe { dls_ip_addr: None, dls_ip_port: None };
    for pair in form.trim().split('&') {
        match pair.split_once('=') {
            Some(("ContactMe", v)) => contact = Some(v == "true"),
            Some(("dls_ip_addr", v)) if !v.is_empty() => request.dls_ip_addr = Some(v.to_owned()),
            Some(("dls_ip_port", v)) => request.dls_ip_port = v.parse().ok(),
            _ => {}
        }
    }
    if contact != Some(true) {
        return status(StatusCode::BAD_REQUEST);
    }
    let now = tokio::time::Instant::now();
    let mut last = state.last.lock().await;
    if last.is_none_or(|t| now.duration_since(t) >= state.gap) {
        *last = Some(now);
        let _ = state.tx.try_send(request);
    }
    status(StatusCode::NO_CONTENT)
}
