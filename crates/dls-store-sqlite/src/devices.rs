//! Devices and profiles, as the admin API manages them; the device reads the protocol path
//! shares.
//!
//! Profiles are cached parsed, as of `profiles_version.version`, which triggers count up at
//! every change of `profiles` (by any connection, e.g. another process's).

use dls_engine::{ItemKey, Profile, UnixTime, WrittenRecord};
use dls_message::{Item, MacAddr};
use dls_store::{
    DeviceDetails, DeviceFilter, DeviceSpec, DeviceStore, DeviceSummary, DeviceUpdate, StoreError, WrittenSummary,
    rules,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::credentials::put_device_secret;
use crate::inventory::load_inventory;
use dls_store::columns::SecurityColumns;

use crate::security::{change_security, load_security};
use crate::sql::{
    Cached, Db, SCOPE_PROFILE, device_exists, index_from_sql, index_to_sql, item_from_row, item_row, items_from_json,
    mac_from_sql, opt_time_from_sql, outcome_from_sql, query_all, time_from_sql, time_to_sql,
};

pub(crate) fn load_overrides(conn: &Connection, mac: &str) -> Result<Vec<Item>, StoreError> {
    query_all(
        conn,
        "SELECT name, idx, value, type FROM device_overrides WHERE mac = ?1 ORDER BY position",
        [mac],
        item_row,
    )?
    .into_iter()
    .map(item_from_row)
    .collect()
}

pub(crate) fn load_assigned(conn: &Connection, mac: &str) -> Result<Vec<String>, StoreError> {
    query_all(conn, "SELECT profile FROM device_profiles WHERE mac = ?1 ORDER BY position", [mac], |r| r.get(0))
}

/// The device's written records, ordered by item key.
pub(crate) fn load_written(conn: &Connection, mac: &str) -> Result<Vec<(ItemKey, WrittenRecord)>, StoreError> {
    let rows: Vec<(String, i64, Vec<u8>, String)> = query_all(
        conn,
        "SELECT name, idx, fingerprint, outcome FROM written WHERE mac = ?1 ORDER BY name, idx",
        [mac],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    rows.into_iter()
        .map(|(name, idx, fingerprint, outcome)| {
            let fingerprint: [u8; 32] = fingerprint
                .try_into()
                .map_err(|v: Vec<u8>| StoreError::Corrupt(format!("fingerprint of {} bytes", v.len())))?;
            let key = ItemKey { name, index: index_from_sql(idx)? };
            Ok((key, WrittenRecord { fingerprint, outcome: outcome_from_sql(&outcome)? }))
        })
        .collect()
}

/// `profiles_version.version`: changes whenever a profile does.
pub(crate) fn profiles_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.cached("SELECT version FROM profiles_version").db()?.query_row([], |r| r.get(0)).db()
}

pub(crate) fn load_profiles(conn: &Connection) -> Result<Vec<Profile>, StoreError> {
    let rows: Vec<(String, String)> =
        query_all(conn, "SELECT name, body FROM profiles ORDER BY name", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.into_iter()
        .map(|(name, body)| {
            let mut profile: Profile = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("stored profile {name:?}: {e}")))?;
            profile.name = name;
            Ok(profile)
        })
        .collect()
}

fn assignable(conn: &Connection, names: &[String]) -> Result<(), StoreError> {
    let mut stmt = conn.cached("SELECT 1 FROM profiles WHERE name = ?1").db()?;
    rules::check_assignment(names, |name| stmt.exists([name]).db())
}

