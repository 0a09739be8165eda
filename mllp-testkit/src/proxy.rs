//! A fault-injecting loopback TCP proxy for the integration tests.
//!
//! [`Proxy`] listens on `127.0.0.1:0` and relays every accepted connection to an upstream
//! address, one thread per direction. Each connection gets a [`Plan`] (a list of [`Fault`]s)
//! from a planner closure, seeded or scripted by the test: cut the connection after N bytes in
//! either direction, delay every chunk, swallow or duplicate a reply frame, or split writes into
//! 1-byte segments. The reply direction is read frame by frame (with [`mllp::Reader`]) so that
//! reply faults act on whole frames.
//!
//! Faults that actually fired are counted ([`Counts`]) and logged ([`Fired`]), so a test can
//! reason about where they hit. Every socket has timeouts; every thread is joined when the
//! proxy is dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mllp::{Framing, Reader};

/// Write timeout of the proxy's sockets, and the connect timeout upstream.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Read timeout of the proxy's sockets: how often a pump checks whether it must stop.
const POLL: Duration = Duration::from_millis(25);

/// A direction of the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to upstream: the messages.
    Up,
    /// Upstream to client: the replies.
    Down,
}

/// One fault in a connection's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close both sides once `bytes` bytes have been forwarded in direction `dir` (with 0: as
    /// soon as the connection is accepted, before anything is forwarded).
    CutAfter { dir: Dir, bytes: u64 },
    /// Wait `ms` milliseconds before forwarding each chunk in direction `dir`.
    Delay { dir: Dir, ms: u64 },
    /// Swallow reply frame number `nth` (from 0) of the connection.
    DropReply { nth: u64 },
    /// Forward reply frame number `nth` (from 0) twice.
    DuplicateReply { nth: u64 },
    /// Forward every byte in direction `dir` with a write of its own.
    OneByteWrites { dir: Dir },
}

impl Fault {
    /// Whether the fault ends the connection or makes the sender give up on a reply.
    pub fn is_disruptive(&self) -> bool {
        matches!(self, Fault::CutAfter { .. } | Fault::DropReply { .. })
    }
}

/// The faults applied to one connection.
pub type Plan = Vec<Fault>;

/// A fault that fired, with where it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// The connection's number (from 0, in accept order).
    pub conn: u64,
    pub fault: Fault,
    /// Bytes forwarded upstream on that connection when it fired.
    pub up_bytes: u64,
    /// Reply frames forwarded (or swallowed) on that connection before it fired.
    pub replies: u64,
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub connections: u64,
    pub cuts_up: u64,
    pub cuts_down: u64,
    pub dropped_replies: u64,
    pub duplicated_replies: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Counts {
    /// Faults that ended a connection or swallowed a reply.
    pub fn disruptive(&self) -> u64 {
        self.cuts_up + self.cuts_down + self.dropped_replies
    }
}

type Planner = Box<dyn FnMut(u64) -> Plan + Send>;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicU64,
    cuts_up: AtomicU64,
    cuts_down: AtomicU64,
    dropped_replies: AtomicU64,
    duplicated_replies: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    fired: Mutex<Vec<Fired>>,
}

/// A running proxy; dropping it closes every connection and joins every thread.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `upstream`; connection number `n` gets the plan `planner(n)`.
    pub fn start(upstream: SocketAddr, planner: impl FnMut(u64) -> Plan + Send + 'static) -> Proxy {
        let socket = TcpListener::bind("127.0.0.1:0").expect("the proxy binds");
        let addr = socket.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let shared2 = Arc::clone(&shared);
        let planner: Planner = Box::new(planner);
        let accept = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(socket, upstream, shared2, planner))
            .unwrap();
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A proxy whose connection `n` gets `plans[n]`, and no fault after the last plan.
    pub fn scripted(upstream: SocketAddr, plans: Vec<Plan>) -> Proxy {
        Proxy::start(upstream, move |n| {
            plans.get(n as usize).cloned().unwrap_or_default()
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            connections: get(&s.connections),
            cuts_up: get(&s.cuts_up),
            cuts_down: get(&s.cuts_down),
            dropped_replies: get(&s.dropped_replies),
            duplicated_replies: get(&s.duplicated_replies),
            bytes_up: get(&s.bytes_up),
            bytes_down: get(&s.bytes_down),
        }
    }

    /// Every fault that fired, in order.
    pub fn fired(&self) -> Vec<Fired> {
        self.shared.fired.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the accept loop; it sees the flag, stops every connection and joins them.
        let _ = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            accept.join().expect("the proxy's accept thread");
        }
    }
}

