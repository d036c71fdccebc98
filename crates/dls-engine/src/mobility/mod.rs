//! Mobility (hot desking): a *user* — a number, a password, mobility profiles and saved
//! data — logs on at any phone, which then carries the user's number and configuration,
//! and off again, the phone returning to its own *basic identity*. `docs/mobility.md` has
//! the flows and the decisions.
//!
//! What the engine is given and asks for, sans-IO like the rest:
//! * the shell asks [`crate::Engine::mobility_query`] whether a message needs the users'
//!   state, loads what the [`MobilityQuery`] says (the user logged on at the device, the
//!   user a logon names, the users of the device's mobility jobs, saved data when it is to
//!   be sent), checks the password the phone sent against the user's Argon2id hash (outside
//!   the device's transaction: it is slow) and the throttle, and passes it all in
//!   [`crate::Input::mobility`] ([`MobilityInput`], with the [`Verdict`]);
//! * the engine answers, and asks for [`MobilityChange`]s in the same transaction as the
//!   message's other changes. A change of a user's state is preceded by
//!   [`MobilityChange::Expect`]: the user's revision as it was loaded, so that of two
//!   messages changing one user at once (two phones, two nodes) the second fails and its
//!   phone is told to try again ([`crate::Refusal::MobilityBusy`]).
//!
//! Recognising a mobility message, the numbers and the saved data are here; the flows are
//! in `flows` (logon, restore, logoff, what a phone's report says) and `jobs` (the forced
//! logoff and the administrator's logon).

mod data;
mod flows;
mod jobs;

use dls_message::{Item, MacAddr, Reason, WorkpointMessage};
use serde::{Deserialize, Serialize};

pub use data::{DataError, decode, decoded_len};

use crate::desired::Desired;
use crate::device::{Change, DeviceSnapshot, UnixTime};
use crate::jobs::{Job, JobKind};
use crate::session::{Awaiting, Session};

/// The prefix of the items that hold a user's data (phone book, call log, ring tones…).
pub const USERDATA_PREFIX: &str = "userdata-";

/// The user data items a forced logoff reads (the ones the public phone simulator of the
/// vendor's system asks to restore).
pub const USERDATA_NAMES: [&str; 10] = [
    "userdata-vu1",
    "userdata-call-log",
    "userdata-ring-tone",
    "userdata-phonebook",
    "userdata-call-group",
    "userdata-voice-record",
    "userdata-picture",
    "userdata-ring-tone-mp3",
    "userdata-screensaver",
    "userdata-ldap",
];

/// The most item names a `requested-items` or `modified-items` list may hold.
pub const MAX_LISTED_ITEMS: usize = 64;

/// The longest number, in digits.
pub const MAX_NUMBER_DIGITS: usize = 32;

/// Whether `name` is a user data item (`userdata-…`, a valid item name).
#[must_use]
pub fn is_userdata(name: &str) -> bool {
    name.len() > USERDATA_PREFIX.len()
        && name.len() <= dls_message::check::MAX_NAME_BYTES
        && name.starts_with(USERDATA_PREFIX)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A user's number as a key: digits only (spaces, `-`, `.`, `/` and parentheses dropped),
/// one leading `+` kept. `+49 89 1234` and `+49891234` are the same user; `0891234` is
/// another. `None` for anything else (letters, no digit, more than [`MAX_NUMBER_DIGITS`]).
#[must_use]
pub fn normalise_number(text: &str) -> Option<String> {
    let text = text.trim();
    let (plus, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut out = String::with_capacity(rest.len() + 1);
    if plus {
        out.push('+');
    }
    let mut digits = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => {
                digits += 1;
                out.push(c);
            }
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return None,
        }
    }
    (1..=MAX_NUMBER_DIGITS).contains(&digits).then_some(out)
}

/// What a phone's `sip-mobility-state` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneState {
    /// `0`: a user is logged on.
    LoggedOn,
    /// `1`: no user (the phone's own identity).
    LoggedOff,
    /// `2`: interim (a user is logged on; the phone restarted).
    Interim,
}

impl PhoneState {
    /// The state of a reported value (trimmed); `None` for another value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "0" => Some(Self::LoggedOn),
            "1" => Some(Self::LoggedOff),
            "2" => Some(Self::Interim),
            _ => None,
        }
    }

    /// Whether a user is logged on at the phone, by its report.
    #[must_use]
    pub fn user_on(self) -> bool {
        matches!(self, Self::LoggedOn | Self::Interim)
    }
}

