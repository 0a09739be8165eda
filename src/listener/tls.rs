//! The listener's TLS acceptor, replaceable while the listener runs (certificate renewal
//! without a restart).
//!
//! Each connection takes the acceptor current when its handshake starts and keeps that session
//! to its end: [`TlsHandle::reload`] changes what *new* connections get, never an open one.

use std::fmt;
use std::sync::{Arc, RwLock};

use log::info;

use crate::error::Result;
use crate::transport::{TlsAcceptor, TlsServer, TlsServerConfig};

/// A handle on a TLS listener's acceptor, to replace it while the listener runs; from
/// [`Listener::tls_handle`](super::Listener::tls_handle) or
/// [`RunningListener::tls_handle`](super::RunningListener::tls_handle). Cheap to clone.
#[derive(Clone)]
pub struct TlsHandle {
    current: Arc<RwLock<Arc<dyn TlsAcceptor>>>,
}

impl TlsHandle {
    pub(super) fn new(acceptor: Arc<dyn TlsAcceptor>) -> TlsHandle {
        TlsHandle {
            current: Arc::new(RwLock::new(acceptor)),
        }
    }

    /// The acceptor for the next handshake.
    pub(super) fn current(&self) -> Arc<dyn TlsAcceptor> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// New connections are accepted with `acceptor` from now on; open ones keep the session
    /// they have.
    pub fn replace(&self, acceptor: Arc<dyn TlsAcceptor>) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = acceptor;
    }

    /// Builds the built-in acceptor ([`TlsServer`]) from `config` (read the files again with
    /// [`Identity::from_pem_files`](crate::Identity::from_pem_files) first) and
    /// [replaces](Self::replace) the current one with it.
    ///
    /// # Errors
    /// As [`TlsServer::new`]; the acceptor in use then stays, and the error says why.
    pub fn reload(&self, config: &TlsServerConfig) -> Result<()> {
        let server = TlsServer::new(config)?;
        self.replace(Arc::new(server));
        info!("TLS settings reloaded: new connections get the new certificate");
        Ok(())
    }
}

impl fmt::Debug for TlsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsHandle").finish_non_exhaustive()
    }
}
