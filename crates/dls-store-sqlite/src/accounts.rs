//! Accounts, their API tokens and console sessions ([`AccountStore`]): `accounts`,
//! `api_tokens` and `console_sessions`, the latter two deleted with their account
//! (`ON DELETE CASCADE`). Tokens and sessions are keyed by the caller's SHA-256 of them.

use dls_accounts::Role;
use dls_engine::UnixTime;
use dls_store::columns::role_from_sql;
use dls_store::rules::accounts::{
    MAX_SESSIONS_PER_ACCOUNT, MAX_TOKENS_PER_ACCOUNT, TOKEN_USE_RESOLUTION_SECS, check_account_name, check_key,
    check_password_hash, check_token_name,
};
use dls_store::{Account, AccountStore, ConsoleSession, StoreError, TokenRecord};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::SqliteStore;
use crate::sql::{Cached, Db, opt_time_from_sql, query_all, time_from_sql, time_to_sql};

const ACCOUNT_COLUMNS: &str = "name, role, created_at, updated_at, last_login_at";

type AccountRow = (String, String, i64, i64, Option<i64>);

fn account_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn account((name, role, created_at, updated_at, last_login_at): AccountRow) -> Result<Account, StoreError> {
    Ok(Account {
        name,
        role: role_from_sql(&role)?,
        created_at: time_from_sql(created_at)?,
        updated_at: time_from_sql(updated_at)?,
        last_login_at: opt_time_from_sql(last_login_at)?,
    })
}

fn load_account(conn: &Connection, name: &str) -> Result<Option<Account>, StoreError> {
    let row = conn
        .cached(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?1"))
        .db()?
        .query_row([name], account_row)
        .optional()
        .db()?;
    row.map(account).transpose()
}

fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    conn.cached("SELECT 1 FROM accounts WHERE name = ?1").db()?.exists([name]).db()
}

fn not_found(name: &str) -> StoreError {
    StoreError::not_found(format!("account {name:?}"))
}