/// The value of an item the message carries (without status), if any.
fn reported<'a>(message: &'a WorkpointMessage, name: &str) -> Option<&'a str> {
    message.items.iter().flatten().find(|i| i.name == name && i.status.is_none()).map(|i| i.value.as_str())
}

/// The `sip-mobility-state` a message reports: `None` when it reports none, `Some(None)`
/// for a value that is none of `0`, `1`, `2`.
#[must_use]
pub fn reported_state(message: &WorkpointMessage) -> Option<Option<PhoneState>> {
    reported(message, "sip-mobility-state").map(PhoneState::parse)
}

/// The password a message carries (`user-pwd`), if any.
#[must_use]
pub fn reported_password(message: &WorkpointMessage) -> Option<&str> {
    reported(message, "user-pwd")
}

/// What a mobility message asks (see `docs/mobility.md`, "Recognising a mobility message").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// State `0` with `user-pwd`: log on the user whose number is the reported `e164`.
    Logon,
    /// State `0` with `requested-items`: send the user's saved data.
    Restore,
    /// State `1`: log off the user logged on here.
    Logoff,
    /// A `sip-mobility-state` that is none of `0`, `1`, `2`.
    BadState,
    /// State `2` with a mobility item: nothing a phone asks for; treated as an ordinary
    /// message.
    None,
}

/// Whether `message` is a mobility message, and what it asks: its reason is
/// `inventory-changes` (or `local-changes`) and it carries `sip-mobility-state` with at
/// least one of `user-pwd`, `requested-items`, `modified-items`. `None` for every other
/// message, start-ups included (they carry `sip-mobility-state` too).
#[must_use]
pub fn classify(message: &WorkpointMessage) -> Option<Request> {
    if !matches!(message.reason.value, Reason::InventoryChanges | Reason::LocalChanges) {
        return None;
    }
    let state = reported_state(message)?;
    let has = |n: &str| reported(message, n).is_some();
    let (pwd, requested, modified) = (has("user-pwd"), has("requested-items"), has("modified-items"));
    if !(pwd || requested || modified) {
        return None;
    }
    Some(match state {
        None => Request::BadState,
        Some(PhoneState::LoggedOn) if pwd && !requested => Request::Logon,
        Some(PhoneState::LoggedOn) if requested => Request::Restore,
        Some(PhoneState::LoggedOff) => Request::Logoff,
        Some(_) => Request::None,
    })
}

/// The names of a comma-separated list (`requested-items`, `modified-items`), trimmed,
/// empty ones dropped, each once: the first [`MAX_LISTED_ITEMS`], and whether there were
/// more.
#[must_use]
pub fn listed_names(value: &str) -> (Vec<String>, bool) {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if names.iter().any(|n| n == name) {
            continue;
        }
        if names.len() == MAX_LISTED_ITEMS {
            return (names, true);
        }
        names.push(name.to_owned());
    }
    (names, false)
}

/// The items of a user's mobility profiles `names`, layered in order (a later profile's
/// item wins); a name without a profile is skipped. Only the items: a profile's policies
/// are the device's.
#[must_use]
pub fn user_items(profiles: &[crate::desired::Profile], names: &[String]) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for name in names {
        let Some(p) = profiles.iter().find(|p| &p.name == name) else { continue };
        for item in &p.items {
            let clean = Item { status: None, ..item.clone() };
            match out.iter_mut().find(|i| i.name == item.name && i.index == item.index) {
                Some(have) => *have = clean,
                None => out.push(clean),
            }
        }
    }
    out
}

/// A mobility user as the engine sees it (never the password hash).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobilityUser {
    /// The number, normalised ([`normalise_number`]).
    pub number: String,
    /// Counted up by every change of the user: a change asked for is conditional on it
    /// ([`MobilityChange::Expect`]).
    pub revision: i64,
    /// The items of the user's mobility profiles, layered in order (later wins).
    pub items: Vec<Item>,
    /// The device the user is logged on at.
    pub device: Option<MacAddr>,
    /// Since when.
    pub since: Option<UnixTime>,
    /// When a forced logoff at `device` was asked for (a logon elsewhere, or an
    /// administrator), until the user is logged off or on again.
    pub logoff_requested_at: Option<UnixTime>,
    /// The user's saved data: names and sizes, and the values when they were loaded.
    pub data: Vec<SavedData>,
}

