//! `mllp listen --health-addr ADDR`: a tiny TCP server that tells a load balancer whether to
//! send this listener new connections, in the format of HAProxy's `agent-check`.
//!
//! Every accepted connection gets one line and is closed; nothing is read from it:
//!
//! * `up ready` while the store's [`check`](Store::check) succeeds: the listener can take
//!   messages. (`ready` as well as `up`, because HAProxy keeps a server that its agent once put
//!   in DRAIN drained until the agent says `ready`: a listener restarted on the same port after
//!   a drain must bring itself back.)
//! * `down` while it fails (a directory that cannot be written, a broker that cannot be
//!   reached), and for [`FAILURE_TTL`] after a save failed in a way a retry can mend, unless a
//!   save has succeeded since: a check can pass while saves fail (a broker connection that is
//!   open, on which every publish is refused), and the senders of such a listener should go
//!   elsewhere. HAProxy marks the server DOWN and sends new connections to other listeners,
//!   while this one keeps serving the connections it has (their messages are answered as the
//!   store allows; with `--on-store-failure close` their connections close, and the senders
//!   come back through HAProxy to another listener).
//! * `drain` from the moment the listener is asked to stop (SIGTERM, Ctrl-C, `--count`
//!   reached): no new connections, while the messages in flight are finished and acknowledged.
//!
//! A check result is reused for [`CHECK_TTL`], so that a burst of health connections (several
//! balancers, a monitoring system) costs the store one check, not one each. Connections are
//! answered one at a time on one thread; a client that does not read cannot hold it for more
//! than [`WRITE_TIMEOUT`].

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::{Receipt, ShutdownHandle, Store, StoreError, StoredMessage};

/// How long a check result is reused.
pub const CHECK_TTL: Duration = Duration::from_secs(1);

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

impl Store for Watched {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        let result = self.inner.save(message);
        match &result {
            Ok(_) => self
                .last_success
                .fetch_max(self.stamp(Instant::now()), Ordering::AcqRel),
            // A refusal is about this message, not about the store.
            Err(e) if e.is_retryable() => self
                .last_failure
                .fetch_max(self.stamp(Instant::now()), Ordering::AcqRel),
            Err(_) => 0,
        };
        result
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn check(&self) -> Result<(), StoreError> {
        self.inner.check()
    }
}

/// The state of a listener, from its store (checked at most once per [`CHECK_TTL`], and its
/// recent saves) and its shutdown handle.
pub struct Probe {
    store: Arc<Watched>,
    failing: bool,
    stopping: Box<dyn Fn() -> bool + Send>,
    last: Option<(Instant, bool)>,
}

impl Probe {
    /// A probe of `store`, draining once `stopping` returns true.
    pub fn new(store: Arc<Watched>, stopping: impl Fn() -> bool + Send + 'static) -> Probe {
        Probe {
            store,
            failing: false,
            stopping: Box::new(stopping),
            last: None,
        }
    }

    /// The state now; `now` is the time to judge the cached check by.
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
        let ok = match self.last {
            Some((at, ok)) if now.saturating_duration_since(at) < CHECK_TTL => ok,
            _ => {
                let was = self.last.map(|(_, ok)| ok);
                let ok = match self.store.check() {
                    Ok(()) => {
                        if was == Some(false) {
                            log::info!("health: the store {} works again", self.store.name());
                        }
                        true
                    }
                    Err(e) => {
                        if was != Some(false) {
                            log::warn!(
                                "health: the store {} cannot take messages: {e}",
                                self.store.name()
                            );
                        }
                        false
                    }
                };
                // The time after the check, so that a slow check is not repeated at once.
                self.last = Some((Instant::now(), ok));
                ok
            }
        };
        if ok {
            State::Up
        } else {
            State::Down
        }
    }
}

/// Binds `addr` and answers health connections on a thread of its own, for as long as the
/// process runs. Returns the bound address (`addr` may have port 0) and `store` watched: the
/// listener saves through it, so that failing saves show in the answer.
///
/// # Errors
/// One sentence for the operator when `addr` cannot be bound or the thread cannot start.
pub fn start(
    addr: &str,
    store: Arc<dyn Store>,
    handle: ShutdownHandle,
) -> Result<(SocketAddr, Arc<dyn Store>), String> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen for health checks on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen for health checks on {addr}: {e}"))?;
    let watched = Arc::new(Watched::new(store));
    let mut probe = Probe::new(Arc::clone(&watched), move || handle.is_shutting_down());
    std::thread::Builder::new()
        .name("mllp-health".into())
        .spawn(move || serve(&listener, &mut probe))
        .map_err(|e| format!("cannot start the health check thread: {e}"))?;
    Ok((local, watched))
}

fn serve(listener: &TcpListener, probe: &mut Probe) {
    loop {
        match listener.accept() {
            Ok((tcp, peer)) => {
                let state = probe.state(Instant::now());
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
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

    #[test]
    fn a_burst_costs_one_check_and_a_change_shows_after_the_ttl() {
        let store = Arc::new(Flaky::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let watched = Arc::new(Watched::new(store.clone()));
        let mut probe = Probe::new(watched, move || flag.load(Ordering::SeqCst));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(probe.state(t0), State::Up);
        }
        assert_eq!(store.checks.load(Ordering::SeqCst), 1);
        store.broken.store(true, Ordering::SeqCst);
        // Within the TTL the cached result stands; after it the failure shows.
        assert_eq!(probe.state(t0), State::Up);
        let later = Instant::now() + CHECK_TTL;
        assert_eq!(probe.state(later), State::Down);
        assert_eq!(store.checks.load(Ordering::SeqCst), 2);
        // Stopping wins over everything, without a check.
        stopping.store(true, Ordering::SeqCst);
        assert_eq!(probe.state(later + CHECK_TTL), State::Drain);
        assert_eq!(store.checks.load(Ordering::SeqCst), 2);
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
        let mut probe = Probe::new(Arc::clone(&watched), || false);
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
}
