//! How often and how patiently a [`Sender`](crate::Sender) tries again: [`RetryPolicy`] and the
//! exponential backoff with jitter it describes.

mod outage;

pub use outage::{Outage, OutageEnd, OutageFailure, OUTAGE_REMINDER};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// When and how often a [`Sender`](crate::Sender) tries to deliver a message again.
///
/// An *attempt* is one try at delivering the message: connecting if needed, writing the frame and
/// waiting for its acknowledgement. After a failed attempt the sender waits a backoff delay and
/// tries again, until an attempt succeeds or the policy is exhausted:
///
/// * the delay starts at [`initial_backoff`](Self::initial_backoff) and is multiplied by
///   [`factor`](Self::factor) after each attempt, up to [`max_backoff`](Self::max_backoff);
/// * [`jitter`](Self::jitter) subtracts a random part of each delay, so that many senders cut
///   off by the same listener restart do not all come back at the same instant;
/// * the policy is exhausted after [`max_attempts`](Self::max_attempts) attempts.
///
/// The time one `send` may take in all, attempts and delays included, is bounded by the
/// sender's total timeout ([`Timeouts::total`](crate::Timeouts::total)), not here: the sender
/// gives up as soon as the next attempt would start after it.
///
/// The defaults (250 ms doubling to 30 s, half of each delay random, 5 attempts)
/// ride out a listener restart of a few seconds (the five attempts span about 2 to 4 seconds)
/// and then report the failure, so the application decides what happens to the message. For a
/// sender that must keep trying for as long as it takes, set `max_attempts` to `None` (and
/// leave the total timeout unset).
///
/// ```
/// use std::time::Duration;
/// use mllp::RetryPolicy;
///
/// // Keep trying, waiting at most a minute between attempts.
/// let policy = RetryPolicy::default()
///     .max_attempts(None)
///     .max_backoff(Duration::from_secs(60));
/// assert_eq!(policy.initial_backoff, Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The delay before the second attempt. Default: 250 ms.
    pub initial_backoff: Duration,
    /// What each delay is multiplied by to give the next one (at least 1). Default: 2.
    pub factor: f64,
    /// The longest delay between two attempts. Default: 30 s.
    pub max_backoff: Duration,
    /// The fraction (0 to 1) of each delay that is random: a delay `d` becomes a random
    /// duration between `d × (1 − jitter)` and `d`. `0` gives fixed delays. Default: 0.5.
    pub jitter: f64,
    /// The most attempts made for one message, the first included (at least 1), or `None` for
    /// no limit. Default: `Some(5)`.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    /// 250 ms doubling to 30 s, jitter 0.5, 5 attempts.
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(250),
            factor: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: 0.5,
            max_attempts: Some(5),
        }
    }
}

impl RetryPolicy {
    /// A single attempt: any failure is reported at once.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        }
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn initial_backoff(mut self, delay: Duration) -> RetryPolicy {
        self.initial_backoff = delay;
        self
    }

    /// Sets [`factor`](Self::factor).
    pub fn factor(mut self, factor: f64) -> RetryPolicy {
        self.factor = factor;
        self
    }

    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn max_backoff(mut self, delay: Duration) -> RetryPolicy {
        self.max_backoff = delay;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn jitter(mut self, jitter: f64) -> RetryPolicy {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, attempts: Option<u32>) -> RetryPolicy {
        self.max_attempts = attempts;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] when `max_attempts` is zero, `factor` is below 1 or not finite,
    /// `jitter` is outside 0 to 1, or `max_backoff` is shorter than `initial_backoff`.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == Some(0) {
            return Err(Error::Config(
                "the retry policy must allow at least 1 attempt".into(),
            ));
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(Error::Config(format!(
                "the backoff factor must be a finite number of at least 1, not {}",
                self.factor
            )));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::Config(format!(
                "the backoff jitter must be between 0 and 1, not {}",
                self.jitter
            )));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::Config(format!(
                "the maximum backoff ({:?}) must not be shorter than the initial backoff ({:?})",
                self.max_backoff, self.initial_backoff
            )));
        }
        Ok(())
    }

    /// The delay before attempt `attempt + 1`, without jitter (`attempt` counts from 1).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1000) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.factor.powi(exponent);
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else if secs <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

/// The backoff state of one message: which attempt this is.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
}

impl Backoff {
    /// The state before the first attempt.
    pub(crate) fn start(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            attempts: 0,
        }
    }

    /// Records that an attempt starts; returns its number (from 1).
    pub(crate) fn begin(&mut self) -> u32 {
        self.attempts = self.attempts.saturating_add(1);
        self.attempts
    }

    /// The attempts begun so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay to wait before the next attempt, or `None` when the policy is exhausted.
    pub(crate) fn next_delay(&self, rng: &mut Jitter) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            return None;
        }
        let base = self.policy.base_delay(self.attempts);
        Some(base.mul_f64(1.0 - self.policy.jitter.clamp(0.0, 1.0) * rng.unit()))
    }
}

/// A tiny xorshift generator for backoff jitter: no cryptographic quality needed, and no
/// dependency. Seeded from the clock, the process ID and a per-process counter, so senders in
/// one process and in different processes draw different delays.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // One splitmix64 round spreads the seed's bits; xorshift must not start at zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Jitter(if z == 0 { 1 } else { z })
    }

    /// A number in `0..1`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let p = RetryPolicy::default();
        let ms = |a| p.base_delay(a).as_millis();
        assert_eq!(
            [
                ms(1),
                ms(2),
                ms(3),
                ms(4),
                ms(8),
                ms(9),
                ms(1000),
                ms(u32::MAX)
            ],
            [250, 500, 1000, 2000, 30_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::default()
            .max_attempts(None)
            .initial_backoff(Duration::from_millis(400))
            .max_backoff(Duration::from_millis(400));
        let mut backoff = Backoff::start(p);
        backoff.begin();
        let mut rng = Jitter::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let d = backoff.next_delay(&mut rng).unwrap();
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
            seen.insert(d);
        }
        assert!(
            seen.len() > 900,
            "the delays are not random: {}",
            seen.len()
        );

        let fixed = Backoff::start(p.jitter(0.0));
        assert_eq!(fixed.next_delay(&mut rng), Some(Duration::from_millis(400)));
    }

    #[test]
    fn attempts_limit_the_retries() {
        let mut rng = Jitter::new();
        let mut b = Backoff::start(RetryPolicy::default());
        for _ in 0..4 {
            b.begin();
            assert!(b.next_delay(&mut rng).is_some());
        }
        b.begin();
        assert_eq!(b.next_delay(&mut rng), None);
        assert_eq!(b.attempts(), 5);

        let mut once = Backoff::start(RetryPolicy::none());
        once.begin();
        assert_eq!(once.next_delay(&mut rng), None);
    }

    #[test]
    fn invalid_policies_are_config_errors() {
        let p = RetryPolicy::default();
        assert!(p.validate().is_ok());
        assert!(RetryPolicy::none().validate().is_ok());
        for bad in [
            p.max_attempts(Some(0)),
            p.factor(0.5),
            p.factor(f64::NAN),
            p.jitter(1.5),
            p.jitter(-0.1),
            p.max_backoff(Duration::from_millis(1)),
        ] {
            assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn generators_differ() {
        let (mut a, mut b) = (Jitter::new(), Jitter::new());
        assert_ne!(a.unit().to_bits(), b.unit().to_bits());
    }
}
