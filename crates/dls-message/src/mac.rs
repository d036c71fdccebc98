//! MAC addresses, the identity of a workpoint.

use std::fmt;
use std::str::FromStr;

/// A device's MAC address. Parses `00:01:e3:25:ea:13`, `00-01-E3-25-EA-13` or
/// `0001E325EA13` (any case); displays in the normalised form: 12 upper-case hex
/// digits, no separators.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

/// Why a text is not a MAC address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (want 12 hex digits, optionally separated by ':' or '-')")]
#[non_exhaustive]
pub struct MacAddrError;

impl MacAddr {
    /// The six octets.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }

    /// The six octets.
    #[must_use]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Parses any accepted spelling.
    ///
    /// # Errors
    /// [`MacAddrError`] unless the text is 12 hex digits, either without separators or in
    /// six pairs all separated by the same `:` or `-`.
    pub fn parse(text: &str) -> Result<Self, MacAddrError> {
        let b = text.as_bytes();
        let digits: [u8; 12] = match b.len() {
            12 => b.try_into().map_err(|_| MacAddrError)?,
            17 => {
                let sep = b[2];
                if sep != b':' && sep != b'-' {
                    return Err(MacAddrError);
                }
                let mut d = [0u8; 12];
                for (i, pair) in b.chunks(3).enumerate() {
                    if pair.len() == 3 && pair[2] != sep {
                        return Err(MacAddrError);
                    }
                    d[2 * i] = pair[0];
                    d[2 * i + 1] = pair[1];
                }
                d
            }
            _ => return Err(MacAddrError),
        };
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (hex_val(digits[2 * i])? << 4) | hex_val(digits[2 * i + 1])?;
        }
        Ok(Self(out))
    }

    /// The normalised form, `0001E325EA13`.
    #[must_use]
    pub fn normalized(&self) -> String {
        self.to_string()
    }

    /// The colon form phones report, `00:01:E3:25:EA:13`.
    #[must_use]
    pub fn colon_separated(&self) -> String {
        let o = self.0;
        format!("{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}", o[0], o[1], o[2], o[3], o[4], o[5])
    }
}

fn hex_val(c: u8) -> Result<u8, MacAddrError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(MacAddrError),
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in self.0 {
            write!(f, "{o:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let want = "0001E325EA13";
        for s in ["00:01:e3:25:ea:13", "00-01-E3-25-EA-13", "0001e325EA13"] {
            assert_eq!(MacAddr::parse(s).map(|m| m.to_string()), Ok(want.to_owned()), "{s}");
        }
        assert_eq!(MacAddr::parse(want).map(|m| m.colon_separated()).as_deref(), Ok("00:01:E3:25:EA:13"));
    }

    #[test]
    fn refusals() {
        for s in [
            "",
            "00:01:e3:25:ea",
            "00:01-e3:25:ea:13",
            "00:01:e3:25:ea:1g",
            "0001E325EA1",
            "00.01.e3.25.ea.13",
            "ä001E325EA1",
        ] {
            assert_eq!(MacAddr::parse(s), Err(MacAddrError), "{s}");
        }
    }
}
