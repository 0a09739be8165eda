//! Reading acknowledgements received by a sender.

use super::ack::{AckCode, COMMIT_ACK, COMMIT_NAK};
use super::escape::unescape;
use super::header::{component_of, first_repetition, segments, Header, Separators};
use crate::charset::{Charset, Malformed};
use crate::error::{Error, HeaderError};

/// What answers a message: an HL7 acknowledgement message, or an MLLP release 2 commit block.
///
/// One value names MLLP release 2 everywhere:
/// * [`SenderConfig::reply`](crate::SenderConfig::reply): what a sender expects back. With
///   [`Mllp2`](Self::Mllp2) a commit NAK makes it send the message again within the retry
///   policy, and an HL7 acknowledgement whose MSA-2 matches is accepted as well; with
///   [`Hl7`](Self::Hl7) a commit block is skipped as a frame that is not a reply.
/// * [`ListenerConfig::reply`](crate::ListenerConfig::reply): what a listener answers with.
///   With [`Mllp2`](Self::Mllp2) every acknowledgement it builds is a commit block: 0x06 when
///   the handler accepted the message, 0x15 otherwise and for the frames it answers on its own
///   (unreadable header, oversized, malformed); [`ListenerConfig::ack_mode`](crate::ListenerConfig::ack_mode)
///   then plays no part. A custom response is sent as the handler gave it.
/// * [`Ack::kind`]: what a received reply was.
///
/// The builders' `mllp2(bool)` methods are shorthand for [`Mllp2`](Self::Mllp2) (`true`) or
/// [`Hl7`](Self::Hl7) (`false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyKind {
    /// An HL7 acknowledgement message: an MSA segment whose MSA-2 echoes the control ID of the
    /// acknowledged message. The default.
    #[default]
    Hl7,
    /// An MLLP release 2 commit block: [`COMMIT_ACK`] (reported as
    /// [`AckCode::CommitAccept`]) or [`COMMIT_NAK`] (reported as [`AckCode::CommitReject`]).
    Mllp2,
}

/// An acknowledgement received from a peer, copied out of the reply frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Whether this was an HL7 ACK or an MLLP release 2 commit block.
    pub kind: ReplyKind,
    /// MSA-1; for a commit block `CommitAccept` (0x06) or `CommitReject` (0x15).
    pub code: AckCode,
    /// MSA-2, the control ID of the acknowledged message, as sent (not unescaped). Empty for a
    /// commit block.
    pub control_id: String,
    /// MSA-3, unescaped, when present.
    pub text: Option<String>,
    /// The text of each ERR segment, unescaped: ERR-8 when valued, else the text of ERR-3, else
    /// the text (or code) in ERR-1's fourth component.
    pub errors: Vec<String>,
    /// The reply frame's payload as received.
    pub raw: Vec<u8>,
}

impl Ack {
    /// Reads an acknowledgement from a reply frame's payload.
    ///
    /// Accepts CR, LF or CRLF segment endings, and a last segment without a terminator. Texts
    /// are decoded in the character set named by the reply's MSH-18, else as UTF-8, with
    /// malformed bytes replaced.
    ///
    /// # Errors
    /// [`Error::Header`] when the reply has no readable MSH, or
    /// [`HeaderError::NotAnAck`] when it has no MSA segment with a known code.
    pub fn parse(frame: &[u8]) -> Result<Ack, Error> {
        let commit = |code| Ack {
            kind: ReplyKind::Mllp2,
            code,
            control_id: String::new(),
            text: None,
            errors: Vec::new(),
            raw: frame.to_vec(),
        };
        if frame == COMMIT_ACK {
            return Ok(commit(AckCode::CommitAccept));
        }
        if frame == COMMIT_NAK {
            return Ok(commit(AckCode::CommitReject));
        }
        Reply::read(frame).into_ack()
    }

    /// Whether the peer accepted the message (AA, CA, or a commit ACK).
    pub fn is_success(&self) -> bool {
        self.code.is_success()
    }

    /// The peer's words: MSA-3 when valued, else the first ERR text; `None` when neither is.
    pub fn reason(&self) -> Option<&str> {
        self.text.as_deref().filter(|t| !t.is_empty()).or(self
            .errors
            .iter()
            .map(String::as_str)
            .find(|t| !t.is_empty()))
    }
}

