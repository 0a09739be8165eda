//! The sockets under the sender and the listener: TCP with deadlines, optionally TLS.
//!
//! * [`connect`] resolves `host:port`, tries every resolved address with a connect timeout and
//!   returns a [`TcpStream`].
//! * [`TlsClient`] (built once from a [`TlsClientConfig`]) and [`TlsServer`] (from a
//!   [`TlsServerConfig`]) run a TLS handshake over such a socket, bounded by a deadline.
//! * [`Stream`] is what both sides then read and write: plain TCP or TLS over TCP. It gives access
//!   to the socket underneath, so another thread can hold a clone and shut it down, and it can tell
//!   whether the peer closed an idle connection ([`Stream::peer_closed`]).
//!
//! TLS is provided by `native-tls` (OpenSSL on Linux, the platform libraries elsewhere) behind
//! the default feature `tls`. No `native-tls` type appears in this module's API. Without the
//! feature everything still compiles: [`Stream`] is TCP only, and building a [`TlsClient`] or a
//! [`TlsServer`] returns [`Error::Config`].
//!
//! # Client certificates
//! A client can present an identity ([`TlsClientConfig::identity`]) to servers that ask for one,
//! which is what mutual TLS needs on the client side. The server side is limited by
//! `native-tls`: its acceptor never asks the client for a certificate, so [`TlsServer`] can
//! neither require nor verify client certificates, and [`TlsPeer::certificate_der`] is normally
//! `None` on accepted connections. Put a TLS-terminating proxy in front of the listener when client
//! certificates must be enforced.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::debug;

use crate::error::{is_timeout_kind, Error, Phase, Result, Timeout};

/// The text of [`Error::Config`] when TLS is asked for in a build without the `tls` feature.
#[cfg(not(feature = "tls"))]
const NO_TLS: &str = "this build has no TLS support (feature `tls`)";

// ---------------------------------------------------------------------------------------------
// Connecting

/// Resolves `addr` (`host:port`) and connects to the first address that accepts.
///
/// Every resolved address is tried in order, each with its own `timeout` (so the whole call can
/// take up to `timeout` times the number of addresses). With `nodelay`, `TCP_NODELAY` is set on
/// the connected socket so a frame is sent at once instead of waiting for more data.
///
/// # Errors
/// * [`Error::Config`] when `addr` is not a `host:port` address or `timeout` is zero;
/// * [`Error::Io`] with [`Phase::Resolve`] when the name cannot be resolved or resolves to no
///   address;
/// * [`Error::Timeout`] with [`Timeout::Connect`] when the last address tried timed out;
/// * otherwise [`Error::Io`] with [`Phase::Connect`] holding the last address's error (for
///   example "connection refused"), or [`Phase::Configure`] if `TCP_NODELAY` cannot be set.
pub fn connect(addr: &str, timeout: Duration, nodelay: bool) -> Result<TcpStream> {
    let addrs = resolve(addr)?;
    connect_any(&addrs, timeout, nodelay)
}

/// Resolves `addr` (`host:port`) into socket addresses, in the resolver's order.
///
/// # Errors
/// [`Error::Config`] when `addr` is not a `host:port` address (missing or invalid port);
/// [`Error::Io`] with [`Phase::Resolve`] when the name cannot be resolved or resolves to nothing.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
        Ok(iter) => iter.collect(),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Err(Error::Config(format!(
                "{addr:?} is not a valid host:port address ({e})"
            )))
        }
        Err(e) => {
            return Err(Error::io(
                Phase::Resolve,
                io::Error::new(e.kind(), format!("cannot resolve {addr:?}: {e}")),
            ))
        }
    };
    if addrs.is_empty() {
        return Err(Error::io(
            Phase::Resolve,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{addr:?} resolved to no address"),
            ),
        ));
    }
    Ok(addrs)
}

