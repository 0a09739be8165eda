//! Check functions shared by the fuzz targets (`fuzz/`) and the stable test suite.
//!
//! Each function takes arbitrary bytes, runs one part of the crate on them and panics when an
//! invariant breaks. The fuzz targets call them under libFuzzer; `cargo test` replays them over
//! the committed seeds and over seeded random inputs. Not part of the stable API.

use std::io::{self, Read};

use mllp::{Decoder, Error, Event, FrameError, Framing, Reader, StartInFrame, Writer};

/// What a whole stream decodes to, in a form independent of how it was split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// A frame's payload.
    Frame(Vec<u8>),
    /// Junk bytes outside frames (consecutive runs merged).
    Skipped(usize),
    /// An oversized frame: its length and its first bytes.
    Oversized(usize, Vec<u8>),
    /// A partial frame discarded by a start sequence inside it.
    Discarded(usize),
    /// A frame cut short by the end of the stream.
    Truncated(usize),
}

fn push(out: &mut Vec<Ev>, ev: Ev) {
    if let (Ev::Skipped(n), Some(Ev::Skipped(m))) = (&ev, out.last_mut()) {
        *m += n;
        return;
    }
    out.push(ev);
}

fn header_of(payload: &[u8]) -> Vec<u8> {
    payload[..payload.len().min(mllp::OVERSIZED_HEADER_LEN)].to_vec()
}

/// The reference splitter: a direct, byte-at-a-time reading of the framing rules over a whole
/// stream. Slow and obviously right; the decoder must agree with it for every input.
pub fn reference(f: &Framing, stream: &[u8]) -> Vec<Ev> {
    let (start, end) = (f.start(), f.end());
    let restart = f.start_policy() == StartInFrame::Restart;
    let mut out = Vec::new();
    let mut i = 0;
    'hunt: while i < stream.len() {
        if !stream[i..].starts_with(start) {
            push(&mut out, Ev::Skipped(1));
            i += 1;
            continue;
        }
        let p = i + start.len();
        let mut j = p;
        let finished = |out: &mut Vec<Ev>, payload: &[u8]| {
            if payload.len() > f.max_size() {
                push(out, Ev::Oversized(payload.len(), header_of(payload)));
            } else {
                push(out, Ev::Frame(payload.to_vec()));
            }
        };
        while j < stream.len() {
            let rest = &stream[j..];
            if rest.starts_with(end) {
                finished(&mut out, &stream[p..j]);
                i = j + end.len();
                continue 'hunt;
            }
            // Lenient: the first end byte ends the frame when the rest does not follow (a
            // partial end sequence cut by the end of the stream counts as not following).
            if f.is_lenient() && rest[0] == end[0] {
                finished(&mut out, &stream[p..j]);
                i = if end.starts_with(rest) {
                    stream.len()
                } else {
                    j + 1
                };
                continue 'hunt;
            }
            // Restart: a start sequence followed by an HL7 header begins a new frame (a header
            // cut by the end of the stream does not follow); any other is payload.
            let header = |at: usize| {
                [b"MSH", b"BHS", b"FHS"]
                    .iter()
                    .any(|h| stream[at..].starts_with(*h))
            };
            if restart && rest.starts_with(start) && header(j + start.len()) {
                let len = j - p;
                if len > f.max_size() {
                    push(&mut out, Ev::Oversized(len, header_of(&stream[p..j])));
                } else {
                    push(&mut out, Ev::Discarded(len));
                }
                i = j;
                continue 'hunt;
            }
            j += 1;
        }
        push(&mut out, Ev::Truncated(stream.len() - p));
        return out;
    }
    out
}

