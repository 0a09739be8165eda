//! The connection thread: a thin blocking driver over the connection's [`Session`], which
//! holds every rule. It reads into the session's buffer with the read timeout the session's
//! deadline asks for, runs the handler when asked, and writes the acknowledgements.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use super::handler::Handler;
use super::respond::Who;
use super::session::{Session, SessionStep};
use super::slots::{Flags, SlotGuard};
use super::{ListenerConfig, Shared};
use crate::error::is_timeout_kind;
use crate::transport::Stream;

/// A connection's identity, fixed when it is accepted.
pub(crate) struct Peer {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) flags: Arc<Flags>,
}

/// Serves one accepted connection (over TLS: after its handshake) until it closes, fails,
/// times out or the listener stops. The connection's slot has been taken (and counted open)
/// before, and is freed here.
pub(crate) fn serve(
    shared: &Shared,
    settings: &ListenerConfig,
    handler: &dyn Handler,
    mut stream: Stream,
    peer: Peer,
) {
    let _slot = SlotGuard::new(shared, peer.id);
    let who = Who {
        id: peer.id,
        addr: peer.addr,
        tls_peer: stream.tls_peer().cloned(),
    };
    let stats = Arc::clone(&shared.stats);
    let mut session = Session::serving(settings, handler, stats, who, peer.flags, Instant::now());
    // The read timeout currently set on the socket.
    let mut armed: Option<Duration> = None;
    let reason = loop {
        if shared.stopping() {
            session.handle_stop();
        }
        let now = Instant::now();
        match session.poll(now) {
            SessionStep::Read { until } => {
                // Socket timeouts have millisecond granularity; never arm a zero timeout.
                let timeout = until.map(|at| {
                    at.saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                });
                if timeout != armed {
                    if let Err(e) = stream.set_read_timeout(timeout) {
                        session.handle_read_error(e);
                        continue;
                    }
                    armed = timeout;
                }
                match stream.read(session.read_buf()) {
                    Ok(n) => session.handle_read(n, Instant::now()),
                    // A deadline may have passed: the next poll tells.
                    Err(e)
                        if e.kind() == io::ErrorKind::Interrupted || is_timeout_kind(e.kind()) => {}
                    Err(e) => session.handle_read_error(e),
                }
            }
            SessionStep::Handle => session.handle_message(),
            SessionStep::Write(bytes) => {
                let result = if bytes.is_empty() {
                    Ok(())
                } else {
                    stream.write_all(bytes).and_then(|()| stream.flush())
                };
                session.handle_written(result, Instant::now());
            }
            SessionStep::Close(reason) => break reason.to_string(),
        }
    };
    debug!("connection {} from {} closed: {reason}", peer.id, peer.addr);
    // The peer may already be gone; nothing to do about a failed close.
    let _ = stream.shutdown();
}