/// Connects to the first of `addrs` that accepts, trying each in order with its own `timeout`.
///
/// This is [`connect`] without name resolution; see there for `nodelay` and the errors
/// (an empty `addrs` is an [`Error::Config`]).
pub fn connect_any(addrs: &[SocketAddr], timeout: Duration, nodelay: bool) -> Result<TcpStream> {
    if timeout.is_zero() {
        return Err(Error::Config(
            "the connect timeout must be greater than zero".into(),
        ));
    }
    let mut last = None;
    for addr in addrs {
        debug!("connecting to {addr}");
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => {
                if nodelay {
                    tcp.set_nodelay(true)
                        .map_err(|e| Error::io(Phase::Configure, e))?;
                }
                debug!("connected to {addr}");
                return Ok(tcp);
            }
            Err(e) => {
                debug!("connecting to {addr} failed: {e}");
                last = Some((addr, e));
            }
        }
    }
    match last {
        None => Err(Error::Config("there is no address to connect to".into())),
        Some((_, e)) if is_timeout_kind(e.kind()) => Err(Error::Timeout(Timeout::Connect)),
        Some((addr, e)) => Err(Error::io(
            Phase::Connect,
            io::Error::new(e.kind(), format!("{addr}: {e}")),
        )),
    }
}

/// The host part of a `host:port` address, without the brackets of an IPv6 literal.
///
/// This is the name a TLS client verifies the server certificate against:
/// `host_of("example.org:2575")` is `"example.org"`, `host_of("[::1]:2575")` is `"::1"`.
/// A string without a port is returned as it is.
pub fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host;
        }
    }
    match addr.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address without a port.
        Some((host, _)) if !host.contains(':') => host,
        _ => addr,
    }
}

// ---------------------------------------------------------------------------------------------
// Stream

/// A connected stream: plain TCP, or TLS over TCP.
///
/// Reads and writes go through TLS when there is TLS. The socket options (timeouts, shutdown)
/// always act on the TCP socket underneath, and so does the deadline
/// ([`Stream::set_deadline`]).
pub struct Stream {
    inner: Inner,
}

enum Inner {
    Tcp(Sock),
    Tls(Box<native::Conn>),
}

impl From<TcpStream> for Stream {
    /// A plain TCP stream.
    fn from(tcp: TcpStream) -> Stream {
        Stream {
            inner: Inner::Tcp(Sock::new(tcp)),
        }
    }
}

impl Stream {
    /// The TCP socket (under TLS, the socket the TLS records travel on).
    ///
    /// Reading or writing it directly would corrupt a TLS session: use it for socket options
    /// and addresses only.
    pub fn tcp(&self) -> &TcpStream {
        &self.sock().tcp
    }

    /// The socket adapter under TLS, or the plain socket's.
    fn sock(&self) -> &Sock {
        match &self.inner {
            Inner::Tcp(sock) => sock,
            Inner::Tls(conn) => conn.sock(),
        }
    }

    fn sock_mut(&mut self) -> &mut Sock {
        match &mut self.inner {
            Inner::Tcp(sock) => sock,
            Inner::Tls(conn) => conn.sock_mut(),
        }
    }

    /// A second handle to the TCP socket, e.g. for another thread to
    /// [`shutdown(Shutdown::Both)`](TcpStream::shutdown) it, which makes a blocked read on this
    /// stream return.
    pub fn try_clone_tcp(&self) -> io::Result<TcpStream> {
        self.tcp().try_clone()
    }

    /// Whether this stream is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// What is known about the TLS peer, or `None` for plain TCP.
    pub fn tls_peer(&self) -> Option<&TlsPeer> {
        match &self.inner {
            Inner::Tcp(_) => None,
            Inner::Tls(conn) => Some(conn.peer()),
        }
    }

