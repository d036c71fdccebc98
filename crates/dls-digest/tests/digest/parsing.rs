//! Property tests of the header parser and of the whole verify path on arbitrary input.

use dls_digest::{Authorization, Config, Outcome};
use proptest::prelude::*;

use crate::client::escape;
use crate::{MAC_A, NOW, Store, ip, request, target, verifier};

/// A parameter value: any characters but controls (so quotes and backslashes included).
fn value() -> impl Strategy<Value = String> {
    "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,24}"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(s in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Authorization::parse(s.as_bytes());
        let _ = Authorization::parse(format!("Digest {s}").as_bytes());
        let _ = Authorization::parse(&bytes);
    }

    #[test]
    fn verify_never_panics_and_answers_4xx(s in "Digest [ -~]{0,300}") {
        let v = verifier(Config::new("dls"));
        let t = target(MAC_A);
        let o = v.verify(&request(&t, Some(&s), ip(1), NOW), &Store::phones());
        prop_assert!(matches!(o.status(), 400 | 401), "{:?}", o);
    }

    #[test]
    fn built_headers_parse_back(
        params in proptest::collection::vec((token(), value(), any::<bool>()), 1..8),
        ws in proptest::collection::vec((ows(), ows(), ows()), 8),
    ) {
        // Distinct names (ignoring case); values quoted (escaped) or, when they are tokens, bare.
        let mut seen = std::collections::HashSet::new();
        let params: Vec<_> = params.into_iter().filter(|(n, _, _)| seen.insert(n.to_ascii_lowercase())).collect();
        let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&c);
        let is_token = |v: &str| !v.is_empty() && v.bytes().all(is_tchar);
        let mut header = String::from("Digest ");
        for (i, ((name, val, bare), (w1, w2, w3))) in params.iter().zip(&ws).enumerate() {
            let v = if *bare && is_token(val) { val.clone() } else { format!("\"{}\"", escape(val)) };
            if i > 0 {
                header += &format!("{w3},{w1}");
            }
            header += &format!("{name}{w1}={w2}{v}");
        }
        let parsed =
            Authorization::parse(header.as_bytes()).map_err(|e| TestCaseError::fail(format!("{header}: {e}")))?;
        let got: Vec<(String, String)> = parsed.params().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let want: Vec<(String, String)> = params.iter().map(|(n, v, _)| (n.to_ascii_lowercase(), v.clone())).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn verify_survives_mutations_of_a_valid_header() {
    let v = verifier(Config::new("dls"));
    let t = target(MAC_A);
    let Outcome::Challenge { www_authenticate, .. } = v.verify(&request(&t, None, ip(1), NOW), &Store::phones()) else {
        panic!()
    };
    let good = crate::client::Answer::from_challenge(&www_authenticate[0], MAC_A, crate::SECRET_A, &t).header();
    let mut accepted = 0;
    // Every truncation of a valid header: never accepted except whole, never a panic.
    for end in 0..=good.len() {
        if !good.is_char_boundary(end) {
            continue;
        }
        let o = v.verify(&request(&t, Some(&good[..end]), ip(1), NOW), &Store::phones());
        if let Outcome::Accept { .. } = o {
            accepted += 1;
            assert_eq!(end, good.len(), "{}", &good[..end]);
        }
    }
    assert_eq!(accepted, 1);
}
