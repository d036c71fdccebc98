//! HTTP Digest state shared by nodes (`DigestStore`): a nonce count is used once by all
//! callers together, events are followed by id without a gap while others append, and both
//! tables are pruned as they are written, in bounded batches.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use dls_engine::UnixTime;
use dls_store::rules::digest::{DIGEST_PRUNE_BATCH, MAX_DIGEST_EVENTS, MAX_DIGEST_KEY};
use dls_store::traits::*;
use dls_store::{NewDigestEvent, StoreError};

use super::store;

fn event(origin: i64, at: u64, success: bool, subject: &[u8]) -> NewDigestEvent {
    NewDigestEvent { origin, at: UnixTime(at), success, subject: subject.to_vec() }
}

fn failure(at: u64) -> NewDigestEvent {
    event(1, at, false, &[7; 20])
}

fn success(at: u64) -> NewDigestEvent {
    event(1, at, true, &[9; 24])
}

/// Every event held, as `(origin, at, success, subject)`, by id.
fn all(s: &dyn Store) -> Vec<(i64, u64, bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = s.digest_events(after, UnixTime(0), MAX_DIGEST_EVENTS).expect("reads");
        let Some(last) = page.last() else { return out };
        after = last.id;
        out.extend(page.into_iter().map(|e| (e.event.origin, e.event.at.0, e.event.success, e.event.subject)));
    }
}

#[test]
fn a_nonce_count_is_used_once_and_its_success_recorded_with_it() {
    let s = store();
    let never = UnixTime(0);
    let n1 = [1_u8; 16];
    assert!(s.record_digest_use(&n1, 1, UnixTime(1000), &success(100), never).expect("records"));
    assert!(!s.record_digest_use(&n1, 1, UnixTime(1000), &success(101), never).expect("records"), "a replay");
    assert!(s.record_digest_use(&n1, 2, UnixTime(1000), &success(102), never).expect("records"), "the next count");
    assert!(s.record_digest_use(&[2; 16], 1, UnixTime(1000), &success(103), never).expect("records"));
    assert!(s.record_digest_use(&n1, u32::MAX, UnixTime(u64::MAX), &success(104), never).expect("records"));
    assert!(!s.record_digest_use(&n1, u32::MAX, UnixTime(u64::MAX), &success(105), never).expect("records"));
    // One success event per first use, none for a replay.
    let ats: Vec<u64> =
        all(&s).into_iter().map(|(_, at, success, _)| (success.then_some(at)).expect("a success")).collect();
    assert_eq!(ats, [100, 102, 103, 104]);
}

#[test]
fn a_use_is_remembered_until_it_expires_then_forgotten() {
    let s = store();
    let never = UnixTime(0);
    assert!(s.record_digest_use(b"old", 1, UnixTime(100), &success(50), never).expect("records"));
    // Records at its expiry do not forget it.
    assert!(s.record_digest_use(b"other", 1, UnixTime(500), &success(100), never).expect("records"));
    assert!(!s.record_digest_use(b"old", 1, UnixTime(100), &success(100), never).expect("records"), "remembered");
    // After it: a later record prunes it.
    assert!(s.record_digest_use(b"third", 1, UnixTime(500), &success(101), never).expect("records"));
    assert!(s.record_digest_use(b"old", 1, UnixTime(100), &success(101), never).expect("records"), "forgotten");
    assert!(!s.record_digest_use(b"other", 1, UnixTime(500), &success(101), never).expect("records"), "not expired");
}

#[test]
fn events_are_read_by_id_after_a_cursor_since_a_time() {
    let s = store();
    let never = UnixTime(0);
    let subjects: Vec<Vec<u8>> = vec![vec![0], (0..=63).collect(), vec![0xff; 20], vec![0; MAX_DIGEST_KEY]];
    for (i, subject) in subjects.iter().enumerate() {
        let i = u64::try_from(i).expect("small");
        s.record_digest_event(&event(-5 + i64::try_from(i).expect("small"), 1000 - i, i % 2 == 0, subject), never)
            .expect("records");
    }
    let events = s.digest_events(0, UnixTime(0), 100).expect("reads");
    assert_eq!(events.len(), 4);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "by id: {events:?}");
    for (e, subject) in events.iter().zip(&subjects) {
        assert_eq!(&e.event.subject, subject, "bytes as they were");
    }
    assert_eq!(events[0].event, event(-5, 1000, true, &[0]));
    // After a cursor, since a time, at most a limit.
    let after = s.digest_events(events[1].id, UnixTime(0), 100).expect("reads");
    assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), [events[2].id, events[3].id]);
    let since = s.digest_events(0, UnixTime(999), 100).expect("reads");
    assert_eq!(since.iter().map(|e| e.event.at.0).collect::<Vec<_>>(), [1000, 999]);
    assert_eq!(s.digest_events(0, UnixTime(0), 1).expect("reads").len(), 1);
    assert!(s.digest_events(0, UnixTime(0), 0).expect("reads").is_empty());
    assert!(s.digest_events(events[3].id, UnixTime(0), 100).expect("reads").is_empty());
    assert!(s.digest_events(0, UnixTime(u64::MAX), 100).expect("reads").is_empty());
}

#[test]
fn one_read_returns_a_bounded_number_of_events() {
    let s = store();
    for i in 0..(MAX_DIGEST_EVENTS + 5) {
        s.record_digest_event(&failure(u64::try_from(i).expect("small")), UnixTime(0)).expect("records");
    }
    assert_eq!(s.digest_events(0, UnixTime(0), usize::MAX).expect("reads").len(), MAX_DIGEST_EVENTS);
    assert_eq!(all(&s).len(), MAX_DIGEST_EVENTS + 5);
}

