//! A message's changes written by one statement ([`WRITE`]), as one statement per change
//! in their order would have written them (`protocol::apply_in_order`, which still writes
//! the batches this cannot fold).
//!
//! What an ordinary message changes — the device's contact, address, inventory, nonces,
//! written records, a deployment status, the phone's clean-up — is folded in Rust into the
//! final value of each column (the last change of each wins, as it would have in order)
//! and written by one statement of data-modifying `WITH` parts: the device's row (an
//! `INSERT` for a new device, an `UPDATE` for a known one), its inventory, its nonces
//! (and their trimming to [`rules::NONCES_KEPT`]) and its written records (from arrays,
//! `unnest`). All parts of one statement see the database as it was before it: each part
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

use crate::inventory::{Encoded, merge_items};
use crate::jobs;
use crate::protocol::apply_in_order;
use crate::security::insert_audit;
use crate::sql::{Tx, get, index_to_sql, int, items_to_json, outcome_to_sql, time_to_sql};

/// What the caller knows of the device before the batch, read in its transaction under
/// the device's lock.
pub(crate) struct Before<'a> {
    /// Whether it is registered.
    pub(crate) known: bool,
    /// Its stored inventory.
    pub(crate) inventory: &'a [Item],
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

/// Whether merging `items` into `base` (see [`merge_items`]) would change it.
fn merge_changes(base: &[Item], items: &[Item]) -> bool {
    let stored: HashMap<(&str, Option<u32>), &Item> = base.iter().map(|i| ((i.name.as_str(), i.index), i)).collect();
    items.iter().filter(|i| i.status.is_none()).any(|i| stored.get(&(i.name.as_str(), i.index)).is_none_or(|s| *s != i))
}

/// The batch's changes folded into the final values they write, checked as writing them
/// one by one would have checked them.
fn fold<'a>(mac: &str, changes: &'a [Change], before: &Before<'_>) -> Result<Fold<'a>, StoreError> {
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
    // The inventory as changed so far (None: as before).
    let mut inventory: Option<Vec<Item>> = None;
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
                let base = inventory.as_deref().unwrap_or(before.inventory);
                if merge_changes(base, items) {
                    let base = inventory.take().unwrap_or_else(|| before.inventory.to_vec());
                    inventory = Some(merge_items(base, items).0);
                }
            }
            Change::ReplaceInventory { items, at } => {
                f.inventory_at = Some(time_to_sql(*at)?);
                inventory = Some(merge_items(Vec::new(), items).0);
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
    f.inventory = inventory.as_deref().map(Encoded::new).transpose()?;
    Ok(f)
}

/// The folded batch ([`Fold`]) in one statement. `$1` the MAC; `$2`, `$3` a new device's
/// registration time and mode (NULL for a known device); `$4`–`$14` the device's columns
/// (NULL, or a flag false: unchanged); `$15` whether a known device's row changes; `$16`
/// the inventory; `$17`, `$18` the nonce and its `seen_at`; `$19` how many nonces are
/// kept; `$20`–`$23` the written records.
///
/// The nonce, unless the device has it already, gets a `seq` above every stored one; if it
/// was inserted, the stored ones are trimmed so that, with it, `$19` are left (the
/// trimming reads the nonces as they were: it counts the inserted one apart).
const WRITE: &str = "
    WITH registered AS (
        INSERT INTO devices (mac, registered_at, security_mode, last_contact_at, last_reason, last_address,
                             inventory_at, device_type, software_version, e164, last_deployment_status,
                             last_phone_cleanup_reason)
        SELECT $1::text, $2::bigint, $3::text, $4::bigint, $5::text, $6::text, $7::bigint,
               $9::text, $10::text, $11::text, $12::text, $14::text
        WHERE $3::text IS NOT NULL
    ), updated AS (
        UPDATE devices SET
            last_contact_at = COALESCE($4::bigint, last_contact_at),
            last_reason = COALESCE($5::text, last_reason),
            last_address = COALESCE($6::text, last_address),
            inventory_at = COALESCE($7::bigint, inventory_at),
            device_type = CASE WHEN $8::boolean THEN $9::text ELSE device_type END,
            software_version = CASE WHEN $8::boolean THEN $10::text ELSE software_version END,
            e164 = CASE WHEN $8::boolean THEN $11::text ELSE e164 END,
            last_deployment_status = COALESCE($12::text, last_deployment_status),
            last_phone_cleanup_reason = CASE WHEN $13::boolean THEN $14::text ELSE last_phone_cleanup_reason END
        WHERE mac = $1::text AND $3::text IS NULL AND $15::boolean
    ), inventory AS (
        INSERT INTO inventories (mac, items) SELECT $1::text, $16::text WHERE $16::text IS NOT NULL
        ON CONFLICT (mac) DO UPDATE SET items = excluded.items
    ), nonces_added AS (
        INSERT INTO nonces (mac, nonce, seen_at)
        SELECT $1::text, $17::text,
               COALESCE($18::bigint, (SELECT coalesce(d.last_contact_at, d.registered_at) FROM devices d
                                      WHERE d.mac = $1::text))
        WHERE $17::text IS NOT NULL
        ON CONFLICT (mac, nonce) DO NOTHING
        RETURNING seq
    ), added AS (
        SELECT count(*) AS n FROM nonces_added
    ), nonces_trimmed AS (
        DELETE FROM nonces WHERE mac = $1::text AND (SELECT n FROM added) > 0
            AND ($19::bigint - (SELECT n FROM added) <= 0
                 OR seq < (SELECT s.seq FROM nonces s WHERE s.mac = $1::text ORDER BY s.seq DESC LIMIT 1
                           OFFSET greatest($19::bigint - (SELECT n FROM added) - 1, 0)))
    ), written_kept AS (
        INSERT INTO written (mac, name, idx, fingerprint, outcome)
        SELECT $1::text, w.name, w.idx, w.fingerprint, w.outcome
        FROM unnest($20::text[], $21::bigint[], $22::bytea[], $23::text[]) AS w (name, idx, fingerprint, outcome)
        ON CONFLICT (mac, name, idx) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome
    )
    SELECT (SELECT n FROM added)";

