//! The sender's settings: one [`SenderConfig`] value, filled directly or through
//! [`SenderBuilder`].

use std::sync::Arc;
use std::time::Duration;

use super::Sender;
use crate::charset::Charset;
use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::hl7::ReplyKind;
use crate::retry::RetryPolicy;
use crate::transport::{Keepalive, TlsClientConfig, TlsConnector};

/// The default connect timeout (TCP connect plus TLS handshake): 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default ACK timeout: 30 s.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The default write timeout: 10 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default idle time after which a held connection is checked before a write: 1 ms.
pub const DEFAULT_IDLE_CHECK: Duration = Duration::from_millis(1);

/// The deadlines of a sender, each measured as wall time however the peer's bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// How long connecting may take, the TLS handshake included. Each resolved address gets
    /// this long for its TCP connect. Default: [`DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect: Duration,
    /// How long writing one message may take, from its first byte to its last. Default:
    /// [`DEFAULT_WRITE_TIMEOUT`] (10 s).
    pub write: Duration,
    /// How long to wait for the acknowledgement after the message was written. Default:
    /// [`DEFAULT_ACK_TIMEOUT`] (30 s).
    pub ack: Duration,
    /// How long one `send` may take in all, every attempt and backoff delay included, or
    /// `None` for no bound beyond the retry policy. When it passes the send fails with
    /// [`Error::Delivery`] whose last error is
    /// [`Timeout::Total`](crate::Timeout::Total); no attempt starts that could not begin
    /// before it. Default: `None`.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    /// Connect 10 s, write 10 s, ACK 30 s, no total bound.
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            write: DEFAULT_WRITE_TIMEOUT,
            ack: DEFAULT_ACK_TIMEOUT,
            total: None,
        }
    }
}

/// Every setting of a [`Sender`] in one value, with one [`Default`]. A sender is built one
/// way, by [`Sender::builder`]: hand it this value ([`SenderBuilder::config`]) or let its
/// setters fill the same fields.
///
/// ```
/// use std::time::Duration;
/// use mllp::hl7::ReplyKind;
/// use mllp::{Sender, SenderConfig};
///
/// let mut config = SenderConfig::default();
/// config.timeouts.ack = Duration::from_secs(5);
/// config.timeouts.total = Some(Duration::from_secs(60));
/// config.reply = ReplyKind::Mllp2;
/// // Nothing is connected yet.
/// let sender = Sender::builder("127.0.0.1:2575").config(config).build()?;
/// assert!(!sender.is_connected());
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SenderConfig {
    /// Framing settings. Default: [`Framing::default`] (`0x0B` … `0x1C 0x0D`, replies of
    /// 16 MiB at most).
    pub framing: Framing,
    /// The character set messages given to [`Sender::send`] as text are encoded to.
    /// [`Sender::send_bytes`] sends bytes unchanged. Default: UTF-8.
    pub charset: Charset,
    /// The deadlines. Default: [`Timeouts::default`].
    pub timeouts: Timeouts,
    /// Whether to set `TCP_NODELAY`, so that each frame leaves at once. Default: `true`.
    pub nodelay: bool,
    /// The TCP keepalive timers of the connection, so that a peer that vanished (behind a
    /// firewall that forgot the connection) is noticed without a message; `None`: keepalive
    /// off. Default: `Some(`[`Keepalive::default`]`)` (first probe after 5 minutes idle, then
    /// one a minute, dropped after 5 unanswered).
    pub keepalive: Option<Keepalive>,
    /// TLS settings for the built-in TLS client ([`TlsClient`](crate::TlsClient)), or `None`
    /// for plain TCP (or for [`tls_connector`](Self::tls_connector)). The server certificate
    /// is verified against the host name of the address unless the configuration names
    /// another one. Default: `None`.
    pub tls: Option<TlsClientConfig>,
    /// TLS through this connector, any [`TlsConnector`] (for example the `mllp-openssl`
    /// crate's, which logs the protocol and cipher of every handshake), instead of the
    /// built-in client of [`tls`](Self::tls); at most one of the two may be set. It runs every
    /// handshake of the sender, under the same connect deadline; an
    /// [`Outbox`](crate::Outbox) given this configuration delivers through it. Default: `None`.
    pub tls_connector: Option<Arc<dyn TlsConnector>>,
    /// The retry policy. Default: [`RetryPolicy::default`] (5 attempts, 250 ms doubling).
    pub retry: RetryPolicy,
    /// What the peer answers with: HL7 acknowledgements or MLLP release 2 commit blocks (see
    /// [`ReplyKind`]). Default: [`ReplyKind::Hl7`].
    pub reply: ReplyKind,
    /// Whether an AR or CR acknowledgement makes the sender send the message again, within the
    /// retry policy; otherwise it is returned to the caller at once. AE and CE are always
    /// returned: they report a problem with the message itself. Default: `false`.
    pub resend_on_reject: bool,
    /// How long a held connection must have been idle (since its last reply) before the
    /// sender checks, without waiting, whether the peer has closed it or sent something, before
    /// writing the next message on it: one system call (a non-blocking peek). Closed, it is
    /// replaced first, which is not a failed attempt. A message whose control ID repeats a
    /// recent one on the connection is always checked first (a doubled ACK of the earlier one
    /// must not be taken for its reply). `Duration::ZERO` checks before every write.
    /// Default: [`DEFAULT_IDLE_CHECK`] (1 ms): back-to-back messages make the system calls
    /// of a plain socket loop, one write and one read each.
    pub idle_check: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            framing: Framing::default(),
            charset: Charset::UTF_8,
            timeouts: Timeouts::default(),
            nodelay: true,
            keepalive: Some(Keepalive::default()),
            tls: None,
            tls_connector: None,
            retry: RetryPolicy::default(),
            reply: ReplyKind::Hl7,
            resend_on_reject: false,
            idle_check: DEFAULT_IDLE_CHECK,
        }
    }
}

