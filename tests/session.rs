//! The listener's sans-I/O session driven by hand: every timing rule of a connection without a
//! socket and without a sleep; time is passed in.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mllp::hl7::{ReplyKind, COMMIT_ACK, COMMIT_NAK};
use mllp::{CloseReason, Framing, ListenerConfig, Message, Response, Session, SessionStep};

const SECOND: Duration = Duration::from_secs(1);

fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

fn msg(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|{id}|P|2.5.1\rPID|1\r").into_bytes()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x0B];
    f.extend_from_slice(payload);
    f.extend_from_slice(b"\x1c\r");
    f
}

fn accept(_: &Message<'_>) -> Response {
    Response::accept()
}

fn config(frame: Option<Duration>, idle: Option<Duration>) -> ListenerConfig {
    let mut c = ListenerConfig::default();
    c.frame_timeout = frame;
    c.idle_timeout = idle;
    c
}

/// Polls, expecting a read; returns its deadline.
fn read_until(s: &mut Session<'_>, now: Instant) -> Option<Instant> {
    match s.poll(now) {
        SessionStep::Read { until } => until,
        other => panic!("expected a read, got {other:?}"),
    }
}

fn closed(s: &mut Session<'_>, now: Instant) -> CloseReason {
    match s.poll(now) {
        SessionStep::Close(reason) => reason.clone(),
        other => panic!("expected a close, got {other:?}"),
    }
}

