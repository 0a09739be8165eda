//! A frame decoder for gateways that run their own I/O loop.
//!
//! The C caller reads bytes however it likes (a serial port, `epoll`, a vendor SDK) and feeds
//! them in; the handle keeps them in a buffer and drives the crate's sans-I/O [`Decoder`] over
//! it, following the same buffer contract as [`Reader`](mllp_core::Reader).

use super::args::{self, borrow_mut};
use super::framing::{framing_or_default, mllp_framing};
use super::last_error;
use super::panic::{guard, guard_or};
use super::result::{
    mllp_result, MLLP_DECODER_FULL, MLLP_FRAME_OVERSIZED, MLLP_FRAME_TRUNCATED, MLLP_INVALID_STATE,
    MLLP_NEED_MORE, MLLP_OK,
};
use mllp_core::FrameError;
use mllp_core::MAX_SEQUENCE_LEN;
use mllp_core::{Decoder, Event, HEADER_LOOKAHEAD};

/// The most bytes one `mllp_decoder_feed` call is guaranteed to accept, when the previous
/// `mllp_decoder_next` returned `MLLP_NEED_MORE`.
pub const MLLP_DECODER_FEED_MAX: usize = 65536;

/// Buffer capacity kept after the buffer empties; more is given back.
const KEEP_CAPACITY: usize = 1 << 20;

/// A frame decoder: bytes in, frames out. Create with `mllp_decoder_new`, free with
/// `mllp_decoder_free`.
///
/// Thread safety: not thread-safe. Use it from one thread at a time (it may move between
/// threads); a frame it hands out must not be used after the next call on it.
pub struct mllp_decoder {
    decoder: Decoder,
    /// Bytes fed; `buf[head..]` are the bytes the decoder has not consumed yet.
    buf: Vec<u8>,
    head: usize,
    /// Bytes of the frame last handed out, dropped at the next call (the frame stays valid
    /// until then).
    pending: usize,
    /// Whether the decoder has examined every byte fed (the last `next` returned NEED_MORE and
    /// nothing was fed since).
    drained: bool,
    /// Most unconsumed bytes the buffer may hold.
    limit: usize,
    stats: Stats,
}

/// Counters of one decoder since it was created (read by `mllp_decoder_get_stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    /// Frames handed out.
    pub frames: u64,
    /// Bytes dropped outside any frame (junk before a start sequence).
    pub skipped_bytes: u64,
    /// Partial frames dropped because a start sequence arrived inside them.
    pub discarded_frames: u64,
    /// Frames larger than the maximum message size (skipped).
    pub oversized_frames: u64,
    /// Frames cut short by the end of the stream (`mllp_decoder_finish`).
    pub truncated_frames: u64,
}

impl mllp_decoder {
    fn new(decoder: Decoder) -> mllp_decoder {
        // After `next` returned NEED_MORE the buffer holds at most one partial frame:
        // start sequence + at most `max` payload bytes + a partial end or start sequence, or a
        // start sequence waiting for the header bytes that would follow it.
        let limit = decoder
            .framing()
            .max_size()
            .saturating_add(2 * MAX_SEQUENCE_LEN + HEADER_LOOKAHEAD)
            .saturating_add(MLLP_DECODER_FEED_MAX);
        mllp_decoder {
            decoder,
            buf: Vec::new(),
            head: 0,
            pending: 0,
            drained: true,
            limit,
            stats: Stats::default(),
        }
    }

