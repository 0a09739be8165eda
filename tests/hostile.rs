//! Hostile peers against a running listener: the corpus's malformed files, 10,000 seeded
//! random byte streams, oversized frames, frames without an end or a start, empty frames,
//! non-HL7 payloads, invalid UTF-8, a TLS ClientHello on a plaintext port, plaintext on a TLS
//! port, slow writers, a peer that never reads its ACKs, and 500 idle connections.
//!
//! After each attack a long-lived client and a fresh one must each get the right `AA` within
//! [`ROUND_TRIP`], no listener thread may have panicked, and the process's resident memory
//! must stay within [`MEMORY_BOUND`] of what it was before the first attack.

use mllp_testkit as common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use common::{adt, eventually, Rng};
use mllp::charset::Malformed;
use mllp::hl7::{Ack, AckCode};
use mllp::{Connection, Framing, Listener, ListenerStats, Message, Response, RunningListener};

/// Read and write timeout of every test socket.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The bound on a normal client's round trip after an attack: a liveness bound (a port taken
/// down answers in seconds or never), loose enough for a CI machine whose two CPUs also run
/// the broker tests' Erlang VMs (probes of 200-500 ms were seen there under load, before any
/// attack); the worst probe is printed.
const ROUND_TRIP: Duration = Duration::from_secs(1);
/// The bound on the growth of resident memory over the whole attack sequence.
const MEMORY_BOUND: u64 = 64 << 20;
/// The listener's maximum message size.
const MAX_MESSAGE: usize = 64 * 1024;
/// The listener's frame timeout.
const FRAME_TIMEOUT: Duration = Duration::from_secs(2);
/// The listener's ACK write timeout.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections opened at once.
const IDLE: usize = 500;

/// Panics on the listener's threads (named `mllp-…`), counted by a panic hook.
static LISTENER_PANICS: AtomicU64 = AtomicU64::new(0);

fn count_listener_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if thread::current()
                .name()
                .is_some_and(|n| n.starts_with("mllp-"))
            {
                LISTENER_PANICS.fetch_add(1, Ordering::Relaxed);
            }
            previous(info);
        }));
    });
}

fn client(addr: SocketAddr) -> Connection<TcpStream> {
    Connection::new(common::tcp(addr, IO_TIMEOUT), Framing::default())
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    Framing::default().encode_into(payload, &mut out);
    out
}

/// Reads replies until the ACK for `id`; every frame before it must be an acknowledgement
/// too. Returns the ACK and how many other replies came first.
fn ack_for(conn: &mut Connection<TcpStream>, id: &str) -> (Ack, usize) {
    let mut others = 0;
    loop {
        let frame = conn
            .read_frame()
            .unwrap_or_else(|e| panic!("waiting for the ACK of {id}: {e}"))
            .unwrap_or_else(|| panic!("closed before the ACK of {id}"));
        let ack = Ack::parse(frame)
            .unwrap_or_else(|e| panic!("a reply that is not an ACK ({e}): {frame:?}"));
        if ack.control_id == id {
            return (ack, others);
        }
        others += 1;
        assert!(others < 100_000, "no ACK for {id}");
    }
}

/// One message on `conn`, answered `AA` with MSA-2 = `id`; returns the round-trip time.
fn probe_on(conn: &mut Connection<TcpStream>, id: &str) -> Duration {
    let started = Instant::now();
    conn.write_frame(adt(id).as_bytes()).unwrap();
    let (ack, _) = ack_for(conn, id);
    let elapsed = started.elapsed();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationAccept, id)
    );
    elapsed
}

/// The listener under attack, its long-lived normal client, and the baseline measures.
struct Target {
    running: RunningListener,
    addr: SocketAddr,
    normal: Connection<TcpStream>,
    probes: u64,
    rss_before: Option<u64>,
    rss_peak: u64,
    worst: Duration,
}

