//! `dls message decode|encode`.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use dls_message::{EncodeOptions, Message, ValueEscaping};

use crate::exit::malformed;
use crate::io::read_input;

#[derive(Debug, Subcommand)]
pub(crate) enum MessageCmd {
    /// Decode a WorkpointMessage or DLSMessage (XML) and print it as JSON.
    Decode {
        /// The XML file; `-` or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// Encode a message given as JSON into canonical XML.
    Encode {
        /// The JSON file; `-` or nothing for stdin.
        file: Option<PathBuf>,
        /// Replace `&`, `<`, `>` in item values instead of escaping them (for early firmware).
        #[arg(long)]
        legacy_sanitise: bool,
    },
}

pub(crate) fn run(cmd: MessageCmd) -> anyhow::Result<()> {
    match cmd {
        MessageCmd::Decode { file } => {
            let input = read_input(file.as_deref())?;
            let msg = dls_message::decode(&input).map_err(malformed)?;
            let mut out = serde_json::to_string_pretty(&msg)?;
            out.push('\n');
            std::io::stdout().lock().write_all(out.as_bytes())?;
        }
        MessageCmd::Encode { file, legacy_sanitise } => {
            let input = read_input(file.as_deref())?;
            let msg: Message =
                serde_json::from_slice(&input).map_err(|e| malformed(format!("not a message in JSON: {e}")))?;
            let escaping = if legacy_sanitise { ValueEscaping::LegacySanitise } else { ValueEscaping::Standard };
            let xml = dls_message::encode(&msg, &EncodeOptions::default().with_value_escaping(escaping))
                .map_err(malformed)?;
            std::io::stdout().lock().write_all(xml.as_bytes())?;
        }
    }
    Ok(())
}
