//! The crate's one error type.
//!
//! Every fallible operation returns [`Error`]. Each variant documents what happened and what the
//! caller should do about it. Framing, header and charset problems carry small `Copy` enums so
//! they can be matched on without allocation; I/O and TLS errors keep their source.

use std::fmt;
use std::io;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on the stream failed.
    ///
    /// The connection is unusable: close it. A `Sender` does this itself and
    /// reconnects within its retry policy.
    Io {
        /// What the crate was doing when the error happened.
        phase: Phase,
        /// The underlying error.
        source: io::Error,
    },
    /// A deadline passed.
    ///
    /// The connection may hold a partial frame or an ACK may still arrive: close it before
    /// sending anything else (the `Sender` does).
    Timeout(Timeout),
    /// The byte stream broke the framing rules (see [`FrameError`]).
    Frame(FrameError),
    /// An HL7 header could not be read (see [`HeaderError`]).
    Header(HeaderError),
    /// Text could not be decoded or encoded in the configured character set.
    Charset(CharsetError),
    /// A TLS handshake or TLS setting failed. Check certificates, keys and host names.
    Tls(TlsError),
    /// A setting is invalid. Fix the configuration; retrying will not help.
    Config(String),
    /// A message could not be delivered within the retry policy.
    Delivery {
        /// Whether the message may have reached the peer.
        outcome: Outcome,
        /// How many attempts were made (each: connect if needed, write, await the ACK).
        attempts: u32,
        /// The error of the last attempt.
        last: Box<Error>,
    },
    /// The peer closed the connection, or the object was shut down.
    ///
    /// Reconnect (a `Sender` does this itself) or stop.
    Closed,
    /// A [`Store`](crate::Store) could not keep a message (or be reached): its
    /// [kind](crate::StoreErrorKind) says whether a retry can succeed.
    Store(Box<crate::StoreError>),
    /// An [`Outbox`](crate::Outbox) holds its most pending messages or bytes: the message was
    /// not taken. Try again once deliveries have made room (a relay answers AE, so the sender
    /// does), or raise the bounds.
    Full {
        /// Messages pending when the message was refused.
        pending: u64,
        /// Their bytes.
        pending_bytes: u64,
    },
    /// Another [`Outbox`](crate::Outbox) has the directory open: process `pid` (this process,
    /// when it is its own id). Close that one first; inspecting the directory needs no lock.
    Locked {
        /// The outbox directory.
        dir: std::path::PathBuf,
        /// The process holding it (0 when it cannot be told).
        pid: u32,
    },
    /// An outbox segment holds a bad record that is not a torn tail. No longer returned:
    /// recovery keeps damage aside and goes on (see [`Outbox::verify`](crate::Outbox::verify)
    /// and `SPOOL.md`); kept so that code matching it, and its C result number, stay valid.
    Corrupt {
        /// The segment file.
        path: std::path::PathBuf,
        /// Where its valid records end.
        offset: u64,
    },
}

/// What the crate was doing when an I/O error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Resolving a host name.
    Resolve,
    /// Opening a TCP connection.
    Connect,
    /// Reading from the stream.
    Read,
    /// Writing to the stream.
    Write,
    /// Accepting a connection on a listening socket (or starting the listener's thread).
    Accept,
    /// Binding the listening socket to its address.
    Bind,
    /// Configuring a socket (timeouts, options).
    Configure,
    /// Reading or writing a file.
    File,
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// Opening the TCP connection (and TLS handshake) took too long.
    Connect,
    /// Writing the frame took too long.
    Write,
    /// No ACK came back in time.
    Ack,
    /// A started frame did not complete in time.
    Frame,
    /// The connection was idle for too long.
    Idle,
    /// A read timed out (no specific deadline known).
    Read,
    /// A whole `send`, retries and backoff included, took longer than the sender's total
    /// timeout.
    Total,
}

/// Whether a failed message may have reached the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The message was never completely written: it certainly did not reach the peer's
    /// application. Sending it again cannot create a duplicate.
    NotDelivered,
    /// The message was written, but no valid ACK came back: the peer may or may not have it.
    /// Sending it again may create a duplicate (same MSH-10).
    Unconfirmed,
}

/// A framing rule broken by the byte stream or by a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream ended inside a frame; `len` payload bytes had arrived.
    Truncated {
        /// Payload bytes received before the end of the stream.
        len: usize,
    },
    /// A frame's payload was larger than the configured maximum.
    Oversized {
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// A payload to be written contains the end sequence; the peer would split it.
    PayloadContainsEnd {
        /// Offset of the end sequence within the payload.
        at: usize,
    },
    /// A start sequence arrived inside a frame and the policy is to fail.
    StartInFrame,
}

