//! Bytes to messages: tolerant of what phones send, strict about what could hurt.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::error::{DecodeError, DecodeErrorKind as K};
use crate::types::{
    Action, DLS_NAMESPACE, DlsMessage, Fragment, Header, Item, ItemList, ItemStatus, Message, ReasonForContact,
    ReplyStatus, WorkpointMessage,
};

/// Hard limits on what [`decode_with`] accepts. Every field has a safe default.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest input, in bytes. Default 1 MiB (the protocol caps messages at 50 kB).
    pub max_input_bytes: usize,
    /// The deepest element nesting. Default 16 (a message needs 4).
    pub max_depth: usize,
    /// The most `Item` elements in one message. Default 20,000.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_input_bytes: 1 << 20, max_depth: 16, max_items: 20_000 }
    }
}

impl Limits {
    /// Sets [`Self::max_input_bytes`].
    #[must_use]
    pub fn max_input_bytes(mut self, n: usize) -> Self {
        self.max_input_bytes = n;
        self
    }

    /// Sets [`Self::max_depth`].
    #[must_use]
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets [`Self::max_items`].
    #[must_use]
    pub fn max_items(mut self, n: usize) -> Self {
        self.max_items = n;
        self
    }
}

/// Decodes a `WorkpointMessage` or a `DLSMessage` with the default [`Limits`].
///
/// # Errors
/// A [`DecodeError`] saying what is wrong and where; never panics.
pub fn decode(input: &[u8]) -> Result<Message, DecodeError> {
    decode_with(input, &Limits::default())
}

/// Decodes a `WorkpointMessage` or a `DLSMessage` within `limits`.
///
/// Accepted: an optional XML declaration and UTF-8 byte order mark, any line endings, the
/// DLS namespace or none, the root spelled `DLSMessage` or `DlsMessage`, attributes in any
/// order and either quote, CDATA, character references and the five predefined entities,
/// empty elements written either way, unknown elements (skipped) and unknown words (kept).
/// Refused: a DTD, any other entity, more than `limits`, anything not well-formed.
///
/// # Errors
/// A [`DecodeError`] saying what is wrong and where; never panics.
pub fn decode_with(input: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    let mut p = Parser::new(input, limits)?;
    let root = p.root()?;
    let kind = match root.local.as_str() {
        "WorkpointMessage" => Kind::Workpoint,
        "DLSMessage" | "DlsMessage" => Kind::Dls,
        _ => return Err(p.err_at(K::UnexpectedRoot(root.local), root.pos)),
    };
    let msg = p.message_body(kind, &root)?;
    p.epilogue()?;
    Ok(msg)
}

/// Decodes a bare `ItemList` document (the plaintext of `secure-mode-data`).
///
/// # Errors
/// As [`decode_with`]; the root must be `ItemList`.
pub fn decode_item_list(input: &[u8], limits: &Limits) -> Result<ItemList, DecodeError> {
    let mut p = Parser::new(input, limits)?;
    let root = p.root()?;
    if root.local != "ItemList" {
        return Err(p.err_at(K::UnexpectedRoot(root.local), root.pos));
    }
    let items = if root.empty { Vec::new() } else { p.item_list(1)? };
    p.epilogue()?;
    Ok(items)
}

/// The most attributes one element may carry.
const MAX_ATTRIBUTES: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Workpoint,
    Dls,
}

struct Root {
    local: String,
    empty: bool,
    pos: usize,
}

struct Parser<'i, 'l> {
    input: &'i [u8],
    /// Offset of the text in `input` (3 after a byte order mark).
    base: usize,
    reader: Reader<&'i [u8]>,
    limits: &'l Limits,
    /// Start of the event last read, relative to the text.
    pos: usize,
}

