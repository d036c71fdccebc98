//! A device's inventory as one record (`inventories.items`, a JSON array): the protocol
//! path reads and replaces it whole, the items of a phone in one row rather than hundreds.
//! The three items the admin listing shows and filters by (`device-type`,
//! `software-version`, `e164`, without index) are copied into `devices` when the inventory
//! changes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use dls_message::Item;
use dls_store::StoreError;

use crate::sql::{Tx, get, items_from_json};

/// `base` with `items` merged in, as an upsert by item key would: an item whose key is
/// there changes its value and type in place, a new key goes to the end; items with a
/// status (a phone's refusals) are skipped; of several items of one key, the last wins
/// (where the first would have gone). Also whether the result differs from `base`. Only
/// the keys of `items` are indexed (borrowed, not copied): a merge of a few items into
/// hundreds copies none of them.
pub(crate) fn merge_items(mut base: Vec<Item>, items: &[Item]) -> (Vec<Item>, bool) {
    // Each key of `items`, numbered in the order of its first item; for each number, its
    // last item and where the key is in `base` (its last occurrence).
    let mut numbers: HashMap<(&str, Option<u32>), usize> = HashMap::with_capacity(items.len());
    let mut keys: Vec<(usize, Option<usize>)> = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate().filter(|(_, i)| i.status.is_none()) {
        match numbers.entry((item.name.as_str(), item.index)) {
            Entry::Occupied(e) => keys[*e.get()].0 = n,
            Entry::Vacant(e) => {
                e.insert(keys.len());
                keys.push((n, None));
            }
        }
    }
    for (position, stored) in base.iter().enumerate() {
        if let Some(&k) = numbers.get(&(stored.name.as_str(), stored.index)) {
            keys[k].1 = Some(position);
        }
    }
    let mut changed = false;
    for (n, at) in keys {
        let item = &items[n];
        match at {
            Some(position) => {
                let stored = &mut base[position];
                if stored != item {
                    stored.clone_from(item);
                    changed = true;
                }
            }
            None => {
                base.push(item.clone());
                changed = true;
            }
        }
    }
    (base, changed)
}

/// A stored inventory's items, or [`StoreError::Corrupt`].
fn decode(stored: Option<&str>, mac: &str) -> Result<Vec<Item>, StoreError> {
    let Some(json) = stored else { return Ok(Vec::new()) };
    let items = items_from_json(json).map_err(|_| StoreError::Corrupt(format!("the inventory of device {mac}")))?;
    // What is stored never has a status: a status read back is damage.
    if items.iter().any(|i| i.status.is_some()) {
        return Err(StoreError::Corrupt(format!("the inventory of device {mac}")));
    }
    Ok(items)
}

/// A stored inventory (`inventories.items`, NULL: none) as items.
pub(crate) fn inventory_from_sql(stored: Option<&str>, mac: &str) -> Result<Vec<Item>, StoreError> {
    decode(stored, mac)
}

pub(crate) fn load_inventory(tx: &mut Tx<'_>, mac: &str) -> Result<Vec<Item>, StoreError> {
    match tx.query_opt("SELECT items FROM inventories WHERE mac = $1", &[&mac])? {
        Some(row) => decode(Some(get::<&str>(&row, 0)?), mac),
        None => Ok(Vec::new()),
    }
}

/// An inventory item as stored: without a status (what is stored has none), its index and
/// type only when it has them — a third shorter than the item's own serialisation, for a
/// record rewritten whole, compressed and sent at every message. It reads back as an
/// [`Item`] (whose missing fields default to none).
#[derive(serde::Serialize)]
struct StoredItem<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    value: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    item_type: Option<&'a str>,
}

/// An inventory in its stored form, with the items copied into `devices`.
pub(crate) struct Encoded {
    pub(crate) stored: String,
    pub(crate) device_type: Option<String>,
    pub(crate) software_version: Option<String>,
    pub(crate) e164: Option<String>,
}

impl Encoded {
    pub(crate) fn new(items: &[Item]) -> Result<Self, StoreError> {
        let find = |name: &str| items.iter().find(|i| i.name == name && i.index.is_none()).map(|i| i.value.clone());
        Ok(Self {
            stored: encode(items)?,
            device_type: find("device-type"),
            software_version: find("software-version"),
            e164: find("e164"),
        })
    }

