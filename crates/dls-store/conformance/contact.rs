//! The contact-me schedule (`ContactStore`) and the leases: claims are exclusive, an
//! expired claim is taken over, the pacing is the rules' at exact times.

use std::time::Duration;

use dls_engine::UnixTime;
use dls_store::rules::contact::ContactPacing;
use dls_store::traits::*;
use dls_store::{ContactClaim, Store};

use super::{mac, store};

const fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The service's default pacing.
const PACING: ContactPacing =
    ContactPacing { min_interval: s(60), after_success: s(300), backoff_base: s(60), backoff_cap: s(3600) };

const T0: u64 = 1_700_000_000;
const LEASE: u64 = 60;

fn claim(s: &dyn Store, node: &str, at: u64) -> Vec<ContactClaim> {
    s.contact_claim_due(node, UnixTime(at), 100, LEASE).expect("claims")
}

fn macs(claims: &[ContactClaim]) -> Vec<dls_message::MacAddr> {
    claims.iter().map(|c| c.mac).collect()
}

#[test]
fn a_due_phone_is_claimed_by_one_node_until_its_claim_ends() {
    let s = store();
    assert_eq!(s.contact_next_due().expect("next"), None);
    s.contact_want(mac(1), UnixTime(T0), false).expect("wants");
    s.contact_want(mac(1), UnixTime(T0), false).expect("idempotent");
    s.contact_want(mac(2), UnixTime(T0 + 5), true).expect("wants");
    assert_eq!(s.contact_next_due().expect("next"), Some(UnixTime(T0)));
    assert!(claim(&s, "b", T0 - 1).is_empty(), "not due yet");
    assert_eq!(claim(&s, "a", T0), vec![ContactClaim { mac: mac(1), forced: false }]);
    assert!(claim(&s, "b", T0).is_empty(), "claimed by a");
    assert!(claim(&s, "a", T0 + 4).is_empty(), "claimed by a, by a too");
    assert_eq!(claim(&s, "b", T0 + 5), vec![ContactClaim { mac: mac(2), forced: true }]);
    // Claimed phones are due again when their claims end.
    assert_eq!(s.contact_next_due().expect("next"), Some(UnixTime(T0 + LEASE)));
    assert!(claim(&s, "b", T0 + LEASE - 1).is_empty());
    // a died: its claim ends, b takes the phone over.
    assert_eq!(macs(&claim(&s, "b", T0 + LEASE)), [mac(1)]);
    assert_eq!(macs(&claim(&s, "a", T0 + LEASE + 5)), [mac(2)], "b's claim of phone 2 ended too");
    // The limit, earliest due first.
    let s = store();
    for n in [3, 1, 2] {
        s.contact_want(mac(n), UnixTime(T0 + u64::from(n)), false).expect("wants");
    }
    assert_eq!(macs(&s.contact_claim_due("a", UnixTime(T0 + 10), 2, LEASE).expect("claims")), [mac(1), mac(2)]);
    assert!(s.contact_claim_due("b", UnixTime(T0 + 10), 0, LEASE).expect("claims").is_empty());
    assert_eq!(macs(&claim(&s, "b", T0 + 10)), [mac(3)]);
}

#[test]
fn the_pacing_after_an_attempt_is_the_rules_at_exact_times() {
    let s = store();
    let a = mac(1);
    s.contact_want(a, UnixTime(T0), false).expect("wants");
    assert_eq!(macs(&claim(&s, "n1", T0)), [a]);
    s.contact_finished(a, "n1", UnixTime(T0 + 1), true, &PACING).expect("finishes");
    // Still wanted: due at the end of the contact gap, on any node, not a second before.
    assert_eq!(s.contact_next_due().expect("next"), Some(UnixTime(T0 + 301)));
    assert!(claim(&s, "n2", T0 + 300).is_empty(), "within the contact gap");
    assert_eq!(macs(&claim(&s, "n2", T0 + 301)), [a]);
    // Failures back off as the rules say, from the time each attempt ended.
    let mut now = T0 + 301;
    let mut delays = Vec::new();
    for n in 0..8 {
        let node = if n % 2 == 0 { "n2" } else { "n1" };
        s.contact_finished(a, node, UnixTime(now), false, &PACING).expect("finishes");
        let next = s.contact_next_due().expect("next").expect("wanted").0;
        delays.push(next - now);
        assert!(claim(&s, "n3", next - 1).is_empty(), "not before {next}");
        let other = if n % 2 == 0 { "n1" } else { "n2" };
        assert_eq!(macs(&claim(&s, other, next)), [a]);
        now = next;
    }
    let expected: Vec<u64> = (1..=8).map(|n| PACING.backoff(n).as_secs()).collect();
    assert_eq!(delays, expected);
    assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    // A success restarts the count.
    s.contact_finished(a, "n1", UnixTime(now), true, &PACING).expect("finishes");
    assert_eq!(macs(&claim(&s, "n1", now + 300)), [a]);
    s.contact_finished(a, "n1", UnixTime(now + 300), false, &PACING).expect("finishes");
    assert_eq!(s.contact_next_due().expect("next"), Some(UnixTime(now + 360)));
}

