//! Refusals: malformed input is kept apart from failed authentication, and every
//! authentication failure looks the same.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dls_secure_mode::{
    Envelope, Error, ErrorKind, Item, MacAddr, Pin, SealParams, Sealer, derive_key, open, seal, seal_plaintext,
};

use crate::common::{mac, pin, positive};

fn basic() -> (&'static str, Pin, MacAddr) {
    let v = positive("basic");
    (v.secure_mode_data.as_str(), pin(&v.pin), mac(&v.mac))
}

fn raw_of(text: &str) -> Vec<u8> {
    STANDARD.decode(text).expect("Base64")
}

/// Builds an envelope the way the format page describes it, with aes-gcm directly, so that
/// any plaintext (also one `seal` refuses) can be sealed.
fn forge(pin: &Pin, mac: &MacAddr, plaintext: &[u8]) -> String {
    let salt = [3u8; 16];
    let nonce = [4u8; 12];
    let mut header = vec![1u8];
    header.extend_from_slice(&1_000u32.to_be_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let mut aad = header.clone();
    aad.extend_from_slice(mac.to_string().as_bytes());
    let key = derive_key(pin, &salt, 1_000);
    let cipher = Aes256Gcm::new_from_slice(key.as_slice()).expect("32-byte key");
    let sealed = cipher.encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad }).expect("encrypts");
    header.extend_from_slice(&sealed);
    STANDARD.encode(header)
}

#[test]
fn wrong_pin_wrong_mac_and_tampering_are_one_indistinguishable_error() {
    let (text, p, m) = basic();
    let mut tampered = raw_of(text);
    let last = tampered.len() - 20;
    tampered[last] ^= 0x01; // a ciphertext byte
    let failures = [
        open(&pin("923456789012321"), &m, text),
        open(&pin("12345678901"), &m, text), // a prefix of the right key part
        open(&p, &mac("00:01:E3:25:EA:14"), text),
        open(&p, &m, &STANDARD.encode(&tampered)),
    ];
    for f in &failures {
        assert_eq!(f, &Err(Error::Authentication));
    }
    let e = Error::Authentication;
    assert!(e.is_authentication() && !e.is_malformed());
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert_eq!(e.to_string(), "authentication failed: wrong PIN, wrong MAC address, or altered data");
}

#[test]
fn the_tan_and_the_mac_spelling_do_not_matter() {
    let (text, _, _) = basic();
    let items = positive("basic").items();
    for p in ["123456789012000", "1234 5678 9012 999", "1234-5678-9012-321"] {
        assert_eq!(open(&pin(p), &mac("00:01:E3:25:EA:13"), text).as_ref(), Ok(&items), "{p}");
    }
    for m in ["00-01-e3-25-ea-13", "0001e325ea13", "0001E325EA13"] {
        assert_eq!(open(&pin("123456789012321"), &mac(m), text).as_ref(), Ok(&items), "{m}");
    }
}

#[test]
fn malformed_text() {
    let (text, p, m) = basic();
    let mut cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        (format!("{text}="), "length not a multiple of 4"),
        (text.replacen('A', "*", 1), "character outside the alphabet"),
        (text.replacen('A', "-", 1), "URL-safe alphabet"),
        (format!("{}\u{a0}", &text[..text.len() - 4]), "non-ASCII white space"),
        (STANDARD.encode([1u8; 48]), "48 bytes"),
        (STANDARD.encode(vec![0u8; (1 << 20) + 1]), "1 MiB + 1"),
    ];
    // Non-canonical Base64: the shortest vector ends in '=', so its last symbol has spare bits.
    let short = &positive("shortest-pin").secure_mode_data;
    assert!(short.ends_with("pY="));
    cases.push((short.replace("pY=", "pZ="), "non-zero trailing bits"));
    cases.push((short.trim_end_matches('=').to_owned(), "missing padding"));
    for (t, why) in &cases {
        let e = open(&p, &m, t).expect_err(why);
        assert_eq!(e.kind(), ErrorKind::Malformed, "{why}: {e}");
        assert!(matches!(e, Error::Base64(_) | Error::Size { .. }), "{why}: {e:?}");
    }
}

#[test]
fn malformed_header() {
    let (text, p, m) = basic();
    let raw = raw_of(text);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut r = raw.clone();
        f(&mut r);
        open(&p, &m, &STANDARD.encode(r))
    };
    for v in [0u8, 2, 0x81, 0xFF] {
        assert_eq!(with(&|r| r[0] = v), Err(Error::Version(v)));
    }
    for n in [0u32, 1, 999, 10_000_001, u32::MAX] {
        assert_eq!(with(&|r| r[1..5].copy_from_slice(&n.to_be_bytes())), Err(Error::Iterations(n)), "{n}");
    }
    // In range but not what was sealed: the header is authenticated.
    assert_eq!(with(&|r| r[1..5].copy_from_slice(&1_001u32.to_be_bytes())), Err(Error::Authentication));
    // Exactly header and tag: well-formed, and cannot authenticate.
    assert_eq!(with(&|r| r.truncate(49)), Err(Error::Authentication));
}

