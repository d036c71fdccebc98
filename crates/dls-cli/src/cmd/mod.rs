//! One module per group of subcommands.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod jobs;
pub(crate) mod message;
pub(crate) mod phone;
pub(crate) mod secure_mode;
pub(crate) mod serve;
pub(crate) mod store;
pub(crate) mod users;
