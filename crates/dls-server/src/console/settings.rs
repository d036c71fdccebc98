//! The settings page: the running configuration, read-only, without secrets (the store's
//! password is left out).

use askama::Template;
use hyper::StatusCode;

use super::layout::Nav;
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::auth::Caller;
use crate::http::Resp;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    nav: Nav,
    settings: &'a [(String, String)],
}

/// `GET /settings`
pub(super) fn show(state: &AdminState, caller: &Caller) -> Result<Resp, PageError> {
    Ok(render(StatusCode::OK, &SettingsPage { nav: Nav::new(caller, "/settings"), settings: &state.settings }))
}
