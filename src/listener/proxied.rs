//! Who a connection is from, before it is given anything: the PROXY protocol header from a
//! listed proxy ([`ListenerConfig::proxy_protocol_from`]), refused from anyone else, and the
//! allow list ([`ListenerConfig::allow`]), checked on the client's address.
//!
//! The header is read with [`proxy_protocol::parse`](crate::proxy_protocol::parse), exactly as
//! many bytes as it still needs at each step, so the MLLP (or TLS) bytes behind it stay in the
//! socket. It runs on the connection's own thread, before the TLS handshake and before a slot
//! (as the handshake does, see [`handshake`](super::handshake)), within the handshake timeout.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::cidr::Cidr;
use crate::proxy_protocol::{self, Parsed, ProxyError};

use super::ListenerConfig;

/// How often a connection not allowed to send a header is looked at again while its first
/// bytes could still be one.
const PEEK_POLL: Duration = Duration::from_millis(10);

/// Whether connections from `peer` carry a PROXY protocol header.
pub(super) fn from_proxy(settings: &ListenerConfig, peer: SocketAddr) -> bool {
    Cidr::any_contains(&settings.proxy_protocol_from, peer.ip())
}

/// Whether `peer` (the client, after any PROXY header) may connect.
pub(super) fn allowed(settings: &ListenerConfig, peer: SocketAddr) -> bool {
    settings.allow.is_empty() || Cidr::any_contains(&settings.allow, peer.ip())
}

/// Whether connections from `peer` need the steps of this module on their own thread.
pub(super) fn needs_thread(settings: &ListenerConfig) -> bool {
    !settings.proxy_protocol_from.is_empty()
}

/// The client behind a connection from `peer`: with PROXY protocol on, reads the header from a
/// listed proxy (the client it names, or `peer` for a `LOCAL`/`UNKNOWN` header), and checks
/// that anyone else does not send one. The error says why the connection must be refused.
pub(super) fn client(
    settings: &ListenerConfig,
    tcp: &TcpStream,
    peer: SocketAddr,
) -> Result<SocketAddr, String> {
    if settings.proxy_protocol_from.is_empty() {
        return Ok(peer);
    }
    let deadline = Instant::now() + settings.handshake_timeout;
    let result = if from_proxy(settings, peer) {
        read_header(tcp, deadline).map(|source| source.unwrap_or(peer))
    } else {
        refuse_header(tcp, deadline).map(|()| peer)
    };
    // The connection sets its own timeouts from here on.
    let _ = tcp.set_read_timeout(None);
    result
}

/// Reads a PROXY protocol header, exactly, before `deadline`: the client it names.
fn read_header(tcp: &TcpStream, deadline: Instant) -> Result<Option<SocketAddr>, String> {
    const LATE: &str = "no complete PROXY protocol header within the handshake timeout";
    let mut buf = Vec::new();
    loop {
        let more = match proxy_protocol::parse(&buf) {
            Ok(Parsed::Header { header, .. }) => return Ok(header.source),
            Ok(Parsed::NeedMore(more)) => more,
            Err(ProxyError::NoSignature) => {
                return Err("no PROXY protocol header from a listed proxy".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LATE.into());
        }
        tcp.set_read_timeout(Some(left))
            .map_err(|e| format!("cannot set a read timeout: {e}"))?;
        let have = buf.len();
        buf.resize(have + more, 0);
        // At most what the header still lacks: the bytes behind it stay in the socket.
        let read = (&*tcp).read(&mut buf[have..]);
        buf.truncate(have + *read.as_ref().unwrap_or(&0));
        match read {
            // A proxy's connection check: connected and closed. The connection's own loop
            // sees the end of the stream.
            Ok(0) if have == 0 => return Ok(None),
            Ok(0) => return Err("closed before the end of its PROXY protocol header".into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if crate::error::is_timeout_kind(e.kind()) => return Err(LATE.into()),
            Err(e) => return Err(format!("reading the PROXY protocol header: {e}")),
        }
    }
}

/// Checks that a connection from an address not listed as a proxy does not start with a
/// PROXY protocol header (a client claiming another address). Waits for its first bytes until
/// `deadline` at most; a connection that sends nothing by then is let through.
fn refuse_header(tcp: &TcpStream, deadline: Instant) -> Result<(), String> {
    let mut buf = [0u8; 12];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        tcp.set_read_timeout(Some(left))
            .map_err(|e| format!("cannot set a read timeout: {e}"))?;
        let n = match tcp.peek(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Silent, closed or failed: the connection's own loop sees to it.
            Err(_) => return Ok(()),
        };
        if n == 0 || !proxy_protocol::starts_like_header(&buf[..n]) {
            return Ok(());
        }
        if n >= proxy_protocol::V1_PREFIX.len() && buf.starts_with(proxy_protocol::V1_PREFIX)
            || n == buf.len()
        {
            return Err("a PROXY protocol header from an address not listed as a proxy".into());
        }
        // The start of a signature: wait for the rest.
        std::thread::sleep(PEEK_POLL.min(left));
    }
}
