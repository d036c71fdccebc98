//! Bytes to messages: tolerant of what phones send, strict about what could hurt.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::QName;

mod envelope;

pub use envelope::{DLS_MESSAGE_OBJECT_ID, Envelope, FromDls, XMLDSIG_NAMESPACE, decode_from_dls};

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
    Parser::new(input, limits)?.document(|p| {
        let root = p.root()?;
        let kind = match root.local.as_str() {
            "WorkpointMessage" => Kind::Workpoint,
            "DLSMessage" | "DlsMessage" => Kind::Dls,
            _ => return Err(p.err_at(K::UnexpectedRoot(root.local), root.pos)),
        };
        let msg = p.message_body(kind, &root)?;
        p.epilogue()?;
        Ok(msg)
    })
}

/// Decodes a bare `ItemList` document (the plaintext of `secure-mode-data`).
///
/// # Errors
/// As [`decode_with`]; the root must be `ItemList`.
pub fn decode_item_list(input: &[u8], limits: &Limits) -> Result<ItemList, DecodeError> {
    Parser::new(input, limits)?.document(|p| {
        let root = p.root()?;
        if root.local != "ItemList" {
            return Err(p.err_at(K::UnexpectedRoot(root.local), root.pos));
        }
        let items = if root.empty { Vec::new() } else { p.item_list(1)? };
        p.epilogue()?;
        Ok(items)
    })
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
    /// Where the reader stood before the event last read, relative to the text: the start
    /// of that event, unless `skipped_space`.
    pos: usize,
    /// Whether the reader skipped white space before the event last read (see
    /// [`Self::next_element`]); the event then starts after that white space.
    skipped_space: bool,
    /// Whether the text holds a carriage return anywhere (if not, no text needs line-end
    /// normalisation).
    carriage_returns: bool,
    /// How deep the message's root stands below the document's, less one: 0 for a bare
    /// message, 2 inside an XML-DSig envelope (`Signature` > `Object` > `DLSMessage`).
    depth_base: usize,
}

impl<'i, 'l> Parser<'i, 'l> {
    fn new(input: &'i [u8], limits: &'l Limits) -> Result<Self, DecodeError> {
        if input.len() > limits.max_input_bytes {
            let kind = K::TooLarge { size: input.len(), limit: limits.max_input_bytes };
            return Err(DecodeError::new(kind, input, 0));
        }
        let base = if input.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let text = &input[base..];
        // The text is not checked for UTF-8 in a pass of its own: quick-xml checks every piece
        // it reads (tags, text, references, comments; it skips only ASCII white space), so a
        // document read to its end is UTF-8, and when anything fails, `document` and the
        // error below look for invalid UTF-8 first, as the error to report. 0xFE and 0xFF are
        // never UTF-8: refused here, they cannot pass for a UTF-16 byte order mark (which
        // quick-xml would drop if built with its `encoding` feature).
        if matches!(text.first(), Some(0xFE | 0xFF)) {
            return Err(DecodeError::new(K::InvalidUtf8, input, base));
        }
        let carriage_returns = match check_chars(text) {
            Ok(cr) => cr,
            Err(at) => {
                let kind = K::Syntax("character not allowed in XML".to_owned());
                return Err(utf8_error(input, base).unwrap_or_else(|| DecodeError::new(kind, input, base + at)));
            }
        };
        let mut reader = Reader::from_reader(text);
        let cfg = reader.config_mut();
        cfg.trim_text(false);
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        Ok(Self { input, base, reader, limits, pos: 0, skipped_space: false, carriage_returns, depth_base: 0 })
    }

    /// Reads the document with `f`. A document that is not UTF-8 is refused as such, whatever
    /// else is wrong with it, as though it had been checked before reading.
    fn document<T>(mut self, f: impl FnOnce(&mut Self) -> Result<T, DecodeError>) -> Result<T, DecodeError> {
        f(&mut self).map_err(|e| utf8_error(self.input, self.base).unwrap_or(e))
    }

    fn err_at(&self, kind: K, pos: usize) -> DecodeError {
        DecodeError::new(kind, self.input, self.base + pos)
    }

    fn err(&self, kind: K) -> DecodeError {
        self.err_at(kind, self.pos())
    }

