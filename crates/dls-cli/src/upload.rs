//! What the CLI sends to the admin API: URL components percent-encoded
//! (`percent-encoding`), and `dls file add`'s upload body, a file streamed in pieces with a
//! progress bar (`indicatif`: bytes, rate and ETA on a terminal, nothing otherwise).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Bytes, Frame};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::fs::File;
use tokio::io::{AsyncRead, ReadBuf};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`) is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `s` percent-encoded for a path segment or a query value.
pub(crate) fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The largest piece read from the file at once.
const CHUNK: usize = 64 * 1024;

/// A body streaming the next `remaining` bytes of a file, with an exact size hint; a file
/// that ends early or cannot be read ends the body with an error.
#[derive(Debug)]
pub(crate) struct Upload {
    file: File,
    remaining: u64,
    /// The piece being read, kept while the read is pending.
    piece: Option<Vec<u8>>,
    bar: ProgressBar,
}

impl Upload {
    /// `len` bytes of `file`, with a progress bar on standard error when that is a terminal.
    pub(crate) fn new(file: File, len: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}") {
            bar.set_style(style);
        }
        Self { file, remaining: len, piece: None, bar }
    }
}

impl hyper::body::Body for Upload {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            this.bar.finish_and_clear();
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
                this.bar.abandon();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    this.remaining = 0;
                    this.bar.abandon();
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than announced",
                    ))));
                }
                piece.truncate(n);
                this.remaining -= n as u64;
                this.bar.inc(n as u64);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(piece)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn components_are_encoded_but_the_unreserved_characters() {
        assert_eq!(percent_encode("a b/ü:@%&=+~._-"), "a%20b%2F%C3%BC%3A%40%25%26%3D%2B~._-");
    }

    #[test]
    fn an_upload_streams_the_whole_file_and_a_short_file_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fw.img");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("file");
        rt.block_on(async {
            let f = File::open(&path).await.expect("open");
            let body = Upload::new(f, data.len() as u64);
            assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(data.len() as u64));
            let got = body.collect().await.expect("whole").to_bytes();
            assert_eq!(got.as_ref(), &data[..]);
            let f = File::open(&path).await.expect("open");
            let err = Upload::new(f, data.len() as u64 + 1).collect().await.expect_err("shorter than announced");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }
}
