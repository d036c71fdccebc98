//! Accounts and their API tokens (admin only): list, add (with a password, or a one-time
//! password answered once), change the role, reset the password (ends the account's console
//! sessions), delete (its tokens and sessions go too); tokens listed (never the token),
//! added (the token answered once: the store keeps its SHA-256), revoked.

use dls_accounts::{Role, names, password, secret};
use dls_store::AdminAction;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, error, json};
use super::auth::{Caller, hash_password};
use crate::http::Resp;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    name: String,
    role: Role,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    #[serde(default)]
    password: Option<Zeroizing<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

fn bad_name(e: &names::BadName) -> ApiError {
    error(StatusCode::BAD_REQUEST, e.to_string())
}

fn not_found(name: &str) -> ApiError {
    error(StatusCode::NOT_FOUND, format!("account {name:?} not found"))
}

/// The password given, or a one-time password (returned, to be shown once).
fn password_or_generated(
    given: Option<Zeroizing<String>>,
) -> Result<(Zeroizing<String>, Option<Zeroizing<String>>), ApiError> {
    match given {
        Some(p) => Ok((p, None)),
        None => {
            let p = password::generate().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok((p.clone(), Some(p)))
        }
    }
}

/// Creates an account; the one-time password, if one was made. Shared with the console.
pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    role: Role,
    password: Option<Zeroizing<String>>,
) -> Result<(dls_store::Account, Option<Zeroizing<String>>), ApiError> {
    names::check_account(name).map_err(|e| bad_name(&e))?;
    let (password, generated) = password_or_generated(password)?;
    let hash = hash_password(state, password).await?;
    let (n, at) = (name.to_owned(), state.clock.now());
    let account = blocking(state, "add_account", move |s| s.add_account(&n, role, &hash, at)).await?;
    let how = if generated.is_some() { "a one-time password" } else { "a password" };
    audited(state, caller, None, AdminAction::AccountCreated, format!("account {name} ({role}), {how}")).await;
    Ok((account, generated))
}

/// Changes an account's role. Shared with the console.
pub(crate) async fn set_role(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    role: Role,
) -> Result<dls_store::Account, ApiError> {
    let (n, at) = (name.to_owned(), state.clock.now());
    let account = blocking(state, "set_role", move |s| s.set_role(&n, role, at)).await?;
    audited(state, caller, None, AdminAction::RoleChanged, format!("account {name} is now {role}")).await;
    Ok(account)
}

/// Resets an account's password (its sessions end); the one-time password, if one was made.
/// Shared with the console.
pub(crate) async fn set_password(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    password: Option<Zeroizing<String>>,
) -> Result<Option<Zeroizing<String>>, ApiError> {
    let n = name.to_owned();
    if blocking(state, "account", move |s| s.account(&n)).await?.is_none() {
        return Err(not_found(name));
    }
    let (password, generated) = password_or_generated(password)?;
    let hash = hash_password(state, password).await?;
    let (n, at) = (name.to_owned(), state.clock.now());
    blocking(state, "set_password", move |s| s.set_password(&n, &hash, at)).await?;
    let how = if generated.is_some() { "a one-time password" } else { "a new password" };
    audited(state, caller, None, AdminAction::PasswordReset, format!("account {name}: {how}; its sessions ended"))
        .await;
    Ok(generated)
}

/// Deletes an account (`false`: none). Shared with the console.
pub(crate) async fn remove(state: &AdminState, caller: &Caller, name: &str) -> Result<bool, ApiError> {
    let n = name.to_owned();
    let deleted = blocking(state, "delete_account", move |s| s.delete_account(&n)).await?;
    if deleted {
        audited(state, caller, None, AdminAction::AccountDeleted, format!("account {name}, its tokens and sessions"))
            .await;
    }
    Ok(deleted)
}

/// Adds an API token; the token (shown once). Shared with the console.
pub(crate) async fn create_token(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    token_name: &str,
) -> Result<(dls_store::TokenRecord, Zeroizing<String>), ApiError> {
    names::check_token(token_name).map_err(|e| bad_name(&e))?;
    let token = secret::new_token().map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let key = secret::token_hash(&token);
    let (a, t, at) = (account.to_owned(), token_name.to_owned(), state.clock.now());
    let record = blocking(state, "add_token", move |s| s.add_token(&a, &t, &key, at)).await?;
    audited(state, caller, None, AdminAction::TokenCreated, format!("token {} of account {account}", record.name))
        .await;
    Ok((record, token))
}

