//! The files page: deployment files (firmware, ring tones, logos …) with what is known of
//! them; upload one with a progress bar (the console's script sends the file itself as the
//! body of `POST /files/upload?name=&type=…` with the session's CSRF token in the
//! `X-CSRF-Token` header, and reports `xhr.upload` progress), and delete one (asking
//! first). Both go through the admin API's functions (`crate::admin::jobs::add_file`,
//! `remove_file`): the same checks, the same file store (`<data dir>/files/<id>`), the
//! same audit records. Over `--max-file-bytes`: `413`, said on the page.

use askama::Template;
use dls_accounts::Need;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::layout::{self, Nav};
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::{ApiError, blocking};
use crate::admin::auth::{CSRF_HEADER, Caller};
use crate::admin::jobs as api;
use crate::http::Resp;

/// The `file-type`s the upload form offers (the protocol's; `APP` is firmware).
const FILE_TYPES: &[&str] = &["APP", "RINGTONE", "MOH", "PIC", "LDAP", "LOGO", "SCREENSAVER"];

struct FileRow {
    id: i64,
    name: String,
    file_type: String,
    size: u64,
    sha256: String,
    device_types: String,
    version: String,
    added: (String, String),
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    nav: Nav,
    files: Vec<FileRow>,
    can_edit: bool,
    max_bytes: u64,
    types: &'static [&'static str],
    notice: Option<String>,
    error: Option<String>,
}

/// `GET /files` (`?added=ID`: saying it was added).
pub(super) async fn show(state: &AdminState, caller: &Caller, query: Option<&str>) -> Result<Resp, PageError> {
    let added = crate::admin::api::query(query)?.into_iter().find(|(k, _)| k == "added").map(|(_, v)| v);
    let notice = added.and_then(|id| id.parse::<i64>().ok()).map(|id| format!("File {id} added."));
    page(state, caller, notice, None).await
}

async fn page(
    state: &AdminState,
    caller: &Caller,
    notice: Option<String>,
    error: Option<&ApiError>,
) -> Result<Resp, PageError> {
    let files = blocking(state, "files", |s| s.files()).await?;
    let page = FilesPage {
        nav: Nav::new(caller, "/files"),
        files: files
            .into_iter()
            .map(|f| FileRow {
                id: f.id,
                added: (layout::iso(f.added_at), layout::text(f.added_at)),
                sha256: f.file.sha256.chars().take(16).collect(),
                device_types: f.file.device_types.join(", "),
                version: f.file.software_version.unwrap_or_default(),
                name: f.file.name,
                file_type: f.file.file_type,
                size: f.file.size,
            })
            .collect(),
        can_edit: caller.role.may(Need::Operate),
        max_bytes: state.jobs.max_file_bytes,
        types: FILE_TYPES,
        notice,
        error: error.map(|e| e.message().to_owned()),
    };
    Ok(render(error.map_or(StatusCode::OK, ApiError::status), &page))
}

/// `POST /files/upload?name=&type=&device-type=&software-type=&software-version=`: the
/// body is the file; the CSRF token in the `X-CSRF-Token` header. Answers JSON (the
/// script reads it): `201` and the file, or `{"error"}` with its status (`413` over the
/// limit, `403` without the token, `400` for what the API refuses).
pub(super) async fn upload(state: &AdminState, caller: &Caller, req: Request<Incoming>) -> Resp {
    let given = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !caller.csrf_ok(given) {
        tracing::warn!(account = %caller.account, "console upload without its session's CSRF token");
        let message = "This upload did not carry the page's security token; nothing was stored. Load the page again.";
        return ApiError::new(StatusCode::FORBIDDEN, message).response();
    }
    match api::add_file(state, caller, req).await {
        Ok(resp) => resp,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.jobs.max_file_bytes;
            let message =
                format!("The file is larger than this service accepts: at most {limit} bytes (--max-file-bytes).");
            let mut r = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).response();
            r.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
            r
        }
        Err(e) => e.response(),
    }
}

/// `POST /files/{id}/delete`
pub(super) async fn delete(state: &AdminState, caller: &Caller, id: &str) -> Result<Resp, PageError> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(PageError::new(StatusCode::BAD_REQUEST, "That is not a file."));
    };
    match api::remove_file(state, caller, id).await {
        Ok(f) => {
            let notice = format!("File {} ({}) deleted; its jobs that were not over failed.", f.id, f.file.name);
            page(state, caller, Some(notice), None).await
        }
        Err(e) => page(state, caller, None, Some(&e)).await,
    }
}
