//! A zero-copy view of the header segment (MSH, BHS or FHS) of a raw HL7 v2 message.

use std::borrow::Cow;

use crate::error::HeaderError;

/// The delimiters a message declares in its header: the byte after the segment name and the
/// encoding characters of MSH-2 (in order: component, repetition, escape, subcomponent,
/// truncation).
///
/// MSH-2 may hold 2 to 5 characters; the ones it omits are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Field separator (MSH-1), usually `|`.
    pub field: u8,
    /// Component separator, usually `^`.
    pub component: u8,
    /// Repetition separator, usually `~`.
    pub repetition: u8,
    /// Escape character, usually `\`.
    pub escape: Option<u8>,
    /// Subcomponent separator, usually `&`.
    pub subcomponent: Option<u8>,
    /// Truncation character (HL7 v2.7 and later), usually `#`.
    pub truncation: Option<u8>,
}

impl Default for Separators {
    /// `|^~\&`, the separators almost everyone uses.
    fn default() -> Self {
        Separators {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

/// The header segment of a received message, read from the raw bytes before any character
/// decoding (the header is ASCII in every character set MLLP can carry).
///
/// All accessors borrow from the input; parsing allocates nothing.
///
/// Field numbering follows HL7: for MSH, `field(1)` is the field separator itself and
/// `field(2)` the encoding characters, so `field(10)` is MSH-10 (the message control ID).
/// BHS and FHS use the same scheme.
///
/// A block that starts with FHS or BHS is a batch. Its header is the FHS (or BHS) segment;
/// [`Header::control_id`] then gives the ID the acknowledgement must carry in MSA-2 (BHS-11 when
/// the block has a BHS, else FHS-11), and [`Header::batch_message`] the header of the first
/// message inside the batch.
#[derive(Clone, Copy)]
pub struct Header<'a> {
    /// The header segment, from its name to just before its terminator.
    segment: &'a [u8],
    /// Everything after the header segment (its terminator included).
    rest: &'a [u8],
    separators: Separators,
    /// Number of encoding characters in MSH-2 (2 to 5).
    encoding_len: usize,
    /// Offsets in `segment` of the field separators that open fields 3, 4, …, so that field
    /// access does not rescan the segment; `indexed` of them were found.
    starts: [u32; INDEXED_FIELDS],
    indexed: u8,
}

/// How many field openings [`Header::parse`] indexes: fields 3 to 26, which covers every field
/// of MSH the crate reads. Later fields are found by scanning.
const INDEXED_FIELDS: usize = 24;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether `b` may serve as a delimiter: printable ASCII, not a letter or digit.
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// Splits `data` at the first CR or LF: (segment, rest starting at the terminator).
fn split_segment(data: &[u8]) -> (&[u8], &[u8]) {
    let end = crate::scan::find_either(b'\r', b'\n', data).unwrap_or(data.len());
    data.split_at(end)
}

/// The segments of `data`, split on CR, LF or CRLF, empty lines skipped.
pub(crate) fn segments(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || loop {
        if data.is_empty() {
            return None;
        }
        let (segment, rest) = split_segment(data);
        data = rest.get(1..).unwrap_or_default();
        if !segment.is_empty() {
            return Some(segment);
        }
    })
}

/// The control ID of a message whose header [`Header::parse`] refuses, when it can still be
/// found: the first segment is MSH (or BHS/FHS) with a usable field separator, and MSH-10 (or
/// BHS-11/FHS-11) is valued. The encoding characters are not needed for that (they may be what
/// is wrong: `^~\\&` in a real sample), so a NAK for such a message can still name it in MSA-2
/// and its sender can match the NAK. The field is returned whole (components unsplit, since
/// the component separator may be the unreadable part), without trailing spaces.
///
/// ```
/// use mllp::hl7::{salvage_control_id, Header};
///
/// let msg = b"MSH|^~\\\\&|LAB|HOSP|||20260101||ORU^R01|CTRL-7|P|2.5\rPID|1\r";
/// assert!(Header::parse(msg).is_err());
/// assert_eq!(salvage_control_id(msg), Some(&b"CTRL-7"[..]));
/// ```
pub fn salvage_control_id(msg: &[u8]) -> Option<&[u8]> {
    let mut data = msg.strip_prefix(BOM).unwrap_or(msg);
    while let [b'\r' | b'\n', tail @ ..] = data {
        data = tail;
    }
    let (segment, _) = split_segment(data);
    let index = match segment.get(..3)? {
        b"MSH" => 9,
        b"BHS" | b"FHS" => 10,
        _ => return None,
    };
    let field = *segment.get(3)?;
    if !is_delimiter(field) {
        return None;
    }
    let id = segment.split(|&b| b == field).nth(index)?;
    let end = id.iter().rposition(|&b| b != b' ')? + 1;
    Some(&id[..end])
}

impl<'a> Header<'a> {
    /// Reads the header of `msg`.
    ///
    /// Tolerates a leading UTF-8 BOM and blank lines, and CR, LF or CRLF segment endings.
    ///
    /// # Errors
    /// [`HeaderError::NoHeader`] when the first segment is not MSH, BHS or FHS;
    /// [`HeaderError::BadFieldSeparator`] when the byte after the segment name is missing,
    /// alphanumeric, a control byte or non-ASCII; [`HeaderError::BadEncodingCharacters`] when
    /// MSH-2 has fewer than 2 or more than 5 characters, repeats one, or holds the field
    /// separator, an alphanumeric, control or non-ASCII byte.
    pub fn parse(msg: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        let mut data = msg.strip_prefix(BOM).unwrap_or(msg);
        while let [b'\r' | b'\n', tail @ ..] = data {
            data = tail;
        }
        let (segment, rest) = split_segment(data);
        let name = segment.get(..3).ok_or(HeaderError::NoHeader)?;
        if !matches!(name, b"MSH" | b"BHS" | b"FHS") {
            return Err(HeaderError::NoHeader);
        }
        let field = *segment.get(3).ok_or(HeaderError::BadFieldSeparator)?;
        if !is_delimiter(field) {
            return Err(HeaderError::BadFieldSeparator);
        }
        let after = &segment[4..];
        let encoding = after.split(|&b| b == field).next().unwrap_or_default();
        let n = encoding.len();
        if !(2..=5).contains(&n) {
            return Err(HeaderError::BadEncodingCharacters);
        }
        for (i, &c) in encoding.iter().enumerate() {
            if !is_delimiter(c) || encoding[..i].contains(&c) {
                return Err(HeaderError::BadEncodingCharacters);
            }
        }
        let separators = Separators {
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding.get(2).copied(),
            subcomponent: encoding.get(3).copied(),
            truncation: encoding.get(4).copied(),
        };
        let mut starts = [0u32; INDEXED_FIELDS];
        let mut indexed = 0;
        let body = 4 + n;
        for (i, &b) in segment[body..].iter().enumerate() {
            if b == field {
                // Offsets past u32::MAX (a hostile 4 GiB header) are simply not indexed.
                let Ok(at) = u32::try_from(body + i) else {
                    break;
                };
                starts[indexed] = at;
                indexed += 1;
                if indexed == INDEXED_FIELDS {
                    break;
                }
            }
        }
        Ok(Header {
            segment,
            rest,
            separators,
            encoding_len: n,
            starts,
            indexed: indexed as u8,
        })
    }

