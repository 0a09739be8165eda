//! The segment file format: a file header, then records, each a fixed header (payload length,
//! CRC-32, kind, enqueue time) followed by the payload. Pure functions over bytes: encoding a
//! record, and scanning a segment's bytes for its complete records.
//!
//! ```text
//! file:   "MLLPSEG1" record*
//! record: len u32 LE | crc u32 LE | kind u8 | 0 0 0 | enqueued_ms u64 LE | payload (len bytes)
//! crc:    CRC-32 of len, kind, the three zero bytes, enqueued_ms and the payload
//! ```
//!
//! A record whose header is cut short, whose length runs past the end of the file, whose
//! length is zero, whose kind or reserved bytes are unknown or whose CRC does not match is
//! not a record: the scan skips such bytes until the next valid record, and tells what the
//! bytes after the last valid record are ([`Tail`]). The recovery rules that follow from it
//! are in `recovery`.

use crate::crc::Crc32;

/// The first bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"MLLPSEG1";
/// The size of a record header.
pub(crate) const RECORD_HEADER: usize = 20;

/// What a record's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// UTF-8 text, encoded into the sender's character set when delivered.
    Text = 0,
    /// Bytes delivered as they are.
    Bytes = 1,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Text),
            1 => Some(Kind::Bytes),
            _ => None,
        }
    }
}

/// Where a complete record lies in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordPos {
    /// The offset of its header in the segment file.
    pub offset: u64,
    /// The payload length.
    pub len: u32,
    /// What the payload is.
    pub kind: Kind,
    /// When it was enqueued, in milliseconds since the Unix epoch.
    pub enqueued_ms: u64,
}

impl RecordPos {
    /// The offset just past the record.
    pub fn end(&self) -> u64 {
        self.offset + RECORD_HEADER as u64 + u64::from(self.len)
    }
}

/// Appends the record for `payload` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, kind: Kind, enqueued_ms: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut rest = [0u8; 12];
    rest[0] = kind as u8;
    rest[4..12].copy_from_slice(&enqueued_ms.to_le_bytes());
    let crc = Crc32::new()
        .update(&len.to_le_bytes())
        .update(&rest)
        .update(payload)
        .finish();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&rest);
    out.extend_from_slice(payload);
}

/// A record header read from disk, not yet checked against its payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawHeader {
    len: u32,
    crc: u32,
    rest: [u8; 12],
}

impl RawHeader {
    /// Reads a header; `None` when its fixed fields are invalid (zero length, unknown kind,
    /// reserved bytes set).
    pub(crate) fn parse(bytes: &[u8; RECORD_HEADER]) -> Option<RawHeader> {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut rest = [0u8; 12];
        rest.copy_from_slice(&bytes[8..20]);
        if len == 0 || Kind::from_byte(rest[0]).is_none() || rest[1..4] != [0, 0, 0] {
            return None;
        }
        Some(RawHeader { len, crc, rest })
    }

    /// The payload length the header announces.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Checks `payload` against the CRC; the record's position when it matches.
    pub(crate) fn check(&self, offset: u64, payload: &[u8]) -> Option<RecordPos> {
        let crc = Crc32::new()
            .update(&self.len.to_le_bytes())
            .update(&self.rest)
            .update(payload)
            .finish();
        (crc == self.crc && payload.len() == self.len as usize).then(|| RecordPos {
            offset,
            len: self.len,
            kind: Kind::from_byte(self.rest[0]).unwrap_or(Kind::Bytes),
            enqueued_ms: u64::from_le_bytes([
                self.rest[4],
                self.rest[5],
                self.rest[6],
                self.rest[7],
                self.rest[8],
                self.rest[9],
                self.rest[10],
                self.rest[11],
            ]),
        })
    }
}

/// What follows the last valid record of a segment, when no valid record comes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Tail {
    /// Nothing: the segment ends with a valid record (or its header).
    #[default]
    Clean,
    /// Only zero bytes: an extent the file system allocated but a crash left unwritten.
    Zeros,
    /// The start of one record that runs to the end of the bytes, or to zeros that go on to
    /// the end (a header cut short, or a header whose length reaches past the bytes written):
    /// a write cut by a crash. In the last segment only; anywhere else it is damage.
    Torn,
    /// Anything else: a record of full length whose checksum fails, foreign bytes.
    Damaged,
}

