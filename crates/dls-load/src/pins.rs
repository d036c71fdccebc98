//! The PINs of a fleet's devices, for secure-mode bootstrap runs.

use std::collections::HashMap;

use dls_message::MacAddr;
use dls_secure_mode::Pin;
use zeroize::Zeroizing;

/// The PINs of a fleet's devices, by MAC, as `dls device add --mode pin` issued them.
/// Its `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Pins(HashMap<MacAddr, Zeroizing<String>>);

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pins({} devices)", self.0.len())
    }
}

impl Pins {
    /// No PINs.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `MAC PIN` lines (the MAC in any common spelling, e.g. colon-separated as
    /// `dls device list` prints it; the PIN as issued, spaces and dashes allowed). Empty
    /// lines and lines starting with `#` are skipped.
    ///
    /// # Errors
    /// The first bad line, by number (a PIN is never echoed): no PIN, not a MAC, not a
    /// PIN, or a MAC given twice.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pins = Self::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = n + 1;
            let (mac, pin) = line.split_once(char::is_whitespace).ok_or_else(|| format!("line {n}: want `MAC PIN`"))?;
            let mac = MacAddr::parse(mac).map_err(|e| format!("line {n}: {e}"))?;
            let pin = pin.trim();
            Pin::parse(pin).map_err(|e| format!("line {n}: not a PIN: {e}"))?;
            if pins.0.insert(mac, Zeroizing::new(pin.to_owned())).is_some() {
                return Err(format!("line {n}: {} is given twice", mac.colon_separated()));
            }
        }
        Ok(pins)
    }

    /// Sets the PIN of `mac`.
    pub fn insert(&mut self, mac: MacAddr, pin: impl Into<String>) {
        self.0.insert(mac, Zeroizing::new(pin.into()));
    }

    /// The PIN of `mac`.
    #[must_use]
    pub fn get(&self, mac: &MacAddr) -> Option<&str> {
        self.0.get(mac).map(|p| p.as_str())
    }

    /// How many devices have a PIN.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no device has a PIN.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
