//! The DLS service: the async shell around the sans-IO engine.
//!
//! Starting and routing:
//! * [`start`] (`service`): opens the data directory's keys ([`datadir`], [`pki`]) and
//!   the store, binds the listeners and serves; returns a [`Running`] service.
//!   [`start_with_clock`] takes the [`Clock`] every time decision is read from.
//! * [`config`]: every setting, with the defaults of a zero-configuration start.
//! * `routes`: every listener's paths and the handler each leads to, in one table.
//!
//! The handlers:
//! * `wpi`: the phones' endpoint, `POST /DeploymentService/LoginService` — read, decode,
//!   run the engine off the executor under the device's lock, commit, reply; `sessions`:
//!   interactions in progress, by cookie; `bootstrap`: secure-mode material; `mobility`:
//!   mobility users' passwords (Argon2id) and what a message loads of the users.
//! * `provisioning`: Digest-protected provisioning files (`shared_digest`: their nonces,
//!   replays and throttle shared by the nodes of a PostgreSQL store); `dcmp`: polls from phones behind
//!   NAT; `downloads` and `files`: deployment files streamed from the file store
//!   (`Range`, per-job tokens) and uploads streamed into it.
//! * `admin`: the admin API (JSON, bearer token), its routes in one table
//!   (`admin::route`), handlers by what they manage.
//!
//! Background work:
//! * `contact`: contact-me (`contact::planner`, sans-IO: one per phone per minute,
//!   backoff, the contact gap; `contact::sender`: the POST, timeouts, bounded concurrency;
//!   `contact::target`: the phone's URI and whom it may name).
//! * `retention`: deletes old audit records and old jobs that are over
//!   (`audit-retention-days`, `job-retention-days`), hourly, off the executor.
//!
//! Plumbing:
//! * `http`: listeners with connection caps, TLS deadlines, keep-alive and graceful
//!   shutdown; `limits`: the cap per source and the bounded log of refused connections.
//! * `metrics`: what `GET /metrics` answers (Prometheus text format; bounded labels, no
//!   phone-supplied string); `tasks`: every task started in the node's span, so that every
//!   log line names the node (`node-name`).
//! * [`tls`]: the one place the TLS provider and versions are chosen; `uri`: path segments
//!   and query strings decoded strictly, components encoded; `secrets`: what is sealed
//!   with `secrets.key`; [`clock`]: the service's one clock.

mod admin;
mod bootstrap;
pub mod clock;
pub mod config;
mod console;
mod contact;
pub mod datadir;
mod dcmp;
mod downloads;
mod error;
mod files;
mod http;
mod limits;
mod metrics;
mod mobility;
pub mod pki;
mod provisioning;
mod retention;
mod routes;
mod secrets;
mod service;
mod sessions;
mod shared_digest;
mod tasks;
pub mod tls;
mod uri;
mod wpi;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, StoreKind, StoreLocation};
pub use datadir::DataDir;
pub use error::ServerError;
pub use http::http1_builder;
pub use limits::RefusedConnections;
pub use service::{Running, start, start_with_clock};
pub use wpi::LOGIN_SERVICE_PATH;
