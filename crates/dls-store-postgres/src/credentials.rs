//! Digest credentials for provisioning-file downloads: a device's secret and the fallback
//! credentials, stored as the caller sealed them (opaque bytes; the key is not the
//! store's). A device's secret is in its own table, read only by `device_secret`, and
//! deleted with the device; a profile's fallback credentials are deleted with the profile.

use dls_message::MacAddr;
use dls_store::{CredentialScope, CredentialStore, FallbackCredential, StoreError, rules};

use crate::PostgresStore;
use crate::sql::{SCOPE_GLOBAL, SCOPE_PROFILE, Tx, device_exists, get, lock_device, scope_from_sql, scope_to_sql};

/// Sets (`Some`) or removes (`None`) the sealed secret of the device `key`, in the
/// caller's transaction.
pub(crate) fn put_device_secret(tx: &mut Tx<'_>, key: &str, sealed: Option<&[u8]>) -> Result<(), StoreError> {
    match sealed {
        Some(sealed) => tx.execute(
            "INSERT INTO device_secrets (mac, sealed) VALUES ($1, $2)
             ON CONFLICT (mac) DO UPDATE SET sealed = excluded.sealed",
            &[&key, &sealed],
        )?,
        None => tx.execute("DELETE FROM device_secrets WHERE mac = $1", &[&key])?,
    };
    Ok(())
}

impl CredentialStore for PostgresStore {
    fn set_device_secret(&self, mac: MacAddr, sealed: Option<&[u8]>) -> Result<(), StoreError> {
        let key = mac.to_string();
        self.write(|tx| {
            lock_device(tx, mac)?;
            if !device_exists(tx, &key)? {
                return Err(StoreError::NotFound { what: format!("device {key}") });
            }
            put_device_secret(tx, &key, sealed)
        })
    }

    fn device_secret(&self, mac: MacAddr) -> Result<Option<Vec<u8>>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            tx.query_opt("SELECT sealed FROM device_secrets WHERE mac = $1", &[&key])?.map(|r| get(&r, 0)).transpose()
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
            // Shared: the profile is not deleted before this transaction ends.
            if let CredentialScope::Profile(name) = scope
                && !tx.exists("SELECT 1 FROM profiles WHERE name = $1 FOR SHARE", &[name])?
            {
                return Err(rules::no_such_profile(name));
            }
            match sealed {
                Some(sealed) => {
                    tx.execute(
                        "INSERT INTO fallback_credentials (scope_kind, profile, username, sealed)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (scope_kind, profile, username) DO UPDATE SET sealed = excluded.sealed",
                        &[&kind, &profile, &username, &sealed],
                    )?;
                }
                None => {
                    let deleted = tx.execute(
                        "DELETE FROM fallback_credentials WHERE scope_kind = $1 AND profile = $2 AND username = $3",
                        &[&kind, &profile, &username],
                    )?;
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

    /// Within a scope, by username (byte order of its UTF-8, as `str` orders: the column's
    /// collation is "C").
    fn fallback_credentials(&self, mac: MacAddr) -> Result<Vec<FallbackCredential>, StoreError> {
        let key = mac.to_string();
        // One statement: one state of both parts.
        let rows = self.read(|tx| {
            tx.query(
                "SELECT f.scope_kind, f.profile, f.username, f.sealed, 0 AS part, p.position
                 FROM device_profiles p
                 JOIN fallback_credentials f ON f.scope_kind = $2 AND f.profile = p.profile
                 WHERE p.mac = $1
                 UNION ALL
                 SELECT scope_kind, profile, username, sealed, 1, 0
                 FROM fallback_credentials WHERE scope_kind = $3
                 ORDER BY 5, 6, 3",
                &[&key, &SCOPE_PROFILE, &SCOPE_GLOBAL],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(FallbackCredential {
                    scope: scope_from_sql(get(r, 0)?, get(r, 1)?)?,
                    username: get(r, 2)?,
                    sealed: get(r, 3)?,
                })
            })
            .collect()
    }

    /// Ordered as [`CredentialScope`] and `str` order them: the global scope first, then
    /// the profiles by name; within a scope, by username.
    fn list_fallback_credentials(&self) -> Result<Vec<(CredentialScope, String)>, StoreError> {
        let rows = self.read(|tx| {
            tx.query(
                "SELECT scope_kind, profile, username FROM fallback_credentials
                 ORDER BY scope_kind <> $1, profile, username",
                &[&SCOPE_GLOBAL],
            )
        })?;
        rows.iter().map(|r| Ok((scope_from_sql(get(r, 0)?, get(r, 1)?)?, get(r, 2)?))).collect()
    }
}
