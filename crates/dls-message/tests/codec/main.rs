//! The codec's integration tests, one module per topic.

mod common;
mod envelope;
mod hostile;
mod properties;
mod samples;
mod schema;
