//! The stream both sides read and write: plain TCP, or TLS over TCP, with a deadline.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::deadline::{Deadline, Dir, Sock};
use super::session::Conn;
use super::sys::{peek_now, write_vectored_nosignal, Peek};
use super::TlsPeer;

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
    Tls(Box<Conn>),
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
    /// A stream over an established TLS connection.
    pub(super) fn tls(conn: Conn) -> Stream {
        Stream {
            inner: Inner::Tls(Box::new(conn)),
        }
    }

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

    /// [`Stream::set_deadline`] for a caller that has just read the clock (`now`): the next
    /// read or write takes `within` as the time left instead of reading the clock again.
    pub(crate) fn set_deadline_since(&mut self, within: Option<Duration>, now: Instant) {
        self.sock_mut().deadline = within.map(|w| Deadline::since(w, now));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
