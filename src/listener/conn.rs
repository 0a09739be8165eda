//! The per-connection loop: read a frame, hand it to the handler, write the acknowledgement.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::handler::{Handler, Kind, Message, Response};
use super::slots::{Flags, SlotGuard};
use super::stats::bump;
use super::{ListenerConfig, Shared};
use crate::charset::Charset;
use crate::connection::Connection;
use crate::error::{CharsetError, Error, FrameError, Timeout};
use crate::hl7::{
    build_nak_unparseable, salvage_control_id, AckBuilder, AckCode, Disposition, Header, ReplyKind,
};
use crate::hl7::{COMMIT_ACK, COMMIT_NAK};
use crate::reader::ReaderStats;
use crate::transport::{Stream, TlsPeer};

/// The error code of the NAK for an oversized message: HL7 table 0357 has no "message too
/// large" code, and 207 (application internal error) is its general "cannot process" code.
pub(crate) const OVERSIZED_ERROR_CODE: u16 = 207;

/// The text of the `AE` sent when the handler panics.
const PANIC_TEXT: &str = "application internal error";

/// Why a connection closed for a newcomer ends.
const EVICTED: &str = "closed to make room for a new connection";

/// The text of the `AR` sent when the acknowledgement would contain the frame end sequence.
const UNFRAMEABLE_TEXT: &str = "the message header holds bytes of the frame end sequence";

/// A connection's identity, fixed when it is accepted.
pub(crate) struct Peer {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) flags: Arc<Flags>,
}

/// Serves one accepted connection (over TLS: after its handshake) until it closes, fails,
/// times out or the listener stops. The connection's slot has been taken (and counted open)
/// before, and is freed here.
pub(crate) fn serve(
    shared: &Shared,
    settings: &ListenerConfig,
    handler: &dyn Handler,
    stream: Stream,
    peer: Peer,
) {
    let _slot = SlotGuard::new(shared, peer.id);
    let tls_peer = stream.tls_peer().cloned();
    let watched = Watched {
        stream,
        flags: Arc::clone(&peer.flags),
        frame_timeout: settings.frame_timeout,
        idle_timeout: settings.idle_timeout,
        first_byte: None,
        last_done: Instant::now(),
        fired: None,
        armed: None,
    };
    let mut conn = Connection::new(watched, settings.framing);
    let mut session = Session {
        shared,
        settings,
        handler,
        peer: &peer,
        tls_peer: tls_peer.as_ref(),
        ack: Vec::with_capacity(512),
        seen: ReaderStats::default(),
        handled: false,
    };
    let reason = session.run(&mut conn);
    debug!("connection {} from {} closed: {reason}", peer.id, peer.addr);
    let mut stream = conn.into_inner().stream;
    // The peer may already be gone; nothing to do about a failed close.
    let _ = stream.shutdown();
}

/// The state of one connection's loop.
struct Session<'a> {
    shared: &'a Shared,
    settings: &'a ListenerConfig,
    handler: &'a dyn Handler,
    peer: &'a Peer,
    tls_peer: Option<&'a TlsPeer>,
    /// The acknowledgement being built; reused for every message.
    ack: Vec<u8>,
    /// The reader's counters as last added to the listener's.
    seen: ReaderStats,
    /// Whether the handler answered the message being acknowledged.
    handled: bool,
}

/// What the connection does after a read.
enum Step {
    /// Write `ack` (unless empty: suppressed), then count it.
    Reply(Sent),
    /// A read timed out.
    TimedOut,
    /// Close the connection, for this reason.
    Close(String),
}

/// What kind of acknowledgement is in the buffer.
enum Sent {
    Code(AckCode),
    Commit(bool),
    Custom,
    Suppressed,
    /// No acknowledgement: the handler asked for the connection to be closed.
    Closed,
}