/// Why an HL7 header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The message does not start with `MSH`, `BHS` or `FHS`.
    NoHeader,
    /// The byte after the segment name is not a valid field separator (alphanumeric, CR, LF, or
    /// missing).
    BadFieldSeparator,
    /// MSH-2 holds fewer than 2 or more than 5 encoding characters, repeats one, or uses the
    /// field separator or an alphanumeric byte.
    BadEncodingCharacters,
    /// A required field is empty (MSH-10 when sending, for example).
    MissingField {
        /// The field number, e.g. 10 for MSH-10; 11 is the batch control ID (FHS-11/BHS-11),
        /// the one field 11 required.
        field: u8,
    },
    /// The reply is not an HL7 ACK (no MSA segment) nor an MLLP commit block.
    NotAnAck,
}

/// A character-set problem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CharsetError {
    /// The label is not a known WHATWG encoding label nor an HL7 MSH-18 name.
    Unknown(String),
    /// The encoding is known but cannot be carried by MLLP (UTF-16, UTF-32) or is not supported.
    Unsupported {
        /// The label as given.
        label: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Received bytes are not valid in the character set and the policy is to reject them.
    Malformed {
        /// Byte offset of the first malformed sequence.
        at: usize,
    },
    /// A character cannot be represented in the target character set.
    Unmappable {
        /// Byte offset, in the UTF-8 input, of the first character that cannot be encoded.
        at: usize,
        /// The character.
        ch: char,
    },
}

/// A TLS failure, with the underlying error when there is one.
#[derive(Debug)]
pub struct TlsError {
    pub(crate) kind: TlsErrorKind,
    pub(crate) message: String,
    pub(crate) source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TlsError {
    /// A TLS error with a message and an optional source (for [`TlsAcceptor`](crate::TlsAcceptor)
    /// implementations).
    pub fn new(
        kind: TlsErrorKind,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        TlsError {
            kind,
            message: message.into(),
            source,
        }
    }

    /// What kind of failure this is: decides, for example, whether trying again may help.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }
}

/// What kind of TLS failure a [`TlsError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// A TLS setting, certificate file, key or identity could not be used. Fix the
    /// configuration; trying again will not help.
    Config,
    /// The peer's certificate failed verification: not signed by a trusted CA, not valid for
    /// the host name, expired or not yet valid. Trying again will not help.
    Certificate,
    /// The handshake failed for another reason (the peer does not speak TLS, no common
    /// protocol version or cipher, an alert). Trying again may help, against another server
    /// or after the peer is fixed.
    Handshake,
    /// The network failed during the handshake (connection reset or closed). Trying again may
    /// help.
    Io,
}

impl TlsErrorKind {
    /// Whether another attempt may succeed: `true` for [`Handshake`](Self::Handshake) and
    /// [`Io`](Self::Io).
    pub fn is_transient(self) -> bool {
        matches!(self, TlsErrorKind::Handshake | TlsErrorKind::Io)
    }
}

impl Error {
    /// An I/O error during `phase`; a socket timeout while connecting, reading or writing is
    /// [`Error::Timeout`], so a deadline has one shape from every layer.
    pub(crate) fn io(phase: Phase, source: io::Error) -> Error {
        if is_timeout_kind(source.kind()) {
            match phase {
                Phase::Connect => return Error::Timeout(Timeout::Connect),
                Phase::Read => return Error::Timeout(Timeout::Read),
                Phase::Write => return Error::Timeout(Timeout::Write),
                _ => {}
            }
        }
        Error::Io { phase, source }
    }

    /// Whether this error means a deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Io { source, .. } => is_timeout_kind(source.kind()),
            Error::Delivery { last, .. } => last.is_timeout(),
            _ => false,
        }
    }

    /// For a [`Error::Delivery`] failure, whether the message may have reached the peer.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Error::Delivery { outcome, .. } => Some(*outcome),
            _ => None,
        }
    }
}

