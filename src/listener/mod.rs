//! The blocking MLLP listener: accepts connections, hands every message to a [`Handler`] and
//! acknowledges it once the handler has returned.
//!
//! # Threads
//! [`Listener::run`] runs the accept loop on the calling thread ([`Listener::spawn`] on a new
//! one). Every accepted connection is served by a thread of its own with a small stack
//! ([`ListenerBuilder::stack_size`], 128 KiB by default; buffers live on the heap), which
//! reads frames, calls the handler and writes the acknowledgements. The handler is therefore
//! called concurrently, once per connection at most at any time.
//!
//! # Connection limits
//! At most [`max_connections`](ListenerBuilder::max_connections) connections are served at once
//! (10 by default). When all are taken, a new connection is either refused — accepted and
//! closed at once, and logged ([`Overflow::Refuse`], the default) — or left waiting
//! ([`Overflow::Backlog`]): the listener takes that one connection but does not serve it, and
//! stops accepting, so later ones wait in the kernel's backlog, until a slot frees.
//!
//! ## Evicting the quietest connection
//! Before the overflow policy applies, a new connection takes the slot of the connection that
//! has gone longest without completing a frame, once that is at least
//! [`evict_after`](ListenerBuilder::evict_after) (5 s by default; `None` turns it off). Only
//! complete frames count as activity, so peers that connect and send nothing, trickle bytes or
//! send junk cannot hold every slot and keep real senders out, while a connection that has been
//! idle for hours is still served for as long as nobody needs its slot. A connection whose
//! message is being handled is never evicted, and an evicted connection hands no further
//! message to the handler: a frame it was sending is lost without an ACK, which its sender
//! handles as any unacknowledged message. Evictions are logged at warn with the evicted peer
//! and counted in [`ListenerStats::connections_evicted`].
//!
//! ## Single-connection mode and replacing an idle connection
//! Most HL7 interfaces have exactly one sender per port. With `max_connections(1)` and
//! [`replace_idle(true)`](ListenerBuilder::replace_idle), a new connection that arrives while
//! the only slot holds a connection that is *idle* — no frame under way, no message being
//! handled — closes the old connection and is served at once. A sender whose connection died
//! silently (a cable pulled, a firewall that forgot the connection, a peer that crashed) can
//! thus come back immediately instead of being refused until TCP notices the old connection is
//! gone, which may take hours. A connection that is receiving a frame or whose message is being
//! handled is never replaced; the overflow policy then applies to the newcomer. A frame that
//! begins on the old connection in the very instant it is replaced is lost without an ACK, which
//! the sender handles as any unacknowledged message.
//!
//! # Time limits
//! * **Frame timeout** (60 s by default): a frame must complete within this time of the first
//!   byte received since the last completed frame, or the connection is closed. This cuts
//!   peers that trickle bytes, stall mid-frame or send only junk: junk outside a frame starts
//!   the clock and does not restart it. White space (CR, LF, space, tab, NUL) between frames
//!   does not start it, so a sender that ends its frames with a line feed may stay idle.
//! * **Idle timeout** (none by default: long idle connections are normal in HL7): a connection
//!   with no message for this long is closed.
//! * **Write timeout** (10 s): writing an acknowledgement to a peer that does not read.
//! * **Handshake timeout** (10 s): a TLS handshake.
//!
//! The socket read timeout is set before every read to the nearest of these deadlines, so a
//! peer sending one byte per second is cut when the frame deadline passes, not when a single
//! read stalls.
//!
//! # Acknowledgements
//! See [`Response`] and [`AckPolicy`]. Special cases, answered without calling the handler:
//! * a frame whose header cannot be read: an `AR` NAK from
//!   [`build_nak_unparseable`](crate::build_nak_unparseable) (error code 100);
//! * a frame larger than the maximum message size: it is skipped, and answered with `AR`
//!   (`CR` in enhanced mode) "message exceeds N bytes", error code 207, naming its control ID
//!   when its header was readable; the connection stays up;
//! * a message not valid in its character set (MSH-18's, when it names a known one, else the
//!   configured one), under [`Malformed::Reject`], the default: `AE` (`CE`) whose text and ERR
//!   segment name the byte offset of the first invalid sequence. Nothing is handed on, so
//!   nothing is stored with replacement characters; [`Malformed::Replace`] opts into U+FFFD.
//!
//! In [`AckPolicy::Mllp2`] mode all of these are a negative commit block (0x15).
//!
//! An acknowledgement that would contain the frame end sequence (a header field echoed into it,
//! such as the control ID, ends with the first byte of that sequence) cannot be framed: it is
//! replaced by an `AR` that names no control ID, and the connection goes on.
//!
//! # Shutdown
//! [`ShutdownHandle::shutdown`] (or [`RunningListener::shutdown`]) stops the accept loop, which
//! is woken by one loopback connection to the listener's own address. Every connection's socket
//! is then shut down for reading: a connection waiting for a message sees the end of the stream
//! and closes, while one whose handler is running finishes, writes its acknowledgement and
//! closes. After the grace period ([`ListenerBuilder::shutdown_grace`], 10 s) the remaining
//! connections are shut down in both directions. Threads are joined; a thread stuck in a
//! handler that never returns cannot be joined and is left behind (logged) so that `run` can
//! return.
//!
//! # Logging
//! Events go through the `log` crate: connections at debug, refusals, idle timeouts at info,
//! frame timeouts, TLS failures, unreadable or oversized messages at warn, handler panics at
//! error. Message bodies are never logged; control IDs are.

