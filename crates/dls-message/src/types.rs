//! The typed model of WPI messages.

use std::fmt;

/// The XML namespace of every WPI message, in both directions.
pub const DLS_NAMESPACE: &str = "http://www.siemens.com/DLS";

/// Declares an enum of known protocol words with an `Other(String)` catch-all,
/// so that a value sent by newer firmware is kept, never refused.
macro_rules! protocol_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept exactly as received.
            Other(String),
        }

        impl $name {
            /// The word as it stands on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(s) => s,
                }
            }

            /// Maps a wire word to its variant; unknown words become [`Self::Other`].
            #[must_use]
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::from_wire(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}

protocol_words! {
    /// Why the phone contacts the DLS (`ReasonForContact`).
    pub enum Reason {
        /// Every boot.
        StartUp => "start-up",
        /// Something was changed at the phone.
        LocalChanges => "local-changes",
        /// The phone's inventory changed.
        InventoryChanges => "inventory-changes",
        /// A deployment status report.
        Status => "status",
        /// The phone calls back after contact-me, DCMP or `send-solicited`.
        Solicited => "solicited",
        /// The answer to a DLS action.
        ReplyTo => "reply-to",
        /// The phone ends the interaction.
        CleanUp => "clean-up",
    }
}

protocol_words! {
    /// What the DLS asks the phone to do (`Action`).
    pub enum Action {
        /// Read every item except certificates.
        ReadAllItems => "ReadAllItems",
        /// Read the listed items.
        ReadItems => "ReadItems",
        /// Write the listed items.
        WriteItems => "WriteItems",
        /// Reboot (or factory-reset, with the right items).
        Restart => "Restart",
        /// Download a file.
        FileDeployment => "FileDeployment",
        /// Download firmware.
        SoftwareDeployment => "SoftwareDeployment",
        /// End the interaction.
        CleanUp => "CleanUp",
        /// Send the next fragment of a long reply.
        GetNextFragment => "GetNextFragment",
    }
}

protocol_words! {
    /// The phone's verdict on a DLS action (`ReasonForContact@status`).
    pub enum ReplyStatus {
        /// Done.
        Accepted => "accepted",
        /// Not done.
        Failed => "failed",
        /// The phone is in a call; ask again later.
        Busy => "busy",
    }
}

protocol_words! {
    /// The phone's verdict on a single item (`Item@status`).
    pub enum ItemStatus {
        /// The item could not be applied or read.
        Failed => "failed",
        /// The phone does not know the item.
        UnknownItem => "unknown item",
        /// The item cannot be written.
        ReadOnly => "read only",
        /// The index is out of range.
        InvalidIndex => "invalid index",
        /// The item was not expected here.
        UnexpectedItem => "unexpected item",
        /// The feature is not supported.
        NotSupported => "not supported",
        /// The value was refused.
        InvalidData => "invalid data",
        /// No more precise status.
        UndefinedStatus => "undefined status",
    }
}

protocol_words! {
    /// Whether more fragments follow (`Message@fragment`).
    pub enum Fragment {
        /// More fragments follow.
        Next => "next",
        /// The last (or only) fragment.
        Final => "final",
    }
}

/// One `Item`: a named value, optionally indexed, optionally with the phone's status.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// `Item@name`; never empty.
    pub name: String,
    /// `Item@index`; `Some(0)` is a real index, distinct from `None`.
    #[serde(default)]
    pub index: Option<u32>,
    /// `Item@status`, sent by phones only.
    #[serde(default)]
    pub status: Option<ItemStatus>,
    /// The text content, exactly as sent (empty for `<Item …/>`).
    #[serde(default)]
    pub value: String,
    /// `Item@type`, reserved by the protocol; kept so that it survives a round trip.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
}

impl Item {
    /// An item with a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into(), ..Self::default() }
    }

    /// An indexed item.
    pub fn indexed(name: impl Into<String>, index: u32, value: impl Into<String>) -> Self {
        Self { index: Some(index), ..Self::new(name, value) }
    }

    /// Returns the item with a status set.
    #[must_use]
    pub fn with_status(mut self, status: ItemStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// An `ItemList`. In a message it is optional: `None` (absent) and `Some(vec![])` (empty)
/// are different messages and stay different.
pub type ItemList = Vec<Item>;

/// `ReasonForContact`: the reason, and for `reply-to` the action answered and its status.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReasonForContact {
    /// The reason itself.
    pub value: Reason,
    /// With `reply-to`: the DLS action being answered.
    #[serde(default)]
    pub action: Option<Action>,
    /// With `reply-to`: accepted, failed or busy.
    #[serde(default)]
    pub status: Option<ReplyStatus>,
}

