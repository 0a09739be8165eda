//! The sender's deadlines against peers that trickle bytes, and replies already waiting before a
//! write: every attempt ends within its write and ACK timeouts measured as wall time, however
//! the bytes arrive, and a frame that answers nothing in flight is never taken for a reply.
//!
//! Every peer stops by itself (bounded loops, socket timeouts) and every thread is joined.

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mllp::hl7::AckCode;
use mllp::{Error, FrameError, Framing, Outcome, RetryPolicy, Sender, Timeout};

/// The ACK and write timeouts of the senders under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than its timeout a call may return.
const GRACE: Duration = Duration::from_millis(1500);
/// How long any peer keeps going at most.
const PEER_LIFE: Duration = Duration::from_secs(12);

/// A peer on 127.0.0.1 that accepts one connection and runs `script` on it.
fn peer(script: impl FnOnce(TcpStream) + Send + 'static) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(PEER_LIFE)).unwrap();
        tcp.set_write_timeout(Some(PEER_LIFE)).unwrap();
        script(tcp);
    });
    (addr, thread)
}

/// Reads one frame (up to the end sequence) from `tcp`; `None` at end of stream or on error.
fn read_message(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut msg = Vec::new();
    let mut byte = [0u8; 1];
    while !msg.ends_with(b"\x1c\r") {
        match tcp.read(&mut byte) {
            Ok(1) => msg.push(byte[0]),
            _ => return None,
        }
    }
    Some(msg)
}

/// Writes `byte` every `every` until the peer's life ends or the sender goes away.
fn trickle(tcp: &mut TcpStream, first: &[u8], byte: u8, every: Duration) {
    let started = Instant::now();
    if tcp.write_all(first).is_err() {
        return;
    }
    while started.elapsed() < PEER_LIFE {
        thread::sleep(every);
        if tcp.write_all(&[byte]).is_err() {
            return;
        }
    }
}

