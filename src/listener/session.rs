//! The sans-I/O session of one accepted connection: bytes and the time in, steps out. The
//! listener's connection thread (`conn.rs`) is a thin driver that performs the steps on a
//! socket; tests drive it by hand with no socket and no clock.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::handler::Handler;
use super::respond::{Responder, Sent, Who};
use super::slots::Flags;
use super::stats::{bump, Stats};
use super::{ListenerConfig, ListenerStats};
use crate::error::{Error, FrameError, Phase};
use crate::inbuf::InBuf;
use crate::reader::DEFAULT_READ_CHUNK;

/// Why a [`Session`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection between messages.
    ByPeer,
    /// The listener is shutting down ([`Session::handle_stop`]).
    Stopping,
    /// A started frame did not complete within the frame timeout.
    FrameTimeout,
    /// Bytes outside any frame arrived, and no frame completed within the frame timeout of the
    /// first of them.
    JunkTimeout,
    /// Nothing arrived within the idle timeout of the last answer.
    IdleTimeout,
    /// Closed to make room for a new connection ([`Session::evict`]).
    Evicted,
    /// The handler answered [`Response::close`](crate::Response::close).
    HandlerClosed,
    /// Reading failed, or the stream ended inside a frame; the error's text.
    Failed(String),
    /// Writing the acknowledgement failed; the error's text.
    WriteFailed(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ByPeer => f.write_str("closed by the peer"),
            CloseReason::Stopping => f.write_str("the listener is shutting down"),
            CloseReason::FrameTimeout => f.write_str("frame timeout"),
            CloseReason::JunkTimeout => f.write_str("frame timeout (bytes outside any frame)"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::Evicted => f.write_str("closed to make room for a new connection"),
            CloseReason::HandlerClosed => {
                f.write_str("closed without an acknowledgement, as the handler asked")
            }
            CloseReason::Failed(e) => f.write_str(e),
            CloseReason::WriteFailed(e) => write!(f, "writing the acknowledgement failed: {e}"),
        }
    }
}

/// What the driver of a [`Session`] is to do next, from [`Session::poll`].
#[derive(Debug, PartialEq, Eq)]
pub enum SessionStep<'a> {
    /// Read from the peer into [`Session::read_buf`] and report with
    /// [`Session::handle_read`]. A read still waiting at `until` is to be abandoned (a read
    /// timeout) and `poll` called again: a deadline has passed.
    Read {
        /// The deadline of the read (frame or idle timeout), `None` for none.
        until: Option<Instant>,
    },
    /// A message is complete: call [`Session::handle_message`], which runs the handler.
    Handle,
    /// Write these bytes (a framed acknowledgement; none when it is suppressed) and report
    /// with [`Session::handle_written`].
    Write(&'a [u8]),
    /// Close the connection; the session is over.
    Close(&'a CloseReason),
}

/// Which deadline a read waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Frame,
    Idle,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages, or receiving one.
    Read,
    /// The frame at `start..end` of the input is to be handled.
    Handle { start: usize, end: usize },
    /// The acknowledgement in `out` is to be written.
    Write(Sent),
    /// Over.
    Closed,
}

