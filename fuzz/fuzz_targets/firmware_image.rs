//! Any bytes as the head of an uploaded firmware image, any text as its name: inspecting it
//! never panics, an accepted header's version is canonical (its display parses back to
//! itself), and version ordering is total and consistent with equality.
#![no_main]

use dls_engine::firmware::{SoftwareVersion, inspect_image};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, head) = data.split_at(data.len().min(64));
    let name = String::from_utf8_lossy(name);
    if let Ok(info) = inspect_image(head, &name) {
        if let Some(v) = info.version {
            assert_eq!(SoftwareVersion::parse(&v.to_string()), Some(v.clone()));
        }
    }
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    if let (Some(x), Some(y)) = (SoftwareVersion::parse(a), SoftwareVersion::parse(b)) {
        assert_eq!(x.cmp(&y) == std::cmp::Ordering::Equal, x == y);
        assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
    }
});
