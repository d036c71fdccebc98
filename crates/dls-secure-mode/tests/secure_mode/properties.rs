//! Properties: sealing then opening is the identity; no single-bit change goes unnoticed;
//! no input makes the opener panic. Case counts are low and the iteration count is the
//! opener's minimum (1,000), so the suite stays fast in a debug build.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dls_secure_mode::{Envelope, Error, ErrorKind, HEADER_LEN, Item, MacAddr, Pin, SealParams, derive_key, open, seal};
use proptest::prelude::*;

use crate::common::{mac, pin};

/// A character XML 1.0 can carry: what an item value may hold.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range(' ', '~'),
        1 => prop::sample::select(vec!['\t', '\n', '\r', '&', '<', '>', '"', '\'', ']']),
        1 => any::<char>().prop_filter("XML Char", |&c| {
            matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        }),
    ]
}

fn xml_string(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(xml_char(), min..=max).prop_map(|v| v.into_iter().collect())
}

fn item() -> impl Strategy<Value = Item> {
    (xml_string(1, 12), any::<Option<u32>>(), xml_string(0, 40))
        .prop_map(|(name, index, value)| Item { index, ..Item::new(name, value) })
}

fn pin_strategy() -> impl Strategy<Value = Pin> {
    "[0-9]{9,32}".prop_map(|s| pin(&s))
}

fn params() -> impl Strategy<Value = SealParams> {
    (any::<[u8; 16]>(), any::<[u8; 12]>())
        .prop_map(|(salt, nonce)| SealParams::insecure_fixed_for_tests(1_000, salt, nonce).expect("params"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn seal_then_open_is_the_identity(
        items in prop::collection::vec(item(), 0..5),
        p in pin_strategy(),
        octets in any::<[u8; 6]>(),
        params in params(),
    ) {
        let m = MacAddr::from_bytes(octets);
        let text = seal(&p, &m, &items, &params).expect("seals");
        prop_assert_eq!(open(&p, &m, &text), Ok(items));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused(items in prop::collection::vec(item(), 1..3), bit in any::<prop::sample::Index>()) {
        let (p, m) = (pin("123456789012345"), mac("00:01:E3:25:EA:13"));
        let params = SealParams::insecure_fixed_for_tests(1_000, [0x11; 16], [0x22; 12]).expect("params");
        let text = seal(&p, &m, &items, &params).expect("seals");
        let mut raw = STANDARD.decode(&text).expect("Base64");
        let bit = bit.index(raw.len() * 8);
        raw[bit / 8] ^= 1 << (bit % 8);
        let key = derive_key(&p, &[0x11; 16], 1_000);
        check_flip(&STANDARD.encode(&raw), bit, &p, &m, &key)?;
    }

    /// Any text: parsing never panics, and what it refuses is malformed.
    #[test]
    fn arbitrary_text_is_refused_cleanly(text in any::<String>()) {
        if let Err(e) = Envelope::parse(&text) {
            prop_assert_eq!(e.kind(), ErrorKind::Malformed);
        }
    }

    /// Any bytes that are valid Base64 and long enough: parsing and opening never panic.
    #[test]
    fn arbitrary_envelopes_are_refused_cleanly(mut raw in prop::collection::vec(any::<u8>(), 0..200), fix in any::<bool>()) {
        if fix && raw.len() >= 5 {
            // Most random headers fail the version and range checks: make half of them pass.
            raw[0] = 1;
            raw[1..5].copy_from_slice(&1_000u32.to_be_bytes());
        }
        let text = STANDARD.encode(&raw);
        match Envelope::parse(&text) {
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Malformed),
            Ok(env) => {
                prop_assert!(raw.len() >= 49);
                let got = env.open_with_key(&[7; 32], &mac("00:01:E3:25:EA:13"));
                prop_assert_eq!(got, Err(Error::Authentication));
            }
        }
    }

    /// ASCII white space anywhere changes nothing.
    #[test]
    fn white_space_is_ignored(cuts in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![" ", "\t", "\r\n", "\n", "\x0c"])), 1..20)) {
        let text = &BLOB.0;
        let mut spaced = text.clone();
        for (at, ws) in cuts {
            let at = at.index(spaced.len() + 1);
            spaced.insert_str(at, ws);
        }
        prop_assert_eq!(Envelope::parse(&spaced), Envelope::parse(text));
    }
}

/// One sealed blob for the exhaustive checks, and its raw bytes.
static BLOB: LazyLock<(String, Vec<u8>)> = LazyLock::new(|| {
    let params = SealParams::insecure_fixed_for_tests(1_000, [0x11; 16], [0x22; 12]).expect("params");
    let items = [Item::new("dls-secure-port", "18444"), Item::indexed("dls-server-ca", 0, "-----BEGIN…")];
    let text = seal(&pin("123456789012345"), &mac("00:01:E3:25:EA:13"), &items, &params).expect("seals");
    let raw = STANDARD.decode(&text).expect("Base64");
    (text, raw)
});

/// Every single-bit change of one blob, exhaustively (a few hundred bits).
#[test]
fn every_single_bit_flip_is_refused() {
    let (p, m) = (pin("123456789012345"), mac("00:01:E3:25:EA:13"));
    let key = derive_key(&p, &[0x11; 16], 1_000);
    let raw = &BLOB.1;
    for bit in 0..raw.len() * 8 {
        let mut r = raw.clone();
        r[bit / 8] ^= 1 << (bit % 8);
        check_flip(&STANDARD.encode(&r), bit, &p, &m, &key).unwrap_or_else(|e| panic!("bit {bit}: {e}"));
    }
}

/// The blob with bit `bit` flipped must be refused: malformed if the bit is in the version
/// or iteration count and the header leaves the allowed range, authentication failed
/// otherwise. Where the salt and iteration count are unchanged, the right key is `key`, so
/// the (equivalent, faster) `open_with_key` is used; where the iteration count grew past
/// 20,000 the original key is used too (the header is associated data, so any key fails).
fn check_flip(text: &str, bit: usize, p: &Pin, m: &MacAddr, key: &[u8; 32]) -> Result<(), TestCaseError> {
    let byte = bit / 8;
    let got = match Envelope::parse(text) {
        Err(e) => {
            prop_assert!(byte < 5, "malformed only for the version and iteration bytes, got {e} at byte {byte}");
            prop_assert!(matches!(e, Error::Version(_) | Error::Iterations(_)), "{e:?}");
            return Ok(());
        }
        Ok(env) if (5..21).contains(&byte) || (byte < 5 && env.header().iterations() <= 20_000) => env.open(p, m),
        Ok(env) => env.open_with_key(key, m),
    };
    prop_assert_eq!(got, Err(Error::Authentication), "byte {} of {} (header is {})", byte, text.len(), HEADER_LEN);
    Ok(())
}