    /// Drops the frame handed out last, and compacts the buffer when that is cheap.
    fn release(&mut self) {
        self.head += std::mem::take(&mut self.pending);
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        }
    }

    fn feed(&mut self, data: &[u8]) -> mllp_result {
        self.release();
        let held = self.buf.len() - self.head;
        if data.len() > self.limit.saturating_sub(held) {
            return last_error::set(
                MLLP_DECODER_FULL,
                format_args!(
                    "the decoder holds {held} unprocessed bytes and may hold at most {}: call \
                     mllp_decoder_next until it returns MLLP_NEED_MORE, and feed at most \
                     MLLP_DECODER_FEED_MAX bytes at a time",
                    self.limit
                ),
            );
        }
        if data.is_empty() {
            return MLLP_OK;
        }
        // Compact when the consumed prefix is at least half the buffer: amortised O(1) per byte.
        if self.head > 0 && self.head >= held {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
        self.drained = false;
        MLLP_OK
    }

    /// The next frame as (offset, length) in `buf`, or an event code with optional bytes to
    /// show (the kept header of an oversized frame).
    fn next(&mut self) -> (mllp_result, Option<(*const u8, usize)>) {
        self.release();
        loop {
            let d = self.decoder.decode(&self.buf[self.head..]);
            match d.event {
                Event::Frame(range) => {
                    let start = self.head + range.start;
                    self.pending = d.consumed;
                    self.stats.frames += 1;
                    return (MLLP_OK, Some((self.buf[start..].as_ptr(), range.len())));
                }
                Event::NeedMore => {
                    self.head += d.consumed;
                    self.drained = true;
                    return (MLLP_NEED_MORE, None);
                }
                Event::Skipped(n) => {
                    self.head += d.consumed;
                    self.stats.skipped_bytes += n as u64;
                    log::trace!("skipped {n} bytes outside any frame");
                }
                Event::Discarded { len } => {
                    self.head += d.consumed;
                    self.stats.discarded_frames += 1;
                    log::debug!(
                        "discarded a partial frame of {len} bytes: a new frame started inside it"
                    );
                }
                Event::Oversized { len } => {
                    self.head += d.consumed;
                    return (self.oversized(len), Some(self.header()));
                }
                Event::Truncated { len } => {
                    // `decode` never reports this; `finish` does.
                    self.head += d.consumed;
                    return (self.truncated(len), None);
                }
            }
        }
    }

    fn finish(&mut self) -> (mllp_result, Option<(*const u8, usize)>) {
        self.release();
        if !self.drained {
            let code = last_error::set(
                MLLP_INVALID_STATE,
                "mllp_decoder_finish was called before mllp_decoder_next returned \
                 MLLP_NEED_MORE: take the frames still buffered first",
            );
            return (code, None);
        }
        let Some(d) = self.decoder.finish(&self.buf[self.head..]) else {
            return (MLLP_OK, None);
        };
        let base = self.head;
        // The decoder is reset; the buffer is emptied at the next call.
        self.pending = d.consumed;
        match d.event {
            Event::Frame(range) => {
                self.stats.frames += 1;
                let start = base + range.start;
                (MLLP_OK, Some((self.buf[start..].as_ptr(), range.len())))
            }
            Event::Oversized { len } => (self.oversized(len), Some(self.header())),
            Event::Truncated { len } => (self.truncated(len), None),
            Event::Skipped(n) => {
                self.stats.skipped_bytes += n as u64;
                (MLLP_OK, None)
            }
            Event::Discarded { .. } | Event::NeedMore => (MLLP_OK, None),
        }
    }

    fn oversized(&mut self, len: usize) -> mllp_result {
        self.stats.oversized_frames += 1;
        let max = self.decoder.framing().max_size();
        log::debug!("skipped a frame of {len} bytes (maximum {max})");
        last_error::set(
            MLLP_FRAME_OVERSIZED,
            format_args!("{} (this one had {len})", FrameError::Oversized { max }),
        )
    }

    fn truncated(&mut self, len: usize) -> mllp_result {
        self.stats.truncated_frames += 1;
        last_error::set(MLLP_FRAME_TRUNCATED, FrameError::Truncated { len })
    }

    fn header(&self) -> (*const u8, usize) {
        let h = self.decoder.oversized_header();
        (h.as_ptr(), h.len())
    }
}

