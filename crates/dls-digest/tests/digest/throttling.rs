//! Throttling engages on bursts and never on phones doing what phones do.

use std::net::{IpAddr, Ipv4Addr};

use dls_digest::{ChallengeReason, Config, Outcome};

use crate::{FALLBACK_PASS, FALLBACK_USER, MAC_A, NOW, SECRET_A, Store, attempt, ip, verifier};

fn is_throttled(o: &Outcome) -> bool {
    matches!(o, Outcome::Throttled { .. })
}

fn wrong(o: &Outcome) -> bool {
    matches!(o, Outcome::Challenge { reason: ChallengeReason::WrongResponse | ChallengeReason::UnknownUser, .. })
}

/// One boot of a phone whose MAC-ID and fallback credentials are both wrong: the user types
/// credentials on the display, wrong twice, right the third time (1 + 1 + 3).
fn worst_boot(v: &dls_digest::Verifier, s: &Store, source: IpAddr, now: u64) -> Vec<Outcome> {
    vec![
        attempt(v, s, MAC_A, MAC_A, "999999999999", source, now),
        attempt(v, s, MAC_A, FALLBACK_USER, "stale fallback", source, now),
        attempt(v, s, MAC_A, "typed-user", "typo", source, now + 5),
        attempt(v, s, MAC_A, "typed-user", "typo again", source, now + 10),
        attempt(v, s, MAC_A, FALLBACK_USER, FALLBACK_PASS, source, now + 15),
    ]
}

#[test]
fn a_good_phone_is_never_throttled() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // Four worst-case boots within five minutes from the same address.
    for boot in 0..4 {
        let outcomes = worst_boot(&v, &s, ip(10), NOW + boot * 60);
        assert!(outcomes[..4].iter().all(wrong), "boot {boot}: {outcomes:?}");
        assert!(matches!(outcomes[4], Outcome::Accept { .. }), "boot {boot}: {outcomes:?}");
    }
}

#[test]
fn a_phone_with_a_wrong_mac_id_booting_every_half_minute_is_never_throttled() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // Its first credential set always fails: ten failures per five minutes on its username.
    for boot in 0..40 {
        let now = NOW + boot * 30;
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, "000000000000", ip(11), now)), "boot {boot}");
        let o = attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(11), now + 1);
        assert!(matches!(o, Outcome::Accept { .. }), "boot {boot}: {o:?}");
    }
}

#[test]
fn a_fleet_behind_one_nat_is_never_throttled() {
    let v = verifier(Config::new("dls"));
    let nat = ip(20);
    let macs: Vec<String> = (0..400u32).map(|i| format!("0001e3{i:06x}")).collect();
    let users: Vec<(&str, &str)> =
        macs.iter().map(|m| (m.as_str(), "right-secret")).chain([(FALLBACK_USER, FALLBACK_PASS)]).collect();
    let s = Store::new("dls", &users);
    // Waves of 40 phones booting together: each fails its MAC-ID, then succeeds with the
    // fallback; 400 failures from one address within the window, 40 in flight at most.
    for wave in macs.chunks(40) {
        for mac in wave {
            let o = attempt(&v, &s, mac, mac, "wrong-secret", nat, NOW);
            assert!(wrong(&o), "{mac}: {o:?}");
        }
        for mac in wave {
            let o = attempt(&v, &s, mac, FALLBACK_USER, FALLBACK_PASS, nat, NOW + 1);
            assert!(matches!(o, Outcome::Accept { .. }), "{mac}: {o:?}");
        }
    }
}

#[test]
fn a_burst_from_one_source_is_throttled() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    let attacker = ip(66);
    for i in 0..50 {
        let o = attempt(&v, &s, MAC_A, &format!("guess{i}"), "x", attacker, NOW + i);
        assert!(wrong(&o), "attempt {i}: {o:?}");
    }
    let o = attempt(&v, &s, MAC_A, MAC_A, SECRET_A, attacker, NOW + 60);
    assert_eq!(o, Outcome::Throttled { retry_after_secs: 240 });
    assert_eq!(o.status(), 429);
    // Other sources are unaffected; the source recovers when its window ends.
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(67), NOW + 60), Outcome::Accept { .. }));
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, attacker, NOW + 300), Outcome::Accept { .. }));
}

#[test]
fn a_distributed_burst_on_one_username_is_throttled() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    for i in 0..20u32 {
        let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, &format!("{i:012}"), source, NOW)));
    }
    // Any case of the MAC counts together; other users are fine.
    let o = attempt(&v, &s, MAC_A, &MAC_A.to_ascii_uppercase(), SECRET_A, ip(1), NOW + 1);
    assert!(is_throttled(&o), "{o:?}");
    assert!(matches!(attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(1), NOW + 1), Outcome::Accept { .. }));
    // Unknown usernames are counted like known ones (no difference to observe).
    for i in 0..20u32 {
        let source = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        assert!(wrong(&attempt(&v, &s, MAC_A, "nobody", "x", source, NOW)));
    }
    assert!(is_throttled(&attempt(&v, &s, MAC_A, "nobody", "x", ip(2), NOW + 1)));
}

#[test]
fn limits_are_configurable_and_throttle_state_is_bounded() {
    let mut config = Config::new("dls");
    config.throttle.max_failures_per_source = 3;
    config.throttle.window_secs = 10;
    config.throttle.capacity = 64;
    let v = verifier(config);
    let s = Store::phones();
    for i in 0..3 {
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, "x", ip(5), NOW + i)));
    }
    assert_eq!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(5), NOW + 4), Outcome::Throttled { retry_after_secs: 6 });
    for i in 0..5000u32 {
        let source = IpAddr::V4(Ipv4Addr::from(0x0c00_0000 + i));
        let o = attempt(&v, &s, MAC_A, &format!("spray{i}"), "x", source, NOW + 5);
        assert!(wrong(&o));
        assert!(v.throttle_len() <= 128);
    }
    // The heavy hitter survived the spray.
    assert!(is_throttled(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(5), NOW + 6)));
}

#[test]
fn failures_sent_from_elsewhere_do_not_lock_a_phone_out_at_its_address() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    let phone = ip(30);
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, phone, NOW), Outcome::Accept { .. }));
    // Someone who knows the MAC sends wrong secrets for it from many addresses.
    for i in 0..25u32 {
        let source = IpAddr::V4(Ipv4Addr::from(0x0d00_0000 + i));
        let _ = attempt(&v, &s, MAC_A, MAC_A, "guess", source, NOW + 1);
    }
    assert!(is_throttled(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(31), NOW + 2)));
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, phone, NOW + 2), Outcome::Accept { .. }));
    // From the trusted address, guessing is still bounded by the source limit.
    for _ in 0..50 {
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, "guess", phone, NOW + 3)));
    }
    assert!(is_throttled(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, phone, NOW + 4)));
}
