//! DCMP: a phone behind NAT, which the DLS cannot reach with contact-me, polls instead.
//!
//! The phone learns where from its items — `dcmp-url` (e.g.
//! `http://dls.example.com:18080/dcmp/`) and `dcmp-poll-interval` (seconds), which the DLS
//! writes like any configuration — and asks `GET <dcmp-url>contact-me?device-id=<mac-addr>`
//! (the MAC colon-separated, upper case, percent-encoded). `202 Accepted`: jobs are pending,
//! the phone calls in as `solicited`; `200 OK`: nothing. A phone without `dcmp-url` does
//! not poll.

use std::time::Duration;

use dls_message::MacAddr;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;

use crate::http::{get, parse_url, percent_encode};
use crate::phone::Phone;
use crate::tls::ServerTrust;

/// The item naming the DCMP base URL.
pub const DCMP_URL_ITEM: &str = "dcmp-url";
/// The item giving the poll interval in seconds.
pub const DCMP_INTERVAL_ITEM: &str = "dcmp-poll-interval";

/// The most body bytes read from a DCMP answer.
const MAX_BODY: usize = 4096;

/// What a poll said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcmpAnswer {
    /// `202`: jobs are pending; the phone calls in as `solicited`.
    Pending,
    /// `200`: nothing to do.
    Nothing,
}

/// Why a poll failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DcmpError {
    /// The DCMP URL is unusable.
    #[error("DCMP URL: {0}")]
    Url(String),
    /// No answer (connection, timeout, broken response).
    #[error("DCMP poll: {0}")]
    Connect(String),
    /// An answer other than `200` or `202`.
    #[error("DCMP poll: HTTP {0}")]
    Status(u16),
}

/// The poll URL: `<dcmp_url>contact-me?device-id=<MAC>` (a `/` is added to a `dcmp_url`
/// not ending with one).
///
/// # Errors
/// [`DcmpError::Url`] when `dcmp_url` is not an `http://` or `https://` URL.
pub fn poll_url(dcmp_url: &str, mac: MacAddr) -> Result<String, DcmpError> {
    let base = dcmp_url.trim();
    let sep = if base.ends_with('/') { "" } else { "/" };
    let url = format!("{base}{sep}contact-me?device-id={}", percent_encode(&mac.colon_separated()));
    parse_url(&url).map_err(DcmpError::Url)?;
    Ok(url)
}

/// Polls once: `GET` the poll URL (TLS with `trust` for an `https://` URL), the whole
/// exchange within `timeout`, a bounded body read.
///
/// # Errors
/// [`DcmpError`] for a bad URL, no answer, or a status other than `200`/`202`.
pub async fn poll(
    dcmp_url: &str,
    mac: MacAddr,
    trust: &ServerTrust,
    timeout: Duration,
) -> Result<DcmpAnswer, DcmpError> {
    let url = poll_url(dcmp_url, mac)?;
    let target = parse_url(&url).map_err(DcmpError::Url)?;
    tokio::time::timeout(timeout, async {
        let resp = get(&target, trust, timeout).await.map_err(DcmpError::Connect)?;
        let status = resp.status();
        // Read (a bounded part of) the body, so the server sees a complete exchange.
        let _ = Limited::new(resp.into_body(), MAX_BODY).collect().await;
        match status {
            StatusCode::ACCEPTED => Ok(DcmpAnswer::Pending),
            StatusCode::OK => Ok(DcmpAnswer::Nothing),
            other => Err(DcmpError::Status(other.as_u16())),
        }
    })
    .await
    .map_err(|_| DcmpError::Connect(format!("no answer from {} within {} s", target.authority, timeout.as_secs())))?
}

impl Phone {
    /// The DCMP base URL from the phone's `dcmp-url` item, if set (not empty).
    #[must_use]
    pub fn dcmp_url(&self) -> Option<&str> {
        self.get(DCMP_URL_ITEM, None).map(str::trim).filter(|u| !u.is_empty())
    }

    /// The poll interval from `dcmp-poll-interval` (whole seconds), if set and valid.
    #[must_use]
    pub fn dcmp_poll_interval(&self) -> Option<Duration> {
        self.get(DCMP_INTERVAL_ITEM, None).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_urls() {
        let mac = MacAddr::parse("00:1a:e8:3c:4d:5e").expect("mac");
        assert_eq!(
            poll_url("http://dls.example.com:18080/dcmp/", mac).expect("url"),
            "http://dls.example.com:18080/dcmp/contact-me?device-id=00%3A1A%3AE8%3A3C%3A4D%3A5E"
        );
        assert_eq!(
            poll_url("http://dls/dcmp", mac).expect("url"),
            "http://dls/dcmp/contact-me?device-id=00%3A1A%3AE8%3A3C%3A4D%3A5E"
        );
        assert!(poll_url("dls.example.com/dcmp/", mac).is_err());
    }
}
