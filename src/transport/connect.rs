//! Connecting: resolving `host:port`, connecting with a timeout to the first address that
//! accepts, and the TLS handshake over it when there is TLS.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use log::debug;

use super::{Keepalive, Stream, TlsClient, TlsConnector};
use crate::error::{is_timeout_kind, Error, Phase, Result, Timeout};

/// Resolves `addr` (`host:port`) into socket addresses, in the resolver's order.
///
/// # Errors
/// [`Error::Config`] when `addr` is not a `host:port` address (missing or invalid port);
/// [`Error::Io`] with [`Phase::Resolve`] when the name cannot be resolved or resolves to nothing.
pub(crate) fn resolve(addr: &str) -> Result<Vec<SocketAddr>> {
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
/// Every address is tried in order, each with its own `timeout` (so the whole call can take up
/// to `timeout` times the number of addresses). With `nodelay`, `TCP_NODELAY` is set on the
/// connected socket so a frame is sent at once instead of waiting for more data; `keepalive`
/// sets the TCP keepalive timers (`None`: keepalive off).
///
/// # Errors
/// * [`Error::Config`] when `timeout` is zero or `addrs` is empty;
/// * [`Error::Timeout`] with [`Timeout::Connect`] when the last address tried timed out;
/// * otherwise [`Error::Io`] with [`Phase::Connect`] holding the last address's error (for
///   example "connection refused"), or [`Phase::Configure`] if `TCP_NODELAY` or keepalive
///   cannot be set.
pub(crate) fn connect_any(
    addrs: &[SocketAddr],
    timeout: Duration,
    nodelay: bool,
    keepalive: Option<&Keepalive>,
) -> Result<TcpStream> {
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
                Keepalive::apply(&tcp, keepalive).map_err(|e| Error::io(Phase::Configure, e))?;
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

/// Connects to `addr` (`host:port`), with a TLS handshake through `tls` when there is one:
/// each address within `timeout`, the handshake within what is left of it, all of it before
/// `deadline`. The server certificate is verified against the host of `addr` unless the
/// connector's settings name another.
///
/// # Errors
/// As [`resolve`] and [`connect_any`]; [`Error::Timeout`] with [`Timeout::Connect`] when no
/// time is left; the connector's errors ([`TlsConnector::connect`]).
pub(crate) fn dial(
    addr: &str,
    tls: Option<&dyn TlsConnector>,
    timeout: Duration,
    deadline: Option<Instant>,
    nodelay: bool,
    keepalive: Option<&Keepalive>,
) -> Result<Stream> {
    let started = Instant::now();
    let bound = |t: Duration| match deadline {
        Some(d) => t.min(d.saturating_duration_since(Instant::now())),
        None => t,
    };
    let first = bound(timeout);
    if first.is_zero() {
        return Err(Error::Timeout(Timeout::Connect));
    }
    let addrs = resolve(addr)?;
    let tcp = connect_any(&addrs, first, nodelay, keepalive)?;
    match tls {
        None => Ok(Stream::from(tcp)),
        Some(tls) => {
            let left = bound(timeout.saturating_sub(started.elapsed()));
            if left.is_zero() {
                return Err(Error::Timeout(Timeout::Connect));
            }
            TlsClient::connect_with(tls, host_of(addr), tcp, left)
        }
    }
}

/// The host part of a `host:port` address, without the brackets of an IPv6 literal.
///
/// This is the name a TLS client verifies the server certificate against:
/// `host_of("example.org:2575")` is `"example.org"`, `host_of("[::1]:2575")` is `"::1"`.
/// A string without a port is returned as it is.
pub(crate) fn host_of(addr: &str) -> &str {
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// What the sender does: resolve, then connect to the first address that accepts.
    fn connect(addr: &str, timeout: Duration, nodelay: bool) -> Result<TcpStream> {
        connect_any(&resolve(addr)?, timeout, nodelay, None)
    }

    /// An address on which nothing listens (a port that was just released).
    fn closed_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

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
            connect_any(&[addr], Duration::ZERO, false, None),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            connect_any(&[], Duration::from_secs(1), false, None),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn connect_sets_nodelay_when_asked() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert!(connect(&addr, TIMEOUT, true).unwrap().nodelay().unwrap());
        assert!(!connect(&addr, TIMEOUT, false).unwrap().nodelay().unwrap());
    }

    #[test]
    fn connect_to_a_closed_port_is_a_connect_error() {
        let addr = closed_addr();
        let err = connect(&addr.to_string(), TIMEOUT, false).unwrap_err();
        match &err {
            Error::Io {
                phase: Phase::Connect,
                source,
            } => assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("unexpected error: {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("connecting") && text.contains(&addr.to_string()),
            "{text}"
        );
    }

    #[test]
    fn connect_tries_every_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let good = listener.local_addr().unwrap();
        let stream = connect_any(&[closed_addr(), good], TIMEOUT, false, None).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good);
    }

    #[test]
    fn connect_resolves_localhost() {
        // "localhost" may resolve to ::1 first; only 127.0.0.1 listens, so every address must be
        // tried until one accepts.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect(&format!("localhost:{port}"), TIMEOUT, false).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    }

    #[test]
    fn connect_over_ipv6_loopback() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // No IPv6 on this machine.
        };
        let addr = listener.local_addr().unwrap();
        let stream = connect(&addr.to_string(), TIMEOUT, false).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        assert_eq!(host_of(&addr.to_string()), "::1");
    }

    #[test]
    fn bad_addresses_are_config_errors() {
        for addr in ["localhost", "localhost:notaport", "127.0.0.1:70000"] {
            let err = connect(addr, TIMEOUT, false).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{addr}: {err:?}");
        }
    }
}
