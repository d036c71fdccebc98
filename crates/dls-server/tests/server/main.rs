//! The service in-process on ephemeral ports, driven over real TLS: by the project's
//! phone client, and by `curl` and `openssl s_client`, which nobody here wrote.

mod admin;
mod bad_input;
mod bootstrap;
mod cluster;
mod common;
mod connections;
mod console;
mod console_devices;
mod console_pages;
mod console_users;
mod contact_across_nodes;
mod deploy;
mod flows;
mod jobs;
mod metrics;
mod mobility;
mod pins;
mod provisioning;
mod roles;
mod secure;
mod shared_sessions;
mod tls_clients;
mod unsendable;
mod users;
