//! The state of one interaction between two messages. The shell keeps it (in memory,
//! keyed by the session cookie) and hands it back with the next message.

use std::collections::VecDeque;

use dls_message::{Item, ItemList, MacAddr, Reason};

use crate::device::UnixTime;

/// What the engine asked the phone, and is waiting to hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// A `ReadAllItems` reply (possibly in fragments).
    ReadAll,
    /// A `WriteItems` reply for these items.
    Write(ItemList),
    /// The reply to the bootstrap `WriteItems` (`goto-secure-mode`).
    Bootstrap,
    /// The `ReadItems` reply with the `bootstrapping-tan`.
    Tan,
    /// The reply to a job's action.
    Job(Box<crate::job_run::JobStep>),
}

/// One interaction in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The device.
    pub mac: MacAddr,
    /// Why the phone called.
    pub reason: Reason,
    /// When the interaction started.
    pub started: UnixTime,
    /// Nonces the phone used in this interaction (bounded).
    pub(crate) nonces: Vec<String>,
    /// The phone's `maxItems`.
    pub(crate) max_items: Option<i64>,
    pub(crate) awaiting: Awaiting,
    /// Items of a fragmented reply collected so far.
    pub(crate) collected: Vec<Item>,
    pub(crate) collected_bytes: usize,
    /// `WriteItems` messages still to send.
    pub(crate) pending_writes: VecDeque<ItemList>,
    /// The items of the message that opened the interaction (kept while the TAN is asked).
    pub(crate) opening: Vec<Item>,
    /// Jobs still to run in this interaction, in order.
    pub(crate) jobs: VecDeque<crate::jobs::Job>,
}

impl Session {
    /// The most nonces remembered per interaction.
    pub(crate) const MAX_NONCES: usize = 16;

    /// How many `WriteItems` messages are still to be sent.
    #[must_use]
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.len()
    }

    pub(crate) fn saw_nonce(&mut self, nonce: &str) -> bool {
        if self.nonces.iter().any(|n| n == nonce) {
            return false;
        }
        if self.nonces.len() == Self::MAX_NONCES {
            self.nonces.remove(0);
        }
        self.nonces.push(nonce.to_owned());
        true
    }
}
