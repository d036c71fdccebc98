//! Software versions and firmware images.
//!
//! * [`SoftwareVersion`]: a phone's software version as the phones spell it (`V3 R5.12.0`,
//!   `V3R5.12.0`, `V1 R7.2.0 SIP 191012`), parsed into its numeric components, ordered and
//!   shown in one canonical form.
//! * [`inspect_image`]: what can be learnt of a firmware image from its first bytes and its
//!   file name. Vendor images are opaque: the inspector reads this project's own image header
//!   ([`IMAGE_MAGIC`], written by [`fake_image`] for tests and the simulator) where the format
//!   allows, and otherwise falls back to a version in the file name, and to what the
//!   administrator declares when the image is uploaded.
//!
//! Everything here is pure: bytes and strings in, values out, no I/O.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most numeric components a version may have (major, minor and the rest).
pub const MAX_VERSION_COMPONENTS: usize = 64;

/// The longest string [`SoftwareVersion::parse`] accepts, trailing text included.
pub const MAX_VERSION_LEN: usize = 1024;

/// A phone's software version: `V<major> R<minor>` then further components
/// (`V3 R5.12.0`).
///
/// Parsing accepts optional spaces before the `V`, spaces or underscores between the major
/// and the `R`, `.` or `_` between the later components, either case for `V` and `R`, and
/// ignores text after the numeric part (`V1 R7.2.0 SIP 191012`) as long as it does not
/// continue a word (`V3 R5x` is refused). The string as given is kept ([`Self::raw`]).
///
/// Versions compare by their numeric components, a missing trailing component counting as
/// 0: `V3 R5` == `V3 R5.0.0` < `V3 R5.12.1` < `V3 R10.0.0` < `V4 R0`. [`fmt::Display`]
/// shows the canonical form `V3 R5.12.0`, which is also what serde reads and writes.
#[derive(Clone, Debug)]
pub struct SoftwareVersion {
    raw: String,
    components: Vec<u32>,
}

impl SoftwareVersion {
    /// Parses `s` (see the type's documentation). `None` when `s` is not a version, has
    /// more than [`MAX_VERSION_COMPONENTS`] components, a number over `u32::MAX`, or is
    /// longer than [`MAX_VERSION_LEN`] bytes.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > MAX_VERSION_LEN {
            return None;
        }
        let start = s.len() - s.trim_start_matches(' ').len();
        let (components, end) = scan(s.as_bytes(), start)?;
        if s.as_bytes().get(end).is_some_and(u8::is_ascii_alphanumeric) {
            return None;
        }
        Some(Self { raw: s.to_owned(), components })
    }

    /// A version from its numeric components (major, minor, the rest): `None` unless there
    /// are between 2 and [`MAX_VERSION_COMPONENTS`]. Its raw string is the canonical form.
    #[must_use]
    pub fn from_components(components: &[u32]) -> Option<Self> {
        if !(2..=MAX_VERSION_COMPONENTS).contains(&components.len()) {
            return None;
        }
        let mut v = Self { raw: String::new(), components: components.to_vec() };
        v.raw = v.to_string();
        Some(v)
    }

    /// The string this version was parsed from, as given.
    #[must_use]
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The numeric components: major, minor, then the rest (at least two).
    #[must_use]
    pub fn components(&self) -> &[u32] {
        &self.components
    }

    /// The major version (`3` in `V3 R5.12.0`).
    #[must_use]
    pub fn major(&self) -> u32 {
        self.components[0]
    }

    /// The minor version, the release (`5` in `V3 R5.12.0`).
    #[must_use]
    pub fn minor(&self) -> u32 {
        self.components[1]
    }

    /// The components without trailing zeros: what equality, order and hash look at.
    fn significant(&self) -> &[u32] {
        let n = self.components.iter().rposition(|c| *c != 0).map_or(0, |i| i + 1);
        &self.components[..n]
    }
}

/// Reads `V<n>[ _]*R<n>([._]<n>)*` from `b[start..]`: the components and where the numeric
/// part ends. Bounded by [`MAX_VERSION_COMPONENTS`] and `u32`.
fn scan(b: &[u8], start: usize) -> Option<(Vec<u32>, usize)> {
    let mut i = start;
    if !b.get(i)?.eq_ignore_ascii_case(&b'v') {
        return None;
    }
    i += 1;
    let (major, next) = number(b, i)?;
    i = next;
    while matches!(b.get(i), Some(b' ' | b'_')) {
        i += 1;
    }
    if !b.get(i)?.eq_ignore_ascii_case(&b'r') {
        return None;
    }
    let (minor, next) = number(b, i + 1)?;
    i = next;
    let mut components = vec![major, minor];
    while matches!(b.get(i), Some(b'.' | b'_')) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        if components.len() == MAX_VERSION_COMPONENTS {
            return None;
        }
        let (n, next) = number(b, i + 1)?;
        components.push(n);
        i = next;
    }
    Some((components, i))
}

