//! Sharing a store between threads: every read sees one committed state.

use std::sync::Arc;

use dls_engine::{Change, UnixTime};
use dls_message::Item;
use dls_store::DeviceFilter;
use dls_store::traits::*;

use super::{REGISTER, contact, mac, profile, register, store};

#[test]
fn shared_between_threads() {
    fn is_shared<S: Send + Sync + ?Sized>(_: &S) {}
    let s = Arc::new(store());
    is_shared(&*s);
    let threads: Vec<_> = (1..=4_u8)
        .map(|n| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let mut batch = vec![REGISTER, contact(i), Change::Nonce(format!("n{i}"))];
                    batch.push(Change::MergeInventory(vec![Item::indexed("k", u32::try_from(i).expect("small"), "v")]));
                    s.apply(mac(n), &batch).expect("applies");
                    s.desired(mac(n)).expect("resolves");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ends");
    }
    for n in 1..=4 {
        let snap = s.load_device(mac(n)).expect("loads");
        assert_eq!(snap.recent_nonces.len(), 25);
        assert_eq!(snap.inventory.len(), 25);
    }
}

/// Reads run beside the writer on their own connections: each sees one committed state
/// (a device's listing agrees with its inventory), and whatever was committed before it
/// began (a profile just put, an inventory just stored).
#[test]
fn reads_and_writes_at_once() {
    let s = Arc::new(store());
    s.put_profile(&profile("global", None, &[("v", None, "0")])).expect("puts");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let phones: Vec<_> = (1..=4_u8)
        .map(|n| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..40_u32 {
                    s.load_device(mac(n)).expect("loads");
                    s.desired(mac(n)).expect("resolves");
                    let items: Vec<Item> = (0..=i % 7)
                        .map(|k| Item::indexed("k", k, format!("{i}")))
                        .chain([Item::new("device-type", format!("type {i}")), Item::new("e164", format!("{n}{i}"))])
                        .collect();
                    s.apply(
                        mac(n),
                        &[
                            REGISTER,
                            contact(u64::from(i)),
                            Change::Nonce(format!("n{i}")),
                            Change::ReplaceInventory { items: items.clone(), at: UnixTime(u64::from(i)) },
                        ],
                    )
                    .expect("applies");
                    // Read back at once, on whichever connection.
                    assert_eq!(s.load_device(mac(n)).expect("loads").inventory, items);
                    assert_eq!(s.device(mac(n)).expect("reads").expect("exists").inventory, items);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, done) = (Arc::clone(&s), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut rounds = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                    for d in s.list_devices(&DeviceFilter::default()).expect("lists") {
                        let details = s.device(d.mac).expect("reads").expect("exists");
                        let value = |name: &str| {
                            details
                                .inventory
                                .iter()
                                .find(|i| i.name == name && i.index.is_none())
                                .map(|i| i.value.clone())
                        };
                        // One state: the copies in `devices` and the inventory agree.
                        assert_eq!(details.summary.device_type, value("device-type"));
                        assert_eq!(details.summary.e164, value("e164"));
                        let snap = s.load_device(d.mac).expect("loads");
                        let applied: u64 = snap.recent_nonces.len().try_into().expect("small");
                        assert_eq!(snap.inventory_at, Some(UnixTime(applied - 1)));
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    for v in 1..=30 {
        s.put_profile(&profile("global", None, &[("v", None, &v.to_string())])).expect("puts");
        assert_eq!(s.desired(mac(1)).expect("resolves").items, [Item::new("v", v.to_string())]);
        assert_eq!(s.profile("global").expect("reads").expect("exists").items, [Item::new("v", v.to_string())]);
    }
    for t in phones {
        t.join().expect("thread ends");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in readers {
        t.join().expect("thread ends");
    }
    for n in 1..=4 {
        let snap = s.load_device(mac(n)).expect("loads");
        assert_eq!((snap.recent_nonces.len(), snap.inventory_at), (40, Some(UnixTime(39))));
    }
}

#[test]
fn what_a_message_needs_is_read_as_one_state() {
    let s = store();
    s.put_profile(&profile("global", None, &[("sntp-addr", None, "ntp")])).expect("puts");
    s.put_profile(&profile("desk", Some("OpenStage 60"), &[("ringer-melody", None, "4")])).expect("puts");
    register(&s, mac(1), 1);
    let items = vec![Item::new("device-type", "OpenStage 60"), Item::new("sntp-addr", "old")];
    s.apply(mac(1), &[Change::ReplaceInventory { items, at: UnixTime(5) }, Change::Nonce("n1".into())])
        .expect("applies");
    let (device, desired) = s.load_for_message(mac(1)).expect("loads");
    assert_eq!(device, s.load_device(mac(1)).expect("loads"));
    assert_eq!(desired, s.desired(mac(1)).expect("resolves"));
    assert_eq!(desired.items.len(), 2, "the device type's profile applies: {desired:?}");
    // An unknown device: what applies to every device.
    let (device, desired) = s.load_for_message(mac(2)).expect("loads");
    assert!(!device.known);
    assert_eq!(desired, s.desired(mac(2)).expect("resolves"));
    assert_eq!(desired.items.len(), 1);
}
