//! Mobility (hot desking), the phone's side: a user logs on at the phone with their number
//! and password, the DLS writes the user's configuration and restores the user's data
//! (`userdata-*`); at logoff the phone hands the data it changed back and returns to its own
//! number (`basic-e164`).
//!
//! The messages, as a public simulator of the vendor's phones sends them:
//!
//! * **Logon** ([`Phone::log_on`]): `inventory-changes` with `sip-mobility-state=0`,
//!   `e164` = the user's number, `basic-e164` = the phone's own, `mobility-enabled=true` and
//!   `user-pwd`; the DLS writes the user's configuration (`WriteItems`, answered with
//!   `reply-to`), then `CleanUp`. Then a `start-up` with `sip-mobility-state=2` (interim)
//!   and the user's number. Then `inventory-changes` with `sip-mobility-state=0` and
//!   `requested-items` = [`USERDATA_ITEMS`]; what the DLS writes of them (Base64 at index
//!   1) becomes the phone's user data.
//! * **Logoff** ([`Phone::log_off`]): `inventory-changes` with `sip-mobility-state=1`,
//!   `configuration-changed-flag=true`, `user-pwd` (when given) and `modified-items` = the
//!   user data changed since the logon ([`Phone::set_userdata`]); the DLS reads them
//!   (`ReadItems`), then `CleanUp`. The phone drops the user's data, takes its own number
//!   back and sends a `start-up` with `sip-mobility-state=1`.
//!
//! Each interaction has a fresh nonce ([`crate::new_nonce`]). A `CleanUp` with a
//! `cleanup-reason` at any step ends the flow with [`MobilityError::Refused`] naming it.
//! The password ([`UserPassword`]) is never logged or shown to an observer
//! ([`crate::Traced`]) and is zeroized once sent.
//!
//! A DLS may also log a user on or off by itself (an administrator's logon, a forced logoff
//! when the user logs on elsewhere): the phone's ordinary answers do it — `WriteItems` of
//! `sip-mobility-state`, `e164` and `userdata-*`, `ReadItems` of `userdata-*`; when the DLS
//! writes `sip-mobility-state=1` the user's data is dropped.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use dls_message::{Item, Reason};
use zeroize::Zeroizing;

use crate::client::{ClientError, WpiClient};
use crate::phone::{Interaction, Phone};

/// The user data a phone asks the DLS to restore at logon, in the simulator's order.
pub const USERDATA_ITEMS: [&str; 10] = [
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

/// The item index the user's data is kept at.
pub const USERDATA_INDEX: u32 = 1;

/// The item that says whether a user is logged on.
pub const MOBILITY_STATE: &str = "sip-mobility-state";

/// `sip-mobility-state`: a user is logged on.
pub const STATE_LOGGED_ON: &str = "0";
/// `sip-mobility-state`: no user is logged on (the phone's own identity).
pub const STATE_LOGGED_OFF: &str = "1";
/// `sip-mobility-state`: interim, in the `start-up` that follows a logon.
pub const STATE_INTERIM: &str = "2";

/// Whether `name` is an item of the user's data (`userdata-…`).
#[must_use]
pub fn is_userdata(name: &str) -> bool {
    name.strip_prefix("userdata-").is_some_and(|rest| !rest.is_empty())
}

/// Base64 as the user's data is written: the standard alphabet, padding optional, stray
/// trailing bits tolerated (public captures show them); white space is ignored.
const USERDATA_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The bytes of a `userdata-*` value.
pub(crate) fn decode_userdata(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if value.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        USERDATA_BASE64.decode(compact)
    } else {
        USERDATA_BASE64.decode(value)
    }
}

/// A mobility user's password as typed at the phone: zeroized when dropped, never shown
/// (`Debug` prints `UserPassword(***)`).
#[derive(Clone)]
pub struct UserPassword(Zeroizing<String>);

impl UserPassword {
    /// The password `text`, as it is (the caller trims what a file adds).
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserPassword(***)")
    }
}