/// Drives a [`Decoder`] over `chunks` exactly as a reader would (a growing buffer from which
/// consumed bytes are dropped) and returns the events.
pub fn decode_chunks<'a>(f: &Framing, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Ev> {
    let mut decoder = Decoder::new(*f);
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let record = |decoder: &Decoder, buf: &[u8], event: Event, out: &mut Vec<Ev>| match event {
        Event::Frame(r) => push(out, Ev::Frame(buf[r].to_vec())),
        Event::Skipped(n) => push(out, Ev::Skipped(n)),
        Event::Oversized { len } => {
            push(out, Ev::Oversized(len, decoder.oversized_header().to_vec()))
        }
        Event::Discarded { len } => push(out, Ev::Discarded(len)),
        Event::Truncated { len } => push(out, Ev::Truncated(len)),
        Event::NeedMore => {}
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let d = decoder.decode(&buf);
            assert!(d.consumed <= buf.len());
            let more = d.event == Event::NeedMore;
            record(&decoder, &buf, d.event, &mut out);
            buf.drain(..d.consumed);
            if more {
                break;
            }
        }
        // Memory stays bounded: at most a frame in progress and a partial sequence, or a start
        // sequence and the first bytes of the header that would follow it.
        let tail = f.end().len().max(f.start().len() + 3);
        assert!(buf.len() <= f.start().len() + f.max_size() + tail);
    }
    if let Some(d) = decoder.finish(&buf) {
        assert_eq!(d.consumed, buf.len());
        record(&decoder, &buf, d.event, &mut out);
    }
    out
}

/// Framing settings picked by one selector byte, covering every option.
pub fn framing_for(selector: u8) -> Framing {
    let (start, end): (&[u8], &[u8]) = match selector % 4 {
        0 => (&[0x0B], &[0x1C, 0x0D]),
        1 => (&[0x02], &[0x03]),
        2 => (&[0x0B, 0x0B], &[0x1C, 0x1C, 0x0D]),
        _ => (&[0x0B], &[0x1C]),
    };
    let max = match (selector / 4) % 4 {
        0 => mllp::DEFAULT_MAX_MESSAGE_SIZE,
        1 => 8,
        2 => 64,
        _ => 2000,
    };
    let policy = if selector & 0x10 != 0 {
        StartInFrame::Ignore
    } else {
        StartInFrame::Restart
    };
    Framing::new(start, end)
        .and_then(|f| f.max_message_size(max))
        .expect("valid test framing")
        .lenient_end(selector & 0x20 != 0)
        .start_in_frame(policy)
}

/// Splits `stream` into chunks whose lengths cycle through `lens` (each at least 1).
pub fn split<'a>(stream: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = stream;
    let mut k = 0;
    while !rest.is_empty() {
        let n = lens
            .get(k % lens.len().max(1))
            .map_or(rest.len(), |&l| l.max(1) as usize);
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
        k += 1;
    }
    chunks
}

/// `data[0]` picks the framing, `data[1]` how many following bytes are chunk lengths, the rest
/// is the stream. Checks: one-shot decode == split decode == byte-at-a-time decode == reference.
pub fn decode_split(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let framing = framing_for(selector);
    let (lens, stream) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize % 16).min(rest.len())),
        None => (&[][..], rest),
    };
    let want = reference(&framing, stream);
    assert_eq!(decode_chunks(&framing, [stream]), want, "one-shot decode");
    assert_eq!(
        decode_chunks(&framing, split(stream, lens)),
        want,
        "split decode"
    );
    assert_eq!(
        decode_chunks(&framing, split(stream, &[1])),
        want,
        "byte-at-a-time decode"
    );
}

/// `data[0]` picks the framing; the rest, cut at `0xFF` bytes, are payloads. Payloads cleaned
/// of framing bytes, written with [`Writer`] and read back with [`Reader`], come back intact.
pub fn roundtrip(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let framing = framing_for(selector & !0x0C); // no size limit
    let (s, e) = (framing.start()[0], framing.end()[0]);
    let payloads: Vec<Vec<u8>> = rest
        .split(|&b| b == 0xFF)
        .map(|p| p.iter().copied().filter(|&b| b != s && b != e).collect())
        .collect();
    let mut writer = Writer::new(Vec::new(), framing);
    for p in &payloads {
        writer.write_frame(p).expect("clean payload");
    }
    let wire = writer.into_inner();
    let mut reader = Reader::new(&wire[..], framing);
    for p in &payloads {
        assert_eq!(reader.read_frame().expect("valid stream"), Some(&p[..]));
    }
    assert_eq!(reader.read_frame().expect("clean end"), None);
    assert_eq!(reader.stats().skipped_bytes, 0);
}

