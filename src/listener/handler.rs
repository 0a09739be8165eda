//! What the application sees of a received message, and what it answers.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::charset::Charset;
use crate::hl7::{Disposition, Header};
use crate::transport::TlsPeer;

/// The application side of a [`Listener`](super::Listener): called once for every received
/// message whose header could be read, on the connection's own thread, concurrently for
/// different connections.
///
/// The acknowledgement is written only after `handle` returns, so a handler that stores the
/// message (file system, queue, database) before returning gives "store, then ACK": an `AA`
/// means the message is safely received. A handler that panics is answered with `AE`
/// "application internal error"; the connection and the listener go on.
///
/// Any `Fn(&Message<'_>) -> Response + Send + Sync + 'static` closure is a handler.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message and says how to acknowledge it.
    fn handle(&self, message: &Message<'_>) -> Response;

    /// Called on the same thread right after the acknowledgement of the message `handle` last
    /// answered on connection `connection_id` was written (`written` is `true`), could not
    /// be written (`false`: the connection then closes), or was suppressed because the
    /// message asked for none (`true`). For work that must not delay the acknowledgement,
    /// such as reporting the message. Does nothing by default; a panic here is logged and
    /// ignored.
    fn acknowledged(&self, connection_id: u64, written: bool) {
        let _ = (connection_id, written);
    }
}

impl<F> Handler for F
where
    F: Fn(&Message<'_>) -> Response + Send + Sync + 'static,
{
    fn handle(&self, message: &Message<'_>) -> Response {
        self(message)
    }
}

/// One received message, as the handler sees it. Everything borrows from the connection's
/// read buffer: nothing is copied for a message that already was UTF-8.
///
/// Its `Debug` output shows sizes and metadata, never the message body (patient data).
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) text: &'a str,
    pub(crate) header: Header<'a>,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) connection_id: u64,
    pub(crate) tls_peer: Option<&'a TlsPeer>,
    pub(crate) charset: Charset,
    pub(crate) replaced: usize,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.raw.len())
            .field("control_id", &self.control_id())
            .field("peer_addr", &self.peer_addr)
            .field("connection_id", &self.connection_id)
            .field("tls", &self.tls_peer.is_some())
            .field("charset", &self.charset)
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

impl<'a> Message<'a> {
    /// The frame's payload exactly as received, in its own character set.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The message as UTF-8 text, decoded from [`charset`](Self::charset). A leading UTF-8 BOM
    /// is removed; segment endings are left as received.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The header (MSH, or FHS/BHS for a batch), read from the raw bytes.
    pub fn header(&self) -> &Header<'a> {
        &self.header
    }

    /// The control ID the acknowledgement carries in MSA-2 (MSH-10, or the batch's ID), or
    /// `None` when it is empty or not valid UTF-8.
    pub fn control_id(&self) -> Option<&'a str> {
        self.header
            .control_id()
            .and_then(|id| std::str::from_utf8(id).ok())
    }

    /// The address of the peer that sent the message.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The listener's number for this connection: unique for the listener's lifetime, the same
    /// for every message of one connection.
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// TLS information about the peer, or `None` on a plain TCP connection.
    ///
    /// With an acceptor that verifies client certificates (the `mllp-openssl` crate's, with a
    /// client CA), [`TlsPeer::subject`] is the verified subject and
    /// [`TlsPeer::certificate_der`] the certificate. The built-in acceptor never asks clients
    /// for one, so both are `None` there: the value only tells that the connection is TLS. See
    /// [TLS client certificates](crate#tls-client-certificates).
    pub fn tls_peer(&self) -> Option<&'a TlsPeer> {
        self.tls_peer
    }

    /// The character set the text was decoded from: the listener's default, or MSH-18 when
    /// detection is on and MSH-18 names a known character set.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// How many malformed byte sequences were replaced with U+FFFD while decoding (always 0
    /// under [`Malformed::Reject`](crate::charset::Malformed::Reject)).
    pub fn replaced(&self) -> usize {
        self.replaced
    }
}

