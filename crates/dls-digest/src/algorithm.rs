//! The `algorithm` parameter values and the hash functions behind them.

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use zeroize::Zeroizing;

/// A hash function of RFC 7616.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashFn {
    /// MD5 (RFC 1321).
    Md5,
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-512/256 (FIPS 180-4, section 6.7: its own initial values, not a truncated SHA-512).
    Sha512_256,
}

impl HashFn {
    /// Length of a digest in lowercase hex.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha256 | Self::Sha512_256 => 64,
        }
    }

    /// `H(parts[0] ":" parts[1] ":" …)` in lowercase hex. Wrapped in [`Zeroizing`] because an
    /// H(A1) is as good as the password it was made from.
    pub fn hex(self, parts: &[&[u8]]) -> Zeroizing<String> {
        match self {
            Self::Md5 => joined_hex::<Md5>(parts),
            Self::Sha256 => joined_hex::<Sha256>(parts),
            Self::Sha512_256 => joined_hex::<Sha512_256>(parts),
        }
    }
}

fn joined_hex<D: Digest>(parts: &[&[u8]]) -> Zeroizing<String> {
    let mut d = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(part);
    }
    Zeroizing::new(hex::encode(d.finalize()))
}

/// A value of the `algorithm` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`, the default when a client sends no `algorithm`.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (the real SHA-512/256).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, in the order of the RFC's registry.
    pub const ALL: [Self; 6] =
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess, Self::Sha512_256, Self::Sha512_256Sess];

    /// The name as it appears in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Parses a name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The hash function.
    pub fn hash(self) -> HashFn {
        match self {
            Self::Md5 | Self::Md5Sess => HashFn::Md5,
            Self::Sha256 | Self::Sha256Sess => HashFn::Sha256,
            Self::Sha512_256 | Self::Sha512_256Sess => HashFn::Sha512_256,
        }
    }

    /// Whether this is a `-sess` variant (H(A1) mixes in the nonce and cnonce).
    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
            assert_eq!(Algorithm::from_name(&a.name().to_ascii_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::from_name("SHA-512"), None);
        assert_eq!(Algorithm::from_name(""), None);
    }

    #[test]
    fn known_digests() {
        // Independent values: `printf 'a:b' | md5sum`, `sha256sum`, and OpenSSL's `sha512-256`.
        assert_eq!(*HashFn::Md5.hex(&[b"a", b"b"]), "d8160c9b3dc20d4e931aeb4f45262155");
        assert_eq!(*HashFn::Sha256.hex(&[b"abc"]), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            *HashFn::Sha512_256.hex(&[b"abc"]),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
        for h in [HashFn::Md5, HashFn::Sha256, HashFn::Sha512_256] {
            assert_eq!(h.hex(&[b""]).len(), h.hex_len());
        }
    }
}