impl AccountStore for SqliteStore {
    fn add_account(&self, name: &str, role: Role, password_hash: &str, at: UnixTime) -> Result<Account, StoreError> {
        check_account_name(name)?;
        check_password_hash(password_hash)?;
        let t = time_to_sql(at)?;
        self.write(|tx| {
            if exists(tx, name)? {
                return Err(StoreError::Conflict { what: format!("account {name:?}") });
            }
            tx.cached(
                "INSERT INTO accounts (name, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            )
            .db()?
            .execute(params![name, role.as_str(), password_hash, t])
            .db()?;
            Ok(())
        })?;
        Ok(Account { name: name.to_owned(), role, created_at: at, updated_at: at, last_login_at: None })
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = self.read(|conn| {
            query_all(conn, &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name"), [], account_row)
        })?;
        rows.into_iter().map(account).collect()
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|conn| load_account(conn, name))
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.cached("SELECT password_hash FROM accounts WHERE name = ?1")
                .db()?
                .query_row([name], |r| r.get(0))
                .optional()
                .db()
        })
    }

    fn set_role(&self, name: &str, role: Role, at: UnixTime) -> Result<Account, StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            let changed = tx
                .cached("UPDATE accounts SET role = ?2, updated_at = ?3 WHERE name = ?1")
                .db()?
                .execute(params![name, role.as_str(), t])
                .db()?;
            if changed == 0 {
                return Err(not_found(name));
            }
            load_account(tx, name)?.ok_or_else(|| not_found(name))
        })
    }

    fn set_password(&self, name: &str, password_hash: &str, at: UnixTime) -> Result<(), StoreError> {
        check_password_hash(password_hash)?;
        let t = time_to_sql(at)?;
        self.write(|tx| {
            let changed = tx
                .cached("UPDATE accounts SET password_hash = ?2, updated_at = ?3 WHERE name = ?1")
                .db()?
                .execute(params![name, password_hash, t])
                .db()?;
            if changed == 0 {
                return Err(not_found(name));
            }
            tx.cached("DELETE FROM console_sessions WHERE account = ?1").db()?.execute([name]).db()?;
            Ok(())
        })
    }

    fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.cached("DELETE FROM accounts WHERE name = ?1").db()?.execute([name]).db()? > 0))
    }

    fn record_login(&self, name: &str, at: UnixTime) -> Result<(), StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            tx.cached("UPDATE accounts SET last_login_at = ?2 WHERE name = ?1").db()?.execute(params![name, t]).db()?;
            Ok(())
        })
    }

    fn add_token(&self, account: &str, name: &str, key: &str, at: UnixTime) -> Result<TokenRecord, StoreError> {
        check_token_name(name)?;
        check_key(key)?;
        let t = time_to_sql(at)?;
        self.write(|tx| {
            if !exists(tx, account)? {
                return Err(not_found(account));
            }
            let taken = tx
                .cached("SELECT 1 FROM api_tokens WHERE account = ?1 AND name = ?2")
                .db()?
                .exists(params![account, name])
                .db()?;
            if taken {
                return Err(StoreError::Conflict { what: format!("token {name:?} of account {account:?}") });
            }
            if tx.cached("SELECT 1 FROM api_tokens WHERE key = ?1").db()?.exists([key]).db()? {
                return Err(StoreError::Conflict { what: "a token of that key".into() });
            }
            let count: i64 = tx
                .cached("SELECT count(*) FROM api_tokens WHERE account = ?1")
                .db()?
                .query_row([account], |r| r.get(0))
                .db()?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_TOKENS_PER_ACCOUNT {
                return Err(StoreError::Invalid(format!(
                    "account {account:?} has {MAX_TOKENS_PER_ACCOUNT} tokens, the most it may have; revoke one first"
                )));
            }
            tx.cached("INSERT INTO api_tokens (key, account, name, created_at) VALUES (?1, ?2, ?3, ?4)")
                .db()?
                .execute(params![key, account, name, t])
                .db()?;
            Ok(())
        })?;
        Ok(TokenRecord { account: account.to_owned(), name: name.to_owned(), created_at: at, last_used_at: None })
    }

    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        type TokenRow = (String, String, i64, Option<i64>);
        let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        let rows: Vec<TokenRow> = self.read(|conn| match account {
            Some(a) => query_all(
                conn,
                "SELECT account, name, created_at, last_used_at FROM api_tokens WHERE account = ?1 ORDER BY name",
                [a],
                row,
            ),
            None => query_all(
                conn,
                "SELECT account, name, created_at, last_used_at FROM api_tokens ORDER BY account, name",
                [],
                row,
            ),
        })?;
        rows.into_iter()
            .map(|(account, name, created_at, last_used_at)| {
                Ok(TokenRecord {
                    account,
                    name,
                    created_at: time_from_sql(created_at)?,
                    last_used_at: opt_time_from_sql(last_used_at)?,
                })
            })
            .collect()
    }

    fn use_token(&self, key: &str, at: UnixTime) -> Result<Option<(Account, String)>, StoreError> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        let t = time_to_sql(at)?;
        type Found = (AccountRow, String, Option<i64>);
        let found: Option<Found> = self.read(|conn| {
            conn.cached(
                "SELECT a.name, a.role, a.created_at, a.updated_at, a.last_login_at, t.name, t.last_used_at
                 FROM api_tokens t JOIN accounts a ON a.name = t.account WHERE t.key = ?1",
            )
            .db()?
            .query_row([key], |r| Ok((account_row(r)?, r.get(5)?, r.get(6)?)))
            .optional()
            .db()
        })?;
        let Some((row, token, last_used)) = found else { return Ok(None) };
        let resolution = i64::try_from(TOKEN_USE_RESOLUTION_SECS).unwrap_or(i64::MAX);
        if last_used.is_none_or(|last| t.saturating_sub(last) >= resolution) {
            self.write(|tx| {
                tx.cached("UPDATE api_tokens SET last_used_at = ?2 WHERE key = ?1")
                    .db()?
                    .execute(params![key, t])
                    .db()?;
                Ok(())
            })?;
        }
        Ok(Some((account(row)?, token)))
    }

    fn revoke_token(&self, account: &str, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx
                .cached("DELETE FROM api_tokens WHERE account = ?1 AND name = ?2")
                .db()?
                .execute(params![account, name])
                .db()?
                > 0)
        })
    }

    fn add_console_session(&self, key: &str, account: &str, at: UnixTime) -> Result<(), StoreError> {
        check_key(key)?;
        let t = time_to_sql(at)?;
        let keep = i64::try_from(MAX_SESSIONS_PER_ACCOUNT).unwrap_or(i64::MAX);
        self.write(|tx| {
            if !exists(tx, account)? {
                return Err(not_found(account));
            }
            tx.cached(
                "INSERT INTO console_sessions (key, account, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (key) DO UPDATE SET account = excluded.account, created_at = excluded.created_at,
                                                 last_seen_at = excluded.last_seen_at",
            )
            .db()?
            .execute(params![key, account, t])
            .db()?;
            tx.cached(
                "DELETE FROM console_sessions WHERE key IN
                 (SELECT key FROM console_sessions WHERE account = ?1
                  ORDER BY last_seen_at DESC, created_at DESC, key LIMIT -1 OFFSET ?2)",
            )
            .db()?
            .execute(params![account, keep])
            .db()?;
            Ok(())
        })
    }

    fn console_session(&self, key: &str) -> Result<Option<ConsoleSession>, StoreError> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        type Row6 = (AccountRow, i64, i64);
        let row: Option<Row6> = self.read(|conn| {
            conn.cached(
                "SELECT a.name, a.role, a.created_at, a.updated_at, a.last_login_at, s.created_at, s.last_seen_at
                 FROM console_sessions s JOIN accounts a ON a.name = s.account WHERE s.key = ?1",
            )
            .db()?
            .query_row([key], |r| Ok((account_row(r)?, r.get(5)?, r.get(6)?)))
            .optional()
            .db()
        })?;
        row.map(|(a, created_at, last_seen_at)| {
            Ok(ConsoleSession {
                account: account(a)?,
                created_at: time_from_sql(created_at)?,
                last_seen_at: time_from_sql(last_seen_at)?,
            })
        })
        .transpose()
    }

    fn touch_console_session(&self, key: &str, at: UnixTime) -> Result<(), StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            tx.cached("UPDATE console_sessions SET last_seen_at = max(last_seen_at, ?2) WHERE key = ?1")
                .db()?
                .execute(params![key, t])
                .db()?;
            Ok(())
        })
    }

    fn delete_console_session(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.cached("DELETE FROM console_sessions WHERE key = ?1").db()?.execute([key]).db()? > 0))
    }

    fn prune_console_sessions(&self, idle_before: UnixTime, created_before: UnixTime) -> Result<u64, StoreError> {
        let (idle, created) =
            (i64::try_from(idle_before.0).unwrap_or(i64::MAX), i64::try_from(created_before.0).unwrap_or(i64::MAX));
        self.write(|tx| {
            let idle = tx.cached("DELETE FROM console_sessions WHERE last_seen_at < ?1").db()?.execute([idle]).db()?;
            let old = tx.cached("DELETE FROM console_sessions WHERE created_at < ?1").db()?.execute([created]).db()?;
            Ok(u64::try_from(idle.saturating_add(old)).unwrap_or(u64::MAX))
        })
    }
}
