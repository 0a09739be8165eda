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
//! length is zero, whose kind or reserved bytes are unknown or whose CRC does not match ends
//! the valid part of the segment: in the last segment that is a torn tail (a crash during a
//! write), anywhere else corruption.

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

/// The result of scanning a segment's bytes.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The complete records, in order.
    pub records: Vec<RecordPos>,
    /// The length of the valid prefix: the file header and the complete records.
    pub valid_len: u64,
    /// Whether bytes follow the valid prefix (a torn or corrupt record).
    pub bad_tail: bool,
    /// Whether the file header itself is missing or wrong (`valid_len` is then 0).
    pub bad_magic: bool,
}

/// Scans a whole segment held in memory. Never panics, whatever the bytes.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        out.bad_magic = true;
        out.bad_tail = !bytes.is_empty();
        return out;
    }
    let mut at = MAGIC.len();
    loop {
        if at == bytes.len() {
            break;
        }
        let Some(header) = bytes
            .get(at..at + RECORD_HEADER)
            .and_then(|h| <&[u8; RECORD_HEADER]>::try_from(h).ok())
            .and_then(RawHeader::parse)
        else {
            out.bad_tail = true;
            break;
        };
        let start = at + RECORD_HEADER;
        let Some(payload) = start
            .checked_add(header.len() as usize)
            .and_then(|end| bytes.get(start..end))
        else {
            out.bad_tail = true;
            break;
        };
        let Some(pos) = header.check(at as u64, payload) else {
            out.bad_tail = true;
            break;
        };
        at = pos.end() as usize;
        out.records.push(pos);
    }
    out.valid_len = at as u64;
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
        let scan = scan(&bytes);
        assert!(!scan.bad_tail && !scan.bad_magic);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        let lens: Vec<u32> = scan.records.iter().map(|r| r.len).collect();
        assert_eq!(lens, [3, 7, 1]);
        assert_eq!(scan.records[1].enqueued_ms, 1_001);
        let r = scan.records[1];
        assert_eq!(
            &bytes[r.offset as usize + RECORD_HEADER..r.end() as usize],
            b"two two"
        );
    }

    #[test]
    fn every_truncation_of_the_last_record_keeps_the_earlier_ones() {
        let bytes = segment(&[b"first", b"second", b"the last record"]);
        let last_start = scan(&bytes).records[2].offset as usize;
        for cut in last_start..bytes.len() {
            let scan = scan(&bytes[..cut]);
            assert_eq!(scan.records.len(), 2, "cut at {cut}");
            assert_eq!(scan.valid_len, last_start as u64, "cut at {cut}");
            assert_eq!(scan.bad_tail, cut > last_start, "cut at {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_ends_the_valid_prefix_at_its_record() {
        let bytes = segment(&[b"first", b"second", b"third"]);
        let recs = scan(&bytes).records;
        for at in MAGIC.len()..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[at] ^= bit;
                let s = scan(&bad);
                let hit = recs
                    .iter()
                    .position(|r| (r.offset as usize..r.end() as usize).contains(&at))
                    .unwrap();
                assert!(s.bad_tail, "byte {at}");
                assert_eq!(s.records.len(), hit, "byte {at}");
            }
        }
    }

    #[test]
    fn zeros_and_foreign_bytes_are_not_records() {
        let mut bytes = segment(&[b"kept"]);
        let len = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 64]);
        let s = scan(&bytes);
        assert_eq!((s.records.len(), s.valid_len, s.bad_tail), (1, len, true));
        let s = scan(b"not a segment");
        assert!(s.bad_magic && s.records.is_empty());
        assert!(scan(b"").bad_magic);
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
