//! The state of one interaction between two messages. The shell keeps it (in memory, or in
//! the store when several nodes share the interactions), keyed by the session cookie, and
//! hands it back with the next message.
//!
//! # Encoding
//!
//! [`Session::to_bytes`] and [`Session::from_bytes`] are the one encoding of a session that
//! leaves the process: JSON, `{"version": 1, "session": {…}}`, the session's fields by
//! name. [`ENCODING_VERSION`] is counted up whenever a change of the session's fields would
//! make an older node misread a newer session (or the reverse); a session of another
//! version does not decode (its interaction then ends as an expired one would). An encoding
//! is at most [`MAX_ENCODED_BYTES`] long, in both directions.
//!
//! # Secrets
//!
//! What the phone reported under a secret item's name ([`crate::secret_items::is_secret`])
//! never leaves the process: [`Session::to_bytes`] encodes the session without those items
//! in `opening` and `collected` (the items of a start-up kept while the TAN is asked, the
//! fragments of a reply so far) and with their values emptied in a write job's refusals.
//! The interaction goes on as if the phone had not reported them: the inventory would not
//! keep them either, and a desired value is then written unless the DLS wrote that very
//! value before. What the DLS itself writes to the phone (the pending `WriteItems`, the
//! items of a write job) is kept as it is: those values come from the profiles, overrides
//! and jobs, which the store holds already, and the reply they await must be matched to
//! them.

use std::collections::VecDeque;

use dls_message::{Item, ItemList, MacAddr, Reason};
use serde::{Deserialize, Serialize};

use crate::device::UnixTime;
use crate::secret_items::{drop_secrets, is_secret};

/// The version of [`Session::to_bytes`]' encoding.
pub const ENCODING_VERSION: u32 = 1;

/// The longest encoding of a session: [`Session::to_bytes`] refuses to make a longer one
/// and [`Session::from_bytes`] to read one. 16 MiB: a fragmented reply collected so far is
/// bounded by the engine's `max_collected_bytes` (4 MiB by default) and JSON's escaping.
pub const MAX_ENCODED_BYTES: usize = 16 << 20;

/// Why a session was not encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionCodecError {
    /// The encoding is (or would be) longer than [`MAX_ENCODED_BYTES`].
    #[error("an encoded session of {0} bytes, more than the {MAX_ENCODED_BYTES} allowed")]
    TooLarge(usize),
    /// The encoding is of another version.
    #[error("a session encoded in version {0}, not {ENCODING_VERSION}")]
    Version(u64),
    /// Not an encoded session.
    #[error("not an encoded session: {0}")]
    Malformed(String),
}

/// The encoding's envelope, written.
#[derive(Serialize)]
struct Envelope<'a> {
    version: u32,
    session: &'a Session,
}

/// The encoding's envelope, read: the version first, then the session.
#[derive(Deserialize)]
struct Version {
    version: u64,
}

#[derive(Deserialize)]
struct Decoded {
    session: Session,
}

/// What the engine asked the phone, and is waiting to hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
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
    /// The reply to a mobility step (a logon's writes, a logoff's read, a forced logoff…).
    Mobility(Box<crate::mobility::MobilityStep>),
}

/// One interaction in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whose configuration lies on top of the device's in this interaction (a mobility
    /// user's, or the device's basic identity written back).
    #[serde(default)]
    pub(crate) mobility: Option<crate::mobility::Layer>,
}

impl Session {
    /// The most nonces remembered per interaction.
    pub(crate) const MAX_NONCES: usize = 16;

