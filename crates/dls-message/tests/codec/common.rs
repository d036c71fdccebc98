//! Test data in the repository's `tests/` folder.

use std::path::PathBuf;

pub(crate) fn samples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/samples/wpi"))
}

/// Every sample: (file name, bytes).
pub(crate) fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(samples_dir())
        .expect("tests/samples/wpi exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            let name = p.file_name().expect("file name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).expect("readable sample");
            (name, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 13, "samples missing from tests/samples/wpi");
    out
}
