//! Which items must be written: the desired configuration against what the phone reported
//! and what was written before.
//!
//! For each desired item (the last write of each item is known by a keyed fingerprint of
//! its value and the phone's verdict):
//! * the phone reported it with the desired value: nothing to do;
//! * the phone refused this very value before, or it could not be sent at all (a control
//!   character, too large): not again, until the desired value changes (a phone that says
//!   `invalid index` will say it at every start-up);
//! * the phone reported another value: write it (someone changed it at the phone);
//! * the phone did not report it (write-only items such as passwords, or items it does
//!   not know): write it unless this very value was written before. So a changed password
//!   is written once.

use std::collections::HashMap;

use dls_message::Item;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::device::{ItemKey, WriteOutcome, WrittenRecord};

/// A keyed fingerprint (HMAC-SHA256) of an item's name, index and value. Stored instead
/// of values the phone will not report back (passwords).
#[must_use]
pub fn fingerprint(key: &[u8; 32], item: &Item) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(item.name.as_bytes());
    mac.update(&[0]);
    match item.index {
        Some(i) => mac.update(&i.to_be_bytes()),
        None => mac.update(b"-"),
    }
    mac.update(&[0]);
    mac.update(item.value.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The items of `desired` that must be written to a device whose inventory is
/// `inventory` and to which `written` was written before.
///
/// The inventory is scanned once against the desired items (a phone reports hundreds of
/// items, a profile sets a few dozen); of an item reported twice, the last report counts.
#[must_use]
pub fn to_write<'a>(
    desired: &[Item],
    inventory: impl IntoIterator<Item = &'a Item>,
    written: &HashMap<ItemKey, WrittenRecord>,
    key: &[u8; 32],
) -> Vec<Item> {
    let mut reported: HashMap<(&str, Option<u32>), Option<&str>> =
        desired.iter().map(|want| ((want.name.as_str(), want.index), None)).collect();
    for item in inventory.into_iter().filter(|i| i.status.is_none()) {
        if let Some(have) = reported.get_mut(&(item.name.as_str(), item.index)) {
            *have = Some(item.value.as_str());
        }
    }
    desired
        .iter()
        .filter(|want| {
            let have = reported.get(&(want.name.as_str(), want.index)).copied().flatten();
            if have == Some(want.value.as_str()) {
                return false;
            }
            let same_value_before = written.get(&ItemKey::of(want)).filter(|w| w.fingerprint == fingerprint(key, want));
            match (have, same_value_before) {
                (_, Some(w)) if matches!(w.outcome, WriteOutcome::Refused(_) | WriteOutcome::NotSent(_)) => false,
                (Some(_), _) => true,
                (None, before) => before.is_none(),
            }
        })
        .map(|i| Item { status: None, ..i.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSnapshot;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn minimal_diff() {
        let device = DeviceSnapshot {
            inventory: vec![
                Item::new("sntp-addr", "old"),
                Item::new("country-iso", "DE"),
                Item::new("user-pwd-unicode", "").with_status(dls_message::ItemStatus::Failed),
            ],
            written: [(
                ItemKey { name: "admin-pwd".into(), index: None },
                WrittenRecord {
                    fingerprint: fingerprint(&KEY, &Item::new("admin-pwd", "s3cret")),
                    outcome: WriteOutcome::Accepted,
                },
            )]
            .into_iter()
            .collect(),
            ..DeviceSnapshot::default()
        };
        let desired = vec![
            Item::new("sntp-addr", "new"),
            Item::new("country-iso", "DE"),
            Item::new("admin-pwd", "s3cret"),
            Item::new("sip-pwd", "x"),
            Item::new("user-pwd-unicode", "u"),
        ];
        let names: Vec<String> =
            to_write(&desired, &device.inventory, &device.written, &KEY).into_iter().map(|i| i.name).collect();
        assert_eq!(names, vec!["sntp-addr", "sip-pwd", "user-pwd-unicode"]);
        // A changed password is written again.
        let desired = vec![Item::new("admin-pwd", "n3w")];
        assert_eq!(to_write(&desired, &device.inventory, &device.written, &KEY).len(), 1);
    }

    #[test]
    fn fingerprints_separate_name_index_and_value() {
        let a = fingerprint(&KEY, &Item::new("ab", "c"));
        assert_ne!(a, fingerprint(&KEY, &Item::new("a", "bc")));
        assert_ne!(fingerprint(&KEY, &Item::indexed("a", 0, "v")), fingerprint(&KEY, &Item::new("a", "v")));
        assert_ne!(a, fingerprint(&[8; 32], &Item::new("ab", "c")));
    }
}