/// A step of a logon or logoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MobilityStep {
    /// The logon's `inventory-changes` (with the password) and the configuration written.
    Logon,
    /// The `start-up` with `sip-mobility-state=2` after the logon.
    LogonStartUp,
    /// The `inventory-changes` with `requested-items`: the user's data restored.
    Restore,
    /// The logoff's `inventory-changes` and the user's data read back.
    Logoff,
    /// The `start-up` with `sip-mobility-state=1` after the logoff.
    LogoffStartUp,
}

impl MobilityStep {
    /// A short name (for counting failures by kind): `logon`, `logon-start-up`, `restore`,
    /// `logoff`, `logoff-start-up`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logon => "logon",
            Self::LogonStartUp => "logon-start-up",
            Self::Restore => "restore",
            Self::Logoff => "logoff",
            Self::LogoffStartUp => "logoff-start-up",
        }
    }
}

impl fmt::Display for MobilityStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Logon => "logon",
            Self::LogonStartUp => "start-up after the logon",
            Self::Restore => "restore of the user's data",
            Self::Logoff => "logoff",
            Self::LogoffStartUp => "start-up after the logoff",
        })
    }
}

/// Why a logon or logoff did not complete, by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MobilityError {
    /// The DLS refused: a `CleanUp` with a `cleanup-reason` (e.g. `mobility: logon refused`).
    #[error("{step} refused by the DLS: {}", reason.escape_debug())]
    Refused {
        /// The step refused.
        step: MobilityStep,
        /// The `cleanup-reason`, as the DLS sent it.
        reason: String,
        /// Whether the refused message carried the user's password.
        with_password: bool,
    },
    /// The DLS ended a step without doing what it needs (e.g. a logon without the user's
    /// configuration), or undid it.
    #[error("{step}: {why}")]
    NotConfirmed {
        /// The step.
        step: MobilityStep,
        /// What was missing.
        why: String,
    },
    /// An exchange failed (connection, TLS, HTTP, a DLS that breaks the protocol).
    #[error("{step}: {source}")]
    Client {
        /// The step.
        step: MobilityStep,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// A logoff, but no user is logged on at the phone.
    #[error("no user is logged on at this phone")]
    NoUser,
    /// A logon while a user is logged on at the phone.
    #[error("user {} is logged on at this phone: log off first", user.escape_debug())]
    UserLoggedOn {
        /// The user logged on.
        user: String,
    },
    /// The caller's input: an empty number, a name that is not `userdata-*`.
    #[error("{0}")]
    Invalid(String),
}

impl MobilityError {
    /// A short name for the kind of failure (for counting failures by kind): the step and
    /// `cleanup: REASON`, `not-confirmed` or the client error's kind, e.g.
    /// `logon cleanup: mobility: logon refused`, `logoff timeout`.
    #[must_use]
    pub fn kind(&self) -> String {
        match self {
            Self::Refused { step, reason, .. } => format!("{} cleanup: {}", step.as_str(), reason.escape_debug()),
            Self::NotConfirmed { step, .. } => format!("{} not-confirmed", step.as_str()),
            Self::Client { step, source } => format!("{} {}", step.as_str(), source.kind()),
            Self::NoUser => "no-user".to_owned(),
            Self::UserLoggedOn { .. } => "user-logged-on".to_owned(),
            Self::Invalid(_) => "invalid".to_owned(),
        }
    }

    /// The client error, when an exchange failed.
    #[must_use]
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            Self::Client { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What a logon did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Logon {
    /// The user's number, as the phone now reports it (`e164`).
    pub user: String,
    /// The logon's interaction (the configuration written).
    pub logon: Interaction,
    /// The interim `start-up`.
    pub start_up: Interaction,
    /// The restore (`requested-items`).
    pub restore: Interaction,
    /// The user data the DLS restored, by name.
    pub restored: Vec<String>,
}

/// What a logoff did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Logoff {
    /// The user who was logged on.
    pub user: String,
    /// The logoff's interaction (the user's data read).
    pub logoff: Interaction,
    /// The `start-up` with the phone's own number.
    pub start_up: Interaction,
    /// The changed user data the DLS read, by name.
    pub saved: Vec<String>,
    /// The changed user data the DLS did not read (lost with the logoff), by name.
    pub unsaved: Vec<String>,
}

/// The user's data the phone holds, one item (see [`Phone::userdata`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserData {
    /// `userdata-…`.
    pub name: String,
    /// The value as written: Base64.
    pub base64: String,
}

