//! Framing settings: the start and end sequences and the limits that go with them.

use crate::error::{Error, Result};

/// The most bytes a start or end sequence may have.
pub const MAX_SEQUENCE_LEN: usize = 8;

/// The default start sequence: `0x0B` (vertical tab).
pub const DEFAULT_START: &[u8] = &[0x0B];

/// The default end sequence: `0x1C 0x0D` (file separator, carriage return).
pub const DEFAULT_END: &[u8] = &[0x1C, 0x0D];

/// The default maximum message size: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// A start or end sequence: 1 to [`MAX_SEQUENCE_LEN`] bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sequence {
    bytes: [u8; MAX_SEQUENCE_LEN],
    len: u8,
}

impl Sequence {
    /// A sequence of the given bytes, or `None` when there are none or more than
    /// [`MAX_SEQUENCE_LEN`].
    pub const fn new(bytes: &[u8]) -> Option<Sequence> {
        if bytes.is_empty() || bytes.len() > MAX_SEQUENCE_LEN {
            return None;
        }
        let mut inline = [0u8; MAX_SEQUENCE_LEN];
        let mut i = 0;
        while i < bytes.len() {
            inline[i] = bytes[i];
            i += 1;
        }
        Some(Sequence {
            bytes: inline,
            len: bytes.len() as u8,
        })
    }

    /// The bytes of the sequence.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The first byte, which the scanner searches for.
    #[inline]
    pub(crate) fn first(&self) -> u8 {
        self.bytes[0]
    }

    /// The number of bytes (1 to [`MAX_SEQUENCE_LEN`]).
    #[inline]
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// What the decoder does with a start sequence that arrives inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartInFrame {
    /// When the start sequence is followed by `MSH`, `BHS` or `FHS` (the segments that open an
    /// HL7 message, batch or file), the partial frame is discarded (and reported), and a new
    /// frame starts at the start sequence. This recovers from a peer that gave up on a frame
    /// and began the next one. A start sequence followed by anything else is payload: real
    /// messages carry stray start bytes, and cutting them would lose the message.
    ///
    /// The decoder waits for the three bytes after a start sequence before deciding, without
    /// rescanning the frame; if the stream ends first, the start sequence is payload of the
    /// truncated frame. The default.
    #[default]
    Restart,
    /// The start sequence is ordinary payload data.
    Ignore,
}

/// Framing settings: which bytes open and close a frame, and the limits the decoder enforces.
///
/// `Framing` is `Copy` and validated on construction: a `Framing` value is always usable.
///
/// ```
/// use mllp::Framing;
///
/// // STX/ETX framing, as some analysers use, with a 1 MiB limit.
/// let framing = Framing::new(&[0x02], &[0x03])?.max_message_size(1 << 20)?;
/// assert_eq!(framing.end(), &[0x03]);
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    start: Sequence,
    end: Sequence,
    max_message_size: usize,
    lenient_end: bool,
    start_in_frame: StartInFrame,
}

impl Default for Framing {
    /// `0x0B` … `0x1C 0x0D`, 16 MiB maximum, strict end, restart on a start inside a frame.
    fn default() -> Self {
        Framing {
            start: Sequence::new(DEFAULT_START).expect("valid default"),
            end: Sequence::new(DEFAULT_END).expect("valid default"),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            lenient_end: false,
            start_in_frame: StartInFrame::Restart,
        }
    }
}

impl Framing {
    /// Framing with the given start and end sequences and default limits.
    ///
    /// Each sequence must have 1 to 8 bytes, and they must begin with different bytes (the
    /// decoder tells a start from an end by its first byte).
    pub fn new(start: &[u8], end: &[u8]) -> Result<Framing> {
        let start = Sequence::new(start).ok_or_else(|| {
            Error::Config(format!(
                "the start sequence must have 1 to {MAX_SEQUENCE_LEN} bytes, not {}",
                start.len()
            ))
        })?;
        let end = Sequence::new(end).ok_or_else(|| {
            Error::Config(format!(
                "the end sequence must have 1 to {MAX_SEQUENCE_LEN} bytes, not {}",
                end.len()
            ))
        })?;
        if start.first() == end.first() {
            return Err(Error::Config(format!(
                "the start sequence ({start:?}) and the end sequence ({end:?}) must begin with different bytes"
            )));
        }
        Ok(Framing {
            start,
            end,
            ..Framing::default()
        })
    }

    /// Sets the largest payload accepted, in bytes (at least 1). Larger frames are reported as
    /// oversized and skipped.
    pub fn max_message_size(mut self, bytes: usize) -> Result<Framing> {
        if bytes == 0 {
            return Err(Error::Config(
                "the maximum message size must be at least 1 byte".into(),
            ));
        }
        self.max_message_size = bytes;
        Ok(self)
    }

    /// Lenient mode: a frame also ends at the first byte of the end sequence when the rest of
    /// the sequence does not follow (some peers send `0x1C` without `0x0D`). Off by default.
    pub fn lenient_end(mut self, lenient: bool) -> Framing {
        self.lenient_end = lenient;
        self
    }

    /// What to do with a start sequence inside a frame. Default [`StartInFrame::Restart`].
    pub fn start_in_frame(mut self, policy: StartInFrame) -> Framing {
        self.start_in_frame = policy;
        self
    }

    /// The start sequence.
    pub fn start(&self) -> &[u8] {
        self.start.as_bytes()
    }

    /// The end sequence.
    pub fn end(&self) -> &[u8] {
        self.end.as_bytes()
    }

    /// The start sequence as a [`Sequence`].
    pub fn start_sequence(&self) -> Sequence {
        self.start
    }

    /// The end sequence as a [`Sequence`].
    pub fn end_sequence(&self) -> Sequence {
        self.end
    }

    /// The largest payload accepted, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether lenient end detection is on.
    pub fn is_lenient(&self) -> bool {
        self.lenient_end
    }

    /// The start-inside-a-frame policy.
    pub fn start_policy(&self) -> StartInFrame {
        self.start_in_frame
    }

    /// Start + payload + end, appended to `out`. Does not check the payload; see
    /// [`Framing::check_payload`].
    pub fn encode_into(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.reserve(self.start.len() + payload.len() + self.end.len());
        out.extend_from_slice(self.start());
        out.extend_from_slice(payload);
        out.extend_from_slice(self.end());
    }

    /// Checks that `payload` can be framed: it must not contain the end sequence, which would
    /// make the peer split it.
    pub fn check_payload(&self, payload: &[u8]) -> Result<(), crate::FrameError> {
        match crate::scan::find_seq(self.end(), payload) {
            Some(at) => Err(crate::FrameError::PayloadContainsEnd { at }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_sequences() {
        for (start, end) in [
            (&[][..], &[0x1C][..]),
            (&[0x0B][..], &[][..]),
            (&[0x0B; 9][..], &[0x1C][..]),
            (&[0x0B][..], &[0x0B, 0x0D][..]),
        ] {
            let err = Framing::new(start, end).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
        assert!(Framing::default().max_message_size(0).is_err());
        assert!(Framing::new(&[0x0B; 8], &[0x1C; 8]).is_ok());
    }

    #[test]
    fn debug_is_hex() {
        assert_eq!(format!("{:?}", Framing::default().end_sequence()), "1C 0D");
    }
}