    /// Start of the event last read, relative to the text.
    fn pos(&self) -> usize {
        if self.skipped_space {
            let rest = &self.input[self.base + self.pos..];
            self.pos + rest.iter().take_while(|&&b| is_xml_space(b)).count()
        } else {
            self.pos
        }
    }

    /// The next event.
    #[inline(always)]
    fn next(&mut self) -> Result<Event<'i>, DecodeError> {
        self.read(false)
    }

    /// The next event where white space between elements means nothing: white space
    /// before markup is skipped by quick-xml instead of being read as an event of its own
    /// (text that is not only white space is still read, leading white space included).
    fn next_element(&mut self) -> Result<Event<'i>, DecodeError> {
        self.read(true)
    }

    /// Reads an event, refusing a DTD. Inlined into its few callers: that spares moving
    /// every event once more.
    #[inline(always)]
    fn read(&mut self, skip_space: bool) -> Result<Event<'i>, DecodeError> {
        self.pos = pos_usize(self.reader.buffer_position());
        self.skipped_space = skip_space;
        self.reader.config_mut().trim_text_start = skip_space;
        match self.reader.read_event() {
            Ok(Event::DocType(_)) => Err(self.err(K::DoctypeForbidden)),
            Ok(Event::Text(t)) => {
                // Text keeps its leading white space: it starts where the reader stood.
                self.skipped_space = false;
                Ok(Event::Text(t))
            }
            Ok(ev) => Ok(ev),
            Err(e) => {
                let at = pos_usize(self.reader.error_position());
                Err(self.err_at(K::Syntax(e.to_string()), at))
            }
        }
    }

    /// Skips the prolog and returns the root element.
    fn root(&mut self) -> Result<Root, DecodeError> {
        let (e, empty) = self.root_tag()?;
        self.check_root(&e, empty)
    }

    /// Skips the prolog and returns the root element's start tag, and whether it is empty.
    fn root_tag(&mut self) -> Result<(BytesStart<'i>, bool), DecodeError> {
        loop {
            match self.next()? {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) => return Ok((e, false)),
                Event::Empty(e) => return Ok((e, true)),
                Event::Eof => return Err(self.err(K::MissingElement("root element"))),
                _ => return Err(self.err(K::UnexpectedText)),
            }
        }
    }

    fn check_root(&self, e: &BytesStart<'i>, empty: bool) -> Result<Root, DecodeError> {
        let pos = self.pos();
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
                let ns = self.attr_value(RawValue::new(&a.value), "root", "xmlns")?;
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
                    Event::Start(_) => self.skip_element(self.depth_base + 2)?,
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
        let start = self.pos();
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
                        items = Some(if is_empty { Vec::new() } else { self.item_list(self.depth_base + 3)? });
                    }
                    (_, "ReasonForContact" | "Action" | "ItemList" | "Item") => {
                        let name = e.name().as_ref().to_owned();
                        return Err(self.err(K::UnexpectedElement(name)));
                    }
                    _ if is_empty => {}
                    _ => self.skip_element(self.depth_base + 3)?,
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
            let (e, empty) = match self.next_element()? {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => return Ok(items),
                ev => {
                    self.between_elements(ev)?;
                    continue;
                }
            };
            if e.name().as_ref() != "Item" && e.local_name().as_ref() != "Item" {
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
                "index" => item.index = Some(p.item_index(a)?),
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

    /// `Item@index`: digits only, at most `u32::MAX`, white space around allowed.
    fn item_index(&self, a: RawValue<'_>) -> Result<u32, DecodeError> {
        // Up to nine plain digits (the usual case) cannot overflow.
        let digits = a.text.as_bytes();
        if a.plain && !digits.is_empty() && digits.len() <= 9 && digits.iter().all(u8::is_ascii_digit) {
            return Ok(digits.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')));
        }
        let v = self.attr_value(a, "Item", "index")?;
        let t = v.trim();
        let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let n = ok.then(|| t.parse::<u32>().ok()).flatten();
        n.ok_or_else(|| self.invalid("Item", "index", &v))
    }

    /// The text of a leaf element whose start tag was just read, up to its end tag.
    /// Text is taken exactly, line endings normalised as XML requires.
    #[inline(always)]
    fn text_content(&mut self, element: &str) -> Result<String, DecodeError> {
        // The common case, one piece of text without a carriage return and then the end
        // tag, is copied once; anything else is gathered piece by piece.
        let t = match self.next()? {
            Event::Text(t) if !(self.carriage_returns && t.as_bytes().contains(&b'\r')) => t,
            Event::End(_) => return Ok(String::new()),
            ev => return self.text_pieces(element, String::new(), Some(ev)),
        };
        match self.next()? {
            Event::End(_) => Ok(String::from(&*t)),
            ev => {
                let mut out = String::with_capacity(t.len() + 16);
                out.push_str(&t);
                self.text_pieces(element, out, Some(ev))
            }
        }
    }

    /// The rest of [`Self::text_content`]: appends every piece to `out` until the end tag,
    /// starting with `pending` (an event already read) if any.
    fn text_pieces(
        &mut self,
        element: &str,
        mut out: String,
        mut pending: Option<Event<'i>>,
    ) -> Result<String, DecodeError> {
        loop {
            let ev = match pending.take() {
                Some(ev) => ev,
                None => self.next()?,
            };
            match ev {
                Event::Text(t) => push_eol_normalised(&mut out, &t),
                Event::CData(c) => push_eol_normalised(&mut out, &c),
                Event::GeneralRef(r) => self.push_ref(&mut out, &r)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::End(_) => return Ok(out),
                Event::Start(e) | Event::Empty(e) => {
                    let name = e.name().as_ref().to_owned();
                    return Err(self.err(K::UnexpectedElement(format!("{name}> inside <{element}"))));
                }
                Event::Eof => return Err(self.err(K::UnexpectedEof)),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(self.err(K::Syntax("misplaced declaration".to_owned())));
                }
            }
        }
    }

    /// Appends what the reference `r` stands for to `out`.
    fn push_ref(&self, out: &mut String, r: &BytesRef<'i>) -> Result<(), DecodeError> {
        match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => out.push(c),
            Ok(Some(_)) | Err(_) => return Err(self.err(K::InvalidCharRef(truncate(r)))),
            Ok(None) => match resolve_predefined_entity(r) {
                Some(s) => out.push_str(s),
                None => return Err(self.err(K::UnknownEntity(truncate(r)))),
            },
        }
        Ok(())
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
                Event::GeneralRef(r) => self.push_ref(&mut String::new(), &r)?,
                Event::Eof => return Err(self.err(K::UnexpectedEof)),
                _ => {}
            }
        }
    }

    /// Calls `f` with the local name and value of each attribute of `e`, refusing
    /// duplicates and more than [`MAX_ATTRIBUTES`] (checked here without allocating).
    /// Attributes are found by [`next_attribute`], which takes them exactly as quick-xml's
    /// iterator does; whatever it leaves (odd shapes, errors, a fifth attribute) is handed
    /// to that iterator.
    fn each_attr<'e>(
        &self,
        e: &'e BytesStart<'i>,
        mut f: impl FnMut(&Self, &str, RawValue<'_>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let raw = e.attributes_raw();
        // Elements here carry four attributes at most: more go the slow way.
        let mut seen: [&'e str; 4] = [""; 4];
        let mut n = 0;
        let mut at = 0;
        loop {
            let a = match next_attribute(raw.as_bytes(), at) {
                Scan::End => return Ok(()),
                Scan::Attribute(a) if n < seen.len() => a,
                // Anything unusual, and the error it may be: quick-xml's, from here on.
                _ => return self.each_attr_slow(e, n, f),
            };
            let key = &raw[a.key_start..a.key_end];
            if seen[..n].contains(&key) {
                return Err(self.err(K::Syntax(format!("duplicate attribute {key}"))));
            }
            seen[n] = key;
            n += 1;
            let local = if a.prefixed { QName(key).local_name().into_inner() } else { key };
            f(self, local, RawValue { text: &raw[a.value_start..a.value_end], plain: a.plain })?;
            at = a.value_end + 1;
        }
    }

    /// [`Self::each_attr`] with quick-xml's attribute iterator, for the shapes
    /// [`next_attribute`] leaves to it (and the errors it reports). The first `done`
    /// attributes were already passed to `f`.
    #[cold]
    fn each_attr_slow(
        &self,
        e: &BytesStart<'i>,
        done: usize,
        mut f: impl FnMut(&Self, &str, RawValue<'_>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut seen: [&str; MAX_ATTRIBUTES] = [""; MAX_ATTRIBUTES];
        for (n, a) in e.attributes().with_checks(false).enumerate() {
            let a = a.map_err(|err| self.err(K::Syntax(err.to_string())))?;
            let key = a.key.0;
            if n >= done {
                if seen[..n].contains(&key) {
                    return Err(self.err(K::Syntax(format!("duplicate attribute {key}"))));
                }
                if n == MAX_ATTRIBUTES {
                    return Err(self.err(K::Syntax(format!("more than {MAX_ATTRIBUTES} attributes on one element"))));
                }
            }
            seen[n] = key;
            if n >= done {
                let local = if key.contains(':') { a.key.local_name().into_inner() } else { key };
                f(self, local, RawValue::new(&a.value))?;
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn attr_value<'a>(
        &self,
        value: RawValue<'a>,
        element: &'static str,
        attribute: &'static str,
    ) -> Result<Cow<'a, str>, DecodeError> {
        // Nothing to resolve or normalise: the common case, without a second pass.
        if value.plain {
            Ok(Cow::Borrowed(value.text))
        } else {
            self.normalised_attr_value(value.text, element, attribute)
        }
    }

    #[cold]
    fn normalised_attr_value<'a>(
        &self,
        raw: &'a str,
        element: &'static str,
        attribute: &'static str,
    ) -> Result<Cow<'a, str>, DecodeError> {
        let a = Attribute { key: QName(attribute), value: Cow::Borrowed(raw) };
        match a.normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity) {
            Ok(v) => {
                if let Cow::Owned(s) = &v
                    && s.chars().any(|c| !is_xml_char(c))
                {
                    return Err(self.invalid(element, attribute, s));
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

/// An attribute's value as written between its quotes.
#[derive(Clone, Copy)]
struct RawValue<'a> {
    text: &'a str,
    /// Nothing in it to resolve or normalise: no `&`, tab, line feed or carriage return.
    plain: bool,
}

impl<'a> RawValue<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, plain: !text.bytes().any(needs_attr_normalising) }
    }
}

const fn needs_attr_normalising(b: u8) -> bool {
    matches!(b, b'&' | b'\t' | b'\n' | b'\r')
}

/// An attribute found by [`next_attribute`]: byte ranges in the tag's attribute text.
struct ScannedAttribute {
    key_start: usize,
    key_end: usize,
    /// The key holds a ':'.
    prefixed: bool,
    value_start: usize,
    /// The closing quote.
    value_end: usize,
    plain: bool,
}

enum Scan {
    /// No attribute left.
    End,
    Attribute(ScannedAttribute),
    /// Something [`next_attribute`] leaves to quick-xml.
    Unusual,
}

/// The attribute at or after byte `at` of a tag's attribute text (what follows its name),
/// found as quick-xml's attribute iterator finds it, for the usual shape only: `key="value"`
/// or `key='value'`, after white space or nothing. Anything else (white space around `=`, a
/// value unquoted or unterminated, a key without a value) is [`Scan::Unusual`].
#[inline(always)]
fn next_attribute(b: &[u8], at: usize) -> Scan {
    let mut i = at;
    while b.get(i).is_some_and(|&c| is_xml_space(c)) {
        i += 1;
    }
    if i >= b.len() {
        return Scan::End;
    }
    let key_start = i;
    // The key's first byte is taken whatever it is, as quick-xml does; the key ends at '='
    // or white space. A ':' on the way makes it a prefixed name.
    let mut prefixed = b[key_start] == b':';
    let mut i = key_start + 1;
    let key_end = loop {
        let found = find_byte(
            b,
            i,
            |w| bytes_below(w, b'!') | bytes_equal(w, b'=') | bytes_equal(w, b':'),
            |c| c == b'=' || c == b':' || is_xml_space(c),
        );
        match found {
            Some(j) if b[j] == b':' => {
                prefixed = true;
                i = j + 1;
            }
            Some(j) if b[j] == b'=' => break j,
            _ => return Scan::Unusual,
        }
    };
    let Some(&quote @ (b'"' | b'\'')) = b.get(key_end + 1) else {
        return Scan::Unusual;
    };
    let value_start = key_end + 2;
    let mut plain = true;
    let mut i = value_start;
    let value_end = loop {
        let found = find_byte(
            b,
            i,
            |w| bytes_below(w, b'\r' + 1) | bytes_equal(w, quote) | bytes_equal(w, b'&'),
            |c| c == quote || needs_attr_normalising(c),
        );
        match found {
            Some(j) if b[j] == quote => break j,
            Some(j) => {
                plain = false;
                i = j + 1;
            }
            None => return Scan::Unusual,
        }
    };
    Scan::Attribute(ScannedAttribute { key_start, key_end, prefixed, value_start, value_end, plain })
}

/// Eight bytes at a time: `0x01` in each byte.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);

/// The high bit of each byte of `w` that is below `n` (`n` at most 0x80) is set. Bytes above
/// a byte so marked may be marked wrongly; the lowest marked byte is always right.
const fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & (ONES << 7)
}

