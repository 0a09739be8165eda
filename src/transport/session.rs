//! The seam between the crate and a TLS library: a [`TlsSession`] over a [`TlsSocket`], a
//! [`TlsAcceptor`] that makes one from an accepted socket, and a [`TlsConnector`] that makes
//! one from a connected socket.
//!
//! The built-in TLS (`native-tls`, feature `tls`) is one implementation; a crate of its own can
//! bring another (the workspace's `mllp-openssl` does, to request and verify client
//! certificates, and to report the protocol and cipher of every handshake). The crate keeps
//! the deadline, the socket timeouts, `close_notify` and [`Stream::peer_closed`] on its side of
//! the seam, so every TLS library behaves the same.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub use super::deadline::TlsSocket;
use super::deadline::{Deadline, Dir, Sock};
use super::sys::{peek_now, Peek};
use super::TlsPeer;
#[cfg(doc)]
use super::{Stream, TlsClient, TlsServer};
use crate::error::{Error, Phase, Result, Timeout};

/// An established TLS session over a [`TlsSocket`], as a TLS library gives it: `Read` and
/// `Write` move application data.
pub trait TlsSession: Read + Write + Send {
    /// The socket under the session.
    fn socket(&self) -> &TlsSocket;
    /// The socket under the session, mutable.
    fn socket_mut(&mut self) -> &mut TlsSocket;
    /// Sends `close_notify`. Called with the socket in non-blocking mode; errors are ignored.
    fn close_notify(&mut self);
    /// How many bytes of application data the library holds, already decrypted.
    fn buffered(&self) -> usize;
}

/// The server side of a TLS library: runs the handshake over an accepted socket.
///
/// The listener calls [`accept`](Self::accept) on the connection's own thread, before the
/// connection has a slot, with the socket's deadline set to the handshake timeout: the
/// implementation just reads and writes the socket. [`TlsServer`] (the built-in one) is an
/// implementation; a listener takes any through
/// [`ListenerBuilder::tls_acceptor`](crate::ListenerBuilder::tls_acceptor).
pub trait TlsAcceptor: Send + Sync {
    /// Runs the server handshake over `socket`, and returns the session and what is known of
    /// the client (its verified certificate and subject, the protocol and cipher agreed).
    ///
    /// # Errors
    /// [`Error::Tls`] saying why the handshake failed (the client speaks no TLS, its
    /// certificate was refused, ...). Only this connection is lost. A failure after the
    /// deadline passed is reported as [`Error::Timeout`] whatever the implementation returns.
    fn accept(&self, socket: TlsSocket) -> Result<(Box<dyn TlsSession>, TlsPeer)>;
}

/// The client side of a TLS library: runs the handshake over a connected socket.
///
/// A sender calls [`connect`](Self::connect) once the TCP connection is made, with the
/// socket's deadline set to what is left of the connect timeout: the implementation just reads
/// and writes the socket. [`TlsClient`] (the built-in one) is an implementation; a sender
/// takes any through [`SenderBuilder::tls_connector`](crate::SenderBuilder::tls_connector)
/// (and so does an [`Outbox`](crate::Outbox), through its
/// [`SenderConfig::tls_connector`](crate::SenderConfig::tls_connector)).
pub trait TlsConnector: Send + Sync {
    /// Runs the client handshake over `socket`, and returns the session and what is known of
    /// the server (its certificate, the subject verified, the protocol and cipher agreed).
    ///
    /// `host` is the host part of the address connected to, without the port or the brackets
    /// of an IPv6 address (`lab.example.org`, `10.0.0.5`, `::1`): the name or address the
    /// server certificate must be valid for, unless the implementation's settings name another
    /// (as [`TlsClientConfig::server_name`](crate::TlsClientConfig::server_name) does).
    ///
    /// # Errors
    /// [`Error::Tls`] saying why the handshake failed; of kind
    /// [`TlsErrorKind::Certificate`](crate::TlsErrorKind::Certificate) when the server
    /// certificate was refused (a sender then does not try again), as the kinds are documented.
    /// A failure after the deadline passed is reported as [`Error::Timeout`] whatever the
    /// implementation returns.
    fn connect(&self, host: &str, socket: TlsSocket) -> Result<(Box<dyn TlsSession>, TlsPeer)>;
}

