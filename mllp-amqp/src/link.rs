//! The connection to the broker: opened on demand, hosts tried in order, dropped on the first
//! error and opened again by the next operation (no automatic recovery, which could lose a
//! confirm), and the blocking facade over lapin's futures.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use log::{debug, info, warn};

use crate::config::{AmqpConfig, Target};
use crate::error::Error;

/// Runs `future` to completion on this thread (lapin's I/O runs on the global executor).
pub(crate) fn block_on<T>(future: impl Future<Output = T>) -> T {
    futures_lite::future::block_on(future)
}

/// `future`, or [`Error::Timeout`] once `after` has passed.
pub(crate) async fn within<T>(
    after: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    futures_lite::future::or(future, async move {
        async_io::Timer::after(after).await;
        Err(Error::Timeout { what, after })
    })
    .await
}

/// An open connection, and which one it is.
pub(crate) struct Live {
    pub(crate) connection: Connection,
    /// Counts connections of this link: a failure of an older one never drops a newer one.
    pub(crate) generation: u64,
    /// The index of its host in [`AmqpConfig::hosts`].
    pub(crate) host: usize,
}

impl Live {
    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected()
    }

    /// A new channel on this connection.
    pub(crate) async fn channel(&self) -> Result<Channel, Error> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| Error::broker("open a channel", e))
    }

    /// A new channel in confirm mode on this connection.
    pub(crate) async fn confirm_channel(&self) -> Result<Channel, Error> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| Error::broker("confirm mode", e))?;
        Ok(channel)
    }
}

struct State {
    live: Option<Arc<Live>>,
    /// Where the next connection attempt starts.
    next_host: usize,
}

/// The connection manager shared by a store's (or forwarder's) threads.
pub(crate) struct Link {
    pub(crate) config: AmqpConfig,
    /// Names the connection in the broker's management views.
    client: &'static str,
    /// Whether a missing queue is declared (a store) or an error (a consumer).
    create_queue: bool,
    state: Mutex<State>,
    /// Held while connecting, so that concurrent callers wait for one attempt.
    connecting: Mutex<()>,
    generations: AtomicU64,
}

impl Link {
    pub(crate) fn new(config: AmqpConfig, client: &'static str) -> Link {
        Link {
            config,
            client,
            create_queue: true,
            state: Mutex::new(State {
                live: None,
                next_host: 0,
            }),
            connecting: Mutex::new(()),
            generations: AtomicU64::new(0),
        }
    }

