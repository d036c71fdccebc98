//! The verifier's decisions, driven by the test client.

use std::sync::Arc;

use dls_digest::{
    Algorithm, BadRequest, ChallengeReason, Config, Credential, HashFn, NonceId, Outcome, ParseError, Replay,
    ReplayCache,
};
use zeroize::Zeroizing;

use crate::client::Answer;
use crate::{
    FALLBACK_PASS, FALLBACK_USER, MAC_A, MAC_B, NOW, SECRET_A, SECRET_B, Store, attempt, challenge, ip, request,
    target, verifier,
};

fn fresh_answer(v: &dls_digest::Verifier, user: &str, pass: &str, now: u64) -> Answer {
    let t = target(MAC_A);
    let c = challenge(&v.verify(&request(&t, None, ip(1), now), &Store::phones()));
    Answer::from_challenge(&c, user, pass, &t)
}

fn verify_at(v: &dls_digest::Verifier, a: &Answer, now: u64) -> Outcome {
    v.verify(&request(&a.uri, Some(&a.header()), ip(1), now), &Store::phones())
}

fn accepted(o: &Outcome) -> bool {
    matches!(o, Outcome::Accept { .. })
}

#[test]
fn no_credentials_get_one_md5_challenge_by_default() {
    let v = verifier(Config::new("dls"));
    let o = v.verify(&request(&target(MAC_A), None, ip(1), NOW), &Store::phones());
    let Outcome::Challenge { www_authenticate, stale: false, reason: ChallengeReason::NoCredentials } = &o else {
        panic!("{o:?}")
    };
    assert_eq!(o.status(), 401);
    assert_eq!(www_authenticate.len(), 1);
    let c = dls_digest::Authorization::parse(www_authenticate[0].as_bytes()).expect("test value");
    assert_eq!(c.param("algorithm"), Some("MD5"));
    assert_eq!(c.param("qop"), Some("auth"));
    assert_eq!(c.param("realm"), Some("dls"));
    assert!(c.param("stale").is_none() && c.param("userhash").is_none());
}

#[test]
fn sha256_first_then_md5_share_one_nonce() {
    let mut config = Config::new("dls");
    config.challenges = vec![Algorithm::Sha256, Algorithm::Md5];
    let v = verifier(config);
    let o = v.verify(&request(&target(MAC_A), None, ip(1), NOW), &Store::phones());
    let Outcome::Challenge { www_authenticate, .. } = o else { panic!() };
    let parsed: Vec<_> =
        www_authenticate.iter().map(|w| dls_digest::Authorization::parse(w.as_bytes()).expect("test value")).collect();
    assert_eq!(parsed[0].param("algorithm"), Some("SHA-256"));
    assert_eq!(parsed[1].param("algorithm"), Some("MD5"));
    assert_eq!(parsed[0].param("nonce"), parsed[1].param("nonce"));
    // Either is answered, -sess variants too.
    for alg in ["SHA-256", "MD5", "SHA-256-sess", "md5-SESS"] {
        let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
        a.algorithm = alg.to_owned();
        let o = verify_at(&v, &a, NOW);
        assert!(accepted(&o), "{alg}: {o:?}");
    }
}

#[test]
fn phone_fallback_sequence() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // (1) MAC and a wrong MAC-ID: a plain challenge, so the phone moves on.
    let o = attempt(&v, &s, MAC_A, MAC_A, "000000000000", ip(7), NOW);
    assert!(matches!(o, Outcome::Challenge { stale: false, reason: ChallengeReason::WrongResponse, .. }), "{o:?}");
    // (2) the fallback credentials.
    let o = attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(7), NOW + 1);
    assert_eq!(o, Outcome::Accept { username: FALLBACK_USER.into(), algorithm: Algorithm::Md5 });
    // The MAC username in another case finds the same device; the digest uses it as sent.
    let upper = MAC_A.to_ascii_uppercase();
    let o = attempt(&v, &s, MAC_A, &upper, SECRET_A, ip(7), NOW + 2);
    assert_eq!(o, Outcome::Accept { username: upper, algorithm: Algorithm::Md5 });
}

