//! The input buffer of a framed stream: bytes received and not yet consumed, and the
//! [`Decoder`] that finds frames in them. No I/O: the [`Reader`](crate::Reader) fills it from a
//! `Read`, the listener's [`Session`](crate::Session) from whatever its driver received.

use std::ops::Range;

use crate::codec::{Decoder, Event};
use crate::error::{FrameError, Result};
use crate::framing::Framing;
use crate::reader::ReaderStats;

/// Received bytes and the decoder over them. Memory is bounded: the buffer never grows past
/// the maximum message size plus the framing bytes and one read chunk.
#[derive(Debug)]
pub(crate) struct InBuf {
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

impl InBuf {
    /// An empty buffer that asks for at least `chunk` bytes (at least 64) at a time; nothing is
    /// allocated before the first [`spare`](Self::spare).
    pub(crate) fn new(framing: Framing, chunk: usize) -> InBuf {
        InBuf {
            decoder: Decoder::new(framing),
            buf: Vec::new(),
            head: 0,
            tail: 0,
            pending: 0,
            chunk: chunk.max(64),
            stats: ReaderStats::default(),
        }
    }

    /// The next frame among the buffered bytes, as a range of [`bytes`](Self::bytes); `None`
    /// when more bytes are needed. The frame returned last is dropped first.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] for a frame over the maximum size (skipped; its first bytes
    /// are in [`oversized_header`](Self::oversized_header)).
    pub(crate) fn next_frame(&mut self) -> Result<Option<Range<usize>>> {
        self.head += std::mem::take(&mut self.pending);
        loop {
            let d = self.decoder.decode(&self.buf[self.head..self.tail]);
            match d.event {
                Event::Frame(range) => {
                    let frame = self.head + range.start..self.head + range.end;
                    self.pending = d.consumed;
                    self.stats.frames += 1;
                    log::trace!("frame of {} bytes", frame.len());
                    return Ok(Some(frame));
                }
                Event::NeedMore => {
                    self.head += d.consumed;
                    return Ok(None);
                }
                event => {
                    self.head += d.consumed;
                    self.note(event)?;
                }
            }
        }
    }

    /// The stream has ended: `None` at a clean end, a frame completed by the end of the stream
    /// (lenient mode), or an error for a truncated frame.
    pub(crate) fn finish(&mut self) -> Result<Option<Range<usize>>> {
        self.head += std::mem::take(&mut self.pending);
        let Some(d) = self.decoder.finish(&self.buf[self.head..self.tail]) else {
            return Ok(None);
        };
        let head = self.head;
        self.head += d.consumed;
        match d.event {
            Event::Frame(range) => {
                self.stats.frames += 1;
                Ok(Some(head + range.start..head + range.end))
            }
            event => {
                self.note(event)?;
                Ok(None)
            }
        }
    }

    /// Counts a non-frame event; oversized and truncated frames are returned as errors.
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

    /// Free space to receive into (at least one chunk), after dropping consumed bytes.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        self.head += std::mem::take(&mut self.pending);
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
        &mut self.buf[self.tail..]
    }

    /// `n` bytes were received into [`spare`](Self::spare); returns them.
    pub(crate) fn filled(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.buf.len() - self.tail);
        self.tail += n;
        self.stats.bytes_read += n as u64;
        &self.buf[self.tail - n..self.tail]
    }

    /// The bytes of a range returned by [`next_frame`](Self::next_frame) or
    /// [`finish`](Self::finish).
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// The first bytes (up to 1 KiB) of the last oversized frame, to read its header.
    pub(crate) fn oversized_header(&self) -> &[u8] {
        self.decoder.oversized_header()
    }

    /// Whether a frame has begun, or bytes not yet decoded are buffered: the peer is not
    /// between messages.
    pub(crate) fn in_frame(&self) -> bool {
        self.decoder.in_frame() || self.tail > self.head + self.pending
    }

    /// The counters.
    pub(crate) fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The framing settings.
    pub(crate) fn framing(&self) -> &Framing {
        self.decoder.framing()
    }

    /// The bytes of buffer currently allocated (for memory accounting).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
