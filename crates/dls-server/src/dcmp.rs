//! DCMP, the contact-me for phones behind NAT: on the plain-HTTP listener, phones poll
//! `GET /dcmp/contact-me?device-id=<mac-addr>`; `202` says jobs are pending (the phone then
//! calls in as `solicited`), `200` says nothing is — also for a device this DLS does not
//! know (it says nothing about which devices exist). A malformed request gets `400`; an
//! address that polls faster than `dcmp-polls-per-second` (with a burst of four times as
//! many) gets `429`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dls_message::MacAddr;
use dls_store::Store;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use tracing::{debug, warn};

use crate::http::{ConnInfo, Resp, text};

/// The DCMP path.
pub(crate) const PATH: &str = "/dcmp/contact-me";

/// The most addresses the rate limiter remembers; when full, new addresses are refused
/// until idle ones are forgotten.
const MAX_ADDRESSES: usize = 100_000;

/// Per-address token buckets.
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self { per_second, burst: per_second * 4.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether `ip` may make one more request at `now`.
    pub(crate) fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            // Forget addresses whose bucket has refilled: they lose nothing.
            let full_after = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
            if buckets.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        let (tokens, last) = buckets.entry(ip).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the DCMP handler shares.
pub(crate) struct DcmpState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) limiter: RateLimiter,
    pub(crate) clock: Arc<dyn crate::clock::Clock>,
    /// Counts polls by answer, and the store calls.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// The `device-id` of a DCMP query: `Ok(None)` when absent.
fn device_id(query: Option<&str>) -> Result<Option<MacAddr>, String> {
    let pairs = crate::uri::query_pairs(query).ok_or("bad percent-encoding")?;
    match pairs.into_iter().find(|(k, _)| k == "device-id") {
        Some((_, v)) => MacAddr::parse(v.trim()).map(Some).map_err(|e| format!("device-id: {e}")),
        None => Ok(None),
    }
}

/// Answers one DCMP poll, counted by its answer's status.
pub(crate) async fn handle(state: Arc<DcmpState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let resp = poll(&state, req, info).await;
    state.metrics.dcmp_poll(resp.status());
    resp
}

async fn poll(state: &Arc<DcmpState>, req: Request<Incoming>, info: ConnInfo) -> Resp {
    let peer = info.peer;
    if !state.limiter.allow(peer.ip(), state.clock.instant()) {
        debug!(%peer, "DCMP poll refused: rate limit");
        let mut r = text(StatusCode::TOO_MANY_REQUESTS, "too many polls\n");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mac = match device_id(req.uri().query()) {
        Ok(Some(m)) => m,
        Ok(None) => {
            warn!(%peer, "DCMP poll without a device-id");
            return text(StatusCode::BAD_REQUEST, "device-id is required\n");
        }
        Err(e) => {
            warn!(%peer, error = %e, "malformed DCMP poll");
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    };
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    match crate::tasks::spawn_blocking(move || metrics.store("has_pending_jobs", store.has_pending_jobs(mac))).await {
        Ok(Ok(true)) => {
            debug!(%mac, %peer, "DCMP poll: jobs pending");
            text(StatusCode::ACCEPTED, "jobs pending\n")
        }
        Ok(Ok(false)) => text(StatusCode::OK, "nothing pending\n"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "DCMP poll: store failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        let mac = MacAddr::parse("00:1A:E8:00:00:01").expect("mac");
        assert_eq!(device_id(Some("device-id=00:1A:E8:00:00:01")), Ok(Some(mac)));
        assert_eq!(device_id(Some("x=1&device-id=00%3A1A%3AE8%3A00%3A00%3A01")), Ok(Some(mac)));
        assert_eq!(device_id(Some("x=1")), Ok(None));
        assert_eq!(device_id(None), Ok(None));
        assert!(device_id(Some("device-id=nonsense")).is_err());
        assert!(device_id(Some("device-id=%zz")).is_err());
    }

    #[test]
    fn the_limiter_allows_a_burst_then_the_rate() {
        let l = RateLimiter::new(5);
        let ip: IpAddr = [192, 0, 2, 1].into();
        let t0 = Instant::now();
        assert_eq!((0..40).filter(|_| l.allow(ip, t0)).count(), 20, "a burst of 4 × 5");
        assert!(!l.allow(ip, t0));
        assert!(l.allow(ip, t0 + Duration::from_millis(200)), "one more after 1/5 s");
        assert!(!l.allow(ip, t0 + Duration::from_millis(200)));
        let other: IpAddr = [192, 0, 2, 2].into();
        assert!(l.allow(other, t0), "addresses are limited separately");
    }
}