#[test]
fn replayed_header_refused_out_of_order_counts_accepted_once() {
    let v = verifier(Config::new("dls"));
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    a.nc = 1;
    assert!(accepted(&verify_at(&v, &a, NOW)));
    let o = verify_at(&v, &a, NOW + 1);
    assert!(matches!(o, Outcome::Challenge { stale: false, reason: ChallengeReason::Replayed, .. }), "{o:?}");
    // Parallel connections: 3 then 2, each once.
    for nc in [3, 2] {
        a.nc = nc;
        assert!(accepted(&verify_at(&v, &a, NOW + 1)), "nc {nc}");
    }
    a.nc = 3;
    assert!(!accepted(&verify_at(&v, &a, NOW + 1)));
    // A replay is not a failure: replaying one captured header many times throttles nobody.
    a.nc = 1;
    for _ in 0..100 {
        assert!(matches!(verify_at(&v, &a, NOW + 2), Outcome::Challenge { reason: ChallengeReason::Replayed, .. }));
    }
    a.nc = 4;
    assert!(accepted(&verify_at(&v, &a, NOW + 2)));
}

#[test]
fn parallel_threads_each_count_once() {
    let v = Arc::new(verifier(Config::new("dls")));
    let a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    let run = |pass: usize| {
        let handles: Vec<_> = (0..4u32)
            .map(|t| {
                let (v, a) = (Arc::clone(&v), a.clone());
                std::thread::spawn(move || {
                    (0..16u32)
                        .filter(|i| {
                            let mut a = a.clone();
                            a.nc = 1 + t + 4 * i;
                            accepted(&verify_at(&v, &a, NOW + 1))
                        })
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().expect("test value")).sum();
        assert_eq!(total, if pass == 0 { 64 } else { 0 }, "pass {pass}");
    };
    run(0);
    run(1);
}

#[test]
fn expired_nonce_with_right_password_is_stale_then_succeeds() {
    let v = verifier(Config::new("dls"));
    let a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    assert!(accepted(&verify_at(&v, &a, NOW + 300)), "still fresh at the lifetime");
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    let o = verify_at(&v, &a, NOW + 301);
    let Outcome::Challenge { stale: true, reason: ChallengeReason::StaleNonce, www_authenticate } = &o else {
        panic!("{o:?}")
    };
    assert!(www_authenticate[0].ends_with(", stale=true"), "{}", www_authenticate[0]);
    // The phone retries with the new nonce, same credentials.
    let retry = Answer::from_challenge(&www_authenticate[0], MAC_A, SECRET_A, &a.uri);
    assert!(accepted(&verify_at(&v, &retry, NOW + 302)));
    // A wrong password on an expired nonce: no stale, the phone must move on.
    a.password = SECRET_B.into();
    let o = verify_at(&v, &a, NOW + 301);
    let Outcome::Challenge { stale: false, reason: ChallengeReason::WrongResponse, www_authenticate } = &o else {
        panic!("{o:?}")
    };
    assert!(!www_authenticate[0].contains("stale"));
}

#[test]
fn foreign_nonce_or_opaque_is_stale_never_accepted() {
    let v = verifier(Config::new("dls"));
    let other = dls_digest::Verifier::new(Config::new("dls"), &[0x43; 32]).expect("test value");
    let mut a = fresh_answer(&other, MAC_A, SECRET_A, NOW);
    let ours = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    assert_ne!(a.opaque, ours.opaque);
    // Another server's nonce and opaque: right digest, so stale.
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { stale: true, .. }));
    // Our nonce with their opaque, and with none: still stale.
    a.nonce = ours.nonce.clone();
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { stale: true, .. }));
    a.opaque = None;
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { stale: true, .. }));
    // A nonce with one character changed.
    let mut forged = ours.clone();
    let last = if forged.nonce.starts_with('A') { "B" } else { "A" };
    forged.nonce.replace_range(0..1, last);
    assert!(matches!(verify_at(&v, &forged, NOW), Outcome::Challenge { stale: true, .. }));
    assert!(accepted(&verify_at(&v, &ours, NOW)));
}

