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

use dls_message::{Item, MacAddr, Reason, WorkpointMessage};
use serde::{Deserialize, Serialize};

pub use data::{DataError, decoded_len};

use crate::device::UnixTime;

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
/// empty ones dropped, each once, at most [`MAX_LISTED_ITEMS`] (`None` past that).
#[must_use]
pub fn listed_names(value: &str) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        if names.len() > MAX_LISTED_ITEMS {
            return None;
        }
    }
    Some(names)
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
        assert_eq!(listed_names(" a, b,,a ,c "), Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(listed_names(""), Some(vec![]));
        let long = (0..=MAX_LISTED_ITEMS).map(|i| format!("n{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(listed_names(&long), None);
    }

    #[test]
    fn the_reply_limit_admits_the_largest_data() {
        let l = MobilityLimits::default();
        assert!(l.max_reply_bytes() as u64 >= l.max_user_bytes / 3 * 4);
    }
}
