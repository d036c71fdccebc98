//! Shared helpers: the known-answer vectors and small constructors.

use std::sync::LazyLock;

use dls_secure_mode::{Item, MacAddr, Pin, SealParams};

/// The repository's copy of the shared vectors.
const VECTORS_JSON: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/secure-mode-data.json"));

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Vectors {
    pub(crate) version: u32,
    pub(crate) positive: Vec<Positive>,
    pub(crate) negative: Vec<Negative>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Positive {
    pub(crate) name: String,
    pub(crate) pin: String,
    pub(crate) key_part: String,
    pub(crate) tan: String,
    pub(crate) mac: String,
    pub(crate) iterations: u32,
    pub(crate) salt_hex: String,
    pub(crate) nonce_hex: String,
    pub(crate) key_hex: String,
    pub(crate) plaintext: String,
    pub(crate) items: Vec<VectorItem>,
    pub(crate) secure_mode_data: String,
    #[serde(default)]
    pub(crate) secure_mode_data_wrapped: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct VectorItem {
    pub(crate) name: String,
    pub(crate) value: String,
    #[serde(default)]
    pub(crate) index: Option<u32>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct Negative {
    pub(crate) name: String,
    pub(crate) pin: String,
    pub(crate) mac: String,
    pub(crate) secure_mode_data: String,
    pub(crate) error: String,
}

pub(crate) static VECTORS: LazyLock<Vectors> = LazyLock::new(|| {
    serde_json::from_str(VECTORS_JSON).expect("the vector file is valid JSON of the documented shape")
});

impl Positive {
    pub(crate) fn items(&self) -> Vec<Item> {
        self.items.iter().map(|i| Item { index: i.index, ..Item::new(i.name.clone(), i.value.clone()) }).collect()
    }

    pub(crate) fn salt(&self) -> [u8; 16] {
        hex_array(&self.salt_hex)
    }

    pub(crate) fn nonce(&self) -> [u8; 12] {
        hex_array(&self.nonce_hex)
    }

    pub(crate) fn params(&self) -> SealParams {
        SealParams::insecure_fixed_for_tests(self.iterations, self.salt(), self.nonce()).expect("vector parameters")
    }
}

pub(crate) fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    let v = hex::decode(s).expect("hex");
    v.try_into().unwrap_or_else(|v: Vec<u8>| panic!("want {N} bytes, got {}", v.len()))
}

pub(crate) fn pin(s: &str) -> Pin {
    Pin::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(crate) fn mac(s: &str) -> MacAddr {
    MacAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The vector called `name`.
pub(crate) fn positive(name: &str) -> &'static Positive {
    VECTORS.positive.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no vector {name}"))
}
