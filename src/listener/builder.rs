//! [`ListenerBuilder`]: a [`ListenerConfig`] filled one setter at a time, then bound.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::charset::{Charset, Malformed};
use crate::cidr::Cidr;
use crate::error::Result;
use crate::framing::Framing;
use std::sync::Arc;

use crate::transport::Keepalive;

use crate::transport::{TlsAcceptor, TlsServerConfig};

use super::{Listener, ListenerConfig, Overflow, TlsHandle};
use crate::hl7::{AckMode, ReplyKind};

/// Configures and binds a [`Listener`]; from [`Listener::builder`].
///
/// Setters take and return the builder; problems are reported by [`bind`](Self::bind).
#[derive(Debug)]
#[must_use = "a builder does nothing until bind() is called"]
pub struct ListenerBuilder {
    pub(super) addrs: io::Result<Vec<SocketAddr>>,
    pub(super) config: ListenerConfig,
    pub(super) max_message_size: Option<usize>,
    /// A TLS acceptor given instead of [`ListenerConfig::tls`].
    pub(super) acceptor: Option<TlsHandle>,
}

impl ListenerBuilder {
    /// Every setting at once, replacing all made so far (the address stays, and a
    /// [`max_message_size`](Self::max_message_size) given before is forgotten); later setters
    /// change it further.
    pub fn config(mut self, config: ListenerConfig) -> Self {
        self.config = config;
        self.max_message_size = None;
        self
    }

    /// The settings so far.
    pub fn current_config(&self) -> &ListenerConfig {
        &self.config
    }

