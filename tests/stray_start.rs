//! A start byte inside a frame that is not followed by an HL7 header is payload: real messages
//! carry stray `0x0B` bytes and must arrive whole. A start byte followed by `MSH`, `BHS` or
//! `FHS` still abandons a partial frame for a new one.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use mllp::hl7::{Ack, AckCode, AckMode, Header};
use mllp::{
    Connection, Error, FrameError, Framing, Listener, Message, Reader, Response, StartInFrame,
};
use mllp_testkit::fuzzing::{decode_chunks, reference, Ev};

use mllp_testkit as common;

/// The corpus files holding the default start byte, as (name, bytes).
fn files_with_a_stray_start() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = common::corpus_dir()?;
    let mut files = common::hl7_files(&dir);
    files.extend(common::hl7_files(&dir.join("malformed")));
    files.retain(|(_, bytes)| bytes.contains(&0x0B));
    Some(files)
}

/// Decodes `stream` whole, split in two at every position, and byte by byte; all must agree
/// with the reference splitter. Returns the events.
fn decode_everywhere(f: &Framing, stream: &[u8]) -> Vec<Ev> {
    let want = reference(f, stream);
    assert_eq!(decode_chunks(f, [stream]), want, "one piece");
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(decode_chunks(f, [a, b]), want, "split at {at}");
    }
    assert_eq!(decode_chunks(f, stream.chunks(1)), want, "byte by byte");
    want
}

fn framed(f: &Framing, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode_into(payload, &mut out);
    out
}

#[test]
fn corpus_messages_with_a_stray_start_byte_arrive_whole_under_every_split() {
    let Some(files) = files_with_a_stray_start() else {
        return;
    };
    // The ruby-hl7 samples that carry one (a 0x0B before their last segment terminator).
    assert!(files.len() >= 4, "{:?}", files.iter().map(|f| &f.0));
    let f = Framing::default();
    for (name, bytes) in &files {
        // The frame, followed by a second message: the stray byte must not swallow it either.
        let mut stream = framed(&f, bytes);
        stream.extend_from_slice(&framed(&f, b"MSH|^~\\&|NEXT\r"));
        let events = decode_everywhere(&f, &stream);
        assert_eq!(
            events,
            [
                Ev::Frame(bytes.clone()),
                Ev::Frame(b"MSH|^~\\&|NEXT\r".to_vec())
            ],
            "{name}"
        );
        // And through a reader, 64 bytes at a time.
        let mut reader = Reader::with_chunk(&stream[..], f, 64);
        assert_eq!(reader.read_frame().unwrap(), Some(&bytes[..]), "{name}");
        assert_eq!(reader.read_frame().unwrap(), Some(&b"MSH|^~\\&|NEXT\r"[..]));
        assert_eq!(reader.read_frame().unwrap(), None);
        assert_eq!(reader.stats().discarded_frames, 0, "{name}");
    }
}

#[test]
fn a_real_restart_after_a_truncated_frame_still_discards_it() {
    let f = Framing::default();
    let first = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|CUT|P|2.5\rPID|1";
    let second = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|NEXT|P|2.5\r";
    for header in [&b"MSH"[..], b"BHS", b"FHS"] {
        let mut next = second.to_vec();
        next[..3].copy_from_slice(header);
        let mut stream = vec![0x0B];
        stream.extend_from_slice(first);
        stream.extend_from_slice(&framed(&f, &next));
        let events = decode_everywhere(&f, &stream);
        assert_eq!(
            events,
            [Ev::Discarded(first.len()), Ev::Frame(next.clone())]
        );
        let mut reader = Reader::with_chunk(&stream[..], f, 64);
        assert_eq!(reader.read_frame().unwrap(), Some(&next[..]));
        assert_eq!(reader.read_frame().unwrap(), None);
        let stats = reader.stats();
        assert_eq!((stats.frames, stats.discarded_frames), (1, 1));
    }
}

