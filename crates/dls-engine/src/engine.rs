//! [`Engine::handle`]: one phone message in, the reply and the state changes out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use dls_message::check::{ItemError, check_item, item_label};
use dls_message::fragment::{FragmentLimits, split, split_by};
use dls_message::{Action, DlsMessage, Item, ItemList, MacAddr, Reason, ReplyStatus, WorkpointMessage};
use subtle::ConstantTimeEq;

use crate::config::{EngineConfig, UnknownDevicePolicy};
use crate::desired::Desired;
use crate::device::{Change, DeviceSnapshot, ItemKey, Note, UnixTime, WriteOutcome, WrittenRecord, mac_of};
use crate::diff::{fingerprint, to_write};
use crate::refusal::Refusal;
use crate::security::{
    AuditEvent, AuditKind, BootstrapKind, BootstrapNeed, BootstrapState, BootstrapSupply, Channel, SecurityMode,
};
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
    /// The connection it came in on.
    pub channel: &'a Channel,
    /// The interaction this message belongs to (by its session cookie), if any.
    pub session: Option<Session>,
    /// What the store knows of the device ([`Engine::identify`] says which device);
    /// [`DeviceSnapshot::unknown`] when it knows nothing or no device could be identified.
    pub device: &'a DeviceSnapshot,
    /// The device's desired configuration.
    pub desired: &'a Desired,
    /// The bootstrap material, when [`Engine::bootstrap_needed`] asked for it.
    pub bootstrap: Option<BootstrapSupply>,
    /// The address the message came from (the connection's peer), when the shell knows
    /// it: recorded as the address the device calls from.
    pub peer: Option<IpAddr>,
    /// The outstanding PIN's TAN (its last three digits), when [`Engine::tan_needed`] asked
    /// for it: the shell opens the sealed PIN for this message only.
    pub tan: Option<&'a str>,
    /// The mobility users' state, when [`Engine::mobility_query`] asked for it (`None`
    /// otherwise).
    pub mobility: Option<&'a crate::mobility::MobilityInput>,
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

    /// Which device a message is about: on the secure port the one its certificate names;
    /// otherwise its session's, or else its `mac-addr` item's.
    #[must_use]
    pub fn identify(message: &WorkpointMessage, session: Option<&Session>, channel: &Channel) -> Option<MacAddr> {
        match channel {
            Channel::Secure { certificate_mac, .. } => *certificate_mac,
            Channel::Default => session.map(|s| s.mac).or_else(|| mac_of(message.items.as_deref())),
        }
    }

    /// Whether answering this message needs bootstrap material (a certificate, and for `pin`
    /// the sealed bundle), which the shell then prepares and passes in [`Input::bootstrap`]:
    /// the material kept for the device when it may be sent again
    /// ([`BootstrapNeed::Reuse`]: within `bootstrap_reuse_secs` of its issue, and still the
    /// device's current certificate), otherwise new material ([`BootstrapNeed::Issue`]),
    /// but for one device at most once in `bootstrap_reissue_secs`. `None` also when that
    /// limit holds: the engine then refuses the start-up.
    #[must_use]
    pub fn bootstrap_needed(
        &self,
        now: UnixTime,
        message: &WorkpointMessage,
        session: Option<&Session>,
        channel: &Channel,
        device: &DeviceSnapshot,
    ) -> Option<BootstrapNeed> {
        let opening = matches!(message.reason.value, Reason::StartUp | Reason::Solicited);
        let in_session = session.is_some() && message.reason.value == Reason::ReplyTo;
        if *channel != Channel::Default || !opening || in_session {
            return None;
        }
        let kind = self.bootstrap_kind(now, device)?;
        match self.bootstrap_source(now, device) {
            Source::Reuse => Some(BootstrapNeed::Reuse(kind)),
            Source::Issue => Some(BootstrapNeed::Issue(kind)),
            Source::RateLimited => None,
        }
    }

    /// Which bootstrap the device may get now on the default port, if any.
    fn bootstrap_kind(&self, now: UnixTime, device: &DeviceSnapshot) -> Option<BootstrapKind> {
        let (mode, state) = self.security_of(device);
        if state != BootstrapState::NotBootstrapped {
            return None;
        }
        match mode {
            SecurityMode::Default => None,
            SecurityMode::Nopin => Some(BootstrapKind::Nopin),
            SecurityMode::Pin => self.pin_usable(now, device).then_some(BootstrapKind::Pin),
        }
    }

    /// Whether the kept material may be sent again, new material issued, or neither.
    fn bootstrap_source(&self, now: UnixTime, device: &DeviceSnapshot) -> Source {
        let s = &device.security;
        let Some(pending) = s.pending.as_ref().filter(|_| device.known) else { return Source::Issue };
        let age = now.since(pending.issued_at);
        if s.certificate.as_deref() == Some(pending.serial.as_str()) && age <= self.config.bootstrap_reuse_secs {
            Source::Reuse
        } else if age < self.config.bootstrap_reissue_secs {
            Source::RateLimited
        } else {
            Source::Issue
        }
    }

    /// Whether answering this message needs the outstanding PIN's TAN ([`Input::tan`]): only
    /// for the reply to the `ReadItems` that asked the phone for it, on the secure port.
    #[must_use]
    pub fn tan_needed(message: &WorkpointMessage, session: Option<&Session>, channel: &Channel) -> bool {
        matches!(channel, Channel::Secure { .. })
            && message.reason.value == Reason::ReplyTo
            && message.reason.action == Some(Action::ReadItems)
            && session.is_some_and(|s| matches!(s.awaiting, Awaiting::Tan))
    }

    /// The mode and state that apply: a device not yet known gets the new-device policy.
    pub(crate) fn security_of(&self, device: &DeviceSnapshot) -> (SecurityMode, BootstrapState) {
        if device.known {
            (device.security.mode, device.security.state)
        } else if self.config.unknown_devices == UnknownDevicePolicy::Register {
            (self.config.new_device_mode, BootstrapState::NotBootstrapped)
        } else {
            (SecurityMode::Default, BootstrapState::NotBootstrapped)
        }
    }

    fn pin_usable(&self, now: UnixTime, device: &DeviceSnapshot) -> bool {
        let s = &device.security;
        s.pin_outstanding && s.pin_issued_at.is_some_and(|at| now.since(at) <= self.config.pin_lifetime_secs)
    }

    /// What a message needs of the mobility users ([`Input::mobility`]), if anything: for
    /// a message that reports `sip-mobility-state` (a mobility phone's), the `reply-to`s of
    /// an interaction that involved mobility, and an opening message of a device with
    /// mobility jobs (`device`, when the shell has loaded it). The shell loads what the
    /// [`crate::MobilityQuery`] says and checks the password the message carries against
    /// the user it names.
    #[must_use]
    pub fn mobility_query(
        message: &WorkpointMessage,
        session: Option<&Session>,
        device: Option<&DeviceSnapshot>,
    ) -> Option<crate::MobilityQuery> {
        crate::mobility::query(message, session, device)
    }

    /// The reply to a message whose changes the store refused because a mobility user
    /// changed meanwhile (`StoreError::Contended`: another phone won a race): a `CleanUp`
    /// saying "busy, try again", nothing committed.
    #[must_use]
    pub fn contended(message: &WorkpointMessage) -> Output {
        let why = Refusal::MobilityBusy;
        let reply = DlsMessage::new(
            message.header.nonce.clone(),
            Action::CleanUp,
            Some(vec![Item::new("cleanup-reason", why.cleanup_reason())]),
        );
        Output { reply, session: None, changes: Vec::new(), notes: vec![Note::Refused(why)] }
    }

    /// Answers one message.
    #[must_use]
    pub fn handle(&self, input: Input<'_>) -> Output {
        let Input { now, message, channel, session, device, desired, bootstrap, peer, tan, mobility } = input;
        // While a user is logged on, the desired configuration is the device's own with the
        // user's on top (see `mobility`).
        let layer = crate::mobility::layer_of(message, session.as_ref(), mobility);
        let layered = crate::mobility::layered(desired, layer.as_ref(), mobility);
        let user_on = crate::mobility::user_on(message, layer.as_ref(), mobility);
        let mut run = Run {
            engine: self,
            now,
            message,
            channel,
            device,
            desired: layered.as_ref().unwrap_or(desired),
            own_desired: desired,
            peer,
            tan,
            mobility,
            layer,
            changes: Vec::new(),
            notes: Vec::new(),
        };
        let (reply, session) = match run.check_channel() {
            Some(refusal) => refusal,
            None => match session {
                Some(s) if message.reason.value == Reason::ReplyTo => run.continue_interaction(s),
                Some(s) if message.reason.value == Reason::CleanUp => run.phone_clean_up(Some(&s)),
                // A new interaction (e.g. the phone restarted and kept its cookie): start afresh.
                Some(_) | None => run.begin(bootstrap),
            },
        };
        let mut changes = run.changes;
        crate::secret_items::scrub(&mut changes);
        let stored_e164 = device.inventory.iter().find(|i| i.name == "e164" && i.index.is_none());
        crate::mobility::scrub_inventory(&mut changes, user_on, stored_e164);
        let mut reply = reply;
        crate::mobility::mark_secure(&mut reply);
        Output { reply, session, changes, notes: run.notes }
    }
}

