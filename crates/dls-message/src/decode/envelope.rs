//! The phone's side: a `DLSMessage` as it arrives from a DLS, bare or enveloped in an XML-DSig
//! `<Signature>` whose `<Object Id="DLSMessage">` holds it (the form public captures of the
//! vendor's DLS show for mobility replies). The signature is not verified: the decoded
//! message says so ([`Envelope::XmlDsigUnverified`]).
//!
//! Only [`decode_from_dls`] accepts the envelope; [`crate::decode`], which the service uses on
//! what phones send, refuses it as an unexpected root.

use quick_xml::events::{BytesStart, Event};

use super::{Kind, Parser};
use crate::Limits;
use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::types::{DlsMessage, Message};

/// The XML-DSig namespace (`<Signature xmlns="…">`, or with a prefix).
pub const XMLDSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The `Id` of the `<Object>` that holds the `DLSMessage`.
pub const DLS_MESSAGE_OBJECT_ID: &str = "DLSMessage";

/// How a `DLSMessage` was wrapped when it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Envelope {
    /// In an XML-DSig `<Signature>` (its `<Object Id="DLSMessage">`). The signature was
    /// **not** verified: the message is exactly as trustworthy as a bare one.
    XmlDsigUnverified,
}

impl Envelope {
    /// In words, for a log line.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::XmlDsigUnverified => "enveloped in an XML-DSig Signature, not verified",
        }
    }
}

/// A `DLSMessage` as a phone received it (see [`decode_from_dls`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FromDls {
    /// The message.
    pub message: DlsMessage,
    /// The envelope it came in; `None` for a bare `DLSMessage` (the common case).
    pub envelope: Option<Envelope>,
}

/// Decodes what a DLS sends a phone: a `DLSMessage`, bare or enveloped in an XML-DSig
/// `<Signature>` (in the XML-DSig namespace, prefixed or not) with `SignedInfo`,
/// `SignatureValue`, an optional `KeyInfo` and one `<Object Id="DLSMessage">` holding the
/// `DLSMessage` and nothing else. The signature is not verified ([`FromDls::envelope`] says
/// so). Everything [`crate::decode_with`] accepts and refuses inside a `DLSMessage` is the
/// same here, and `limits` count the whole document (the envelope's depth included).
///
/// # Errors
/// A [`DecodeError`]: a `WorkpointMessage` or another root is [`K::NotFromDls`]; a
/// `Signature` in another namespace, without `SignedInfo` or `SignatureValue`, without the
/// object, with two objects, an element XML-DSig does not define, or text where elements
/// stand is [`K::Envelope`]. Never panics.
pub fn decode_from_dls(input: &[u8], limits: &Limits) -> Result<FromDls, DecodeError> {
    Parser::new(input, limits)?.document(|p| {
        let (tag, empty) = p.root_tag()?;
        let from = match tag.local_name().as_ref() {
            "DLSMessage" | "DlsMessage" => {
                let root = p.check_root(&tag, empty)?;
                let message = p.message_body(Kind::Dls, &root)?;
                FromDls { message: p.dls(message)?, envelope: None }
            }
            "Signature" => {
                p.check_xmldsig_root(&tag)?;
                if empty {
                    return Err(p.err(K::Envelope("<Signature> is empty".into())));
                }
                FromDls { message: p.signature()?, envelope: Some(Envelope::XmlDsigUnverified) }
            }
            _ => {
                return Err(p.err(K::NotFromDls(tag.name().as_ref().to_owned())));
            }
        };
        p.epilogue()?;
        Ok(from)
    })
}

/// How often each child of `<Signature>` was seen.
#[derive(Default)]
struct Seen {
    signed_info: bool,
    signature_value: bool,
    key_info: bool,
    object: bool,
}

