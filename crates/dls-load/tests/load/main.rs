//! The load generator's tests: one binary, a module per topic.

mod fleet;
mod histogram;
mod mobility;
mod pins;
