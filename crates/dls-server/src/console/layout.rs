//! What every page's layout shows ([`Nav`]: the navigation the role may use, who is logged
//! in, the session's CSRF token), and times as pages write them.

use dls_accounts::{Need, Role};
use dls_engine::UnixTime;

use crate::admin::auth::Caller;

/// A link of the navigation.
pub(crate) struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// The layout's part of every page (`templates/layout.html`).
pub(crate) struct Nav {
    pub(crate) account: String,
    pub(crate) role: Role,
    /// The session's CSRF token: every form's `csrf` field, htmx's `X-CSRF-Token` header.
    pub(crate) csrf: String,
    /// The pages the role may see.
    pub(crate) items: Vec<NavItem>,
}

/// The pages of the navigation: path, label, the role they take. A page added to the
/// console is added here too (and to `route`'s table).
const PAGES: &[(&str, &str, Need)] = &[
    ("/", "Dashboard", Need::Read),
    ("/devices", "Devices", Need::Read),
    ("/profiles", "Profiles", Need::Read),
    ("/users", "Users", Need::Read),
    ("/jobs", "Jobs", Need::Read),
    ("/files", "Files", Need::Read),
    ("/credentials", "Credentials", Need::Read),
    ("/audit", "Audit", Need::Read),
    ("/accounts", "Accounts", Need::Administer),
    ("/settings", "Settings", Need::Read),
];

impl Nav {
    /// The navigation of `caller`, with `current` (a path of [`PAGES`]) marked.
    pub(crate) fn new(caller: &Caller, current: &str) -> Self {
        let items = PAGES
            .iter()
            .filter(|(_, _, need)| caller.role.may(*need))
            .map(|&(href, label, _)| NavItem { href, label, current: href == current })
            .collect();
        Self { account: caller.account.clone(), role: caller.role, csrf: caller.csrf().unwrap_or_default(), items }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
fn days(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as RFC 3339 in UTC (`2024-05-01T12:00:00Z`): a `<time datetime>`, shown in the
/// browser's zone by the console's script.
pub(crate) fn iso(t: UnixTime) -> String {
    let secs = i64::try_from(t.0).unwrap_or(i64::MAX);
    let (d, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil(d);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

/// The text of a `<time>` before the script shows it in the browser's zone (and without
/// scripts): UTC, to the minute.
pub(crate) fn text(t: UnixTime) -> String {
    let full = iso(t);
    format!("{} UTC", full.get(..16).unwrap_or(&full).replace('T', " "))
}

/// `YYYY-MM-DDTHH:MM` (a `datetime-local` field) in a zone `tz_minutes` behind UTC (as
/// JavaScript's `getTimezoneOffset` says: 0 for UTC) as a time; `None` if it is not one.
pub(crate) fn parse_local(text: &str, tz_minutes: i64) -> Option<UnixTime> {
    let (date, clock) = text.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (d.next()?.parse::<i64>().ok()?, d.next()?.parse::<u32>().ok()?, d.next()?.parse::<u32>().ok()?);
    let mut c = clock.splitn(3, ':');
    let (h, min) = (c.next()?.parse::<i64>().ok()?, c.next()?.parse::<i64>().ok()?);
    let sec = c.next().map_or(Some(0), |s| s.parse::<i64>().ok())?;
    let valid = (1970..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..24).contains(&h)
        && (0..60).contains(&min)
        && (0..60).contains(&sec)
        && (-1440..=1440).contains(&tz_minutes);
    if !valid || civil(days(y, m, day)) != (y, m, day) {
        return None;
    }
    let secs = days(y, m, day) * 86_400 + h * 3600 + min * 60 + sec + tz_minutes * 60;
    u64::try_from(secs).ok().map(UnixTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc_and_in_the_browsers_zone() {
        assert_eq!(iso(UnixTime(0)), "1970-01-01T00:00:00Z");
        assert_eq!(iso(UnixTime(1_700_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(iso(UnixTime(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(text(UnixTime(1_700_000_000)), "2023-11-14 22:13 UTC");
        assert_eq!(parse_local("2023-11-14T22:13", 0), Some(UnixTime(1_699_999_980)));
        // Berlin in winter: UTC+1, getTimezoneOffset() = -60.
        assert_eq!(parse_local("2023-11-14T23:13", -60), Some(UnixTime(1_699_999_980)));
        assert_eq!(parse_local("2023-11-14T22:13:20", 0), Some(UnixTime(1_700_000_000)));
        for bad in [
            "",
            "2023-11-14",
            "2023-02-30T00:00",
            "2023-13-01T00:00",
            "1969-12-31T23:59",
            "x-1-1T0:0",
            "2023-11-14T24:00",
        ] {
            assert_eq!(parse_local(bad, 0), None, "{bad}");
        }
        assert_eq!(parse_local("2023-11-14T22:13", 5000), None);
        for d in [-1000_i64, 0, 59, 60, 365, 10_957, 19_675, 2_932_896] {
            let (y, m, day) = civil(d);
            assert_eq!(days(y, m, day), d);
        }
    }
}
