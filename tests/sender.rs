//! The sender against scripted listeners on loopback: correlation, reconnects, retries, delivery
//! outcomes, negative ACKs and MLLP release 2. Interop with python-hl7 is in `tests/interop.rs`.
//!
//! Every socket has read and write timeouts, every thread is joined, and the only timed wait is
//! the one that keeps a listener down for a second.

use mllp_testkit as common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mllp::charset::Charset;
use mllp::hl7::{AckBuilder, AckCode, Disposition, Header, ReplyKind, COMMIT_ACK, COMMIT_NAK};
use mllp::{
    Connection, Error, FrameError, Framing, HeaderError, Outcome, RetryPolicy, Sender,
    SenderBuilder, Timeout,
};

/// The bound on every blocking operation of the tests.
const LIMIT: Duration = Duration::from_secs(5);

/// What the scripted listener does after receiving a message; several acts run in order.
enum Act {
    /// Answer with an ACK built by `AckBuilder` (AA, AE or AR) and the given MSA-3 text.
    Ack(Disposition, Option<&'static str>),
    /// Write this payload as a frame.
    Frame(Vec<u8>),
    /// Write these bytes as they are.
    Raw(Vec<u8>),
    /// Close the connection and report [`Event::Closed`].
    Close,
    /// Drop the connection without a word.
    Hangup,
    /// Wait until the sender closes the connection, then write the ACK into it anyway and
    /// report [`Event::LateAckSent`].
    LateAck,
}

use Act::*;

/// What the scripted listener reports.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Closed,
    LateAckSent,
}

/// Decides what to do with the `n`th message received (counting from 0, over all connections).
type Handler = Box<dyn FnMut(usize, &[u8]) -> Vec<Act> + Send>;

/// A listener on 127.0.0.1 that serves one connection at a time, following a script.
struct Script {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    events: mpsc::Receiver<Event>,
    thread: JoinHandle<usize>,
}

/// What a scripted listener saw.
struct Report {
    /// The messages received, in order.
    received: Vec<Vec<u8>>,
    /// The connections accepted.
    connections: usize,
}

impl Script {
    fn start(handler: impl FnMut(usize, &[u8]) -> Vec<Act> + Send + 'static) -> Script {
        Script::on(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
    }

    /// A script that acknowledges every message with AA.
    fn acking() -> Script {
        Script::start(|_, _| vec![Ack(Disposition::Accept, None)])
    }

    fn on(
        listener: TcpListener,
        handler: impl FnMut(usize, &[u8]) -> Vec<Act> + Send + 'static,
    ) -> Script {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, events) = mpsc::channel();
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            let handler: Handler = Box::new(handler);
            thread::spawn(move || serve(listener, handler, &stop, &received, &tx))
        };
        Script {
            addr,
            stop,
            received,
            events,
            thread,
        }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The next event, within the limit.
    fn event(&self) -> Event {
        self.events
            .recv_timeout(LIMIT)
            .expect("an event from the listener")
    }

    /// Stops the listener and returns what it saw. Close the sender first, or the listener
    /// waits for its connection to time out.
    fn finish(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call.
        let _ = TcpStream::connect_timeout(&self.addr, LIMIT);
        let connections = self.thread.join().expect("the listener thread");
        let received = std::mem::take(&mut *self.received.lock().unwrap());
        Report {
            received,
            connections,
        }
    }
}

