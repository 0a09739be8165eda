//! The blocking frame reader: a [`Decoder`] driven over any [`Read`].

use std::io::{self, Read};

use crate::codec::{Decoder, Event};
use crate::error::{Error, FrameError, Phase, Result};
use crate::framing::Framing;

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
    decoder: Decoder,
    /// Initialised bytes; `head..tail` are buffered and not yet consumed.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// Bytes of the frame returned last, dropped at the start of the next call.
    pending: usize,
    chunk: usize,
    stats: ReaderStats,
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
            decoder: Decoder::new(framing),
            buf: Vec::new(),
            head: 0,
            tail: 0,
            pending: 0,
            chunk: chunk.max(64),
            stats: ReaderStats::default(),
        }
    }

    /// Reads the next frame and returns its payload, or `None` at a clean end of stream
    /// (between frames).
    ///
    /// Errors:
    /// - [`FrameError::Oversized`]: a frame exceeded the maximum message size. It has been
    ///   skipped entirely and the stream is still in step: its first bytes are in
    ///   [`oversized_header`](Reader::oversized_header) (for a negative ACK), and the next call
    ///   reads the next frame.
    /// - [`FrameError::Truncated`]: the stream ended inside a frame.
    /// - [`Error::Io`]: the stream failed; with [`Error::is_timeout`] the call may be repeated.
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>> {
        self.head += std::mem::take(&mut self.pending);
        loop {
            let d = self.decoder.decode(&self.buf[self.head..self.tail]);
            match d.event {
                Event::Frame(range) => {
                    let (start, end) = (self.head + range.start, self.head + range.end);
                    self.pending = d.consumed;
                    self.stats.frames += 1;
                    log::trace!("frame of {} bytes", end - start);
                    return Ok(Some(&self.buf[start..end]));
                }
                Event::NeedMore => {
                    self.head += d.consumed;
                    if self.fill()? == 0 {
                        return self.at_eof();
                    }
                }
                event => {
                    self.head += d.consumed;
                    self.note(event)?;
                }
            }
        }
    }

    /// Counts a non-frame event; oversized frames are returned as errors.
    fn note(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Skipped(n) => {
                self.stats.skipped_bytes += n as u64;
                log::trace!("skipped {n} bytes outside any frame");
            }
            Event::Discarded { len } => {
                self.stats.discarded_frames += 1;
                log::debug!(
                    "discarded a partial frame of {len} bytes: a new frame started inside it"
                );
            }
            Event::Oversized { len } => {
                self.stats.oversized_frames += 1;
                let max = self.decoder.framing().max_size();
                log::debug!("skipped a frame of {len} bytes (maximum {max})");
                return Err(FrameError::Oversized { max }.into());
            }
            Event::Truncated { len } => {
                return Err(FrameError::Truncated { len }.into());
            }
            Event::Frame(_) | Event::NeedMore => {}
        }
        Ok(())
    }

    /// The stream has ended: a clean end, a frame completed by the end of the stream (lenient
    /// mode), or a truncated frame.
    fn at_eof(&mut self) -> Result<Option<&[u8]>> {
        let Some(d) = self.decoder.finish(&self.buf[self.head..self.tail]) else {
            return Ok(None);
        };
        let head = self.head;
        self.head += d.consumed;
        match d.event {
            Event::Frame(range) => {
                self.stats.frames += 1;
                Ok(Some(&self.buf[head + range.start..head + range.end]))
            }
            event => {
                self.note(event)?;
                Ok(None)
            }
        }
    }

    /// Reads more bytes; returns how many (0 at end of stream).
    fn fill(&mut self) -> Result<usize> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        if self.buf.len() - self.tail < self.chunk {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            }
            if self.buf.len() - self.tail < self.chunk {
                let f = self.decoder.framing();
                let limit = f.max_size() + f.start().len() + f.end().len() + self.chunk;
                let want = (self.buf.len() * 2).max(self.tail + self.chunk).min(limit);
                let want = want.max(self.tail + self.chunk);
                self.buf.reserve_exact(want - self.buf.len());
                self.buf.resize(want, 0);
            }
        }
        loop {
            match self.inner.read(&mut self.buf[self.tail..]) {
                Ok(n) => {
                    self.tail += n;
                    self.stats.bytes_read += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(Phase::Read, e)),
            }
        }
    }

    /// The first bytes (up to 1 KiB) of the last oversized frame, to read its header.
    pub fn oversized_header(&self) -> &[u8] {
        self.decoder.oversized_header()
    }

    /// Whether a frame has begun, or bytes not yet decoded are buffered: the peer is not
    /// between messages.
    pub fn in_frame(&self) -> bool {
        self.decoder.in_frame() || self.tail > self.head + self.pending
    }

    /// The counters.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The framing settings.
    pub fn framing(&self) -> &Framing {
        self.decoder.framing()
    }

    /// The bytes of buffer currently allocated (for memory accounting).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
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