/// The protocol of one connection of a [`Listener`](crate::Listener), without I/O.
///
/// The driver loops: it calls [`poll`](Self::poll) with the current time and performs the
/// [`SessionStep`]: read bytes into [`read_buf`](Self::read_buf) and report them with
/// [`handle_read`](Self::handle_read) (0 at the end of the stream), run the handler with
/// [`handle_message`](Self::handle_message), write the acknowledgement and report with
/// [`handle_written`](Self::handle_written), or close. The session keeps every rule of a
/// listener's connection:
///
/// - **frame timeout**: a frame started must complete within
///   [`frame_timeout`](ListenerConfig::frame_timeout) of its first byte; bytes outside any
///   frame start the same clock (white space between frames does not), so junk trickled in
///   cannot hold a connection;
/// - **idle timeout**: nothing for [`idle_timeout`](ListenerConfig::idle_timeout) after the
///   last answer closes the connection;
/// - **oversized frames** are skipped and answered with a reject naming the message when its
///   header can be read;
/// - **eviction**: once [`evict`](Self::evict) succeeded (the listener needs the slot), no
///   further frame is handled; a message being handled is never evicted;
/// - **shutdown**: after [`handle_stop`](Self::handle_stop) a message being handled is still
///   answered, then the session closes without reading another;
/// - **replies**: HL7 ACKs, MLLP release 2 commit blocks, custom or suppressed answers, as the
///   [`ListenerConfig`] and the [`Handler`] say.
///
/// Counters are the listener's ([`stats`](Self::stats) for a session made with
/// [`new`](Self::new)), and so are the log lines.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mllp::{ListenerConfig, Message, Response, Session, SessionStep};
///
/// let config = ListenerConfig::default();
/// let handler = |_: &Message<'_>| Response::accept();
/// let now = Instant::now();
/// let mut session = Session::new(&config, &handler, "127.0.0.1:4000".parse().unwrap(), now);
///
/// assert!(matches!(session.poll(now), SessionStep::Read { .. }));
/// session.handle_input(b"\x0bMSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|M1|P|2.5.1\r\x1c\r", now);
/// assert_eq!(session.poll(now), SessionStep::Handle);
/// session.handle_message();
/// let SessionStep::Write(ack) = session.poll(now) else { panic!("an ACK") };
/// assert!(ack.windows(10).any(|w| w == b"MSA|AA|M1\r"));
/// session.handle_written(Ok(()), now);
/// // Nothing more for the idle timeout (none by default): the session waits without deadline.
/// assert_eq!(session.poll(now), SessionStep::Read { until: None });
/// assert_eq!(session.stats().acks_aa, 1);
/// ```
pub struct Session<'h> {
    input: InBuf,
    respond: Responder<'h>,
    flags: Arc<Flags>,
    frame_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// When the first byte (not white space) since the last answer arrived.
    first_byte: Option<Instant>,
    /// When the last message was answered (or the session began).
    last_done: Instant,
    state: State,
    closed: Option<CloseReason>,
    /// The framed acknowledgement to write.
    out: Vec<u8>,
    /// The input's skipped bytes as last added to the counters.
    skipped: u64,
    stopping: bool,
    eof: bool,
}

