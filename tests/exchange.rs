//! The sans-I/O exchange driven by hand: no sockets, no sleeps; time is passed in.

use std::io;
use std::time::{Duration, Instant};

use mllp::hl7::AckCode;
use mllp::{Error, Exchange, Link, Outcome, Phase, RetryPolicy, SenderConfig, Timeout, Transmit};

const MSG: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|MSG1|P|2.5.1\rPID|1\r";

fn ack(code: &str, id: &str) -> Vec<u8> {
    let mut f = vec![0x0B];
    f.extend_from_slice(
        format!("MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101||ACK|R{id}|P|2.5.1\rMSA|{code}|{id}\r")
            .as_bytes(),
    );
    f.extend_from_slice(b"\x1c\r");
    f
}

/// Fixed delays of 100 ms, `attempts` attempts.
fn config(attempts: u32) -> SenderConfig {
    let mut c = SenderConfig::default();
    c.retry = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(100))
        .jitter(0.0)
        .max_attempts(Some(attempts));
    c
}

/// Connects and writes the whole frame; returns the frame.
fn connect_and_write(ex: &mut Exchange<'_>, now: Instant) -> Vec<u8> {
    assert_eq!(ex.poll_transmit(), Transmit::Connect);
    ex.handle_connected(None, now);
    write(ex, now)
}

fn write(ex: &mut Exchange<'_>, now: Instant) -> Vec<u8> {
    let Transmit::Write(parts) = ex.poll_transmit() else {
        panic!("expected a write");
    };
    let frame = parts.concat();
    ex.handle_written(frame.len(), now);
    assert_eq!(ex.poll_transmit(), Transmit::Read);
    frame
}

fn result(ex: &mut Exchange<'_>) -> mllp::Result<mllp::hl7::Ack> {
    assert_eq!(ex.poll_transmit(), Transmit::Done);
    ex.take_result().expect("a result")
}

#[test]
fn aa_on_the_first_try() {
    let mut link = Link::new("peer", &config(3));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    assert_eq!(ex.control_id(), b"MSG1");
    assert_eq!(ex.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let frame = connect_and_write(&mut ex, t0);
    assert_eq!(&frame[1..frame.len() - 2], MSG);
    // Byte by byte: the reply is assembled across inputs.
    for b in ack("AA", "MSG1") {
        ex.handle_input(&[b], t0);
    }
    let ack = result(&mut ex).unwrap();
    assert!(ack.is_success());
    assert_eq!(ex.attempts(), 1);
    drop(ex);
    let s = link.stats();
    assert_eq!(
        (s.messages, s.acks, s.connects, s.frames_written),
        (1, 1, 1, 1)
    );
    assert!(link.is_connected());
}

#[test]
fn other_control_ids_and_junk_are_skipped_while_awaiting() {
    let mut link = Link::new("peer", &config(1));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    let mut input = b"junk outside frames".to_vec();
    input.extend(ack("AA", "OTHER"));
    input.extend(b"\x0bnot an ack\x1c\r");
    input.extend(ack("AE", "MSG1"));
    ex.handle_input(&input, t0);
    let ack = result(&mut ex).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError);
    drop(ex);
    assert_eq!(link.stats().skipped_frames, 2);
    assert_eq!(link.stats().negative_acks, 1);
}

#[test]
fn stale_frames_before_the_next_write_are_discarded() {
    let mut link = Link::new("peer", &config(1));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    // The ACK arrives doubled; the second copy stays buffered.
    let mut doubled = ack("AA", "MSG1");
    doubled.extend(ack("AA", "MSG1"));
    ex.handle_input(&doubled, t0);
    assert!(result(&mut ex).unwrap().is_success());
    drop(ex);

    // The same message again: the copy must not be taken for its reply.
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    assert_eq!(ex.poll_transmit(), Transmit::Drain);
    ex.handle_input(b"\x0bjunk\x1c\r", t0);
    ex.handle_drained(t0);
    write(&mut ex, t0);
    assert!(!ex.is_done(), "the stale ACK was taken for the reply");
    ex.handle_input(&ack("AR", "MSG1"), t0);
    assert_eq!(result(&mut ex).unwrap().code, AckCode::ApplicationReject);
    drop(ex);
    assert_eq!(link.stats().skipped_frames, 2);
    assert_eq!(link.stats().connects, 1);
}