/// One saved `userdata-*` item of a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedData {
    /// The item's name.
    pub name: String,
    /// Its decoded size, in bytes.
    pub size: u64,
    /// Its value (the Base64 text the phone sent), when loaded.
    pub value: Option<String>,
}

/// What the shell found checking the password a message carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// No password was checked (none sent, or none to check).
    #[default]
    NotChecked,
    /// The password is the user's.
    Right,
    /// It is not.
    Wrong,
    /// The message names no user the store knows (checked against a dummy hash, so that
    /// it takes as long).
    UnknownUser,
    /// Too many wrong passwords lately: not checked (see `dls_store::rules::mobility`).
    Throttled,
}

/// The users' state for one message, loaded by the shell as [`crate::Engine::mobility_query`]
/// asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MobilityInput {
    /// The user logged on at the message's device.
    pub here: Option<MobilityUser>,
    /// The user a logon (or restore) names by its reported `e164`, if known.
    pub named: Option<MobilityUser>,
    /// The password check, for the user [`MobilityQuery::check_password`] said.
    pub verdict: Verdict,
    /// The users the device's mobility jobs name (those the store knows), the data values
    /// of those to be logged on included.
    pub job_users: Vec<MobilityUser>,
}

impl MobilityInput {
    /// The job user of `number`, if loaded.
    pub(crate) fn job_user(&self, number: &str) -> Option<&MobilityUser> {
        self.job_users.iter().find(|u| u.number == number)
    }
}

/// Whose password a message's `user-pwd` is to be checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whom {
    /// The user the message names (a logon).
    Named,
    /// The user logged on at the device (a logoff).
    Here,
}

/// What the shell must load for a message ([`crate::Engine::mobility_query`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MobilityQuery {
    /// The number the message names (its `e164`, normalised), for a logon or a restore.
    pub named: Option<String>,
    /// Check the message's `user-pwd` against this user's hash (and the throttle first).
    pub check_password: Option<Whom>,
    /// Load the values of these saved items of the user logged on here (a restore).
    pub restore: Vec<String>,
    /// The users the device's open mobility jobs name.
    pub job_users: Vec<String>,
    /// Of those, the users whose saved data values are needed (to be logged on).
    pub job_data: Vec<String>,
}

impl MobilityQuery {
    /// Whether `input` holds what this query asks (the job users loaded, or known absent).
    #[must_use]
    pub fn covers_jobs(&self, loaded: &[String]) -> bool {
        self.job_users.iter().all(|n| loaded.contains(n))
    }
}

/// A user data item a phone sent, checked: to be saved.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserData {
    /// The item's name (`userdata-…`).
    pub name: String,
    /// Its value: the Base64 text (whitespace removed); empty: the saved item is deleted.
    pub value: String,
    /// Its decoded size.
    pub size: u64,
}

impl std::fmt::Debug for UserData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserData").field("name", &self.name).field("size", &self.size).finish_non_exhaustive()
    }
}

/// A change of the users' state, persisted with the message's other changes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MobilityChange {
    /// The transaction fails (`StoreError::Contended`) unless the user `number` exists
    /// with this revision; the revision is counted up. Precedes every other change of the
    /// user in the transaction.
    Expect {
        /// The user.
        number: String,
        /// The revision the engine decided on.
        revision: i64,
    },
    /// The user is logged on at the message's device since `at` (a forced logoff asked
    /// for is forgotten).
    LogOn {
        /// The user.
        number: String,
        /// Since when.
        at: UnixTime,
    },
    /// The user is logged off (wherever it was logged on).
    LogOff {
        /// The user.
        number: String,
    },
    /// Saves the user's data items, replacing those of the same names (an empty value
    /// deletes the saved item).
    SaveData {
        /// The user.
        number: String,
        /// The items.
        items: Vec<UserData>,
        /// When.
        at: UnixTime,
    },
    /// A forced logoff of the user at `device` is asked for at `at`: recorded, and a
    /// `mobility-logoff` job queued for `device` unless one is open there.
    RequestLogoff {
        /// The user.
        number: String,
        /// Where it is logged on.
        device: MacAddr,
        /// When.
        at: UnixTime,
    },
    /// A password check of the user `number` at the message's device, for the throttle.
    Attempt {
        /// The number the phone named (normalised; the user may not exist).
        number: String,
        /// Whether the password was right.
        success: bool,
        /// When.
        at: UnixTime,
    },
}

