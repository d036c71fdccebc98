//! Interaction durations, kept exactly.

use std::time::Duration;

/// Durations, kept exactly (in microseconds) so that percentiles are exact; a few hundred
/// thousand samples take a few MB.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    micros: Vec<u64>,
    sorted: bool,
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.micros.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        self.micros.extend_from_slice(&other.micros);
        self.sorted = self.micros.is_empty();
    }

    /// How many samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether there is no sample.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.micros.sort_unstable();
            self.sorted = true;
        }
    }

    /// The `q`-th percentile (`0 < q <= 100`) by nearest rank: the smallest sample that at
    /// least `q` % of the samples are not greater than. `None` without samples.
    pub fn percentile(&mut self, q: f64) -> Option<Duration> {
        if self.micros.is_empty() {
            return None;
        }
        self.sort();
        let n = self.micros.len();
        // Nearest rank: ceil(q / 100 * n), within 1..=n. The float is at most n, exact
        // enough for any count a run reaches.
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q.clamp(0.0, 100.0) / 100.0 * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(self.micros[rank - 1]))
    }

    /// The largest sample.
    #[must_use]
    pub fn max(&self) -> Option<Duration> {
        self.micros.iter().max().map(|m| Duration::from_micros(*m))
    }

    /// The smallest sample.
    #[must_use]
    pub fn min(&self) -> Option<Duration> {
        self.micros.iter().min().map(|m| Duration::from_micros(*m))
    }

    /// The mean.
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let n = u64::try_from(self.micros.len()).ok().filter(|n| *n > 0)?;
        let sum: u128 = self.micros.iter().map(|m| u128::from(*m)).sum();
        Some(Duration::from_micros(u64::try_from(sum / u128::from(n)).unwrap_or(u64::MAX)))
    }
}
