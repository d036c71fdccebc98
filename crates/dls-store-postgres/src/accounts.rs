//! Accounts, their API tokens and console sessions ([`AccountStore`]): `accounts`,
//! `api_tokens` and `console_sessions`, the latter two deleted with their account
//! (`ON DELETE CASCADE`), shared by the nodes: a login on one node is valid on every other.
//! Tokens and sessions are keyed by the caller's SHA-256 of them.

use dls_accounts::Role;
use dls_engine::UnixTime;
use dls_store::columns::role_from_sql;
use dls_store::rules::accounts::{
    MAX_SESSIONS_PER_ACCOUNT, MAX_TOKENS_PER_ACCOUNT, TOKEN_USE_RESOLUTION_SECS, check_account_name, check_key,
    check_password_hash, check_token_name,
};
use dls_store::{Account, AccountStore, ConsoleSession, StoreError, TokenRecord};
use postgres::Row;

use crate::PostgresStore;
use crate::sql::{Tx, get, int, opt_time_from_sql, time_from_sql, time_to_sql};

const ACCOUNT_COLUMNS: &str = "a.name, a.role, a.created_at, a.updated_at, a.last_login_at";

/// An account from the first five columns of a row.
fn account(r: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        name: get(r, 0)?,
        role: role_from_sql(get(r, 1)?)?,
        created_at: time_from_sql(get(r, 2)?)?,
        updated_at: time_from_sql(get(r, 3)?)?,
        last_login_at: opt_time_from_sql(get(r, 4)?)?,
    })
}