impl Session<'_> {
    /// The loop; returns why the connection ended.
    fn run(&mut self, conn: &mut Connection<Watched>) -> String {
        loop {
            if self.shared.stopping() {
                return "the listener is shutting down".into();
            }
            self.ack.clear();
            self.handled = false;
            let flags = Arc::clone(&self.peer.flags);
            let step = match conn.read_frame() {
                Ok(Some(_)) | Err(Error::Frame(FrameError::Oversized { .. }))
                    if !Self::begin(&flags) =>
                {
                    Step::Close(EVICTED.into())
                }
                Ok(Some(frame)) => Step::Reply(self.answer(frame)),
                Ok(None) => Step::Close("closed by the peer".into()),
                Err(Error::Frame(FrameError::Oversized { max })) => {
                    let header = conn.reader().oversized_header();
                    Step::Reply(self.answer_oversized(header, max))
                }
                Err(e) if e.is_timeout() => Step::TimedOut,
                Err(e) => Step::Close(e.to_string()),
            };
            self.sync_stats(conn.stats());
            match step {
                Step::Reply(Sent::Closed) => {
                    bump(&self.shared.stats.closed_unanswered);
                    self.peer.flags.end_handling();
                    warn!(
                        "connection {} from {}: closing without an acknowledgement, as the \
                         handler asked",
                        self.peer.id, self.peer.addr
                    );
                    if self.handled {
                        self.acknowledged(false);
                    }
                    return "closed without an acknowledgement, as the handler asked".into();
                }
                Step::Reply(sent) => {
                    let result = self.reply(conn, sent);
                    if self.handled {
                        self.acknowledged(result.is_ok());
                    }
                    if let Err(e) = result {
                        return format!("writing the acknowledgement failed: {e}");
                    }
                }
                Step::TimedOut => {
                    if let Some(reason) = self.timed_out(conn) {
                        return reason;
                    }
                }
                Step::Close(reason) => return reason,
            }
        }
    }

    /// A frame is complete: records it, and starts handling it unless the connection has been
    /// closed to make room for another (then the frame must not be handled).
    fn begin(flags: &Flags) -> bool {
        flags.frame_completed();
        flags.begin_handling()
    }

    /// Tells the handler its message's acknowledgement was written (or failed).
    fn acknowledged(&self, written: bool) {
        let (handler, id) = (self.handler, self.peer.id);
        if catch_unwind(AssertUnwindSafe(|| handler.acknowledged(id, written))).is_err() {
            bump(&self.shared.stats.handler_panics);
            error!(
                "connection {} from {}: the handler panicked after an acknowledgement",
                self.peer.id, self.peer.addr
            );
        }
    }

    /// Adds the reader's new skipped bytes to the listener's counters.
    fn sync_stats(&mut self, now: ReaderStats) {
        let read = now.bytes_read - self.seen.bytes_read;
        let stats = &self.shared.stats;
        stats.received_bytes.fetch_add(read, Ordering::Relaxed);
        let skipped = now.skipped_bytes - self.seen.skipped_bytes;
        if skipped > 0 {
            self.shared
                .stats
                .skipped_bytes
                .fetch_add(skipped, Ordering::Relaxed);
        }
        self.seen = now;
    }

    /// Writes the acknowledgement in `self.ack` (if any), counts it, and marks the connection
    /// as between messages.
    fn reply(&mut self, conn: &mut Connection<Watched>, sent: Sent) -> Result<(), Error> {
        let stats = &self.shared.stats;
        let result = match sent {
            Sent::Suppressed => {
                bump(&stats.acks_suppressed);
                Ok(())
            }
            sent => conn.write_frame(&self.ack).map(|()| match sent {
                Sent::Code(code) => stats.ack(code),
                Sent::Commit(true) => bump(&stats.commit_acks),
                Sent::Commit(false) => bump(&stats.commit_naks),
                Sent::Custom => bump(&stats.custom_acks),
                Sent::Suppressed | Sent::Closed => {}
            }),
        };
        let flags = &self.peer.flags;
        flags.end_handling();
        let in_frame = conn.in_frame();
        let watched = conn.get_mut();
        let now = Instant::now();
        watched.last_done = now;
        if in_frame {
            // The next frame is already arriving.
            watched.first_byte = Some(now);
        } else {
            watched.first_byte = None;
            flags.receiving.store(false, Ordering::Release);
        }
        result
    }

    /// A read timed out: finds out which deadline passed. Returns a reason to close, or `None`
    /// to go on reading.
    fn timed_out(&mut self, conn: &mut Connection<Watched>) -> Option<String> {
        let in_frame = conn.in_frame();
        let watched = conn.get_mut();
        match watched.fired.take() {
            Some(Timeout::Frame) if in_frame => {
                bump(&self.shared.stats.frame_timeouts);
                warn!(
                    "connection {} from {}: a started frame did not complete within {:?}; closing",
                    self.peer.id,
                    self.peer.addr,
                    self.settings.frame_timeout.unwrap_or_default()
                );
                Some("frame timeout".into())
            }
            Some(Timeout::Frame) => {
                // Only bytes outside any frame arrived, and no frame completed within the frame
                // timeout of the first of them. Restarting the clock here would let a peer that
                // trickles junk hold its connection for ever.
                bump(&self.shared.stats.frame_timeouts);
                warn!(
                    "connection {} from {}: bytes outside any frame and no complete frame within                      {:?}; closing",
                    self.peer.id,
                    self.peer.addr,
                    self.settings.frame_timeout.unwrap_or_default()
                );
                Some("frame timeout (bytes outside any frame)".into())
            }
            Some(_) => {
                bump(&self.shared.stats.idle_timeouts);
                info!(
                    "connection {} from {}: idle for {:?}; closing",
                    self.peer.id,
                    self.peer.addr,
                    self.settings.idle_timeout.unwrap_or_default()
                );
                Some("idle timeout".into())
            }
            None => None,
        }
    }

    /// Handles one frame and builds its acknowledgement into `self.ack`.
    fn answer(&mut self, frame: &[u8]) -> Sent {
        let header = match Header::parse(frame) {
            Ok(header) => header,
            Err(e) => {
                bump(&self.shared.stats.nak_unparseable);
                warn!(
                    "connection {} from {}: a message of {} bytes has no readable header ({e}); \
                     rejecting it",
                    self.peer.id,
                    self.peer.addr,
                    frame.len()
                );
                if self.settings.reply == ReplyKind::Mllp2 {
                    return self.commit(false);
                }
                build_nak_unparseable(
                    salvage_control_id(frame),
                    &format!("the message header cannot be read: {e}"),
                    &mut self.ack,
                );
                return Sent::Code(AckCode::ApplicationReject);
            }
        };
        let charset = self.charset(&header);
        let decoded = match charset.decode(frame, self.settings.malformed) {
            Ok(decoded) => decoded,
            Err(e) => {
                bump(&self.shared.stats.charset_errors);
                warn!(
                    "connection {} from {}: message {}: {e}; answering with an application error",
                    self.peer.id,
                    self.peer.addr,
                    header.control_id_text().unwrap_or_default()
                );
                let text = match e {
                    CharsetError::Malformed { at } => {
                        format!("the message is not valid {charset} (byte offset {at})")
                    }
                    other => other.to_string(),
                };
                let response = Response::error(text);
                return self.build(&header, charset, &response);
            }
        };
        if decoded.replaced > 0 {
            debug!(
                "connection {}: replaced {} malformed sequences with U+FFFD",
                self.peer.id, decoded.replaced
            );
        }
        let message = Message {
            raw: frame,
            text: &decoded.text,
            header,
            peer_addr: self.peer.addr,
            connection_id: self.peer.id,
            tls_peer: self.tls_peer,
            charset,
            replaced: decoded.replaced,
        };
        bump(&self.shared.stats.messages);
        self.handled = true;
        let handler = self.handler;
        let response = match catch_unwind(AssertUnwindSafe(|| handler.handle(&message))) {
            Ok(response) => response,
            Err(_) => {
                bump(&self.shared.stats.handler_panics);
                error!(
                    "connection {} from {}: the handler panicked on message {}; answering with an \
                     application error",
                    self.peer.id,
                    self.peer.addr,
                    message.control_id().unwrap_or("(no control ID)")
                );
                Response::error(PANIC_TEXT).error_code(207)
            }
        };
        self.build(&header, charset, &response)
    }

    /// Answers a frame that exceeded the maximum message size, from its first bytes.
    fn answer_oversized(&mut self, first_bytes: &[u8], max: usize) -> Sent {
        bump(&self.shared.stats.oversized_frames);
        let text = format!("message exceeds {max} bytes");
        let header = Header::parse(first_bytes).ok();
        warn!(
            "connection {} from {}: message {} exceeds the maximum size of {max} bytes; \
             rejecting it",
            self.peer.id,
            self.peer.addr,
            match header.as_ref().and_then(|h| h.control_id()) {
                Some(id) => String::from_utf8_lossy(id).into_owned(),
                None => "(header unreadable)".into(),
            }
        );
        match header {
            Some(header) => {
                let charset = self.charset(&header);
                let response = Response::reject(text).error_code(OVERSIZED_ERROR_CODE);
                self.build(&header, charset, &response)
            }
            None if self.settings.reply == ReplyKind::Mllp2 => self.commit(false),
            None => {
                build_nak_unparseable(salvage_control_id(first_bytes), &text, &mut self.ack);
                Sent::Code(AckCode::ApplicationReject)
            }
        }
    }

    /// The character set of a message: MSH-18 when detection is on, else the default.
    fn charset(&self, header: &Header<'_>) -> Charset {
        if self.settings.detect_msh18 {
            Charset::from_header(header, self.settings.charset)
        } else {
            self.settings.charset
        }
    }

    /// An MLLP release 2 commit block.
    fn commit(&mut self, accept: bool) -> Sent {
        self.ack
            .extend_from_slice(if accept { COMMIT_ACK } else { COMMIT_NAK });
        Sent::Commit(accept)
    }

    /// Builds the acknowledgement for `response` into `self.ack`.
    fn build(&mut self, header: &Header<'_>, charset: Charset, response: &Response) -> Sent {
        let (disposition, text) = match &response.kind {
            Kind::Custom(payload) => match self.settings.framing.check_payload(payload) {
                Ok(()) => {
                    self.ack.extend_from_slice(payload);
                    return Sent::Custom;
                }
                Err(e) => {
                    error!(
                        "connection {}: the handler's custom acknowledgement cannot be sent ({e}); \
                         answering with an application error",
                        self.peer.id
                    );
                    (Disposition::Error, Some(PANIC_TEXT))
                }
            },
            Kind::Answer { disposition, text } => (*disposition, text.as_deref()),
            Kind::Close => return Sent::Closed,
        };
        if self.settings.reply == ReplyKind::Mllp2 {
            return self.commit(disposition == Disposition::Accept);
        }
        let mut builder = AckBuilder::new(disposition)
            .mode(self.settings.ack_mode)
            .charset(charset);
        if let Some(code) = response.error_code {
            builder = builder.error_code(code);
        }
        let code = builder.code(header);
        let built = match text {
            Some(text) => builder
                .text(text)
                .build(header, &mut self.ack)
                .or_else(|e| {
                    warn!(
                    "connection {}: the acknowledgement text cannot be sent in {charset} ({e}); \
                     sending it without text",
                    self.peer.id
                );
                    builder.build(header, &mut self.ack)
                }),
            None => builder.build(header, &mut self.ack),
        };
        match built {
            Ok(true) => {
                // Fields echoed from the message (MSA-2, the swapped MSH fields) may end with the
                // first byte of the end sequence, which the segment's CR then completes. Such an
                // ACK cannot be framed; answer with a NAK that echoes nothing, so the connection
                // stays in step instead of failing on the write.
                if let Err(e) = self.settings.framing.check_payload(&self.ack) {
                    warn!(
                        "connection {} from {}: the acknowledgement would contain the frame end \
                         sequence ({e}); rejecting the message without naming it",
                        self.peer.id, self.peer.addr
                    );
                    self.ack.clear();
                    build_nak_unparseable(None, UNFRAMEABLE_TEXT, &mut self.ack);
                    return Sent::Code(AckCode::ApplicationReject);
                }
                Sent::Code(code)
            }
            Ok(false) => Sent::Suppressed,
            Err(e) => {
                // Without a text nothing needs encoding; this cannot happen, but answer anyway.
                error!(
                    "connection {}: the acknowledgement cannot be built ({e})",
                    self.peer.id
                );
                self.ack.clear();
                build_nak_unparseable(None, PANIC_TEXT, &mut self.ack);
                Sent::Code(AckCode::ApplicationReject)
            }
        }
    }
}