    /// Sets the read timeout of the socket (`None`: reads block without limit).
    ///
    /// A read that times out fails with [`io::ErrorKind::WouldBlock`] or
    /// [`io::ErrorKind::TimedOut`], depending on the platform. A zero duration is an error.
    /// While a deadline is set ([`Stream::set_deadline`]), the next read sets the timeout to
    /// the time left again.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock().set_timeout(Dir::Read, timeout)
    }

    /// Sets the write timeout of the socket (`None`: writes block without limit).
    ///
    /// A zero duration is an error. While a deadline is set ([`Stream::set_deadline`]), the
    /// next write sets the timeout to the time left again.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock().set_timeout(Dir::Write, timeout)
    }

    /// Sets a deadline `within` from now for every read and write that follows, or removes
    /// it (`None`).
    ///
    /// The deadline is kept on the TCP socket, under TLS: before each system call that reads
    /// or writes the socket (under TLS, each one the TLS library makes, and one TLS read or
    /// write may make many while the peer trickles the bytes of a record), the socket's read
    /// or write timeout is set to the time left. That system call is saved while the timeout
    /// already set is within 1 ms (or `within / 16`, if less) of the time left. Once the
    /// deadline has passed, reads and writes fail with [`io::ErrorKind::TimedOut`] without
    /// touching the socket, and a socket timeout that ends at the deadline is reported with
    /// that kind too; a TLS connection is unusable after such an error. Reads and writes on a
    /// socket in non-blocking mode are not affected before the deadline.
    ///
    /// So a whole exchange of several reads or writes ends at the deadline, however the peer's
    /// bytes arrive, and plain TCP and TLS follow the same rule. [`Stream::peer_closed`] and
    /// [`Stream::shutdown`] ignore the deadline. Removing it leaves the socket timeouts as they
    /// were last set.
    pub fn set_deadline(&mut self, within: Option<Duration>) {
        self.sock_mut().deadline = within.map(Deadline::new);
    }

    /// Whether the deadline set with [`Stream::set_deadline`] has passed (`false` without a
    /// deadline).
    pub fn deadline_passed(&self) -> bool {
        self.sock().deadline.is_some_and(|d| d.passed())
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// Closes the connection in both directions.
    ///
    /// Under TLS a `close_notify` alert is sent first, best effort: it is skipped if it cannot be
    /// written at once, so this never blocks. A socket that is already disconnected is not an
    /// error.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.set_deadline(None);
        if let Inner::Tls(conn) = &mut self.inner {
            conn.close_notify();
        }
        match self.tcp().shutdown(Shutdown::Both) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    /// Whether the peer has closed this connection, judged without blocking.
    ///
    /// Meant for a connection that has been idle: call it before writing a new message, and
    /// reconnect when it returns `true` rather than write into a connection the peer has left.
    ///
    /// It peeks at the socket without blocking (the socket is back in blocking mode afterwards):
    /// * end of stream, or any socket error: `true`;
    /// * nothing to read: `false`;
    /// * plain TCP with bytes waiting: `false`. The bytes are unexpected on an idle MLLP
    ///   connection (a late ACK, for example); they are left in place for the next read, so
    ///   the caller sees them and decides;
    /// * TLS with records waiting: the records are processed. TLS 1.3 servers send session
    ///   tickets after the handshake, which are consumed silently (`false`); a `close_notify`
    ///   or a fatal alert means `true`; application data is kept for the next
    ///   [`read`](Read::read) (`false`, as for plain TCP).
    pub fn peer_closed(&mut self) -> bool {
        match &mut self.inner {
            Inner::Tcp(sock) => peek_now(&sock.tcp) == Peek::Closed,
            Inner::Tls(conn) => conn.peer_closed(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Tcp(sock) => sock.read(buf),
            Inner::Tls(conn) => conn.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Tcp(sock) => sock.write(buf),
            Inner::Tls(conn) => conn.write(buf),
        }
    }

    /// One gathering write on plain TCP: a large frame's start, payload and end leave in one
    /// system call instead of three (and, with `TCP_NODELAY`, without a one-byte segment
    /// first).
    ///
    /// It never raises `SIGPIPE` when the peer has closed (which would kill a C host that
    /// left the signal at its default): on Linux with glibc it is `sendmsg` with
    /// `MSG_NOSIGNAL` (std's `write_vectored` is a plain `writev`); on Apple systems std
    /// sets `SO_NOSIGPIPE` on every socket, so `writev` is safe; elsewhere the first
    /// non-empty buffer is written with std's `write` (`send` with `MSG_NOSIGNAL` where the
    /// system has it), and the caller's loop writes the rest.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Tcp(sock) => {
                sock.arm(Dir::Write)?;
                let result = write_vectored_nosignal(&mut sock.tcp, bufs);
                sock.check(result)
            }
            Inner::Tls(conn) => {
                let buf = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                conn.write(buf)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Tcp(sock) => sock.flush(),
            Inner::Tls(conn) => conn.flush(),
        }
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("tls", &self.is_tls())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The socket under the stream, with its deadline

/// How far the socket's timeout may differ from the time left before the deadline before it
/// is set again (at most; see [`Deadline::new`]).
const ARM_SLACK: Duration = Duration::from_millis(1);

/// A socket timeout not known to be set: [`Sock`]'s next read or write under a deadline sets
/// it.
const UNKNOWN: u64 = u64::MAX;

/// A direction of the socket, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

/// The end of the current exchange (see [`Stream::set_deadline`]).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    /// `None` when `within` is too long to represent: then the time left is always `within`.
    at: Option<Instant>,
    within: Duration,
    /// How far the socket timeout may be from the time left before it is set again.
    slack: Duration,
}