/// Where a device's bootstrap material comes from now.
enum Source {
    Reuse,
    Issue,
    RateLimited,
}

/// The work of answering one message.
pub(crate) struct Run<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) now: UnixTime,
    pub(crate) message: &'a WorkpointMessage,
    pub(crate) channel: &'a Channel,
    pub(crate) device: &'a DeviceSnapshot,
    /// The desired configuration: the device's own, with the user's on top while one is
    /// logged on.
    pub(crate) desired: &'a Desired,
    /// The device's own desired configuration.
    pub(crate) own_desired: &'a Desired,
    pub(crate) peer: Option<IpAddr>,
    /// The TAN, for the message that answers its `ReadItems`.
    pub(crate) tan: Option<&'a str>,
    /// The mobility users' state, when loaded.
    pub(crate) mobility: Option<&'a crate::mobility::MobilityInput>,
    /// Whose configuration lies on top of the device's (kept in the session).
    pub(crate) layer: Option<crate::mobility::Layer>,
    pub(crate) changes: Vec<Change>,
    pub(crate) notes: Vec<Note>,
}

/// A reply, and the session to keep (none when the reply ends the interaction).
pub(crate) type Answer = (DlsMessage, Option<Session>);

impl Run<'_> {
    fn nonce(&self) -> String {
        self.message.header.nonce.clone()
    }

    pub(crate) fn reply(&self, action: Action, items: Option<ItemList>) -> DlsMessage {
        DlsMessage::new(self.nonce(), action, items)
    }

    pub(crate) fn audit(&mut self, kind: AuditKind, detail: impl Into<String>) {
        self.changes.push(Change::Audit(AuditEvent { at: self.now, kind, detail: detail.into() }));
    }

    /// Ends the interaction without work: a `CleanUp` that says why, nothing recorded.
    pub(crate) fn refuse(&mut self, why: Refusal) -> Answer {
        self.refuse_audited(why, None)
    }

    /// Ends the interaction with a `CleanUp` that says why, recording only `audit`.
    pub(crate) fn refuse_audited(&mut self, why: Refusal, audit: Option<(AuditKind, String)>) -> Answer {
        self.changes.clear();
        if let Some((kind, detail)) = audit {
            self.audit(kind, detail);
        }
        self.refuse_keeping_changes(why)
    }

    /// Ends the interaction with a `CleanUp` that says why, keeping what was recorded so
    /// far.
    pub(crate) fn refuse_keeping_changes(&mut self, why: Refusal) -> Answer {
        self.notes.push(Note::Refused(why));
        (self.reply(Action::CleanUp, Some(vec![Item::new("cleanup-reason", why.cleanup_reason())])), None)
    }

    /// Ends the interaction normally; asks the phone to call back (`send-solicited`) when
    /// it was busy or while jobs remain.
    pub(crate) fn clean_up(&self, send_solicited: bool) -> Answer {
        let items = (send_solicited || self.work_remains()).then(|| vec![Item::new("send-solicited", "true")]);
        (self.reply(Action::CleanUp, items), None)
    }

    fn nonce_replayed(&self, session: Option<&Session>) -> bool {
        let n = &self.message.header.nonce;
        let in_this = session.is_some_and(|s| s.nonces.iter().any(|x| x == n));
        !in_this && self.device.recent_nonces.iter().any(|x| x == n)
    }

    /// On the secure port: the certificate must be the device's current one, and the
    /// message must be about that device. `Some` is the refusal.
    fn check_channel(&mut self) -> Option<Answer> {
        let Channel::Secure { certificate_mac, certificate_serial } = self.channel else { return None };
        let Some(cert_mac) = certificate_mac else {
            return Some(self.refuse(Refusal::CertificateWithoutDevice));
        };
        if let Some(claimed) = mac_of(self.message.items.as_deref())
            && claimed != *cert_mac
        {
            let detail = format!("certificate {certificate_serial} of {cert_mac} presented for {claimed}");
            return Some(
                self.refuse_audited(Refusal::CertificateMismatch, Some((AuditKind::CertificateMismatch, detail))),
            );
        }
        if !self.device.known {
            return Some(self.refuse(Refusal::UnknownDeviceOnSecurePort));
        }
        if self.device.security.certificate.as_deref() != Some(certificate_serial.as_str()) {
            let detail = format!("certificate {certificate_serial} is not the device's current one");
            return Some(
                self.refuse_audited(Refusal::CertificateRevoked, Some((AuditKind::CertificateRefused, detail))),
            );
        }
        None
    }

    /// A message that is not part of an interaction in progress.
    fn begin(&mut self, bootstrap: Option<BootstrapSupply>) -> Answer {
        let reason = self.message.reason.value.clone();
        if reason == Reason::ReplyTo {
            return self.refuse(Refusal::ReplyWithoutSession);
        }
        if let Reason::Other(_) = reason {
            return self.refuse(Refusal::UnknownReason);
        }
        let mac = match (self.channel, mac_of(self.message.items.as_deref())) {
            (Channel::Secure { certificate_mac: Some(m), .. }, _) => *m,
            (Channel::Default, Some(m)) => m,
            _ => return self.refuse(Refusal::NoMacAddr),
        };
        if self.nonce_replayed(None) {
            return self.refuse(Refusal::NonceReplayed);
        }
        let (mode, state) = self.engine.security_of(self.device);
        if *self.channel == Channel::Default
            && mode != SecurityMode::Default
            && let Some(refusal) = self.default_port_gate(mode, state, bootstrap.as_ref())
        {
            return refusal;
        }
        if !self.device.known {
            if self.engine.config.unknown_devices == UnknownDevicePolicy::Reject {
                return self.refuse(Refusal::UnknownDeviceRejected);
            }
            self.changes.push(Change::Register { mode });
        }
        self.changes.push(Change::Contact { at: self.now, reason: reason.clone() });
        if let Some(ip) = self.peer {
            self.changes.push(Change::CalledFrom(ip));
        }
        self.changes.push(Change::Nonce(self.nonce()));
        let reported: Vec<Item> = self.message.items.iter().flatten().filter(|i| i.status.is_none()).cloned().collect();

        let jobs = if crate::job_run::runs_jobs(&reason) && self.may_run_jobs() && self.device.known {
            if reason == Reason::StartUp {
                self.complete_firmware(&reported);
            }
            self.pick_jobs()
        } else {
            VecDeque::new()
        };
        let session = Session {
            jobs,
            mac,
            reason: reason.clone(),
            started: self.now,
            nonces: vec![self.nonce()],
            max_items: self.message.header.max_items,
            awaiting: Awaiting::ReadAll,
            collected: Vec::new(),
            collected_bytes: 0,
            pending_writes: VecDeque::new(),
            opening: Vec::new(),
            mobility: self.layer.clone(),
        };
        if let Some(request) = self.mobility_request_of() {
            return self.mobility_request(session, request, &reported);
        }
        self.phone_report();
        match reason {
            Reason::StartUp | Reason::Solicited => {
                if !reported.is_empty() {
                    self.changes.push(Change::MergeInventory(reported.clone()));
                }
                if let Some(b @ (BootstrapSupply::Issued { .. } | BootstrapSupply::Reused(_))) = bootstrap {
                    return self.send_bootstrap(session, b);
                }
                if let Channel::Secure { certificate_serial, .. } = self.channel {
                    if state == BootstrapState::NotBootstrapped {
                        return self.secure_port_bootstrap(session, reported, mode, certificate_serial.clone());
                    }
                    if state == BootstrapState::Failed {
                        return self.refuse(Refusal::BootstrapFailed);
                    }
                }
                self.start_up(session, &reported)
            }
            Reason::LocalChanges | Reason::InventoryChanges => {
                if !reported.is_empty() {
                    self.changes.push(Change::MergeInventory(reported.clone()));
                }
                // Never push configuration over the unauthenticated port to a device that is
                // to be managed in secure mode.
                let may_write = mode == SecurityMode::Default || *self.channel != Channel::Default;
                if self.desired.reassert_on_local_changes && may_write {
                    // What the phone reports now, after what it reported before: the later wins.
                    self.start_writes(session, self.device.inventory.iter().chain(&reported))
                } else {
                    self.clean_up(false)
                }
            }
            Reason::Status => {
                let deployment: Vec<Item> =
                    reported.iter().filter(|i| i.name.starts_with("file-deployment-")).cloned().collect();
                if self.may_run_jobs() {
                    self.deployment_status(&deployment);
                }
                self.changes.push(Change::DeploymentStatus(deployment));
                self.clean_up(false)
            }
            Reason::CleanUp => self.phone_clean_up(None),
            _ => self.refuse(Refusal::UnexpectedReason),
        }
    }

    /// The default-mode port for a device configured for secure mode: bootstrap, or refuse.
    fn default_port_gate(
        &mut self,
        mode: SecurityMode,
        state: BootstrapState,
        bootstrap: Option<&BootstrapSupply>,
    ) -> Option<Answer> {
        let opening = matches!(self.message.reason.value, Reason::StartUp | Reason::Solicited);
        match state {
            BootstrapState::Secured => Some(self.refuse_audited(
                Refusal::SecuredOnDefaultPort,
                Some((
                    AuditKind::DefaultPortRefused,
                    format!("{} on the default-mode port", self.message.reason.value),
                )),
            )),
            BootstrapState::Failed if self.message.reason.value != Reason::CleanUp => {
                Some(self.refuse(Refusal::BootstrapFailed))
            }
            BootstrapState::NotBootstrapped if opening => self.bootstrap_gate(mode, bootstrap),
            // Status reports and local changes of a device not bootstrapped yet are recorded;
            // a phone clean-up is handled (retries exceeded).
            _ => None,
        }
    }

    /// A default-port start-up of a device to be bootstrapped: `None` to send `bootstrap`.
    fn bootstrap_gate(&mut self, mode: SecurityMode, bootstrap: Option<&BootstrapSupply>) -> Option<Answer> {
        match bootstrap {
            Some(BootstrapSupply::Issued { .. }) => None,
            Some(BootstrapSupply::Reused(b))
                if self.device.security.certificate.as_deref() == Some(b.certificate.serial.as_str()) =>
            {
                None
            }
            Some(BootstrapSupply::Reused(_)) => Some(self.refuse(Refusal::KeptBootstrapStale)),
            Some(BootstrapSupply::Unavailable) => Some(self.refuse(Refusal::BootstrapBusy)),
            None if self.engine.bootstrap_kind(self.now, self.device).is_some() => {
                Some(self.refuse(Refusal::ReissueTooSoon))
            }
            None => {
                let audit = (mode == SecurityMode::Pin)
                    .then(|| (AuditKind::PinUnavailable, "no PIN issued, or the PIN expired".to_owned()));
                Some(self.refuse_audited(Refusal::NoValidPin, audit))
            }
        }
    }

    fn send_bootstrap(&mut self, mut session: Session, supply: BootstrapSupply) -> Answer {
        let (bootstrap, reused) = match supply {
            BootstrapSupply::Issued { bootstrap, sealed } => {
                let serial = bootstrap.certificate.serial.clone();
                self.changes
                    .push(Change::IssueCertificate { at: self.now, certificate: bootstrap.certificate.clone() });
                self.changes.push(Change::KeepBootstrap { at: self.now, serial: serial.clone(), sealed });
                self.audit(AuditKind::CertificateIssued, format!("serial {serial}"));
                (bootstrap, false)
            }
            BootstrapSupply::Reused(bootstrap) => (bootstrap, true),
            BootstrapSupply::Unavailable => return self.refuse(Refusal::BootstrapBusy),
        };
        let serial = &bootstrap.certificate.serial;
        let kind = bootstrap.items.iter().find(|i| i.name == "goto-secure-mode").map_or("", |i| i.value.as_str());
        let again = if reused { ", sent again (kept since its issue)" } else { "" };
        let detail = format!("goto-secure-mode={kind}, certificate {serial}{again}");
        self.audit(AuditKind::BootstrapSent, detail);
        session.awaiting = Awaiting::Bootstrap;
        (self.reply(Action::WriteItems, Some(bootstrap.items)), Some(session))
    }

    /// The first message on the secure port of a device not bootstrapped yet.
    fn secure_port_bootstrap(
        &mut self,
        mut session: Session,
        reported: Vec<Item>,
        mode: SecurityMode,
        serial: String,
    ) -> Answer {
        if mode == SecurityMode::Pin {
            if !self.device.security.pin_outstanding {
                return self.refuse(Refusal::NoValidPin);
            }
            session.awaiting = Awaiting::Tan;
            session.opening = reported;
            return (self.reply(Action::ReadItems, Some(vec![Item::new("bootstrapping-tan", "")])), Some(session));
        }
        self.changes.push(Change::Bootstrapped { at: self.now });
        self.audit(AuditKind::Bootstrapped, format!("secure mode without PIN, certificate {serial}"));
        self.start_up(session, &reported)
    }

    /// A start-up's work: read the inventory if needed, then write what differs.
    fn start_up(&mut self, mut session: Session, reported: &[Item]) -> Answer {
        let changed_flag = reported.iter().any(|i| i.name == "configuration-changed-flag" && i.value.trim() == "true");
        let stale =
            self.device.inventory_at.is_none_or(|at| self.now.since(at) > self.engine.config.inventory_max_age_secs);
        if !self.device.known || changed_flag || stale {
            session.awaiting = Awaiting::ReadAll;
            return (self.reply(Action::ReadAllItems, None), Some(session));
        }
        // What the phone reports now, after what it reported before: the later wins.
        self.start_writes(session, self.device.inventory.iter().chain(reported))
    }

    /// Computes the writes against `inventory` and sends the first, or ends.
    fn start_writes<'a>(&mut self, session: Session, inventory: impl IntoIterator<Item = &'a Item>) -> Answer {
        let items = self.writes_for(inventory);
        self.send_writes(session, items)
    }

    /// What must be written to a device whose inventory is `inventory`.
    fn writes_for<'a>(&self, inventory: impl IntoIterator<Item = &'a Item>) -> Vec<Item> {
        to_write(&self.desired.items, inventory, &self.device.written, &self.engine.config.fingerprint_key)
    }

    /// Sends the first of `items`' writes, or ends.
    fn send_writes(&mut self, mut session: Session, items: Vec<Item>) -> Answer {
        if items.is_empty() {
            return self.next_job(session);
        }
        let Planned { parts, not_sent } = split_writes(session.max_items, items);
        self.record_not_sent(&not_sent, true);
        session.pending_writes = parts;
        self.send_next_write(session)
    }

    /// Notes the items that cannot be sent; when `record`, records each as its item's write
    /// outcome, so that the same value is neither tried nor noted again.
    pub(crate) fn record_not_sent(&mut self, not_sent: &[(Item, ItemError)], record: bool) {
        if not_sent.is_empty() {
            return;
        }
        let key = &self.engine.config.fingerprint_key;
        let mut records = Vec::new();
        for (item, e) in not_sent {
            self.notes.push(Note::ItemNotSent { item: item_label(item).to_string(), reason: e.to_string() });
            if record {
                let outcome = WriteOutcome::NotSent(e.to_string());
                records.push((ItemKey::of(item), WrittenRecord { fingerprint: fingerprint(key, item), outcome }));
            }
        }
        if !records.is_empty() {
            self.changes.push(Change::Written(records));
        }
    }

    fn send_next_write(&mut self, mut session: Session) -> Answer {
        match session.pending_writes.pop_front() {
            Some(items) => {
                session.awaiting = Awaiting::Write(items.clone());
                (self.reply(Action::WriteItems, Some(items)), Some(session))
            }
            None => self.next_job(session),
        }
    }

    fn phone_clean_up(&mut self, session: Option<&Session>) -> Answer {
        if let Some(s) = session {
            self.job_abandoned(s);
        }
        let reason = self.message.item("cleanup-reason").map(str::to_owned);
        let (mode, state) = self.engine.security_of(self.device);
        if self.device.known
            && mode == SecurityMode::Pin
            && state == BootstrapState::NotBootstrapped
            && reason.as_deref() == Some("password retries exceeded")
        {
            self.changes.push(Change::BootstrapFailed { at: self.now, revoke_certificate: true });
            self.audit(AuditKind::BootstrapFailed, "password retries exceeded at the phone");
            if let Some(serial) = self.device.security.certificate.clone() {
                self.audit(AuditKind::CertificateRevoked, format!("serial {serial}: bootstrapping failed"));
            }
        }
        self.changes.push(Change::PhoneCleanUp { reason });
        self.clean_up(false)
    }

    /// A `reply-to` within an interaction.
    fn continue_interaction(&mut self, mut session: Session) -> Answer {
        if let Some(mac) = mac_of(self.message.items.as_deref())
            && mac != session.mac
        {
            return self.refuse(Refusal::MacDiffers);
        }
        if self.nonce_replayed(Some(&session)) {
            return self.refuse(Refusal::NonceReplayed);
        }
        if session.saw_nonce(&self.message.header.nonce) {
            self.changes.push(Change::Nonce(self.nonce()));
        }
        let answered = self.message.reason.action.clone();
        let status = self.message.reason.status.clone();
        match (&session.awaiting, answered) {
            (Awaiting::ReadAll, Some(Action::ReadAllItems)) => self.read_all_reply(session, status),
            (Awaiting::Write(_), Some(Action::WriteItems)) => self.write_reply(session, status),
            (Awaiting::Bootstrap, Some(Action::WriteItems)) => self.bootstrap_reply(status),
            (Awaiting::Tan, Some(Action::ReadItems)) => self.tan_reply(session, status),
            (Awaiting::Job(step), Some(a)) if a == step.action() => {
                let step = (**step).clone();
                self.job_reply(session, step, status.as_ref())
            }
            (Awaiting::Mobility(step), Some(a)) if a == step.action() => {
                let Awaiting::Mobility(step) = std::mem::replace(&mut session.awaiting, Awaiting::ReadAll) else {
                    return self.refuse(Refusal::UnexpectedReply);
                };
                self.mobility_reply(session, *step, status.as_ref())
            }
            _ => self.refuse(Refusal::UnexpectedReply),
        }
    }

    /// A reply's status: `None` to go on (accepted); otherwise the `CleanUp` that ends the
    /// interaction — with `send-solicited` when the phone is busy, so the work is done at its
    /// callback (nothing is recorded as done).
    fn unless_accepted(&mut self, status: Option<&ReplyStatus>, what: &str) -> Option<Answer> {
        match status {
            Some(ReplyStatus::Accepted) | None => None,
            Some(ReplyStatus::Busy) => {
                self.notes.push(Note::Busy);
                Some(self.clean_up(true))
            }
            Some(other) => {
                self.notes.push(Note::ActionFailed(format!("{what}: {other}")));
                Some(self.clean_up(false))
            }
        }
    }

    fn bootstrap_reply(&mut self, status: Option<ReplyStatus>) -> Answer {
        self.unless_accepted(status.as_ref(), "bootstrap WriteItems").unwrap_or_else(|| self.clean_up(false))
    }

    fn tan_reply(&mut self, session: Session, status: Option<ReplyStatus>) -> Answer {
        let given = self
            .message
            .items
            .iter()
            .flatten()
            .find(|i| i.name == "bootstrapping-tan" && i.status.is_none())
            .map(|i| i.value.trim().to_owned());
        let expected = self.tan.filter(|_| self.device.security.pin_outstanding).unwrap_or_default();
        let right = matches!(status, Some(ReplyStatus::Accepted) | None)
            && given.as_deref().is_some_and(|g| {
                g.len() == expected.len() && !expected.is_empty() && bool::from(g.as_bytes().ct_eq(expected.as_bytes()))
            });
        if right {
            self.changes.push(Change::Bootstrapped { at: self.now });
            self.audit(AuditKind::TanRight, "TAN verified");
            let serial = self.device.security.certificate.clone().unwrap_or_default();
            self.audit(AuditKind::Bootstrapped, format!("secure mode with PIN, certificate {serial}"));
            let opening = session.opening.clone();
            let mut session = session;
            session.opening = Vec::new();
            return self.start_up(session, &opening);
        }
        let failures = self.device.security.tan_failures + 1;
        let max = self.engine.config.max_tan_failures;
        self.changes.push(Change::TanFailed);
        self.audit(AuditKind::TanWrong, format!("attempt {failures} of {max}"));
        if failures >= max {
            self.changes.push(Change::BootstrapFailed { at: self.now, revoke_certificate: true });
            self.audit(AuditKind::BootstrapFailed, format!("{failures} wrong TANs"));
            let serial = self.device.security.certificate.clone().unwrap_or_default();
            self.audit(AuditKind::CertificateRevoked, format!("serial {serial}: too many wrong TANs"));
        }
        self.refuse_keeping_changes(Refusal::WrongTan)
    }

    fn read_all_reply(&mut self, mut session: Session, status: Option<ReplyStatus>) -> Answer {
        if let Some(end) = self.unless_accepted(status.as_ref(), "ReadAllItems") {
            return end;
        }
        match self.collect_reply(&mut session) {
            Collected::OverLimits => self.refuse(Refusal::FragmentsOverLimits),
            Collected::More => (self.reply(Action::GetNextFragment, None), Some(session)),
            Collected::All(items) => {
                let writes = self.writes_for(&items);
                self.changes.push(Change::ReplaceInventory { items, at: self.now });
                self.send_writes(session, writes)
            }
        }
    }

    /// Adds this message's items to a reply that may come in fragments.
    pub(crate) fn collect_reply(&self, session: &mut Session) -> Collected {
        self.collect_reply_within(session, self.engine.config.max_collected_bytes)
    }

    /// [`Self::collect_reply`] with a byte limit of its own.
    pub(crate) fn collect_reply_within(&self, session: &mut Session, max_bytes: usize) -> Collected {
        for item in self.message.items.iter().flatten() {
            session.collected_bytes += item.name.len() + item.value.len();
            session.collected.push(item.clone());
        }
        if session.collected.len() > self.engine.config.max_collected_items || session.collected_bytes > max_bytes {
            return Collected::OverLimits;
        }
        if self.message.header.more_fragments() {
            return Collected::More;
        }
        session.collected_bytes = 0;
        Collected::All(std::mem::take(&mut session.collected))
    }

    /// How the phone took the items `sent` in one `WriteItems`, by its reply's statuses.
    pub(crate) fn write_outcome(&self, sent: &[Item]) -> WriteResult {
        fn key_of(i: &Item) -> (&str, Option<u32>) {
            (i.name.as_str(), i.index)
        }
        let refused: HashMap<(&str, Option<u32>), &Item> =
            self.message.items.iter().flatten().filter(|i| i.status.is_some()).map(|i| (key_of(i), i)).collect();
        let key = &self.engine.config.fingerprint_key;
        let sent_keys: HashSet<(&str, Option<u32>)> = sent.iter().map(key_of).collect();
        let reported: HashSet<(&str, Option<u32>)> =
            self.device.inventory.iter().map(key_of).filter(|k| sent_keys.contains(k)).collect();
        let mut result = WriteResult { refusals_reported: refused.len(), ..WriteResult::default() };
        for item in sent {
            let k = key_of(item);
            let outcome = match refused.get(&k) {
                Some(r) => {
                    result.refused.push((*r).clone());
                    WriteOutcome::Refused(r.status.clone().unwrap_or(dls_message::ItemStatus::Failed))
                }
                None => {
                    // Only values the phone reports anyway go into the inventory: a
                    // write-only value (a password) is kept as a fingerprint only.
                    if reported.contains(&k) {
                        result.applied.push(item.clone());
                    }
                    WriteOutcome::Accepted
                }
            };
            result.records.push((ItemKey::of(item), WrittenRecord { fingerprint: fingerprint(key, item), outcome }));
        }
        result
    }

    fn write_reply(&mut self, session: Session, status: Option<ReplyStatus>) -> Answer {
        let Awaiting::Write(sent) = &session.awaiting else {
            return self.refuse(Refusal::UnexpectedReply);
        };
        // Busy: the work stays, and the next interaction computes it again.
        if let Some(end) = self.unless_accepted(status.as_ref(), "WriteItems") {
            return end;
        }
        let WriteResult { records, applied, refusals_reported, .. } = self.write_outcome(sent);
        if refusals_reported > 0 {
            self.notes.push(Note::ItemsRefused(refusals_reported));
        }
        self.changes.push(Change::Written(records));
        if !applied.is_empty() {
            self.changes.push(Change::MergeInventory(applied));
        }
        self.send_next_write(session)
    }
}

