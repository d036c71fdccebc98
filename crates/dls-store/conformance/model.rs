//! Random sequences of changes against a simple in-memory model of what must be kept.

use std::collections::HashMap;

use dls_engine::{Change, ItemKey, SecurityMode, UnixTime, WriteOutcome, WrittenRecord};
use dls_message::{Item, ItemStatus, Reason};
use dls_store::SecuritySummary;
use dls_store::traits::*;
use proptest::prelude::*;

use super::{mac, store};

/// What a device's record must hold after a sequence of batches.
#[derive(Debug, Default)]
struct Model {
    inventory: Vec<Item>,
    inventory_at: Option<UnixTime>,
    written: HashMap<ItemKey, WrittenRecord>,
    nonces: Vec<String>,
    last_contact: Option<(UnixTime, String)>,
    deployment: Vec<Item>,
    cleanup: Option<String>,
}

impl Model {
    fn merge(&mut self, items: &[Item]) {
        for item in items.iter().filter(|i| i.status.is_none()) {
            match self.inventory.iter_mut().find(|i| ItemKey::of(i) == ItemKey::of(item)) {
                Some(have) => *have = item.clone(),
                None => self.inventory.push(item.clone()),
            }
        }
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Contact { at, reason } => self.last_contact = Some((*at, reason.as_str().to_owned())),
            Change::Nonce(n) if !self.nonces.contains(n) => {
                self.nonces.push(n.clone());
                if self.nonces.len() > 64 {
                    self.nonces.remove(0);
                }
            }
            Change::MergeInventory(items) => self.merge(items),
            Change::ReplaceInventory { items, at } => {
                self.inventory.clear();
                self.merge(items);
                self.inventory_at = Some(*at);
            }
            Change::Written(records) => self.written.extend(records.iter().cloned()),
            Change::DeploymentStatus(items) => self.deployment = items.clone(),
            Change::PhoneCleanUp { reason } => self.cleanup = reason.clone(),
            _ => {}
        }
    }
}

fn status() -> impl Strategy<Value = ItemStatus> {
    prop_oneof![
        Just(ItemStatus::Failed),
        Just(ItemStatus::ReadOnly),
        Just(ItemStatus::UnknownItem),
        (0_u8..3).prop_map(|n| ItemStatus::Other(format!("odd {n}"))),
    ]
}

/// Few names and indexes, so that keys collide often.
fn item() -> impl Strategy<Value = Item> {
    (
        prop::sample::select(vec!["a", "b", "device-type", "e164"]),
        prop::option::of(0_u32..3),
        0_u8..5,
        prop::option::weighted(0.2, status()),
        prop::option::weighted(0.1, Just("t".to_owned())),
    )
        .prop_map(|(name, index, value, status, item_type)| Item {
            name: name.to_owned(),
            index,
            status,
            value: format!("v{value}"),
            item_type,
        })
}

fn time() -> impl Strategy<Value = UnixTime> {
    prop_oneof![Just(0), 1_u64..2_000_000_000, Just(i64::MAX as u64)].prop_map(UnixTime)
}

fn change() -> impl Strategy<Value = Change> {
    let outcome = prop_oneof![Just(WriteOutcome::Accepted), status().prop_map(WriteOutcome::Refused)];
    let written = (prop::sample::select(vec!["a", "pwd"]), prop::option::of(0_u32..2), any::<u8>(), outcome).prop_map(
        |(name, index, byte, outcome)| {
            (ItemKey { name: name.to_owned(), index }, WrittenRecord { fingerprint: [byte; 32], outcome })
        },
    );
    prop_oneof![
        1 => (time(), prop::sample::select(vec!["start-up", "solicited", "x-new"]))
            .prop_map(|(at, r)| Change::Contact { at, reason: Reason::from_wire(r) }),
        3 => (0_u16..90).prop_map(|n| Change::Nonce(format!("n{n}"))),
        2 => prop::collection::vec(item(), 0..6).prop_map(Change::MergeInventory),
        1 => (prop::collection::vec(item(), 0..6), time())
            .prop_map(|(items, at)| Change::ReplaceInventory { items, at }),
        1 => prop::collection::vec(written, 0..4).prop_map(Change::Written),
        1 => prop::collection::vec(item(), 0..3).prop_map(Change::DeploymentStatus),
        1 => prop::option::of(prop::sample::select(vec!["a", "b"]))
            .prop_map(|r| Change::PhoneCleanUp { reason: r.map(str::to_owned) }),
        // A known device keeps its mode: a later Register's does not count.
        1 => prop::sample::select(vec![SecurityMode::Default, SecurityMode::Nopin, SecurityMode::Pin])
            .prop_map(|mode| Change::Register { mode }),
    ]
}

/// A batch as a message makes it, or now and then a burst of nonces (to pass the 64 kept).
fn batch() -> impl Strategy<Value = Vec<Change>> {
    prop_oneof![
        6 => prop::collection::vec(change(), 0..12),
        1 => prop::collection::vec((0_u16..90).prop_map(|n| Change::Nonce(format!("n{n}"))), 20..70),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_store_keeps_what_the_model_keeps(
        batches in prop::collection::vec(batch(), 1..16),
        mode in prop::sample::select(vec![SecurityMode::Default, SecurityMode::Nopin, SecurityMode::Pin]),
    ) {
        let s = store();
        let mut model = Model::default();
        let mut registered = false;
        for batch in &batches {
            let mut batch = batch.clone();
            if !registered {
                batch.insert(0, Change::Register { mode });
                registered = true;
            }
            s.apply(mac(1), &batch).expect("applies");
            for c in &batch {
                model.apply(c);
            }
        }
        let snap = s.load_device(mac(1)).expect("loads");
        prop_assert!(snap.known);
        prop_assert_eq!(&snap.inventory, &model.inventory);
        prop_assert_eq!(snap.inventory_at, model.inventory_at);
        prop_assert_eq!(&snap.written, &model.written);
        prop_assert_eq!(&snap.recent_nonces, &model.nonces);
        prop_assert_eq!(snap.security.mode, mode);
        let d = s.device(mac(1)).expect("reads").expect("exists");
        prop_assert_eq!(d.summary.last_contact, model.last_contact.as_ref().map(|c| c.0));
        prop_assert_eq!(d.last_reason, model.last_contact.map(|c| c.1));
        prop_assert_eq!(d.last_deployment_status, model.deployment);
        prop_assert_eq!(d.last_phone_cleanup_reason, model.cleanup);
        prop_assert_eq!(d.security, SecuritySummary { mode, ..SecuritySummary::default() });
        prop_assert_eq!(&d.inventory, &model.inventory);
        let first = batches[0].iter().find_map(|c| match c {
            Change::Contact { at, .. } => Some(*at),
            _ => None,
        });
        prop_assert_eq!(d.registered_at, first.unwrap_or_default());
        prop_assert_eq!(d.summary.device_type.as_deref(), d.inventory.iter()
            .find(|i| i.name == "device-type" && i.index.is_none()).map(|i| i.value.as_str()));
    }
}