fn replace_assigned(conn: &Connection, mac: &str, names: &[String]) -> Result<(), StoreError> {
    conn.cached("DELETE FROM device_profiles WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt = conn.cached("INSERT INTO device_profiles (mac, position, profile) VALUES (?1, ?2, ?3)").db()?;
    for (position, name) in (0_i64..).zip(names) {
        stmt.execute(params![mac, position, name]).db()?;
    }
    Ok(())
}

fn replace_overrides(conn: &Connection, mac: &str, items: &[Item]) -> Result<(), StoreError> {
    conn.cached("DELETE FROM device_overrides WHERE mac = ?1").db()?.execute([mac]).db()?;
    let mut stmt = conn
        .cached("INSERT INTO device_overrides (mac, position, name, idx, value, type) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .db()?;
    for (position, item) in (0_i64..).zip(items) {
        stmt.execute(params![mac, position, item.name, index_to_sql(item.index), item.value, item.item_type]).db()?;
    }
    Ok(())
}

/// The device listing, by MAC (`LIST_DEVICES_DESC`: the same, descending). A search scans
/// the devices in MAC order until the page is full: `SEARCH_DEVICES` instead when it can.
const LIST_DEVICES: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at
     FROM devices d
     WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
       AND (?2 IS NULL OR d.device_type = ?2)
       AND (?3 IS NULL OR instr(d.mac, ?4) > 0 OR instr(lower(d.e164), lower(?3)) > 0)
       AND (?6 IS NULL OR d.software_version = ?6)
       AND d.mac > ?7
     ORDER BY d.mac
     LIMIT ?5";
const LIST_DEVICES_DESC: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at
     FROM devices d
     WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
       AND (?2 IS NULL OR d.device_type = ?2)
       AND (?3 IS NULL OR instr(d.mac, ?4) > 0 OR instr(lower(d.e164), lower(?3)) > 0)
       AND (?6 IS NULL OR d.software_version = ?6)
       AND d.mac < ?7
     ORDER BY d.mac DESC
     LIMIT ?5";

/// A search through the trigram index `device_search` (schema 17), whose rowid is the MAC
/// as a number: it gives the devices that may match (`?8`, an FTS5 query) in MAC order, from
/// past the page's start (`?7`, a MAC as a number), and stops when the page is full. The
/// index only narrows: each device is then matched exactly as `LIST_DEVICES` does.
/// (`SEARCH_DEVICES_DESC`: the same, descending.)
const SEARCH_DEVICES: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at
     FROM device_search s CROSS JOIN devices d ON d.mac = s.mac
     WHERE device_search MATCH ?8
       AND (?1 IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
       AND (?2 IS NULL OR d.device_type = ?2)
       AND (instr(d.mac, ?4) > 0 OR instr(lower(d.e164), lower(?3)) > 0)
       AND (?6 IS NULL OR d.software_version = ?6)
       AND s.rowid > ?7
     ORDER BY s.rowid
     LIMIT ?5";
const SEARCH_DEVICES_DESC: &str = "SELECT d.mac, d.device_type, d.software_version, d.e164, d.last_contact_at
     FROM device_search s CROSS JOIN devices d ON d.mac = s.mac
     WHERE device_search MATCH ?8
       AND (?1 IS NULL OR EXISTS (SELECT 1 FROM device_profiles p WHERE p.mac = d.mac AND p.profile = ?1))
       AND (?2 IS NULL OR d.device_type = ?2)
       AND (instr(d.mac, ?4) > 0 OR instr(lower(d.e164), lower(?3)) > 0)
       AND (?6 IS NULL OR d.software_version = ?6)
       AND s.rowid < ?7
     ORDER BY s.rowid DESC
     LIMIT ?5";

/// The FTS5 query of `device_search` that finds every device a search matches (and maybe
/// more): the MAC needle in `mac` or the search in `e164`, each a phrase (a substring, case
/// folded). `None` when a needle is shorter than 3 characters, which a trigram index cannot
/// find, or holds a NUL, which ends FTS5's query text (the listing then scans).
fn trigram_query(search: &str, mac_needle: Option<&str>) -> Option<String> {
    let phrase = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    if search.chars().count() < 3 || mac_needle.is_some_and(|m| m.chars().count() < 3) || search.contains('\0') {
        return None;
    }
    Some(match mac_needle {
        Some(m) => format!("mac : {} OR e164 : {}", phrase(m), phrase(search)),
        None => format!("e164 : {}", phrase(search)),
    })
}

/// A MAC as the rowid of `device_search` (the view `device_search_keys`).
fn search_key(mac: MacAddr) -> i64 {
    mac.octets().iter().fold(0, |n, &b| n << 8 | i64::from(b))
}

impl DeviceStore for SqliteStore {
    fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceSummary>, StoreError> {
        let search = filter.search.as_deref().filter(|s| !s.is_empty());
        // A MAC is stored as 12 upper-case hex digits: match the search without separators.
        let mac_needle = search
            .map(|s| s.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect::<String>().to_ascii_uppercase())
            .filter(|s| !s.is_empty());
        let limit = filter.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let trigrams = search.and_then(|s| trigram_query(s, mac_needle.as_deref()));
        // Keyset pagination on the primary key (or the index's rowid, the same order): a
        // page costs the same at any depth. The page's start is always given (with an `?7
        // IS NULL OR`, SQLite would read from the first device on, not seek to it): without
        // one, before every device — past '' ascending, and descending before a blob, which
        // SQLite orders after every text; -1 and 2^48 in the index, whose rowids are 48 bits.
        let (sql, after): (&str, Value) = match (&trigrams, filter.descending) {
            (None, false) => {
                (LIST_DEVICES, filter.after.map_or_else(|| String::new().into(), |m| m.to_string().into()))
            }
            (None, true) => (LIST_DEVICES_DESC, filter.after.map_or(Value::Blob(vec![0xFF]), |m| m.to_string().into())),
            (Some(_), false) => (SEARCH_DEVICES, filter.after.map_or(-1, search_key).into()),
            (Some(_), true) => (SEARCH_DEVICES_DESC, filter.after.map_or(1 << 48, search_key).into()),
        };
        self.read(|tx| {
            type SummaryRow = (String, Option<String>, Option<String>, Option<String>, Option<i64>);
            let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
            let (p, t, v) = (&filter.profile, &filter.device_type, &filter.software_version);
            let rows: Vec<SummaryRow> = match &trigrams {
                None => query_all(tx, sql, params![p, t, search, mac_needle, limit, v, after], row)?,
                Some(q) => query_all(tx, sql, params![p, t, search, mac_needle, limit, v, after, q], row)?,
            };
            rows.into_iter()
                .map(|(mac, device_type, software_version, e164, last_contact)| {
                    Ok(DeviceSummary {
                        profiles: load_assigned(tx, &mac)?,
                        mac: mac_from_sql(&mac)?,
                        device_type,
                        software_version,
                        e164,
                        last_contact: opt_time_from_sql(last_contact)?,
                    })
                })
                .collect()
        })
    }

    fn device(&self, mac: MacAddr) -> Result<Option<DeviceDetails>, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            type DeviceRow = (
                i64,
                Option<i64>,
                Option<String>,
                Option<i64>,
                Option<String>,
                Option<String>,
                (Option<String>, Option<String>, Option<String>),
            );
            let row: Option<DeviceRow> = tx
                .cached(
                    "SELECT registered_at, last_contact_at, last_reason, inventory_at,
                            last_phone_cleanup_reason, last_deployment_status, device_type, software_version, e164
                     FROM devices WHERE mac = ?1",
                )
                .db()?
                .query_row([&key], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        (r.get(6)?, r.get(7)?, r.get(8)?),
                    ))
                })
                .optional()
                .db()?;
            let Some((registered_at, last_contact, last_reason, inventory_at, cleanup_reason, deployment, identity)) =
                row
            else {
                return Ok(None);
            };
            let (device_type, software_version, e164) = identity;
            let summary = DeviceSummary {
                mac,
                device_type,
                software_version,
                e164,
                profiles: load_assigned(tx, &key)?,
                last_contact: opt_time_from_sql(last_contact)?,
            };
            let written = load_written(tx, &key)?
                .into_iter()
                .map(|(item, record)| WrittenSummary { item, outcome: record.outcome })
                .collect();
            Ok(Some(DeviceDetails {
                summary,
                registered_at: time_from_sql(registered_at)?,
                last_reason,
                inventory_at: opt_time_from_sql(inventory_at)?,
                overrides: load_overrides(tx, &key)?,
                inventory: load_inventory(tx, &key)?,
                written,
                last_deployment_status: deployment.as_deref().map(items_from_json).transpose()?.unwrap_or_default(),
                last_phone_cleanup_reason: cleanup_reason,
                security: load_security(tx, &key)?.map(SecurityColumns::into_summary).unwrap_or_default(),
            }))
        })
    }

    fn add_device(&self, mac: MacAddr, spec: &DeviceSpec, at: UnixTime) -> Result<(), StoreError> {
        let mac = mac.to_string();
        rules::check_overrides(&spec.overrides)?;
        // One transaction: a device is added with everything asked for, or not at all.
        self.write(|tx| {
            if device_exists(tx, &mac)? {
                return Err(StoreError::Conflict { what: format!("device {mac}") });
            }
            assignable(tx, &spec.profiles)?;
            tx.cached("INSERT INTO devices (mac, registered_at) VALUES (?1, ?2)")
                .db()?
                .execute(params![mac, time_to_sql(at)?])
                .db()?;
            replace_assigned(tx, &mac, &spec.profiles)?;
            replace_overrides(tx, &mac, &spec.overrides)?;
            if let Some(sealed) = &spec.secret {
                put_device_secret(tx, &mac, Some(sealed))?;
            }
            match &spec.security {
                Some(update) => change_security(tx, &mac, at, update),
                None => Ok(()),
            }
        })
    }

    fn update_device(&self, mac: MacAddr, update: &DeviceUpdate) -> Result<(), StoreError> {
        let mac = mac.to_string();
        if let Some(overrides) = &update.overrides {
            rules::check_overrides(overrides)?;
        }
        self.write(|tx| {
            if !device_exists(tx, &mac)? {
                return Err(StoreError::NotFound { what: format!("device {mac}") });
            }
            if let Some(profiles) = &update.profiles {
                assignable(tx, profiles)?;
                replace_assigned(tx, &mac, profiles)?;
            }
            if let Some(overrides) = &update.overrides {
                replace_overrides(tx, &mac, overrides)?;
            }
            Ok(())
        })
    }

    fn delete_device(&self, mac: MacAddr) -> Result<bool, StoreError> {
        let mac = mac.to_string();
        let deleted = self.write(|tx| {
            // `secure_delete=FAST` does not overwrite the pages a deletion frees, such as
            // an inventory's overflow pages: it is overwritten first (in place, as the
            // size stays the same).
            tx.cached("UPDATE inventories SET items = zeroblob(length(items)) WHERE mac = ?1")
                .db()?
                .execute([&mac])
                .db()?;
            // The foreign keys delete the rest (its inventory, certificates and secret
            // too), except the audit log, which outlives the device.
            tx.cached("DELETE FROM devices WHERE mac = ?1").db()?.execute([&mac]).db()
        })?;
        Ok(deleted > 0)
    }

    fn fleet_summary(&self, since: UnixTime) -> Result<dls_store::FleetSummary, StoreError> {
        crate::summary::fleet_summary(self, since)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        let cache = self.read(|tx| self.profiles_at(tx, profiles_version(tx)?))?;
        Ok(cache.profiles.clone())
    }

    fn profile(&self, name: &str) -> Result<Option<Profile>, StoreError> {
        let cache = self.read(|tx| self.profiles_at(tx, profiles_version(tx)?))?;
        Ok(cache.profiles.iter().find(|p| p.name == name).cloned())
    }

    fn put_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        rules::check_profile_name(&profile.name)?;
        let body = serde_json::to_string(&Profile { name: String::new(), ..profile.clone() })
            .map_err(|e| StoreError::Invalid(format!("profile not serialisable: {e}")))?;
        // An upsert, not `INSERT OR REPLACE`: the row is updated in place.
        self.write(|tx| {
            tx.cached(
                "INSERT INTO profiles (name, body) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            )
            .db()?
            .execute(params![profile.name, body])
            .db()?;
            Ok(())
        })
    }

    fn delete_profile(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = self.write(|tx| {
            tx.cached("DELETE FROM device_profiles WHERE profile = ?1").db()?.execute([name]).db()?;
            tx.cached("DELETE FROM fallback_credentials WHERE scope_kind = ?1 AND profile = ?2")
                .db()?
                .execute([SCOPE_PROFILE, name])
                .db()?;
            tx.cached("DELETE FROM profiles WHERE name = ?1").db()?.execute([name]).db()
        })?;
        Ok(deleted > 0)
    }
}
