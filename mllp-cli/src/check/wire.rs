//! Raw MLLP over one connection for the checks: frames written whole, in one-byte writes or
//! several in one write, and every frame the peer sends read with the library's [`Decoder`],
//! so a check can count ACK frames and see what a peer sends unprompted.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mllp::{Decoder, Event, Framing, Stream};

/// What one read for a frame found.
#[derive(Debug)]
pub enum Got {
    /// A frame's payload.
    Frame(Vec<u8>),
    /// The peer closed the connection (or reset it) after `partial` bytes of a frame.
    Closed {
        /// Payload bytes of a frame cut short by the close (0: none).
        partial: usize,
    },
    /// Nothing complete within the time given.
    Quiet,
}

/// One connection: the stream, the decoder and the bytes read but not yet decoded.
pub struct Wire {
    stream: Stream,
    framing: Framing,
    decoder: Decoder,
    buf: Vec<u8>,
    /// Bytes outside any frame the peer sent (junk, or bytes after an end sequence).
    pub skipped: usize,
    closed: bool,
}

impl Wire {
    /// A wire over `stream` with `framing`.
    pub fn new(stream: Stream, framing: Framing) -> Wire {
        Wire {
            stream,
            decoder: Decoder::new(framing),
            framing,
            buf: Vec::new(),
            skipped: 0,
            closed: false,
        }
    }

    /// The stream (for its TLS peer).
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Whether the peer was seen closing the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the peer closed the connection, looking without waiting (a peer that closes
    /// after each reply must not make the next message look lost).
    pub fn peer_gone(&mut self) -> bool {
        self.closed |= self.buf.is_empty() && self.stream.peer_closed();
        self.closed
    }

    /// `payload` framed.
    pub fn framed(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 4);
        self.framing.encode_into(payload, &mut out);
        out
    }

    /// Writes `bytes` in one write (bounded by `limit`).
    pub fn write_raw(&mut self, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
        self.stream.set_write_timeout(Some(limit))?;
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes `payload` as one frame in one write.
    pub fn send(&mut self, payload: &[u8], limit: Duration) -> std::io::Result<()> {
        let bytes = self.framed(payload);
        self.write_raw(&bytes, limit)
    }

    /// Writes `payload` as one frame, one byte per write (the socket has no delay, so each
    /// byte leaves in a segment of its own).
    pub fn send_bytewise(&mut self, payload: &[u8], limit: Duration) -> std::io::Result<()> {
        let bytes = self.framed(payload);
        let end = Instant::now() + limit;
        for b in bytes.chunks(1) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.write_raw(b, left)?;
        }
        Ok(())
    }

    /// The next frame the peer sends within `within`.
    pub fn read(&mut self, within: Duration) -> Got {
        let end = Instant::now() + within;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let step = self.decoder.decode(&self.buf);
            let consumed = step.consumed;
            match step.event {
                Event::Frame(range) => {
                    let payload = self.buf[range].to_vec();
                    self.buf.drain(..consumed);
                    return Got::Frame(payload);
                }
                Event::Skipped(n) => {
                    self.skipped += n;
                    self.buf.drain(..consumed);
                    continue;
                }
                Event::Oversized { .. } | Event::Discarded { .. } | Event::Truncated { .. } => {
                    self.buf.drain(..consumed);
                    continue;
                }
                Event::NeedMore => {
                    self.buf.drain(..consumed);
                }
            }
            if self.closed {
                return self.finish();
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Quiet;
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                self.closed = true;
                return self.finish();
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return self.finish();
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Got::Quiet;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return self.finish();
                }
            }
        }
    }

    fn finish(&mut self) -> Got {
        let partial = match self.decoder.finish(&self.buf) {
            Some(step) => match step.event {
                Event::Truncated { len } => len,
                _ => 0,
            },
            None => 0,
        };
        self.buf.clear();
        Got::Closed { partial }
    }

    /// Every frame that arrives within `within` (stops early when the peer closes).
    pub fn read_all(&mut self, within: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            match self.read(end.saturating_duration_since(Instant::now())) {
                Got::Frame(f) => frames.push(f),
                Got::Closed { .. } | Got::Quiet => return frames,
            }
        }
    }

    /// Closes the connection (both directions).
    pub fn close(mut self) {
        let _ = self.stream.shutdown();
    }
}

/// A TCP connection to `addr` within `limit`, without Nagle's delay.
pub fn tcp(addr: &std::net::SocketAddr, limit: Duration) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect_timeout(addr, limit)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}