impl UserData {
    /// The bytes.
    ///
    /// # Errors
    /// [`MobilityError::Invalid`] when the value is not Base64 (only items set by hand,
    /// e.g. [`Phone::with_items`], can be: the DLS's are checked as written).
    pub fn bytes(&self) -> Result<Vec<u8>, MobilityError> {
        decode_userdata(&self.base64).map_err(|e| MobilityError::Invalid(format!("{}: not Base64: {e}", self.name)))
    }
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserData").field("name", &self.name).field("base64_len", &self.base64.len()).finish()
    }
}

/// Turns an interaction's failure or refusal at `step` into the flow's error.
fn checked(
    step: MobilityStep,
    with_password: bool,
    r: Result<Interaction, ClientError>,
) -> Result<Interaction, MobilityError> {
    let r = r.map_err(|source| MobilityError::Client { step, source })?;
    match &r.cleanup_reason {
        Some(reason) => Err(MobilityError::Refused { step, reason: reason.clone(), with_password }),
        None => Ok(r),
    }
}

/// Sets `name` to `value` in `items`, adding it at the end if missing.
fn put(items: &mut Vec<Item>, name: &str, value: &str) {
    match items.iter_mut().find(|i| i.name == name && i.index.is_none()) {
        Some(i) => value.clone_into(&mut i.value),
        None => items.push(Item::new(name, value)),
    }
}

impl Phone {
    /// The user logged on at the phone (its `e164` while `sip-mobility-state` is 0 or 2).
    #[must_use]
    pub fn mobility_user(&self) -> Option<&str> {
        let state = self.get(MOBILITY_STATE, None).map(str::trim);
        let user = self.get("e164", None).filter(|u| !u.trim().is_empty());
        matches!(state, Some(STATE_LOGGED_ON | STATE_INTERIM)).then_some(user).flatten()
    }

    /// The phone's own number: `basic-e164`, or `e164` while it has none and no user is logged
    /// on.
    #[must_use]
    pub fn basic_e164(&self) -> &str {
        match self.get("basic-e164", None).filter(|b| !b.trim().is_empty()) {
            Some(b) => b,
            None if self.mobility_user().is_none() => self.get("e164", None).unwrap_or_default(),
            None => "",
        }
    }

    /// The user's data the phone holds, in item order.
    #[must_use]
    pub fn userdata(&self) -> Vec<UserData> {
        self.items
            .iter()
            .filter(|i| is_userdata(&i.name) && i.index == Some(USERDATA_INDEX))
            .map(|i| UserData { name: i.name.clone(), base64: i.value.clone() })
            .collect()
    }

    /// The user changes one item of their data at the phone (e.g. the phone book): `bytes`
    /// are kept as Base64 at index 1, and the item is reported as modified at the logoff.
    ///
    /// # Errors
    /// [`MobilityError::Invalid`] when `name` is not `userdata-…`.
    pub fn set_userdata(&mut self, name: &str, bytes: &[u8]) -> Result<(), MobilityError> {
        self.put_userdata(name, &general_purpose::STANDARD.encode(bytes), true)
    }

