//! The listener: accept, connection slots, one thread per connection, the Handler, shutdown
//! (the behaviour is documented on [`Listener`]). Each connection's protocol is a sans-I/O
//! [`Session`] (`session.rs`, answers built in `respond.rs`); its thread (`conn.rs`) only moves
//! bytes and time in and out.

mod accept;
mod builder;
mod config;
mod conn;
mod handler;
mod handshake;
mod proxied;
mod respond;
mod running;
mod session;
mod slots;
mod stats;
mod store;
mod store_stats;
mod tls;

use std::io;
use std::net::ToSocketAddrs;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use log::{debug, error, warn};

pub use builder::ListenerBuilder;
pub use config::{
    ListenerConfig, Overflow, DEFAULT_ACK_WRITE_TIMEOUT, DEFAULT_EVICT_AFTER,
    DEFAULT_FRAME_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES, DEFAULT_SHUTDOWN_GRACE, DEFAULT_STACK_SIZE, MAX_STACK_SIZE,
    MIN_STACK_SIZE,
};
pub use handler::{Handler, Message, Response};
pub use running::{RunningListener, ShutdownHandle};
pub use session::{CloseReason, Session, SessionStep};
pub use stats::ListenerStats;
pub use store::{OnStoreFailure, StoreHandler};
pub use store_stats::{StoreCounters, StoreStats};
pub use tls::TlsHandle;

use crate::error::{Error, Phase, Result};
use crate::store::Store;
use crate::transport::{Stream, TlsServer};
use accept::{configure, deny, finish, take_slot, ACCEPT_BACKOFF};
use handshake::Pending;
use slots::{Flags, Table};
use stats::{bump, Stats};

impl Listener {
    /// Checks the settings, prepares TLS and binds the listening socket.
    fn bind_addrs(
        addrs: io::Result<Vec<SocketAddr>>,
        mut config: ListenerConfig,
        acceptor: Option<TlsHandle>,
    ) -> Result<Listener> {
        let addrs =
            addrs.map_err(|e| Error::Config(format!("the listening address is not valid: {e}")))?;
        if addrs.is_empty() {
            return Err(Error::Config(
                "the listening address resolved to no address".into(),
            ));
        }
        config.validate()?;
        let tls = match (config.tls.take(), acceptor) {
            (_, Some(handle)) => Some(handle),
            (Some(tls), None) => Some(TlsHandle::new(Arc::new(TlsServer::new(&tls)?))),
            (None, None) => None,
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
            settings: Arc::new(config),
            tls,
            shared: Arc::new(Shared {
                stats: Arc::new(Stats::default()),
                stop: AtomicBool::new(false),
                slots: Table::default(),
                pending: Pending::default(),
                next_id: AtomicU64::new(1),
                local_addr,
            }),
        })
    }
}

/// State shared by the accept loop, the connection threads and the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stats: Arc<Stats>,
    stop: AtomicBool,
    pub(crate) slots: Table,
    /// TLS connections without a slot yet (in their handshake, or waiting for a slot).
    pub(crate) pending: Pending,
    next_id: AtomicU64,
    local_addr: SocketAddr,
}

impl Shared {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> ListenerStats {
        let mut stats = self.stats.snapshot();
        stats.handshakes_pending = self.pending.len() as u64;
        stats
    }
}