impl<'i, 'l> Parser<'i, 'l> {
    fn new(input: &'i [u8], limits: &'l Limits) -> Result<Self, DecodeError> {
        if input.len() > limits.max_input_bytes {
            let kind = K::TooLarge { size: input.len(), limit: limits.max_input_bytes };
            return Err(DecodeError::new(kind, input, 0));
        }
        let base = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let text = match std::str::from_utf8(&input[base..]) {
            Ok(t) => t,
            Err(e) => return Err(DecodeError::new(K::InvalidUtf8, input, base + e.valid_up_to())),
        };
        if let Some(at) = first_illegal_char(text.as_bytes()) {
            let kind = K::Syntax("character not allowed in XML".to_owned());
            return Err(DecodeError::new(kind, input, base + at));
        }
        let mut reader = Reader::from_str(text);
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        Ok(Self { input, base, reader, limits, pos: 0 })
    }

    fn err_at(&self, kind: K, pos: usize) -> DecodeError {
        DecodeError::new(kind, self.input, self.base + pos)
    }

    fn err(&self, kind: K) -> DecodeError {
        self.err_at(kind, self.pos)
    }

    fn next(&mut self) -> Result<Event<'i>, DecodeError> {
        self.pos = pos_usize(self.reader.buffer_position());
        match self.reader.read_event() {
            Ok(Event::DocType(_)) => Err(self.err(K::DoctypeForbidden)),
            Ok(ev) => Ok(ev),
            Err(e) => {
                let at = pos_usize(self.reader.error_position());
                Err(self.err_at(K::Syntax(e.to_string()), at))
            }
        }
    }

    /// Skips the prolog and returns the root element.
    fn root(&mut self) -> Result<Root, DecodeError> {
        loop {
            match self.next()? {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) => return self.check_root(&e, false),
                Event::Empty(e) => return self.check_root(&e, true),
                Event::Eof => return Err(self.err(K::MissingElement("root element"))),
                _ => return Err(self.err(K::UnexpectedText)),
            }
        }
    }

    fn check_root(&self, e: &BytesStart<'i>, empty: bool) -> Result<Root, DecodeError> {
        let pos = self.pos;
        let local = e.local_name().into_inner().to_owned();
        let prefix = e.name().prefix().map(|p| p.into_inner());
        for a in e.attributes().with_checks(true) {
            let a = a.map_err(|err| self.err(K::Syntax(err.to_string())))?;
            let key = a.key.as_ref();
            let declares_ours = match prefix {
                None => key == "xmlns",
                Some(p) => key.strip_prefix("xmlns:") == Some(p),
            };
            if declares_ours {
                let ns = self.attr_value(&a, "root", "xmlns")?;
                if ns != DLS_NAMESPACE {
                    return Err(self.err(K::WrongNamespace(truncate(&ns))));
                }
            }
        }
        Ok(Root { local, empty, pos })
    }

    /// After the root: only comments, PIs and white space.
    fn epilogue(&mut self) -> Result<(), DecodeError> {
        loop {
            match self.next()? {
                Event::Eof => return Ok(()),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) | Event::Empty(e) => {
                    let name = e.name().as_ref().to_owned();
                    return Err(self.err(K::UnexpectedElement(name)));
                }
                _ => return Err(self.err(K::UnexpectedText)),
            }
        }
    }

    fn message_body(&mut self, kind: Kind, root: &Root) -> Result<Message, DecodeError> {
        let mut message = None;
        if !root.empty {
            loop {
                match self.next()? {
                    Event::Start(e) if e.local_name().as_ref() == "Message" => {
                        if message.is_some() {
                            return Err(self.err(K::UnexpectedElement("Message".to_owned())));
                        }
                        let header = self.header(&e)?;
                        message = Some(self.message(kind, header, false)?);
                    }
                    Event::Empty(e) if e.local_name().as_ref() == "Message" => {
                        if message.is_some() {
                            return Err(self.err(K::UnexpectedElement("Message".to_owned())));
                        }
                        let header = self.header(&e)?;
                        message = Some(self.message(kind, header, true)?);
                    }
                    Event::Start(_) => self.skip_element(2)?,
                    Event::End(_) => break,
                    ev => self.between_elements(ev)?,
                }
            }
        }
        message.ok_or_else(|| self.err_at(K::MissingElement("Message"), root.pos))
    }

    fn header(&self, e: &BytesStart<'i>) -> Result<Header, DecodeError> {
        let mut h = Header::default();
        let mut nonce = None;
        self.each_attr(e, |p, key, a| {
            match key {
                "nonce" => nonce = Some(p.attr_value(a, "Message", "nonce")?.into_owned()),
                "maxItems" => {
                    let v = p.attr_value(a, "Message", "maxItems")?;
                    let n = v.trim().parse::<i64>().ok().filter(|n| *n >= -1);
                    h.max_items = Some(n.ok_or_else(|| p.invalid("Message", "maxItems", &v))?);
                }
                "fragment" => h.fragment = Some(Fragment::from_wire(p.attr_value(a, "Message", "fragment")?.trim())),
                _ => {}
            }
            Ok(())
        })?;
        h.nonce = match nonce {
            Some(n) if !n.trim().is_empty() => n,
            Some(n) => return Err(self.invalid("Message", "nonce", &n)),
            None => return Err(self.err(K::MissingAttribute { element: "Message", attribute: "nonce" })),
        };
        Ok(h)
    }

    fn message(&mut self, kind: Kind, header: Header, empty: bool) -> Result<Message, DecodeError> {
        let start = self.pos;
        let mut reason = None;
        let mut action = None;
        let mut items: Option<ItemList> = None;
        if !empty {
            loop {
                let ev = self.next()?;
                let (e, is_empty) = match ev {
                    Event::Start(e) => (e, false),
                    Event::Empty(e) => (e, true),
                    Event::End(_) => break,
                    ev => {
                        self.between_elements(ev)?;
                        continue;
                    }
                };
                match (kind, e.local_name().as_ref()) {
                    (Kind::Workpoint, "ReasonForContact") if reason.is_none() => {
                        reason = Some(self.reason(&e, is_empty)?);
                    }
                    (Kind::Dls, "Action") if action.is_none() => {
                        let text = if is_empty { String::new() } else { self.text_content("Action")? };
                        let text = text.trim();
                        if text.is_empty() {
                            return Err(self.err(K::MissingElement("Action (text)")));
                        }
                        action = Some(Action::from_wire(text));
                    }
                    (_, "ItemList") if items.is_none() => {
                        items = Some(if is_empty { Vec::new() } else { self.item_list(3)? });
                    }
                    (_, "ReasonForContact" | "Action" | "ItemList" | "Item") => {
                        let name = e.name().as_ref().to_owned();
                        return Err(self.err(K::UnexpectedElement(name)));
                    }
                    _ if is_empty => {}
                    _ => self.skip_element(3)?,
                }
            }
        }
        Ok(match kind {
            Kind::Workpoint => Message::Workpoint(WorkpointMessage {
                header,
                reason: reason.ok_or_else(|| self.err_at(K::MissingElement("ReasonForContact"), start))?,
                items,
            }),
            Kind::Dls => Message::Dls(DlsMessage {
                header,
                action: action.ok_or_else(|| self.err_at(K::MissingElement("Action"), start))?,
                items,
            }),
        })
    }

    fn reason(&mut self, e: &BytesStart<'i>, empty: bool) -> Result<ReasonForContact, DecodeError> {
        let mut action = None;
        let mut status = None;
        self.each_attr(e, |p, key, a| {
            match key {
                "action" => action = Some(Action::from_wire(p.attr_value(a, "ReasonForContact", "action")?.trim())),
                "status" => {
                    status = Some(ReplyStatus::from_wire(p.attr_value(a, "ReasonForContact", "status")?.trim()));
                }
                _ => {}
            }
            Ok(())
        })?;
        let text = if empty { String::new() } else { self.text_content("ReasonForContact")? };
        let text = text.trim();
        if text.is_empty() {
            return Err(self.err(K::MissingElement("ReasonForContact (text)")));
        }
        Ok(ReasonForContact { value: crate::types::Reason::from_wire(text), action, status })
    }

    /// The items of an `ItemList` whose start tag was just read, at nesting `depth`.
    fn item_list(&mut self, depth: usize) -> Result<ItemList, DecodeError> {
        // An item takes at least ~16 bytes of XML, typically 60+: reserve for the typical
        // case so that the list is not regrown a dozen times.
        let estimate = (self.input.len() - self.pos) / 64;
        let mut items = Vec::with_capacity(estimate.min(self.limits.max_items));
        loop {
            let (e, empty) = match self.next()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => return Ok(items),
                ev => {
                    self.between_elements(ev)?;
                    continue;
                }
            };
            if e.local_name().as_ref() != "Item" {
                let name = e.name().as_ref().to_owned();
                return Err(self.err(K::UnexpectedElement(name)));
            }
            if items.len() >= self.limits.max_items {
                return Err(self.err(K::TooManyItems { limit: self.limits.max_items }));
            }
            if depth + 1 > self.limits.max_depth {
                return Err(self.err(K::TooDeep { limit: self.limits.max_depth }));
            }
            let mut item = self.item_attributes(&e)?;
            if !empty {
                item.value = self.text_content("Item")?;
            }
            items.push(item);
        }
    }

    fn item_attributes(&self, e: &BytesStart<'i>) -> Result<Item, DecodeError> {
        let mut item = Item::default();
        self.each_attr(e, |p, key, a| {
            match key {
                "name" => item.name = p.attr_value(a, "Item", "name")?.into_owned(),
                "index" => {
                    let v = p.attr_value(a, "Item", "index")?;
                    let t = v.trim();
                    let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
                    let n = ok.then(|| t.parse::<u32>().ok()).flatten();
                    item.index = Some(n.ok_or_else(|| p.invalid("Item", "index", &v))?);
                }
                "status" => item.status = Some(ItemStatus::from_wire(p.attr_value(a, "Item", "status")?.trim())),
                "type" => item.item_type = Some(p.attr_value(a, "Item", "type")?.into_owned()),
                _ => {}
            }
            Ok(())
        })?;
        if item.name.is_empty() {
            return Err(self.err(K::MissingAttribute { element: "Item", attribute: "name" }));
        }
        Ok(item)
    }

    /// The text of a leaf element whose start tag was just read, up to its end tag.
    /// Text is taken exactly, line endings normalised as XML requires.
    fn text_content(&mut self, element: &str) -> Result<String, DecodeError> {
        let mut out: Option<Cow<'i, str>> = None;
        loop {
            let piece: Cow<'i, str> = match self.next()? {
                Event::Text(t) => t.xml_content(XmlVersion::Implicit1_0),
                Event::CData(c) => c.xml_content(XmlVersion::Implicit1_0),
                Event::GeneralRef(r) => Cow::Owned(self.resolve_ref(&r)?),
                Event::Comment(_) | Event::PI(_) => continue,
                Event::End(_) => return Ok(out.map(Cow::into_owned).unwrap_or_default()),
                Event::Start(e) | Event::Empty(e) => {
                    let name = e.name().as_ref().to_owned();
                    return Err(self.err(K::UnexpectedElement(format!("{name}> inside <{element}"))));
                }
                Event::Eof => return Err(self.err(K::UnexpectedEof)),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(self.err(K::Syntax("misplaced declaration".to_owned())));
                }
            };
            out = Some(match out {
                None => piece,
                Some(prev) => Cow::Owned(prev.into_owned() + &piece),
            });
        }
    }

    fn resolve_ref(&self, r: &BytesRef<'i>) -> Result<String, DecodeError> {
        match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(c.to_string()),
            Ok(Some(_)) | Err(_) => Err(self.err(K::InvalidCharRef(truncate(r)))),
            Ok(None) => {
                resolve_predefined_entity(r).map(str::to_owned).ok_or_else(|| self.err(K::UnknownEntity(truncate(r))))
            }
        }
    }

    /// Events allowed between elements: white space, comments, PIs.
    fn between_elements(&self, ev: Event<'i>) -> Result<(), DecodeError> {
        match ev {
            Event::Text(t) if is_blank(&t) => Ok(()),
            Event::Comment(_) | Event::PI(_) => Ok(()),
            Event::Eof => Err(self.err(K::UnexpectedEof)),
            _ => Err(self.err(K::UnexpectedText)),
        }
    }

    /// Skips an unknown element whose start tag was just read at nesting `depth`.
    fn skip_element(&mut self, depth: usize) -> Result<(), DecodeError> {
        let mut level = depth;
        loop {
            if level > self.limits.max_depth {
                return Err(self.err(K::TooDeep { limit: self.limits.max_depth }));
            }
            match self.next()? {
                Event::Start(_) => level += 1,
                Event::End(_) if level == depth => return Ok(()),
                Event::End(_) => level -= 1,
                Event::GeneralRef(r) => {
                    self.resolve_ref(&r)?;
                }
                Event::Eof => return Err(self.err(K::UnexpectedEof)),
                _ => {}
            }
        }
    }

    /// Calls `f` with each attribute of `e`, refusing duplicates and more than
    /// [`MAX_ATTRIBUTES`] (checked here without allocating).
    fn each_attr<'e>(
        &self,
        e: &'e BytesStart<'i>,
        mut f: impl FnMut(&Self, &str, &Attribute<'e>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut seen: [&'e str; MAX_ATTRIBUTES] = [""; MAX_ATTRIBUTES];
        for (n, a) in e.attributes().with_checks(false).enumerate() {
            let a = a.map_err(|err| self.err(K::Syntax(err.to_string())))?;
            let key: &'e str = a.key.0;
            if seen[..n].contains(&key) {
                return Err(self.err(K::Syntax(format!("duplicate attribute {key}"))));
            }
            if n == MAX_ATTRIBUTES {
                return Err(self.err(K::Syntax(format!("more than {MAX_ATTRIBUTES} attributes on one element"))));
            }
            seen[n] = key;
            // Attribute names rarely carry a prefix: look for one only when there is a ':'.
            let local = if key.contains(':') { a.key.local_name().into_inner() } else { key };
            f(self, local, &a)?;
        }
        Ok(())
    }

    fn attr_value<'a>(
        &self,
        a: &Attribute<'a>,
        element: &'static str,
        attribute: &'static str,
    ) -> Result<Cow<'a, str>, DecodeError> {
        // Nothing to resolve or normalise: the common case, without a second pass.
        if !a.value.bytes().any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r')) {
            return Ok(a.value.clone());
        }
        match a.normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity) {
            Ok(v) => {
                if let Cow::Owned(s) = &v {
                    if s.chars().any(|c| !is_xml_char(c)) {
                        return Err(self.invalid(element, attribute, s));
                    }
                }
                Ok(v)
            }
            Err(e) => Err(self.err(K::Syntax(format!("in {element}@{attribute}: {e}")))),
        }
    }

    fn invalid(&self, element: &'static str, attribute: &'static str, value: &str) -> DecodeError {
        self.err(K::InvalidAttribute { element, attribute, value: truncate(value) })
    }
}

fn pos_usize(p: u64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

fn is_blank(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// XML 1.0 `Char`: what a document (or a character reference) may hold.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The offset of the first character XML 1.0 does not allow (control characters,
/// U+FFFE, U+FFFF), in valid UTF-8.
fn first_illegal_char(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let suspect = |c: u8| (c < 0x20) & (c != b'\n') & (c != b'\t') & (c != b'\r') | (c == 0xEF);
    let bad_at = |i: usize| match b[i] {
        0xEF => b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)),
        c => c < 0x20 && !matches!(c, b'\n' | b'\t' | b'\r'),
    };
    // Whole blocks with nothing suspect are skipped; the flag computation vectorises.
    let mut block_start = 0;
    for chunk in b.chunks(BLOCK) {
        if chunk.iter().fold(false, |acc, &c| acc | suspect(c)) {
            if let Some(i) = (block_start..block_start + chunk.len()).find(|&i| bad_at(i)) {
                return Some(i);
            }
        }
        block_start += chunk.len();
    }
    None
}
