//! An in-memory shell: keeps one device's snapshot and session, applies changes.

use std::net::{IpAddr, Ipv4Addr};

use dls_engine::desired::{Profile, resolve};
use dls_engine::{
    BootstrapState, Change, Channel, Desired, DeviceSnapshot, Engine, EngineConfig, Input, ItemKey, Output, Session,
    UnixTime,
};
use dls_message::{
    Action, DlsMessage, Fragment, Header, Item, ItemStatus, Reason, ReasonForContact, ReplyStatus, WorkpointMessage,
};

pub(crate) const MAC: &str = "00:1A:E8:3C:4D:5E";
pub(crate) const KEY: [u8; 32] = [42; 32];
/// The address the phone calls from, unless a test says otherwise.
pub(crate) const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 41));

pub(crate) struct Shell {
    pub(crate) engine: Engine,
    pub(crate) device: DeviceSnapshot,
    pub(crate) desired: Desired,
    pub(crate) session: Option<Session>,
    pub(crate) now: UnixTime,
    pub(crate) channel: Channel,
    pub(crate) bootstrap: Option<dls_engine::BootstrapSupply>,
    pub(crate) audit: Vec<dls_engine::AuditKind>,
    pub(crate) log: Vec<Change>,
    pub(crate) deployment: Vec<Item>,
    pub(crate) phone_cleanup: Option<Option<String>>,
    pub(crate) contacts: usize,
    pub(crate) job_log: Vec<dls_engine::JobUpdate>,
    /// The address the shell says messages come from.
    pub(crate) peer: Option<IpAddr>,
    /// The last `Change::CalledFrom`.
    pub(crate) called_from: Option<IpAddr>,
    /// The outstanding PIN's TAN, as the shell keeps it (sealed, in the real one).
    pub(crate) tan: Option<String>,
    /// How many messages the engine was given the TAN for.
    pub(crate) tan_given: usize,
    /// The device's MAC (the store's key for its mobility user).
    pub(crate) mac: dls_message::MacAddr,
    /// The mobility users, shared by the shells of several phones.
    pub(crate) users: std::rc::Rc<std::cell::RefCell<crate::mobility::Users>>,
    /// The mobility changes applied.
    pub(crate) mobility_log: Vec<dls_engine::MobilityChange>,
    /// How many messages the store refused as contended.
    pub(crate) contended: usize,
}

impl Shell {
    pub(crate) fn new() -> Self {
        Self::with_config(EngineConfig::new(KEY))
    }

    pub(crate) fn with_config(config: EngineConfig) -> Self {
        Self {
            engine: Engine::new(config),
            device: DeviceSnapshot::unknown(),
            desired: Desired::default(),
            session: None,
            now: UnixTime(1_000_000),
            channel: Channel::Default,
            bootstrap: None,
            audit: Vec::new(),
            log: Vec::new(),
            deployment: Vec::new(),
            phone_cleanup: None,
            contacts: 0,
            job_log: Vec::new(),
            peer: Some(PEER),
            called_from: None,
            tan: None,
            tan_given: 0,
            mac: dls_message::MacAddr::parse(MAC).expect("a MAC"),
            users: std::rc::Rc::default(),
            mobility_log: Vec::new(),
            contended: 0,
        }
    }

    pub(crate) fn set_profile(&mut self, items: Vec<Item>) {
        let p = Profile { name: "global".into(), items, ..Profile::default() };
        self.desired = resolve(&[p], None, &[], &[]);
    }

    /// One message through the engine; the changes are applied like a store would.
    pub(crate) fn send(&mut self, msg: &WorkpointMessage) -> Output {
        // Like the real shell: the TAN is opened only for the message that needs it.
        let tan = Engine::tan_needed(msg, self.session.as_ref(), &self.channel).then(|| self.tan.clone()).flatten();
        self.tan_given += usize::from(tan.is_some());
        let query = Engine::mobility_query(msg, self.session.as_ref(), Some(&self.device));
        let mobility = query.map(|q| self.users.borrow().input(self.mac, &q, msg));
        let out = self.engine.handle(Input {
            now: self.now,
            message: msg,
            channel: &self.channel,
            session: self.session.take(),
            device: &self.device,
            desired: &self.desired,
            bootstrap: self.bootstrap.take(),
            peer: self.peer,
            tan: tan.as_deref(),
            mobility: mobility.as_ref(),
        });
        // As the store does: a user changed meanwhile fails the whole message.
        if !self.users.borrow().expectations_hold(self.mac, &out.changes) {
            self.contended += 1;
            self.session = None;
            return Engine::contended(msg);
        }
        for c in &out.changes {
            self.apply(c);
        }
        self.log.extend(out.changes.iter().cloned());
        self.session.clone_from(&out.session);
        out
    }