impl SenderConfig {
    /// Checks the settings that need no address and no file.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, an invalid retry policy, or both
    /// [`tls`](Self::tls) and [`tls_connector`](Self::tls_connector) set.
    pub fn validate(&self) -> Result<()> {
        if self.tls.is_some() && self.tls_connector.is_some() {
            return Err(Error::Config(
                "TLS settings and a TLS connector were both given: set one".into(),
            ));
        }
        let t = &self.timeouts;
        for (name, t) in [
            ("connect", t.connect),
            ("ACK", t.ack),
            ("write", t.write),
            ("total", t.total.unwrap_or(Duration::MAX)),
        ] {
            if t.is_zero() {
                return Err(Error::Config(format!(
                    "the {name} timeout must be greater than zero"
                )));
            }
        }
        if let Some(k) = &self.keepalive {
            k.validate()?;
        }
        self.retry.validate()
    }
}

/// Settings for a [`Sender`]; made by [`Sender::builder`]. Each method sets a field of the
/// [`SenderConfig`] it fills.
#[derive(Debug, Clone)]
pub struct SenderBuilder {
    pub(super) addr: String,
    pub(super) config: SenderConfig,
}

impl SenderBuilder {
    /// Replaces every setting with `config`.
    pub fn config(mut self, config: SenderConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings so far.
    pub fn current_config(&self) -> &SenderConfig {
        &self.config
    }

    /// Framing settings ([`SenderConfig::framing`]).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.config.framing = framing;
        self
    }

    /// The character set messages given to [`Sender::send`] as text are encoded to
    /// ([`SenderConfig::charset`]).
    pub fn charset(mut self, charset: Charset) -> Self {
        self.config.charset = charset;
        self
    }

