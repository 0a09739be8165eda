//! [`ListenerConfig`]: every setting of a listener in one value, with its defaults.

use std::time::Duration;

use crate::charset::{Charset, Malformed};
use crate::cidr::Cidr;
use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::hl7::{AckMode, ReplyKind};
use crate::transport::{Keepalive, TlsServerConfig};

/// The default maximum number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;
/// The default eviction threshold: 5 s. See [`ListenerConfig::evict_after`].
pub const DEFAULT_EVICT_AFTER: Duration = Duration::from_secs(5);
/// The default frame timeout: 60 s.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(60);
/// The default bound on TLS connections without a slot yet (in their handshake, or waiting for
/// a slot): 64.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;
/// The default TLS handshake timeout: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default timeout for writing an acknowledgement: 10 s.
pub const DEFAULT_ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default shutdown grace period: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The default stack size of connection threads: 128 KiB.
pub const DEFAULT_STACK_SIZE: usize = 128 * 1024;
/// The smallest stack size accepted for connection threads: 64 KiB.
pub const MIN_STACK_SIZE: usize = 64 * 1024;
/// The largest stack size accepted for connection threads: 64 MiB (eight times a main
/// thread's usual 8 MiB). Every connection has a thread with a stack this size: a larger one
/// fails to start (`SIZE_MAX / 2`), and each connection would be dropped.
pub const MAX_STACK_SIZE: usize = 64 * 1024 * 1024;

/// What happens to a new connection when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Accept it and close it at once (logged at info, counted). The default.
    #[default]
    Refuse,
    /// Hold it unserved and stop accepting until a slot frees; further connections wait in
    /// the kernel's listen backlog.
    Backlog,
}