/// The listener thread: accepts connections one after another until stopped.
fn serve(
    listener: TcpListener,
    mut handler: Handler,
    stop: &AtomicBool,
    received: &Mutex<Vec<Vec<u8>>>,
    events: &mpsc::Sender<Event>,
) -> usize {
    let mut connections = 0;
    for tcp in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(tcp) = tcp else { continue };
        connections += 1;
        tcp.set_read_timeout(Some(LIMIT)).unwrap();
        tcp.set_write_timeout(Some(LIMIT)).unwrap();
        let mut conn = Connection::new(tcp, Framing::default());
        let mut after = None;
        'conn: while let Ok(Some(frame)) = conn.read_frame() {
            let msg = frame.to_vec();
            let n = {
                let mut all = received.lock().unwrap();
                all.push(msg.clone());
                all.len() - 1
            };
            for act in handler(n, &msg) {
                let written = match act {
                    Ack(disposition, text) => conn.write_frame(&ack_of(&msg, disposition, text)),
                    Frame(payload) => conn.write_frame(&payload),
                    Raw(bytes) => conn.get_mut().write_all(&bytes).map_err(|_| Error::Closed),
                    Close => {
                        after = Some(Event::Closed);
                        break 'conn;
                    }
                    Hangup => break 'conn,
                    LateAck => {
                        // The sender closes the connection when its ACK timeout passes.
                        while let Ok(Some(_)) = conn.read_frame() {}
                        let _ = conn.write_frame(&ack_of(&msg, Disposition::Accept, None));
                        after = Some(Event::LateAckSent);
                        break 'conn;
                    }
                };
                if written.is_err() {
                    break 'conn;
                }
            }
        }
        drop(conn);
        if let Some(event) = after {
            let _ = events.send(event);
        }
    }
    connections
}

/// The ACK `AckBuilder` makes for `msg`.
fn ack_of(msg: &[u8], disposition: Disposition, text: Option<&str>) -> Vec<u8> {
    let header = Header::parse(msg).expect("a message with a header");
    let mut builder = AckBuilder::new(disposition);
    if let Some(text) = text {
        builder = builder.text(text);
    }
    let mut out = Vec::new();
    builder.build(&header, &mut out).unwrap();
    out
}

/// A hand-written ACK with the given code, MSA-2 and MSA-3.
fn ack_with(code: &str, control_id: &str, text: &str) -> Vec<u8> {
    format!("MSH|^~\\&|RCV|FAC|SND|FAC|20260101120000||ACK^A01^ACK|R{control_id}|P|2.5.1\rMSA|{code}|{control_id}|{text}\r")
        .into_bytes()
}

/// A retry policy with short delays, so that tests that retry stay fast.
fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(40))
}

/// A sender to `addr` with bounded timeouts and quick retries.
fn sender(addr: &str) -> SenderBuilder {
    Sender::builder(addr)
        .connect_timeout(LIMIT)
        .ack_timeout(LIMIT)
        .write_timeout(LIMIT)
        .retry(quick_retry())
}

/// MSH-10 of a received message.
fn id_of(msg: &[u8]) -> String {
    String::from_utf8_lossy(Header::parse(msg).unwrap().control_id().unwrap()).into_owned()
}

#[test]
fn a_thousand_messages_in_a_row() {
    let script = Script::acking();
    let mut sender = sender(&script.addr()).build().unwrap();
    assert!(
        !sender.is_connected(),
        "no connection before the first send"
    );
    for i in 0..1000 {
        let id = format!("M{i:04}");
        let ack = sender.send(&common::adt(&id)).unwrap();
        assert_eq!(ack.code, AckCode::ApplicationAccept);
        assert_eq!(ack.control_id, id);
        assert!(ack.is_success());
    }
    assert_eq!(sender.peer_addr(), Some(script.addr));
    let stats = sender.stats();
    assert_eq!(
        (stats.messages, stats.acks, stats.frames_written),
        (1000, 1000, 1000)
    );
    assert_eq!(
        (stats.connects, stats.retries, stats.skipped_frames),
        (1, 0, 0)
    );
    drop(sender);
    let report = script.finish();
    assert_eq!(report.connections, 1, "one connection for all messages");
    let ids: Vec<String> = report.received.iter().map(|m| id_of(m)).collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("M{i:04}")).collect();
    assert_eq!(ids, expected, "each message once, in order");
}