    /// This link, for a consumer: a queue that does not exist is [`Error::NoQueue`] instead
    /// of being declared.
    pub(crate) fn without_creating_the_queue(mut self) -> Link {
        self.create_queue = false;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open connection, if there is one.
    pub(crate) fn current(&self) -> Option<Arc<Live>> {
        let state = self.state();
        state.live.as_ref().filter(|l| l.is_open()).cloned()
    }

    /// The open connection, connecting first if there is none; gives up at `deadline` (`None`:
    /// wait for a connection attempt in progress, then try every host once).
    pub(crate) fn get(&self, deadline: Option<Instant>) -> Result<Arc<Live>, Error> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let _guard = match deadline {
            None => self.connecting.lock().unwrap_or_else(|p| p.into_inner()),
            Some(deadline) => loop {
                match self.connecting.try_lock() {
                    Ok(guard) => break guard,
                    Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        if Instant::now() >= deadline {
                            return Err(Error::Connect(
                                "a connection attempt is still in progress".into(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            },
        };
        // Another thread may have connected while this one waited.
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let live = Arc::new(self.connect(deadline)?);
        self.state().live = Some(Arc::clone(&live));
        Ok(live)
    }

    /// Drops `live` after an error on it (unless a newer connection replaced it already); the
    /// next connection starts with the host after its host.
    pub(crate) fn broken(&self, live: &Live, why: &Error) {
        let mut state = self.state();
        if state
            .live
            .as_ref()
            .is_some_and(|l| l.generation == live.generation)
        {
            warn!(
                "dropping the connection to {}: {why}",
                self.config.hosts[live.host]
            );
            state.live = None;
            state.next_host = (live.host + 1) % self.config.hosts.len();
            drop(state);
            // Closing a connection the broker already lost fails at once; ignore it.
            let _ = block_on(within(Duration::from_millis(200), "close", async {
                live.connection
                    .close(320, "mllp: dropping the connection after an error".into())
                    .await
                    .map_err(|e| Error::broker("close", e))
            }));
        }
    }

    /// Closes the connection, if open (on drop of its owner).
    pub(crate) fn close(&self) {
        let live = self.state().live.take();
        if let Some(live) = live.filter(|l| l.is_open()) {
            let _ = block_on(within(Duration::from_secs(1), "close", async {
                live.connection
                    .close(200, "mllp: closing".into())
                    .await
                    .map_err(|e| Error::broker("close", e))
            }));
        }
    }

    /// Connects to the first host that answers, starting at `next_host`.
    fn connect(&self, deadline: Option<Instant>) -> Result<Live, Error> {
        let hosts = &self.config.hosts;
        let start = self.state().next_host;
        let mut reasons = Vec::new();
        for i in 0..hosts.len() {
            let index = (start + i) % hosts.len();
            let mut timeout = self.config.connect_timeout;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    reasons.push(format!("{}: not tried (out of time)", hosts[index]));
                    continue;
                }
                timeout = timeout.min(left);
            }
            match block_on(within(timeout, "connection", self.open(index))) {
                Ok(connection) => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                    info!(
                        "connected to the broker at {} ({})",
                        hosts[index], self.config.vhost
                    );
                    let live = Live {
                        connection,
                        generation,
                        host: index,
                    };
                    if let Err(e) = block_on(within(timeout, "declare", self.declare(&live))) {
                        self.state().next_host = index;
                        let _ = block_on(within(Duration::from_millis(200), "close", async {
                            live.connection
                                .close(200, "mllp: the queue or exchange is unusable".into())
                                .await
                                .map_err(|e| Error::broker("close", e))
                        }));
                        return Err(e);
                    }
                    self.state().next_host = index;
                    return Ok(live);
                }
                Err(e) => {
                    debug!("cannot connect to {}: {e}", hosts[index]);
                    reasons.push(format!("{}: {}", hosts[index], innermost(&e)));
                }
            }
        }
        self.state().next_host = start;
        Err(Error::Connect(reasons.join("; ")))
    }

    async fn open(&self, index: usize) -> Result<Connection, Error> {
        let c = &self.config;
        let uri = AMQPUri {
            scheme: if c.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: c.username.clone(),
                    password: c.password.clone(),
                },
                host: c.hosts[index].host.clone(),
                port: c.hosts[index].port,
            },
            vhost: c.vhost.clone(),
            query: AMQPQueryString {
                frame_max: c.frame_max,
                channel_max: c.channel_max,
                heartbeat: c.heartbeat,
                connection_timeout: None,
                auth_mechanism: None,
            },
        };
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from(self.client));
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: c.tls_ca_pem.clone(),
        };
        let runtime = lapin::runtime::default_runtime().map_err(|e| Error::broker("start", e))?;
        Connection::connect_uri_with_config(uri, properties, tls, runtime)
            .await
            .map_err(|e| Error::broker("connect", e))
    }

    /// Declares the queue (durable, if it does not exist yet and the link creates it: an
    /// existing queue is used as it is, whatever its arguments), or checks that the exchange
    /// exists.
    async fn declare(&self, live: &Live) -> Result<(), Error> {
        match &self.config.target {
            Target::Queue(queue) => self.declare_queue(live, queue, self.create_queue).await,
            Target::Exchange { .. } => self.verify(live).await,
        }
    }
}

impl Link {
    /// Checks, without declaring anything, that the queue or the exchange is there: a passive
    /// declare on a channel of its own (a deleted queue is [`Error::Broker`], `NOT_FOUND`).
    pub(crate) async fn verify(&self, live: &Live) -> Result<(), Error> {
        let channel = live.channel().await?;
        let found = match &self.config.target {
            Target::Queue(queue) => {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::broker("find the queue", e))
            }
            Target::Exchange { exchange, .. } if exchange.is_empty() => Ok(()),
            Target::Exchange { exchange, .. } => {
                let passive = ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                };
                channel
                    .exchange_declare(
                        exchange.as_str().into(),
                        ExchangeKind::Direct,
                        passive,
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| Error::broker("find the exchange", e))
            }
        };
        // A refusal closed the channel already.
        if found.is_ok() {
            let _ = channel.close(200, "checked".into()).await;
        }
        found
    }
}

impl Link {
    /// Checks that `queue` exists (a passive declare) and, when it does not, declares it
    /// durable (with the configured `x-queue-type`) if `create`, else fails with
    /// [`Error::NoQueue`]. An existing queue is used as it is, whatever its arguments.
    pub(crate) async fn declare_queue(
        &self,
        live: &Live,
        queue: &str,
        create: bool,
    ) -> Result<(), Error> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let channel = live.channel().await?;
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(_) => {
                let _ = channel.close(200, "declared".into()).await;
                return Ok(());
            }
            // NOT_FOUND closes the channel: declare it on another.
            Err(e) if is_not_found(&e) && !create => return Err(Error::NoQueue(queue.into())),
            Err(e) if e.is_amqp_soft_error() => {}
            Err(e) => return Err(Error::broker("declare the queue", e)),
        }
        let mut arguments = FieldTable::default();
        if let Some(kind) = &self.config.queue_type {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(kind.as_str().into()),
            );
        }
        let channel = live.channel().await?;
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(|e| Error::broker("declare the queue", e))?;
        info!("declared the durable queue {queue}");
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }
}

/// Whether the broker answered NOT_FOUND (404).
fn is_not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p)
        if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

/// The innermost cause of an error, for one-line reasons.
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}
