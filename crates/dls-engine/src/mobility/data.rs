//! A user's saved data: checking what a phone sends (Base64 within the limits) and
//! splitting what is sent back into `WriteItems` messages.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use dls_message::fragment::{DEFAULT_MAX_BYTES, ENVELOPE_BYTES, FragmentLimits};
use dls_message::{Item, ItemList};

use super::{MobilityLimits, SavedData, UserData};

/// The standard alphabet, padding present or missing, and trailing bits tolerated (the
/// public phone simulator's samples end in `Cj==`).
const TOLERANT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why user data a phone sent is refused (nothing of it is saved).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The value is not Base64 (standard alphabet; whitespace and missing padding are
    /// tolerated).
    #[error("{name}: not Base64")]
    NotBase64 {
        /// The item.
        name: String,
    },
    /// The item is larger than the per-item limit.
    #[error("{name}: {size} bytes, more than the {limit} allowed for one item")]
    ItemTooLarge {
        /// The item.
        name: String,
        /// Its decoded size (or a lower bound).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The user's data would be larger than the per-user limit.
    #[error("{total} bytes of user data, more than the {limit} allowed for one user")]
    UserTooLarge {
        /// The user's total after saving.
        total: u64,
        /// The limit.
        limit: u64,
    },
}

/// `text` without ASCII whitespace (a phone may wrap Base64 in lines).
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

/// The decoded length of Base64 `text` (whitespace ignored), if it is Base64.
#[must_use]
pub fn decoded_len(text: &str) -> Option<u64> {
    decode(text).map(|d| d.len() as u64)
}

/// Base64 `text` decoded as phones send it (whitespace ignored, padding optional,
/// trailing bits tolerated), if it is Base64.
#[must_use]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    TOLERANT.decode(compact(text)).ok()
}

/// One item a phone sent: its Base64 checked and measured, within the per-item limit.
fn check_item(name: &str, value: &str, limits: &MobilityLimits) -> Result<UserData, DataError> {
    let text = compact(value);
    // Refused before decoding when even its text is too long for the limit.
    let lower_bound = (text.len() as u64 / 4).saturating_mul(3).saturating_sub(2);
    if lower_bound > limits.max_item_bytes {
        return Err(DataError::ItemTooLarge { name: name.to_owned(), size: lower_bound, limit: limits.max_item_bytes });
    }
    let size = TOLERANT.decode(&text).map_err(|_| DataError::NotBase64 { name: name.to_owned() })?.len() as u64;
    if size > limits.max_item_bytes {
        return Err(DataError::ItemTooLarge { name: name.to_owned(), size, limit: limits.max_item_bytes });
    }
    Ok(UserData { name: name.to_owned(), value: text, size })
}

/// The items `sent` (name, value) checked, given what the user has saved: every value
/// Base64 within the per-item limit, and the user's total (the saved items not replaced,
/// plus these) within the per-user limit. All or nothing.
pub(crate) fn check_all(
    sent: &[(String, String)],
    saved: &[SavedData],
    limits: &MobilityLimits,
) -> Result<Vec<UserData>, DataError> {
    let mut out = Vec::with_capacity(sent.len());
    for (name, value) in sent {
        out.push(check_item(name, value, limits)?);
    }
    let kept: u64 = saved.iter().filter(|s| !out.iter().any(|d| d.name == s.name)).map(|s| s.size).sum();
    let total = out.iter().map(|d| d.size).fold(kept, u64::saturating_add);
    if total > limits.max_user_bytes {
        return Err(DataError::UserTooLarge { total, limit: limits.max_user_bytes });
    }
    Ok(out)
}

