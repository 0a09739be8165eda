//! What a store is given: the message as UTF-8 and what a store puts beside it (headers of a
//! broker message, fields of a document).

use std::net::SocketAddr;
use std::time::SystemTime;

use super::ContentDigest;
use crate::charset::Charset;
use crate::hl7::Header;
use crate::listener::Message;

/// One received message, as a [`Store`](super::Store) sees it: its UTF-8 text, the header
/// fields read from that text, where and when it came from and the character set it came in.
///
/// Fields are read from the decoded text, so every one is valid UTF-8. A field is `None` when
/// it is empty or absent, or the text does not start with a readable header. For a batch
/// (FHS/BHS header) [`control_id`](Self::control_id) is the batch's ID and
/// [`message_type`](Self::message_type) is `None`.
///
/// Its `Debug` output shows sizes and metadata, never the text (patient data).
#[derive(Clone, Copy)]
pub struct StoredMessage<'a> {
    text: &'a str,
    header: Option<Header<'a>>,
    peer_addr: SocketAddr,
    charset: Charset,
    received_at: SystemTime,
    tls_subject: Option<&'a str>,
}

impl std::fmt::Debug for StoredMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("len", &self.text.len())
            .field("control_id", &self.control_id())
            .field("message_type", &self.message_type())
            .field("peer_addr", &self.peer_addr)
            .field("charset", &self.charset)
            .field("received_at", &self.received_at)
            .field("tls_subject", &self.tls_subject)
            .finish_non_exhaustive()
    }
}

impl<'a> StoredMessage<'a> {
    /// A message with `text` (already UTF-8), from `peer_addr`, received in `charset` at
    /// `received_at`. The header is read from `text`.
    pub fn new(
        text: &'a str,
        peer_addr: SocketAddr,
        charset: Charset,
        received_at: SystemTime,
    ) -> StoredMessage<'a> {
        StoredMessage {
            text,
            header: Header::parse(text.as_bytes()).ok(),
            peer_addr,
            charset,
            received_at,
            tls_subject: None,
        }
    }

    /// The same message, from a TLS client whose certificate had the verified `subject`.
    pub fn with_tls_subject(mut self, subject: Option<&'a str>) -> StoredMessage<'a> {
        self.tls_subject = subject;
        self
    }

    /// What a listener received, received now.
    pub fn from_message(message: &Message<'a>) -> StoredMessage<'a> {
        let text = message.text();
        // Text that is the frame itself (UTF-8 on the wire, nothing replaced) has the header the
        // listener already read: reuse it instead of parsing the message a second time.
        let header = if std::ptr::eq(text.as_bytes(), message.raw()) {
            Some(*message.header())
        } else {
            Header::parse(text.as_bytes()).ok()
        };
        StoredMessage {
            text,
            header,
            peer_addr: message.peer_addr(),
            charset: message.charset(),
            received_at: SystemTime::now(),
            tls_subject: message.tls_peer().and_then(|peer| peer.subject()),
        }
    }

    /// The message as UTF-8, as the listener decoded it (segment endings as received).
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The digest of [`text`](Self::text), which tells a resend (same key, same content) from
    /// another message that reuses its control ID (see [`ContentDigest`]).
    pub fn content_digest(&self) -> ContentDigest {
        ContentDigest::of(self.text.as_bytes())
    }

    /// The header (MSH, or FHS/BHS for a batch), when the text starts with a readable one.
    pub fn header(&self) -> Option<&Header<'a>> {
        self.header.as_ref()
    }

    /// The segment name of the header: `MSH`, `BHS` or `FHS`.
    pub fn segment_name(&self) -> Option<&'a str> {
        self.header.and_then(|h| utf8(Some(h.segment_name())))
    }

    /// MSH-10, the message control ID (the batch control ID for a batch).
    pub fn control_id(&self) -> Option<&'a str> {
        utf8(self.header.and_then(|h| h.control_id()))
    }

    /// MSH-9, the message type, whole (`ORU^R01^ORU_R01`).
    pub fn message_type(&self) -> Option<&'a str> {
        utf8(self.header.and_then(|h| h.message_type()))
    }

    /// MSH-3 (FHS-3, BHS-3), the sending application, whole.
    pub fn sending_application(&self) -> Option<&'a str> {
        self.field(3)
    }

    /// MSH-4, the sending facility, whole.
    pub fn sending_facility(&self) -> Option<&'a str> {
        self.field(4)
    }

    /// MSH-5, the receiving application, whole.
    pub fn receiving_application(&self) -> Option<&'a str> {
        self.field(5)
    }

    /// MSH-6, the receiving facility, whole.
    pub fn receiving_facility(&self) -> Option<&'a str> {
        self.field(6)
    }

    /// The address of the peer that sent the message.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The character set the message arrived in (the text is UTF-8 whatever it was).
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The verified subject of the TLS client certificate the message came with (see
    /// [`TlsPeer::subject`](crate::TlsPeer::subject)); `None` without TLS or without a
    /// verifying acceptor. Stores keep it with the message.
    pub fn tls_subject(&self) -> Option<&'a str> {
        self.tls_subject
    }

    /// When the listener had read the whole message and handed it on.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    fn field(&self, n: usize) -> Option<&'a str> {
        utf8(self.header.and_then(|h| h.field(n)))
    }
}

/// A non-empty field as text (always valid: it was cut from a `str` at ASCII separators).
fn utf8(field: Option<&[u8]>) -> Option<&str> {
    field
        .filter(|f| !f.is_empty())
        .and_then(|f| std::str::from_utf8(f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_the_text() {
        let at = SystemTime::UNIX_EPOCH;
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let text = "MSH|^~\\&|LÄB^x|HOSP||WARD|2026||ORU^R01|ID-ü|P|2.5\rPID|1\r";
        let m = StoredMessage::new(text, peer, Charset::ISO_8859_1, at);
        assert_eq!(m.control_id(), Some("ID-ü"));
        assert_eq!(m.message_type(), Some("ORU^R01"));
        assert_eq!(m.sending_application(), Some("LÄB^x"));
        assert_eq!(m.sending_facility(), Some("HOSP"));
        assert_eq!(m.receiving_application(), None);
        assert_eq!(m.receiving_facility(), Some("WARD"));
        assert_eq!(m.segment_name(), Some("MSH"));
        assert_eq!(
            (m.peer_addr(), m.charset(), m.received_at()),
            (peer, Charset::ISO_8859_1, at)
        );
        assert!(!format!("{m:?}").contains("PID"));

        let batch = StoredMessage::new("BHS|^~\\&|A|B|||||||B7\r", peer, Charset::UTF_8, at);
        assert_eq!(
            (batch.control_id(), batch.message_type()),
            (Some("B7"), None)
        );
        let junk = StoredMessage::new("not hl7", peer, Charset::UTF_8, at);
        assert_eq!((junk.control_id(), junk.segment_name()), (None, None));
        assert!(junk.header().is_none());
        assert_eq!(junk.tls_subject(), None);
        let signed = junk.with_tls_subject(Some("CN=lab"));
        assert_eq!(signed.tls_subject(), Some("CN=lab"));
        assert!(format!("{signed:?}").contains("CN=lab"));
    }
}
