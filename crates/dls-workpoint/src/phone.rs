//! A phone: its items, and the phone's half of an interaction — start one, answer every
//! DLS action the way a real phone does, until `CleanUp`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, VecDeque};

use dls_message::fragment::{ENVELOPE_BYTES, FragmentLimits, encoded_size, split_by};
use dls_message::{
    Action, DlsMessage, Fragment, Header, Item, ItemStatus, MacAddr, Reason, ReasonForContact, ReplyStatus,
    WorkpointMessage,
};

use zeroize::Zeroize;

use crate::client::{ClientError, WpiClient};
use crate::deploy::{Deployment, DeploymentRequest, InstalledFile};
use crate::mobility::{MOBILITY_STATE, STATE_LOGGED_OFF, USERDATA_INDEX, is_userdata};
use crate::secure::{PendingPin, PinOutcome, PinsError, PinsOutcome, RETRIES_EXCEEDED, SecureMaterial};

/// Items a phone never lets the DLS write.
const READ_ONLY: &[&str] = &[
    "mac-addr",
    "device-type",
    "software-type",
    "software-version",
    "part-number",
    "related-device-type",
    "related-software-type",
    "related-software-version",
];

/// The items a phone sends in every message that starts an interaction.
const BASIC: &[&str] = &[
    "device-type",
    "related-device-type",
    "software-type",
    "related-software-type",
    "software-version",
    "related-software-version",
    "contact-me-uri",
    "mac-addr",
    "configuration-changed-flag",
    "part-number",
    "e164",
    "basic-e164",
    "sip-mobility-state",
    "mobility-enabled",
];

/// Whether an item is write-only (never reported back): passwords.
#[must_use]
pub fn is_write_only(name: &str) -> bool {
    name.contains("pwd") || name.contains("password")
}

/// A simulated phone.
#[derive(Clone, Debug)]
pub struct Phone {
    mac: MacAddr,
    /// The phone's items, in order; write-only items are kept but never reported, the
    /// user's data (`userdata-*`, index 1) only when asked for.
    pub(crate) items: Vec<Item>,
    /// The `userdata-*` items the user changed since the logon ([`Phone::set_userdata`]).
    pub(crate) userdata_modified: BTreeSet<String>,
    /// Items this phone does not know (writing them gets `unknown item`).
    pub unknown_items: BTreeSet<String>,
    /// The most items per reply fragment (`None`: one message), like a real phone's 50 kB cap.
    pub reply_fragment_items: Option<usize>,
    /// `maxItems` sent to the DLS (`-1`: no limit).
    pub max_items: i64,
    /// In a call: `WriteItems` is answered `busy`.
    pub busy: bool,
    /// What the user will type when the phone asks for the PIN, one entry per attempt.
    pub pin_entries: VecDeque<String>,
    /// After bootstrapping: certificate, key, CAs and secure port.
    pub secure: Option<SecureMaterial>,
    /// A `pin` bootstrap waiting for the user's PIN.
    pub pending_pin: Option<PendingPin>,
    /// The TAN (the PIN's last three digits) the phone answers `bootstrapping-tan` with;
    /// set when the bundle opens (tests may change it to play a phone that lies).
    pub tan: Option<String>,
    /// The files installed by deployments, in the order installed (see [`Phone::deploy`]).
    pub installed: Vec<InstalledFile>,
}

/// What happened in one interaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interaction {
    /// The DLS actions received, in order.
    pub actions: Vec<Action>,
    /// Items written and accepted.
    pub written: Vec<Item>,
    /// Items refused, with their statuses.
    pub refused: Vec<Item>,
    /// Whether the final `CleanUp` asked the phone to call back (`send-solicited`).
    pub send_solicited: bool,
    /// The final `CleanUp`'s `cleanup-reason`, if any.
    pub cleanup_reason: Option<String>,
    /// Messages exchanged.
    pub exchanges: usize,
    /// The names of the items the phone sent answering `ReadItems` (with a value), in order.
    pub read: Vec<String>,
    /// Answers that came enveloped in an XML-DSig `Signature` the phone did not verify.
    pub unverified_signatures: usize,
    /// `goto-secure-mode` received (`nopin` or `pin`), if the DLS started bootstrapping.
    pub bootstrap: Option<String>,
    /// The phone restarted at the end of the interaction: `Restart`, or `FactoryReset` (which
    /// also forgot its secure-mode material).
    pub restart: Option<String>,
    /// Files the phone accepted to deploy (`FileDeployment`, `SoftwareDeployment`), to be
    /// downloaded after the interaction ([`Phone::run_deployments`]).
    pub deployments: Vec<Deployment>,
}

