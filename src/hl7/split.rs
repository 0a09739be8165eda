//! Cutting a file (or any byte stream saved to disk) into HL7 messages, as every sender of
//! files must: a new message at each `MSH`, batches kept whole or split, blank lines and MLLP
//! framing bytes saved with captured traffic dropped, and LF or CRLF segment endings turned
//! into HL7's CR.
//!
//! ```
//! use mllp::hl7::{normalise_endings, split_messages, Batches};
//!
//! let file = b"MSH|^~\\&|A|B|||2026||ADT^A01|1|P|2.5\nPID|1\n\nMSH|^~\\&|A|B|||2026||ADT^A08|2|P|2.5\r\n";
//! let messages = split_messages(file, Batches::Whole);
//! assert_eq!(messages.len(), 2);
//! assert_eq!(normalise_endings(&messages[0]), b"MSH|^~\\&|A|B|||2026||ADT^A01|1|P|2.5\rPID|1\r");
//! ```

/// Segment endings: LF and CRLF become CR (HL7's segment terminator). A UTF-8 BOM is dropped.
pub fn normalise_endings(bytes: &[u8]) -> Vec<u8> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.push(b'\r');
                i += 2;
                continue;
            }
            b'\n' => out.push(b'\r'),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// What [`split_messages`] does with a batch file (one that starts with `FHS` or `BHS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batches {
    /// The whole file is one message, sent as one block (its envelope included).
    Whole,
    /// Each MSH message of the batch is a message of its own; the envelope segments (FHS, BHS,
    /// BTS, FTS) are dropped.
    Split,
}

/// The messages in a file: a new message starts at each segment beginning with `MSH`; blank
/// segments between messages are dropped. A file starting with `FHS` or `BHS` is one block,
/// or its MSH messages one by one, as `batches` says. Segment terminators are kept as they
/// are; see [`normalise_endings`]. A file with no segment gives no message.
///
/// MLLP framing bytes saved with captured traffic (0x0B before a segment, 0x1C after the last
/// one) are dropped: they cannot be part of a message, and a listener would cut the message
/// at a 0x0B.
pub fn split_messages(bytes: &[u8], batches: Batches) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let segments: Vec<&[u8]> = split_segments(bytes);
    let is_batch = segments
        .iter()
        .find(|s| !is_blank(s))
        .is_some_and(|s| s.starts_with(b"FHS") || s.starts_with(b"BHS"));
    if is_batch && batches == Batches::Whole {
        let trimmed = trim_blank_lines(bytes);
        return if trimmed.is_empty() {
            Vec::new()
        } else {
            vec![trimmed.to_vec()]
        };
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in segments {
        let seg = strip_framing(seg);
        if is_blank(seg) {
            continue;
        }
        let envelope = [&b"FHS"[..], b"BHS", b"BTS", b"FTS"]
            .iter()
            .any(|h| seg.starts_with(h));
        if envelope {
            continue;
        }
        if seg.starts_with(b"MSH") || out.is_empty() {
            out.push(Vec::new());
        }
        let msg = out.last_mut().expect("a message was started");
        msg.extend_from_slice(seg);
    }
    out
}

/// Segments with their terminators (CR, LF or CRLF) kept.
fn split_segments(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                out.push(&bytes[start..i + 2]);
                i += 2;
                start = i;
                continue;
            }
            b'\r' | b'\n' => {
                out.push(&bytes[start..i + 1]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

/// Whether a segment holds nothing but whitespace and MLLP framing bytes.
fn is_blank(seg: &[u8]) -> bool {
    seg.iter()
        .all(|&b| b.is_ascii_whitespace() || is_framing_byte(b))
}

/// The default MLLP framing bytes: start block 0x0B, end block 0x1C.
fn is_framing_byte(b: u8) -> bool {
    matches!(b, 0x0B | 0x1C)
}

/// A segment without the framing bytes in front of it.
fn strip_framing(seg: &[u8]) -> &[u8] {
    let skip = seg.iter().take_while(|&&b| is_framing_byte(b)).count();
    &seg[skip..]
}

fn trim_blank_lines(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    // Keep the last segment's terminator.
    let end = match bytes.get(end) {
        Some(b'\r') if bytes.get(end + 1) == Some(&b'\n') => end + 2,
        Some(b'\r' | b'\n') => end + 1,
        _ => end,
    };
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_endings() {
        assert_eq!(
            normalise_endings(b"\xEF\xBB\xBFA\r\nB\nC\rD"),
            b"A\rB\rC\rD"
        );
    }

    #[test]
    fn splits_at_msh() {
        let file = b"\nMSH|1\nPID|1\n\nMSH|2\r\nPID|2\r\n\r\n";
        let msgs = split_messages(file, Batches::Whole);
        assert_eq!(msgs, [&b"MSH|1\nPID|1\n"[..], b"MSH|2\r\nPID|2\r\n"]);
    }

    #[test]
    fn framing_bytes_saved_with_the_messages_are_dropped() {
        let file = b"\x0bMSH|1\rPID|1\r\x1c\r\x0bMSH|2\r\x0b\r\r\n";
        assert_eq!(
            split_messages(file, Batches::Whole),
            [&b"MSH|1\rPID|1\r"[..], b"MSH|2\r"]
        );
    }

    #[test]
    fn batches_are_one_block_unless_split() {
        let file = b"FHS|^~\\&\rBHS|^~\\&\rMSH|1\rPID|1\rMSH|2\rBTS|2\rFTS|1\r\n";
        assert_eq!(split_messages(file, Batches::Whole), [&file[..]]);
        assert_eq!(
            split_messages(file, Batches::Split),
            [&b"MSH|1\rPID|1\r"[..], b"MSH|2\r"]
        );
    }
}
