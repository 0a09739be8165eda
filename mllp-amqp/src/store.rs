//! [`AmqpStore`]: a [`Store`] that publishes each message to RabbitMQ and returns only after
//! the broker's publisher confirm.

use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use log::debug;
use mllp::{Receipt, Store, StoreError, StoredMessage};

use crate::config::AmqpConfig;
use crate::error::Error;
use crate::link::{block_on, innermost, within, Link, Live};

/// The `content_type` of every published message.
pub const CONTENT_TYPE: &str = "application/hl7-v2";

/// How long [`Store::check`] may take: connecting when no connection is open, and finding the
/// queue or exchange.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The most idle confirm channels kept for reuse (more concurrent publishers open more, and
/// close them when done).
const POOL_MAX: usize = 64;

/// A [`Store`] in RabbitMQ (AMQP 0-9-1): each message is published persistent
/// (`delivery_mode` 2) and `mandatory` on a channel in confirm mode, and
/// [`save`](Store::save) returns only after the broker confirmed it, so a listener answers
/// `AA` only for a message the broker has taken responsibility for.
///
/// * **Properties**: `message_id` MSH-10, `content_type` `application/hl7-v2`,
///   `content_encoding` `utf-8` (the body is the message as UTF-8), `timestamp` the second it
///   was received, and headers `msh9`, `sending_application`, `sending_facility` (each only
///   when the field has a value), `peer` (the sender's address), `tls_subject` (the verified
///   subject of the client's TLS certificate, only with mutual TLS) and `charset` (the
///   character set on the wire).
/// * **Errors**: a message the broker returned as unroutable, or an operation it refused
///   (NOT_FOUND, ACCESS_REFUSED...), is [`Refused`](mllp::StoreErrorKind::Refused); a nack, a
///   confirm that did not come within [`AmqpConfig::confirm_timeout`], a lost connection and
///   an unreachable broker are [`Retryable`](mllp::StoreErrorKind::Retryable) (the message
///   may have been kept anyway: a resend then makes a duplicate with the same `message_id`).
/// * **Concurrency**: each saving thread takes a confirm channel of its own from a pool on one
///   connection, so concurrent connections of a listener have their confirms outstanding at
///   the same time.
/// * **Failures**: the first error drops the channel (and the connection, if it is the
///   problem); the next save connects again, starting with the next host of the URL. There is
///   no automatic recovery behind the caller's back.
pub struct AmqpStore {
    link: Link,
    /// Idle confirm channels, with the generation of the connection they belong to.
    pool: Mutex<Vec<(u64, Channel)>>,
    check_timeout: Duration,
}

impl std::fmt::Debug for AmqpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpStore")
            .field("config", &self.link.config)
            .finish_non_exhaustive()
    }
}

impl AmqpStore {
    /// A store for `config`. Nothing is connected yet: the first [`check`](Store::check) or
    /// [`save`](Store::save) connects.
    pub fn new(config: AmqpConfig) -> AmqpStore {
        AmqpStore {
            link: Link::new(config, "mllp listen"),
            pool: Mutex::new(Vec::new()),
            check_timeout: CHECK_TIMEOUT,
        }
    }

    /// A store for the AMQP URL `url` (see [`AmqpConfig`]).
    ///
    /// # Errors
    /// [`Error::Url`] for a URL that cannot be used.
    pub fn open(url: &str) -> Result<AmqpStore, Error> {
        Ok(AmqpStore::new(AmqpConfig::from_url(url)?))
    }

    /// Sets how long [`Store::check`] may take (default [`CHECK_TIMEOUT`]).
    #[must_use]
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &AmqpConfig {
        &self.link.config
    }

