//! The connections of `mllp check sender`: one thread accepts, one per connection reads
//! frames with the library's decoder; both report to the script as [`Ev`]s.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::hl7::Header;
use mllp::Framing;

use super::wire::{Got, Wire};

/// A frame from the sender.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The connection (numbered from 1).
    pub conn: usize,
    /// When it arrived.
    pub at: Instant,
    /// The payload.
    pub payload: Vec<u8>,
    /// Bytes outside frames seen on the connection before this frame.
    pub skipped: usize,
    /// MSH-10 (empty when none).
    pub id: String,
}

/// What the connection threads report.
pub enum Ev {
    /// A connection, and a handle to write to it.
    Accepted(usize, TcpStream, Instant),
    /// A connection closed at once (the check times reconnections).
    Refused(Instant),
    /// A frame.
    Frame(Frame),
    /// A connection closed by the sender, with the bytes of a cut frame.
    Closed(usize, Instant, usize),
}

/// Accepts connections on `listener` (closing the first `refuse` ones at once) and reads each
/// on a thread of its own; everything is reported to `tx`.
pub fn spawn_acceptor(
    listener: TcpListener,
    tx: Sender<Ev>,
    framing: Framing,
    refuse: Arc<AtomicUsize>,
) {
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let at = Instant::now();
            if refuse
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                .is_ok()
            {
                let _ = stream.shutdown(Shutdown::Both);
                if tx.send(Ev::Refused(at)).is_err() {
                    return;
                }
                continue;
            }
            n += 1;
            let Ok(writer) = stream.try_clone() else {
                continue;
            };
            if tx.send(Ev::Accepted(n, writer, at)).is_err() {
                return;
            }
            spawn_reader(n, stream, framing, tx.clone());
        }
    });
}

fn spawn_reader(conn: usize, stream: TcpStream, framing: Framing, tx: Sender<Ev>) {
    std::thread::spawn(move || {
        let mut wire = Wire::new(stream.into(), framing);
        let mut reported = 0;
        loop {
            match wire.read(Duration::from_secs(3600)) {
                Got::Frame(payload) => {
                    let id = Header::parse(&payload)
                        .ok()
                        .and_then(|h| {
                            h.control_id()
                                .map(|c| String::from_utf8_lossy(c).into_owned())
                        })
                        .unwrap_or_default();
                    let f = Frame {
                        conn,
                        at: Instant::now(),
                        payload,
                        skipped: wire.skipped - reported,
                        id,
                    };
                    reported = wire.skipped;
                    if tx.send(Ev::Frame(f)).is_err() {
                        return;
                    }
                }
                Got::Closed { partial } => {
                    let _ = tx.send(Ev::Closed(conn, Instant::now(), partial));
                    return;
                }
                Got::Quiet => {}
            }
        }
    });
}