/// The mobility engine's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MobilityLimits {
    /// The largest user data item, decoded (bytes). Default 1 MiB.
    pub max_item_bytes: u64,
    /// The most data one user keeps, decoded (bytes). Default 8 MiB.
    pub max_user_bytes: u64,
    /// How long a forced logoff may take before a logon elsewhere goes ahead without the
    /// data (seconds). Default 300.
    pub logoff_grace_secs: u64,
}

impl Default for MobilityLimits {
    fn default() -> Self {
        Self { max_item_bytes: 1 << 20, max_user_bytes: 8 << 20, logoff_grace_secs: 300 }
    }
}

impl MobilityLimits {
    /// The most bytes of item names and values a logoff's reply may carry: every item at
    /// its largest Base64, and some room for the envelope of each.
    #[must_use]
    pub fn max_reply_bytes(&self) -> usize {
        let text = self.max_user_bytes.div_ceil(3).saturating_mul(4);
        usize::try_from(text).unwrap_or(usize::MAX).saturating_add(MAX_LISTED_ITEMS * 256)
    }
}

/// The numbers `jobs`' mobility jobs name, and those to be logged on.
fn job_numbers<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> (Vec<String>, Vec<String>) {
    let (mut all, mut logons) = (Vec::new(), Vec::new());
    for job in jobs {
        match &job.kind {
            JobKind::MobilityLogon { number } => {
                all.push(number.clone());
                logons.push(number.clone());
            }
            JobKind::MobilityLogoff { number } => all.push(number.clone()),
            _ => {}
        }
    }
    all.dedup();
    logons.dedup();
    (all, logons)
}

/// See [`crate::Engine::mobility_query`].
pub(crate) fn query(
    message: &WorkpointMessage,
    session: Option<&Session>,
    device: Option<&DeviceSnapshot>,
) -> Option<MobilityQuery> {
    let in_session = session.is_some() && message.reason.value == Reason::ReplyTo;
    let session_mobility =
        in_session && session.is_some_and(|s| s.mobility.is_some() || matches!(s.awaiting, Awaiting::Mobility(_)));
    let state = reported_state(message);
    // The users of the mobility jobs this message may start: the device's open ones at the
    // start of an interaction, or those still queued in the session after its writes and
    // earlier jobs (a new phone's inventory read, the configuration written first).
    let (job_users, job_data) = match (device, session) {
        (_, Some(s)) if in_session => job_numbers(&s.jobs),
        (Some(d), _) if crate::job_run::runs_jobs(&message.reason.value) => {
            job_numbers(d.jobs.iter().filter(|j| j.runnable()))
        }
        _ => (Vec::new(), Vec::new()),
    };
    if state.is_none() && !session_mobility && job_users.is_empty() {
        return None;
    }
    let mut q = MobilityQuery { job_users, job_data, ..MobilityQuery::default() };
    if in_session {
        // The user of the mobility job the interaction is in.
        if let Some(Awaiting::Mobility(step)) = session.map(|s| &s.awaiting)
            && let Some(JobKind::MobilityLogon { number } | JobKind::MobilityLogoff { number }) =
                step.job().map(|j| &j.kind)
            && !q.job_users.contains(number)
        {
            q.job_users.push(number.clone());
        }
        return Some(q);
    }
    let named = || reported(message, "e164").and_then(normalise_number);
    match classify(message) {
        Some(Request::Logon) => {
            q.named = named();
            q.check_password = Some(Whom::Named);
        }
        Some(Request::Restore) => {
            q.named = named();
            q.restore = reported(message, "requested-items")
                .map(|v| listed_names(v).0)
                .unwrap_or_default()
                .into_iter()
                .filter(|n| is_userdata(n))
                .collect();
        }
        Some(Request::Logoff) if reported_password(message).is_some() => q.check_password = Some(Whom::Here),
        _ => {}
    }
    Some(q)
}

/// Whose configuration lies on top of the device's own in an interaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Layer {
    /// The user of this number is logged on: its profiles' items and its number.
    User(String),
    /// No user is logged on here, but the phone says one is (a logon that was lost, a
    /// forced logoff without the phone): its basic identity is written back.
    Identity {
        /// The phone's `basic-e164`, as it reported it.
        basic_e164: String,
    },
}

