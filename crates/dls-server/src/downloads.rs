//! Deployment downloads on the default-mode port: `GET /files/<token>/<file-name>`.
//!
//! The token is the job's: 128 random bits, valid while the job is `sent` (the phone was
//! told the URL and has not completed the job yet), so only the target device knows a
//! working URL. The file streams from the file store with `Content-Length`, `ETag` (its
//! SHA-256) and `Range` support.

use std::path::PathBuf;
use std::sync::Arc;

use dls_store::Store;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tracing::{error, info, warn};

use crate::http::{ConnInfo, Resp, text};

/// Where downloads live.
pub(crate) const PREFIX: &str = "/files/";

/// What the download handler shares.
pub(crate) struct DownloadState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) files_dir: PathBuf,
    /// Counts the store calls.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// Serves one download.
pub(crate) async fn handle(state: Arc<DownloadState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let peer = info.peer;
    let rest = req.uri().path().strip_prefix(PREFIX).unwrap_or_default();
    let Some((token, name)) = rest.split_once('/') else { return not_found() };
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return not_found();
    }
    // A path segment: `+` is a plus sign (a phone may request `fw+1.img` unencoded).
    let Some(name) = crate::uri::decode_path_segment(name) else { return not_found() };
    let token = token.to_ascii_uppercase();
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    let found = match crate::tasks::spawn_blocking(move || metrics.store("download", store.download(&token))).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            error!(error = %e, "download: store failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    };
    // The token is a credential: never logged.
    let Some((job, file)) = found.filter(|(_, f)| f.file.name == name) else {
        warn!(%peer, "download refused: no sent job has this token and file name");
        return not_found();
    };
    let path = crate::admin::jobs::content_path(&state.files_dir, file.id);
    let handle = match tokio::fs::File::open(&path).await {
        Ok(h) => h,
        Err(e) => {
            error!(file = file.id, error = %e, "download: the file's content is missing");
            return not_found();
        }
    };
    let size = match handle.metadata().await {
        Ok(m) if m.len() == file.file.size => m.len(),
        Ok(m) => {
            error!(file = file.id, size = m.len(), recorded = file.file.size, "download: the file's size changed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
        Err(e) => {
            error!(file = file.id, error = %e, "download: reading the file failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
    };
    let range = req.headers().get(hyper::header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    info!(job = job.id, mac = %job.mac, file = file.id, size, range, %peer, "download");
    let etag = format!("\"{}\"", file.file.sha256);
    crate::files::serve_file(handle, size, req.method(), req.headers(), "application/octet-stream", Some(&etag)).await
}