    fn apply(&mut self, c: &Change) {
        let d = &mut self.device;
        match c {
            Change::Register { mode } => {
                d.known = true;
                d.security.mode = *mode;
            }
            Change::IssueCertificate { certificate, .. } => {
                d.security.certificate = Some(certificate.serial.clone());
                d.security.pending = None;
            }
            Change::KeepBootstrap { at, serial, .. } => {
                d.security.pending = Some(dls_engine::PendingBootstrap { serial: serial.clone(), issued_at: *at });
            }
            Change::Bootstrapped { .. } => {
                d.security.state = BootstrapState::Secured;
                d.security.pending = None;
                d.security.pin_outstanding = false;
                self.tan = None;
                d.security.pin_issued_at = None;
                d.security.tan_failures = 0;
            }
            Change::TanFailed => d.security.tan_failures += 1,
            Change::BootstrapFailed { revoke_certificate, .. } => {
                d.security.state = BootstrapState::Failed;
                d.security.pending = None;
                d.security.pin_outstanding = false;
                self.tan = None;
                d.security.pin_issued_at = None;
                if *revoke_certificate {
                    d.security.certificate = None;
                }
            }
            Change::SecurityReset { .. } => {
                d.security.state = BootstrapState::NotBootstrapped;
                d.security.pending = None;
                d.security.pin_outstanding = false;
                self.tan = None;
                d.security.pin_issued_at = None;
                d.security.tan_failures = 0;
                d.security.certificate = None;
            }
            Change::Audit(e) => self.audit.push(e.kind),
            Change::Contact { .. } => self.contacts += 1,
            Change::CalledFrom(ip) => self.called_from = Some(*ip),
            Change::ForgetConfiguration => {
                d.inventory_at = None;
                d.written.clear();
            }
            Change::Nonce(n) => d.recent_nonces.push(n.clone()),
            Change::MergeInventory(items) => {
                for i in items.iter().filter(|i| i.status.is_none()) {
                    match d.inventory.iter_mut().find(|x| x.name == i.name && x.index == i.index) {
                        Some(x) => x.value.clone_from(&i.value),
                        None => d.inventory.push(i.clone()),
                    }
                }
            }
            Change::ReplaceInventory { items, at } => {
                d.inventory = items.iter().filter(|i| i.status.is_none()).cloned().collect();
                d.inventory_at = Some(*at);
            }
            Change::Written(records) => {
                for (k, r) in records {
                    d.written.insert(k.clone(), r.clone());
                }
            }
            Change::DeploymentStatus(items) => self.deployment.clone_from(items),
            Change::PhoneCleanUp { reason } => self.phone_cleanup = Some(reason.clone()),
            Change::Job(u) => {
                self.job_log.push(u.clone());
                if let Some(j) = d.jobs.iter_mut().find(|j| j.id == u.id) {
                    j.state = u.state;
                    j.accepted = u.accepted;
                    j.attempts += u32::from(u.unanswered);
                }
                d.jobs.retain(|j| !j.state.is_final());
            }
            Change::Mobility(m) => {
                self.mobility_log.push(m.clone());
                self.users.borrow_mut().apply(self.mac, m, self.now);
            }
            other => panic!("unknown change {other:?}"),
        }
    }

    pub(crate) fn written(&self, name: &str) -> Option<&dls_engine::WrittenRecord> {
        self.device.written.get(&ItemKey { name: name.into(), index: None })
    }
}

pub(crate) fn basic_items() -> Vec<Item> {
    vec![
        Item::new("device-type", "OpenStage 60"),
        Item::new("software-version", "V3 R5.12.0"),
        Item::new("mac-addr", MAC),
        Item::new("e164", "4989700712"),
        Item::new("contact-me-uri", "http://192.0.2.41:8085/contact_dls.html/ContactDLS"),
        Item::new("configuration-changed-flag", "false"),
    ]
}

pub(crate) fn msg(nonce: &str, reason: ReasonForContact, items: Option<Vec<Item>>) -> WorkpointMessage {
    WorkpointMessage {
        header: Header { nonce: nonce.into(), max_items: Some(-1), fragment: Some(Fragment::Final) },
        reason,
        items,
    }
}

pub(crate) fn start_up(nonce: &str) -> WorkpointMessage {
    msg(nonce, ReasonForContact::new(Reason::StartUp), Some(basic_items()))
}

pub(crate) fn reply(nonce: &str, action: Action, status: ReplyStatus, items: Option<Vec<Item>>) -> WorkpointMessage {
    msg(nonce, ReasonForContact::reply_to(action, status), items)
}

pub(crate) fn inventory() -> Vec<Item> {
    let mut v = basic_items();
    v.extend([
        Item::new("sntp-addr", "ntp.old.example"),
        Item::new("country-iso", "DE"),
        Item::indexed("function-key-def", 0, "30"),
        Item::new("user-pwd-unicode", "").with_status(ItemStatus::Failed),
    ]);
    v
}

pub(crate) fn assert_clean_up(m: &DlsMessage, nonce: &str) {
    assert_eq!(m.action, Action::CleanUp, "{m:?}");
    assert_eq!(m.header.nonce, nonce);
}
