//! The `dls` binary driven as a user drives it: arguments, stdin, stdout, exit codes.

mod common;
mod items;
mod jobs;
mod message;
mod phone;
mod secure_mode;
mod serve;
mod serve_config;
mod serve_security;
mod store;
mod users;
