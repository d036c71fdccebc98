//! Whether an item can be sent to a phone: the one rule shared by everything that accepts
//! items for phones (the admin API: profiles, device overrides, write jobs) and by the
//! engine, which skips a stored item that breaks it instead of failing the whole reply.
//!
//! An item can be sent when
//! * its name is 1 to [`MAX_NAME_BYTES`] of the characters `A-Z a-z 0-9 . _ -` (every item
//!   the protocol reference lists is spelled so);
//! * its value and its `type` hold only characters XML 1.0 allows: no control character but
//!   tab, line feed and carriage return, no U+FFFE or U+FFFF (a `String` holds no lone
//!   surrogate);
//! * encoded (escaping included), it fits in one `WriteItems` of at most
//!   [`DEFAULT_MAX_BYTES`] with its envelope
//!   ([`max_item_bytes`]).

use std::fmt;

use crate::decode::is_xml_char;
use crate::encode::item_size;
use crate::fragment::{DEFAULT_MAX_BYTES, ENVELOPE_BYTES};
use crate::types::Item;

/// The longest item name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The largest encoded item (as [`crate::encode()`] writes it, escaping included) that fits
/// in one `WriteItems` message besides its envelope.
#[must_use]
pub const fn max_item_bytes() -> usize {
    DEFAULT_MAX_BYTES - ENVELOPE_BYTES
}

/// Why an item cannot be sent to a phone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// The name is empty.
    #[error("the item has no name")]
    EmptyName,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("the name is {len} bytes long, more than {MAX_NAME_BYTES}")]
    NameTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a character other than `A-Z a-z 0-9 . _ -`.
    #[error("the name holds U+{code:04X}; a name is made of A-Z a-z 0-9 . _ -")]
    NameChar {
        /// The character's code point.
        code: u32,
    },
    /// The value holds a character XML 1.0 cannot carry.
    #[error("the value holds U+{code:04X} at character {at}, which XML 1.0 cannot carry")]
    ValueChar {
        /// The character's code point.
        code: u32,
        /// Its position in the value, in characters from 0.
        at: usize,
    },
    /// The `type` attribute holds a character XML 1.0 cannot carry.
    #[error("the type holds U+{code:04X}, which XML 1.0 cannot carry")]
    TypeChar {
        /// The character's code point.
        code: u32,
    },
    /// Encoded, the item does not fit in one `WriteItems`.
    #[error("encoded, the item is {size} bytes, more than one WriteItems message carries ({limit} bytes)")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// [`max_item_bytes`].
        limit: usize,
    },
}

/// Checks that `item` can be sent to a phone (see the [module](self) for the rule). The
/// phone's `status` is not looked at: it is never sent.
///
/// # Errors
/// The first [`ItemError`] found.
pub fn check_item(item: &Item) -> Result<(), ItemError> {
    if item.name.is_empty() {
        return Err(ItemError::EmptyName);
    }
    if item.name.len() > MAX_NAME_BYTES {
        return Err(ItemError::NameTooLong { len: item.name.len() });
    }
    if let Some(c) = item.name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(ItemError::NameChar { code: u32::from(c) });
    }
    if let Some((at, c)) = first_non_xml_char(&item.value) {
        return Err(ItemError::ValueChar { code: u32::from(c), at });
    }
    if let Some(c) = item.item_type.as_deref().and_then(|t| t.chars().find(|&c| !is_xml_char(c))) {
        return Err(ItemError::TypeChar { code: u32::from(c) });
    }
    // Cheap bound first: escaping at most multiplies a byte by 6 (`&quot;`) and the markup
    // around an item is well under 256 bytes, so a raw size this small always fits; only
    // larger items are encoded to be measured.
    let raw = item.name.len() + item.value.len() + item.item_type.as_ref().map_or(0, String::len);
    if raw.saturating_mul(6).saturating_add(256) > max_item_bytes() {
        let size = item_size(item);
        if size > max_item_bytes() {
            return Err(ItemError::TooLarge { size, limit: max_item_bytes() });
        }
    }
    Ok(())
}

/// The first character of `s` that XML 1.0 does not allow, and its position in characters
/// (for texts sent whole, such as a provisioning template).
#[must_use]
pub fn first_non_xml_char(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|&(_, c)| !is_xml_char(c))
}

/// An item of a list that cannot be sent: which one, and why. Its display names the item
/// (its name quoted and cut to 64 characters, its index) and its place in the list, on one
/// line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("item {}: {error}", describe(.position, .name, .index))]
pub struct InvalidItem {
    /// Its place in the list, from 0.
    pub position: usize,
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: Option<u32>,
    /// Why it cannot be sent.
    pub error: ItemError,
}

fn describe(position: &usize, name: &str, index: &Option<u32>) -> String {
    let mut s = String::new();
    if name.is_empty() {
        s.push_str("(no name)");
    } else {
        s.push_str(&quoted(name));
    }
    if let Some(i) = index {
        s.push_str(&format!(" index {i}"));
    }
    s.push_str(&format!(" (#{} in the list)", position + 1));
    s
}

