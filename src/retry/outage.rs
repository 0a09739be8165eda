//! [`Outage`]: which failures of a repeating attempt are worth a log line, so that an outage of
//! hours does not fill a journal and its end is still said.

use std::time::{Duration, Instant};

/// The longest a failing attempt goes unmentioned in the log: past it, the next failure is
/// logged whatever its number.
pub const OUTAGE_REMINDER: Duration = Duration::from_secs(600);

/// Tracks one repeating attempt (a delivery to a downstream, a connection to a broker) and says
/// which of its failures to log: the first, then the 2nd, 4th, 8th… (a falling rate), and at
/// least one every [`OUTAGE_REMINDER`] (10 minutes) while it lasts; and, after failures, the
/// success that ends them. Time is passed in, so the rule is testable without waiting.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mllp::Outage;
///
/// let mut outage = Outage::new();
/// let t0 = Instant::now();
/// let logged: Vec<u64> = (0..20u64)
///     .filter_map(|i| outage.failed(t0 + Duration::from_secs(i)))
///     .map(|f| f.failures)
///     .collect();
/// assert_eq!(logged, [1, 2, 4, 8, 16]);
/// let end = outage.succeeded(t0 + Duration::from_secs(30)).unwrap();
/// assert_eq!((end.failures, end.lasted), (20, Duration::from_secs(30)));
/// assert!(outage.succeeded(t0 + Duration::from_secs(31)).is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Outage {
    /// Failures since the last success.
    failures: u64,
    /// When the first of them happened.
    since: Option<Instant>,
    /// When the last line was logged.
    logged_at: Option<Instant>,
    /// Failures not logged since that line.
    unlogged: u64,
}

/// A failure worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageFailure {
    /// Failures in a row, this one included.
    pub failures: u64,
    /// Failures not logged since the previous line (say "N more since").
    pub not_logged: u64,
    /// How long the failures have lasted.
    pub lasted: Duration,
}

/// The success that ended failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageEnd {
    /// How many failures it ended.
    pub failures: u64,
    /// From the first failure to this success.
    pub lasted: Duration,
}

impl Outage {
    /// No failure yet.
    pub fn new() -> Outage {
        Outage::default()
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// An attempt failed at `now`: `Some` when this failure should be logged.
    pub fn failed(&mut self, now: Instant) -> Option<OutageFailure> {
        self.failures += 1;
        let since = *self.since.get_or_insert(now);
        let due = self.failures.is_power_of_two()
            || self
                .logged_at
                .is_some_and(|at| now.saturating_duration_since(at) >= OUTAGE_REMINDER);
        if !due {
            self.unlogged += 1;
            return None;
        }
        let line = OutageFailure {
            failures: self.failures,
            not_logged: self.unlogged,
            lasted: now.saturating_duration_since(since),
        };
        self.logged_at = Some(now);
        self.unlogged = 0;
        Some(line)
    }

    /// An attempt succeeded at `now`: `Some` when it ends failures (log the recovery).
    pub fn succeeded(&mut self, now: Instant) -> Option<OutageEnd> {
        let since = self.since?;
        let end = OutageEnd {
            failures: self.failures,
            lasted: now.saturating_duration_since(since),
        };
        *self = Outage::default();
        Some(end)
    }
}

impl std::fmt::Display for OutageFailure {
    /// `failure 8 in 42.0 s (3 more not logged)`: a suffix for the log line of a failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failure {} in {:.1} s",
            self.failures,
            self.lasted.as_secs_f64()
        )?;
        if self.not_logged > 0 {
            write!(f, " ({} more not logged)", self.not_logged)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_of_hours_logs_a_few_lines_then_its_end() {
        let mut outage = Outage::new();
        let t0 = Instant::now();
        // A retry every 30 s for 3 hours: 360 failures.
        let logged: Vec<OutageFailure> = (0..360u64)
            .filter_map(|i| outage.failed(t0 + Duration::from_secs(30 * i)))
            .collect();
        // 1, 2, 4, ... 256 (9 lines), plus a reminder whenever 10 minutes passed without one.
        assert!(logged.len() < 30, "{} lines", logged.len());
        assert_eq!(logged[0].failures, 1);
        for pair in logged.windows(2) {
            let gap = pair[1].lasted - pair[0].lasted;
            assert!(gap <= OUTAGE_REMINDER, "{pair:?}");
        }
        let total: u64 = logged.iter().map(|f| 1 + f.not_logged).sum();
        assert!(total <= 360);
        let end = outage
            .succeeded(t0 + Duration::from_secs(3 * 3600))
            .unwrap();
        assert_eq!(end.failures, 360);
        assert_eq!(end.lasted, Duration::from_secs(3 * 3600));
        // A new outage starts from one again.
        assert_eq!(
            outage
                .failed(t0 + Duration::from_secs(4 * 3600))
                .unwrap()
                .failures,
            1
        );
    }

    #[test]
    fn the_line_says_what_was_not_logged() {
        let mut outage = Outage::new();
        let t0 = Instant::now();
        for i in 0..3 {
            outage.failed(t0 + Duration::from_secs(i));
        }
        let fourth = outage.failed(t0 + Duration::from_secs(3)).unwrap();
        assert_eq!(fourth.to_string(), "failure 4 in 3.0 s (1 more not logged)");
        assert!(Outage::new().succeeded(t0).is_none());
    }
}
