//! The engine, driven in memory: a tiny "shell" applies its changes to an in-memory
//! device, exactly as the real service commits them to the store.

mod firmware;
mod flows;
mod harness;
mod jobs;
mod mobility;
mod properties;
mod refusals;
mod secrets;
mod secure;
mod unsendable;
