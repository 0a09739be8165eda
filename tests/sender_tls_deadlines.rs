//! The sender's deadlines over TLS, against peers that trickle the bytes of one TLS record or
//! read one slowly: every attempt ends within its write and ACK timeouts measured as wall
//! time, as over plain TCP (see `sender_deadlines.rs`), even though one TLS read or write
//! makes many socket calls.
//!
//! The peers are `native-tls` servers on 127.0.0.1 with the test certificates. Every peer
//! stops by itself (bounded loops, socket timeouts) and every thread is joined.
#![cfg(feature = "tls")]

use mllp_testkit as common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{adt, cert, trusting_test_ca};
use mllp::hl7::AckCode;
use mllp::{Error, Outcome, RetryPolicy, Sender, Timeout};
use native_tls::{TlsAcceptor, TlsStream};

/// The ACK and write timeouts of the senders under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How much later than its timeout a call may return.
const GRACE: Duration = Duration::from_secs(1);
/// How long any peer keeps going at most.
const PEER_LIFE: Duration = Duration::from_secs(15);

/// The server's socket under TLS. While `captured` is `Some`, what TLS writes is kept there
/// instead of being sent, so that the test can send those bytes itself, as slowly as it likes.
#[derive(Debug)]
struct Tap {
    tcp: TcpStream,
    captured: Option<Vec<u8>>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.captured {
            Some(captured) => {
                captured.extend_from_slice(buf);
                Ok(buf.len())
            }
            None => self.tcp.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A TLS peer on 127.0.0.1 that accepts one connection, runs the handshake with the test
/// server identity and then runs `script` on the connection.
fn tls_peer(script: impl FnOnce(TlsStream<Tap>) + Send + 'static) -> (String, JoinHandle<()>) {
    let identity = native_tls::Identity::from_pkcs8(&cert("server.pem"), &cert("server.key"))
        .expect("the test server identity");
    let acceptor = TlsAcceptor::new(identity).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let thread = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(PEER_LIFE)).unwrap();
        tcp.set_write_timeout(Some(PEER_LIFE)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let tap = Tap {
            tcp,
            captured: None,
        };
        match acceptor.accept(tap) {
            Ok(tls) => script(tls),
            Err(e) => eprintln!("the test server's handshake failed: {e}"),
        }
    });
    (addr, thread)
}

/// Reads one frame (up to the end sequence); `None` at end of stream, on error, or when it
/// grows beyond 1 MB.
fn read_message(tls: &mut TlsStream<Tap>) -> Option<Vec<u8>> {
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    while !msg.ends_with(b"\x1c\r") && msg.len() < 1 << 20 {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
        }
    }
    Some(msg)
}

/// An AA acknowledgement for `id`, framed.
fn framed_ack(id: &str) -> Vec<u8> {
    format!("\x0bMSH|^~\\&|B|B|A|A|20260101||ACK|R-{id}|P|2.5.1\rMSA|AA|{id}\r\x1c\r").into_bytes()
}

/// A peer that reads the message, then sends the TLS record of its ACK for `id` one byte every
/// `pause`, for at most [`PEER_LIFE`]. Reports the record's length once it has been made.
fn trickling_ack_peer(
    id: &'static str,
    pause: Duration,
) -> (String, JoinHandle<()>, mpsc::Receiver<usize>) {
    let (len_tx, len_rx) = mpsc::channel();
    let (addr, thread) = tls_peer(move |mut tls| {
        if read_message(&mut tls).is_none() {
            return;
        }
        tls.get_mut().captured = Some(Vec::new());
        if tls.write_all(&framed_ack(id)).is_err() || tls.flush().is_err() {
            return;
        }
        let record = tls.get_mut().captured.take().unwrap_or_default();
        let _ = len_tx.send(record.len());
        let tcp = &mut tls.get_mut().tcp;
        let started = Instant::now();
        for byte in record {
            if started.elapsed() >= PEER_LIFE {
                return;
            }
            thread::sleep(pause);
            if tcp.write_all(&[byte]).is_err() {
                return;
            }
        }
        // Wait (bounded by the read timeout) for the sender to close.
        let _ = tcp.read(&mut [0u8; 64]);
    });
    (addr, thread, len_rx)
}

