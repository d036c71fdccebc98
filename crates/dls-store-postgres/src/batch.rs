//! A message's changes written by one statement ([`WRITE`]), as one statement per change
//! in their order would have written them (`protocol::apply_in_order`, which still writes
//! the batches this cannot fold).
//!
//! What an ordinary message changes — the device's contact, address, inventory, nonce,
//! written records, a deployment status, the phone's clean-up — is folded in Rust into the
//! final value of each column (the last change of each wins, as it would have in order)
//! and written by one statement of data-modifying `WITH` parts ([`write`]): the device's
//! row (an `INSERT` for a new device, an `UPDATE` for a known one), its inventory, its
//! nonce (and their trimming to [`rules::NONCES_KEPT`]) and its written records (from
//! arrays, `unnest`). All parts of one statement see the database as it was before it: each part
//! is written so as not to need another's effect. Audit records and job updates change
//! other tables, whatever the order: they follow, one statement each, in their order.
//! A batch with anything else (the secure-mode transitions, a forgotten configuration), or
//! more than one nonce (a nonce trimmed away by a later one is recorded again when it
//! comes again: that needs the order), is written in order, one statement per change.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use dls_engine::{AuditEvent, Change};
use dls_message::Item;
use dls_store::{StoreError, rules};
use postgres::types::ToSql;

use crate::inventory::{Encoded, merge_items};
use crate::jobs;
use crate::protocol::apply_in_order;
use crate::security::insert_audit;
use crate::sql::{Tx, get, index_to_sql, int, items_to_json, outcome_to_sql, time_to_sql};

/// What the caller knows of the device before the batch, read in its transaction under
/// the device's lock.
pub(crate) struct Before {
    /// Whether it is registered.
    pub(crate) known: bool,
    /// Its stored inventory (the batch's merges are made into it).
    pub(crate) inventory: Vec<Item>,
}