/// The layer of a message: a `reply-to` keeps its interaction's; a message that opens one
/// (not a mobility request) gets the user logged on here when the phone says a user is
/// logged on (state `0` or `2`), or the basic identity when the phone says so and no user
/// is logged on here while its `e164` is not its `basic-e164`.
pub(crate) fn layer_of(
    message: &WorkpointMessage,
    session: Option<&Session>,
    input: Option<&MobilityInput>,
) -> Option<Layer> {
    if let Some(s) = session.filter(|_| message.reason.value == Reason::ReplyTo) {
        return s.mobility.clone();
    }
    if !matches!(classify(message), None | Some(Request::None)) {
        return None;
    }
    let state = reported_state(message).flatten()?;
    let input = input?;
    if !state.user_on() {
        return None;
    }
    if let Some(here) = &input.here {
        return Some(Layer::User(here.number.clone()));
    }
    let basic = reported(message, "basic-e164")?.trim();
    let e164 = reported(message, "e164").map(str::trim).unwrap_or_default();
    let same = basic == e164 || normalise_number(basic).is_some_and(|b| Some(b) == normalise_number(e164));
    (!basic.is_empty() && !same).then(|| Layer::Identity { basic_e164: basic.to_owned() })
}

/// `desired` with `items` on top (an item of the same name and index replaced in place).
fn put_items(desired: &mut Desired, items: impl IntoIterator<Item = Item>) {
    for item in items {
        match desired.items.iter_mut().find(|i| i.name == item.name && i.index == item.index) {
            Some(have) => *have = item,
            None => desired.items.push(item),
        }
    }
}

/// The desired configuration with `layer` on top of the device's own, if it changes it:
/// the user's profiles' items and number, or the basic identity (`e164` = `basic-e164`,
/// `sip-mobility-state` = `1`).
pub(crate) fn layered(own: &Desired, layer: Option<&Layer>, input: Option<&MobilityInput>) -> Option<Desired> {
    let mut d = own.clone();
    match layer? {
        Layer::User(number) => {
            let here = input?.here.as_ref().filter(|u| &u.number == number)?;
            put_items(&mut d, user_writes(here).into_iter().filter(|i| i.name != "sip-mobility-state"));
            d.layers.push(format!("mobility user {number}"));
        }
        Layer::Identity { basic_e164 } => {
            put_items(&mut d, identity_items(basic_e164));
            d.layers.push("mobility: basic identity".to_owned());
        }
    }
    Some(d)
}

/// What a logon writes: `sip-mobility-state` = `0`, the user's number, its profiles' items.
pub(crate) fn user_writes(user: &MobilityUser) -> Vec<Item> {
    let mut items = vec![Item::new("sip-mobility-state", "0"), Item::new("e164", user.number.clone())];
    items.extend(user.items.iter().filter(|i| i.name != "e164" && i.name != "sip-mobility-state").cloned());
    items
}

/// A device's basic identity: `sip-mobility-state` = `1`, `e164` = its `basic-e164`.
pub(crate) fn identity_items(basic_e164: &str) -> Vec<Item> {
    vec![Item::new("sip-mobility-state", "1"), Item::new("e164", basic_e164)]
}

/// Whether the message is from a phone with a user logged on (by its report, else by what
/// the store knows): then the `e164` it reports is the user's, not the device's.
pub(crate) fn user_on(message: &WorkpointMessage, layer: Option<&Layer>, input: Option<&MobilityInput>) -> bool {
    if matches!(classify(message), Some(Request::Logon | Request::Restore | Request::Logoff)) {
        return true;
    }
    match reported_state(message).flatten() {
        Some(state) => state.user_on(),
        None => matches!(layer, Some(Layer::User(_))) || input.is_some_and(|i| i.here.is_some()),
    }
}

/// Items that are the mobility protocol's, never the device's settings: the lists of a
/// restore and a logoff, and the user's data.
fn is_protocol_item(name: &str) -> bool {
    name == "requested-items" || name == "modified-items" || name.starts_with(USERDATA_PREFIX)
}

/// Keeps the inventory the device's: drops the mobility protocol's items and the user's
/// data from every inventory change and, while a user is logged on (`user_on`, or what the
/// items themselves report), the `e164`, which is the user's; a complete inventory keeps
/// the device's stored one.
pub(crate) fn scrub_inventory(changes: &mut [Change], user_on: bool, stored_e164: Option<&Item>) {
    let on = |items: &[Item]| {
        items
            .iter()
            .find(|i| i.name == "sip-mobility-state" && i.status.is_none())
            .and_then(|i| PhoneState::parse(&i.value))
            .map_or(user_on, PhoneState::user_on)
    };
    for change in changes {
        match change {
            Change::MergeInventory(items) => {
                let user = on(items);
                items.retain(|i| !(is_protocol_item(&i.name) || (user && i.name == "e164")));
            }
            Change::ReplaceInventory { items, .. } => {
                let user = on(items);
                items.retain(|i| !(is_protocol_item(&i.name) || (user && i.name == "e164")));
                if let Some(e164) = stored_e164.filter(|_| user) {
                    items.push(e164.clone());
                }
            }
            _ => {}
        }
    }
}