/// Creates a decoder.
///
/// `framing` may be NULL for the defaults; it is copied. On success `*out` receives the new
/// handle, to be freed with `mllp_decoder_free`; on failure `*out` is set to NULL (when `out`
/// is not NULL).
///
/// Errors: `MLLP_NULL_ARGUMENT` when `out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_new(
    framing: *const mllp_framing,
    out: *mut *mut mllp_decoder,
) -> mllp_result {
    guard("mllp_decoder_new", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a live framing value or NULL.
        let framing = unsafe { framing_or_default(framing) };
        let handle = Box::into_raw(Box::new(mllp_decoder::new(Decoder::new(framing))));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// Copies `len` bytes into the decoder's buffer.
///
/// `data` must not be NULL (even when `len` is 0). The bytes are copied; `data` may be reused
/// as soon as the call returns. Feeding invalidates a frame handed out earlier.
///
/// The buffer is bounded by the maximum message size: after `mllp_decoder_next` has returned
/// `MLLP_NEED_MORE`, a feed of up to `MLLP_DECODER_FEED_MAX` bytes always succeeds. Larger
/// feeds succeed while the bound allows; beyond it the result is `MLLP_DECODER_FULL` and
/// nothing is copied.
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_feed(
    decoder: *mut mllp_decoder,
    data: *const u8,
    len: usize,
) -> mllp_result {
    guard("mllp_decoder_feed", || {
        // SAFETY: the caller passes a live handle, used by one thread at a time, or NULL.
        let decoder = unsafe { borrow_mut(decoder) }?;
        // SAFETY: the caller passes `len` readable bytes or NULL (checked).
        let data = unsafe { args::bytes(data, len) }?;
        Ok(decoder.feed(data))
    })
}

/// Takes the next complete frame from the bytes fed so far.
///
/// Returns:
/// * `MLLP_OK`: `*frame` and `*len` give the frame's payload (without the framing bytes). It
///   is borrowed from the decoder and valid until the next call on this decoder (any call,
///   `mllp_decoder_free` included); copy it to keep it.
/// * `MLLP_NEED_MORE`: no complete frame; feed more bytes. `*frame` is NULL, `*len` 0.
/// * `MLLP_FRAME_OVERSIZED`: a frame exceeded the maximum message size and was skipped; the
///   decoder is still in step, call again for the next frame. `*frame`/`*len` give the first
///   bytes of the skipped payload (up to 1024, borrowed like a frame), enough to read the HL7
///   header and send a negative acknowledgement.
///
/// Bytes outside any frame and partial frames cut off by a new start sequence are dropped
/// silently (see `mllp_decoder_get_stat`).
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_next(
    decoder: *mut mllp_decoder,
    frame: *mut *const u8,
    len: *mut usize,
) -> mllp_result {
    // SAFETY: the caller's pointers are passed on under the same contract.
    unsafe { hand_out("mllp_decoder_next", decoder, frame, len, mllp_decoder::next) }
}

/// Tells the decoder the stream has ended, and reports what the bytes left over amount to.
///
/// Call it after `mllp_decoder_next` has returned `MLLP_NEED_MORE` (else
/// `MLLP_INVALID_STATE`). Returns:
/// * `MLLP_OK` with `*frame` NULL and `*len` 0: the stream ended cleanly between frames;
/// * `MLLP_OK` with a frame (lenient framing only: the end sequence was cut short by the end
///   of the stream), borrowed as from `mllp_decoder_next`;
/// * `MLLP_FRAME_TRUNCATED`: the stream ended inside a frame, which is dropped;
/// * `MLLP_FRAME_OVERSIZED`: as from `mllp_decoder_next`.
///
/// Afterwards the decoder is empty and ready for a new stream (a new connection).
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_finish(
    decoder: *mut mllp_decoder,
    frame: *mut *const u8,
    len: *mut usize,
) -> mllp_result {
    // SAFETY: the caller's pointers are passed on under the same contract.
    unsafe {
        hand_out(
            "mllp_decoder_finish",
            decoder,
            frame,
            len,
            mllp_decoder::finish,
        )
    }
}

/// The body of `mllp_decoder_next` and `mllp_decoder_finish`: clears the outputs, runs `step`
/// on the decoder and hands out the frame it returns, if any.
///
/// # Safety
///
/// `decoder` is a live handle used by one thread at a time, or NULL; `frame` and `len` are
/// writable or NULL.
unsafe fn hand_out(
    name: &str,
    decoder: *mut mllp_decoder,
    frame: *mut *const u8,
    len: *mut usize,
    step: impl FnOnce(&mut mllp_decoder) -> (mllp_result, Option<(*const u8, usize)>),
) -> mllp_result {
    guard(name, || {
        // SAFETY: the caller passes writable pointers or NULL (checked).
        unsafe {
            args::put(frame, std::ptr::null())?;
            args::put(len, 0)?;
        }
        // SAFETY: the caller passes a live handle, used by one thread at a time, or NULL.
        let decoder = unsafe { borrow_mut(decoder) }?;
        let (code, bytes) = step(decoder);
        if let Some((ptr, n)) = bytes {
            // SAFETY: checked not NULL above.
            unsafe {
                args::put(frame, ptr)?;
                args::put(len, n)?;
            }
        }
        Ok(code)
    })
}

/// Which counter of a decoder `mllp_decoder_get_stat` reads. New counters get new numbers;
/// the numbers never change.
pub type mllp_decoder_stat = u32;

/// Frames handed out.
pub const MLLP_DECODER_STAT_FRAMES: mllp_decoder_stat = 0;
/// Bytes dropped outside any frame (junk before a start sequence).
pub const MLLP_DECODER_STAT_SKIPPED_BYTES: mllp_decoder_stat = 1;
/// Partial frames dropped because a start sequence arrived inside them.
pub const MLLP_DECODER_STAT_DISCARDED_FRAMES: mllp_decoder_stat = 2;
/// Frames larger than the maximum message size (skipped).
pub const MLLP_DECODER_STAT_OVERSIZED_FRAMES: mllp_decoder_stat = 3;
/// Frames cut short by the end of the stream (`mllp_decoder_finish`).
pub const MLLP_DECODER_STAT_TRUNCATED_FRAMES: mllp_decoder_stat = 4;

/// Stores the decoder's counter `which` (`MLLP_DECODER_STAT_*`, counted since the decoder was
/// created) in `*value`. Errors: `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_get_stat(
    decoder: *const mllp_decoder,
    which: mllp_decoder_stat,
    value: *mut u64,
) -> mllp_result {
    guard("mllp_decoder_get_stat", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(value, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let s = unsafe { args::borrow(decoder) }?.stats;
        let v = match which {
            MLLP_DECODER_STAT_FRAMES => s.frames,
            MLLP_DECODER_STAT_SKIPPED_BYTES => s.skipped_bytes,
            MLLP_DECODER_STAT_DISCARDED_FRAMES => s.discarded_frames,
            MLLP_DECODER_STAT_OVERSIZED_FRAMES => s.oversized_frames,
            MLLP_DECODER_STAT_TRUNCATED_FRAMES => s.truncated_frames,
            other => {
                return Err(args::invalid(format_args!(
                    "no decoder counter number {other}"
                )))
            }
        };
        // SAFETY: checked not NULL above.
        unsafe { args::put(value, v) }?;
        Ok(MLLP_OK)
    })
}

/// Frees a decoder. NULL is allowed and does nothing. Frames handed out by it become invalid.
#[no_mangle]
pub unsafe extern "C" fn mllp_decoder_free(decoder: *mut mllp_decoder) {
    guard_or((), || {
        if !decoder.is_null() {
            // SAFETY: a non-NULL pointer is a handle from `mllp_decoder_new` that the caller
            // gives up here, once.
            drop(unsafe { Box::from_raw(decoder) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mllp_core::Framing;

    /// Feeds `input` in chunks of `chunk` bytes and collects every result.
    fn run(dec: &mut mllp_decoder, input: &[u8], chunk: usize) -> Vec<(mllp_result, Vec<u8>)> {
        let mut out = Vec::new();
        for part in input.chunks(chunk) {
            assert_eq!(dec.feed(part), MLLP_OK);
            loop {
                let (code, bytes) = dec.next();
                if code == MLLP_NEED_MORE {
                    break;
                }
                // SAFETY: the decoder hands out pointers to `n` bytes valid until its next call.
                let b = bytes.map(|(p, n)| unsafe { std::slice::from_raw_parts(p, n) }.to_vec());
                out.push((code, b.unwrap_or_default()));
            }
        }
        out
    }

    #[test]
    fn frames_come_out_whatever_the_chunking() {
        let input = b"junk\x0bA\x1c\r\x0bBB\x0bMSH\x1c\r\x0b0123456789\x1c\r\x0bDD\x1c\r\x0bE";
        let framing = Framing::default().max_message_size(5).unwrap();
        for chunk in 1..=input.len() {
            let mut dec = mllp_decoder::new(Decoder::new(framing));
            let got = run(&mut dec, input, chunk);
            assert_eq!(
                got,
                vec![
                    (MLLP_OK, b"A".to_vec()),
                    (MLLP_OK, b"MSH".to_vec()),
                    (MLLP_FRAME_OVERSIZED, b"0123456789".to_vec()),
                    (MLLP_OK, b"DD".to_vec()),
                ],
                "chunk {chunk}"
            );
            assert_eq!(dec.finish().0, MLLP_FRAME_TRUNCATED);
            assert_eq!(dec.finish().0, MLLP_OK, "reset after finish");
            let s = dec.stats;
            assert_eq!(
                (s.frames, s.skipped_bytes, s.discarded_frames),
                (3, 4, 1),
                "chunk {chunk}"
            );
            assert_eq!((s.oversized_frames, s.truncated_frames), (1, 1));
        }
    }

    #[test]
    fn the_buffer_stays_bounded() {
        let framing = Framing::default().max_message_size(10).unwrap();
        let mut dec = mllp_decoder::new(Decoder::new(framing));
        let big = vec![b'x'; MLLP_DECODER_FEED_MAX];
        // Junk, and an oversized frame, are dropped as they are examined: feeding never stops.
        for _ in 0..4 {
            assert_eq!(dec.feed(&big), MLLP_OK);
            assert_eq!(dec.next().0, MLLP_NEED_MORE);
        }
        assert_eq!(dec.feed(b"\x0b"), MLLP_OK);
        for _ in 0..4 {
            assert_eq!(dec.feed(&big), MLLP_OK);
            assert_eq!(dec.next().0, MLLP_NEED_MORE);
            assert!(dec.buf.len() - dec.head <= 2 * MAX_SEQUENCE_LEN);
        }
        // Without taking frames, feeding stops at the bound and copies nothing.
        let frames = b"\x0bMSH\x1c\r".repeat(MLLP_DECODER_FEED_MAX);
        let mut fed = 0;
        let code = loop {
            let code = dec.feed(&frames[fed..fed + 1000]);
            if code != MLLP_OK {
                break code;
            }
            fed += 1000;
        };
        assert_eq!(code, MLLP_DECODER_FULL);
        assert!(dec.buf.len() - dec.head <= dec.limit);
        assert!(last_error::text().contains("MLLP_NEED_MORE"));
        assert_eq!(dec.next().0, MLLP_FRAME_OVERSIZED);
        assert_eq!(dec.next().0, MLLP_OK);
        // `finish` before the buffered frames are taken is refused.
        assert_eq!(dec.finish().0, MLLP_INVALID_STATE);
    }

    #[test]
    fn lenient_frame_at_end_of_stream() {
        let framing = Framing::default().lenient_end(true);
        let mut dec = mllp_decoder::new(Decoder::new(framing));
        assert_eq!(dec.feed(b"\x0bMSH|x\x1c"), MLLP_OK);
        assert_eq!(dec.next().0, MLLP_NEED_MORE);
        let (code, bytes) = dec.finish();
        let (p, n) = bytes.unwrap();
        // SAFETY: the decoder hands out `n` bytes at `p`, valid until its next call.
        let frame = unsafe { std::slice::from_raw_parts(p, n) };
        assert_eq!((code, frame), (MLLP_OK, &b"MSH|x"[..]));
        assert_eq!(dec.feed(b"\x0bA\x1c\r"), MLLP_OK);
        assert_eq!(dec.next().0, MLLP_OK);
    }

    #[test]
    fn a_start_waiting_for_its_header_at_the_maximum_leaves_room_to_feed() {
        // The longest start sequence, a payload of exactly the maximum, then a start sequence
        // and two bytes of a header: the decoder must wait, and a full feed must still fit.
        let framing = Framing::new(&[0x0B; MAX_SEQUENCE_LEN], &[0x1C])
            .and_then(|f| f.max_message_size(10))
            .unwrap();
        let mut dec = mllp_decoder::new(Decoder::new(framing));
        let mut input = vec![0x0B; MAX_SEQUENCE_LEN];
        input.extend_from_slice(b"0123456789");
        input.extend_from_slice(&[0x0B; MAX_SEQUENCE_LEN]);
        input.extend_from_slice(b"MS");
        assert_eq!(dec.feed(&input), MLLP_OK);
        assert_eq!(dec.next().0, MLLP_NEED_MORE);
        let mut rest = vec![b'H'];
        rest.extend_from_slice(&[0x1C]);
        rest.resize(MLLP_DECODER_FEED_MAX, b'x');
        assert_eq!(dec.feed(&rest), MLLP_OK, "{}", last_error::text());
        assert_eq!(dec.next().0, MLLP_OK); // the partial frame is discarded, "MSH" follows
    }
}
