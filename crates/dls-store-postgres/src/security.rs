//! Secure mode: a device's security state, its certificates, kept bootstrap material and
//! the audit log.
//!
//! A device's outstanding PIN is kept as the caller sealed it (opaque bytes, `pin_sealed`;
//! the key is not the store's), read only by `pin`; the engine and the admin API learn only
//! whether there is one. A PIN is wiped when the device bootstraps, fails to, or is put
//! back in default mode. At most one of a device's certificates is unrevoked: its current
//! one. The audit log outlives deleted devices; only `prune` deletes from it, by age.
//! What an administrator's change does is [`security::plan`]'s; this module stores it.

use dls_engine::{AuditKind, BootstrapState, IssuedCertificate, SealedBootstrap, UnixTime};
use dls_message::MacAddr;
use dls_store::columns::SecurityColumns;
use dls_store::rules;
use dls_store::rules::security::{self, RevokeReason, SecurityStep};
use dls_store::{CertificateRecord, SecurityStore, SecurityUpdate, StoreError};

use crate::PostgresStore;
use crate::sql::{Tx, get, lock_device, opt_time_from_sql, time_from_sql, time_to_sql};

/// A device's security, or `None` if the device is unknown.
pub(crate) fn load_security(tx: &mut Tx<'_>, mac: &str) -> Result<Option<SecurityColumns>, StoreError> {
    let Some(row) = tx.query_opt(
        "SELECT d.security_mode, d.bootstrap_state, d.pin_sealed IS NOT NULL, d.pin_issued_at, d.tan_failures,
                (SELECT c.serial FROM certificates c
                 WHERE c.serial = d.certificate_serial AND c.mac = d.mac AND c.revoked_at IS NULL),
                p.serial, p.issued_at
         FROM devices d LEFT JOIN pending_bootstraps p ON p.mac = d.mac WHERE d.mac = $1",
        &[&mac],
    )?
    else {
        return Ok(None);
    };
    SecurityColumns::from_sql((
        get(&row, 0)?,
        get(&row, 1)?,
        get(&row, 2)?,
        get(&row, 3)?,
        get(&row, 4)?,
        get(&row, 5)?,
        get(&row, 6)?,
        get(&row, 7)?,
    ))
    .map(Some)
}

/// Makes `certificate` the device's current certificate, revoking the previous one.
pub(crate) fn issue_certificate(
    tx: &mut Tx<'_>,
    mac: &str,
    at: UnixTime,
    certificate: &IssuedCertificate,
) -> Result<(), StoreError> {
    rules::check_serial(&certificate.serial)?;
    let (issued_at, not_after) = (time_to_sql(at)?, time_to_sql(certificate.not_after)?);
    if tx.exists("SELECT 1 FROM certificates WHERE serial = $1", &[&certificate.serial])? {
        return Err(StoreError::Conflict { what: format!("certificate serial number {}", certificate.serial) });
    }
    revoke_certificates(tx, mac, at, RevokeReason::Superseded)?;
    drop_pending(tx, mac)?;
    tx.execute(
        "INSERT INTO certificates (serial, mac, issued_at, not_after) VALUES ($1, $2, $3, $4)",
        &[&certificate.serial, &mac, &issued_at, &not_after],
    )
    .map_err(|e| match e {
        // Another device's message issued the same serial meanwhile.
        StoreError::Conflict { .. } => {
            StoreError::Conflict { what: format!("certificate serial number {}", certificate.serial) }
        }
        e => e,
    })?;
    tx.execute("UPDATE devices SET certificate_serial = $2 WHERE mac = $1", &[&mac, &certificate.serial])?;
    Ok(())
}