impl fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.respond.peer.id)
            .field("peer", &self.respond.peer.addr)
            .field("state", &self.state)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<'h> Session<'h> {
    /// A session of a connection from `peer`, accepted at `now`, with counters of its own.
    pub fn new(
        config: &'h ListenerConfig,
        handler: &'h dyn Handler,
        peer: SocketAddr,
        now: Instant,
    ) -> Session<'h> {
        let who = Who {
            id: 1,
            addr: peer,
            tls_peer: None,
        };
        Session::serving(config, handler, Arc::default(), who, Arc::default(), now)
    }

    /// A session that counts into the listener's counters and shares its eviction flags.
    pub(crate) fn serving(
        config: &'h ListenerConfig,
        handler: &'h dyn Handler,
        stats: Arc<Stats>,
        peer: Who,
        flags: Arc<Flags>,
        now: Instant,
    ) -> Session<'h> {
        Session {
            input: InBuf::new(config.framing, DEFAULT_READ_CHUNK),
            respond: Responder {
                settings: config,
                stats,
                handler,
                peer,
                ack: Vec::with_capacity(512),
                handled: false,
            },
            flags,
            frame_timeout: config.frame_timeout,
            idle_timeout: config.idle_timeout,
            first_byte: None,
            last_done: now,
            state: State::Read,
            closed: None,
            out: Vec::new(),
            skipped: 0,
            stopping: false,
            eof: false,
        }
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, now: Instant) -> SessionStep<'_> {
        loop {
            match self.state {
                State::Closed => break,
                State::Handle { .. } => return SessionStep::Handle,
                State::Write(_) => return SessionStep::Write(&self.out),
                State::Read => {
                    if let Some(until) = self.read(now) {
                        return SessionStep::Read { until };
                    }
                }
            }
        }
        SessionStep::Close(self.closed.get_or_insert(CloseReason::ByPeer))
    }

    /// Looks for the next frame among the bytes received; returns the deadline of a read when
    /// more bytes are needed, or `None` after a change of state.
    fn read(&mut self, now: Instant) -> Option<Option<Instant>> {
        if self.stopping {
            self.close(CloseReason::Stopping);
            return None;
        }
        let next = if self.eof {
            self.input.finish()
        } else {
            self.input.next_frame()
        };
        self.count_skipped();
        match next {
            Ok(Some(_)) | Err(Error::Frame(FrameError::Oversized { .. })) if !self.begin() => {
                self.close(CloseReason::Evicted);
            }
            Ok(Some(frame)) => {
                self.state = State::Handle {
                    start: frame.start,
                    end: frame.end,
                };
            }
            Err(Error::Frame(FrameError::Oversized { max })) => {
                self.respond.ack.clear();
                self.respond.handled = false;
                let sent = self
                    .respond
                    .answer_oversized(self.input.oversized_header(), max);
                self.answered(sent);
            }
            Err(e) => self.close(CloseReason::Failed(e.to_string())),
            Ok(None) if self.eof => self.close(CloseReason::ByPeer),
            Ok(None) => match self.deadline() {
                Some((at, kind)) if now >= at => self.timed_out(kind),
                deadline => return Some(deadline.map(|(at, _)| at)),
            },
        }
        None
    }

    /// A frame is complete: records it, and starts handling it unless the connection has been
    /// closed to make room for another (then the frame must not be handled).
    fn begin(&self) -> bool {
        self.flags.frame_completed();
        self.flags.begin_handling()
    }

    /// The nearest deadline: the frame deadline while bytes of a message are arriving, else
    /// the idle deadline.
    fn deadline(&self) -> Option<(Instant, Deadline)> {
        match self.first_byte {
            Some(first) => self
                .frame_timeout
                .and_then(|t| first.checked_add(t))
                .map(|d| (d, Deadline::Frame)),
            None => self
                .idle_timeout
                .and_then(|t| self.last_done.checked_add(t))
                .map(|d| (d, Deadline::Idle)),
        }
    }

    /// A deadline has passed: counts it and closes.
    fn timed_out(&mut self, kind: Deadline) {
        let (stats, peer) = (&self.respond.stats, &self.respond.peer);
        let reason = match kind {
            Deadline::Frame if self.input.in_frame() => {
                bump(&stats.frame_timeouts);
                warn!(
                    "connection {} from {}: a started frame did not complete within {:?}; closing",
                    peer.id,
                    peer.addr,
                    self.frame_timeout.unwrap_or_default()
                );
                CloseReason::FrameTimeout
            }
            Deadline::Frame => {
                // Only bytes outside any frame arrived, and no frame completed within the frame
                // timeout of the first of them. Restarting the clock here would let a peer that
                // trickles junk hold its connection for ever.
                bump(&stats.frame_timeouts);
                warn!(
                    "connection {} from {}: bytes outside any frame and no complete frame within \
                     {:?}; closing",
                    peer.id,
                    peer.addr,
                    self.frame_timeout.unwrap_or_default()
                );
                CloseReason::JunkTimeout
            }
            Deadline::Idle => {
                bump(&stats.idle_timeouts);
                info!(
                    "connection {} from {}: idle for {:?}; closing",
                    peer.id,
                    peer.addr,
                    self.idle_timeout.unwrap_or_default()
                );
                CloseReason::IdleTimeout
            }
        };
        self.close(reason);
    }

    /// Adds the input's new skipped bytes to the counters.
    fn count_skipped(&mut self) {
        let skipped = self.input.stats().skipped_bytes;
        if skipped > self.skipped {
            let new = skipped - self.skipped;
            self.respond
                .stats
                .skipped_bytes
                .fetch_add(new, Ordering::Relaxed);
            self.skipped = skipped;
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.closed.get_or_insert(reason);
    }

    /// Free space to read into: at least one read chunk (8 KiB).
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.input.spare()
    }

    /// `n` bytes were read into [`read_buf`](Self::read_buf) at `now`; 0 means the peer closed
    /// its side.
    pub fn handle_read(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.eof = true;
            return;
        }
        self.respond
            .stats
            .received_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        let bytes = self.input.filled(n);
        // White space between frames (a line feed after the end sequence, padding) is not the
        // start of a message; anything else starts the frame clock.
        if self.first_byte.is_none() && !is_blank(bytes) {
            self.first_byte = Some(now);
            self.flags.receiving.store(true, Ordering::Release);
        }
    }

    /// Bytes received at `now`, copied in (a driver that owns its buffer; tests). Equivalent
    /// to reads of [`read_buf`](Self::read_buf)-sized pieces; the input grows to hold them
    /// until [`poll`](Self::poll) consumes them.
    pub fn handle_input(&mut self, mut bytes: &[u8], now: Instant) {
        while !bytes.is_empty() {
            let spare = self.input.spare();
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            self.handle_read(n, now);
            bytes = &bytes[n..];
        }
    }

    /// Hands the complete message to the handler and builds its answer; after
    /// [`SessionStep::Handle`]. The handler's panic is caught, counted and answered with an
    /// application error.
    pub fn handle_message(&mut self) {
        let State::Handle { start, end } = self.state else {
            return;
        };
        self.respond.ack.clear();
        self.respond.handled = false;
        let sent = self.respond.answer(self.input.bytes(start..end));
        self.answered(sent);
    }

    /// The answer is built: frames it for writing, or closes as the handler asked.
    fn answered(&mut self, sent: Sent) {
        let respond = &self.respond;
        match sent {
            Sent::Closed => {
                bump(&respond.stats.closed_unanswered);
                self.flags.end_handling();
                warn!(
                    "connection {} from {}: closing without an acknowledgement, as the handler \
                     asked",
                    respond.peer.id, respond.peer.addr
                );
                if respond.handled {
                    respond.acknowledged(false);
                }
                self.close(CloseReason::HandlerClosed);
                return;
            }
            Sent::Suppressed => {
                bump(&respond.stats.acks_suppressed);
                self.out.clear();
            }
            _ => {
                let framing = self.input.framing();
                if let Err(e) = framing.check_payload(&respond.ack) {
                    // Every answer was checked when built: this cannot happen, but never send
                    // a frame the peer would split.
                    self.flags.end_handling();
                    if respond.handled {
                        respond.acknowledged(false);
                    }
                    self.close(CloseReason::WriteFailed(Error::from(e).to_string()));
                    return;
                }
                self.out.clear();
                self.out.extend_from_slice(framing.start());
                self.out.extend_from_slice(&respond.ack);
                self.out.extend_from_slice(framing.end());
            }
        }
        self.state = State::Write(sent);
    }

    /// The acknowledgement was written at `now` (or failed); after [`SessionStep::Write`].
    /// The handler learns the outcome ([`Handler::acknowledged`]).
    pub fn handle_written(&mut self, result: io::Result<()>, now: Instant) {
        let State::Write(sent) = self.state else {
            return;
        };
        if result.is_ok() {
            sent.count(&self.respond.stats);
        }
        self.flags.end_handling();
        self.last_done = now;
        if self.input.in_frame() {
            // The next frame is already arriving.
            self.first_byte = Some(now);
        } else {
            self.first_byte = None;
            self.flags.receiving.store(false, Ordering::Release);
        }
        if self.respond.handled {
            self.respond.acknowledged(result.is_ok());
        }
        match result {
            Ok(()) => self.state = State::Read,
            Err(e) => {
                let e = Error::io(Phase::Write, e);
                self.close(CloseReason::WriteFailed(e.to_string()));
            }
        }
    }

    /// Reading failed: the session is over.
    pub fn handle_read_error(&mut self, error: io::Error) {
        self.close(CloseReason::Failed(
            Error::io(Phase::Read, error).to_string(),
        ));
    }

    /// The listener is stopping: a message being handled is still answered, then the session
    /// closes without reading another.
    pub fn handle_stop(&mut self) {
        self.stopping = true;
    }

    /// Closes the session to make room for a new connection, as the listener does when every
    /// slot is taken; refused (`false`) while a message is being handled or answered. Once it
    /// succeeded, no further message is handed to the handler.
    pub fn evict(&self) -> bool {
        self.flags.claim()
    }

    /// Whether a frame has begun or bytes not yet decoded are buffered.
    pub fn in_frame(&self) -> bool {
        self.input.in_frame()
    }

    /// The counters this session has added to (its own for a session made with
    /// [`new`](Self::new)).
    pub fn stats(&self) -> ListenerStats {
        self.respond.stats.snapshot()
    }
}

/// Whether `bytes` are only white space or NUL, which some peers send between frames.
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}
