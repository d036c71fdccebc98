//! Profiles: the layers of configuration (`global`, by device type, assigned).

use dls_engine::Profile;
use dls_store::AdminAction;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::AdminState;
use super::api::{ApiError, audited, blocking, body_json, check_profile, error, json, redact};
use super::auth::Caller;
use crate::http::Resp;

/// `GET /api/v1/profiles`
pub(crate) async fn list(state: &AdminState, caller: &Caller) -> Result<Resp, ApiError> {
    let mut profiles = blocking(state, "profiles", |s| s.profiles()).await?;
    redact(caller, profiles.iter_mut().flat_map(|p| &mut p.items));
    Ok(json(StatusCode::OK, &profiles))
}

/// `GET /api/v1/profiles/{name}`
pub(crate) async fn show(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, ApiError> {
    let n = name.to_owned();
    match blocking(state, "profile", move |s| s.profile(&n)).await? {
        Some(mut p) => {
            redact(caller, &mut p.items);
            Ok(json(StatusCode::OK, &p))
        }
        None => Err(error(StatusCode::NOT_FOUND, format!("profile {name:?} not found"))),
    }
}

/// `PUT /api/v1/profiles/{name}`: creates or replaces it; `422` for items a phone cannot
/// be sent.
pub(crate) async fn put(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let profile: Profile = body_json(state, req).await?;
    Ok(json(StatusCode::OK, &save(state, caller, name, profile).await?))
}

/// Creates or replaces profile `name` with `profile` (its name set to `name`), audited;
/// `422` for items a phone cannot be sent (the API's `PUT` and the console's form).
pub(crate) async fn save(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    mut profile: Profile,
) -> Result<Profile, ApiError> {
    check_profile(name, &profile)?;
    name.clone_into(&mut profile.name);
    let p = profile.clone();
    blocking(state, "put_profile", move |s| s.put_profile(&p)).await?;
    let detail = format!("profile {} ({} items)", profile.name, profile.items.len());
    audited(state, caller, None, AdminAction::ProfileSaved, detail).await;
    Ok(profile)
}

/// `DELETE /api/v1/profiles/{name}`
pub(crate) async fn delete(state: &AdminState, caller: &Caller, name: &str) -> Result<Resp, ApiError> {
    remove(state, caller, name).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "deleted": name })))
}

/// Deletes profile `name` (its assignments and fallback credentials too), audited; `404`
/// when there is none.
pub(crate) async fn remove(state: &AdminState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    let n = name.to_owned();
    if blocking(state, "delete_profile", move |s| s.delete_profile(&n)).await? {
        audited(state, caller, None, AdminAction::ProfileDeleted, format!("profile {name}")).await;
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("profile {name:?} not found")))
    }
}
