//! Whom a contact-me goes to: the phone's `contact-me-uri` parsed strictly, and the check
//! that its host is the address the phone calls from (see the [module](super)'s
//! documentation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hyper::http::uri::PathAndQuery;

/// The longest contact-me URI accepted.
const MAX_URI_BYTES: usize = 2048;

/// A parsed `http://host[:port]/path` contact-me URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) host: TargetHost,
    pub(super) port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub(super) authority: String,
    /// The path and query.
    pub(super) path: String,
}

/// A contact-me URI's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TargetHost {
    Ip(IpAddr),
    Name(String),
}

/// Parses a contact-me URI strictly: `http://host[:port]/path[?query]`, host an IP literal
/// (IPv6 in brackets, no zone) or a DNS name, no userinfo, no fragment, printable ASCII, at
/// most [`MAX_URI_BYTES`].
pub(super) fn parse_uri(uri: &str) -> Result<Target, String> {
    let bad = |why: &str| {
        let mut shown: String = uri.chars().take(80).collect();
        if shown.len() < uri.len() {
            shown.push('…');
        }
        format!("unsupported contact-me-uri {shown:?} ({why})")
    };
    if uri.len() > MAX_URI_BYTES {
        return Err(bad("longer than 2048 bytes"));
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("spaces, control or non-ASCII characters"));
    }
    let rest = match uri.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        _ => return Err(bad("not http://")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("userinfo"));
    }
    if !path.starts_with('/') {
        return Err(bad("no path"));
    }
    if path.contains('#') {
        return Err(bad("fragment"));
    }
    if PathAndQuery::from_str(path).is_err() {
        return Err(bad("path"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else { return Err(bad("host")) };
        let ip = Ipv6Addr::from_str(inside).map_err(|_| bad("host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("port"))?),
        };
        (TargetHost::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host = if let Ok(ip) = Ipv4Addr::from_str(host) {
            TargetHost::Ip(IpAddr::V4(ip))
        } else if is_dns_name(host) {
            TargetHost::Name(host.to_owned())
        } else {
            return Err(bad("host"));
        };
        (host, port)
    };
    let port = match port {
        None => 80,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("port"))?
        }
        Some(_) => return Err(bad("port")),
    };
    Ok(Target { host, port, authority: authority.to_owned(), path: path.to_owned() })
}

/// A DNS name: labels of letters, digits and inner hyphens, 1–63 bytes each, 253 in all; the
/// last label not all digits (so that a malformed IPv4 address is not taken for a name).
fn is_dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&host.len())
        && host.split('.').all(label_ok)
        && !host.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a contact-me may go to `host`: only if it is `caller`, the address the phone
/// last called from (an IPv4 address and its IPv6-mapped form are the same).
pub(super) fn check_caller(host: &TargetHost, caller: Option<IpAddr>) -> Result<(), String> {
    match (host, caller) {
        (_, None) => Err("the address the phone calls from is not known yet".into()),
        (TargetHost::Ip(ip), Some(c)) if ip.to_canonical() == c.to_canonical() => Ok(()),
        (TargetHost::Ip(ip), Some(c)) => {
            Err(format!("the contact-me-uri's host {ip} is not the address the phone calls from ({c})"))
        }
        (TargetHost::Name(name), Some(c)) => {
            let shown: String = name.chars().take(80).collect();
            Err(format!("the contact-me-uri names the host {shown:?}, not the address the phone calls from ({c})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use dls_workpoint::contact::CONTACT_ME_PATH;

    use super::*;

    #[test]
    fn uris_are_parsed_strictly() {
        let t = parse_uri("http://192.0.2.7:8085/contact_dls.html/ContactDLS").expect("ok");
        assert_eq!(t.host, TargetHost::Ip("192.0.2.7".parse().expect("ip")));
        assert_eq!((t.port, t.authority.as_str(), t.path.as_str()), (8085, "192.0.2.7:8085", CONTACT_ME_PATH));
        let t = parse_uri("HTTP://[2001:db8::1]/x?y=1").expect("ok");
        assert_eq!((t.port, t.authority.as_str(), t.path.as_str()), (80, "[2001:db8::1]", "/x?y=1"));
        let t = parse_uri("http://phone-12.example.net:8085/c").expect("ok");
        assert_eq!(t.host, TargetHost::Name("phone-12.example.net".into()));
        for bad in [
            "https://192.0.2.7:8085/contact_dls.html/ContactDLS",
            "http://user@192.0.2.7:8085/c",
            "http://user:pw@192.0.2.7/c",
            "garbage",
            "",
            "http://",
            "http:///c",
            "http://192.0.2.7:8085",
            "http://192.0.2.7:8085?x",
            "http://192.0.2.7:/c",
            "http://192.0.2.7:0/c",
            "http://192.0.2.7:65536/c",
            "http://192.0.2.7:+80/c",
            "http://192.0.2.7:80:80/c",
            "http://999.0.2.7/c",
            "http://1.2.3/c",
            "http://-a.example/c",
            "http://a..example/c",
            "http://a_b.example/c",
            "http://[fe80::1%25eth0]/c",
            "http://[2001:db8::1/c",
            "http://[2001:db8::1]x/c",
            "http://192.0.2.7/c#f",
            "http://192.0.2.7/a b",
            "http://192.0.2.7/\u{e9}",
            "http://192.0.2.7/\n",
            "ftp://192.0.2.7/c",
        ] {
            let e = parse_uri(bad).expect_err(bad);
            assert!(e.starts_with("unsupported contact-me-uri"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let long = format!("http://192.0.2.7/{}", "a".repeat(MAX_URI_BYTES));
        let e = parse_uri(&long).expect_err("too long");
        assert!(e.contains("longer than 2048 bytes") && e.len() < 200, "{e}");
        assert!(parse_uri(&format!("http://192.0.2.7/{}", "a".repeat(MAX_URI_BYTES - 17))).is_ok());
    }
}
