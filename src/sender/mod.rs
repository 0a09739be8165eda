//! The blocking sender: connect lazily, send one message, await its correlated acknowledgement,
//! reconnect and resend within a retry policy. The protocol is the sans-I/O [`Exchange`]; this
//! module drives it over a [`Stream`].

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use crate::charset::Charset;
use crate::error::{is_timeout_kind, Error, Phase, Result, Timeout};
use crate::hl7::Ack;
use crate::transport::{self, peek_now, Keepalive, Peek, Stream, TlsClient, TlsConnector};
#[cfg(doc)]
use crate::{
    error::{FrameError, HeaderError, Outcome},
    retry::RetryPolicy,
};

mod check;
mod config;
mod exchange;
mod link;
mod reply;
mod stats;
mod transmit;

pub use config::{
    SenderBuilder, SenderConfig, Timeouts, DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDLE_CHECK, DEFAULT_WRITE_TIMEOUT,
};
pub use exchange::{Exchange, Transmit};
pub use link::Link;
pub use stats::SenderStats;

use config::check_addr;
use reply::Peer;

/// How many bytes one read of a reply asks for.
const READ_CHUNK: usize = 8 * 1024;

/// A blocking MLLP sender: sends one HL7 message at a time to one listener and returns its
/// acknowledgement.
///
/// ```
/// use std::net::TcpListener;
/// use mllp::{Connection, Framing, Sender};
/// use mllp::hl7::{AckBuilder, Disposition, Header};
///
/// // A tiny listener that acknowledges one message.
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?.to_string();
/// let peer = std::thread::spawn(move || -> mllp::Result<()> {
///     let (tcp, _) = listener.accept().expect("a connection");
///     let mut conn = Connection::new(tcp, Framing::default());
///     let mut ack = Vec::new();
///     if let Some(msg) = conn.read_frame()? {
///         AckBuilder::new(Disposition::Accept).build(&Header::parse(msg)?, &mut ack)?;
///     }
///     conn.write_frame(&ack)
/// });
///
/// let mut sender = Sender::builder(addr).build()?;
/// let ack = sender.send("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|MSG0001|P|2.5.1\rPID|1\r")?;
/// assert!(ack.is_success());
/// assert_eq!(ack.control_id, "MSG0001");
/// peer.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Connection
/// The sender connects on the first [`send`](Sender::send), trying every address the host name
/// resolves to, and keeps the connection for the following messages. Before writing on a
/// connection that has been idle for [`SenderConfig::idle_check`] (1 ms by default) or longer,
/// it checks without blocking whether the listener has closed it and, if so, connects again
/// first (this is not a failed attempt). Messages sent back to back make no such check: one
/// write and one read each, the system calls of a plain socket loop. A listener that closes
/// the connection right after each ACK races the next write either way; the write then fails,
/// and the message is sent again on a new connection within the retry policy.
///
/// # Correlation
/// Before writing a message, the sender discards every frame the peer has already sent: what
/// the last read brought after the previous reply, and, when the connection is checked (see
/// above) or the message's control ID repeats one of the last 16 written on the connection,
/// whatever is waiting on the socket (read without waiting). Such a frame answers no message
/// in flight — a late or doubled ACK of an earlier message — and must not be taken for the
/// reply to this one even when both messages carry the same control ID. Part of a frame waiting
/// there makes the sender connect again. (A frame that answers an earlier message with another
/// control ID is skipped by correlation, below, whenever it arrives.)
///
/// After writing a message, the sender reads reply frames until one carries the message's
/// control ID (MSH-10; for a batch, BHS-11 or FHS-11) in MSA-2. Acknowledgements for other
/// control IDs — late replies to earlier messages — and frames that are not acknowledgements are
/// logged and skipped. A reply larger than the framing's maximum message size fails the attempt
/// as soon as it passes the limit.
///
/// # Deadlines
/// Each attempt's phases end within their timeouts measured as wall time: connecting within
/// the connect timeout, writing the whole message within the write timeout, and the reply
/// within the ACK timeout after the write, however the peer's bytes arrive. Under TLS the
/// deadlines hold on the socket under the TLS layer, so a peer that trickles the bytes of one
/// TLS record, or reads one slowly, is bounded the same way.
///
/// The whole `send`, attempts and backoff included, ends within the total timeout when one is
/// set ([`Timeouts::total`]). Every deadline that passes is reported as [`Error::Timeout`]
/// (as the last error of [`Error::Delivery`]), never as an I/O error.
///
/// # Failures, retries and duplicates
/// After any I/O error, framing error, end of stream or timeout, the sender closes the
/// connection before doing anything else, so that a late acknowledgement can never be read as
/// the reply to a later message. It then waits according to its [`RetryPolicy`] (exponential
/// backoff with jitter), connects again and sends the same message again. `send` returns only
/// with an acknowledgement, or with [`Error::Delivery`] once the policy is exhausted; that
/// error's [`Outcome`] says whether the message certainly did not arrive
/// ([`Outcome::NotDelivered`]: it was never completely written) or may have
/// ([`Outcome::Unconfirmed`]: it was written at least once, but no acknowledgement came).
///
/// Delivery is therefore *at least once*: when a message reached the listener but its
/// acknowledgement was lost (the connection broke, or the ACK came after the ACK timeout), the
/// message is sent again with the same bytes, so the listener receives it twice. A listener
/// that must not process a message twice can recognise a repeat by its control ID (MSH-10),
/// which the sender never changes.
///
/// Certificate verification failures (certificate not trusted, not valid for the host name,
/// expired) and configuration errors are not retried: trying again cannot fix them. Other TLS
/// handshake failures, such as a connection cut during the handshake, are retried. The
/// decision is made on [`TlsError::kind`](crate::TlsError::kind).
///
/// # Negative acknowledgements
/// AE, AR, CE and CR are results, not errors: `send` returns them as `Ok(ack)` with
/// [`Ack::is_success`] false. With [`SenderBuilder::resend_on_reject`], AR and CR are answered by
/// sending the message again within the retry policy; with
/// [`ReplyKind::Mllp2`](crate::hl7::ReplyKind::Mllp2) a commit NAK always is. When the policy is
/// exhausted, the last negative acknowledgement is returned as `Ok`.
///
/// # Logging
/// Connections, reconnections, timeouts, skipped replies and negative acknowledgements are
/// logged through `log` with the peer address and the control ID. Message bodies are never
/// logged: they carry patient data.
pub struct Sender {
    addr: String,
    charset: Charset,
    connect_timeout: Duration,
    nodelay: bool,
    keepalive: Option<Keepalive>,
    tls: Option<Arc<dyn TlsConnector>>,
    link: Link,
    conn: Option<Stream>,
    /// The read buffer, allocated on the first read.
    buf: Vec<u8>,
}

