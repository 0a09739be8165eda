//! Where and how to reach the broker: [`AmqpConfig`], read from an AMQP URL with several hosts.

use mllp::store::percent_decode;
use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// Where messages are published: a queue through the default exchange, or an existing
/// exchange with a routing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `queue=NAME`: the queue is declared durable (if it does not exist yet) and messages go
    /// to the default exchange with routing key `NAME`. The forwarder consumes from it.
    Queue(String),
    /// `exchange=E&routing_key=K`: publish to the existing exchange `E` with routing key `K`;
    /// nothing is declared.
    Exchange {
        /// The exchange's name.
        exchange: String,
        /// The routing key of every message.
        routing_key: String,
    },
}

impl Target {
    /// The exchange a message is published to (`""`, the default exchange, for a queue).
    pub fn exchange(&self) -> &str {
        match self {
            Target::Queue(_) => "",
            Target::Exchange { exchange, .. } => exchange,
        }
    }

    /// The routing key a message is published with (the queue's name for a queue).
    pub fn routing_key(&self) -> &str {
        match self {
            Target::Queue(queue) => queue,
            Target::Exchange { routing_key, .. } => routing_key,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue {q}"),
            Target::Exchange {
                exchange,
                routing_key,
            } => write!(f, "exchange {exchange} key {routing_key}"),
        }
    }
}

/// One broker node: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// A name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The AMQP port (5672 by default, 5671 for `amqps`).
    pub port: u16,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to reach the broker and where messages go.