mod conn;
mod handler;
mod slots;
mod stats;
mod store;

use std::io;
use std::net::ToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

pub use handler::{Handler, Message, Response};
pub use stats::ListenerStats;
pub use store::StoreHandler;

use crate::charset::{Charset, Malformed};
use crate::error::{Error, Phase, Result};
use crate::framing::Framing;
use crate::store::Store;
use crate::transport::{TlsServer, TlsServerConfig};
use slots::{Flags, Table, Why};
use stats::{bump, Stats};

/// The default maximum number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;
/// The default eviction threshold: 5 s. See [`ListenerBuilder::evict_after`].
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(5);
/// The default frame timeout: 60 s.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(60);
/// The default TLS handshake timeout: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default timeout for writing an acknowledgement: 10 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default shutdown grace period: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The default stack size of connection threads: 128 KiB.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;
/// The smallest stack size accepted for connection threads: 64 KiB.
pub const MIN_STACK_SIZE: usize = 64 * 1024;

/// How long a new connection waits for a replaced or evicted connection to free its slot.
const REPLACE_WAIT: Duration = Duration::from_secs(2);
/// How long a new connection waits, in single-connection mode with replacement, for a busy
/// connection to become idle before the overflow policy applies to it.
const REPLACE_SETTLE: Duration = Duration::from_secs(1);
/// How often the busy connection is checked meanwhile.
const REPLACE_POLL: Duration = Duration::from_millis(5);
/// How often a connection waiting for a slot re-checks whether the old one became idle.
const BACKLOG_POLL: Duration = Duration::from_millis(100);
/// How long shutdown waits for connections shut down in both directions after the grace
/// period.
const STRAGGLER_WAIT: Duration = Duration::from_secs(1);
/// How long to pause after `accept` failed (for example, out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckPolicy {
    /// HL7 acknowledgements following the inbound message: original mode (AA/AE/AR) when
    /// MSH-15 and MSH-16 are empty, enhanced mode (CA/CE/CR, sent according to MSH-15) when
    /// either is valued. The default.
    #[default]
    Auto,
    /// HL7 original-mode acknowledgements (AA/AE/AR) always, whatever MSH-15/16 say.
    Original,
    /// MLLP release 2 commit acknowledgements: a frame holding 0x06 when the handler accepted
    /// the message, 0x15 otherwise.
    Mllp2,
}