/// The most messages one interaction may take before the phone gives up.
pub const MAX_EXCHANGES: usize = 10_000;

impl Phone {
    /// A phone with typical identity items.
    #[must_use]
    pub fn new(mac: MacAddr) -> Self {
        let items = vec![
            Item::new("device-type", "OpenStage 60"),
            Item::new("related-device-type", "OpenStage 60"),
            Item::new("software-type", "Siemens SIP"),
            Item::new("related-software-type", "Siemens SIP"),
            Item::new("software-version", "V3 R5.12.0"),
            Item::new("related-software-version", "V3 R5.12.0"),
            Item::new("contact-me-uri", "http://127.0.0.1:8085/contact_dls.html/ContactDLS"),
            Item::new("mac-addr", mac.colon_separated()),
            Item::new("configuration-changed-flag", "false"),
            Item::new("part-number", "S30817-S7403-A101-15"),
            Item::new("e164", ""),
            Item::new("basic-e164", ""),
        ];
        Self {
            mac,
            items,
            unknown_items: BTreeSet::new(),
            reply_fragment_items: None,
            max_items: -1,
            busy: false,
            pin_entries: VecDeque::new(),
            secure: None,
            pending_pin: None,
            tan: None,
            installed: Vec::new(),
            userdata_modified: BTreeSet::new(),
        }
    }

    /// A phone with typical identity items and `items` after them; an item whose name and
    /// index the phone already has replaces it.
    #[must_use]
    pub fn with_items(mac: MacAddr, items: impl IntoIterator<Item = Item>) -> Self {
        let mut phone = Self::new(mac);
        let mut all = std::mem::take(&mut phone.items);
        all.extend(items);
        // For each item key, the position it first takes and the item that fills it (the
        // last with that key); keys borrowed, nothing copied (a load generator builds
        // thousands of phones of hundreds of items).
        let mut fill: Vec<Option<usize>> = (0..all.len()).map(Some).collect();
        {
            let mut first: HashMap<(&str, Option<u32>), usize> = HashMap::with_capacity(all.len());
            for (n, item) in all.iter().enumerate() {
                match first.entry((item.name.as_str(), item.index)) {
                    Entry::Occupied(e) => {
                        fill[*e.get()] = Some(n);
                        fill[n] = None;
                    }
                    Entry::Vacant(e) => {
                        e.insert(n);
                    }
                }
            }
        }
        let mut slots: Vec<Option<Item>> = all.into_iter().map(Some).collect();
        phone.items = fill.iter().filter_map(|from| from.and_then(|n| slots[n].take())).collect();
        phone
    }

    /// The phone's MAC.
    #[must_use]
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The value of an item, if the phone has it.
    #[must_use]
    pub fn get(&self, name: &str, index: Option<u32>) -> Option<&str> {
        self.items.iter().find(|i| i.name == name && i.index == index).map(|i| i.value.as_str())
    }

    /// Sets an item (adding it if new).
    pub fn set(&mut self, name: &str, index: Option<u32>, value: &str) {
        match self.items.iter_mut().find(|i| i.name == name && i.index == index) {
            Some(i) => value.clone_into(&mut i.value),
            None => self.items.push(Item { index, ..Item::new(name, value) }),
        }
    }

    /// Every item the phone reports (write-only items and the user's data excluded).
    #[must_use]
    pub fn reported_items(&self) -> Vec<Item> {
        self.items.iter().filter(|i| !is_write_only(&i.name) && !is_userdata(&i.name)).cloned().collect()
    }

    /// The items the phone sends in the message that starts an interaction (identity,
    /// software, `mac-addr`, `configuration-changed-flag`, numbers).
    #[must_use]
    pub fn basic_items(&self) -> Vec<Item> {
        BASIC.iter().filter_map(|n| self.items.iter().find(|i| i.name == *n && i.index.is_none()).cloned()).collect()
    }

