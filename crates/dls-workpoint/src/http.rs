//! The phone's plain HTTP(S) GET, for file downloads and DCMP polls: one request on a new
//! connection, every wait bounded, the body left to the caller to stream.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use url::{Host, Url};

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

/// Parses an absolute `http://` or `https://` URL without user information (`url`: the
/// scheme and a name host lowercased, an IPv4 or IPv6 host in its canonical form, a port
/// out of range or an IPv6 zone refused, the fragment not sent).
pub(crate) fn parse_url(text: &str) -> Result<Target, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(format!("{text:?} is not an http:// or https:// URL")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} carries user information"));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Ipv6(a)) => a.to_string(),
        None => return Err(format!("{text:?} has no host")),
    };
    let port = url.port_or_known_default().ok_or_else(|| format!("{text:?} has no port"))?;
    if port == 0 {
        return Err(format!("{text:?} names port 0"));
    }
    // The host as the URL writes it (IPv6 in brackets), and the port unless the scheme's.
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    Ok(Target { tls, host, port, authority, path })
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

    /// What `url` does that the former hand-written parser did not.
    #[test]
    fn urls_as_the_url_crate_reads_them() {
        let parts = |u: &str| parse_url(u).map(|t| (t.tls, t.host, t.port, t.authority, t.path));
        let ok = |tls, host: &str, port, authority: &str, path: &str| {
            Ok((tls, host.to_owned(), port, authority.to_owned(), path.to_owned()))
        };
        // IPv6: the host without brackets (to connect to), the authority with them; the
        // address in its canonical form.
        assert_eq!(
            parts("https://[2001:DB8:0:0::1]:8443/f"),
            ok(true, "2001:db8::1", 8443, "[2001:db8::1]:8443", "/f")
        );
        assert_eq!(parts("http://[::ffff:192.0.2.1]/"), ok(false, "::ffff:192.0.2.1", 80, "[::ffff:c000:201]", "/"));
        // Default ports: taken when none is given, and dropped from the Host header when given.
        assert_eq!(parts("https://h.example"), ok(true, "h.example", 443, "h.example", "/"));
        assert_eq!(parts("http://h.example:80/x"), ok(false, "h.example", 80, "h.example", "/x"));
        assert_eq!(parts("https://h.example:80/x"), ok(true, "h.example", 80, "h.example:80", "/x"));
        // A name lowercased; an IPv4 address written in short or hexadecimal form normalised.
        assert_eq!(parts("HTTP://H.Example/x"), ok(false, "h.example", 80, "h.example", "/x"));
        assert_eq!(parts("http://0x7f.1/x"), ok(false, "127.0.0.1", 80, "127.0.0.1", "/x"));
        // A query without a path gets the path `/`; the fragment is not part of the request.
        assert_eq!(parts("http://h?x=1"), ok(false, "h", 80, "h", "/?x=1"));
        assert_eq!(parts("http://h/x#frag"), ok(false, "h", 80, "h", "/x"));
        // Characters a request target cannot hold are percent-encoded, dot segments resolved.
        assert_eq!(parts("http://h/a b/é").map(|p| p.4), Ok("/a%20b/%C3%A9".to_owned()));
        assert_eq!(parts("http://h/a/../b").map(|p| p.4), Ok("/b".to_owned()));
        // An empty port is the default one.
        assert_eq!(parts("http://h:/x"), ok(false, "h", 80, "h", "/x"));
        // Refused: user information (even a bare `user@`), a port out of range or 0, an IPv6
        // zone, no host.
        for bad in [
            "http://user@h/x",
            "https://:pw@h/x",
            "https://h:99999/",
            "http://h:0/x",
            "http://[fe80::1%25eth0]/x",
            "http:///",
            "http://",
            "http://999.1.1.1/",
        ] {
            let e = parse_url(bad).expect_err(bad);
            assert!(e.starts_with(&format!("{bad:?}")) && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("ring tone #1.mp3"), "ring%20tone%20%231.mp3");
        assert_eq!(percent_encode("00:1A:E8"), "00%3A1A%3AE8");
        assert_eq!(percent_encode("a/b?c&d=é~_-"), "a%2Fb%3Fc%26d%3D%C3%A9~_-");
    }
}