///
/// Usually read from a URL with [`AmqpConfig::from_url`]:
///
/// ```text
/// amqp[s]://[USER[:PASS]@]HOST[:PORT][,HOST[:PORT]...][/VHOST]?queue=NAME[&queue_type=quorum]
/// amqp[s]://.../VHOST?exchange=E&routing_key=K
/// ```
///
/// `USER`, `PASS` and `VHOST` are percent-encoded (`%2f` is the vhost `/`, which is also the
/// vhost of a URL with no path). The hosts are tried in order; after a connection is lost, the
/// next connection starts with the host after the one that failed. Further query parameters:
/// `heartbeat` (seconds), `connection_timeout` and `confirm_timeout` (milliseconds),
/// `frame_max`, `channel_max`.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqps`: TLS to the broker.
    pub tls: bool,
    /// The broker's nodes, tried in order (at least one).
    pub hosts: Vec<Host>,
    /// The user name (default `guest`).
    pub username: String,
    /// The password (default `guest`); never shown by `Debug` or [`AmqpConfig::name`].
    pub password: String,
    /// The virtual host (default `/`).
    pub vhost: String,
    /// Where messages are published, or consumed from.
    pub target: Target,
    /// `queue_type`: the `x-queue-type` of a queue this crate declares (`quorum`, `classic`,
    /// `stream`), or `None` for the broker's default.
    pub queue_type: Option<String>,
    /// How long connecting to one host may take, TLS and AMQP handshake included (default
    /// 2 s).
    pub connect_timeout: Duration,
    /// How long a publish may wait for the broker's confirm before it counts as failed
    /// (default 5 s).
    pub confirm_timeout: Duration,
    /// The heartbeat to ask for, in seconds (`None`: the broker's, usually 60).
    pub heartbeat: Option<u16>,
    /// The largest frame to ask for (`None`: the broker's).
    pub frame_max: Option<u32>,
    /// The most channels to ask for (`None`: the broker's).
    pub channel_max: Option<u16>,
    /// PEM certificates to trust for `amqps` besides the system's (`None`: the system's only).
    pub tls_ca_pem: Option<String>,
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("name", &self.name())
            .field("username", &self.username)
            .field("queue_type", &self.queue_type)
            .field("connect_timeout", &self.connect_timeout)
            .field("confirm_timeout", &self.confirm_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("tls_ca_pem", &self.tls_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Default of [`AmqpConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of [`AmqpConfig::confirm_timeout`].
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

impl AmqpConfig {
    /// Reads a URL of the form described at [`AmqpConfig`].
    ///
    /// # Errors
    /// [`Error::Url`] naming what is wrong (never quoting the password).
    pub fn from_url(url: &str) -> Result<AmqpConfig, Error> {
        let bad = |why: &str| Error::Url(why.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("an AMQP URL starts with amqp:// or amqps://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "amqp" => false,
            "amqps" => true,
            _ => return Err(bad("an AMQP URL starts with amqp:// or amqps://")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        if rest.contains('#') || query.is_some_and(|q| q.contains('#')) {
            return Err(bad("an AMQP URL takes no #fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        // The user information ends at the last '@' (a password may hold an encoded one).
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let user =
                    percent_decode(user).ok_or_else(|| bad("the user name has a bad % escape"))?;
                let pass =
                    percent_decode(pass).ok_or_else(|| bad("the password has a bad % escape"))?;
                (user, pass)
            }
        };
        let default_port = if tls { 5671 } else { 5672 };
        let hosts = hosts
            .split(',')
            .map(|h| parse_host(h, default_port))
            .collect::<Result<Vec<Host>, Error>>()?;
        let vhost = match path {
            None => "/".to_owned(),
            Some(p) if p.contains('/') => {
                return Err(bad(
                    "the virtual host is one path segment: write / inside it as %2f",
                ))
            }
            Some(p) => {
                percent_decode(p).ok_or_else(|| bad("the virtual host has a bad % escape"))?
            }
        };
        let mut config = AmqpConfig {
            tls,
            hosts,
            username,
            password,
            vhost,
            target: Target::Queue(String::new()),
            queue_type: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            heartbeat: None,
            frame_max: None,
            channel_max: None,
            tls_ca_pem: None,
        };
        let (mut queue, mut exchange, mut routing_key) = (None, None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| Error::Url(format!("the value of {key} has a bad % escape")))?;
            let number = |what: &str| -> Result<u64, Error> {
                value
                    .parse()
                    .map_err(|_| Error::Url(format!("{key} is {what}, not {value:?}")))
            };
            match key {
                "queue" => queue = Some(value),
                "exchange" => exchange = Some(value),
                "routing_key" => routing_key = Some(value),
                "queue_type" => config.queue_type = Some(value).filter(|v| !v.is_empty()),
                "heartbeat" => {
                    let n = number("a number of seconds")?;
                    config.heartbeat =
                        Some(u16::try_from(n).map_err(|_| bad("heartbeat is too large"))?);
                }
                "connection_timeout" => {
                    config.connect_timeout = positive_ms(number("a number of milliseconds")?, key)?;
                }
                "confirm_timeout" => {
                    config.confirm_timeout = positive_ms(number("a number of milliseconds")?, key)?;
                }
                "frame_max" => {
                    let n = number("a number of bytes")?;
                    config.frame_max =
                        Some(u32::try_from(n).map_err(|_| bad("frame_max is too large"))?);
                }
                "channel_max" => {
                    let n = number("a number")?;
                    config.channel_max =
                        Some(u16::try_from(n).map_err(|_| bad("channel_max is too large"))?);
                }
                other => {
                    return Err(Error::Url(format!(
                        "unknown parameter {other:?}: an AMQP URL takes queue, exchange, \
                         routing_key, queue_type, heartbeat, connection_timeout, \
                         confirm_timeout, frame_max and channel_max"
                    )))
                }
            }
        }
        config.target = match (queue, exchange, routing_key) {
            (Some(q), None, None) if !q.is_empty() => Target::Queue(q),
            (None, Some(e), k) if !e.is_empty() => Target::Exchange {
                exchange: e,
                routing_key: k.unwrap_or_default(),
            },
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad(
                    "give either queue=NAME or exchange=E&routing_key=K, not both",
                ))
            }
            _ => {
                return Err(bad(
                    "say where messages go: ?queue=NAME, or ?exchange=E&routing_key=K",
                ))
            }
        };
        if config.queue_type.is_some() && !matches!(config.target, Target::Queue(_)) {
            return Err(bad(
                "queue_type applies to queue=NAME only (an exchange is not declared)",
            ));
        }
        Ok(config)
    }

    /// Trusts the PEM certificate(s) `pem` for `amqps`, besides the system's roots.
    #[must_use]
    pub fn tls_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.tls_ca_pem = Some(pem.into());
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`confirm_timeout`](Self::confirm_timeout).
    #[must_use]
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// The URL without credentials, for logs: `amqp://h1:5672,h2:5672/%2f?queue=NAME`.
    pub fn name(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(Host::to_string).collect();
        let query = match &self.target {
            Target::Queue(q) => format!("queue={}", encode(q)),
            Target::Exchange {
                exchange,
                routing_key,
            } => format!(
                "exchange={}&routing_key={}",
                encode(exchange),
                encode(routing_key)
            ),
        };
        format!(
            "{}://{}/{}?{query}",
            if self.tls { "amqps" } else { "amqp" },
            hosts.join(","),
            encode(&self.vhost)
        )
    }
}

fn positive_ms(ms: u64, key: &str) -> Result<Duration, Error> {
    if ms == 0 {
        return Err(Error::Url(format!("{key} must be at least 1 ms")));
    }
    Ok(Duration::from_millis(ms))
}

fn parse_host(spec: &str, default_port: u16) -> Result<Host, Error> {
    let bad = |why: String| Error::Url(why);
    if spec.is_empty() {
        return Err(bad(
            "a host is missing (amqp://HOST[:PORT][,HOST[:PORT]...])".into(),
        ));
    }
    let (host, port) =
        if let Some(rest) = spec.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(format!("host {spec:?}: an IPv6 address needs its ']'")))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| {
                        bad(format!("host {spec:?}: ':PORT' must follow the ']'"))
                    })?),
                ),
            }
        } else {
            match spec.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (spec, None),
            }
        };
    if host.is_empty() {
        return Err(bad(format!("host {spec:?} has no name")));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(format!("host {spec:?}: the port must be 1-65535"))),
        },
    };
    Ok(Host {
        host: host.to_owned(),
        port,
    })
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_hosts_credentials_and_vhost() {
        let c = AmqpConfig::from_url(
            "amqp://u%40x:p%3Aw@h1:1,h2,[::1]:3/%2f?queue=q1&queue_type=quorum&heartbeat=5",
        )
        .unwrap();
        assert!(!c.tls);
        let hosts: Vec<String> = c.hosts.iter().map(Host::to_string).collect();
        assert_eq!(hosts, ["h1:1", "h2:5672", "[::1]:3"]);
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u@x", "p:w"));
        assert_eq!(c.vhost, "/");
        assert_eq!(c.target, Target::Queue("q1".into()));
        assert_eq!(c.queue_type.as_deref(), Some("quorum"));
        assert_eq!(c.heartbeat, Some(5));
        assert_eq!(c.name(), "amqp://h1:1,h2:5672,[::1]:3/%2f?queue=q1");
        assert!(!format!("{c:?}").contains("p:w"));

        let c = AmqpConfig::from_url("AMQPS://h?exchange=ex&routing_key=a.b&confirm_timeout=250")
            .unwrap();
        assert!(c.tls);
        assert_eq!(c.hosts[0].port, 5671);
        assert_eq!((c.username.as_str(), c.vhost.as_str()), ("guest", "/"));
        assert_eq!(c.target.exchange(), "ex");
        assert_eq!(c.target.routing_key(), "a.b");
        assert_eq!(c.confirm_timeout, Duration::from_millis(250));
        assert_eq!(
            AmqpConfig::from_url("amqp://h/prod?queue=q").unwrap().vhost,
            "prod"
        );
    }

    #[test]
    fn bad_urls_are_named_without_the_password() {
        for url in [
            "http://h?queue=q",
            "amqp://h",
            "amqp://h?queue=",
            "amqp://h?queue=q&exchange=e",
            "amqp://h?exchange=e&queue_type=quorum",
            "amqp://h:0?queue=q",
            "amqp://h:99999?queue=q",
            "amqp://h1,,h2?queue=q",
            "amqp://[::1?queue=q",
            "amqp://h/a/b?queue=q",
            "amqp://h?queue=q&nope=1",
            "amqp://h?queue=q&heartbeat=x",
            "amqp://h?queue=q&confirm_timeout=0",
            "amqp://u:secret@h/%zz?queue=q",
            "amqp://h?queue=q#f",
        ] {
            let e = AmqpConfig::from_url(url).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{url}: {e}");
        }
    }
}
