//! [`MobilityStore`]: mobility users, their saved data and the throttle's rows (schema
//! 14), and the engine's [`MobilityChange`]s as one message applies them.

use dls_engine::mobility::SavedData;
use dls_engine::{JobKind, MobilityChange, MobilityQuery, UnixTime};
use dls_message::MacAddr;
use dls_store::columns::{UserColumns, profiles_to_sql};
use dls_store::rules::mobility::{self as rules, ThrottleConfig, ThrottleRow, ThrottleState, throttle_keys};
use dls_store::{
    JobRecord, MobilityContext, MobilityStore, NewJob, NewUser, StoreError, StoredUser, UserDataInfo, UserDataValue,
    UserDetails, UserSummary,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::SqliteStore;
use crate::jobs;
use crate::sql::{Cached, Db, mac_from_sql, query_all, time_from_sql, time_to_sql};

const USER_COLUMNS: &str =
    "number, name, password_hash, profiles, device, since, logoff_requested_at, revision, created_at";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<UserColumns, StoreError>> {
    Ok(UserColumns::read(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        &r.get::<_, String>(3)?,
        r.get::<_, Option<String>>(4)?.as_deref(),
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn user_by_number(conn: &Connection, number: &str) -> Result<Option<UserColumns>, StoreError> {
    conn.cached(&format!("SELECT {USER_COLUMNS} FROM mobility_users WHERE number = ?1"))
        .db()?
        .query_row([number], user_row)
        .optional()
        .db()?
        .transpose()
}

fn user_at(conn: &Connection, mac: &str) -> Result<Option<UserColumns>, StoreError> {
    conn.cached(&format!("SELECT {USER_COLUMNS} FROM mobility_users WHERE device = ?1"))
        .db()?
        .query_row([mac], user_row)
        .optional()
        .db()?
        .transpose()
}

/// A user's saved data: names and sizes, and the values of those `with_values` names.
fn saved_data(
    conn: &Connection,
    number: &str,
    with_values: &dyn Fn(&str) -> bool,
) -> Result<Vec<SavedData>, StoreError> {
    let rows: Vec<(String, i64)> =
        query_all(conn, "SELECT name, size FROM mobility_data WHERE number = ?1 ORDER BY name", [number], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, size) in rows {
        let value = if with_values(&name) {
            conn.cached("SELECT value FROM mobility_data WHERE number = ?1 AND name = ?2")
                .db()?
                .query_row([number, name.as_str()], |r| r.get(0))
                .optional()
                .db()?
        } else {
            None
        };
        let size = u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("data size {size}")))?;
        out.push(SavedData { name, size, value });
    }
    Ok(out)
}

fn data_totals(conn: &Connection, number: &str) -> Result<(u64, u64), StoreError> {
    let (items, bytes): (i64, i64) = conn
        .cached("SELECT count(*), coalesce(sum(size), 0) FROM mobility_data WHERE number = ?1")
        .db()?
        .query_row([number], |r| Ok((r.get(0)?, r.get(1)?)))
        .db()?;
    Ok((u64::try_from(items).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
}

/// Refuses profiles that do not exist.
fn check_profiles_exist(conn: &Connection, profiles: &[String]) -> Result<(), StoreError> {
    rules::check_user_profiles(profiles)?;
    for p in profiles {
        if !conn.cached("SELECT 1 FROM profiles WHERE name = ?1").db()?.exists([p]).db()? {
            return Err(StoreError::Invalid(format!("profile {p:?} does not exist")));
        }
    }
    Ok(())
}

fn throttle_row(conn: &Connection, key: &str) -> Result<Option<ThrottleRow>, StoreError> {
    let row: Option<(i64, i64)> = conn
        .cached("SELECT tat, last FROM mobility_throttle WHERE key = ?1")
        .db()?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    row.map(|(tat, last)| Ok(ThrottleRow { tat: time_from_sql(tat)?.0, last: time_from_sql(last)?.0 })).transpose()
}

fn throttle_state(conn: &Connection, number: &str, mac: MacAddr) -> Result<ThrottleState, StoreError> {
    let [pair, user, device] = throttle_keys(number, mac);
    Ok(ThrottleState {
        pair: throttle_row(conn, &pair)?,
        user: throttle_row(conn, &user)?,
        device: throttle_row(conn, &device)?,
    })
}

fn put_throttle_row(
    conn: &Connection,
    key: &str,
    row: Option<ThrottleRow>,
    c: &ThrottleConfig,
) -> Result<(), StoreError> {
    match row {
        None => {
            conn.cached("DELETE FROM mobility_throttle WHERE key = ?1").db()?.execute([key]).db()?;
        }
        Some(r) => {
            conn.cached(
                "INSERT INTO mobility_throttle (key, tat, last, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, last = excluded.last, expires = excluded.expires",
            )
            .db()?
            .execute(params![
                key,
                time_to_sql(UnixTime(r.tat))?,
                time_to_sql(UnixTime(r.last))?,
                time_to_sql(UnixTime(c.expires(r)))?
            ])
            .db()?;
        }
    }
    Ok(())
}

/// A change of the users' state, in the message's transaction (`mac`: its device).
pub(crate) fn apply(conn: &Connection, mac: &str, change: &MobilityChange) -> Result<(), StoreError> {
    match change {
        MobilityChange::Expect { number, revision } => {
            let n = conn
                .cached("UPDATE mobility_users SET revision = revision + 1 WHERE number = ?1 AND revision = ?2")
                .db()?
                .execute(params![number, revision])
                .db()?;
            if n == 0 {
                return Err(rules::contended(number));
            }
        }
        MobilityChange::LogOn { number, at } => {
            let n = conn
                .cached(
                    "UPDATE mobility_users SET device = ?2, since = ?3, logoff_requested_at = NULL WHERE number = ?1",
                )
                .db()?
                .execute(params![number, mac, time_to_sql(*at)?])
                .map_err(|e| match e.sqlite_error_code() {
                    // Another user is recorded at the device: a race the engine did not see.
                    Some(ErrorCode::ConstraintViolation) => rules::contended(number),
                    _ => StoreError::database(e),
                })?;
            if n == 0 {
                return Err(rules::contended(number));
            }
        }
        MobilityChange::LogOff { number } => {
            conn.cached(
                "UPDATE mobility_users SET device = NULL, since = NULL, logoff_requested_at = NULL WHERE number = ?1",
            )
            .db()?
            .execute([number])
            .db()?;
        }
        MobilityChange::SaveData { number, items, at } => {
            let at = time_to_sql(*at)?;
            for d in items {
                if d.value.is_empty() {
                    conn.cached("DELETE FROM mobility_data WHERE number = ?1 AND name = ?2")
                        .db()?
                        .execute([number, &d.name])
                        .db()?;
                    continue;
                }
                let size = i64::try_from(d.size).map_err(|_| StoreError::Invalid(format!("data size {}", d.size)))?;
                conn.cached(
                    "INSERT INTO mobility_data (number, name, value, size, saved_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (number, name)
                     DO UPDATE SET value = excluded.value, size = excluded.size, saved_at = excluded.saved_at",
                )
                .db()?
                .execute(params![number, d.name, d.value, size, at])
                .db()?;
            }
        }
        MobilityChange::RequestLogoff { number, device, at } => {
            conn.cached("UPDATE mobility_users SET logoff_requested_at = ?2 WHERE number = ?1")
                .db()?
                .execute(params![number, time_to_sql(*at)?])
                .db()?;
            queue_logoff_job(conn, number, *device, *at)?;
        }
        MobilityChange::Attempt { number, success, at } => {
            let config = ThrottleConfig::default();
            let device = mac_from_sql(mac)?;
            let before = throttle_state(conn, number, device)?;
            let after = config.after(&before, *success, at.0);
            let [pair, user, device] = throttle_keys(number, device);
            put_throttle_row(conn, &pair, after.pair, &config)?;
            put_throttle_row(conn, &user, after.user, &config)?;
            put_throttle_row(conn, &device, after.device, &config)?;
            // What restricts nothing any more goes (by the index on `expires`).
            conn.cached("DELETE FROM mobility_throttle WHERE expires <= ?1").db()?.execute([time_to_sql(*at)?]).db()?;
        }
        _ => return Err(StoreError::Invalid("unsupported mobility change".into())),
    }
    Ok(())
}

/// The open `mobility-logoff` job of `number` at `device`, or a new one.
fn queue_logoff_job(conn: &Connection, number: &str, device: MacAddr, at: UnixTime) -> Result<JobRecord, StoreError> {
    let kind = JobKind::MobilityLogoff { number: number.to_owned() };
    if let Some(open) = jobs::open_jobs(conn, &device.to_string())?.into_iter().find(|j| j.kind == kind) {
        return jobs::job(conn, open.id)?.ok_or_else(|| StoreError::Corrupt("an open job vanished".into()));
    }
    let added = jobs::add_jobs(conn, &[NewJob { mac: device, kind }], at)?;
    added.into_iter().next().ok_or_else(|| StoreError::Corrupt("a job just added".into()))
}

impl SqliteStore {
    fn stored(
        &self,
        conn: &Connection,
        user: UserColumns,
        values: &dyn Fn(&str) -> bool,
    ) -> Result<StoredUser, StoreError> {
        let version: i64 =
            conn.cached("SELECT version FROM profiles_version").db()?.query_row([], |r| r.get(0)).db()?;
        let profiles = self.profiles_at(conn, version)?;
        let data = saved_data(conn, &user.number, values)?;
        Ok(user.stored(&profiles.profiles, data))
    }
}

impl MobilityStore for SqliteStore {
    fn add_user(&self, user: &NewUser, at: UnixTime) -> Result<(), StoreError> {
        rules::check_number(&user.number)?;
        if let Some(name) = &user.name {
            rules::check_display_name(name)?;
        }
        rules::check_password_hash(&user.password_hash)?;
        self.write(|tx| {
            check_profiles_exist(tx, &user.profiles)?;
            if user_by_number(tx, &user.number)?.is_some() {
                return Err(StoreError::Conflict { what: format!("user {}", user.number) });
            }
            tx.execute(
                "INSERT INTO mobility_users (number, name, password_hash, profiles, revision, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![user.number, user.name, user.password_hash, profiles_to_sql(&user.profiles)?, time_to_sql(at)?],
            )
            .db()?;
            Ok(())
        })
    }

    fn users(&self) -> Result<Vec<UserSummary>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {USER_COLUMNS}, (SELECT count(*) FROM mobility_data d WHERE d.number = u.number),
                            (SELECT coalesce(sum(size), 0) FROM mobility_data d WHERE d.number = u.number)
                     FROM mobility_users u ORDER BY number LIMIT ?1"
                ))
                .db()?;
            let limit = i64::try_from(rules::MAX_USERS_LISTED).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map([limit], |r| Ok((user_row(r)?, r.get::<_, i64>(9)?, r.get::<_, i64>(10)?)))
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            rows.into_iter()
                .map(|(u, items, bytes)| {
                    Ok(u?.summary(u64::try_from(items).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
                })
                .collect()
        })
    }

    fn user(&self, number: &str) -> Result<Option<UserDetails>, StoreError> {
        self.read(|tx| {
            let Some(u) = user_by_number(tx, number)? else { return Ok(None) };
            let data: Vec<(String, i64, i64)> = query_all(
                tx,
                "SELECT name, size, saved_at FROM mobility_data WHERE number = ?1 ORDER BY name",
                [number],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let data = data
                .into_iter()
                .map(|(name, size, saved_at)| {
                    Ok(UserDataInfo {
                        name,
                        size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("data size {size}")))?,
                        saved_at: time_from_sql(saved_at)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let (items, bytes) = data_totals(tx, number)?;
            Ok(Some(UserDetails { summary: u.summary(items, bytes), data }))
        })
    }

    fn delete_user(&self, number: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM mobility_users WHERE number = ?1", [number]).db()? > 0))
    }

    fn set_user_password(&self, number: &str, password_hash: &str) -> Result<(), StoreError> {
        rules::check_password_hash(password_hash)?;
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE mobility_users SET password_hash = ?2, revision = revision + 1 WHERE number = ?1",
                    params![number, password_hash],
                )
                .db()?;
            if n == 0 { Err(rules::user_not_found(number)) } else { Ok(()) }
        })
    }

    fn set_user_profiles(&self, number: &str, profiles: &[String]) -> Result<(), StoreError> {
        self.write(|tx| {
            if user_by_number(tx, number)?.is_none() {
                return Err(rules::user_not_found(number));
            }
            check_profiles_exist(tx, profiles)?;
            tx.execute(
                "UPDATE mobility_users SET profiles = ?2, revision = revision + 1 WHERE number = ?1",
                params![number, profiles_to_sql(profiles)?],
            )
            .db()?;
            Ok(())
        })
    }

    fn user_data(&self, number: &str, name: &str) -> Result<Option<UserDataValue>, StoreError> {
        self.read(|tx| {
            let row: Option<(String, i64, i64)> = tx
                .prepare("SELECT value, size, saved_at FROM mobility_data WHERE number = ?1 AND name = ?2")
                .db()?
                .query_row([number, name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .db()?;
            row.map(|(value, size, saved_at)| {
                Ok(UserDataValue {
                    name: name.to_owned(),
                    value,
                    size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("data size {size}")))?,
                    saved_at: time_from_sql(saved_at)?,
                })
            })
            .transpose()
        })
    }

    fn mobility_context(&self, mac: MacAddr, query: &MobilityQuery) -> Result<MobilityContext, StoreError> {
        let key = mac.to_string();
        self.read(|tx| {
            let here = match user_at(tx, &key)? {
                Some(u) => Some(self.stored(tx, u, &|n| query.restore.iter().any(|r| r == n))?),
                None => None,
            };
            let named = match query.named.as_deref() {
                Some(n) if here.as_ref().is_some_and(|h| h.user.number == n) => here.clone(),
                Some(n) => match user_by_number(tx, n)? {
                    Some(u) => Some(self.stored(tx, u, &|_| false)?),
                    None => None,
                },
                None => None,
            };
            let mut job_users = Vec::new();
            for number in &query.job_users {
                if let Some(u) = user_by_number(tx, number)? {
                    let with_data = query.job_data.contains(number);
                    job_users.push(self.stored(tx, u, &|_| with_data)?.user);
                }
            }
            let checked = match query.check_password {
                Some(dls_engine::mobility::Whom::Named) => query.named.clone(),
                Some(dls_engine::mobility::Whom::Here) => here.as_ref().map(|h| h.user.number.clone()),
                _ => None,
            };
            let throttle = match checked {
                Some(number) => throttle_state(tx, &number, mac)?,
                None => ThrottleState::default(),
            };
            Ok(MobilityContext { here, named, job_users, throttle })
        })
    }

    fn queue_logon(&self, number: &str, mac: MacAddr, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.write(|tx| {
            let user = user_by_number(tx, number)?.ok_or_else(|| rules::user_not_found(number))?;
            rules::check_queue_logon(number, user.logged_on().map(|l| l.mac), mac)?;
            let kind = JobKind::MobilityLogon { number: number.to_owned() };
            let added = jobs::add_jobs(tx, &[NewJob { mac, kind }], at)?;
            added.into_iter().next().ok_or_else(|| StoreError::Corrupt("a job just added".into()))
        })
    }

    fn queue_logoff(&self, number: &str, at: UnixTime) -> Result<JobRecord, StoreError> {
        self.write(|tx| {
            let user = user_by_number(tx, number)?.ok_or_else(|| rules::user_not_found(number))?;
            let device = rules::logoff_device(number, user.logged_on().map(|l| l.mac))?;
            tx.execute(
                "UPDATE mobility_users SET logoff_requested_at = coalesce(logoff_requested_at, ?2) WHERE number = ?1",
                params![number, time_to_sql(at)?],
            )
            .db()?;
            queue_logoff_job(tx, number, device, at)
        })
    }
}