/// Revokes an API token (`false`: none). Shared with the console.
pub(crate) async fn revoke(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    token_name: &str,
) -> Result<bool, ApiError> {
    let (a, t) = (account.to_owned(), token_name.to_owned());
    let revoked = blocking(state, "revoke_token", move |s| s.revoke_token(&a, &t)).await?;
    if revoked {
        audited(state, caller, None, AdminAction::TokenRevoked, format!("token {token_name} of account {account}"))
            .await;
    }
    Ok(revoked)
}

/// `GET /api/v1/accounts`
pub(crate) async fn list(state: &AdminState) -> Result<Resp, ApiError> {
    Ok(json(StatusCode::OK, &blocking(state, "accounts", |s| s.accounts()).await?))
}

/// `POST /api/v1/accounts`: `{"name", "role", "password"?}`; answers the account, and
/// `"password"` when a one-time one was made.
pub(crate) async fn add(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let new: NewAccount = body_json(state, req).await?;
    let (account, generated) = create(state, caller, &new.name, new.role, new.password).await?;
    let mut body = serde_json::to_value(&account).unwrap_or_default();
    if let (Some(p), Some(obj)) = (generated, body.as_object_mut()) {
        obj.insert("password".into(), serde_json::Value::String(p.to_string()));
    }
    Ok(json(StatusCode::CREATED, &body))
}

/// `GET /api/v1/accounts/{name}`
pub(crate) async fn show(state: &AdminState, name: &str) -> Result<Resp, ApiError> {
    let n = name.to_owned();
    match blocking(state, "account", move |s| s.account(&n)).await? {
        Some(a) => Ok(json(StatusCode::OK, &a)),
        None => Err(not_found(name)),
    }
}

/// `PATCH /api/v1/accounts/{name}`: `{"role"}`
pub(crate) async fn update(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let change: RoleChange = body_json(state, req).await?;
    Ok(json(StatusCode::OK, &set_role(state, caller, name, change.role).await?))
}

/// `DELETE /api/v1/accounts/{name}`
pub(crate) async fn delete(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, ApiError> {
    if remove(state, caller, name).await? {
        Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": name })))
    } else {
        Err(not_found(name))
    }
}

/// `POST /api/v1/accounts/{name}/password`: `{"password"?}`; answers `"password"` when a
/// one-time one was made.
pub(crate) async fn reset_password(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let reset: PasswordReset = body_json(state, req).await?;
    let body = match set_password(state, caller, name, reset.password).await? {
        Some(p) => serde_json::json!({ "account": name, "password": p.as_str() }),
        None => serde_json::json!({ "account": name }),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `GET /api/v1/accounts/{name}/tokens`
pub(crate) async fn tokens(state: &AdminState, name: &str) -> Result<Resp, ApiError> {
    let n = name.to_owned();
    if blocking(state, "account", move |s| s.account(&n)).await?.is_none() {
        return Err(not_found(name));
    }
    let n = name.to_owned();
    Ok(json(StatusCode::OK, &blocking(state, "tokens", move |s| s.tokens(Some(&n))).await?))
}

/// `POST /api/v1/accounts/{name}/tokens`: `{"name"}`; answers the token record and
/// `"token"`, the only time it is shown.
pub(crate) async fn add_token(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let new: NewToken = body_json(state, req).await?;
    let (record, token) = create_token(state, caller, account, &new.name).await?;
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("token".into(), serde_json::Value::String(token.to_string()));
    }
    Ok(json(StatusCode::CREATED, &body))
}

/// `DELETE /api/v1/accounts/{name}/tokens/{token}`
pub(crate) async fn revoke_token(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    token: &str,
) -> Result<Resp, ApiError> {
    if revoke(state, caller, account, token).await? {
        Ok(json(StatusCode::OK, &serde_json::json!({ "revoked": token, "account": account })))
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("account {account:?} has no token {token:?}")))
    }
}