#[test]
fn start_then_header_or_not_split_at_every_byte() {
    let f = Framing::default();
    let ignore = f.start_in_frame(StartInFrame::Ignore);
    let cases: [(&[u8], bool); 10] = [
        (b"MSH", true),
        (b"BHS", true),
        (b"FHS", true),
        (b"XYZ", false),
        (b"MSX", false),
        (b"MS\r", false),
        (b"M", false),
        (b"msh", false),
        (b"\x1c\r", false),
        (b"", false),
    ];
    for (after, restarts) in cases {
        let mut tail = after.to_vec();
        tail.extend_from_slice(b"|rest\r");
        let mut stream = b"\x0bPART".to_vec();
        stream.push(0x0B);
        stream.extend_from_slice(&tail);
        stream.extend_from_slice(b"\x1c\r");
        let events = decode_everywhere(&f, &stream);
        let whole = stream[1..stream.len() - 2].to_vec();
        let want = if restarts {
            vec![Ev::Discarded(4), Ev::Frame(tail)]
        } else if after == b"\x1c\r" {
            // The end sequence right after the stray start ends the frame, as before.
            vec![Ev::Frame(b"PART\x0b".to_vec()), Ev::Skipped(8)]
        } else {
            vec![Ev::Frame(whole.clone())]
        };
        assert_eq!(events, want, "{after:?}");
        // Under the ignore policy nothing restarts.
        if after != b"\x1c\r" {
            assert_eq!(decode_everywhere(&ignore, &stream), [Ev::Frame(whole)]);
        }
    }
}

#[test]
fn an_undecided_start_at_the_end_of_the_stream_is_payload_of_a_truncated_frame() {
    let f = Framing::default();
    for tail in [&b""[..], b"M", b"MS", b"B", b"FH"] {
        let mut stream = b"\x0bMSH|PART\x0b".to_vec();
        stream.extend_from_slice(tail);
        let len = stream.len() - 1;
        assert_eq!(decode_everywhere(&f, &stream), [Ev::Truncated(len)]);
        let mut reader = Reader::new(&stream[..], f);
        let err = reader.read_frame().unwrap_err();
        assert!(
            matches!(err, Error::Frame(FrameError::Truncated { len: n }) if n == len),
            "{err}"
        );
        assert_eq!(reader.stats().discarded_frames, 0);
    }
}

#[test]
fn a_start_waiting_for_its_header_keeps_the_frame_in_place() {
    // Zero-copy: while the decoder waits for the bytes after a start inside a frame, it
    // consumes nothing, and the frame it then returns is a slice of the caller's buffer.
    let mut decoder = mllp::Decoder::new(Framing::default());
    let mut buf = b"\x0bMSH|A\r\x0bM".to_vec();
    let d = decoder.decode(&buf);
    assert_eq!((d.consumed, d.event), (0, mllp::Event::NeedMore));
    buf.extend_from_slice(b"S");
    let d = decoder.decode(&buf);
    assert_eq!((d.consumed, d.event), (0, mllp::Event::NeedMore));
    buf.extend_from_slice(b"X\r\x1c\r");
    let d = decoder.decode(&buf);
    assert_eq!(d.event, mllp::Event::Frame(1..buf.len() - 2));
    assert_eq!(d.consumed, buf.len());
}

/// Over loopback, a listener with the default framing hands each corpus message with a stray
/// start byte to its handler whole and accepts it under its own control ID, whether the
/// frame arrives in one write or one byte per write.
#[test]
fn the_listener_accepts_corpus_messages_with_a_stray_start_byte() {
    let Some(files) = files_with_a_stray_start() else {
        return;
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    // Original mode: some of these headers ask for no acknowledgement (MSH-15 NE).
    let running = Listener::builder("127.0.0.1:0")
        .ack_mode(AckMode::Original)
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let _ = tx.send(m.raw().to_vec());
            Response::accept()
        })
        .unwrap();
    let timeout = Duration::from_secs(10);
    let tcp = TcpStream::connect_timeout(&running.local_addr(), timeout).unwrap();
    tcp.set_read_timeout(Some(timeout)).unwrap();
    tcp.set_write_timeout(Some(timeout)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut conn = Connection::new(tcp, Framing::default());
    for (name, bytes) in &files {
        let id = Header::parse(bytes).unwrap().control_id().unwrap().to_vec();
        let id = String::from_utf8(id).unwrap();
        let mut wire = Vec::new();
        Framing::default().encode_into(bytes, &mut wire);
        for one_byte_writes in [false, true] {
            if one_byte_writes {
                for b in wire.chunks(1) {
                    conn.get_mut().write_all(b).unwrap();
                }
            } else {
                conn.get_mut().write_all(&wire).unwrap();
            }
            let ack = Ack::parse(conn.read_frame().unwrap().expect("an ACK")).unwrap();
            assert_eq!(ack.code, AckCode::ApplicationAccept, "{name}: {ack:?}");
            assert_eq!(ack.control_id, id, "{name}");
            let got = rx
                .recv_timeout(timeout)
                .expect("the handler got the message");
            assert!(
                got == *bytes,
                "{name}: the handler got {} bytes, not {}",
                got.len(),
                bytes.len()
            );
        }
    }
    let stats = running.stats();
    assert_eq!(stats.nak_unparseable, 0);
    running.shutdown();
    running.join().unwrap();
}
