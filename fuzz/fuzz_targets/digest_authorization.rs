//! Any bytes as an `Authorization` value: parsing and the whole verify path never panic, and
//! nothing is ever accepted without the password. The bytes are tried alone and after a prefix
//! carrying a fresh nonce, our opaque, realm and uri, so the nonce-valid paths (digest
//! comparison, replay cache, throttle) are reached too.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dls_digest::{Algorithm, Authorization, Config, Credential, Outcome, Request, Verifier};
use libfuzzer_sys::fuzz_target;

const TARGET: &str = "/provisioning/001a2b3c4d5e.xml";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let mut c = Config::new("dls");
        c.challenges = vec![Algorithm::Sha256, Algorithm::Md5, Algorithm::Sha512_256];
        c.allow_rfc2069 = true;
        c.offer_userhash = true;
        c.replay_capacity = 64;
        c.throttle.pair_interval_secs = 2;
        c.throttle.capacity = 64;
        Verifier::new(c, &[1; 32]).expect("config")
    })
}

fuzz_target!(|data: &[u8]| {
    static ITERATION: AtomicU64 = AtomicU64::new(0);
    let _ = Authorization::parse(data);

    let v = verifier();
    let lookup = |u: &str| Ok(u.eq_ignore_ascii_case("001a2b3c4d5e").then(|| Credential::password("123456789012")));
    let now = 1_700_000_000 + ITERATION.fetch_add(1, Ordering::Relaxed) / 100;
    let source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, data.first().copied().unwrap_or(0)));
    let bare = Request { method: "GET", target: TARGET, authorization: Some(data), source, now };
    assert!(!matches!(v.verify(&bare, &lookup), Outcome::Accept { .. }));

    let Outcome::Challenge { www_authenticate, .. } = v.verify(&Request { authorization: None, ..bare }, &lookup)
    else {
        panic!("no challenge without credentials");
    };
    let challenge = Authorization::parse(www_authenticate[0].as_bytes()).expect("our challenge parses");
    let (nonce, opaque) = (challenge.param("nonce").unwrap_or(""), challenge.param("opaque").unwrap_or(""));
    let mut header =
        format!("Digest nonce=\"{nonce}\", opaque=\"{opaque}\", realm=\"dls\", uri=\"{TARGET}\", ").into_bytes();
    header.extend_from_slice(data);
    let o = v.verify(&Request { authorization: Some(&header), ..bare }, &lookup);
    assert!(!matches!(o, Outcome::Accept { .. }));
    assert!(matches!(o.status(), 400 | 401 | 429));
});
