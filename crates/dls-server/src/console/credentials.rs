//! The credentials page: the Digest fallback credentials phones use to fetch their
//! provisioning files when they have no secret of their own (global, or per profile),
//! with where they fetch them. Everyone reads the scopes and user names; an admin sets
//! (a password, sealed before the store sees it, never shown back) and removes them
//! (asking first), through the admin API's function (`crate::admin::credentials::set_fallback`),
//! audited alike. A device's own secret is on its device page.

use askama::Template;
use dls_accounts::Need;
use dls_store::CredentialScope;
use hyper::StatusCode;

use super::form::Form;
use super::layout::Nav;
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::Caller;
use crate::admin::credentials as api;
use crate::http::Resp;

struct Row {
    /// `global`, or the profile's name.
    scope: String,
    profile: bool,
    username: String,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    nav: Nav,
    rows: Vec<Row>,
    profiles: Vec<String>,
    base_url: String,
    can_edit: bool,
    notice: Option<String>,
    error: Option<String>,
    typed_username: String,
}

async fn page(
    state: &AdminState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&ApiError>,
    typed_username: String,
) -> Result<Resp, PageError> {
    let (list, profiles) = blocking(state, "list_fallback_credentials", |s| {
        Ok((s.list_fallback_credentials()?, s.profiles()?.into_iter().map(|p| p.name).collect::<Vec<_>>()))
    })
    .await?;
    let rows = list
        .into_iter()
        .map(|(scope, username)| match scope {
            CredentialScope::Global => Row { scope: "global".into(), profile: false, username },
            CredentialScope::Profile(p) => Row { scope: p, profile: true, username },
        })
        .collect();
    let page = CredentialsPage {
        nav: Nav::new(caller, "/credentials"),
        rows,
        profiles,
        base_url: state.base_url.clone(),
        can_edit: caller.role.may(Need::Administer),
        notice,
        error: error.map(|e| e.message().to_owned()),
        typed_username,
    };
    Ok(render(error.map_or(StatusCode::OK, ApiError::status), &page))
}

/// `GET /credentials`
pub(super) async fn show(state: &AdminState, caller: &Caller) -> Result<Resp, PageError> {
    page(state, caller, None, None, String::new()).await
}

/// The scope a form names: `scope` = `global`, or `profile` with `profile`.
fn scope_of(form: &Form) -> Result<CredentialScope, ApiError> {
    match (form.text("scope").as_str(), form.text("profile")) {
        ("global", _) => Ok(CredentialScope::Global),
        ("profile", p) if !p.is_empty() => Ok(CredentialScope::Profile(p)),
        _ => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Scope: global, or a profile chosen.")),
    }
}

/// `POST /credentials`: `scope`, `profile`, `username`, `password` (required).
pub(super) async fn set(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let username = form.text("username");
    let result = match (scope_of(&form), form.secret("password")) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Password: type one.")),
        (Ok(scope), Some(password)) => api::set_fallback(state, caller, &scope, &username, Some(&password)).await,
    };
    match result {
        Ok(()) => page(state, caller, Some(format!("The credential of {username} is set.")), None, String::new()).await,
        Err(e) => page(state, caller, None, Some(&e), username).await,
    }
}

/// `POST /credentials/remove`: `scope`, `profile`, `username`.
pub(super) async fn remove(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let username = form.text("username");
    let result = match scope_of(&form) {
        Err(e) => Err(e),
        Ok(scope) => api::set_fallback(state, caller, &scope, &username, None).await,
    };
    match result {
        Ok(()) => {
            page(state, caller, Some(format!("The credential of {username} is removed.")), None, String::new()).await
        }
        Err(e) => page(state, caller, None, Some(&e), String::new()).await,
    }
}