    /// Puts one item of the user's data, as Base64 text, at the phone (e.g. as a phone kept
    /// it across a reboot), reported as modified at the logoff if `modified`.
    ///
    /// # Errors
    /// [`MobilityError::Invalid`] when `name` is not `userdata-…` or `base64` is not Base64.
    pub fn put_userdata(&mut self, name: &str, base64: &str, modified: bool) -> Result<(), MobilityError> {
        if !is_userdata(name) || name.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err(MobilityError::Invalid(format!(
                "{}: the user's data is an item named userdata-… (e.g. userdata-phonebook)",
                name.escape_debug()
            )));
        }
        if let Err(e) = decode_userdata(base64) {
            return Err(MobilityError::Invalid(format!("{name}: not Base64: {e}")));
        }
        self.set(name, Some(USERDATA_INDEX), base64);
        if modified {
            self.userdata_modified.insert(name.to_owned());
        }
        Ok(())
    }

    /// The user data changed since the logon, by name.
    #[must_use]
    pub fn modified_userdata(&self) -> Vec<String> {
        self.userdata_modified.iter().cloned().collect()
    }

    /// Drops the user's data (at a logoff).
    pub(crate) fn clear_userdata(&mut self) {
        self.items.retain(|i| !is_userdata(&i.name));
        self.userdata_modified.clear();
    }

    /// Logs the user `number` on with `password` over `client` (the phone's current port:
    /// the secure one once bootstrapped): the logon, the interim `start-up`, the restore of
    /// the user's data; see the [module](self).
    ///
    /// # Errors
    /// [`MobilityError::Refused`] (the logon refused: a wrong password, an unknown user, …)
    /// and the other [`MobilityError`]s; the phone is then as the DLS left it (after a
    /// refused logon, as before).
    pub async fn log_on(
        &mut self,
        client: &mut WpiClient,
        number: &str,
        password: &UserPassword,
    ) -> Result<Logon, MobilityError> {
        let number = number.trim();
        if number.is_empty() {
            return Err(MobilityError::Invalid("the user's number is empty".into()));
        }
        if let Some(user) = self.mobility_user() {
            return Err(MobilityError::UserLoggedOn { user: user.to_owned() });
        }
        let own = self.basic_e164().to_owned();
        self.set("basic-e164", None, &own);
        self.set("mobility-enabled", None, "true");
        self.clear_userdata();

        let mut items = self.basic_items();
        put(&mut items, MOBILITY_STATE, STATE_LOGGED_ON);
        put(&mut items, "e164", number);
        items.push(Item::new("user-pwd", password.expose()));
        let logon =
            checked(MobilityStep::Logon, true, self.interact_with(client, Reason::InventoryChanges, items).await)?;
        let wrote = |name: &str| logon.written.iter().any(|i| i.name == name && i.index.is_none());
        if !wrote(MOBILITY_STATE) && !wrote("e164") {
            return Err(MobilityError::NotConfirmed {
                step: MobilityStep::Logon,
                why: "the DLS ended the logon without writing the user's configuration (no e164, no \
                      sip-mobility-state)"
                    .into(),
            });
        }
        if !wrote("e164") {
            self.set("e164", None, number);
        }
        if !wrote(MOBILITY_STATE) {
            self.set(MOBILITY_STATE, None, STATE_LOGGED_ON);
        } else if self.get(MOBILITY_STATE, None).map(str::trim) != Some(STATE_LOGGED_ON) {
            return Err(MobilityError::NotConfirmed {
                step: MobilityStep::Logon,
                why: format!(
                    "the DLS wrote sip-mobility-state={}: the user is not logged on",
                    self.get(MOBILITY_STATE, None).unwrap_or_default().escape_debug()
                ),
            });
        }
        let user = self.get("e164", None).unwrap_or(number).to_owned();

        self.set(MOBILITY_STATE, None, STATE_INTERIM);
        let start_up = checked(MobilityStep::LogonStartUp, false, self.interact(client, Reason::StartUp).await)?;
        if self.get(MOBILITY_STATE, None).map(str::trim) == Some(STATE_LOGGED_OFF) {
            return Err(MobilityError::NotConfirmed {
                step: MobilityStep::LogonStartUp,
                why: "the DLS logged the user off (sip-mobility-state=1)".into(),
            });
        }
        self.set(MOBILITY_STATE, None, STATE_LOGGED_ON);

        let mut items = self.basic_items();
        items.push(Item::new("requested-items", USERDATA_ITEMS.join(",")));
        let restore =
            checked(MobilityStep::Restore, false, self.interact_with(client, Reason::InventoryChanges, items).await)?;
        let mut restored: Vec<String> =
            restore.written.iter().filter(|i| is_userdata(&i.name)).map(|i| i.name.clone()).collect();
        restored.dedup();
        self.userdata_modified.clear();
        Ok(Logon { user, logon, start_up, restore, restored })
    }

    /// Logs the user logged on at the phone off over `client`, with their `password` when
    /// given (a DLS may accept a logoff without it: the phone authenticated its user): the
    /// logoff with the changed data, then the `start-up` with the phone's own number; see the
    /// [module](self).
    ///
    /// # Errors
    /// [`MobilityError::NoUser`] when no user is logged on; [`MobilityError::Refused`] (the
    /// user stays logged on) and the other [`MobilityError`]s.
    pub async fn log_off(
        &mut self,
        client: &mut WpiClient,
        password: Option<&UserPassword>,
    ) -> Result<Logoff, MobilityError> {
        let user = self.mobility_user().ok_or(MobilityError::NoUser)?.to_owned();
        let modified = self.modified_userdata();
        let mut items = self.basic_items();
        put(&mut items, MOBILITY_STATE, STATE_LOGGED_OFF);
        put(&mut items, "configuration-changed-flag", "true");
        if let Some(p) = password {
            items.push(Item::new("user-pwd", p.expose()));
        }
        if !modified.is_empty() {
            items.push(Item::new("modified-items", modified.join(",")));
        }
        let logoff = checked(
            MobilityStep::Logoff,
            password.is_some(),
            self.interact_with(client, Reason::InventoryChanges, items).await,
        )?;
        let (saved, unsaved): (Vec<String>, Vec<String>) =
            modified.into_iter().partition(|name| logoff.read.iter().any(|r| r == name));

        let own = self.basic_e164().to_owned();
        self.clear_userdata();
        self.set("e164", None, &own);
        self.set(MOBILITY_STATE, None, STATE_LOGGED_OFF);
        self.set("configuration-changed-flag", None, "false");
        let start_up = checked(MobilityStep::LogoffStartUp, false, self.interact(client, Reason::StartUp).await)?;
        Ok(Logoff { user, logoff, start_up, saved, unsaved })
    }
}

