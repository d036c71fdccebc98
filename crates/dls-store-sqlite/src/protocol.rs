//! The protocol path: what one phone message reads (the device's snapshot, its desired
//! configuration) and writes (the engine's changes), one read and one write transaction
//! per message, or one write transaction for the whole message (`run_message`).

use std::sync::Arc;

use dls_engine::desired::resolve;
use dls_engine::{AuditEvent, BootstrapState, Change, Desired, DeviceSnapshot};
use dls_message::{Item, MacAddr};
use dls_store::rules::security::RevokeReason;
use dls_store::{MessageFn, ProtocolStore, StoreError, rules};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::devices::{load_assigned, load_overrides, load_written};
use crate::inventory::{Encoded, inventory_from_sql, merge_inventory, store_inventory};
use crate::jobs;
use dls_store::columns::SecurityColumns;

use crate::security::{
    drop_pending, insert_audit, issue_certificate, keep_bootstrap, load_security, revoke_certificates,
};
use crate::sql::{
    Cached, Db, device_exists, index_to_sql, items_to_json, opt_time_from_sql, outcome_to_sql, query_all, time_to_sql,
};
use crate::store::ProfileCache;

fn insert_nonce(conn: &Connection, mac: &str, nonce: &str) -> Result<(), StoreError> {
    // `seen_at`: the device's last contact, which a Contact earlier in the batch has set.
    let inserted = conn
        .cached(
            "INSERT OR IGNORE INTO nonces (mac, nonce, seen_at)
             VALUES (?1, ?2, (SELECT coalesce(last_contact_at, registered_at) FROM devices WHERE mac = ?1))",
        )
        .db()?
        .execute(params![mac, nonce])
        .db()?;
    if inserted > 0 {
        conn.cached(
            "DELETE FROM nonces WHERE mac = ?1 AND seq <
             (SELECT seq FROM nonces WHERE mac = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )
        .db()?
        .execute(params![mac, i64::try_from(rules::NONCES_KEPT).unwrap_or(i64::MAX) - 1])
        .db()?;
    }
    Ok(())
}

/// Applies one message's changes inside the caller's transaction.
///
/// `replacements`: for each change, its inventory encoded if it is a `ReplaceInventory`
/// (done before the transaction, which it does not depend on).
pub(crate) fn apply_changes(
    conn: &Connection,
    mac: &str,
    changes: &[Change],
    replacements: &[Option<Encoded<'_>>],
) -> Result<(), StoreError> {
    if !device_exists(conn, mac)? {
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
        conn.execute(
            "INSERT INTO devices (mac, registered_at, security_mode) VALUES (?1, ?2, ?3)",
            params![mac, time_to_sql(at)?, mode.as_str()],
        )
        .db()?;
    }
    for (i, change) in changes.iter().enumerate() {
        match change {
            // Done above, before any other change of the batch. A known device keeps its
            // registration time and its mode (an administrator may have changed it).
            Change::Register { .. } => {}
            Change::Contact { at, reason } => {
                conn.cached("UPDATE devices SET last_contact_at = ?2, last_reason = ?3 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?, reason.as_str()])
                    .db()?;
            }
            Change::Nonce(nonce) => insert_nonce(conn, mac, nonce)?,
            Change::MergeInventory(items) => merge_inventory(conn, mac, items)?,
            Change::ReplaceInventory { items, at } => {
                conn.cached("UPDATE devices SET inventory_at = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, time_to_sql(*at)?])
                    .db()?;
                match replacements.get(i).and_then(Option::as_ref) {
                    Some(encoded) => store_inventory(conn, mac, encoded)?,
                    None => store_inventory(conn, mac, &Encoded::replacing(items))?,
                }
            }
            Change::Written(records) => {
                let mut stmt = conn
                    .cached(
                        "INSERT INTO written (mac, name, idx, fingerprint, outcome) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (mac, name, idx)
                         DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome",
                    )
                    .db()?;
                for (key, record) in records {
                    stmt.execute(params![
                        mac,
                        key.name,
                        index_to_sql(key.index),
                        record.fingerprint.as_slice(),
                        outcome_to_sql(&record.outcome)
                    ])
                    .db()?;
                }
            }
            Change::DeploymentStatus(items) => {
                conn.cached("UPDATE devices SET last_deployment_status = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, items_to_json(items)?])
                    .db()?;
            }
            Change::PhoneCleanUp { reason } => {
                conn.cached("UPDATE devices SET last_phone_cleanup_reason = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, reason])
                    .db()?;
            }
            Change::IssueCertificate { at, certificate } => issue_certificate(conn, mac, *at, certificate)?,
            Change::KeepBootstrap { at, serial, sealed } => keep_bootstrap(conn, mac, *at, serial, sealed)?,
            Change::Bootstrapped { at } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin_sealed = NULL, pin_issued_at = NULL, tan_failures = 0
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::Secured.as_str()])
                .db()?;
            }
            Change::TanFailed => {
                conn.cached("UPDATE devices SET tan_failures = min(tan_failures + 1, ?2) WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, u32::MAX])
                    .db()?;
            }
            Change::BootstrapFailed { at, revoke_certificate } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, pin_sealed = NULL, pin_issued_at = NULL WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::Failed.as_str()])
                .db()?;
                if *revoke_certificate {
                    revoke_certificates(conn, mac, *at, RevokeReason::BootstrapFailed)?;
                }
            }
            // The phone forgot its secure-mode state; the mode stays.
            Change::SecurityReset { at } => {
                time_to_sql(*at)?;
                drop_pending(conn, mac)?;
                conn.cached(
                    "UPDATE devices SET bootstrap_state = ?2, tan_failures = 0, pin_sealed = NULL, pin_issued_at = NULL
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![mac, BootstrapState::NotBootstrapped.as_str()])
                .db()?;
                revoke_certificates(conn, mac, *at, RevokeReason::FactoryReset)?;
            }
            Change::ForgetConfiguration => {
                conn.cached("UPDATE devices SET inventory_at = NULL WHERE mac = ?1").db()?.execute([mac]).db()?;
                conn.cached("DELETE FROM written WHERE mac = ?1").db()?.execute([mac]).db()?;
            }
            Change::CalledFrom(ip) => {
                conn.cached("UPDATE devices SET last_address = ?2 WHERE mac = ?1")
                    .db()?
                    .execute(params![mac, ip.to_canonical().to_string()])
                    .db()?;
            }
            Change::Audit(AuditEvent { at, kind, detail }) => insert_audit(conn, mac, *at, None, *kind, detail)?,
            Change::Job(update) => jobs::apply_update(conn, mac, update)?,
            Change::Mobility(m) => crate::mobility::apply(conn, mac, m)?,
            // A change this version does not know must not be dropped silently.
            _ => return Err(StoreError::Invalid("unsupported change".into())),
        }
    }
    Ok(())
}

/// What the engine needs to know of a device, read in the caller's transaction.
pub(crate) fn snapshot(tx: &Connection, mac: &str) -> Result<DeviceSnapshot, StoreError> {
    let mut stmt = tx
        .cached(
            "SELECT d.inventory_at, i.items FROM devices d LEFT JOIN inventories i ON i.mac = d.mac
             WHERE d.mac = ?1",
        )
        .db()?;
    let mut rows = stmt.query([mac]).db()?;
    let Some(row) = rows.next().db()? else {
        return Ok(DeviceSnapshot::unknown());
    };
    let inventory_at: Option<i64> = row.get(0).db()?;
    let inventory = inventory_from_sql(row.get_ref(1).db()?, mac)?;
    drop(rows);
    let nonces = query_all(tx, "SELECT nonce FROM nonces WHERE mac = ?1 ORDER BY seq", [mac], |r| r.get(0))?;
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

impl SqliteStore {
    /// What the device's desired configuration is made of, read in the caller's
    /// transaction. An unknown device has no inventory, assignments nor overrides: only
    /// what applies to every device.
    fn desired_inputs(&self, tx: &Connection, mac: &str) -> Result<DesiredInputs, StoreError> {
        let (version, device_type): (i64, Option<String>) = tx
            .cached("SELECT (SELECT version FROM profiles_version), (SELECT device_type FROM devices WHERE mac = ?1)")
            .db()?
            .query_row([mac], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?;
        Ok(DesiredInputs {
            profiles: self.profiles_at(tx, version)?,
            device_type,
            assigned: load_assigned(tx, mac)?,
            overrides: load_overrides(tx, mac)?,
        })
    }
}

impl ProtocolStore for SqliteStore {
    fn load_device(&self, mac: MacAddr) -> Result<DeviceSnapshot, StoreError> {
        let mac = mac.to_string();
        self.read(|tx| snapshot(tx, &mac))
    }

    fn desired(&self, mac: MacAddr) -> Result<Desired, StoreError> {
        let mac = mac.to_string();
        let inputs = self.read(|tx| self.desired_inputs(tx, &mac))?;
        Ok(inputs.resolve())
    }

    fn load_for_message(&self, mac: MacAddr) -> Result<(DeviceSnapshot, Desired), StoreError> {
        let mac = mac.to_string();
        let (device, inputs) = self.read(|tx| Ok((snapshot(tx, &mac)?, self.desired_inputs(tx, &mac)?)))?;
        Ok((device, inputs.resolve()))
    }

    fn apply(&self, mac: MacAddr, changes: &[Change]) -> Result<(), StoreError> {
        let mac = mac.to_string();
        // Not under the writer's lock: what depends on nothing stored.
        let replacements: Vec<Option<Encoded<'_>>> = changes
            .iter()
            .map(|c| match c {
                Change::ReplaceInventory { items, .. } => Some(Encoded::replacing(items)),
                _ => None,
            })
            .collect();
        // On error, everything is rolled back.
        self.write(|tx| apply_changes(tx, &mac, changes, &replacements))
    }

    /// One write transaction (`BEGIN IMMEDIATE`) from the load to the commit: SQLite has one
    /// writer per file, so no other message — of this process or another (the CLI) — runs
    /// in between; every other write waits for `f`.
    fn run_message(&self, mac: MacAddr, f: &mut MessageFn<'_>) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| {
            let device = snapshot(tx, &key)?;
            let desired = self.desired_inputs(tx, &key)?.resolve();
            match f(&device, &desired) {
                Some(changes) if !changes.is_empty() => apply_changes(tx, &key, &changes, &[]),
                _ => Ok(()),
            }
        })
    }

    /// `Ok(None)` for an unknown device too.
    fn pin(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT pin_sealed FROM devices WHERE mac = ?1 AND pin_sealed IS NOT NULL")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
    }

    fn pending_bootstrap(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT sealed FROM pending_bootstraps WHERE mac = ?1")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
    }
}
