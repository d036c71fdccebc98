//! Integration tests of `dls-secure-mode`: one binary, a module per topic.

mod common;
mod docs;
mod errors;
mod properties;
mod vectors;