fn sender(addr: &str, ack_timeout: Duration) -> Sender {
    Sender::builder(addr)
        .tls(trusting_test_ca())
        .connect_timeout(Duration::from_secs(5))
        .ack_timeout(ack_timeout)
        .write_timeout(TIMEOUT)
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

/// The last attempt's error of a delivery failure.
fn last_error(e: Error) -> (Outcome, Error) {
    match e {
        Error::Delivery { outcome, last, .. } => (outcome, *last),
        other => panic!("not a delivery failure: {other:?}"),
    }
}

#[test]
fn a_tls_record_trickled_one_byte_at_a_time_is_an_ack_timeout() {
    // 200 ms a byte: every socket read makes progress well within the ACK timeout, but the
    // record of about 100 bytes would take 20 s (the peer stops after 15 s).
    let (addr, thread, record) = trickling_ack_peer("TLSTRICKLE1", Duration::from_millis(200));
    let mut sender = sender(&addr, TIMEOUT);
    let started = Instant::now();
    let result = sender.send(&adt("TLSTRICKLE1"));
    let took = started.elapsed();
    eprintln!(
        "the call returned after {took:?} (record of {:?} bytes)",
        record.try_recv().ok()
    );
    let e = result.expect_err("an ACK that takes 20 s to arrive");
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (outcome, last) = last_error(e);
    assert_eq!(outcome, Outcome::Unconfirmed);
    assert!(matches!(last, Error::Timeout(Timeout::Ack)), "{last:?}");
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn a_tls_record_trickled_within_the_ack_timeout_is_the_reply() {
    // The same peer, faster: the record's bytes arrive in about 100 separate socket reads, all
    // within the ACK timeout, and make the reply.
    let (addr, thread, record) = trickling_ack_peer("TLSTRICKLE2", Duration::from_millis(5));
    let mut sender = sender(&addr, Duration::from_secs(5));
    let ack = sender.send(&adt("TLSTRICKLE2")).unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationAccept, "TLSTRICKLE2")
    );
    let len = record.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(len > 50, "a record of {len} bytes");
    drop(sender);
    thread.join().unwrap();
}

#[test]
fn a_tls_peer_reading_1k_at_a_time_too_slowly_is_a_write_timeout() {
    // The peer reads 1 KiB of ciphertext every 300 ms, so the 8 MB message (more than the
    // socket buffers hold) would take about 40 minutes, and one 16 KiB TLS record about 5 s.
    let (stop_tx, stop) = mpsc::channel::<()>();
    let (addr, thread) = tls_peer(move |tls| {
        let Ok(mut tcp) = tls.get_ref().tcp.try_clone() else {
            return;
        };
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        while started.elapsed() < PEER_LIFE && stop.try_recv().is_err() {
            thread::sleep(Duration::from_millis(300));
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut message = adt("TLSSLOW1");
    message.push_str("OBX|1|ED|PDF||");
    message.extend(std::iter::repeat_n('A', 8_000_000));
    message.push('\r');
    let mut sender = sender(&addr, TIMEOUT);
    let started = Instant::now();
    let result = sender.send(&message);
    let took = started.elapsed();
    eprintln!("the call returned after {took:?}");
    let e = result.expect_err("a write that takes ten minutes");
    assert!(took < TIMEOUT + GRACE, "returned after {took:?}");
    let (outcome, last) = last_error(e);
    assert_eq!(outcome, Outcome::NotDelivered);
    assert!(matches!(last, Error::Timeout(Timeout::Write)), "{last:?}");
    let _ = stop_tx.send(());
    drop(sender);
    thread.join().unwrap();
}
