//! The sans-I/O framing state machine: [`Decoder`] and what it reports.

use std::ops::Range;

use crate::framing::{Framing, StartInFrame};
use crate::scan;

/// How many payload bytes of an oversized frame the decoder keeps, so the caller can still read
/// the HL7 header and send a negative ACK naming the message.
pub const OVERSIZED_HEADER_LEN: usize = 1024;

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete frame; the range is its payload within the buffer given to this call.
    Frame(Range<usize>),
    /// Every byte given has been examined; call again with more bytes.
    NeedMore,
    /// `len` bytes outside any frame were dropped (junk before a start sequence).
    Skipped(usize),
    /// A frame larger than the maximum message size ended (or was cut short by a new frame,
    /// policy [`StartInFrame::Restart`]). `len` is its payload length; its first bytes are in
    /// [`Decoder::oversized_header`].
    Oversized {
        /// Payload bytes in the oversized frame.
        len: usize,
    },
    /// A start sequence followed by `MSH`, `BHS` or `FHS` arrived inside a frame: the partial
    /// frame of `len` payload bytes was discarded and a new frame begins there (policy
    /// [`StartInFrame::Restart`]).
    Discarded {
        /// Payload bytes of the discarded partial frame.
        len: usize,
    },
    /// The stream ended inside a frame of `len` payload bytes (from [`Decoder::finish`]).
    Truncated {
        /// Payload bytes received before the stream ended.
        len: usize,
    },
}

/// One step of the decoder: the result of one [`Decoder::decode`] (or [`Decoder::finish`])
/// call, what was found and how many bytes to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeStep {
    /// Bytes at the front of the buffer to drop before the next call.
    pub consumed: usize,
    /// What was found.
    pub event: Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside a frame, looking for a start sequence.
    Hunting,
    /// Inside a frame whose payload starts at buffer offset `start`.
    InFrame { start: usize },
    /// Inside an oversized frame: bytes are dropped as they are scanned; `len` counts the
    /// payload so far.
    Oversized { len: usize },
}

/// The sans-I/O MLLP frame decoder.
///
/// A [`Decoder`] is given the bytes a caller has buffered and says what they hold: a complete
/// frame (as a range of those bytes, so the caller can hand out a borrowed slice), junk skipped
/// before a start sequence, an oversized frame, a partial frame discarded because a new one
/// started inside it, or that more bytes are needed. It knows nothing about sockets, allocates
/// nothing, and keeps a scan cursor so that no byte is scanned twice across calls.
///
/// # The buffer contract
///
/// Each call to [`Decoder::decode`] reports `consumed`: the number of bytes at the front of the
/// buffer the caller must drop before the next call. The next call must be given the same bytes
/// from `consumed` on, followed by any new bytes. [`Reader`](crate::Reader) is the reference
/// driver; the fuzz targets check that any split of a stream gives the same events.
///
/// ```
/// use mllp::{Decoder, Event, Framing};
///
/// let mut decoder = Decoder::new(Framing::default());
/// let mut buf = b"\x0bMSH|^~\\&|A\r\x1c\r\x0bMSH|^~".to_vec();
/// let d = decoder.decode(&buf);
/// assert_eq!(d.event, Event::Frame(1..12));
/// assert_eq!(&buf[1..12], b"MSH|^~\\&|A\r");
/// buf.drain(..d.consumed);
/// // The second frame is not complete yet.
/// assert_eq!(decoder.decode(&buf).event, Event::NeedMore);
/// ```
#[derive(Clone)]
pub struct Decoder {
    framing: Framing,
    state: State,
    /// Offset in the (next) buffer up to which bytes have been scanned.
    scanned: usize,
    header: [u8; OVERSIZED_HEADER_LEN],
    header_len: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("framing", &self.framing)
            .field("state", &self.state)
            .field("scanned", &self.scanned)
            .finish()
    }
}

/// Where the payload of the current frame ends, as found by `Decoder::find_boundary`.
enum Boundary {
    /// Nothing in the bytes scanned.
    None,
    /// The end sequence at `at`; the frame's bytes end before `next`.
    End { at: usize, next: usize },
    /// A start sequence at `at` followed by an HL7 header (restart policy).
    Start { at: usize },
    /// The bytes from `at` may begin a sequence that has not fully arrived, or are a start
    /// sequence (restart policy) whose following bytes have not all arrived to say whether an
    /// HL7 header follows.
    Partial { at: usize },
}

