//! Secure mode: a device's security state, its certificates, kept bootstrap material and
//! the audit log.
//!
//! A device's outstanding PIN is kept as the caller sealed it (opaque bytes, `pin_sealed`;
//! the key is not the store's), read only by `pin`; the engine and the admin API learn only
//! whether there is one. A PIN is wiped when the device bootstraps, fails to, or is put
//! back in default mode. Bootstrap material kept for reuse (`pending_bootstraps`) is sealed
//! by the caller too. At most one of a device's certificates is unrevoked: its current
//! one. The audit log outlives deleted devices; only `prune` deletes from it, by age.
//! What an administrator's change does is [`security::plan`]'s; this module stores it.

use dls_engine::{AuditKind, BootstrapState, IssuedCertificate, SealedBootstrap, UnixTime};
use dls_message::MacAddr;
use dls_store::columns::{SecurityColumns, SecuritySql};
use dls_store::rules;
use dls_store::rules::security::{self, RevokeReason, SecurityStep};
use dls_store::{CertificateRecord, SecurityStore, SecurityUpdate, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db, opt_time_from_sql, query_all, time_from_sql, time_to_sql};

/// A device's security, or `None` if the device is unknown.
pub(crate) fn load_security(conn: &Connection, mac: &str) -> Result<Option<SecurityColumns>, StoreError> {
    let row: Option<SecuritySql> = conn
        .cached(
            "SELECT d.security_mode, d.bootstrap_state, d.pin_sealed IS NOT NULL, d.pin_issued_at, d.tan_failures,
                    (SELECT c.serial FROM certificates c
                     WHERE c.serial = d.certificate_serial AND c.mac = d.mac AND c.revoked_at IS NULL),
                    p.serial, p.issued_at
             FROM devices d LEFT JOIN pending_bootstraps p ON p.mac = d.mac WHERE d.mac = ?1",
        )
        .db()?
        .query_row([mac], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .optional()
        .db()?;
    row.map(SecurityColumns::from_sql).transpose()
}

/// Makes `certificate` the device's current certificate, revoking the previous one.
pub(crate) fn issue_certificate(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    certificate: &IssuedCertificate,
) -> Result<(), StoreError> {
    rules::check_serial(&certificate.serial)?;
    let (issued_at, not_after) = (time_to_sql(at)?, time_to_sql(certificate.not_after)?);
    if conn.cached("SELECT 1 FROM certificates WHERE serial = ?1").db()?.exists([&certificate.serial]).db()? {
        return Err(StoreError::Conflict { what: format!("certificate serial number {}", certificate.serial) });
    }
    revoke_certificates(conn, mac, at, RevokeReason::Superseded)?;
    drop_pending(conn, mac)?;
    conn.cached("INSERT INTO certificates (serial, mac, issued_at, not_after) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![certificate.serial, mac, issued_at, not_after])
        .db()?;
    conn.cached("UPDATE devices SET certificate_serial = ?2 WHERE mac = ?1")
        .db()?
        .execute(params![mac, certificate.serial])
        .db()?;
    Ok(())
}

/// A security change of the device `key` at `at`: the steps [`security::plan`] gives for
/// its state, carried out in the caller's transaction.
pub(crate) fn change_security(
    conn: &Connection,
    key: &str,
    at: UnixTime,
    update: &SecurityUpdate,
) -> Result<(), StoreError> {
    let before = load_security(conn, key)?.map(|s| s.before());
    let actor = update.actor.as_deref();
    if let Some(actor) = actor {
        rules::accounts::check_actor(actor)?;
    }
    for step in security::plan(key, before, update)? {
        match step {
            SecurityStep::DropPending => drop_pending(conn, key)?,
            SecurityStep::Reset => {
                conn.cached("UPDATE devices SET bootstrap_state = ?2, tan_failures = 0 WHERE mac = ?1")
                    .db()?
                    .execute(params![key, BootstrapState::NotBootstrapped.as_str()])
                    .db()?;
            }
            SecurityStep::RevokeCertificates(reason) => {
                for serial in revoke_certificates(conn, key, at, reason)? {
                    insert_audit(
                        conn,
                        key,
                        at,
                        actor,
                        AuditKind::CertificateRevoked,
                        &security::revoked_detail(&serial, reason),
                    )?;
                }
            }
            SecurityStep::SetMode { mode, wipe_pin } => {
                conn.cached(
                    "UPDATE devices SET security_mode = ?2,
                                        pin_sealed = CASE WHEN ?3 THEN NULL ELSE pin_sealed END,
                                        pin_issued_at = CASE WHEN ?3 THEN NULL ELSE pin_issued_at END
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![key, mode.as_str(), wipe_pin])
                .db()?;
            }
            SecurityStep::IssuePin(pin) => {
                conn.cached(
                    "UPDATE devices SET pin_sealed = ?2, pin_issued_at = ?3, tan_failures = 0,
                                        bootstrap_state = CASE bootstrap_state WHEN ?4 THEN ?5 ELSE bootstrap_state END
                     WHERE mac = ?1",
                )
                .db()?
                .execute(params![
                    key,
                    pin,
                    time_to_sql(at)?,
                    BootstrapState::Failed.as_str(),
                    BootstrapState::NotBootstrapped.as_str()
                ])
                .db()?;
            }
            SecurityStep::Audit(kind, detail) => insert_audit(conn, key, at, actor, kind, &detail)?,
            // A step this version does not know must not be skipped silently.
            _ => return Err(StoreError::Invalid("unsupported security step".into())),
        }
    }
    Ok(())
}

/// Forgets the bootstrap material kept for the device, if any.
pub(crate) fn drop_pending(conn: &Connection, mac: &str) -> Result<(), StoreError> {
    conn.cached("DELETE FROM pending_bootstraps WHERE mac = ?1").db()?.execute([mac]).db()?;
    Ok(())
}

/// Keeps the bootstrap material just issued to the device, for its current certificate.
pub(crate) fn keep_bootstrap(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    serial: &str,
    sealed: &SealedBootstrap,
) -> Result<(), StoreError> {
    rules::check_serial(serial)?;
    rules::check_sealed_bootstrap(&sealed.0)?;
    conn.cached(
        "INSERT INTO pending_bootstraps (mac, serial, issued_at, sealed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (mac) DO UPDATE SET serial = excluded.serial, issued_at = excluded.issued_at,
                                         sealed = excluded.sealed",
    )
    .db()?
    .execute(params![mac, serial, time_to_sql(at)?, sealed.0.as_slice()])
    .db()?;
    Ok(())
}

/// Revokes the device's current certificate (every unrevoked one: there is at most one)
/// and clears `certificate_serial`. Gives the serial numbers revoked, oldest first.
pub(crate) fn revoke_certificates(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    reason: RevokeReason,
) -> Result<Vec<String>, StoreError> {
    let at = time_to_sql(at)?;
    let serials: Vec<String> = query_all(
        conn,
        "SELECT serial FROM certificates WHERE mac = ?1 AND revoked_at IS NULL ORDER BY seq",
        [mac],
        |r| r.get(0),
    )?;
    if !serials.is_empty() {
        conn.cached(
            "UPDATE certificates SET revoked_at = ?2, revoke_reason = ?3 WHERE mac = ?1 AND revoked_at IS NULL",
        )
        .db()?
        .execute(params![mac, at, reason.as_str()])
        .db()?;
    }
    conn.cached("UPDATE devices SET certificate_serial = NULL WHERE mac = ?1").db()?.execute([mac]).db()?;
    Ok(serials)
}

/// Appends a security event of the device `mac` to the audit log, by `actor` (`None`: the
/// phone).
pub(crate) fn insert_audit(
    conn: &Connection,
    mac: &str,
    at: UnixTime,
    actor: Option<&str>,
    kind: AuditKind,
    detail: &str,
) -> Result<(), StoreError> {
    conn.cached("INSERT INTO audit (at, mac, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)")
        .db()?
        .execute(params![time_to_sql(at)?, mac, actor, kind.as_str(), detail])
        .db()?;
    Ok(())
}

impl SecurityStore for SqliteStore {
    fn update_security(&self, mac: MacAddr, update: &SecurityUpdate, at: UnixTime) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| change_security(tx, &key, at, update))
    }

    /// Newest first by order of issue; empty for an unknown device (a deleted device's
    /// certificates are deleted with it).
    fn certificates(&self, mac: MacAddr) -> Result<Vec<CertificateRecord>, StoreError> {
        type CertificateRow = (String, i64, i64, Option<i64>);
        let rows: Vec<CertificateRow> = self.read(|tx| {
            query_all(
                tx,
                "SELECT serial, issued_at, not_after, revoked_at FROM certificates WHERE mac = ?1 ORDER BY seq DESC",
                [mac.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })?;
        rows.into_iter()
            .map(|(serial, issued_at, not_after, revoked_at)| {
                Ok(CertificateRecord {
                    mac,
                    serial,
                    issued_at: time_from_sql(issued_at)?,
                    not_after: time_from_sql(not_after)?,
                    revoked_at: opt_time_from_sql(revoked_at)?,
                })
            })
            .collect()
    }
}