/// The blocking MLLP listener: accepts connections, hands every message to a [`Handler`] and
/// acknowledges it once the handler has returned.
///
/// # Settings
/// Every setting is a public field of [`ListenerConfig`], whose [`Default`] is the one set of
/// defaults; a listener is built one way, by [`Listener::builder`]: hand it the value
/// ([`ListenerBuilder::config`]) or fill it setter by setter. To save every message in a [`Store`] before acknowledging it, use
/// [`Listener::spawn_store`] (a [`StoreHandler`]; build one yourself for a
/// [store wait](StoreHandler::store_wait) or to close the connection instead of answering `AE`
/// when a store fails, [`OnStoreFailure`]).
///
/// # Threads
/// [`Listener::run`] runs the accept loop on the calling thread ([`Listener::spawn`] on a new
/// one). Every accepted connection is served by a thread of its own with a small stack
/// ([`ListenerBuilder::stack_size`], 128 KiB by default; buffers live on the heap), which
/// reads frames, calls the handler and writes the acknowledgements. The handler is therefore
/// called concurrently, once per connection at most at any time.
///
/// # Connection limits
/// At most [`max_connections`](ListenerBuilder::max_connections) connections are served at once
/// (10 by default). When all are taken, a new connection is either refused — accepted and
/// closed at once, and logged ([`Overflow::Refuse`], the default) — or left waiting
/// ([`Overflow::Backlog`]): the listener takes that one connection but does not serve it, and
/// stops accepting, so later ones wait in the kernel's backlog, until a slot frees.
///
/// ## Evicting the quietest connection
/// Before the overflow policy applies, a new connection takes the slot of the connection that
/// has gone longest without completing a frame, once that is at least
/// [`evict_after`](ListenerBuilder::evict_after) (5 s by default; `None` turns it off). Only
/// complete frames count as activity, so peers that connect and send nothing, trickle bytes or
/// send junk cannot hold every slot and keep real senders out, while a connection that has been
/// idle for hours is still served for as long as nobody needs its slot. A connection whose
/// message is being handled is never evicted, and an evicted connection hands no further
/// message to the handler: a frame it was sending is lost without an ACK, which its sender
/// handles as any unacknowledged message. Evictions are logged at warn with the evicted peer
/// and counted in [`ListenerStats::connections_evicted`].
///
/// ## TLS: the handshake comes before the slot
/// With TLS, a connection runs its handshake (within
/// [`handshake_timeout`](ListenerBuilder::handshake_timeout)) on its own thread before it takes
/// a slot: peers that open connections and stall in the handshake hold no slot and cannot keep
/// real senders out. At most [`max_handshakes`](ListenerBuilder::max_handshakes) (64)
/// connections are without a slot at once (in their handshake, or waiting for a slot after it
/// with [`Overflow::Backlog`]); when that many are, a new connection closes the oldest one
/// still in its handshake (a real client finishes in milliseconds, a stalled one never),
/// logged at info and counted in [`ListenerStats::handshakes_dropped`]. Only when every one of
/// them has finished its handshake is the newcomer refused instead
/// ([`ListenerStats::connections_refused`]).
///
/// ## Which peers may connect: allow lists and the PROXY protocol
/// With [`allow`](ListenerConfig::allow) blocks given, a peer outside all of them is closed at
/// once (no slot, no handshake), logged at info and counted in
/// [`ListenerStats::connections_denied`]. With
/// [`proxy_protocol_from`](ListenerConfig::proxy_protocol_from) blocks given, connections from
/// those proxies start with a PROXY protocol header (version 1 or 2), read before the TLS
/// handshake and before a slot like a handshake; the client it names is the peer from then on
/// (logs, [`Message::peer_addr`], stores, the allow list). A missing or malformed header from a
/// proxy, or a header from anyone else, closes the connection (warn,
/// [`ListenerStats::proxy_refused`]).
///
/// ## Keepalive
/// Accepted connections get TCP keepalive ([`ListenerConfig::keepalive`], on by default: first
/// probe after 5 minutes idle), so a sender that vanished frees its slot without a message.
///
/// ## Single-connection mode and replacing an idle connection
/// Most HL7 interfaces have exactly one sender per port. With `max_connections(1)` and
/// [`replace_idle(true)`](ListenerBuilder::replace_idle), a new connection that arrives while
/// the only slot holds a connection that is *idle* — no frame under way, no message being
/// handled — closes the old connection and is served at once. A sender whose connection died
/// silently (a cable pulled, a firewall that forgot the connection, a peer that crashed) can
/// thus come back immediately instead of being refused until TCP notices the old connection is
/// gone, which may take hours. A connection that is receiving a frame or whose message is being
/// handled is never replaced; the overflow policy then applies to the newcomer. A frame that
/// begins on the old connection in the very instant it is replaced is lost without an ACK, which
/// the sender handles as any unacknowledged message.
///
/// # Time limits
/// * **Frame timeout** (60 s by default): a frame must complete within this time of the first
///   byte received since the last completed frame, or the connection is closed. This cuts
///   peers that trickle bytes, stall mid-frame or send only junk: junk outside a frame starts
///   the clock and does not restart it. White space (CR, LF, space, tab, NUL) between frames
///   does not start it, so a sender that ends its frames with a line feed may stay idle.
/// * **Idle timeout** (none by default: long idle connections are normal in HL7): a connection
///   with no message for this long is closed.
/// * **Write timeout** (10 s): writing an acknowledgement to a peer that does not read.
/// * **Handshake timeout** (10 s): a TLS handshake.
///
/// The socket read timeout is set before every read to the nearest of these deadlines, so a
/// peer sending one byte per second is cut when the frame deadline passes, not when a single
/// read stalls.
///
/// # Acknowledgements
/// See [`Response`], [`ListenerConfig::reply`] and [`ListenerConfig::ack_mode`]. Special
/// cases, answered without calling the handler:
/// * a frame whose header cannot be read: an `AR` NAK from
///   [`build_nak_unparseable`](crate::hl7::build_nak_unparseable) (error code 100);
/// * a frame larger than the maximum message size: it is skipped, and answered with `AR`
///   (`CR` in enhanced mode) "message exceeds N bytes", error code 207, naming its control ID
///   when its header was readable; the connection stays up;
/// * a message not valid in its character set (MSH-18's, when it names a known one, else the
///   configured one), under [`Malformed::Reject`](crate::charset::Malformed::Reject), the default: `AE` (`CE`) whose text and ERR
///   segment name the byte offset of the first invalid sequence. Nothing is handed on, so
///   nothing is stored with replacement characters; [`Malformed::Replace`](crate::charset::Malformed::Replace) opts into U+FFFD.
///
/// With [`ReplyKind::Mllp2`](crate::hl7::ReplyKind::Mllp2) all of these are a negative commit
/// block (0x15).
///
/// An acknowledgement that would contain the frame end sequence (a header field echoed into it,
/// such as the control ID, ends with the first byte of that sequence) cannot be framed: it is
/// replaced by an `AR` that names no control ID, and the connection goes on.
///
/// # Shutdown
/// [`ShutdownHandle::shutdown`] (or [`RunningListener::shutdown`]) stops the accept loop, which
/// is woken by one loopback connection to the listener's own address. Every connection's socket
/// is then shut down for reading: a connection waiting for a message sees the end of the stream
/// and closes, while one whose handler is running finishes, writes its acknowledgement and
/// closes. After the grace period ([`ListenerBuilder::shutdown_grace`], 10 s) the remaining
/// connections are shut down in both directions. Threads are joined; a thread stuck in a
/// handler that never returns cannot be joined and is left behind (logged) so that `run` can
/// return.
///
/// # Logging
/// Events go through the `log` crate: connections at debug, refusals, idle timeouts at info,
/// frame timeouts, TLS failures, unreadable or oversized messages at warn, handler panics at
/// error. Message bodies are never logged; control IDs are.
///
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
    settings: Arc<ListenerConfig>,
    tls: Option<TlsHandle>,
    shared: Arc<Shared>,
}

