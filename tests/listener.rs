//! The listener over loopback: concurrency, connection limits, replacement of an idle
//! connection, slow, silent and broken peers, oversized messages, acknowledgement modes,
//! character sets, panicking handlers and shutdown.

use mllp_testkit as common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{adt, eventually};
use mllp::charset::{Charset, Malformed};
use mllp::hl7::{Ack, AckCode, AckMode, ReplyKind, COMMIT_ACK, COMMIT_NAK};
use mllp::{
    Connection, Error, Framing, Listener, ListenerBuilder, ListenerStats, Message, Overflow,
    Response, RunningListener,
};

/// Read and write timeout of every test socket.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The bound on a normal round trip while hostile peers are connected: far below the slow peer's life (cut after 1.5 s), so it shows the others were not held
/// up, and far above what a loaded machine adds to a round trip.
const ROUND_TRIP: Duration = Duration::from_secs(1);

fn builder() -> ListenerBuilder {
    Listener::builder("127.0.0.1:0")
}

fn client(addr: SocketAddr) -> Connection<TcpStream> {
    Connection::new(common::tcp(addr, IO_TIMEOUT), Framing::default())
}

/// Sends one message and returns the parsed acknowledgement.
fn round_trip(conn: &mut Connection<TcpStream>, message: &[u8]) -> Ack {
    conn.write_frame(message).unwrap();
    let frame = conn.read_frame().unwrap().expect("an acknowledgement");
    Ack::parse(frame).unwrap()
}

/// Sends one message and returns the raw acknowledgement frame.
fn raw_round_trip(conn: &mut Connection<TcpStream>, message: &[u8]) -> Vec<u8> {
    conn.write_frame(message).unwrap();
    conn.read_frame()
        .unwrap()
        .expect("an acknowledgement")
        .to_vec()
}

/// Whether the listener closed this connection: the next read ends the stream or fails.
fn closed_by_listener(conn: &mut Connection<TcpStream>) -> bool {
    match conn.read_frame() {
        Ok(None) => true,
        Ok(Some(_)) => false,
        Err(e) => !e.is_timeout(),
    }
}

fn assert_aa(ack: &Ack, control_id: &str) {
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    assert_eq!(ack.control_id, control_id);
}

/// Waits until the counters satisfy `cond`: an acknowledgement is counted just after it was
/// written, so the client may read it a moment before the counter moves.
fn stats_reach(running: &RunningListener, cond: impl Fn(&ListenerStats) -> bool) -> ListenerStats {
    let mut last = running.stats();
    let ok = eventually(IO_TIMEOUT, || {
        last = running.stats();
        cond(&last)
    });
    assert!(ok, "counters never reached the expected values: {last:?}");
    last
}

fn stop(running: RunningListener) {
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn concurrent_senders_each_message_handled_once_and_acked() {
    const SENDERS: usize = 32;
    const MESSAGES: usize = 250;
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let running = builder()
        .max_connections(SENDERS)
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let id = m.control_id().unwrap().to_string();
            *seen2.lock().unwrap().entry(id).or_default() += 1;
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr();
    let start = Arc::new(Barrier::new(SENDERS));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                let mut conn = client(addr);
                start.wait();
                for i in 0..MESSAGES {
                    let id = format!("S{s}M{i}");
                    let ack = round_trip(&mut conn, adt(&id).as_bytes());
                    assert_aa(&ack, &id);
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), SENDERS * MESSAGES);
    assert!(seen.values().all(|&n| n == 1));
    let stats = stats_reach(&running, |s| s.acks_aa == (SENDERS * MESSAGES) as u64);
    assert_eq!(stats.messages, (SENDERS * MESSAGES) as u64);
    assert_eq!(stats.connections_total, SENDERS as u64);
    stop(running);
}

#[test]
fn beyond_the_maximum_connections_are_refused() {
    let running = builder()
        .max_connections(2)
        .overflow(Overflow::Refuse)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let mut a = client(addr);
    let mut b = client(addr);
    assert_aa(&round_trip(&mut a, adt("A").as_bytes()), "A");
    assert_aa(&round_trip(&mut b, adt("B").as_bytes()), "B");
    let mut c = client(addr);
    assert!(closed_by_listener(&mut c), "the third connection is closed");
    assert_eq!(running.stats().connections_refused, 1);
    // A freed slot is available again.
    drop(a);
    assert!(eventually(IO_TIMEOUT, || running.stats().connections_open == 1));
    let mut d = client(addr);
    assert_aa(&round_trip(&mut d, adt("D").as_bytes()), "D");
    assert_aa(&round_trip(&mut b, adt("B2").as_bytes()), "B2");
    stop(running);
}