    fn message(
        &self,
        nonce: &str,
        reason: ReasonForContact,
        items: Option<Vec<Item>>,
        fragment: Fragment,
    ) -> WorkpointMessage {
        WorkpointMessage {
            header: Header { nonce: nonce.to_owned(), max_items: Some(self.max_items), fragment: Some(fragment) },
            reason,
            items,
        }
    }

    /// Runs one interaction started for `reason`, answering every action until `CleanUp`.
    ///
    /// # Errors
    /// [`ClientError`] when an exchange fails or the DLS breaks the protocol.
    pub async fn interact(&mut self, client: &mut WpiClient, reason: Reason) -> Result<Interaction, ClientError> {
        let items = match reason {
            Reason::LocalChanges | Reason::InventoryChanges => self.reported_items(),
            _ => self.basic_items(),
        };
        self.interact_with(client, reason, items).await
    }

    /// Runs one interaction started for `reason` with `items` in its first message (e.g. a
    /// `status` report), answering every action until `CleanUp`.
    ///
    /// # Errors
    /// [`ClientError`] when an exchange fails or the DLS breaks the protocol.
    pub async fn interact_with(
        &mut self,
        client: &mut WpiClient,
        reason: Reason,
        items: Vec<Item>,
    ) -> Result<Interaction, ClientError> {
        let nonce = new_nonce();
        let mut report = Interaction::default();
        let mut outgoing = self.message(&nonce, ReasonForContact::new(reason), Some(items), Fragment::Final);
        let mut fragments: Vec<Vec<Item>> = Vec::new();
        let mut answering = Action::ReadAllItems;
        client.forget_session();
        loop {
            if report.exchanges >= MAX_EXCHANGES {
                return Err(ClientError::Protocol("interaction does not end".into()));
            }
            let answer = client.exchange_from_dls(&outgoing).await;
            // A password sent (logon, logoff) is not kept once the message is out.
            for item in outgoing.items.iter_mut().flatten().filter(|i| is_write_only(&i.name)) {
                item.value.zeroize();
            }
            let answer = answer?;
            report.unverified_signatures += usize::from(answer.envelope.is_some());
            let reply: DlsMessage = answer.message;
            report.exchanges += 1;
            report.actions.push(reply.action.clone());
            outgoing = match reply.action {
                Action::CleanUp => {
                    report.send_solicited = reply.item("send-solicited") == Some("true");
                    report.cleanup_reason = reply.item("cleanup-reason").map(str::to_owned);
                    if report.restart.as_deref() == Some("FactoryReset") {
                        self.secure = None;
                        self.pending_pin = None;
                        self.tan = None;
                    }
                    return Ok(report);
                }
                Action::ReadAllItems => {
                    answering = Action::ReadAllItems;
                    fragments = self.fragments(self.reported_items());
                    self.next_fragment(&nonce, &answering, &mut fragments)
                }
                Action::ReadItems => {
                    answering = Action::ReadItems;
                    let wanted = reply.items.clone().unwrap_or_default();
                    let items: Vec<Item> = wanted.into_iter().map(|w| self.read_one(w)).collect();
                    report.read.extend(items.iter().filter(|i| i.status.is_none()).map(|i| i.name.clone()));
                    fragments = self.fragments(items);
                    self.next_fragment(&nonce, &answering, &mut fragments)
                }
                Action::GetNextFragment => self.next_fragment(&nonce, &answering, &mut fragments),
                Action::WriteItems if self.busy => self.message(
                    &nonce,
                    ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Busy),
                    None,
                    Fragment::Final,
                ),
                Action::WriteItems if reply.item("goto-secure-mode").is_some() => {
                    let items = reply.items.clone().unwrap_or_default();
                    let status = match self.take_bootstrap(&items) {
                        Ok(kind) => {
                            report.bootstrap = Some(kind);
                            ReplyStatus::Accepted
                        }
                        Err(_) => ReplyStatus::Failed,
                    };
                    self.message(&nonce, ReasonForContact::reply_to(Action::WriteItems, status), None, Fragment::Final)
                }
                Action::WriteItems => {
                    let mut statuses = Vec::new();
                    let mut logged_off = false;
                    for item in reply.items.clone().unwrap_or_default() {
                        match self.write(&item) {
                            Ok(()) => {
                                logged_off |= item.name == MOBILITY_STATE && item.value.trim() == STATE_LOGGED_OFF;
                                report.written.push(item);
                            }
                            Err(status) => {
                                let refused = Item { status: Some(status), ..item };
                                report.refused.push(refused.clone());
                                statuses.push(refused);
                            }
                        }
                    }
                    if logged_off {
                        // The DLS logged the user off (a forced logoff): their data goes.
                        self.clear_userdata();
                    }
                    self.message(
                        &nonce,
                        ReasonForContact::reply_to(Action::WriteItems, ReplyStatus::Accepted),
                        Some(statuses),
                        Fragment::Final,
                    )
                }
                Action::Restart => {
                    let factory = reply.item("restart-type") == Some("FactoryReset");
                    let status = if factory && reply.item("restart-password") != Some("124816") {
                        ReplyStatus::Failed
                    } else {
                        report.restart = Some(if factory { "FactoryReset" } else { "Restart" }.to_owned());
                        ReplyStatus::Accepted
                    };
                    self.message(&nonce, ReasonForContact::reply_to(Action::Restart, status), None, Fragment::Final)
                }
                action @ (Action::FileDeployment | Action::SoftwareDeployment) => {
                    let status = match DeploymentRequest::parse(&action, reply.items.as_deref().unwrap_or_default()) {
                        Ok(request) => {
                            self.delete_files(&request.delete);
                            report.deployments.extend(request.deploy);
                            ReplyStatus::Accepted
                        }
                        Err(why) => {
                            tracing::debug!(mac = %self.mac, "{action} refused: {why}");
                            ReplyStatus::Failed
                        }
                    };
                    self.message(&nonce, ReasonForContact::reply_to(action, status), None, Fragment::Final)
                }
                other => {
                    self.message(&nonce, ReasonForContact::reply_to(other, ReplyStatus::Failed), None, Fragment::Final)
                }
            };
        }
    }

    /// Keeps what a bootstrap `WriteItems` delivered: the material itself (`nopin`), or the
    /// sealed bundle until the user types the PIN (`pin`).
    fn take_bootstrap(&mut self, items: &[Item]) -> Result<String, ClientError> {
        let get = |n: &str| items.iter().find(|i| i.name == n).map(|i| i.value.clone());
        match get("goto-secure-mode").as_deref() {
            Some("nopin") => {
                self.secure = Some(SecureMaterial::from_items(items)?);
                Ok("nopin".into())
            }
            Some("pin") => {
                let data = get("secure-mode-data")
                    .ok_or_else(|| ClientError::Protocol("pin bootstrap without secure-mode-data".into()))?;
                let max = get("max-pin-retries").and_then(|v| v.trim().parse().ok()).unwrap_or(3);
                self.pending_pin = Some(PendingPin { secure_mode_data: data, max_pin_retries: max, failures: 0 });
                Ok("pin".into())
            }
            other => Err(ClientError::Protocol(format!("unknown goto-secure-mode {other:?}"))),
        }
    }

    /// The user types the next PIN from [`Self::pin_entries`] (as the phone asks after a
    /// `pin` bootstrap): opens the bundle, or counts a wrong PIN.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] when nothing is pending, no PIN is left to type, or the
    /// bundle is malformed.
    pub fn enter_pin(&mut self) -> Result<PinOutcome, ClientError> {
        let typed = self.pin_entries.pop_front().ok_or_else(|| ClientError::Protocol("no PIN to type".into()))?;
        let pending = self.pending_pin.as_mut().ok_or_else(|| ClientError::Protocol("no PIN requested".into()))?;
        match crate::secure::open_bundle(pending, self.mac, &typed)? {
            Ok((material, tan)) => {
                self.secure = Some(material);
                self.tan = Some(tan);
                self.pending_pin = None;
                Ok(PinOutcome::Opened)
            }
            Err(()) => {
                pending.failures += 1;
                if pending.failures >= pending.max_pin_retries {
                    self.pending_pin = None;
                    Ok(PinOutcome::RetriesExceeded)
                } else {
                    Ok(PinOutcome::Wrong { left: pending.max_pin_retries - pending.failures })
                }
            }
        }
    }

    /// The user types the PINs of [`Self::pin_entries`] one after another, as the phone
    /// asks after a `pin` bootstrap, until the bundle opens ([`PinsOutcome::Opened`]) or
    /// the PINs run out ([`PinsOutcome::NoPinLeft`]). When the phone's retry limit
    /// (`max-pin-retries`) is reached, the phone ends the matter on `client` with `clean-up`
    /// (`cleanup-reason` [`RETRIES_EXCEEDED`]) and returns the DLS's answer
    /// ([`PinsOutcome::RetriesExceeded`]). `on_pin` is shown each PIN's outcome as it is
    /// typed (before any `clean-up` is sent), with the phone as it is then.
    ///
    /// # Errors
    /// [`PinsError::Open`] when a PIN cannot be tried (see [`Self::enter_pin`]);
    /// [`PinsError::CleanUp`] when sending the `clean-up` fails.
    pub async fn enter_pins(
        &mut self,
        client: &mut WpiClient,
        mut on_pin: impl FnMut(&Self, &PinOutcome),
    ) -> Result<PinsOutcome, PinsError> {
        loop {
            if self.pin_entries.is_empty() {
                return Ok(PinsOutcome::NoPinLeft);
            }
            let typed = self.enter_pin().map_err(PinsError::Open)?;
            on_pin(self, &typed);
            match typed {
                PinOutcome::Opened => return Ok(PinsOutcome::Opened),
                PinOutcome::Wrong { .. } => {}
                PinOutcome::RetriesExceeded => {
                    let answer = self.clean_up(client, RETRIES_EXCEEDED).await.map_err(PinsError::CleanUp)?;
                    return Ok(PinsOutcome::RetriesExceeded { answer });
                }
            }
        }
    }

    /// A client for the secure port of `host` (mutual TLS with the bootstrapped
    /// certificate, the server verified against the delivered CAs).
    ///
    /// # Errors
    /// [`ClientError::Protocol`] before bootstrapping; [`ClientError::Tls`] for unusable
    /// material.
    pub fn secure_client(&self, host: &str) -> Result<WpiClient, ClientError> {
        let m = self.secure.as_ref().ok_or_else(|| ClientError::Protocol("not bootstrapped".into()))?;
        WpiClient::with_tls(&format!("{host}:{}", m.port), m.client_config()?)
    }

    /// Ends an interaction from the phone's side (`clean-up`) with a `cleanup-reason`,
    /// e.g. `password retries exceeded`; returns the DLS's answer.
    ///
    /// # Errors
    /// [`ClientError`] when the exchange fails.
    pub async fn clean_up(&mut self, client: &mut WpiClient, reason: &str) -> Result<DlsMessage, ClientError> {
        client.forget_session();
        let items = vec![Item::new("mac-addr", self.mac.colon_separated()), Item::new("cleanup-reason", reason)];
        let msg = self.message(&new_nonce(), ReasonForContact::new(Reason::CleanUp), Some(items), Fragment::Final);
        client.exchange(&msg).await
    }

    fn write(&mut self, item: &Item) -> Result<(), ItemStatus> {
        if READ_ONLY.contains(&item.name.as_str()) {
            return Err(ItemStatus::ReadOnly);
        }
        if self.unknown_items.contains(&item.name) {
            return Err(ItemStatus::UnknownItem);
        }
        if is_userdata(&item.name) {
            // The user's data: Base64, kept at index 1 (written with or without it).
            if !matches!(item.index, None | Some(USERDATA_INDEX)) {
                return Err(ItemStatus::InvalidIndex);
            }
            if crate::mobility::decode_userdata(&item.value).is_err() {
                return Err(ItemStatus::InvalidData);
            }
            self.set(&item.name, Some(USERDATA_INDEX), &item.value);
            return Ok(());
        }
        self.set(&item.name, item.index, &item.value);
        Ok(())
    }

    /// The answer to one item of a `ReadItems`: its value, or a status saying why not. The
    /// user's data is read at index 1 whether asked with that index or none, and answered with
    /// the index asked; data the phone does not hold is `failed`.
    fn read_one(&self, w: Item) -> Item {
        if w.name == "bootstrapping-tan" {
            return match &self.tan {
                Some(t) => Item { value: t.clone(), ..w },
                None => Item { value: String::new(), ..w }.with_status(ItemStatus::Failed),
            };
        }
        if is_userdata(&w.name) {
            return match (w.index, self.get(&w.name, Some(USERDATA_INDEX))) {
                (None | Some(USERDATA_INDEX), Some(v)) => Item { value: v.to_owned(), ..w },
                (None | Some(USERDATA_INDEX), None) => {
                    Item { value: String::new(), ..w }.with_status(ItemStatus::Failed)
                }
                _ => Item { value: String::new(), ..w }.with_status(ItemStatus::InvalidIndex),
            };
        }
        match self.get(&w.name, w.index) {
            Some(v) => Item { value: v.to_owned(), ..w },
            None => Item { value: String::new(), ..w }.with_status(ItemStatus::UnknownItem),
        }
    }

    /// A reply's items in fragments within the protocol's 50 kB and
    /// [`Self::reply_fragment_items`], last first; an item larger than 50 kB on its own (the
    /// user's data can be) makes the byte budget its size.
    fn fragments(&self, items: Vec<Item>) -> Vec<Vec<Item>> {
        let mut limits = FragmentLimits::default();
        // Escaping makes a character 6 bytes at most: below that bound, no item can be too
        // large, and none is measured.
        let bound = |i: &Item| 6 * (i.name.len() + i.value.len() + i.item_type.as_ref().map_or(0, String::len)) + 128;
        if items.iter().any(|i| bound(i) + ENVELOPE_BYTES > limits.max_bytes) {
            let largest = items.iter().map(encoded_size).max().unwrap_or(0);
            limits.max_bytes = limits.max_bytes.max(largest + ENVELOPE_BYTES);
        }
        limits.max_items = self.reply_fragment_items;
        let mut parts = split_by(items, &limits, |_| None::<()>).unwrap_or_default();
        parts.reverse();
        parts
    }

    fn next_fragment(&self, nonce: &str, action: &Action, fragments: &mut Vec<Vec<Item>>) -> WorkpointMessage {
        let items = fragments.pop().unwrap_or_default();
        let fragment = if fragments.is_empty() { Fragment::Final } else { Fragment::Next };
        self.message(nonce, ReasonForContact::reply_to(action.clone(), ReplyStatus::Accepted), Some(items), fragment)
    }
}