/// The handler's answer: how to acknowledge the message.
///
/// | response | original mode | enhanced mode | MLLP release 2 |
/// |---|---|---|---|
/// | [`accept`](Self::accept), [`accept_with`](Self::accept_with) | `AA` | `CA` | commit ACK (0x06) |
/// | [`error`](Self::error) | `AE` | `CE` | commit NAK (0x15) |
/// | [`reject`](Self::reject) | `AR` | `CR` | commit NAK (0x15) |
/// | [`custom`](Self::custom) | the bytes as given | the bytes as given | the bytes as given |
/// | [`close`](Self::close) | nothing: the connection is closed | nothing | nothing |
///
/// Texts go into MSA-3 and, for an error or reject, the ERR segment (escaped and encoded in
/// the message's character set). `Response::accept()` allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) kind: Kind,
    pub(crate) error_code: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Answer {
        disposition: Disposition,
        text: Option<Cow<'static, str>>,
    },
    Custom(Vec<u8>),
    Close,
}

impl Response {
    /// Accepted: `AA` (or `CA` in enhanced mode).
    pub fn accept() -> Response {
        Response::answer(Disposition::Accept, None)
    }

    /// Accepted, with a text for MSA-3.
    pub fn accept_with(text: impl Into<Cow<'static, str>>) -> Response {
        Response::answer(Disposition::Accept, Some(text.into()))
    }

    /// Not processed because of an error; the sender may retry: `AE` (or `CE`). The default
    /// error code is 207 (application internal error).
    pub fn error(text: impl Into<Cow<'static, str>>) -> Response {
        Response::answer(Disposition::Error, Some(text.into()))
    }

    /// Rejected; retrying will not help: `AR` (or `CR`). The default error code is 200
    /// (unsupported message type).
    pub fn reject(text: impl Into<Cow<'static, str>>) -> Response {
        Response::answer(Disposition::Reject, Some(text.into()))
    }

    /// A complete acknowledgement payload, sent as it is (framed, but not checked or changed).
    /// It must not contain the frame end sequence; if it does, `AE` "application internal
    /// error" is sent instead and an error is logged.
    pub fn custom(payload: Vec<u8>) -> Response {
        Response {
            kind: Kind::Custom(payload),
            error_code: None,
        }
    }

    /// No acknowledgement at all: the listener closes the connection instead of answering, as
    /// if it had crashed before the ACK. Every sender takes that as "not delivered, try
    /// again" and resends the message later (on a new connection), which is the safe answer
    /// when the message could not be kept and no negative acknowledgement should reach the
    /// sender's error queue. Counted in
    /// [`ListenerStats::closed_unanswered`](super::ListenerStats::closed_unanswered); the
    /// handler's [`acknowledged`](Handler::acknowledged) is called with `written` false.
    pub fn close() -> Response {
        Response {
            kind: Kind::Close,
            error_code: None,
        }
    }

    /// Whether this is [`Response::close`]: no answer, the connection is closed.
    pub fn is_close(&self) -> bool {
        matches!(self.kind, Kind::Close)
    }

    /// Sets the HL7 table 0357 error code of the ERR segment (e.g. 200 unsupported message
    /// type, 207 application internal error). Ignored for accepts and custom answers.
    pub fn error_code(mut self, code: u16) -> Response {
        self.error_code = Some(code);
        self
    }

    /// The disposition, or `None` for a custom answer and for [`close`](Self::close).
    pub fn disposition(&self) -> Option<Disposition> {
        match &self.kind {
            Kind::Answer { disposition, .. } => Some(*disposition),
            Kind::Custom(_) | Kind::Close => None,
        }
    }

    /// The text, if any (`None` for a custom answer and for [`close`](Self::close)).
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Answer { text, .. } => text.as_deref(),
            Kind::Custom(_) | Kind::Close => None,
        }
    }

    fn answer(disposition: Disposition, text: Option<Cow<'static, str>>) -> Response {
        Response {
            kind: Kind::Answer { disposition, text },
            error_code: None,
        }
    }
}
