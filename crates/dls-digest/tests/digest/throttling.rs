//! Throttling slows guessers and never locks out phones doing what phones do: the attacks of
//! issue 13 (wrong guesses for a phone's MAC from another address, from the phone's own NAT
//! address, from many addresses; a username spray behind a NAT; a flood of new keys), each
//! followed by the real phone's request, and the phones' own retry sequences.

use std::net::{IpAddr, Ipv4Addr};

use dls_digest::{ChallengeReason, Config, Outcome, ThrottleConfig, Verifier};

use crate::{FALLBACK_PASS, FALLBACK_USER, MAC_A, MAC_B, NOW, SECRET_A, SECRET_B, Store, attempt, ip, verifier};

fn wrong(o: &Outcome) -> bool {
    matches!(o, Outcome::Challenge { reason: ChallengeReason::WrongResponse | ChallengeReason::UnknownUser, .. })
}

fn accepted(o: &Outcome) -> bool {
    matches!(o, Outcome::Accept { .. })
}

fn addr(n: impl Into<u64>) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + u32::try_from(n.into()).expect("small")))
}

/// `guesses` wrong MAC-ID guesses for `mac`, one a second from `NOW` on, each from
/// `source(i)`; returns (guesses evaluated, the time after the last one).
fn guess(v: &Verifier, s: &Store, mac: &str, guesses: u64, source: impl Fn(u64) -> IpAddr) -> (u64, u64) {
    let mut evaluated = 0;
    for i in 0..guesses {
        let o = attempt(v, s, mac, mac, &format!("{i:012}"), source(i), NOW + i);
        match o {
            Outcome::Throttled { .. } => {}
            o if wrong(&o) => evaluated += 1,
            o => panic!("guess {i}: {o:?}"),
        }
    }
    (evaluated, NOW + guesses)
}

/// The real phone's correct request from `source` at `now`, retried after each `Retry-After`
/// as a phone would: the seconds it waited until it was served.
fn phone_gets_in(v: &Verifier, s: &Store, source: IpAddr, now: u64, bound: u64) -> u64 {
    let mut t = now;
    loop {
        match attempt(v, s, MAC_A, MAC_A, SECRET_A, source, t) {
            Outcome::Accept { .. } => return t - now,
            Outcome::Throttled { retry_after_secs } => {
                assert!(
                    retry_after_secs >= 1 && t + retry_after_secs - now <= bound,
                    "waits {retry_after_secs}s at {t}"
                );
                t += retry_after_secs;
            }
            o => panic!("the phone got {o:?}"),
        }
    }
}

#[test]
fn wrong_guesses_from_another_address_never_lock_the_real_phone_out() {
    let d = ThrottleConfig::default();
    for guesses in [20, 50, 1000] {
        let v = verifier(Config::new("dls"));
        let s = Store::phones();
        let attacker = ip(66);
        let (evaluated, end) = guess(&v, &s, MAC_A, guesses, |_| attacker);
        // The guesser is slowed: its burst, then one guess per pair interval.
        let allowed = u64::from(d.pair_burst) + guesses / d.pair_interval_secs + 1;
        assert!(evaluated <= allowed, "{guesses}: {evaluated} evaluated, {allowed} allowed");
        assert!(guesses < 20 || evaluated < guesses, "{guesses}: nothing was throttled");
        // The phone, which never authenticated before, is served at once from its own address,
        // and so is its fallback.
        assert!(accepted(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(10), end)), "{guesses}");
        assert!(accepted(&attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(11), end)), "{guesses}");
    }
}

#[test]
fn a_guesser_at_the_phones_own_nat_address_delays_it_a_bounded_time_after_it_stops() {
    let d = ThrottleConfig::default();
    for guesses in [20, 50, 1000] {
        let v = verifier(Config::new("dls"));
        let s = Store::phones();
        let nat = ip(20);
        let (_, end) = guess(&v, &s, MAC_A, guesses, |_| nat);
        // Same username, same address: the pair's own interval, nothing more.
        let waited = phone_gets_in(&v, &s, nat, end, d.pair_interval_secs);
        assert!(guesses < d.pair_burst.into() || waited > 0, "{guesses}: the guesser was not slowed");
        // The other phones behind the NAT are not delayed at all.
        assert!(accepted(&attempt(&v, &s, MAC_B, MAC_B, SECRET_B, nat, end)), "{guesses}");
    }
}

#[test]
fn a_distributed_guesser_is_slowed_to_one_guess_per_address_and_interval() {
    let d = ThrottleConfig::default();
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // 1000 addresses guess the MAC, one guess each, within 1000 s: the username is under
    // pressure from the 21st on.
    let (evaluated, end) = guess(&v, &s, MAC_A, 1000, addr);
    assert_eq!(evaluated, 1000, "a fresh pair is always evaluated");
    // A second round from the same addresses: each waits for its pressure interval.
    let o = attempt(&v, &s, MAC_A, MAC_A, "again", addr(999u32), end);
    assert_eq!(o, Outcome::Throttled { retry_after_secs: d.pressure_interval_secs - 1 });
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, "again", addr(800u32), end), Outcome::Throttled { .. }));
    // The phone from its own address gets in at once, with its MAC-ID or its fallback.
    assert!(accepted(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(10), end)));
    assert!(accepted(&attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(12), end)));
    // A phone sharing one of the guessers' addresses waits at most the pressure interval.
    assert!(phone_gets_in(&v, &s, addr(998u32), end, d.pressure_interval_secs) <= d.pressure_interval_secs);
}