    /// The inventory `items` make (see [`merge_items`]), as a replacement.
    pub(crate) fn replacing(items: &[Item]) -> Result<Self, StoreError> {
        Self::new(&merge_items(Vec::new(), items).0)
    }
}

/// `items` in their stored form (a JSON array of [`StoredItem`]s).
fn encode(items: &[Item]) -> Result<String, StoreError> {
    let stored: Vec<StoredItem<'_>> = items
        .iter()
        .map(|i| StoredItem { name: &i.name, index: i.index, value: &i.value, item_type: i.item_type.as_deref() })
        .collect();
    serde_json::to_string(&stored).map_err(|e| StoreError::Invalid(format!("items not serialisable: {e}")))
}

/// Stores the device's inventory.
pub(crate) fn store_inventory(tx: &mut Tx<'_>, mac: &str, inventory: &Encoded) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO inventories (mac, items) VALUES ($1, $2) ON CONFLICT (mac) DO UPDATE SET items = excluded.items",
        &[&mac, &inventory.stored],
    )?;
    tx.execute(
        "UPDATE devices SET device_type = $2, software_version = $3, e164 = $4 WHERE mac = $1",
        &[&mac, &inventory.device_type, &inventory.software_version, &inventory.e164],
    )?;
    Ok(())
}

/// Merges `items` into the device's inventory (see [`merge_items`]); writes nothing when
/// they change nothing (a phone reports the same items at every start-up).
pub(crate) fn merge_inventory(tx: &mut Tx<'_>, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    if items.iter().all(|i| i.status.is_some()) {
        return Ok(());
    }
    let stored = tx.query_opt("SELECT items FROM inventories WHERE mac = $1", &[&mac])?;
    let base = match &stored {
        Some(row) => decode(Some(get::<&str>(row, 0)?), mac)?,
        None => Vec::new(),
    };
    let (merged, changed) = merge_items(base, items);
    if !changed && stored.is_some() {
        return Ok(());
    }
    store_inventory(tx, mac, &Encoded::new(&merged)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_upserts_in_place_appends_new_keys_and_skips_statuses() {
        let base = vec![Item::new("a", "1"), Item::indexed("b", 0, "2")];
        let refused = Item { status: Some(dls_message::ItemStatus::Failed), ..Item::new("c", "x") };
        let (merged, changed) = merge_items(base.clone(), &[Item::new("b", "3"), Item::new("a", "9"), refused.clone()]);
        assert!(changed);
        assert_eq!(merged, [Item::new("a", "9"), Item::indexed("b", 0, "2"), Item::new("b", "3")]);
        let (same, changed) = merge_items(base.clone(), &[Item::new("a", "1"), refused]);
        assert!(!changed);
        assert_eq!(same, base);
        // Of one key, the last item wins, where the first would have gone.
        let (merged, changed) = merge_items(base, &[Item::new("c", "1"), Item::new("a", "7"), Item::new("c", "2")]);
        assert!(changed);
        assert_eq!(merged, [Item::new("a", "7"), Item::indexed("b", 0, "2"), Item::new("c", "2")]);
    }

    #[test]
    fn the_stored_form_reads_back_as_the_items() {
        let items = vec![
            Item::new("a", "1"),
            Item::indexed("b", 0, "2"),
            Item { item_type: Some("t".into()), ..Item::indexed("c", 7, "\"x\"\n") },
        ];
        let stored = encode(&items).expect("encodes");
        assert_eq!(
            stored,
            r#"[{"name":"a","value":"1"},{"name":"b","index":0,"value":"2"},{"name":"c","index":7,"value":"\"x\"\n","type":"t"}]"#
        );
        assert_eq!(decode(Some(&stored), "X").expect("decodes"), items);
        // What earlier versions stored (every field) still reads.
        let full = dls_store::columns::items_to_json(&items).expect("encodes");
        assert_eq!(decode(Some(&full), "X").expect("decodes"), items);
    }

    #[test]
    fn damaged_inventories_are_corrupt_not_a_panic() {
        for bad in ["", "{", "[1]", r#"[{"name":"a","status":"failed"}]"#] {
            assert!(matches!(decode(Some(bad), "X"), Err(StoreError::Corrupt(_))), "{bad:?}");
        }
        assert_eq!(decode(None, "X").expect("none"), []);
    }
}
