//! Parsing an `Authorization: Digest …` header value into its parameters (RFC 7235 section 2.1,
//! RFC 7616 section 3.4), and decoding `username*` (RFC 8187).
//!
//! Tolerant where clients differ (scheme and parameter names in any case, whitespace around `=`
//! and `,`, empty list elements, quoted or unquoted values), strict where ambiguity would help an
//! attacker (a repeated parameter is an error, control characters are errors).

use std::fmt;

/// Longest parameter name kept in a [`ParseError::Duplicate`] (names are tokens, so ASCII).
const MAX_NAME_IN_ERROR: usize = 32;

/// Why a header value is not a well-formed Digest credential. Positions are byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The value is not UTF-8.
    #[error("header value is not valid UTF-8")]
    NotUtf8,
    /// The scheme is not `Digest` (for example `Basic`); a server answers with a challenge.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// `Digest` with no parameters.
    #[error("no parameters after Digest")]
    Empty,
    /// A parameter name was expected.
    #[error("expected a parameter name at byte {0}")]
    ExpectedName(usize),
    /// `=` was expected after a parameter name.
    #[error("expected '=' at byte {0}")]
    ExpectedEquals(usize),
    /// A value was expected after `=`.
    #[error("expected a value at byte {0}")]
    ExpectedValue(usize),
    /// A quoted string has no closing quote.
    #[error("unterminated quoted string starting at byte {0}")]
    UnterminatedQuote(usize),
    /// A control character (other than horizontal tab) inside a value.
    #[error("control character at byte {0}")]
    ControlChar(usize),
    /// `,` or the end was expected after a value.
    #[error("expected ',' at byte {0}")]
    ExpectedComma(usize),
    /// A parameter appears twice.
    #[error("parameter {0:?} appears more than once")]
    Duplicate(String),
}

/// The parameters of a Digest `Authorization` header, names lowercased, values unquoted.
///
/// `Debug` shows every value but `response`.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    params: Vec<(String, String)>,
}

impl Authorization {
    /// Parses a header value. The caller bounds its length (the verifier refuses more than
    /// [`Config::max_header_len`](crate::Config::max_header_len) bytes before parsing).
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        let s = std::str::from_utf8(value).map_err(|_| ParseError::NotUtf8)?;
        let b = s.as_bytes();
        let mut i = skip_ws(b, 0);
        let scheme_start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if !s[scheme_start..i].eq_ignore_ascii_case("Digest") {
            return Err(ParseError::NotDigest);
        }
        if i < b.len() && !is_ws(b[i]) {
            return Err(ParseError::NotDigest);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            // List elements may be empty: skip whitespace and commas.
            while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
                i += 1;
            }
            if i == b.len() {
                break;
            }
            let name_start = i;
            while i < b.len() && is_tchar(b[i]) {
                i += 1;
            }
            if i == name_start {
                return Err(ParseError::ExpectedName(i));
            }
            let name = s[name_start..i].to_ascii_lowercase();
            i = skip_ws(b, i);
            if b.get(i) != Some(&b'=') {
                return Err(ParseError::ExpectedEquals(i));
            }
            i = skip_ws(b, i + 1);
            let (value, next) = if b.get(i) == Some(&b'"') { quoted(b, i)? } else { unquoted(s, i)? };
            i = skip_ws(b, next);
            if i < b.len() && b[i] != b',' {
                return Err(ParseError::ExpectedComma(i));
            }
            if params.iter().any(|(n, _)| *n == name) {
                let mut shown = name;
                shown.truncate(MAX_NAME_IN_ERROR);
                return Err(ParseError::Duplicate(shown));
            }
            params.push((name, value));
        }
        if params.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(Self { params })
    }

    /// The value of a parameter; `name` is matched ignoring ASCII case.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every parameter in order, names lowercased (unknown ones included).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (n, v) in &self.params {
            if n == "response" {
                m.entry(n, &"<redacted>");
            } else {
                m.entry(n, v);
            }
        }
        m.finish()
    }
}