/// The fields after the name of `seg` when it is a `name` segment.
fn segment_fields<'a>(
    seg: &'a [u8],
    name: &[u8],
    field: u8,
) -> Option<std::iter::Skip<std::slice::Split<'a, u8, impl FnMut(&u8) -> bool>>> {
    let rest = seg.strip_prefix(name)?;
    if !(rest.is_empty() || rest[0] == field) {
        return None;
    }
    Some(seg.split(move |&b| b == field).skip(1))
}

/// The text of an ERR segment (fields after the name): ERR-8, else ERR-3.2, else ERR-1.4.2,
/// else ERR-1.4.
fn err_text<'a>(fields: impl Iterator<Item = &'a [u8]>, seps: &Separators) -> Option<&'a [u8]> {
    let mut err1 = None;
    let mut err3 = None;
    let mut err8 = None;
    for (i, value) in fields.enumerate().take(8) {
        match i + 1 {
            1 => err1 = Some(value),
            3 => err3 = Some(value),
            8 => err8 = Some(value),
            _ => {}
        }
    }
    let valued = |v: Option<&'a [u8]>| v.filter(|v| !v.is_empty());
    if let Some(t) = valued(err8) {
        return Some(t);
    }
    let cwe_text = err3
        .map(|v| first_repetition(v, seps.repetition))
        .and_then(|v| component_of(v, seps.component, 2));
    if let Some(t) = valued(cwe_text) {
        return Some(t);
    }
    let ce = err1
        .map(|v| first_repetition(v, seps.repetition))
        .and_then(|v| component_of(v, seps.component, 4));
    let ce_text = match (ce, seps.subcomponent) {
        (Some(ce), Some(sub)) => component_of(ce, sub, 2),
        _ => None,
    };
    valued(ce_text)
        .or_else(|| valued(ce))
        .or_else(|| valued(err1))
}

/// MSA-2 of a reply frame, without building an [`Ack`]: the control ID of the message it
/// acknowledges. `None` for a commit block or a reply without an MSA segment.
pub fn ack_control_id(frame: &[u8]) -> Option<&[u8]> {
    Reply::read(frame).control_id()
}

/// An HL7 reply frame read once: its header and its first MSA segment, found for correlating
/// it by MSA-2 ([`Reply::control_id`]) and kept for building its [`Ack`] without reading the
/// frame again ([`Reply::into_ack`]).
pub(crate) struct Reply<'f> {
    frame: &'f [u8],
    header: Result<Header<'f>, HeaderError>,
    /// The segments after the header (the whole frame when it has no readable header).
    body: &'f [u8],
    /// The fields of the first MSA segment after its name (`None` without one), and the
    /// separator they are split on.
    msa: Option<(&'f [u8], u8)>,
}

impl<'f> Reply<'f> {
    /// Reads the header and finds the first MSA segment. The first MSA decides, as in
    /// [`Ack::parse`]: a later one never answers for it. Without a readable header, a segment
    /// counts as MSA when the character after its name separates its fields.
    pub(crate) fn read(frame: &'f [u8]) -> Reply<'f> {
        let header = Header::parse(frame);
        let (body, header_sep) = match &header {
            Ok(h) => (h.rest(), Some(h.separators().field)),
            Err(_) => (frame, None),
        };
        let msa = segments(body).find_map(|seg| {
            let rest = seg.strip_prefix(b"MSA")?;
            match (rest.split_first(), header_sep) {
                // A bare `MSA`: an MSA segment without fields.
                (None, Some(sep)) => Some((rest, sep)),
                (Some((&first, fields)), _) if header_sep.unwrap_or(first) == first => {
                    Some((fields, first))
                }
                _ => None,
            }
        });
        Reply {
            frame,
            header,
            body,
            msa,
        }
    }

    /// MSA-2: the control ID of the message this reply acknowledges. `None` without an MSA
    /// segment.
    pub(crate) fn control_id(&self) -> Option<&'f [u8]> {
        let (fields, sep) = self.msa?;
        Some(fields.split(|&b| b == sep).nth(1).unwrap_or_default())
    }