fn load_account(tx: &mut Tx<'_>, name: &str) -> Result<Option<Account>, StoreError> {
    let row = tx.query_opt(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.name = $1"), &[&name])?;
    row.as_ref().map(account).transpose()
}

fn not_found(name: &str) -> StoreError {
    StoreError::not_found(format!("account {name:?}"))
}

/// Locks the account's row for the transaction (so that its tokens and sessions are counted
/// and added one transaction at a time); `false` if there is no such account.
fn lock_account(tx: &mut Tx<'_>, name: &str) -> Result<bool, StoreError> {
    tx.exists("SELECT 1 FROM accounts WHERE name = $1 FOR UPDATE", &[&name])
}

impl AccountStore for PostgresStore {
    fn add_account(&self, name: &str, role: Role, password_hash: &str, at: UnixTime) -> Result<Account, StoreError> {
        check_account_name(name)?;
        check_password_hash(password_hash)?;
        let t = time_to_sql(at)?;
        let inserted = self.write(|tx| {
            tx.execute(
                "INSERT INTO accounts (name, role, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &role.as_str(), &password_hash, &t],
            )
        })?;
        if inserted == 0 {
            return Err(StoreError::Conflict { what: format!("account {name:?}") });
        }
        Ok(Account { name: name.to_owned(), role, created_at: at, updated_at: at, last_login_at: None })
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows =
            self.read(|tx| tx.query(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.name"), &[]))?;
        rows.iter().map(account).collect()
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|tx| load_account(tx, name))
    }

    fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = self.read(|tx| tx.query_opt("SELECT password_hash FROM accounts WHERE name = $1", &[&name]))?;
        row.map(|r| get(&r, 0)).transpose()
    }

    fn set_role(&self, name: &str, role: Role, at: UnixTime) -> Result<Account, StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE accounts SET role = $2, updated_at = $3 WHERE name = $1",
                &[&name, &role.as_str(), &t],
            )?;
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
            let changed = tx.execute(
                "UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE name = $1",
                &[&name, &password_hash, &t],
            )?;
            if changed == 0 {
                return Err(not_found(name));
            }
            tx.execute("DELETE FROM console_sessions WHERE account = $1", &[&name])?;
            Ok(())
        })
    }

    fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM accounts WHERE name = $1", &[&name])? > 0))
    }

    fn record_login(&self, name: &str, at: UnixTime) -> Result<(), StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            tx.execute("UPDATE accounts SET last_login_at = $2 WHERE name = $1", &[&name, &t])?;
            Ok(())
        })
    }

    fn add_token(&self, account: &str, name: &str, key: &str, at: UnixTime) -> Result<TokenRecord, StoreError> {
        check_token_name(name)?;
        check_key(key)?;
        let t = time_to_sql(at)?;
        self.write(|tx| {
            if !lock_account(tx, account)? {
                return Err(not_found(account));
            }
            if tx.exists("SELECT 1 FROM api_tokens WHERE account = $1 AND name = $2", &[&account, &name])? {
                return Err(StoreError::Conflict { what: format!("token {name:?} of account {account:?}") });
            }
            let count: i64 = get(&tx.query_one("SELECT count(*) FROM api_tokens WHERE account = $1", &[&account])?, 0)?;
            if count >= int(MAX_TOKENS_PER_ACCOUNT) {
                return Err(StoreError::Invalid(format!(
                    "account {account:?} has {MAX_TOKENS_PER_ACCOUNT} tokens, the most it may have; revoke one first"
                )));
            }
            tx.execute(
                "INSERT INTO api_tokens (key, account, name, created_at) VALUES ($1, $2, $3, $4)",
                &[&key, &account, &name, &t],
            )?;
            Ok(())
        })?;
        Ok(TokenRecord { account: account.to_owned(), name: name.to_owned(), created_at: at, last_used_at: None })
    }

    fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = self.read(|tx| match account {
            Some(a) => tx.query(
                "SELECT account, name, created_at, last_used_at FROM api_tokens WHERE account = $1 ORDER BY name",
                &[&a],
            ),
            None => {
                tx.query("SELECT account, name, created_at, last_used_at FROM api_tokens ORDER BY account, name", &[])
            }
        })?;
        rows.iter()
            .map(|r| {
                Ok(TokenRecord {
                    account: get(r, 0)?,
                    name: get(r, 1)?,
                    created_at: time_from_sql(get(r, 2)?)?,
                    last_used_at: opt_time_from_sql(get(r, 3)?)?,
                })
            })
            .collect()
    }

    fn use_token(&self, key: &str, at: UnixTime) -> Result<Option<(Account, String)>, StoreError> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        let t = time_to_sql(at)?;
        let row = self.read(|tx| {
            tx.query_opt(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS}, t.name, t.last_used_at
                     FROM api_tokens t JOIN accounts a ON a.name = t.account WHERE t.key = $1"
                ),
                &[&key],
            )
        })?;
        let Some(row) = row else { return Ok(None) };
        let (found, token, last_used): (Account, String, Option<i64>) = (account(&row)?, get(&row, 5)?, get(&row, 6)?);
        let resolution = i64::try_from(TOKEN_USE_RESOLUTION_SECS).unwrap_or(i64::MAX);
        if last_used.is_none_or(|last| t.saturating_sub(last) >= resolution) {
            self.write(|tx| {
                tx.execute(
                    "UPDATE api_tokens SET last_used_at = GREATEST(coalesce(last_used_at, $2), $2) WHERE key = $1",
                    &[&key, &t],
                )?;
                Ok(())
            })?;
        }
        Ok(Some((found, token)))
    }

    fn revoke_token(&self, account: &str, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            Ok(tx.execute("DELETE FROM api_tokens WHERE account = $1 AND name = $2", &[&account, &name])? > 0)
        })
    }

    fn add_console_session(&self, key: &str, account: &str, at: UnixTime) -> Result<(), StoreError> {
        check_key(key)?;
        let (t, keep) = (time_to_sql(at)?, int(MAX_SESSIONS_PER_ACCOUNT));
        self.write(|tx| {
            if !lock_account(tx, account)? {
                return Err(not_found(account));
            }
            tx.execute(
                "INSERT INTO console_sessions (key, account, created_at, last_seen_at) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (key) DO UPDATE SET account = excluded.account, created_at = excluded.created_at,
                                                 last_seen_at = excluded.last_seen_at",
                &[&key, &account, &t],
            )?;
            tx.execute(
                "DELETE FROM console_sessions WHERE key IN
                 (SELECT key FROM console_sessions WHERE account = $1
                  ORDER BY last_seen_at DESC, created_at DESC, key OFFSET $2)",
                &[&account, &keep],
            )?;
            Ok(())
        })
    }

    fn console_session(&self, key: &str) -> Result<Option<ConsoleSession>, StoreError> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        let row = self.read(|tx| {
            tx.query_opt(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS}, s.created_at, s.last_seen_at
                     FROM console_sessions s JOIN accounts a ON a.name = s.account WHERE s.key = $1"
                ),
                &[&key],
            )
        })?;
        row.map(|r| {
            Ok(ConsoleSession {
                account: account(&r)?,
                created_at: time_from_sql(get(&r, 5)?)?,
                last_seen_at: time_from_sql(get(&r, 6)?)?,
            })
        })
        .transpose()
    }

    fn touch_console_session(&self, key: &str, at: UnixTime) -> Result<(), StoreError> {
        let t = time_to_sql(at)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE console_sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE key = $1",
                &[&key, &t],
            )?;
            Ok(())
        })
    }

    fn delete_console_session(&self, key: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM console_sessions WHERE key = $1", &[&key])? > 0))
    }

    fn prune_console_sessions(&self, idle_before: UnixTime, created_before: UnixTime) -> Result<u64, StoreError> {
        let (idle, created) =
            (i64::try_from(idle_before.0).unwrap_or(i64::MAX), i64::try_from(created_before.0).unwrap_or(i64::MAX));
        self.write(|tx| {
            let idle = tx.execute("DELETE FROM console_sessions WHERE last_seen_at < $1", &[&idle])?;
            let old = tx.execute("DELETE FROM console_sessions WHERE created_at < $1", &[&created])?;
            Ok(idle.saturating_add(old))
        })
    }
}
