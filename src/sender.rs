//! The blocking sender: connect lazily, send one message, await its correlated acknowledgement,
//! reconnect and resend within a retry policy.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::charset::Charset;
use crate::connection::Connection;
use crate::error::{is_timeout_kind, Error, FrameError, HeaderError, Outcome, Result, Timeout};
use crate::framing::Framing;
use crate::hl7::{ack_control_id, Ack, AckCode, AckKind, Header, COMMIT_ACK, COMMIT_NAK};
use crate::retry::{Backoff, Jitter, RetryPolicy};
use crate::transport::{self, peek_now, Peek, Stream, TlsClient, TlsClientConfig};

/// The default connect timeout (TCP connect plus TLS handshake): 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default ACK timeout: 30 s.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The default write timeout: 10 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the peer answers a message with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// An HL7 acknowledgement message (MSA segment) whose MSA-2 echoes the message's control ID.
    /// The default.
    #[default]
    Ack,
    /// MLLP release 2: a commit block, [`COMMIT_ACK`] or [`COMMIT_NAK`]. A commit NAK is
    /// answered by sending the message again within the retry policy. An HL7 acknowledgement
    /// whose MSA-2 matches is accepted as well.
    Commit,
}

/// Counters kept by a [`Sender`]. Reading them is a copy of a few integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Calls to `send` that returned a reply (positive or negative).
    pub messages: u64,
    /// Calls to `send` that failed with [`Error::Delivery`].
    pub failures: u64,
    /// Frames written completely, resends included.
    pub frames_written: u64,
    /// Positive replies received (AA, CA, commit ACK).
    pub acks: u64,
    /// Negative replies received (AE, AR, CE, CR, commit NAK), including those answered by a
    /// resend.
    pub negative_acks: u64,
    /// Attempts after the first, over all messages.
    pub retries: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections established to replace one that was lost (closed by the peer, or closed by
    /// the sender after an error or timeout).
    pub reconnects: u64,
    /// ACK timeouts.
    pub ack_timeouts: u64,
    /// Reply frames skipped while waiting for an acknowledgement (ACKs for other control IDs,
    /// frames that are not ACKs), and frames found waiting before a message was written, which
    /// answer no message in flight (late or doubled ACKs) and are discarded.
    pub skipped_frames: u64,
}

/// Settings for a [`Sender`]; made by [`Sender::builder`].
#[derive(Debug, Clone)]
pub struct SenderBuilder {
    addr: String,
    framing: Framing,
    charset: Charset,
    connect_timeout: Duration,
    ack_timeout: Duration,
    write_timeout: Duration,
    nodelay: bool,
    tls: Option<TlsClientConfig>,
    retry: RetryPolicy,
    reply: ReplyMode,
    resend_on_reject: bool,
}

impl SenderBuilder {
    /// Framing settings (default [`Framing::default`]: `0x0B` … `0x1C 0x0D`, 16 MiB replies at
    /// most).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// The character set messages given to [`Sender::send`] as text are encoded to (default
    /// UTF-8). [`Sender::send_bytes`] sends bytes unchanged.
    pub fn charset(mut self, charset: Charset) -> Self {
        self.charset = charset;
        self
    }