    /// Publishes `body` with `properties` and waits for the confirm: the one step of
    /// [`save`](Store::save). An unroutable message is [`Error::Broker`] with `refused` set.
    /// With a `deadline`, every step (connecting, a channel, the confirm) ends by then.
    fn publish(
        &self,
        body: &[u8],
        properties: BasicProperties,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let left = |bound: Duration| match deadline {
            Some(deadline) => bound.min(deadline.saturating_duration_since(Instant::now())),
            None => bound,
        };
        let live = self.link.get(deadline)?;
        let channel = match self.take_channel(&live, left(self.link.config.connect_timeout)) {
            Ok(channel) => channel,
            Err(e) => {
                self.link.broken(&live, &e);
                return Err(e);
            }
        };
        let target = &self.link.config.target;
        let publish = async {
            let confirm = channel
                .basic_publish(
                    target.exchange().into(),
                    target.routing_key().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await
                .map_err(|e| Error::broker("publish", e))?;
            confirm.await.map_err(|e| Error::broker("confirm", e))
        };
        let timeout = left(self.link.config.confirm_timeout);
        match block_on(within(timeout, "confirm", publish)) {
            Ok(Confirmation::Ack(None)) => {
                self.put_channel(live.generation, channel);
                Ok(())
            }
            Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                self.put_channel(live.generation, channel);
                Err(Error::Broker {
                    during: "publish",
                    source: format!(
                        "the broker returned the message as unroutable ({} {}): no queue is \
                         bound to {}",
                        returned.reply_code, returned.reply_text, target
                    )
                    .into(),
                    refused: true,
                })
            }
            Ok(Confirmation::Nack(None)) => {
                // A nack says the broker could not take the message (a quorum queue without
                // a reachable leader, an internal error). The channel and connection may keep
                // a stale view of the queue (seen after a cluster node stopped: every later
                // publish on them nacked while the queue was healthy), so both are dropped
                // and the next message starts afresh on the next host.
                let e = Error::Broker {
                    during: "publish",
                    source: "the broker did not take the message (nack)".into(),
                    refused: false,
                };
                self.link.broken(&live, &e);
                Err(e)
            }
            Ok(Confirmation::NotRequested) => Err(Error::Broker {
                during: "publish",
                source: "the channel is not in confirm mode".into(),
                refused: false,
            }),
            Err(e) => {
                // A channel closed by the broker for this message (a soft error) is dropped
                // alone; anything else may be the connection's fault.
                let soft = matches!(e, Error::Broker { refused: true, .. });
                if !soft || !live.is_open() {
                    self.link.broken(&live, &e);
                }
                Err(e)
            }
        }
    }

    /// An idle confirm channel of `live`, or a new one.
    fn take_channel(&self, live: &Live, timeout: Duration) -> Result<Channel, Error> {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            pool.retain(|(generation, channel)| {
                *generation == live.generation && channel.status().connected()
            });
            if let Some((_, channel)) = pool.pop() {
                return Ok(channel);
            }
        }
        block_on(within(timeout, "channel", live.confirm_channel()))
    }

    fn put_channel(&self, generation: u64, channel: Channel) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX && channel.status().connected() {
            pool.push((generation, channel));
        }
    }
}

/// The AMQP properties of `message`.
fn properties(message: &StoredMessage<'_>) -> BasicProperties {
    let mut headers = FieldTable::default();
    let mut text = |key: &str, value: Option<&str>| {
        if let Some(value) = value {
            headers.insert(
                ShortString::from(key),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
    };
    text("msh9", message.message_type());
    text("sending_application", message.sending_application());
    text("sending_facility", message.sending_facility());
    text("peer", Some(&message.peer_addr().to_string()));
    text("tls_subject", message.tls_subject());
    text("charset", Some(message.charset().name()));
    let timestamp = message
        .received_at()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(CONTENT_TYPE.into())
        .with_content_encoding("utf-8".into())
        .with_timestamp(timestamp)
        .with_headers(headers);
    if let Some(id) = message.control_id() {
        // A short string holds at most 255 bytes; a longer MSH-10 is not a message ID.
        if id.len() <= 255 {
            properties = properties.with_message_id(id.into());
        }
    }
    properties
}

/// A store error for `e`, which the sender may read: no credentials, no message content.
fn store_error(e: &Error) -> StoreError {
    let sentence = match e {
        Error::Broker { during, .. } => format!("broker error ({during}): {}", innermost(e)),
        other => other.to_string(),
    };
    if e.is_retryable() {
        StoreError::retryable(sentence)
    } else {
        StoreError::refused(sentence)
    }
}

impl Store for AmqpStore {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        self.save_within(message, None)
    }

    /// As [`save`](Store::save), with every step (connecting, a channel, the confirm) ending
    /// by `deadline`: a broker that stopped answering holds a message for a listener's store
    /// wait and no longer.
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        self.save_within(message, Some(deadline))
    }

    fn name(&self) -> String {
        self.link.config.name()
    }

    /// Whether messages can be published now: the broker answers (a connection attempt when
    /// none is open) and the queue or exchange is there (a passive declare on a channel of its
    /// own: a queue deleted while the connection is open fails the check), all within
    /// [`check_timeout`](AmqpStore::check_timeout), so that a broker that stopped answering
    /// fails it too. Cheap enough for a load balancer's health check every second.
    fn check(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.check_timeout;
        let live = self.link.get(Some(deadline)).map_err(|e| store_error(&e))?;
        let left = deadline.saturating_duration_since(Instant::now());
        block_on(within(left, "check", self.link.verify(&live))).map_err(|e| store_error(&e))
    }
}

