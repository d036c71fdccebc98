//! RFC 7616 section 3.9 examples. The expected values were checked with Python's hashlib (and
//! OpenSSL for SHA-512/256) before being written here.
//!
//! The RFC's nonces are not ours, so a correct digest for them gets `stale=true` (the digest
//! is right, the nonce is not usable) and a wrong one a plain challenge: that difference is
//! what these tests observe through the public API.

use dls_digest::{Algorithm, BadRequest, ChallengeReason, Config, HashFn, Outcome, userhash};

use crate::{NOW, Store, ip, request, verifier};

const REALM_1: &str = "http-auth@example.org";
const NONCE_1: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const CNONCE_1: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const OPAQUE_1: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
const MD5_RESPONSE: &str = "8ca523f5e9506fed4657c9700eebdbec";
const SHA256_RESPONSE: &str = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

fn header_1(algorithm: &str, response: &str) -> String {
    // The RFC's header, unfolded, in its parameter order.
    format!(
        "Digest username=\"Mufasa\", realm=\"{REALM_1}\", uri=\"/dir/index.html\", algorithm={algorithm}, \
         nonce=\"{NONCE_1}\", nc=00000001, cnonce=\"{CNONCE_1}\", qop=auth, response=\"{response}\", \
         opaque=\"{OPAQUE_1}\""
    )
}

fn verify_1(password: &str, header: &str) -> Outcome {
    let mut config = Config::new(REALM_1);
    config.challenges = vec![Algorithm::Sha256, Algorithm::Md5];
    let v = verifier(config);
    let store = Store::new(REALM_1, &[("Mufasa", password)]);
    v.verify(&request("/dir/index.html", Some(header), ip(1), NOW), &store)
}

#[test]
fn section_3_9_1_by_hand() {
    let ha1 = HashFn::Md5.hex(&[b"Mufasa", REALM_1.as_bytes(), b"Circle of Life"]);
    let ha2 = HashFn::Md5.hex(&[b"GET", b"/dir/index.html"]);
    let r = HashFn::Md5.hex(&[
        ha1.as_bytes(),
        NONCE_1.as_bytes(),
        b"00000001",
        CNONCE_1.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ]);
    assert_eq!(r.as_str(), MD5_RESPONSE);
    let ha1 = HashFn::Sha256.hex(&[b"Mufasa", REALM_1.as_bytes(), b"Circle of Life"]);
    let ha2 = HashFn::Sha256.hex(&[b"GET", b"/dir/index.html"]);
    let r = HashFn::Sha256.hex(&[
        ha1.as_bytes(),
        NONCE_1.as_bytes(),
        b"00000001",
        CNONCE_1.as_bytes(),
        b"auth",
        ha2.as_bytes(),
    ]);
    assert_eq!(r.as_str(), SHA256_RESPONSE);
}

#[test]
fn section_3_9_1_through_the_verifier() {
    for (alg, response) in [("MD5", MD5_RESPONSE), ("SHA-256", SHA256_RESPONSE)] {
        let right = verify_1("Circle of Life", &header_1(alg, response));
        assert!(
            matches!(&right, Outcome::Challenge { stale: true, reason: ChallengeReason::StaleNonce, .. }),
            "{alg}: {right:?}"
        );
        let wrong = verify_1("Circle of life", &header_1(alg, response));
        assert!(
            matches!(&wrong, Outcome::Challenge { stale: false, reason: ChallengeReason::WrongResponse, .. }),
            "{alg}: {wrong:?}"
        );
    }
    // Each response belongs to its algorithm only (and an MD5 length under SHA-256 is malformed).
    let swapped = verify_1("Circle of Life", &header_1("SHA-256", MD5_RESPONSE));
    assert_eq!(swapped, Outcome::BadRequest { reason: BadRequest::BadResponse });
}

// Section 3.9.2: SHA-512-256, username "Jäsøn Doe", with userhash. The RFC's printed values
// (username 488869…, response ae66e6…) are the first 256 bits of SHA-512, not SHA-512/256 as
// FIPS 180-4 defines it; these are the real SHA-512/256 values (Python hashlib `sha512_256`).
const REALM_2: &str = "api@example.org";
const USER_2: &str = "J\u{e4}s\u{f8}n Doe";
const NONCE_2: &str = "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK";
const CNONCE_2: &str = "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v";
const OPAQUE_2: &str = "HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS";
const USERHASH_2: &str = "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b";
const RESPONSE_2: &str = "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5";
const RFC_PRINTED_USERHASH_2: &str = "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec";
const RFC_PRINTED_RESPONSE_2: &str = "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd";

fn header_2(user: &str, response: &str) -> String {
    format!(
        "Digest {user}, realm=\"{REALM_2}\", uri=\"/doe.json\", algorithm=SHA-512-256, nonce=\"{NONCE_2}\", \
         nc=00000001, cnonce=\"{CNONCE_2}\", qop=auth, response=\"{response}\", opaque=\"{OPAQUE_2}\""
    )
}

fn verify_2(header: &str, offer_sha512_256: bool) -> Outcome {
    let mut config = Config::new(REALM_2);
    config.challenges =
        if offer_sha512_256 { vec![Algorithm::Sha512_256, Algorithm::Sha256] } else { vec![Algorithm::Sha256] };
    let v = verifier(config);
    let store = Store::new(REALM_2, &[(USER_2, "Secret, or not?")]);
    v.verify(&request("/doe.json", Some(header), ip(1), NOW), &store)
}

fn is_stale(o: &Outcome) -> bool {
    matches!(o, Outcome::Challenge { stale: true, reason: ChallengeReason::StaleNonce, .. })
}

#[test]
fn section_3_9_2_userhash_and_username_star() {
    assert_eq!(userhash(Algorithm::Sha512_256, USER_2, REALM_2), USERHASH_2);
    let hashed = format!("username=\"{USERHASH_2}\", userhash=true");
    let star = "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe";
    let hashed_upper = format!("username=\"{}\", userhash=TRUE", USERHASH_2.to_ascii_uppercase());
    for user in [hashed.as_str(), star, hashed_upper.as_str()] {
        let o = verify_2(&header_2(user, RESPONSE_2), true);
        assert!(is_stale(&o), "{user}: {o:?}");
    }
    // The RFC's printed (truncated SHA-512) values are not SHA-512-256.
    let printed = format!("username=\"{RFC_PRINTED_USERHASH_2}\", userhash=true");
    let o = verify_2(&header_2(&printed, RFC_PRINTED_RESPONSE_2), true);
    assert!(matches!(o, Outcome::Challenge { stale: false, reason: ChallengeReason::UnknownUser, .. }), "{o:?}");
    let o = verify_2(&header_2(star, RFC_PRINTED_RESPONSE_2), true);
    assert!(matches!(o, Outcome::Challenge { stale: false, reason: ChallengeReason::WrongResponse, .. }), "{o:?}");
}

#[test]
fn sha512_256_refused_unless_offered() {
    let star = "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe";
    assert_eq!(
        verify_2(&header_2(star, RESPONSE_2), false),
        Outcome::BadRequest { reason: BadRequest::UnsupportedAlgorithm }
    );
    assert!(!Config::new("r").challenges.contains(&Algorithm::Sha512_256));
}