/// The changes of one batch, folded ([`fold`]); parameters of [`WRITE`].
#[derive(Default)]
struct Fold<'a> {
    /// A new device: when it registered (its first contact's time, else 0) and its mode.
    register: Option<(i64, &'static str)>,
    /// The last contact: when and why.
    contact: Option<(i64, &'a str)>,
    address: Option<String>,
    inventory_at: Option<i64>,
    /// The inventory, if it changed.
    inventory: Option<Encoded>,
    deployment_status: Option<String>,
    /// The phone's clean-up, with its reason if any.
    cleanup: Option<Option<&'a str>>,
    /// The batch's nonce, with its `seen_at` (NULL: the device's last contact before the
    /// batch, or its registration).
    nonce: Option<(&'a str, Option<i64>)>,
    /// Written records, one per item key (the last of the batch).
    written_names: Vec<&'a str>,
    written_idxs: Vec<i64>,
    written_fingerprints: Vec<&'a [u8]>,
    written_outcomes: Vec<String>,
    /// What follows the statement, in order.
    after: Vec<&'a Change>,
}

impl Fold<'_> {
    /// Whether the device's row changes.
    fn touches_device(&self) -> bool {
        self.contact.is_some()
            || self.address.is_some()
            || self.inventory_at.is_some()
            || self.inventory.is_some()
            || self.deployment_status.is_some()
            || self.cleanup.is_some()
    }

    /// Whether the statement has anything to write.
    fn writes(&self) -> bool {
        self.register.is_some() || self.touches_device() || self.nonce.is_some() || !self.written_names.is_empty()
    }
}

/// Where a change is written.
enum Place {
    /// In [`WRITE`].
    Folded,
    /// After it: another table, whatever the order.
    After,
    /// Only in order with the others.
    InOrder,
}

fn place(change: &Change) -> Place {
    match change {
        Change::Register { .. }
        | Change::Contact { .. }
        | Change::CalledFrom(_)
        | Change::Nonce(_)
        | Change::MergeInventory(_)
        | Change::ReplaceInventory { .. }
        | Change::Written(_)
        | Change::DeploymentStatus(_)
        | Change::PhoneCleanUp { .. } => Place::Folded,
        Change::Audit(_) | Change::Job(_) => Place::After,
        _ => Place::InOrder,
    }
}

/// Whether merging `items` into `base` (see [`merge_items`]) would change it: whether the
/// last item of a key of `items` differs from the stored one, or its key is new. Only the
/// keys of `items` are indexed.
fn merge_changes(base: &[Item], items: &[Item]) -> bool {
    let mut last: HashMap<(&str, Option<u32>), &Item> = HashMap::with_capacity(items.len());
    for item in items.iter().filter(|i| i.status.is_none()) {
        last.insert((item.name.as_str(), item.index), item);
    }
    // The stored item of each of those keys (its last occurrence).
    let mut stored: HashMap<(&str, Option<u32>), &Item> = HashMap::with_capacity(last.len());
    for item in base {
        let key = (item.name.as_str(), item.index);
        if last.contains_key(&key) {
            stored.insert(key, item);
        }
    }
    last.iter().any(|(key, item)| stored.get(key).is_none_or(|s| s != item))
}

/// The batch's changes folded into the final values they write, checked as writing them
/// one by one would have checked them.
fn fold<'a>(mac: &str, changes: &'a [Change], before: Before) -> Result<Fold<'a>, StoreError> {
    let mut f = Fold::default();
    if !before.known {
        // The first Register of the batch gives the mode, its first contact the time.
        let Some(mode) = changes.iter().find_map(|c| match c {
            Change::Register { mode } => Some(*mode),
            _ => None,
        }) else {
            return Err(StoreError::NotFound { what: format!("device {mac}") });
        };
        let at = changes
            .iter()
            .find_map(|c| match c {
                Change::Contact { at, .. } => Some(*at),
                _ => None,
            })
            .unwrap_or_default();
        f.register = Some((time_to_sql(at)?, mode.as_str()));
    }
    // A nonce's `seen_at` is the device's last contact when it is recorded.
    let mut last_contact = f.register.map(|(at, _)| at);
    // The inventory as changed so far.
    let (mut inventory, mut inventory_changed) = (before.inventory, false);
    let mut written: HashMap<(&'a str, i64), usize> = HashMap::new();
    for change in changes {
        match change {
            Change::Register { .. } => {}
            Change::Contact { at, reason } => {
                let at = time_to_sql(*at)?;
                f.contact = Some((at, reason.as_str()));
                last_contact = Some(at);
            }
            Change::CalledFrom(ip) => f.address = Some(ip.to_canonical().to_string()),
            // One per batch (`apply`).
            Change::Nonce(nonce) => f.nonce = Some((nonce, last_contact)),
            Change::MergeInventory(items) => {
                if merge_changes(&inventory, items) {
                    inventory = merge_items(inventory, items).0;
                    inventory_changed = true;
                }
            }
            Change::ReplaceInventory { items, at } => {
                f.inventory_at = Some(time_to_sql(*at)?);
                inventory = merge_items(Vec::new(), items).0;
                inventory_changed = true;
            }
            Change::Written(records) => {
                for (key, record) in records {
                    let (name, idx) = (key.name.as_str(), index_to_sql(key.index));
                    let outcome = outcome_to_sql(&record.outcome);
                    match written.entry((name, idx)) {
                        Entry::Occupied(e) => {
                            f.written_fingerprints[*e.get()] = &record.fingerprint;
                            f.written_outcomes[*e.get()] = outcome;
                        }
                        Entry::Vacant(e) => {
                            e.insert(f.written_names.len());
                            f.written_names.push(name);
                            f.written_idxs.push(idx);
                            f.written_fingerprints.push(&record.fingerprint);
                            f.written_outcomes.push(outcome);
                        }
                    }
                }
            }
            Change::DeploymentStatus(items) => f.deployment_status = Some(items_to_json(items)?),
            Change::PhoneCleanUp { reason } => f.cleanup = Some(reason.as_deref()),
            Change::Audit(_) | Change::Job(_) => f.after.push(change),
            // `apply` sends these batches to `apply_in_order`.
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    f.inventory = inventory_changed.then(|| Encoded::new(&inventory)).transpose()?;
    Ok(f)
}

/// A statement being written, and the values of its parameters.
struct Statement<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Statement<'a> {
    /// `value` as the next parameter, of SQL type `ty`: its placeholder.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync), ty: &str) -> String {
        self.params.push(value);
        format!("${}::{ty}", self.params.len())
    }

    /// One more part: `name AS (body)`.
    fn part(&mut self, name: &str, body: &str) {
        self.sql.push_str(if self.sql.is_empty() { "WITH " } else { ", " });
        self.sql.push_str(name);
        self.sql.push_str(" AS (");
        self.sql.push_str(body);
        self.sql.push(')');
    }
}

