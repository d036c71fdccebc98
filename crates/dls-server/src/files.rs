//! Deployment files over HTTP: served from disk piece by piece (with single byte ranges),
//! and uploads streamed to disk.
//!
//! Phones cannot read chunked bodies: every response here carries its exact
//! `Content-Length`, and the streamed body ([`FileBody`]) reports the same exact size, so
//! hyper never chunks. A file is never held in memory: at most one 64 KiB piece per
//! response is.

// Wired into the routes by the deployment work; until then only the tests use it.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt, BufWriter, ReadBuf};
use tracing::warn;

use crate::http::{Resp, full, text};

/// The size of the pieces a file is read and sent in.
pub(crate) const CHUNK: usize = 64 * 1024;

/// How many of an upload's first bytes [`Upload::head`] keeps (enough for an image header).
pub(crate) const HEAD_BYTES: usize = 4096;

/// The most bytes read and thrown away after an upload went over its limit, so that the
/// client has sent its request before the `413` (closing on unread data would reset the
/// connection and lose the answer).
const DRAIN_BYTES: u64 = 8 << 20;

/// Answers a `GET` or `HEAD` for `file` (`size` bytes, read from its start) with its
/// `content_type` and, when given, its `etag` (the header's value, quoted: `"abc"`).
///
/// * `Content-Length`, `Accept-Ranges: bytes` and `ETag` on every answer; `HEAD`: the
///   headers of the whole file, no body.
/// * `Range` (on `GET` only) with one range — `bytes=a-b`, `bytes=a-`, `bytes=-n` — gives
///   `206` with `Content-Range: bytes a-b/size` and exactly those bytes; a range that
///   cannot be satisfied (start ≥ size, `-0`) gives `416` with `Content-Range: bytes
///   */size`. A `Range` that is invalid, has several ranges or a unit other than `bytes`,
///   or comes with an `If-Range` that is not the (strong) `etag`, is ignored: `200`, the
///   whole file.
/// * Any other method: `405` with `Allow: GET, HEAD`.
///
/// The body streams from disk in pieces of [`CHUNK`] bytes. Should reading fail midway,
/// the body ends with an error and hyper aborts the connection: the client sees a short
/// body, never wrong bytes.
pub(crate) async fn serve_file(
    mut file: File,
    size: u64,
    method: &Method,
    headers: &HeaderMap,
    content_type: &str,
    etag: Option<&str>,
) -> Resp {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let range = if head { Range::Whole } else { requested_range(headers, size, etag) };
    let (status, start, len) = match range {
        Range::Whole => (StatusCode::OK, 0, size),
        Range::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Range::Unsatisfiable => {
            let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            let h = r.headers_mut();
            h.insert(header::CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return r;
        }
    };
    let body = if head || len == 0 {
        full(Bytes::new())
    } else {
        if start > 0
            && let Err(e) = file.seek(SeekFrom::Start(start)).await
        {
            warn!(error = %e, "seeking in a deployment file failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "file could not be read\n");
        }
        http_body_util::Either::Right(FileBody::new(file, len).boxed_unsync())
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(header::ETAG, etag);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, header_value(&format!("bytes {start}-{}/{size}", start + len - 1)));
    }
    r
}

/// A header value of digits, spaces, `*`, `-` and `/`: always valid.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// What part of a file a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    /// The whole file (no `Range`, or one that is ignored).
    Whole,
    /// Bytes `first..=last`, both within the file.
    Part { first: u64, last: u64 },
    /// A valid range outside the file.
    Unsatisfiable,
}

/// The range a `GET` asks for, `If-Range` considered.
fn requested_range(headers: &HeaderMap, size: u64, etag: Option<&str>) -> Range {
    let Some(value) = headers.get(header::RANGE) else { return Range::Whole };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        // A strong comparison: a weak validator never matches; a date cannot be checked
        // (no Last-Modified is sent), so it does not match either.
        let matches = etag.is_some_and(|e| !e.starts_with("W/") && if_range.as_bytes() == e.as_bytes());
        if !matches {
            return Range::Whole;
        }
    }
    value.to_str().ok().and_then(|v| parse_range(v, size)).unwrap_or(Range::Whole)
}

