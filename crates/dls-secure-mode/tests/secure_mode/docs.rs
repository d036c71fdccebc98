//! The device-side snippet in `docs/secure-mode.md` is the crate's first doctest, which
//! `cargo test` compiles and runs: this keeps the two copies identical.

const GUIDE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/secure-mode.md"));
const LIB: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs"));

/// The lines of the first fenced block opened by `open` in `lines`.
fn first_block<'a>(lines: impl Iterator<Item = &'a str>, open: &str) -> Vec<&'a str> {
    lines.skip_while(|l| *l != open).skip(1).take_while(|l| *l != "```").collect()
}

#[test]
fn the_guide_shows_the_tested_snippet() {
    let guide = first_block(GUIDE.lines(), "```rust");
    let docs = LIB.lines().map_while(|l| l.strip_prefix("//!")).map(|l| l.strip_prefix(' ').unwrap_or(l));
    let tested: Vec<&str> = first_block(docs, "```").into_iter().filter(|l| !l.starts_with("# ")).collect();
    assert!(tested.len() >= 8, "{tested:?}");
    assert!(tested.iter().any(|l| l.contains("open(&pin, &mac, text)")));
    assert_eq!(guide, tested);
}
