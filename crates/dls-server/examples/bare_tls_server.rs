//! The baseline of the service's benchmark: a bare hyper + rustls server with the
//! service's exact TLS configuration ([`dls_server::tls::default_mode`], with a PKI made in
//! a temporary data directory) and the same HTTP/1.1 settings as the service's listener
//! ([`dls_server::http1_builder`], the very function the service uses; `TCP_NODELAY`,
//! TLS handshake deadline, connection cap), on the same multi-threaded tokio runtime. It
//! reads every request's body and answers it with one fixed `DLSMessage` (a `CleanUp`) and
//! an exact `Content-Length`: everything the service does except WPI itself. It uses the
//! same allocator as the `dls` binary (jemalloc).
//!
//! ```sh
//! cargo run --release -p dls-server --example bare_tls_server -- [--listen 127.0.0.1:0]
//! dls phone load --baseline --server 127.0.0.1:PORT --phones 2000 --concurrency 16
//! ```
//!
//! Prints `bare TLS server on https://ADDR/DeploymentService/LoginService` and runs until
//! killed.

use std::convert::Infallible;
use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dls_message::{Action, DlsMessage, EncodeOptions, Message};
use dls_server::config::Config;
use dls_server::{DataDir, LOGIN_SERVICE_PATH};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

async fn answer(req: Request<Incoming>, body: Bytes, limit: usize) -> Response<Full<Bytes>> {
    // Read the request body as the service does (it is thrown away).
    if Limited::new(req.into_body(), limit).collect().await.is_err() {
        let mut r = Response::new(Full::new(Bytes::from_static(b"request body could not be read\n")));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let mut r = Response::new(Full::new(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v.parse()?,
            _ => return Err(format!("usage: bare_tls_server [--listen ADDR] (not {a:?})").into()),
        }
    }
    // The service's defaults, for the limits below.
    let config = Config::default();
    let tmp = tempfile::tempdir()?;
    let dir = DataDir::open(tmp.path())?;
    let pki = dls_server::pki::Pki::load_or_create(&dir, &[])?;
    let acceptor = TlsAcceptor::from(dls_server::tls::default_mode(&pki)?);

    let reply = DlsMessage::new("00000000000000000000000000000000", Action::CleanUp, None);
    let body = Bytes::from(dls_message::encode(&Message::Dls(reply), &EncodeOptions::default())?);
    let idle_timeout = Duration::from_secs(config.idle_timeout_secs);
    let handshake_timeout = Duration::from_secs(config.tls_handshake_timeout_secs);
    let max_header_bytes = config.max_header_bytes;
    let max_body = config.max_body_bytes;

    let listener = TcpListener::bind(listen).await?;
    println!("bare TLS server on https://{}{LOGIN_SERVICE_PATH}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let permits = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            // Out of file descriptors and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let builder = dls_server::http1_builder(idle_timeout, max_header_bytes);
            let svc = hyper::service::service_fn(move |req| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(answer(req, body, max_body).await) }
            });
            if let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            }
        });
    }
}
