//! Items whose values are secrets: what a phone reports under these names is never kept.
//!
//! Phones report some passwords back (a mobility phone sends the `user-pwd` its user
//! typed; some firmware answers `ReadAllItems` with `sip-pwd` or `admin-pwd` filled in),
//! and bootstrapping moves keys and the TAN through items. The engine drops such items
//! from every change it asks the shell to persist (`scrub`, at the end of
//! [`crate::Engine::handle`]): the inventory, deployment reports and the items a job's
//! answer carries. What the DLS itself writes to those items
//! is remembered as a keyed fingerprint only ([`crate::diff::fingerprint`]).
//!
//! The rule is by name, and errs on the side of secrecy: the protocol reference calls
//! these items write-only, and the vendor's item names spell passwords `pwd`, `password`
//! or `passwd`, sometimes with a `-unicode` suffix.

use dls_message::Item;

use crate::device::Change;

/// Items that carry key material whatever their name says (the others, such as
/// `bootstrapping-tan` or `restart-password`, are caught by the name rule below).
const SECRET_NAMES: &[&str] = &["secure-mode-data", "dls-client-certificate"];

/// Whether an item of this name holds a secret (a password, a key, a TAN).
#[must_use]
pub fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if SECRET_NAMES.contains(&lower.as_str()) {
        return true;
    }
    ["pwd", "passw", "passphrase", "private-key", "psk"].iter().any(|p| lower.contains(p))
        || lower.split(['-', '_', '.']).any(|w| matches!(w, "secret" | "tan"))
}

/// Removes secret items from `items`; returns how many were removed.
pub(crate) fn drop_secrets(items: &mut Vec<Item>) -> usize {
    let before = items.len();
    items.retain(|i| !is_secret(&i.name));
    before - items.len()
}

/// Removes secret items from every change that would persist item values; returns how
/// many were removed.
pub(crate) fn scrub(changes: &mut [Change]) -> usize {
    let mut dropped = 0;
    for change in changes {
        match change {
            Change::MergeInventory(items) | Change::DeploymentStatus(items) => dropped += drop_secrets(items),
            Change::ReplaceInventory { items, .. } => dropped += drop_secrets(items),
            Change::Job(update) => {
                if let Some(items) = update.items.as_mut() {
                    dropped += drop_secrets(items);
                }
            }
            _ => {}
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_keys_and_tans_are_secret() {
        for name in [
            "user-pwd",
            "user-pwd-unicode",
            "admin-pwd",
            "admin-pwd-unicode",
            "sip-pwd",
            "file-pwd",
            "ldap-pwd",
            "Sip-Password",
            "ldap-passwd",
            "wlan-psk",
            "vpn-passphrase",
            "bootstrapping-tan",
            "secure-mode-data",
            "dls-client-certificate",
            "restart-password",
            "eap-secret",
            "tls-private-key",
        ] {
            assert!(is_secret(name), "{name}");
        }
    }

    #[test]
    fn ordinary_items_are_not() {
        for name in [
            "mac-addr",
            "e164",
            "basic-e164",
            "sntp-addr",
            "function-key-def",
            "key-label-unicode",
            "max-pin-retries",
            "dls-server-ca",
            "contact-me-uri",
            "software-version",
            "display-id-unicode",
            "sip-mobility-state",
            "standard",
            "reg-addr",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }
}