/// A `Read` that follows a script: each step delivers some bytes or fails with a given error.
#[derive(Debug)]
pub struct ScriptedRead<'a> {
    data: &'a [u8],
    script: &'a [u8],
    step: usize,
}

impl<'a> ScriptedRead<'a> {
    /// Delivers `data` following `script`: a script byte below 0xF0 delivers up to that many
    /// bytes plus one; `0xF0..=0xF3` fail with `WouldBlock`, `TimedOut`, `Interrupted`, or
    /// deliver nothing into a zero-length request. An exhausted script delivers the rest in
    /// one read; then end of stream.
    pub fn new(data: &'a [u8], script: &'a [u8]) -> Self {
        ScriptedRead {
            data,
            script,
            step: 0,
        }
    }
}

impl Read for ScriptedRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let op = self.script.get(self.step).copied();
        self.step += 1;
        let n = match op {
            Some(0xF0) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(0xF1) => return Err(io::ErrorKind::TimedOut.into()),
            Some(0xF2) => return Err(io::ErrorKind::Interrupted.into()),
            Some(b) if b > 0xF2 => 1,
            Some(b) => b as usize + 1,
            None => self.data.len(),
        };
        let n = n.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// `data[0]` picks the framing, `data[1]` the script length, then the script for a
/// [`ScriptedRead`], then the stream. A [`Reader`] that retries after timeouts sees the same
/// frames, oversized frames and truncation as the reference, and counts the same junk and
/// discarded frames.
pub fn reader_ops(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let framing = framing_for(selector);
    let (script, stream) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&[][..], rest),
    };
    let want = reference(&framing, stream);
    let mut reader = Reader::with_chunk(ScriptedRead::new(stream, script), framing, 64);
    let mut got = Vec::new();
    // Each call makes progress or consumes a script step; bound the loop anyway.
    for _ in 0..(stream.len() + script.len() + 8) * 4 {
        match reader.read_frame() {
            Ok(Some(frame)) => got.push(Ev::Frame(frame.to_vec())),
            Ok(None) => break,
            Err(Error::Frame(FrameError::Oversized { max })) => {
                assert_eq!(max, framing.max_size());
                let header = reader.oversized_header().to_vec();
                got.push(Ev::Oversized(usize::MAX, header));
            }
            Err(Error::Frame(FrameError::Truncated { len })) => got.push(Ev::Truncated(len)),
            Err(e) if e.is_timeout() => continue,
            Err(e) => panic!("unexpected error: {e}"),
        }
        let limit = framing.max_size() + framing.start().len() + framing.end().len() + 64;
        assert!(reader.buffer_capacity() <= limit.max(128) * 2);
    }
    let mut skipped = 0;
    let mut discarded = 0;
    let want: Vec<Ev> = want
        .into_iter()
        .filter_map(|ev| match ev {
            Ev::Skipped(n) => {
                skipped += n;
                None
            }
            Ev::Discarded(_) => {
                discarded += 1;
                None
            }
            Ev::Oversized(_, h) => Some(Ev::Oversized(usize::MAX, h)),
            ev => Some(ev),
        })
        .collect();
    assert_eq!(got, want);
    let stats = reader.stats();
    assert_eq!(stats.skipped_bytes, skipped as u64);
    assert_eq!(stats.discarded_frames, discarded);
    assert_eq!(stats.bytes_read, stream.len() as u64);
}