#[test]
fn part_of_a_frame_left_before_a_write_means_connecting_again() {
    let mut link = Link::new("peer", &config(1));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    ex.handle_input(&ack("AA", "MSG1"), t0);
    result(&mut ex).unwrap();
    drop(ex);
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    assert_eq!(ex.poll_transmit(), Transmit::Drain);
    ex.handle_input(b"\x0bMSH|half", t0);
    ex.handle_drained(t0);
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    connect_and_write(&mut ex, t0);
    ex.handle_input(&ack("AA", "MSG1"), t0);
    result(&mut ex).unwrap();
    assert_eq!(
        ex.attempts(),
        1,
        "a reconnect before writing is not an attempt"
    );
    drop(ex);
    assert_eq!(link.stats().reconnects, 1);
}

#[test]
fn ack_timeout_is_unconfirmed_and_retried_after_the_backoff() {
    let mut link = Link::new("peer", &config(2));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    let deadline = ex.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(30));
    ex.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(
        ex.poll_transmit(),
        Transmit::Read,
        "early calls change nothing"
    );
    ex.handle_timeout(deadline);
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    assert_eq!(ex.poll_transmit(), Transmit::Wait);
    let until = ex.poll_timeout().unwrap();
    assert_eq!(until, deadline + Duration::from_millis(100));
    ex.handle_timeout(until - Duration::from_millis(1));
    assert_eq!(ex.poll_transmit(), Transmit::Wait);
    ex.handle_timeout(until);
    assert_eq!(ex.attempts(), 2);
    connect_and_write(&mut ex, until);
    let second = ex.poll_timeout().unwrap();
    ex.handle_timeout(second);
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    match result(&mut ex) {
        Err(Error::Delivery {
            outcome: Outcome::Unconfirmed,
            attempts: 2,
            last,
        }) => assert!(matches!(*last, Error::Timeout(Timeout::Ack))),
        other => panic!("{other:?}"),
    }
    drop(ex);
    let s = link.stats();
    assert_eq!(
        (s.ack_timeouts, s.retries, s.reconnects, s.failures),
        (2, 1, 1, 1)
    );
}

