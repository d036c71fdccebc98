//! The bootstrap PIN: a key part that unlocks `secure-mode-data`, and a TAN checked online.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The fewest digits a PIN may have.
pub const MIN_PIN_LENGTH: usize = 9;
/// The most digits a PIN may have.
pub const MAX_PIN_LENGTH: usize = 32;
/// The length of a PIN a server generates unless told otherwise (12-digit key part + TAN).
pub const DEFAULT_PIN_LENGTH: usize = 15;
/// The length of the TAN, the PIN's last digits.
pub const TAN_LENGTH: usize = 3;

/// A bootstrap PIN: `L` decimal digits, `9 <= L <= 32`. The first `L - 3` digits are the
/// **key part** (the password of the key derivation); the last 3 are the **TAN**, which the
/// phone sends back only over mutual TLS and the server checks with [`Pin::check_tan`].
///
/// The digits are wiped from memory when the value is dropped, and [`fmt::Debug`] never
/// shows them. [`fmt::Display`] shows them grouped for people: `1234 5678 9012 345`.
#[derive(Clone)]
pub struct Pin {
    digits: [u8; MAX_PIN_LENGTH],
    len: u8,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.digits.zeroize();
        self.len.zeroize();
    }
}

impl ZeroizeOnDrop for Pin {}

/// Why a text is not a PIN, or a PIN could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// A character other than a digit, a space or `-` (its position is given, never the PIN).
    #[error("a PIN may contain only digits, with spaces or '-' between groups (character {position} is neither)")]
    InvalidCharacter {
        /// The position of the offending character, counted in bytes from 1.
        position: usize,
    },
    /// Too few or too many digits.
    #[error("a PIN has {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} digits, not {length}")]
    Length {
        /// The number of digits given or asked for.
        length: usize,
    },
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

impl Pin {
    /// A fresh PIN of [`DEFAULT_PIN_LENGTH`] digits from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`PinError::Random`] if the random generator fails.
    pub fn generate() -> Result<Self, PinError> {
        Self::generate_with_length(DEFAULT_PIN_LENGTH)
    }

    /// A fresh PIN of `length` digits from the operating system's CSPRNG. Every digit,
    /// the TAN's included, is drawn independently and uniformly.
    ///
    /// # Errors
    /// [`PinError::Length`] unless `9 <= length <= 32`; [`PinError::Random`] if the random
    /// generator fails.
    pub fn generate_with_length(length: usize) -> Result<Self, PinError> {
        if !(MIN_PIN_LENGTH..=MAX_PIN_LENGTH).contains(&length) {
            return Err(PinError::Length { length });
        }
        let mut pin = Self { digits: [0; MAX_PIN_LENGTH], len: 0 };
        let mut pool = Zeroizing::new([0u8; 64]);
        let mut filled = 0;
        while filled < length {
            getrandom::fill(pool.as_mut_slice()).map_err(|e| PinError::Random(e.to_string()))?;
            // Rejection sampling: bytes 0 to 249 are kept (250 values, a multiple of 10),
            // so `b % 10` is uniform.
            for &b in pool.iter().filter(|&&b| b < 250) {
                if filled == length {
                    break;
                }
                pin.digits[filled] = b'0' + b % 10;
                filled += 1;
            }
        }
        pin.len = length_u8(length);
        Ok(pin)
    }

    /// Parses a PIN as people type it: ASCII spaces and `-` are removed first, then every
    /// remaining character must be a decimal digit.
    ///
    /// # Errors
    /// [`PinError::InvalidCharacter`] for any other character, [`PinError::Length`] unless
    /// 9 to 32 digits remain. Neither error contains the digits.
    pub fn parse(text: &str) -> Result<Self, PinError> {
        let mut pin = Self { digits: [0; MAX_PIN_LENGTH], len: 0 };
        let mut count = 0usize;
        for (i, &b) in text.as_bytes().iter().enumerate() {
            match b {
                b' ' | b'-' => {}
                b'0'..=b'9' => {
                    if let Some(slot) = pin.digits.get_mut(count) {
                        *slot = b;
                    }
                    count += 1;
                }
                _ => return Err(PinError::InvalidCharacter { position: i + 1 }),
            }
        }
        if !(MIN_PIN_LENGTH..=MAX_PIN_LENGTH).contains(&count) {
            return Err(PinError::Length { length: count });
        }
        pin.len = length_u8(count);
        Ok(pin)
    }

    /// The number of digits.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always `false`: a PIN has at least 9 digits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All the digits, without grouping (for storing, or for the one place that shows them).
    #[must_use]
    pub fn digits(&self) -> &str {
        ascii(&self.digits[..self.len()])
    }

    /// The key part: every digit but the last three. The password of the key derivation.
    #[must_use]
    pub fn key_part(&self) -> &str {
        ascii(&self.digits[..self.len() - TAN_LENGTH])
    }

