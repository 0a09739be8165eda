//! The sockets under the sender and the listener: TCP with deadlines, optionally TLS.
//!
//! * [`resolve`] turns `host:port` into addresses and [`connect_any`] tries each with a connect
//!   timeout, returning a [`TcpStream`](std::net::TcpStream).
//! * [`TlsClient`] (built once from a [`TlsClientConfig`]) and [`TlsServer`] (from a
//!   [`TlsServerConfig`]) run a TLS handshake over such a socket, bounded by a deadline; so do
//!   any [`TlsConnector`] and [`TlsAcceptor`] of another TLS library.
//! * [`Stream`] is what both sides then read and write: plain TCP or TLS over TCP. It gives access
//!   to the socket underneath, so another thread can hold a clone and shut it down, and it can tell
//!   whether the peer closed an idle connection ([`Stream::peer_closed`]).
//!
//! One job per file: `connect` (resolving and connecting with a timeout), `stream` (the
//! [`Stream`]), `deadline` (the socket under a stream, which enforces its deadline on every
//! system call), `keepalive` (the TCP keepalive timers, [`Keepalive`]), `sys` (the platform
//! calls: `sendmsg(MSG_NOSIGNAL)`, `recv(MSG_PEEK | MSG_DONTWAIT)`, and `setsockopt` for the
//! keepalive timers), `tls` (settings, identities and handshakes) and `native`
//! (the `native-tls` glue).
//!
//! TLS is provided by `native-tls` (OpenSSL on Linux, the platform libraries elsewhere) behind
//! the default feature `tls`. No `native-tls` type appears in the crate's API. Without the
//! feature everything still compiles: [`Stream`] is TCP only, and building a [`TlsClient`] or a
//! [`TlsServer`] returns [`Error::Config`](crate::Error::Config).
//!
//! # Client certificates
//! A client can present an identity ([`TlsClientConfig::identity`]) to servers that ask for one,
//! which is what mutual TLS needs on the client side. The built-in [`TlsServer`] is limited by
//! `native-tls`: its acceptor never asks the client for a certificate, and neither side reports
//! the protocol or cipher agreed. `session` is the seam for another TLS library: a
//! [`TlsAcceptor`] runs the server handshake, a [`TlsConnector`] the client handshake, over a
//! [`TlsSocket`] (which enforces the handshake's deadline), and each returns a [`TlsSession`]
//! and a [`TlsPeer`]; the crate keeps the deadline, the socket timeouts, `close_notify` and
//! [`Stream::peer_closed`] on its side. The workspace crate `mllp-openssl` implements both: to
//! require and verify client certificates, and to report the protocol and cipher of every
//! handshake.

mod connect;
mod deadline;
mod keepalive;
mod session;
mod stream;
mod sys;
mod tls;

#[cfg(feature = "tls")]
mod native;

/// Stand-ins for a build without TLS: the types exist but cannot be built.
#[cfg(not(feature = "tls"))]
#[path = "transport/no_tls.rs"]
mod native;

pub(crate) use connect::{dial, resolve};
pub use keepalive::{
    Keepalive, DEFAULT_KEEPALIVE_COUNT, DEFAULT_KEEPALIVE_IDLE, DEFAULT_KEEPALIVE_INTERVAL,
    MAX_KEEPALIVE_COUNT, MAX_KEEPALIVE_SECS,
};
pub use session::{TlsAcceptor, TlsConnector, TlsSession, TlsSocket};
pub use stream::Stream;
pub(crate) use sys::{peek_now, Peek};
pub use tls::{
    Identity, TlsClient, TlsClientConfig, TlsPeer, TlsServer, TlsServerConfig, TlsVersion,
};
