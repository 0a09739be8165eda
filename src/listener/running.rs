//! Handles on a listener: stopping it from another thread, and one running on its own
//! thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{error, info, warn};

use super::{ListenerStats, Shared, TlsHandle};
use crate::error::{Error, Phase, Result};

/// Stops a listener from any thread, and reads its counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    pub(super) shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Asks the listener to stop, and returns at once. The accept loop stops; messages being
    /// handled are finished and acknowledged within the grace period; then
    /// [`Listener::run`](super::Listener::run) returns. Calling it again does nothing more.
    pub fn shutdown(&self) {
        if self.shared.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        info!("listener on {}: shutting down", self.shared.local_addr);
        self.shared.slots.wake();
        // Wake the accept loop with a connection of our own; it sees the flag and stops.
        let addr = wake_address(self.shared.local_addr);
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            warn!("cannot wake the accept loop through {addr}: {e}");
        }
    }

    /// Whether shutdown has been asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stopping()
    }

    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.shared.stats()
    }
}

/// The address to connect to in order to reach a listener bound to `local`: loopback for a
/// wildcard address.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// A listener running on its own thread; from [`Listener::spawn`](super::Listener::spawn).
///
/// Dropping it shuts the listener down and waits for it.
#[derive(Debug)]
pub struct RunningListener {
    pub(super) thread: Option<JoinHandle<Result<()>>>,
    pub(super) handle: ShutdownHandle,
    pub(super) local_addr: SocketAddr,
    pub(super) tls: Option<TlsHandle>,
}

impl RunningListener {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> ListenerStats {
        self.handle.stats()
    }

    /// A handle to replace the TLS certificate while the listener runs (see [`TlsHandle`]);
    /// `None` for a plain TCP listener.
    pub fn tls_handle(&self) -> Option<TlsHandle> {
        self.tls.clone()
    }

    /// A handle to stop the listener from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Asks the listener to stop; returns at once. See [`ShutdownHandle::shutdown`].
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Waits for the listener to stop (after [`shutdown`](Self::shutdown)) and returns what
    /// [`Listener::run`](super::Listener::run) returned.
    ///
    /// # Errors
    /// What `run` returned, or [`Error::Io`] with [`Phase::Accept`] if the listener's thread
    /// panicked.
    pub fn join(mut self) -> Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    Phase::Accept,
                    io::Error::other("the listener thread panicked"),
                ))
            }),
        }
    }
}

impl Drop for RunningListener {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.shutdown();
            if let Err(e) = self.wait() {
                error!("{e}");
            }
        }
    }
}