impl Deadline {
    fn new(within: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(within),
            within,
            slack: ARM_SLACK.min(within / 16),
        }
    }

    /// The time left, zero once the deadline has passed.
    fn left(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.within,
        }
    }

    fn passed(&self) -> bool {
        self.left().is_zero()
    }
}

/// The error of a read or write after the deadline.
fn deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the deadline has passed")
}

/// The TCP socket under a [`Stream`] (under TLS, what the TLS library reads and writes), which
/// enforces the stream's deadline on every system call: before each read or write the socket
/// timeout is set to the time left, unless the one set is within the deadline's slack of it.
pub(crate) struct Sock {
    tcp: TcpStream,
    deadline: Option<Deadline>,
    /// The read timeout known to be set on the socket, in nanoseconds, or [`UNKNOWN`]. Atomic
    /// (relaxed loads and stores) only so that [`Stream::set_read_timeout`] can take `&self`.
    read_armed: AtomicU64,
    /// The same for the write timeout.
    write_armed: AtomicU64,
}

impl Sock {
    fn new(tcp: TcpStream) -> Sock {
        Sock {
            tcp,
            deadline: None,
            read_armed: AtomicU64::new(UNKNOWN),
            write_armed: AtomicU64::new(UNKNOWN),
        }
    }

    fn armed(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Read => &self.read_armed,
            Dir::Write => &self.write_armed,
        }
    }

    /// Sets a socket timeout and remembers it.
    fn set_timeout(&self, dir: Dir, timeout: Option<Duration>) -> io::Result<()> {
        let armed = self.armed(dir);
        // Should the call fail, what the socket holds is not known.
        armed.store(UNKNOWN, Ordering::Relaxed);
        match dir {
            Dir::Read => self.tcp.set_read_timeout(timeout)?,
            Dir::Write => self.tcp.set_write_timeout(timeout)?,
        }
        let nanos = timeout.map_or(UNKNOWN, |t| u64::try_from(t.as_nanos()).unwrap_or(UNKNOWN));
        armed.store(nanos, Ordering::Relaxed);
        Ok(())
    }

    /// Before a read or write: under a deadline, sets the socket timeout to the time left (when
    /// the one set is not close to it already), or fails when no time is left.
    fn arm(&self, dir: Dir) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        let left = deadline.left();
        if left.is_zero() {
            return Err(deadline_passed());
        }
        let armed = self.armed(dir).load(Ordering::Relaxed);
        if armed == UNKNOWN || Duration::from_nanos(armed).abs_diff(left) > deadline.slack {
            self.set_timeout(dir, Some(left))?;
        }
        Ok(())
    }

    /// After a read or write: a socket timeout at the deadline becomes `TimedOut`, which the
    /// TLS library treats as fatal (a `WouldBlock` would ask to be called again).
    fn check<T>(&self, result: io::Result<T>) -> io::Result<T> {
        match result {
            Err(e) if is_timeout_kind(e.kind()) && self.deadline.is_some_and(|d| d.passed()) => {
                Err(deadline_passed())
            }
            other => other,
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(Dir::Read)?;
        let result = self.tcp.read(buf);
        self.check(result)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(Dir::Write)?;
        let result = self.tcp.write(buf);
        self.check(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl fmt::Debug for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sock")
            .field("tcp", &self.tcp)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// [`Stream::write_vectored`] on plain TCP: a gathering write that never raises `SIGPIPE`.
fn write_vectored_nosignal(tcp: &mut TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        sys::send_vectored(tcp, bufs)
    }
    #[cfg(target_vendor = "apple")]
    {
        tcp.write_vectored(bufs)
    }
    #[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple")))]
    {
        let buf = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        tcp.write(buf)
    }
}

/// What a non-blocking peek saw on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing to read.
    Idle,
    /// Bytes are waiting.
    Data,
    /// End of stream or a socket error.
    Closed,
}

/// Peeks at a socket without blocking and without consuming anything, whatever the socket's
/// blocking mode.
///
/// On Linux this is one `recv(MSG_PEEK | MSG_DONTWAIT)` call, which leaves the socket's mode
/// alone (so a clone of the socket in another thread is not disturbed). std offers no such
/// flag, and switching the socket to non-blocking mode and back costs two more system calls on
/// every message the sender sends (see BENCHMARKS.md); elsewhere that is what is done.
pub(crate) fn peek_now(tcp: &TcpStream) -> Peek {
    #[cfg(target_os = "linux")]
    {
        sys::peek_dontwait(tcp)
    }
    #[cfg(not(target_os = "linux"))]
    {
        if tcp.set_nonblocking(true).is_err() {
            return Peek::Closed;
        }
        let peek = peek(tcp);
        if tcp.set_nonblocking(false).is_err() {
            return Peek::Closed;
        }
        peek
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_int, c_void};

    use super::Peek;

    const MSG_PEEK: c_int = 0x02;
    const MSG_DONTWAIT: c_int = 0x40;
    #[cfg(target_env = "gnu")]
    const MSG_NOSIGNAL: c_int = 0x4000;

    /// glibc's `struct msghdr` (the lengths are `size_t` there; musl differs, so this is used
    /// only with glibc).
    #[cfg(target_env = "gnu")]
    #[repr(C)]
    struct MsgHdr {
        msg_name: *mut c_void,
        msg_namelen: u32,
        msg_iov: *const io::IoSlice<'static>,
        msg_iovlen: usize,
        msg_control: *mut c_void,
        msg_controllen: usize,
        msg_flags: c_int,
    }

    extern "C" {
        /// `recv(2)` from the C library std already links.
        fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
        /// `sendmsg(2)`, likewise.
        #[cfg(target_env = "gnu")]
        fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
    }

    /// The most buffers one `sendmsg` takes (`IOV_MAX` on Linux).
    #[cfg(target_env = "gnu")]
    const IOV_MAX: usize = 1024;

    /// `writev` without `SIGPIPE`: one `sendmsg(MSG_NOSIGNAL)`, so a peer that has closed gives
    /// `EPIPE` (an error), not a signal that kills the process.
    #[cfg(target_env = "gnu")]
    pub(super) fn send_vectored(tcp: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        let msg = MsgHdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: bufs.as_ptr().cast(),
            msg_iovlen: bufs.len(),
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        };
        // SAFETY: the descriptor belongs to `tcp`, borrowed for the whole call, so it stays
        // open. `IoSlice` is guaranteed ABI-compatible with `struct iovec` on Unix, and
        // `msg_iov` points at `msg_iovlen` (at most IOV_MAX) of them, borrowed for the call
        // and only read. There is no address and no control data (NULL with length 0), as
        // `sendmsg` on a connected socket allows. `MsgHdr` has glibc's layout.
        let n = unsafe { sendmsg(tcp.as_raw_fd(), &msg, MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub(super) fn peek_dontwait(tcp: &TcpStream) -> Peek {
        let mut byte = 0u8;
        loop {
            // SAFETY: the descriptor belongs to `tcp`, which is borrowed for the whole call, so
            // it stays open; the buffer is one writable byte and `len` is 1. MSG_PEEK leaves
            // the data in the socket and MSG_DONTWAIT makes this call alone non-blocking, so
            // neither the stream's contents nor its mode change.
            let n = unsafe {
                recv(
                    tcp.as_raw_fd(),
                    (&mut byte as *mut u8).cast::<c_void>(),
                    1,
                    MSG_PEEK | MSG_DONTWAIT,
                )
            };
            return match n {
                0 => Peek::Closed,
                n if n > 0 => Peek::Data,
                _ => match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => Peek::Idle,
                    _ => Peek::Closed,
                },
            };
        }
    }
}

/// Peeks at a socket that is already in non-blocking mode.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn peek(tcp: &TcpStream) -> Peek {
    let mut byte = [0u8; 1];
    loop {
        return match tcp.peek(&mut byte) {
            Ok(0) => Peek::Closed,
            Ok(_) => Peek::Data,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peek::Idle,
            Err(_) => Peek::Closed,
        };
    }
}

// ---------------------------------------------------------------------------------------------
// TLS settings

/// What is known about the TLS peer of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeer {
    certificate: Option<Vec<u8>>,
}

