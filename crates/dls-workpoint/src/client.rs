//! A WPI client: posts `WorkpointMessage`s to a DLS over one keep-alive TLS connection,
//! keeps the session cookie, and checks each answer as a phone would (status 200, no
//! chunked body, a decodable `DLSMessage` carrying the nonce it answers).

use std::sync::Arc;
use std::time::Duration;

use dls_message::{DlsMessage, EncodeOptions, Envelope, FromDls, Limits, Message, WorkpointMessage};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use zeroize::{Zeroize, Zeroizing};

use crate::phone::is_write_only;
use crate::tls::{ServerTrust, client_config};

/// The largest answer a client accepts by default: 16 MiB. Far above the protocol's 50 kB, for
/// the mobility user data a DLS restores (Base64 blobs, one item can be over 1 MB).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 << 20;

/// What an observer is shown instead of a write-only value (a password the phone sends).
pub const REDACTED: &str = "********";

/// The path phones post to.
pub const LOGIN_SERVICE_PATH: &str = "/DeploymentService/LoginService";

/// Why an exchange failed, by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached (connect, reset, closed).
    #[error("connection: {0}")]
    Connect(String),
    /// TLS failed (handshake, certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The server answered with an HTTP error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server's answer breaks the protocol (chunked body, not a DLSMessage, wrong
    /// nonce, …).
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// A short name for the kind of failure (for counting failures by kind).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Tls(_) => "tls",
            Self::Status { .. } => "http-status",
            Self::Protocol(_) => "protocol",
            Self::Timeout => "timeout",
        }
    }
}

/// One message of an exchange, as an observer sees it (see [`WpiClient::observe`]).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Traced<'a> {
    /// A message about to be posted, with its XML. The values of write-only items (a
    /// password: [`is_write_only`](crate::is_write_only)) are shown as [`REDACTED`], in both.
    Sent {
        /// The message.
        message: &'a WorkpointMessage,
        /// Its XML, as posted.
        xml: &'a str,
    },
    /// The DLS's answer, decoded, with the body it came in.
    Received {
        /// The answer.
        message: &'a DlsMessage,
        /// The body, as received.
        body: &'a [u8],
        /// The envelope the answer came in, if any (an XML-DSig `Signature`, not verified).
        envelope: Option<Envelope>,
    },
}

impl Traced<'_> {
    /// One line: direction, reason (with the action answered and the status) or action,
    /// the item count, whether more fragments follow, and an envelope, e.g.
    /// `-> reply-to ReadAllItems accepted, 287 items`, `<- WriteItems, 20 items` or
    /// `<- WriteItems, 3 items (enveloped in an XML-DSig Signature, not verified)`.
    #[must_use]
    pub fn summary(&self) -> String {
        let envelope = match self {
            Self::Received { envelope: Some(e), .. } => format!(" ({})", e.describe()),
            _ => String::new(),
        };
        let (arrow, what, header, items) = match self {
            Self::Sent { message, .. } => {
                let mut what = message.reason.value.to_string();
                if let Some(a) = &message.reason.action {
                    what = format!("{what} {a}");
                }
                if let Some(s) = &message.reason.status {
                    what = format!("{what} {s}");
                }
                ("->", what, &message.header, message.items.as_ref().map_or(0, Vec::len))
            }
            Self::Received { message, .. } => {
                ("<-", message.action.to_string(), &message.header, message.items.as_ref().map_or(0, Vec::len))
            }
        };
        let more = if header.more_fragments() { " (more fragments follow)" } else { "" };
        let plural = if items == 1 { "" } else { "s" };
        format!("{arrow} {what}, {items} item{plural}{more}{envelope}")
    }

    /// The message's XML as sent or received (invalid UTF-8 replaced).
    #[must_use]
    pub fn xml(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Sent { xml, .. } => std::borrow::Cow::Borrowed(xml),
            Self::Received { body, .. } => String::from_utf8_lossy(body),
        }
    }
}

/// A TCP connection to `server` (`host:port`), from `local` if given.
async fn connect_tcp(server: &str, local: Option<std::net::IpAddr>) -> std::io::Result<tokio::net::TcpStream> {
    let Some(local) = local else { return tokio::net::TcpStream::connect(server).await };
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, format!("{server}: no address"));
    for addr in tokio::net::lookup_host(server).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A function shown every message a client sends and every answer it decodes.