/// As [`bytes_below`], for the bytes of `w` equal to `c`.
const fn bytes_equal(w: u64, c: u8) -> u64 {
    bytes_below(w ^ (ONES * c as u64), 1)
}

/// The index of the first byte of `b`, from `i` on, for which `hit` holds. `mark` takes eight
/// bytes (little-endian) and marks, as [`bytes_below`] does, at least every byte `hit` holds
/// for: eight unmarked bytes are skipped at once.
fn find_byte(b: &[u8], mut i: usize, mark: impl Fn(u64) -> u64, hit: impl Fn(u8) -> bool) -> Option<usize> {
    loop {
        if let Some(word) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let marked = mark(u64::from_le_bytes(*word));
            if marked == 0 {
                i += 8;
                continue;
            }
            i += (marked.trailing_zeros() / 8) as usize;
        }
        if hit(*b.get(i)?) {
            return Some(i);
        }
        i += 1;
    }
}

const fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The error for `input` if its text (from `base`) is not UTF-8.
#[cold]
fn utf8_error(input: &[u8], base: usize) -> Option<DecodeError> {
    let e = std::str::from_utf8(&input[base..]).err()?;
    Some(DecodeError::new(K::InvalidUtf8, input, base + e.valid_up_to()))
}

fn pos_usize(p: u64) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

