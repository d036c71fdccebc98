//! Contact-me: making a phone call in.
//!
//! The DLS sends plain HTTP `POST http://<phone>:8085/contact_dls.html/ContactDLS` with the form
//! body `ContactMe=true` (optionally `&dls_ip_addr=…&dls_ip_port=…`) to the URI the phone
//! advertises in its `contact-me-uri` item; the phone answers `204 No Content` and opens a
//! `solicited` interaction (`wpi-protocol.md` §1).
//!
//! * [`planner`]: [`ContactPlanner`](planner::ContactPlanner), sans-IO and deterministic (time is passed in as a
//!   [`Duration`] since an arbitrary origin): which devices to contact now. At most one
//!   contact-me per phone per [`min_interval`](ContactPolicy::min_interval) (never less than a
//!   minute: early firmware crashed on two requests within a second), nothing within the
//!   phone's contact gap after a `204` ([`after_success`](ContactPolicy::after_success)),
//!   failures backing off exponentially up to a cap, a bounded number of devices tracked.
//! * [`sender`]: [`spawn`], the async sender around it. [`ContactHandle::request`] marks a
//!   device as wanted (non-blocking, idempotent); the loop asks `targets` (off the executor)
//!   for the device's contact-me URI when it is due, sends the POST within the attempt
//!   timeout, with bounded concurrency, and hands every attempt to `report` (off the
//!   executor).
//! * [`target`]: the contact-me URI parsed strictly, and whom it may go to.
//! * Here: the policy ([`ContactPolicy`]) and what an attempt comes to ([`ContactResult`],
//!   [`ContactAttempt`], [`ContactRefused`]).
//!
//! Whom it posts to: the `contact-me-uri` comes from the phone, over the default-mode port,
//! which anyone can reach. So that a caller cannot make the DLS post to other hosts, the
//! URI's host must be the IP address the phone last called the DLS from, unless
//! [`ContactPolicy::any_host`] is set (for networks where phones call through NAT or a
//! proxy and the URI they report is still reachable). Otherwise the attempt is not made
//! ([`ContactResult::Refused`], shown on the device's jobs).

mod planner;
mod sender;
mod target;

use std::fmt;
use std::time::Duration;

pub(crate) use sender::{ContactHandle, ContactReport, ContactTargets, Schedule, spawn};

/// The shortest interval between two contact-me requests to one phone, whatever the policy says.
const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(60);
/// The most concurrent attempts a policy may ask for.
const MAX_CONCURRENCY: usize = 4096;

/// How contact-me requests are paced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContactPolicy {
    /// The shortest interval between two contact-me requests to one phone (default and
    /// minimum 60 s: a smaller value is raised to 60 s).
    pub(crate) min_interval: Duration,
    /// After a `204`, no new contact-me before this (default 300 s, the phone's default contact
    /// gap: a phone ignores contact-me within it), even if jobs remain.
    pub(crate) after_success: Duration,
    /// The delay after the first failure; it doubles with each further failure (default 60 s).
    pub(crate) backoff_base: Duration,
    /// The longest delay after failures (default 3600 s).
    pub(crate) backoff_cap: Duration,
    /// The time allowed for one attempt: connect, request, answer (default 5 s).
    pub(crate) attempt_timeout: Duration,
    /// The most attempts in flight across the fleet (default 32).
    pub(crate) concurrency: usize,
    /// The most devices tracked (wanted, in flight or within their interval); further
    /// requests are refused (default 1,000,000).
    pub(crate) max_devices: usize,
    /// Sent as `dls_ip_addr` when set: the address the phone should call.
    pub(crate) dls_ip_addr: Option<String>,
    /// Sent as `dls_ip_port` when set: the port the phone should call.
    pub(crate) dls_ip_port: Option<u16>,
    /// Post to whatever host a phone's `contact-me-uri` names (default `false`: only to
    /// the IP address the phone last called from; see the module's documentation).
    pub(crate) any_host: bool,
}

impl Default for ContactPolicy {
    fn default() -> Self {
        Self {
            min_interval: MIN_INTERVAL_FLOOR,
            after_success: Duration::from_secs(300),
            backoff_base: Duration::from_secs(60),
            backoff_cap: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(5),
            concurrency: 32,
            max_devices: 1_000_000,
            dls_ip_addr: None,
            dls_ip_port: None,
            any_host: false,
        }
    }
}