/// The result of scanning a segment's bytes.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The valid records, in order.
    pub records: Vec<RecordPos>,
    /// Byte ranges (start, end) that hold no valid record and are followed by a valid one:
    /// damage, skipped to find the records after it.
    pub damaged: Vec<(u64, u64)>,
    /// What follows the last valid record, from `tail_at` to the end of the bytes.
    pub tail: Tail,
    /// Where the tail starts: the end of the last valid record, or of the skipped bytes
    /// before it; the end of the bytes when the tail is clean.
    pub tail_at: u64,
    /// Whether the file header is missing or wrong.
    pub bad_magic: bool,
}

impl Scan {
    /// Whether the segment holds exactly what its writer wrote.
    #[cfg(test)]
    pub(crate) fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.tail == Tail::Clean && !self.bad_magic
    }
}

/// The valid record at `at` of `bytes`, if one starts there.
fn record_at(bytes: &[u8], at: usize) -> Option<RecordPos> {
    let header = bytes
        .get(at..at.checked_add(RECORD_HEADER)?)
        .and_then(|h| <&[u8; RECORD_HEADER]>::try_from(h).ok())
        .and_then(RawHeader::parse)?;
    let start = at + RECORD_HEADER;
    let payload = bytes.get(start..start.checked_add(header.len() as usize)?)?;
    header.check(at as u64, payload)
}

/// How the bytes after the last valid record came to be (see [`Tail`]).
fn classify(rest: &[u8]) -> Tail {
    if rest.is_empty() {
        return Tail::Clean;
    }
    // Zeros after the bytes written are space the outbox wrote ahead (see `prealloc`), or an
    // extent a crash left unwritten: a record cut short there ends where its bytes end.
    let written = rest.len() - rest.iter().rev().take_while(|&&b| b == 0).count();
    if written == 0 {
        return Tail::Zeros;
    }
    let rest = &rest[..written];
    let Some(h) = rest.get(..RECORD_HEADER) else {
        return Tail::Torn;
    };
    match <&[u8; RECORD_HEADER]>::try_from(h)
        .ok()
        .and_then(RawHeader::parse)
    {
        Some(header) if RECORD_HEADER as u64 + u64::from(header.len()) > rest.len() as u64 => {
            Tail::Torn
        }
        _ => Tail::Damaged,
    }
}

/// Scans a whole segment held in memory for its valid records from offset `from` on (the
/// file header when `from` is at most its length; a later offset skips what lies before it,
/// a delivered part). Bytes that hold no valid record are skipped byte by byte until the next
/// record whose header and checksum hold: every intact record around damage is found. Never
/// panics, whatever the bytes.
pub(crate) fn scan(bytes: &[u8], from: u64) -> Scan {
    let mut out = Scan::default();
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    out.bad_magic = head != MAGIC;
    if bytes.len() < MAGIC.len() {
        // A file created by a crash before its header was complete, or foreign bytes.
        out.tail = if MAGIC.starts_with(head) || head.iter().all(|&b| b == 0) {
            Tail::Torn
        } else {
            Tail::Damaged
        };
        return out;
    }
    let from = usize::try_from(from)
        .unwrap_or(usize::MAX)
        .clamp(MAGIC.len(), bytes.len());
    let mut at = from;
    // The start of the bytes being skipped (a bad header is damage from byte 0).
    let mut bad_from = (out.bad_magic && from == MAGIC.len()).then_some(0);
    while at < bytes.len() {
        if let Some(pos) = record_at(bytes, at) {
            if let Some(start) = bad_from.take() {
                out.damaged.push((start as u64, at as u64));
            }
            at = pos.end() as usize;
            out.records.push(pos);
        } else {
            bad_from.get_or_insert(at);
            at += 1;
        }
    }
    out.tail_at = bad_from.unwrap_or(at) as u64;
    out.tail = match bad_from {
        Some(0) => Tail::Damaged,
        Some(start) => classify(&bytes[start..]),
        None => Tail::Clean,
    };
    out
}

/// The file name of segment `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:016}.seg")
}

