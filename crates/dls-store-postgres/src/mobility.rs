//! [`MobilityStore`]: mobility users, their saved data and the throttle's rows (schema
//! 4), and the engine's [`MobilityChange`]s as one message applies them.
//!
//! Two messages changing one user at once (two phones, two nodes): the user's row is
//! updated conditionally on its revision (`MobilityChange::Expect`); under `READ
//! COMMITTED`, the second update waits for the first transaction and then finds another
//! revision, and its transaction fails with `StoreError::Contended`. The throttle's rows
//! of a check are locked (`FOR UPDATE`, in key order) before they are counted, so that the
//! nodes count together without losing a failure.

use dls_engine::mobility::{SavedData, Whom};
use dls_engine::{JobKind, MobilityChange, MobilityQuery, UnixTime};
use dls_message::MacAddr;
use dls_store::columns::{UserColumns, profiles_to_sql};
use dls_store::rules::mobility::{self as rules, ThrottleConfig, ThrottleRow, ThrottleState, throttle_keys};
use dls_store::{
    JobRecord, MobilityContext, MobilityStore, NewJob, NewUser, StoreError, StoredUser, UserDataInfo, UserDataValue,
    UserDetails, UserSummary,
};
use postgres::Row;

use crate::PostgresStore;
use crate::jobs;
use crate::sql::{Tx, get, int, mac_from_sql, time_from_sql, time_to_sql};

const USER_COLUMNS: &str =
    "number, name, password_hash, profiles, device, since, logoff_requested_at, revision, created_at";

fn user_row(r: &Row) -> Result<UserColumns, StoreError> {
    UserColumns::read(
        get(r, 0)?,
        get(r, 1)?,
        get(r, 2)?,
        get(r, 3)?,
        get::<Option<&str>>(r, 4)?,
        get(r, 5)?,
        get(r, 6)?,
        get(r, 7)?,
        get(r, 8)?,
    )
}

fn user_by_number(tx: &mut Tx<'_>, number: &str) -> Result<Option<UserColumns>, StoreError> {
    tx.query_opt(&format!("SELECT {USER_COLUMNS} FROM mobility_users WHERE number = $1"), &[&number])?
        .as_ref()
        .map(user_row)
        .transpose()
}

fn user_at(tx: &mut Tx<'_>, mac: &str) -> Result<Option<UserColumns>, StoreError> {
    tx.query_opt(&format!("SELECT {USER_COLUMNS} FROM mobility_users WHERE device = $1"), &[&mac])?
        .as_ref()
        .map(user_row)
        .transpose()
}

fn size_from_sql(size: i64) -> Result<u64, StoreError> {
    u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("data size {size}")))
}

/// A user's saved data: names and sizes, and the values of those `with_values` names.
fn saved_data(tx: &mut Tx<'_>, number: &str, with_values: &dyn Fn(&str) -> bool) -> Result<Vec<SavedData>, StoreError> {
    let rows = tx.query("SELECT name, size FROM mobility_data WHERE number = $1 ORDER BY name", &[&number])?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = get(r, 0)?;
        let value = if with_values(&name) {
            tx.query_opt("SELECT value FROM mobility_data WHERE number = $1 AND name = $2", &[&number, &name])?
                .map(|r| get(&r, 0))
                .transpose()?
        } else {
            None
        };
        out.push(SavedData { size: size_from_sql(get(r, 1)?)?, name, value });
    }
    Ok(out)
}

/// Refuses profiles that do not exist (kept while the transaction lasts).
fn check_profiles_exist(tx: &mut Tx<'_>, profiles: &[String]) -> Result<(), StoreError> {
    rules::check_user_profiles(profiles)?;
    for p in profiles {
        if !tx.exists("SELECT 1 FROM profiles WHERE name = $1 FOR SHARE", &[p])? {
            return Err(StoreError::Invalid(format!("profile {p:?} does not exist")));
        }
    }
    Ok(())
}

