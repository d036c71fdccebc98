//! Decode and encode of a 1,000-item `ReadAllItems` reply (about 80 kB), beside a bare
//! quick-xml event scan of the same bytes (the baseline the decoder is held to).
//!
//! `cargo bench -p dls-message --bench codec`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dls_message::{
    Action, EncodeOptions, Header, Item, Message, ReasonForContact, ReplyStatus, WorkpointMessage, decode, encode,
};
use quick_xml::Reader;
use quick_xml::events::Event;

/// A phone's answer to `ReadAllItems`: 1,000 items shaped like real inventory.
fn read_all_items_reply() -> Message {
    let mut items = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let item = match i % 5 {
            0 => Item::indexed("function-key-def", i, (i % 60).to_string()),
            1 => Item::indexed("key-label-unicode", i, format!("Büro Müller & Co {i}")),
            2 => Item::new(format!("sip-server-address-{i}"), "sip.example.net"),
            3 => Item::indexed("ldap-server-address", i, format!("ldap{i}.example.net")),
            _ => Item::new(format!("setting-{i}"), "true"),
        };
        items.push(item);
    }
    Message::Workpoint(WorkpointMessage {
        header: Header {
            nonce: "6D3A0F7C19B24E58A1C0D2E3F4051627".into(),
            max_items: Some(-1),
            fragment: Some(dls_message::Fragment::Final),
        },
        reason: ReasonForContact::reply_to(Action::ReadAllItems, ReplyStatus::Accepted),
        items: Some(items),
    })
}

/// The baseline: every event of the document read, nothing built.
fn bare_scan(xml: &str) -> usize {
    let mut reader = Reader::from_str(xml);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return n,
            Ok(e) => n += black_box(&e).len(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn codec(c: &mut Criterion) {
    let msg = read_all_items_reply();
    let xml = encode(&msg, &EncodeOptions::default()).expect("encodes");
    eprintln!("document: {} items, {} bytes", msg.items().map_or(0, <[_]>::len), xml.len());
    assert_eq!(decode(xml.as_bytes()).expect("decodes"), msg);

    let mut g = c.benchmark_group("read_all_items_1000");
    g.throughput(Throughput::Bytes(xml.len() as u64));
    g.bench_function("baseline_quick_xml_scan", |b| b.iter(|| bare_scan(black_box(&xml))));
    g.bench_function("decode", |b| b.iter(|| decode(black_box(xml.as_bytes())).expect("decodes")));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(&msg), &EncodeOptions::default()).expect("encodes")));
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
