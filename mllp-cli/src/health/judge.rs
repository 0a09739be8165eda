//! The store's health, judged from checks that run beside the health server: a thread of its
//! own calls [`Store::check`] every [`CHECK_INTERVAL`], and an answer only reads the last
//! [`Judgement`], so that it comes at once whatever the store does.
//!
//! A check that has not returned within [`CHECK_DEADLINE`] counts as failed from then on (a
//! broker or a database that stopped answering, not just one that answers no): the health line
//! says `down` within `CHECK_INTERVAL + CHECK_DEADLINE` of a store that hangs, with no traffic
//! at all, and `up` again once a check passes. The judgement takes the time as an argument, so
//! its rules are tested without waiting.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mllp::Store;

/// How long after one check ends the next starts.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a check may run before the store counts as hung (HAProxy's agent check in
/// `deploy/haproxy.cfg` comes every 2 s: a hung store shows by the second one after it hung).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// What the checks of a store say at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The last check passed, and none has been running for longer than [`CHECK_DEADLINE`].
    Works,
    /// The last check failed.
    Fails,
    /// A check has been running for [`CHECK_DEADLINE`] or longer, since `since`.
    Hung {
        /// When the check that has not returned started.
        since: Instant,
    },
    /// No check has finished yet (and the one running is within its deadline).
    Unknown,
}

impl Verdict {
    /// Whether the store can take messages by this verdict (an unknown store cannot, yet).
    pub fn works(self) -> bool {
        self == Verdict::Works
    }
}

/// The checks run so far: when the one running started, and how the last one ended. Pure:
/// the times come from the caller.
#[derive(Debug, Default, Clone, Copy)]
pub struct Judgement {
    running: Option<Instant>,
    last: Option<(Instant, bool)>,
}

impl Judgement {
    /// A check started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.running = Some(now);
    }

    /// The check running ended at `now`, passed or not.
    pub fn finished(&mut self, now: Instant, passed: bool) {
        self.running = None;
        self.last = Some((now, passed));
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Instant) -> Verdict {
        if let Some(since) = self.running {
            if now.saturating_duration_since(since) >= CHECK_DEADLINE {
                return Verdict::Hung { since };
            }
        }
        match self.last {
            Some((_, true)) => Verdict::Works,
            Some((_, false)) => Verdict::Fails,
            None => Verdict::Unknown,
        }
    }
}

/// A [`Judgement`] shared between the checking thread and the health server.
#[derive(Default)]
pub struct Checks {
    judgement: Mutex<Judgement>,
    /// Signalled when a check ends, for [`wait_first`](Self::wait_first).
    ended: Condvar,
}

impl Checks {
    fn lock(&self) -> MutexGuard<'_, Judgement> {
        self.judgement.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Instant) -> Verdict {
        self.lock().verdict(now)
    }

    /// Records that a check started at `now`.
    pub fn started(&self, now: Instant) {
        self.lock().started(now);
    }

    /// Records that the running check ended at `now`.
    pub fn finished(&self, now: Instant, passed: bool) {
        self.lock().finished(now, passed);
        self.ended.notify_all();
    }

    /// Waits until the first check has ended, for at most `limit`.
    pub fn wait_first(&self, limit: Duration) {
        let guard = self.lock();
        let _ = self
            .ended
            .wait_timeout_while(guard, limit, |j| j.last.is_none());
    }
}

/// Starts the thread that checks `store` every [`CHECK_INTERVAL`] for as long as the process
/// runs, recording each check in the returned [`Checks`], and waits for the first check for
/// up to [`CHECK_DEADLINE`] (so that the first answer knows the store).
///
/// # Errors
/// One sentence for the operator when the thread cannot start.
pub fn start(store: Arc<dyn Store>) -> Result<Arc<Checks>, String> {
    let checks = Arc::new(Checks::default());
    let shared = Arc::clone(&checks);
    std::thread::Builder::new()
        .name("mllp-health-check".into())
        .spawn(move || run(&*store, &shared))
        .map_err(|e| format!("cannot start the store check thread: {e}"))?;
    checks.wait_first(CHECK_DEADLINE);
    Ok(checks)
}

/// Checks `store` forever, logging each change of its state.
fn run(store: &dyn Store, checks: &Checks) {
    let mut was: Option<bool> = None;
    loop {
        checks.started(Instant::now());
        let result = store.check();
        checks.finished(Instant::now(), result.is_ok());
        match (&result, was) {
            (Ok(()), Some(false)) => {
                log::info!("health: the store {} works again", store.name());
            }
            (Err(e), None | Some(true)) => {
                log::warn!(
                    "health: the store {} cannot take messages: {e}",
                    store.name()
                );
            }
            _ => {}
        }
        was = Some(result.is_ok());
        // A schedule, not a synchronisation: the next check is due then.
        std::thread::sleep(CHECK_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_past_its_deadline_is_hung_until_it_returns() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut j = Judgement::default();
        assert_eq!(j.verdict(t0), Verdict::Unknown);
        j.started(t0);
        assert_eq!(j.verdict(ms(1_999)), Verdict::Unknown);
        assert_eq!(j.verdict(ms(2_000)), Verdict::Hung { since: t0 });
        j.finished(ms(2_500), true);
        assert_eq!(j.verdict(ms(2_500)), Verdict::Works);
        // The next check: the last result stands while it is within its deadline.
        j.started(ms(3_500));
        assert_eq!(j.verdict(ms(5_499)), Verdict::Works);
        assert_eq!(j.verdict(ms(5_500)), Verdict::Hung { since: ms(3_500) });
        assert!(
            !j.verdict(ms(60_000)).works(),
            "hung for as long as it runs"
        );
        j.finished(ms(60_000), false);
        assert_eq!(j.verdict(ms(60_000)), Verdict::Fails);
        j.started(ms(61_000));
        j.finished(ms(61_010), true);
        assert_eq!(j.verdict(ms(61_010)), Verdict::Works);
        // A clock read before the check started (another thread's `now`) is not hung.
        j.started(ms(70_000));
        assert_eq!(j.verdict(ms(69_000)), Verdict::Works);
    }

    #[test]
    fn only_a_passed_check_works() {
        assert!(Verdict::Works.works());
        assert!(!Verdict::Fails.works());
        assert!(!Verdict::Unknown.works());
        assert!(!Verdict::Hung {
            since: Instant::now()
        }
        .works());
    }
}