#[test]
fn beyond_the_maximum_connections_wait_in_the_backlog() {
    let running = builder()
        .max_connections(1)
        .overflow(Overflow::Backlog)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let mut a = client(addr);
    assert_aa(&round_trip(&mut a, adt("A").as_bytes()), "A");
    let mut b = client(addr);
    b.write_frame(adt("B").as_bytes()).unwrap();
    b.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let early = b.read_frame();
    assert!(
        matches!(&early, Err(e) if e.is_timeout()),
        "no answer while waiting: {early:?}"
    );
    assert_eq!(running.stats().connections_refused, 0);
    // The first connection leaves: the waiting one is served, its message answered.
    drop(a);
    b.get_ref().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let ack = Ack::parse(b.read_frame().unwrap().unwrap()).unwrap();
    assert_aa(&ack, "B");
    stop(running);
}

#[test]
fn single_connection_mode_replaces_an_idle_connection() {
    let running = builder()
        .max_connections(1)
        .replace_idle(true)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let mut old = client(addr);
    assert_aa(&round_trip(&mut old, adt("1").as_bytes()), "1");
    // The old connection is idle (say its sender died silently): a new one takes over at once.
    let started = Instant::now();
    let mut new = client(addr);
    assert_aa(&round_trip(&mut new, adt("2").as_bytes()), "2");
    // At once: well within the listener's one-second settle time for a connection that is
    // still finishing its last ACK (on a loaded machine that can take a moment).
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        closed_by_listener(&mut old),
        "the idle connection is closed"
    );
    assert_eq!(running.stats().connections_replaced, 1);

    // A connection in the middle of a frame is not replaced: the newcomer is refused.
    let message = adt("3");
    let (head, tail) = message.as_bytes().split_at(20);
    new.get_mut().write_all(b"\x0b").unwrap();
    new.get_mut().write_all(head).unwrap();
    assert!(eventually(IO_TIMEOUT, || {
        // Wait until the listener has read the partial frame.
        let mut probe = client(addr);
        closed_by_listener(&mut probe)
    }));
    assert!(running.stats().connections_refused >= 1);
    assert_eq!(running.stats().connections_replaced, 1);
    new.get_mut().write_all(tail).unwrap();
    new.get_mut().write_all(b"\x1c\r").unwrap();
    let ack = Ack::parse(new.read_frame().unwrap().unwrap()).unwrap();
    assert_aa(&ack, "3");
    stop(running);
}

#[test]
fn a_slow_peer_is_cut_by_the_frame_timeout_while_others_are_served() {
    let frame_timeout = Duration::from_secs(2);
    let running = builder()
        .frame_timeout(Some(frame_timeout))
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let (started_tx, started_rx) = mpsc::channel();
    let slow = thread::spawn(move || {
        let mut tcp = common::tcp(addr, IO_TIMEOUT);
        // One byte per second; the read timeout paces the writes and notices the close.
        tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let message = format!("\x0b{}\x1c\r", adt("SLOW"));
        let start = Instant::now();
        for (i, byte) in message.bytes().enumerate() {
            if tcp.write_all(&[byte]).is_err() {
                return start.elapsed();
            }
            if i == 0 {
                started_tx.send(()).unwrap();
            }
            let mut buf = [0u8; 64];
            match tcp.read(&mut buf) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => panic!("the slow peer got an answer"),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never cut");
        }
        panic!("the slow peer was never cut");
    });
    started_rx.recv_timeout(IO_TIMEOUT).unwrap();
    let mut normal = client(addr);
    let mut worst = Duration::ZERO;
    let mut n = 0;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        let id = format!("N{n}");
        let t = Instant::now();
        assert_aa(&round_trip(&mut normal, adt(&id).as_bytes()), &id);
        worst = worst.max(t.elapsed());
        n += 1;
        // Pace the normal sender so the test spans the slow peer's life.
        thread::sleep(Duration::from_millis(20));
    }
    let cut_after = slow.join().unwrap();
    assert!(
        cut_after >= Duration::from_millis(1500) && cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}"
    );
    eprintln!("slow peer cut after {cut_after:?}; worst of {n} normal round trips: {worst:?}");
    assert!(worst < ROUND_TRIP, "worst round trip {worst:?} over {n}");
    assert_eq!(running.stats().frame_timeouts, 1);
    stop(running);
}