fn throttle_state(tx: &mut Tx<'_>, number: &str, mac: MacAddr, lock: bool) -> Result<ThrottleState, StoreError> {
    let keys = throttle_keys(number, mac);
    let sql = if lock {
        "SELECT key, tat, last FROM mobility_throttle WHERE key = ANY($1) ORDER BY key FOR UPDATE"
    } else {
        "SELECT key, tat, last FROM mobility_throttle WHERE key = ANY($1)"
    };
    let mut state = ThrottleState::default();
    for r in tx.query(sql, &[&keys.to_vec()])? {
        let key: String = get(&r, 0)?;
        let row = ThrottleRow { tat: time_from_sql(get(&r, 1)?)?.0, last: time_from_sql(get(&r, 2)?)?.0 };
        let slot = match keys.iter().position(|k| *k == key) {
            Some(0) => &mut state.pair,
            Some(1) => &mut state.user,
            _ => &mut state.device,
        };
        *slot = Some(row);
    }
    Ok(state)
}

fn put_throttle_row(
    tx: &mut Tx<'_>,
    key: &str,
    row: Option<ThrottleRow>,
    c: &ThrottleConfig,
) -> Result<(), StoreError> {
    match row {
        None => {
            tx.execute("DELETE FROM mobility_throttle WHERE key = $1", &[&key])?;
        }
        Some(r) => {
            tx.execute(
                "INSERT INTO mobility_throttle (key, tat, last, expires) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET tat = excluded.tat, last = excluded.last, expires = excluded.expires",
                &[
                    &key,
                    &time_to_sql(UnixTime(r.tat))?,
                    &time_to_sql(UnixTime(r.last))?,
                    &time_to_sql(UnixTime(c.expires(r)))?,
                ],
            )?;
        }
    }
    Ok(())
}

/// A password check counted: the check's rows made if missing (`expires` 0: nobody else
/// prunes them), locked in key order, counted, written back; then some rows that restrict
/// nothing any more go, skipping those another transaction holds.
fn count_attempt(tx: &mut Tx<'_>, number: &str, mac: MacAddr, success: bool, at: UnixTime) -> Result<(), StoreError> {
    let config = ThrottleConfig::default();
    let keys = throttle_keys(number, mac);
    let mut sorted = keys.to_vec();
    sorted.sort();
    for key in &sorted {
        tx.execute(
            "INSERT INTO mobility_throttle (key, tat, last, expires) VALUES ($1, 0, 0, 0) ON CONFLICT (key) DO NOTHING",
            &[key],
        )?;
    }
    let mut before = throttle_state(tx, number, mac, true)?;
    // A row just made counts as none.
    for row in [&mut before.pair, &mut before.user, &mut before.device] {
        if row.is_some_and(|r| r.tat == 0 && r.last == 0) {
            *row = None;
        }
    }
    let after = config.after(&before, success, at.0);
    let [pair, user, device] = keys;
    put_throttle_row(tx, &pair, after.pair, &config)?;
    put_throttle_row(tx, &user, after.user, &config)?;
    put_throttle_row(tx, &device, after.device, &config)?;
    tx.execute(
        "DELETE FROM mobility_throttle WHERE key IN (
             SELECT key FROM mobility_throttle WHERE expires > 0 AND expires <= $1 LIMIT 100 FOR UPDATE SKIP LOCKED)",
        &[&time_to_sql(at)?],
    )?;
    Ok(())
}