    /// The TAN: the last three digits.
    #[must_use]
    pub fn tan(&self) -> &str {
        ascii(&self.digits[self.len() - TAN_LENGTH..self.len()])
    }

    /// Whether `candidate` is this PIN's TAN, compared in constant time (the length, always
    /// 3 for a genuine TAN, is not secret). The candidate is taken exactly, not trimmed.
    #[must_use]
    pub fn check_tan(&self, candidate: &str) -> bool {
        self.tan().as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// `length` is at most [`MAX_PIN_LENGTH`] wherever this is called.
fn length_u8(length: usize) -> u8 {
    u8::try_from(length.min(MAX_PIN_LENGTH)).unwrap_or(u8::MAX)
}

/// The digits are ASCII by construction.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl fmt::Display for Pin {
    /// Groups of four digits separated by spaces: `1234 5678 9012 345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.digits().as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(ascii(group))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({} digits, redacted)", self.len)
    }
}

impl FromStr for Pin {
    type Err = PinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(s: &str) -> Pin {
        Pin::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_strips_spaces_and_dashes() {
        let p = pin(" 1234 5678-9012--345 ");
        assert_eq!(p.digits(), "123456789012345");
        assert_eq!(p.len(), 15);
        assert_eq!(p.key_part(), "123456789012");
        assert_eq!(p.tan(), "345");
    }

    #[test]
    fn parse_length_bounds() {
        assert_eq!(pin("123456789").key_part(), "123456");
        assert_eq!(pin(&"7".repeat(32)).len(), 32);
        for n in [0, 1, 8, 33, 100] {
            let text = "1".repeat(n);
            assert_eq!(Pin::parse(&text).map(|p| p.len()), Err(PinError::Length { length: n }), "{n}");
        }
        assert_eq!(Pin::parse(" - ").err(), Some(PinError::Length { length: 0 }));
    }

    #[test]
    fn parse_refuses_other_characters() {
        for (text, position) in
            [("12345678a", 9), ("1234\t56789", 5), ("１23456789", 1), ("123_456_789", 4), ("+123456789", 1)]
        {
            assert_eq!(Pin::parse(text).err(), Some(PinError::InvalidCharacter { position }), "{text:?}");
        }
        // The message names the position, never the digits.
        let e = Pin::parse("98765x4321").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("character 6") && !e.contains("98765"), "{e}");
    }

    #[test]
    fn display_groups_by_four() {
        assert_eq!(pin("123456789012345").to_string(), "1234 5678 9012 345");
        assert_eq!(pin("123456789").to_string(), "1234 5678 9");
        assert_eq!(pin("1234-5678-9012").to_string(), "1234 5678 9012");
        // What Display shows parses back to the same PIN.
        let p = pin(&"0123456789".repeat(3));
        assert_eq!(pin(&p.to_string()).digits(), p.digits());
    }

    #[test]
    fn debug_is_redacted() {
        let p = pin("987698769876987");
        assert_eq!(format!("{p:?}"), "Pin(15 digits, redacted)");
        let nested = format!("{:?}", (Some(&p), [&p]));
        assert!(!nested.contains("98") && !nested.contains("987"), "{nested}");
    }

    #[test]
    fn tan_check() {
        let p = pin("123456789012345");
        assert!(p.check_tan("345"));
        for wrong in ["344", "346", "543", "", "34", "3455", "345 ", "012"] {
            assert!(!p.check_tan(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn generate_lengths() {
        let p = Pin::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.len(), DEFAULT_PIN_LENGTH);
        for n in [MIN_PIN_LENGTH, 12, DEFAULT_PIN_LENGTH, MAX_PIN_LENGTH] {
            let p = Pin::generate_with_length(n).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.len(), n);
            assert_eq!(p.digits().len(), n);
            assert!(p.digits().bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(Pin::parse(p.digits()).map(|q| q.digits().to_owned()).ok().as_deref(), Some(p.digits()));
        }
        for n in [0, 8, 33] {
            assert_eq!(Pin::generate_with_length(n).err(), Some(PinError::Length { length: n }));
        }
    }

    #[test]
    fn generate_is_random_and_uses_every_digit() {
        // 200 PINs of 32 digits: 6,400 digits. Each digit value is expected 640 times; a
        // count outside 500..800 has a probability far below 1e-9 for a uniform source.
        let mut counts = [0usize; 10];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = Pin::generate_with_length(MAX_PIN_LENGTH).unwrap_or_else(|e| panic!("{e}"));
            for b in p.digits().bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
            seen.insert(p.digits().to_owned());
        }
        assert_eq!(seen.len(), 200, "repeated PINs");
        assert!(counts.iter().all(|&c| (500..800).contains(&c)), "{counts:?}");
    }
}