    /// Every deadline at once ([`SenderConfig::timeouts`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.config.timeouts = timeouts;
        self
    }

    /// How long connecting may take, the TLS handshake included (default 10 s). Each resolved
    /// address gets this long for its TCP connect.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.connect = timeout;
        self
    }

    /// How long to wait for the acknowledgement after the message was written (default 30 s).
    ///
    /// This is wall time for the whole wait, however the reply's bytes arrive: a peer that
    /// sends one byte at a time, or junk, or a frame that never ends, cannot stretch it.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.ack = timeout;
        self
    }

    /// How long writing one message may take, from its first byte to its last (default 10 s).
    ///
    /// This is wall time for the whole write: a peer that reads slowly, a little at a time,
    /// cannot stretch it.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeouts.write = timeout;
        self
    }

    /// How long one `send` may take in all, retries and backoff included
    /// ([`Timeouts::total`]; default `None`).
    pub fn total_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.timeouts.total = timeout;
        self
    }

    /// Whether to set `TCP_NODELAY`, so that each frame leaves at once (default `true`).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.config.nodelay = nodelay;
        self
    }

    /// The TCP keepalive timers of the connection (default: on, [`Keepalive::default`]: first
    /// probe after 5 minutes idle, then one a minute, dropped after 5 unanswered); `None`:
    /// keepalive off. See [`SenderConfig::keepalive`].
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// Connects with TLS through the built-in client (default: plain TCP), replacing a
    /// [`tls_connector`](Self::tls_connector) given before. The server certificate is verified
    /// against the host name of the address unless the configuration names another one.
    pub fn tls(mut self, config: TlsClientConfig) -> Self {
        self.config.tls = Some(config);
        self.config.tls_connector = None;
        self
    }

    /// Connects with TLS through `connector`, any [`TlsConnector`] (for example the
    /// `mllp-openssl` crate's, which logs the protocol and cipher of every handshake), instead
    /// of the built-in client of [`tls`](Self::tls), which it replaces. Every handshake runs
    /// within the connect timeout, and failures are handled as there: a refused server
    /// certificate is not tried again.
    pub fn tls_connector(mut self, connector: Arc<dyn TlsConnector>) -> Self {
        self.config.tls = None;
        self.config.tls_connector = Some(connector);
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]: 5 attempts, 250 ms doubling).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// What the peer answers with (default [`ReplyKind::Hl7`]); see [`ReplyKind`].
    pub fn reply(mut self, kind: ReplyKind) -> Self {
        self.config.reply = kind;
        self
    }

    /// Whether an AR or CR acknowledgement makes the sender send the message again, within the
    /// retry policy (default `false`: it is returned to the caller at once). AE and CE are
    /// always returned: they report a problem with the message itself.
    pub fn resend_on_reject(mut self, resend: bool) -> Self {
        self.config.resend_on_reject = resend;
        self
    }

    /// How long a held connection must have been idle before it is checked ahead of a write
    /// ([`SenderConfig::idle_check`]; default 1 ms; zero: before every write).
    pub fn idle_check(mut self, idle: Duration) -> Self {
        self.config.idle_check = idle;
        self
    }

    /// Checks the settings and makes the sender. Nothing is connected yet.
    ///
    /// # Errors
    /// [`Error::Config`] for an address without a host or a valid port, a zero timeout or an
    /// invalid retry policy; [`Error::Tls`] when a CA certificate or the client identity cannot
    /// be read (or [`Error::Config`] when TLS is asked for in a build without the `tls`
    /// feature).
    pub fn build(self) -> Result<Sender> {
        Sender::with_config(self.addr, self.config)
    }
}

/// Checks that `addr` looks like `host:port`, without resolving it.
pub(super) fn check_addr(addr: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Config(format!(
            "{addr:?} is not a host:port address: {why}"
        )))
    };
    if addr.trim().is_empty() {
        return Err(Error::Config("the address is empty".into()));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("the port is missing");
    };
    if host.is_empty() || host == "[]" {
        return bad("the host is missing");
    }
    // An IPv6 address is written in brackets, `[::1]:2575`: a colon in the host, or a
    // bracket on one side only, means the address is cut or mistyped.
    match (host.strip_prefix('['), host.ends_with(']')) {
        (Some(inner), true) => {
            let inner = &inner[..inner.len() - 1];
            // A zone (`%eth0`) may follow a link-local address.
            let ip = inner.split_once('%').map_or(inner, |(ip, _)| ip);
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return bad("the host in brackets is not an IPv6 address");
            }
        }
        (None, false) if !host.contains([':', '[', ']']) => {}
        _ => {
            return bad(
                "an IPv6 address goes in brackets with the port after them, as in [::1]:2575",
            )
        }
    }
    match port.parse::<u16>() {
        Ok(0) => bad("port 0 cannot be connected to"),
        Ok(_) => Ok(()),
        Err(_) => bad("the port is not a number from 1 to 65535"),
    }
}
