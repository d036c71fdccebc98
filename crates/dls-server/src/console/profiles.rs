//! The profiles page: every profile with what it applies to; one profile's items, its
//! device-type match, its re-assert policy and the devices it reaches. Operators add,
//! edit (items as rows of name, index and value) and delete profiles through the same
//! functions as the admin API's `PUT`/`DELETE /api/v1/profiles/{name}`
//! (`crate::admin::profiles::save`, `remove`): checked by the same rule
//! ([`dls_message::check`], `422` with the item named, its row marked), stored and
//! audited alike.

use askama::Template;
use dls_accounts::Need;
use dls_engine::Profile;
use dls_engine::desired::GLOBAL_PROFILE;
use dls_store::{DeviceFilter, DeviceSummary};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::form::Form;
use super::items::{self, Row, rows_of, typed_rows};
use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::Caller;
use crate::admin::profiles as api;
use crate::http::{Resp, full};

/// The most devices a profile page lists as reached.
const REACH_SHOWN: usize = 100;

struct ProfileRow {
    name: String,
    applies: String,
    reassert: &'static str,
    items: usize,
}

#[derive(Template)]
#[template(path = "profiles.html")]
struct ProfilesPage {
    nav: Nav,
    profiles: Vec<ProfileRow>,
    can_edit: bool,
    error: Option<String>,
    notice: Option<String>,
    new_name: String,
}

struct Reached {
    mac: String,
    device_type: String,
    last_contact: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    nav: Nav,
    name: String,
    exists: bool,
    device_type: String,
    /// `inherit`, `yes` or `no`.
    reassert: &'static str,
    rows: Vec<Row>,
    can_edit: bool,
    /// The profile is `global`: it reaches every device.
    global: bool,
    reached: Vec<Reached>,
    more_reached: bool,
    notice: Option<String>,
    error: Option<String>,
}

impl ProfilePage {
    fn reassert_is(&self, v: &str) -> bool {
        self.reassert == v
    }
}

fn reassert_word(r: Option<bool>) -> &'static str {
    match r {
        None => "inherit",
        Some(true) => "yes",
        Some(false) => "no",
    }
}

fn applies(p: &Profile) -> String {
    if p.name == GLOBAL_PROFILE {
        "every device".into()
    } else if let Some(t) = &p.device_type {
        format!("devices reporting {t}, and devices it is assigned to")
    } else {
        "devices it is assigned to".into()
    }
}

/// `GET /profiles`
pub(super) async fn list(state: &AdminState, caller: &Caller) -> Result<Resp, PageError> {
    list_with(state, caller, None, None, String::new()).await
}

async fn list_with(
    state: &AdminState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&ApiError>,
    new_name: String,
) -> Result<Resp, PageError> {
    let profiles = blocking(state, "profiles", |s| s.profiles()).await?;
    let page = ProfilesPage {
        nav: Nav::new(caller, "/profiles"),
        profiles: profiles
            .iter()
            .map(|p| ProfileRow {
                applies: applies(p),
                reassert: reassert_word(p.reassert_on_local_changes),
                items: p.items.len(),
                name: p.name.clone(),
            })
            .collect(),
        can_edit: caller.role.may(Need::Operate),
        error: error.map(|e| e.message().to_owned()),
        notice,
        new_name,
    };
    Ok(render(error.map_or(StatusCode::OK, ApiError::status), &page))
}

/// The devices `p` reaches (assigned, or by its device type), at most [`REACH_SHOWN`]
/// (and whether there are more); none listed for `global`, which reaches every device.
async fn reach(state: &AdminState, p: &Profile) -> Result<(Vec<DeviceSummary>, bool), ApiError> {
    if p.name == GLOBAL_PROFILE {
        return Ok((Vec::new(), false));
    }
    let (name, device_type) = (p.name.clone(), p.device_type.clone());
    let (mut found, full) = blocking(state, "list_devices", move |s| {
        let limit = Some(REACH_SHOWN + 1);
        let mut found = s.list_devices(&DeviceFilter { profile: Some(name), limit, ..DeviceFilter::default() })?;
        let mut full = found.len() > REACH_SHOWN;
        if let Some(t) = device_type {
            let typed = s.list_devices(&DeviceFilter { device_type: Some(t), limit, ..DeviceFilter::default() })?;
            full |= typed.len() > REACH_SHOWN;
            found.extend(typed);
        }
        Ok((found, full))
    })
    .await?;
    found.sort_by_key(|d| d.mac);
    found.dedup_by_key(|d| d.mac);
    let more = full || found.len() > REACH_SHOWN;
    found.truncate(REACH_SHOWN);
    Ok((found, more))
}

