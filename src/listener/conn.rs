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

/// How late past its deadline a read may return: the read timeout set for an earlier read is
/// kept while it ends at most this much after the deadline, which saves a system call per read
/// of a message that arrives in several pieces.
const TIMEOUT_SLACK: Duration = Duration::from_millis(10);

/// Whether the socket's read timeout, `armed`, must be set to `wanted`: not when no deadline is
/// wanted and none is set, nor when the one set ends no earlier and at most [`TIMEOUT_SLACK`]
/// later. A timeout that ends too early only makes the driver poll again.
fn needs_arming(armed: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (armed, wanted) {
        (None, None) => false,
        (Some(armed), Some(wanted)) => armed < wanted || armed > wanted + TIMEOUT_SLACK,
        _ => true,
    }
}

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
    // The time as of the last event (a read, a timeout, a write): the session needs it only to
    // compare with its deadline before a read, so the clock is read once per event.
    let mut now = Instant::now();
    let mut session = Session::serving(settings, handler, stats, who, peer.flags, now);
    // The read timeout currently set on the socket.
    let mut armed: Option<Duration> = None;
    let reason = loop {
        if shared.stopping() {
            session.handle_stop();
        }
        match session.poll(now) {
            SessionStep::Read { until } => {
                // Socket timeouts have millisecond granularity; never arm a zero timeout.
                let timeout = until.map(|at| {
                    at.saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                });
                if needs_arming(armed, timeout) {
                    if let Err(e) = stream.set_read_timeout(timeout) {
                        session.handle_read_error(e);
                        continue;
                    }
                    armed = timeout;
                }
                match stream.read(session.read_buf()) {
                    Ok(n) => {
                        now = Instant::now();
                        session.handle_read(n, now);
                    }
                    // A deadline may have passed: the next poll tells.
                    Err(e)
                        if e.kind() == io::ErrorKind::Interrupted || is_timeout_kind(e.kind()) =>
                    {
                        now = Instant::now();
                    }
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
                now = Instant::now();
                session.handle_written(result, now);
            }
            SessionStep::Close(reason) => break reason.to_string(),
        }
    };
    debug!("connection {} from {} closed: {reason}", peer.id, peer.addr);
    // The peer may already be gone; nothing to do about a failed close.
    let _ = stream.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_timeout_is_set_again_only_when_it_would_end_too_early_or_too_late() {
        let ms = Duration::from_millis;
        let cases = [
            (None, None, false),
            (None, Some(ms(500)), true),
            (Some(ms(500)), None, true),
            // Later reads of the same message: the deadline is nearer by a few microseconds.
            (Some(ms(500)), Some(ms(499)), false),
            (Some(ms(500)), Some(ms(490)), false),
            (Some(ms(500)), Some(ms(489)), true),
            // A later deadline (the next message): the old timeout would end too early.
            (Some(ms(500)), Some(ms(501)), true),
        ];
        for (armed, wanted, expected) in cases {
            assert_eq!(
                needs_arming(armed, wanted),
                expected,
                "{armed:?} {wanted:?}"
            );
        }
    }
}