impl Listener {
    /// A builder for a listener on `addr` (e.g. `"0.0.0.0:2575"`, `"127.0.0.1:0"` for any free
    /// port, or a [`SocketAddr`]). When the address resolves to several, the first that can be
    /// bound is used.
    pub fn builder(addr: impl ToSocketAddrs) -> ListenerBuilder {
        ListenerBuilder {
            addrs: addr.to_socket_addrs().map(Iterator::collect),
            config: ListenerConfig::default(),
            max_message_size: None,
            acceptor: None,
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
        self.shared.stats()
    }

    /// A handle to replace the TLS certificate while the listener runs (see [`TlsHandle`]);
    /// `None` for a plain TCP listener.
    pub fn tls_handle(&self) -> Option<TlsHandle> {
        self.tls.clone()
    }

    /// Serves connections on the calling thread, calling `handler` for every message, until
    /// [`ShutdownHandle::shutdown`] is called; then finishes as described in the
    /// [`Listener`](Listener) documentation and returns `Ok(())`.
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
        let cx = handshake::Context {
            shared: Arc::clone(&shared),
            settings: Arc::clone(&settings),
            handler: Arc::clone(&handler),
        };
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
            if let Err(e) = configure(&tcp, &settings) {
                warn!("connection {id} from {peer}: cannot configure the socket: {e}");
            }
            if !proxied::from_proxy(&settings, peer) && !proxied::allowed(&settings, peer) {
                deny(&shared, id, peer, &tcp);
                continue;
            }
            if tls.is_some() || proxied::needs_thread(&settings) {
                // The handshake comes before the slot, on the connection's thread.
                threads.extend(handshake::start(&cx, tls.as_ref(), tcp, id, peer));
                continue;
            }
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
            let conn_peer = conn::Peer {
                id,
                addr: peer,
                flags,
            };
            let (shared2, settings2, handler2) = (
                Arc::clone(&shared),
                Arc::clone(&settings),
                Arc::clone(&handler),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("mllp-conn-{id}"))
                .stack_size(settings.stack_size)
                .spawn(move || {
                    conn::serve(
                        &shared2,
                        &settings2,
                        &*handler2,
                        Stream::from(tcp),
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
        let tls = self.tls_handle();
        let thread = std::thread::Builder::new()
            .name("mllp-accept".into())
            .spawn(move || self.run(handler))
            .map_err(|e| Error::io(Phase::Accept, e))?;
        Ok(RunningListener {
            thread: Some(thread),
            handle,
            local_addr,
            tls,
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
    /// [`Store`](crate::Store) trait for an example.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn).
    pub fn spawn_store(self, store: impl Store) -> Result<RunningListener> {
        self.spawn(StoreHandler::new(store))
    }
}