/// Parses a `Range` value with one byte range; `None` when it is to be ignored.
fn parse_range(value: &str, size: u64) -> Option<Range> {
    let (unit, spec) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last `n` bytes.
        let n = number(last)?;
        return Some(match (n, size) {
            (0, _) => Range::Unsatisfiable,
            // Nothing to cut from an empty file: send it (empty) whole.
            (_, 0) => Range::Whole,
            _ => Range::Part { first: size - n.min(size), last: size - 1 },
        });
    }
    let first = number(first)?;
    let last = if last.is_empty() { None } else { Some(number(last)?) };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    if first >= size {
        return Some(Range::Unsatisfiable);
    }
    Some(Range::Part { first, last: last.map_or(size - 1, |l| l.min(size - 1)) })
}

/// A decimal number of digits only (no sign, no spaces), within `u64`.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A body streaming `remaining` bytes of a file from its current position, in pieces of at
/// most 64 KiB, with an exact size hint. A file that ends early or cannot be read ends the
/// body with an error. (The service's downloads.)
#[derive(Debug)]
pub(crate) struct FileBody {
    file: File,
    remaining: u64,
    /// The piece being read, kept while the read is pending.
    piece: Option<Vec<u8>>,
}

impl FileBody {
    /// The next `len` bytes of `file`.
    #[must_use]
    pub(crate) fn new(file: File, len: u64) -> Self {
        Self { file, remaining: len, piece: None }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let mut piece = this.piece.take().unwrap_or_default();
        piece.resize(want, 0);
        let mut buf = ReadBuf::new(&mut piece);
        match Pin::new(&mut this.file).poll_read(cx, &mut buf) {
            Poll::Pending => {
                this.piece = Some(piece);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    this.remaining = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than announced",
                    ))));
                }
                piece.truncate(n);
                this.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// An upload received into a temporary file, synced to disk. The caller moves it into
/// place (or removes it).
#[derive(Debug)]
pub(crate) struct Upload {
    /// The temporary file (mode 0600, in the directory given to [`receive_upload`]).
    pub(crate) temp_path: PathBuf,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its SHA-256, lower-case hex.
    pub(crate) sha256_hex: String,
    /// Its first bytes, at most [`HEAD_BYTES`].
    pub(crate) head: Vec<u8>,
}

/// Why an upload was not received, by who is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum UploadError {
    /// The client sent (or announced) more than the limit (`413`).
    #[error("upload larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client sent nothing for longer than the idle timeout (`408`).
    #[error("upload stalled: nothing received for {0:?}")]
    Stalled(Duration),
    /// The client broke the body off (`400`).
    #[error("upload broken off: {0}")]
    Broken(String),
    /// Our own I/O failed: creating, writing or syncing the file (`500`).
    #[error("storing the upload: {0}")]
    Io(#[from] io::Error),
}

impl UploadError {
    /// The HTTP status to answer with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Broken(_) => StatusCode::BAD_REQUEST,
            Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Streams `body` into a new temporary file in `dir` (`.upload-<random hex>`, mode 0600),
/// hashing it, and syncs the file. Refuses a body over `limit` bytes — at once when its
/// length is announced, else when it gets there (then reads and discards up to 8 MiB more
/// so the client is ready for the answer) — and a body that sends nothing for
/// `idle_timeout`. On any error (and if the future is dropped) the temporary file is
/// removed.
///
/// # Errors
/// [`UploadError`]: too large, stalled, broken off by the client, or our own I/O.
pub(crate) async fn receive_upload<B>(
    body: B,
    dir: &Path,
    limit: u64,
    idle_timeout: Duration,
) -> Result<Upload, UploadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    if body.size_hint().lower() > limit {
        return Err(UploadError::TooLarge { limit });
    }
    let (file, path) = create_temp(dir).await?;
    let mut guard = TempGuard(Some(path));
    match write_body(body, file, limit, idle_timeout).await {
        Ok((size, sha256_hex, head)) => {
            let temp_path = guard.0.take().unwrap_or_default();
            Ok(Upload { temp_path, size, sha256_hex, head })
        }
        Err(e) => {
            if let Some(path) = guard.0.take()
                && let Err(re) = tokio::fs::remove_file(&path).await
            {
                warn!(path = %path.display(), error = %re, "removing a failed upload");
            }
            Err(e)
        }
    }
}

