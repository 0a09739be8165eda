//! Building acknowledgements (ACK/NAK) for received messages.

use super::control_id::{next_control_id, now_unix, write_timestamp};
use super::escape::escape_into;
use super::header::{parse_version, trim, Header, Separators};
use crate::charset::Charset;
use crate::error::Error;

/// MLLP release 2 commit acknowledgement: a frame whose whole payload is this byte.
pub const COMMIT_ACK: &[u8] = &[0x06];
/// MLLP release 2 negative commit acknowledgement: a frame whose whole payload is this byte.
pub const COMMIT_NAK: &[u8] = &[0x15];

/// An acknowledgement code (MSA-1, HL7 table 0008).
///
/// The application codes (AA/AE/AR) belong to original mode, the commit codes (CA/CE/CR) to
/// enhanced mode. A parsed MLLP release 2 commit block is reported as `CommitAccept` (0x06) or
/// `CommitReject` (0x15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: application accept.
    ApplicationAccept,
    /// `AE`: application error.
    ApplicationError,
    /// `AR`: application reject.
    ApplicationReject,
    /// `CA`: commit accept.
    CommitAccept,
    /// `CE`: commit error.
    CommitError,
    /// `CR`: commit reject.
    CommitReject,
}

impl AckCode {
    /// The two-letter code, e.g. `"AA"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::ApplicationAccept => "AA",
            AckCode::ApplicationError => "AE",
            AckCode::ApplicationReject => "AR",
            AckCode::CommitAccept => "CA",
            AckCode::CommitError => "CE",
            AckCode::CommitReject => "CR",
        }
    }

    /// Whether the code means the message was accepted (AA or CA).
    pub fn is_success(self) -> bool {
        matches!(self, AckCode::ApplicationAccept | AckCode::CommitAccept)
    }

    /// Reads a code from MSA-1 (ASCII case and surrounding spaces ignored).
    pub fn parse(code: &[u8]) -> Option<AckCode> {
        let code = trim(code);
        [
            AckCode::ApplicationAccept,
            AckCode::ApplicationError,
            AckCode::ApplicationReject,
            AckCode::CommitAccept,
            AckCode::CommitError,
            AckCode::CommitReject,
        ]
        .into_iter()
        .find(|c| c.as_str().as_bytes().eq_ignore_ascii_case(code))
    }
}

impl std::fmt::Display for AckCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which HL7 acknowledgement mode to answer in: for [`AckBuilder::mode`], and for a listener's
/// acknowledgements ([`ListenerConfig::ack_mode`](crate::ListenerConfig::ack_mode)) when it
/// answers with HL7 acknowledgements ([`ReplyKind::Hl7`](super::ReplyKind::Hl7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// Follow the inbound message: original mode (AA/AE/AR) when MSH-15 and MSH-16 are both
    /// empty, enhanced mode (CA/CE/CR, sent according to MSH-15) when either is valued.
    #[default]
    Auto,
    /// Always original mode (AA/AE/AR, always sent), for peers that cannot handle CA.
    Original,
}

/// What the receiver decided about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted: AA (original mode) or CA (enhanced mode).
    Accept,
    /// Not processed because of an error; the sender may retry: AE or CE.
    Error,
    /// Rejected; retrying will not help: AR or CR.
    Reject,
}

