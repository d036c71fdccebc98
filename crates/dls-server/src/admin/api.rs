//! What every admin handler shares: JSON answers, [`ApiError`] (a status and a one-line
//! message) and how store errors map to it, running store calls off the executor, the
//! audit record of a change, request bodies and queries.

use dls_engine::Profile;
use dls_message::{Item, MacAddr};
use dls_store::{AdminAction, NewAuditRecord, Store, StoreError};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use super::AdminState;
use super::auth::Caller;
use crate::http::Resp;

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"response not serialisable\"}".to_vec());
    let mut r = Response::new(crate::http::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An admin request's failure: its status and a one-line message, rendered as
/// `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// Its status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// Its message.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn response(&self) -> Resp {
        let mut r = json(self.status, &serde_json::json!({ "error": self.message }));
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message)
}

/// What a caller who may not see secrets is shown of a secret item's value (the console
/// shows it so to everyone).
pub(crate) const SECRET_SHOWN: &str = "(secret, not shown)";

/// A viewer reads everything but secrets: for a caller who may not operate, the values of
/// the secret items ([`dls_engine::secret_items::is_secret`]: passwords, keys) are
/// replaced by [`SECRET_SHOWN`]. Operators and administrators, who set them, see them.
pub(crate) fn redact<'a>(caller: &Caller, items: impl IntoIterator<Item = &'a mut Item>) {
    if caller.role.may(dls_accounts::Need::Operate) {
        return;
    }
    for item in items.into_iter().filter(|i| dls_engine::secret_items::is_secret(&i.name)) {
        item.value = SECRET_SHOWN.to_owned();
    }
}

/// [`redact`] for the items a job carries (a write job's, the answer's).
pub(crate) fn redact_job(caller: &Caller, job: &mut dls_store::JobRecord) {
    if let dls_engine::JobKind::Write { items } = &mut job.job {
        redact(caller, items.iter_mut());
    }
    redact(caller, job.items.iter_mut());
}

/// Refuses (`422`) items a phone cannot be sent, naming the first such item and its place:
/// the rule is [`dls_message::check`], the one the engine applies to what it sends.
pub(crate) fn check_items(what: &str, items: &[Item]) -> Result<(), ApiError> {
    dls_message::check::check_items(items).map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("{what}: {e}")))
}

/// Refuses (`422`) a profile that holds something a phone cannot be sent: an item (see
/// [`check_items`]) or a character XML 1.0 does not allow in its provisioning template.
pub(crate) fn check_profile(name: &str, profile: &Profile) -> Result<(), ApiError> {
    let what = format!("profile {}", dls_message::check::quoted(name));
    check_items(&what, &profile.items)?;
    if let Some((at, c)) = profile.provisioning_template.as_deref().and_then(dls_message::check::first_non_xml_char) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{what}: the provisioning template holds U+{:04X} at character {at}, which XML 1.0 cannot carry",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn store_error(e: &StoreError) -> ApiError {
    let status = match e {
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::Conflict { .. } | StoreError::Contended { .. } => StatusCode::CONFLICT,
        StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "admin request: the store is unavailable");
    }
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "admin request failed in the store");
        return error(status, "internal error");
    }
    error(status, e.to_string())
}

/// Records an administrative change in the audit log, with the caller as its actor, after
/// the change was made. A failure to record is logged as an error (the change stands: the
/// store that took it a moment ago failed now) and not answered.
pub(crate) async fn audited(
    state: &AdminState,
    caller: &Caller,
    mac: Option<MacAddr>,
    action: AdminAction,
    detail: impl Into<String>,
) {
    let record = NewAuditRecord {
        at: state.clock.now(),
        actor: Some(caller.actor()),
        mac,
        kind: action.into(),
        detail: detail.into(),
    };
    if let Err(e) = blocking(state, "record_audit", move |s| s.record_audit(&record)).await {
        tracing::error!(action = action.as_str(), error = ?e, "the audit record of a change could not be written");
    }
}

/// Runs a store call off the executor, counted in the metrics as `operation` (the store
/// method `f` calls).
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AdminState,
    operation: &'static str,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    match crate::tasks::spawn_blocking(move || metrics.store(operation, f(store.as_ref()))).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_error(&e)),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

pub(crate) async fn body_json<T: for<'de> Deserialize<'de>>(
    state: &AdminState,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let bytes = match crate::http::read_body(req, state.max_body_bytes, state.body_timeout).await {
        Ok(b) => b,
        Err(crate::http::BodyError::TooLarge) => {
            return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
        }
        Err(crate::http::BodyError::Timeout) => {
            return Err(error(StatusCode::REQUEST_TIMEOUT, "request body not received in time"));
        }
        Err(crate::http::BodyError::Broken) => {
            return Err(error(StatusCode::BAD_REQUEST, "request body could not be read"));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

pub(crate) fn parse_mac(s: &str) -> Result<MacAddr, ApiError> {
    MacAddr::parse(s).map_err(|e| error(StatusCode::BAD_REQUEST, format!("{s:?}: {e}")))
}

/// The query's pairs ([`crate::uri::query_pairs`]), or `400` for bad encoding.
pub(crate) fn query(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    crate::uri::query_pairs(query).ok_or_else(|| error(StatusCode::BAD_REQUEST, "bad percent-encoding in query"))
}

/// A job's or file's id in a path, or `400`.
pub(crate) fn parse_id(s: &str, what: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| error(StatusCode::BAD_REQUEST, format!("{what} id {s:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let unavailable = store_error(&StoreError::Unavailable("connection refused".into()));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.message, "database unavailable: connection refused");
        assert_eq!(store_error(&StoreError::not_found("device 1")).status, StatusCode::NOT_FOUND);
        let broken = store_error(&StoreError::Corrupt("a row".into()));
        assert_eq!((broken.status, broken.message.as_str()), (StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    }
}