/// The connection's stream, watched: it records when bytes arrive (for single-connection
/// replacement and the frame deadline) and sets the socket's read timeout to the nearest
/// deadline before every read.
pub(crate) struct Watched {
    stream: Stream,
    flags: Arc<Flags>,
    frame_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// When the first byte since the last completed message arrived.
    first_byte: Option<Instant>,
    /// When the last message was answered (or the connection began).
    last_done: Instant,
    /// The deadline that passed, when a read failed because of it.
    fired: Option<Timeout>,
    /// The read timeout currently set on the socket.
    armed: Option<Duration>,
}

impl Watched {
    /// The nearest deadline: the frame deadline while bytes of a message are arriving, else the
    /// idle deadline.
    fn deadline(&self) -> Option<(Instant, Timeout)> {
        match self.first_byte {
            Some(first) => self
                .frame_timeout
                .and_then(|t| first.checked_add(t))
                .map(|d| (d, Timeout::Frame)),
            None => self
                .idle_timeout
                .and_then(|t| self.last_done.checked_add(t))
                .map(|d| (d, Timeout::Idle)),
        }
    }

    fn arm(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout != self.armed {
            self.stream.set_read_timeout(timeout)?;
            self.armed = timeout;
        }
        Ok(())
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.deadline();
        match deadline {
            Some((at, kind)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.fired = Some(kind);
                    return Err(io::ErrorKind::TimedOut.into());
                }
                // Socket timeouts have millisecond granularity; never arm a zero timeout.
                self.arm(Some(left.max(Duration::from_millis(1))))?;
            }
            None => self.arm(None)?,
        }
        let result = self.stream.read(buf);
        match &result {
            // White space between frames (a line feed after the end sequence, padding) is not
            // the start of a message; anything else starts the frame clock.
            Ok(n) if *n > 0 && self.first_byte.is_none() && !is_blank(&buf[..*n]) => {
                self.first_byte = Some(Instant::now());
                self.flags.receiving.store(true, Ordering::Release);
            }
            Err(e) if crate::error::is_timeout_kind(e.kind()) => {
                if let Some((at, kind)) = deadline {
                    if Instant::now() >= at {
                        self.fired = Some(kind);
                    }
                }
            }
            _ => {}
        }
        result
    }
}

impl Write for Watched {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Whether `bytes` are only white space or NUL, which some peers send between frames.
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}
