//! Messages to canonical bytes.

use crate::decode::is_xml_char;
use crate::error::EncodeError;
use crate::types::{DLS_NAMESPACE, Header, Item, Message};

/// How item values are escaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueEscaping {
    /// Standard XML escaping (`&amp;` `&lt;` `&gt;`): the default, and what every
    /// current firmware reads.
    #[default]
    Standard,
    /// For early firmware reported not to decode `&lt;` `&gt;` `&amp;` in values: those
    /// three characters are replaced in item values by `+`, `(` and `)`, so that no entity
    /// is needed. Lossy, and meant to be enabled per device family only.
    LegacySanitise,
}

/// Options of [`encode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// How item values are escaped.
    pub value_escaping: ValueEscaping,
}

impl EncodeOptions {
    /// Options with the given value escaping.
    #[must_use]
    pub fn with_value_escaping(mut self, e: ValueEscaping) -> Self {
        self.value_escaping = e;
        self
    }
}

/// Encodes a message in the canonical form: XML declaration, the DLS namespace, the root
/// spelled `DLSMessage` (or `WorkpointMessage`), standard escaping, UTF-8, one element a
/// line.
///
/// # Errors
/// [`EncodeError`] when the message holds something XML 1.0 cannot carry (e.g. U+0000)
/// or lacks a nonce or an item name.
pub fn encode(message: &Message, options: &EncodeOptions) -> Result<String, EncodeError> {
    let items = message.items();
    let mut out = String::with_capacity(256 + items.map_or(0, |i| i.len() * 64));
    let root = message.kind();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
    out.push_str(root);
    out.push_str(" xmlns=\"");
    out.push_str(DLS_NAMESPACE);
    out.push_str("\">\n  <Message");
    header(&mut out, message.header())?;
    out.push_str(">\n");
    match message {
        Message::Workpoint(m) => {
            out.push_str("    <ReasonForContact");
            if let Some(a) = &m.reason.action {
                attr(&mut out, "action", a.as_str(), "ReasonForContact@action")?;
            }
            if let Some(s) = &m.reason.status {
                attr(&mut out, "status", s.as_str(), "ReasonForContact@status")?;
            }
            out.push('>');
            text(&mut out, m.reason.value.as_str(), "ReasonForContact", ValueEscaping::Standard)?;
            out.push_str("</ReasonForContact>\n");
        }
        Message::Dls(m) => {
            out.push_str("    <Action>");
            text(&mut out, m.action.as_str(), "Action", ValueEscaping::Standard)?;
            out.push_str("</Action>\n");
        }
    }
    if let Some(items) = items {
        item_list(&mut out, items, "    ", options)?;
    }
    out.push_str("  </Message>\n</");
    out.push_str(root);
    out.push_str(">\n");
    Ok(out)
}

/// Encodes a bare `ItemList` document in the DLS namespace, without XML declaration and
/// without white space between elements (the plaintext of `secure-mode-data`).
///
/// # Errors
/// As [`encode`].
pub fn encode_item_list(items: &[Item]) -> Result<String, EncodeError> {
    let mut out = String::with_capacity(64 + items.len() * 64);
    out.push_str("<ItemList xmlns=\"");
    out.push_str(DLS_NAMESPACE);
    out.push_str("\">");
    for item in items {
        item_xml(&mut out, item, ValueEscaping::Standard)?;
    }
    out.push_str("</ItemList>");
    Ok(out)
}

/// The encoded size of one item, as [`encode`] writes it (used for byte budgets).
pub(crate) fn item_size(item: &Item) -> usize {
    let mut s = String::new();
    // An item that cannot be encoded fails later in `encode`; count its raw size here.
    match item_xml(&mut s, item, ValueEscaping::Standard) {
        Ok(()) => s.len() + "      \n".len(),
        Err(_) => item.name.len() + item.value.len() + 64,
    }
}

fn header(out: &mut String, h: &Header) -> Result<(), EncodeError> {
    if h.nonce.is_empty() {
        return Err(EncodeError::Empty("Message@nonce"));
    }
    attr(out, "nonce", &h.nonce, "Message@nonce")?;
    if let Some(n) = h.max_items {
        out.push_str(" maxItems=\"");
        out.push_str(&n.to_string());
        out.push('"');
    }
    if let Some(f) = &h.fragment {
        attr(out, "fragment", f.as_str(), "Message@fragment")?;
    }
    Ok(())
}

fn item_list(out: &mut String, items: &[Item], indent: &str, options: &EncodeOptions) -> Result<(), EncodeError> {
    if items.is_empty() {
        out.push_str(indent);
        out.push_str("<ItemList/>\n");
        return Ok(());
    }
    out.push_str(indent);
    out.push_str("<ItemList>\n");
    for item in items {
        out.push_str(indent);
        out.push_str("  ");
        item_xml(out, item, options.value_escaping)?;
        out.push('\n');
    }
    out.push_str(indent);
    out.push_str("</ItemList>\n");
    Ok(())
}

fn item_xml(out: &mut String, item: &Item, escaping: ValueEscaping) -> Result<(), EncodeError> {
    if item.name.is_empty() {
        return Err(EncodeError::Empty("Item@name"));
    }
    out.push_str("<Item");
    attr(out, "name", &item.name, "Item@name")?;
    if let Some(i) = item.index {
        out.push_str(" index=\"");
        out.push_str(&i.to_string());
        out.push('"');
    }
    if let Some(t) = &item.item_type {
        attr(out, "type", t, "Item@type")?;
    }
    if let Some(s) = &item.status {
        attr(out, "status", s.as_str(), "Item@status")?;
    }
    if item.value.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        text(out, &item.value, "Item value", escaping)?;
        out.push_str("</Item>");
    }
    Ok(())
}

fn attr(out: &mut String, name: &str, value: &str, field: &'static str) -> Result<(), EncodeError> {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape(out, value, field, true, ValueEscaping::Standard)?;
    out.push('"');
    Ok(())
}

fn text(out: &mut String, value: &str, field: &'static str, escaping: ValueEscaping) -> Result<(), EncodeError> {
    escape(out, value, field, false, escaping)
}

/// Appends `value` escaped. In attributes, white space other than the space is written as
/// character references so that attribute-value normalisation keeps it; in text, `\r` is,
/// so that line-end normalisation keeps it.
fn escape(
    out: &mut String,
    value: &str,
    field: &'static str,
    in_attr: bool,
    escaping: ValueEscaping,
) -> Result<(), EncodeError> {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep: &str = match b {
            b'&' if escaping == ValueEscaping::LegacySanitise => "+",
            b'<' if escaping == ValueEscaping::LegacySanitise => "(",
            b'>' if escaping == ValueEscaping::LegacySanitise => ")",
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if in_attr => "&quot;",
            b'\r' => "&#13;",
            b'\n' if in_attr => "&#10;",
            b'\t' if in_attr => "&#9;",
            b'\t' | b'\n' => continue,
            0x00..=0x1F => return Err(EncodeError::InvalidChar { field, code: u32::from(b) }),
            // U+FFFE / U+FFFF start with EF BF; the rest of UTF-8 is legal XML.
            0xEF if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) => {
                let c = value[i..].chars().next().unwrap_or('\u{FFFF}');
                debug_assert!(!is_xml_char(c));
                return Err(EncodeError::InvalidChar { field, code: u32::from(c) });
            }
            _ => continue,
        };
        out.push_str(&value[start..i]);
        out.push_str(rep);
        start = i + 1;
    }
    out.push_str(&value[start..]);
    Ok(())
}