    /// The header segment's name: `MSH`, `BHS` or `FHS`.
    pub fn segment_name(&self) -> &'a [u8] {
        &self.segment[..3]
    }

    /// Whether this header opens a batch (FHS or BHS) rather than a single message.
    pub fn is_batch(&self) -> bool {
        self.segment_name() != b"MSH"
    }

    /// The delimiters the message declares.
    pub fn separators(&self) -> Separators {
        self.separators
    }

    /// The whole header segment, without its terminator.
    pub fn segment(&self) -> &'a [u8] {
        self.segment
    }

    /// Everything after the header segment, its terminator included.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Field `n` of the header segment, HL7 numbering (1 = the field separator, 2 = the
    /// encoding characters). `None` when the segment has fewer fields (or `n` is 0); an empty
    /// field present in the segment is `Some(b"")`.
    pub fn field(&self, n: usize) -> Option<&'a [u8]> {
        match n {
            0 => None,
            1 => Some(&self.segment[3..4]),
            2 => Some(&self.segment[4..4 + self.encoding_len]),
            _ => {
                let k = n - 3;
                let indexed = self.indexed as usize;
                if k < indexed {
                    let start = self.starts[k] as usize + 1;
                    let end = match self.starts.get(k + 1) {
                        Some(&next) if k + 1 < indexed => next as usize,
                        // The last indexed field runs to the next separator or the end.
                        _ => self.segment[start..]
                            .iter()
                            .position(|&b| b == self.separators.field)
                            .map_or(self.segment.len(), |p| start + p),
                    };
                    return Some(&self.segment[start..end]);
                }
                if indexed < INDEXED_FIELDS {
                    // Every separator was indexed: the segment has no field `n`.
                    return None;
                }
                let last = self.starts[INDEXED_FIELDS - 1] as usize + 1;
                self.segment[last..]
                    .split(|&b| b == self.separators.field)
                    .nth(k - (INDEXED_FIELDS - 1))
            }
        }
    }

    /// Component `comp` (from 1) of the first repetition of field `n`. `None` when absent.
    /// Fields 1 and 2 have a single component.
    pub fn component(&self, n: usize, comp: usize) -> Option<&'a [u8]> {
        let value = self.field(n)?;
        if n <= 2 {
            return (comp == 1).then_some(value);
        }
        let first = first_repetition(value, self.separators.repetition);
        component_of(first, self.separators.component, comp)
    }

    /// Field `n` as text, when present and not empty: the header is ASCII in every character
    /// set MLLP carries, so the bytes are the text; a byte that is not UTF-8 becomes U+FFFD
    /// (borrowed, no copy, when the field is valid UTF-8).
    ///
    /// ```
    /// use mllp::hl7::Header;
    ///
    /// let h = Header::parse(b"MSH|^~\\&|LAB|HOSP|||2026||ORU^R01|C-1|P|2.5\r").unwrap();
    /// assert_eq!(h.text(3).as_deref(), Some("LAB"));
    /// assert_eq!(h.text(9).as_deref(), Some("ORU^R01"));
    /// assert_eq!(h.text(5), None);
    /// assert_eq!(h.control_id_text().as_deref(), Some("C-1"));
    /// ```
    pub fn text(&self, n: usize) -> Option<Cow<'a, str>> {
        self.valued(n).map(String::from_utf8_lossy)
    }

    /// [`control_id`](Self::control_id) as text, as [`text`](Self::text) gives fields.
    pub fn control_id_text(&self) -> Option<Cow<'a, str>> {
        self.control_id().map(String::from_utf8_lossy)
    }

    /// Field `n` when present and not empty.
    fn valued(&self, n: usize) -> Option<&'a [u8]> {
        self.field(n).filter(|v| !v.is_empty())
    }

    /// Field `n` of an MSH header when present and not empty; `None` for BHS/FHS.
    fn msh_valued(&self, n: usize) -> Option<&'a [u8]> {
        if self.is_batch() {
            None
        } else {
            self.valued(n)
        }
    }

    /// The control ID the acknowledgement must echo in MSA-2: MSH-10 for a message; for a batch
    /// BHS-11 (from the BHS that opens or follows the header, when it has the FHS's delimiters)
    /// or, without one, FHS-11. `None` when empty.
    pub fn control_id(&self) -> Option<&'a [u8]> {
        match self.segment_name() {
            b"MSH" => self.valued(10),
            b"BHS" => self.valued(11),
            // The BHS must share the FHS's delimiters (as HL7 requires): the ID is copied
            // into an ACK written with the FHS's, where a BHS-11 under other delimiters
            // could hold a field separator and cut MSA-2.
            _ => self
                .following_bhs()
                .filter(|bhs| bhs.separators() == self.separators())
                .and_then(|bhs| bhs.valued(11))
                .or_else(|| self.valued(11)),
        }
    }

    /// The BHS segment that follows an FHS header, if any (before the first MSH).
    fn following_bhs(&self) -> Option<Header<'a>> {
        for seg in segments(self.rest) {
            if seg.starts_with(b"MSH") {
                return None;
            }
            if seg.starts_with(b"BHS") {
                return Header::parse(seg).ok();
            }
        }
        None
    }

    /// For a batch header (FHS or BHS), the header of the first message (MSH) in the batch, if
    /// there is one and it parses. `None` for an MSH header.
    pub fn batch_message(&self) -> Option<Header<'a>> {
        if !self.is_batch() {
            return None;
        }
        let mut rest = self.rest;
        loop {
            while let [b'\r' | b'\n', tail @ ..] = rest {
                rest = tail;
            }
            if rest.is_empty() {
                return None;
            }
            if rest.starts_with(b"MSH") {
                return Header::parse(rest).ok();
            }
            rest = split_segment(rest).1;
        }
    }

    /// MSH-9 (message type), whole, with all its components. `None` when empty or for a batch
    /// header.
    pub fn message_type(&self) -> Option<&'a [u8]> {
        self.msh_valued(9)
    }

    /// MSH-9.2 (trigger event). `None` when empty or for a batch header.
    pub fn trigger_event(&self) -> Option<&'a [u8]> {
        self.msh_valued(9)?;
        self.component(9, 2).filter(|v| !v.is_empty())
    }

    /// MSH-12.1 (version ID, e.g. `2.5.1`). `None` when empty or for a batch header.
    pub fn version(&self) -> Option<&'a [u8]> {
        self.msh_valued(12)?;
        self.component(12, 1).filter(|v| !v.is_empty())
    }

    /// MSH-11 (processing ID), whole. `None` when empty or for a batch header.
    pub fn processing_id(&self) -> Option<&'a [u8]> {
        self.msh_valued(11)
    }

    /// MSH-15 (accept acknowledgment type: AL, NE, ER, SU). `None` when empty or for a batch
    /// header.
    pub fn accept_ack_type(&self) -> Option<&'a [u8]> {
        self.msh_valued(15)
    }

    /// MSH-16 (application acknowledgment type). `None` when empty or for a batch header.
    pub fn app_ack_type(&self) -> Option<&'a [u8]> {
        self.msh_valued(16)
    }

    /// MSH-18 (character set), first repetition. `None` when empty or for a batch header.
    pub fn charset_name(&self) -> Option<&'a [u8]> {
        let value = self.msh_valued(18)?;
        Some(first_repetition(value, self.separators.repetition)).filter(|v| !v.is_empty())
    }

    /// The version as (major, minor), e.g. `2.5.1` → `(2, 5)`; `None` when absent or not
    /// numeric.
    pub fn version_number(&self) -> Option<(u32, u32)> {
        parse_version(self.version()?)
    }
}