/// The folded batch ([`Fold`]) as one statement of data-modifying `WITH` parts, only those
/// the batch needs (so that the database prepares, and plans, only those): the device's
/// row (an `INSERT` of a new device with its columns, or an `UPDATE` of the changed
/// columns of a known one), its inventory, its nonce, its written records. The texts are
/// few (a part is there or not; the columns of an `UPDATE` come in six groups), each
/// prepared once per connection.
///
/// The nonce, unless the device has it already, gets a `seq` above every stored one; if it
/// was inserted, the stored ones are trimmed to the newest [`rules::NONCES_KEPT`] − 1
/// (the trimming reads the nonces as they were, without the new one).
fn write<'a>(mac: &'a &'a str, f: &'a Fold<'a>, v: &'a Values<'a>) -> Statement<'a> {
    let mut st = Statement { sql: String::new(), params: Vec::new() };
    let mac = st.bind(mac, "text");
    let inventory = f.inventory.as_ref();
    if let Some((registered_at, mode)) = &f.register {
        let values = [
            st.bind(registered_at, "bigint"),
            st.bind(mode, "text"),
            st.bind(&v.contact_at, "bigint"),
            st.bind(&v.reason, "text"),
            st.bind(&f.address, "text"),
            st.bind(&f.inventory_at, "bigint"),
            st.bind(&v.device_type, "text"),
            st.bind(&v.software_version, "text"),
            st.bind(&v.e164, "text"),
            st.bind(&f.deployment_status, "text"),
            st.bind(&v.cleanup_reason, "text"),
        ];
        st.part(
            "registered",
            &format!(
                "INSERT INTO devices (mac, registered_at, security_mode, last_contact_at, last_reason, last_address,
                 inventory_at, device_type, software_version, e164, last_deployment_status, last_phone_cleanup_reason)
                 VALUES ({mac}, {})",
                values.join(", ")
            ),
        );
    } else if f.touches_device() {
        let mut set = Vec::new();
        if let Some((at, reason)) = &f.contact {
            set.push(format!("last_contact_at = {}", st.bind(at, "bigint")));
            set.push(format!("last_reason = {}", st.bind(reason, "text")));
        }
        if let Some(address) = &f.address {
            set.push(format!("last_address = {}", st.bind(address, "text")));
        }
        if let Some(at) = &f.inventory_at {
            set.push(format!("inventory_at = {}", st.bind(at, "bigint")));
        }
        if inventory.is_some() {
            set.push(format!("device_type = {}", st.bind(&v.device_type, "text")));
            set.push(format!("software_version = {}", st.bind(&v.software_version, "text")));
            set.push(format!("e164 = {}", st.bind(&v.e164, "text")));
        }
        if let Some(status) = &f.deployment_status {
            set.push(format!("last_deployment_status = {}", st.bind(status, "text")));
        }
        if f.cleanup.is_some() {
            set.push(format!("last_phone_cleanup_reason = {}", st.bind(&v.cleanup_reason, "text")));
        }
        st.part("updated", &format!("UPDATE devices SET {} WHERE mac = {mac}", set.join(", ")));
    }
    if let Some(inventory) = inventory {
        let items = st.bind(&inventory.stored, "text");
        st.part(
            "inventory",
            &format!(
                "INSERT INTO inventories (mac, items) VALUES ({mac}, {items})
                 ON CONFLICT (mac) DO UPDATE SET items = excluded.items"
            ),
        );
    }
    if let Some((nonce, seen_at)) = &f.nonce {
        let nonce = st.bind(nonce, "text");
        // NULL: the device's last contact before the batch, or its registration (the
        // part reads the device as it was).
        let seen_at = match seen_at {
            Some(at) => st.bind(at, "bigint"),
            None => format!("(SELECT coalesce(last_contact_at, registered_at) FROM devices WHERE mac = {mac})"),
        };
        st.part(
            "nonce_added",
            &format!(
                "INSERT INTO nonces (mac, nonce, seen_at) VALUES ({mac}, {nonce}, {seen_at})
                 ON CONFLICT (mac, nonce) DO NOTHING RETURNING seq"
            ),
        );
        let older = match &v.older_kept {
            Some(n) => format!(
                "AND seq < (SELECT s.seq FROM nonces s WHERE s.mac = {mac} ORDER BY s.seq DESC LIMIT 1 OFFSET {})",
                st.bind(n, "bigint")
            ),
            None => String::new(),
        };
        st.part(
            "nonces_trimmed",
            &format!("DELETE FROM nonces WHERE mac = {mac} AND EXISTS (SELECT FROM nonce_added) {older}"),
        );
    }
    if !f.written_names.is_empty() {
        let columns = [
            st.bind(&f.written_names, "text[]"),
            st.bind(&f.written_idxs, "bigint[]"),
            st.bind(&f.written_fingerprints, "bytea[]"),
            st.bind(&f.written_outcomes, "text[]"),
        ];
        st.part(
            "written_kept",
            &format!(
                "INSERT INTO written (mac, name, idx, fingerprint, outcome)
                 SELECT {mac}, w.name, w.idx, w.fingerprint, w.outcome
                 FROM unnest({}) AS w (name, idx, fingerprint, outcome)
                 ON CONFLICT (mac, name, idx) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome",
                columns.join(", ")
            ),
        );
    }
    st.sql.push_str(" SELECT 1");
    st
}

