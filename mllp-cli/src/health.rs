//! `mllp listen --health-addr ADDR`: a tiny TCP server that tells a load balancer whether to
//! send this listener new connections, in the format of HAProxy's `agent-check`.
//!
//! Every accepted connection gets one line and is closed; nothing is read from it:
//!
//! * `up ready` while the store works: its last [`check`](Store::check) passed. (`ready` as
//!   well as `up`, because HAProxy keeps a server that its agent once put in DRAIN drained
//!   until the agent says `ready`: a listener restarted on the same port after a drain must
//!   bring itself back.)
//! * `down` while it does not: the last check failed (a directory that cannot be written, a
//!   broker that cannot be reached, a queue that was deleted), a check has not returned within
//!   [`CHECK_DEADLINE`](judge::CHECK_DEADLINE) (a broker or a database that stopped answering), or a save failed in a
//!   way a retry can mend less than [`FAILURE_TTL`] ago and none has succeeded since (a check
//!   can pass while saves fail: a broker connection that is open, on which every publish is
//!   refused). HAProxy marks the server DOWN and sends new connections to other listeners,
//!   while this one keeps serving the connections it has (their messages are answered as the
//!   store allows; with `--on-store-failure close` their connections close, and the senders
//!   come back through HAProxy to another listener).
//! * `drain` from the moment the listener is asked to stop (SIGTERM, Ctrl-C, `--count`
//!   reached): no new connections, while the messages in flight are finished and acknowledged.
//!
//! The store is checked on a thread of its own, every [`CHECK_INTERVAL`](judge::CHECK_INTERVAL) (see [`judge`]);
//! an answer reads the last judgement and never waits for the store, so it comes within
//! milliseconds whatever the store does, and a burst of health connections (several
//! balancers, a monitoring system) costs the store nothing. A store that hangs shows as
//! `down` within `CHECK_INTERVAL + CHECK_DEADLINE` (3 s), with no traffic at all, and as `up`
//! again once a check passes. Connections are answered one at a time on one thread; a client
//! that does not read cannot hold it for more than [`WRITE_TIMEOUT`].

mod judge;

use judge::{Checks, Verdict};

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mllp::{Receipt, ShutdownHandle, Store, StoreError, StoredMessage};

/// How long a failed save keeps the answer `down` when no save has succeeded since (then the
/// store's check decides again, and new connections show whether saves work).
pub const FAILURE_TTL: Duration = Duration::from_secs(3);

/// How long writing the one line to a health client may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed `accept` (too many open files, say), the thread waits this long before the
/// next, so that a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the health server answers, as HAProxy's agent-check reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The store can take messages: `up ready`.
    Up,
    /// The store cannot take messages now: `down`.
    Down,
    /// The listener is stopping: `drain`.
    Drain,
}

impl State {
    /// The line sent for this state, with its newline.
    pub fn line(self) -> &'static str {
        match self {
            State::Up => "up ready\n",
            State::Down => "down\n",
            State::Drain => "drain\n",
        }
    }
}

/// A store that remembers when its last saves succeeded and failed, for the health line.
pub struct Watched {
    inner: Arc<dyn Store>,
    base: Instant,
    /// Nanoseconds after `base` plus one of the last success and the last retryable failure;
    /// 0 for never.
    last_success: AtomicU64,
    last_failure: AtomicU64,
}

impl Watched {
    /// Watches the saves of `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Watched {
        Watched {
            inner,
            base: Instant::now(),
            last_success: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
        }
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// Whether a save failed (retryably) less than [`FAILURE_TTL`] before `now`, with no
    /// success after it.
    pub fn failing(&self, now: Instant) -> bool {
        let failure = self.last_failure.load(Ordering::Acquire);
        let success = self.last_success.load(Ordering::Acquire);
        failure != 0
            && failure > success
            && self.stamp(now).saturating_sub(failure) < FAILURE_TTL.as_nanos() as u64
    }
}

impl Watched {
    /// Remembers how a save ended.
    fn saw(&self, result: &Result<Receipt, StoreError>) {
        match result {
            Ok(_) => self
                .last_success
                .fetch_max(self.stamp(Instant::now()), Ordering::AcqRel),
            // A refusal is about this message, not about the store.
            Err(e) if e.is_retryable() => self
                .last_failure
                .fetch_max(self.stamp(Instant::now()), Ordering::AcqRel),
            Err(_) => 0,
        };
    }
}