impl Target {
    fn start() -> Target {
        count_listener_panics();
        let running = Listener::builder("127.0.0.1:0")
            .max_connections(IDLE + 64)
            .max_message_size(MAX_MESSAGE)
            .frame_timeout(Some(FRAME_TIMEOUT))
            .write_timeout(Some(WRITE_TIMEOUT))
            .malformed(Malformed::Reject)
            .bind()
            .unwrap()
            .spawn(|_: &Message<'_>| Response::accept())
            .unwrap();
        let addr = running.local_addr();
        let mut target = Target {
            normal: client(addr),
            running,
            addr,
            probes: 0,
            rss_before: None,
            rss_peak: 0,
            worst: Duration::ZERO,
        };
        target.probe("start");
        target.rss_before = common::rss_bytes();
        target
    }

    fn stats(&self) -> ListenerStats {
        self.running.stats()
    }

    /// The checks made after every attack.
    fn probe(&mut self, attack: &str) {
        for fresh in [false, true] {
            self.probes += 1;
            let id = format!("PROBE{}", self.probes);
            let took = if fresh {
                probe_on(&mut client(self.addr), &id)
            } else {
                probe_on(&mut self.normal, &id)
            };
            assert!(
                took < ROUND_TRIP,
                "after {attack}: a {} client waited {took:?}",
                if fresh { "new" } else { "connected" }
            );
            self.worst = self.worst.max(took);
        }
        assert_eq!(
            LISTENER_PANICS.load(Ordering::Relaxed),
            0,
            "a listener thread panicked during {attack}"
        );
        if let (Some(before), Some(now)) = (self.rss_before, common::rss_bytes()) {
            let growth = now.saturating_sub(before);
            self.rss_peak = self.rss_peak.max(growth);
            assert!(
                growth < MEMORY_BOUND,
                "after {attack}: resident memory grew by {} MiB",
                growth >> 20
            );
        }
    }
}

/// Every file of the corpus's `malformed/`: framed, each on its own connection followed by a
/// normal message on the same connection; then all of them unframed on one connection.
fn malformed_corpus(t: &mut Target) {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let files = common::hl7_files(&dir.join("malformed"));
    assert!(!files.is_empty(), "no malformed corpus files");
    for (i, (name, bytes)) in files.iter().enumerate() {
        let mut conn = client(t.addr);
        let mut payload = bytes.clone();
        // A file holding the end sequence would be two frames: still hostile, still fine.
        payload.extend_from_slice(&framed(adt(&format!("AFTER{i}")).as_bytes()));
        conn.get_mut().write_all(b"\x0b").unwrap();
        conn.get_mut().write_all(&payload).unwrap();
        let (ack, _) = ack_for(&mut conn, &format!("AFTER{i}"));
        assert_eq!(ack.code, AckCode::ApplicationAccept, "{name}");
    }
    let mut raw = client(t.addr);
    for (_, bytes) in &files {
        raw.get_mut().write_all(bytes).unwrap();
    }
    probe_on(&mut raw, "RAWEND");
    t.probe("the malformed corpus");
}

/// One random byte stream, biased towards the bytes and texts that drive the decoder and the
/// header parser.
fn random_stream(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(300);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        match rng.below(20) {
            0 => out.push(0x0b),
            1 => out.push(0x1c),
            2 => out.push(b'\r'),
            3 => out.extend_from_slice(b"\x1c\r"),
            4 => out.extend_from_slice(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|"),
            5 => out.extend_from_slice(b"|P|2.5\r"),
            6 => out.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]),
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

/// 10,000 seeded random streams over four long-lived connections, each connection checked
/// with a normal message every 50 streams.
fn random_streams(t: &mut Target) {
    const THREADS: u64 = 4;
    const STREAMS: usize = 2500;
    let before = t.stats();
    let addr = t.addr;
    let workers: Vec<_> = (0..THREADS)
        .map(|w| {
            thread::spawn(move || {
                let mut rng = Rng(0x00ba_d5ee_d000 + w);
                let mut conn = client(addr);
                let mut replies = 0;
                for i in 0..STREAMS {
                    conn.get_mut().write_all(&random_stream(&mut rng)).unwrap();
                    if i % 50 == 49 {
                        let id = format!("R{w}-{i}");
                        conn.write_frame(adt(&id).as_bytes()).unwrap();
                        let (ack, others) = ack_for(&mut conn, &id);
                        assert_eq!(ack.code, AckCode::ApplicationAccept, "{id}");
                        replies += others;
                    }
                }
                replies
            })
        })
        .collect();
    let replies: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let after = t.stats();
    eprintln!(
        "random streams: {} bytes skipped, {} unreadable frames, {} charset errors, {} messages, \
         {replies} replies to random frames",
        after.skipped_bytes - before.skipped_bytes,
        after.nak_unparseable - before.nak_unparseable,
        after.charset_errors - before.charset_errors,
        after.messages - before.messages,
    );
    assert!(after.skipped_bytes > before.skipped_bytes);
    assert!(after.nak_unparseable > before.nak_unparseable);
    t.probe("10,000 random streams");
}

/// A 1 MiB message (its NAK names it), 16 MiB in a frame, and a frame cut by a new start.
fn oversized(t: &mut Target) {
    let before = t.stats();
    let mut conn = client(t.addr);
    let mut big = adt("BIG");
    let filler = "NTE|1||".to_string() + &"x".repeat(1000) + "\r";
    while big.len() < 1 << 20 {
        big.push_str(&filler);
    }
    conn.write_frame(big.as_bytes()).unwrap();
    let (ack, _) = ack_for(&mut conn, "BIG");
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(
        ack.text.as_deref(),
        Some(format!("message exceeds {MAX_MESSAGE} bytes").as_str())
    );
    // 16 MiB of junk inside one frame: skipped as it arrives, never buffered.
    conn.get_mut().write_all(b"\x0b").unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..256 {
        conn.get_mut().write_all(&chunk).unwrap();
    }
    conn.get_mut().write_all(b"\x1c\r").unwrap();
    let reply = conn.read_frame().unwrap().expect("a NAK");
    assert_eq!(Ack::parse(reply).unwrap().code, AckCode::ApplicationReject);
    // An oversized frame abandoned for a new start.
    conn.get_mut().write_all(b"\x0b").unwrap();
    conn.get_mut().write_all(&chunk[..]).unwrap();
    conn.get_mut().write_all(&chunk[..]).unwrap();
    probe_on(&mut conn, "AFTERBIG");
    let after = t.stats();
    assert!(
        after.oversized_frames >= before.oversized_frames + 3,
        "{after:?}"
    );
    t.probe("oversized frames");
}

/// Frames without an end, ends without a start, empty frames, non-HL7 payloads.
fn broken_framing(t: &mut Target) {
    let before = t.stats();
    // A start and half a message, then the peer leaves.
    let mut gone = common::tcp(t.addr, IO_TIMEOUT);
    gone.write_all(b"\x0bMSH|^~\\&|A|B|C|D|2026||ADT^A01|GONE|P|2.5\rPID|")
        .unwrap();
    drop(gone);
    let mut conn = client(t.addr);
    // Ends without a start.
    for _ in 0..1000 {
        conn.get_mut().write_all(b"\x1c\r").unwrap();
    }
    probe_on(&mut conn, "ENDS");
    // Empty frames: each is a frame without a header, rejected.
    for _ in 0..100 {
        conn.get_mut().write_all(b"\x0b\x1c\r").unwrap();
    }
    for _ in 0..100 {
        let ack = Ack::parse(conn.read_frame().unwrap().unwrap()).unwrap();
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationReject, "")
        );
    }
    // Payloads that are not HL7.
    let not_hl7: [&[u8]; 7] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"{\"resourceType\":\"Patient\"}",
        &[0u8; 512],
        b"MSH",
        b"MSH|",
        b"MSH|^",
        b"\xef\xbb\xbf",
    ];
    for payload in not_hl7 {
        conn.write_frame(payload).unwrap();
        let ack = Ack::parse(conn.read_frame().unwrap().unwrap()).unwrap();
        assert_eq!(ack.code, AckCode::ApplicationReject, "{payload:?}");
    }
    probe_on(&mut conn, "NOTHL7");
    // Header fields ending with the first byte of the end sequence: echoed into the ACK, the
    // segment's CR would complete the sequence. The listener answers AR without echoing them.
    for message in [
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|ID\x1c|P|2.5\rPID|1\r",
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|V1|P|2.5\x1c|\rPID|1\r",
    ] {
        conn.write_frame(message.as_bytes()).unwrap();
        let ack = Ack::parse(conn.read_frame().unwrap().unwrap()).unwrap();
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationReject, ""),
            "{message:?}"
        );
    }
    probe_on(&mut conn, "ECHO");
    let after = t.stats();
    assert!(after.skipped_bytes >= before.skipped_bytes + 2000);
    assert!(after.nak_unparseable >= before.nak_unparseable + 107);
    // The probes, and the two messages with framing bytes in their header: their ACK could
    // not be framed, so they were rejected after the handler had them.
    assert_eq!(after.messages, before.messages + 5);
    t.probe("broken framing and non-HL7 payloads");
}