#[test]
fn white_space_is_ignored_anywhere() {
    let (text, p, m) = basic();
    let spaced: String =
        text.chars().enumerate().flat_map(|(i, c)| [c, [' ', '\t', '\n', '\r', '\x0c'][i % 5]]).collect();
    assert_eq!(open(&p, &m, &format!("\r\n  {spaced}\n")), Ok(positive("basic").items()));
}

#[test]
fn authenticated_but_not_an_item_list_is_malformed_and_says_nothing_of_the_content() {
    let (_, p, m) = basic();
    // First check that the forger builds what `open` accepts.
    let good = forge(&p, &m, b"<ItemList><Item name=\"x\">secret-1</Item></ItemList>");
    assert_eq!(open(&p, &m, &good), Ok(vec![Item::new("x", "secret-1")]));
    for plaintext in [
        &b"<NotItemList>secret-2</NotItemList>"[..],
        b"<ItemList><Item name=\"x\">secret-3</Item>",
        b"<ItemList><Item>secret-4</Item></ItemList>",
        b"\xff\xfesecret-5",
        b"",
    ] {
        let e = open(&p, &m, &forge(&p, &m, plaintext)).expect_err("refused");
        assert!(matches!(e, Error::Plaintext { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Malformed);
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}

#[test]
fn seal_parameter_bounds() {
    assert_eq!(SealParams::default().iterations(), 600_000);
    assert_eq!(SealParams::new(100_000).map(|p| p.iterations()), Ok(100_000));
    assert_eq!(SealParams::new(10_000_000).map(|p| p.iterations()), Ok(10_000_000));
    for n in [0, 1_000, 99_999, 10_000_001] {
        let e = SealParams::new(n).expect_err("refused");
        assert_eq!(e, Error::SealIterations { given: n, min: 100_000 });
        assert_eq!(e.kind(), ErrorKind::InvalidParameter);
    }
    assert!(SealParams::insecure_fixed_for_tests(1_000, [0; 16], [0; 12]).is_ok());
    for n in [0, 999, 10_000_001] {
        let e = SealParams::insecure_fixed_for_tests(n, [0; 16], [0; 12]).expect_err("refused");
        assert_eq!(e, Error::SealIterations { given: n, min: 1_000 });
    }
}

#[test]
fn seal_refusals() {
    let (_, p, m) = basic();
    let params = SealParams::insecure_fixed_for_tests(1_000, [1; 16], [2; 12]).expect("params");
    let e = seal(&p, &m, &[Item::new("", "x")], &params).expect_err("empty name");
    assert!(matches!(e, Error::Encode(_)) && e.is_malformed(), "{e:?}");
    let e = seal(&p, &m, &[Item::new("x", "a\u{0}b")], &params).expect_err("U+0000");
    assert!(matches!(e, Error::Encode(_)), "{e:?}");
    for bad in [&b"<Other/>"[..], b"", b"<ItemList>", b"not xml"] {
        let e = seal_plaintext(&p, &m, bad, &params).expect_err("not an ItemList");
        assert!(matches!(e, Error::Plaintext { .. }), "{e:?}");
    }
    // The largest plaintext that fits 1 MiB, and one byte more.
    let fill = |n: usize| format!("<ItemList><Item name=\"x\">{}</Item></ItemList>", "a".repeat(n - 43));
    let fits = fill((1 << 20) - 49);
    assert_eq!(fits.len(), (1 << 20) - 49);
    let text = seal_plaintext(&p, &m, fits.as_bytes(), &params).expect("fits");
    assert_eq!(Envelope::parse(&text).map(|e| e.header().iterations()), Ok(1_000));
    let e = seal_plaintext(&p, &m, fill((1 << 20) - 48).as_bytes(), &params).expect_err("too big");
    assert_eq!(e, Error::Size { size: (1 << 20) + 1 });
}

#[test]
fn production_sealing_draws_a_fresh_salt_and_nonce() {
    let (_, p, _) = basic();
    let params = SealParams::new(100_000).expect("params");
    let a = Sealer::new(&p, &params).expect("sealer");
    let b = Sealer::new(&p, &params).expect("sealer");
    assert_eq!(a.header().iterations(), 100_000);
    assert_ne!(a.header().salt(), b.header().salt());
    assert_ne!(a.header().nonce(), b.header().nonce());
    // The fixed test parameters are what they say.
    let fixed = SealParams::insecure_fixed_for_tests(1_000, [5; 16], [6; 12]).expect("params");
    let c = Sealer::new(&p, &fixed).expect("sealer");
    assert_eq!((c.header().salt(), c.header().nonce()), (&[5; 16], &[6; 12]));
    // Debug shows the header, never the key.
    let d = format!("{c:?}");
    assert!(d.starts_with("Sealer { header: Header") && !d.contains("key"), "{d}");
}

#[test]
fn messages_are_one_line() {
    let (text, p, m) = basic();
    let errors = [
        open(&p, &m, "!!!!"),
        open(&p, &m, ""),
        open(&p, &m, &STANDARD.encode([2u8; 60])),
        open(&pin("999999999999999"), &m, text),
    ];
    for e in errors {
        let s = e.expect_err("refused").to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
    }
}
