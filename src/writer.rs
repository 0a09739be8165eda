//! The blocking frame writer.

use std::io::{self, IoSlice, Write};

use crate::error::{Error, Phase, Result};
use crate::framing::Framing;

/// Payloads up to this size are copied with their framing bytes into one buffer and written
/// with one call; larger ones are written with vectored writes, without copying.
pub(crate) const COALESCE_LIMIT: usize = 64 * 1024;

/// Writes MLLP frames to a byte stream.
///
/// ```
/// use mllp::{Framing, Writer};
///
/// let mut writer = Writer::new(Vec::new(), Framing::default());
/// writer.write_frame(b"MSH|^~\\&|A\r")?;
/// assert_eq!(writer.get_ref().as_slice(), b"\x0bMSH|^~\\&|A\r\x1c\r");
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct Writer<W> {
    inner: W,
    framing: Framing,
    buf: Vec<u8>,
    frames: u64,
}

impl<W: Write> Writer<W> {
    /// A writer over `inner` with the given framing.
    pub fn new(inner: W, framing: Framing) -> Writer<W> {
        Writer {
            inner,
            framing,
            buf: Vec::new(),
            frames: 0,
        }
    }

    /// Writes start + `payload` + end and flushes, with one write call for payloads up to
    /// 64 KiB (larger ones are written with vectored writes, without a copy).
    ///
    /// A payload that contains the end sequence is refused with
    /// [`FrameError::PayloadContainsEnd`](crate::FrameError::PayloadContainsEnd) before
    /// anything is written: the peer would split it into two messages.
    pub fn write_frame(&mut self, payload: &[u8]) -> Result<()> {
        write_frame(&mut self.inner, &self.framing, payload, &mut self.buf)?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The framing settings.
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The underlying stream, mutably.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying stream.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Writes one frame to `w` and flushes: the body of [`Writer::write_frame`], shared with
/// [`Connection`](crate::Connection). `scratch` is reused between calls.
pub(crate) fn write_frame<W: Write>(
    w: &mut W,
    framing: &Framing,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    framing.check_payload(payload)?;
    write_checked_frame(w, framing, payload, scratch)
}

/// [`write_frame`] for a payload the caller has already passed through
/// [`Framing::check_payload`], so a large message is not scanned twice.
pub(crate) fn write_checked_frame<W: Write>(
    w: &mut W,
    framing: &Framing,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let written = if payload.len() <= COALESCE_LIMIT {
        scratch.clear();
        framing.encode_into(payload, scratch);
        w.write_all(scratch)
    } else {
        write_all_vectored(w, &[framing.start(), payload, framing.end()])
    };
    written
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(Phase::Write, e))
}

/// `write_all` over several buffers (`Write::write_all_vectored` is not stable).
pub(crate) fn write_all_vectored<W: Write>(w: &mut W, parts: &[&[u8]; 3]) -> io::Result<()> {
    let mut part = 0;
    let mut offset = 0;
    while part < parts.len() {
        let mut slices = [IoSlice::new(&[]); 3];
        for (k, p) in parts[part..].iter().enumerate() {
            slices[k] = IoSlice::new(if k == 0 { &p[offset..] } else { p });
        }
        let mut n = match w.write_vectored(&slices[..parts.len() - part]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while part < parts.len() && n >= parts[part].len() - offset {
            n -= parts[part].len() - offset;
            part += 1;
            offset = 0;
        }
        offset += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `max` bytes per call, from the first buffer only.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_frames_survive_short_writes() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for max in [1, 7, 4096, usize::MAX] {
            let mut w = Writer::new(
                Trickle {
                    out: Vec::new(),
                    max,
                    calls: 0,
                },
                Framing::default(),
            );
            w.write_frame(&payload).unwrap();
            let out = &w.get_ref().out;
            assert_eq!(out[0], 0x0B);
            assert_eq!(&out[1..out.len() - 2], &payload[..]);
            assert_eq!(&out[out.len() - 2..], b"\x1c\r");
        }
    }

    #[test]
    fn small_frames_use_one_write() {
        let mut w = Writer::new(
            Trickle {
                out: Vec::new(),
                max: usize::MAX,
                calls: 0,
            },
            Framing::default(),
        );
        w.write_frame(b"MSH|^~\\&|A\r").unwrap();
        assert_eq!(w.get_ref().calls, 1);
    }

    #[test]
    fn refuses_payload_with_end_sequence() {
        let mut w = Writer::new(Vec::new(), Framing::default());
        let err = w.write_frame(b"MSH|a\x1c\rb").unwrap_err();
        assert!(matches!(
            err,
            Error::Frame(crate::FrameError::PayloadContainsEnd { at: 5 })
        ));
        assert!(w.get_ref().is_empty(), "nothing may be written");
        // The end byte alone is fine in strict framing.
        w.write_frame(b"a\x1cb").unwrap();
    }
}