#[test]
fn idle_connection_closed_by_the_listener_is_replaced_before_writing() {
    let script = Script::start(|n, _| match n {
        0 => vec![Ack(Disposition::Accept, None), Close],
        _ => vec![Ack(Disposition::Accept, None)],
    });
    // Checked before every write, however short the idle time (by default a connection is
    // checked when it has been idle for 1 ms or more, which `tests/exchange.rs` shows).
    let mut sender = sender(&script.addr())
        .idle_check(Duration::ZERO)
        .build()
        .unwrap();
    assert!(sender.send(&common::adt("IDLE1")).unwrap().is_success());
    assert_eq!(script.event(), Event::Closed);
    // The sender still holds the connection the listener has closed.
    assert!(sender.is_connected());
    let ack = sender.send(&common::adt("IDLE2")).unwrap();
    assert_eq!(ack.control_id, "IDLE2");
    let stats = sender.stats();
    assert_eq!((stats.connects, stats.reconnects), (2, 1));
    assert_eq!(
        (stats.retries, stats.frames_written),
        (0, 2),
        "the close was noticed before writing, not by a failed attempt"
    );
    drop(sender);
    let report = script.finish();
    assert_eq!(report.connections, 2);
    let ids: Vec<String> = report.received.iter().map(|m| id_of(m)).collect();
    assert_eq!(ids, ["IDLE1", "IDLE2"]);
}

#[test]
fn connection_dropped_before_the_ack_resends_on_a_new_connection() {
    let script = Script::start(|n, _| match n {
        0 => vec![Hangup],
        _ => vec![Ack(Disposition::Accept, Some("second time"))],
    });
    let mut sender = sender(&script.addr()).build().unwrap();
    let mut successes = 0;
    let ack = sender.send(&common::adt("DROP1")).unwrap();
    successes += usize::from(ack.is_success());
    assert_eq!(ack.text.as_deref(), Some("second time"));
    assert_eq!(ack.control_id, "DROP1");
    let stats = sender.stats();
    assert_eq!((stats.messages, stats.acks, stats.retries), (1, 1, 1));
    assert_eq!(
        (stats.connects, stats.reconnects, stats.frames_written),
        (2, 1, 2)
    );
    drop(sender);
    let report = script.finish();
    assert_eq!(successes, 1, "success reported once");
    assert_eq!(report.connections, 2);
    let ids: Vec<String> = report.received.iter().map(|m| id_of(m)).collect();
    assert_eq!(ids, ["DROP1", "DROP1"], "the same message sent again");
}

#[test]
fn late_ack_is_never_matched_and_the_message_is_sent_again() {
    let script = Script::start(|n, _| match n {
        0 => vec![LateAck],
        _ => vec![Ack(Disposition::Accept, Some("fresh"))],
    });
    let mut sender = sender(&script.addr())
        .ack_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let ack = sender.send(&common::adt("LATE1")).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The listener saw the sender close the connection before it wrote the late ACK.
    assert_eq!(script.event(), Event::LateAckSent);
    assert_eq!(
        ack.text.as_deref(),
        Some("fresh"),
        "the ACK on the new connection"
    );
    let stats = sender.stats();
    assert_eq!(
        (stats.ack_timeouts, stats.retries, stats.connects),
        (1, 1, 2)
    );
    // The next message is answered by its own ACK.
    let ack = sender.send(&common::adt("LATE2")).unwrap();
    assert_eq!(ack.control_id, "LATE2");
    assert_eq!(sender.stats().skipped_frames, 0);
    drop(sender);
    let report = script.finish();
    let ids: Vec<String> = report.received.iter().map(|m| id_of(m)).collect();
    assert_eq!(ids, ["LATE1", "LATE1", "LATE2"]);
}