/// Builds acknowledgements for arbitrary input and reads them back.
///
/// Never panics for any input (except on a broken invariant). When the input's header parses,
/// every ACK built for it (each disposition, both modes, with a text taken from the input) parses
/// back with MSA-2 equal to the header's control ID, the expected code, and the text intact;
/// when it does not parse, the NAK for unparseable input parses back as AR with MSA-2 the
/// control ID that could still be found (or empty).
pub fn ack_build(data: &[u8]) {
    use mllp::hl7::{
        ack_control_id, build_nak_unparseable, salvage_control_id, Ack, AckBuilder, AckMode,
        ReplyKind,
    };
    use mllp::hl7::{AckCode, Disposition};

    let mut out = Vec::new();
    let header = match mllp::hl7::Header::parse(data) {
        Ok(h) => h,
        Err(e) => {
            let reason = e.to_string();
            let salvaged = salvage_control_id(data);
            build_nak_unparseable(salvaged, &reason, &mut out);
            let ack = Ack::parse(&out).expect("the NAK for unparseable input parses");
            assert_eq!(ack.code, AckCode::ApplicationReject);
            // MSA-2 holds the salvaged ID escaped into the NAK's own separators.
            let mut expected = Vec::new();
            if let Some(id) = salvaged {
                let seps = mllp::hl7::Separators::default();
                mllp::hl7::escape_into(&String::from_utf8_lossy(id), &seps, &mut expected);
            }
            assert_eq!(ack.control_id, String::from_utf8_lossy(&expected));
            assert_eq!(ack.errors, [reason]);
            return;
        }
    };
    let seps = header.separators();
    let text = String::from_utf8_lossy(&data[..data.len().min(48)]).into_owned();
    let expected_text = text.replace(['\r', '\n'], " ");
    for disposition in [Disposition::Accept, Disposition::Error, Disposition::Reject] {
        for mode in [AckMode::Auto, AckMode::Original] {
            for with_text in [false, true] {
                let mut b = AckBuilder::new(disposition).mode(mode);
                if with_text {
                    b = b.text(&text);
                }
                out.clear();
                let sent = b
                    .build(&header, &mut out)
                    .expect("UTF-8 text always encodes");
                assert_eq!(sent, b.should_send(&header));
                if !sent {
                    assert!(out.is_empty());
                    continue;
                }
                let ack = Ack::parse(&out).expect("a built ACK parses");
                assert_eq!(ack.kind, ReplyKind::Hl7);
                assert_eq!(ack.code, b.code(&header));
                let want_id = header.control_id().unwrap_or_default();
                assert_eq!(ack_control_id(&out).unwrap_or_default(), want_id);
                assert_eq!(
                    ack.control_id.as_bytes(),
                    String::from_utf8_lossy(want_id).as_bytes()
                );
                let reply = mllp::hl7::Header::parse(&out).expect("the ACK's header parses");
                assert_eq!(reply.separators(), seps);
                assert_ne!(reply.control_id(), header.control_id());
                assert_eq!(
                    ack.errors.len(),
                    usize::from(disposition != Disposition::Accept)
                );
                if with_text && seps.escape.is_some() && !expected_text.is_empty() {
                    assert_eq!(ack.text.as_deref(), Some(&*expected_text));
                    if seps.subcomponent.is_some() && disposition != Disposition::Accept {
                        assert_eq!(ack.errors[0], expected_text);
                    }
                }
            }
        }
    }
}