/// How a sequence compares with the bytes at some position.
enum SeqMatch {
    Yes,
    No,
    /// The bytes available so far are a proper prefix of the sequence.
    Partial,
}

#[inline]
fn match_at(seq: &[u8], buf: &[u8], at: usize) -> SeqMatch {
    let avail = &buf[at..];
    if avail.len() >= seq.len() {
        if avail.starts_with(seq) {
            SeqMatch::Yes
        } else {
            SeqMatch::No
        }
    } else if seq.starts_with(avail) {
        SeqMatch::Partial
    } else {
        SeqMatch::No
    }
}

/// The segment names that open an HL7 message, batch or file. Under [`StartInFrame::Restart`]
/// a start sequence inside a frame begins a new frame only when one of them follows it.
const HEADERS: [&[u8; HEADER_LOOKAHEAD]; 3] = [b"MSH", b"BHS", b"FHS"];

/// How many bytes after a start sequence inside a frame the decoder must see to decide whether
/// it begins a new frame (`MSH`, `BHS` or `FHS`); a decoder may hold that many bytes beyond a
/// complete frame while it waits for them.
pub const HEADER_LOOKAHEAD: usize = 3;

/// Whether the bytes of `buf` from `at` begin an HL7 header ([`HEADERS`]): `Partial` when the
/// bytes available so far could still begin one.
#[inline]
fn header_at(buf: &[u8], at: usize) -> SeqMatch {
    let mut found = SeqMatch::No;
    for header in HEADERS {
        match match_at(header, buf, at) {
            SeqMatch::Yes => return SeqMatch::Yes,
            SeqMatch::Partial => found = SeqMatch::Partial,
            SeqMatch::No => {}
        }
    }
    found
}

impl Decoder {
    /// A decoder for the given framing, outside any frame.
    pub fn new(framing: Framing) -> Decoder {
        Decoder {
            framing,
            state: State::Hunting,
            scanned: 0,
            header: [0; OVERSIZED_HEADER_LEN],
            header_len: 0,
        }
    }