/// Builds the acknowledgement of one received message into a caller-provided buffer.
///
/// ```
/// use mllp::hl7::{AckBuilder, Disposition, Header};
///
/// let msg = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01^ORU_R01|123|P|2.5.1\rPID|1\r";
/// let header = Header::parse(msg)?;
/// let mut out = Vec::new();
/// let sent = AckBuilder::new(Disposition::Accept).build(&header, &mut out)?;
/// assert!(sent);
/// assert!(out.starts_with(b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|"));
/// assert!(out.ends_with(b"\rMSA|AA|123\r"));
/// # Ok::<(), mllp::Error>(())
/// ```
///
/// The ACK mirrors the inbound message:
/// * its separators and encoding characters;
/// * MSH-3/4 ← inbound MSH-5/6 and MSH-5/6 ← inbound MSH-3/4, whole fields;
/// * MSH-7 = the current time in UTC as `YYYYMMDDHHMMSS+0000`;
/// * MSH-9 = `ACK^<trigger>^ACK`, with as many components as the inbound MSH-9 had (at most
///   three);
/// * MSH-10 = a fresh control ID from [`next_control_id`];
/// * MSH-11 and MSH-12 echoed whole, MSH-15/16 empty;
/// * MSH-18 = the MSH-18 name of the builder's charset, only when the inbound had an MSH-18
///   (the inbound value is echoed when the charset has no HL7 name);
/// * MSA-1 the code, MSA-2 the inbound control ID, MSA-3 the text when given;
/// * for an error or reject, an ERR segment: from v2.5 on ERR-3 (table 0357 code),
///   ERR-4 = `E` and ERR-8 = the text; before v2.5 ERR-1 with the code and text in its fourth
///   component. Texts are escaped with the message's own escape character.
///
/// In enhanced mode the ACK is sent according to inbound MSH-15: `AL` always, `NE` never,
/// `ER` only for an error or reject, `SU` only on success. An empty MSH-15 with MSH-16 valued
/// counts as `AL` (HL7 gives no rule; the sender evidently wants acknowledgements), and so
/// does an unknown value.
///
/// For a batch (FHS/BHS header) one ACK is built: MSH-3..6 come from the batch header, MSH-9
/// is `ACK`, MSA-2 is BHS-11 (else FHS-11), and MSH-11/12/15/16/18 come from the first
/// message of the batch (processing ID `P` and version `2.5` when it has none).
#[derive(Debug, Clone, Copy)]
pub struct AckBuilder<'t> {
    disposition: Disposition,
    text: Option<&'t str>,
    error_code: Option<u16>,
    mode: AckMode,
    charset: Charset,
}

/// The version assumed when the inbound message has none (and for NAKs of unparseable input).
const DEFAULT_VERSION: &[u8] = b"2.5";
/// The processing ID used when the inbound message has none.
const DEFAULT_PROCESSING_ID: &[u8] = b"P";

impl<'t> AckBuilder<'t> {
    /// A builder for `disposition` with no text, the default error code, [`AckMode::Auto`] and
    /// UTF-8.
    pub fn new(disposition: Disposition) -> Self {
        AckBuilder {
            disposition,
            text: None,
            error_code: None,
            mode: AckMode::Auto,
            charset: Charset::UTF_8,
        }
    }

    /// The text for MSA-3 and, for an error or reject, the ERR segment.
    pub fn text(mut self, text: &'t str) -> Self {
        self.text = Some(text);
        self
    }

    /// The HL7 table 0357 error code for the ERR segment (e.g. 207 application internal error,
    /// 200 unsupported message type). Default: 207 for [`Disposition::Error`], 200 for
    /// [`Disposition::Reject`]. Ignored for [`Disposition::Accept`].
    pub fn error_code(mut self, code: u16) -> Self {
        self.error_code = Some(code);
        self
    }

    /// The acknowledgement mode (default [`AckMode::Auto`]).
    pub fn mode(mut self, mode: AckMode) -> Self {
        self.mode = mode;
        self
    }

    /// The character set the ACK is sent in (default UTF-8): the text is encoded with it and
    /// its HL7 name goes into MSH-18 when the inbound message had an MSH-18.
    pub fn charset(mut self, charset: Charset) -> Self {
        self.charset = charset;
        self
    }