impl Sender {
    /// Settings for a sender to `addr` (`host:port`), with the defaults
    /// ([`SenderConfig::default`]).
    pub fn builder(addr: impl Into<String>) -> SenderBuilder {
        SenderBuilder {
            addr: addr.into(),
            config: SenderConfig::default(),
        }
    }

    /// Checks `config` and makes a sender to `addr` (`host:port`). Nothing is connected yet.
    ///
    /// # Errors
    /// As for [`SenderBuilder::build`].
    pub(crate) fn with_config(addr: impl Into<String>, config: SenderConfig) -> Result<Sender> {
        let addr = addr.into();
        check_addr(&addr)?;
        config.validate()?;
        let tls = match (&config.tls_connector, &config.tls) {
            (Some(connector), _) => Some(Arc::clone(connector)),
            (None, Some(tls)) => Some(Arc::new(TlsClient::new(tls)?) as Arc<dyn TlsConnector>),
            (None, None) => None,
        };
        Ok(Sender {
            link: Link::new(addr.clone(), &config),
            addr,
            charset: config.charset,
            connect_timeout: config.timeouts.connect,
            nodelay: config.nodelay,
            keepalive: config.keepalive,
            tls,
            conn: None,
            buf: Vec::new(),
        })
    }

    /// Sends `message`, encoded to the configured character set, and returns its
    /// acknowledgement.
    ///
    /// Segments must already be separated by CR (`\r`); the text is sent as it is otherwise.
    ///
    /// # Errors
    /// Before anything is sent:
    /// * [`Error::Charset`] with [`CharsetError::Unmappable`](crate::CharsetError::Unmappable)
    ///   when a character cannot be represented in the character set (the error gives its
    ///   byte offset);
    /// * [`Error::Header`] when the message has no readable MSH (or FHS/BHS) header, or
    ///   [`HeaderError::MissingField`] when its control ID (MSH-10) is empty;
    /// * [`Error::Frame`] with [`FrameError::PayloadContainsEnd`] when the message contains the
    ///   frame end sequence.
    ///
    /// Then [`Error::Delivery`] when no acknowledgement arrived within the retry policy, with the
    /// [`Outcome`], the number of attempts and the last attempt's error. See the
    /// [type documentation](Sender) for retries and duplicates.
    pub fn send(&mut self, message: &str) -> Result<Ack> {
        let bytes: Cow<'_, [u8]> = self.charset.encode(message)?;
        self.send_bytes(&bytes)
    }

