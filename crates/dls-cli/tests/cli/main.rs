//! The `dls` binary driven as a user drives it: arguments, stdin, stdout, exit codes.

mod accounts;
mod browser;
mod cluster;
mod common;
mod database_tls;
mod items;
mod jobs;
mod message;
mod mobility;
mod mobility_served;
mod phone;
mod secure_mode;
mod serve;
mod serve_config;
mod serve_security;
mod store;
mod users;