#[test]
fn silent_connections_do_not_stop_a_normal_client() {
    const SILENT: usize = 200;
    let running = builder()
        .max_connections(SILENT + 8)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let before = common::rss_bytes();
    let silent: Vec<TcpStream> = (0..SILENT).map(|_| common::tcp(addr, IO_TIMEOUT)).collect();
    assert!(eventually(IO_TIMEOUT, || running.stats().connections_open
        == SILENT as u64));
    let mut normal = client(addr);
    let mut worst = Duration::ZERO;
    for i in 0..100 {
        let id = format!("N{i}");
        let t = Instant::now();
        assert_aa(&round_trip(&mut normal, adt(&id).as_bytes()), &id);
        worst = worst.max(t.elapsed());
    }
    eprintln!("worst of 100 round trips beside {SILENT} silent connections: {worst:?}");
    assert!(worst < ROUND_TRIP, "worst round trip {worst:?}");
    if let (Some(before), Some(after)) = (before, common::rss_bytes()) {
        let growth = after.saturating_sub(before);
        eprintln!("resident memory growth with {SILENT} silent connections: {growth} bytes");
        assert!(growth < 64 << 20, "grew by {growth} bytes");
    }
    drop(silent);
    assert!(eventually(IO_TIMEOUT, || running.stats().connections_open == 1));
    stop(running);
}

#[test]
fn an_oversized_message_is_rejected_and_the_connection_stays_up() {
    let running = builder()
        .max_message_size(1024)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let mut conn = client(running.local_addr());
    let mut big = adt("BIG");
    while big.len() < 4096 {
        big.push_str("NTE|1||padding padding padding padding padding padding\r");
    }
    let ack = round_trip(&mut conn, big.as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.control_id, "BIG");
    assert_eq!(ack.text.as_deref(), Some("message exceeds 1024 bytes"));
    assert_aa(&round_trip(&mut conn, adt("SMALL").as_bytes()), "SMALL");
    // Without a readable header the NAK cannot name the message.
    let junk = vec![b'x'; 2000];
    let ack = round_trip(&mut conn, &junk);
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.control_id, "");
    assert_aa(&round_trip(&mut conn, adt("AFTER").as_bytes()), "AFTER");
    let stats = running.stats();
    assert_eq!(stats.oversized_frames, 2);
    assert_eq!(stats.messages, 2);
    stop(running);
}

#[test]
fn garbage_and_half_frames_are_survived() {
    let running = builder().bind().unwrap().spawn(common::accept_all).unwrap();
    let addr = running.local_addr();
    let mut conn = client(addr);
    // Bytes outside any frame are skipped.
    conn.get_mut().write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_aa(&round_trip(&mut conn, adt("1").as_bytes()), "1");
    // A frame without an HL7 header: AR, handler not called.
    let ack = round_trip(&mut conn, b"hello, world");
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.control_id, "");
    // A header whose encoding characters are wrong (a real sample): AR naming its MSH-10.
    let ack = round_trip(
        &mut conn,
        b"MSH|^~\\\\&|A|B|C|D|2026||ADT^A01|BAD-2|T|2.6\rPID|1\r",
    );
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.control_id, "BAD-2");
    // A frame abandoned for a new one (start byte inside a frame): the new one counts.
    conn.get_mut().write_all(b"\x0bMSH|^~\\&|half").unwrap();
    assert_aa(&round_trip(&mut conn, adt("2").as_bytes()), "2");
    // Random bytes, then a valid frame.
    let mut rng = common::Rng(0x5eed);
    let noise: Vec<u8> = rng
        .bytes(4096)
        .into_iter()
        .filter(|&b| b != 0x0b && b != 0x1c)
        .collect();
    conn.get_mut().write_all(&noise).unwrap();
    assert_aa(&round_trip(&mut conn, adt("3").as_bytes()), "3");
    // A half frame, then the peer leaves.
    let mut half = common::tcp(addr, IO_TIMEOUT);
    half.write_all(b"\x0bMSH|^~\\&|A|B|C|D|2026||ADT^A01|HALF|P|2.5\rPID")
        .unwrap();
    drop(half);
    let mut other = client(addr);
    assert_aa(&round_trip(&mut other, adt("4").as_bytes()), "4");
    assert_aa(&round_trip(&mut conn, adt("5").as_bytes()), "5");
    let stats = running.stats();
    assert_eq!(stats.messages, 5);
    assert_eq!(stats.nak_unparseable, 2);
    assert!(stats.skipped_bytes >= 18 + noise.len() as u64);
    assert!(eventually(IO_TIMEOUT, || running.stats().connections_open == 2));
    stop(running);
}