fn is_blank(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Appends `s` to `out` with XML 1.0 line-end normalisation: `\r\n` and a lone `\r`
/// become `\n`.
fn push_eol_normalised(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    out.push_str(rest);
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// XML 1.0 `Char`: what a document (or a character reference) may hold.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Checks that the text `b` holds only characters XML 1.0 allows: `Err` with the offset of the
/// first one it does not (a control character, U+FFFE, U+FFFF), else `Ok` with whether `b`
/// holds a carriage return (when it does not, no text needs line-end normalisation). `b` is
/// not yet known to be UTF-8: if it is not, the caller reports that instead.
fn check_chars(b: &[u8]) -> Result<bool, usize> {
    const BLOCK: usize = 32;
    let suspect = |c: u8| (c < 0x20) & (c != b'\n') & (c != b'\t') & (c != b'\r') | (c == 0xEF);
    let bad_at = |i: usize| match b[i] {
        0xEF => b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)),
        c => c < 0x20 && !matches!(c, b'\n' | b'\t' | b'\r'),
    };
    // Whole blocks with nothing suspect are skipped; the flag computation vectorises.
    let mut block_start = 0;
    let mut carriage_return = false;
    for chunk in b.chunks(BLOCK) {
        let (sus, cr) = chunk.iter().fold((false, false), |(s, r), &c| (s | suspect(c), r | (c == b'\r')));
        carriage_return |= cr;
        if sus && let Some(i) = (block_start..block_start + chunk.len()).find(|&i| bad_at(i)) {
            return Err(i);
        }
        block_start += chunk.len();
    }
    Ok(carriage_return)
}