/// What happens to a new connection when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Accept it and close it at once (logged at info, counted). The default.
    #[default]
    Refuse,
    /// Hold it unserved and stop accepting until a slot frees; further connections wait in
    /// the kernel's listen backlog.
    Backlog,
}

/// The settings every connection reads.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) framing: Framing,
    pub(crate) charset: Charset,
    pub(crate) detect_msh18: bool,
    pub(crate) malformed: Malformed,
    pub(crate) max_connections: usize,
    pub(crate) overflow: Overflow,
    pub(crate) replace_idle: bool,
    pub(crate) evict_after: Option<Duration>,
    pub(crate) frame_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) ack_policy: AckPolicy,
    pub(crate) shutdown_grace: Duration,
    pub(crate) stack_size: usize,
}

/// Configures and binds a [`Listener`]; from [`Listener::builder`].
///
/// Setters take and return the builder; problems are reported by [`bind`](Self::bind).
#[derive(Debug)]
#[must_use = "a builder does nothing until bind() is called"]
pub struct ListenerBuilder {
    addrs: io::Result<Vec<SocketAddr>>,
    settings: Settings,
    max_message_size: Option<usize>,
    tls: Option<TlsServerConfig>,
}

impl ListenerBuilder {
    /// The framing (start and end sequences, maximum message size, lenient end). Default:
    /// [`Framing::default`] (`0x0B` … `0x1C 0x0D`, 16 MiB).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.settings.framing = framing;
        self
    }

    /// The largest message accepted, in bytes (default 16 MiB). Larger messages are skipped
    /// and answered with a NAK; the connection stays up. Overrides the framing's maximum.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// The character set messages are decoded from (default UTF-8).
    pub fn charset(mut self, charset: Charset) -> Self {
        self.settings.charset = charset;
        self
    }

    /// Whether to decode each message in the character set its MSH-18 names, when it names a
    /// known one (default `true`). Otherwise, and for an unknown name, the configured
    /// [`charset`](Self::charset) is used.
    pub fn detect_msh18(mut self, detect: bool) -> Self {
        self.settings.detect_msh18 = detect;
        self
    }

    /// What to do with a message holding bytes not valid in its character set:
    /// [`Malformed::Reject`] (the default) answers `AE` (`CE`), whose text and ERR segment name
    /// the byte offset of the first such sequence, without calling the handler;
    /// [`Malformed::Replace`] hands the message to the handler with U+FFFD in their place.
    pub fn malformed(mut self, policy: Malformed) -> Self {
        self.settings.malformed = policy;
        self
    }

    /// The most connections served at once (default 10, at least 1).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.settings.max_connections = max;
        self
    }

    /// What happens to a connection beyond the maximum (default [`Overflow::Refuse`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.settings.overflow = overflow;
        self
    }

    /// In single-connection mode (`max_connections(1)`), whether a new connection replaces an
    /// idle one (default `false`). See the [module documentation](self). Ignored when more
    /// than one connection is allowed.
    pub fn replace_idle(mut self, replace: bool) -> Self {
        self.settings.replace_idle = replace;
        self
    }

    /// When every slot is taken, a new connection takes the slot of the connection that has
    /// gone longest without completing a frame, once that is at least this long (default
    /// 5 s); `None`: never, the [overflow policy](Self::overflow) applies at once. Only
    /// complete frames count as activity: a silent peer, one trickling bytes or sending junk
    /// can be evicted, a connection whose message is being handled never is. The evicted
    /// connection is logged (at warn, with its peer) and counted in
    /// [`ListenerStats::connections_evicted`]. See the [module documentation](self).
    pub fn evict_after(mut self, after: Option<Duration>) -> Self {
        self.settings.evict_after = after;
        self
    }

    /// How long a started frame may take to complete (default 60 s); `None`: no limit.
    pub fn frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.frame_timeout = timeout;
        self
    }

    /// How long a connection may go without a message before it is closed (default `None`:
    /// no limit, since long idle connections are normal in HL7).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// How long writing one acknowledgement may take before the connection is closed
    /// (default 10 s); `None`: no limit.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.write_timeout = timeout;
        self
    }

    /// How long a TLS handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handshake_timeout = timeout;
        self
    }

    /// How messages are acknowledged (default [`AckPolicy::Auto`]).
    pub fn ack_policy(mut self, policy: AckPolicy) -> Self {
        self.settings.ack_policy = policy;
        self
    }

    /// Serves TLS with these settings (a server identity from PEM files or PKCS#12). A client
    /// that does not speak TLS, or whose handshake fails or times out, loses only its own
    /// connection (logged at warn, counted in [`ListenerStats::tls_failures`]).
    ///
    /// Client certificates are neither requested nor verified (a limit of `native-tls`), so
    /// [`Message::tls_peer`] carries none.
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// How long shutdown waits for messages being handled to be acknowledged (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// The stack size of connection threads, in bytes (default 128 KiB, at least 64 KiB).
    /// The handler runs on this stack: raise it if the handler needs deep recursion or large
    /// local arrays.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.settings.stack_size = bytes;
        self
    }

    /// Checks the settings, prepares TLS and binds the listening socket.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting or address; [`Error::Tls`] when the TLS
    /// identity cannot be read; [`Error::Io`] with [`Phase::Bind`] when the address cannot
    /// be bound (in use, not local, no permission); its text names the address once.
    pub fn bind(self) -> Result<Listener> {
        let mut settings = self.settings;
        let addrs = self
            .addrs
            .map_err(|e| Error::Config(format!("the listening address is not valid: {e}")))?;
        if addrs.is_empty() {
            return Err(Error::Config(
                "the listening address resolved to no address".into(),
            ));
        }
        if settings.max_connections == 0 {
            return Err(Error::Config(
                "the maximum number of connections must be at least 1".into(),
            ));
        }
        if settings.stack_size < MIN_STACK_SIZE {
            return Err(Error::Config(format!(
                "the connection thread stack size must be at least {MIN_STACK_SIZE} bytes, not {}",
                settings.stack_size
            )));
        }
        for (name, value) in [
            ("frame timeout", settings.frame_timeout),
            ("idle timeout", settings.idle_timeout),
            ("write timeout", settings.write_timeout),
            ("handshake timeout", Some(settings.handshake_timeout)),
            ("eviction threshold", settings.evict_after),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(Error::Config(format!(
                    "the {name} must be greater than zero"
                )));
            }
        }
        if let Some(max) = self.max_message_size {
            settings.framing = settings.framing.max_message_size(max)?;
        }
        let tls = match &self.tls {
            Some(config) => Some(TlsServer::new(config)?),
            None => None,
        };
        let socket = TcpListener::bind(&addrs[..]).map_err(|e| {
            let names: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            Error::io(
                Phase::Bind,
                io::Error::new(e.kind(), format!("{}: {e}", names.join(", "))),
            )
        })?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| Error::io(Phase::Accept, e))?;
        debug!(
            "listening on {local_addr}{}",
            if tls.is_some() { " (TLS)" } else { "" }
        );
        Ok(Listener {
            socket,
            settings: Arc::new(settings),
            tls,
            shared: Arc::new(Shared {
                stats: Stats::default(),
                stop: AtomicBool::new(false),
                slots: Table::default(),
                next_id: AtomicU64::new(1),
                local_addr,
            }),
        })
    }
}