/// A security change of the device `key` at `at`: the steps [`security::plan`] gives for
/// its state, carried out in the caller's transaction (which holds the device's lock).
pub(crate) fn change_security(
    tx: &mut Tx<'_>,
    key: &str,
    at: UnixTime,
    update: &SecurityUpdate,
) -> Result<(), StoreError> {
    let before = load_security(tx, key)?.map(|s| s.before());
    let actor = update.actor.as_deref();
    if let Some(actor) = actor {
        rules::accounts::check_actor(actor)?;
    }
    for step in security::plan(key, before, update)? {
        match step {
            SecurityStep::DropPending => drop_pending(tx, key)?,
            SecurityStep::Reset => {
                tx.execute(
                    "UPDATE devices SET bootstrap_state = $2, tan_failures = 0 WHERE mac = $1",
                    &[&key, &BootstrapState::NotBootstrapped.as_str()],
                )?;
            }
            SecurityStep::RevokeCertificates(reason) => {
                for serial in revoke_certificates(tx, key, at, reason)? {
                    insert_audit(
                        tx,
                        key,
                        at,
                        actor,
                        AuditKind::CertificateRevoked,
                        &security::revoked_detail(&serial, reason),
                    )?;
                }
            }
            SecurityStep::SetMode { mode, wipe_pin } => {
                tx.execute(
                    "UPDATE devices SET security_mode = $2,
                                        pin_sealed = CASE WHEN $3::BOOLEAN THEN NULL ELSE pin_sealed END,
                                        pin_issued_at = CASE WHEN $3::BOOLEAN THEN NULL ELSE pin_issued_at END
                     WHERE mac = $1",
                    &[&key, &mode.as_str(), &wipe_pin],
                )?;
            }
            SecurityStep::IssuePin(pin) => {
                tx.execute(
                    "UPDATE devices SET pin_sealed = $2, pin_issued_at = $3, tan_failures = 0,
                            bootstrap_state = CASE WHEN bootstrap_state = $4::TEXT THEN $5::TEXT ELSE bootstrap_state END
                     WHERE mac = $1",
                    &[
                        &key,
                        &pin,
                        &time_to_sql(at)?,
                        &BootstrapState::Failed.as_str(),
                        &BootstrapState::NotBootstrapped.as_str(),
                    ],
                )?;
            }
            SecurityStep::Audit(kind, detail) => insert_audit(tx, key, at, actor, kind, &detail)?,
            // A step this version does not know must not be skipped silently.
            _ => return Err(StoreError::Invalid("unsupported security step".into())),
        }
    }
    Ok(())
}

/// Forgets the bootstrap material kept for the device, if any.
pub(crate) fn drop_pending(tx: &mut Tx<'_>, mac: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM pending_bootstraps WHERE mac = $1", &[&mac])?;
    Ok(())
}

/// Keeps the bootstrap material just issued to the device, for its current certificate.
pub(crate) fn keep_bootstrap(
    tx: &mut Tx<'_>,
    mac: &str,
    at: UnixTime,
    serial: &str,
    sealed: &SealedBootstrap,
) -> Result<(), StoreError> {
    rules::check_serial(serial)?;
    rules::check_sealed_bootstrap(&sealed.0)?;
    tx.execute(
        "INSERT INTO pending_bootstraps (mac, serial, issued_at, sealed) VALUES ($1, $2, $3, $4)
         ON CONFLICT (mac) DO UPDATE SET serial = excluded.serial, issued_at = excluded.issued_at,
                                         sealed = excluded.sealed",
        &[&mac, &serial, &time_to_sql(at)?, &sealed.0.as_slice()],
    )?;
    Ok(())
}

/// Revokes the device's current certificate (every unrevoked one: there is at most one)
/// and clears `certificate_serial`. Gives the serial numbers revoked, oldest first.
pub(crate) fn revoke_certificates(
    tx: &mut Tx<'_>,
    mac: &str,
    at: UnixTime,
    reason: RevokeReason,
) -> Result<Vec<String>, StoreError> {
    let at = time_to_sql(at)?;
    let serials = tx
        .query(
            "UPDATE certificates SET revoked_at = $2, revoke_reason = $3 WHERE mac = $1 AND revoked_at IS NULL
             RETURNING seq, serial",
            &[&mac, &at, &reason.as_str()],
        )?
        .iter()
        .map(|r| Ok((get::<i64>(r, 0)?, get::<String>(r, 1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut serials = serials;
    serials.sort_unstable();
    tx.execute("UPDATE devices SET certificate_serial = NULL WHERE mac = $1", &[&mac])?;
    Ok(serials.into_iter().map(|(_, serial)| serial).collect())
}

/// Appends a security event of the device `mac` to the audit log, by `actor` (`None`: the
/// phone).
pub(crate) fn insert_audit(
    tx: &mut Tx<'_>,
    mac: &str,
    at: UnixTime,
    actor: Option<&str>,
    kind: AuditKind,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at, mac, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&time_to_sql(at)?, &mac, &actor, &kind.as_str(), &detail],
    )?;
    Ok(())
}

impl SecurityStore for PostgresStore {
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| {
            lock_device(tx, mac)?;
            change_security(tx, &key, at, update)
        })
    }

    /// Newest first by order of issue; empty for an unknown device (a deleted device's
    /// certificates are deleted with it).
    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError> {
        let key = mac.to_string();
        let rows = self.read(|tx| {
            tx.query(
                "SELECT serial, issued_at, not_after, revoked_at FROM certificates WHERE mac = $1 ORDER BY seq DESC",
                &[&key],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(CertificateRecord {
                    mac,
                    serial: get(r, 0)?,
                    issued_at: time_from_sql(get(r, 1)?)?,
                    not_after: time_from_sql(get(r, 2)?)?,
                    revoked_at: opt_time_from_sql(get(r, 3)?)?,
                })
            })
            .collect()
    }
}