/// `items` in `WriteItems` messages within the phone's `maxItems` and 50 kB; an item larger
/// than one message goes alone in a message of its own: user data are the phone's own,
/// which it sent at that size (the only items sent past the 50 kB rule).
pub(crate) fn split_data(max_items: Option<i64>, items: ItemList) -> VecDeque<ItemList> {
    let limits = FragmentLimits::for_max_items(max_items);
    let budget = DEFAULT_MAX_BYTES.saturating_sub(ENVELOPE_BYTES);
    let mut parts: VecDeque<ItemList> = VecDeque::new();
    let mut current: ItemList = Vec::new();
    let mut size = 0;
    for item in items {
        // Base64 needs no escaping: the encoded item is its name, value and markup.
        let len = item.name.len() + item.value.len() + ITEM_MARKUP;
        let full = limits.max_items.is_some_and(|m| current.len() >= m) || size + len > budget;
        if full && !current.is_empty() {
            parts.push_back(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(item);
    }
    if !current.is_empty() {
        parts.push_back(current);
    }
    parts
}

/// The bytes of an item's markup around its name and value (`<Item name="" index="1">`,
/// `</Item>`), rounded up.
const ITEM_MARKUP: usize = 48;

/// A saved item as the phone is sent it: at index 1.
pub(crate) fn as_item(name: &str, value: &str) -> Item {
    Item::indexed(name, 1, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(item: u64, user: u64) -> MobilityLimits {
        MobilityLimits { max_item_bytes: item, max_user_bytes: user, ..MobilityLimits::default() }
    }

    #[test]
    fn base64_is_tolerated_as_phones_send_it() {
        assert_eq!(decoded_len("aGVsbG8="), Some(5));
        assert_eq!(decoded_len("aGVsbG8"), Some(5), "padding missing");
        assert_eq!(decoded_len("aGVs\nbG8=\r\n"), Some(5), "wrapped");
        assert_eq!(decoded_len("AAEAAC90bXAvcHJpb3JpdHlfY2h1bmtpbmcudG1wCj=="), Some(31), "trailing bits");
        assert_eq!(decoded_len(""), Some(0));
        for bad in ["a", "aGVsbG8*", "aGVs bG8=x", "????", "aGVsbG8=aGVs\u{e9}"] {
            assert_eq!(decoded_len(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_per_item_and_per_user() {
        let sent = |v: &[(&str, &str)]| v.iter().map(|(n, x)| ((*n).to_owned(), (*x).to_owned())).collect::<Vec<_>>();
        let ok = check_all(&sent(&[("userdata-a", "aGVsbG8=")]), &[], &limits(5, 10)).expect("fits");
        assert_eq!((ok[0].size, ok[0].value.as_str()), (5, "aGVsbG8="));
        let e = check_all(&sent(&[("userdata-a", "aGVsbG8h")]), &[], &limits(5, 10)).expect_err("6 bytes");
        assert!(matches!(e, DataError::ItemTooLarge { size: 6, .. }), "{e}");
        let huge = "A".repeat(4000);
        let e = check_all(&sent(&[("userdata-a", &huge)]), &[], &limits(5, 10)).expect_err("far too large");
        assert!(matches!(e, DataError::ItemTooLarge { .. }), "{e}");
        let saved = [SavedData { name: "userdata-b".into(), size: 6, value: None }];
        let e = check_all(&sent(&[("userdata-a", "aGVsbG8=")]), &saved, &limits(5, 10)).expect_err("11 in all");
        assert_eq!(e, DataError::UserTooLarge { total: 11, limit: 10 });
        // Replacing the saved item frees its size.
        let replaced = check_all(&sent(&[("userdata-b", "aGVsbG8=")]), &saved, &limits(5, 10));
        assert!(replaced.is_ok());
        let e = check_all(&sent(&[("userdata-a", "%%%")]), &[], &limits(5, 10)).expect_err("not base64");
        assert_eq!(e, DataError::NotBase64 { name: "userdata-a".into() });
    }

    #[test]
    fn data_is_split_within_the_limits_and_large_items_go_alone() {
        let small = |n: u32| as_item(&format!("userdata-{n}"), "QUJD");
        let parts = split_data(Some(2), (0..5).map(small).collect());
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        let big = as_item("userdata-big", &"A".repeat(120_000));
        let parts = split_data(None, vec![small(1), big.clone(), small(2)]);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(parts[1][0], big);
        assert!(split_data(None, Vec::new()).is_empty());
    }
}