#[test]
fn ack_with_another_control_id_is_skipped() {
    let script = Script::start(|_, msg| {
        vec![
            Frame(ack_with("AA", "SOMETHING-ELSE", "stale")),
            Frame(ack_with("AR", "", "no id")),
            Ack(Disposition::Accept, Some("right")),
        ]
        .into_iter()
        .chain(std::iter::once(Frame(ack_with("AA", &id_of(msg), "after"))))
        .collect()
    });
    let mut sender = sender(&script.addr()).build().unwrap();
    let ack = sender.send(&common::adt("CORR1")).unwrap();
    assert_eq!(ack.control_id, "CORR1");
    assert_eq!(ack.text.as_deref(), Some("right"));
    assert_eq!(sender.stats().skipped_frames, 2);
    // The extra ACK for CORR1 arrives after the reply: it must not answer CORR2.
    let ack = sender.send(&common::adt("CORR2")).unwrap();
    assert_eq!(
        (ack.control_id.as_str(), ack.text.as_deref()),
        ("CORR2", Some("right"))
    );
    let stats = sender.stats();
    assert_eq!((stats.skipped_frames, stats.retries), (5, 0));
    drop(sender);
    script.finish();
}

#[test]
fn junk_and_acks_without_the_final_cr() {
    let script = Script::start(|_, msg| {
        let id = id_of(msg);
        let mut no_final_cr = ack_with("AA", &id, "no final CR");
        assert_eq!(no_final_cr.pop(), Some(b'\r'));
        vec![
            Raw(b"garbage outside any frame\r\n".to_vec()),
            Frame(b"not an HL7 message".to_vec()),
            Frame(COMMIT_ACK.to_vec()),
            Frame(b"MSH|^~\\&|broken".to_vec()),
            Frame(no_final_cr),
        ]
    });
    let mut sender = sender(&script.addr()).build().unwrap();
    for id in ["JUNK1", "JUNK2"] {
        let ack = sender.send(&common::adt(id)).unwrap();
        assert_eq!(ack.control_id, id);
        assert_eq!(ack.text.as_deref(), Some("no final CR"));
        assert!(!ack.raw.ends_with(b"\r"));
    }
    let stats = sender.stats();
    assert_eq!(
        (stats.skipped_frames, stats.retries, stats.connects),
        (6, 0, 1)
    );
    drop(sender);
    script.finish();
}

#[test]
fn lenient_framing_accepts_an_ack_ended_without_the_cr_of_the_end_sequence() {
    let script = Script::start(|_, msg| {
        let mut raw = vec![0x0B];
        raw.extend_from_slice(&ack_with("AA", &id_of(msg), "lenient"));
        raw.push(0x1C);
        // No 0x0D: the frame is complete once the next frame starts or the stream ends.
        vec![Raw(raw), Close]
    });
    let framing = Framing::default().lenient_end(true);
    let mut sender = sender(&script.addr()).framing(framing).build().unwrap();
    let ack = sender.send(&common::adt("LEN1")).unwrap();
    assert_eq!(
        (ack.control_id.as_str(), ack.text.as_deref()),
        ("LEN1", Some("lenient"))
    );
    assert_eq!(script.event(), Event::Closed);
    drop(sender);
    script.finish();
}

#[test]
fn negative_acks_are_results_not_errors() {
    let script = Script::start(|n, _| match n {
        0 => vec![Ack(Disposition::Error, Some("bad segment"))],
        _ => vec![Ack(Disposition::Reject, Some("not for us"))],
    });
    let mut sender = sender(&script.addr()).build().unwrap();
    let ack = sender.send(&common::adt("NAK1")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError);
    assert!(!ack.is_success());
    assert_eq!(ack.text.as_deref(), Some("bad segment"));
    assert_eq!(ack.errors, ["bad segment"]);
    assert_eq!(ack.control_id, "NAK1");
    assert!(ack.raw.starts_with(b"MSH|"));
    // AR is returned as it is unless resending on reject was asked for.
    let ack = sender.send(&common::adt("NAK2")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationReject);
    let stats = sender.stats();
    assert_eq!((stats.negative_acks, stats.acks, stats.retries), (2, 0, 0));
    drop(sender);
    assert_eq!(script.finish().received.len(), 2, "no resend");
}