fn accept_loop(
    socket: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut planner: Planner,
) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        let Ok((client, _)) = socket.accept() else {
            continue;
        };
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        conns.retain(|c| !c.is_finished());
        let plan = planner(n);
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared2 = Arc::clone(&shared);
        let conn = n;
        conns.push(
            thread::Builder::new()
                .name(format!("proxy-conn-{n}"))
                .spawn(move || relay(&shared2, conn, client, upstream, &plan))
                .unwrap(),
        );
        n += 1;
    }
    for conn in conns {
        conn.join().expect("a proxy connection thread");
    }
}

/// The state of one relayed connection, shared by its two pumps.
struct Conn<'a> {
    shared: &'a Shared,
    n: u64,
    plan: &'a [Fault],
    /// Set when either side ended: both pumps stop.
    done: AtomicBool,
    up_bytes: AtomicU64,
    replies: AtomicU64,
    client: TcpStream,
    upstream: TcpStream,
}

impl Conn<'_> {
    fn stopping(&self) -> bool {
        self.done.load(Ordering::Acquire) || self.shared.stop.load(Ordering::Acquire)
    }

    /// Ends the connection on both sides.
    fn close(&self) {
        self.done.store(true, Ordering::Release);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    fn fire(&self, fault: Fault) {
        let counter = match fault {
            Fault::CutAfter { dir: Dir::Up, .. } => &self.shared.cuts_up,
            Fault::CutAfter { dir: Dir::Down, .. } => &self.shared.cuts_down,
            Fault::DropReply { .. } => &self.shared.dropped_replies,
            Fault::DuplicateReply { .. } => &self.shared.duplicated_replies,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.shared.fired.lock().unwrap().push(Fired {
            conn: self.n,
            fault,
            up_bytes: self.up_bytes.load(Ordering::Relaxed),
            replies: self.replies.load(Ordering::Relaxed),
        });
    }

    /// The writer for direction `dir`, with the plan's byte-level faults.
    fn out(&self, dir: Dir) -> io::Result<Out> {
        let mut out = Out {
            stream: match dir {
                Dir::Up => self.upstream.try_clone()?,
                Dir::Down => self.client.try_clone()?,
            },
            dir,
            cut: None,
            delay: None,
            one_byte: false,
            sent: 0,
        };
        for fault in self.plan {
            match *fault {
                Fault::CutAfter { dir: d, bytes } if d == dir => out.cut = Some(bytes),
                Fault::Delay { dir: d, ms } if d == dir => {
                    out.delay = Some(Duration::from_millis(ms));
                }
                Fault::OneByteWrites { dir: d } if d == dir => out.one_byte = true,
                _ => {}
            }
        }
        Ok(out)
    }
}

fn configure(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(POLL))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))
}

fn relay(shared: &Shared, n: u64, client: TcpStream, upstream: SocketAddr, plan: &[Fault]) {
    let Ok(up) = TcpStream::connect_timeout(&upstream, IO_TIMEOUT) else {
        return;
    };
    if configure(&client).and_then(|()| configure(&up)).is_err() {
        return;
    }
    let conn = Conn {
        shared,
        n,
        plan,
        done: AtomicBool::new(false),
        up_bytes: AtomicU64::new(0),
        replies: AtomicU64::new(0),
        client,
        upstream: up,
    };
    thread::scope(|s| {
        s.spawn(|| {
            pump_up(&conn);
            conn.close();
        });
        pump_down(&conn);
        conn.close();
    });
}