/// Every setting of a [`Listener`](super::Listener), with one [`Default`]: hand it to
/// [`ListenerBuilder::config`](super::ListenerBuilder::config) (one way to build a listener:
/// the builder), whose setters fill the same fields. Values are checked when the listener is bound.
///
/// ```
/// use std::time::Duration;
/// use mllp::{Listener, ListenerConfig};
///
/// let mut config = ListenerConfig::default();
/// config.max_connections = 1;
/// config.replace_idle = true;
/// config.idle_timeout = Some(Duration::from_secs(600));
/// let listener = Listener::builder("127.0.0.1:0").config(config).bind()?;
/// assert_ne!(listener.local_addr().port(), 0);
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Start and end sequences, the largest message accepted (larger ones are skipped and
    /// answered with a NAK; the connection stays up), lenient end. Default:
    /// [`Framing::default`] (`0x0B` … `0x1C 0x0D`, 16 MiB).
    pub framing: Framing,
    /// The character set messages are decoded from. Default: UTF-8.
    pub charset: Charset,
    /// Whether to decode each message in the character set its MSH-18 names, when it names a
    /// known one; otherwise, and for an unknown name, [`charset`](Self::charset). Default:
    /// `true`.
    pub detect_msh18: bool,
    /// A message holding bytes not valid in its character set: [`Malformed::Reject`] (the
    /// default) answers `AE` (`CE`) naming the byte offset of the first such sequence, without
    /// calling the handler; [`Malformed::Replace`] hands it on with U+FFFD in their place.
    pub malformed: Malformed,
    /// The most connections served at once, at least 1. Default:
    /// [`DEFAULT_MAX_CONNECTIONS`] (10).
    pub max_connections: usize,
    /// What happens to a connection beyond the maximum. Default: [`Overflow::Refuse`].
    pub overflow: Overflow,
    /// With `max_connections` 1, whether a new connection replaces an idle one (see the
    /// [`Listener`](super::Listener) documentation); ignored otherwise. Default: `false`.
    pub replace_idle: bool,
    /// When every slot is taken, a new connection takes the slot of the connection that has
    /// gone longest without completing a frame, once that is at least this long; `None`:
    /// never, the [overflow policy](Self::overflow) applies at once. A connection whose
    /// message is being handled is never evicted; evictions are logged at warn and counted in
    /// [`ListenerStats::connections_evicted`](super::ListenerStats::connections_evicted).
    /// Default: [`DEFAULT_EVICT_AFTER`] (5 s).
    pub evict_after: Option<Duration>,
    /// How long a started frame may take to complete; `None`: no limit. Default:
    /// [`DEFAULT_FRAME_TIMEOUT`] (60 s).
    pub frame_timeout: Option<Duration>,
    /// How long a connection may go without a message before it is closed; `None`: no limit
    /// (the default: long idle connections are normal in HL7).
    pub idle_timeout: Option<Duration>,
    /// How long writing one acknowledgement may take before the connection is closed; `None`:
    /// no limit. Default: [`DEFAULT_ACK_WRITE_TIMEOUT`] (10 s).
    pub write_timeout: Option<Duration>,
    /// How long a TLS handshake may take. Default: [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s).
    pub handshake_timeout: Duration,
    /// With TLS, the most connections without a slot at once: a connection runs its
    /// handshake before it takes a slot (a peer that stalls in it holds no slot), and when
    /// this many are pending the oldest still in its handshake is closed for the newcomer
    /// (counted in [`ListenerStats::handshakes_dropped`](super::ListenerStats::handshakes_dropped)).
    /// Each pending connection has a thread. At least 1. Default: [`DEFAULT_MAX_HANDSHAKES`]
    /// (64).
    pub max_handshakes: usize,
    /// What messages are answered with: HL7 acknowledgements or MLLP release 2 commit blocks
    /// (see [`ReplyKind`]). Default: [`ReplyKind::Hl7`].
    pub reply: ReplyKind,
    /// The mode of HL7 acknowledgements: [`AckMode::Original`] (the default) answers AA/AE/AR
    /// to every message whatever MSH-15/16 say, which is what MLLP senders wait for;
    /// [`AckMode::Auto`] follows the message, original mode when MSH-15 and MSH-16 are empty,
    /// enhanced mode (CA/CE/CR, sent according to MSH-15: none for `NE`) when either is valued.
    /// Choose `Auto` only for peers that speak enhanced mode: many senders fill MSH-15/16 (13
    /// of the sample corpus's real messages do, `NE` in several) and still wait for an ACK to
    /// each message. Not used when [`reply`](Self::reply) is [`ReplyKind::Mllp2`].
    pub ack_mode: AckMode,
    /// How long shutdown waits for messages being handled to be acknowledged. Default:
    /// [`DEFAULT_SHUTDOWN_GRACE`] (10 s).
    pub shutdown_grace: Duration,
    /// The stack size of connection threads, in bytes, from [`MIN_STACK_SIZE`] to
    /// [`MAX_STACK_SIZE`]. The
    /// handler (and a [`Store`](crate::Store)) runs on this stack: raise it for deep recursion
    /// or large local arrays. Default: [`DEFAULT_STACK_SIZE`] (128 KiB), for every listener,
    /// whatever language starts it.
    pub stack_size: usize,
    /// Serve TLS with these settings; `None` (the default): plain TCP. A client whose
    /// handshake fails or times out loses only its own connection (logged at warn, counted in
    /// [`ListenerStats::tls_failures`](super::ListenerStats::tls_failures)). The built-in
    /// acceptor neither requests nor verifies client certificates (a limit of `native-tls`):
    /// see [`ListenerBuilder::tls_acceptor`](super::ListenerBuilder::tls_acceptor).
    pub tls: Option<TlsServerConfig>,
    /// The TCP keepalive timers of accepted connections, so that a sender that vanished
    /// (behind a firewall that forgot the connection) frees its slot without a message;
    /// `None`: keepalive off. Default: `Some(`[`Keepalive::default`]`)` (first probe after 5
    /// minutes idle, then one a minute, dropped after 5 unanswered).
    pub keepalive: Option<Keepalive>,
    /// The peers that may connect (their address after any PROXY protocol header); empty (the
    /// default): everyone. A peer outside every block is closed before it gets a slot, a TLS
    /// handshake or a thread, logged at info and counted in
    /// [`ListenerStats::connections_denied`](super::ListenerStats::connections_denied).
    /// A proxy listed in [`proxy_protocol_from`](Self::proxy_protocol_from) is trusted: the
    /// clients its headers name are checked, its own connections (a `LOCAL` or `UNKNOWN`
    /// header, a health check that connects and closes) are not.
    pub allow: Vec<Cidr>,
    /// The proxies whose connections start with a PROXY protocol header (version 1 or 2,
    /// such as HAProxy's `send-proxy-v2`); empty (the default): the PROXY protocol is off.
    /// From these addresses the header is required, and the client it names is the peer that
    /// logs, [`Message::peer_addr`](super::Message::peer_addr), stores and the allow list see;
    /// a connection from anyone else that starts with a header is refused. The header is read
    /// on the connection's thread before the TLS handshake and before a slot, within the
    /// [`handshake_timeout`](Self::handshake_timeout); connections wait for it among the
    /// [`max_handshakes`](Self::max_handshakes) pending ones. A missing, malformed or
    /// unlisted header closes the connection, logged at warn and counted in
    /// [`ListenerStats::proxy_refused`](super::ListenerStats::proxy_refused).
    pub proxy_protocol_from: Vec<Cidr>,
}

