//! A histogram of durations made of atomics, for the hot path: observing is a bucket search
//! over a dozen constants and three relaxed atomic additions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the buckets, in seconds: from 1 ms (a local disk's flush) to 30 s (a
/// store wait or an ACK timeout). The last bucket, `+Inf`, takes the rest.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The same bounds in microseconds, compared with on the hot path (no float work).
const BOUNDS_US: [u64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// Durations counted in the buckets of [`DURATION_BUCKETS`], with their count and sum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), the last for `+Inf`.
    buckets: [AtomicU64; 15],
    /// The sum of the observations in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; 15];
        let mut total = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            cumulative[i] = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// What a [`Histogram`] holds, in the Prometheus form.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// Observations at most each bound of [`DURATION_BUCKETS`] (cumulative), the last for
    /// `+Inf`: the count of all observations.
    pub cumulative: [u64; 15],
    /// The sum of the observations in seconds.
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.cumulative[14]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(1_000));
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[13], 2);
        assert_eq!(s.count(), 3);
        assert!((s.sum_seconds - 60.002001).abs() < 1e-9);
        for (b, us) in DURATION_BUCKETS.iter().zip(BOUNDS_US) {
            assert_eq!((b * 1e6).round() as u64, us);
        }
    }
}