impl ContactPolicy {
    /// The policy as applied: `min_interval` at least 60 s, `after_success` at least
    /// `min_interval`, `backoff_cap` at least `backoff_base`, `concurrency` in 1..=4096,
    /// `max_devices` at least 1.
    #[must_use]
    pub(crate) fn clamped(&self) -> Self {
        let min_interval = self.min_interval.max(MIN_INTERVAL_FLOOR);
        Self {
            min_interval,
            after_success: self.after_success.max(min_interval),
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap.max(self.backoff_base),
            attempt_timeout: self.attempt_timeout,
            concurrency: self.concurrency.clamp(1, MAX_CONCURRENCY),
            max_devices: self.max_devices.max(1),
            dls_ip_addr: self.dls_ip_addr.clone(),
            dls_ip_port: self.dls_ip_port,
            any_host: self.any_host,
        }
    }

    /// The pacing rules' part of the policy (the planner and the store's schedule apply
    /// the same rules: [`dls_store::rules::contact`]).
    #[must_use]
    pub(crate) fn pacing(&self) -> dls_store::rules::contact::ContactPacing {
        dls_store::rules::contact::ContactPacing {
            min_interval: self.min_interval,
            after_success: self.after_success,
            backoff_base: self.backoff_base,
            backoff_cap: self.backoff_cap,
        }
    }

    /// The form body: `ContactMe=true`, then `dls_ip_addr` and `dls_ip_port` when set.
    #[must_use]
    pub(crate) fn body(&self) -> String {
        let mut body = String::from("ContactMe=true");
        if let Some(addr) = &self.dls_ip_addr {
            body.push_str("&dls_ip_addr=");
            body.push_str(&crate::uri::percent_encode(addr));
        }
        if let Some(port) = self.dls_ip_port {
            body.push_str(&format!("&dls_ip_port={port}"));
        }
        body
    }
}

/// The outcome of one contact-me attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContactResult {
    /// The phone answered `204 No Content`: it will call in.
    Contacted,
    /// The phone (or whatever listens there) answered another status.
    Status(u16),
    /// No answer within the attempt timeout.
    Timeout,
    /// No exchange: connection refused, reset, name not resolved, unusable URI, …
    Unreachable(String),
    /// Not sent: the URI's host is not the address the phone calls from.
    Refused(String),
}

impl ContactResult {
    /// Whether the phone accepted the contact-me (`204`).
    #[must_use]
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Self::Contacted)
    }
}

impl fmt::Display for ContactResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contacted => f.write_str("contact-me answered 204"),
            Self::Status(s) => write!(f, "contact-me answered {s}"),
            Self::Timeout => f.write_str("contact-me timed out"),
            Self::Unreachable(why) => write!(f, "contact-me failed: {why}"),
            Self::Refused(why) => write!(f, "contact-me not sent: {why}"),
        }
    }
}

/// One attempt, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContactAttempt {
    /// When the attempt started, in seconds since the Unix epoch.
    pub(crate) at_unix_secs: u64,
    /// The URI the contact-me went to (as `targets` gave it).
    pub(crate) uri: String,
    /// What came of it.
    pub(crate) result: ContactResult,
}

/// Why a contact-me request was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ContactRefused {
    /// The planner tracks as many devices as it may.
    #[error("contact-me refused: {limit} devices are already waiting")]
    TooManyDevices {
        /// The bound.
        limit: usize,
    },
    /// The sender has stopped.
    #[error("contact-me refused: the sender has stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_display_on_one_line() {
        assert_eq!(ContactResult::Contacted.to_string(), "contact-me answered 204");
        assert_eq!(ContactResult::Status(500).to_string(), "contact-me answered 500");
        assert_eq!(ContactResult::Timeout.to_string(), "contact-me timed out");
        assert_eq!(
            ContactResult::Unreachable("connection refused".into()).to_string(),
            "contact-me failed: connection refused"
        );
    }

    #[test]
    fn the_body_names_the_dls_when_configured() {
        assert_eq!(ContactPolicy::default().body(), "ContactMe=true");
        let p = ContactPolicy { dls_ip_addr: Some("10.1.2.3".into()), dls_ip_port: Some(18443), ..Default::default() };
        assert_eq!(p.body(), "ContactMe=true&dls_ip_addr=10.1.2.3&dls_ip_port=18443");
        let p = ContactPolicy { dls_ip_addr: Some("a&b=c".into()), ..Default::default() };
        assert_eq!(p.body(), "ContactMe=true&dls_ip_addr=a%26b%3Dc");
    }
}
