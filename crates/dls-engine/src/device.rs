//! What the engine knows of a device, and the changes it asks the shell to persist.

use std::collections::HashMap;
use std::net::IpAddr;

use dls_message::{Item, ItemStatus, MacAddr, Reason};

use crate::security::{AuditEvent, IssuedCertificate, Security};

/// Seconds since the Unix epoch, as given by the shell (the engine has no clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Seconds from `earlier` to `self` (0 if `earlier` is later).
    #[must_use]
    pub fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// An item's identity: its name and index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ItemKey {
    /// `Item@name`.
    pub name: String,
    /// `Item@index`.
    pub index: Option<u32>,
}

impl ItemKey {
    /// The key of `item`.
    #[must_use]
    pub fn of(item: &Item) -> Self {
        Self { name: item.name.clone(), index: item.index }
    }
}

/// How the phone took a value the service wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteOutcome {
    /// Applied.
    Accepted,
    /// Refused with this status (`read only`, `unknown item`, …).
    Refused(ItemStatus),
    /// Not sent: the value cannot be sent to a phone (see [`dls_message::check`]), for this
    /// reason. It is not tried again until the desired value changes.
    NotSent(String),
}

/// The last value written to one item: a keyed fingerprint (never the value: write-only
/// items are passwords) and how the phone took it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenRecord {
    /// [`crate::diff::fingerprint`] of the value written.
    pub fingerprint: [u8; 32],
    /// The phone's verdict.
    pub outcome: WriteOutcome,
}

/// What the store knows of a device when one of its messages arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// Whether the device is registered (known to the store).
    pub known: bool,
    /// The items the phone reported, last value each.
    pub inventory: Vec<Item>,
    /// When the last full inventory (`ReadAllItems`) was taken.
    pub inventory_at: Option<UnixTime>,
    /// The last write to each item.
    pub written: HashMap<ItemKey, WrittenRecord>,
    /// Nonces the device used in its recent interactions (the store keeps a bounded number).
    pub recent_nonces: Vec<String>,
    /// Its security mode and bootstrap state.
    pub security: Security,
    /// Its jobs that are not over (queued, busy-retry, sent), oldest first.
    pub jobs: Vec<crate::jobs::Job>,
}

impl DeviceSnapshot {
    /// A snapshot of a device the store does not know.
    #[must_use]
    pub fn unknown() -> Self {
        Self::default()
    }
}

/// A state change the shell must persist, all of one message's changes in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Register a device seen for the first time, in the security mode the policy for new
    /// devices says.
    Register {
        /// Its security mode.
        mode: crate::security::SecurityMode,
    },
    /// The device made contact.
    Contact {
        /// When.
        at: UnixTime,
        /// Why.
        reason: Reason,
    },
    /// Record a nonce the device used (for replay detection).
    Nonce(String),
    /// Items the phone reported: update the inventory (items with a status are ignored).
    MergeInventory(Vec<Item>),
    /// A complete inventory (`ReadAllItems`): replace the stored one.
    ReplaceInventory {
        /// Every item reported.
        items: Vec<Item>,
        /// When.
        at: UnixTime,
    },
    /// The outcome of writes, per item.
    Written(Vec<(ItemKey, WrittenRecord)>),
    /// A deployment status report (`file-deployment-*` items).
    DeploymentStatus(Vec<Item>),
    /// The phone ended the interaction itself (`clean-up`), with its reason if any.
    PhoneCleanUp {
        /// The `cleanup-reason` item.
        reason: Option<String>,
    },
    /// A client certificate was issued for a bootstrap: it becomes the device's current
    /// certificate; the previous one, if any, is revoked.
    IssueCertificate {
        /// When.
        at: UnixTime,
        /// The certificate.
        certificate: IssuedCertificate,
    },
    /// Keep the bootstrap material just issued (sealed by the shell), replacing any kept
    /// before: the device's start-ups get it again until it bootstraps. Whatever ends the
    /// bootstrap (bootstrapped, failed, reset, a new PIN, a mode change) drops it.
    KeepBootstrap {
        /// When it was issued.
        at: UnixTime,
        /// The serial number of its certificate.
        serial: String,
        /// The material, sealed.
        sealed: crate::security::SealedBootstrap,
    },
    /// Bootstrapping completed: the device is in secure mode; its PIN is wiped.
    Bootstrapped {
        /// When.
        at: UnixTime,
    },
    /// The device sent a wrong TAN: one more failure counted.
    TanFailed,
    /// Bootstrapping failed: a new PIN is required (the outstanding one is wiped); the
    /// current certificate is revoked when `revoke_certificate`.
    BootstrapFailed {
        /// When.
        at: UnixTime,
        /// Whether to revoke the device's current certificate.
        revoke_certificate: bool,
    },
    /// The phone lost its secure-mode state (it accepted a factory reset): the device
    /// returns to not bootstrapped and keeps its security mode; its TAN failures are
    /// cleared, any outstanding PIN is wiped and its certificates are revoked. A `nopin`
    /// device bootstraps again at its next start-up on the default port; a `pin` device
    /// needs a new PIN first.
    SecurityReset {
        /// When.
        at: UnixTime,
    },
    /// The phone lost its configuration (a factory reset): the stored inventory is stale,
    /// so it is read again at the next start-up, and what was written to the phone is
    /// forgotten, so write-only items (passwords) are written again.
    ForgetConfiguration,
    /// The address the device called from (the peer of an interaction's first message):
    /// where its contact-me may go.
    CalledFrom(IpAddr),
    /// A security event for the audit log.
    Audit(AuditEvent),
    /// A job moved on.
    Job(crate::jobs::JobUpdate),
    /// A mobility user's state changed (see [`crate::mobility`]).
    Mobility(crate::mobility::MobilityChange),
}

/// Something the shell should log: refusals and notable protocol events. Never holds
/// secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The message was refused; the reply is a `CleanUp` with the refusal's
    /// `cleanup-reason`.
    Refused(crate::refusal::Refusal),
    /// The phone answered `busy`; the work is kept for later.
    Busy,
    /// The phone reported that an action failed.
    ActionFailed(String),
    /// Items the phone refused, with their statuses.
    ItemsRefused(usize),
    /// An item that cannot be sent to a phone was skipped (the rest was sent). Noted once
    /// per value: the skip is recorded as the item's write outcome.
    ItemNotSent {
        /// The item: its name (quoted, cut) and index.
        item: String,
        /// Why it cannot be sent.
        reason: String,
    },
}

/// Builds a map key → record, for tests and stores.
#[must_use]
pub fn written_map(records: impl IntoIterator<Item = (ItemKey, WrittenRecord)>) -> HashMap<ItemKey, WrittenRecord> {
    records.into_iter().collect()
}

/// The MAC of a message, from its `mac-addr` item.
#[must_use]
pub fn mac_of(items: Option<&[Item]>) -> Option<MacAddr> {
    let v = items?.iter().find(|i| i.name == "mac-addr" && i.status.is_none())?;
    MacAddr::parse(v.value.trim()).ok()
}
