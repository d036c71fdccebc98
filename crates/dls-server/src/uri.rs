//! The parts of request URIs: path segments and query strings, percent-decoded strictly
//! (`percent-encoding`, `form_urlencoded`), and components percent-encoded for URLs the
//! service hands out.
//!
//! Strict: a `%` that does not start a `%XX` escape, or escapes that do not decode to
//! UTF-8, make the whole component invalid (the caller answers `400` or `404`), instead of
//! being passed through or replaced.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`) is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but the unreserved characters (for a query value, a path
/// segment or URL userinfo).
#[must_use]
pub(crate) fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Whether every `%` in `s` starts a `%XX` escape.
fn escapes_are_well_formed(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'%')
        .all(|(i, _)| b.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
}

/// A path segment, decoded: `%XX` escapes only (a `+` is a plus sign); `None` when the
/// encoding is bad.
pub(crate) fn decode_path_segment(s: &str) -> Option<String> {
    if !escapes_are_well_formed(s) {
        return None;
    }
    percent_decode_str(s).decode_utf8().ok().map(Cow::into_owned)
}

/// The `key=value` pairs of a query string (`application/x-www-form-urlencoded`: `+` is a
/// space), keys and values decoded; `None` when one is not valid percent-encoded UTF-8.
pub(crate) fn query_pairs(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let query = query.unwrap_or("");
    // `form_urlencoded` would replace what is not UTF-8 with U+FFFD: refuse instead. The
    // separators are ASCII, so the whole query decodes to UTF-8 exactly when every key and
    // value does.
    if !escapes_are_well_formed(query) || percent_decode_str(query).decode_utf8().is_err() {
        return None;
    }
    Some(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_plus_signs() {
        assert_eq!(decode_path_segment("fw+1.img").as_deref(), Some("fw+1.img"));
        assert_eq!(decode_path_segment("fw%2B1.img").as_deref(), Some("fw+1.img"));
        assert_eq!(decode_path_segment("ring%20tone.mp3").as_deref(), Some("ring tone.mp3"));
        assert_eq!(decode_path_segment("%zz"), None);
        assert_eq!(decode_path_segment("%4"), None);
        assert_eq!(decode_path_segment("%FF"), None);
    }

    #[test]
    fn query_values_are_form_decoded() {
        let pairs = query_pairs(Some("device-type=OpenStage%2060&search=a+b&x=%2B&empty=&flag")).expect("valid");
        let want = [("device-type", "OpenStage 60"), ("search", "a b"), ("x", "+"), ("empty", ""), ("flag", "")];
        assert_eq!(pairs, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(query_pairs(None), Some(Vec::new()));
        assert_eq!(query_pairs(Some("a=%zz")), None);
        assert_eq!(query_pairs(Some("a=%FF")), None);
        assert_eq!(query_pairs(Some("a=%EF%BF%BD")).map(|p| p[0].1.clone()).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn encoding_round_trips() {
        let odd = "a b/c?d&e=f+g%h é~_-";
        assert_eq!(percent_encode(odd), "a%20b%2Fc%3Fd%26e%3Df%2Bg%25h%20%C3%A9~_-");
        assert_eq!(decode_path_segment(&percent_encode(odd)).as_deref(), Some(odd));
        assert_eq!(percent_encode("a b/ü:@%&=+"), "a%20b%2F%C3%BC%3A%40%25%26%3D%2B");
    }
}