/// Drives a sender [`Exchange`](mllp::Exchange) with arbitrary reply bytes split at arbitrary
/// points, and arbitrary timeouts, errors and ends of stream, and checks that it never panics,
/// never reports success for a reply whose MSA-2 is not the message's control ID, and ends
/// within a bounded number of steps.
pub fn exchange_replies(data: &[u8]) {
    use mllp::{Error, Exchange, Link, Phase, RetryPolicy, SenderConfig, Transmit};
    use std::time::{Duration, Instant};

    const MSG: &[u8] = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|ID1|P|2.5\rPID|1\r";
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut config = SenderConfig::default();
    config.framing = framing_for(selector);
    config.resend_on_reject = selector & 0x40 != 0;
    config.reply = if selector & 0x80 != 0 {
        mllp::hl7::ReplyKind::Mllp2
    } else {
        mllp::hl7::ReplyKind::Hl7
    };
    config.retry = RetryPolicy::default()
        .max_attempts(Some(u32::from(selector % 4) + 1))
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(1));
    if selector & 0x20 != 0 {
        config.timeouts.total = Some(Duration::from_millis(40));
    }
    let mut link = Link::new("fuzz", &config);
    let mut now = Instant::now();
    let Ok(mut ex) = Exchange::new(&mut link, MSG, now) else {
        // Framings whose end sequence occurs in the message.
        return;
    };
    let mut input = rest;
    // Each step consumes at least one byte of input or ends a phase; phases end by
    // timeouts, so the number of steps is bounded by the input and the attempts.
    let limit = 64 + 8 * data.len();
    for _ in 0..limit {
        // The script: one byte says what happens next.
        let op = input.first().copied().unwrap_or(0xFF);
        let transmit = ex.poll_transmit();
        let drain = transmit == Transmit::Drain;
        match transmit {
            Transmit::Done => {
                if let Some(Ok(ack)) = ex.take_result() {
                    let commit = ack.kind == mllp::hl7::ReplyKind::Mllp2;
                    assert!(
                        commit || ack.control_id == "ID1",
                        "an ACK for {:?} was taken for the reply to ID1",
                        ack.control_id
                    );
                }
                return;
            }
            Transmit::Close => {}
            Transmit::Connect => {
                input = input.get(1..).unwrap_or(&[]);
                if op % 5 == 0 {
                    let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                    ex.handle_error(
                        Error::Io {
                            phase: Phase::Connect,
                            source: e,
                        },
                        now,
                    );
                } else {
                    ex.handle_connected(None, now);
                }
            }
            Transmit::Write(parts) => {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                input = input.get(1..).unwrap_or(&[]);
                match op % 7 {
                    0 => {
                        let e = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
                        ex.handle_error(
                            Error::Io {
                                phase: Phase::Write,
                                source: e,
                            },
                            now,
                        )
                    }
                    1 => ex.handle_written(len / 2 + 1, now),
                    _ => ex.handle_written(len, now),
                }
            }
            Transmit::Drain | Transmit::Read => {
                if input.len() < 2 {
                    // Out of input: the deadline passes (or the drain ends).
                    if drain {
                        ex.handle_drained(now);
                    } else {
                        now = ex.poll_timeout().unwrap_or(now);
                        ex.handle_timeout(now);
                    }
                    continue;
                }
                let n = usize::from(input[1]).min(input.len() - 2);
                let chunk = &input[2..2 + n];
                input = &input[2 + n..];
                match op % 11 {
                    0 => ex.handle_eof(now),
                    1 if drain => ex.handle_drained(now),
                    1 => {
                        now = ex.poll_timeout().unwrap_or(now);
                        ex.handle_timeout(now);
                    }
                    2 => {
                        let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
                        ex.handle_error(
                            Error::Io {
                                phase: Phase::Read,
                                source: e,
                            },
                            now,
                        )
                    }
                    _ => ex.handle_input(chunk, now),
                }
            }
            Transmit::Wait => {
                now = ex.poll_timeout().expect("a wait has an end");
                ex.handle_timeout(now);
            }
        }
    }
    panic!("the exchange did not end within {limit} steps");
}

/// The CRC-32 (IEEE) of `parts` concatenated, one bit at a time: the oracle for the outbox's
/// table-driven CRC.
fn naive_crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Where the valid records of an outbox segment lie (start..end of each), read naively from
/// the format's description (`MLLPSEG1`, then records of length u32, CRC u32, kind u8, three
/// zero bytes, time u64, payload; the CRC covers everything but itself) and the recovery
/// rule: after the 8 header bytes, wherever no valid record starts, move on by one byte.
pub fn naive_segment_offsets(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 8usize;
    while bytes.len() >= at + 20 {
        let h = &bytes[at..at + 20];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let valid = len != 0
            && h[8] <= 1
            && h[9..12] == [0, 0, 0]
            && bytes.len() - at - 20 >= len
            && naive_crc32(&[&h[0..4], &h[8..20], &bytes[at + 20..at + 20 + len]]) == crc;
        if valid {
            out.push(at..at + 20 + len);
            at += 20 + len;
        } else {
            at += 1;
        }
    }
    out
}

/// How many valid records the bytes of an outbox segment hold ([`naive_segment_offsets`]).
pub fn naive_segment_records(bytes: &[u8]) -> usize {
    naive_segment_offsets(bytes).len()
}