/// Removes the temporary file when the upload did not complete (also when its future is
/// dropped midway).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    for _ in 0..8 {
        let mut r = [0u8; 16];
        getrandom::fill(&mut r).map_err(|e| io::Error::other(format!("no random source: {e}")))?;
        let path = dir.join(format!(".upload-{}", hex::encode(r)));
        match tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name"))
}

/// Writes `body` to `file`: its size, SHA-256 (hex) and first [`HEAD_BYTES`] bytes.
async fn write_body<B>(
    mut body: B,
    file: File,
    limit: u64,
    idle_timeout: Duration,
) -> Result<(u64, String, Vec<u8>), UploadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    let mut out = BufWriter::with_capacity(4 * CHUNK, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut drained: Option<u64> = None;
    loop {
        let too_large = drained.is_some();
        let frame = match tokio::time::timeout(idle_timeout, body.frame()).await {
            Err(_) if too_large => return Err(UploadError::TooLarge { limit }),
            Err(_) => return Err(UploadError::Stalled(idle_timeout)),
            Ok(None) => break,
            Ok(Some(Err(_))) if too_large => return Err(UploadError::TooLarge { limit }),
            Ok(Some(Err(e))) => return Err(UploadError::Broken(e.to_string())),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        let len = data.len() as u64;
        if let Some(d) = drained.as_mut() {
            *d += len;
            if *d > DRAIN_BYTES {
                return Err(UploadError::TooLarge { limit });
            }
            continue;
        }
        if size.saturating_add(len) > limit {
            drained = Some(0);
            continue;
        }
        hasher.update(&data);
        let keep = (HEAD_BYTES - head.len()).min(data.len());
        head.extend_from_slice(&data[..keep]);
        out.write_all(&data).await?;
        size += len;
    }
    if drained.is_some() {
        return Err(UploadError::TooLarge { limit });
    }
    out.flush().await?;
    let file = out.into_inner();
    file.sync_all().await?;
    Ok((size, hex::encode(hasher.finalize()), head))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::VecDeque;
    use std::os::unix::fs::PermissionsExt;

    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, header};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A repeating pattern, different at every offset within 251 bytes.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        data: Vec<u8>,
    }

    fn fixture(len: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.bin");
        let data = pattern(len);
        std::fs::write(&path, &data).unwrap();
        Fixture { _dir: dir, path, data }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    const ETAG: &str = "\"v1-abc\"";

    async fn get(f: &Fixture, method: Method, h: &HeaderMap) -> (Resp, Vec<u8>) {
        let file = File::open(&f.path).await.unwrap();
        let resp = serve_file(file, f.data.len() as u64, &method, h, "application/octet-stream", Some(ETAG)).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (Response::from_parts(parts, full(Bytes::new())), bytes)
    }

    fn header_of(r: &Resp, name: header::HeaderName) -> Option<&str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn whole_file() {
        let f = fixture(10_000);
        let (r, body) = get(&f, Method::GET, &HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body, f.data);
        assert_eq!(header_of(&r, header::CONTENT_LENGTH), Some("10000"));
        assert_eq!(header_of(&r, header::ACCEPT_RANGES), Some("bytes"));
        assert_eq!(header_of(&r, header::ETAG), Some(ETAG));
        assert_eq!(header_of(&r, header::CONTENT_TYPE), Some("application/octet-stream"));
        assert_eq!(header_of(&r, header::CONTENT_RANGE), None);
    }

    #[tokio::test]
    async fn head_has_the_headers_and_no_body() {
        let f = fixture(10_000);
        // A Range is ignored on HEAD.
        let (r, body) = get(&f, Method::HEAD, &headers(&[(header::RANGE, "bytes=0-9")])).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(header_of(&r, header::CONTENT_LENGTH), Some("10000"));
        assert_eq!(header_of(&r, header::ACCEPT_RANGES), Some("bytes"));
        assert_eq!(header_of(&r, header::ETAG), Some(ETAG));
    }

    #[tokio::test]
    async fn other_methods_are_refused() {
        let f = fixture(10);
        let (r, _) = get(&f, Method::POST, &HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header_of(&r, header::ALLOW), Some("GET, HEAD"));
    }

    #[tokio::test]
    async fn single_ranges() {
        let f = fixture(10_000);
        for (range, first, last) in [
            ("bytes=0-99", 0usize, 99usize),
            ("bytes=100-199", 100, 199),
            ("bytes=9990-", 9990, 9999),
            ("bytes=9000-20000", 9000, 9999),
            ("bytes=-10", 9990, 9999),
            ("bytes=-20000", 0, 9999),
            ("bytes=5-5", 5, 5),
            ("Bytes=0-0", 0, 0),
            ("bytes = 1234 - 5678", 1234, 5678),
        ] {
            let (r, body) = get(&f, Method::GET, &headers(&[(header::RANGE, range)])).await;
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(body, f.data[first..=last], "{range}");
            let expected_range = format!("bytes {first}-{last}/10000");
            assert_eq!(header_of(&r, header::CONTENT_RANGE), Some(expected_range.as_str()), "{range}");
            let expected_len = (last - first + 1).to_string();
            assert_eq!(header_of(&r, header::CONTENT_LENGTH), Some(expected_len.as_str()), "{range}");
            assert_eq!(header_of(&r, header::ETAG), Some(ETAG));
        }
    }

    #[tokio::test]
    async fn unsatisfiable_ranges() {
        let f = fixture(1000);
        for range in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-5001", "BYTES=5000-", "bytes=-0"] {
            let (r, body) = get(&f, Method::GET, &headers(&[(header::RANGE, range)])).await;
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(header_of(&r, header::CONTENT_RANGE), Some("bytes */1000"), "{range}");
            assert_eq!(header_of(&r, header::CONTENT_LENGTH), None, "{range}: hyper sets the text's length");
            assert!(!body.is_empty());
        }
        let empty = fixture(0);
        let (r, _) = get(&empty, Method::GET, &headers(&[(header::RANGE, "bytes=0-")])).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header_of(&r, header::CONTENT_RANGE), Some("bytes */0"));
        let (r, body) = get(&empty, Method::GET, &headers(&[(header::RANGE, "bytes=-5")])).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(header_of(&r, header::CONTENT_LENGTH), Some("0"));
    }

    #[tokio::test]
    async fn invalid_or_multiple_ranges_give_the_whole_file() {
        let f = fixture(1000);
        for range in [
            "bytes=0-9,20-29",
            "bytes=0-9, 20-",
            "bytes=9-0",
            "bytes=abc",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=-+5",
            "bytes 0-9",
            "items=0-9",
            "bytes=99999999999999999999999-",
            "",
        ] {
            let (r, body) = get(&f, Method::GET, &headers(&[(header::RANGE, range)])).await;
            assert_eq!(r.status(), StatusCode::OK, "{range:?}");
            assert_eq!(body, f.data, "{range:?}");
            assert_eq!(header_of(&r, header::CONTENT_LENGTH), Some("1000"));
        }
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_bytes(b"bytes=0-9\xff").unwrap());
        let (r, _) = get(&f, Method::GET, &h).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn if_range() {
        let f = fixture(1000);
        let (r, body) = get(&f, Method::GET, &headers(&[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, ETAG)])).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, f.data[..10]);
        for other in ["\"v0-old\"", "W/\"v1-abc\"", "Tue, 15 Nov 1994 08:12:31 GMT"] {
            let (r, body) =
                get(&f, Method::GET, &headers(&[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, other)])).await;
            assert_eq!(r.status(), StatusCode::OK, "{other}");
            assert_eq!(body, f.data);
        }
        // Without an ETag, If-Range can never match.
        let file = File::open(&f.path).await.unwrap();
        let h = headers(&[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, ETAG)]);
        let r = serve_file(file, 1000, &Method::GET, &h, "application/octet-stream", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, header::ETAG), None);
    }

    #[tokio::test]
    async fn a_large_file_streams_in_pieces() {
        let f = fixture(1 << 20);
        let file = File::open(&f.path).await.unwrap();
        let resp = serve_file(file, 1 << 20, &Method::GET, &HeaderMap::new(), "application/octet-stream", None).await;
        assert_eq!(header_of(&resp, header::CONTENT_LENGTH), Some("1048576"));
        let mut body = resp.into_body();
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(1 << 20));
        let (mut got, mut pieces) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(!data.is_empty() && data.len() <= CHUNK);
            got.extend_from_slice(&data);
            pieces += 1;
        }
        assert!(pieces >= 16, "{pieces} pieces");
        assert_eq!(got, f.data);
        // A range in the middle, across pieces.
        let file = File::open(&f.path).await.unwrap();
        let h = headers(&[(header::RANGE, "bytes=100000-300000")]);
        let resp = serve_file(file, 1 << 20, &Method::GET, &h, "application/octet-stream", None).await;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body[..], f.data[100_000..=300_000]);
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_ends_in_an_error() {
        let f = fixture(1000);
        let file = File::open(&f.path).await.unwrap();
        let resp = serve_file(file, 5000, &Method::GET, &HeaderMap::new(), "application/octet-stream", None).await;
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let err = loop {
            match body.frame().await {
                Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("the body should end in an error"),
            }
        };
        let err = err.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(got, f.data, "only the file's bytes, never others");
        assert!(body.frame().await.is_none());
    }

    /// Serves `handler` on a local port for one connection.
    async fn one_connection<H, F>(handler: H) -> std::net::SocketAddr
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Resp> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(move |req| {
                let fut = handler(req);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let _ = crate::http::http1_builder(Duration::from_secs(5), 8192)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await.unwrap().unwrap();
        out
    }

    fn split_response(raw: &[u8]) -> (String, &[u8]) {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (String::from_utf8(raw[..end].to_vec()).unwrap().to_ascii_lowercase(), &raw[end..])
    }

    #[tokio::test]
    async fn on_the_wire_never_chunked() {
        let f = fixture(300_000);
        for (request, status, expected) in [
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "200", &f.data[..]),
            ("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=70000-\r\nConnection: close\r\n\r\n", "206", &f.data[70_000..]),
            ("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "200", &[][..]),
        ] {
            let path = f.path.clone();
            let addr = one_connection(move |req| {
                let path = path.clone();
                async move {
                    let file = File::open(&path).await.unwrap();
                    serve_file(file, 300_000, req.method(), req.headers(), "application/octet-stream", None).await
                }
            })
            .await;
            let raw = exchange(addr, request.as_bytes()).await;
            let (head, body) = split_response(&raw);
            assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
            assert!(!head.contains("transfer-encoding"), "{head}");
            let len = if status == "206" { 230_000 } else { 300_000 };
            assert!(head.contains(&format!("content-length: {len}\r\n")), "{head}");
            assert_eq!(body, expected);
        }
    }

    /// A body that sends its frames, then ends, fails or stalls.
    struct Scripted {
        frames: VecDeque<Bytes>,
        then: Then,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Then {
        End,
        Fail,
        Stall,
    }

    impl hyper::body::Body for Scripted {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            let this = self.get_mut();
            match this.frames.pop_front() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => match this.then {
                    Then::End => Poll::Ready(None),
                    Then::Fail => Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))),
                    Then::Stall => Poll::Pending,
                },
            }
        }
    }

    fn scripted(data: &[u8], piece: usize, then: Then) -> Scripted {
        Scripted { frames: data.chunks(piece).map(Bytes::copy_from_slice).collect(), then }
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    }

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn upload_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(200_000);
        let up = receive_upload(scripted(&data, 7_000, Then::End), dir.path(), 200_000, IDLE).await.unwrap();
        assert_eq!(up.size, 200_000);
        assert_eq!(up.sha256_hex, sha256_hex(&data));
        assert_eq!(up.head, data[..HEAD_BYTES]);
        assert_eq!(std::fs::read(&up.temp_path).unwrap(), data);
        assert_eq!(up.temp_path.parent(), Some(dir.path()));
        assert!(up.temp_path.file_name().unwrap().to_str().unwrap().starts_with(".upload-"));
        let mode = std::fs::metadata(&up.temp_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // Small and empty bodies, in one frame.
        let up = receive_upload(Full::new(Bytes::from_static(b"abc")), dir.path(), 10, IDLE).await.unwrap();
        assert_eq!(up.sha256_hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(up.head, b"abc");
        let up = receive_upload(Full::new(Bytes::new()), dir.path(), 10, IDLE).await.unwrap();
        assert_eq!((up.size, up.head.len()), (0, 0));
        assert_eq!(up.sha256_hex, sha256_hex(b""));
        assert_eq!(files_in(dir.path()).len(), 3);
    }

    #[tokio::test]
    async fn upload_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        // Announced: refused before anything is written.
        let e = receive_upload(Full::new(Bytes::from(pattern(101))), dir.path(), 100, IDLE).await.unwrap_err();
        assert!(matches!(e, UploadError::TooLarge { limit: 100 }), "{e}");
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Found out while streaming: the temporary file is removed.
        let e = receive_upload(scripted(&pattern(10_000), 1000, Then::End), dir.path(), 9_999, IDLE).await.unwrap_err();
        assert!(matches!(e, UploadError::TooLarge { .. }), "{e}");
        assert!(files_in(dir.path()).is_empty());
        // Exactly at the limit is fine.
        let up = receive_upload(scripted(&pattern(10_000), 1000, Then::End), dir.path(), 10_000, IDLE).await.unwrap();
        assert_eq!(up.size, 10_000);
    }

    #[tokio::test]
    async fn upload_stalled_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        let e =
            receive_upload(scripted(&pattern(5000), 1000, Then::Stall), dir.path(), 1 << 20, Duration::from_millis(50))
                .await
                .unwrap_err();
        assert!(matches!(e, UploadError::Stalled(_)), "{e}");
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        let e =
            receive_upload(scripted(&pattern(5000), 1000, Then::Fail), dir.path(), 1 << 20, IDLE).await.unwrap_err();
        assert!(matches!(e, UploadError::Broken(_)), "{e}");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(files_in(dir.path()).is_empty());
        // Our own I/O: a directory that does not exist.
        let e = receive_upload(Full::new(Bytes::from_static(b"x")), &dir.path().join("missing"), 10, IDLE)
            .await
            .unwrap_err();
        assert!(matches!(e, UploadError::Io(_)), "{e}");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        for e in [&e, &UploadError::TooLarge { limit: 1 }, &UploadError::Stalled(IDLE)] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[tokio::test]
    async fn a_dropped_upload_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let fut = receive_upload(scripted(&pattern(5000), 1000, Then::Stall), dir.path(), 1 << 20, IDLE);
        assert!(tokio::time::timeout(Duration::from_millis(100), fut).await.is_err());
        assert!(files_in(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn upload_from_a_real_request() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let addr = one_connection(move |req: Request<Incoming>| {
            let target = target.clone();
            let tx = tx.lock().unwrap().take();
            async move {
                let result = receive_upload(req.into_body(), &target, 1 << 20, IDLE).await;
                let status = result.as_ref().map_or_else(UploadError::status, |_| StatusCode::CREATED);
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
                text(status, "")
            }
        })
        .await;
        let data = pattern(300_000);
        let mut request =
            format!("PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len())
                .into_bytes();
        request.extend_from_slice(&data);
        let raw = exchange(addr, &request).await;
        let (head, _) = split_response(&raw);
        assert!(head.starts_with("http/1.1 201"), "{head}");
        let up = rx.await.unwrap().unwrap();
        assert_eq!(up.size, 300_000);
        assert_eq!(up.sha256_hex, sha256_hex(&data));
        assert_eq!(std::fs::read(&up.temp_path).unwrap(), data);
    }
}
