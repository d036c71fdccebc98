//! Devices and profiles, as the admin API manages them; the device reads the protocol path
//! shares.
//!
//! Profiles are cached parsed, as of `profiles_version.version`, which a trigger counts up
//! in the transaction of every change of `profiles` (by any node).

use dls_engine::{ItemKey, Profile, UnixTime, WrittenRecord};
use dls_message::{Item, MacAddr};
use dls_store::{
    DeviceDetails, DeviceFilter, DeviceSpec, DeviceStore, DeviceSummary, DeviceUpdate, StoreError, WrittenSummary,
    rules,
};
use postgres::Row;

use crate::PostgresStore;
use crate::credentials::put_device_secret;
use crate::inventory::load_inventory;
use dls_store::columns::SecurityColumns;

use crate::security::{change_security, load_security};
use crate::sql::{
    SCOPE_PROFILE, Tx, device_exists, get, index_from_sql, index_to_sql, item_from_row, items_from_json, lock_device,
    mac_from_sql, opt_time_from_sql, outcome_from_sql, time_from_sql, time_to_sql,
};
use crate::store::ProfileCache;

pub(crate) fn load_overrides(tx: &mut Tx<'_>, mac: &str) -> Result<Vec<Item>, StoreError> {
    tx.query("SELECT name, idx, value, type FROM device_overrides WHERE mac = $1 ORDER BY position", &[&mac])?
        .iter()
        .map(item_from_row)
        .collect()
}

/// The device's written records, ordered by item key.
pub(crate) fn load_written(tx: &mut Tx<'_>, mac: &str) -> Result<Vec<(ItemKey, WrittenRecord)>, StoreError> {
    tx.query("SELECT name, idx, fingerprint, outcome FROM written WHERE mac = $1 ORDER BY name, idx", &[&mac])?
        .iter()
        .map(|row| written_record(get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?))
        .collect()
}

/// A written record from its columns: name, index, fingerprint, outcome.
pub(crate) fn written_record(
    name: String,
    idx: i64,
    fingerprint: Vec<u8>,
    outcome: &str,
) -> Result<(ItemKey, WrittenRecord), StoreError> {
    let fingerprint: [u8; 32] = fingerprint
        .try_into()
        .map_err(|v: Vec<u8>| StoreError::Corrupt(format!("fingerprint of {} bytes", v.len())))?;
    let key = ItemKey { name, index: index_from_sql(idx)? };
    Ok((key, WrittenRecord { fingerprint, outcome: outcome_from_sql(outcome)? }))
}

/// Every profile and the version they are at, read by one statement (one state of them,
/// in a write transaction too).
pub(crate) fn load_profiles(tx: &mut Tx<'_>) -> Result<ProfileCache, StoreError> {
    let rows = tx.query(
        "SELECT v.version, p.name, p.body FROM profiles_version v LEFT JOIN profiles p ON TRUE ORDER BY p.name",
        &[],
    )?;
    let Some(first) = rows.first() else {
        return Err(StoreError::Corrupt("profiles_version has no row".into()));
    };
    let version: i64 = get(first, 0)?;
    let mut profiles = Vec::with_capacity(rows.len());
    for row in &rows {
        let (Some(name), Some(body)) = (get::<Option<String>>(row, 1)?, get::<Option<&str>>(row, 2)?) else {
            continue;
        };
        let mut profile: Profile =
            serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("stored profile {name:?}: {e}")))?;
        profile.name = name;
        profiles.push(profile);
    }
    Ok(ProfileCache { version, profiles })
}

/// Checks that the profiles exist, and keeps them (a share lock on their rows) until the
/// caller's transaction ends, so that a profile being assigned is not deleted meanwhile.
fn assignable(tx: &mut Tx<'_>, names: &[String]) -> Result<(), StoreError> {
    rules::check_assignment(names, |name| tx.exists("SELECT 1 FROM profiles WHERE name = $1 FOR SHARE", &[&name]))
}

fn replace_assigned(tx: &mut Tx<'_>, mac: &str, names: &[String]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM device_profiles WHERE mac = $1", &[&mac])?;
    for (position, name) in (0_i64..).zip(names) {
        tx.execute(
            "INSERT INTO device_profiles (mac, position, profile) VALUES ($1, $2, $3)",
            &[&mac, &position, name],
        )?;
    }
    Ok(())
}

fn replace_overrides(tx: &mut Tx<'_>, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM device_overrides WHERE mac = $1", &[&mac])?;
    for (position, item) in (0_i64..).zip(items) {
        tx.execute(
            "INSERT INTO device_overrides (mac, position, name, idx, value, type) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&mac, &position, &item.name, &index_to_sql(item.index), &item.value, &item.item_type],
        )?;
    }
    Ok(())
}