#[test]
fn bad_requests() {
    let v = verifier(Config::new("dls"));
    let a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    let t = target(MAC_A);
    let bad = |header: &str| match v.verify(&request(&t, Some(header), ip(1), NOW), &Store::phones()) {
        Outcome::BadRequest { reason } => {
            assert_eq!(reason.status(), 400);
            reason
        }
        other => panic!("{header}: {other:?}"),
    };
    let good = a.header();
    assert_eq!(bad(&format!("{good}, realm=\"dls\"")), BadRequest::Malformed(ParseError::Duplicate("realm".into())));
    assert_eq!(bad(&format!("{good}, NONCE=\"x\"")), BadRequest::Malformed(ParseError::Duplicate("nonce".into())));
    let mut other_uri = a.clone();
    other_uri.uri = target(MAC_B);
    assert_eq!(bad(&other_uri.header()), BadRequest::UriMismatch);
    let mut auth_int = a.clone();
    auth_int.qop = Some("auth-int".into());
    assert_eq!(bad(&auth_int.header()), BadRequest::UnsupportedQop);
    let mut rfc2069 = a.clone();
    rfc2069.qop = None;
    assert_eq!(bad(&rfc2069.header()), BadRequest::Rfc2069NotAllowed);
    let mut sha = a;
    sha.algorithm = "SHA-256".into();
    assert_eq!(bad(&sha.header()), BadRequest::UnsupportedAlgorithm);
    assert_eq!(bad(&good.replace("algorithm=MD5", "algorithm=SHA-1")), BadRequest::UnsupportedAlgorithm);
    assert_eq!(bad(&good.replace("nc=00000001", "nc=000000001")), BadRequest::BadNonceCount);
    assert_eq!(bad(&good.replace("nc=00000001", "nc=0")), BadRequest::BadNonceCount);
    assert_eq!(bad(&good.replace("nc=00000001", "nc=-1")), BadRequest::BadNonceCount);
    assert_eq!(bad(&format!("{good}, userhash=maybe")), BadRequest::BadUserhash);
    assert_eq!(bad(&format!("{good}, username*=UTF-8''x")), BadRequest::AmbiguousUsername);
    assert_eq!(bad(&good.replace("username=", "username*=UTF-8''%FF, x=")), BadRequest::BadUsernameEncoding);
    assert_eq!(bad(&good.replace("username=", "x=")), BadRequest::MissingParameter("username"));
    assert_eq!(bad(&good.replace("cnonce=", "x=")), BadRequest::MissingParameter("cnonce"));
    assert_eq!(bad(&good.replace(", nc=", ", x=")), BadRequest::MissingParameter("nc"));
    assert_eq!(bad(&good.replace("response=\"", "response=\"z")), BadRequest::BadResponse);
    assert!(matches!(bad("Digest realm=\"dls"), BadRequest::Malformed(ParseError::UnterminatedQuote(_))));
    // Oversize: refused before parsing; at the limit it is parsed.
    let padding = |n: usize| format!("{good}, x=\"{}\"", "a".repeat(n - good.len() - 6));
    assert_eq!(padding(4096).len(), 4096);
    assert!(accepted(&v.verify(&request(&t, Some(&padding(4096)), ip(1), NOW), &Store::phones())));
    assert_eq!(bad(&padding(4097)), BadRequest::TooLarge { limit: 4096 });
}