impl Store for Watched {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        let result = self.inner.save(message);
        self.saw(&result);
        result
    }
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        let result = self.inner.save_before(message, deadline);
        self.saw(&result);
        result
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn check(&self) -> Result<(), StoreError> {
        self.inner.check()
    }
}

/// The state of a listener, from the checks of its store, its recent saves and its shutdown
/// handle. Reading it never calls the store.
pub struct Probe {
    store: Arc<Watched>,
    checks: Arc<Checks>,
    failing: bool,
    /// The start of the hung check last logged, so that each hang is logged once.
    hung: Option<Instant>,
    stopping: Box<dyn Fn() -> bool + Send>,
}

impl Probe {
    /// A probe of `store` by `checks`, draining once `stopping` returns true.
    pub fn new(
        store: Arc<Watched>,
        checks: Arc<Checks>,
        stopping: impl Fn() -> bool + Send + 'static,
    ) -> Probe {
        Probe {
            store,
            checks,
            failing: false,
            hung: None,
            stopping: Box::new(stopping),
        }
    }

    /// The state at `now`.
    pub fn state(&mut self, now: Instant) -> State {
        if (self.stopping)() {
            return State::Drain;
        }
        let failing = self.store.failing(now);
        if failing != self.failing {
            self.failing = failing;
            if failing {
                log::warn!("health: saving in {} failed: down", self.store.name());
            }
        }
        if failing {
            return State::Down;
        }
        let verdict = self.checks.verdict(now);
        if let Verdict::Hung { since } = verdict {
            if self.hung != Some(since) {
                self.hung = Some(since);
                log::error!(
                    "health: the store {} has not answered a check in {:?}: down",
                    self.store.name(),
                    now.saturating_duration_since(since)
                );
            }
        }
        if verdict.works() {
            State::Up
        } else {
            State::Down
        }
    }
}

/// A probe shared by the health server and the metrics server (`/healthz`, `mllp_store_up`):
/// one judgement for both. Each reads it on its own thread; neither calls the store.
pub type SharedProbe = Arc<Mutex<Probe>>;

/// Watches `store`: starts its checks on a thread of their own and returns the probe that
/// judges it, and `store` watched (the listener saves through it, so that failing saves show
/// in the judgement).
///
/// # Errors
/// One sentence for the operator when the check thread cannot start.
pub fn watch(
    store: Arc<dyn Store>,
    handle: ShutdownHandle,
) -> Result<(SharedProbe, Arc<dyn Store>), String> {
    let watched = Arc::new(Watched::new(store));
    let checks = judge::start(Arc::clone(&watched) as Arc<dyn Store>)?;
    let probe = Probe::new(Arc::clone(&watched), checks, move || {
        handle.is_shutting_down()
    });
    Ok((Arc::new(Mutex::new(probe)), watched))
}

/// The state of `probe` now.
pub fn state_of(probe: &SharedProbe) -> State {
    probe
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .state(Instant::now())
}

/// Binds `addr` and answers health connections on a thread of its own, for as long as the
/// process runs. Returns the bound address (`addr` may have port 0) and `store` watched: the
/// listener saves through it, so that failing saves show in the answer.
///
/// # Errors
/// One sentence for the operator when `addr` cannot be bound or the thread cannot start.
#[cfg(test)]
pub fn start(
    addr: &str,
    store: Arc<dyn Store>,
    handle: ShutdownHandle,
) -> Result<(SocketAddr, Arc<dyn Store>), String> {
    let (probe, watched) = watch(store, handle)?;
    Ok((serve_on(addr, probe)?, watched))
}

/// Binds `addr` and answers health connections with the judgement of `probe`, on a thread of
/// its own, for as long as the process runs; the bound address (`addr` may have port 0).
///
/// # Errors
/// One sentence for the operator when `addr` cannot be bound or the thread cannot start.
pub fn serve_on(addr: &str, probe: SharedProbe) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen for health checks on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen for health checks on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("mllp-health".into())
        .spawn(move || serve(&listener, &probe))
        .map_err(|e| format!("cannot start the health check thread: {e}"))?;
    Ok(local)
}