impl Default for ListenerConfig {
    fn default() -> ListenerConfig {
        ListenerConfig {
            framing: Framing::default(),
            charset: Charset::UTF_8,
            detect_msh18: true,
            malformed: Malformed::Reject,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            overflow: Overflow::Refuse,
            replace_idle: false,
            evict_after: Some(DEFAULT_EVICT_AFTER),
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            idle_timeout: None,
            write_timeout: Some(DEFAULT_ACK_WRITE_TIMEOUT),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            reply: ReplyKind::Hl7,
            ack_mode: AckMode::Original,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            stack_size: DEFAULT_STACK_SIZE,
            tls: None,
            keepalive: Some(Keepalive::default()),
            allow: Vec::new(),
            proxy_protocol_from: Vec::new(),
        }
    }
}

impl ListenerConfig {
    /// Checks a [stack size](Self::stack_size) for connection threads: from
    /// [`MIN_STACK_SIZE`] to [`MAX_STACK_SIZE`] bytes. (The one check of the value, for the
    /// builders and the C API.)
    ///
    /// # Errors
    /// [`Error::Config`] naming the bound the value is outside.
    pub fn check_stack_size(bytes: usize) -> Result<()> {
        if bytes < MIN_STACK_SIZE {
            return Err(Error::Config(format!(
                "the connection thread stack size must be at least {MIN_STACK_SIZE} bytes, not {bytes}"
            )));
        }
        if bytes > MAX_STACK_SIZE {
            return Err(Error::Config(format!(
                "the connection thread stack size must be at most {MAX_STACK_SIZE} bytes, not {bytes}"
            )));
        }
        Ok(())
    }

    /// Checks every value; the first invalid one as [`Error::Config`].
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::Config(
                "the maximum number of connections must be at least 1".into(),
            ));
        }
        if self.max_handshakes == 0 {
            return Err(Error::Config(
                "the maximum number of pending TLS handshakes must be at least 1".into(),
            ));
        }
        Self::check_stack_size(self.stack_size)?;
        if let Some(k) = &self.keepalive {
            k.validate()?;
        }
        for (name, value) in [
            ("frame timeout", self.frame_timeout),
            ("idle timeout", self.idle_timeout),
            ("write timeout", self.write_timeout),
            ("handshake timeout", Some(self.handshake_timeout)),
            ("eviction threshold", self.evict_after),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(Error::Config(format!(
                    "the {name} must be greater than zero"
                )));
            }
        }
        Ok(())
    }
}
