//! The phone library's own tests, with `curl` as an independent client and a scripted DLS
//! (`scripted.rs`) for the phone's side of server-initiated work.

mod agent;
mod contact;
mod dcmp;
mod deployment;
mod mobility;
mod pins;
mod scripted;
