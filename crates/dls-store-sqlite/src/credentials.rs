//! Digest credentials for provisioning-file downloads: a device's secret and the fallback
//! credentials, stored as the caller sealed them (opaque bytes; the key is not the
//! store's). A device's secret is in its own table, read only by `device_secret`, and
//! deleted with the device; a profile's fallback credentials are deleted with the profile.
//! Both are overwritten in their pages when deleted (`secure_delete`), like a PIN.

use dls_message::MacAddr;
use dls_store::{CredentialScope, CredentialStore, FallbackCredential, StoreError, rules};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db, SCOPE_GLOBAL, SCOPE_PROFILE, device_exists, query_all, scope_from_sql, scope_to_sql};

/// Sets (`Some`) or removes (`None`) the sealed secret of the device `key`, in the
/// caller's transaction.
pub(crate) fn put_device_secret(conn: &Connection, key: &str, sealed: Option<&[u8]>) -> Result<(), StoreError> {
    match sealed {
        Some(sealed) => conn
            .cached(
                "INSERT INTO device_secrets (mac, sealed) VALUES (?1, ?2)
                 ON CONFLICT (mac) DO UPDATE SET sealed = excluded.sealed",
            )
            .db()?
            .execute(params![key, sealed])
            .db()?,
        None => conn.cached("DELETE FROM device_secrets WHERE mac = ?1").db()?.execute([key]).db()?,
    };
    Ok(())
}

impl CredentialStore for SqliteStore {
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| {
            if !device_exists(tx, &key)? {
                return Err(StoreError::NotFound { what: format!("device {key}") });
            }
            put_device_secret(tx, &key, sealed)
        })
    }

    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|tx| {
            tx.cached("SELECT sealed FROM device_secrets WHERE mac = ?1")
                .db()?
                .query_row([mac.to_string()], |r| r.get(0))
                .optional()
                .db()
        })
    }

    /// The username is checked, and the profile's existence, for a removal too (then
    /// [`StoreError::NotFound`] if there is no such credential). A username is matched
    /// exactly: case and Unicode form matter.
    fn set_fallback_credential(
        &self,
        scope: &CredentialScope,
        username: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        rules::check_username(username)?;
        let (kind, profile) = scope_to_sql(scope);
        self.write(|tx| {
            if let CredentialScope::Profile(name) = scope
                && !tx.cached("SELECT 1 FROM profiles WHERE name = ?1").db()?.exists([name]).db()?
            {
                return Err(rules::no_such_profile(name));
            }
            match sealed {
                Some(sealed) => {
                    tx.cached(
                        "INSERT INTO fallback_credentials (scope_kind, profile, username, sealed)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (scope_kind, profile, username) DO UPDATE SET sealed = excluded.sealed",
                    )
                    .db()?
                    .execute(params![kind, profile, username, sealed])
                    .db()?;
                }
                None => {
                    let deleted = tx
                        .cached(
                            "DELETE FROM fallback_credentials WHERE scope_kind = ?1 AND profile = ?2 AND username = ?3",
                        )
                        .db()?
                        .execute(params![kind, profile, username])
                        .db()?;
                    if deleted == 0 {
                        let what = match scope {
                            CredentialScope::Global => format!("global fallback credential {username:?}"),
                            CredentialScope::Profile(name) => {
                                format!("fallback credential {username:?} of profile {name:?}")
                            }
                        };
                        return Err(StoreError::NotFound { what });
                    }
                }
            }
            Ok(())
        })
    }

    /// Within a scope, by username (byte order of its UTF-8, as `str` orders).
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError> {
        type CredentialRow = (String, String, String, Vec<u8>);
        // One statement: one state of both parts.
        let rows: Vec<CredentialRow> = self.read(|tx| {
            query_all(
                tx,
                "SELECT f.scope_kind, f.profile, f.username, f.sealed, 0 AS part, p.position
                 FROM device_profiles p
                 JOIN fallback_credentials f ON f.scope_kind = ?2 AND f.profile = p.profile
                 WHERE p.mac = ?1
                 UNION ALL
                 SELECT scope_kind, profile, username, sealed, 1, 0
                 FROM fallback_credentials WHERE scope_kind = ?3
                 ORDER BY 5, 6, 3",
                params![mac.to_string(), SCOPE_PROFILE, SCOPE_GLOBAL],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })?;
        rows.into_iter()
            .map(|(kind, profile, username, sealed)| {
                Ok(FallbackCredential { scope: scope_from_sql(&kind, profile)?, username, sealed })
            })
            .collect()
    }

    /// Ordered as [`CredentialScope`] and `str` order them: the global scope first, then
    /// the profiles by name; within a scope, by username.
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = self.read(|tx| {
            query_all(
                tx,
                "SELECT scope_kind, profile, username FROM fallback_credentials
                 ORDER BY scope_kind <> ?1, profile, username",
                [SCOPE_GLOBAL],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })?;
        rows.into_iter().map(|(kind, profile, username)| Ok((scope_from_sql(&kind, profile)?, username))).collect()
    }
}