    /// How long connecting may take, the TLS handshake included (default 10 s). Each resolved
    /// address gets this long for its TCP connect.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the acknowledgement after the message was written (default 30 s).
    ///
    /// This is wall time for the whole wait, however the reply's bytes arrive: a peer that
    /// sends one byte at a time, or junk, or a frame that never ends, cannot stretch it.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long writing one message may take, from its first byte to its last (default 10 s).
    ///
    /// This is wall time for the whole write: a peer that reads slowly, a little at a time,
    /// cannot stretch it.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Whether to set `TCP_NODELAY`, so that each frame leaves at once (default `true`).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Connects with TLS (default: plain TCP). The server certificate is verified against the
    /// host name of the address unless the configuration names another one.
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]: 5 attempts, 250 ms doubling).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// What the peer answers with (default [`ReplyMode::Ack`]).
    pub fn reply_mode(mut self, mode: ReplyMode) -> Self {
        self.reply = mode;
        self
    }

    /// MLLP release 2: shorthand for [`reply_mode`](Self::reply_mode) with
    /// [`ReplyMode::Commit`] (`true`) or [`ReplyMode::Ack`] (`false`).
    pub fn mllp2(self, on: bool) -> Self {
        self.reply_mode(if on {
            ReplyMode::Commit
        } else {
            ReplyMode::Ack
        })
    }

    /// Whether an AR or CR acknowledgement makes the sender send the message again, within the
    /// retry policy (default `false`: it is returned to the caller at once). AE and CE are
    /// always returned: they report a problem with the message itself.
    pub fn resend_on_reject(mut self, resend: bool) -> Self {
        self.resend_on_reject = resend;
        self
    }

    /// Checks the settings and makes the sender. Nothing is connected yet.
    ///
    /// # Errors
    /// [`Error::Config`] for an address without a host or a valid port, a zero timeout or an
    /// invalid retry policy; [`Error::Tls`] when a CA certificate or the client identity cannot
    /// be read (or [`Error::Config`] when TLS is asked for in a build without the `tls`
    /// feature).
    pub fn build(self) -> Result<Sender> {
        check_addr(&self.addr)?;
        for (name, t) in [
            ("connect", self.connect_timeout),
            ("ACK", self.ack_timeout),
            ("write", self.write_timeout),
        ] {
            if t.is_zero() {
                return Err(Error::Config(format!(
                    "the {name} timeout must be greater than zero"
                )));
            }
        }
        self.retry.validate()?;
        let tls = match &self.tls {
            Some(config) => Some(TlsClient::new(config)?),
            None => None,
        };
        Ok(Sender {
            addr: self.addr,
            framing: self.framing,
            charset: self.charset,
            connect_timeout: self.connect_timeout,
            ack_timeout: self.ack_timeout,
            write_timeout: self.write_timeout,
            nodelay: self.nodelay,
            tls,
            retry: self.retry,
            reply: self.reply,
            resend_on_reject: self.resend_on_reject,
            conn: None,
            peer: None,
            lost: false,
            jitter: Jitter::new(),
            stats: SenderStats::default(),
        })
    }
}

/// Checks that `addr` looks like `host:port`, without resolving it.
fn check_addr(addr: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "{addr:?} is not a host:port address: {why}"
        )))
    };
    if addr.trim().is_empty() {
        return Err(Error::Config("the address is empty".into()));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("the port is missing");
    };
    if host.is_empty() || host == "[]" {
        return bad("the host is missing");
    }
    match port.parse::<u16>() {
        Ok(0) => bad("port 0 cannot be connected to"),
        Ok(_) => Ok(()),
        Err(_) => bad("the port is not a number from 1 to 65535"),
    }
}

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
/// connection that has been idle, it checks without blocking whether the listener has closed it
/// and, if so, connects again first (this is not a failed attempt).
///
/// # Correlation
/// Before writing a message, the sender discards every frame the peer has already sent (read
/// without waiting): it answers no message in flight, such as a late or doubled ACK of the
/// previous message, and must not be taken for the reply to this one even when both messages
/// carry the same control ID. Part of a frame waiting there makes the sender connect again.
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
/// handshake failures, such as a connection cut during the handshake, are retried.
///
/// # Negative acknowledgements
/// AE, AR, CE and CR are results, not errors: `send` returns them as `Ok(ack)` with
/// [`Ack::is_success`] false. With [`SenderBuilder::resend_on_reject`], AR and CR are answered by
/// sending the message again within the retry policy; in [`ReplyMode::Commit`] a commit NAK
/// always is. When the policy is exhausted, the last negative acknowledgement is returned as
/// `Ok`.
///
/// # Logging
/// Connections, reconnections, timeouts, skipped replies and negative acknowledgements are
/// logged through `log` with the peer address and the control ID. Message bodies are never
/// logged: they carry patient data.
pub struct Sender {
    addr: String,
    framing: Framing,
    charset: Charset,
    connect_timeout: Duration,
    ack_timeout: Duration,
    write_timeout: Duration,
    nodelay: bool,
    tls: Option<TlsClient>,
    retry: RetryPolicy,
    reply: ReplyMode,
    resend_on_reject: bool,
    conn: Option<Connection<Timed>>,
    peer: Option<SocketAddr>,
    /// A connection was lost since the last one was made: the next connect is a reconnect.
    lost: bool,
    jitter: Jitter,
    stats: SenderStats,
}

/// The most frames discarded before one write; a peer that sends more is left.
const MAX_STALE_FRAMES: usize = 64;