    /// How many `WriteItems` messages are still to be sent.
    #[must_use]
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.len()
    }

    /// The session encoded for keeping outside the process (see the [module](self)),
    /// without the secrets the phone reported.
    ///
    /// # Errors
    /// [`SessionCodecError::TooLarge`] when the encoding would be longer than
    /// [`MAX_ENCODED_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, SessionCodecError> {
        let mut scrubbed = self.clone();
        scrubbed.scrub();
        let bytes = serde_json::to_vec(&Envelope { version: ENCODING_VERSION, session: &scrubbed })
            .map_err(|e| SessionCodecError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_ENCODED_BYTES {
            return Err(SessionCodecError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// A session [`Self::to_bytes`] encoded.
    ///
    /// # Errors
    /// [`SessionCodecError`]: too long, of another version, or not a session at all.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SessionCodecError> {
        if bytes.len() > MAX_ENCODED_BYTES {
            return Err(SessionCodecError::TooLarge(bytes.len()));
        }
        let malformed = |e: serde_json::Error| SessionCodecError::Malformed(e.to_string());
        let Version { version } = serde_json::from_slice(bytes).map_err(malformed)?;
        if version != u64::from(ENCODING_VERSION) {
            return Err(SessionCodecError::Version(version));
        }
        let Decoded { mut session } = serde_json::from_slice(bytes).map_err(malformed)?;
        // Bounded as the engine keeps it, whatever the bytes said.
        let extra = session.nonces.len().saturating_sub(Self::MAX_NONCES);
        session.nonces.drain(..extra);
        Ok(session)
    }

    /// Removes what the phone reported under secret items' names (see the [module](self)).
    fn scrub(&mut self) {
        drop_secrets(&mut self.opening);
        drop_secrets(&mut self.collected);
        if let Awaiting::Job(step) = &mut self.awaiting
            && let crate::job_run::Stage::Write { refused, .. } = &mut step.stage
        {
            for item in refused.iter_mut().filter(|i| is_secret(&i.name)) {
                item.value.clear();
            }
        }
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use dls_message::{Item, ItemStatus, MacAddr, Reason};
    use proptest::prelude::*;

    use super::{Awaiting, ENCODING_VERSION, MAX_ENCODED_BYTES, Session, SessionCodecError};
    use crate::device::UnixTime;
    use crate::job_run::{JobStep, NotSent, Stage};
    use crate::jobs::{Job, JobKind, JobState};

    fn job(id: i64, items: Vec<Item>) -> Job {
        Job { id, kind: JobKind::Write { items }, state: JobState::Sent, attempts: 1, accepted: false }
    }

    /// A session with something in every field.
    fn session() -> Session {
        let sent = vec![Item::new("sntp-addr", "ntp.example.net"), Item::indexed("function-key-def", 3, "30")];
        let step = JobStep {
            job: job(7, sent.clone()),
            stage: Stage::Write {
                sent: sent.clone(),
                rest: VecDeque::from([vec![Item::new("e164", "4711")]]),
                refused: vec![Item { status: Some(ItemStatus::ReadOnly), ..Item::new("reg-addr", "x") }],
                accepted: 2,
                not_sent: NotSent { count: 1, named: vec!["display-id-unicode: too long".into()] },
            },
        };
        Session {
            mac: MacAddr::from_bytes([0x00, 0x1A, 0xE8, 0x3C, 0x4D, 0x5E]),
            reason: Reason::StartUp,
            started: UnixTime(1_700_000_000),
            nonces: vec!["n1".into(), "n2".into()],
            max_items: Some(100),
            awaiting: Awaiting::Job(Box::new(step)),
            collected: vec![Item::new("mac-addr", "001AE83C4D5E"), Item::indexed("key-label-unicode", 2, "Ünï")],
            collected_bytes: 42,
            pending_writes: VecDeque::from([sent, vec![Item::new("e164", "4712")]]),
            opening: vec![Item::new("device-type", "OpenStage 60")],
            jobs: VecDeque::from([job(8, vec![Item::new("sntp-addr", "ntp2")])]),
            mobility: Some(crate::mobility::Layer::User("+4989700712".into())),
        }
    }

    #[test]
    fn a_session_round_trips_through_its_bytes() {
        let s = session();
        let bytes = s.to_bytes().expect("encodes");
        assert_eq!(Session::from_bytes(&bytes).expect("decodes"), s);
        let text = String::from_utf8(bytes).expect("JSON is UTF-8");
        assert!(text.starts_with(&format!("{{\"version\":{ENCODING_VERSION},")), "{text}");
        // Each kind of `awaiting` too.
        for awaiting in
            [Awaiting::ReadAll, Awaiting::Bootstrap, Awaiting::Tan, Awaiting::Write(vec![Item::new("a", "b")])]
        {
            let s = Session { awaiting, ..session() };
            assert_eq!(Session::from_bytes(&s.to_bytes().expect("encodes")).expect("decodes"), s);
        }
    }

    #[test]
    fn what_the_phone_reported_under_secret_names_is_not_encoded() {
        let mut s = session();
        s.opening.push(Item::new("user-pwd", "typed-by-the-user"));
        s.opening.push(Item::new("bootstrapping-tan", "123456"));
        s.collected.push(Item::new("sip-pwd", "reported-sip"));
        s.collected.push(Item::indexed("Wlan-PSK", 1, "reported-psk"));
        if let Awaiting::Job(step) = &mut s.awaiting
            && let Stage::Write { refused, .. } = &mut step.stage
        {
            refused.push(Item { status: Some(ItemStatus::Failed), ..Item::new("admin-pwd", "echoed-admin") });
        }
        // What the DLS writes stays: the profile holds it anyway, and the reply is matched to it.
        s.pending_writes.push_back(vec![Item::new("admin-pwd", "set-by-the-admin")]);

        let bytes = s.to_bytes().expect("encodes");
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["typed-by-the-user", "123456", "reported-sip", "reported-psk", "echoed-admin"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("set-by-the-admin"));

        let back = Session::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.opening, session().opening);
        assert_eq!(back.collected, session().collected);
        let Awaiting::Job(step) = &back.awaiting else { panic!("awaits a job: {back:?}") };
        let Stage::Write { refused, .. } = &step.stage else { panic!("a write: {step:?}") };
        assert_eq!(refused.len(), 2, "a refusal is still counted");
        assert_eq!((refused[1].name.as_str(), refused[1].value.as_str()), ("admin-pwd", ""));
        assert_eq!(back.pending_writes.back(), Some(&vec![Item::new("admin-pwd", "set-by-the-admin")]));
        // The session in memory is untouched.
        assert!(s.opening.iter().any(|i| i.name == "user-pwd"));
    }

    #[test]
    fn bytes_that_are_no_session_decode_to_an_error() {
        let good = session().to_bytes().expect("encodes");
        let other_version =
            String::from_utf8(good.clone()).expect("utf-8").replacen("\"version\":1", "\"version\":2", 1);
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"garbage".to_vec(),
            b"{}".to_vec(),
            b"{\"version\":1}".to_vec(),
            b"{\"version\":1,\"session\":{\"mac\":\"not a mac\"}}".to_vec(),
            b"[1,2,3]".to_vec(),
            vec![0xFF; 64],
            good[..good.len() / 2].to_vec(),
        ];
        for bytes in cases {
            assert!(Session::from_bytes(&bytes).is_err(), "{}", String::from_utf8_lossy(&bytes));
        }
        assert!(matches!(Session::from_bytes(other_version.as_bytes()), Err(SessionCodecError::Version(2))));
        let huge = vec![b' '; MAX_ENCODED_BYTES + 1];
        assert!(matches!(Session::from_bytes(&huge), Err(SessionCodecError::TooLarge(_))));
    }

    #[test]
    fn a_session_too_large_is_not_encoded_and_decoded_nonces_stay_bounded() {
        let mut s = session();
        s.collected = vec![Item::new("x", "\u{1}".repeat(MAX_ENCODED_BYTES / 4))];
        assert!(matches!(s.to_bytes(), Err(SessionCodecError::TooLarge(n)) if n > MAX_ENCODED_BYTES));

        let mut s = session();
        s.nonces = (0..40).map(|n| n.to_string()).collect();
        let back = Session::from_bytes(&s.to_bytes().expect("encodes")).expect("decodes");
        assert_eq!(back.nonces.len(), Session::MAX_NONCES);
        assert_eq!(back.nonces.last().map(String::as_str), Some("39"), "the newest are kept");
    }

    proptest! {
        #[test]
        fn no_bytes_make_decoding_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Session::from_bytes(&bytes);
        }

        #[test]
        fn no_change_of_one_byte_makes_decoding_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = session().to_bytes().expect("encodes");
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(s) = Session::from_bytes(&bytes) {
                prop_assert!(s.nonces.len() <= Session::MAX_NONCES);
            }
        }
    }
}