/// A decimal number of at least one digit at `b[i..]`, and where it ends. `None` without a
/// digit or over `u32::MAX`.
fn number(b: &[u8], mut i: usize) -> Option<(u32, usize)> {
    let start = i;
    let mut n: u32 = 0;
    while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
        i += 1;
    }
    (i > start).then_some((n, i))
}

impl PartialEq for SoftwareVersion {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for SoftwareVersion {}

impl Hash for SoftwareVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl Ord for SoftwareVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.components, &other.components);
        let len = a.len().max(b.len());
        (0..len)
            .map(|i| a.get(i).copied().unwrap_or(0).cmp(&b.get(i).copied().unwrap_or(0)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for SoftwareVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SoftwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{} R{}", self.major(), self.minor())?;
        for c in &self.components[2..] {
            write!(f, ".{c}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SoftwareVersion {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(BadVersion)
    }
}

/// A string that is not a software version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a software version (expected e.g. `V3 R5.12.0`)")]
pub struct BadVersion;

impl Serialize for SoftwareVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SoftwareVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not a software version: {s:?}")))
    }
}

/// Whether two version strings name the same version: equal as [`SoftwareVersion`]s when
/// both parse (`V3R5.12.0` and `V3 R5.12`… `.0`), else equal once trimmed.
#[must_use]
pub fn same_version(a: &str, b: &str) -> bool {
    match (SoftwareVersion::parse(a), SoftwareVersion::parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.trim() == b.trim(),
    }
}

/// The first line of this project's firmware image header.
pub const IMAGE_MAGIC: &[u8] = b"DLS-FIRMWARE-IMAGE 1\n";

/// The longest image header, magic and terminating empty line included.
pub const MAX_IMAGE_HEADER: usize = 4096;

/// The first line's prefix, whatever the header format's version.
const MAGIC_PREFIX: &[u8] = b"DLS-FIRMWARE-IMAGE ";

/// Where an [`ImageInfo`] came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InfoSource {
    /// The image's header.
    Header,
    /// A version found in the file name (device types unknown).
    FileName,
    /// Nothing: the image is opaque and its name says nothing.
    #[default]
    Unknown,
}

/// What is known of a firmware image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    /// The device types the image is for (empty: not known, or any).
    pub device_types: Vec<String>,
    /// The software type (`SIP`, `HFA`, …), if known.
    pub software_type: Option<String>,
    /// The software version, if known.
    pub version: Option<SoftwareVersion>,
    /// Where this came from.
    pub source: InfoSource,
}

