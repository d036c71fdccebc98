//! Splitting a long item list into consecutive messages.
//!
//! The protocol caps messages at 50 kB and the phone states the most items it accepts in
//! one message (`maxItems`). Items that belong together must travel in the same message:
//! by default all `file-*` items that share one `index` (one file of a deployment); callers
//! can supply their own grouping rule with [`split_by`].

use std::collections::HashMap;
use std::hash::Hash;

use crate::encode::item_size;
use crate::types::{Item, ItemList};

/// The protocol's cap on one message, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 50_000;

/// Room reserved in every message for the envelope around the items (declaration, root,
/// `Message` with its nonce, `Action`, `ItemList` tags).
pub const ENVELOPE_BYTES: usize = 512;

/// How large each message may be.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FragmentLimits {
    /// The most items in one message (`None`: no limit), as the phone's `maxItems` says.
    pub max_items: Option<usize>,
    /// The most bytes in one encoded message, envelope included.
    pub max_bytes: usize,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        Self { max_items: None, max_bytes: DEFAULT_MAX_BYTES }
    }
}

impl FragmentLimits {
    /// Limits for a phone that said `maxItems` (`None`, `-1` or `0`: no item limit).
    #[must_use]
    pub fn for_max_items(max_items: Option<i64>) -> Self {
        let max_items = max_items.filter(|n| *n > 0).and_then(|n| usize::try_from(n).ok());
        Self { max_items, ..Self::default() }
    }

    /// Sets the byte budget.
    #[must_use]
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }
}

/// Why a list cannot be split within the limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// One group of items that must travel together is larger than one message may be.
    #[error("the items that belong with \"{first_item}\" ({items} items, {bytes} bytes) do not fit in one message")]
    GroupTooLarge {
        /// The group's first item's name.
        first_item: String,
        /// The group's item count.
        items: usize,
        /// The group's encoded size.
        bytes: usize,
    },
}

/// The bytes `item` takes in an encoded message (what the byte budget counts).
#[must_use]
pub fn encoded_size(item: &Item) -> usize {
    item_size(item)
}

/// The default grouping rule: all `file-*` items with the same `index` belong together.
#[must_use]
pub fn file_group(item: &Item) -> Option<u32> {
    if item.name.starts_with("file-") { item.index } else { None }
}

/// Splits `items` with the default grouping rule ([`file_group`]).
///
/// # Errors
/// [`FragmentError::GroupTooLarge`] when one group does not fit in one message.
pub fn split(items: ItemList, limits: &FragmentLimits) -> Result<Vec<ItemList>, FragmentError> {
    split_by(items, limits, file_group)
}

/// Splits `items` into consecutive lists, each within `limits`, never separating items for
/// which `group` returns the same key. Items with no key stand alone. Order is kept, except
/// that a group's members are gathered at its first member's place.
///
/// # Errors
/// [`FragmentError::GroupTooLarge`] when one group does not fit in one message.
pub fn split_by<K, F>(items: ItemList, limits: &FragmentLimits, mut group: F) -> Result<Vec<ItemList>, FragmentError>
where
    K: Eq + Hash,
    F: FnMut(&Item) -> Option<K>,
{
    // Gather groups in order of first appearance.
    let mut groups: Vec<Vec<Item>> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for item in items {
        match group(&item) {
            Some(k) => match index.get(&k) {
                Some(&g) => groups[g].push(item),
                None => {
                    index.insert(k, groups.len());
                    groups.push(vec![item]);
                }
            },
            None => groups.push(vec![item]),
        }
    }

    let budget = limits.max_bytes.saturating_sub(ENVELOPE_BYTES);
    let max_items = limits.max_items.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut current: ItemList = Vec::new();
    let mut current_bytes = 0;
    for g in groups {
        let bytes: usize = g.iter().map(item_size).sum();
        if g.len() > max_items || bytes > budget {
            return Err(FragmentError::GroupTooLarge { first_item: g[0].name.clone(), items: g.len(), bytes });
        }
        if !current.is_empty() && (current.len() + g.len() > max_items || current_bytes + bytes > budget) {
            out.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += bytes;
        current.extend(g);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, DlsMessage, EncodeOptions, Message, encode};

    fn file_items(index: u32) -> Vec<Item> {
        ["file-server", "file-path", "file-name", "file-type"]
            .iter()
            .map(|n| Item::indexed(*n, index, format!("{n}-{index}")))
            .collect()
    }

    #[test]
    fn respects_max_items_and_keeps_groups() {
        let mut items = vec![Item::new("a", "1")];
        items.extend(file_items(0));
        items.push(Item::new("b", "2"));
        items.extend(file_items(1));
        let parts = split(items, &FragmentLimits::for_max_items(Some(5))).expect("fits");
        assert!(parts.iter().all(|p| p.len() <= 5));
        for part in &parts {
            for idx in [0, 1] {
                let n = part.iter().filter(|i| file_group(i) == Some(idx)).count();
                assert!(n == 0 || n == 4, "group {idx} split: {part:?}");
            }
        }
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 10);
    }

    #[test]
    fn respects_byte_budget() {
        let items: Vec<Item> = (0..3000).map(|i| Item::indexed("key-label-unicode", i, "x".repeat(40))).collect();
        let limits = FragmentLimits::default();
        let parts = split(items.clone(), &limits).expect("fits");
        assert!(parts.len() > 1);
        let mut rejoined = Vec::new();
        for (n, part) in parts.into_iter().enumerate() {
            let msg: Message =
                DlsMessage::new("0123456789ABCDEF0123456789ABCDEF", Action::WriteItems, Some(part.clone())).into();
            let len = encode(&msg, &EncodeOptions::default()).expect("encodes").len();
            assert!(len <= limits.max_bytes, "part {n} is {len} bytes");
            rejoined.extend(part);
        }
        assert_eq!(rejoined, items);
    }

    #[test]
    fn refuses_a_group_too_large() {
        let items = file_items(7);
        let err = split(items, &FragmentLimits::for_max_items(Some(3))).expect_err("too large");
        assert!(matches!(err, FragmentError::GroupTooLarge { items: 4, .. }));
    }

    #[test]
    fn custom_grouping() {
        let items: Vec<Item> = (0..6)
            .map(|i| Item::indexed(if i % 2 == 0 { "function-key-def" } else { "key-label-unicode" }, i / 2, "v"))
            .collect();
        let parts = split_by(items, &FragmentLimits::for_max_items(Some(3)), |i| i.index).expect("fits");
        for part in &parts {
            assert_eq!(part.len(), 2, "{part:?}");
            assert_eq!(part[0].index, part[1].index);
        }
    }
}