#[test]
fn a_cancelled_claim_is_forgotten_once_its_interval_has_passed() {
    let s = store();
    let a = mac(1);
    s.contact_want(a, UnixTime(T0), true).expect("wants");
    assert_eq!(claim(&s, "n1", T0), vec![ContactClaim { mac: a, forced: true }]);
    s.contact_cancel(a, "n1").expect("cancels");
    assert_eq!(s.contact_next_due().expect("next"), None, "not wanted");
    assert!(claim(&s, "n2", T0 + LEASE).is_empty());
    // Nothing was sent: wanted again, it is due at once, forced no more.
    s.contact_want(a, UnixTime(T0 + 1), false).expect("wants");
    assert_eq!(claim(&s, "n2", T0 + 1), vec![ContactClaim { mac: a, forced: false }]);
    s.contact_finished(a, "n2", UnixTime(T0 + 2), false, &PACING).expect("finishes");
    s.contact_cancel(a, "n2").expect("cancels");
    // Not wanted, within its interval: a new want still respects it.
    s.contact_want(a, UnixTime(T0 + 10), false).expect("wants");
    assert_eq!(s.contact_next_due().expect("next"), Some(UnixTime(T0 + 62)));
    assert!(claim(&s, "n1", T0 + 61).is_empty());
    assert_eq!(macs(&claim(&s, "n1", T0 + 62)), [a]);
    s.contact_cancel(a, "n1").expect("cancels");
    // Its interval passed (the claim forgets it): a new want is due at once.
    assert!(claim(&s, "n1", T0 + 200).is_empty());
    s.contact_want(a, UnixTime(T0 + 201), false).expect("wants");
    assert_eq!(macs(&claim(&s, "n1", T0 + 201)), [a]);
    // Another node's cancel or finish does not end n1's claim.
    s.contact_cancel(a, "n2").expect("cancels");
    s.contact_want(a, UnixTime(T0 + 202), false).expect("wants");
    assert!(claim(&s, "n2", T0 + 202).is_empty(), "n1's claim stands");
}

#[test]
fn a_lease_is_held_by_one_node_until_it_expires_or_is_released() {
    let s = store();
    let t = |n: u64| UnixTime(T0 + n);
    assert!(s.try_lease("retention", "a", t(0), t(3600)).expect("leases"));
    assert!(!s.try_lease("retention", "b", t(1), t(3601)).expect("leases"), "a holds it");
    assert!(s.try_lease("other", "b", t(1), t(3601)).expect("leases"), "another lease");
    assert!(s.try_lease("retention", "a", t(2), t(3602)).expect("renews"), "a renews");
    assert!(!s.try_lease("retention", "b", t(3601), t(7200)).expect("leases"), "renewed until 3602");
    assert!(s.try_lease("retention", "b", t(3602), t(7200)).expect("leases"), "expired");
    assert!(!s.try_lease("retention", "a", t(3603), t(7200)).expect("leases"), "b holds it");
    s.release_lease("retention", "a").expect("releases nothing");
    assert!(!s.try_lease("retention", "a", t(3604), t(7200)).expect("leases"), "not a's to release");
    s.release_lease("retention", "b").expect("releases");
    assert!(s.try_lease("retention", "a", t(3605), t(7200)).expect("leases"), "released");
}