/// How the reads of a [`Timed`] stream behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Reads wait until the deadline, and each read that returns bytes is followed by one
    /// `WouldBlock`, so that the caller looks at the deadline and the frame in progress between
    /// two reads.
    Wait,
    /// Reads never wait: `WouldBlock` as soon as nothing more can be read at once.
    Drain,
}

/// The sender's stream: a [`Stream`] whose reads and writes end at the deadline of the phase
/// they belong to (writing a message, awaiting its reply), not merely after a time without
/// progress. The deadline is the stream's own ([`Stream::set_deadline`]), enforced on the TCP
/// socket under TLS as well; this adds the read behaviour of each phase ([`Mode`]).
#[derive(Debug)]
struct Timed {
    stream: Stream,
    mode: Mode,
    /// A read returned bytes: the next one returns `WouldBlock` (in [`Mode::Wait`]).
    yield_next: bool,
}

impl Timed {
    fn new(stream: Stream) -> Timed {
        Timed {
            stream,
            mode: Mode::Wait,
            yield_next: false,
        }
    }

    /// Starts a phase that must end within `timeout` from now.
    fn begin(&mut self, mode: Mode, timeout: Duration) {
        self.mode = mode;
        self.stream.set_deadline(Some(timeout));
        self.yield_next = false;
    }

    /// Whether the current phase's deadline has passed.
    fn expired(&self) -> bool {
        self.stream.deadline_passed()
    }

    /// What is waiting on the socket, judged without blocking. Under TLS, records waiting are
    /// processed first (session tickets are consumed, application data is kept for the next
    /// read, an alert or `close_notify` means closed).
    fn waiting(&mut self) -> Peek {
        let peek = peek_now(self.stream.tcp());
        if peek == Peek::Data && self.stream.is_tls() && self.stream.peer_closed() {
            return Peek::Closed;
        }
        peek
    }

    /// One read without waiting.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.stream.is_tls() {
            // Bytes or the end of the stream are there: the read returns at once.
            return match peek_now(self.stream.tcp()) {
                Peek::Idle => Err(io::ErrorKind::WouldBlock.into()),
                Peek::Data | Peek::Closed => self.stream.read(buf),
            };
        }
        self.stream.tcp().set_nonblocking(true)?;
        let result = self.stream.read(buf);
        self.stream.tcp().set_nonblocking(false)?;
        result
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.mode == Mode::Drain {
            return self.read_now(buf);
        }
        if std::mem::take(&mut self.yield_next) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.stream.read(buf)?;
        self.yield_next = n > 0;
        Ok(n)
    }
}

impl Write for Timed {
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

/// What one attempt ended with.
enum Attempt {
    /// A reply to the message.
    Reply(Ack),
    /// A failure; `written` tells whether the whole frame had been written.
    Failed { error: Error, written: bool },
}

/// What a reply frame is, for the message awaiting its acknowledgement.
enum Verdict<'f> {
    /// The reply to the message.
    Reply,
    /// An acknowledgement for another control ID.
    Stale(&'f [u8]),
    /// Not an acknowledgement this sender can use.
    Junk,
}

impl Sender {
    /// Settings for a sender to `addr` (`host:port`), with the defaults.
    pub fn builder(addr: impl Into<String>) -> SenderBuilder {
        SenderBuilder {
            addr: addr.into(),
            framing: Framing::default(),
            charset: Charset::UTF_8,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            nodelay: true,
            tls: None,
            retry: RetryPolicy::default(),
            reply: ReplyMode::Ack,
            resend_on_reject: false,
        }
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
        let id = control_id(message)?;
        self.framing.check_payload(message)?;
        self.deliver(message, id)
    }

    /// Counters since the sender was built.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// The address of the connected peer, or `None` when not connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.as_ref().and(self.peer)
    }