/// What a forward did.
enum Forwarded {
    /// Everything was written.
    All,
    /// The connection must end: a cut fired or the write failed.
    End,
}

/// The writing side of one direction, applying cuts, delays and 1-byte writes.
struct Out {
    stream: TcpStream,
    dir: Dir,
    cut: Option<u64>,
    delay: Option<Duration>,
    one_byte: bool,
    sent: u64,
}

impl Out {
    /// Whether the cut is due before anything more is written (a cut after 0 bytes).
    fn cut_now(&self) -> bool {
        self.cut.is_some_and(|limit| self.sent >= limit)
    }

    fn forward(&mut self, conn: &Conn<'_>, bytes: &[u8]) -> Forwarded {
        if let Some(delay) = self.delay {
            thread::sleep(delay);
        }
        let allowed = match self.cut {
            Some(limit) => bytes.len().min((limit - self.sent) as usize),
            None => bytes.len(),
        };
        let part = &bytes[..allowed];
        let written = if self.one_byte {
            part.chunks(1).try_for_each(|b| self.stream.write_all(b))
        } else {
            self.stream.write_all(part)
        };
        self.sent += part.len() as u64;
        let (total, counter) = match self.dir {
            Dir::Up => (Some(&conn.up_bytes), &conn.shared.bytes_up),
            Dir::Down => (None, &conn.shared.bytes_down),
        };
        counter.fetch_add(part.len() as u64, Ordering::Relaxed);
        if let Some(total) = total {
            total.fetch_add(part.len() as u64, Ordering::Relaxed);
        }
        if written.is_err() {
            return Forwarded::End;
        }
        if self.cut_now() {
            let bytes = self.cut.unwrap_or_default();
            conn.fire(Fault::CutAfter {
                dir: self.dir,
                bytes,
            });
            return Forwarded::End;
        }
        Forwarded::All
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Client to upstream, byte for byte.
fn pump_up(conn: &Conn<'_>) {
    let Ok(mut out) = conn.out(Dir::Up) else {
        return;
    };
    if out.cut_now() {
        conn.fire(Fault::CutAfter {
            dir: Dir::Up,
            bytes: 0,
        });
        return;
    }
    let Ok(mut client) = conn.client.try_clone() else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    while !conn.stopping() {
        match client.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if let Forwarded::End = out.forward(conn, &buf[..n]) {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Upstream to client, frame by frame, applying the reply faults.
fn pump_down(conn: &Conn<'_>) {
    let Ok(mut out) = conn.out(Dir::Down) else {
        return;
    };
    if out.cut_now() {
        conn.fire(Fault::CutAfter {
            dir: Dir::Down,
            bytes: 0,
        });
        return;
    }
    let Ok(upstream) = conn.upstream.try_clone() else {
        return;
    };
    let framing = Framing::default();
    let mut reader = Reader::new(upstream, framing);
    let mut encoded = Vec::new();
    while !conn.stopping() {
        let frame = match reader.read_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) if e.is_timeout() => continue,
            Err(_) => return,
        };
        let nth = conn.replies.load(Ordering::Relaxed);
        let mut copies = 1;
        for fault in conn.plan {
            match *fault {
                Fault::DropReply { nth: n } if n == nth => {
                    conn.fire(*fault);
                    copies = 0;
                }
                Fault::DuplicateReply { nth: n } if n == nth => {
                    conn.fire(*fault);
                    copies = 2;
                }
                _ => {}
            }
        }
        encoded.clear();
        for _ in 0..copies {
            framing.encode_into(frame, &mut encoded);
        }
        conn.replies.fetch_add(1, Ordering::Relaxed);
        if !encoded.is_empty() {
            if let Forwarded::End = out.forward(conn, &encoded) {
                return;
            }
        }
    }
}