/// Whether an I/O error kind means "a read or write timeout fired".
pub(crate) fn is_timeout_kind(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Resolve => "resolving the address",
            Phase::Connect => "connecting",
            Phase::Read => "reading",
            Phase::Write => "writing",
            Phase::Accept => "accepting a connection",
            Phase::Bind => "binding the listening address",
            Phase::Configure => "configuring the socket",
            Phase::File => "accessing a file",
        })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Connect => "connecting timed out",
            Timeout::Write => "writing the frame timed out",
            Timeout::Ack => "no ACK arrived before the ACK timeout",
            Timeout::Frame => "a started frame did not complete before the frame timeout",
            Timeout::Idle => "the connection was idle longer than the idle timeout",
            Timeout::Read => "reading timed out",
            Timeout::Total => "the message was not acknowledged within the total timeout",
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::NotDelivered => "not delivered",
            Outcome::Unconfirmed => "unconfirmed (written, but no valid ACK received)",
        })
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { len } => write!(
                f,
                "the connection ended inside a frame after {len} payload bytes"
            ),
            FrameError::Oversized { max } => {
                write!(
                    f,
                    "a frame exceeded the maximum message size of {max} bytes"
                )
            }
            FrameError::PayloadContainsEnd { at } => write!(
                f,
                "the message contains the frame end sequence at byte {at}; the peer would split it"
            ),
            FrameError::StartInFrame => f.write_str("a start sequence arrived inside a frame"),
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NoHeader => f.write_str("the message does not start with MSH, BHS or FHS"),
            HeaderError::BadFieldSeparator => {
                f.write_str("the header has no valid field separator after the segment name")
            }
            HeaderError::BadEncodingCharacters => f.write_str(
                "the header's encoding characters (MSH-2) are missing, repeated or invalid",
            ),
            // Field 11 is required only of a batch header: its control ID.
            HeaderError::MissingField { field: 11 } => f.write_str(
                "the batch control ID (FHS-11, or BHS-11 when the batch has a BHS) is empty; \
                 give the batch one, or send its messages one at a time",
            ),
            HeaderError::MissingField { field } => write!(f, "MSH-{field} is empty"),
            HeaderError::NotAnAck => {
                f.write_str("the reply is neither an HL7 ACK (no MSA segment) nor a commit block")
            }
        }
    }
}

impl fmt::Display for CharsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CharsetError::Unknown(label) => write!(f, "unknown character set {label:?}"),
            CharsetError::Unsupported { label, reason } => {
                write!(f, "character set {label:?} cannot be used: {reason}")
            }
            CharsetError::Malformed { at } => {
                write!(f, "the message is not valid in its character set (byte {at})")
            }
            CharsetError::Unmappable { at, ch } => write!(
                f,
                "the character {ch:?} at byte {at} cannot be represented in the target character set"
            ),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { phase, source } => write!(f, "I/O error while {phase}: {source}"),
            Error::Timeout(t) => t.fmt(f),
            Error::Frame(e) => write!(f, "framing error: {e}"),
            Error::Header(e) => write!(f, "HL7 header error: {e}"),
            Error::Charset(e) => write!(f, "character set error: {e}"),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Delivery {
                outcome,
                attempts,
                last,
            } => write!(
                f,
                "message {outcome} after {attempts} attempt{}: {last}",
                if *attempts == 1 { "" } else { "s" }
            ),
            Error::Closed => f.write_str("the connection is closed"),
            Error::Store(e) => write!(f, "store error: {e}"),
            Error::Full {
                pending,
                pending_bytes,
            } => write!(
                f,
                "the outbox is full ({pending} messages, {pending_bytes} bytes pending)"
            ),
            Error::Locked { dir, pid } => write!(
                f,
                "the outbox in {} is in use by process {pid}",
                dir.display()
            ),
            Error::Corrupt { path, offset } => write!(
                f,
                "the outbox segment {} is corrupt after byte {offset} (not a torn tail: it is not \
                 the last segment); move it aside to go on",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Tls(e) => e.source.as_deref().map(|e| e as _),
            Error::Delivery { last, .. } => Some(&**last),
            Error::Store(e) => Some(&**e),
            _ => None,
        }
    }
}

// The detailed errors are errors on their own too, for code that handles one without the
// crate's `Error` around it (their text is the same inside it, so `Error::source` does not
// repeat them).
impl std::error::Error for FrameError {}
impl std::error::Error for HeaderError {}
impl std::error::Error for CharsetError {}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        Error::Frame(e)
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Error::Header(e)
    }
}

impl From<CharsetError> for Error {
    fn from(e: CharsetError) -> Self {
        Error::Charset(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Errors travel through every hot-path `Result`; keep them at most six words.
        assert!(
            std::mem::size_of::<Error>() <= 48,
            "{}",
            std::mem::size_of::<Error>()
        );
        assert_eq!(std::mem::size_of::<FrameError>(), 16);
    }

    #[test]
    fn the_detailed_errors_box_as_errors_with_their_text() {
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(FrameError::PayloadContainsEnd { at: 7 });
        assert_eq!(
            boxed.to_string(),
            FrameError::PayloadContainsEnd { at: 7 }.to_string()
        );
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(HeaderError::NotAnAck);
        assert!(boxed.to_string().contains("ACK"), "{boxed}");
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(CharsetError::Unknown("x".into()));
        assert!(boxed.to_string().contains('x'), "{boxed}");
    }

    #[test]
    fn messages_are_sentences() {
        let e = Error::Delivery {
            outcome: Outcome::Unconfirmed,
            attempts: 3,
            last: Box::new(Error::Timeout(Timeout::Ack)),
        };
        assert_eq!(
            e.to_string(),
            "message unconfirmed (written, but no valid ACK received) after 3 attempts: \
             no ACK arrived before the ACK timeout"
        );
        assert!(e.is_timeout());
        assert_eq!(e.outcome(), Some(Outcome::Unconfirmed));
    }
}
