//! The answer to one message: its header read, its text decoded, the handler called, and the
//! acknowledgement built (an HL7 ACK, an MLLP release 2 commit block, or the handler's own
//! bytes). No I/O: the [`Session`](super::Session) calls it and writes what it built.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use log::{debug, error, warn};

use super::handler::{Handler, Kind, Message, Response};
use super::stats::{bump, Stats};
use super::ListenerConfig;
use crate::charset::Charset;
use crate::error::CharsetError;
use crate::hl7::{
    build_nak_unparseable, salvage_control_id, AckBuilder, AckCode, Disposition, Header, ReplyKind,
};
use crate::hl7::{COMMIT_ACK, COMMIT_NAK};
use crate::transport::TlsPeer;

/// The error code of the NAK for an oversized message: HL7 table 0357 has no "message too
/// large" code, and 207 (application internal error) is its general "cannot process" code.
pub(crate) const OVERSIZED_ERROR_CODE: u16 = 207;

/// The text of the `AE` sent when the handler panics.
const PANIC_TEXT: &str = "application internal error";

/// The text of the `AR` sent when the acknowledgement would contain the frame end sequence.
const UNFRAMEABLE_TEXT: &str = "the message header holds bytes of the frame end sequence";

/// What kind of acknowledgement is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Code(AckCode),
    Commit(bool),
    Custom,
    Suppressed,
    /// No acknowledgement: the handler asked for the connection to be closed.
    Closed,
}

impl Sent {
    /// Counts an acknowledgement of this kind as written.
    pub(crate) fn count(self, stats: &Stats) {
        match self {
            Sent::Code(code) => stats.ack(code),
            Sent::Commit(true) => bump(&stats.commit_acks),
            Sent::Commit(false) => bump(&stats.commit_naks),
            Sent::Custom => bump(&stats.custom_acks),
            Sent::Suppressed | Sent::Closed => {}
        }
    }
}

/// A connection's identity, as its answers name it.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) tls_peer: Option<TlsPeer>,
}

/// Builds acknowledgements for one connection.
pub(crate) struct Responder<'h> {
    pub(crate) settings: &'h ListenerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) handler: &'h dyn Handler,
    pub(crate) peer: Who,
    /// The acknowledgement being built (its payload); reused for every message.
    pub(crate) ack: Vec<u8>,
    /// Whether the handler answered the message being acknowledged.
    pub(crate) handled: bool,
}

impl Responder<'_> {
    /// Tells the handler its message's acknowledgement was written (or failed).
    pub(crate) fn acknowledged(&self, written: bool) {
        let (handler, id) = (self.handler, self.peer.id);
        if catch_unwind(AssertUnwindSafe(|| handler.acknowledged(id, written))).is_err() {
            bump(&self.stats.handler_panics);
            error!(
                "connection {} from {}: the handler panicked after an acknowledgement",
                self.peer.id, self.peer.addr
            );
        }
    }

    /// Handles one frame and builds its acknowledgement into `self.ack`.
    pub(crate) fn answer(&mut self, frame: &[u8]) -> Sent {
        let header = match Header::parse(frame) {
            Ok(header) => header,
            Err(e) => {
                bump(&self.stats.nak_unparseable);
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
                bump(&self.stats.charset_errors);
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
            tls_peer: self.peer.tls_peer.as_ref(),
            charset,
            replaced: decoded.replaced,
        };
        bump(&self.stats.messages);
        self.handled = true;
        let handler = self.handler;
        let response = match catch_unwind(AssertUnwindSafe(|| handler.handle(&message))) {
            Ok(response) => response,
            Err(_) => {
                bump(&self.stats.handler_panics);
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
    pub(crate) fn answer_oversized(&mut self, first_bytes: &[u8], max: usize) -> Sent {
        bump(&self.stats.oversized_frames);
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