#[test]
fn a_panicking_handler_gets_an_application_error() {
    let running = builder()
        .bind()
        .unwrap()
        .spawn(|m: &Message<'_>| {
            if m.control_id() == Some("PANIC") {
                panic!("handler failure (expected by the test)");
            }
            Response::accept()
        })
        .unwrap();
    let mut conn = client(running.local_addr());
    let ack = round_trip(&mut conn, adt("PANIC").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError);
    assert_eq!(ack.control_id, "PANIC");
    assert_eq!(ack.text.as_deref(), Some("application internal error"));
    assert_aa(&round_trip(&mut conn, adt("OK").as_bytes()), "OK");
    let mut other = client(running.local_addr());
    assert_aa(&round_trip(&mut other, adt("OK2").as_bytes()), "OK2");
    stats_reach(&running, |s| s.handler_panics == 1 && s.acks_ae == 1);
    stop(running);
}

#[test]
fn shutdown_lets_the_message_in_flight_finish() {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let entered_tx = Mutex::new(entered_tx);
    let handled = Arc::new(Mutex::new(Vec::new()));
    let handled2 = Arc::clone(&handled);
    let running = builder()
        .shutdown_grace(Duration::from_secs(5))
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            if m.control_id() == Some("INFLIGHT") {
                entered_tx.lock().unwrap().send(()).unwrap();
                release_rx.lock().unwrap().recv_timeout(IO_TIMEOUT).unwrap();
            }
            handled2
                .lock()
                .unwrap()
                .push(m.control_id().unwrap().to_string());
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr();
    let mut idle = client(addr);
    assert_aa(&round_trip(&mut idle, adt("IDLE").as_bytes()), "IDLE");
    let mut busy = client(addr);
    busy.write_frame(adt("INFLIGHT").as_bytes()).unwrap();
    entered_rx.recv_timeout(IO_TIMEOUT).unwrap();

    let handle = running.shutdown_handle();
    let started = Instant::now();
    let joiner = thread::spawn(move || {
        running.shutdown();
        running.join()
    });
    assert!(eventually(IO_TIMEOUT, || handle.is_shutting_down()));
    // The idle connection is closed; the busy one waits for its handler.
    assert!(closed_by_listener(&mut idle));
    release_tx.send(()).unwrap();
    let ack = Ack::parse(busy.read_frame().unwrap().unwrap()).unwrap();
    assert_aa(&ack, "INFLIGHT");
    assert!(closed_by_listener(&mut busy));
    joiner.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(*handled.lock().unwrap(), ["IDLE", "INFLIGHT"]);
    let stats = handle.stats();
    assert_eq!(stats.connections_open, 0);
    assert_eq!(stats.acks_aa, 2);
    // Nobody listens any more.
    let refused = TcpStream::connect_timeout(&addr, IO_TIMEOUT);
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn run_returns_after_shutdown() {
    let listener = builder().bind().unwrap();
    let handle = listener.shutdown_handle();
    let addr = listener.local_addr();
    assert_ne!(addr.port(), 0);
    let runner = thread::spawn(move || listener.run(common::accept_all));
    let mut conn = client(addr);
    assert_aa(&round_trip(&mut conn, adt("1").as_bytes()), "1");
    handle.shutdown();
    runner.join().unwrap().unwrap();
    assert!(closed_by_listener(&mut conn));
}

#[test]
fn acknowledgement_modes() {
    let msg_enhanced = adt("E1").replace("|P|2.5.1\r", "|P|2.5.1|||AL|NE\r");
    let msg_never = adt("E2").replace("|P|2.5.1\r", "|P|2.5.1|||NE|NE\r");

    // Auto: original or enhanced, following MSH-15/16.
    let running = builder()
        .ack_mode(AckMode::Auto)
        .bind()
        .unwrap()
        .spawn(|m: &Message<'_>| match m.control_id() {
            Some("REJ") => Response::reject("unsupported").error_code(200),
            Some("ERR") => Response::error("try later"),
            Some("CUSTOM") => Response::custom(b"MSH|^~\\&|X\rMSA|AA|CUSTOM\r".to_vec()),
            Some("BADCUSTOM") => Response::custom(b"MSA|AA|\x1c\r".to_vec()),
            _ => Response::accept_with("stored"),
        })
        .unwrap();
    let mut conn = client(running.local_addr());
    let ack = round_trip(&mut conn, adt("O1").as_bytes());
    assert_aa(&ack, "O1");
    assert_eq!(ack.text.as_deref(), Some("stored"));
    let ack = round_trip(&mut conn, msg_enhanced.as_bytes());
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::CommitAccept, "E1")
    );
    // MSH-15 NE: no acknowledgement at all; the next message is answered normally.
    conn.write_frame(msg_never.as_bytes()).unwrap();
    assert_aa(&round_trip(&mut conn, adt("O2").as_bytes()), "O2");
    let ack = round_trip(&mut conn, adt("REJ").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.text.as_deref(), Some("unsupported"));
    assert!(String::from_utf8_lossy(&ack.raw).contains("ERR|||200^"));
    let ack = round_trip(&mut conn, adt("ERR").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError);
    assert!(String::from_utf8_lossy(&ack.raw).contains("ERR|||207^"));
    let raw = raw_round_trip(&mut conn, adt("CUSTOM").as_bytes());
    assert_eq!(raw, b"MSH|^~\\&|X\rMSA|AA|CUSTOM\r");
    let ack = round_trip(&mut conn, adt("BADCUSTOM").as_bytes());
    assert_eq!(ack.code, AckCode::ApplicationError);
    stats_reach(&running, |s| {
        (s.acks_aa, s.acks_ca, s.acks_ar, s.acks_ae) == (2, 1, 1, 2)
            && (s.acks_suppressed, s.custom_acks) == (1, 1)
    });
    stop(running);

    // Original (the default): AA even when the message asks for enhanced mode.
    let running = builder().bind().unwrap().spawn(common::accept_all).unwrap();
    let mut conn = client(running.local_addr());
    assert_aa(&round_trip(&mut conn, msg_enhanced.as_bytes()), "E1");
    stop(running);

    // MLLP release 2: commit blocks.
    let running = builder()
        .reply(ReplyKind::Mllp2)
        .bind()
        .unwrap()
        .spawn(|m: &Message<'_>| match m.control_id() {
            Some("NO") => Response::error("no"),
            _ => Response::accept(),
        })
        .unwrap();
    let mut conn = client(running.local_addr());
    assert_eq!(raw_round_trip(&mut conn, adt("YES").as_bytes()), COMMIT_ACK);
    assert_eq!(raw_round_trip(&mut conn, adt("NO").as_bytes()), COMMIT_NAK);
    assert_eq!(raw_round_trip(&mut conn, b"not hl7"), COMMIT_NAK);
    stats_reach(&running, |s| (s.commit_acks, s.commit_naks) == (1, 2));
    stop(running);
}

