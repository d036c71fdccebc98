//! Errors of the codec. Every decode error is the sender's fault (malformed input): the
//! service answers it with `400` or a bare `CleanUp`, the CLI with exit code 3.

use std::fmt;

/// What is wrong with a document, and where. (Boxed, so that results stay small on the
/// decoder's hot path.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(Box<Inner>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    kind: DecodeErrorKind,
    offset: usize,
    line: usize,
    column: usize,
}

/// The kind of problem a [`DecodeError`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input is larger than [`crate::Limits::max_input_bytes`].
    TooLarge {
        /// The input's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not UTF-8.
    InvalidUtf8,
    /// A document type declaration: refused outright (no entities, no external fetches).
    DoctypeForbidden,
    /// An entity reference other than the five predefined ones and character references.
    UnknownEntity(String),
    /// A character reference to a character XML does not allow.
    InvalidCharRef(String),
    /// The XML itself is not well-formed.
    Syntax(String),
    /// Elements nest deeper than [`crate::Limits::max_depth`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More items than [`crate::Limits::max_items`].
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// The root is not `WorkpointMessage`, `DLSMessage` or `DlsMessage` (or not the kind asked for).
    UnexpectedRoot(String),
    /// What a DLS sent a phone is neither a `DLSMessage` nor an XML-DSig `Signature`
    /// enveloping one ([`crate::decode_from_dls`]).
    NotFromDls(String),
    /// An XML-DSig `Signature` around a `DLSMessage` is malformed: another namespace, a
    /// missing or second `SignedInfo`/`SignatureValue`/`Object`, an `Object` that does not
    /// hold exactly one `DLSMessage`, an element XML-DSig does not define there
    /// ([`crate::decode_from_dls`]).
    Envelope(String),
    /// The root declares a namespace other than the DLS namespace.
    WrongNamespace(String),
    /// A mandatory element is missing.
    MissingElement(&'static str),
    /// An element appears where it may not, or twice.
    UnexpectedElement(String),
    /// Text (other than white space) where only elements may stand.
    UnexpectedText,
    /// A mandatory attribute is missing (e.g. `Message@nonce`, `Item@name`).
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute's value is not valid (e.g. a non-numeric `index`).
    InvalidAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The value found (cut to 64 characters).
        value: String,
    },
    /// The document ends early.
    UnexpectedEof,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, input: &[u8], offset: usize) -> Self {
        let offset = offset.min(input.len());
        let before = &input[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        Self(Box::new(Inner { kind, offset, line, column }))
    }

    /// The kind of problem.
    #[must_use]
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.0.kind
    }

    /// The byte offset in the input where the problem was found.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.0.offset
    }

    /// The line (from 1) of [`Self::offset`].
    #[must_use]
    pub fn line(&self) -> usize {
        self.0.line
    }

    /// The column (from 1, in characters) of [`Self::offset`].
    #[must_use]
    pub fn column(&self) -> usize {
        self.0.column
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, limit } => write!(f, "document of {size} bytes exceeds the limit of {limit} bytes"),
            Self::InvalidUtf8 => f.write_str("document is not valid UTF-8"),
            Self::DoctypeForbidden => f.write_str("document type declarations (<!DOCTYPE) are not allowed"),
            Self::UnknownEntity(e) => write!(
                f,
                "unknown entity reference &{e}; (only the five XML entities and character references are allowed)"
            ),
            Self::InvalidCharRef(e) => write!(f, "invalid character reference &{e};"),
            Self::Syntax(e) => write!(f, "XML syntax error: {e}"),
            Self::TooDeep { limit } => write!(f, "elements nest deeper than {limit} levels"),
            Self::TooManyItems { limit } => write!(f, "more than {limit} items"),
            Self::UnexpectedRoot(r) => write!(f, "unexpected root element <{r}> (want WorkpointMessage or DLSMessage)"),
            Self::NotFromDls(r) => {
                write!(f, "unexpected root element <{r}> (want DLSMessage, or an XML-DSig Signature enveloping one)")
            }
            Self::Envelope(why) => write!(f, "XML-DSig envelope: {why}"),
            Self::WrongNamespace(ns) => {
                write!(f, "unexpected namespace \"{ns}\" (want http://www.siemens.com/DLS or none)")
            }
            Self::MissingElement(e) => write!(f, "missing element <{e}>"),
            Self::UnexpectedElement(e) => write!(f, "unexpected element <{e}>"),
            Self::UnexpectedText => f.write_str("unexpected text between elements"),
            Self::MissingAttribute { element, attribute } => write!(f, "<{element}> has no {attribute} attribute"),
            Self::InvalidAttribute { element, attribute, value } => {
                write!(f, "<{element}> has an invalid {attribute}=\"{value}\"")
            }
            Self::UnexpectedEof => f.write_str("document ends before its root element is closed"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {}, column {}, byte {})", self.0.kind, self.0.line, self.0.column, self.0.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Why a message cannot be encoded. The caller's fault: the message holds something XML 1.0
/// cannot carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A character XML 1.0 cannot represent, not even as a character reference (e.g. U+0000).
    #[error("{field} contains U+{code:04X}, which XML 1.0 cannot carry")]
    InvalidChar {
        /// Where it was found.
        field: &'static str,
        /// The character's code point.
        code: u32,
    },
    /// A mandatory value is empty (a nonce, an item name).
    #[error("{0} must not be empty")]
    Empty(&'static str),
}