type Observer = Box<dyn FnMut(&Traced<'_>) + Send>;

/// One phone's connection to a DLS.
pub struct WpiClient {
    server: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    sender: Option<SendRequest<Full<Bytes>>>,
    cookie: Option<String>,
    timeout: Duration,
    connections: u64,
    observer: Option<Observer>,
    /// The address connections are made from (`None`: the system's choice).
    local: Option<std::net::IpAddr>,
    /// The largest answer accepted (body and decoding).
    max_answer_bytes: usize,
}

impl std::fmt::Debug for WpiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WpiClient")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl WpiClient {
    /// A client for `server` (`host:port`) trusting the server as `trust` says.
    ///
    /// # Errors
    /// [`ClientError::Tls`] for unusable CA certificates, [`ClientError::Connect`] for a
    /// malformed server address.
    pub fn new(server: &str, trust: &ServerTrust) -> Result<Self, ClientError> {
        Self::with_tls(server, client_config(trust)?)
    }

    /// A client with a prepared TLS configuration (e.g. with a client certificate).
    ///
    /// # Errors
    /// [`ClientError::Connect`] for a malformed server address.
    pub fn with_tls(server: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, ClientError> {
        let host = match server.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return Err(ClientError::Connect(format!("{server:?} is not host:port"))),
        };
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Connect(format!("{host:?}: {e}")))?;
        Ok(Self {
            server: server.to_owned(),
            server_name,
            connector: TlsConnector::from(tls),
            sender: None,
            cookie: None,
            timeout: Duration::from_secs(30),
            connections: 0,
            observer: None,
            local: None,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        })
    }

    /// Sets the largest answer accepted (default [`DEFAULT_MAX_ANSWER_BYTES`]); a larger one
    /// fails the exchange.
    pub fn set_max_answer_bytes(&mut self, n: usize) {
        self.max_answer_bytes = n;
    }

    /// Sets the time allowed for connecting and for each exchange.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Makes the next connections from `ip` (e.g. another loopback address, so that a test
    /// shows a second phone to the server's per-source limits).
    pub fn set_local_address(&mut self, ip: std::net::IpAddr) {
        self.local = Some(ip);
    }

    /// How many connections this client has opened.
    #[must_use]
    pub fn connections_opened(&self) -> u64 {
        self.connections
    }

    /// The session cookie the server set, if any.
    #[must_use]
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Shows `observer` every message [`exchange`](Self::exchange) sends and every answer it
    /// decodes (e.g. to print an interaction); it does not change the exchange.
    pub fn observe(&mut self, observer: impl FnMut(&Traced<'_>) + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Closes the connection (the next exchange opens a new one).
    pub fn close(&mut self) {
        self.sender = None;
    }

    /// Sets the session cookie (e.g. to replay an old one in a test).
    pub fn set_cookie(&mut self, id: &str) {
        self.cookie = Some(id.to_owned());
    }

    /// Forgets the session cookie.
    pub fn forget_session(&mut self) {
        self.cookie = None;
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let tcp = tokio::time::timeout(self.timeout, connect_tcp(&self.server, self.local))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(self.timeout, self.connector.connect(self.server_name.clone(), tcp))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        tokio::spawn(conn);
        self.sender = Some(sender);
        self.connections += 1;
        Ok(())
    }

    /// Sends `message` and returns the DLS's answer.
    ///
    /// # Errors
    /// [`ClientError`] when the exchange fails or the answer breaks the protocol.
    pub async fn exchange(&mut self, message: &WorkpointMessage) -> Result<DlsMessage, ClientError> {
        self.exchange_from_dls(message).await.map(|a| a.message)
    }

    /// Sends `message` and returns the DLS's answer with the envelope it came in: a bare
    /// `DLSMessage`, or one enveloped in an XML-DSig `Signature`, which is not verified
    /// ([`dls_message::decode_from_dls`]).
    ///
    /// What the client encodes of a message carrying write-only items (a password) is
    /// zeroized once sent, as far as it holds it (not the copies in the HTTP and TLS
    /// layers' buffers); an observer sees those values as [`REDACTED`].
    ///
    /// # Errors
    /// [`ClientError`] when the exchange fails or the answer breaks the protocol.
    pub async fn exchange_from_dls(&mut self, message: &WorkpointMessage) -> Result<FromDls, ClientError> {
        let secret = message.items.as_deref().is_some_and(|items| items.iter().any(|i| is_write_only(&i.name)));
        let mut whole = Message::Workpoint(message.clone());
        let encoded = dls_message::encode(&whole, &EncodeOptions::default());
        if secret {
            zeroize_write_only(&mut whole);
        }
        drop(whole);
        let xml = encoded.map_err(|e| ClientError::Protocol(format!("message not encodable: {e}")))?;
        if let Some(observe) = self.observer.as_mut() {
            if secret {
                let mut shown = message.clone();
                for item in shown.items.iter_mut().flatten().filter(|i| is_write_only(&i.name)) {
                    item.value.zeroize();
                    REDACTED.clone_into(&mut item.value);
                }
                let shown_xml = dls_message::encode(&Message::Workpoint(shown.clone()), &EncodeOptions::default())
                    .unwrap_or_default();
                observe(&Traced::Sent { message: &shown, xml: &shown_xml });
            } else {
                observe(&Traced::Sent { message, xml: &xml });
            }
        }
        let body =
            if secret { Bytes::from_owner(Zeroizing::new(xml.into_bytes())) } else { Bytes::from(xml.into_bytes()) };
        let (status, headers, body) = self.post_bytes(body).await?;
        if status != StatusCode::OK {
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        if headers.get(header::TRANSFER_ENCODING).is_some() || headers.get(header::CONTENT_LENGTH).is_none() {
            return Err(ClientError::Protocol(
                "the answer has no Content-Length (phones cannot read chunked bodies)".into(),
            ));
        }
        for v in headers.get_all(header::SET_COOKIE) {
            if let Some(id) =
                v.to_str().ok().and_then(|s| s.split(';').next()).and_then(|kv| kv.trim().strip_prefix("JSESSIONID="))
            {
                self.cookie = Some(id.to_owned());
            }
        }
        let limits = Limits::default().max_input_bytes(self.max_answer_bytes);
        match dls_message::decode_from_dls(&body, &limits) {
            Ok(answer) if answer.message.header.nonce == message.header.nonce => {
                if let Some(e) = answer.envelope {
                    tracing::debug!(nonce = %message.header.nonce, "the DLS's answer is {}", e.describe());
                }
                if let Some(observe) = self.observer.as_mut() {
                    observe(&Traced::Received { message: &answer.message, body: &body, envelope: answer.envelope });
                }
                Ok(answer)
            }
            Ok(answer) => Err(ClientError::Protocol(format!(
                "answer carries nonce {} for {}",
                answer.message.header.nonce, message.header.nonce
            ))),
            Err(e) => Err(ClientError::Protocol(format!("undecodable answer: {e}"))),
        }
    }

    /// Posts a raw body (for tests of malformed input); returns status, headers and body.
    ///
    /// # Errors
    /// [`ClientError`] when the exchange fails.
    pub async fn post(&mut self, body: Vec<u8>) -> Result<(StatusCode, hyper::HeaderMap, Bytes), ClientError> {
        self.post_bytes(Bytes::from(body)).await
    }

    async fn post_bytes(&mut self, body: Bytes) -> Result<(StatusCode, hyper::HeaderMap, Bytes), ClientError> {
        let fresh = self.sender.as_ref().is_none_or(SendRequest::is_closed);
        if fresh {
            self.connect().await?;
        }
        let mut req = Request::post(LOGIN_SERVICE_PATH)
            .header(header::HOST, &self.server)
            .header(header::CONTENT_TYPE, "text/xml");
        if let Some(c) = &self.cookie {
            let v =
                HeaderValue::from_str(&format!("JSESSIONID={c}")).map_err(|e| ClientError::Protocol(e.to_string()))?;
            req = req.header(header::COOKIE, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let timeout = self.timeout;
        let max_answer = self.max_answer_bytes;
        let Some(sender) = self.sender.as_mut() else { return Err(ClientError::Connect("not connected".into())) };
        let result = tokio::time::timeout(timeout, async {
            sender.ready().await.map_err(|e| ClientError::Connect(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(|e| ClientError::Connect(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, max_answer)
                .collect()
                .await
                .map_err(|e| ClientError::Connect(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>((parts.status, parts.headers, bytes))
        })
        .await;
        match result {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(ClientError::Timeout)
            }
        }
    }
}

/// Overwrites the values of the write-only items of `m` (passwords) in place.
fn zeroize_write_only(m: &mut Message) {
    if let Message::Workpoint(w) = m {
        for item in w.items.iter_mut().flatten().filter(|i| is_write_only(&i.name)) {
            item.value.zeroize();
        }
    }
}