/// Shows the segment name, separators and sizes only: message bytes carry patient data and
/// must not end up in logs by accident.
impl std::fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field(
                "segment_name",
                &String::from_utf8_lossy(self.segment_name()),
            )
            .field("separators", &self.separators)
            .field("segment_len", &self.segment.len())
            .field("rest_len", &self.rest.len())
            .finish()
    }
}

/// `2.5.1` → `(2, 5)`.
pub(crate) fn parse_version(v: &[u8]) -> Option<(u32, u32)> {
    let mut parts = v.split(|&b| b == b'.');
    let num = |p: &[u8]| -> Option<u32> {
        if p.is_empty() || p.len() > 6 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(p).ok()?.parse().ok()
    };
    let major = num(parts.next()?)?;
    let minor = parts.next().map_or(Some(0), num)?;
    Some((major, minor))
}

/// `s` without leading and trailing ASCII whitespace.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// The first repetition of a field value.
pub(crate) fn first_repetition(value: &[u8], repetition: u8) -> &[u8] {
    value.split(|&b| b == repetition).next().unwrap_or_default()
}

/// Component `comp` (from 1) of `value`.
pub(crate) fn component_of(value: &[u8], sep: u8, comp: usize) -> Option<&[u8]> {
    value.split(|&b| b == sep).nth(comp.checked_sub(1)?)
}