impl TlsPeer {
    /// The peer's certificate in DER form, if it presented one.
    ///
    /// A client always sees the server's certificate. A server normally sees none: the
    /// `native-tls` acceptor does not ask clients for certificates (see the
    /// [module documentation](self)).
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }
}

/// A certificate and its private key, presented to the peer.
///
/// The server identity of a [`TlsServerConfig`], or the client identity of a
/// [`TlsClientConfig`] for servers that ask for one. The `Debug` output never shows the key
/// or the password.
#[derive(Clone)]
pub enum Identity {
    /// PEM text: the certificate chain (leaf first, then intermediates) and the private key.
    Pem {
        /// The certificate chain, PEM (`-----BEGIN CERTIFICATE-----` blocks).
        cert: Vec<u8>,
        /// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Convert
        /// other key formats with `openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key`.
        key: Vec<u8>,
    },
    /// A PKCS#12 archive (`.p12` / `.pfx`) holding the certificate, the chain and the key.
    Pkcs12 {
        /// The archive's bytes.
        der: Vec<u8>,
        /// The archive's password (may be empty).
        password: String,
    },
}

impl Identity {
    /// Reads a PEM certificate chain and a PKCS#8 PEM private key from two files.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when a file cannot be read. The contents are checked
    /// when a [`TlsClient`] or [`TlsServer`] is built.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Identity> {
        Ok(Identity::Pem {
            cert: read_file(cert.as_ref())?,
            key: read_file(key.as_ref())?,
        })
    }

    /// Reads a PKCS#12 archive from a file.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when the file cannot be read. The contents and the
    /// password are checked when a [`TlsClient`] or [`TlsServer`] is built.
    pub fn from_pkcs12_file(
        path: impl AsRef<Path>,
        password: impl Into<String>,
    ) -> Result<Identity> {
        Ok(Identity::Pkcs12 {
            der: read_file(path.as_ref())?,
            password: password.into(),
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Pem { cert, .. } => f
                .debug_struct("Pem")
                .field("cert", &format_args!("{} bytes", cert.len()))
                .finish_non_exhaustive(),
            Identity::Pkcs12 { der, .. } => f
                .debug_struct("Pkcs12")
                .field("der", &format_args!("{} bytes", der.len()))
                .finish_non_exhaustive(),
        }
    }
}