#[test]
fn old_events_are_pruned_in_bounded_batches_as_new_ones_are_recorded() {
    let s = store();
    let old = DIGEST_PRUNE_BATCH + DIGEST_PRUNE_BATCH / 2;
    for i in 0..old {
        s.record_digest_event(&failure(100 + u64::try_from(i % 3).expect("small")), UnixTime(0)).expect("records");
    }
    // Each record forgets at most a batch of the events from before its bound, never later ones.
    s.record_digest_event(&failure(500), UnixTime(200)).expect("records");
    assert_eq!(all(&s).len(), old - DIGEST_PRUNE_BATCH + 1);
    assert!(s.record_digest_use(b"n", 1, UnixTime(900), &success(501), UnixTime(200)).expect("records"));
    let left: Vec<u64> = all(&s).into_iter().map(|(_, at, _, _)| at).collect();
    assert_eq!(left, [500, 501]);
    s.record_digest_event(&failure(502), UnixTime(501)).expect("records");
    assert_eq!(all(&s).into_iter().map(|(_, at, _, _)| at).collect::<Vec<_>>(), [501, 502], "before 501 only");
}

#[test]
fn event_ids_are_never_handed_out_again() {
    let s = store();
    s.record_digest_event(&failure(100), UnixTime(0)).expect("records");
    s.record_digest_event(&failure(100), UnixTime(0)).expect("records");
    let last = s.digest_events(0, UnixTime(0), 10).expect("reads").last().map(|e| e.id).expect("an event");
    // Every event pruned: the next id is still past the last one a follower saw.
    s.record_digest_event(&failure(300), UnixTime(200)).expect("records");
    let events = s.digest_events(0, UnixTime(0), 10).expect("reads");
    assert_eq!(events.len(), 1);
    assert!(events[0].id > last, "{} after {last}", events[0].id);
    assert_eq!(s.digest_events(last, UnixTime(0), 10).expect("reads"), events);
}

#[test]
fn bad_keys_and_subjects_are_refused_and_nothing_is_recorded() {
    let s = store();
    let never = UnixTime(0);
    let too_long = [1_u8; MAX_DIGEST_KEY + 1];
    for (nonce, nc) in [(&b""[..], 1), (&too_long[..], 1), (&b"n"[..], 0)] {
        let r = s.record_digest_use(nonce, nc, UnixTime(10), &success(1), never);
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{} bytes, nc {nc}: {r:?}", nonce.len());
    }
    for subject in [&b""[..], &too_long[..]] {
        let bad = event(1, 1, false, subject);
        assert!(matches!(s.record_digest_event(&bad, never), Err(StoreError::Invalid(_))), "{}", subject.len());
        assert!(matches!(s.record_digest_use(b"n", 1, UnixTime(10), &bad, never), Err(StoreError::Invalid(_))));
    }
    let late = NewDigestEvent { at: UnixTime(u64::MAX), ..failure(0) };
    assert!(matches!(s.record_digest_event(&late, never), Err(StoreError::Invalid(_))));
    assert!(all(&s).is_empty());
    assert!(s.record_digest_use(b"n", 1, UnixTime(10), &success(1), never).expect("records"), "n was never used");
}

/// Threads recording the same count at once: exactly one records it.
#[test]
fn of_concurrent_first_uses_one_wins() {
    let s = Arc::new(store());
    for round in 0..5_u32 {
        let barrier = Arc::new(Barrier::new(4));
        let users: Vec<_> = (0..4)
            .map(|_| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.record_digest_use(b"nonce", round + 1, UnixTime(1000), &success(10), UnixTime(0))
                        .expect("records")
                })
            })
            .collect();
        let firsts = users.into_iter().map(|t| t.join().expect("joins")).filter(|&first| first).count();
        assert_eq!(firsts, 1, "round {round}");
    }
    assert_eq!(all(&*s).len(), 5, "one success each");
}

/// Writers append while a follower reads after the last id it saw: the follower sees every
/// event exactly once — none committed later under an id it had passed.
#[test]
fn a_follower_by_id_misses_no_event_while_others_append() {
    let s = Arc::new(store());
    let (writers, each) = (4_i64, 60_u64);
    let barrier = Arc::new(Barrier::new(5));
    let done = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..each {
                    let e = event(w, 100, false, &i.to_be_bytes());
                    if i % 3 == 0 {
                        let nonce = [w.to_be_bytes(), i.to_be_bytes()].concat();
                        let first = NewDigestEvent { success: true, ..e };
                        assert!(s.record_digest_use(&nonce, 1, UnixTime(1000), &first, UnixTime(0)).expect("records"));
                    } else {
                        s.record_digest_event(&e, UnixTime(0)).expect("records");
                    }
                }
            })
        })
        .collect();
    let follower = {
        let done = done.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let (mut seen, mut after) = (Vec::new(), 0);
            loop {
                // Whether the writers had all finished before this read: then it is the last.
                let last = done.load(Ordering::SeqCst);
                let page = s.digest_events(after, UnixTime(0), 7).expect("reads");
                let full = page.len() == 7;
                for e in page {
                    after = e.id;
                    seen.push((e.event.origin, e.event.subject));
                }
                if last && !full {
                    return seen;
                }
            }
        })
    };
    for h in handles {
        h.join().expect("joins");
    }
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("joins");
    let distinct: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "each once");
    let want: BTreeSet<_> = (0..writers).flat_map(|w| (0..each).map(move |i| (w, i.to_be_bytes().to_vec()))).collect();
    assert_eq!(distinct, want, "every event, none passed by");
}
