//! What the CLI sends to the admin API: URL components percent-encoded
//! (`percent-encoding`), and `dls file add`'s upload body, a file read through a counter
//! that drives a progress bar (`indicatif`: bytes, rate and ETA on a terminal, nothing
//! otherwise).

use std::io::{self, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`) is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `s` percent-encoded for a path segment or a query value.
pub(crate) fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The next `remaining` bytes of a reader (a file whose size was announced), each byte
/// read counted on a progress bar; a reader that ends early is an error.
#[derive(Debug)]
pub(crate) struct Upload<R> {
    inner: R,
    remaining: u64,
    bar: ProgressBar,
}

impl<R: Read> Upload<R> {
    /// `len` bytes of `inner`, with a progress bar on standard error when that is a terminal.
    pub(crate) fn new(inner: R, len: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}") {
            bar.set_style(style);
        }
        Self { inner, remaining: len, bar }
    }
}

impl<R: Read> Read for Upload<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            if self.remaining == 0 {
                self.bar.finish_and_clear();
            }
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                self.bar.abandon();
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than announced"));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.bar.abandon();
                return Err(e);
            }
        };
        self.remaining -= n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_encoded_but_the_unreserved_characters() {
        assert_eq!(percent_encode("a b/ü:@%&=+~._-"), "a%20b%2F%C3%BC%3A%40%25%26%3D%2B~._-");
    }

    #[test]
    fn an_upload_reads_exactly_the_announced_length_and_a_short_file_is_an_error() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let mut body = Upload::new(&data[..], data.len() as u64);
        body.read_to_end(&mut got).expect("whole");
        assert_eq!(got, data);
        assert_eq!(body.bar.position(), data.len() as u64, "every byte counted");
        // A file that grew since its size was taken: only the announced bytes.
        let mut got = Vec::new();
        Upload::new(&data[..], 1000).read_to_end(&mut got).expect("prefix");
        assert_eq!(got, &data[..1000]);
        let err = Upload::new(&data[..], data.len() as u64 + 1).read_to_end(&mut Vec::new()).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
