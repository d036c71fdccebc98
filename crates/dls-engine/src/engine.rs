//! [`Engine::handle`]: one phone message in, the reply and the state changes out.

use std::collections::{HashSet, VecDeque};

use dls_message::fragment::{FragmentLimits, split, split_by};
use dls_message::{Action, DlsMessage, Item, ItemList, MacAddr, Reason, ReplyStatus, WorkpointMessage};

use crate::config::{EngineConfig, UnknownDevicePolicy};
use crate::desired::Desired;
use crate::device::{Change, DeviceSnapshot, ItemKey, Note, UnixTime, WriteOutcome, WrittenRecord, mac_of};
use crate::diff::{fingerprint, to_write};
use crate::session::{Awaiting, Session};

/// The protocol engine. Cheap to share: it holds only its configuration.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
}

/// Everything the engine needs to answer one message.
#[derive(Debug)]
pub struct Input<'a> {
    /// The time, from the shell's clock.
    pub now: UnixTime,
    /// The phone's message.
    pub message: &'a WorkpointMessage,
    /// The interaction this message belongs to (by its session cookie), if any.
    pub session: Option<Session>,
    /// What the store knows of the device ([`Engine::identify`] says which device);
    /// [`DeviceSnapshot::unknown`] when it knows nothing or no device could be identified.
    pub device: &'a DeviceSnapshot,
    /// The device's desired configuration.
    pub desired: &'a Desired,
}

/// The engine's answer.
#[derive(Debug)]
pub struct Output {
    /// The message to send back; it carries the nonce of the message it answers.
    pub reply: DlsMessage,
    /// The interaction's state, to hand back with the next message; `None` when the
    /// reply ends the interaction (`CleanUp`).
    pub session: Option<Session>,
    /// What to persist, in one transaction, before the reply is sent.
    pub changes: Vec<Change>,
    /// What to log.
    pub notes: Vec<Note>,
}

impl Engine {
    /// An engine with `config`.
    #[must_use]
    pub fn new(config: EngineConfig) -> Self {
        Self { config }
    }

    /// The engine's configuration.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Which device a message is about: its session's, or else its `mac-addr` item's.
    #[must_use]
    pub fn identify(message: &WorkpointMessage, session: Option<&Session>) -> Option<MacAddr> {
        session.map(|s| s.mac).or_else(|| mac_of(message.items.as_deref()))
    }

    /// Answers one message.
    #[must_use]
    pub fn handle(&self, input: Input<'_>) -> Output {
        let Input { now, message, session, device, desired } = input;
        let mut run = Run { engine: self, now, message, device, desired, changes: Vec::new(), notes: Vec::new() };
        let (reply, session) = match session {
            Some(s) if message.reason.value == Reason::ReplyTo => run.continue_interaction(s),
            Some(s) if message.reason.value == Reason::CleanUp => run.phone_clean_up(Some(s)),
            // A new interaction (e.g. the phone restarted and kept its cookie): start afresh.
            Some(_) | None => run.begin(),
        };
        Output { reply, session, changes: run.changes, notes: run.notes }
    }
}

/// The work of answering one message.
struct Run<'a> {
    engine: &'a Engine,
    now: UnixTime,
    message: &'a WorkpointMessage,
    device: &'a DeviceSnapshot,
    desired: &'a Desired,
    changes: Vec<Change>,
    notes: Vec<Note>,
}

type Answer = (DlsMessage, Option<Session>);

