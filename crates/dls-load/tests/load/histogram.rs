//! Histograms: exact percentiles by nearest rank.

use std::time::Duration;

use dls_load::Histogram;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn empty_histogram_has_no_percentiles() {
    let mut h = Histogram::new();
    assert!(h.is_empty());
    assert_eq!(h.percentile(50.0), None);
    assert_eq!((h.max(), h.min(), h.mean()), (None, None, None));
}

#[test]
fn percentiles_by_nearest_rank() {
    let mut h = Histogram::new();
    // 1..=100 ms, recorded out of order.
    for n in (1..=100).rev() {
        h.record(ms(n));
    }
    assert_eq!(h.len(), 100);
    assert_eq!(h.percentile(50.0), Some(ms(50)));
    assert_eq!(h.percentile(90.0), Some(ms(90)));
    assert_eq!(h.percentile(99.0), Some(ms(99)));
    assert_eq!(h.percentile(100.0), Some(ms(100)));
    assert_eq!(h.percentile(0.0), Some(ms(1)));
    assert_eq!(h.max(), Some(ms(100)));
    assert_eq!(h.min(), Some(ms(1)));
    assert_eq!(h.mean(), Some(Duration::from_micros(50_500)));
}

#[test]
fn few_samples_and_ties() {
    let mut h = Histogram::new();
    h.record(ms(7));
    assert_eq!((h.percentile(1.0), h.percentile(50.0), h.percentile(99.0)), (Some(ms(7)), Some(ms(7)), Some(ms(7))));
    let mut h = Histogram::new();
    for n in [3, 1, 2, 2] {
        h.record(ms(n));
    }
    // Ranks: p50 → 2nd of 4, p90 → 4th, p25 → 1st.
    assert_eq!((h.percentile(25.0), h.percentile(50.0), h.percentile(90.0)), (Some(ms(1)), Some(ms(2)), Some(ms(3))));
}

#[test]
fn merged_histograms_are_sorted_again() {
    let mut a = Histogram::new();
    let mut b = Histogram::new();
    for n in 1..=10 {
        a.record(ms(n * 2));
        b.record(ms(n * 2 - 1));
    }
    assert_eq!(a.percentile(50.0), Some(ms(10)));
    a.merge(&b);
    assert_eq!(a.len(), 20);
    assert_eq!(a.percentile(50.0), Some(ms(10)));
    assert_eq!(a.percentile(5.0), Some(ms(1)));
    assert_eq!(a.percentile(100.0), Some(ms(20)));
    let mut c = Histogram::new();
    c.merge(&Histogram::new());
    assert_eq!(c.percentile(50.0), None);
}

#[test]
fn sub_millisecond_samples_are_kept() {
    let mut h = Histogram::new();
    h.record(Duration::from_micros(250));
    h.record(Duration::from_micros(750));
    assert_eq!(h.percentile(50.0), Some(Duration::from_micros(250)));
    assert_eq!(h.max(), Some(Duration::from_micros(750)));
}
