//! The report of `dls phone load`: the summary's lines, or one JSON object.

use std::time::Duration;

use dls_load::{self as load, LoadMode, LoadReport};

fn ms(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| serde_json::json!((d.as_secs_f64() * 1e6).round() / 1e3))
}

/// p50, p90, p99 and max of `h`, in milliseconds.
fn percentiles(h: &mut load::Histogram) -> serde_json::Value {
    serde_json::json!({
        "p50": ms(h.percentile(50.0)),
        "p90": ms(h.percentile(90.0)),
        "p99": ms(h.percentile(99.0)),
        "max": ms(h.max()),
    })
}

pub(super) fn report_json(r: &mut LoadReport) -> serde_json::Value {
    let mut v = serde_json::json!({
        "phones": r.phones,
        "interactions": r.interactions,
        "failures": r.failures,
        "failures_by_kind": r.failures_by_kind,
        "interactions_per_second": (r.interactions_per_second() * 10.0).round() / 10.0,
        "latency_ms": {
            "p50": ms(r.latency.percentile(50.0)),
            "p90": ms(r.latency.percentile(90.0)),
            "p99": ms(r.latency.percentile(99.0)),
            "max": ms(r.latency.max()),
        },
        "mode": match r.mode {
            LoadMode::Phones => "phones",
            LoadMode::Baseline => "baseline",
            LoadMode::Bootstrap => "bootstrap",
        },
        "concurrency": r.concurrency,
        "new_connection_per_interaction": r.new_connection_per_interaction,
        "seconds": (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "connections": r.connections,
        "exchanges": r.exchanges,
    });
    if let Some(obj) = v.as_object_mut() {
        // One count (the usual case): a number; several: how many phones saw each.
        match r.pbkdf2_iterations.len() {
            0 => {}
            1 => {
                let n = r.pbkdf2_iterations.keys().next().copied().unwrap_or_default();
                obj.insert("pbkdf2_iterations".into(), n.into());
            }
            _ => {
                let by: serde_json::Map<String, serde_json::Value> =
                    r.pbkdf2_iterations.iter().map(|(k, n)| (k.to_string(), (*n).into())).collect();
                obj.insert("pbkdf2_iterations".into(), by.into());
            }
        }
        if r.mobility {
            obj.insert(
                "mobility".into(),
                serde_json::json!({
                    "logons": r.logon.len(),
                    "logoffs": r.logoff.len(),
                    "logon_ms": percentiles(&mut r.logon),
                    "logoff_ms": percentiles(&mut r.logoff),
                }),
            );
        }
        if !r.pin_entry.is_empty() {
            obj.insert(
                "pin_entry_ms".into(),
                serde_json::json!({
                    "p50": ms(r.pin_entry.percentile(50.0)),
                    "p90": ms(r.pin_entry.percentile(90.0)),
                    "p99": ms(r.pin_entry.percentile(99.0)),
                    "max": ms(r.pin_entry.max()),
                }),
            );
        }
    }
    v
}

pub(super) fn report_text(r: &mut LoadReport) -> String {
    let f = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
    let mode = match r.mode {
        LoadMode::Phones => "start-up interactions",
        LoadMode::Baseline => "baseline interactions (fixed requests)",
        LoadMode::Bootstrap => "secure-mode bootstraps (default port, PIN, secure port: one interaction each)",
    };
    let conns = if r.new_connection_per_interaction { "a new connection each" } else { "keep-alive connections" };
    let mut s = format!(
        "{} phones, concurrency {}, {mode}, {conns}\n\
         {} interactions, {} failed, in {:.2} s: {:.1} interactions/s\n\
         latency ms: p50 {}  p90 {}  p99 {}  max {}\n\
         {} connections opened, {} requests\n",
        r.phones,
        r.concurrency,
        r.interactions,
        r.failures,
        r.elapsed.as_secs_f64(),
        r.interactions_per_second(),
        f(r.latency.percentile(50.0)),
        f(r.latency.percentile(90.0)),
        f(r.latency.percentile(99.0)),
        f(r.latency.max()),
        r.connections,
        r.exchanges,
    );
    if !r.pbkdf2_iterations.is_empty() {
        let counts: Vec<String> = r.pbkdf2_iterations.keys().map(u32::to_string).collect();
        s.push_str(&format!(
            "PBKDF2 iterations of secure-mode-data: {}\n\
             PIN entry on the phone (PBKDF2) ms: p50 {}  p90 {}  p99 {}  max {}\n",
            counts.join(", "),
            f(r.pin_entry.percentile(50.0)),
            f(r.pin_entry.percentile(90.0)),
            f(r.pin_entry.percentile(99.0)),
            f(r.pin_entry.max()),
        ));
    }
    if r.mobility {
        for (what, h) in [("logon", &mut r.logon), ("logoff", &mut r.logoff)] {
            s.push_str(&format!(
                "mobility {what}s: {}, ms: p50 {}  p90 {}  p99 {}  max {}\n",
                h.len(),
                f(h.percentile(50.0)),
                f(h.percentile(90.0)),
                f(h.percentile(99.0)),
                f(h.max()),
            ));
        }
    }
    if !r.failures_by_kind.is_empty() {
        let kinds: Vec<String> = r.failures_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        s.push_str(&format!("failures by kind: {}\n", kinds.join(", ")));
    }
    s
}
