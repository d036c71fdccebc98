//! The users page: mobility users (hot desking) with their profiles, where they are logged
//! on and how much data they keep; one user's page with its saved data by name, size and
//! date (never the data itself) and its mobility jobs. Operators add users, set a
//! password (hashed off the executor, never shown back) or the profiles, queue a logon at
//! a device or a logoff, and delete a user (asking first), through the same functions as
//! the admin API's `/api/v1/users` (`crate::admin::users`): checked, stored and audited
//! alike. Viewers read.

use askama::Template;
use dls_accounts::Need;
use dls_engine::UnixTime;
use dls_store::{JobFilter, UserDetails};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::form::Form;
use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::Caller;
use crate::admin::users as api;
use crate::http::{Resp, full};

/// The newest jobs of a user its page shows.
const JOBS_SHOWN: usize = 50;

/// A time as a `<time>` shows it: RFC 3339, and the text before the script runs.
type When = (String, String);

fn when(t: UnixTime) -> When {
    (layout::iso(t), layout::text(t))
}

/// A size in bytes, in words (`512 bytes`, `1.5 KiB`).
fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The status a refused form is answered with: what the API calls a bad request (a bad
/// number or MAC, a profile that does not exist) is a form to correct, `422`.
fn form_status(e: &ApiError) -> StatusCode {
    if e.status() == StatusCode::BAD_REQUEST { StatusCode::UNPROCESSABLE_ENTITY } else { e.status() }
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

struct UserRow {
    number: String,
    name: String,
    profiles: String,
    logged_on: Option<(String, When)>,
    logoff_pending: bool,
    items: u64,
    size: String,
}

/// What the add form held when it was refused (never the password).
#[derive(Default)]
struct Typed {
    number: String,
    name: String,
    profiles: Vec<String>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    profiles: Vec<String>,
    can_edit: bool,
    notice: Option<String>,
    error: Option<String>,
    typed: Typed,
}

impl UsersPage {
    fn typed_profile(&self, p: &str) -> bool {
        self.typed.profiles.iter().any(|t| t == p)
    }
}

async fn profile_names(state: &AdminState) -> Result<Vec<String>, ApiError> {
    Ok(blocking(state, "profiles", |s| s.profiles()).await?.into_iter().map(|p| p.name).collect())
}

async fn list_with(
    state: &AdminState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&ApiError>,
    typed: Typed,
) -> Result<Resp, PageError> {
    let users = api::all(state).await?;
    let page = UsersPage {
        nav: Nav::new(caller, "/users"),
        users: users
            .into_iter()
            .map(|u| UserRow {
                name: u.name.unwrap_or_default(),
                profiles: u.profiles.join(", "),
                logged_on: u.logged_on.map(|l| (l.mac.to_string(), when(l.since))),
                logoff_pending: u.logoff_requested_at.is_some(),
                items: u.data_items,
                size: size_text(u.data_bytes),
                number: u.number,
            })
            .collect(),
        profiles: profile_names(state).await?,
        can_edit: caller.role.may(Need::Operate),
        notice,
        error: error.map(|e| e.message().to_owned()),
        typed,
    };
    Ok(render(error.map_or(StatusCode::OK, form_status), &page))
}

/// The value of `key` in a query, if any.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    crate::admin::api::query(query).ok()?.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `GET /users` (`?deleted=NUMBER`: saying so).
pub(super) async fn list(state: &AdminState, caller: &Caller, query: Option<&str>) -> Result<Resp, PageError> {
    let notice = query_value(query, "deleted")
        .and_then(|n| api::number(&n).ok())
        .map(|n| format!("User {n} deleted, with its saved data."));
    list_with(state, caller, notice, None, Typed::default()).await
}

/// A `303` to `location` (built of normalised numbers and digits only).
fn to(location: &str) -> Resp {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /users`: `number`, `name` (optional), `password`, `profile` (repeated, in order).
pub(super) async fn add(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let typed = Typed {
        number: form.text("number"),
        name: form.text("name"),
        profiles: form.chosen("profile").map(str::to_owned).collect(),
    };
    let result = match form.secret("password") {
        None => Err(unprocessable("Password: type one (4 to 128 characters).")),
        Some(password) => {
            let name = (!typed.name.is_empty()).then(|| typed.name.clone());
            api::create(state, caller, &typed.number, name, password, typed.profiles.clone()).await
        }
    };
    match result {
        Ok(user) => Ok(to(&format!("/users/{}?done=added", user.summary.number))),
        Err(e) => list_with(state, caller, None, Some(&e), typed).await,
    }
}

struct DataRow {
    name: String,
    size: String,
    saved: When,
}

struct JobRow {
    id: i64,
    mac: String,
    kind: &'static str,
    state: &'static str,
    created: When,
    answer: String,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    nav: Nav,
    number: String,
    name: String,
    created: When,
    /// Every profile, the user's first in their order: the choice of the profiles form.
    choices: Vec<String>,
    profiles: Vec<String>,
    logged_on: Option<(String, When)>,
    logoff_requested: Option<When>,
    data: Vec<DataRow>,
    data_size: String,
    jobs: Vec<JobRow>,
    can_edit: bool,
    notice: Option<String>,
    error: Option<String>,
    typed_mac: String,
}

impl UserPage {
    fn has_profile(&self, p: &str) -> bool {
        self.profiles.iter().any(|q| q == p)
    }
}

/// The user a path names (in any usual spelling), normalised; `404` when it is not a
/// number.
fn path_number(text: &str) -> Result<String, PageError> {
    api::number(text).map_err(|_| {
        PageError::new(StatusCode::NOT_FOUND, "There is no such user: a user's page is /users/ and its number.")
    })
}

/// The newest [`JOBS_SHOWN`] mobility jobs of user `number`.
async fn jobs_of(state: &AdminState, number: &str) -> Result<Vec<JobRow>, ApiError> {
    let f = JobFilter { user: Some(number.to_owned()), limit: Some(JOBS_SHOWN), ..JobFilter::default() };
    let jobs = blocking(state, "jobs", move |s| s.jobs(&f)).await?;
    Ok(jobs
        .into_iter()
        .map(|j| JobRow {
            id: j.id,
            mac: j.mac.to_string(),
            kind: j.job.name(),
            state: j.state.as_str(),
            created: when(j.created_at),
            answer: j.answer.unwrap_or_default(),
        })
        .collect())
}

/// What a user's page shows besides the user: a notice, an error, the MAC typed.
#[derive(Default)]
struct Shown {
    notice: Option<String>,
    error: Option<ApiError>,
    typed_mac: String,
}

async fn show_with(state: &AdminState, caller: &Caller, number: &str, shown: Shown) -> Result<Resp, PageError> {
    let user = match api::find(state, number).await {
        Ok(u) => u,
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                format!("There is no user {number}: add it on the users page."),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let UserDetails { summary, data } = user;
    let choices = Form::profile_choices(&summary.profiles, profile_names(state).await?);
    let page = UserPage {
        nav: Nav::new(caller, "/users"),
        name: summary.name.unwrap_or_default(),
        created: when(summary.created_at),
        choices,
        profiles: summary.profiles,
        logged_on: summary.logged_on.map(|l| (l.mac.to_string(), when(l.since))),
        logoff_requested: summary.logoff_requested_at.map(when),
        data: data
            .into_iter()
            .map(|d| DataRow { name: d.name, size: size_text(d.size), saved: when(d.saved_at) })
            .collect(),
        data_size: size_text(summary.data_bytes),
        jobs: jobs_of(state, &summary.number).await?,
        can_edit: caller.role.may(Need::Operate),
        notice: shown.notice,
        error: shown.error.as_ref().map(|e| e.message().to_owned()),
        typed_mac: shown.typed_mac,
        number: summary.number,
    };
    Ok(render(shown.error.as_ref().map_or(StatusCode::OK, form_status), &page))
}

/// `GET /users/{number}` (`?done=…&job=…`: what the last action did).
pub(super) async fn show(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    query: Option<&str>,
) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    let job = query_value(query, "job").and_then(|j| j.parse::<i64>().ok());
    let notice = match (query_value(query, "done").as_deref(), job) {
        (Some("added"), _) => Some("User added. Queue a logon below, or let the user log on at a phone.".to_owned()),
        (Some("password"), _) => Some("Password set. The user types it at the phone from now on.".to_owned()),
        (Some("profiles"), _) => Some("Profiles set. They apply at the user's next logon.".to_owned()),
        (Some("logon"), Some(id)) => Some(format!("Logon queued as job {id}; the phone was asked to call in.")),
        (Some("logoff"), Some(id)) => Some(format!("Logoff queued as job {id}; the phone was asked to call in.")),
        _ => None,
    };
    show_with(state, caller, &number, Shown { notice, ..Shown::default() }).await
}

/// After an action on user `number`: its page (`303`) saying what was done, or the page
/// again with the error (a `404` for a user that does not exist).
async fn answer(
    state: &AdminState,
    caller: &Caller,
    number: &str,
    result: Result<String, ApiError>,
    typed_mac: String,
) -> Result<Resp, PageError> {
    match result {
        Ok(done) => Ok(to(&format!("/users/{number}?done={done}"))),
        Err(e) => show_with(state, caller, number, Shown { error: Some(e), typed_mac, ..Shown::default() }).await,
    }
}

/// `POST /users/{number}/password`: `password`.
pub(super) async fn password(state: &AdminState, caller: &Caller, number: &str, form: Form) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    let result = match form.secret("password") {
        None => Err(unprocessable("Password: type one (4 to 128 characters).")),
        Some(p) => api::set_password(state, caller, &number, p).await.map(|()| "password".to_owned()),
    };
    answer(state, caller, &number, result, String::new()).await
}

/// `POST /users/{number}/profiles`: `profile` (repeated, in order; none: no profile), and
/// `up` when a "move up" button sent it ([`Form::ordered_profiles`]).
pub(super) async fn profiles(state: &AdminState, caller: &Caller, number: &str, form: Form) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    let chosen = form.ordered_profiles();
    let result = api::set_profiles(state, caller, &number, chosen).await.map(|()| "profiles".to_owned());
    answer(state, caller, &number, result, String::new()).await
}

/// `POST /users/{number}/logon`: `mac`.
pub(super) async fn logon(state: &AdminState, caller: &Caller, number: &str, form: Form) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    let typed = form.text("mac");
    let result = match crate::admin::api::parse_mac(&typed) {
        Err(_) if typed.is_empty() => Err(unprocessable("MAC address: type the device's (e.g. 00:1A:E8:2D:3F:61).")),
        Err(e) => Err(unprocessable(&format!("MAC address: {}", e.message()))),
        Ok(mac) => api::queue_logon(state, caller, &number, mac).await.map(|j| format!("logon&job={}", j.id)),
    };
    answer(state, caller, &number, result, typed).await
}

/// `POST /users/{number}/logoff`
pub(super) async fn logoff(state: &AdminState, caller: &Caller, number: &str) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    let result = api::queue_logoff(state, caller, &number).await.map(|j| format!("logoff&job={}", j.id));
    answer(state, caller, &number, result, String::new()).await
}

/// `POST /users/{number}/delete`
pub(super) async fn delete(state: &AdminState, caller: &Caller, number: &str) -> Result<Resp, PageError> {
    let number = path_number(number)?;
    match api::remove(state, caller, &number).await {
        Ok(()) => Ok(to(&format!("/users?deleted={}", crate::uri::percent_encode(&number)))),
        Err(e) => show_with(state, caller, &number, Shown { error: Some(e), ..Shown::default() }).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_words() {
        assert_eq!(size_text(0), "0 bytes");
        assert_eq!(size_text(1023), "1023 bytes");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(8 << 20), "8.0 MiB");
    }
}