/// Writes one message's changes in the caller's transaction (which holds the device's
/// lock): [`WRITE`] and what follows it, or one statement per change in order. `before`
/// is what the caller read of the device in this transaction; without it, it is read
/// here (one more round trip).
pub(crate) fn apply(
    tx: &mut Tx<'_>,
    mac: &str,
    changes: &[Change],
    before: Option<Before<'_>>,
) -> Result<(), StoreError> {
    let nonces = changes.iter().filter(|c| matches!(c, Change::Nonce(_))).count();
    if nonces > 1 || changes.iter().any(|c| matches!(place(c), Place::InOrder)) {
        return apply_in_order(tx, mac, changes);
    }
    let read;
    let before = match before {
        Some(before) => before,
        None => {
            read = read_before(tx, mac, changes)?;
            Before { known: read.0, inventory: &read.1 }
        }
    };
    let f = fold(mac, changes, &before)?;
    if f.writes() {
        let (registered_at, mode) = f.register.unzip();
        let (contact_at, reason) = f.contact.unzip();
        let inventory = f.inventory.as_ref();
        let (cleanup, cleanup_reason) = (f.cleanup.is_some(), f.cleanup.flatten());
        tx.execute(
            WRITE,
            &[
                &mac,
                &registered_at,
                &mode,
                &contact_at,
                &reason,
                &f.address,
                &f.inventory_at,
                &inventory.is_some(),
                &inventory.and_then(|i| i.device_type.as_deref()),
                &inventory.and_then(|i| i.software_version.as_deref()),
                &inventory.and_then(|i| i.e164.as_deref()),
                &f.deployment_status,
                &cleanup,
                &cleanup_reason,
                &f.touches_device(),
                &inventory.map(|i| i.stored.as_str()),
                &f.nonce.map(|(n, _)| n),
                &f.nonce.and_then(|(_, at)| at),
                &int(rules::NONCES_KEPT),
                &f.written_names,
                &f.written_idxs,
                &f.written_fingerprints,
                &f.written_outcomes,
            ],
        )?;
    }
    for change in f.after {
        match change {
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(tx, mac, *at, *kind, detail)?,
            Change::Job(update) => jobs::apply_update(tx, mac, update)?,
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// Whether the device is registered, and its inventory if the batch merges into it.
fn read_before(tx: &mut Tx<'_>, mac: &str, changes: &[Change]) -> Result<(bool, Vec<Item>), StoreError> {
    let merges = changes.iter().any(|c| matches!(c, Change::MergeInventory(_)));
    if !merges {
        return Ok((crate::sql::device_exists(tx, mac)?, Vec::new()));
    }
    let row = tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM devices WHERE mac = $1), (SELECT items FROM inventories WHERE mac = $1)",
        &[&mac],
    )?;
    Ok((get(&row, 0)?, crate::inventory::inventory_from_sql(get(&row, 1)?, mac)?))
}
