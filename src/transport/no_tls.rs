//! Stand-ins for a build without the `tls` feature: the types exist but cannot be built.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use super::deadline::Sock;
use super::{TlsClientConfig, TlsPeer, TlsServerConfig};
use crate::error::{Error, Result};

/// The text of [`Error::Config`] when TLS is asked for in a build without the `tls` feature.
const NO_TLS: &str = "this build has no TLS support (feature `tls`)";

/// A TLS connection, which cannot exist in this build.
pub(super) enum Conn {}

#[allow(clippy::unused_self)]
impl Conn {
    pub(super) fn sock(&self) -> &Sock {
        match *self {}
    }
    pub(super) fn sock_mut(&mut self) -> &mut Sock {
        match *self {}
    }
    pub(super) fn peer(&self) -> &TlsPeer {
        match *self {}
    }
    pub(super) fn peer_closed(&mut self) -> bool {
        match *self {}
    }
    pub(super) fn close_notify(&mut self) {
        match *self {}
    }
    pub(super) fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match *self {}
    }
    pub(super) fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        match *self {}
    }
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match *self {}
    }
}

#[derive(Clone)]
pub(super) enum Client {}

impl Client {
    pub(super) fn new(_: &TlsClientConfig) -> Result<Client> {
        Err(Error::Config(NO_TLS.into()))
    }
    pub(super) fn connect(&self, _: &str, _: TcpStream, _: Duration) -> Result<Conn> {
        match *self {}
    }
}

#[derive(Clone)]
pub(super) enum Server {}

impl Server {
    pub(super) fn new(_: &TlsServerConfig) -> Result<Server> {
        Err(Error::Config(NO_TLS.into()))
    }
    pub(super) fn accept(&self, _: TcpStream, _: Duration) -> Result<Conn> {
        match *self {}
    }
}
