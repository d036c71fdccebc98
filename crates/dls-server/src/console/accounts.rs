//! The accounts page (admin): accounts with their roles and API tokens; add one (with a
//! password, or a one-time password shown once), change a role, reset a password (its
//! sessions end; a one-time password shown once), delete one; create a token (shown
//! once) and revoke one. Each change goes through the same functions as the admin API's
//! (`crate::admin::accounts`), audited with the console user as the actor.

use askama::Template;
use dls_accounts::Role;
use hyper::StatusCode;
use zeroize::Zeroizing;

use super::form::Form;
use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::accounts as api;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::Caller;
use crate::http::Resp;

/// A secret shown once (a one-time password, a new token).
pub(super) struct Secret {
    label: String,
    value: Zeroizing<String>,
}

/// What the last action did, shown above the list.
#[derive(Default)]
pub(super) struct Outcome {
    notice: Option<String>,
    secret: Option<Secret>,
    error: Option<String>,
    status: Option<StatusCode>,
    form_name: String,
}

impl Outcome {
    fn done(notice: String) -> Self {
        Self { notice: Some(notice), ..Self::default() }
    }

    fn failed(e: &ApiError) -> Self {
        Self { error: Some(e.message().to_owned()), status: Some(e.status()), ..Self::default() }
    }
}

struct TokenRow {
    name: String,
    last_used: Option<(String, String)>,
}

struct AccountRow {
    name: String,
    role: &'static str,
    last_login: Option<(String, String)>,
    tokens: Vec<TokenRow>,
}

impl AccountRow {
    fn has_role(&self, role: &str) -> bool {
        self.role == role
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    nav: Nav,
    accounts: Vec<AccountRow>,
    roles: Vec<&'static str>,
    notice: Option<String>,
    secret: Option<Secret>,
    error: Option<String>,
    form_name: String,
}

fn when(t: Option<dls_engine::UnixTime>) -> Option<(String, String)> {
    t.map(|t| (layout::iso(t), layout::text(t)))
}

/// `GET /accounts`, and every action's answer: the list, with what the action did.
pub(super) async fn show(state: &AdminState, caller: &Caller, outcome: Outcome) -> Result<Resp, PageError> {
    let (accounts, tokens) = blocking(state, "accounts", |s| Ok((s.accounts()?, s.tokens(None)?))).await?;
    let accounts = accounts
        .into_iter()
        .map(|a| AccountRow {
            tokens: tokens
                .iter()
                .filter(|t| t.account == a.name)
                .map(|t| TokenRow { name: t.name.clone(), last_used: when(t.last_used_at) })
                .collect(),
            role: a.role.as_str(),
            last_login: when(a.last_login_at),
            name: a.name,
        })
        .collect();
    let page = AccountsPage {
        nav: Nav::new(caller, "/accounts"),
        accounts,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        notice: outcome.notice,
        secret: outcome.secret,
        error: outcome.error,
        form_name: outcome.form_name,
    };
    Ok(render(outcome.status.unwrap_or(StatusCode::OK), &page))
}

/// `POST /accounts`: `name`, `role`, `password` (empty: a one-time password).
pub(super) async fn add(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let name = form.text("name");
    let Ok(role) = form.text("role").parse::<Role>() else {
        let outcome = Outcome {
            error: Some("Choose a role.".into()),
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            form_name: name,
            ..Outcome::default()
        };
        return show(state, caller, outcome).await;
    };
    let outcome = match api::create(state, caller, &name, role, form.secret("password")).await {
        Ok((account, generated)) => Outcome {
            notice: Some(format!("Account {} added ({}).", account.name, account.role)),
            secret: generated
                .map(|value| Secret { label: format!("The one-time password of {}", account.name), value }),
            ..Outcome::default()
        },
        Err(e) => Outcome { form_name: name, ..Outcome::failed(&e) },
    };
    show(state, caller, outcome).await
}

/// `POST /accounts/{name}/role`: `role`.
pub(super) async fn set_role(state: &AdminState, caller: &Caller, name: &str, form: Form) -> Result<Resp, PageError> {
    let outcome = match form.text("role").parse::<Role>() {
        Err(_) => Outcome {
            error: Some("Choose a role.".into()),
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            ..Outcome::default()
        },
        Ok(role) => match api::set_role(state, caller, name, role).await {
            Ok(a) => Outcome::done(format!("{} is now {}.", a.name, a.role)),
            Err(e) => Outcome::failed(&e),
        },
    };
    show(state, caller, outcome).await
}

/// `POST /accounts/{name}/password`: a one-time password, shown once; the account's
/// sessions end.
pub(super) async fn reset_password(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, PageError> {
    let outcome = match api::set_password(state, caller, name, None).await {
        Ok(generated) => Outcome {
            notice: Some(format!("The password of {name} was reset; its sessions ended.")),
            secret: generated.map(|value| Secret { label: format!("The one-time password of {name}"), value }),
            ..Outcome::default()
        },
        Err(e) => Outcome::failed(&e),
    };
    show(state, caller, outcome).await
}

/// `POST /accounts/{name}/delete`
pub(super) async fn delete(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, PageError> {
    let outcome = match api::remove(state, caller, name).await {
        Ok(true) => Outcome::done(format!("Account {name} deleted, with its tokens and sessions.")),
        Ok(false) => Outcome::failed(&ApiError::new(StatusCode::NOT_FOUND, format!("There is no account {name:?}."))),
        Err(e) => Outcome::failed(&e),
    };
    show(state, caller, outcome).await
}

/// `POST /accounts/{name}/tokens`: `name`; the token shown once.
pub(super) async fn add_token(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    form: Form,
) -> Result<Resp, PageError> {
    let outcome = match api::create_token(state, caller, account, &form.text("name")).await {
        Ok((record, token)) => Outcome {
            notice: Some(format!("Token {} of {} created.", record.name, record.account)),
            secret: Some(Secret { label: format!("The token {} of {}", record.name, record.account), value: token }),
            ..Outcome::default()
        },
        Err(e) => Outcome::failed(&e),
    };
    show(state, caller, outcome).await
}

/// `POST /accounts/{name}/tokens/{token}/revoke`
pub(super) async fn revoke_token(
    state: &AdminState,
    caller: &Caller,
    account: &str,
    token: &str,
) -> Result<Resp, PageError> {
    let outcome = match api::revoke(state, caller, account, token).await {
        Ok(true) => Outcome::done(format!("Token {token} of {account} revoked.")),
        Ok(false) => {
            Outcome::failed(&ApiError::new(StatusCode::NOT_FOUND, format!("{account:?} has no token {token:?}.")))
        }
        Err(e) => Outcome::failed(&e),
    };
    show(state, caller, outcome).await
}
