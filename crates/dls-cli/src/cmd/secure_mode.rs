//! `dls pin generate` and `dls secure-mode-data seal|open`.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use dls_message::{Item, Limits, MacAddr};
use dls_secure_mode::{DEFAULT_ITERATIONS, DEFAULT_PIN_LENGTH, ErrorKind, Pin, PinError, SealParams};
use zeroize::{Zeroize, Zeroizing};

use crate::exit::{AUTH, MALFORMED, OTHER, USAGE, fail, malformed, usage};
use crate::io::read_input;

#[derive(Debug, Subcommand)]
pub(crate) enum PinCmd {
    /// Print a fresh random PIN on stdout, digits only. The last 3 digits are the
    /// bootstrapping TAN; the others unlock secure-mode-data.
    Generate {
        /// Number of digits, 9 to 32.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_PIN_LENGTH)]
        length: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecureModeDataCmd {
    /// Seal an ItemList XML document for one phone; print the Base64 text.
    Seal {
        #[command(flatten)]
        key: KeyArgs,
        /// PBKDF2 iterations, 100000 to 10000000.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
        /// The ItemList XML document; `-` or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// Open secure-mode-data for one phone; print the items as JSON.
    Open {
        #[command(flatten)]
        key: KeyArgs,
        /// The Base64 text (white space is ignored); `-` or nothing for stdin.
        file: Option<PathBuf>,
    },
}

/// The PIN and the phone it is for.
#[derive(Args)]
pub(crate) struct KeyArgs {
    /// The PIN (digits; spaces and '-' between groups are ignored). Prefer the environment
    /// variable DLS_PIN: a command line is visible to other users of the machine.
    #[arg(long, env = "DLS_PIN", hide_env_values = true)]
    pin: String,
    /// The phone's MAC address: 00:01:E3:25:EA:13, 00-01-e3-25-ea-13 or 0001E325EA13.
    #[arg(long)]
    mac: String,
}

impl fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyArgs").field("pin", &"(redacted)").field("mac", &self.mac).finish()
    }
}

impl KeyArgs {
    /// Parses both; wipes the PIN's text.
    fn into_pin_and_mac(mut self) -> anyhow::Result<(Pin, MacAddr)> {
        let pin = Pin::parse(&self.pin);
        self.pin.zeroize();
        let pin = pin.map_err(|e| usage(format!("--pin: {e}")))?;
        let mac = MacAddr::parse(&self.mac).map_err(|e| usage(format!("--mac: {e}")))?;
        Ok((pin, mac))
    }
}

pub(crate) fn run_pin(cmd: PinCmd) -> anyhow::Result<()> {
    match cmd {
        PinCmd::Generate { length } => {
            let pin = Pin::generate_with_length(length).map_err(|e| match e {
                PinError::Length { .. } => usage(format!("--length: {e}")),
                _ => fail(OTHER, e),
            })?;
            let mut line = Zeroizing::new(String::with_capacity(pin.len() + 1));
            line.push_str(pin.digits());
            line.push('\n');
            std::io::stdout().lock().write_all(line.as_bytes())?;
        }
    }
    Ok(())
}

pub(crate) fn run_secure_mode_data(cmd: SecureModeDataCmd) -> anyhow::Result<()> {
    match cmd {
        SecureModeDataCmd::Seal { key, iterations, file } => {
            let params = SealParams::new(iterations).map_err(|e| usage(format!("--iterations: {e}")))?;
            let (pin, mac) = key.into_pin_and_mac()?;
            let input = Zeroizing::new(read_input(file.as_deref())?);
            let mut items = dls_message::decode_item_list(&input, &Limits::default())
                .map_err(|e| malformed(format!("not an ItemList document: {e}")))?;
            let sealed = dls_secure_mode::seal(&pin, &mac, &items, &params);
            wipe(&mut items);
            let mut text = sealed.map_err(from_secure_mode)?;
            text.push('\n');
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        SecureModeDataCmd::Open { key, file } => {
            let (pin, mac) = key.into_pin_and_mac()?;
            let input = read_input(file.as_deref())?;
            let text = std::str::from_utf8(&input).map_err(|_| malformed("secure-mode-data is not ASCII text"))?;
            let mut items = dls_secure_mode::open(&pin, &mac, text).map_err(from_secure_mode)?;
            let json = serde_json::to_string_pretty(&items).map(|s| Zeroizing::new(s + "\n"));
            wipe(&mut items);
            std::io::stdout().lock().write_all(json?.as_bytes())?;
        }
    }
    Ok(())
}

/// Maps the library's error kinds to exit codes.
fn from_secure_mode(e: dls_secure_mode::Error) -> anyhow::Error {
    let code = match e.kind() {
        ErrorKind::Malformed => MALFORMED,
        ErrorKind::Authentication => AUTH,
        ErrorKind::InvalidParameter => USAGE,
        _ => OTHER,
    };
    fail(code, e)
}

/// Wipes the item values (certificates and private keys) before their memory is freed.
fn wipe(items: &mut [Item]) {
    for item in items {
        item.value.zeroize();
    }
}