#[test]
fn a_username_spray_behind_a_nat_does_not_lock_the_phones_behind_it() {
    let d = ThrottleConfig::default();
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    let nat = ip(20);
    // A phone behind the NAT authenticated earlier.
    assert!(accepted(&attempt(&v, &s, MAC_B, MAC_B, SECRET_B, nat, NOW)));
    // Someone behind the same NAT sprays 1000 usernames, ten a second.
    let mut evaluated = 0;
    for i in 0..1000u64 {
        match attempt(&v, &s, MAC_A, &format!("user{i}"), "password1", nat, NOW + 1 + i / 10) {
            Outcome::Throttled { retry_after_secs } => assert!(retry_after_secs <= d.source_interval_secs),
            o if wrong(&o) => evaluated += 1,
            o => panic!("{o:?}"),
        }
    }
    let end = NOW + 101;
    let allowed = u64::from(d.max_failures_per_source) + 100 / d.source_interval_secs + 1;
    assert!(evaluated <= allowed, "{evaluated} evaluated, {allowed} allowed");
    // The phone that authenticated before is not delayed; a new one waits one source interval
    // at most; from elsewhere nothing is delayed.
    assert!(accepted(&attempt(&v, &s, MAC_B, MAC_B, SECRET_B, nat, end)));
    assert!(phone_gets_in(&v, &s, nat, end, d.source_interval_secs) <= d.source_interval_secs);
    assert!(accepted(&attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(30), end)));
}

/// One boot of a phone whose MAC-ID and fallback credentials are both wrong: the user types
/// credentials on the display, wrong twice, right the third time (1 + 1 + 3).
fn worst_boot(v: &Verifier, s: &Store, source: IpAddr, now: u64) -> Vec<Outcome> {
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
        assert!(accepted(&outcomes[4]), "boot {boot}: {outcomes:?}");
    }
}

#[test]
fn the_phones_sequence_survives_a_distributed_attack_on_its_mac() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // A guess for the MAC every second, each from a new address, for 400 s; meanwhile a phone
    // whose MAC-ID is stale boots three times at its own address (2 minutes apart).
    let mut boots = Vec::new();
    for i in 0..400u32 {
        let now = NOW + u64::from(i);
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, &format!("{i:012}"), addr(i), now)), "guess {i}");
        if i % 120 == 100 {
            boots.push(worst_boot(&v, &s, ip(40), now));
        }
    }
    assert_eq!(boots.len(), 3);
    for (n, outcomes) in boots.iter().enumerate() {
        // Its MAC try fails (401, not 429), and so on to its fallback, which is served.
        assert!(outcomes[..4].iter().all(wrong), "boot {n}: {outcomes:?}");
        assert!(accepted(&outcomes[4]), "boot {n}: {outcomes:?}");
    }
    // The guessers were held meanwhile: a second guess from one of them waits.
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, "again", addr(399u32), NOW + 400), Outcome::Throttled { .. }));
}

#[test]
fn a_phone_with_a_wrong_mac_id_booting_every_half_minute_is_never_throttled() {
    let v = verifier(Config::new("dls"));
    let s = Store::phones();
    // Its first credential set always fails: one failure per boot on its username.
    for boot in 0..40 {
        let now = NOW + boot * 30;
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, "000000000000", ip(11), now)), "boot {boot}");
        let o = attempt(&v, &s, MAC_A, FALLBACK_USER, FALLBACK_PASS, ip(11), now + 1);
        assert!(accepted(&o), "boot {boot}: {o:?}");
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
    // fallback; 400 failures from one address, 40 in flight at most.
    for wave in macs.chunks(40) {
        for mac in wave {
            let o = attempt(&v, &s, mac, mac, "wrong-secret", nat, NOW);
            assert!(wrong(&o), "{mac}: {o:?}");
        }
        for mac in wave {
            let o = attempt(&v, &s, mac, FALLBACK_USER, FALLBACK_PASS, nat, NOW + 1);
            assert!(accepted(&o), "{mac}: {o:?}");
        }
    }
}

#[test]
fn limits_are_configurable_and_throttle_state_is_bounded_under_a_flood() {
    let mut config = Config::new("dls");
    config.throttle.pair_burst = 3;
    config.throttle.pair_interval_secs = 10;
    config.throttle.capacity = 64;
    let v = verifier(config);
    let s = Store::phones();
    for i in 0..3 {
        assert!(wrong(&attempt(&v, &s, MAC_A, MAC_A, "x", ip(5), NOW + i)));
    }
    let o = attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(5), NOW + 4);
    assert_eq!(o, Outcome::Throttled { retry_after_secs: 6 });
    assert_eq!(o.status(), 429);
    // A flood of distinct usernames from distinct addresses, some succeeding.
    for i in 0..5000u32 {
        let o = attempt(&v, &s, MAC_A, &format!("spray{i}"), "x", addr(i), NOW + 5);
        assert!(wrong(&o), "{o:?}");
        if i % 10 == 0 {
            assert!(accepted(&attempt(&v, &s, MAC_B, MAC_B, SECRET_B, addr(i), NOW + 5)));
        }
        assert!(v.throttle_len() <= 5 * 64, "{}", v.throttle_len());
    }
    // The heavy hitter survived the flood; the phone elsewhere is fine.
    assert!(matches!(attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(5), NOW + 6), Outcome::Throttled { .. }));
    assert!(accepted(&attempt(&v, &s, MAC_A, MAC_A, SECRET_A, ip(6), NOW + 6)));
}