fn serve(listener: &TcpListener, probe: &SharedProbe) {
    loop {
        match listener.accept() {
            Ok((tcp, peer)) => {
                let state = state_of(probe);
                if let Err(e) = answer(tcp, state) {
                    log::debug!("health: cannot answer {peer}: {e}");
                }
            }
            Err(e) => {
                log::warn!("health: accept failed: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Writes the state's line and closes the connection.
fn answer(mut tcp: TcpStream, state: State) -> io::Result<()> {
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    tcp.write_all(state.line().as_bytes())?;
    tcp.flush()
}

#[cfg(test)]
mod tests {
    use super::judge::{CHECK_DEADLINE, CHECK_INTERVAL};
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    /// A store whose check result the test sets, counting the checks.
    #[derive(Default)]
    struct Flaky {
        broken: AtomicBool,
        checks: AtomicUsize,
    }

    impl Store for Flaky {
        fn save(&self, _: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
            Err(StoreError::retryable("not for saving"))
        }
        fn name(&self) -> String {
            "flaky".into()
        }
        fn check(&self) -> Result<(), StoreError> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            if self.broken.load(Ordering::SeqCst) {
                Err(StoreError::retryable("broken"))
            } else {
                Ok(())
            }
        }
    }

    /// A probe of `store` whose checks the test records, and the flag that makes it drain.
    fn probe_of(store: Arc<dyn Store>) -> (Probe, Arc<Checks>, Arc<AtomicBool>) {
        let checks = Arc::new(Checks::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let watched = Arc::new(Watched::new(store));
        let probe = Probe::new(watched, Arc::clone(&checks), move || {
            flag.load(Ordering::SeqCst)
        });
        (probe, checks, stopping)
    }

    #[test]
    fn the_answer_is_the_judgement_of_the_checks_and_never_calls_the_store() {
        let store = Arc::new(Flaky::default());
        let (mut probe, checks, stopping) = probe_of(store.clone());
        let t0 = Instant::now();
        assert_eq!(probe.state(t0), State::Down, "not known to work yet");
        checks.started(t0);
        checks.finished(t0, true);
        for _ in 0..100 {
            assert_eq!(probe.state(t0), State::Up);
        }
        assert_eq!(store.checks.load(Ordering::SeqCst), 0);
        // A check that does not return is down once past its deadline, up when it passes.
        let t1 = t0 + CHECK_INTERVAL;
        checks.started(t1);
        assert_eq!(probe.state(t1 + CHECK_DEADLINE / 2), State::Up);
        assert_eq!(probe.state(t1 + CHECK_DEADLINE), State::Down);
        assert_eq!(probe.state(t1 + 10 * CHECK_DEADLINE), State::Down);
        checks.finished(t1 + 10 * CHECK_DEADLINE, true);
        assert_eq!(probe.state(t1 + 10 * CHECK_DEADLINE), State::Up);
        checks.started(t1 + 11 * CHECK_DEADLINE);
        checks.finished(t1 + 11 * CHECK_DEADLINE, false);
        assert_eq!(probe.state(t1 + 11 * CHECK_DEADLINE), State::Down);
        // Stopping wins over everything.
        stopping.store(true, Ordering::SeqCst);
        assert_eq!(probe.state(t1 + 12 * CHECK_DEADLINE), State::Drain);
        assert_eq!(store.checks.load(Ordering::SeqCst), 0);
    }

    /// Saves fail with the error the test sets; the check always passes.
    struct Saving {
        fail: std::sync::Mutex<Option<StoreError>>,
    }

    impl Store for Saving {
        fn save(&self, _: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
            match self.fail.lock().unwrap().take() {
                Some(e) => Err(e),
                None => Ok(Receipt::new("kept")),
            }
        }
        fn name(&self) -> String {
            "saving".into()
        }
    }

    #[test]
    fn a_failed_save_is_down_until_a_save_succeeds_or_the_ttl_passes() {
        let store = Arc::new(Saving {
            fail: std::sync::Mutex::new(None),
        });
        let watched = Arc::new(Watched::new(store.clone()));
        let checks = Arc::new(Checks::default());
        let mut probe = Probe::new(Arc::clone(&watched), Arc::clone(&checks), || false);
        checks.started(Instant::now());
        checks.finished(Instant::now(), true);
        let text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|H1|P|2.5\r";
        let peer = "127.0.0.1:1".parse().unwrap();
        let utf8 = mllp::charset::Charset::default();
        let message = StoredMessage::new(text, peer, utf8, std::time::SystemTime::now());
        let t0 = Instant::now();
        assert_eq!(probe.state(t0), State::Up);
        *store.fail.lock().unwrap() = Some(StoreError::retryable("nack"));
        assert!(watched.save(&message).is_err());
        let now = Instant::now();
        assert_eq!(probe.state(now), State::Down);
        assert_eq!(probe.state(now + FAILURE_TTL), State::Up, "the TTL ends it");
        assert!(watched.save(&message).is_ok());
        assert_eq!(probe.state(Instant::now()), State::Up, "a success ends it");
        // A refusal is about one message: still up.
        *store.fail.lock().unwrap() = Some(StoreError::refused("unroutable"));
        assert!(watched.save(&message).is_err());
        assert_eq!(probe.state(Instant::now()), State::Up);
    }

    #[test]
    fn lines_are_haproxy_agent_words() {
        assert_eq!(State::Up.line(), "up ready\n");
        assert_eq!(State::Down.line(), "down\n");
        assert_eq!(State::Drain.line(), "drain\n");
    }

    #[test]
    fn each_connection_gets_one_line_then_the_end() {
        let listener = mllp::Listener::builder("127.0.0.1:0").bind().unwrap();
        let handle = listener.shutdown_handle();
        let (addr, _) = start("127.0.0.1:0", Arc::new(Flaky::default()), handle).unwrap();
        for _ in 0..3 {
            let mut tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut text = String::new();
            tcp.read_to_string(&mut text).unwrap();
            assert_eq!(text, "up ready\n");
        }
        let e = start(&addr.to_string(), Arc::new(Flaky::default()), {
            mllp::Listener::builder("127.0.0.1:0")
                .bind()
                .unwrap()
                .shutdown_handle()
        })
        .err()
        .expect("the address is taken");
        assert!(e.contains("cannot listen for health checks"), "{e}");
    }

    /// A store whose check blocks while the test holds it hung.
    #[derive(Default)]
    struct Hanging {
        hung: Mutex<bool>,
        released: Condvar,
    }

    impl Hanging {
        fn set(&self, hung: bool) {
            *self.hung.lock().unwrap() = hung;
            self.released.notify_all();
        }
    }

    impl Store for Hanging {
        fn save(&self, _: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
            Ok(Receipt::new("kept"))
        }
        fn name(&self) -> String {
            "hanging".into()
        }
        fn check(&self) -> Result<(), StoreError> {
            let guard = self.hung.lock().unwrap();
            drop(self.released.wait_while(guard, |hung| *hung).unwrap());
            Ok(())
        }
    }

    /// Releases a hung store however the test ends, so that no check thread stays blocked.
    struct Release(Arc<Hanging>);

    impl Drop for Release {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }

    /// One health answer and how long it took.
    fn timed_answer(addr: SocketAddr) -> (String, Duration) {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        (text, started.elapsed())
    }

    #[test]
    fn a_hung_store_is_down_within_seconds_and_every_answer_comes_at_once() {
        let store = Arc::new(Hanging::default());
        let release = Release(Arc::clone(&store));
        let handle = mllp::Listener::builder("127.0.0.1:0")
            .bind()
            .unwrap()
            .shutdown_handle();
        let (addr, _) = start("127.0.0.1:0", store.clone(), handle).unwrap();
        assert_eq!(timed_answer(addr).0, "up ready\n");
        store.set(true);
        let hung = Instant::now();
        // Answers while the check hangs: each at once, `down` within a few seconds.
        let limit = CHECK_INTERVAL + CHECK_DEADLINE + Duration::from_secs(2);
        let mut slowest = Duration::ZERO;
        let down_after = loop {
            let (text, took) = timed_answer(addr);
            slowest = slowest.max(took);
            if text == "down\n" {
                break hung.elapsed();
            }
            assert_eq!(text, "up ready\n");
            assert!(
                hung.elapsed() < limit,
                "still up {:?} after the store hung",
                hung.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        for _ in 0..10 {
            let (text, took) = timed_answer(addr);
            slowest = slowest.max(took);
            assert_eq!(text, "down\n");
        }
        assert!(
            slowest < Duration::from_millis(100),
            "an answer took {slowest:?}"
        );
        eprintln!("down {down_after:?} after the store hung; slowest answer {slowest:?}");
        drop(release);
        assert!(
            mllp_testkit::eventually(Duration::from_secs(5), || timed_answer(addr).0
                == "up ready\n"),
            "still down with the store answering again"
        );
    }
}
