//! Peers that hold connection slots without completing frames (silent, trickling, junk) cannot
//! keep real senders out: when every slot is taken, a new connection takes the slot of the one
//! that has gone longest without completing a frame, past `evict_after`. The frame clock's
//! rules (junk outside a frame, white space between frames) are tested without sockets in
//! `tests/session.rs`.

use mllp_testkit as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::{Connection, Framing, Listener, ListenerBuilder, ListenerConfig, RunningListener};

/// The longest any single read, write or wait may take.
const LIMIT: Duration = Duration::from_secs(15);

fn builder() -> ListenerBuilder {
    Listener::builder("127.0.0.1:0").shutdown_grace(Duration::from_secs(2))
}

/// Sends one message on a new connection; the acknowledgement's text, or why there was none.
fn send(addr: SocketAddr, id: &str) -> Result<String, String> {
    let mut conn = Connection::new(common::tcp(addr, LIMIT), Framing::default());
    send_on(&mut conn, id)
}

fn send_on(conn: &mut Connection<TcpStream>, id: &str) -> Result<String, String> {
    conn.write_frame(common::adt(id).as_bytes())
        .map_err(|e| e.to_string())?;
    match conn.read_frame() {
        Ok(Some(ack)) => Ok(String::from_utf8_lossy(ack).into_owned()),
        Ok(None) => Err("closed without an acknowledgement".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until the listener serves `n` connections.
fn open_reach(running: &RunningListener, n: u64) {
    assert!(
        common::eventually(LIMIT, || running.stats().connections_open == n),
        "{:?}",
        running.stats()
    );
}

/// Whether the listener has closed `tcp` (end of stream or reset) within `LIMIT`.
fn closed_by_listener(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let end = Instant::now() + LIMIT;
    while Instant::now() < end {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// Peers that trickle one byte at a time (a started frame) until `stop`, on their own threads.
fn tricklers(
    addr: SocketAddr,
    n: usize,
    every: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let stop = Arc::clone(stop);
            let mut tcp = common::tcp(addr, LIMIT);
            std::thread::spawn(move || {
                let _ = tcp.write_all(b"\x0bMSH|");
                let end = Instant::now() + LIMIT;
                // Bounded: stops when told, when the listener closes it, or after LIMIT.
                while !stop.load(Ordering::Acquire) && Instant::now() < end {
                    if tcp.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            })
        })
        .collect()
}

/// A threshold short enough that no test waits for it: the thresholds themselves (the default
/// of 5 s, none) are rules of the session, tested with time passed in (`tests/session.rs`);
/// what only sockets show is that an eviction frees a slot for the next connection.
const SHORT: Duration = Duration::from_millis(1);

/// Sends `id` on a new connection until it is acknowledged (a connection refused because no
/// slot was evictable yet is tried again), within [`LIMIT`]; the acknowledgement and how
/// long it took.
fn send_until_taken(addr: SocketAddr, id: &str) -> (String, Duration) {
    let started = Instant::now();
    loop {
        match send(addr, id) {
            Ok(ack) => return (ack, started.elapsed()),
            Err(e) => assert!(started.elapsed() < LIMIT, "no AA within {LIMIT:?}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_silent_sockets_do_not_keep_a_sender_out() {
    assert_eq!(
        ListenerConfig::default().evict_after,
        Some(mllp::DEFAULT_EVICT_AFTER)
    );
    let running = builder()
        .evict_after(Some(SHORT))
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let slots = mllp::DEFAULT_MAX_CONNECTIONS;
    let silent: Vec<TcpStream> = (0..slots).map(|_| common::tcp(addr, LIMIT)).collect();
    open_reach(&running, slots as u64);
    let (ack, took) = send_until_taken(addr, "S1");
    assert!(ack.contains("MSA|AA|S1"), "{ack}");
    eprintln!("AA after {took:?} with {slots} silent sockets holding every slot");
    let stats = running.stats();
    assert_eq!(stats.connections_evicted, 1, "{stats:?}");
    drop(silent);
}

#[test]
fn ten_trickling_peers_do_not_keep_a_sender_out() {
    let running = builder()
        .evict_after(Some(SHORT))
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let threads = tricklers(addr, 10, Duration::from_millis(250), &stop);
    open_reach(&running, 10);
    let (ack, took) = send_until_taken(addr, "T1");
    eprintln!("AA after {took:?} with 10 trickling peers");
    assert!(ack.contains("MSA|AA|T1"), "{ack}");
    assert!(running.stats().connections_evicted >= 1);
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_connection_completing_frames_is_not_evicted_before_a_silent_one() {
    let running = builder()
        .max_connections(2)
        .evict_after(Some(SHORT))
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    // The busy connection comes first, so it is the older of the two; it completes a frame
    // after the silent one connected, so the silent one has gone longest without one.
    let mut busy = Connection::new(common::tcp(addr, LIMIT), Framing::default());
    assert!(send_on(&mut busy, "B0").unwrap().contains("MSA|AA|B0"));
    let mut silent = common::tcp(addr, LIMIT);
    open_reach(&running, 2);
    assert!(send_on(&mut busy, "B1").unwrap().contains("MSA|AA|B1"));
    let (ack, _) = send_until_taken(addr, "NEW");
    assert!(ack.contains("MSA|AA|NEW"), "{ack}");
    assert!(
        closed_by_listener(&mut silent),
        "the silent one was evicted"
    );
    assert!(send_on(&mut busy, "BLAST")
        .unwrap()
        .contains("MSA|AA|BLAST"));
    assert_eq!(running.stats().connections_evicted, 1);
}

#[test]
fn evict_after_none_keeps_refusing() {
    let running = builder()
        .max_connections(1)
        .evict_after(None)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let addr = running.local_addr();
    let _silent = common::tcp(addr, LIMIT);
    open_reach(&running, 1);
    // The threshold rule itself (none: nobody is evicted, however long quiet) is tested with
    // time passed in beside the slot table.
    assert!(send(addr, "R1").is_err());
    let stats = running.stats();
    assert_eq!(
        (stats.connections_evicted, stats.connections_refused),
        (0, 1),
        "{stats:?}"
    );
    assert!(builder().evict_after(Some(Duration::ZERO)).bind().is_err());
}
