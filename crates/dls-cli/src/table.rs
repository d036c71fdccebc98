//! Listings for people: aligned columns (`comfy-table`), times in the local time zone as
//! RFC 3339, and text that phones reported made safe for a terminal.
//!
//! What a phone reports (its device type, number, software version) is untrusted: a value
//! holding terminal control sequences must not reach an administrator's terminal as they
//! are, so every cell's control characters are shown escaped (`\u{1b}`).

use chrono::{DateTime, Local, SecondsFormat};
use comfy_table::{ContentArrangement, Table, presets};

/// A table with `header`, plain columns separated by two spaces, no borders (so that
/// scripts can still cut it by whitespace).
pub(crate) fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| cell(h)));
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    t
}

/// `text` for a cell: control characters escaped, so that nothing a phone reported can
/// drive the terminal.
pub(crate) fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// Unix seconds as local RFC 3339 (`2026-12-02T17:45:19+01:00`); `-` for none.
pub(crate) fn local_time(unix: Option<u64>) -> String {
    unix.and_then(|s| i64::try_from(s).ok())
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map_or_else(|| "-".to_owned(), |t| t.with_timezone(&Local).to_rfc3339_opts(SecondsFormat::Secs, false))
}

/// Prints `table`, each line without trailing spaces.
pub(crate) fn print(table: &Table) {
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(cell("OpenStage 60"), "OpenStage 60");
        assert_eq!(cell("x\u{1b}[2Jy\n"), "x\\u{1b}[2Jy\\u{a}");
    }

    #[test]
    fn times_are_rfc_3339_in_the_local_zone() {
        assert_eq!(local_time(None), "-");
        let shown = local_time(Some(1_796_226_271));
        let parsed = DateTime::parse_from_rfc3339(&shown).expect("RFC 3339");
        assert_eq!(parsed.timestamp(), 1_796_226_271);
    }

    #[test]
    fn columns_line_up() {
        let mut t = new(&["ID", "NAME"]);
        t.add_row(vec!["1".to_owned(), cell("a\u{7}b")]);
        t.add_row(vec!["1234".to_owned(), "c".to_owned()]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_owned()).collect();
        assert_eq!(lines, ["ID    NAME", "1     a\\u{7}b", "1234  c"]);
    }
}
