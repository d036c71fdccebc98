//! One message as a whole — load, the caller's decision, apply — under the backend's
//! exclusion of the device (`ProtocolStore::run_message`, `with_device`).

use std::sync::Arc;

use dls_engine::{Change, UnixTime};
use dls_message::Item;
use dls_store::StoreError;
use dls_store::traits::*;

use super::{REGISTER, contact, mac, profile, register, store};

#[test]
fn a_message_sees_what_load_for_message_sees_and_commits_its_changes() {
    let s = store();
    s.put_profile(&profile("global", None, &[("sntp-addr", None, "ntp")])).expect("puts");
    register(&s, mac(1), 1);
    s.apply(mac(1), &[Change::Nonce("n1".into())]).expect("applies");
    let expected = s.load_for_message(mac(1)).expect("loads");
    let seen = with_device(&s, mac(1), |device, desired| -> Result<_, StoreError> {
        assert_eq!((device, desired), (&expected.0, &expected.1));
        Ok((vec![Change::Nonce("n2".into()), Change::MergeInventory(vec![Item::new("e164", "42")])], device.known))
    })
    .expect("runs");
    assert!(seen);
    let device = s.load_device(mac(1)).expect("loads");
    assert_eq!(device.recent_nonces, ["n1", "n2"]);
    assert_eq!(device.inventory, [Item::new("e164", "42")]);
}

#[test]
fn a_first_message_registers_an_unknown_device() {
    let s = store();
    with_device(&s, mac(2), |device, desired| -> Result<_, StoreError> {
        assert!(!device.known);
        assert!(desired.items.is_empty());
        Ok((vec![REGISTER, contact(7)], ()))
    })
    .expect("runs");
    let details = s.device(mac(2)).expect("reads").expect("registered");
    assert_eq!(details.registered_at, UnixTime(7));
}

#[test]
fn a_declined_or_failing_message_commits_nothing() {
    let s = store();
    register(&s, mac(1), 1);
    let mut calls = 0;
    s.run_message(mac(1), &mut |_, _| {
        calls += 1;
        None
    })
    .expect("runs");
    assert_eq!(calls, 1);

    #[derive(Debug)]
    enum Failure {
        Caller,
        Store(StoreError),
    }
    impl From<StoreError> for Failure {
        fn from(e: StoreError) -> Self {
            Self::Store(e)
        }
    }
    let r: Result<(), Failure> = with_device(&s, mac(1), |_, _| Err(Failure::Caller));
    assert!(matches!(r, Err(Failure::Caller)), "{r:?}");
    // Changes the store refuses: the whole message is rolled back, the store's error given.
    let r: Result<(), Failure> = with_device(&s, mac(1), |_, _| {
        Ok((
            vec![
                Change::Nonce("kept?".into()),
                Change::Contact { at: UnixTime(u64::MAX), reason: dls_message::Reason::StartUp },
            ],
            (),
        ))
    });
    assert!(matches!(r, Err(Failure::Store(StoreError::Invalid(_)))), "{r:?}");
    assert!(s.load_device(mac(1)).expect("loads").recent_nonces.is_empty());
}

/// Messages of one device from many threads at once: each reads a counter and writes it
/// plus one. Were two of them to interleave (both read the same value), an increment would
/// be lost.
#[test]
fn messages_of_one_device_never_interleave() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let s = Arc::new(store());
    register(&*s, mac(1), 1);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    with_device(&*s, mac(1), |device, _| -> Result<_, StoreError> {
                        let count: usize = device
                            .inventory
                            .iter()
                            .find(|i| i.name == "counter")
                            .map_or(0, |i| i.value.parse().expect("a number"));
                        // Widens the window an interleaving message would need.
                        std::thread::yield_now();
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        let changes = vec![
                            Change::Nonce(format!("{t}-{round}")),
                            Change::MergeInventory(vec![Item::new("counter", (count + 1).to_string())]),
                        ];
                        Ok((changes, ()))
                    })
                    .expect("runs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ends");
    }
    let device = s.load_device(mac(1)).expect("loads");
    assert_eq!(device.inventory, [Item::new("counter", (THREADS * ROUNDS).to_string())]);
    // Another device is not held up by this one's messages, nor changed.
    assert!(!s.load_device(mac(2)).expect("loads").known);
}