#[cfg(test)]
mod tests {

    /// Field access through the index agrees with a plain split, for segments with fewer,
    /// exactly as many, and more fields than are indexed.
    #[test]
    fn indexed_fields_match_a_plain_split() {
        for count in [3, 10, 25, 26, 27, 40] {
            let mut msh = String::from("MSH|^~\\&");
            for f in 3..=count {
                msh.push('|');
                if f % 4 != 0 {
                    msh.push_str(&format!("F{f}^x"));
                }
            }
            let msg = format!("{msh}\rPID|1\r");
            let header = Header::parse(msg.as_bytes()).unwrap();
            let naive: Vec<&[u8]> = msh.as_bytes()[8..].split(|&b| b == b'|').skip(1).collect();
            for n in 3..60 {
                assert_eq!(
                    header.field(n),
                    naive.get(n - 3).copied(),
                    "{count} fields, MSH-{n}"
                );
            }
        }
    }
    use super::*;

    #[test]
    fn reads_fields_and_components() {
        let msg = b"\xEF\xBB\xBF\r\nMSH|^~\\&|APP|FAC|RAPP|RFAC|20240101||ADT^A01^ADT_A01|42|P|2.5.1|||AL|NE||UNICODE UTF-8~8859/1\r\nPID|1\r\n";
        let h = Header::parse(msg).unwrap();
        assert_eq!(h.segment_name(), b"MSH");
        assert_eq!(h.field(1), Some(&b"|"[..]));
        assert_eq!(h.field(2), Some(&b"^~\\&"[..]));
        assert_eq!(h.field(3), Some(&b"APP"[..]));
        assert_eq!(h.field(8), Some(&b""[..]));
        assert_eq!(h.field(19), None);
        assert_eq!(h.control_id(), Some(&b"42"[..]));
        assert_eq!(h.message_type(), Some(&b"ADT^A01^ADT_A01"[..]));
        assert_eq!(h.trigger_event(), Some(&b"A01"[..]));
        assert_eq!(h.component(9, 3), Some(&b"ADT_A01"[..]));
        assert_eq!(h.component(9, 4), None);
        assert_eq!(h.version(), Some(&b"2.5.1"[..]));
        assert_eq!(h.version_number(), Some((2, 5)));
        assert_eq!(h.accept_ack_type(), Some(&b"AL"[..]));
        assert_eq!(h.app_ack_type(), Some(&b"NE"[..]));
        assert_eq!(h.charset_name(), Some(&b"UNICODE UTF-8"[..]));
        assert_eq!(h.separators().truncation, None);
    }

