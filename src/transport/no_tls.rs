//! Stand-ins for a build without the `tls` feature: the types exist but cannot be built.

use super::deadline::Sock;
use super::session::TlsSession;
use super::{TlsClientConfig, TlsPeer, TlsServerConfig};
use crate::error::{Error, Result};

/// The text of [`Error::Config`] when TLS is asked for in a build without the `tls` feature.
const NO_TLS: &str = "this build has no TLS support (feature `tls`)";

#[derive(Clone)]
pub(super) enum Client {}

impl Client {
    pub(super) fn new(_: &TlsClientConfig) -> Result<Client> {
        Err(Error::Config(NO_TLS.into()))
    }
    pub(super) fn connect_session(
        &self,
        _: &str,
        _: Sock,
    ) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        match *self {}
    }
}

#[derive(Clone)]
pub(super) enum Server {}

impl Server {
    pub(super) fn new(_: &TlsServerConfig) -> Result<Server> {
        Err(Error::Config(NO_TLS.into()))
    }
    pub(super) fn accept_session(&self, _: Sock) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        match *self {}
    }
}