#[test]
fn reject_is_resent_when_asked_and_returned_when_the_policy_is_exhausted() {
    let script = Script::start(|n, msg| match (id_of(msg).as_str(), n) {
        ("REJ1", 0) => vec![Ack(Disposition::Reject, Some("busy"))],
        ("REJ1", _) => vec![Ack(Disposition::Accept, None)],
        _ => vec![Ack(Disposition::Reject, Some("still busy"))],
    });
    let mut sender = sender(&script.addr())
        .resend_on_reject(true)
        .retry(quick_retry().max_attempts(Some(3)))
        .build()
        .unwrap();
    let ack = sender.send(&common::adt("REJ1")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert_eq!(sender.stats().retries, 1);
    let ack = sender.send(&common::adt("REJ2")).unwrap();
    assert_eq!(
        ack.code,
        AckCode::ApplicationReject,
        "the last reject is returned"
    );
    assert_eq!(ack.text.as_deref(), Some("still busy"));
    let stats = sender.stats();
    assert_eq!(
        (stats.retries, stats.negative_acks, stats.connects),
        (3, 4, 1)
    );
    drop(sender);
    let ids: Vec<String> = script.finish().received.iter().map(|m| id_of(m)).collect();
    assert_eq!(ids, ["REJ1", "REJ1", "REJ2", "REJ2", "REJ2"]);
}

#[test]
fn mllp2_commit_nak_makes_the_sender_send_again() {
    let script = Script::start(|n, _| match n {
        0 => vec![
            Frame(b"MSH|^~\\&|not a commit block".to_vec()),
            Frame(COMMIT_NAK.to_vec()),
        ],
        _ => vec![Frame(COMMIT_ACK.to_vec())],
    });
    let mut sender = sender(&script.addr())
        .reply(ReplyKind::Mllp2)
        .build()
        .unwrap();
    let ack = sender.send(&common::adt("R2-1")).unwrap();
    assert_eq!(
        (ack.kind, ack.code),
        (ReplyKind::Mllp2, AckCode::CommitAccept)
    );
    assert!(ack.is_success());
    let stats = sender.stats();
    assert_eq!(
        (stats.retries, stats.negative_acks, stats.skipped_frames),
        (1, 1, 1)
    );
    drop(sender);
    assert_eq!(script.finish().received.len(), 2);
}

#[test]
fn listener_down_at_first_is_reached_through_backoff() {
    // Find a free port, and leave it closed for a while.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (tx, rx) = mpsc::channel();
    let sending = thread::spawn({
        let addr = addr.clone();
        move || {
            let mut sender = sender(&addr)
                .retry(
                    RetryPolicy::default()
                        .initial_backoff(Duration::from_millis(50))
                        .max_backoff(Duration::from_millis(400))
                        .max_attempts(None),
                )
                .total_timeout(Some(Duration::from_secs(10)))
                .build()
                .unwrap();
            let _ = tx.send(());
            let result = sender.send(&common::adt("DOWN1"));
            (result, sender.stats())
        }
    });
    rx.recv_timeout(LIMIT).unwrap();
    // The one timed wait: the listener is down for a second.
    thread::sleep(Duration::from_secs(1));
    let listener = (0..100)
        .find_map(|_| {
            TcpListener::bind(("127.0.0.1", port))
                .map_err(|_| thread::sleep(Duration::from_millis(20)))
                .ok()
        })
        .expect("the port is free again");
    let script = Script::on(listener, |_, _| vec![Ack(Disposition::Accept, None)]);
    let (result, stats) = sending.join().unwrap();
    let ack = result.unwrap();
    assert_eq!(ack.control_id, "DOWN1");
    assert!(stats.retries >= 2, "{stats:?}");
    assert_eq!((stats.connects, stats.frames_written), (1, 1));
    let report = script.finish();
    assert_eq!(report.received.len(), 1);
}

#[test]
fn failures_say_whether_the_message_may_have_arrived() {
    // Nothing listens: never written.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nobody = sender(&format!("127.0.0.1:{port}"))
        .retry(quick_retry().max_attempts(Some(3)))
        .build()
        .unwrap();
    match nobody.send(&common::adt("F1")).unwrap_err() {
        Error::Delivery {
            outcome: Outcome::NotDelivered,
            attempts: 3,
            last,
        } => assert!(matches!(*last, Error::Io { .. }), "{last:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(nobody.stats().failures, 1);

    // Written, then the connection drops every time: unconfirmed.
    let script = Script::start(|_, _| vec![Hangup]);
    let mut sender = sender(&script.addr())
        .retry(quick_retry().max_attempts(Some(2)))
        .build()
        .unwrap();
    let err = sender.send(&common::adt("F2")).unwrap_err();
    assert_eq!(err.outcome(), Some(Outcome::Unconfirmed));
    assert!(
        matches!(&err, Error::Delivery { attempts: 2, last, .. } if matches!(**last, Error::Closed)),
        "{err:?}"
    );
    assert!(!sender.is_connected());

    // Written, no ACK in time, no retry: unconfirmed timeout.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let silent = Script::start(move |_, _| {
        // Hold the connection open without answering until the test is done.
        let _ = release_rx.recv_timeout(LIMIT);
        vec![Hangup]
    });
    let mut sender2 = self::sender(&silent.addr())
        .ack_timeout(Duration::from_millis(100))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = sender2.send(&common::adt("F3")).unwrap_err();
    assert!(err.is_timeout());
    assert!(
        matches!(
            &err,
            Error::Delivery { outcome: Outcome::Unconfirmed, attempts: 1, last }
                if matches!(**last, Error::Timeout(Timeout::Ack))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no ACK arrived"), "{err}");
    release_tx.send(()).unwrap();
    drop((sender, sender2));
    assert_eq!(script.finish().received.len(), 2);
    assert_eq!(silent.finish().received.len(), 1);
}

#[test]
fn invalid_messages_fail_before_any_io() {
    let script = Script::acking();
    let mut sender = sender(&script.addr())
        .charset(Charset::ASCII)
        .build()
        .unwrap();
    let no_id = common::adt("").into_bytes();
    assert!(matches!(
        sender.send_bytes(&no_id),
        Err(Error::Header(HeaderError::MissingField { field: 10 }))
    ));
    assert!(matches!(
        sender.send("PID|1||12345\r"),
        Err(Error::Header(HeaderError::NoHeader))
    ));
    let with_end = format!("{}NTE|1||a\x1c\rb\r", common::adt("END1"));
    assert!(matches!(
        sender.send(&with_end),
        Err(Error::Frame(FrameError::PayloadContainsEnd { .. }))
    ));
    let text = common::adt("CS1").replace("DOE^JANE", "DOÉ^JANE");
    match sender.send(&text) {
        Err(Error::Charset(mllp::CharsetError::Unmappable { at, ch })) => {
            assert_eq!(ch, 'É');
            assert_eq!(&text[at..at + 2], "É");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sender.stats().connects, 0, "nothing was connected");
    assert!(!sender.is_connected());
    drop(sender);
    assert_eq!(script.finish().connections, 0);
}

#[test]
fn text_is_encoded_to_the_charset_and_bytes_are_sent_unchanged() {
    let script = Script::acking();
    let mut sender = sender(&script.addr())
        .charset(Charset::ISO_8859_1)
        .build()
        .unwrap();
    let text = common::adt("ENC1").replace("DOE^JANE", "MÜLLER^JANE");
    sender.send(&text).unwrap();
    let raw = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|ENC2|P|2.5\rPID|1||1||\xFF\xFE\x80\r";
    sender.send_bytes(raw).unwrap();
    let batch = "BHS|^~\\&|A|B|C|D|20260101||||BATCH7\rMSH|^~\\&|A|B|C|D|20260101||ADT^A01|B1|P|2.5\rBTS|1\r";
    assert_eq!(sender.send(batch).unwrap().control_id, "BATCH7");
    drop(sender);
    let report = script.finish();
    assert!(report.received[0].windows(7).any(|w| w == b"M\xDCLLER^"));
    assert_eq!(report.received[1], raw);
    assert_eq!(report.received[2], batch.as_bytes());
}

#[test]
fn builder_rejects_invalid_settings_without_connecting() {
    let cases: Vec<(&str, SenderBuilder)> = vec![
        ("address is empty", Sender::builder("")),
        ("port is missing", Sender::builder("localhost")),
        ("port is not a number", Sender::builder("localhost:http")),
        ("bracket", Sender::builder("[::1")),
        ("bracket", Sender::builder("[::1:2575")),
        ("bracket", Sender::builder("::1:2575")),
        ("bracket", Sender::builder("::1]:2575")),
        ("not an IPv6 address", Sender::builder("[localhost]:2575")),
        (
            "connect timeout",
            Sender::builder("localhost:2575").connect_timeout(Duration::ZERO),
        ),
        (
            "ACK timeout",
            Sender::builder("localhost:2575").ack_timeout(Duration::ZERO),
        ),
        (
            "write timeout",
            Sender::builder("localhost:2575").write_timeout(Duration::ZERO),
        ),
        (
            "at least 1 attempt",
            Sender::builder("localhost:2575").retry(RetryPolicy::default().max_attempts(Some(0))),
        ),
    ];
    for (words, builder) in cases {
        match builder.build() {
            Err(e @ Error::Config(_)) => assert!(e.to_string().contains(words), "{e}"),
            other => panic!("{words}: {other:?}"),
        }
    }
    // A name that does not resolve is only looked up when sending.
    let s = Sender::builder("no-such-host.invalid:2575")
        .build()
        .unwrap();
    assert_eq!(s.addr(), "no-such-host.invalid:2575");
    assert_eq!(s.peer_addr(), None);
    Sender::builder("[::1]:2575").build().unwrap();
    Sender::builder("[fe80::1%eth0]:2575").build().unwrap();
}

#[test]
fn close_then_send_connects_again() {
    let script = Script::acking();
    let mut sender = sender(&script.addr()).build().unwrap();
    sender.send(&common::adt("C1")).unwrap();
    sender.close();
    assert!(!sender.is_connected());
    assert_eq!(sender.peer_addr(), None);
    sender.send(&common::adt("C2")).unwrap();
    let stats = sender.stats();
    assert_eq!((stats.connects, stats.reconnects, stats.retries), (2, 0, 0));
    drop(sender);
    assert_eq!(script.finish().connections, 2);
}

/// Every log record of this test binary, as "LEVEL message".
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LOGS.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

#[test]
fn logs_name_the_peer_and_control_id_but_never_the_body() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    let script = Script::start(|n, _| match n {
        0 => vec![Hangup],
        _ => vec![
            Frame(ack_with("AA", "OTHER-ID", "")),
            Ack(Disposition::Error, Some("no")),
        ],
    });
    let peer = script.addr();
    let mut sender = sender(&peer).build().unwrap();
    let body = common::adt("LOG1");
    let ack = sender.send(&body).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError);
    drop(sender);
    script.finish();

    let logs = LOGS.lock().unwrap().clone();
    let has = |level: &str, words: &[&str]| {
        logs.iter()
            .any(|l| l.starts_with(level) && words.iter().all(|w| l.contains(w)))
    };
    assert!(has("INFO", &["connected to", &peer]), "{logs:#?}");
    assert!(
        has(
            "WARN",
            &["closed the connection before acknowledging message LOG1"]
        ),
        "{logs:#?}"
    );
    assert!(
        has("WARN", &["attempt 1", "LOG1", "trying again"]),
        "{logs:#?}"
    );
    assert!(has("INFO", &["reconnected to", &peer]), "{logs:#?}");
    assert!(has("WARN", &["OTHER-ID", "LOG1"]), "{logs:#?}");
    assert!(
        has("WARN", &[&peer, "answered message LOG1 with AE"]),
        "{logs:#?}"
    );
    // No record of any test in this binary shows message contents.
    for line in &logs {
        assert!(
            !line.contains("DOE^JANE") && !line.contains("PID|"),
            "{line}"
        );
    }
}
