//! The exit codes of `dls` and the errors that carry them.

use std::fmt;

/// Success.
pub(crate) const OK: u8 = 0;
/// Anything not listed below.
pub(crate) const OTHER: u8 = 1;
/// The command line is wrong.
pub(crate) const USAGE: u8 = 2;
/// The input is malformed.
pub(crate) const MALFORMED: u8 = 3;
/// Authentication failed (wrong PIN, wrong credentials).
pub(crate) const AUTH: u8 = 4;

/// An error with its exit code; wrap it in `anyhow::Error` and `main` finds the code.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// An `anyhow::Error` that exits with `code`.
pub(crate) fn fail(code: u8, message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Exit { code, message: message.to_string() })
}

/// Malformed input (exit 3).
pub(crate) fn malformed(message: impl fmt::Display) -> anyhow::Error {
    fail(MALFORMED, message)
}

/// A usage error found after parsing (exit 2).
pub(crate) fn usage(message: impl fmt::Display) -> anyhow::Error {
    fail(USAGE, message)
}

pub(crate) fn code_of(e: &anyhow::Error) -> u8 {
    e.chain().find_map(|c| c.downcast_ref::<Exit>()).map_or(OTHER, |x| x.code)
}

/// The error and its causes on one line (anyhow's alternate form, `a: b: c`).
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace(['\n', '\r'], " ")
}
