//! The accept loop's helpers: finding a slot for a new connection (replacing an idle one,
//! evicting the quietest, refusing or holding the newcomer) and the end of the loop.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::slots::{Flags, Why};
use super::stats::bump;
use super::{ListenerConfig, Overflow, Shared};
use crate::transport::Keepalive;

/// How long a new connection waits for a replaced or evicted connection to free its slot.
const REPLACE_WAIT: Duration = Duration::from_secs(2);
/// How long a new connection waits, in single-connection mode with replacement, for a busy
/// connection to become idle before the overflow policy applies to it.
const REPLACE_SETTLE: Duration = Duration::from_secs(1);
/// How often the busy connection is checked meanwhile.
const REPLACE_POLL: Duration = Duration::from_millis(5);
/// How often a connection waiting for a slot re-checks whether the old one became idle.
const BACKLOG_POLL: Duration = Duration::from_millis(100);
/// How long shutdown waits for connections shut down in both directions after the grace
/// period.
const STRAGGLER_WAIT: Duration = Duration::from_secs(1);
/// How long to pause after `accept` failed (for example, out of file descriptors).
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Sets the options of an accepted socket: no Nagle delay, the write timeout, keepalive.
pub(super) fn configure(tcp: &TcpStream, settings: &ListenerConfig) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(settings.write_timeout)?;
    Keepalive::apply(tcp, settings.keepalive.as_ref())
}

/// Closes connection `id` from `peer`, outside the allow list: logged at info, counted.
pub(super) fn deny(shared: &Shared, id: u64, peer: SocketAddr, tcp: &TcpStream) {
    bump(&shared.stats.connections_denied);
    info!("refused connection {id} from {peer}: not in the allow list");
    let _ = tcp.shutdown(Shutdown::Both);
}

/// Finds a slot for a new connection, replacing an idle one or applying the overflow policy.
/// Returns `false` when the connection was refused (and closed) or the listener is stopping.
pub(super) fn take_slot(
    shared: &Shared,
    settings: &ListenerConfig,
    id: u64,
    tcp: &TcpStream,
    flags: &Arc<Flags>,
    peer: SocketAddr,
) -> bool {
    let max = settings.max_connections;
    let replace = settings.replace_idle && max == 1;
    let mut waiting_logged = false;
    loop {
        if shared.stopping() {
            return false;
        }
        match shared.slots.try_insert(max, id, peer, tcp, flags) {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => {
                error!("connection {id} from {peer}: cannot clone the socket: {e}");
                return false;
            }
        }
        if (replace || settings.evict_after.is_some()) && make_room(shared, settings, id, peer) {
            continue;
        }
        match settings.overflow {
            Overflow::Refuse => {
                bump(&shared.stats.connections_refused);
                info!("refused connection from {peer}: all {max} connection slots are taken");
                // The caller drops the socket; shut it down now so the peer sees it at once.
                let _ = tcp.shutdown(Shutdown::Both);
                return false;
            }
            Overflow::Backlog => {
                if !waiting_logged {
                    info!(
                        "connection {id} from {peer} waits: all {max} connection slots are taken"
                    );
                    waiting_logged = true;
                }
                // With replacement or eviction on, re-check every poll whether a connection
                // became idle or quiet for long enough.
                let wait = if replace || settings.evict_after.is_some() {
                    BACKLOG_POLL
                } else {
                    Duration::from_secs(3600)
                };
                shared.slots.wait_for_room(max, wait, &shared.stop);
            }
        }
    }
}

/// Closes a connection to make room for connection `id`: in single-connection mode with
/// replacement, the only one if it is idle or becomes idle within [`REPLACE_SETTLE`] (a
/// connection that is just writing its last acknowledgement); with eviction, the one that has
/// gone longest without completing a frame, past the threshold. Then waits for it to free its
/// slot. Returns whether the slot may now be free.
fn make_room(shared: &Shared, settings: &ListenerConfig, id: u64, peer: SocketAddr) -> bool {
    let max = settings.max_connections;
    let replace = settings.replace_idle && max == 1;
    let settle_end = Instant::now()
        + if replace {
            REPLACE_SETTLE
        } else {
            Duration::ZERO
        };
    loop {
        if let Some(old) = shared
            .slots
            .close_for_newcomer(replace, settings.evict_after)
        {
            match old.why {
                Why::Replaced => {
                    bump(&shared.stats.connections_replaced);
                    info!(
                        "connection {id} from {peer} replaces idle connection {} from {}",
                        old.id, old.peer
                    );
                }
                Why::Evicted => {
                    bump(&shared.stats.connections_evicted);
                    warn!(
                        "all {max} connection slots are taken: evicted connection {} from {},                          which completed no frame for {:.1} s, for connection {id} from {peer}",
                        old.id,
                        old.peer,
                        old.quiet.as_secs_f64()
                    );
                }
            }
            return shared.slots.wait_for_room(max, REPLACE_WAIT, &shared.stop);
        }
        if Instant::now() >= settle_end || shared.stopping() {
            return false;
        }
        if shared.slots.wait_for_room(max, REPLACE_POLL, &shared.stop) {
            return true;
        }
    }
}

/// After the accept loop: lets in-flight messages finish within the grace period, closes the
/// rest and joins the connection threads.
pub(super) fn finish(shared: &Shared, settings: &ListenerConfig, threads: Vec<JoinHandle<()>>) {
    let open = shared.slots.len();
    debug!("shutting down: {open} connections open");
    // Connections without a slot have no message in flight: closed at once.
    shared.pending.close_all();
    shared.slots.shutdown_all(Shutdown::Read);
    let grace_end = Instant::now() + settings.shutdown_grace;
    if !shared.slots.wait_empty(grace_end) {
        warn!(
            "{} connections still busy after the shutdown grace period; closing them",
            shared.slots.len()
        );
        shared.slots.shutdown_all(Shutdown::Both);
        shared.slots.wait_empty(Instant::now() + STRAGGLER_WAIT);
    }
    let mut left_behind = 0;
    for thread in threads {
        if thread.is_finished() || shared.slots.len() == 0 {
            // A thread whose slot is free has nothing left to do but return.
            let _ = thread.join();
        } else {
            left_behind += 1;
        }
    }
    if left_behind > 0 {
        error!("{left_behind} connection threads are stuck in the handler; leaving them behind");
    }
    debug!("listener on {} stopped", shared.local_addr);
}