/// The sequence number in a segment file name, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode(&mut out, Kind::Text, 1_000 + i as u64, p);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let bytes = segment(&[b"one", b"two two", b"3"]);
        let scan = scan(&bytes, 0);
        assert!(scan.is_clean());
        assert_eq!(scan.tail_at, bytes.len() as u64);
        let lens: Vec<u32> = scan.records.iter().map(|r| r.len).collect();
        assert_eq!(lens, [3, 7, 1]);
        assert_eq!(scan.records[1].enqueued_ms, 1_001);
        let r = scan.records[1];
        assert_eq!(
            &bytes[r.offset as usize + RECORD_HEADER..r.end() as usize],
            b"two two"
        );
        // From a later record on, the earlier ones are not looked at.
        let later = super::scan(&bytes, r.offset);
        assert_eq!(later.records.len(), 2);
        assert!(later.is_clean());
    }

    #[test]
    fn every_truncation_of_the_last_record_is_a_torn_tail() {
        let bytes = segment(&[b"first", b"second", b"the last record"]);
        let last_start = scan(&bytes, 0).records[2].offset as usize;
        for cut in last_start..bytes.len() {
            let scan = scan(&bytes[..cut], 0);
            assert_eq!(scan.records.len(), 2, "cut at {cut}");
            assert_eq!(scan.tail_at, last_start as u64, "cut at {cut}");
            let want = if cut > last_start {
                Tail::Torn
            } else {
                Tail::Clean
            };
            assert_eq!(scan.tail, want, "cut at {cut}");
            assert!(scan.damaged.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_loses_only_its_own_record() {
        let bytes = segment(&[b"first", b"second", b"third"]);
        let recs = scan(&bytes, 0).records;
        for at in MAGIC.len()..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[at] ^= bit;
                let s = scan(&bad, 0);
                let hit = recs
                    .iter()
                    .position(|r| (r.offset as usize..r.end() as usize).contains(&at))
                    .unwrap();
                let kept: Vec<u64> = s.records.iter().map(|r| r.offset).collect();
                let want: Vec<u64> = (0..recs.len())
                    .filter(|&i| i != hit)
                    .map(|i| recs[i].offset)
                    .collect();
                assert_eq!(kept, want, "byte {at}");
                let region = (recs[hit].offset, recs[hit].end());
                if hit + 1 < recs.len() {
                    assert_eq!(s.damaged, [region], "byte {at}");
                    assert_eq!(s.tail, Tail::Clean, "byte {at}");
                } else {
                    // The last record: torn when its length now runs past the end.
                    assert!(s.damaged.is_empty(), "byte {at}");
                    assert_eq!(s.tail_at, region.0, "byte {at}");
                    assert!(matches!(s.tail, Tail::Torn | Tail::Damaged), "byte {at}");
                }
            }
        }
    }

    #[test]
    fn zeros_torn_headers_and_foreign_bytes_are_told_apart() {
        let mut bytes = segment(&[b"kept"]);
        let len = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 64]);
        let s = scan(&bytes, 0);
        assert_eq!((s.records.len(), s.tail_at, s.tail), (1, len, Tail::Zeros));
        // Zeros, then a record: the zeros are damage (not the tail), the record is kept.
        let mut more = bytes.clone();
        encode(&mut more, Kind::Bytes, 7, b"after");
        let s = scan(&more, 0);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.damaged, [(len, len + 64)]);
        assert_eq!(s.tail, Tail::Clean);
        // A record cut short in space written ahead: its first bytes, then zeros to the end.
        let mut cut = segment(&[b"kept"]);
        let whole = {
            let mut r = Vec::new();
            encode(&mut r, Kind::Bytes, 7, &[b'x'; 100]);
            r
        };
        for written in [3, RECORD_HEADER, RECORD_HEADER + 50] {
            let mut torn = cut.clone();
            torn.extend_from_slice(&whole[..written]);
            torn.extend_from_slice(&[0; 4096]);
            assert_eq!(scan(&torn, 0).tail, Tail::Torn, "{written} bytes written");
        }
        // The whole record there but failing its checksum, then zeros: damage, not a tail.
        let mut flipped = whole.clone();
        flipped[RECORD_HEADER + 10] ^= 1;
        cut.extend_from_slice(&flipped);
        cut.extend_from_slice(&[0; 4096]);
        assert_eq!(scan(&cut, 0).tail, Tail::Damaged);
        let s = scan(b"not a segment", 0);
        assert!(s.bad_magic && s.records.is_empty());
        assert_eq!(s.tail, Tail::Damaged);
        for torn in [&b""[..], b"MLLP", b"\0\0\0"] {
            let s = scan(torn, 0);
            assert!(s.bad_magic && s.records.is_empty(), "{torn:?}");
            assert_ne!(s.tail, Tail::Damaged, "{torn:?}");
        }
        // A damaged file header: the records after it are still found.
        let mut head = segment(&[b"one", b"two"]);
        head[0] = b'X';
        let s = scan(&head, 0);
        assert!(s.bad_magic);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.damaged, [(0, MAGIC.len() as u64)]);
    }

    #[test]
    fn names() {
        assert_eq!(file_name(42), "0000000000000042.seg");
        assert_eq!(parse_name("0000000000000042.seg"), Some(42));
        for bad in ["42.seg", "000000000000004x.seg", "0000000000000042.tmp"] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