fn sender(addr: &str) -> Sender {
    Sender::builder(addr)
        .ack_timeout(TIMEOUT)
        .write_timeout(TIMEOUT)
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

/// Sends one message and returns the error and how long the call took.
fn failing_send(sender: &mut Sender, message: &str) -> (Error, Duration) {
    let started = Instant::now();
    let result = sender.send(message);
    let took = started.elapsed();
    eprintln!("the call returned after {took:?}");
    match result {
        Ok(ack) => panic!("an ACK from a peer that sends none: {ack:?}"),
        Err(e) => (e, took),
    }
}

/// The last attempt's error of a delivery failure.
fn last_error(e: Error) -> (Outcome, Error) {
    match e {
        Error::Delivery { outcome, last, .. } => (outcome, *last),
        other => panic!("not a delivery failure: {other:?}"),
    }
}

#[test]
fn a_start_byte_then_one_byte_at_a_time_is_an_ack_timeout() {
    let (addr, thread) = peer(|mut tcp| {
        if read_message(&mut tcp).is_some() {
            trickle(
                &mut tcp,
                b"\x0bMSH|^~\\&|",
                b'A',
                Duration::from_millis(100),
            );
        }
    });
    let mut sender = sender(&addr);
    let (e, took) = failing_send(&mut sender, &common::adt("TRICKLE1"));
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (outcome, last) = last_error(e);
    assert_eq!(outcome, Outcome::Unconfirmed);
    assert!(matches!(last, Error::Timeout(Timeout::Ack)), "{last:?}");
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn junk_bytes_one_at_a_time_are_an_ack_timeout() {
    let (addr, thread) = peer(|mut tcp| {
        if read_message(&mut tcp).is_some() {
            trickle(&mut tcp, b"x", b'x', Duration::from_millis(100));
        }
    });
    let mut sender = sender(&addr);
    let (e, took) = failing_send(&mut sender, &common::adt("JUNK1"));
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (_, last) = last_error(e);
    assert!(matches!(last, Error::Timeout(Timeout::Ack)), "{last:?}");
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn an_endless_frame_is_oversized_as_soon_as_it_passes_the_limit() {
    let (addr, thread) = peer(|mut tcp| {
        if read_message(&mut tcp).is_none() {
            return;
        }
        let started = Instant::now();
        let chunk = vec![b'A'; 4096];
        let _ = tcp.write_all(b"\x0bMSH|^~\\&|");
        // 4 KiB every 10 ms: 400 KiB/s, so the 64 KiB limit is passed after about 160 ms,
        // long before the ACK timeout.
        while started.elapsed() < PEER_LIFE {
            if tcp.write_all(&chunk).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    let framing = Framing::default().max_message_size(64 * 1024).unwrap();
    let mut sender = Sender::builder(&addr)
        .framing(framing)
        .ack_timeout(Duration::from_secs(5))
        .write_timeout(TIMEOUT)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let (e, took) = failing_send(&mut sender, &common::adt("ENDLESS1"));
    assert!(took < Duration::from_secs(2), "returned after {took:?}");
    let (_, last) = last_error(e);
    assert!(
        matches!(last, Error::Frame(FrameError::Oversized { max: 65536 })),
        "{last:?}"
    );
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn an_endless_frame_within_the_limit_is_an_ack_timeout() {
    let (addr, thread) = peer(|mut tcp| {
        if read_message(&mut tcp).is_some() {
            let chunk = vec![b'A'; 1024];
            let started = Instant::now();
            let _ = tcp.write_all(b"\x0bMSH|^~\\&|");
            while started.elapsed() < PEER_LIFE {
                if tcp.write_all(&chunk).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let mut sender = sender(&addr);
    let (e, took) = failing_send(&mut sender, &common::adt("ENDLESS2"));
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (_, last) = last_error(e);
    assert!(matches!(last, Error::Timeout(Timeout::Ack)), "{last:?}");
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn a_peer_reading_16k_at_a_time_too_slowly_is_a_write_timeout() {
    // Each read makes progress well within the write timeout, but 5 MB at 40 KiB/s would take
    // two minutes: the write timeout bounds the whole write, not each write call.
    let (stop_tx, stop) = mpsc::channel::<()>();
    let (addr, thread) = peer(move |mut tcp| {
        let started = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        while started.elapsed() < PEER_LIFE && stop.try_recv().is_err() {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => thread::sleep(Duration::from_millis(400)),
            }
        }
    });
    let mut message = common::adt("SLOW1");
    message.push_str("OBX|1|ED|PDF||");
    message.extend(std::iter::repeat_n('A', 5_000_000));
    message.push('\r');
    let mut sender = sender(&addr);
    let (e, took) = failing_send(&mut sender, &message);
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (outcome, last) = last_error(e);
    assert_eq!(outcome, Outcome::NotDelivered);
    assert!(matches!(last, Error::Timeout(Timeout::Write)), "{last:?}");
    stop_tx.send(()).unwrap();
    drop(sender);
    thread.join().unwrap();
}

/// An ACK for `id` with `code`, framed.
fn framed_ack(code: &str, id: &str) -> Vec<u8> {
    format!("\x0bMSH|^~\\&|B|B|A|A|20260101||ACK|R-{code}|P|2.5.1\rMSA|{code}|{id}\r\x1c\r")
        .into_bytes()
}

/// Both messages carry control ID `SAME`; the peer answers the first twice (CA, then AA) and
/// the second with AE. `apart` sends the two answers to the first in two writes, and only
/// reports them sent once both are written.
fn doubled_ack(apart: bool) {
    let (sent_tx, sent_rx) = mpsc::channel();
    let (addr, thread) = peer(move |mut tcp| {
        tcp.set_nodelay(true).unwrap();
        if read_message(&mut tcp).is_none() {
            return;
        }
        if apart {
            tcp.write_all(&framed_ack("CA", "SAME")).unwrap();
            tcp.write_all(&framed_ack("AA", "SAME")).unwrap();
        } else {
            let mut both = framed_ack("CA", "SAME");
            both.extend(framed_ack("AA", "SAME"));
            tcp.write_all(&both).unwrap();
        }
        sent_tx.send(()).unwrap();
        if read_message(&mut tcp).is_some() {
            tcp.write_all(&framed_ack("AE", "SAME")).unwrap();
        }
        // Wait for the sender to close.
        let _ = read_message(&mut tcp);
    });
    let mut sender = Sender::builder(&addr)
        .ack_timeout(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let first = sender.send(&common::adt("SAME")).unwrap();
    assert_eq!(first.code, AckCode::CommitAccept);
    sent_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let second = sender.send(&common::adt("SAME")).unwrap();
    assert_eq!(
        second.code,
        AckCode::ApplicationError,
        "the doubled ACK of the first message was taken for the second's"
    );
    assert_eq!(sender.stats().skipped_frames, 1);
    assert_eq!(sender.stats().connects, 1);
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn a_doubled_ack_buffered_with_the_first_is_not_the_next_reply() {
    doubled_ack(false);
}

#[test]
fn a_doubled_ack_waiting_on_the_socket_is_not_the_next_reply() {
    doubled_ack(true);
}