impl Drop for AmqpStore {
    fn drop(&mut self) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.link.close();
    }
}

impl AmqpStore {
    fn save_within(
        &self,
        message: &StoredMessage<'_>,
        deadline: Option<Instant>,
    ) -> Result<Receipt, StoreError> {
        let started = Instant::now();
        self.publish(message.text().as_bytes(), properties(message), deadline)
            .map_err(|e| store_error(&e))?;
        debug!("confirmed in {:?}", started.elapsed());
        Ok(Receipt::new(self.link.config.target.to_string()))
    }
}

/// Opens the store an `amqp://` or `amqps://` URL names, for a registry of stores by URL
/// scheme (`mllp listen --store`), with the same signature as every store crate's
/// `open_url`: `options.tls_ca` is a PEM file of certificates to trust for `amqps`.
///
/// # Errors
/// [`Error::Url`] for a URL this crate cannot use or a CA file that cannot be read (the text
/// never holds the password).
pub fn open_url(url: &str, options: &mllp::store::UrlOptions) -> Result<Box<dyn Store>, Error> {
    let mut config = AmqpConfig::from_url(url)?;
    if let Some(path) = &options.tls_ca {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Error::Url(format!(
                "cannot read the CA certificates {}: {e}",
                path.display()
            ))
        })?;
        config = config.tls_ca_pem(pem);
    }
    Ok(Box::new(AmqpStore::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mllp::charset::Charset;
    use std::time::{Duration, SystemTime};

    fn header(p: &BasicProperties, key: &str) -> Option<String> {
        match p.headers().as_ref()?.inner().get(key)? {
            AMQPValue::LongString(s) => Some(s.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn properties_of_a_message() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let peer = "10.1.2.3:4567".parse().unwrap();
        let text = "MSH|^~\\&|LÄB|HOSP||WARD|2026||ORU^R01|ID-ü|P|2.5\r";
        let p = properties(&StoredMessage::new(text, peer, Charset::ISO_8859_1, at));
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), "ID-ü");
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.content_type().as_ref().unwrap().as_str(), CONTENT_TYPE);
        assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
        assert_eq!(p.timestamp(), &Some(1_700_000_000));
        assert_eq!(header(&p, "msh9").as_deref(), Some("ORU^R01"));
        assert_eq!(header(&p, "sending_application").as_deref(), Some("LÄB"));
        assert_eq!(header(&p, "sending_facility").as_deref(), Some("HOSP"));
        assert_eq!(header(&p, "peer").as_deref(), Some("10.1.2.3:4567"));
        assert_eq!(header(&p, "charset").as_deref(), Some("ISO-8859-1"));
        assert_eq!(header(&p, "tls_subject"), None);
        let signed = StoredMessage::new(text, peer, Charset::UTF_8, at)
            .with_tls_subject(Some("CN=lab,O=Hospital"));
        let p = properties(&signed);
        assert_eq!(
            header(&p, "tls_subject").as_deref(),
            Some("CN=lab,O=Hospital")
        );

        // No header fields, and an MSH-10 too long for a short string: left out, no panic.
        let long = format!("MSH|^~\\&|{}{}|P|2.5\r", "|".repeat(7), "9".repeat(300));
        let m = StoredMessage::new(&long, peer, Charset::UTF_8, SystemTime::now());
        assert_eq!(m.control_id().map(str::len), Some(300));
        let p = properties(&m);
        assert!(p.message_id().is_none());
        assert_eq!(header(&p, "msh9"), None);
        let p = properties(&StoredMessage::new("junk", peer, Charset::UTF_8, at));
        assert!(p.message_id().is_none());
    }
}