#[cfg(test)]
mod tests {
    use dls_message::MacAddr;

    use super::*;

    #[test]
    fn userdata_names_and_values() {
        assert!(is_userdata("userdata-phonebook"));
        assert!(!is_userdata("userdata-"));
        assert!(!is_userdata("user-pwd"));
        assert_eq!(decode_userdata("aGVsbG8=").as_deref(), Ok(&b"hello"[..]));
        assert_eq!(decode_userdata("aGVsbG8").as_deref(), Ok(&b"hello"[..]), "padding optional");
        assert_eq!(decode_userdata("aGVs\n bG8=").as_deref(), Ok(&b"hello"[..]), "white space ignored");
        assert_eq!(decode_userdata("").as_deref(), Ok(&b""[..]));
        assert!(decode_userdata("not base64!").is_err());
        // The trailing bits of a public capture's value ("...Cj==").
        assert!(decode_userdata("Cj==").is_ok());
    }

    #[test]
    fn the_user_is_the_number_while_logged_on() {
        let mut phone = Phone::new(MacAddr::from_bytes([0, 0x1A, 0xE8, 0, 0, 9]));
        phone.set("e164", None, "4989700700");
        assert_eq!(phone.mobility_user(), None);
        assert_eq!(phone.basic_e164(), "4989700700");
        phone.set("basic-e164", None, "4989700700");
        phone.set("e164", None, "4989700799");
        for (state, user) in [("1", None), ("0", Some("4989700799")), ("2", Some("4989700799")), ("7", None)] {
            phone.set(MOBILITY_STATE, None, state);
            assert_eq!(phone.mobility_user(), user, "state {state}");
        }
        assert_eq!(phone.basic_e164(), "4989700700");
        assert!(phone.set_userdata("phonebook", b"x").is_err());
        assert!(phone.set_userdata("userdata-a b", b"x").is_err());
        phone.set_userdata("userdata-phonebook", b"\x00\xFFbook").expect("set");
        assert_eq!(phone.modified_userdata(), ["userdata-phonebook"]);
        let data = phone.userdata();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].bytes().expect("base64"), b"\x00\xFFbook");
        assert!(!phone.reported_items().iter().any(|i| i.name.starts_with("userdata-")), "not reported");
        phone.clear_userdata();
        assert!(phone.userdata().is_empty() && phone.modified_userdata().is_empty());
    }

    #[test]
    fn the_password_is_not_shown() {
        let p = UserPassword::new("s3cret");
        assert_eq!(format!("{p:?}"), "UserPassword(***)");
        assert_eq!(p.expose(), "s3cret");
    }
}