impl<'i> Parser<'i, '_> {
    /// The `DLSMessage` that [`Self::message_body`] made with [`Kind::Dls`].
    fn dls(&self, m: Message) -> Result<DlsMessage, DecodeError> {
        match m {
            Message::Dls(m) => Ok(m),
            Message::Workpoint(_) => Err(self.err(K::NotFromDls("WorkpointMessage".to_owned()))),
        }
    }

    /// The root `<Signature>` must be in the XML-DSig namespace: declared on it for its
    /// prefix (or as the default namespace when it has none).
    fn check_xmldsig_root(&self, e: &BytesStart<'i>) -> Result<(), DecodeError> {
        let prefix = e.name().prefix().map(|p| p.into_inner());
        let mut namespace = None;
        for a in e.attributes().with_checks(true) {
            let a = a.map_err(|err| self.err(K::Syntax(err.to_string())))?;
            let key = a.key.as_ref();
            let declares = match prefix {
                None => key == "xmlns",
                Some(p) => key.strip_prefix("xmlns:") == Some(p),
            };
            if declares {
                namespace = Some(self.attr_value(super::RawValue::new(&a.value), "Signature", "xmlns")?.into_owned());
            }
        }
        match namespace.as_deref() {
            Some(XMLDSIG_NAMESPACE) => Ok(()),
            Some(other) => Err(self.err(K::Envelope(format!(
                "<Signature> is in the namespace \"{}\", not {XMLDSIG_NAMESPACE}",
                super::truncate(other)
            )))),
            None => Err(self.err(K::Envelope(format!("<Signature> declares no namespace (want {XMLDSIG_NAMESPACE})")))),
        }
    }

    /// The children of `<Signature>` (its start tag just read) up to its end tag; returns
    /// the message of its object.
    fn signature(&mut self) -> Result<DlsMessage, DecodeError> {
        let mut seen = Seen::default();
        let mut message = None;
        loop {
            let (e, empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => break,
                ev => {
                    self.between_elements(ev).map_err(|e| self.in_envelope(e, "<Signature>"))?;
                    continue;
                }
            };
            let local = e.local_name();
            let flag = match local.as_ref() {
                "SignedInfo" => &mut seen.signed_info,
                "SignatureValue" => &mut seen.signature_value,
                "KeyInfo" => &mut seen.key_info,
                "Object" => {
                    if seen.object {
                        return Err(self.err(K::Envelope("<Signature> holds a second <Object>".into())));
                    }
                    seen.object = true;
                    message = Some(self.object(&e, empty)?);
                    continue;
                }
                _ => {
                    let name = e.name().as_ref().to_owned();
                    return Err(self.err(K::Envelope(format!("unexpected <{name}> in <Signature>"))));
                }
            };
            if *flag {
                let name = local.as_ref().to_owned();
                return Err(self.err(K::Envelope(format!("<Signature> holds a second <{name}>"))));
            }
            *flag = true;
            if !empty {
                // Not verified, so not read: skipped within the depth limit.
                self.skip_element(2)?;
            }
        }
        let missing = if seen.signed_info {
            if seen.signature_value { None } else { Some("SignatureValue") }
        } else {
            Some("SignedInfo")
        };
        if let Some(m) = missing {
            return Err(self.err(K::Envelope(format!("<Signature> has no <{m}>"))));
        }
        message
            .ok_or_else(|| self.err(K::Envelope(format!("<Signature> has no <Object Id=\"{DLS_MESSAGE_OBJECT_ID}\">"))))
    }

    /// `<Object Id="DLSMessage">` (its start tag `e` just read): exactly one `DLSMessage`,
    /// white space and comments around it.
    fn object(&mut self, e: &BytesStart<'i>, empty: bool) -> Result<DlsMessage, DecodeError> {
        let mut id = None;
        self.each_attr(e, |p, key, a| {
            if key == "Id" {
                id = Some(p.attr_value(a, "Object", "Id")?.trim().to_owned());
            }
            Ok(())
        })?;
        if id.as_deref() != Some(DLS_MESSAGE_OBJECT_ID) {
            let found = id.map_or_else(|| "no Id".to_owned(), |i| format!("Id=\"{}\"", super::truncate(&i)));
            return Err(self.err(K::Envelope(format!(
                "<Signature> holds an <Object> with {found}, not Id=\"{DLS_MESSAGE_OBJECT_ID}\""
            ))));
        }
        if 3 > self.limits.max_depth {
            return Err(self.err(K::TooDeep { limit: self.limits.max_depth }));
        }
        let mut message = None;
        if !empty {
            loop {
                let (inner, inner_empty) = match self.next()? {
                    Event::Start(e) => (e, false),
                    Event::Empty(e) => (e, true),
                    Event::End(_) => break,
                    ev => {
                        self.between_elements(ev).map_err(|e| self.in_envelope(e, "<Object>"))?;
                        continue;
                    }
                };
                let name = inner.name().as_ref().to_owned();
                if message.is_some() {
                    return Err(self.err(K::Envelope(format!("<Object> holds <{name}> after its DLSMessage"))));
                }
                if !matches!(inner.local_name().as_ref(), "DLSMessage" | "DlsMessage") {
                    return Err(self.err(K::Envelope(format!("<Object> holds <{name}>, not a DLSMessage"))));
                }
                let root = self.check_root(&inner, inner_empty)?;
                self.depth_base = 2;
                let m = self.message_body(Kind::Dls, &root);
                self.depth_base = 0;
                message = Some(self.dls(m?)?);
            }
        }
        message.ok_or_else(|| self.err(K::Envelope(format!("<Object Id=\"{DLS_MESSAGE_OBJECT_ID}\"> is empty"))))
    }

    /// Text where the envelope has only elements: said as the envelope's problem.
    fn in_envelope(&self, e: DecodeError, element: &str) -> DecodeError {
        match e.kind() {
            K::UnexpectedText => self.err(K::Envelope(format!("text in {element}, where only elements stand"))),
            _ => e,
        }
    }
}