    /// The header whose fields drive the ACK: the message itself, or for a batch the first
    /// message in it.
    fn mode_header<'a>(header: &Header<'a>) -> Option<Header<'a>> {
        if header.is_batch() {
            header.batch_message()
        } else {
            Some(*header)
        }
    }

    /// Whether the answer to `header` is in enhanced mode.
    pub fn is_enhanced(&self, header: &Header<'_>) -> bool {
        self.mode == AckMode::Auto
            && Self::mode_header(header)
                .is_some_and(|h| h.accept_ack_type().is_some() || h.app_ack_type().is_some())
    }

    /// The code the ACK for `header` carries.
    pub fn code(&self, header: &Header<'_>) -> AckCode {
        match (self.is_enhanced(header), self.disposition) {
            (false, Disposition::Accept) => AckCode::ApplicationAccept,
            (false, Disposition::Error) => AckCode::ApplicationError,
            (false, Disposition::Reject) => AckCode::ApplicationReject,
            (true, Disposition::Accept) => AckCode::CommitAccept,
            (true, Disposition::Error) => AckCode::CommitError,
            (true, Disposition::Reject) => AckCode::CommitReject,
        }
    }

    /// Whether an ACK is to be sent at all: always in original mode; in enhanced mode
    /// according to MSH-15 (see the type's documentation).
    pub fn should_send(&self, header: &Header<'_>) -> bool {
        if !self.is_enhanced(header) {
            return true;
        }
        let msh15 = Self::mode_header(header).and_then(|h| h.accept_ack_type());
        let success = self.disposition == Disposition::Accept;
        match msh15.map(trim) {
            Some(v) if v.eq_ignore_ascii_case(b"NE") => false,
            Some(v) if v.eq_ignore_ascii_case(b"ER") => !success,
            Some(v) if v.eq_ignore_ascii_case(b"SU") => success,
            _ => true,
        }
    }

    /// Appends the ACK for `header` to `out`, CR after every segment.
    ///
    /// Returns `Ok(false)`, leaving `out` untouched, when MSH-15 says no ACK is to be sent.
    /// Allocates nothing beyond growing `out`, except to encode a non-ASCII text in a
    /// charset other than UTF-8.
    ///
    /// # Errors
    /// [`Error::Charset`] when the text holds a character the charset cannot represent.
    pub fn build(&self, header: &Header<'_>, out: &mut Vec<u8>) -> Result<bool, Error> {
        if !self.should_send(header) {
            return Ok(false);
        }
        let start = out.len();
        match self.write(header, out) {
            Ok(()) => Ok(true),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn write(&self, header: &Header<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        let seps = header.separators();
        let f = seps.field;
        let inner = Self::mode_header(header);
        let code = self.code(header);

        out.extend_from_slice(b"MSH");
        out.push(f);
        out.extend_from_slice(header.field(2).unwrap_or(b"^~\\&"));
        for n in [5, 6, 3, 4] {
            out.push(f);
            out.extend_from_slice(header.field(n).unwrap_or_default());
        }
        out.push(f);
        write_timestamp(now_unix(), out);
        out.push(f); // MSH-8 security, empty
        out.push(f);
        write_message_type(header, &seps, out);
        out.push(f);
        next_control_id().write_to(out);
        out.push(f);
        let echoed = |n: usize, default: &'static [u8]| -> &[u8] {
            match &inner {
                Some(h) if !header.is_batch() => h.field(n).unwrap_or_default(),
                Some(h) => h.field(n).filter(|v| !v.is_empty()).unwrap_or(default),
                None => default,
            }
        };
        out.extend_from_slice(echoed(11, DEFAULT_PROCESSING_ID));
        out.push(f);
        let version_field = echoed(12, DEFAULT_VERSION);
        out.extend_from_slice(version_field);
        let inbound_charset = inner.as_ref().and_then(|h| h.charset_name());
        if let Some(inbound) = inbound_charset {
            // MSH-13..17 empty, then MSH-18.
            out.extend_from_slice(&[f; 6]);
            match self.charset.msh18_name() {
                Some(name) => out.extend_from_slice(name.as_bytes()),
                None => out.extend_from_slice(inbound),
            }
        }
        out.push(b'\r');

        out.extend_from_slice(b"MSA");
        out.push(f);
        out.extend_from_slice(code.as_str().as_bytes());
        out.push(f);
        out.extend_from_slice(header.control_id().unwrap_or_default());
        if let Some(text) = self.text {
            out.push(f);
            self.write_text(text, &seps, out)?;
        }
        out.push(b'\r');

        if self.disposition != Disposition::Accept {
            let version = inner
                .as_ref()
                .and_then(|h| h.version())
                .unwrap_or(DEFAULT_VERSION);
            let err_code = self.error_code.unwrap_or(match self.disposition {
                Disposition::Reject => 200,
                _ => 207,
            });
            self.write_err(version, err_code, &seps, out)?;
        }
        Ok(())
    }

    fn write_text(&self, text: &str, seps: &Separators, out: &mut Vec<u8>) -> Result<(), Error> {
        write_text(text, self.charset, seps, out)
    }

    fn write_err(
        &self,
        version: &[u8],
        code: u16,
        seps: &Separators,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        write_err(version, code, self.text, self.charset, seps, out)
    }
}

