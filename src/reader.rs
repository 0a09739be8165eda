//! The blocking frame reader: a [`Decoder`](crate::Decoder) driven over any [`Read`].

use std::io::{self, Read};

use crate::error::{Error, Phase, Result};
use crate::framing::Framing;
use crate::inbuf::InBuf;

/// The buffer the reader allocates on its first read, and the least free space it asks the
/// stream to fill. Idle connections that never send cost nothing.
pub(crate) const DEFAULT_READ_CHUNK: usize = 8 * 1024;

/// Counters kept by a [`Reader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Complete frames returned.
    pub frames: u64,
    /// Bytes read from the stream.
    pub bytes_read: u64,
    /// Bytes outside any frame that were dropped.
    pub skipped_bytes: u64,
    /// Partial frames discarded because a start sequence arrived inside them.
    pub discarded_frames: u64,
    /// Frames larger than the maximum message size (skipped).
    pub oversized_frames: u64,
}

/// Reads MLLP frames from a byte stream, without copying them.
///
/// [`read_frame`](Reader::read_frame) returns each payload as a slice of the reader's own
/// buffer, valid until the next call. Memory is bounded: the buffer never grows past the
/// maximum message size plus the framing bytes and one read chunk, whatever the peer sends.
///
/// A `WouldBlock` or `TimedOut` error from the stream (a read timeout) is returned as
/// [`Error::Timeout`] ([`Timeout::Read`](crate::Timeout::Read)), and leaves any partial frame
/// in place: the next call resumes where this one stopped.
///
/// ```
/// use mllp::{Framing, Reader};
///
/// let bytes: &[u8] = b"junk\x0bMSH|^~\\&|A\r\x1c\r\x0bMSH|^~\\&|B\r\x1c\r";
/// let mut reader = Reader::new(bytes, Framing::default());
/// assert_eq!(reader.read_frame()?, Some(&b"MSH|^~\\&|A\r"[..]));
/// assert_eq!(reader.read_frame()?, Some(&b"MSH|^~\\&|B\r"[..]));
/// assert_eq!(reader.read_frame()?, None); // clean end of stream
/// assert_eq!(reader.stats().skipped_bytes, 4);
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    input: InBuf,
}

impl<R: Read> Reader<R> {
    /// A reader over `inner` with the given framing.
    pub fn new(inner: R, framing: Framing) -> Reader<R> {
        Reader::with_chunk(inner, framing, DEFAULT_READ_CHUNK)
    }

    /// A reader that reads at least `chunk` bytes at a time (at least 64).
    pub fn with_chunk(inner: R, framing: Framing, chunk: usize) -> Reader<R> {
        Reader {
            inner,
            input: InBuf::new(framing, chunk),
        }
    }

    /// Reads the next frame and returns its payload, or `None` at a clean end of stream
    /// (between frames).
    ///
    /// Errors:
    /// - [`FrameError::Oversized`](crate::FrameError::Oversized): a frame exceeded the maximum
    ///   message size. It has been skipped entirely and the stream is still in step: its first
    ///   bytes are in [`oversized_header`](Reader::oversized_header) (for a negative ACK), and
    ///   the next call reads the next frame.
    /// - [`FrameError::Truncated`](crate::FrameError::Truncated): the stream ended inside a
    ///   frame.
    /// - [`Error::Io`]: the stream failed; with [`Error::is_timeout`] the call may be repeated.
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if let Some(frame) = self.input.next_frame()? {
                return Ok(Some(self.input.bytes(frame)));
            }
            if self.fill()? == 0 {
                return match self.input.finish()? {
                    Some(frame) => Ok(Some(self.input.bytes(frame))),
                    None => Ok(None),
                };
            }
        }
    }

    /// Reads more bytes; returns how many (0 at end of stream).
    fn fill(&mut self) -> Result<usize> {
        loop {
            match self.inner.read(self.input.spare()) {
                Ok(n) => {
                    self.input.filled(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(Phase::Read, e)),
            }
        }
    }

    /// The first bytes (up to 1 KiB) of the last oversized frame, to read its header.
    pub fn oversized_header(&self) -> &[u8] {
        self.input.oversized_header()
    }

    /// Whether a frame has begun, or bytes not yet decoded are buffered: the peer is not
    /// between messages.
    pub fn in_frame(&self) -> bool {
        self.input.in_frame()
    }

    /// The counters.
    pub fn stats(&self) -> ReaderStats {
        self.input.stats()
    }

    /// The framing settings.
    pub fn framing(&self) -> &Framing {
        self.input.framing()
    }

    /// The bytes of buffer currently allocated (for memory accounting).
    pub fn buffer_capacity(&self) -> usize {
        self.input.capacity()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream, mutably. Reading from it directly desynchronises the reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream; buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