#[test]
fn tolerant_header_forms_are_accepted() {
    let v = verifier(Config::new("dls"));
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    let variants: [fn(String) -> String; 5] = [
        |h: String| {
            h.replacen("Digest", "DIGEST", 1)
                .replace("qop=auth", "QOP = \"auth\"")
                .replace("algorithm=MD5", "Algorithm=\"md5\"")
        },
        |h: String| h.replace("nc=", "nc = \"").replace(", cnonce", "\", cnonce").replace(", ", " ,\t"),
        |h: String| h.replace("algorithm=MD5, ", "") + ", unknown=\"ignored\", other=token",
        |h: String| h.replace(", realm", ", , realm").replace("Digest ", "Digest  ,") + " ,",
        |h: String| h.replace("nc=", "nC=").replace("response=", "RESPONSE="),
    ];
    for (i, f) in variants.iter().enumerate() {
        a.nc = 1 + i as u32;
        let h = f(a.header());
        assert_ne!(h, a.header(), "variant {i} changed nothing");
        let o = v.verify(&request(&a.uri, Some(&h), ip(1), NOW), &Store::phones());
        assert!(accepted(&o), "variant {i}: {h}: {o:?}");
    }
    // A response in upper-case hex.
    a.nc = 9;
    let r = a.response();
    let h = a.header().replace(&r, &r.to_ascii_uppercase());
    assert!(accepted(&v.verify(&request(&a.uri, Some(&h), ip(1), NOW), &Store::phones())));
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let v = verifier(Config::new("dls"));
    let strip = |o: &Outcome| -> Vec<String> {
        let Outcome::Challenge { www_authenticate, .. } = o else { panic!("{o:?}") };
        www_authenticate
            .iter()
            .map(|w| {
                let n = dls_digest::Authorization::parse(w.as_bytes())
                    .expect("test value")
                    .param("nonce")
                    .expect("test value")
                    .to_owned();
                w.replace(&n, "NONCE")
            })
            .collect()
    };
    let wrong = verify_at(&v, &fresh_answer(&v, MAC_A, "wrong", NOW), NOW);
    let unknown = verify_at(&v, &fresh_answer(&v, "0000deadbeef", "wrong", NOW), NOW);
    assert!(matches!(wrong, Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. }));
    assert!(matches!(unknown, Outcome::Challenge { reason: ChallengeReason::UnknownUser, .. }));
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(strip(&wrong), strip(&unknown));
    assert!(strip(&wrong)[0].contains("nonce=\"NONCE\""));
}

#[test]
fn another_devices_credentials_authenticate_as_that_device() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // Device B's own credentials on A's file authenticate as B; the caller refuses the file.
    let o = attempt(&v, &s, MAC_A, MAC_B, SECRET_B, ip(1), NOW);
    let Outcome::Accept { username, .. } = o else { panic!("{o:?}") };
    assert!(!dls_digest::is_same_device(&username, MAC_A));
    // A's username with B's secret is just wrong.
    let o = attempt(&v, &s, MAC_A, MAC_A, SECRET_B, ip(1), NOW);
    assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. }));
}

#[test]
fn userhash_and_username_star() {
    let mut config = Config::new("dls");
    config.offer_userhash = true;
    config.challenges = vec![Algorithm::Sha256];
    let v = verifier(config);
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    assert!(challenge(&v.verify(&request(&a.uri, None, ip(1), NOW), &Store::phones())).contains(", userhash=true"));
    a.userhash = true;
    assert_eq!(verify_at(&v, &a, NOW), Outcome::Accept { username: MAC_A.into(), algorithm: Algorithm::Sha256 });
    let mut b = fresh_answer(&v, "Jäsøn Doe", "pw", NOW);
    b.username_star = true;
    let store = Store::new("dls", &[("Jäsøn Doe", "pw")]);
    let o = v.verify(&request(&b.uri, Some(&b.header()), ip(1), NOW), &store);
    assert_eq!(o, Outcome::Accept { username: "Jäsøn Doe".into(), algorithm: Algorithm::Sha256 });
    // A lookup without userhash support: a hashed username is an unknown user.
    let mut c = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    c.userhash = true;
    let plain = |u: &str| Ok((u == MAC_A).then(|| Credential::password(SECRET_A)));
    let o = v.verify(&request(&c.uri, Some(&c.header()), ip(1), NOW), &plain);
    assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::UnknownUser, .. }), "{o:?}");
}

