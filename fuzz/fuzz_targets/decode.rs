//! Any bytes: decode never panics, and an error always has an offset inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match dls_message::decode(data) {
        Ok(_) => {}
        Err(e) => assert!(e.offset() <= data.len()),
    }
    let _ = dls_message::decode_item_list(data, &dls_message::Limits::default());
});
