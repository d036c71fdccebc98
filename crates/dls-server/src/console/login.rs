//! Logging in and out.
//!
//! `POST /login` checks the account and password through the login throttle
//! ([`crate::admin::auth::check_login`]: Argon2id in constant time whether the account
//! exists or not; a throttled attempt is answered with the wait, and not checked at all);
//! a success starts a console session — a new random id in the cookie, its SHA-256 in the
//! store, the sessions the policy ended pruned — and is audited, as is a failure (with
//! the address, never the password). `POST /logout` ends the session.

use std::net::IpAddr;

use askama::Template;
use dls_accounts::secret;
use dls_engine::UnixTime;
use dls_store::{AdminAction, NewAuditRecord};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};

use super::{PageError, form, render, see_other};
use crate::admin::AdminState;
use crate::admin::api::{audited, blocking};
use crate::admin::auth::{Caller, Login, check_login};
use crate::http::Resp;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    account: &'a str,
    message: Option<&'a str>,
    error: Option<String>,
}

/// `GET /login` (the form) and `POST /login` (logging in).
pub(super) async fn handle(state: &AdminState, req: Request<Incoming>, peer: IpAddr) -> Resp {
    match *req.method() {
        Method::GET | Method::HEAD => {
            let ended = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "ended=1"));
            let message = ended.then_some("Your session has ended: log in again.");
            render(StatusCode::OK, &LoginPage { account: "", message, error: None })
        }
        Method::POST => match login(state, req, peer).await {
            Ok(resp) => resp,
            Err(e) => render(e.status, &LoginPage { account: "", message: None, error: Some(e.message) }),
        },
        _ => super::error_page(StatusCode::METHOD_NOT_ALLOWED, "Log in with the form."),
    }
}

async fn login(state: &AdminState, req: Request<Incoming>, peer: IpAddr) -> Result<Resp, PageError> {
    let form = form::decode(state, req).await?;
    let account = form.text("account");
    let Some(password) = form.secret("password") else {
        return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &account, "Enter the account's name and its password."));
    };
    if account.is_empty() {
        return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, "", "Enter the account's name and its password."));
    }
    let now = state.clock.now();
    let found = match check_login(state, &account, password, peer, now).await? {
        Login::Throttled(wait) => {
            return Ok(page(
                StatusCode::TOO_MANY_REQUESTS,
                &account,
                &format!("Too many failed attempts: try again in {wait} seconds."),
            ));
        }
        Login::Success(found) => found,
        failed @ (Login::WrongPassword | Login::NoAccount) => {
            // The account is named when it exists; what else was typed is not kept (it may
            // be a password typed in the wrong field).
            let (actor, detail) = match failed {
                Login::WrongPassword => (Some(account.clone()), format!("wrong password from {peer}")),
                _ => (None, format!("no such account, from {peer}")),
            };
            let record = NewAuditRecord { at: now, actor, mac: None, kind: AdminAction::LoginFailed.into(), detail };
            if let Err(e) = blocking(state, "record_audit", move |s| s.record_audit(&record)).await {
                tracing::error!(error = ?e, "the audit record of a failed login could not be written");
            }
            tracing::warn!(%peer, "console login failed");
            return Ok(page(StatusCode::UNAUTHORIZED, &account, "Wrong account name or password."));
        }
    };
    let id = secret::new_session_id().map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (key, name) = (secret::session_key(&id), found.name.clone());
    let (idle_before, created_before) = state.auth.policy.expired_before(now.0);
    blocking(state, "add_console_session", move |s| {
        s.prune_console_sessions(UnixTime(idle_before), UnixTime(created_before))?;
        s.add_console_session(&key, &name, now)?;
        s.record_login(&name, now)
    })
    .await?;
    let caller =
        Caller { account: found.name.clone(), role: found.role, via: crate::admin::auth::Via::Console(id.clone()) };
    audited(state, &caller, None, AdminAction::LoginSucceeded, format!("from {peer}")).await;
    tracing::info!(%peer, account = %found.name, "console login");
    let mut r = see_other("/");
    r.headers_mut().insert(header::SET_COOKIE, state.auth.set_cookie(Some(&id)));
    Ok(r)
}

fn page(status: StatusCode, account: &str, error: &str) -> Resp {
    render(status, &LoginPage { account, message: None, error: Some(error.to_owned()) })
}

/// `POST /logout`: ends the session (CSRF-checked like every form), clears the cookie.
pub(super) async fn logout(state: &AdminState, caller: &Caller) -> Result<Resp, PageError> {
    if let crate::admin::auth::Via::Console(id) = &caller.via {
        let key = secret::session_key(id);
        blocking(state, "delete_console_session", move |s| s.delete_console_session(&key)).await?;
        audited(state, caller, None, AdminAction::LoggedOut, "").await;
    }
    let mut r = see_other("/login");
    r.headers_mut().insert(header::SET_COOKIE, state.auth.set_cookie(None));
    r.headers_mut().insert("clear-site-data", HeaderValue::from_static("\"cache\""));
    Ok(r)
}
