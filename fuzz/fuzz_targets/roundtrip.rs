//! Whatever decodes, encodes; and what it encodes to decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use dls_message::{EncodeOptions, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(first) = decode(data) else { return };
    let xml = encode(&first, &EncodeOptions::default()).expect("a decoded message always encodes");
    let second = decode(xml.as_bytes()).expect("an encoded message always decodes");
    assert_eq!(first, second);
});
