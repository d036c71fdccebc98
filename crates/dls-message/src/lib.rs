//! The WorkPoint Interface (WPI) codec: `WorkpointMessage` (phone to DLS) and `DLSMessage`
//! (DLS to phone), as described in the project's protocol reference.
//!
//! * [`types`]: the typed model: [`Message`], [`WorkpointMessage`], [`DlsMessage`],
//!   [`Header`], [`ReasonForContact`], [`Action`], [`Item`], …
//! * [`decode()`]: bytes to messages, tolerant of what phones send, with hard [`Limits`];
//!   refuses DTDs and every entity but the five predefined ones.
//! * [`decode_from_dls()`]: the phone's side — a `DLSMessage`, bare or enveloped in an
//!   XML-DSig `<Signature>` (not verified: [`FromDls::envelope`] says so). The service never
//!   accepts that form.
//! * [`encode()`]: messages to canonical bytes ([`EncodeOptions`] for legacy firmware).
//! * [`check`]: whether an item can be sent to a phone (the rule every entry point applies).
//! * [`fragment`]: splitting long item lists into messages within `maxItems` and a byte budget.
//! * [`json`]: the JSON shape the CLI prints and reads.
//! * [`MacAddr`]: the device identity, normalised.
//!
//! The crate does no I/O.
//!
//! ```
//! use dls_message::{decode, encode, Action, DlsMessage, EncodeOptions, Item, Message};
//!
//! let xml = br#"<WorkpointMessage xmlns="http://www.siemens.com/DLS">
//!   <Message nonce="B0151B36FE9CEEA0F667FF3A208AC994" maxItems="-1">
//!     <ReasonForContact>start-up</ReasonForContact>
//!     <ItemList><Item name="mac-addr">00:01:E3:25:EA:13</Item></ItemList>
//!   </Message></WorkpointMessage>"#;
//! let Message::Workpoint(m) = decode(xml)? else { unreachable!() };
//! assert_eq!(m.item("mac-addr"), Some("00:01:E3:25:EA:13"));
//!
//! let reply = DlsMessage::new(m.header.nonce.clone(), Action::ReadAllItems, None);
//! let bytes = encode(&reply.into(), &EncodeOptions::default())?;
//! assert!(bytes.starts_with("<?xml"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod check;
mod decode;
mod encode;
mod error;
pub mod fragment;
pub mod json;
mod mac;
pub mod types;

pub use decode::{
    DLS_MESSAGE_OBJECT_ID, Envelope, FromDls, Limits, XMLDSIG_NAMESPACE, decode, decode_from_dls, decode_item_list,
    decode_with,
};
pub use encode::{EncodeOptions, ValueEscaping, encode, encode_item_list};
pub use error::{DecodeError, DecodeErrorKind, EncodeError};
pub use mac::{MacAddr, MacAddrError};
pub use types::{
    Action, DLS_NAMESPACE, DlsMessage, Fragment, Header, Item, ItemList, ItemStatus, Message, Reason, ReasonForContact,
    ReplyStatus, WorkpointMessage,
};
