//! A WPI client: posts `WorkpointMessage`s to a DLS over one keep-alive TLS connection,
//! keeps the session cookie, and checks each answer as a phone would (status 200, no
//! chunked body, a decodable `DLSMessage` carrying the nonce it answers).

use std::sync::Arc;
use std::time::Duration;

use dls_message::{DlsMessage, EncodeOptions, Message, WorkpointMessage};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::tls::{ServerTrust, client_config};

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
    /// A message about to be posted, with its XML.
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
    },
}

impl Traced<'_> {
    /// One line: direction, reason (with the action answered and the status) or action,
    /// the item count, and whether more fragments follow, e.g.
    /// `-> reply-to ReadAllItems accepted, 287 items` or `<- WriteItems, 20 items`.
    #[must_use]
    pub fn summary(&self) -> String {
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
        format!("{arrow} {what}, {items} item{plural}{more}")
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
        })
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
        let xml = dls_message::encode(&Message::Workpoint(message.clone()), &EncodeOptions::default())
            .map_err(|e| ClientError::Protocol(format!("message not encodable: {e}")))?;
        if let Some(observe) = self.observer.as_mut() {
            observe(&Traced::Sent { message, xml: &xml });
        }
        let (status, headers, body) = self.post(xml.into_bytes()).await?;
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
        match dls_message::decode(&body) {
            Ok(Message::Dls(m)) if m.header.nonce == message.header.nonce => {
                if let Some(observe) = self.observer.as_mut() {
                    observe(&Traced::Received { message: &m, body: &body });
                }
                Ok(m)
            }
            Ok(Message::Dls(m)) => Err(ClientError::Protocol(format!(
                "answer carries nonce {} for {}",
                m.header.nonce, message.header.nonce
            ))),
            Ok(Message::Workpoint(_)) => Err(ClientError::Protocol("the answer is a WorkpointMessage".into())),
            Err(e) => Err(ClientError::Protocol(format!("undecodable answer: {e}"))),
        }
    }

    /// Posts a raw body (for tests of malformed input); returns status, headers and body.
    ///
    /// # Errors
    /// [`ClientError`] when the exchange fails.
    pub async fn post(&mut self, body: Vec<u8>) -> Result<(StatusCode, hyper::HeaderMap, Bytes), ClientError> {
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
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let timeout = self.timeout;
        let Some(sender) = self.sender.as_mut() else { return Err(ClientError::Connect("not connected".into())) };
        let result = tokio::time::timeout(timeout, async {
            sender.ready().await.map_err(|e| ClientError::Connect(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(|e| ClientError::Connect(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, 4 << 20)
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
