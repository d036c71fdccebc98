//! A device's inventory as one record (`inventories.items`): the protocol path reads and
//! replaces it whole, 360 items of a phone in one row rather than 360 rows. The three items
//! the admin listing shows and filters by (`device-type`, `software-version`, `e164`,
//! without index) are copied into `devices` when the inventory changes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use dls_message::Item;
use dls_store::StoreError;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::{Cached, Db};

/// The format of a stored inventory (the first byte of `inventories.items`).
const INVENTORY_FORMAT: u8 = 1;

/// An inventory item, borrowed: from a stored inventory or from a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ItemRef<'a> {
    pub(crate) name: &'a str,
    pub(crate) index: Option<u32>,
    pub(crate) value: &'a str,
    pub(crate) item_type: Option<&'a str>,
}

impl<'a> ItemRef<'a> {
    pub(crate) fn of(item: &'a Item) -> Self {
        Self { name: &item.name, index: item.index, value: &item.value, item_type: item.item_type.as_deref() }
    }

    pub(crate) fn to_item(self) -> Item {
        Item {
            name: self.name.to_owned(),
            index: self.index,
            status: None,
            value: self.value.to_owned(),
            item_type: self.item_type.map(str::to_owned),
        }
    }
}

/// `base` with `items` merged in, as an upsert by item key would: an item whose key is
/// there changes its value and type in place, a new key goes to the end; items with a
/// status (a phone's refusals) are skipped. Also whether anything changed.
pub(crate) fn merge_items<'a>(mut base: Vec<ItemRef<'a>>, items: &'a [Item]) -> (Vec<ItemRef<'a>>, bool) {
    let mut at: HashMap<(&str, Option<u32>), usize> = HashMap::with_capacity(base.len() + items.len());
    at.extend(base.iter().enumerate().map(|(position, i)| ((i.name, i.index), position)));
    base.reserve(items.len());
    let mut changed = false;
    for item in items.iter().filter(|i| i.status.is_none()) {
        let new = ItemRef::of(item);
        match at.entry((&item.name, item.index)) {
            Entry::Occupied(e) => {
                let stored = &mut base[*e.get()];
                changed |= *stored != new;
                *stored = new;
            }
            Entry::Vacant(e) => {
                e.insert(base.len());
                base.push(new);
                changed = true;
            }
        }
    }
    (base, changed)
}

/// The stored form of an inventory: [`INVENTORY_FORMAT`], the number of items, then each
/// item's name, index (0: none, else the index + 1), value and type (0: none, else its
/// length + 1, then its bytes). Numbers are LEB128 varints; a string is its length in
/// bytes, then its UTF-8.
pub(crate) fn encode_items(items: &[ItemRef<'_>]) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.name.len() + i.value.len() + i.item_type.map_or(0, str::len) + 8).sum();
    let mut out = Vec::with_capacity(size + 11);
    out.push(INVENTORY_FORMAT);
    put_varint(&mut out, length(items.len()));
    for item in items {
        put_str(&mut out, item.name);
        put_varint(&mut out, item.index.map_or(0, |i| u64::from(i) + 1));
        put_str(&mut out, item.value);
        match item.item_type {
            None => out.push(0),
            Some(t) => {
                put_varint(&mut out, length(t.len()) + 1);
                out.extend_from_slice(t.as_bytes());
            }
        }
    }
    out
}

/// A length as stored (lossless: no `usize` is wider than 64 bits).
fn length(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(u8::try_from(n & 0x7f).unwrap_or_default() | 0x80);
        n >>= 7;
    }
    out.push(u8::try_from(n).unwrap_or_default());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, length(s.len()));
    out.extend_from_slice(s.as_bytes());
}

/// The items of a stored inventory (see [`encode_items`]), borrowed from it; `None` if
/// it is damaged.
pub(crate) fn decode_items(stored: &[u8]) -> Option<Vec<ItemRef<'_>>> {
    let (&format, mut rest) = stored.split_first()?;
    if format != INVENTORY_FORMAT {
        return None;
    }
    let count = usize::try_from(varint(&mut rest)?).ok()?;
    // An item takes 4 bytes at least: a larger count is damage (and must not allocate).
    if count > rest.len() / 4 {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let name = text(&mut rest)?;
        let index = match varint(&mut rest)? {
            0 => None,
            i => Some(u32::try_from(i - 1).ok()?),
        };
        let value = text(&mut rest)?;
        let item_type = match varint(&mut rest)? {
            0 => None,
            n => Some(std::str::from_utf8(bytes(&mut rest, n - 1)?).ok()?),
        };
        items.push(ItemRef { name, index, value, item_type });
    }
    rest.is_empty().then_some(items)
}

fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn bytes<'a>(input: &mut &'a [u8], n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok().filter(|n| *n <= input.len())?;
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Some(taken)
}

fn text<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    let n = varint(input)?;
    std::str::from_utf8(bytes(input, n)?).ok()
}

/// A stored inventory's items, or [`StoreError::Corrupt`].
pub(crate) fn decode_stored<'a>(stored: ValueRef<'a>, mac: &str) -> Result<Vec<ItemRef<'a>>, StoreError> {
    match stored {
        ValueRef::Null => Some(Vec::new()),
        ValueRef::Blob(b) => decode_items(b),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt(format!("the inventory of device {mac}")))
}

/// A stored inventory (`inventories.items`, NULL: none) as items.
pub(crate) fn inventory_from_sql(stored: ValueRef<'_>, mac: &str) -> Result<Vec<Item>, StoreError> {
    Ok(decode_stored(stored, mac)?.into_iter().map(ItemRef::to_item).collect())
}

pub(crate) fn load_inventory(conn: &Connection, mac: &str) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.cached("SELECT items FROM inventories WHERE mac = ?1").db()?;
    let mut rows = stmt.query([mac]).db()?;
    match rows.next().db()? {
        Some(row) => inventory_from_sql(row.get_ref(0).db()?, mac),
        None => Ok(Vec::new()),
    }
}

/// An inventory in its stored form, with the items copied into `devices`.
pub(crate) struct Encoded<'a> {
    stored: Vec<u8>,
    device_type: Option<&'a str>,
    software_version: Option<&'a str>,
    e164: Option<&'a str>,
}

impl<'a> Encoded<'a> {
    pub(crate) fn new(items: &[ItemRef<'a>]) -> Self {
        let find = |name: &str| items.iter().find(|i| i.name == name && i.index.is_none()).map(|i| i.value);
        Encoded {
            stored: encode_items(items),
            device_type: find("device-type"),
            software_version: find("software-version"),
            e164: find("e164"),
        }
    }

    /// The inventory `items` make (see [`merge_items`]), as a replacement.
    pub(crate) fn replacing(items: &'a [Item]) -> Self {
        Self::new(&merge_items(Vec::new(), items).0)
    }
}

/// Stores the device's inventory.
pub(crate) fn store_inventory(conn: &Connection, mac: &str, inventory: &Encoded<'_>) -> Result<(), StoreError> {
    conn.cached(
        "INSERT INTO inventories (mac, items) VALUES (?1, ?2) ON CONFLICT (mac) DO UPDATE SET items = excluded.items",
    )
    .db()?
    .execute(params![mac, inventory.stored])
    .db()?;
    conn.cached("UPDATE devices SET device_type = ?2, software_version = ?3, e164 = ?4 WHERE mac = ?1")
        .db()?
        .execute(params![mac, inventory.device_type, inventory.software_version, inventory.e164])
        .db()?;
    Ok(())
}

/// Merges `items` into the device's inventory (see [`merge_items`]); writes nothing when
/// they change nothing (a phone reports the same items at every start-up).
pub(crate) fn merge_inventory(conn: &Connection, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    if items.iter().all(|i| i.status.is_some()) {
        return Ok(());
    }
    let stored: Option<Vec<u8>> = conn
        .cached("SELECT items FROM inventories WHERE mac = ?1")
        .db()?
        .query_row([mac], |r| r.get(0))
        .optional()
        .db()?;
    let base = match &stored {
        Some(stored) => decode_stored(ValueRef::Blob(stored), mac)?,
        None => Vec::new(),
    };
    let (merged, changed) = merge_items(base, items);
    if !changed && stored.is_some() {
        return Ok(());
    }
    store_inventory(conn, mac, &Encoded::new(&merged))
}