/// Bytes that are not UTF-8, with the listener rejecting them: `AE`, handler not called.
fn invalid_utf8(t: &mut Target) {
    let before = t.stats();
    let mut conn = client(t.addr);
    let mut message = adt("BADUTF8").into_bytes();
    message.extend_from_slice(b"NTE|1||caf\xe9 \xff\xfe \xc3\x28 \xed\xa0\x80\r");
    conn.write_frame(&message).unwrap();
    let (ack, _) = ack_for(&mut conn, "BADUTF8");
    assert_eq!(ack.code, AckCode::ApplicationError);
    let after = t.stats();
    assert_eq!(after.charset_errors, before.charset_errors + 1);
    assert_eq!(after.messages, before.messages);
    t.probe("invalid UTF-8");
}

/// A TLS client on the plaintext port: its handshake fails, nobody else notices.
#[cfg(feature = "tls")]
fn tls_client_hello_on_plaintext(t: &mut Target) {
    use mllp::{TlsClient, TlsClientConfig};
    let tls = TlsClient::new(&TlsClientConfig::new().danger_accept_invalid_certs(true)).unwrap();
    for _ in 0..5 {
        let result = tls.connect(
            "localhost",
            common::tcp(t.addr, IO_TIMEOUT),
            Duration::from_millis(500),
        );
        assert!(result.is_err(), "a TLS handshake with a plaintext listener");
    }
    t.probe("TLS ClientHellos on the plaintext port");
}