    /// Sends `message` as it is, without character conversion, and returns its
    /// acknowledgement.
    ///
    /// The header is read from the raw bytes for the control ID. Errors as for
    /// [`send`](Sender::send), except that there is no character set error.
    pub fn send_bytes(&mut self, message: &[u8]) -> Result<Ack> {
        self.deliver(message, true)
    }

    /// Sends `message` as it is and takes the next acknowledgement received as its reply,
    /// whatever its MSA-2: for testing a peer with input whose reply cannot be correlated (no
    /// readable header, an empty MSH-10). One attempt, no retry (a resend could not be told
    /// from the first send by its reply). The returned [`Ack`]'s `control_id` is what the peer
    /// put in MSA-2.
    ///
    /// # Errors
    /// As for [`send_bytes`](Sender::send_bytes), but for the header errors, which do not
    /// apply.
    pub fn send_uncorrelated(&mut self, message: &[u8]) -> Result<Ack> {
        self.deliver(message, false)
    }

    /// Counters since the sender was built.
    pub fn stats(&self) -> SenderStats {
        self.link.stats()
    }

    /// The address of the connected peer, or `None` when not connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.as_ref().and(self.link.peer_addr())
    }

    /// Whether the sender holds a connection. The peer may have closed it since; the next
    /// [`send`](Sender::send) checks when it has been idle (see [Connection](Sender#connection)).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The target address, as given to [`Sender::builder`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Resolves the target address now, as the next connection would, without connecting: for
    /// a program that must refuse to start with a destination it can never reach.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::Resolve`] when the name cannot be resolved or resolves to
    /// nothing.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>> {
        transport::resolve(&self.addr)
    }

    /// Closes the connection, if any. The next [`send`](Sender::send) connects again.
    pub fn close(&mut self) {
        if let Some(mut stream) = self.conn.take() {
            debug!(
                "closing the connection to {}",
                Peer(self.link.peer_addr(), &self.addr)
            );
            let _ = stream.shutdown();
        }
        self.link.handle_closed();
    }

    /// Drives one [`Exchange`] of `message` to its end over the connection.
    ///
    /// The clock is read once per step, after its system call: that time is passed to the
    /// exchange and is what the next step's deadline is measured from (in steady state three
    /// reads per message: the start, after the write, after the read).
    fn deliver(&mut self, message: &[u8], correlate: bool) -> Result<Ack> {
        if self.conn.is_none() && self.link.is_connected() {
            self.link.handle_closed();
        }
        let mut now = Instant::now();
        let mut ex = if correlate {
            Exchange::new(&mut self.link, message, now)?
        } else {
            Exchange::uncorrelated(&mut self.link, message, now)?
        };
        let conn = &mut self.conn;
        let buf = &mut self.buf;
        // Each step ends within its deadline, and the exchange ends within its attempts.
        loop {
            let deadline = ex.poll_timeout();
            match ex.poll_transmit() {
                Transmit::Done => return ex.take_result().unwrap_or(Err(Error::Closed)),
                Transmit::Close => *conn = None,
                Transmit::Connect => {
                    let connected = transport::dial(
                        &self.addr,
                        self.tls.as_deref(),
                        self.connect_timeout,
                        deadline,
                        self.nodelay,
                        self.keepalive.as_ref(),
                    );
                    now = Instant::now();
                    match connected {
                        Ok(stream) => {
                            let peer = stream.peer_addr().ok();
                            *conn = Some(stream);
                            ex.handle_connected(peer, now);
                        }
                        Err(e) => ex.handle_error(e, now),
                    }
                }
                Transmit::Drain => match conn.as_mut() {
                    Some(stream) => now = drain(stream, buf, &mut ex),
                    None => ex.handle_eof(now),
                },
                Transmit::Write(parts) => {
                    let Some(stream) = conn.as_mut() else {
                        ex.handle_eof(now);
                        continue;
                    };
                    let len = parts.iter().map(|p| p.len()).sum();
                    let written = match left(deadline, now) {
                        None => Err(Error::Timeout(Timeout::Write)),
                        Some(within) => {
                            stream.set_deadline_since(within, now);
                            write_parts(stream, parts).map_err(|e| Error::io(Phase::Write, e))
                        }
                    };
                    now = Instant::now();
                    match written {
                        Ok(()) => ex.handle_written(len, now),
                        Err(Error::Timeout(_)) => ex.handle_timeout(now),
                        Err(e) => ex.handle_error(e, now),
                    }
                }
                Transmit::Read => {
                    let Some(stream) = conn.as_mut() else {
                        ex.handle_eof(now);
                        continue;
                    };
                    match left(deadline, now) {
                        None => ex.handle_timeout(now),
                        Some(within) => {
                            stream.set_deadline_since(within, now);
                            now = read_into(stream, buf, &mut ex);
                        }
                    }
                }
                Transmit::Wait => {
                    if let Some(Some(delay)) = left(deadline, now) {
                        std::thread::sleep(delay);
                    }
                    now = Instant::now();
                    ex.handle_timeout(now);
                }
            }
        }
    }
}