/// The values [`write`] binds that [`Fold`] does not hold as such.
struct Values<'a> {
    contact_at: Option<i64>,
    reason: Option<&'a str>,
    device_type: Option<&'a str>,
    software_version: Option<&'a str>,
    e164: Option<&'a str>,
    cleanup_reason: Option<&'a str>,
    /// The offset of the oldest stored nonce kept beside a new one; none: none is kept.
    older_kept: Option<i64>,
}

/// Writes one message's changes in the caller's transaction (which holds the device's
/// lock): [`write`]'s statement and what follows it, or one statement per change in
/// order. `before` is what the caller read of the device in this transaction; without
/// it, it is read here (one more round trip).
pub(crate) fn apply(tx: &mut Tx<'_>, mac: &str, changes: &[Change], before: Option<Before>) -> Result<(), StoreError> {
    let nonces = changes.iter().filter(|c| matches!(c, Change::Nonce(_))).count();
    if nonces > 1 || changes.iter().any(|c| matches!(place(c), Place::InOrder)) {
        return apply_in_order(tx, mac, changes);
    }
    let before = match before {
        Some(before) => before,
        None => read_before(tx, mac, changes)?,
    };
    let f = fold(mac, changes, before)?;
    if f.writes() {
        let inventory = f.inventory.as_ref();
        let values = Values {
            contact_at: f.contact.map(|(at, _)| at),
            reason: f.contact.map(|(_, reason)| reason),
            device_type: inventory.and_then(|i| i.device_type.as_deref()),
            software_version: inventory.and_then(|i| i.software_version.as_deref()),
            e164: inventory.and_then(|i| i.e164.as_deref()),
            cleanup_reason: f.cleanup.flatten(),
            older_kept: int(rules::NONCES_KEPT).checked_sub(2).filter(|n| *n >= 0),
        };
        let mac = &mac;
        let statement = write(mac, &f, &values);
        tx.execute(&statement.sql, &statement.params)?;
    }
    for change in &f.after {
        match change {
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(tx, mac, *at, None, *kind, detail)?,
            Change::Job(update) => jobs::apply_update(tx, mac, update)?,
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// Whether the device is registered, and its inventory if the batch merges into it.
fn read_before(tx: &mut Tx<'_>, mac: &str, changes: &[Change]) -> Result<Before, StoreError> {
    let merges = changes.iter().any(|c| matches!(c, Change::MergeInventory(_)));
    if !merges {
        return Ok(Before { known: crate::sql::device_exists(tx, mac)?, inventory: Vec::new() });
    }
    let row = tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE mac = $1), (SELECT items FROM inventories WHERE mac = $1)",
        &[&mac],
    )?;
    Ok(Before { known: get(&row, 0)?, inventory: crate::inventory::inventory_from_sql(get(&row, 1)?, mac)? })
}