#[test]
fn precomputed_ha1() {
    let mut config = Config::new("dls");
    config.challenges = vec![Algorithm::Sha256, Algorithm::Md5];
    let v = verifier(config);
    let md5 = HashFn::Md5.hex(&[MAC_A.as_bytes(), b"dls", SECRET_A.as_bytes()]);
    let lookup = move |u: &str| {
        Ok(u.eq_ignore_ascii_case(MAC_A).then(|| Credential::Ha1(vec![(HashFn::Md5, Zeroizing::new(md5.to_string()))])))
    };
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    a.algorithm = "MD5".into();
    assert!(accepted(&v.verify(&request(&a.uri, Some(&a.header()), ip(1), NOW), &lookup)));
    // No SHA-256 H(A1) stored: fails like a wrong password.
    a.algorithm = "SHA-256".into();
    let o = v.verify(&request(&a.uri, Some(&a.header()), ip(1), NOW), &lookup);
    assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::NoCredentialForAlgorithm, .. }), "{o:?}");
    // H(A1) covers the username as hashed: the same MAC in upper case does not match it.
    a.algorithm = "MD5".into();
    a.nc = 2;
    a.username = MAC_A.to_ascii_uppercase();
    let o = v.verify(&request(&a.uri, Some(&a.header()), ip(1), NOW), &lookup);
    assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. }), "{o:?}");
}

#[test]
fn rfc2069_when_allowed_is_single_use() {
    let mut config = Config::new("dls");
    config.allow_rfc2069 = true;
    let v = verifier(config);
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    a.qop = None;
    assert!(accepted(&verify_at(&v, &a, NOW)));
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { reason: ChallengeReason::Replayed, .. }));
    a.password = "nope".into();
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { reason: ChallengeReason::WrongResponse, .. }));
}

#[test]
fn realm_mismatch_and_other_schemes_are_challenged() {
    let v = verifier(Config::new("dls"));
    let mut a = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    a.realm = "old realm".into();
    assert!(matches!(verify_at(&v, &a, NOW), Outcome::Challenge { reason: ChallengeReason::RealmMismatch, .. }));
    let t = target(MAC_A);
    let o = v.verify(&request(&t, Some("Basic MDAxYTJiM2M0ZDVlOjEyMzQ1Njc4OTAxMg=="), ip(1), NOW), &Store::phones());
    assert!(matches!(o, Outcome::Challenge { reason: ChallengeReason::OtherScheme, .. }), "{o:?}");
}

#[test]
fn replay_cache_stays_bounded() {
    // The cache alone, 100,000 distinct nonces.
    let mut cache = ReplayCache::new(4096, 300);
    for seq in 0..100_000u64 {
        let id = NonceId { issued: NOW + seq / 1000, seq };
        assert_eq!(cache.check(id, 1, NOW + seq / 1000), Ok(()));
        assert!(cache.len() <= 4096);
    }
    assert_eq!(cache.len(), 4096);
    // Forgotten nonces stay refused.
    assert_eq!(cache.check(NonceId { issued: NOW, seq: 0 }, 1, NOW + 100), Err(Replay::Unverifiable));
    assert_eq!(cache.check(NonceId { issued: NOW + 99, seq: 99_999 }, 1, NOW + 100), Err(Replay::Seen));

    // Through the verifier: a small cache under many nonces.
    let mut config = Config::new("dls");
    config.replay_capacity = 32;
    let v = verifier(config);
    let first = fresh_answer(&v, MAC_A, SECRET_A, NOW);
    for i in 0..300 {
        let a = fresh_answer(&v, MAC_A, SECRET_A, NOW + i / 10);
        assert!(accepted(&verify_at(&v, &a, NOW + i / 10)));
        assert!(v.replay_cache_len() <= 32);
    }
    assert_eq!(v.replay_cache_len(), 32);
    // A nonce older than everything held cannot be used any more (stale, not accepted).
    assert!(matches!(verify_at(&v, &first, NOW + 30), Outcome::Challenge { stale: true, .. }));
}