#[test]
fn messages_are_decoded_to_utf8() {
    let seen: Arc<Mutex<Vec<(String, String, usize)>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let running = builder()
        .malformed(Malformed::Replace)
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            seen2.lock().unwrap().push((
                m.text().to_string(),
                m.charset().name().to_string(),
                m.replaced(),
            ));
            Response::accept()
        })
        .unwrap();
    let mut conn = client(running.local_addr());
    // Latin-1 declared in MSH-18.
    let mut latin1 =
        b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|L1|P|2.5||||||8859/1\rPID|1||||M\xfcller^J\xe9r\xf4me\r"
            .to_vec();
    let ack = round_trip(&mut conn, &latin1);
    assert_aa(&ack, "L1");
    assert!(ack.raw.ends_with(b"MSA|AA|L1\r"));
    // Malformed UTF-8 is replaced when Malformed::Replace is chosen (the default rejects).
    latin1 = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|U1|P|2.5\rPID|1||||M\xfcller\r".to_vec();
    assert_aa(&round_trip(&mut conn, &latin1), "U1");
    let seen_now = seen.lock().unwrap().clone();
    assert!(seen_now[0].0.contains("Müller^Jérôme"), "{seen_now:?}");
    assert_eq!(seen_now[0].1, "ISO-8859-1");
    assert!(seen_now[1].0.contains("M\u{fffd}ller"));
    assert_eq!(seen_now[1].2, 1);
    stop(running);

    // Under Malformed::Reject the handler is not called and the answer is AE.
    let running = builder()
        .malformed(Malformed::Reject)
        .charset(Charset::UTF_8)
        .bind()
        .unwrap()
        .spawn(|_: &Message<'_>| -> Response { panic!("not called") })
        .unwrap();
    let mut conn = client(running.local_addr());
    let ack = round_trip(&mut conn, &latin1);
    assert_eq!(ack.code, AckCode::ApplicationError);
    assert_eq!(ack.control_id, "U1");
    let stats = running.stats();
    assert_eq!((stats.charset_errors, stats.handler_panics), (1, 0));
    stop(running);
}