    /// The framing (start and end sequences, maximum message size, lenient end). Default:
    /// [`Framing::default`] (`0x0B` … `0x1C 0x0D`, 16 MiB).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.config.framing = framing;
        self
    }

    /// The largest message accepted, in bytes (default 16 MiB). Larger messages are skipped
    /// and answered with a NAK; the connection stays up. Overrides the framing's maximum.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = Some(bytes);
        self
    }

    /// The character set messages are decoded from (default UTF-8).
    pub fn charset(mut self, charset: Charset) -> Self {
        self.config.charset = charset;
        self
    }

    /// Whether to decode each message in the character set its MSH-18 names, when it names a
    /// known one (default `true`). Otherwise, and for an unknown name, the configured
    /// [`charset`](Self::charset) is used.
    pub fn detect_msh18(mut self, detect: bool) -> Self {
        self.config.detect_msh18 = detect;
        self
    }

    /// What to do with a message holding bytes not valid in its character set:
    /// [`Malformed::Reject`] (the default) answers `AE` (`CE`), whose text and ERR segment name
    /// the byte offset of the first such sequence, without calling the handler;
    /// [`Malformed::Replace`] hands the message to the handler with U+FFFD in their place.
    pub fn malformed(mut self, policy: Malformed) -> Self {
        self.config.malformed = policy;
        self
    }

    /// The most connections served at once (default 10, at least 1).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max;
        self
    }

    /// What happens to a connection beyond the maximum (default [`Overflow::Refuse`]).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// In single-connection mode (`max_connections(1)`), whether a new connection replaces an
    /// idle one (default `false`). See the [`Listener`](super::Listener) documentation. Ignored when more
    /// than one connection is allowed.
    pub fn replace_idle(mut self, replace: bool) -> Self {
        self.config.replace_idle = replace;
        self
    }

    /// When every slot is taken, a new connection takes the slot of the connection that has
    /// gone longest without completing a frame, once that is at least this long (default
    /// 5 s); `None`: never, the [overflow policy](Self::overflow) applies at once. Only
    /// complete frames count as activity: a silent peer, one trickling bytes or sending junk
    /// can be evicted, a connection whose message is being handled never is. The evicted
    /// connection is logged (at warn, with its peer) and counted in
    /// [`ListenerStats::connections_evicted`](super::ListenerStats::connections_evicted). See the [`Listener`](super::Listener) documentation.
    pub fn evict_after(mut self, after: Option<Duration>) -> Self {
        self.config.evict_after = after;
        self
    }

    /// How long a started frame may take to complete (default 60 s); `None`: no limit.
    pub fn frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.frame_timeout = timeout;
        self
    }

    /// How long a connection may go without a message before it is closed (default `None`:
    /// no limit, since long idle connections are normal in HL7).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long writing one acknowledgement may take before the connection is closed
    /// (default 10 s); `None`: no limit.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How long a TLS handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// What messages are answered with (default [`ReplyKind::Hl7`]); see [`ReplyKind`].
    pub fn reply(mut self, kind: ReplyKind) -> Self {
        self.config.reply = kind;
        self
    }

    /// The mode of HL7 acknowledgements (default [`AckMode::Original`]: AA/AE/AR to every
    /// message); see [`ListenerConfig::ack_mode`]. Not used with [`ReplyKind::Mllp2`].
    pub fn ack_mode(mut self, mode: AckMode) -> Self {
        self.config.ack_mode = mode;
        self
    }

    /// Serves TLS with these settings (a server identity from PEM files or PKCS#12). A client
    /// that does not speak TLS, or whose handshake fails or times out, loses only its own
    /// connection (logged at warn, counted in [`ListenerStats::tls_failures`](super::ListenerStats::tls_failures)).
    ///
    /// The built-in acceptor neither requests nor verifies client certificates (a limit of
    /// `native-tls`), so [`Message::tls_peer`](super::Message::tls_peer) carries none: for
    /// mutual TLS give an acceptor that does with [`tls_acceptor`](Self::tls_acceptor).
    pub fn tls(mut self, config: TlsServerConfig) -> Self {
        self.config.tls = Some(config);
        self.acceptor = None;
        self
    }

    /// Serves TLS through `acceptor`, any [`TlsAcceptor`] (for example the `mllp-openssl`
    /// crate's, which can require and verify client certificates), instead of the built-in one
    /// of [`tls`](Self::tls). Handshake failures are handled as there.
    pub fn tls_acceptor(mut self, acceptor: Arc<dyn TlsAcceptor>) -> Self {
        self.config.tls = None;
        self.acceptor = Some(TlsHandle::new(acceptor));
        self
    }

    /// With TLS, the most connections in their handshake (or waiting for a slot after it) at
    /// once (default 64, at least 1): see [`ListenerConfig::max_handshakes`].
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.config.max_handshakes = max;
        self
    }

    /// The TCP keepalive timers of accepted connections (default: on,
    /// [`Keepalive::default`]: first probe after 5 minutes idle, then one a minute, dropped
    /// after 5 unanswered); `None`: keepalive off. See [`ListenerConfig::keepalive`].
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// Lets peers in `block` connect; once any block is given, everyone else is refused
    /// (counted in [`ListenerStats::connections_denied`](super::ListenerStats::connections_denied)).
    /// Checked on the client's address after any PROXY protocol header. See
    /// [`ListenerConfig::allow`].
    pub fn allow(mut self, block: Cidr) -> Self {
        self.config.allow.push(block);
        self
    }

    /// Reads a PROXY protocol header (version 1 or 2) on connections from `block` (a proxy
    /// such as HAProxy with `send-proxy-v2`), and takes the client it names as the peer;
    /// connections from elsewhere may not send one. Off until a block is given. See
    /// [`ListenerConfig::proxy_protocol_from`].
    pub fn proxy_protocol_from(mut self, block: Cidr) -> Self {
        self.config.proxy_protocol_from.push(block);
        self
    }

    /// How long shutdown waits for messages being handled to be acknowledged (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// The stack size of connection threads, in bytes (default 128 KiB, from 64 KiB to 64 MiB:
    /// [`bind`](Self::bind) refuses another).
    /// The handler runs on this stack: raise it if the handler needs deep recursion or large
    /// local arrays.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.config.stack_size = bytes;
        self
    }

    /// Checks the settings, prepares TLS and binds the listening socket.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for an invalid setting or address; [`Error::Tls`](crate::Error::Tls) when the TLS
    /// identity cannot be read; [`Error::Io`](crate::Error::Io) with [`Phase::Bind`](crate::Phase::Bind) when the address cannot
    /// be bound (in use, not local, no permission); its text names the address once.
    pub fn bind(self) -> Result<Listener> {
        let mut config = self.config;
        let addrs = self.addrs;
        // An invalid address or setting is reported before an invalid maximum size.
        if let (Some(max), Ok(_)) = (self.max_message_size, &addrs) {
            config.validate()?;
            config.framing = config.framing.max_message_size(max)?;
        }
        Listener::bind_addrs(addrs, config, self.acceptor)
    }
}
