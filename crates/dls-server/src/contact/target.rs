//! Whom a contact-me goes to: the phone's `contact-me-uri` parsed strictly, and the check
//! that its host is the address the phone calls from (see the [module](super)'s
//! documentation).

use std::net::IpAddr;
use std::str::FromStr;

use hyper::http::uri::PathAndQuery;
use url::{Host, ParseError, Position, Url};

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

/// Parses a contact-me URI strictly (`url`): `http://host[:port]/path[?query]`, host an IP
/// literal (IPv6 in brackets, no zone) or a DNS name, port 1 to 65535 (80 when none is
/// given), no userinfo, no fragment, printable ASCII, at most [`MAX_URI_BYTES`], and written
/// as `url` writes it back (but for the case of the scheme and the host, a default port
/// written out, and an IPv6 address in another of its forms): no short or hexadecimal IPv4
/// forms, no missing path, no dot segments, nothing `url` would percent-encode.
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
    let url = Url::parse(uri).map_err(|e| {
        bad(match e {
            ParseError::RelativeUrlWithoutBase | ParseError::RelativeUrlWithCannotBeABaseBase => "not http://",
            ParseError::InvalidPort => "port",
            _ => "host",
        })
    })?;
    if url.scheme() != "http" {
        return Err(bad("not http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("userinfo"));
    }
    if url.fragment().is_some() {
        return Err(bad("fragment"));
    }
    let host = match url.host() {
        Some(Host::Ipv4(ip)) => TargetHost::Ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => TargetHost::Ip(IpAddr::V6(ip)),
        Some(Host::Domain(name)) if is_dns_name(name) => TargetHost::Name(name.to_owned()),
        Some(Host::Domain(_)) | None => return Err(bad("host")),
    };
    let port = url.port_or_known_default().filter(|p| *p != 0).ok_or_else(|| bad("port"))?;
    // `url` accepts more than it writes back: `http://h` (no path), `http://@h/`, `http:///h`,
    // `http://1.2.3/`, `/a/../b`, `http://h:/`. Only what it writes back as given is taken
    // (the port may be written out when it is the default one; an IPv6 address may be
    // written in any of its forms, e.g. `[::ffff:192.0.2.7]`, which `url` writes in hex).
    let host_text = match url.host() {
        Some(Host::Ipv6(ip)) => uri
            .get(7..)
            .and_then(|r| r.find(']').map(|end| &r[..=end]))
            .filter(|written| Host::parse(written) == Ok(Host::Ipv6(ip)))
            .or(url.host_str()),
        _ => url.host_str(),
    }
    .unwrap_or_default();
    let rest = &url[Position::BeforePath..];
    let written = |authority: &str| {
        uri.get(..7 + authority.len()).is_some_and(|head| head.eq_ignore_ascii_case(&format!("http://{authority}")))
            && uri.get(7 + authority.len()..) == Some(rest)
    };
    let authority =
        [host_text.to_owned(), format!("{host_text}:{port}")].into_iter().find(|a| written(a)).ok_or_else(|| {
            // The part before any query holds no `/` after the scheme's.
            let no_path = !uri.get(7..).unwrap_or_default().split('?').next().unwrap_or_default().contains('/');
            if no_path {
                bad("no path")
            } else {
                let plain: String = url.as_str().chars().take(80).collect();
                bad(&format!("not in its plain form {plain:?}"))
            }
        })?;
    let path = rest.to_owned();
    if path.is_empty() || PathAndQuery::from_str(&path).is_err() {
        return Err(bad("path"));
    }
    Ok(Target { host, port, authority, path })
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

    /// How `url`'s reading meets the rules: what it normalises, and what it would take that
    /// the rules refuse.
    #[test]
    fn uris_as_the_url_crate_reads_them() {
        let parts = |u: &str| parse_uri(u).map(|t| (t.host, t.port, t.authority, t.path));
        let ip = |s: &str| TargetHost::Ip(s.parse().expect("ip"));
        // IPv6: bracketed, any case and any form (kept as written for `Host`), a port.
        assert_eq!(
            parts("http://[2001:DB8::7]:8085/c"),
            Ok((ip("2001:db8::7"), 8085, "[2001:DB8::7]:8085".to_owned(), "/c".to_owned()))
        );
        assert_eq!(parts("http://[::ffff:192.0.2.7]/c").map(|p| p.0), Ok(ip("::ffff:192.0.2.7")));
        assert_eq!(parts("http://[::ffff:c000:207]/c").map(|p| p.0), Ok(ip("::ffff:192.0.2.7")));
        assert_eq!(
            parts("http://[2001:db8:0:0::7]/c").map(|p| (p.0, p.2)),
            Ok((ip("2001:db8::7"), "[2001:db8:0:0::7]".to_owned()))
        );
        // Default ports: 80 when none is given; written out, it is taken and kept for `Host`.
        assert_eq!(parts("http://192.0.2.7/c"), Ok((ip("192.0.2.7"), 80, "192.0.2.7".to_owned(), "/c".to_owned())));
        assert_eq!(
            parts("http://192.0.2.7:80/c"),
            Ok((ip("192.0.2.7"), 80, "192.0.2.7:80".to_owned(), "/c".to_owned()))
        );
        // A name: any case, lowercased.
        assert_eq!(
            parts("HTTP://Phone-12.Example.NET/c").map(|p| p.0),
            Ok(TargetHost::Name("phone-12.example.net".into()))
        );
        // A query straight after the path.
        assert_eq!(parts("http://192.0.2.7/?a=1&b").map(|p| p.3), Ok("/?a=1&b".to_owned()));
        // Refused although `url` reads them: userinfo (even empty), no authority, short or
        // hexadecimal IPv4 forms, an empty port, dot segments, characters `url` would
        // percent-encode, a backslash, an IPv6 zone.
        for (bad, why) in [
            ("http://user@192.0.2.7/c", "(userinfo)"),
            ("http://:pw@192.0.2.7/c", "(userinfo)"),
            ("http://@192.0.2.7/c", "plain form"),
            ("http:///192.0.2.7/c", "plain form"),
            ("http:192.0.2.7/c", "plain form"),
            ("http:/192.0.2.7/c", "plain form"),
            ("http://1.2.3/c", "plain form"),
            ("http://0xc0.0.2.7/c", "plain form"),
            ("http://3221225991/c", "plain form"),
            ("http://192.0.2.7:/c", "plain form"),
            ("http://192.0.2.7:08085/c", "plain form"),
            ("http://192.0.2.7/a/../c", "plain form"),
            ("http://192.0.2.7/a\"b", "plain form"),
            ("http://192.0.2.7\\c", "(no path)"),
            ("http://[fe80::1%eth0]/c", "(host)"),
            ("http://192.0.2.7:8085", "(no path)"),
            ("http://192.0.2.7:8085?x=/", "(no path)"),
            ("http://192.0.2.7:99999/c", "(port)"),
        ] {
            let e = parse_uri(bad).expect_err(bad);
            assert!(e.starts_with("unsupported contact-me-uri") && e.contains(why), "{bad}: {e}");
        }
    }
}
