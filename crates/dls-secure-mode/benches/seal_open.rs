//! Sealing and opening a realistic bundle at the default 600,000 PBKDF2 iterations, the key
//! derivation alone, and the crate's own overhead (everything but PBKDF2: XML, AES-GCM,
//! Base64) measured on the very code paths `seal` and `open` use.
//!
//! `cargo bench -p dls-secure-mode`; the figures are in docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dls_secure_mode::{DEFAULT_ITERATIONS, Envelope, Item, MacAddr, Pin, SealParams, Sealer, derive_key, open, seal};

/// A PEM block of `len` bytes of DER (fake but of realistic size), in 64-column lines.
fn pem(label: &str, len: usize, seed: u8) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let chars: Vec<u8> = (0..len.div_ceil(3) * 4).map(|i| B64[(i * 31 + usize::from(seed) * 7) % 64]).collect();
    let body: Vec<&str> = chars.chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----", body.join("\n"))
}

/// What a phone gets: its certificate and RSA-2048 key, two CA certificates, the port
/// (about 6 KB of XML).
fn bundle() -> Vec<Item> {
    let client = format!("{}\n{}", pem("CERTIFICATE", 1_100, 1), pem("PRIVATE KEY", 1_218, 2));
    vec![
        Item::new("dls-client-certificate", client),
        Item::indexed("dls-server-ca", 0, pem("CERTIFICATE", 1_000, 3)),
        Item::indexed("dls-server-ca", 1, pem("CERTIFICATE", 1_050, 4)),
        Item::new("dls-secure-port", "18444"),
    ]
}

fn benches(c: &mut Criterion) {
    let pin = Pin::parse("123456789012345").expect("PIN");
    let mac = MacAddr::parse("00:01:E3:25:EA:13").expect("MAC");
    let items = bundle();
    let plaintext_len = dls_message::encode_item_list(&items).map(|s| s.len()).unwrap_or_default();
    eprintln!("bundle: {} items, {plaintext_len} bytes of XML", items.len());
    let params = SealParams::default();
    assert_eq!(params.iterations(), DEFAULT_ITERATIONS);
    let text = seal(&pin, &mac, &items, &params).expect("seals");
    let envelope = Envelope::parse(&text).expect("parses");
    let key = derive_key(&pin, envelope.header().salt(), envelope.header().iterations());

    let mut slow = c.benchmark_group("600k");
    slow.sample_size(10);
    slow.bench_function("pbkdf2", |b| {
        b.iter(|| derive_key(black_box(&pin), envelope.header().salt(), DEFAULT_ITERATIONS));
    });
    slow.bench_function("seal", |b| b.iter(|| seal(black_box(&pin), &mac, &items, &params).expect("seals")));
    slow.bench_function("open", |b| b.iter(|| open(black_box(&pin), &mac, &text).expect("opens")));
    slow.finish();

    // The same paths without the key derivation. A sealer is consumed by sealing (one
    // nonce, one message), so each is made untimed in the batch set-up, cheaply (1,000
    // iterations; the count does not change the work measured).
    let cheap = SealParams::insecure_fixed_for_tests(1_000, [1; 16], [2; 12]).expect("params");
    let mut fast = c.benchmark_group("without_pbkdf2");
    fast.sample_size(30);
    fast.bench_function("seal", |b| {
        b.iter_batched(
            || Sealer::new(&pin, &cheap).expect("sealer"),
            |sealer| sealer.seal(&mac, black_box(&items)).expect("seals"),
            BatchSize::SmallInput,
        );
    });
    fast.bench_function("open", |b| {
        b.iter(|| Envelope::parse(black_box(&text)).and_then(|e| e.open_with_key(&key, &mac)).expect("opens"));
    });
    fast.finish();
}

criterion_group!(seal_open, benches);
criterion_main!(seal_open);