/// `sip-mobility-state` is written with `status="secure"`, as captures of the vendor's
/// DLS show.
pub(crate) fn mark_secure(reply: &mut dls_message::DlsMessage) {
    if reply.action != dls_message::Action::WriteItems {
        return;
    }
    for item in reply.items.iter_mut().flatten().filter(|i| i.name == "sip-mobility-state") {
        item.status = Some(dls_message::ItemStatus::Other("secure".into()));
    }
}

/// What a mobility interaction waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum MobilityStep {
    /// A logon's `WriteItems`: `sent`, then `rest`.
    Logon { number: String, sent: Vec<Item>, rest: std::collections::VecDeque<Vec<Item>> },
    /// A restore's `WriteItems` of the user's data: `rest` to follow.
    Restore { rest: std::collections::VecDeque<Vec<Item>> },
    /// A logoff's `ReadItems` of the modified items `names`.
    LogoffRead { number: String, names: Vec<String> },
    /// A forced logoff's `ReadItems` of every user data item.
    ForcedRead { job: Job, number: String },
    /// A forced logoff's `WriteItems` of the basic identity; the user to log off when done.
    ForcedWrite { job: Job, number: Option<String>, sent: Vec<Item>, rest: std::collections::VecDeque<Vec<Item>> },
    /// An administrator's logon's `WriteItems`: configuration and data.
    JobLogon { job: Job, number: String, sent: Vec<Item>, rest: std::collections::VecDeque<Vec<Item>> },
}

impl MobilityStep {
    /// The action whose reply this step waits for.
    pub(crate) fn action(&self) -> dls_message::Action {
        match self {
            Self::LogoffRead { .. } | Self::ForcedRead { .. } => dls_message::Action::ReadItems,
            _ => dls_message::Action::WriteItems,
        }
    }

    /// The job the step belongs to, if any.
    pub(crate) fn job(&self) -> Option<&Job> {
        match self {
            Self::ForcedRead { job, .. } | Self::ForcedWrite { job, .. } | Self::JobLogon { job, .. } => Some(job),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_digits_with_one_leading_plus() {
        assert_eq!(normalise_number("+49 89 1234").as_deref(), Some("+49891234"));
        assert_eq!(normalise_number(" +49891234 ").as_deref(), Some("+49891234"));
        assert_eq!(normalise_number("0891234").as_deref(), Some("0891234"));
        assert_eq!(normalise_number("(089) 12-34/5.6").as_deref(), Some("089123456"));
        for bad in ["", "+", "abc", "12a", "++1", "1+2", &"1".repeat(33), "1\n2"] {
            assert_eq!(normalise_number(bad), None, "{bad:?}");
        }
        assert_eq!(normalise_number(&"1".repeat(32)).map(|n| n.len()), Some(32));
    }

    #[test]
    fn userdata_names() {
        assert!(USERDATA_NAMES.iter().all(|n| is_userdata(n)));
        for bad in ["userdata-", "sip-pwd", "userdata-a b", "USERDATA-x", "userdata-é"] {
            assert!(!is_userdata(bad), "{bad}");
        }
    }

    #[test]
    fn lists_are_trimmed_deduplicated_and_bounded() {
        assert_eq!(listed_names(" a, b,,a ,c "), (vec!["a".into(), "b".into(), "c".into()], false));
        assert_eq!(listed_names(""), (vec![], false));
        let long = (0..=MAX_LISTED_ITEMS).map(|i| format!("n{i}")).collect::<Vec<_>>().join(",");
        let (names, more) = listed_names(&long);
        assert_eq!((names.len(), more), (MAX_LISTED_ITEMS, true));
    }

    #[test]
    fn the_reply_limit_admits_the_largest_data() {
        let l = MobilityLimits::default();
        assert!(l.max_reply_bytes() as u64 >= l.max_user_bytes / 3 * 4);
    }
}
