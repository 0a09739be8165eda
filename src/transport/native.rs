//! TLS through `native-tls`. Nothing from `native-tls` leaves this module.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use log::{debug, warn};
use native_tls::{HandshakeError, Protocol, TlsAcceptor, TlsConnector, TlsStream};

use super::deadline::{Deadline, Dir, Sock};
use super::sys::{peek_now, Peek};
use super::{Identity, TlsClientConfig, TlsPeer, TlsServerConfig};
use crate::error::{is_timeout_kind, Error, Result, Timeout, TlsError, TlsErrorKind};

/// The oldest protocol version either side accepts.
const MIN_PROTOCOL: Protocol = Protocol::Tlsv12;

/// An established TLS connection.
pub(super) struct Conn {
    tls: TlsStream<Sock>,
    peer: TlsPeer,
    /// Application data read by [`Conn::peer_closed`], returned by the next read.
    unread: Vec<u8>,
}

impl Conn {
    pub(super) fn sock(&self) -> &Sock {
        self.tls.get_ref()
    }

    pub(super) fn sock_mut(&mut self) -> &mut Sock {
        self.tls.get_mut()
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
            return self.tls.read(buf);
        }
        let n = buf.len().min(self.unread.len());
        buf[..n].copy_from_slice(&self.unread[..n]);
        self.unread.drain(..n);
        Ok(n)
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tls.write(buf)
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.tls.flush()
    }

    /// Sends `close_notify` if that can be done without blocking; errors are ignored.
    pub(super) fn close_notify(&mut self) {
        self.without_deadline(|conn| {
            if conn.tcp().set_nonblocking(true).is_ok() {
                let _ = conn.tls.shutdown();
                let _ = conn.tcp().set_nonblocking(false);
            }
        });
    }

    pub(super) fn peer_closed(&mut self) -> bool {
        self.without_deadline(Conn::peer_closed_now)
    }

    fn peer_closed_now(&mut self) -> bool {
        if !self.unread.is_empty() || matches!(self.tls.buffered_read_size(), Ok(n) if n > 0) {
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
                    match self.tls.read(&mut buf) {
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

/// Runs a handshake over `tcp` within `deadline`, restoring the socket timeouts afterwards.
fn handshake(
    tcp: TcpStream,
    deadline: Duration,
    run: impl FnOnce(Sock) -> std::result::Result<TlsStream<Sock>, HandshakeError<Sock>>,
    describe: impl FnOnce(native_tls::Error) -> Error,
) -> Result<Conn> {
    let read_timeout = tcp.read_timeout().map_err(configure)?;
    let write_timeout = tcp.write_timeout().map_err(configure)?;
    let mut sock = Sock::new(tcp);
    sock.deadline = Some(Deadline::new(deadline));
    let mut tls = match run(sock) {
        Ok(tls) => tls,
        // Not expected with a blocking socket; if it happens, the socket timed out.
        Err(HandshakeError::WouldBlock(_)) => return Err(Error::Timeout(Timeout::Connect)),
        Err(HandshakeError::Failure(e)) if caused_by_timeout(&e) => {
            return Err(Error::Timeout(Timeout::Connect))
        }
        Err(HandshakeError::Failure(e)) => return Err(describe(e)),
    };
    let sock = tls.get_mut();
    sock.deadline = None;
    sock.set_timeout(Dir::Read, read_timeout)
        .map_err(configure)?;
    sock.set_timeout(Dir::Write, write_timeout)
        .map_err(configure)?;
    let certificate = match tls.peer_certificate() {
        Ok(Some(cert)) => cert.to_der().ok(),
        _ => None,
    };
    Ok(Conn {
        tls,
        peer: TlsPeer { certificate },
        unread: Vec::new(),
    })
}

fn configure(e: io::Error) -> Error {
    Error::io(crate::error::Phase::Configure, e)
}

/// The kind of a handshake failure that is not about the certificate: [`TlsErrorKind::Io`] when
/// an I/O error is in its chain (the connection broke), else [`TlsErrorKind::Handshake`].
fn handshake_kind(e: &native_tls::Error) -> TlsErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<io::Error>() {
            return TlsErrorKind::Io;
        }
        source = err.source();
    }
    TlsErrorKind::Handshake
}

/// Whether a handshake failed because the socket timed out (an I/O error of kind `TimedOut`
/// somewhere in the error's chain).
fn caused_by_timeout(e: &native_tls::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if is_timeout_kind(io.kind()) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

fn tls_error(kind: TlsErrorKind, message: String, source: native_tls::Error) -> Error {
    Error::Tls(TlsError::new(kind, message, Some(Box::new(source))))
}

fn native_identity(identity: &Identity) -> Result<native_tls::Identity> {
    match identity {
        Identity::Pem { cert, key } => {
            if !contains(key, b"-----BEGIN PRIVATE KEY-----") {
                return Err(Error::Tls(TlsError::new(
                    TlsErrorKind::Config,
                    "the private key is not unencrypted PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"); \
                     convert it with `openssl pkcs8 -topk8 -nocrypt`",
                    None,
                )));
            }
            native_tls::Identity::from_pkcs8(cert, key).map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the PEM certificate chain or private key cannot be read".into(),
                    e,
                )
            })
        }
        Identity::Pkcs12 { der, password } => native_tls::Identity::from_pkcs12(der, password)
            .map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the PKCS#12 identity cannot be read (invalid file or wrong password)".into(),
                    e,
                )
            }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A prepared TLS client context.