/// Reads a quoted string starting at the opening quote; returns the unescaped value and the
/// index after the closing quote.
fn quoted(b: &[u8], start: usize) -> Result<(String, usize), ParseError> {
    let mut out = Vec::new();
    let mut i = start + 1;
    loop {
        match b.get(i) {
            None => return Err(ParseError::UnterminatedQuote(start)),
            Some(b'"') => break,
            Some(b'\\') => {
                // quoted-pair: the next octet is taken literally (a multi-byte character's
                // continuation bytes follow as ordinary octets).
                match b.get(i + 1) {
                    None => return Err(ParseError::UnterminatedQuote(start)),
                    Some(&c) if is_ctl(c) => return Err(ParseError::ControlChar(i + 1)),
                    Some(&c) => out.push(c),
                }
                i += 2;
            }
            Some(&c) if is_ctl(c) => return Err(ParseError::ControlChar(i)),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII quotes and backslashes were removed from valid UTF-8, so this cannot fail; map
    // the impossible case to an error rather than panic.
    let value = String::from_utf8(out).map_err(|_| ParseError::NotUtf8)?;
    Ok((value, i + 1))
}

/// Reads an unquoted value (a token, or the token68-like strings some clients send unquoted,
/// such as `nonce=abc/def==`): everything up to whitespace or a comma.
fn unquoted(s: &str, start: usize) -> Result<(String, usize), ParseError> {
    let b = s.as_bytes();
    let mut i = start;
    while i < b.len() && !is_ws(b[i]) && b[i] != b',' {
        if is_ctl(b[i]) || b[i] == b'"' {
            return Err(if b[i] == b'"' { ParseError::ExpectedComma(i) } else { ParseError::ControlChar(i) });
        }
        i += 1;
    }
    if i == start {
        return Err(ParseError::ExpectedValue(start));
    }
    Ok((s[start..i].to_owned(), i))
}

/// Decodes an RFC 8187 `ext-value` (`UTF-8'[language]'percent-encoded`), as used by
/// `username*`. Only the UTF-8 charset is accepted (RFC 7616 section 3.4.4). `None` when the
/// value is not well formed.
pub fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("UTF-8") {
        return None;
    }
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            c if is_attr_char(c) => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 8187 attr-char.
fn is_attr_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&c)
}

/// RFC 9110 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn is_ctl(c: u8) -> bool {
    (c < 0x20 && c != b'\t') || c == 0x7f
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Authorization, ParseError> {
        Authorization::parse(s.as_bytes())
    }

    #[test]
    fn tolerant_forms() {
        let a =
            p("  dIgEsT  Username = \"a\\\"b\" ,, QOP=auth ,nc=00000001,algorithm=\"MD5\", x=y  ").expect("test value");
        assert_eq!(a.param("username"), Some("a\"b"));
        assert_eq!(a.param("qop"), Some("auth"));
        assert_eq!(a.param("NC"), Some("00000001"));
        assert_eq!(a.param("algorithm"), Some("MD5"));
        assert_eq!(a.param("x"), Some("y"));
        assert_eq!(a.params().count(), 5);
        assert_eq!(p("Digest nonce=ab/cd+==").expect("test value").param("nonce"), Some("ab/cd+=="));
        assert_eq!(p("Digest realm=\"\"").expect("test value").param("realm"), Some(""));
        assert_eq!(p("Digest u=\"J\u{e4}s\u{f8}n\"").expect("test value").param("u"), Some("J\u{e4}s\u{f8}n"));
    }

    #[test]
    fn errors() {
        assert_eq!(p("Basic dXNlcjpwYXNz"), Err(ParseError::NotDigest));
        assert_eq!(p("Digestive a=b"), Err(ParseError::NotDigest));
        assert_eq!(p("Digest"), Err(ParseError::Empty));
        assert_eq!(p("Digest , ,"), Err(ParseError::Empty));
        assert_eq!(p("Digest a=1, A=2"), Err(ParseError::Duplicate("a".into())));
        assert_eq!(p("Digest a"), Err(ParseError::ExpectedEquals(8)));
        assert_eq!(p("Digest a="), Err(ParseError::ExpectedValue(9)));
        assert_eq!(p("Digest a=\"x"), Err(ParseError::UnterminatedQuote(9)));
        assert_eq!(p("Digest a=\"x\\"), Err(ParseError::UnterminatedQuote(9)));
        assert_eq!(p("Digest a=\"x\ny\""), Err(ParseError::ControlChar(11)));
        assert_eq!(p("Digest a=\"x\" b=1"), Err(ParseError::ExpectedComma(13)));
        assert_eq!(p("Digest a=x\"y\""), Err(ParseError::ExpectedComma(10)));
        assert_eq!(p("Digest =x"), Err(ParseError::ExpectedName(7)));
        assert_eq!(Authorization::parse(b"Digest a=\xff"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn debug_hides_response() {
        let a = p("Digest username=\"u\", response=\"0123abcd\"").expect("test value");
        let d = format!("{a:?}");
        assert!(d.contains("\"u\"") && !d.contains("0123abcd"), "{d}");
    }

    #[test]
    fn ext_values() {
        assert_eq!(decode_ext_value("UTF-8''J%C3%A4s%C3%B8n%20Doe").as_deref(), Some("J\u{e4}s\u{f8}n Doe"));
        assert_eq!(decode_ext_value("utf-8'en'abc").as_deref(), Some("abc"));
        assert_eq!(decode_ext_value("ISO-8859-1''abc"), None);
        assert_eq!(decode_ext_value("UTF-8''%C3"), None); // not UTF-8
        assert_eq!(decode_ext_value("UTF-8''%4"), None);
        assert_eq!(decode_ext_value("UTF-8''a b"), None);
        assert_eq!(decode_ext_value("abc"), None);
    }
}
