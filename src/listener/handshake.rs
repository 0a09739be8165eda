//! Handshakes before a slot: a connection that has not finished its handshake (its PROXY
//! protocol header, see [`proxied`](super::proxied), then TLS) has not earned a connection
//! slot, so peers that open connections and stall in the handshake cannot keep real senders
//! out.
//!
//! Each accepted connection with a handshake (TLS, or the PROXY protocol turned on) gets its
//! thread at once, which runs the handshake (bounded by the handshake timeout), then takes a
//! slot as any connection does (eviction and the overflow policy apply then) and serves it. Until it has a slot the connection is *pending*, and at
//! most [`max_handshakes`](super::ListenerConfig::max_handshakes) are: when that many are
//! pending, a new connection closes the oldest one still in its handshake (a stalled one, in a
//! flood: a real client finishes in milliseconds), counted in
//! [`ListenerStats::handshakes_dropped`](super::ListenerStats::handshakes_dropped). Only when
//! every pending connection has finished its handshake and waits for a slot (with
//! [`Overflow::Backlog`](super::Overflow::Backlog)) is the newcomer refused instead. So a flood
//! costs at most `max_handshakes` threads and sockets.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use log::{debug, error, info, warn};

use super::accept::{deny, take_slot};
use super::conn;
use super::handler::Handler;
use super::proxied;
use super::slots::Flags;
use super::stats::bump;
use super::tls::TlsHandle;
use super::{ListenerConfig, Shared};
use crate::transport::{Stream, TlsAcceptor, TlsServer};

/// A connection without a slot yet.
#[derive(Debug)]
struct Entry {
    id: u64,
    peer: SocketAddr,
    /// A second handle to the socket, to close it from the accept thread.
    tcp: TcpStream,
    /// The handshake is done: the connection waits for a slot.
    handshaken: bool,
}

/// What became of a new connection at [`Pending::admit`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Pending now.
    Admitted,
    /// Pending now; to make room, the oldest connection still in its handshake was closed.
    Dropped {
        /// The connection closed.
        id: u64,
        /// Its peer.
        peer: SocketAddr,
    },
    /// Not admitted: every pending connection has finished its handshake and waits for a slot.
    Refused,
}

/// The pending connections, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    entries: Mutex<VecDeque<Entry>>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections are pending.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Admits connection `id` when fewer than `max` are pending, else closes the oldest one
    /// still in its handshake to make room, or refuses `id` when there is none.
    pub(crate) fn admit(
        &self,
        max: usize,
        id: u64,
        peer: SocketAddr,
        tcp: &TcpStream,
    ) -> io::Result<Admission> {
        let tcp = tcp.try_clone()?;
        let mut entries = self.lock();
        let mut admission = Admission::Admitted;
        if entries.len() >= max {
            let Some(at) = entries.iter().position(|e| !e.handshaken) else {
                return Ok(Admission::Refused);
            };
            if let Some(old) = entries.remove(at) {
                let _ = old.tcp.shutdown(Shutdown::Both);
                admission = Admission::Dropped {
                    id: old.id,
                    peer: old.peer,
                };
            }
        }
        entries.push_back(Entry {
            id,
            peer,
            tcp,
            handshaken: false,
        });
        Ok(admission)
    }

    /// Marks the handshake of `id` done; `false` when `id` is no longer pending (it was
    /// dropped for a newcomer, or the listener is stopping): the connection must then end.
    pub(crate) fn handshaken(&self, id: u64) -> bool {
        let mut entries = self.lock();
        match entries.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.handshaken = true;
                true
            }
            None => false,
        }
    }

    /// Whether `id` is pending.
    fn contains(&self, id: u64) -> bool {
        self.lock().iter().any(|e| e.id == id)
    }

    /// `id` is no longer pending (it has a slot, or it ended).
    pub(crate) fn remove(&self, id: u64) {
        self.lock().retain(|e| e.id != id);
    }

    /// Closes every pending connection (at shutdown).
    pub(crate) fn close_all(&self) {
        for entry in self.lock().drain(..) {
            let _ = entry.tcp.shutdown(Shutdown::Both);
        }
    }
}

/// Takes `id` out of the pending connections however its thread ends.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.pending.remove(self.id);
    }
}

/// What a connection thread needs of the listener.
pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Arc<ListenerConfig>,
    pub(crate) handler: Arc<dyn Handler>,
}

/// Admits connection `id` as pending and starts its thread: handshake (PROXY protocol header,
/// TLS), slot, service.
/// Returns the thread, or `None` when the connection was refused or its thread could not
/// start (then the connection is closed).
pub(crate) fn start(
    cx: &Context,
    tls: Option<&TlsHandle>,
    tcp: TcpStream,
    id: u64,
    peer: SocketAddr,
) -> Option<JoinHandle<()>> {
    let shared = &cx.shared;
    let max = cx.settings.max_handshakes;
    match shared.pending.admit(max, id, peer, &tcp) {
        Ok(Admission::Admitted) => {}
        Ok(Admission::Dropped {
            id: old,
            peer: from,
        }) => {
            bump(&shared.stats.handshakes_dropped);
            info!(
                "{max} connections are pending: closed connection {old} from {from}, still in \
                 its handshake, for connection {id} from {peer}"
            );
        }
        Ok(Admission::Refused) => {
            bump(&shared.stats.connections_refused);
            info!("refused connection from {peer}: {max} connections wait for a slot already");
            let _ = tcp.shutdown(Shutdown::Both);
            return None;
        }
        Err(e) => {
            error!("connection {id} from {peer}: cannot clone the socket: {e}");
            return None;
        }
    }
    let (shared2, settings, handler, tls) = (
        Arc::clone(shared),
        Arc::clone(&cx.settings),
        Arc::clone(&cx.handler),
        // The acceptor current now serves this connection to its end.
        tls.map(TlsHandle::current),
    );
    let spawned = std::thread::Builder::new()
        .name(format!("mllp-conn-{id}"))
        .stack_size(cx.settings.stack_size)
        .spawn(move || {
            run(
                &shared2,
                &settings,
                &*handler,
                tls.as_deref(),
                tcp,
                id,
                peer,
            )
        });
    match spawned {
        Ok(thread) => Some(thread),
        Err(e) => {
            // The closure (and with it the socket) is dropped: the connection closes.
            error!("connection {id} from {peer}: cannot start its thread: {e}");
            shared.pending.remove(id);
            None
        }
    }
}