impl ReasonForContact {
    /// A reason without attributes.
    #[must_use]
    pub fn new(value: Reason) -> Self {
        Self { value, action: None, status: None }
    }

    /// A `reply-to` for `action` with `status`.
    #[must_use]
    pub fn reply_to(action: Action, status: ReplyStatus) -> Self {
        Self { value: Reason::ReplyTo, action: Some(action), status: Some(status) }
    }
}

/// The attributes of the `Message` element, shared by both directions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// `Message@nonce`, mandatory.
    pub nonce: String,
    /// `Message@maxItems`: the most items the phone accepts in one DLS message; `-1` = no
    /// limit. Phones send it; the DLS does not.
    pub max_items: Option<i64>,
    /// `Message@fragment`.
    pub fragment: Option<Fragment>,
}

impl Header {
    /// A header with only a nonce.
    pub fn new(nonce: impl Into<String>) -> Self {
        Self { nonce: nonce.into(), ..Self::default() }
    }

    /// The phone's item limit as a count: `None` when unlimited (absent, `-1`, or not positive).
    #[must_use]
    pub fn item_limit(&self) -> Option<usize> {
        self.max_items.filter(|n| *n > 0).and_then(|n| usize::try_from(n).ok())
    }

    /// Whether more fragments follow this one.
    #[must_use]
    pub fn more_fragments(&self) -> bool {
        self.fragment == Some(Fragment::Next)
    }
}

/// A message from the phone (`WorkpointMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkpointMessage {
    /// The `Message` attributes.
    pub header: Header,
    /// Why the phone calls.
    pub reason: ReasonForContact,
    /// The items, if an `ItemList` was present.
    pub items: Option<ItemList>,
}

impl WorkpointMessage {
    /// The value of the first item called `name` without an index, if any.
    #[must_use]
    pub fn item(&self, name: &str) -> Option<&str> {
        find_item(self.items.as_deref(), name)
    }
}

/// A message from the DLS (`DLSMessage`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlsMessage {
    /// The `Message` attributes.
    pub header: Header,
    /// What the phone is asked to do.
    pub action: Action,
    /// The items, if an `ItemList` is present.
    pub items: Option<ItemList>,
}

impl DlsMessage {
    /// A message answering `nonce` with `action` and `items`.
    pub fn new(nonce: impl Into<String>, action: Action, items: Option<ItemList>) -> Self {
        Self { header: Header::new(nonce), action, items }
    }

    /// The value of the first item called `name` without an index, if any.
    #[must_use]
    pub fn item(&self, name: &str) -> Option<&str> {
        find_item(self.items.as_deref(), name)
    }
}

fn find_item<'a>(items: Option<&'a [Item]>, name: &str) -> Option<&'a str> {
    items?.iter().find(|i| i.name == name && i.index.is_none()).map(|i| i.value.as_str())
}

/// Either direction: what [`crate::decode`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Phone to DLS.
    Workpoint(WorkpointMessage),
    /// DLS to phone.
    Dls(DlsMessage),
}

impl Message {
    /// The `Message` attributes.
    #[must_use]
    pub fn header(&self) -> &Header {
        match self {
            Self::Workpoint(m) => &m.header,
            Self::Dls(m) => &m.header,
        }
    }

    /// The items, if an `ItemList` was present.
    #[must_use]
    pub fn items(&self) -> Option<&[Item]> {
        match self {
            Self::Workpoint(m) => m.items.as_deref(),
            Self::Dls(m) => m.items.as_deref(),
        }
    }

    /// The root element's canonical name.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Workpoint(_) => "WorkpointMessage",
            Self::Dls(_) => "DLSMessage",
        }
    }
}

impl From<WorkpointMessage> for Message {
    fn from(m: WorkpointMessage) -> Self {
        Self::Workpoint(m)
    }
}

impl From<DlsMessage> for Message {
    fn from(m: DlsMessage) -> Self {
        Self::Dls(m)
    }
}