/// State shared by the accept loop, the connection threads and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: Stats,
    stop: AtomicBool,
    pub(crate) slots: Table,
    next_id: AtomicU64,
    local_addr: SocketAddr,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// A blocking MLLP listener, bound and ready to [`run`](Self::run).
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use mllp::{Connection, Framing, Listener, Response};
///
/// let listener = Listener::builder("127.0.0.1:0").bind()?;
/// let running = listener.spawn(|message: &mllp::Message<'_>| {
///     // Store message.raw() or message.text() here, then:
///     Response::accept()
/// })?;
///
/// let tcp = TcpStream::connect(running.local_addr()).unwrap();
/// tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
/// let mut conn = Connection::new(tcp, Framing::default());
/// conn.write_frame(b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ADT^A01|42|P|2.5.1\rPID|1\r")?;
/// let ack = conn.read_frame()?.expect("an acknowledgement");
/// assert!(ack.ends_with(b"MSA|AA|42\r"));
///
/// running.shutdown();
/// running.join()?;
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    settings: Arc<Settings>,
    tls: Option<TlsServer>,
    shared: Arc<Shared>,
}

impl Listener {
    /// A builder for a listener on `addr` (e.g. `"0.0.0.0:2575"`, `"127.0.0.1:0"` for any free
    /// port, or a [`SocketAddr`]). When the address resolves to several, the first that can be
    /// bound is used.
    pub fn builder(addr: impl ToSocketAddrs) -> ListenerBuilder {
        ListenerBuilder {
            addrs: addr.to_socket_addrs().map(Iterator::collect),
            settings: Settings {
                framing: Framing::default(),
                charset: Charset::UTF_8,
                detect_msh18: true,
                malformed: Malformed::Reject,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                overflow: Overflow::Refuse,
                replace_idle: false,
                evict_after: Some(DEFAULT_EVICT_AFTER),
                frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
                idle_timeout: None,
                write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
                handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
                ack_policy: AckPolicy::Auto,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                stack_size: DEFAULT_STACK_SIZE,
            },
            max_message_size: None,
            tls: None,
        }
    }