#[test]
fn write_failure_is_not_delivered_and_retried() {
    let mut link = Link::new("peer", &config(2));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    assert_eq!(ex.poll_transmit(), Transmit::Connect);
    ex.handle_connected(None, t0);
    let Transmit::Write(parts) = ex.poll_transmit() else {
        panic!("a write")
    };
    let half = parts.concat().len() / 2;
    ex.handle_written(half, t0);
    let Transmit::Write(rest) = ex.poll_transmit() else {
        panic!("the rest of the write")
    };
    assert_eq!(rest.concat().len(), MSG.len() + 3 - half);
    let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    ex.handle_error(
        Error::Io {
            phase: Phase::Write,
            source: reset,
        },
        t0,
    );
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    assert_eq!(ex.poll_transmit(), Transmit::Wait);
    ex.handle_timeout(ex.poll_timeout().unwrap());
    assert_eq!(ex.poll_transmit(), Transmit::Connect);
    // The second write times out as an I/O error: it is reported as a write timeout.
    ex.handle_connected(None, t0);
    let timed_out = io::Error::from(io::ErrorKind::WouldBlock);
    ex.handle_error(
        Error::Io {
            phase: Phase::Write,
            source: timed_out,
        },
        t0,
    );
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    match result(&mut ex) {
        Err(Error::Delivery {
            outcome: Outcome::NotDelivered,
            attempts: 2,
            last,
        }) => assert!(matches!(*last, Error::Timeout(Timeout::Write))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reject_is_returned_or_resent() {
    // Without resend_on_reject: returned at once.
    let mut link = Link::new("peer", &config(3));
    let t0 = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    ex.handle_input(&ack("AR", "MSG1"), t0);
    assert_eq!(result(&mut ex).unwrap().code, AckCode::ApplicationReject);
    assert_eq!(ex.attempts(), 1);

    // With it: sent again on the same connection after the backoff, until the policy ends.
    let mut c = config(2);
    c.resend_on_reject = true;
    let mut link = Link::new("peer", &c);
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    ex.handle_input(&ack("AR", "MSG1"), t0);
    assert_eq!(ex.poll_transmit(), Transmit::Wait, "the connection is kept");
    let until = ex.poll_timeout().unwrap();
    ex.handle_timeout(until);
    assert_eq!(ex.poll_transmit(), Transmit::Drain);
    ex.handle_drained(until);
    write(&mut ex, until);
    ex.handle_input(&ack("AR", "MSG1"), until);
    let ack = result(&mut ex).unwrap();
    assert_eq!((ack.code, ex.attempts()), (AckCode::ApplicationReject, 2));
    drop(ex);
    assert_eq!(link.stats().frames_written, 2);
}

#[test]
fn attempts_exhausted_with_connect_failures() {
    let mut link = Link::new("peer", &config(3));
    let mut now = Instant::now();
    let mut ex = Exchange::new(&mut link, MSG, now).unwrap();
    for attempt in 1..=3 {
        assert_eq!(ex.poll_transmit(), Transmit::Connect);
        assert_eq!(ex.attempts(), attempt);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        ex.handle_error(
            Error::Io {
                phase: Phase::Connect,
                source: refused,
            },
            now,
        );
        if attempt < 3 {
            assert_eq!(ex.poll_transmit(), Transmit::Wait);
            now = ex.poll_timeout().unwrap();
            ex.handle_timeout(now);
        }
    }
    match result(&mut ex) {
        Err(Error::Delivery {
            outcome: Outcome::NotDelivered,
            attempts: 3,
            last,
        }) => assert!(matches!(
            *last,
            Error::Io {
                phase: Phase::Connect,
                ..
            }
        )),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_total_deadline_bounds_attempts_and_backoff() {
    let mut c = config(100);
    c.timeouts.total = Some(Duration::from_millis(250));
    let t0 = Instant::now();
    let total = t0 + Duration::from_millis(250);

    // It passes while awaiting the ACK: every phase deadline is capped by it.
    let mut link = Link::new("peer", &c);
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    assert_eq!(ex.poll_timeout(), Some(total));
    connect_and_write(&mut ex, t0);
    assert_eq!(ex.poll_timeout(), Some(total));
    ex.handle_timeout(total);
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    match result(&mut ex) {
        Err(Error::Delivery {
            outcome: Outcome::Unconfirmed,
            attempts: 1,
            last,
        }) => assert!(matches!(*last, Error::Timeout(Timeout::Total))),
        other => panic!("{other:?}"),
    }

    // No attempt starts that could not begin before it: 100 ms backoffs from t0 + 60 ms allow
    // one retry (at 160 ms), not a second (at 260 ms).
    let mut link = Link::new("peer", &c);
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    let mut now = t0 + Duration::from_millis(60);
    for _ in 0..2 {
        assert_eq!(ex.poll_transmit(), Transmit::Connect);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        ex.handle_error(
            Error::Io {
                phase: Phase::Connect,
                source: refused,
            },
            now,
        );
        if ex.poll_transmit() == Transmit::Wait {
            now = ex.poll_timeout().unwrap();
            ex.handle_timeout(now);
        }
    }
    match ex.take_result() {
        Some(Err(Error::Delivery { attempts: 2, .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_and_truncated_replies_fail_the_attempt() {
    let mut c = config(1);
    c.framing = mllp::Framing::default().max_message_size(64).unwrap();
    let t0 = Instant::now();
    let mut link = Link::new("peer", &c);
    let mut ex = Exchange::new(&mut link, b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\r", t0).unwrap();
    connect_and_write(&mut ex, t0);
    ex.handle_input(&[0x0B; 1], t0);
    ex.handle_input(&[b'a'; 100], t0);
    assert_eq!(
        ex.poll_transmit(),
        Transmit::Close,
        "failed as soon as it passed the limit"
    );
    assert!(matches!(
        result(&mut ex),
        Err(Error::Delivery { last, .. }) if matches!(*last, Error::Frame(mllp::FrameError::Oversized { max: 64 }))
    ));

    let mut link = Link::new("peer", &config(1));
    let mut ex = Exchange::new(&mut link, MSG, t0).unwrap();
    connect_and_write(&mut ex, t0);
    ex.handle_input(b"\x0bMSH|^~", t0);
    ex.handle_eof(t0);
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    assert!(matches!(
        result(&mut ex),
        Err(Error::Delivery { last, .. }) if matches!(*last, Error::Frame(mllp::FrameError::Truncated { .. }))
    ));
}

#[test]
fn invalid_messages_fail_before_any_step() {
    let mut link = Link::new("peer", &SenderConfig::default());
    let t0 = Instant::now();
    assert!(matches!(
        Exchange::new(&mut link, b"PID|1\r", t0),
        Err(Error::Header(_))
    ));
    assert!(matches!(
        Exchange::new(
            &mut link,
            b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\r\x1c\r",
            t0
        ),
        Err(Error::Frame(_))
    ));
}

/// A small deterministic generator for the replay below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn fuzz_check_holds_on_seeded_random_inputs() {
    let pieces: [Vec<u8>; 8] = [
        ack("AA", "ID1"),
        ack("AA", "OTHER"),
        ack("AR", "ID1"),
        ack("AE", "ID1"),
        mllp::hl7::COMMIT_ACK.to_vec(),
        b"\x0bjunk\x1c\r".to_vec(),
        b"\x0bMSH|^~\\&|B".to_vec(),
        b"noise\x1c".to_vec(),
    ];
    let mut rng = Rng(0x5EED);
    for _ in 0..3000 {
        let mut data = vec![rng.next() as u8];
        for _ in 0..(rng.next() % 12) {
            let op = rng.next() as u8;
            let piece = &pieces[(rng.next() % 8) as usize];
            let mut bytes = piece.clone();
            if rng.next().is_multiple_of(4) {
                bytes.truncate((rng.next() as usize) % (piece.len() + 1));
            }
            data.push(op);
            data.push(bytes.len().min(255) as u8);
            data.extend_from_slice(&bytes[..bytes.len().min(255)]);
        }
        mllp_testkit::fuzzing::exchange_replies(&data);
        // And pure noise.
        let noise: Vec<u8> = (0..rng.next() % 300).map(|_| rng.next() as u8).collect();
        mllp_testkit::fuzzing::exchange_replies(&noise);
    }
}

#[test]
fn fuzz_check_holds_on_committed_seeds() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/exchange");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("seed directory") {
        mllp_testkit::fuzzing::exchange_replies(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 2);
}

/// An in-memory peer behind a `Read + Write` that counts the calls made on it: every frame
/// written is answered with an AA echoing its MSH-10; `doubled` answers twice, the second copy
/// held back until the next read (a doubled ACK that arrives after the first).
#[derive(Default)]
struct CountingPeer {
    reads: usize,
    writes: usize,
    /// Non-blocking looks at what is waiting (the driver's [`Transmit::Drain`]).
    peeks: usize,
    /// What the next read returns.
    ready: Vec<u8>,
    /// What arrives after the next read.
    later: Vec<u8>,
    doubled: bool,
}

impl io::Write for CountingPeer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        let frame = &buf[1..buf.len() - 2];
        let id = mllp::hl7::Header::parse(frame)
            .unwrap()
            .control_id()
            .unwrap();
        let id = String::from_utf8(id.to_vec()).unwrap();
        self.ready.extend(ack("AA", &id));
        if self.doubled {
            self.later.extend(ack("AA", &id));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for CountingPeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = self.ready.len().min(buf.len());
        buf[..n].copy_from_slice(&self.ready[..n]);
        self.ready.drain(..n);
        if self.ready.is_empty() {
            self.ready = std::mem::take(&mut self.later);
        }
        Ok(n)
    }
}

/// Drives one exchange of `msg` over `peer` as the blocking sender does; the clock advances
/// 5 µs per step from `*now`. A drain step costs one look at what is waiting, plus a read
/// when something is.
fn drive(link: &mut Link, peer: &mut CountingPeer, msg: &[u8], now: &mut Instant) -> AckCode {
    use std::io::{Read, Write};
    let mut ex = Exchange::new(link, msg, *now).unwrap();
    let mut buf = [0u8; 8192];
    for _ in 0..100 {
        *now += Duration::from_micros(5);
        let t = *now;
        match ex.poll_transmit() {
            Transmit::Done => return ex.take_result().unwrap().unwrap().code,
            Transmit::Connect => ex.handle_connected(None, t),
            Transmit::Drain => {
                peer.peeks += 1;
                if peer.ready.is_empty() {
                    ex.handle_drained(t);
                } else {
                    let n = peer.read(&mut buf).unwrap();
                    ex.handle_input(&buf[..n], t);
                }
            }
            Transmit::Write(parts) => {
                let frame = parts.concat();
                let n = peer.write(&frame).unwrap();
                ex.handle_written(n, t);
            }
            Transmit::Read => {
                let n = peer.read(&mut buf).unwrap();
                ex.handle_input(&buf[..n], t);
            }
            other => panic!("unexpected step {other:?}"),
        }
    }
    panic!("the exchange did not end");
}

fn msg_with_id(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|{id}|P|2.5.1\rPID|1\r").into_bytes()
}

#[test]
fn steady_state_costs_one_write_and_one_read_per_message() {
    let mut link = Link::new("peer", &config(1));
    let mut peer = CountingPeer::default();
    let mut now = Instant::now();
    // The first message connects.
    assert_eq!(
        drive(&mut link, &mut peer, &msg_with_id("W0"), &mut now),
        AckCode::ApplicationAccept
    );
    let (reads, writes) = (peer.reads, peer.writes);
    for i in 1..=1000 {
        let code = drive(
            &mut link,
            &mut peer,
            &msg_with_id(&format!("M{i}")),
            &mut now,
        );
        assert_eq!(code, AckCode::ApplicationAccept);
    }
    assert_eq!(
        (peer.writes - writes, peer.reads - reads, peer.peeks),
        (1000, 1000, 0),
        "writes, reads and checks for 1,000 messages on an open connection"
    );
    assert_eq!(link.stats().connects, 1);
}

#[test]
fn a_repeated_control_id_or_an_idle_connection_is_checked_before_the_write() {
    let mut link = Link::new("peer", &config(1));
    let mut peer = CountingPeer {
        doubled: true,
        ..CountingPeer::default()
    };
    let mut now = Instant::now();
    drive(&mut link, &mut peer, &msg_with_id("A"), &mut now);
    // A fresh ID: not checked, and the late copy of A's ACK is skipped while awaiting B's.
    drive(&mut link, &mut peer, &msg_with_id("B"), &mut now);
    assert_eq!((peer.peeks, link.stats().skipped_frames), (0, 1));
    // B again, while the doubled ACK of the first B waits: checked and discarded first, so the
    // reply taken is the one the second B got.
    peer.doubled = false;
    // (One look finds the copy, the next finds nothing more.)
    drive(&mut link, &mut peer, &msg_with_id("B"), &mut now);
    assert_eq!((peer.peeks, link.stats().skipped_frames), (2, 2));
    assert!(peer.ready.is_empty() && peer.later.is_empty());
    // Idle for the check interval: checked.
    now += mllp::DEFAULT_IDLE_CHECK;
    drive(&mut link, &mut peer, &msg_with_id("C"), &mut now);
    assert_eq!(peer.peeks, 3);
    // Soon after: not.
    drive(&mut link, &mut peer, &msg_with_id("D"), &mut now);
    assert_eq!(peer.peeks, 3);
    assert_eq!(link.stats().connects, 1);
}

#[test]
fn a_zero_idle_check_checks_before_every_write() {
    let mut c = config(1);
    c.idle_check = Duration::ZERO;
    let mut link = Link::new("peer", &c);
    let mut peer = CountingPeer::default();
    let mut now = Instant::now();
    for i in 0..10 {
        drive(
            &mut link,
            &mut peer,
            &msg_with_id(&format!("Z{i}")),
            &mut now,
        );
    }
    assert_eq!(peer.peeks, 9, "every write on the open connection");
}

#[test]
fn part_of_a_frame_left_by_the_last_read_makes_the_connection_checked() {
    let mut link = Link::new("peer", &config(1));
    let t0 = Instant::now();
    let (p1, p2) = (msg_with_id("P1"), msg_with_id("P2"));
    let mut ex = Exchange::new(&mut link, &p1, t0).unwrap();
    connect_and_write(&mut ex, t0);
    // The ACK, and the first half of a doubled copy, in one read.
    let mut input = ack("AA", "P1");
    let copy = ack("AA", "P1");
    input.extend_from_slice(&copy[..10]);
    ex.handle_input(&input, t0);
    assert!(result(&mut ex).unwrap().is_success());
    drop(ex);
    // A fresh ID soon after: still checked, so the rest of the copy is read and discarded
    // instead of the connection being dropped.
    let soon = t0 + Duration::from_micros(10);
    let mut ex = Exchange::new(&mut link, &p2, soon).unwrap();
    assert_eq!(ex.poll_transmit(), Transmit::Drain);
    ex.handle_input(&copy[10..], soon);
    ex.handle_drained(soon);
    write(&mut ex, soon);
    ex.handle_input(&ack("AA", "P2"), soon);
    assert!(result(&mut ex).unwrap().is_success());
    drop(ex);
    assert_eq!((link.stats().connects, link.stats().skipped_frames), (1, 1));
}

#[test]
fn an_uncorrelated_exchange_takes_the_next_ack_and_tries_once() {
    // A message whose control ID cannot be read (the encoding characters are wrong and MSH-10
    // is empty): testing a peer with bad input. Correlated, it is refused before anything is
    // sent; uncorrelated, it is sent and the next ACK is its reply, whatever its MSA-2.
    let bad: &[u8] = b"MSH|^~\\\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01||P|2.5.1\rPID|1\r";
    let mut link = Link::new("peer", &config(3));
    let t0 = Instant::now();
    assert!(matches!(
        Exchange::new(&mut link, bad, t0),
        Err(Error::Header(_))
    ));
    let mut ex = Exchange::uncorrelated(&mut link, bad, t0).unwrap();
    assert_eq!(ex.control_id(), b"");
    let frame = connect_and_write(&mut ex, t0);
    assert_eq!(&frame[1..frame.len() - 2], bad);
    ex.handle_input(&ack("AR", ""), t0);
    let ack = result(&mut ex).unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationReject, "")
    );
    // One attempt: an ACK timeout ends it instead of a resend.
    let mut link = Link::new("peer", &config(3));
    let mut ex = Exchange::uncorrelated(&mut link, bad, t0).unwrap();
    connect_and_write(&mut ex, t0);
    let late = t0 + Duration::from_secs(31);
    ex.handle_timeout(late);
    // The connection is closed first (a late reply must not meet a later message), then done.
    assert_eq!(ex.poll_transmit(), Transmit::Close);
    let e = result(&mut ex).unwrap_err();
    assert!(matches!(e, Error::Delivery { attempts: 1, .. }), "{e:?}");
}