/// A change of the users' state, in the message's transaction (`mac`: its device).
pub(crate) fn apply(tx: &mut Tx<'_>, mac: &str, change: &MobilityChange) -> Result<(), StoreError> {
    match change {
        MobilityChange::Expect { number, revision } => {
            let n = tx.execute(
                "UPDATE mobility_users SET revision = revision + 1 WHERE number = $1 AND revision = $2",
                &[number, revision],
            )?;
            if n == 0 {
                return Err(rules::contended(number));
            }
        }
        MobilityChange::LogOn { number, at } => {
            let n = tx
                .execute(
                    "UPDATE mobility_users SET device = $2, since = $3, logoff_requested_at = NULL WHERE number = $1",
                    &[number, &mac, &time_to_sql(*at)?],
                )
                .map_err(|e| match e {
                    // Another user is recorded at the device: a race the engine did not see.
                    StoreError::Conflict { .. } => rules::contended(number),
                    e => e,
                })?;
            if n == 0 {
                return Err(rules::contended(number));
            }
        }
        MobilityChange::LogOff { number } => {
            tx.execute(
                "UPDATE mobility_users SET device = NULL, since = NULL, logoff_requested_at = NULL WHERE number = $1",
                &[number],
            )?;
        }
        MobilityChange::SaveData { number, items, at } => {
            let at = time_to_sql(*at)?;
            for d in items {
                if d.value.is_empty() {
                    tx.execute("DELETE FROM mobility_data WHERE number = $1 AND name = $2", &[number, &d.name])?;
                    continue;
                }
                let size = i64::try_from(d.size).map_err(|_| StoreError::Invalid(format!("data size {}", d.size)))?;
                tx.execute(
                    "INSERT INTO mobility_data (number, name, value, size, saved_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (number, name)
                     DO UPDATE SET value = excluded.value, size = excluded.size, saved_at = excluded.saved_at",
                    &[number, &d.name, &d.value, &size, &at],
                )?;
            }
        }
        MobilityChange::RequestLogoff { number, device, at } => {
            tx.execute(
                "UPDATE mobility_users SET logoff_requested_at = $2 WHERE number = $1",
                &[number, &time_to_sql(*at)?],
            )?;
            queue_logoff_job(tx, number, *device, *at)?;
        }
        MobilityChange::Attempt { number, success, at } => {
            count_attempt(tx, number, mac_from_sql(mac)?, *success, *at)?;
        }
        _ => return Err(StoreError::Invalid("unsupported mobility change".into())),
    }
    Ok(())
}

/// The open `mobility-logoff` job of `number` at `device`, or a new one.
fn queue_logoff_job(tx: &mut Tx<'_>, number: &str, device: MacAddr, at: UnixTime) -> Result<JobRecord, StoreError> {
    let kind = JobKind::MobilityLogoff { number: number.to_owned() };
    if let Some(open) = jobs::open_jobs(tx, &device.to_string())?.into_iter().find(|j| j.kind == kind) {
        return jobs::job(tx, open.id)?.ok_or_else(|| StoreError::Corrupt("an open job vanished".into()));
    }
    let added = jobs::add_jobs(tx, &[NewJob { mac: device, kind }], at)?;
    added.into_iter().next().ok_or_else(|| StoreError::Corrupt("a job just added".into()))
}

impl PostgresStore {
    fn stored(
        &self,
        tx: &mut Tx<'_>,
        user: UserColumns,
        values: &dyn Fn(&str) -> bool,
    ) -> Result<StoredUser, StoreError> {
        let version: Option<i64> = get(&tx.query_one("SELECT (SELECT version FROM profiles_version)", &[])?, 0)?;
        let version = version.ok_or_else(|| StoreError::Corrupt("profiles_version has no row".into()))?;
        let profiles = self.profiles_at(tx, version)?;
        let data = saved_data(tx, &user.number, values)?;
        Ok(user.stored(&profiles.profiles, data))
    }
}

