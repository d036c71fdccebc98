//! The known-answer vectors of `tests/vectors/secure-mode-data.json`, made by an independent
//! implementation of the format: sealing must match them byte for byte.

use dls_secure_mode::{Envelope, ErrorKind, derive_key, open, seal, seal_plaintext};

use crate::common::{VECTORS, mac, pin};

#[test]
fn the_file_is_the_one_expected() {
    assert_eq!(VECTORS.version, 1);
    // Guards against a truncated file making the loops below vacuous.
    assert_eq!(VECTORS.positive.len(), 10);
    assert_eq!(VECTORS.negative.len(), 9);
}

#[test]
fn pins_split_as_the_vectors_say() {
    for v in &VECTORS.positive {
        let p = pin(&v.pin);
        assert_eq!(p.key_part(), v.key_part, "{}", v.name);
        assert_eq!(p.tan(), v.tan, "{}", v.name);
        assert!(p.check_tan(&v.tan), "{}", v.name);
    }
}

#[test]
fn derived_keys_match() {
    for v in &VECTORS.positive {
        let key = derive_key(&pin(&v.pin), &v.salt(), v.iterations);
        assert_eq!(hex::encode(*key), v.key_hex, "{}", v.name);
    }
}

#[test]
fn sealing_the_plaintext_is_byte_exact() {
    for v in &VECTORS.positive {
        let text = seal_plaintext(&pin(&v.pin), &mac(&v.mac), v.plaintext.as_bytes(), &v.params());
        assert_eq!(text.as_deref(), Ok(v.secure_mode_data.as_str()), "{}", v.name);
    }
}

/// `encode_item_list` writes the canonical plaintext. Two vectors differ from it, both
/// legitimately: `escaping-and-unicode` writes `"` in text as `&quot;` (the codec writes it
/// as is; both are the same XML), and `declaration-and-whitespace` has an XML declaration
/// and indentation. Sealing the items is byte-exact wherever the plaintexts agree.
#[test]
fn sealing_the_items_is_byte_exact_where_the_plaintext_is_canonical() {
    let mut differing = Vec::new();
    for v in &VECTORS.positive {
        let items = v.items();
        let canonical = dls_message::encode_item_list(&items).expect("vector items encode");
        if canonical != v.plaintext {
            differing.push(v.name.as_str());
            continue;
        }
        let text = seal(&pin(&v.pin), &mac(&v.mac), &items, &v.params());
        assert_eq!(text.as_deref(), Ok(v.secure_mode_data.as_str()), "{}", v.name);
    }
    assert_eq!(differing, ["escaping-and-unicode", "declaration-and-whitespace"]);
}

#[test]
fn opening_gives_the_items() {
    for v in &VECTORS.positive {
        let items = v.items();
        assert_eq!(open(&pin(&v.pin), &mac(&v.mac), &v.secure_mode_data), Ok(items.clone()), "{}", v.name);
        if let Some(wrapped) = &v.secure_mode_data_wrapped {
            assert!(wrapped.contains('\n'), "{}", v.name);
            assert_eq!(open(&pin(&v.pin), &mac(&v.mac), wrapped), Ok(items), "{} (wrapped)", v.name);
        }
    }
}

#[test]
fn headers_carry_the_vector_parameters() {
    for v in &VECTORS.positive {
        let env = Envelope::parse(&v.secure_mode_data).expect(&v.name);
        assert_eq!(env.header().iterations(), v.iterations, "{}", v.name);
        assert_eq!(env.header().salt(), &v.salt(), "{}", v.name);
        assert_eq!(env.header().nonce(), &v.nonce(), "{}", v.name);
        // Decrypting with the vector's key gives the vector's plaintext, byte for byte.
        let key = crate::common::hex_array::<32>(&v.key_hex);
        let plaintext = env.decrypt_with_key(&key, &mac(&v.mac)).expect(&v.name);
        assert_eq!(plaintext.as_slice(), v.plaintext.as_bytes(), "{}", v.name);
    }
}

#[test]
fn negative_vectors_fail_as_stated() {
    for v in &VECTORS.negative {
        let want = match v.error.as_str() {
            "malformed" => ErrorKind::Malformed,
            "authentication" => ErrorKind::Authentication,
            other => panic!("{}: unknown error kind {other}", v.name),
        };
        let got = open(&pin(&v.pin), &mac(&v.mac), &v.secure_mode_data);
        assert_eq!(got.as_ref().map_err(dls_secure_mode::Error::kind), Err(want), "{}: {got:?}", v.name);
    }
}
