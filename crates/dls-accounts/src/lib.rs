//! Accounts of the DLS console and admin API, sans-IO: everything about who may do what
//! that does not touch a socket, a database or a clock (the time is passed in).
//!
//! * [`Role`] and [`Need`]: the three roles and what each may do — a `viewer` reads
//!   everything but secrets, an `operator` also manages devices, profiles, jobs, files and
//!   PINs, an `admin` also accounts, credentials and settings ([`Role::may`]).
//! * [`names`]: what an account's or an API token's name may be.
//! * [`password`]: Argon2id password hashes (the `argon2` crate, its default parameters,
//!   which are OWASP's: 19 MiB, 2 passes, 1 lane), verification in constant time, the
//!   password rules, one-time passwords.
//! * [`secret`]: API tokens and console session ids (256 bits from the operating system's
//!   CSPRNG), what the store keeps of them (a SHA-256), and the CSRF token of a session
//!   (an HMAC of its id), checked in constant time.
//! * [`SessionPolicy`]: a console session's idle and absolute timeouts.
//! * [`LoginThrottle`]: failed logins per (account, address) pair, with ceilings per account
//!   and per address that only ever delay: nobody is locked out for longer than a bounded
//!   wait.
//!
//! Nothing here logs, and no secret (a password, a token, a session id) is shown by a
//! `Debug` implementation.

pub mod names;
pub mod password;
mod role;
pub mod secret;
mod session;
mod throttle;

pub use role::{Need, Role, UnknownRole};
pub use session::{SessionCheck, SessionPolicy};
pub use throttle::{LoginThrottle, ThrottleConfig};

/// The actor of a request made with the service's admin token (`admin-token` in the data
/// directory): the first administrator's credential. No account may take this name.
pub const ADMIN_TOKEN_ACTOR: &str = "admin-token";