    /// Whether the sender holds a connection. The peer may have closed it since; the next
    /// [`send`](Sender::send) checks.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The target address, as given to [`Sender::builder`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Closes the connection, if any. The next [`send`](Sender::send) connects again.
    pub fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            debug!("closing the connection to {}", Peer(self.peer, &self.addr));
            let _ = conn.get_mut().stream.shutdown();
        }
        self.peer = None;
    }

    /// Sends `payload` until it is acknowledged or the retry policy is exhausted.
    fn deliver(&mut self, payload: &[u8], id: &[u8]) -> Result<Ack> {
        let mut backoff = Backoff::start(self.retry);
        let mut written_any = false;
        loop {
            if backoff.begin() > 1 {
                self.stats.retries += 1;
            }
            let error = match self.attempt(payload, id) {
                Attempt::Reply(ack) if !self.should_resend(&ack) => {
                    self.stats.messages += 1;
                    return Ok(ack);
                }
                Attempt::Reply(ack) => {
                    let Some(delay) = backoff.next_delay(&mut self.jitter) else {
                        warn!(
                            "message {} was answered with {} {} time(s); returning the last answer",
                            Id(id),
                            ack.code,
                            backoff.attempts()
                        );
                        self.stats.messages += 1;
                        return Ok(ack);
                    };
                    info!(
                        "sending message {} to {} again in {} ms after {}",
                        Id(id),
                        Peer(self.peer, &self.addr),
                        delay.as_millis(),
                        ack.code
                    );
                    std::thread::sleep(delay);
                    continue;
                }
                Attempt::Failed { error, written } => {
                    // Close first: nothing read on this connection may be taken for a reply to a
                    // later message.
                    self.drop_connection();
                    written_any |= written;
                    error
                }
            };
            let delay = if is_retryable(&error) {
                backoff.next_delay(&mut self.jitter)
            } else {
                None
            };
            let Some(delay) = delay else {
                let outcome = if written_any {
                    Outcome::Unconfirmed
                } else {
                    Outcome::NotDelivered
                };
                warn!(
                    "message {} to {} {} after {} attempt(s): {}",
                    Id(id),
                    self.addr,
                    outcome,
                    backoff.attempts(),
                    error
                );
                self.stats.failures += 1;
                return Err(Error::Delivery {
                    outcome,
                    attempts: backoff.attempts(),
                    last: Box::new(error),
                });
            };
            warn!(
                "attempt {} to send message {} to {} failed ({}); trying again in {} ms",
                backoff.attempts(),
                Id(id),
                self.addr,
                error,
                delay.as_millis()
            );
            std::thread::sleep(delay);
        }
    }

    /// Whether a reply asks for the message to be sent again.
    fn should_resend(&self, ack: &Ack) -> bool {
        match ack.code {
            AckCode::CommitReject if ack.kind == AckKind::Commit => true,
            AckCode::ApplicationReject | AckCode::CommitReject => self.resend_on_reject,
            _ => false,
        }
    }

    /// One attempt: connect if needed, write, await the reply.
    fn attempt(&mut self, payload: &[u8], id: &[u8]) -> Attempt {
        if let Err(error) = self.ensure_connected() {
            return Attempt::Failed {
                error,
                written: false,
            };
        }
        let Some(conn) = self.conn.as_mut() else {
            return Attempt::Failed {
                error: Error::Closed,
                written: false,
            };
        };
        // `send_bytes` checked the payload before the first attempt.
        conn.get_mut().begin(Mode::Wait, self.write_timeout);
        if let Err(error) = conn.write_checked_frame(payload) {
            return Attempt::Failed {
                error: write_error(error),
                written: false,
            };
        }
        self.stats.frames_written += 1;
        match self.await_reply(id) {
            Ok(ack) => Attempt::Reply(ack),
            Err(error) => Attempt::Failed {
                error,
                written: true,
            },
        }
    }

    /// Makes sure there is a connection the peer has not closed, with nothing waiting on it.
    fn ensure_connected(&mut self) -> Result<()> {
        if self.conn.is_some() {
            if self.discard_stale() {
                return Ok(());
            }
            self.drop_connection();
        }
        self.connect()
    }

    /// Discards, without waiting, every frame the peer sent since the last reply: none of them
    /// answers the message about to be written. Returns `false` when the connection must be
    /// replaced: the peer closed it, or left part of a frame, or sent too much.
    fn discard_stale(&mut self) -> bool {
        let peer = Peer(self.peer, &self.addr);
        let write_timeout = self.write_timeout;
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match conn.get_mut().waiting() {
            Peek::Closed => {
                info!("{peer} closed the idle connection; connecting again");
                return false;
            }
            Peek::Idle if !conn.in_frame() => return true,
            Peek::Idle | Peek::Data => {}
        }
        conn.get_mut().begin(Mode::Drain, write_timeout);
        for _ in 0..MAX_STALE_FRAMES {
            match conn.read_frame() {
                Ok(Some(frame)) => {
                    self.stats.skipped_frames += 1;
                    match ack_control_id(frame) {
                        Some(id) => warn!(
                            "discarded an ACK from {peer} for message {} that arrived after its \
                             reply: it answers no message in flight",
                            Id(id)
                        ),
                        None => warn!(
                            "discarded a {}-byte frame from {peer} that answers no message in \
                             flight",
                            frame.len()
                        ),
                    }
                }
                Ok(None) => {
                    info!("{peer} closed the idle connection; connecting again");
                    return false;
                }
                Err(e) if e.is_timeout() => {
                    if conn.in_frame() {
                        warn!(
                            "{peer} sent part of a frame that answers no message in flight; \
                             connecting again"
                        );
                        return false;
                    }
                    return true;
                }
                Err(Error::Frame(FrameError::Oversized { max })) => {
                    self.stats.skipped_frames += 1;
                    warn!("discarded a frame from {peer} larger than {max} bytes");
                }
                Err(e) => {
                    warn!("reading what {peer} sent on the idle connection failed ({e}); connecting again");
                    return false;
                }
            }
        }
        warn!("{peer} keeps sending frames that answer no message; connecting again");
        false
    }

    /// Connects to the target address, with TLS when configured.
    fn connect(&mut self) -> Result<()> {
        let started = Instant::now();
        let addrs = transport::resolve(&self.addr)?;
        let tcp = transport::connect_any(&addrs, self.connect_timeout, self.nodelay)?;
        let peer = tcp.peer_addr().ok();
        let stream = match &self.tls {
            None => Stream::from(tcp),
            Some(tls) => {
                let left = self.connect_timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Error::Timeout(Timeout::Connect));
                }
                tls.connect(transport::host_of(&self.addr), tcp, left)?
            }
        };
        self.stats.connects += 1;
        if std::mem::take(&mut self.lost) {
            self.stats.reconnects += 1;
            info!("reconnected to {} ({})", Peer(peer, &self.addr), self.addr);
        } else {
            info!("connected to {} ({})", Peer(peer, &self.addr), self.addr);
        }
        self.peer = peer;
        self.conn = Some(Connection::new(Timed::new(stream), self.framing));
        Ok(())
    }

    /// Drops the connection after a failure or a close by the peer.
    fn drop_connection(&mut self) {
        if self.conn.take().is_some() {
            debug!("closed the connection to {}", Peer(self.peer, &self.addr));
            self.lost = true;
        }
        self.peer = None;
    }

    /// Reads reply frames until the one for `id` arrives or the ACK timeout passes.
    fn await_reply(&mut self, id: &[u8]) -> Result<Ack> {
        let reply = self.reply;
        let peer = Peer(self.peer, &self.addr);
        let Some(conn) = self.conn.as_mut() else {
            return Err(Error::Closed);
        };
        conn.get_mut().begin(Mode::Wait, self.ack_timeout);
        loop {
            let frame = match conn.read_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    warn!(
                        "{peer} closed the connection before acknowledging message {}",
                        Id(id)
                    );
                    return Err(Error::Closed);
                }
                Err(Error::Frame(FrameError::Oversized { max })) => {
                    warn!(
                        "a reply from {peer} to message {} is larger than {max} bytes",
                        Id(id)
                    );
                    return Err(FrameError::Oversized { max }.into());
                }
                Err(e) if e.is_timeout() => {
                    // Between two reads: the reply may already be too large, or too late.
                    if conn.reader().in_oversized_frame() {
                        let max = self.framing.max_size();
                        warn!(
                            "a reply from {peer} to message {} is larger than {max} bytes",
                            Id(id)
                        );
                        return Err(FrameError::Oversized { max }.into());
                    }
                    if conn.get_ref().expired() {
                        return Err(self.ack_timed_out(id));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            match classify(frame, id, reply) {
                Verdict::Reply => {
                    match Ack::parse(frame) {
                        Ok(ack) => {
                            if ack.is_success() {
                                self.stats.acks += 1;
                                debug!("{peer} acknowledged message {} with {}", Id(id), ack.code);
                            } else {
                                self.stats.negative_acks += 1;
                                warn!("{peer} answered message {} with {}", Id(id), ack.code);
                            }
                            return Ok(ack);
                        }
                        Err(e) => {
                            warn!("skipped a reply from {peer} to message {} that cannot be read: {e}", Id(id));
                            self.stats.skipped_frames += 1;
                        }
                    }
                }
                Verdict::Stale(other) => {
                    warn!(
                        "skipped an ACK from {peer} for message {} while awaiting the ACK for message {}",
                        Id(other),
                        Id(id)
                    );
                    self.stats.skipped_frames += 1;
                }
                Verdict::Junk => {
                    warn!(
                        "skipped a {}-byte frame from {peer} that is not an acknowledgement",
                        frame.len()
                    );
                    self.stats.skipped_frames += 1;
                }
            }
        }
    }

    /// Counts and logs an ACK timeout; the caller closes the connection.
    fn ack_timed_out(&mut self, id: &[u8]) -> Error {
        self.stats.ack_timeouts += 1;
        warn!(
            "no ACK from {} for message {} within {} ms; closing the connection",
            Peer(self.peer, &self.addr),
            Id(id),
            self.ack_timeout.as_millis()
        );
        Error::Timeout(Timeout::Ack)
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("peer", &self.peer_addr())
            .field("reply", &self.reply)
            .field("retry", &self.retry)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The control ID a reply must echo: MSH-10, or for a batch BHS-11/FHS-11.
fn control_id(message: &[u8]) -> Result<&[u8]> {
    let header = Header::parse(message)?;
    header.control_id().ok_or_else(|| {
        let field = if header.is_batch() { 11 } else { 10 };
        Error::Header(HeaderError::MissingField { field })
    })
}

/// What `frame` is to a message awaiting the reply for `id`.
fn classify<'f>(frame: &'f [u8], id: &[u8], mode: ReplyMode) -> Verdict<'f> {
    if frame == COMMIT_ACK || frame == COMMIT_NAK {
        return match mode {
            ReplyMode::Commit => Verdict::Reply,
            ReplyMode::Ack => Verdict::Junk,
        };
    }
    match ack_control_id(frame) {
        Some(got) if got == id => Verdict::Reply,
        Some(got) => Verdict::Stale(got),
        None => Verdict::Junk,
    }
}

