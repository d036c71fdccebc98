//! The JSON shape of a message, as the CLI prints and reads it:
//!
//! ```text
//! {"kind":"WorkpointMessage"|"DLSMessage","nonce":"…","max_items":-1|null,
//!  "fragment":"next"|"final"|null,
//!  "reason":{"value":"reply-to","action":"WriteItems"|null,"status":"accepted"|null}|null,
//!  "action":"WriteItems"|null,
//!  "items":[{"name":"…","index":0|null,"status":"failed"|null,"value":"…"}]|null}
//! ```

use serde::{Deserialize, Serialize};

use crate::types::{Action, DlsMessage, Fragment, Header, ItemList, Message, ReasonForContact, WorkpointMessage};

/// The flat JSON form of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    /// `WorkpointMessage` or `DLSMessage`.
    pub kind: String,
    /// `Message@nonce`.
    pub nonce: String,
    /// `Message@maxItems`.
    #[serde(default)]
    pub max_items: Option<i64>,
    /// `Message@fragment`.
    #[serde(default)]
    pub fragment: Option<Fragment>,
    /// `ReasonForContact` (phone messages only).
    #[serde(default)]
    pub reason: Option<ReasonForContact>,
    /// `Action` (DLS messages only).
    #[serde(default)]
    pub action: Option<Action>,
    /// The items, `null` when there is no `ItemList`.
    #[serde(default)]
    pub items: Option<ItemList>,
}

/// Why a JSON document is not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonShapeError {
    /// `kind` is neither `WorkpointMessage` nor `DLSMessage`.
    #[error("\"kind\" must be \"WorkpointMessage\" or \"DLSMessage\", not {0:?}")]
    UnknownKind(String),
    /// A field the kind requires is null or missing.
    #[error("a {kind} needs \"{field}\"")]
    Missing {
        /// The message kind.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field the kind does not have is set.
    #[error("a {kind} has no \"{field}\"")]
    NotAllowed {
        /// The message kind.
        kind: &'static str,
        /// The field that must be null.
        field: &'static str,
    },
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        let h = m.header();
        let (reason, action) = match m {
            Message::Workpoint(w) => (Some(w.reason.clone()), None),
            Message::Dls(d) => (None, Some(d.action.clone())),
        };
        Self {
            kind: m.kind().to_owned(),
            nonce: h.nonce.clone(),
            max_items: h.max_items,
            fragment: h.fragment.clone(),
            reason,
            action,
            items: m.items().map(<[_]>::to_vec),
        }
    }
}

impl TryFrom<MessageJson> for Message {
    type Error = JsonShapeError;

    fn try_from(j: MessageJson) -> Result<Self, Self::Error> {
        let header = Header { nonce: j.nonce, max_items: j.max_items, fragment: j.fragment };
        match j.kind.as_str() {
            "WorkpointMessage" => {
                const KIND: &str = "WorkpointMessage";
                if j.action.is_some() {
                    return Err(JsonShapeError::NotAllowed { kind: KIND, field: "action" });
                }
                let reason = j.reason.ok_or(JsonShapeError::Missing { kind: KIND, field: "reason" })?;
                Ok(Self::Workpoint(WorkpointMessage { header, reason, items: j.items }))
            }
            "DLSMessage" | "DlsMessage" => {
                const KIND: &str = "DLSMessage";
                if j.reason.is_some() {
                    return Err(JsonShapeError::NotAllowed { kind: KIND, field: "reason" });
                }
                let action = j.action.ok_or(JsonShapeError::Missing { kind: KIND, field: "action" })?;
                Ok(Self::Dls(DlsMessage { header, action, items: j.items }))
            }
            other => Err(JsonShapeError::UnknownKind(other.to_owned())),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MessageJson::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(MessageJson::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
