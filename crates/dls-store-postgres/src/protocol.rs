//! The protocol path: what one phone message reads (the device's snapshot, its desired
//! configuration) and writes (the engine's changes): one read and one write transaction
//! per message, or one write transaction for the whole message under the device's
//! advisory lock (`run_message`).

use std::sync::Arc;

use dls_engine::desired::resolve;
use dls_engine::{AuditEvent, BootstrapState, Change, Desired, DeviceSnapshot};
use dls_message::{Item, MacAddr};
use dls_store::rules::security::RevokeReason;
use dls_store::{MessageFn, ProtocolStore, StoreError, rules};

use crate::PostgresStore;
use crate::devices::{load_assigned, load_overrides, load_written};
use crate::inventory::{Encoded, inventory_from_sql, merge_inventory, store_inventory};
use crate::jobs;
use dls_store::columns::SecurityColumns;

use crate::security::{
    drop_pending, insert_audit, issue_certificate, keep_bootstrap, load_security, revoke_certificates,
};
use crate::sql::{
    Tx, device_exists, get, index_to_sql, int, items_to_json, lock_device, opt_time_from_sql, outcome_to_sql,
    time_to_sql,
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
/// device's lock).
pub(crate) fn apply_changes(tx: &mut Tx<'_>, mac: &str, changes: &[Change]) -> Result<(), StoreError> {
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

/// What the engine needs to know of a device, read in the caller's transaction.
pub(crate) fn snapshot(tx: &mut Tx<'_>, mac: &str) -> Result<DeviceSnapshot, StoreError> {
    let Some(row) = tx.query_opt(
        "SELECT d.inventory_at, i.items FROM devices d LEFT JOIN inventories i ON i.mac = d.mac WHERE d.mac = $1",
        &[&mac],
    )?
    else {
        return Ok(DeviceSnapshot::unknown());
    };
    let inventory_at: Option<i64> = get(&row, 0)?;
    let inventory = inventory_from_sql(get::<Option<&str>>(&row, 1)?, mac)?;
    let nonces = tx
        .query("SELECT nonce FROM nonces WHERE mac = $1 ORDER BY seq", &[&mac])?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_, _>>()?;
    let security = load_security(tx, mac)?.map(SecurityColumns::into_security).unwrap_or_default();
    Ok(DeviceSnapshot {
        known: true,
        inventory,
        inventory_at: opt_time_from_sql(inventory_at)?,
        written: load_written(tx, mac)?.into_iter().collect(),
        recent_nonces: nonces,
        security,
        jobs: jobs::open_jobs(tx, mac)?,
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
    /// What the device's desired configuration is made of, read in the caller's
    /// transaction. An unknown device has no inventory, assignments nor overrides: only
    /// what applies to every device.
    fn desired_inputs(&self, tx: &mut Tx<'_>, mac: &str) -> Result<DesiredInputs, StoreError> {
        let row = tx.query_one(
            "SELECT (SELECT version FROM profiles_version), (SELECT device_type FROM devices WHERE mac = $1)",
            &[&mac],
        )?;
        let version: Option<i64> = get(&row, 0)?;
        let version = version.ok_or_else(|| StoreError::Corrupt("profiles_version has no row".into()))?;
        let device_type = get(&row, 1)?;
        Ok(DesiredInputs {
            profiles: self.profiles_at(tx, version)?,
            device_type,
            assigned: load_assigned(tx, mac)?,
            overrides: load_overrides(tx, mac)?,
        })
    }
}

impl ProtocolStore for PostgresStore {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        let mac = mac.to_string();
        self.read(|tx| snapshot(tx, &mac))
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        let mac = mac.to_string();
        let inputs = self.read(|tx| self.desired_inputs(tx, &mac))?;
        Ok(inputs.resolve())
    }

    /// One `REPEATABLE READ`, read-only transaction: one snapshot of the database.
    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        let mac = mac.to_string();
        let (device, inputs) = self.read(|tx| Ok((snapshot(tx, &mac)?, self.desired_inputs(tx, &mac)?)))?;
        Ok((device, inputs.resolve()))
    }

    /// One transaction, which takes the device's advisory lock first (so that it does not
    /// interleave with a `run_message` of the device elsewhere, nor a registration race
    /// with another `apply` of a new device).
    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        let key = mac.to_string();
        // On error, everything is rolled back.
        self.write(|tx| {
            lock_device(tx, mac)?;
            apply_changes(tx, &key, changes)
        })
    }

    /// One `READ COMMITTED` transaction holding the device's advisory lock
    /// (`pg_advisory_xact_lock`, keyed by the MAC) from before the load to the commit: no
    /// other message of the device — on any connection of any node, for a device not yet
    /// registered too — runs in between, and each statement after the lock sees what the
    /// lock's previous holder committed. Retried, `f` called again with a fresh load, after
    /// a deadlock or a serialisation failure.
    fn run_message(&self, mac: MacAddr, f: &mut MessageFn<'_>) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| {
            lock_device(tx, mac)?;
            let device = snapshot(tx, &key)?;
            let desired = self.desired_inputs(tx, &key)?.resolve();
            match f(&device, &desired) {
                Some(changes) if !changes.is_empty() => apply_changes(tx, &key, &changes),
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