impl Run<'_> {
    fn nonce(&self) -> String {
        self.message.header.nonce.clone()
    }

    fn reply(&self, action: Action, items: Option<ItemList>) -> DlsMessage {
        DlsMessage::new(self.nonce(), action, items)
    }

    /// Ends the interaction without work: a bare `CleanUp`, nothing recorded.
    fn refuse(&mut self, why: &'static str) -> Answer {
        self.changes.clear();
        self.notes.push(Note::Refused(why));
        (self.reply(Action::CleanUp, None), None)
    }

    /// Ends the interaction normally.
    fn clean_up(&self, send_solicited: bool) -> Answer {
        let items = send_solicited.then(|| vec![Item::new("send-solicited", "true")]);
        (self.reply(Action::CleanUp, items), None)
    }

    fn nonce_replayed(&self, session: Option<&Session>) -> bool {
        let n = &self.message.header.nonce;
        let in_this = session.is_some_and(|s| s.nonces.iter().any(|x| x == n));
        !in_this && self.device.recent_nonces.iter().any(|x| x == n)
    }

    /// A message that is not part of an interaction in progress.
    fn begin(&mut self) -> Answer {
        let reason = self.message.reason.value.clone();
        if reason == Reason::ReplyTo {
            return self.refuse("reply-to without a session");
        }
        if let Reason::Other(_) = reason {
            return self.refuse("unknown reason for contact");
        }
        let Some(mac) = mac_of(self.message.items.as_deref()) else {
            return self.refuse("no mac-addr in a message that starts an interaction");
        };
        if self.nonce_replayed(None) {
            return self.refuse("nonce already used in an earlier interaction");
        }
        if !self.device.known {
            if self.engine.config.unknown_devices == UnknownDevicePolicy::Reject {
                return self.refuse("unknown device, and the policy rejects unknown devices");
            }
            self.changes.push(Change::Register);
        }
        self.changes.push(Change::Contact { at: self.now, reason: reason.clone() });
        self.changes.push(Change::Nonce(self.nonce()));
        let reported: Vec<Item> = self.message.items.iter().flatten().filter(|i| i.status.is_none()).cloned().collect();

        let mut session = Session {
            mac,
            reason: reason.clone(),
            started: self.now,
            nonces: vec![self.nonce()],
            max_items: self.message.header.max_items,
            awaiting: Awaiting::ReadAll,
            collected: Vec::new(),
            collected_bytes: 0,
            pending_writes: VecDeque::new(),
        };
        match reason {
            Reason::StartUp | Reason::Solicited => {
                if !reported.is_empty() {
                    self.changes.push(Change::MergeInventory(reported.clone()));
                }
                let changed_flag = self.message.item("configuration-changed-flag").is_some_and(|v| v.trim() == "true");
                let stale = self
                    .device
                    .inventory_at
                    .is_none_or(|at| self.now.since(at) > self.engine.config.inventory_max_age_secs);
                if !self.device.known || changed_flag || stale {
                    session.awaiting = Awaiting::ReadAll;
                    return (self.reply(Action::ReadAllItems, None), Some(session));
                }
                let inventory = merged(&self.device.inventory, &reported);
                self.start_writes(session, &inventory)
            }
            Reason::LocalChanges | Reason::InventoryChanges => {
                if !reported.is_empty() {
                    self.changes.push(Change::MergeInventory(reported.clone()));
                }
                if self.desired.reassert_on_local_changes {
                    let inventory = merged(&self.device.inventory, &reported);
                    self.start_writes(session, &inventory)
                } else {
                    self.clean_up(false)
                }
            }
            Reason::Status => {
                let deployment: Vec<Item> =
                    reported.iter().filter(|i| i.name.starts_with("file-deployment-")).cloned().collect();
                self.changes.push(Change::DeploymentStatus(deployment));
                self.clean_up(false)
            }
            Reason::CleanUp => self.phone_clean_up(None),
            _ => self.refuse("unexpected reason"),
        }
    }

    /// Computes the writes against `inventory` and sends the first, or ends.
    fn start_writes(&mut self, mut session: Session, inventory: &[Item]) -> Answer {
        let view = DeviceSnapshot { inventory: inventory.to_vec(), ..self.device.clone() };
        let items = to_write(&self.desired.items, &view, &self.engine.config.fingerprint_key);
        if items.is_empty() {
            return self.clean_up(false);
        }
        let limits = FragmentLimits::for_max_items(session.max_items);
        let parts =
            split(items.clone(), &limits).or_else(|_| split_by(items, &limits, |_| None::<()>)).unwrap_or_default();
        session.pending_writes = parts.into();
        self.send_next_write(session)
    }

    fn send_next_write(&mut self, mut session: Session) -> Answer {
        match session.pending_writes.pop_front() {
            Some(items) => {
                session.awaiting = Awaiting::Write(items.clone());
                (self.reply(Action::WriteItems, Some(items)), Some(session))
            }
            None => self.clean_up(false),
        }
    }

    fn phone_clean_up(&mut self, _session: Option<Session>) -> Answer {
        let reason = self.message.item("cleanup-reason").map(str::to_owned);
        self.changes.push(Change::PhoneCleanUp { reason });
        self.clean_up(false)
    }

    /// A `reply-to` within an interaction.
    fn continue_interaction(&mut self, mut session: Session) -> Answer {
        if let Some(mac) = mac_of(self.message.items.as_deref()) {
            if mac != session.mac {
                return self.refuse("mac-addr differs from the session's device");
            }
        }
        if self.nonce_replayed(Some(&session)) {
            return self.refuse("nonce already used in an earlier interaction");
        }
        if session.saw_nonce(&self.message.header.nonce) {
            self.changes.push(Change::Nonce(self.nonce()));
        }
        let answered = self.message.reason.action.clone();
        let status = self.message.reason.status.clone();
        match (&session.awaiting, answered) {
            (Awaiting::ReadAll, Some(Action::ReadAllItems)) => self.read_all_reply(session, status),
            (Awaiting::Write(_), Some(Action::WriteItems)) => self.write_reply(session, status),
            _ => self.refuse("reply-to for an action that was not asked"),
        }
    }

    fn read_all_reply(&mut self, mut session: Session, status: Option<ReplyStatus>) -> Answer {
        match status {
            Some(ReplyStatus::Accepted) | None => {}
            Some(ReplyStatus::Busy) => {
                self.notes.push(Note::Busy);
                return self.clean_up(true);
            }
            Some(other) => {
                self.notes.push(Note::ActionFailed(format!("ReadAllItems: {other}")));
                return self.clean_up(false);
            }
        }
        for item in self.message.items.iter().flatten() {
            session.collected_bytes += item.name.len() + item.value.len();
            session.collected.push(item.clone());
        }
        if session.collected.len() > self.engine.config.max_collected_items
            || session.collected_bytes > self.engine.config.max_collected_bytes
        {
            return self.refuse("fragmented reply larger than the limits");
        }
        if self.message.header.more_fragments() {
            return (self.reply(Action::GetNextFragment, None), Some(session));
        }
        let items = std::mem::take(&mut session.collected);
        session.collected_bytes = 0;
        self.changes.push(Change::ReplaceInventory { items: items.clone(), at: self.now });
        self.start_writes(session, &items)
    }

    fn write_reply(&mut self, session: Session, status: Option<ReplyStatus>) -> Answer {
        let Awaiting::Write(sent) = &session.awaiting else {
            return self.refuse("reply-to for an action that was not asked");
        };
        match status {
            Some(ReplyStatus::Accepted) | None => {}
            Some(ReplyStatus::Busy) => {
                // The work stays: the next interaction computes it again.
                self.notes.push(Note::Busy);
                return self.clean_up(true);
            }
            Some(other) => {
                self.notes.push(Note::ActionFailed(format!("WriteItems: {other}")));
                return self.clean_up(false);
            }
        }
        let refused: Vec<&Item> = self.message.items.iter().flatten().filter(|i| i.status.is_some()).collect();
        let refused_keys: HashSet<ItemKey> = refused.iter().map(|i| ItemKey::of(i)).collect();
        let key = &self.engine.config.fingerprint_key;
        let mut records = Vec::with_capacity(sent.len());
        let mut applied = Vec::new();
        let reported: HashSet<ItemKey> = self.device.inventory.iter().map(ItemKey::of).collect();
        for item in sent {
            let k = ItemKey::of(item);
            let outcome = match refused.iter().find(|r| ItemKey::of(r) == k).and_then(|r| r.status.clone()) {
                Some(s) => WriteOutcome::Refused(s),
                None => {
                    // Only values the phone reports anyway go into the inventory: a
                    // write-only value (a password) is kept as a fingerprint only.
                    if reported.contains(&k) {
                        applied.push(item.clone());
                    }
                    WriteOutcome::Accepted
                }
            };
            records.push((k, WrittenRecord { fingerprint: fingerprint(key, item), outcome }));
        }
        if !refused_keys.is_empty() {
            self.notes.push(Note::ItemsRefused(refused_keys.len()));
        }
        self.changes.push(Change::Written(records));
        if !applied.is_empty() {
            self.changes.push(Change::MergeInventory(applied));
        }
        self.send_next_write(session)
    }
}

/// `base` updated with `newer` (by item key), in `base`'s order then new keys.
fn merged(base: &[Item], newer: &[Item]) -> Vec<Item> {
    let mut out: Vec<Item> = base.to_vec();
    let mut at: std::collections::HashMap<ItemKey, usize> =
        out.iter().enumerate().map(|(i, item)| (ItemKey::of(item), i)).collect();
    for n in newer {
        match at.get(&ItemKey::of(n)) {
            Some(&i) => out[i] = n.clone(),
            None => {
                at.insert(ItemKey::of(n), out.len());
                out.push(n.clone());
            }
        }
    }
    out
}