/// Reads a whole file; the error names the file.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::io(
            Phase::File,
            io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        )
    })
}

/// TLS settings of a client (the sending side).
///
/// The server's certificate is verified against the system's trusted roots plus
/// [`root_pems`](Self::root_pems), and must be valid for the host name connected to (or
/// [`server_name`](Self::server_name)). TLS 1.2 is the oldest protocol version accepted.
/// Build a [`TlsClient`] from it once and reuse it for every connection.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsClientConfig {
    /// Extra trusted CA certificates, each a PEM text that may hold several certificates.
    /// Default: none (only the system's roots are trusted).
    pub root_pems: Vec<Vec<u8>>,
    /// The name the server certificate must be valid for, instead of the host connected to.
    /// Default: `None`.
    pub server_name: Option<String>,
    /// The certificate to present when the server asks for one (mutual TLS). Default: `None`.
    pub identity: Option<Identity>,
    /// Accept any server certificate: expired, self-signed, for another name. This removes
    /// the protection TLS gives against someone between client and server; a warning is logged
    /// on every connect. Default: `false`.
    pub danger_accept_invalid_certs: bool,
}

impl TlsClientConfig {
    /// The default settings: system roots, host name verification, no client identity.
    pub fn new() -> TlsClientConfig {
        TlsClientConfig::default()
    }