/// What the page shows besides the stored profile: typed rows and their error, a notice.
#[derive(Default)]
struct Shown {
    typed: Option<(String, &'static str, Vec<Row>)>,
    notice: Option<String>,
    error: Option<String>,
    status: Option<StatusCode>,
}

async fn show_with(state: &AdminState, caller: &Caller, name: &str, shown: Shown) -> Result<Resp, PageError> {
    let n = name.to_owned();
    let stored = blocking(state, "profile", move |s| s.profile(&n)).await?;
    let Some(profile) = stored.clone().or_else(|| shown.typed.as_ref().map(|_| Profile::default())) else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!("There is no profile {}: add it on the profiles page.", dls_message::check::quoted(name)),
        ));
    };
    let profile = Profile { name: name.to_owned(), ..profile };
    let (reached, more_reached) = reach(state, &profile).await?;
    let can_edit = caller.role.may(Need::Operate);
    let (device_type, reassert, mut rows) = match shown.typed {
        Some(typed) => typed,
        None => (
            profile.device_type.clone().unwrap_or_default(),
            reassert_word(profile.reassert_on_local_changes),
            rows_of(&profile.items),
        ),
    };
    if can_edit {
        rows.extend(items::blanks());
    }
    let page = ProfilePage {
        nav: Nav::new(caller, "/profiles"),
        global: profile.name == GLOBAL_PROFILE,
        name: profile.name,
        exists: stored.is_some(),
        device_type,
        reassert,
        rows,
        can_edit,
        reached: reached
            .into_iter()
            .map(|d| Reached {
                mac: d.mac.to_string(),
                device_type: d.device_type.unwrap_or_default(),
                last_contact: d.last_contact.map(|t| (layout::iso(t), layout::text(t))),
            })
            .collect(),
        more_reached,
        notice: shown.notice,
        error: shown.error,
    };
    Ok(render(shown.status.unwrap_or(StatusCode::OK), &page))
}

/// A `303` to a profile's page.
fn to_profile(name: &str, saved: bool) -> Resp {
    let mut location = format!("/profiles/{}", crate::uri::percent_encode(name));
    if saved {
        location.push_str("?saved=1");
    }
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `POST /profiles`: `name`; an empty profile, then its page to fill it.
pub(super) async fn add(state: &AdminState, caller: &Caller, form: Form) -> Result<Resp, PageError> {
    let name = form.text("name");
    let n = name.clone();
    let outcome = match blocking(state, "profile", move |s| s.profile(&n)).await? {
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("A profile {} exists already.", dls_message::check::quoted(&name)),
        )),
        None => api::save(state, caller, &name, Profile::default()).await,
    };
    match outcome {
        Ok(p) => Ok(to_profile(&p.name, false)),
        Err(e) => list_with(state, caller, None, Some(&e), name).await,
    }
}

/// `POST /profiles/{name}`: `device-type`, `reassert` (`inherit`, `yes`, `no`) and the item
/// rows; a secret's row left empty keeps its stored value. Refused items: `422`, the page
/// shown again as typed (a typed secret left out) with the row marked.
pub(super) async fn save(state: &AdminState, caller: &Caller, name: &str, form: Form) -> Result<Resp, PageError> {
    let device_type = form.text("device-type");
    let reassert = match form.text("reassert").as_str() {
        "yes" => "yes",
        "no" => "no",
        _ => "inherit",
    };
    let mut rows = match typed_rows(&form) {
        Ok(rows) => rows,
        Err(message) => return Err(PageError::new(StatusCode::UNPROCESSABLE_ENTITY, message)),
    };
    let refuse = |mut rows: Vec<Row>, status: StatusCode, message: String| {
        items::shown_again(&mut rows);
        Shown {
            typed: Some((device_type.clone(), reassert, rows)),
            error: Some(message),
            status: Some(status),
            ..Shown::default()
        }
    };
    let n = name.to_owned();
    let stored = blocking(state, "profile", move |s| s.profile(&n)).await?.unwrap_or_default();
    let items = match items::items_of(&mut rows, &stored.items) {
        Ok(items) => items,
        Err(message) => {
            return show_with(state, caller, name, refuse(rows, StatusCode::UNPROCESSABLE_ENTITY, message)).await;
        }
    };
    let profile = Profile {
        device_type: (!device_type.is_empty()).then(|| device_type.clone()),
        reassert_on_local_changes: match reassert {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        items,
        ..stored
    };
    match api::save(state, caller, name, profile).await {
        Ok(p) => Ok(to_profile(&p.name, true)),
        Err(e) => show_with(state, caller, name, refuse(rows, e.status(), e.message().to_owned())).await,
    }
}

/// `GET /profiles/{name}` (`?saved=1`: saying it was saved).
pub(super) async fn show(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    query: Option<&str>,
) -> Result<Resp, PageError> {
    let saved = query.is_some_and(|q| q.split('&').any(|p| p == "saved=1"));
    let shown = Shown {
        notice: saved.then(|| "Saved. Phones get the change at their next contact.".to_owned()),
        ..Shown::default()
    };
    show_with(state, caller, name, shown).await
}

/// `POST /profiles/{name}/delete`
pub(super) async fn delete(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, PageError> {
    match api::remove(state, caller, name).await {
        Ok(()) => {
            let notice = format!("Profile {} deleted, with its assignments.", dls_message::check::quoted(name));
            list_with(state, caller, Some(notice), None, String::new()).await
        }
        Err(e) => list_with(state, caller, None, Some(&e), String::new()).await,
    }
}