fn summary_from_row(row: &Row) -> Result<DeviceSummary, StoreError> {
    Ok(DeviceSummary {
        mac: mac_from_sql(get(row, 0)?)?,
        device_type: get(row, 1)?,
        software_version: get(row, 2)?,
        e164: get(row, 3)?,
        last_contact: opt_time_from_sql(get(row, 4)?)?,
        profiles: get(row, 5)?,
    })
}

/// The device listing, by MAC (`LIST_DEVICES_DESC`: the same, descending). A search
/// (`$3`, `$4`) finds the devices whose MAC is `LIKE` the MAC needle's pattern (`$4`, NULL:
/// none) or whose lower-case `e164` is `LIKE` the search's (`$3`), both `%…%` with the
/// needle's own `%`, `_` and `\` escaped (`contains_pattern`): a substring, which the trigram
/// indexes of schema 7 (`devices_search_mac`, `devices_search_e164`) serve when `pg_trgm` is
/// installed. A search is planned for its own patterns (`PostgresStore::search`): how many
/// devices a needle matches decides between the indexes and a scan in MAC order that stops
/// when the page is full.
const LIST_DEVICES: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at,
            ARRAY(SELECT p.profile FROM device_profiles p WHERE p.mac = d.mac ORDER BY p.position)
     FROM devices d
     WHERE ($1::TEXT IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = $1))
       AND ($2::TEXT IS NULL OR d.device_type = $2)
       AND ($3::TEXT IS NULL OR d.mac LIKE $4::TEXT OR lower(d.e164) LIKE lower($3))
       AND ($6::TEXT IS NULL OR d.software_version = $6)
       AND ($7::TEXT IS NULL OR d.mac > $7)
     ORDER BY d.mac
     LIMIT $5";
const LIST_DEVICES_DESC: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at,
            ARRAY(SELECT p.profile FROM device_profiles p WHERE p.mac = d.mac ORDER BY p.position)
     FROM devices d
     WHERE ($1::TEXT IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = $1))
       AND ($2::TEXT IS NULL OR d.device_type = $2)
       AND ($3::TEXT IS NULL OR d.mac LIKE $4::TEXT OR lower(d.e164) LIKE lower($3))
       AND ($6::TEXT IS NULL OR d.software_version = $6)
       AND ($7::TEXT IS NULL OR d.mac < $7)
     ORDER BY d.mac DESC
     LIMIT $5";