    /// The address the listener is bound to (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle to stop the listener from another thread and read its counters.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.shared.stats.snapshot()
    }

    /// Serves connections on the calling thread, calling `handler` for every message, until
    /// [`ShutdownHandle::shutdown`] is called; then finishes as described in the
    /// [module documentation](self) and returns `Ok(())`.
    ///
    /// # Errors
    /// None today: failures to accept a connection (for example, out of file descriptors) are
    /// logged and retried after a short pause. The `Result` leaves room for fatal errors.
    pub fn run(self, handler: impl Handler) -> Result<()> {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let Listener {
            socket,
            settings,
            tls,
            shared,
        } = self;
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let tls = tls.map(Arc::new);
        while !shared.stopping() {
            let (tcp, peer) = match socket.accept() {
                Ok(accepted) => accepted,
                Err(e) => {
                    if shared.stopping() {
                        break;
                    }
                    match e.kind() {
                        io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted => {}
                        _ => {
                            error!("accepting a connection failed: {e}");
                            std::thread::sleep(ACCEPT_BACKOFF);
                        }
                    }
                    continue;
                }
            };
            if shared.stopping() {
                break;
            }
            threads.retain(|t| !t.is_finished());
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let flags = Arc::new(Flags::default());
            if !take_slot(&shared, &settings, id, &tcp, &flags, peer) {
                continue;
            }
            bump(&shared.stats.connections_total);
            shared
                .stats
                .connections_open
                .fetch_add(1, Ordering::Relaxed);
            debug!("connection {id} from {peer} accepted");
            if let Err(e) = configure(&tcp, &settings) {
                warn!("connection {id} from {peer}: cannot configure the socket: {e}");
            }
            let conn_peer = conn::Peer {
                id,
                addr: peer,
                flags,
            };
            let (shared2, settings2, handler2, tls2) = (
                Arc::clone(&shared),
                Arc::clone(&settings),
                Arc::clone(&handler),
                tls.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("mllp-conn-{id}"))
                .stack_size(settings.stack_size)
                .spawn(move || {
                    conn::serve(
                        &shared2,
                        &settings2,
                        &*handler2,
                        tls2.as_deref(),
                        tcp,
                        conn_peer,
                    );
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // The closure (and with it the socket) is dropped: the connection closes.
                    error!("connection {id} from {peer}: cannot start its thread: {e}");
                    shared.slots.remove(id);
                    shared
                        .stats
                        .connections_open
                        .fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        drop(socket);
        finish(&shared, &settings, threads);
        Ok(())
    }

    /// Runs the listener on a new thread; see [`run`](Self::run).
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::Accept`] when the thread cannot be started.
    pub fn spawn(self, handler: impl Handler) -> Result<RunningListener> {
        let handle = self.shutdown_handle();
        let local_addr = self.local_addr();
        let thread = std::thread::Builder::new()
            .name("mllp-accept".into())
            .spawn(move || self.run(handler))
            .map_err(|e| Error::io(Phase::Accept, e))?;
        Ok(RunningListener {
            thread: Some(thread),
            handle,
            local_addr,
        })
    }
}

impl Listener {
    /// Serves connections on the calling thread, saving every message in `store` before
    /// acknowledging it: [`run`](Self::run) with a [`StoreHandler`].
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_store(self, store: impl Store) -> Result<()> {
        self.run(StoreHandler::new(store))
    }

    /// Runs the listener on a new thread, saving every message in `store` before
    /// acknowledging it: [`spawn`](Self::spawn) with a [`StoreHandler`]. See the
    /// [`store`](crate::store) module for an example.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn).
    pub fn spawn_store(self, store: impl Store) -> Result<RunningListener> {
        self.spawn(StoreHandler::new(store))
    }
}

/// Sets the options of an accepted socket: no Nagle delay, the write timeout.
fn configure(tcp: &TcpStream, settings: &Settings) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(settings.write_timeout)
}

/// Finds a slot for a new connection, replacing an idle one or applying the overflow policy.
/// Returns `false` when the connection was refused (and closed) or the listener is stopping.
fn take_slot(
    shared: &Shared,
    settings: &Settings,
    id: u64,
    tcp: &TcpStream,
    flags: &Arc<Flags>,
    peer: SocketAddr,
) -> bool {
    let max = settings.max_connections;
    let replace = settings.replace_idle && max == 1;
    let mut waiting_logged = false;
    loop {
        if shared.stopping() {
            return false;
        }
        match shared.slots.try_insert(max, id, peer, tcp, flags) {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => {
                error!("connection {id} from {peer}: cannot clone the socket: {e}");
                return false;
            }
        }
        if (replace || settings.evict_after.is_some()) && make_room(shared, settings, id, peer) {
            continue;
        }
        match settings.overflow {
            Overflow::Refuse => {
                bump(&shared.stats.connections_refused);
                info!("refused connection from {peer}: all {max} connection slots are taken");
                // The caller drops the socket; shut it down now so the peer sees it at once.
                let _ = tcp.shutdown(Shutdown::Both);
                return false;
            }
            Overflow::Backlog => {
                if !waiting_logged {
                    info!(
                        "connection {id} from {peer} waits: all {max} connection slots are taken"
                    );
                    waiting_logged = true;
                }
                // With replacement or eviction on, re-check every poll whether a connection
                // became idle or quiet for long enough.
                let wait = if replace || settings.evict_after.is_some() {
                    BACKLOG_POLL
                } else {
                    Duration::from_secs(3600)
                };
                shared.slots.wait_for_room(max, wait, &shared.stop);
            }
        }
    }
}

/// Closes a connection to make room for connection `id`: in single-connection mode with
/// replacement, the only one if it is idle or becomes idle within [`REPLACE_SETTLE`] (a
/// connection that is just writing its last acknowledgement); with eviction, the one that has
/// gone longest without completing a frame, past the threshold. Then waits for it to free its
/// slot. Returns whether the slot may now be free.
fn make_room(shared: &Shared, settings: &Settings, id: u64, peer: SocketAddr) -> bool {
    let max = settings.max_connections;
    let replace = settings.replace_idle && max == 1;
    let settle_end = Instant::now()
        + if replace {
            REPLACE_SETTLE
        } else {
            Duration::ZERO
        };
    loop {
        if let Some(old) = shared
            .slots
            .close_for_newcomer(replace, settings.evict_after)
        {
            match old.why {
                Why::Replaced => {
                    bump(&shared.stats.connections_replaced);
                    info!(
                        "connection {id} from {peer} replaces idle connection {} from {}",
                        old.id, old.peer
                    );
                }
                Why::Evicted => {
                    bump(&shared.stats.connections_evicted);
                    warn!(
                        "all {max} connection slots are taken: evicted connection {} from {},                          which completed no frame for {:.1} s, for connection {id} from {peer}",
                        old.id,
                        old.peer,
                        old.quiet.as_secs_f64()
                    );
                }
            }
            return shared.slots.wait_for_room(max, REPLACE_WAIT, &shared.stop);
        }
        if Instant::now() >= settle_end || shared.stopping() {
            return false;
        }
        if shared.slots.wait_for_room(max, REPLACE_POLL, &shared.stop) {
            return true;
        }
    }
}

/// After the accept loop: lets in-flight messages finish within the grace period, closes the
/// rest and joins the connection threads.
fn finish(shared: &Shared, settings: &Settings, threads: Vec<JoinHandle<()>>) {
    let open = shared.slots.len();
    debug!("shutting down: {open} connections open");
    shared.slots.shutdown_all(Shutdown::Read);
    let grace_end = Instant::now() + settings.shutdown_grace;
    if !shared.slots.wait_empty(grace_end) {
        warn!(
            "{} connections still busy after the shutdown grace period; closing them",
            shared.slots.len()
        );
        shared.slots.shutdown_all(Shutdown::Both);
        shared.slots.wait_empty(Instant::now() + STRAGGLER_WAIT);
    }
    let mut left_behind = 0;
    for thread in threads {
        if thread.is_finished() || shared.slots.len() == 0 {
            // A thread whose slot is free has nothing left to do but return.
            let _ = thread.join();
        } else {
            left_behind += 1;
        }
    }
    if left_behind > 0 {
        error!("{left_behind} connection threads are stuck in the handler; leaving them behind");
    }
    debug!("listener on {} stopped", shared.local_addr);
}

/// Stops a listener from any thread, and reads its counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks the listener to stop, and returns at once. The accept loop stops; messages being
    /// handled are finished and acknowledged within the grace period; then
    /// [`Listener::run`] returns. Calling it again does nothing more.
    pub fn shutdown(&self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        info!("listener on {}: shutting down", self.shared.local_addr);
        self.shared.slots.wake();
        // Wake the accept loop with a connection of our own; it sees the flag and stops.
        let addr = wake_address(self.shared.local_addr);
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            warn!("cannot wake the accept loop through {addr}: {e}");
        }
    }

    /// Whether shutdown has been asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stopping()
    }

    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.shared.stats.snapshot()
    }
}

/// The address to connect to in order to reach a listener bound to `local`: loopback for a
/// wildcard address.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// A listener running on its own thread; from [`Listener::spawn`].
///
/// Dropping it shuts the listener down and waits for it.
#[derive(Debug)]
pub struct RunningListener {
    thread: Option<JoinHandle<Result<()>>>,
    handle: ShutdownHandle,
    local_addr: SocketAddr,
}

impl RunningListener {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.handle.stats()
    }

    /// A handle to stop the listener from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Asks the listener to stop; returns at once. See [`ShutdownHandle::shutdown`].
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits for the listener to stop (after [`shutdown`](Self::shutdown)) and returns what
    /// [`Listener::run`] returned.
    ///
    /// # Errors
    /// What `run` returned, or [`Error::Io`] with [`Phase::Accept`] if the listener's thread
    /// panicked.
    pub fn join(mut self) -> Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    Phase::Accept,
                    io::Error::other("the listener thread panicked"),
                ))
            }),
        }
    }
}

impl Drop for RunningListener {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.shutdown();
            if let Err(e) = self.wait() {
                error!("{e}");
            }
        }
    }
}