impl fmt::Debug for dyn TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

/// An established TLS connection: a session of any TLS library, and what is known of the peer.
pub(super) struct Conn {
    session: Box<dyn TlsSession>,
    peer: TlsPeer,
    /// Application data read by [`Conn::peer_closed`], returned by the next read.
    unread: Vec<u8>,
}

/// Runs a handshake (`run`) over `tcp` within `deadline`, restoring the socket timeouts
/// afterwards.
pub(super) fn handshake(
    tcp: TcpStream,
    deadline: Duration,
    run: impl FnOnce(Sock) -> Result<(Box<dyn TlsSession>, TlsPeer)>,
) -> Result<Conn> {
    let read_timeout = tcp.read_timeout().map_err(configure)?;
    let write_timeout = tcp.write_timeout().map_err(configure)?;
    let mut sock = Sock::new(tcp);
    sock.deadline = Some(Deadline::new(deadline));
    let started = Instant::now();
    let (mut session, peer) = match run(sock) {
        Ok(done) => done,
        Err(Error::Tls(_)) if started.elapsed() >= deadline => {
            return Err(Error::Timeout(Timeout::Connect))
        }
        Err(e) => return Err(e),
    };
    let sock = session.socket_mut();
    sock.deadline = None;
    sock.set_timeout(Dir::Read, read_timeout)
        .map_err(configure)?;
    sock.set_timeout(Dir::Write, write_timeout)
        .map_err(configure)?;
    Ok(Conn {
        session,
        peer,
        unread: Vec::new(),
    })
}

fn configure(e: io::Error) -> Error {
    Error::io(Phase::Configure, e)
}

impl Conn {
    pub(super) fn sock(&self) -> &Sock {
        self.session.socket()
    }

    pub(super) fn sock_mut(&mut self) -> &mut Sock {
        self.session.socket_mut()
    }

    fn tcp(&self) -> &TcpStream {
        &self.sock().tcp
    }

    /// Runs `f` with the deadline put aside: for the non-blocking operations, which must work
    /// whether the deadline of the last exchange has passed or not.
    fn without_deadline<T>(&mut self, f: impl FnOnce(&mut Conn) -> T) -> T {
        let deadline = self.sock_mut().deadline.take();
        let result = f(self);
        self.sock_mut().deadline = deadline;
        result
    }

    pub(super) fn peer(&self) -> &TlsPeer {
        &self.peer
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unread.is_empty() {
            return self.session.read(buf);
        }
        let n = buf.len().min(self.unread.len());
        buf[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        Ok(n)
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.session.write(buf)
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.session.flush()
    }

    /// Sends `close_notify` if that can be done without blocking; errors are ignored.
    pub(super) fn close_notify(&mut self) {
        self.without_deadline(|conn| {
            if conn.tcp().set_nonblocking(true).is_ok() {
                conn.session.close_notify();
                let _ = conn.tcp().set_nonblocking(false);
            }
        });
    }

    pub(super) fn peer_closed(&mut self) -> bool {
        self.without_deadline(Conn::peer_closed_now)
    }

    fn peer_closed_now(&mut self) -> bool {
        if !self.unread.is_empty() || self.session.buffered() > 0 {
            return false;
        }
        match peek_now(self.tcp()) {
            Peek::Idle => false,
            Peek::Closed => true,
            // Records are waiting: let TLS process them (without blocking). Session tickets
            // are consumed and the read would block; an alert or close_notify ends the session.
            Peek::Data => {
                if self.tcp().set_nonblocking(true).is_err() {
                    return true;
                }
                let mut buf = [0u8; 4096];
                let closed = loop {
                    match self.session.read(&mut buf) {
                        Ok(0) => break true,
                        Ok(n) => {
                            self.unread.extend_from_slice(&buf[..n]);
                            break false;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                        Err(_) => break true,
                    }
                };
                let restored = self.tcp().set_nonblocking(false).is_ok();
                closed || !restored
            }
        }
    }
}