/// `%needle%` for `LIKE`: the needle's `\`, `%` and `_` escaped, a substring anywhere.
fn contains_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl DeviceStore for PostgresStore {
    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError> {
        let search = filter.search.as_deref().filter(|s| !s.is_empty());
        // PostgreSQL's text holds no NUL: no device's MAC or e164 contains one.
        if search.is_some_and(|s| s.contains('\0')) {
            return Ok(Vec::new());
        }
        // A MAC is stored as 12 upper-case hex digits: match the search without separators.
        let mac_pattern = search
            .map(|s| s.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect::<String>().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .map(|s| contains_pattern(&s));
        let pattern = search.map(contains_pattern);
        // NULL: no limit.
        let limit = filter.limit.map(crate::sql::int);
        let after = filter.after.map(|m| m.to_string());
        // Keyset pagination on the primary key: a page costs the same at any depth.
        let sql = if filter.descending { LIST_DEVICES_DESC } else { LIST_DEVICES };
        let list = |tx: &mut Tx<'_>| {
            tx.query(
                sql,
                &[
                    &filter.profile,
                    &filter.device_type,
                    &pattern,
                    &mac_pattern,
                    &limit,
                    &filter.software_version,
                    &after,
                ],
            )?
            .iter()
            .map(summary_from_row)
            .collect()
        };
        if search.is_some() { self.search(list) } else { self.read(list) }
    }

    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            let Some(row) = tx.query_opt(
                "SELECT mac, device_type, software_version, e164, last_contact_at,
                        ARRAY(SELECT p.profile FROM device_profiles p WHERE p.mac = d.mac ORDER BY p.position),
                        registered_at, last_reason, inventory_at, last_phone_cleanup_reason, last_deployment_status
                 FROM devices d WHERE mac = $1",
                &[&key],
            )?
            else {
                return Ok(None);
            };
            let summary = summary_from_row(&row)?;
            let deployment: Option<&str> = get(&row, 10)?;
            let written = load_written(tx, &key)?
                .into_iter()
                .map(|(item, record)| WrittenSummary { item, outcome: record.outcome })
                .collect();
            Ok(Some(DeviceDetails {
                summary,
                registered_at: time_from_sql(get(&row, 6)?)?,
                last_reason: get(&row, 7)?,
                inventory_at: opt_time_from_sql(get(&row, 8)?)?,
                overrides: load_overrides(tx, &key)?,
                inventory: load_inventory(tx, &key)?,
                written,
                last_deployment_status: deployment.map(items_from_json).transpose()?.unwrap_or_default(),
                last_phone_cleanup_reason: get(&row, 9)?,
                security: load_security(tx, &key)?.map(SecurityColumns::into_summary).unwrap_or_default(),
            }))
        })
    }

    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec, at: UnixTime) -> Result<(), StoreError> {
        let key = mac.to_string();
        rules::check_overrides(&spec.overrides)?;
        let registered_at = time_to_sql(at)?;
        // One transaction: a device is added with everything asked for, or not at all.
        self.write(|tx| {
            lock_device(tx, mac)?;
            if device_exists(tx, &key)? {
                return Err(StoreError::Conflict { what: format!("device {key}") });
            }
            assignable(tx, &spec.profiles)?;
            tx.execute("INSERT INTO devices (mac, registered_at) VALUES ($1, $2)", &[&key, &registered_at])?;
            replace_assigned(tx, &key, &spec.profiles)?;
            replace_overrides(tx, &key, &spec.overrides)?;
            if let Some(sealed) = &spec.secret {
                put_device_secret(tx, &key, Some(sealed))?;
            }
            match &spec.security {
                Some(update) => change_security(tx, &key, at, update),
                None => Ok(()),
            }
        })
    }

    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError> {
        let key = mac.to_string();
        if let Some(overrides) = &update.overrides {
            rules::check_overrides(overrides)?;
        }
        self.write(|tx| {
            lock_device(tx, mac)?;
            if !device_exists(tx, &key)? {
                return Err(StoreError::NotFound { what: format!("device {key}") });
            }
            if let Some(profiles) = &update.profiles {
                assignable(tx, profiles)?;
                replace_assigned(tx, &key, profiles)?;
            }
            if let Some(overrides) = &update.overrides {
                replace_overrides(tx, &key, overrides)?;
            }
            Ok(())
        })
    }

    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let key = mac.to_string();
        // The foreign keys delete the rest (its inventory, certificates and secret too),
        // except the audit log, which outlives the device.
        let deleted = self.write(|tx| {
            lock_device(tx, mac)?;
            tx.execute("DELETE FROM devices WHERE mac = $1", &[&key])
        })?;
        Ok(deleted > 0)
    }

    fn fleet_summary(&self, since: UnixTime) -> Result<dls_store::FleetSummary, StoreError> {
        crate::summary::fleet_summary(self, since)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let cache = self.read(|tx| {
            let version = profiles_version(tx)?;
            self.profiles_at(tx, version)
        })?;
        Ok(cache.profiles.clone())
    }

    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        let cache = self.read(|tx| {
            let version = profiles_version(tx)?;
            self.profiles_at(tx, version)
        })?;
        Ok(cache.profiles.iter().find(|p| p.name == name).cloned())
    }

    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        rules::check_profile_name(&profile.name)?;
        let body = serde_json::to_string(&Profile { name: String::new(), ..profile.clone() })
            .map_err(|e| StoreError::Invalid(format!("profile not serialisable: {e}")))?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO profiles (name, body) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                &[&profile.name, &body],
            )?;
            Ok(())
        })
    }

    /// The profile's row first: that waits for the transactions assigning it (which hold
    /// it shared), and makes those after it find it gone; then its assignments and
    /// credentials, as committed by then.
    fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = self.write(|tx| {
            let deleted = tx.execute("DELETE FROM profiles WHERE name = $1", &[&name])?;
            tx.execute("DELETE FROM device_profiles WHERE profile = $1", &[&name])?;
            tx.execute(
                "DELETE FROM fallback_credentials WHERE scope_kind = $1 AND profile = $2",
                &[&SCOPE_PROFILE, &name],
            )?;
            Ok(deleted)
        })?;
        Ok(deleted > 0)
    }
}

/// `profiles_version.version`: changes whenever a profile does.
fn profiles_version(tx: &mut Tx<'_>) -> Result<i64, StoreError> {
    get(&tx.query_one("SELECT version FROM profiles_version", &[])?, 0)
}