#[derive(Clone)]
pub(super) struct Client {
    connector: TlsConnector,
    server_name: Option<String>,
    dangerous: bool,
}

impl Client {
    pub(super) fn new(config: &TlsClientConfig) -> Result<Client> {
        let mut builder = TlsConnector::builder();
        builder.min_protocol_version(Some(MIN_PROTOCOL));
        for (i, pem) in config.root_pems.iter().enumerate() {
            let certs = native_tls::Certificate::stack_from_pem(pem).map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    format!("extra CA certificate #{} is not valid PEM", i + 1),
                    e,
                )
            })?;
            if certs.is_empty() {
                return Err(Error::Tls(TlsError::new(
                    TlsErrorKind::Config,
                    format!(
                        "extra CA certificate #{} holds no PEM certificate \
                         (\"-----BEGIN CERTIFICATE-----\")",
                        i + 1
                    ),
                    None,
                )));
            }
            for cert in certs {
                builder.add_root_certificate(cert);
            }
        }
        if let Some(identity) = &config.identity {
            builder.identity(native_identity(identity)?);
        }
        if config.danger_accept_invalid_certs {
            builder.danger_accept_invalid_certs(true);
            builder.danger_accept_invalid_hostnames(true);
        }
        let connector = builder.build().map_err(|e| {
            tls_error(
                TlsErrorKind::Config,
                "the TLS client settings were rejected".into(),
                e,
            )
        })?;
        Ok(Client {
            connector,
            server_name: config.server_name.clone(),
            dangerous: config.danger_accept_invalid_certs,
        })
    }

    pub(super) fn connect(&self, domain: &str, tcp: TcpStream, deadline: Duration) -> Result<Conn> {
        let name = self.server_name.as_deref().unwrap_or(domain);
        if self.dangerous {
            warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs): \
                 the server at {name} is not authenticated"
            );
        }
        let peer = tcp.peer_addr().ok();
        debug!("TLS handshake with {name} ({peer:?})");
        let conn = handshake(
            tcp,
            deadline,
            |sock| self.connector.connect(name, sock),
            |e| describe_client_failure(name, e),
        );
        match &conn {
            Ok(_) => debug!("TLS session with {name} established"),
            Err(e) => debug!("TLS handshake with {name} failed: {e}"),
        }
        conn
    }
}

/// Turns a client handshake failure into a message that says what to fix.
fn describe_client_failure(name: &str, e: native_tls::Error) -> Error {
    let text = e.to_string();
    let has = |s: &str| text.contains(s);
    let (kind, message) = if has("hostname mismatch") || has("IP address mismatch") {
        let m = format!("the server certificate is not valid for the name {name:?}");
        (TlsErrorKind::Certificate, m)
    } else if has("unable to get local issuer certificate")
        || has("self-signed certificate")
        || has("self signed certificate")
        || has("unable to get issuer certificate")
    {
        let m = format!("the server certificate for {name:?} is not signed by a trusted CA");
        (TlsErrorKind::Certificate, m)
    } else if has("certificate has expired") || has("certificate is not yet valid") {
        let m = format!("the server certificate for {name:?} has expired or is not yet valid");
        (TlsErrorKind::Certificate, m)
    } else if has("certificate verify failed") {
        let m = format!("the server certificate for {name:?} could not be verified");
        (TlsErrorKind::Certificate, m)
    } else if has("wrong version number") || has("packet length too long") {
        let m = format!("the server at {name:?} does not seem to speak TLS");
        (TlsErrorKind::Handshake, m)
    } else {
        let m = format!("the TLS handshake with {name:?} failed");
        (handshake_kind(&e), m)
    };
    tls_error(kind, message, e)
}

/// A prepared TLS server context.
#[derive(Clone)]
pub(super) struct Server {
    acceptor: TlsAcceptor,
}

impl Server {
    pub(super) fn new(config: &TlsServerConfig) -> Result<Server> {
        let identity = native_identity(&config.identity)?;
        let acceptor = TlsAcceptor::builder(identity)
            .min_protocol_version(Some(MIN_PROTOCOL))
            .build()
            .map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the TLS server identity was rejected".into(),
                    e,
                )
            })?;
        Ok(Server { acceptor })
    }

    pub(super) fn accept(&self, tcp: TcpStream, deadline: Duration) -> Result<Conn> {
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
        let conn = handshake(
            tcp,
            deadline,
            |sock| self.acceptor.accept(sock),
            |e| {
                let text = e.to_string();
                let message = if text.contains("wrong version number")
                    || text.contains("http request")
                    || text.contains("packet length too long")
                {
                    format!("the client at {peer} does not speak TLS")
                } else if text.contains("no shared cipher") {
                    // Also what a private key that does not match the certificate leads to.
                    format!(
                        "the TLS handshake with the client at {peer} failed: no shared cipher \
                         (does the server key match its certificate?)"
                    )
                } else {
                    format!("the TLS handshake with the client at {peer} failed")
                };
                tls_error(handshake_kind(&e), message, e)
            },
        );
        match &conn {
            Ok(_) => debug!("TLS session with {peer} established"),
            Err(e) => debug!("TLS handshake with {peer} failed: {e}"),
        }
        conn
    }
}