    /// Trusts the CA certificate(s) in `pem` in addition to the system's roots.
    pub fn add_root_pem(mut self, pem: Vec<u8>) -> TlsClientConfig {
        self.root_pems.push(pem);
        self
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` in addition to the system's roots.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when the file cannot be read. The contents are checked
    /// when the [`TlsClient`] is built.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsClientConfig> {
        let pem = read_file(path.as_ref())?;
        Ok(self.add_root_pem(pem))
    }

    /// Verifies the server certificate against `name` instead of the host connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsClientConfig {
        self.server_name = Some(name.into());
        self
    }

    /// Presents `identity` to servers that ask for a client certificate.
    pub fn identity(mut self, identity: Identity) -> TlsClientConfig {
        self.identity = Some(identity);
        self
    }

    /// Accepts any server certificate when `dangerous` is `true`; see the field of that name.
    pub fn danger_accept_invalid_certs(mut self, dangerous: bool) -> TlsClientConfig {
        self.danger_accept_invalid_certs = dangerous;
        self
    }
}

/// TLS settings of a server (the listening side).
///
/// TLS 1.2 is the oldest protocol version accepted. Client certificates are not requested (see
/// the [module documentation](self)). Build a [`TlsServer`] from it once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsServerConfig {
    /// The server's certificate and private key.
    pub identity: Identity,
}

impl TlsServerConfig {
    /// Settings presenting `identity` to clients.
    pub fn new(identity: Identity) -> TlsServerConfig {
        TlsServerConfig { identity }
    }
}

// ---------------------------------------------------------------------------------------------
// Handshakes

/// A TLS client, built once from a [`TlsClientConfig`]; cheap to clone and shareable between
/// threads.
#[derive(Clone)]
pub struct TlsClient {
    inner: native::Client,
}

impl TlsClient {
    /// Checks the settings and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] when a CA certificate or the identity cannot be read (not PEM, not PKCS#8,
    /// wrong PKCS#12 password); [`Error::Config`] in a build without the `tls` feature.
    /// A private key that does not match its certificate is not detected here: the handshakes
    /// fail.
    pub fn new(config: &TlsClientConfig) -> Result<TlsClient> {
        Ok(TlsClient {
            inner: native::Client::new(config)?,
        })
    }

    /// Runs the TLS handshake over `tcp` as a client, verifying the server certificate against
    /// `domain` (the host connected to, see [`host_of`]) unless the settings name another
    /// server name.
    ///
    /// The whole handshake must finish within `deadline`. The socket's read and write timeouts
    /// are used for that and restored before the stream is returned.
    ///
    /// # Errors
    /// * [`Error::Timeout`] with [`Timeout::Connect`] when the deadline passed;
    /// * [`Error::Tls`] when the handshake failed; the message says whether the server
    ///   certificate was not valid for the name, not signed by a trusted CA, or otherwise not
    ///   verifiable, and the source holds the TLS library's own text.
    pub fn connect(&self, domain: &str, tcp: TcpStream, deadline: Duration) -> Result<Stream> {
        let conn = self.inner.connect(domain, tcp, deadline)?;
        Ok(Stream {
            inner: Inner::Tls(Box::new(conn)),
        })
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

/// A TLS server, built once from a [`TlsServerConfig`]; cheap to clone and shareable between
/// threads.
#[derive(Clone)]
pub struct TlsServer {
    inner: native::Server,
}

impl TlsServer {
    /// Checks the identity and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] when the identity cannot be read (not PEM, not PKCS#8, wrong PKCS#12
    /// password); [`Error::Config`] in a build without the `tls` feature. A private key that
    /// does not match its certificate is not detected here: every handshake then fails with
    /// "no shared cipher".
    pub fn new(config: &TlsServerConfig) -> Result<TlsServer> {
        Ok(TlsServer {
            inner: native::Server::new(config)?,
        })
    }

    /// Runs the TLS handshake over an accepted `tcp` connection, within `deadline`.
    ///
    /// The socket's read and write timeouts are used for the deadline and restored before the
    /// stream is returned.
    ///
    /// # Errors
    /// [`Error::Timeout`] with [`Timeout::Connect`] when the deadline passed; [`Error::Tls`]
    /// when the handshake failed, for example because the client speaks plain TCP. Either way
    /// only this connection is lost: log it and go on accepting.
    pub fn accept(&self, tcp: TcpStream, deadline: Duration) -> Result<Stream> {
        let conn = self.inner.accept(tcp, deadline)?;
        Ok(Stream {
            inner: Inner::Tls(Box::new(conn)),
        })
    }
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
mod native;

/// Stand-ins for a build without TLS: the types exist but cannot be built.
#[cfg(not(feature = "tls"))]
mod native {
    use super::{Error, Result, Sock, TlsClientConfig, TlsPeer, TlsServerConfig, NO_TLS};
    use std::io;
    use std::net::TcpStream;
    use std::time::Duration;

    /// A TLS connection, which cannot exist in this build.
    pub(super) enum Conn {}

    #[allow(clippy::unused_self)]
    impl Conn {
        pub(super) fn sock(&self) -> &Sock {
            match *self {}
        }
        pub(super) fn sock_mut(&mut self) -> &mut Sock {
            match *self {}
        }
        pub(super) fn peer(&self) -> &TlsPeer {
            match *self {}
        }
        pub(super) fn peer_closed(&mut self) -> bool {
            match *self {}
        }
        pub(super) fn close_notify(&mut self) {
            match *self {}
        }
        pub(super) fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }
        pub(super) fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            match *self {}
        }
        pub(super) fn flush(&mut self) -> io::Result<()> {
            match *self {}
        }
    }

    #[derive(Clone)]
    pub(super) enum Client {}

    impl Client {
        pub(super) fn new(_: &TlsClientConfig) -> Result<Client> {
            Err(Error::Config(NO_TLS.into()))
        }
        pub(super) fn connect(&self, _: &str, _: TcpStream, _: Duration) -> Result<Conn> {
            match *self {}
        }
    }

    #[derive(Clone)]
    pub(super) enum Server {}

    impl Server {
        pub(super) fn new(_: &TlsServerConfig) -> Result<Server> {
            Err(Error::Config(NO_TLS.into()))
        }
        pub(super) fn accept(&self, _: TcpStream, _: Duration) -> Result<Conn> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("example.org:2575"), "example.org");
        assert_eq!(host_of("127.0.0.1:2575"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2575"), "::1");
        assert_eq!(host_of("example.org"), "example.org");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn resolve_rejects_addresses_without_port() {
        assert!(matches!(resolve("localhost"), Err(Error::Config(_))));
        assert!(matches!(resolve("localhost:99999"), Err(Error::Config(_))));
    }

    #[test]
    fn zero_timeout_is_a_config_error() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(matches!(
            connect_any(&[addr], Duration::ZERO, false),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            connect_any(&[], Duration::from_secs(1), false),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn stream_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Stream>();
    }

    #[test]
    fn a_deadline_ends_reads_and_writes_with_timed_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut stream = Stream::from(tcp);
        let mut buf = [0u8; 8];
        // No deadline: a byte waiting is read as usual.
        peer.write_all(b"a").unwrap();
        assert_eq!(stream.read(&mut buf).unwrap(), 1);
        assert!(!stream.deadline_passed());

        let started = std::time::Instant::now();
        stream.set_deadline(Some(Duration::from_millis(100)));
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(stream.deadline_passed());
        // After the deadline nothing reaches the socket, even with bytes waiting.
        peer.write_all(b"b").unwrap();
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = stream.write(b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");

        // A new deadline: the byte is there.
        stream.set_deadline(Some(Duration::from_secs(5)));
        assert_eq!(stream.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'b');
        stream.set_deadline(None);
        assert!(!stream.deadline_passed());
        stream.write_all(b"c").unwrap();
        peer.read_exact(&mut buf[..1]).unwrap();
        assert_eq!(buf[0], b'c');
    }

    #[test]
    fn identity_debug_hides_secrets() {
        let id = Identity::Pkcs12 {
            der: vec![1, 2, 3],
            password: "secret".into(),
        };
        let text = format!("{id:?}");
        assert!(!text.contains("secret"), "{text}");
        let id = Identity::Pem {
            cert: b"cert".to_vec(),
            key: b"KEYDATA".to_vec(),
        };
        let text = format!("{:?}", TlsClientConfig::new().identity(id));
        assert!(!text.contains("KEYDATA"), "{text}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_is_a_config_error_without_the_feature() {
        let e = TlsClient::new(&TlsClientConfig::new()).unwrap_err();
        assert!(e.to_string().contains("feature `tls`"), "{e}");
    }
}
