//! A framed duplex stream: frames read and written on one connection.

use std::io::{Read, Write};

use crate::error::Result;
use crate::framing::Framing;
use crate::reader::{Reader, ReaderStats};
use crate::writer;

/// Reads and writes MLLP frames on one duplex stream (a socket or a TLS session).
///
/// It is a [`Reader`] plus the write half of a [`Writer`](crate::Writer) over the same stream,
/// for the request/acknowledgement exchange that both the sender and the listener run.
///
/// ```
/// use std::io::Cursor;
/// use mllp::{Connection, Framing};
///
/// let mut conn = Connection::new(Cursor::new(b"\x0bMSA|AA|1\x1c\r".to_vec()), Framing::default());
/// assert_eq!(conn.read_frame()?, Some(&b"MSA|AA|1"[..]));
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct Connection<S> {
    reader: Reader<S>,
    scratch: Vec<u8>,
}

impl<S: Read + Write> Connection<S> {
    /// A connection over `stream` with the given framing.
    pub fn new(stream: S, framing: Framing) -> Connection<S> {
        Connection {
            reader: Reader::new(stream, framing),
            scratch: Vec::new(),
        }
    }

    /// Reads the next frame; see [`Reader::read_frame`].
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>> {
        self.reader.read_frame()
    }

    /// Writes one frame and flushes; see [`Writer::write_frame`](crate::Writer::write_frame).
    pub fn write_frame(&mut self, payload: &[u8]) -> Result<()> {
        let framing = *self.reader.framing();
        writer::write_frame(self.reader.get_mut(), &framing, payload, &mut self.scratch)
    }

    /// The reader half, for its counters and oversized-frame header.
    pub fn reader(&self) -> &Reader<S> {
        &self.reader
    }

    /// The reader's counters.
    pub fn stats(&self) -> ReaderStats {
        self.reader.stats()
    }

    /// Whether a frame has begun or undecoded bytes are buffered; see [`Reader::in_frame`].
    pub fn in_frame(&self) -> bool {
        self.reader.in_frame()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.reader.get_ref()
    }

    /// The underlying stream, mutably. Reading from it directly desynchronises the reader.
    pub fn get_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    /// The underlying stream; buffered bytes are lost.
    pub fn into_inner(self) -> S {
        self.reader.into_inner()
    }
}