/// A write that timed out is a write timeout.
fn write_error(e: Error) -> Error {
    match e {
        Error::Io { source, .. } if is_timeout_kind(source.kind()) => {
            Error::Timeout(Timeout::Write)
        }
        other => other,
    }
}

/// Whether another attempt may succeed where this one failed.
fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Io { .. } | Error::Timeout(_) | Error::Frame(_) | Error::Closed => true,
        // A handshake broken by the network may work next time; a certificate that failed
        // verification will not. The TLS error has no kind, but every verification failure
        // names the certificate (see `transport::native`), and the TLS library's own text does
        // too ("certificate verify failed").
        Error::Tls(_) => caused_by_io(e) || !e.to_string().contains("certificate"),
        _ => false,
    }
}

/// Whether an I/O error appears in the source chain of `e`.
fn caused_by_io(e: &Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<std::io::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A control ID for logs, shown as text without allocating.
struct Id<'a>(&'a [u8]);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Borrowed, not allocated, for the ASCII IDs seen in practice.
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

/// The peer for logs: its socket address when known, else the configured address.
#[derive(Clone, Copy)]
struct Peer<'a>(Option<SocketAddr>, &'a str);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str(self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            classify(ack, b"42", ReplyMode::Ack),
            Verdict::Reply
        ));
        assert!(matches!(
            classify(ack, b"43", ReplyMode::Ack),
            Verdict::Stale(b"42")
        ));
        assert!(matches!(
            classify(b"hello", b"42", ReplyMode::Ack),
            Verdict::Junk
        ));
        assert!(matches!(
            classify(COMMIT_ACK, b"42", ReplyMode::Ack),
            Verdict::Junk
        ));
        assert!(matches!(
            classify(COMMIT_NAK, b"42", ReplyMode::Commit),
            Verdict::Reply
        ));
        assert!(matches!(
            classify(ack, b"42", ReplyMode::Commit),
            Verdict::Reply
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
        let cert = Error::Tls(crate::error::TlsError::new(
            "the server certificate for \"x\" is not signed by a trusted CA",
            None,
        ));
        assert!(!is_retryable(&cert));
        let cut = Error::Tls(crate::error::TlsError::new(
            "the TLS handshake with \"x\" failed",
            None,
        ));
        assert!(is_retryable(&cut));
        let broken = Error::Tls(crate::error::TlsError::new(
            "handshake failed",
            Some(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
        ));
        assert!(is_retryable(&broken));
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