#[cfg(not(feature = "tls"))]
fn tls_client_hello_on_plaintext(_: &mut Target) {}

/// Twenty peers trickling a frame one byte every 100 ms (cut by the frame timeout), and one
/// that sends messages but never reads its ACKs (cut by the write timeout).
fn slow_peers(t: &mut Target) {
    let before = t.stats();
    let addr = t.addr;
    let slow: Vec<_> = (0..20)
        .map(|i| {
            thread::spawn(move || {
                let mut tcp = common::tcp(addr, IO_TIMEOUT);
                tcp.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let message = framed(adt(&format!("SLOW{i}")).as_bytes());
                let started = Instant::now();
                for &byte in &message {
                    if tcp.write_all(&[byte]).is_err() {
                        return started.elapsed();
                    }
                    let mut buf = [0u8; 64];
                    match tcp.read(&mut buf) {
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Ok(0) | Err(_) => return started.elapsed(),
                        Ok(_) => panic!("a slow peer got an answer"),
                    }
                }
                panic!("a slow peer was never cut");
            })
        })
        .collect();
    // The peer that never reads: it pipelines messages until its writes stall.
    let deaf = thread::spawn(move || {
        let mut tcp = common::tcp(addr, IO_TIMEOUT);
        tcp.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let message = framed(adt("DEAF").as_bytes());
        let mut sent = 0u64;
        while tcp.write_all(&message).is_ok() {
            sent += 1;
            assert!(sent < 10_000_000);
        }
        sent
    });
    // Normal traffic meanwhile, each round trip bounded.
    let until = Instant::now() + FRAME_TIMEOUT + Duration::from_millis(500);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let took = probe_on(&mut t.normal, &format!("MEANWHILE{n}"));
        assert!(took < ROUND_TRIP, "round trip {took:?} beside slow peers");
        thread::sleep(Duration::from_millis(20));
    }
    for s in slow {
        let cut_after = s.join().unwrap();
        assert!(cut_after < FRAME_TIMEOUT * 3, "cut after {cut_after:?}");
    }
    let deaf_sent = deaf.join().unwrap();
    eprintln!("slow peers cut; the deaf peer sent {deaf_sent} messages before its writes stalled");
    assert!(eventually(IO_TIMEOUT, || t.stats().frame_timeouts
        >= before.frame_timeouts + 20));
    t.probe("slow peers");
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Hundreds of connections that never send a byte.
fn idle_connections(t: &mut Target) {
    // Each costs three descriptors here: the client, the accepted socket, the listener's
    // clone of it for shutdown.
    let n = match open_files_limit() {
        Some(limit) if limit < 3 * IDLE + 200 => {
            let n = limit.saturating_sub(200) / 3;
            eprintln!("open files limited to {limit}: {n} idle connections instead of {IDLE}");
            n
        }
        _ => IDLE,
    };
    // Connections of earlier attacks (the deaf peer's, cut by the write timeout) are gone
    // first: only the normal client remains.
    assert!(eventually(IO_TIMEOUT, || t.stats().connections_open == 1));
    let open_before = 1;
    let idle: Vec<TcpStream> = (0..n).map(|_| common::tcp(t.addr, IO_TIMEOUT)).collect();
    assert!(
        eventually(IO_TIMEOUT, || t.stats().connections_open
            >= open_before + n as u64),
        "{:?}",
        t.stats()
    );
    t.probe(&format!("{n} idle connections"));
    drop(idle);
    assert!(eventually(IO_TIMEOUT, || t.stats().connections_open <= open_before + 1));
}

