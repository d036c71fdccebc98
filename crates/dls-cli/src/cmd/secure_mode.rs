//! `dls pin …` and `dls secure-mode-data …` (being built: see issue 3).

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum PinCmd {
    /// Print a fresh PIN.
    Generate,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecureModeDataCmd {
    /// Seal an ItemList.
    Seal,
}

pub(crate) fn run_pin(_cmd: PinCmd) -> anyhow::Result<()> {
    Err(crate::exit::fail(crate::exit::OTHER, "not built yet"))
}

pub(crate) fn run_secure_mode_data(_cmd: SecureModeDataCmd) -> anyhow::Result<()> {
    Err(crate::exit::fail(crate::exit::OTHER, "not built yet"))
}