impl MobilityStore for PostgresStore {
    fn add_user(&self, user: &NewUser, at: UnixTime) -> Result<(), StoreError> {
        rules::check_number(&user.number)?;
        if let Some(name) = &user.name {
            rules::check_display_name(name)?;
        }
        rules::check_password_hash(&user.password_hash)?;
        let profiles = profiles_to_sql(&user.profiles)?;
        let at = time_to_sql(at)?;
        self.write(|tx| {
            check_profiles_exist(tx, &user.profiles)?;
            let n = tx.execute(
                "INSERT INTO mobility_users (number, name, password_hash, profiles, revision, created_at)
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (number) DO NOTHING",
                &[&user.number, &user.name, &user.password_hash, &profiles, &at],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict { what: format!("user {}", user.number) });
            }
            Ok(())
        })
    }

    fn users(&self) -> Result<Vec<UserSummary>, StoreError> {
        self.read(|tx| {
            tx.query(
                &format!(
                    "SELECT {USER_COLUMNS}, (SELECT count(*) FROM mobility_data d WHERE d.number = u.number),
                            (SELECT coalesce(sum(size), 0)::BIGINT FROM mobility_data d WHERE d.number = u.number)
                     FROM mobility_users u ORDER BY number LIMIT $1"
                ),
                &[&int(rules::MAX_USERS_LISTED)],
            )?
            .iter()
            .map(|r| {
                let (items, bytes): (i64, i64) = (get(r, 9)?, get(r, 10)?);
                Ok(user_row(r)?.summary(u64::try_from(items).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
            })
            .collect()
        })
    }

    fn user(&self, number: &str) -> Result<Option<UserDetails>, StoreError> {
        self.read(|tx| {
            let Some(u) = user_by_number(tx, number)? else { return Ok(None) };
            let data = tx
                .query("SELECT name, size, saved_at FROM mobility_data WHERE number = $1 ORDER BY name", &[&number])?
                .iter()
                .map(|r| {
                    Ok(UserDataInfo {
                        name: get(r, 0)?,
                        size: size_from_sql(get(r, 1)?)?,
                        saved_at: time_from_sql(get(r, 2)?)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let bytes = data.iter().map(|d| d.size).sum();
            Ok(Some(UserDetails { summary: u.summary(data.len() as u64, bytes), data }))
        })
    }

    fn delete_user(&self, number: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM mobility_users WHERE number = $1", &[&number])? > 0))
    }

    fn set_user_password(&self, number: &str, password_hash: &str) -> Result<(), StoreError> {
        rules::check_password_hash(password_hash)?;
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE mobility_users SET password_hash = $2, revision = revision + 1 WHERE number = $1",
                &[&number, &password_hash],
            )?;
            if n == 0 { Err(rules::user_not_found(number)) } else { Ok(()) }
        })
    }

    fn set_user_profiles(&self, number: &str, profiles: &[String]) -> Result<(), StoreError> {
        let text = profiles_to_sql(profiles)?;
        self.write(|tx| {
            check_profiles_exist(tx, profiles)?;
            let n = tx.execute(
                "UPDATE mobility_users SET profiles = $2, revision = revision + 1 WHERE number = $1",
                &[&number, &text],
            )?;
            if n == 0 { Err(rules::user_not_found(number)) } else { Ok(()) }
        })
    }

    fn user_data(&self, number: &str, name: &str) -> Result<Option<UserDataValue>, StoreError> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT value, size, saved_at FROM mobility_data WHERE number = $1 AND name = $2",
                &[&number, &name],
            )?
            .map(|r| {
                Ok(UserDataValue {
                    name: name.to_owned(),
                    value: get(&r, 0)?,
                    size: size_from_sql(get(&r, 1)?)?,
                    saved_at: time_from_sql(get(&r, 2)?)?,
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
                Some(Whom::Named) => query.named.clone(),
                Some(Whom::Here) => here.as_ref().map(|h| h.user.number.clone()),
                None => None,
            };
            let throttle = match checked {
                Some(number) => throttle_state(tx, &number, mac, false)?,
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
                "UPDATE mobility_users SET logoff_requested_at = coalesce(logoff_requested_at, $2) WHERE number = $1",
                &[&number, &time_to_sql(at)?],
            )?;
            queue_logoff_job(tx, number, device, at)
        })
    }
}