/// Why an image header is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The first line names a header format this version does not know.
    #[error("unsupported image header format {0:?}")]
    UnsupportedFormat(String),
    /// No empty line ends the header within [`MAX_IMAGE_HEADER`] bytes.
    #[error("image header not terminated within {MAX_IMAGE_HEADER} bytes")]
    Unterminated,
    /// A byte that is not printable ASCII (nor the line feed) in the header.
    #[error("image header: byte {byte:#04x} at offset {offset} is not printable ASCII")]
    NotAscii {
        /// Its offset from the start of the image.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// A line that is not `key: value`.
    #[error("image header: line {line} is not `key: value`")]
    MalformedLine {
        /// The line's number (the magic is line 1).
        line: usize,
    },
    /// A key that may appear once appears again.
    #[error("image header: duplicate {0}")]
    Duplicate(&'static str),
    /// A known key without a value.
    #[error("image header: empty {0}")]
    EmptyValue(&'static str),
    /// `software-version` is not a version.
    #[error("image header: {0:?} is not a software version")]
    BadVersion(String),
}

/// An image with this project's header for `device_types`, `software_type` and `version`,
/// followed by `payload_len` bytes of a fixed pattern. For tests and the simulator: the
/// values are written as given (a value with a line feed makes a header
/// [`inspect_image`] refuses).
#[must_use]
pub fn fake_image(device_types: &[&str], software_type: &str, version: &str, payload_len: usize) -> Vec<u8> {
    let mut out = IMAGE_MAGIC.to_vec();
    for d in device_types {
        out.extend_from_slice(format!("device-type: {d}\n").as_bytes());
    }
    out.extend_from_slice(format!("software-type: {software_type}\nsoftware-version: {version}\n\n").as_bytes());
    out.reserve(payload_len);
    // A 251-byte cycle (prime): no power-of-two block repeats.
    out.extend((0..payload_len).map(|i| u8::try_from(i % 251).unwrap_or_default()));
    out
}

/// What `head` (the first bytes of an image; at most [`MAX_IMAGE_HEADER`] are looked at)
/// and `file_name` say about a firmware image.
///
/// An image starting with this project's header ([`IMAGE_MAGIC`]) is described by it,
/// strictly: printable ASCII, `key: value` lines (`device-type`, repeatable;
/// `software-type`; `software-version`; other keys ignored) ended by an empty line within
/// [`MAX_IMAGE_HEADER`] bytes. Any other image is opaque: its version is looked for in the
/// file name (`…_V3R5.12.0…`, `…_V3_R5_12_0.img`, `V3 R5.12.0`, either case), and failing
/// that nothing is known — the administrator declares it.
///
/// # Errors
/// [`ImageError`] when the image has a header and the header is not valid.
pub fn inspect_image(head: &[u8], file_name: &str) -> Result<ImageInfo, ImageError> {
    let head = &head[..head.len().min(MAX_IMAGE_HEADER)];
    if head.starts_with(MAGIC_PREFIX) {
        return parse_header(head);
    }
    Ok(from_file_name(file_name))
}

fn parse_header(head: &[u8]) -> Result<ImageInfo, ImageError> {
    let first_end = head.iter().position(|b| *b == b'\n').ok_or(ImageError::Unterminated)?;
    if !head.starts_with(IMAGE_MAGIC) {
        let format = String::from_utf8_lossy(&head[MAGIC_PREFIX.len()..first_end]).chars().take(32).collect();
        return Err(ImageError::UnsupportedFormat(format));
    }
    let end = head.windows(2).position(|w| w == b"\n\n").ok_or(ImageError::Unterminated)? + 1;
    if let Some(offset) = head[..end].iter().position(|b| *b != b'\n' && !(b' '..=b'~').contains(b)) {
        return Err(ImageError::NotAscii { offset, byte: head[offset] });
    }
    let mut info = ImageInfo { source: InfoSource::Header, ..ImageInfo::default() };
    let mut version = None;
    let text = &head[IMAGE_MAGIC.len()..end];
    // Every line ends with '\n' and the header is printable ASCII: one byte, one char.
    for (n, line) in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let line = String::from_utf8_lossy(line);
        let (key, value) = line.split_once(':').ok_or(ImageError::MalformedLine { line: n + 2 })?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ImageError::MalformedLine { line: n + 2 });
        }
        if key.eq_ignore_ascii_case("device-type") {
            let value = non_empty("device-type", value)?;
            if !info.device_types.iter().any(|d| d.eq_ignore_ascii_case(value)) {
                info.device_types.push(value.to_owned());
            }
        } else if key.eq_ignore_ascii_case("software-type") {
            let value = non_empty("software-type", value)?;
            if info.software_type.replace(value.to_owned()).is_some() {
                return Err(ImageError::Duplicate("software-type"));
            }
        } else if key.eq_ignore_ascii_case("software-version") {
            let value = non_empty("software-version", value)?;
            let v = SoftwareVersion::parse(value).ok_or_else(|| ImageError::BadVersion(value.to_owned()))?;
            if version.replace(v).is_some() {
                return Err(ImageError::Duplicate("software-version"));
            }
        }
    }
    info.version = version;
    Ok(info)
}

fn non_empty<'a>(key: &'static str, value: &'a str) -> Result<&'a str, ImageError> {
    if value.is_empty() { Err(ImageError::EmptyValue(key)) } else { Ok(value) }
}

/// The first version in `file_name` (its last path component) that starts a word and does
/// not run into one.
fn from_file_name(file_name: &str) -> ImageInfo {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let name = &name[..floor_char_boundary(name, MAX_VERSION_LEN)];
    let b = name.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if !c.eq_ignore_ascii_case(&b'v') || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
            continue;
        }
        let Some((components, end)) = scan(b, i) else { continue };
        if b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        // `scan` only consumed ASCII: `i..end` are char boundaries.
        let version = SoftwareVersion { raw: name[i..end].to_owned(), components };
        return ImageInfo { version: Some(version), source: InfoSource::FileName, ..ImageInfo::default() };
    }
    ImageInfo::default()
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

/// Whether an image described by `info` may be installed on a `device_type`: yes when it
/// names no device types, else when one of them equals `device_type` (trimmed, any case).
#[must_use]
pub fn applies_to(info: &ImageInfo, device_type: &str) -> bool {
    let device_type = device_type.trim();
    info.device_types.is_empty() || info.device_types.iter().any(|d| d.trim().eq_ignore_ascii_case(device_type))
}