/// The time left at `now` until `deadline`: `Some(None)` without a deadline, `None` when it
/// has passed.
fn left(deadline: Option<Instant>, now: Instant) -> Option<Option<Duration>> {
    match deadline {
        None => Some(None),
        Some(d) => {
            let left = d.saturating_duration_since(now);
            (!left.is_zero()).then_some(Some(left))
        }
    }
}

/// Writes every part, then flushes.
fn write_parts(stream: &mut Stream, parts: [&[u8]; 3]) -> io::Result<()> {
    if parts[1].is_empty() && parts[2].is_empty() {
        stream.write_all(parts[0])?;
    } else {
        crate::writer::write_all_vectored(stream, &parts)?;
    }
    stream.flush()
}

/// One read of the reply (waiting until the stream's deadline), reported to the exchange;
/// the time it was reported at.
fn read_into(stream: &mut Stream, buf: &mut Vec<u8>, ex: &mut Exchange<'_>) -> Instant {
    if buf.len() < READ_CHUNK {
        buf.resize(READ_CHUNK, 0);
    }
    let result = stream.read(buf);
    report_read(result, buf, ex)
}

/// One step of discarding what the peer sent before a write: reads without waiting. The
/// time it was reported at.
fn drain(stream: &mut Stream, buf: &mut Vec<u8>, ex: &mut Exchange<'_>) -> Instant {
    let peek = waiting(stream);
    let now = Instant::now();
    match peek {
        Peek::Closed => ex.handle_eof(now),
        Peek::Idle => ex.handle_drained(now),
        Peek::Data => {
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            let result = read_now(stream, buf);
            match result {
                Err(e) if is_timeout_kind(e.kind()) => ex.handle_drained(now),
                result => return report_read(result, buf, ex),
            }
        }
    }
    now
}

/// Reports one read to the exchange; the time it was reported at.
fn report_read(result: io::Result<usize>, buf: &[u8], ex: &mut Exchange<'_>) -> Instant {
    let now = Instant::now();
    match result {
        Ok(0) => ex.handle_eof(now),
        Ok(n) => ex.handle_input(&buf[..n], now),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) if is_timeout_kind(e.kind()) => ex.handle_timeout(now),
        Err(e) => ex.handle_error(Error::io(Phase::Read, e), now),
    }
    now
}

/// What is waiting on the socket, judged without blocking. Under TLS, records waiting are
/// processed first (session tickets are consumed, application data is kept for the next read,
/// an alert or `close_notify` means closed).
fn waiting(stream: &mut Stream) -> Peek {
    let peek = peek_now(stream.tcp());
    if peek == Peek::Data && stream.is_tls() && stream.peer_closed() {
        return Peek::Closed;
    }
    peek
}