#[test]
fn the_message_view() {
    /// Connection id, peer address, TLS or not, raw bytes.
    type Seen = Vec<(u64, SocketAddr, bool, Vec<u8>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let running = builder()
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            assert_eq!(m.text().as_bytes(), m.raw());
            assert_eq!(m.header().message_type(), Some(&b"ADT^A01^ADT_A01"[..]));
            seen2.lock().unwrap().push((
                m.connection_id(),
                m.peer_addr(),
                m.tls_peer().is_some(),
                m.raw().to_vec(),
            ));
            Response::accept()
        })
        .unwrap();
    let mut a = client(running.local_addr());
    let mut b = client(running.local_addr());
    round_trip(&mut a, adt("1").as_bytes());
    round_trip(&mut a, adt("2").as_bytes());
    round_trip(&mut b, adt("3").as_bytes());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, seen[1].0);
    assert_ne!(seen[0].0, seen[2].0);
    assert_eq!(seen[0].1, a.get_ref().local_addr().unwrap());
    assert_eq!(seen[2].1, b.get_ref().local_addr().unwrap());
    assert!(!seen[0].2);
    assert_eq!(seen[0].3, adt("1").as_bytes());
    stop(running);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let running = builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let mut conn = client(running.local_addr());
    assert_aa(&round_trip(&mut conn, adt("1").as_bytes()), "1");
    let t = Instant::now();
    assert!(closed_by_listener(&mut conn));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(running.stats().idle_timeouts, 1);
    stop(running);
}

#[test]
fn invalid_settings_are_errors() {
    let config = |b: ListenerBuilder| matches!(b.bind(), Err(Error::Config(_)));
    assert!(config(builder().max_connections(0)));
    assert!(config(builder().frame_timeout(Some(Duration::ZERO))));
    assert!(config(builder().idle_timeout(Some(Duration::ZERO))));
    assert!(config(builder().handshake_timeout(Duration::ZERO)));
    assert!(config(builder().max_message_size(0)));
    assert!(config(builder().stack_size(1024)));
    assert!(config(builder().stack_size(usize::MAX / 2)));
    assert!(config(builder().stack_size(mllp::MAX_STACK_SIZE + 1)));
    assert!(config(Listener::builder("127.0.0.1")));
    assert!(config(Listener::builder("127.0.0.1:99999")));
    let taken = builder().bind().unwrap();
    let again = Listener::builder(taken.local_addr()).bind();
    assert!(matches!(again, Err(Error::Io { .. })), "{again:?}");
}

#[test]
fn listens_on_ipv6_loopback() {
    let Ok(listener) = Listener::builder("[::1]:0").bind() else {
        common::skip("no IPv6 loopback here");
        return;
    };
    let running = listener.spawn(common::accept_all).unwrap();
    let mut conn = client(running.local_addr());
    assert_aa(&round_trip(&mut conn, adt("V6").as_bytes()), "V6");
    stop(running);
}