#[test]
fn hostile_peers_cannot_take_the_port_down() {
    let started = Instant::now();
    let mut t = Target::start();
    malformed_corpus(&mut t);
    random_streams(&mut t);
    oversized(&mut t);
    broken_framing(&mut t);
    invalid_utf8(&mut t);
    tls_client_hello_on_plaintext(&mut t);
    slow_peers(&mut t);
    idle_connections(&mut t);
    let stats = t.stats();
    eprintln!(
        "hostile peers survived in {:?}: worst normal round trip {:?}, peak resident memory \
         growth {} KiB; {stats:?}",
        started.elapsed(),
        t.worst,
        t.rss_peak >> 10
    );
    assert_eq!(stats.handler_panics, 0);
    let Target {
        running, normal, ..
    } = t;
    drop(normal);
    running.shutdown();
    running.join().unwrap();
    assert_eq!(LISTENER_PANICS.load(Ordering::Relaxed), 0);
}

/// Plaintext MLLP, random bytes and a silent peer on a TLS port: each loses only its own
/// connection; an established TLS session goes on.
#[cfg(feature = "tls")]
#[test]
fn plaintext_and_garbage_on_a_tls_port() {
    use mllp::TlsServerConfig;
    use mllp::{Identity, Stream, TlsClient, TlsClientConfig};
    count_listener_panics();
    let identity = Identity::from_pem_files(
        common::cert_path("server.pem"),
        common::cert_path("server.key"),
    )
    .unwrap();
    let running = Listener::builder("127.0.0.1:0")
        .tls(TlsServerConfig::new(identity))
        .handshake_timeout(Duration::from_millis(500))
        .bind()
        .unwrap()
        .spawn(|_: &Message<'_>| Response::accept())
        .unwrap();
    let addr = running.local_addr();
    let ca = std::fs::read(common::cert_path("ca.pem")).unwrap();
    let tls = TlsClient::new(&TlsClientConfig::new().add_root_pem(ca)).unwrap();
    let connect = || {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Connection::new(
            tls.connect("localhost", tcp, IO_TIMEOUT).unwrap(),
            Framing::default(),
        )
    };
    let mut session = connect();
    let round_trip = |conn: &mut Connection<Stream>, id: &str| {
        let started = Instant::now();
        conn.write_frame(adt(id).as_bytes()).unwrap();
        let ack = Ack::parse(conn.read_frame().unwrap().unwrap()).unwrap();
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationAccept, id)
        );
        let took = started.elapsed();
        assert!(took < ROUND_TRIP, "{id}: {took:?}");
    };
    round_trip(&mut session, "T0");
    let mut rng = Rng(0x715);
    let mut attacks = 0;
    for i in 0..20 {
        let mut plain = common::tcp(addr, IO_TIMEOUT);
        let bytes = if i % 2 == 0 {
            framed(adt(&format!("PLAIN{i}")).as_bytes())
        } else {
            rng.bytes(2048)
        };
        // The write may fail once the listener has given up on the handshake.
        let _ = plain.write_all(&bytes);
        let mut buf = [0u8; 512];
        if let Ok(n) = plain.read(&mut buf) {
            assert!(
                !buf[..n].contains(&0x0b),
                "plaintext answered: {:?}",
                &buf[..n]
            );
        }
        attacks += 1;
        round_trip(&mut session, &format!("T{}", i + 1));
    }
    // A silent peer is cut by the handshake timeout.
    let silent = common::tcp(addr, IO_TIMEOUT);
    assert!(eventually(IO_TIMEOUT, || running.stats().tls_failures > attacks));
    drop(silent);
    round_trip(&mut connect(), "FRESH");
    assert_eq!(running.stats().messages, 22);
    running.shutdown();
    running.join().unwrap();
    assert_eq!(LISTENER_PANICS.load(Ordering::Relaxed), 0);
}
