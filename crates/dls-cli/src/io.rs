//! Reading inputs named on the command line.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// The most `dls` reads from one input file or stdin (larger inputs are malformed).
pub(crate) const MAX_INPUT: u64 = 16 << 20;

/// Reads `path` (or stdin for `-` or none), refusing more than [`MAX_INPUT`] bytes.
pub(crate) fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match path {
        None => read_limited(std::io::stdin().lock(), &mut buf).context("reading stdin")?,
        Some(p) if p.as_os_str() == "-" => read_limited(std::io::stdin().lock(), &mut buf).context("reading stdin")?,
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            read_limited(f, &mut buf).with_context(|| format!("reading {}", p.display()))?;
        }
    }
    if buf.len() as u64 > MAX_INPUT {
        return Err(crate::exit::malformed(format!("input is larger than {MAX_INPUT} bytes")));
    }
    Ok(buf)
}

fn read_limited(r: impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    r.take(MAX_INPUT + 1).read_to_end(buf).map(drop)
}