/// Recovers an outbox whose last segment holds arbitrary bytes and checks: inspecting and
/// opening never fail on them (damage is kept aside and skipped, a torn tail cut), never
/// panic, keep exactly the valid records a naive reader finds (plus those of an earlier
/// intact segment), leave the segment so that a message enqueued after recovery is found by
/// the next one, and leave nothing for the next open to report again.
///
/// `data[0]` chooses: bit 0 puts the segment header in front of the bytes, bit 1 adds an
/// intact earlier segment of one record. The rest is the last segment.
pub fn outbox_recovery(data: &[u8]) {
    use mllp::{Outbox, OutboxConfig};
    use std::sync::atomic::{AtomicU64, Ordering};

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mllp-fuzz-outbox-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let segments = dir.join("segments");
    std::fs::create_dir_all(&segments).expect("a scratch directory");
    let mut last = Vec::new();
    if selector & 1 != 0 {
        last.extend_from_slice(b"MLLPSEG1");
    }
    last.extend_from_slice(rest);
    let mut earlier = 0;
    if selector & 2 != 0 {
        let config = OutboxConfig::new("127.0.0.1:9").deliver(false);
        let outbox = Outbox::open(&dir, config).expect("a new outbox");
        outbox
            .enqueue("MSH|^~\\&|A|B|C|D|1||ADT^A01|E1|P|2.5\r")
            .expect("an enqueue");
        drop(outbox);
        std::fs::remove_file(dir.join("lock")).ok();
        earlier = 1;
    }
    let seq = if earlier == 1 { 2 } else { 1 };
    std::fs::write(segments.join(format!("{seq:016}.seg")), &last).expect("the segment");
    let complete = naive_segment_records(&last) as u64 + earlier;

    let seen = Outbox::inspect(&dir).expect("inspecting never fails on a last segment's bytes");
    assert_eq!(seen.pending, complete, "inspect");
    let config = || OutboxConfig::new("127.0.0.1:9").deliver(false);
    let outbox = Outbox::open(&dir, config()).expect("recovery never fails on the last segment");
    assert_eq!(outbox.stats().pending, complete, "open");
    outbox
        .enqueue("MSH|^~\\&|A|B|C|D|1||ADT^A01|AFTER|P|2.5\r")
        .expect("an enqueue after recovery");
    drop(outbox);
    let after = Outbox::inspect(&dir).expect("a recovered outbox");
    assert_eq!(after.pending, complete + 1, "the record after the cut");
    let reported = Outbox::verify(&dir).expect("verifying a recovered outbox");
    assert_eq!(
        reported.len() as u64,
        after.damaged_regions + after.missing_segments + after.cursor_lost,
        "verify and the counters"
    );
    let again = Outbox::open(&dir, config()).expect("a second recovery");
    drop(again);
    assert_eq!(
        Outbox::verify(&dir).expect("verifying again"),
        reported,
        "a repaired outbox reports the same damage again, and no new damage"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The PROXY protocol parser ([`mllp::proxy_protocol::parse`]) on one input, as every reader of
/// it relies on: no panic; a header's length is within the input; and every prefix of the input
/// agrees with the whole: a prefix that is a complete header or an error is the same answer
/// for the whole input, and a prefix that needs more never asks for more bytes than the
/// header still lacks (a reader that reads what is asked never swallows what follows).
pub fn proxy_header(bytes: &[u8]) {
    use mllp::proxy_protocol::{parse, Parsed};

    let whole = parse(bytes);
    if let Ok(Parsed::Header { len, .. }) = &whole {
        assert!(*len <= bytes.len());
    }
    for k in 0..=bytes.len() {
        match parse(&bytes[..k]) {
            Ok(Parsed::NeedMore(more)) => {
                assert!(more > 0);
                if let Ok(Parsed::Header { len, .. }) = &whole {
                    assert!(k + more <= *len, "asked for {more} at {k}, header of {len}");
                }
            }
            Ok(header) => {
                assert_eq!(Ok(header), whole);
                break;
            }
            Err(e) => {
                assert_eq!(Err(e), whole);
                break;
            }
        }
    }
}