/// A fragmented reply, after one more message.
pub(crate) enum Collected {
    /// Larger than the engine's limits.
    OverLimits,
    /// More fragments follow (answer `GetNextFragment`).
    More,
    /// Complete: every item.
    All(Vec<Item>),
}

/// How the phone took one `WriteItems`.
#[derive(Default)]
pub(crate) struct WriteResult {
    /// The outcome of each item sent, for the `written` records.
    pub(crate) records: Vec<(ItemKey, WrittenRecord)>,
    /// Items accepted that the phone reports (they go into the inventory).
    pub(crate) applied: Vec<Item>,
    /// The phone's refusals of items sent, with their statuses.
    pub(crate) refused: Vec<Item>,
    /// Items with a status in the reply.
    pub(crate) refusals_reported: usize,
}

/// Writes planned for one phone: the `WriteItems` messages to send, and the items that
/// cannot be sent at all (see [`dls_message::check`]), with why.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    /// The messages, in order.
    pub(crate) parts: VecDeque<ItemList>,
    /// The items skipped.
    pub(crate) not_sent: Vec<(Item, ItemError)>,
}

/// `items` split into `WriteItems` messages within the phone's `maxItems` and 50 kB,
/// keeping groups together (`file-*` items of one index) when possible. An item that
/// cannot be sent (a character XML 1.0 cannot carry, no name, too large for one message)
/// is left out and returned in [`Planned::not_sent`]: it never costs the phone the rest.
pub(crate) fn split_writes(max_items: Option<i64>, items: ItemList) -> Planned {
    let mut not_sent = Vec::new();
    let sendable: ItemList = items
        .into_iter()
        .filter_map(|item| match check_item(&item) {
            Ok(()) => Some(item),
            Err(e) => {
                not_sent.push((item, e));
                None
            }
        })
        .collect();
    let limits = FragmentLimits::for_max_items(max_items);
    let parts = split(sendable.clone(), &limits)
        .or_else(|_| split_by(sendable.clone(), &limits, |_| None::<()>))
        // Every item fits in a message of its own (it passed `check_item`, and `maxItems`
        // is at least 1), so ungrouped splitting does not fail; if it ever did, one item a
        // message is still within the limits.
        .unwrap_or_else(|_| sendable.into_iter().map(|i| vec![i]).collect());
    Planned { parts: parts.into(), not_sent }
}

/// How an item that was not sent is named, with why, in notes and job answers.
pub(crate) fn not_sent_text(item: &Item, e: &ItemError) -> String {
    format!("{}: {e}", item_label(item))
}
