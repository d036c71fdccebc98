//! What a monitoring system asks, without the bearer token (none of it is a secret):
//!
//! * `GET /healthz`: liveness — the process answers (`200 {"status":"ok"}`); nothing else
//!   is checked.
//! * `GET /readyz`: readiness — `200 {"status":"ready"}` when the store answers a trivial
//!   read (one device listed) within [`READY_TIMEOUT`], else `503 {"error":"…"}` on one
//!   line. At most one check runs at a time: a store that hangs cannot pile up blocking
//!   threads, however often the probe asks.
//! * `GET /metrics`: the node's metrics in the Prometheus text format
//!   ([`crate::metrics`]): counts and durations under fixed labels, never a MAC, an
//!   address, an item or any other string a phone sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dls_store::DeviceFilter;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tracing::warn;

use super::AdminState;
use super::api::json;
use crate::http::Resp;

/// How long `/readyz` waits for the store.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a readiness check is running.
#[derive(Debug, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

/// Marks the check over when dropped (when the store call returns, even after the
/// answer was given up on).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// `/readyz`.
pub(super) async fn ready(state: &AdminState) -> Resp {
    let running = &state.readiness.0;
    if running.swap(true, Ordering::SeqCst) {
        return not_ready("the previous readiness check has not finished: the store is slow or hangs".to_owned());
    }
    let guard = Running(running.clone());
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    let check = crate::tasks::spawn_blocking(move || {
        let _guard = guard;
        let filter = DeviceFilter { limit: Some(1), ..DeviceFilter::default() };
        metrics.store("list_devices", store.list_devices(&filter)).map(drop)
    });
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => json(StatusCode::OK, &serde_json::json!({ "status": "ready" })),
        Ok(Ok(Err(e))) => not_ready(format!("the store failed: {e}")),
        Ok(Err(_)) => not_ready("the store check failed".to_owned()),
        Err(_) => not_ready(format!("the store did not answer within {} s", READY_TIMEOUT.as_secs())),
    }
}

fn not_ready(why: String) -> Resp {
    let why = why.replace(['\n', '\r'], " ");
    warn!(error = %why, "not ready");
    let mut r = json(StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!({ "error": why }));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/metrics`.
pub(super) fn metrics(state: &AdminState) -> Resp {
    let mut r = Response::new(crate::http::full(state.metrics.encode()));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
