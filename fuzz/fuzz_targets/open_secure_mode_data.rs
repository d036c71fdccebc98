//! Any text: `open` never panics, and refuses with either malformed or authentication
//! failed, nothing else. The header is peeked at first (`Envelope::parse`, no key
//! derivation): inputs asking for more than 2,000 PBKDF2 iterations are only parsed, so that
//! every run stays fast (the opener itself accepts up to 10,000,000).
#![no_main]

use std::sync::LazyLock;

use dls_secure_mode::{Envelope, MacAddr, Pin, open};
use libfuzzer_sys::fuzz_target;

const MAX_FUZZ_ITERATIONS: u32 = 2_000;

static PIN: LazyLock<Pin> = LazyLock::new(|| Pin::parse("123456789012321").expect("a valid PIN"));
static MAC: LazyLock<MacAddr> = LazyLock::new(|| MacAddr::parse("00:01:E3:25:EA:13").expect("a valid MAC"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Envelope::parse(text) {
        Err(e) => {
            assert!(e.is_malformed(), "parse: {e:?}");
            return;
        }
        Ok(envelope) if envelope.header().iterations() > MAX_FUZZ_ITERATIONS => return,
        Ok(_) => {}
    }
    match open(&PIN, &MAC, text) {
        // Only a blob sealed for this PIN and MAC (e.g. from a seed corpus) opens.
        Ok(_) => {}
        Err(e) => assert!(e.is_authentication() || e.is_malformed(), "open: {e:?}"),
    }
});