/// A fresh nonce: 16 random bytes as 32 upper-case hex digits.
#[must_use]
pub fn new_nonce() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Without a random source, fall back to the time: unique enough for a simulator.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b = t.to_be_bytes();
    }
    hex::encode_upper(b)
}

/// An item map keyed by name and index (for comparisons in tests).
#[must_use]
pub fn item_map(items: &[Item]) -> HashMap<(String, Option<u32>), String> {
    items.iter().map(|i| ((i.name.clone(), i.index), i.value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_items_replaces_in_place_and_appends_the_rest_last_one_winning() {
        let mac = MacAddr::from_bytes([0, 0x1A, 0xE8, 0, 0, 1]);
        let phone = Phone::with_items(
            mac,
            [
                Item::new("e164", "4989"),
                Item::indexed("key", 1, "a"),
                Item::new("x", "1"),
                Item::indexed("key", 1, "b"),
                Item::indexed("key", 2, "c"),
                Item::new("x", "2"),
                Item::new("x", "3"),
            ],
        );
        let base = Phone::new(mac).items;
        let e164 = base.iter().position(|i| i.name == "e164").expect("e164");
        assert_eq!(phone.items.len(), base.len() + 3);
        assert_eq!(phone.items[e164], Item::new("e164", "4989"), "replaced where it was");
        let tail: Vec<(&str, Option<u32>, &str)> =
            phone.items[base.len()..].iter().map(|i| (i.name.as_str(), i.index, i.value.as_str())).collect();
        assert_eq!(tail, [("key", Some(1), "b"), ("x", None, "3"), ("key", Some(2), "c")]);
        assert_eq!(phone.get("device-type", None), Some("OpenStage 60"));
    }
}