/// The thread of a pending connection.
fn run(
    shared: &Shared,
    settings: &ListenerConfig,
    handler: &dyn Handler,
    tls: Option<&dyn TlsAcceptor>,
    tcp: TcpStream,
    id: u64,
    from: SocketAddr,
) {
    let pending = PendingGuard { shared, id };
    let peer = match proxied::client(settings, &tcp, from) {
        Ok(client) => client,
        Err(why) if !shared.pending.contains(id) => {
            debug!("connection {id} from {from}: closed before its PROXY protocol header: {why}");
            return;
        }
        Err(why) => {
            bump(&shared.stats.proxy_refused);
            warn!("refused connection {id} from {from}: {why}");
            let _ = tcp.shutdown(Shutdown::Both);
            return;
        }
    };
    // A proxy's own connections (a LOCAL or UNKNOWN header, a check that closes at once)
    // keep its address, and a listed proxy is trusted: only clients it names are checked.
    if peer != from {
        debug!("connection {id} from {from} is a proxy's for {peer}");
        if !proxied::allowed(settings, peer) {
            deny(shared, id, peer, &tcp);
            return;
        }
    }
    let Some(tls) = tls else {
        if shared.pending.handshaken(id) {
            serve(
                shared,
                settings,
                handler,
                Stream::from(tcp),
                id,
                peer,
                pending,
            );
        }
        return;
    };
    let stream = match TlsServer::accept_with(tls, tcp, settings.handshake_timeout) {
        Ok(stream) => stream,
        Err(e) if !shared.pending.contains(id) => {
            // Closed for a newcomer (counted and logged then) or at shutdown.
            debug!("connection {id} from {peer}: closed during its TLS handshake: {e}");
            return;
        }
        Err(e) => {
            bump(&shared.stats.tls_failures);
            warn!("connection {id} from {peer}: {e}");
            return;
        }
    };
    if !shared.pending.handshaken(id) {
        debug!("connection {id} from {peer}: closed before it had a slot");
        return;
    }
    serve(shared, settings, handler, stream, id, peer, pending);
}

/// A connection whose handshake is done: takes a slot and serves it.
fn serve(
    shared: &Shared,
    settings: &ListenerConfig,
    handler: &dyn Handler,
    stream: Stream,
    id: u64,
    peer: SocketAddr,
    pending: PendingGuard<'_>,
) {
    let flags = Arc::new(Flags::default());
    if !take_slot(shared, settings, id, stream.tcp(), &flags, peer) {
        return;
    }
    drop(pending);
    shared
        .stats
        .connections_open
        .fetch_add(1, Ordering::Relaxed);
    bump(&shared.stats.connections_total);
    debug!(
        "connection {id} from {peer} accepted{}",
        if stream.is_tls() { " (TLS)" } else { "" }
    );
    conn::serve(
        shared,
        settings,
        handler,
        stream,
        conn::Peer {
            id,
            addr: peer,
            flags,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    /// `n` loopback connections: the server side of each (as the listener holds it) and the
    /// client side.
    fn pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (0..n)
            .map(|_| {
                let client = TcpStream::connect(addr).unwrap();
                let (server, _) = listener.accept().unwrap();
                client
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                (server, client)
            })
            .collect()
    }

    /// Whether the listener closed this client's connection (its read ends at once).
    fn closed(client: &TcpStream) -> bool {
        let mut buf = [0u8; 1];
        matches!((&*client).read(&mut buf), Ok(0) | Err(_))
    }

    #[test]
    fn the_oldest_handshake_makes_room_and_a_full_queue_of_waiting_ones_refuses() {
        let conns = pairs(5);
        let peer = conns[0].0.peer_addr().unwrap();
        let pending = Pending::default();
        let admit = |id: usize| pending.admit(3, id as u64, peer, &conns[id].0).unwrap();
        assert_eq!(admit(0), Admission::Admitted);
        assert_eq!(admit(1), Admission::Admitted);
        assert_eq!(admit(2), Admission::Admitted);
        // Connection 0 finished its handshake (it waits for a slot): 1 is the oldest still
        // in its handshake, and is closed for 3.
        assert!(pending.handshaken(0));
        assert_eq!(admit(3), Admission::Dropped { id: 1, peer });
        assert!(closed(&conns[1].1));
        assert!(!pending.handshaken(1), "a dropped connection ends");
        assert_eq!(pending.len(), 3);
        assert!(pending.handshaken(2));
        assert!(pending.handshaken(3));
        // Every pending connection waits for a slot: the newcomer is refused.
        assert_eq!(admit(4), Admission::Refused);
        assert_eq!(pending.len(), 3);
        pending.remove(0);
        assert_eq!(admit(4), Admission::Admitted);
        pending.close_all();
        assert_eq!(pending.len(), 0);
        assert!(closed(&conns[4].1));
    }
}