/// One read without waiting.
fn read_now(stream: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    if !stream.is_tls() {
        // Bytes or the end of the stream are there: the read returns at once.
        return match peek_now(stream.tcp()) {
            Peek::Idle => Err(io::ErrorKind::WouldBlock.into()),
            Peek::Data | Peek::Closed => stream.read(buf),
        };
    }
    stream.set_deadline(None);
    stream.tcp().set_nonblocking(true)?;
    let result = stream.read(buf);
    stream.tcp().set_nonblocking(false)?;
    result
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("peer", &self.peer_addr())
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::config::check_addr;
    use super::reply::{classify, control_id, is_retryable, Id, Verdict};
    use super::*;
    use crate::error::{HeaderError, TlsError, TlsErrorKind};
    use crate::hl7::{ReplyKind, COMMIT_ACK, COMMIT_NAK};

    #[test]
    fn addresses_are_checked_without_resolving() {
        for good in [
            "localhost:2575",
            "127.0.0.1:1",
            "[::1]:2575",
            "no.such.host.invalid:9",
        ] {
            assert!(check_addr(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "  ",
            "localhost",
            "localhost:",
            ":2575",
            "host:0",
            "host:70000",
            "[]:1",
        ] {
            assert!(matches!(check_addr(bad), Err(Error::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn replies_are_classified_by_control_id() {
        let ack = b"MSH|^~\\&|B|B|A|A|20240101||ACK|9|P|2.5\rMSA|AA|42\r";
        assert!(matches!(
            classify(ack, Some(b"42"), ReplyKind::Hl7),
            Verdict::Reply(_)
        ));
        assert!(matches!(
            classify(ack, Some(b"43"), ReplyKind::Hl7),
            Verdict::Stale(b"42")
        ));
        assert!(matches!(
            classify(b"hello", Some(b"42"), ReplyKind::Hl7),
            Verdict::Junk(_)
        ));
        assert!(matches!(
            classify(COMMIT_ACK, Some(b"42"), ReplyKind::Hl7),
            Verdict::Junk(_)
        ));
        assert!(matches!(
            classify(COMMIT_NAK, Some(b"42"), ReplyKind::Mllp2),
            Verdict::Reply(_)
        ));
        assert!(matches!(
            classify(ack, Some(b"42"), ReplyKind::Mllp2),
            Verdict::Reply(_)
        ));
    }

    #[test]
    fn control_id_comes_from_msh10_or_the_batch_header() {
        assert_eq!(
            control_id(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X1|P|2.5\r").unwrap(),
            b"X1"
        );
        assert!(matches!(
            control_id(b"MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\r"),
            Err(Error::Header(HeaderError::MissingField { field: 10 }))
        ));
        assert!(matches!(
            control_id(b"PID|1\r"),
            Err(Error::Header(HeaderError::NoHeader))
        ));
        let batch = b"BHS|^~\\&|A|B|C|D|1||||B7\rMSH|^~\\&|A|B|C|D|1||ADT^A01|X1|P|2.5\rBTS|1\r";
        assert_eq!(control_id(batch).unwrap(), b"B7");
        assert!(matches!(
            control_id(b"FHS|^~\\&|A\rMSH|^~\\&|A|B|C|D|1||ADT^A01|X1|P|2.5\r"),
            Err(Error::Header(HeaderError::MissingField { field: 11 }))
        ));
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(is_retryable(&Error::Closed));
        assert!(is_retryable(&Error::Timeout(Timeout::Ack)));
        assert!(is_retryable(&Error::io(
            crate::error::Phase::Connect,
            std::io::ErrorKind::ConnectionRefused.into()
        )));
        assert!(!is_retryable(&Error::Config("x".into())));
        assert!(!is_retryable(&Error::Timeout(Timeout::Total)));
        // Decided on the kind, whatever the text says.
        let tls = |kind| Error::Tls(TlsError::new(kind, "the certificate", None));
        assert!(!is_retryable(&tls(TlsErrorKind::Certificate)));
        assert!(!is_retryable(&tls(TlsErrorKind::Config)));
        assert!(is_retryable(&tls(TlsErrorKind::Handshake)));
        assert!(is_retryable(&tls(TlsErrorKind::Io)));
    }

    #[test]
    fn sender_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Sender>();
    }

    #[test]
    fn ids_display_without_panicking_on_bad_bytes() {
        assert_eq!(Id(b"A\xFFB").to_string(), "A\u{FFFD}B");
    }
}