/// Handles the frame the session holds and writes its answer at `now`; returns the bytes
/// written.
fn answer(s: &mut Session<'_>, now: Instant) -> Vec<u8> {
    assert_eq!(s.poll(now), SessionStep::Handle);
    s.handle_message();
    let SessionStep::Write(bytes) = s.poll(now) else {
        panic!("expected a write");
    };
    let bytes = bytes.to_vec();
    s.handle_written(Ok(()), now);
    bytes
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_message_is_handled_and_acknowledged() {
    let c = config(None, None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    assert_eq!(read_until(&mut s, t0), None);
    // In three pieces.
    let f = framed(&msg("M1"));
    s.handle_input(&f[..5], t0);
    assert_eq!(read_until(&mut s, t0), None);
    s.handle_input(&f[5..20], t0);
    s.handle_input(&f[20..], t0);
    let ack = answer(&mut s, t0);
    assert_eq!((ack[0], &ack[ack.len() - 2..]), (0x0B, &b"\x1c\r"[..]));
    assert!(has(&ack, b"MSA|AA|M1\r"));
    let stats = s.stats();
    assert_eq!((stats.messages, stats.acks_aa), (1, 1));
    s.handle_read(0, t0);
    assert_eq!(closed(&mut s, t0), CloseReason::ByPeer);
}

#[test]
fn a_started_frame_must_complete_within_the_frame_timeout() {
    let c = config(Some(10 * SECOND), None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    let f = framed(&msg("M1"));
    s.handle_input(&f[..10], t0);
    assert_eq!(read_until(&mut s, t0), Some(t0 + 10 * SECOND));
    // More bytes of the same frame do not move the deadline.
    s.handle_input(&f[10..20], t0 + 5 * SECOND);
    assert_eq!(read_until(&mut s, t0 + 9 * SECOND), Some(t0 + 10 * SECOND));
    assert_eq!(closed(&mut s, t0 + 10 * SECOND), CloseReason::FrameTimeout);
    assert_eq!(s.stats().frame_timeouts, 1);
    assert_eq!(s.stats().messages, 0);
}

#[test]
fn a_frame_completed_in_time_is_handled_and_the_clock_stops() {
    let c = config(Some(10 * SECOND), None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    let f = framed(&msg("M1"));
    s.handle_input(&f[..10], t0);
    s.handle_input(&f[10..], t0 + 9 * SECOND);
    answer(&mut s, t0 + 9 * SECOND);
    // Between messages, without an idle timeout: no deadline, hours later still open.
    assert_eq!(read_until(&mut s, t0 + 3600 * SECOND), None);
}

#[test]
fn junk_outside_a_frame_does_not_restart_the_frame_clock() {
    let c = config(Some(10 * SECOND), None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    for i in 0..10 {
        s.handle_input(b"junk", t0 + i * SECOND);
        assert_eq!(read_until(&mut s, t0 + i * SECOND), Some(t0 + 10 * SECOND));
    }
    assert_eq!(closed(&mut s, t0 + 10 * SECOND), CloseReason::JunkTimeout);
    let stats = s.stats();
    assert_eq!((stats.frame_timeouts, stats.skipped_bytes), (1, 40));
}

#[test]
fn white_space_after_a_frame_does_not_start_the_frame_clock() {
    let c = config(Some(SECOND), None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    s.handle_input(&framed(&msg("M1")), t0);
    answer(&mut s, t0);
    s.handle_input(b"\n", t0);
    s.handle_input(b"\r\n \t\0", t0 + SECOND);
    assert_eq!(read_until(&mut s, t0 + 60 * SECOND), None);
    s.handle_input(&framed(&msg("M2")), t0 + 60 * SECOND);
    assert!(has(&answer(&mut s, t0 + 60 * SECOND), b"MSA|AA|M2\r"));
    assert_eq!(s.stats().frame_timeouts, 0);
}

#[test]
fn the_next_frame_already_arriving_starts_its_clock_at_the_answer() {
    let c = config(Some(10 * SECOND), None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    let mut bytes = framed(&msg("M1"));
    let second = framed(&msg("M2"));
    bytes.extend_from_slice(&second[..10]);
    s.handle_input(&bytes, t0);
    let t1 = t0 + 3 * SECOND;
    answer(&mut s, t1);
    assert_eq!(read_until(&mut s, t1), Some(t1 + 10 * SECOND));
    assert_eq!(closed(&mut s, t1 + 10 * SECOND), CloseReason::FrameTimeout);
}

#[test]
fn idle_timeout_counts_from_the_last_answer() {
    let c = config(Some(SECOND), Some(30 * SECOND));
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    assert_eq!(read_until(&mut s, t0), Some(t0 + 30 * SECOND));
    let t1 = t0 + 20 * SECOND;
    s.handle_input(&framed(&msg("M1")), t1);
    answer(&mut s, t1);
    assert_eq!(read_until(&mut s, t0 + 49 * SECOND), Some(t1 + 30 * SECOND));
    assert_eq!(closed(&mut s, t1 + 30 * SECOND), CloseReason::IdleTimeout);
    let stats = s.stats();
    assert_eq!((stats.idle_timeouts, stats.frame_timeouts), (1, 0));
}

#[test]
fn a_read_that_times_out_early_changes_nothing() {
    let c = config(None, Some(30 * SECOND));
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    // The driver's read returned before the deadline (a socket timeout rounds): poll again.
    assert_eq!(read_until(&mut s, t0 + 29 * SECOND), Some(t0 + 30 * SECOND));
    assert_eq!(read_until(&mut s, t0 + 29 * SECOND), Some(t0 + 30 * SECOND));
    assert_eq!(s.stats().idle_timeouts, 0);
}

#[test]
fn an_oversized_frame_is_rejected_by_name_and_the_next_one_served() {
    let mut c = config(Some(SECOND), None);
    c.framing = Framing::default().max_message_size(200).unwrap();
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    let mut big = msg("BIG1");
    big.extend_from_slice(&[b'x'; 1000]);
    let mut bytes = framed(&big);
    bytes.extend_from_slice(&framed(&msg("M2")));
    s.handle_input(&bytes, t0);
    // Answered from its first bytes, without the handler.
    let SessionStep::Write(nak) = s.poll(t0) else {
        panic!("expected the reject");
    };
    let nak = nak.to_vec();
    s.handle_written(Ok(()), t0);
    assert!(
        has(&nak, b"MSA|AR|BIG1"),
        "{}",
        String::from_utf8_lossy(&nak)
    );
    assert!(has(&nak, b"exceeds 200 bytes"));
    assert!(has(&answer(&mut s, t0), b"MSA|AA|M2\r"));
    let stats = s.stats();
    assert_eq!(
        (
            stats.oversized_frames,
            stats.acks_ar,
            stats.acks_aa,
            stats.messages
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn an_evicted_session_hands_no_further_message_to_the_handler() {
    let c = config(None, None);
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let handler = |_: &Message<'_>| {
        CALLS.fetch_add(1, Ordering::Relaxed);
        Response::accept()
    };
    let t0 = Instant::now();
    let mut s = Session::new(&c, &handler, peer(), t0);
    s.handle_input(&framed(&msg("M1")), t0);
    answer(&mut s, t0);
    assert!(s.evict());
    // The frame arrived before the socket was shut down: it must not be handled.
    s.handle_input(&framed(&msg("M2")), t0);
    assert_eq!(closed(&mut s, t0), CloseReason::Evicted);
    assert_eq!(CALLS.load(Ordering::Relaxed), 1);
}

#[test]
fn a_message_being_handled_is_never_evicted() {
    let c = config(None, None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    s.handle_input(&framed(&msg("M1")), t0);
    assert_eq!(s.poll(t0), SessionStep::Handle);
    assert!(!s.evict(), "evicted before its handler ran");
    s.handle_message();
    assert!(matches!(s.poll(t0), SessionStep::Write(_)));
    assert!(!s.evict(), "evicted before its acknowledgement was written");
    s.handle_written(Ok(()), t0);
    assert_eq!(s.stats().acks_aa, 1);
    assert!(s.evict(), "not evictable between messages");
}

#[test]
fn shutdown_answers_the_message_being_handled_then_reads_no_more() {
    let c = config(None, None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    let mut bytes = framed(&msg("M1"));
    bytes.extend_from_slice(&framed(&msg("M2")));
    s.handle_input(&bytes, t0);
    assert_eq!(s.poll(t0), SessionStep::Handle);
    s.handle_stop();
    assert_eq!(s.poll(t0), SessionStep::Handle);
    s.handle_message();
    let SessionStep::Write(ack) = s.poll(t0) else {
        panic!("the message being handled is still answered");
    };
    assert!(has(ack, b"MSA|AA|M1\r"));
    s.handle_written(Ok(()), t0);
    assert_eq!(closed(&mut s, t0), CloseReason::Stopping);
    assert_eq!(s.stats().messages, 1);
}

#[test]
fn shutdown_between_messages_closes_at_once() {
    let c = config(None, Some(30 * SECOND));
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    assert_eq!(read_until(&mut s, t0), Some(t0 + 30 * SECOND));
    s.handle_stop();
    assert_eq!(closed(&mut s, t0), CloseReason::Stopping);
}

#[test]
fn mllp2_answers_with_commit_blocks() {
    let mut c = config(None, None);
    c.reply = ReplyKind::Mllp2;
    let reject = |m: &Message<'_>| {
        if m.control_id() == Some("BAD") {
            Response::error("no")
        } else {
            Response::accept()
        }
    };
    let t0 = Instant::now();
    let mut s = Session::new(&c, &reject, peer(), t0);
    let commit = |block: &[u8]| framed(block);
    s.handle_input(&framed(&msg("M1")), t0);
    assert_eq!(answer(&mut s, t0), commit(COMMIT_ACK));
    s.handle_input(&framed(&msg("BAD")), t0);
    assert_eq!(answer(&mut s, t0), commit(COMMIT_NAK));
    s.handle_input(&framed(b"not a message"), t0);
    assert_eq!(answer(&mut s, t0), commit(COMMIT_NAK));
    let stats = s.stats();
    assert_eq!(
        (stats.commit_acks, stats.commit_naks, stats.nak_unparseable),
        (1, 2, 1)
    );
}

#[test]
fn a_handler_that_asks_to_close_gets_no_acknowledgement() {
    let c = config(None, None);
    let close = |_: &Message<'_>| Response::close();
    let t0 = Instant::now();
    let mut s = Session::new(&c, &close, peer(), t0);
    s.handle_input(&framed(&msg("M1")), t0);
    assert_eq!(s.poll(t0), SessionStep::Handle);
    s.handle_message();
    assert_eq!(closed(&mut s, t0), CloseReason::HandlerClosed);
    assert_eq!(s.stats().closed_unanswered, 1);
}

#[test]
fn a_failed_write_ends_the_session_and_is_not_counted() {
    let c = config(None, None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    s.handle_input(&framed(&msg("M1")), t0);
    assert_eq!(s.poll(t0), SessionStep::Handle);
    s.handle_message();
    assert!(matches!(s.poll(t0), SessionStep::Write(_)));
    s.handle_written(Err(io::ErrorKind::BrokenPipe.into()), t0);
    assert!(matches!(closed(&mut s, t0), CloseReason::WriteFailed(_)));
    assert_eq!(s.stats().acks_aa, 0);
}

#[test]
fn the_stream_ending_inside_a_frame_is_a_failure() {
    let c = config(None, None);
    let t0 = Instant::now();
    let mut s = Session::new(&c, &accept, peer(), t0);
    s.handle_input(&framed(&msg("M1"))[..20], t0);
    assert_eq!(read_until(&mut s, t0), None);
    s.handle_read(0, t0);
    let CloseReason::Failed(text) = closed(&mut s, t0) else {
        panic!("expected a failure");
    };
    assert!(text.contains("trunc") || text.contains("ended"), "{text}");
}