    /// The acknowledgement, as [`Ack::parse`] reads it (a commit block is not an HL7 reply:
    /// `Ack::parse` sees to those).
    pub(crate) fn into_ack(self) -> Result<Ack, Error> {
        let header = self.header?;
        let seps = header.separators();
        let Some((fields, _)) = self.msa else {
            return Err(HeaderError::NotAnAck.into());
        };
        let mut fields = fields.split(|&b| b == seps.field);
        let code = fields.next().and_then(AckCode::parse);
        let Some(code) = code else {
            return Err(HeaderError::NotAnAck.into());
        };
        let charset = Charset::from_header(&header, Charset::UTF_8);
        let text_of = |value: &[u8]| -> String {
            let bytes = unescape(value, &seps);
            if charset == Charset::UTF_8 {
                // Not `decode`: a field's text keeps a leading U+FEFF.
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            match charset.decode(&bytes, Malformed::Replace) {
                Ok(d) => d.text.into_owned(),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            }
        };
        let control_id = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        let text = fields.next().filter(|t| !t.is_empty()).map(text_of);
        let errors = segments(self.body)
            .filter_map(|seg| segment_fields(seg, b"ERR", seps.field))
            .filter_map(|fields| err_text(fields, &seps))
            .map(text_of)
            .collect();
        Ok(Ack {
            kind: ReplyKind::Hl7,
            code,
            control_id,
            text,
            errors,
            raw: self.frame.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_msa_segment_decides_the_control_id() {
        // A reply whose first MSA has no MSA-2 answers no message, whatever a later MSA says:
        // the correlation and the parsed ACK read the same segment.
        let frame = b"MSH|^~\\&|B|B|A|A|0||ACK|R|P|2.5\rMSA|AA\rMSA|AA|ID1\r";
        assert_eq!(ack_control_id(frame), Some(&b""[..]));
        assert_eq!(Ack::parse(frame).unwrap().control_id, "");
        let frame = b"MSH|^~\\&|B|B|A|A|0||ACK|R|P|2.5\rMSA|AE|ID2\rMSA|AA|ID1\r";
        assert_eq!(ack_control_id(frame), Some(&b"ID2"[..]));
        assert_eq!(Ack::parse(frame).unwrap().control_id, "ID2");
        // A bare MSA (no fields) is the first MSA too: it answers no message and is no ACK.
        let frame = b"MSH|^~\\&|B|B|A|A|0||ACK|R|P|2.5\rMSA\rMSA|AA|ID1\r";
        assert_eq!(ack_control_id(frame), Some(&b""[..]));
        assert!(Ack::parse(frame).is_err());
        // Without a readable header, the character after MSA separates its fields.
        assert_eq!(ack_control_id(b"MSA#AA#ID3\r"), Some(&b"ID3"[..]));
    }

    #[test]
    fn reads_commit_blocks() {
        let a = Ack::parse(COMMIT_ACK).unwrap();
        assert_eq!((a.kind, a.code), (ReplyKind::Mllp2, AckCode::CommitAccept));
        assert!(a.is_success());
        let n = Ack::parse(COMMIT_NAK).unwrap();
        assert_eq!(n.code, AckCode::CommitReject);
        assert!(!n.is_success());
        assert_eq!(ack_control_id(COMMIT_ACK), None);
    }

    #[test]
    fn err_text_fallbacks() {
        let seps = Separators::default();
        let pick = |seg: &'static [u8]| {
            err_text(seg.split(|&b| b == b'|').skip(1), &seps).map(|t| t.to_vec())
        };
        assert_eq!(pick(b"ERR||||||||text"), Some(b"text".to_vec()));
        assert_eq!(
            pick(b"ERR|||207^Internal^HL70357|E"),
            Some(b"Internal".to_vec())
        );
        assert_eq!(
            pick(b"ERR|^^^207&Old style&HL70357"),
            Some(b"Old style".to_vec())
        );
        assert_eq!(pick(b"ERR|^^^207"), Some(b"207".to_vec()));
        assert_eq!(pick(b"ERR"), None);
    }
}