/// `s` quoted with Rust's escapes (so a control character shows as `\u{0}`), cut to 64
/// characters.
#[must_use]
pub fn quoted(s: &str) -> String {
    const MAX: usize = 64;
    let mut cut: String = s.chars().take(MAX).collect();
    let more = cut.len() < s.len();
    if more {
        cut.push('…');
    }
    format!("{cut:?}")
}

impl InvalidItem {
    /// The problem of `item` at `position`.
    #[must_use]
    pub fn new(position: usize, item: &Item, error: ItemError) -> Self {
        Self { position, name: item.name.clone(), index: item.index, error }
    }
}

/// Checks every item of `items` with [`check_item`].
///
/// # Errors
/// The first item that cannot be sent.
pub fn check_items(items: &[Item]) -> Result<(), InvalidItem> {
    for (position, item) in items.iter().enumerate() {
        check_item(item).map_err(|e| InvalidItem::new(position, item, e))?;
    }
    Ok(())
}

/// A short name for an item in logs and answers: its name (quoted, cut) and its index.
#[must_use]
pub fn item_label(item: &Item) -> impl fmt::Display + '_ {
    struct Label<'a>(&'a Item);
    impl fmt::Display for Label<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.0.name.is_empty() {
                f.write_str("(no name)")?;
            } else {
                f.write_str(&quoted(&self.0.name))?;
            }
            match self.0.index {
                Some(i) => write!(f, " index {i}"),
                None => Ok(()),
            }
        }
    }
    Label(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, DlsMessage, EncodeOptions, Message, encode};

    fn write_items(item: Item) -> usize {
        let m: Message =
            DlsMessage::new("0123456789ABCDEF0123456789ABCDEF", Action::WriteItems, Some(vec![item])).into();
        encode(&m, &EncodeOptions::default()).expect("encodes").len()
    }

    #[test]
    fn what_can_be_sent() {
        assert_eq!(check_item(&Item::new("sntp-addr", "ntp.example.net")), Ok(()));
        assert_eq!(check_item(&Item::new("key-label-unicode", "tab\tlf\ncr\r ü 😀 <&>")), Ok(()));
        assert_eq!(check_item(&Item::new("password", "")), Ok(()));
        assert_eq!(check_item(&Item::new("", "x")), Err(ItemError::EmptyName));
        assert_eq!(check_item(&Item::new("a b", "x")), Err(ItemError::NameChar { code: 0x20 }));
        assert_eq!(check_item(&Item::new("a".repeat(129), "x")), Err(ItemError::NameTooLong { len: 129 }));
        assert_eq!(check_item(&Item::new("a", "ab\0")), Err(ItemError::ValueChar { code: 0, at: 2 }));
        assert_eq!(check_item(&Item::new("a", "\u{1b}[2J")), Err(ItemError::ValueChar { code: 0x1B, at: 0 }));
        assert_eq!(check_item(&Item::new("a", "ü\u{1}")), Err(ItemError::ValueChar { code: 1, at: 1 }));
        assert_eq!(check_item(&Item::new("a", "\u{FFFE}")), Err(ItemError::ValueChar { code: 0xFFFE, at: 0 }));
        assert_eq!(check_item(&Item::new("a", "\u{FFFF}")), Err(ItemError::ValueChar { code: 0xFFFF, at: 0 }));
        let typed = Item { item_type: Some("x\u{7}".into()), ..Item::new("a", "v") };
        assert_eq!(check_item(&typed), Err(ItemError::TypeChar { code: 7 }));
    }

    #[test]
    fn the_size_limit_counts_the_escaping_and_matches_the_encoder() {
        assert!(matches!(
            check_item(&Item::new("key-label-unicode", "x".repeat(60_000))),
            Err(ItemError::TooLarge { .. })
        ));
        // 10,000 `<` are 10 kB raw but 40 kB escaped; 13,000 are 52 kB escaped.
        assert_eq!(check_item(&Item::new("a", "<".repeat(10_000))), Ok(()));
        assert!(matches!(check_item(&Item::new("a", "<".repeat(13_000))), Err(ItemError::TooLarge { .. })));
        // The largest value that passes makes a message within 50 kB; one byte more does not pass.
        let fits = |n: usize| check_item(&Item::new("key-label-unicode", "x".repeat(n))).is_ok();
        let (mut lo, mut hi) = (0, 60_000);
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid) { lo = mid } else { hi = mid }
        }
        assert!(write_items(Item::new("key-label-unicode", "x".repeat(lo))) <= DEFAULT_MAX_BYTES);
        assert!(!fits(lo + 1));
    }

    #[test]
    fn a_list_names_the_item_and_its_place() {
        let items = vec![Item::new("sntp-addr", "ok"), Item::indexed("function-key-def", 3, "a\0b")];
        let e = check_items(&items).expect_err("refused");
        assert_eq!(e.position, 1);
        assert_eq!(
            e.to_string(),
            "item \"function-key-def\" index 3 (#2 in the list): the value holds U+0000 at character 1, \
             which XML 1.0 cannot carry"
        );
        let e = check_items(&[Item::new("", "x")]).expect_err("refused");
        assert_eq!(e.to_string(), "item (no name) (#1 in the list): the item has no name");
        let e = check_items(&[Item::new("a\nb", "x")]).expect_err("refused");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert_eq!(check_items(&items[..1]), Ok(()));
    }
}