    /// The framing settings.
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// Whether a frame has started and not yet ended (the peer is mid-message).
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Hunting)
    }

    /// Whether the frame in progress has already passed the maximum message size (it is being
    /// skipped to its end).
    pub(crate) fn in_oversized_frame(&self) -> bool {
        matches!(self.state, State::Oversized { .. })
    }

    /// The first payload bytes (up to [`OVERSIZED_HEADER_LEN`]) of the last oversized frame.
    pub fn oversized_header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }

    /// Forgets any partial frame, as after a new connection.
    pub fn reset(&mut self) {
        self.state = State::Hunting;
        self.scanned = 0;
    }

    /// Examines `buf` and reports the next event; see the
    /// [buffer contract](Decoder#the-buffer-contract).
    pub fn decode(&mut self, buf: &[u8]) -> DecodeStep {
        let decoded = self.step(buf);
        debug_assert!(decoded.consumed <= buf.len());
        self.scanned -= decoded.consumed;
        if let State::InFrame { start } = &mut self.state {
            *start -= decoded.consumed;
        }
        decoded
    }

    fn step(&mut self, buf: &[u8]) -> DecodeStep {
        loop {
            match self.state {
                State::Hunting => {
                    if let Some(d) = self.hunt(buf) {
                        return d;
                    }
                }
                State::InFrame { start } => return self.frame(buf, start),
                State::Oversized { len } => return self.skip_oversized(buf, len),
            }
        }
    }

    /// Scans from `from` for the next place a frame's payload ends: the end sequence (or, in
    /// lenient mode, its first byte), or, under [`StartInFrame::Restart`], a start sequence
    /// followed by an HL7 header. Any other start sequence is payload.
    fn find_boundary(&self, buf: &[u8], mut from: usize) -> Boundary {
        let f = &self.framing;
        let (end, begin) = (f.end(), f.start());
        let restart = f.start_policy() == StartInFrame::Restart;
        loop {
            let hit = if restart {
                scan::find_either(end[0], begin[0], &buf[from..])
            } else {
                scan::find_byte(end[0], &buf[from..])
            };
            let Some(i) = hit else {
                return Boundary::None;
            };
            let at = from + i;
            // The two first bytes differ (checked by `Framing::new`), so the byte says which.
            let seq = if buf[at] == end[0] { end } else { begin };
            match match_at(seq, buf, at) {
                SeqMatch::Yes if seq == end => {
                    return Boundary::End {
                        at,
                        next: at + end.len(),
                    }
                }
                // A start sequence restarts only when an HL7 header follows it; otherwise it
                // is payload. Until the header's bytes have arrived, wait at `at`.
                SeqMatch::Yes => match header_at(buf, at + begin.len()) {
                    SeqMatch::Yes => return Boundary::Start { at },
                    SeqMatch::Partial => return Boundary::Partial { at },
                    SeqMatch::No => from = at + 1,
                },
                SeqMatch::Partial => return Boundary::Partial { at },
                SeqMatch::No if seq == end && f.is_lenient() => {
                    return Boundary::End { at, next: at + 1 }
                }
                SeqMatch::No => from = at + 1,
            }
        }
    }

    /// Outside a frame: find the start sequence; everything before it is junk. Returns `None`
    /// when a frame has begun at offset 0.
    fn hunt(&mut self, buf: &[u8]) -> Option<DecodeStep> {
        let start = self.framing.start();
        let mut from = self.scanned;
        loop {
            let Some(i) = scan::find_byte(start[0], &buf[from..]) else {
                // All junk: drop it.
                self.scanned = buf.len();
                return Some(skipped_or_need_more(buf.len()));
            };
            let at = from + i;
            match match_at(start, buf, at) {
                SeqMatch::Yes if at == 0 => {
                    self.state = State::InFrame { start: start.len() };
                    self.scanned = start.len();
                    return None;
                }
                // Report the junk first; the start is found again at offset 0. A partial start
                // at the end of the buffer is kept the same way.
                SeqMatch::Yes | SeqMatch::Partial => {
                    self.scanned = at;
                    return Some(skipped_or_need_more(at));
                }
                SeqMatch::No => from = at + 1,
            }
        }
    }

    /// Inside a frame whose payload starts at `start`.
    fn frame(&mut self, buf: &[u8], start: usize) -> DecodeStep {
        let max = self.framing.max_size();
        match self.find_boundary(buf, self.scanned) {
            Boundary::None => {
                self.scanned = buf.len();
                let len = buf.len() - start;
                if len > max {
                    return self.become_oversized(buf, start, len);
                }
                need_more(0)
            }
            Boundary::End { at, next } => self.complete(buf, start, at, next),
            Boundary::Partial { at } => {
                self.scanned = at;
                self.wait_in_frame(buf, start, at)
            }
            Boundary::Start { at } => {
                self.state = State::Hunting;
                self.scanned = at;
                let len = at - start;
                let event = if len > max {
                    self.keep_header(&buf[start..at]);
                    Event::Oversized { len }
                } else {
                    Event::Discarded { len }
                };
                DecodeStep {
                    consumed: at,
                    event,
                }
            }
        }
    }

    /// A sequence may begin at `at` but its bytes have not all arrived.
    fn wait_in_frame(&mut self, buf: &[u8], start: usize, at: usize) -> DecodeStep {
        let len = at - start;
        if len > self.framing.max_size() {
            return self.become_oversized(buf, start, at - start);
        }
        need_more(0)
    }

    /// Payload `start..payload_end`, frame bytes up to `frame_end`.
    fn complete(
        &mut self,
        buf: &[u8],
        start: usize,
        payload_end: usize,
        frame_end: usize,
    ) -> DecodeStep {
        self.state = State::Hunting;
        self.scanned = frame_end;
        let len = payload_end - start;
        if len > self.framing.max_size() {
            self.keep_header(&buf[start..payload_end]);
            return DecodeStep {
                consumed: frame_end,
                event: Event::Oversized { len },
            };
        }
        DecodeStep {
            consumed: frame_end,
            event: Event::Frame(start..payload_end),
        }
    }

    /// Adds the head of `more` (the next payload bytes of an oversized frame) to the kept
    /// header, if it is not full yet.
    fn extend_header(&mut self, more: &[u8]) {
        let n = more.len().min(OVERSIZED_HEADER_LEN - self.header_len);
        self.header[self.header_len..self.header_len + n].copy_from_slice(&more[..n]);
        self.header_len += n;
    }

    fn keep_header(&mut self, payload: &[u8]) {
        let n = payload.len().min(OVERSIZED_HEADER_LEN);
        self.header[..n].copy_from_slice(&payload[..n]);
        self.header_len = n;
    }

    /// The payload so far (`len` bytes from `start`, all scanned) is too large: keep its head,
    /// drop it all up to `self.scanned`, and skip to the end sequence.
    fn become_oversized(&mut self, buf: &[u8], start: usize, len: usize) -> DecodeStep {
        self.keep_header(&buf[start..start + len]);
        let keep_from = start + len; // a possible partial sequence starts here
        self.state = State::Oversized { len };
        self.scanned = keep_from;
        log::trace!(
            "frame exceeds {} bytes; skipping to its end",
            self.framing.max_size()
        );
        need_more(keep_from)
    }

    /// Inside an oversized frame: drop bytes up to the end sequence (or a new frame under the
    /// restart policy), then report the frame.
    fn skip_oversized(&mut self, buf: &[u8], len: usize) -> DecodeStep {
        let boundary = self.find_boundary(buf, self.scanned);
        let at = match boundary {
            Boundary::None => buf.len(),
            Boundary::End { at, .. } | Boundary::Start { at } | Boundary::Partial { at } => at,
        };
        // Everything before `at` is payload of the oversized frame.
        self.extend_header(&buf[..at]);
        match boundary {
            Boundary::None => {
                self.state = State::Oversized { len: len + at };
                self.scanned = at;
                need_more(at)
            }
            Boundary::End { next, .. } => self.oversized_done(len + at, next),
            Boundary::Start { .. } => self.oversized_done(len + at, at),
            Boundary::Partial { .. } => self.oversized_wait(len, at),
        }
    }

    fn oversized_wait(&mut self, len: usize, at: usize) -> DecodeStep {
        self.state = State::Oversized { len: len + at };
        self.scanned = at;
        need_more(at)
    }

    fn oversized_done(&mut self, len: usize, consumed: usize) -> DecodeStep {
        self.state = State::Hunting;
        self.scanned = consumed;
        DecodeStep {
            consumed,
            event: Event::Oversized { len },
        }
    }

    /// The stream has ended; `buf` holds the bytes left over from the last
    /// [`decode`](Decoder::decode) call, which must have returned [`Event::NeedMore`]. Returns
    /// what those bytes amount to, or `None` when the stream ended cleanly between frames.
    ///
    /// In lenient mode a frame whose end sequence was cut short by the end of the stream counts
    /// as complete. The decoder is reset afterwards.
    pub fn finish(&mut self, buf: &[u8]) -> Option<DecodeStep> {
        let (state, scanned) = (self.state, self.scanned.min(buf.len()));
        self.reset();
        // Inside a frame every byte before `scanned` is payload; from `scanned` on the buffer
        // holds at most a partial start or end sequence, or a start sequence whose header had
        // not arrived: payload too, of a truncated frame.
        let lenient_end =
            self.framing.is_lenient() && buf.get(scanned) == Some(&self.framing.end()[0]);
        let event = match state {
            State::Hunting if buf.is_empty() => return None,
            State::Hunting => Event::Skipped(buf.len()),
            State::InFrame { start } if lenient_end => {
                let len = scanned - start;
                if len > self.framing.max_size() {
                    self.keep_header(&buf[start..scanned]);
                    Event::Oversized { len }
                } else {
                    Event::Frame(start..scanned)
                }
            }
            State::InFrame { start } => Event::Truncated {
                len: buf.len() - start,
            },
            State::Oversized { len } if lenient_end => Event::Oversized { len: len + scanned },
            State::Oversized { len } => Event::Truncated {
                len: len + buf.len(),
            },
        };
        Some(DecodeStep {
            consumed: buf.len(),
            event,
        })
    }
}

#[inline]
fn need_more(consumed: usize) -> DecodeStep {
    DecodeStep {
        consumed,
        event: Event::NeedMore,
    }
}

#[inline]
fn skipped_or_need_more(n: usize) -> DecodeStep {
    DecodeStep {
        consumed: n,
        event: if n == 0 {
            Event::NeedMore
        } else {
            Event::Skipped(n)
        },
    }
}
