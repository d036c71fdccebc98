//! The dashboard: the fleet at a glance ([`dls_store::FleetSummary`], one store read) —
//! devices by type, software version and security mode (bar charts drawn as SVG here, on
//! the server), contacts and security refusals in the last 24 hours, open and failed jobs,
//! bootstraps pending.

use askama::Template;
use dls_engine::UnixTime;
use dls_store::FleetSummary;
use hyper::StatusCode;

use super::layout::Nav;
use super::{PageError, render};
use crate::admin::AdminState;
use crate::admin::api::blocking;
use crate::admin::auth::Caller;
use crate::http::Resp;

/// One bar of a chart: its label, count, and where it is drawn.
struct Bar {
    label: String,
    count: u64,
    y: u64,
    width: u64,
}

/// A horizontal bar chart.
struct Chart {
    title: &'static str,
    height: u64,
    bars: Vec<Bar>,
}

/// The widest bar, in the SVG's units (the labels take the 220 before it).
const BAR_SPACE: u64 = 360;

fn chart(title: &'static str, groups: &[(String, u64)], unknown: &str) -> Chart {
    let max = groups.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let bars = groups
        .iter()
        .zip(0_u64..)
        .map(|((label, count), i)| Bar {
            label: if label.is_empty() { unknown.to_owned() } else { label.chars().take(32).collect() },
            count: *count,
            y: i * 24,
            width: (count.saturating_mul(BAR_SPACE) / max).max(1),
        })
        .collect::<Vec<_>>();
    Chart { title, height: u64::try_from(bars.len()).unwrap_or(0) * 24 + 4, bars }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    fleet: FleetSummary,
    charts: Vec<Chart>,
}

/// `GET /`
pub(super) async fn show(state: &AdminState, caller: &Caller) -> Result<Resp, PageError> {
    let since = UnixTime(state.clock.now().0.saturating_sub(24 * 3600));
    let fleet = blocking(state, "fleet_summary", move |s| s.fleet_summary(since)).await?;
    let charts = vec![
        chart("Devices by type", &fleet.by_type, "(not reported yet)"),
        chart("Devices by software version", &fleet.by_version, "(not reported yet)"),
        chart("Devices by security mode", &fleet.by_mode, "(none)"),
    ];
    Ok(render(StatusCode::OK, &DashboardPage { nav: Nav::new(caller, "/"), fleet, charts }))
}
