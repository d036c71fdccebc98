//! The protocol path: what one phone message reads (the device's snapshot, its desired
//! configuration: [`LOAD`], one statement) and writes (the engine's changes: `batch`, one
//! statement for those of an ordinary message) — in `run_message`, one transaction under
//! the device's advisory lock, whose `BEGIN` takes the lock in the same round trip.
//!
//! What a message costs, in round trips to the database (`tests/postgres/round_trips.rs`
//! holds the store to these): `BEGIN` and the lock, [`LOAD`], the changes' statement,
//! `COMMIT` — 4; 3 when nothing changes; one more when a profile changed since the last
//! load (the profiles are read again) or the changes include secure-mode transitions
//! (one statement per change).

use std::sync::Arc;

use dls_engine::desired::resolve;
use dls_engine::{AuditEvent, BootstrapState, Change, Desired, DeviceSnapshot, Job};
use dls_message::{Item, MacAddr};
use dls_store::rules::security::RevokeReason;
use dls_store::{MessageFn, ProtocolStore, StoreError, rules};

use crate::PostgresStore;
use crate::batch::{self, Before};
use crate::devices::written_record;
use crate::inventory::{Encoded, inventory_from_sql, merge_inventory, store_inventory};
use crate::jobs;
use dls_store::columns::SecurityColumns;

use crate::security::{drop_pending, insert_audit, issue_certificate, keep_bootstrap, revoke_certificates};
use crate::sql::{
    Tx, count_from_sql, device_exists, get, index_from_sql, index_to_sql, int, items_to_json, opt_time_from_sql,
    outcome_to_sql, time_to_sql,
};
use crate::store::ProfileCache;

