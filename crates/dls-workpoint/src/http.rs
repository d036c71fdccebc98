//! The phone's plain HTTP(S) GET, for file downloads and DCMP polls: one request on a new
//! connection, every wait bounded, the body left to the caller to stream.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::tls::{ServerTrust, client_config};

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `https`.
    pub(crate) tls: bool,
    /// The host, without IPv6 brackets.
    pub(crate) host: String,
    /// The port (80 or 443 unless given).
    pub(crate) port: u16,
    /// The authority as written (the `Host` header).
    pub(crate) authority: String,
    /// Path and query (at least `/`).
    pub(crate) path: String,
}

/// Parses an absolute `http://` or `https://` URL without user information.
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url:?} is not an http:// or https:// URL")),
    };
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} carries user information"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target { tls, host, port, authority: authority.as_str().to_owned(), path: path.to_owned() })
}

/// An error and its sources on one line (`a: b: c`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s.replace('\n', " ")
}

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`) is escaped.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but the unreserved characters, byte by byte of the UTF-8.
pub(crate) fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// `GET target`, on a new connection (TLS with `trust` for `https`); returns the response
/// head with its body still to be read. Connecting, the handshake and the response head
/// each have `timeout`.
pub(crate) async fn get(target: &Target, trust: &ServerTrust, timeout: Duration) -> Result<Response<Incoming>, String> {
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((target.host.as_str(), target.port)))
        .await
        .map_err(|_| format!("connecting to {} timed out", target.authority))?
        .map_err(|e| format!("connecting to {}: {e}", target.authority))?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("{:?}: {e}", target.host))?;
        let connector = TlsConnector::from(client_config(trust).map_err(|e| e.to_string())?);
        let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| format!("TLS with {} timed out", target.authority))?
            .map_err(|e| format!("TLS with {}: {e}", target.authority))?;
        request(TokioIo::new(tls), target, timeout).await
    } else {
        request(TokioIo::new(tcp), target, timeout).await
    }
}

async fn request<IO>(io: TokioIo<IO>, target: &Target, timeout: Duration) -> Result<Response<Incoming>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let req = Request::get(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::USER_AGENT, "dls-workpoint")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    tokio::time::timeout(timeout, async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("HTTP with {}: {}", target.authority, chain(&e)))?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| format!("HTTP with {}: {}", target.authority, chain(&e)))
    })
    .await
    .map_err(|_| format!("no answer from {} in time", target.authority))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://dls.example.com:18443/files/abc/").expect("url");
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "dls.example.com".into(),
                port: 18443,
                authority: "dls.example.com:18443".into(),
                path: "/files/abc/".into()
            }
        );
        let t = parse_url("http://[::1]/dcmp/contact-me?device-id=x").expect("url");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "::1", 80, "/dcmp/contact-me?device-id=x")
        );
        assert_eq!(parse_url("HTTPS://h").expect("url").path, "/");
        for bad in ["ftp://h/x", "/relative", "https://user:pw@h/x", "not a url"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("ring tone #1.mp3"), "ring%20tone%20%231.mp3");
        assert_eq!(percent_encode("00:1A:E8"), "00%3A1A%3AE8");
        assert_eq!(percent_encode("a/b?c&d=é~_-"), "a%2Fb%3Fc%26d%3D%C3%A9~_-");
    }
}
