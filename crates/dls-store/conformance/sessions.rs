//! Interaction sessions: `SessionStore` keeps a session until it is taken (once) or
//! expires, and prunes the expired ones and those over a bound.

use std::sync::{Arc, Barrier};

use dls_engine::UnixTime;
use dls_store::StoreError;
use dls_store::rules::{MAX_SESSION_BYTES, MAX_SESSION_ID};
use dls_store::traits::*;

use super::{mac, store};

const ID: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";

#[test]
fn a_session_is_taken_once() {
    let s = store();
    assert_eq!(s.take_session(ID, UnixTime(100)).expect("takes"), None, "none kept yet");
    s.put_session(ID, mac(1), UnixTime(200), b"first").expect("puts");
    s.put_session("other1", mac(2), UnixTime(200), b"second").expect("puts");
    assert_eq!(s.take_session(ID, UnixTime(100)).expect("takes").as_deref(), Some(&b"first"[..]));
    assert_eq!(s.take_session(ID, UnixTime(100)).expect("takes"), None, "a second taker gets none");
    // The other session is untouched; a put replaces a session of the same id.
    s.put_session("other1", mac(2), UnixTime(300), b"replaced").expect("puts");
    assert_eq!(s.take_session("other1", UnixTime(250)).expect("takes").as_deref(), Some(&b"replaced"[..]));
    // Bytes are kept as they are, whatever they are.
    let bytes: Vec<u8> = (0..=255).collect();
    s.put_session(ID, mac(1), UnixTime(200), &bytes).expect("puts");
    assert_eq!(s.take_session(ID, UnixTime(199)).expect("takes"), Some(bytes));
}

#[test]
fn an_expired_session_is_never_handed_out() {
    let s = store();
    s.put_session(ID, mac(1), UnixTime(200), b"x").expect("puts");
    assert_eq!(s.take_session(ID, UnixTime(200)).expect("takes"), None, "expired at its expiry");
    s.put_session(ID, mac(1), UnixTime(200), b"x").expect("puts");
    assert_eq!(s.take_session(ID, UnixTime(u64::MAX)).expect("takes"), None);
    // Taking an expired session removes it: not even an earlier time gets it back.
    assert_eq!(s.take_session(ID, UnixTime(1)).expect("takes"), None);
    // The latest time the store can hold.
    s.put_session(ID, mac(1), UnixTime(u64::MAX), b"y").expect("puts");
    assert_eq!(s.take_session(ID, UnixTime(i64::MAX as u64 - 1)).expect("takes").as_deref(), Some(&b"y"[..]));
}

#[test]
fn pruning_deletes_the_expired_then_those_over_the_bound() {
    let s = store();
    for (n, expires) in [(1_u8, 100_u64), (2, 150), (3, 200), (4, 300), (5, 400), (6, 500)] {
        s.put_session(&format!("s{n}"), mac(n), UnixTime(expires), &[n]).expect("puts");
    }
    assert_eq!(s.prune_sessions(UnixTime(150), 1000).expect("prunes"), 2, "s1 and s2 expired");
    assert_eq!(s.prune_sessions(UnixTime(150), 1000).expect("prunes"), 0, "nothing more");
    // Over the bound: those that expire first go.
    assert_eq!(s.prune_sessions(UnixTime(150), 2).expect("prunes"), 2);
    let left: Vec<String> = (1..=6)
        .filter(|n| s.take_session(&format!("s{n}"), UnixTime(160)).expect("takes").is_some())
        .map(|n| format!("s{n}"))
        .collect();
    assert_eq!(left, ["s5", "s6"]);
    assert_eq!(s.prune_sessions(UnixTime(0), 0).expect("prunes"), 0, "an empty table");
    s.put_session("s7", mac(7), UnixTime(10), b"z").expect("puts");
    assert_eq!(s.prune_sessions(UnixTime(0), 0).expect("prunes"), 1, "a bound of 0 keeps none");
}

#[test]
fn bad_ids_and_sizes_are_refused() {
    let s = store();
    for id in ["", "a b", "../x", "ÄÖ", &"a".repeat(MAX_SESSION_ID + 1)] {
        assert!(matches!(s.put_session(id, mac(1), UnixTime(9), b"x"), Err(StoreError::Invalid(_))), "{id:?}");
        assert_eq!(s.take_session(id, UnixTime(1)).expect("takes"), None, "{id:?}");
    }
    s.put_session(&"a".repeat(MAX_SESSION_ID), mac(1), UnixTime(9), b"x").expect("the longest id");
    assert!(matches!(s.put_session(ID, mac(1), UnixTime(9), b""), Err(StoreError::Invalid(_))));
    let too_large = vec![0_u8; MAX_SESSION_BYTES + 1];
    assert!(matches!(s.put_session(ID, mac(1), UnixTime(9), &too_large), Err(StoreError::Invalid(_))));
    assert_eq!(s.take_session(ID, UnixTime(1)).expect("takes"), None, "nothing was kept");
}

/// Threads taking the same session at once: exactly one gets it.
#[test]
fn of_concurrent_takers_one_gets_the_session() {
    let s = Arc::new(store());
    for round in 0..5_u8 {
        s.put_session(ID, mac(1), UnixTime(1000), &[round]).expect("puts");
        let barrier = Arc::new(Barrier::new(4));
        let takers: Vec<_> = (0..4)
            .map(|_| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.take_session(ID, UnixTime(10)).expect("takes")
                })
            })
            .collect();
        let got: Vec<Vec<u8>> = takers.into_iter().filter_map(|t| t.join().expect("joins")).collect();
        assert_eq!(got, [vec![round]], "round {round}");
    }
}