fn insert_nonce(tx: &mut Tx<'_>, mac: &str, nonce: &str) -> Result<(), StoreError> {
    // `seen_at`: the device's last contact, which a Contact earlier in the batch has set.
    let inserted = tx.execute(
        "INSERT INTO nonces (mac, nonce, seen_at)
         VALUES ($1, $2, (SELECT coalesce(last_contact_at, registered_at) FROM devices WHERE mac = $1))
         ON CONFLICT (mac, nonce) DO NOTHING",
        &[&mac, &nonce],
    )?;
    if inserted > 0 {
        tx.execute(
            "DELETE FROM nonces WHERE mac = $1 AND seq <
             (SELECT seq FROM nonces WHERE mac = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
            &[&mac, &(int(rules::NONCES_KEPT) - 1)],
        )?;
    }
    Ok(())
}

/// Applies one message's changes inside the caller's transaction (which holds the
/// device's lock), one statement (or more) per change, in their order: for the batches
/// `batch` does not fold into one statement.
pub(crate) fn apply_in_order(tx: &mut Tx<'_>, mac: &str, changes: &[Change]) -> Result<(), StoreError> {
    if !device_exists(tx, mac)? {
        // The first Register of the batch gives the mode.
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
        tx.execute(
            "INSERT INTO devices (mac, registered_at, security_mode) VALUES ($1, $2, $3)",
            &[&mac, &time_to_sql(at)?, &mode.as_str()],
        )?;
    }
    for change in changes {
        match change {
            // Done above, before any other change of the batch. A known device keeps its
            // registration time and its mode (an administrator may have changed it).
            Change::Register { .. } => {}
            Change::Contact { at, reason } => {
                tx.execute(
                    "UPDATE devices SET last_contact_at = $2, last_reason = $3 WHERE mac = $1",
                    &[&mac, &time_to_sql(*at)?, &reason.as_str()],
                )?;
            }
            Change::Nonce(nonce) => insert_nonce(tx, mac, nonce)?,
            Change::MergeInventory(items) => merge_inventory(tx, mac, items)?,
            Change::ReplaceInventory { items, at } => {
                tx.execute("UPDATE devices SET inventory_at = $2 WHERE mac = $1", &[&mac, &time_to_sql(*at)?])?;
                store_inventory(tx, mac, &Encoded::replacing(items)?)?;
            }
            Change::Written(records) => {
                for (key, record) in records {
                    tx.execute(
                        "INSERT INTO written (mac, name, idx, fingerprint, outcome) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (mac, name, idx)
                         DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome",
                        &[
                            &mac,
                            &key.name,
                            &index_to_sql(key.index),
                            &record.fingerprint.as_slice(),
                            &outcome_to_sql(&record.outcome),
                        ],
                    )?;
                }
            }
            Change::DeploymentStatus(items) => {
                tx.execute(
                    "UPDATE devices SET last_deployment_status = $2 WHERE mac = $1",
                    &[&mac, &items_to_json(items)?],
                )?;
            }
            Change::PhoneCleanUp { reason } => {
                tx.execute("UPDATE devices SET last_phone_cleanup_reason = $2 WHERE mac = $1", &[&mac, reason])?;
            }
            Change::IssueCertificate { at, certificate } => issue_certificate(tx, mac, *at, certificate)?,
            Change::KeepBootstrap { at, serial, sealed } => keep_bootstrap(tx, mac, *at, serial, sealed)?,
            Change::Bootstrapped { at } => {
                time_to_sql(*at)?;
                drop_pending(tx, mac)?;
                tx.execute(
                    "UPDATE devices SET bootstrap_state = $2, pin_sealed = NULL, pin_issued_at = NULL, tan_failures = 0
                     WHERE mac = $1",
                    &[&mac, &BootstrapState::Secured.as_str()],
                )?;
            }
            Change::TanFailed => {
                tx.execute(
                    "UPDATE devices SET tan_failures = least(tan_failures + 1, $2) WHERE mac = $1",
                    &[&mac, &i64::from(u32::MAX)],
                )?;
            }
            Change::BootstrapFailed { at, revoke_certificate } => {
                time_to_sql(*at)?;
                drop_pending(tx, mac)?;
                tx.execute(
                    "UPDATE devices SET bootstrap_state = $2, pin_sealed = NULL, pin_issued_at = NULL WHERE mac = $1",
                    &[&mac, &BootstrapState::Failed.as_str()],
                )?;
                if *revoke_certificate {
                    revoke_certificates(tx, mac, *at, RevokeReason::BootstrapFailed)?;
                }
            }
            // The phone forgot its secure-mode state; the mode stays.
            Change::SecurityReset { at } => {
                time_to_sql(*at)?;
                drop_pending(tx, mac)?;
                tx.execute(
                    "UPDATE devices SET bootstrap_state = $2, tan_failures = 0, pin_sealed = NULL, pin_issued_at = NULL
                     WHERE mac = $1",
                    &[&mac, &BootstrapState::NotBootstrapped.as_str()],
                )?;
                revoke_certificates(tx, mac, *at, RevokeReason::FactoryReset)?;
            }
            Change::ForgetConfiguration => {
                tx.execute("UPDATE devices SET inventory_at = NULL WHERE mac = $1", &[&mac])?;
                tx.execute("DELETE FROM written WHERE mac = $1", &[&mac])?;
            }
            Change::CalledFrom(ip) => {
                tx.execute(
                    "UPDATE devices SET last_address = $2 WHERE mac = $1",
                    &[&mac, &ip.to_canonical().to_string()],
                )?;
            }
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(tx, mac, *at, None, *kind, detail)?,
            Change::Job(update) => jobs::apply_update(tx, mac, update)?,
            Change::Mobility(m) => crate::mobility::apply(tx, mac, m)?,
            // A change this version does not know must not be dropped silently.
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// Everything a message reads of its device, in one statement: the device's row, its
/// inventory, nonces, security columns and kept bootstrap material, written records, open
/// jobs (`$2` at most), the profiles' version, and its assigned profiles and overrides —
/// lists as arrays (`array_agg` of none is NULL; the arrays of one aggregation are in the
/// same order, any: the jobs and overrides are put in theirs by [`load`], which needs no
/// sort in the database). An unknown device is a row of NULLs (and empty lists), with
/// the profiles' version.
const LOAD: &str = "
    SELECT d.mac IS NOT NULL, d.inventory_at, i.items,
           ARRAY(SELECT n.nonce FROM nonces n WHERE n.mac = $1 ORDER BY n.seq),
           d.security_mode, d.bootstrap_state, d.pin_sealed IS NOT NULL, d.pin_issued_at, d.tan_failures,
           (SELECT c.serial FROM certificates c
            WHERE c.serial = d.certificate_serial AND c.mac = d.mac AND c.revoked_at IS NULL),
           p.serial, p.issued_at,
           w.names, w.idxs, w.fingerprints, w.outcomes,
           j.ids, j.kinds, j.states, j.attempts, j.accepted,
           (SELECT version FROM profiles_version), d.device_type,
           ARRAY(SELECT a.profile FROM device_profiles a WHERE a.mac = $1 ORDER BY a.position),
           o.names, o.idxs, o.vals, o.types, o.positions
    FROM (SELECT) AS one
    LEFT JOIN devices d ON d.mac = $1
    LEFT JOIN inventories i ON i.mac = $1
    LEFT JOIN pending_bootstraps p ON p.mac = $1
    CROSS JOIN LATERAL (
        SELECT array_agg(name) AS names, array_agg(idx) AS idxs, array_agg(fingerprint) AS fingerprints,
               array_agg(outcome) AS outcomes
        FROM written WHERE mac = $1) w
    CROSS JOIN LATERAL (
        SELECT array_agg(id) AS ids, array_agg(kind) AS kinds, array_agg(state) AS states,
               array_agg(attempts) AS attempts, array_agg(accepted) AS accepted
        FROM (SELECT id, kind, state, attempts, accepted FROM jobs
              WHERE mac = $1 AND state IN ('queued', 'sent', 'busy-retry') ORDER BY id LIMIT $2) AS open) j
    CROSS JOIN LATERAL (
        SELECT array_agg(name) AS names, array_agg(idx) AS idxs, array_agg(value) AS vals,
               array_agg(type) AS types, array_agg(position) AS positions
        FROM device_overrides WHERE mac = $1) o";

/// What a message reads of its device ([`LOAD`]).
struct Loaded {
    device: DeviceSnapshot,
    /// `profiles_version.version`.
    version: i64,
    device_type: Option<String>,
    assigned: Vec<String>,
    overrides: Vec<Item>,
}

/// Column `i`, a list (`array_agg` of no rows is NULL).
fn list<'a, T: postgres::types::FromSql<'a>>(row: &'a postgres::Row, i: usize) -> Result<Vec<T>, StoreError> {
    Ok(get::<Option<Vec<T>>>(row, i)?.unwrap_or_default())
}

/// Lists of one record's columns of unequal lengths are damage.
fn same_length(lengths: &[usize], what: &str) -> Result<(), StoreError> {
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(StoreError::Corrupt(format!("the {what} of a device")));
    }
    Ok(())
}

/// Reads the device in the caller's transaction, in one statement.
fn load(tx: &mut Tx<'_>, mac: &str) -> Result<Loaded, StoreError> {
    let row = tx.query_one(LOAD, &[&mac, &int(rules::jobs::OPEN_JOBS_LOADED)])?;
    let version =
        get::<Option<i64>>(&row, 21)?.ok_or_else(|| StoreError::Corrupt("profiles_version has no row".into()))?;
    if !get::<bool>(&row, 0)? {
        return Ok(Loaded {
            device: DeviceSnapshot::unknown(),
            version,
            device_type: None,
            assigned: Vec::new(),
            overrides: Vec::new(),
        });
    }
    let security = SecurityColumns::from_sql((
        get(&row, 4)?,
        get(&row, 5)?,
        get(&row, 6)?,
        get(&row, 7)?,
        get(&row, 8)?,
        get(&row, 9)?,
        get(&row, 10)?,
        get(&row, 11)?,
    ))?
    .into_security();
    let (names, idxs, fingerprints, outcomes) =
        (list::<String>(&row, 12)?, list::<i64>(&row, 13)?, list::<Vec<u8>>(&row, 14)?, list::<&str>(&row, 15)?);
    same_length(&[names.len(), idxs.len(), fingerprints.len(), outcomes.len()], "written records")?;
    let written = names
        .into_iter()
        .zip(idxs)
        .zip(fingerprints)
        .zip(outcomes)
        .map(|(((name, idx), fingerprint), outcome)| written_record(name, idx, fingerprint, outcome))
        .collect::<Result<_, _>>()?;
    let (ids, kinds, states, attempts, accepted) = (
        list::<i64>(&row, 16)?,
        list::<&str>(&row, 17)?,
        list::<&str>(&row, 18)?,
        list::<i64>(&row, 19)?,
        list::<bool>(&row, 20)?,
    );
    same_length(&[ids.len(), kinds.len(), states.len(), attempts.len(), accepted.len()], "open jobs")?;
    let mut jobs: Vec<Job> = ids
        .into_iter()
        .zip(kinds)
        .zip(states)
        .zip(attempts)
        .zip(accepted)
        .map(|((((id, kind), state), attempts), accepted)| {
            Ok(Job {
                id,
                kind: jobs::kind_from_sql(kind)?,
                state: jobs::state_from_sql(state)?,
                attempts: count_from_sql(attempts)?,
                accepted,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    // Oldest first.
    jobs.sort_unstable_by_key(|j| j.id);
    let (names, idxs, values, types, positions) = (
        list::<String>(&row, 24)?,
        list::<i64>(&row, 25)?,
        list::<String>(&row, 26)?,
        list::<Option<String>>(&row, 27)?,
        list::<i64>(&row, 28)?,
    );
    same_length(&[names.len(), idxs.len(), values.len(), types.len(), positions.len()], "overrides")?;
    let mut overrides = positions
        .into_iter()
        .zip(names)
        .zip(idxs)
        .zip(values)
        .zip(types)
        .map(|((((position, name), idx), value), item_type)| {
            Ok((position, Item { name, index: index_from_sql(idx)?, status: None, value, item_type }))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // In their order.
    overrides.sort_unstable_by_key(|(position, _)| *position);
    let overrides = overrides.into_iter().map(|(_, item)| item).collect();
    Ok(Loaded {
        device: DeviceSnapshot {
            known: true,
            inventory: inventory_from_sql(get::<Option<&str>>(&row, 2)?, mac)?,
            inventory_at: opt_time_from_sql(get(&row, 1)?)?,
            written,
            recent_nonces: list(&row, 3)?,
            security,
            jobs,
        },
        version,
        device_type: get(&row, 22)?,
        assigned: list(&row, 23)?,
        overrides,
    })
}

/// What a device's desired configuration is made of, as read in one transaction.
struct DesiredInputs {
    profiles: Arc<ProfileCache>,
    device_type: Option<String>,
    assigned: Vec<String>,
    overrides: Vec<Item>,
}

impl DesiredInputs {
    /// The profiles layered (outside the transaction: it reads nothing).
    fn resolve(&self) -> Desired {
        resolve(&self.profiles.profiles, self.device_type.as_deref(), &self.assigned, &self.overrides)
    }
}

impl PostgresStore {
    /// The device's snapshot and what its desired configuration is made of, read in the
    /// caller's transaction: [`LOAD`], and the profiles if they changed since last read.
    fn load(&self, tx: &mut Tx<'_>, mac: &str) -> Result<(DeviceSnapshot, DesiredInputs), StoreError> {
        let loaded = load(tx, mac)?;
        let inputs = DesiredInputs {
            profiles: self.profiles_at(tx, loaded.version)?,
            device_type: loaded.device_type,
            assigned: loaded.assigned,
            overrides: loaded.overrides,
        };
        Ok((loaded.device, inputs))
    }
}

impl ProtocolStore for PostgresStore {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        let mac = mac.to_string();
        self.read(|tx| Ok(load(tx, &mac)?.device))
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        let mac = mac.to_string();
        let (_, inputs) = self.read(|tx| self.load(tx, &mac))?;
        Ok(inputs.resolve())
    }

    /// One `REPEATABLE READ`, read-only transaction: one snapshot of the database.
    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        let mac = mac.to_string();
        let (device, inputs) = self.read(|tx| self.load(tx, &mac))?;
        Ok((device, inputs.resolve()))
    }

    /// One transaction, which takes the device's advisory lock first (so that it does not
    /// interleave with a `run_message` of the device elsewhere, nor a registration race
    /// with another `apply` of a new device).
    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        let key = mac.to_string();
        // On error, everything is rolled back.
        self.locked(mac, |tx| batch::apply(tx, &key, changes, None))
    }

    /// One `READ COMMITTED` transaction holding the device's advisory lock
    /// (`pg_advisory_xact_lock`, keyed by the MAC) from before the load to the commit: no
    /// other message of the device — on any connection of any node, for a device not yet
    /// registered too — runs in between, and each statement after the lock sees what the
    /// lock's previous holder committed. Retried, `f` called again with a fresh load, after
    /// a deadlock or a serialisation failure, or a connection lost before the commit.
    fn run_message(&self, mac: MacAddr, f: &mut MessageFn<'_>) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.locked(mac, |tx| {
            let (device, inputs) = self.load(tx, &key)?;
            match f(&device, &inputs.resolve()) {
                Some(changes) if !changes.is_empty() => {
                    // The snapshot is done with: its inventory is what the changes merge into.
                    let before = Before { known: device.known, inventory: device.inventory };
                    batch::apply(tx, &key, &changes, Some(before))
                }
                _ => Ok(()),
            }
        })
    }

    /// `Ok(None)` for an unknown device too.
    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            tx.query_opt("SELECT pin_sealed FROM devices WHERE mac = $1 AND pin_sealed IS NOT NULL", &[&key])?
                .map(|r| get(&r, 0))
                .transpose()
        })
    }

    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            tx.query_opt("SELECT sealed FROM pending_bootstraps WHERE mac = $1", &[&key])?
                .map(|r| get(&r, 0))
                .transpose()
        })
    }
}
