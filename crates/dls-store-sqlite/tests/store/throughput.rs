//! The protocol path's cost, as the service drives it: a phone's first start-up (three
//! messages: start-up, the inventory, the reply to `WriteItems`), each `load_for_message`
//! then `apply`, from several threads at once on a file database; then a known phone's
//! start-up (one message: the same, its reported items unchanged); then the least a
//! message can commit (one nonce), the floor of any durable answer.
//!
//! Ignored (a measurement, not a check); run it in release mode:
//!
//! ```sh
//! cargo test --release -p dls-store --test store throughput -- --ignored --nocapture
//! ```
//! (`DLS_BENCH_PHONES`, `DLS_BENCH_THREADS`: 2000 phones, 1, 2 and 4 threads by default.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dls_engine::{Change, ItemKey, UnixTime, WriteOutcome};
use dls_message::{Item, MacAddr, Reason};
use dls_store::traits::*;
use dls_store_sqlite::SqliteStore;

use crate::conformance::{REGISTER, profile, record};

/// The items a start-up message reports (identity).
fn start_up_items(n: usize) -> Vec<Item> {
    vec![
        Item::new("mac-addr", mac_of(n).to_string()),
        Item::new("device-type", "OpenStage 60"),
        Item::new("software-type", "SIP"),
        Item::new("software-version", "V3 R5.18.0"),
        Item::new("part-number", "S30817-S7403-A101-30"),
        Item::new("e164", format!("4989700{n:05}")),
    ]
}

/// About 360 items, about 20 kB: an inventory of the size a fleet phone reports.
fn inventory(n: usize) -> Vec<Item> {
    let mut items = start_up_items(n);
    for k in (1..=9).chain(1001..=1036) {
        items.push(Item::indexed("function-key-def", k, "1"));
        items.push(Item::indexed("key-label-unicode", k, format!("Key {k} of phone {n}")));
        items.push(Item::indexed("stimulus-feature-code", k, "0"));
        items.push(Item::indexed("blf-code", k, format!("sip:{}@example.net", 7000 + k)));
        items.push(Item::indexed("send-url-address", k, "http://apps.example.net/x"));
        items.push(Item::indexed("key-lock-state", k, "false"));
    }
    let mut i = 0;
    while items.len() < 360 {
        items.push(Item::new(format!("setting-number-{i}"), format!("value of setting {i} on phone {n}")));
        i += 1;
    }
    items
}

fn mac_of(n: usize) -> MacAddr {
    let b = u32::try_from(n).expect("small").to_be_bytes();
    MacAddr::from_bytes([0x00, 0x1A, 0xE8, b[1], b[2], b[3]])
}

/// One first start-up: three messages of one device.
fn interaction(s: &dyn Store, n: usize, written: &[Item]) {
    let mac = mac_of(n);
    let message = |changes: Vec<Change>| {
        std::hint::black_box(s.load_for_message(mac).expect("loads"));
        s.apply(mac, &changes).expect("applies");
    };
    message(vec![
        REGISTER,
        Change::Contact { at: UnixTime(100), reason: Reason::StartUp },
        Change::Nonce(format!("{n}-1")),
        Change::MergeInventory(start_up_items(n)),
    ]);
    message(vec![Change::Nonce(format!("{n}-2")), Change::ReplaceInventory { items: inventory(n), at: UnixTime(100) }]);
    message(vec![
        Change::Nonce(format!("{n}-3")),
        Change::Written(
            written
                .iter()
                .map(|i| (ItemKey { name: i.name.clone(), index: i.index }, record(1, WriteOutcome::Accepted)))
                .collect(),
        ),
        Change::MergeInventory(written.to_vec()),
    ]);
}

/// A known phone's start-up: one message, its reported items as stored.
fn repeat(s: &dyn Store, n: usize, round: usize) {
    let mac = mac_of(n);
    std::hint::black_box(s.load_for_message(mac).expect("loads"));
    let changes = [
        Change::Contact { at: UnixTime(200), reason: Reason::StartUp },
        Change::CalledFrom(std::net::IpAddr::from([192, 0, 2, 7])),
        Change::Nonce(format!("{n}-r{round}")),
        Change::MergeInventory(start_up_items(n)),
    ];
    s.apply(mac, &changes).expect("applies");
}

/// `phones` calls of `f` (with the phone's number) on `threads` threads; prints the rate.
fn measure(what: &str, threads: usize, phones: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, next) = (Arc::clone(&f), Arc::clone(&next));
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= phones {
                        break;
                    }
                    f(n);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread ends");
    }
    let elapsed = start.elapsed();
    println!(
        "{threads} thread(s): {phones} {what} in {:.2} s: {:.0}/s, {:.0} µs each",
        elapsed.as_secs_f64(),
        phones as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / phones as f64
    );
}

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn throughput() {
    let phones = env("DLS_BENCH_PHONES").unwrap_or(2000);
    let thread_counts: Vec<usize> = env("DLS_BENCH_THREADS").map_or(vec![1, 2, 4], |t| vec![t]);
    let items: Vec<(String, Option<u32>, String)> = (1..=9)
        .map(|k| ("key-label-unicode".to_owned(), Some(k), format!("Team {k}")))
        .chain((1001..=1006).map(|k| ("function-key-def".to_owned(), Some(k), "1".to_owned())))
        .chain(
            [("sntp-addr", "ntp2.example.net"), ("reg-timer", "1800"), ("language-iso", "en")]
                .map(|(n, v)| (n.to_owned(), None, v.to_owned())),
        )
        .collect();
    let borrowed: Vec<(&str, Option<u32>, &str)> = items.iter().map(|(n, i, v)| (n.as_str(), *i, v.as_str())).collect();
    let global = profile("global", None, &borrowed);
    let written = global.items.clone();
    for threads in thread_counts {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Arc::new(SqliteStore::open(&dir.path().join("dls.db")).expect("opens"));
        s.put_profile(&global).expect("puts");
        let (st, w) = (Arc::clone(&s), written.clone());
        measure("first start-ups", threads, phones, move |n| interaction(st.as_ref(), n, &w));
        let st = Arc::clone(&s);
        measure("repeat start-ups", threads, phones, move |n| repeat(st.as_ref(), n, 1));
        let st = Arc::clone(&s);
        measure("single-nonce commits", threads, phones, move |n| {
            st.apply(mac_of(n), &[Change::Nonce(format!("{n}-c"))]).expect("applies");
        });
        // Everything arrived.
        let snapshot = s.load_device(mac_of(phones - 1)).expect("loads");
        assert!(snapshot.inventory.len() >= 360);
        assert_eq!(snapshot.written.len(), written.len());
    }
}