    #[test]
    fn malformed_headers_are_typed_errors() {
        let cases: &[(&[u8], HeaderError)] = &[
            (b"", HeaderError::NoHeader),
            (b"PID|1", HeaderError::NoHeader),
            (b"MS", HeaderError::NoHeader),
            (b"MSH", HeaderError::BadFieldSeparator),
            (b"MSHA^~\\&", HeaderError::BadFieldSeparator),
            (b"MSH\r^~\\&", HeaderError::BadFieldSeparator),
            (b"MSH|^", HeaderError::BadEncodingCharacters),
            (b"MSH|^^\\&|", HeaderError::BadEncodingCharacters),
            (b"MSH|^~\\&#$|", HeaderError::BadEncodingCharacters),
            (b"MSH|^~\\\\&|", HeaderError::BadEncodingCharacters),
            (b"MSH|^\x01|", HeaderError::BadEncodingCharacters),
            (b"MSH|^a|", HeaderError::BadEncodingCharacters),
        ];
        for (input, want) in cases {
            assert_eq!(Header::parse(input).err(), Some(*want), "{input:?}");
        }
    }

    #[test]
    fn batch_control_id_prefers_bhs() {
        let b = b"FHS|^~\\&|A|B|C|D|||||F1\rBHS|^~\\&|A|B|C|D|||||B1\rMSH|^~\\&|A|B|C|D|||ORU^R01|M1|P|2.4\r";
        let h = Header::parse(b).unwrap();
        assert!(h.is_batch());
        assert_eq!(h.control_id(), Some(&b"B1"[..]));
        assert_eq!(h.message_type(), None);
        let m = h.batch_message().unwrap();
        assert_eq!(m.control_id(), Some(&b"M1"[..]));
        let f = Header::parse(b"FHS|^~\\&|A|B|C|D|||||F1\rMSH|^~\\&\r").unwrap();
        assert_eq!(f.control_id(), Some(&b"F1"[..]));
    }

    #[test]
    fn a_bhs_with_other_delimiters_does_not_lend_its_control_id() {
        // Found by the ack_build fuzz target: BHS-11 "^~\&" holds the FHS's field separator
        // (`\`), so echoed into an ACK written with the FHS's delimiters it cut MSA-2.
        let b = b"FHS\\^~\\&|A|B|C|D|||||F1\nBHS|^~\\&|A|B|C|D|||||^~\\&\r";
        let h = Header::parse(b).unwrap();
        assert_eq!(h.separators().field, b'\\');
        assert_eq!(h.control_id(), None);
    }

    #[test]
    fn debug_output_leaves_out_message_bytes() {
        let h = Header::parse(b"MSH|^~\\&|SECRET\rPID|1||DOE^JOHN").unwrap();
        let shown = format!("{h:?}");
        assert!(shown.contains("MSH") && !shown.contains("SECRET") && !shown.contains("DOE"));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"2.3.1"), Some((2, 3)));
        assert_eq!(parse_version(b"2"), Some((2, 0)));
        assert_eq!(parse_version(b"v2"), None);
        assert_eq!(parse_version(b"2.8.1000000000000000"), Some((2, 8)));
    }
}