/// Escapes `text` and appends it in `charset`.
fn write_text(
    text: &str,
    charset: Charset,
    seps: &Separators,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    if charset == Charset::UTF_8 || (text.is_ascii() && charset.is_ascii_compatible()) {
        escape_into(text, seps, out);
        return Ok(());
    }
    // Escape first (delimiters are ASCII characters), then encode: multi-byte charsets may
    // use delimiter byte values inside characters.
    let mut escaped = Vec::with_capacity(text.len() + 8);
    escape_into(text, seps, &mut escaped);
    let escaped = String::from_utf8(escaped).unwrap_or_default();
    let bytes = charset.encode(&escaped)?;
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Appends an ERR segment: ERR-3/4/8 from v2.5 on, ERR-1 before.
fn write_err(
    version: &[u8],
    code: u16,
    text: Option<&str>,
    charset: Charset,
    seps: &Separators,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let f = seps.field;
    let c = seps.component;
    let modern = parse_version(version).is_none_or(|v| v >= (2, 5));
    let mut code_buf = [0u8; 5];
    let code_digits = u16_digits(code, &mut code_buf);
    out.extend_from_slice(b"ERR");
    if modern {
        // ERR-1 and ERR-2 empty; ERR-3 code^description^HL70357; ERR-4 E; ERR-8 text.
        out.extend_from_slice(&[f, f, f]);
        out.extend_from_slice(code_digits);
        out.push(c);
        out.extend_from_slice(code_description(code).as_bytes());
        out.push(c);
        out.extend_from_slice(b"HL70357");
        out.push(f);
        out.push(b'E');
        if let Some(text) = text {
            out.extend_from_slice(&[f, f, f, f]);
            write_text(text, charset, seps, out)?;
        }
    } else {
        // ERR-1 (ELD): segment^sequence^field^code&text&HL70357.
        out.push(f);
        out.extend_from_slice(&[c, c, c]);
        out.extend_from_slice(code_digits);
        if let Some(s) = seps.subcomponent {
            out.push(s);
            match text {
                Some(text) => write_text(text, charset, seps, out)?,
                None => out.extend_from_slice(code_description(code).as_bytes()),
            }
            out.push(s);
            out.extend_from_slice(b"HL70357");
        }
    }
    out.push(b'\r');
    Ok(())
}

/// Decimal digits of `n` in `buf`.
fn u16_digits(n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The HL7 table 0357 description of an error code.
pub fn code_description(code: u16) -> &'static str {
    match code {
        0 => "Message accepted",
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        104 => "Value too long",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        207 => "Application internal error",
        _ => "Error",
    }
}

/// Writes MSH-9 of the ACK: `ACK`, `ACK^<trigger>` or `ACK^<trigger>^ACK`, as many components
/// as the inbound MSH-9 has (at most three). A batch gets `ACK`.
fn write_message_type(header: &Header<'_>, seps: &Separators, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ACK");
    let Some(inbound) = header.message_type() else {
        return;
    };
    let first = super::header::first_repetition(inbound, seps.repetition);
    let components = first.iter().filter(|&&b| b == seps.component).count() + 1;
    if components >= 2 {
        out.push(seps.component);
        out.extend_from_slice(header.component(9, 2).unwrap_or_default());
    }
    if components >= 3 {
        out.push(seps.component);
        out.extend_from_slice(b"ACK");
    }
}

/// Appends a NAK (AR) for input whose header cannot be parsed: separators `|^~\&`, version
/// 2.5, processing ID `P`, MSA-2 the `control_id` when one could be found (see
/// [`salvage_control_id`](super::salvage_control_id); escaped into these separators) or else
/// empty, and an ERR segment (code 100, segment sequence error) whose text is `reason`.
pub fn build_nak_unparseable(control_id: Option<&[u8]>, reason: &str, out: &mut Vec<u8>) {
    let seps = Separators::default();
    out.extend_from_slice(b"MSH|^~\\&|||||");
    write_timestamp(now_unix(), out);
    out.extend_from_slice(b"||ACK|");
    next_control_id().write_to(out);
    out.extend_from_slice(b"|P|2.5\rMSA|AR|");
    if let Some(id) = control_id {
        escape_into(&String::from_utf8_lossy(id), &seps, out);
    }
    out.push(b'|');
    escape_into(reason, &seps, out);
    out.push(b'\r');
    // UTF-8 never fails to encode.
    let _ = write_err(
        DEFAULT_VERSION,
        100,
        Some(reason),
        Charset::UTF_8,
        &seps,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse() {
        assert_eq!(AckCode::parse(b"ca"), Some(AckCode::CommitAccept));
        assert_eq!(AckCode::parse(b" AE "), Some(AckCode::ApplicationError));
        assert_eq!(AckCode::parse(b"XX"), None);
        assert!(AckCode::CommitAccept.is_success());
        assert!(!AckCode::CommitError.is_success());
    }
}
