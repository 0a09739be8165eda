//! [`Forwarder`]: consumes a queue and sends each message onward over MLLP, acknowledging the
//! AMQP delivery only after the downstream's `AA`, or once a message the downstream rejects
//! is safely in the dead-letter queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use log::{debug, info, warn};
use mllp::hl7::Ack;
use mllp::{Outage, Sender};

use crate::config::{AmqpConfig, Target};
mod dead;

use crate::error::Error;
use crate::link::{block_on, within, Link, Live};
pub use dead::{
    OnReject, DEAD_LETTER_SUFFIX, HEADER_ACK_CODE, HEADER_ACK_TEXT, HEADER_REJECTED_FROM,
};

/// How often a waiting forwarder looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The downstream answered `AA` or `CA`: the delivery was acknowledged and left the queue.
    Delivered(Ack),
    /// The downstream answered `AE`, `AR`, `CE` or `CR` and the forwarder dead-letters
    /// ([`OnReject::DeadLetter`]): the message is in the dead-letter queue (confirmed) with
    /// the ACK's code and text, and the delivery was acknowledged.
    Rejected(Ack),
    /// The message can never be sent (its body is not UTF-8, it has no readable header, or it
    /// cannot be encoded in the wire's character set): it is in the dead-letter queue
    /// (whatever [`OnReject`] says: sending it again cannot help), with the reason as its ACK
    /// text, and the delivery was acknowledged.
    Unsendable(String),
}

/// One delivery handled by [`Forwarder::forward_one`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// MSH-10 (the AMQP `message_id`, or the control ID read from the body), `None` if neither.
    pub control_id: Option<String>,
    /// Whether the broker had delivered it before (to a consumer that did not acknowledge it).
    pub redelivered: bool,
    /// What became of it.
    pub outcome: Outcome,
}

/// Stops a [`Forwarder`] from another thread (a signal handler, say): it finishes the message
/// in flight, and returns from [`run`](Forwarder::run) or [`forward_one`](Forwarder::forward_one).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the forwarder to stop after the message in flight.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a [`Forwarder`] has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardStats {
    /// Deliveries the downstream accepted (`AA`, `CA`).
    pub delivered: u64,
    /// Messages moved to the dead-letter queue (rejected, or unsendable).
    pub dead_lettered: u64,
    /// Times a rejected message was held ([`OnReject::Hold`]) and sent again.
    pub held_retries: u64,
}

/// Pauses between attempts after a failure: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause (default 200 ms).
    pub first: Duration,
    /// The longest pause (default 10 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

/// A consumer of one queue that sends each message onward with a [`Sender`], in queue order.
///
/// * **Order**: prefetch 1, so the broker hands over the next message only after this one was
///   acknowledged or rejected; a message that cannot be delivered now (the downstream is
///   unreachable, or does not answer) is retried in place with [`Backoff`], never requeued
///   to the back, which would reorder the queue.
/// * **At least once**: the delivery is acknowledged only after `AA` (`CA`). If the forwarder
///   stops or the broker connection is lost before that, the broker delivers the message
///   again (flagged `redelivered`), and the downstream may see it twice (same MSH-10).
/// * **Negative acknowledgements** (`AE`, `AR`, `CE`, `CR`): never dropped. By default
///   ([`OnReject::Hold`]) the message is held at the head of the queue and sent again with
///   [`Backoff`], logged at warn on each refusal and counted; with
///   [`OnReject::DeadLetter`] it is published (persistent, confirmed) to the dead-letter
///   queue, `QUEUE.dead` unless [set](Self::dead_letter_queue), with headers
///   [`ack_code`](crate::HEADER_ACK_CODE), [`ack_text`](crate::HEADER_ACK_TEXT) and
///   [`rejected_from`](crate::HEADER_REJECTED_FROM), and acknowledged in its queue only after
///   that confirm. If the copy cannot be made, the delivery is not acknowledged: the broker
///   delivers it again (and the downstream sees it again). A message that can never be sent
///   ([`Outcome::Unsendable`]) is dead-lettered in either mode. The dead-letter queue is
///   declared durable (with the URL's `queue_type`) when the consumer starts, if missing.
/// * **The queue** must exist: a forwarder never declares the queue it consumes from, so a
///   misspelt name is [`Error::NoQueue`] instead of a forwarder waiting on a new empty queue.
/// * **The broker**: a lost connection is reopened, hosts in order as for the store, with
///   [`Backoff`] between attempts, until the forwarder is stopped.
pub struct Forwarder {
    link: Link,
    queue: String,
    dead_queue: String,
    on_reject: OnReject,
    sender: Sender,
    backoff: Backoff,
    stop: StopHandle,
    consumer: Option<Consuming>,
    stats: ForwardStats,
    /// The pause before the next attempt after a dead letter could not be published.
    dead_pause: Duration,
    /// Failed deliveries, and failed starts of the consumer, in a row: which are logged.
    downstream: Outage,
    broker: Outage,
}

/// A started consumer, and the confirm channel its dead letters are published on.
struct Consuming {
    live: Arc<Live>,
    consumer: Consumer,
    dead: Channel,
}

/// What became of one delivery in [`Forwarder::handle`].
enum Handled {
    Done(Forwarded),
    /// Stopped: the delivery goes back to the queue.
    Stopped,
    /// Not settled (a dead letter could not be published): the broker delivers it again.
    Again,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("from", &self.link.config.name())
            .field("to", &self.sender.addr())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder from the queue of `config` (a `queue=NAME` URL) to `sender`'s listener.
    /// Nothing is connected yet.
    ///
    /// # Errors
    /// [`Error::Url`] when `config` names an exchange instead of a queue.
    pub fn new(config: AmqpConfig, sender: Sender) -> Result<Forwarder, Error> {
        let Target::Queue(queue) = &config.target else {
            return Err(Error::Url(
                "a forwarder consumes from a queue: give ?queue=NAME, not an exchange".into(),
            ));
        };
        let backoff = Backoff::default();
        Ok(Forwarder {
            queue: queue.clone(),
            dead_queue: format!("{queue}{DEAD_LETTER_SUFFIX}"),
            on_reject: OnReject::default(),
            link: Link::new(config, "mllp forward").without_creating_the_queue(),
            sender,
            backoff,
            stop: StopHandle::default(),
            consumer: None,
            stats: ForwardStats::default(),
            dead_pause: backoff.first,
            downstream: Outage::new(),
            broker: Outage::new(),
        })
    }

    /// Sets what a message the downstream rejects becomes (default [`OnReject::Hold`]).
    #[must_use]
    pub fn on_reject(mut self, on_reject: OnReject) -> Self {
        self.on_reject = on_reject;
        self
    }

    /// Sets the dead-letter queue (default: the queue's name and
    /// [`DEAD_LETTER_SUFFIX`](crate::DEAD_LETTER_SUFFIX), `QUEUE.dead`).
    #[must_use]
    pub fn dead_letter_queue(mut self, queue: impl Into<String>) -> Self {
        self.dead_queue = queue.into();
        self
    }

    /// The queue consumed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The dead-letter queue.
    pub fn dead_letter_queue_name(&self) -> &str {
        &self.dead_queue
    }

    /// What a rejected message becomes.
    pub fn rejects(&self) -> OnReject {
        self.on_reject
    }

    /// The counters since the forwarder was made.
    pub fn stats(&self) -> ForwardStats {
        self.stats
    }

    /// Connects, checks that the queue exists, declares the dead-letter queue and starts
    /// consuming, retrying what can be retried (an unreachable broker) with [`Backoff`];
    /// `Ok(false)` if stopped first. [`forward_one`](Self::forward_one) does this as needed:
    /// calling it first tells that the forwarder is ready (or why not) before any message.
    ///
    /// # Errors
    /// As for [`forward_one`](Self::forward_one): [`Error::NoQueue`] when the queue does not
    /// exist.
    pub fn start(&mut self) -> Result<bool, Error> {
        self.ensure_consumer()
    }

    /// Sets the pauses between attempts after a failure (default [`Backoff::default`]).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self.dead_pause = backoff.first;
        self
    }

    /// A handle that stops this forwarder from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The sender (for its counters).
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Waits for the next delivery and handles it; `Ok(None)` once stopped (through the
    /// [`StopHandle`]).
    ///
    /// # Errors
    /// Only what retrying cannot cure: the queue does not exist ([`Error::NoQueue`]), the
    /// broker refused the consumer (access refused) or the configuration is wrong. Connection
    /// problems, on either side, are retried until the forwarder is stopped.
    pub fn forward_one(&mut self) -> Result<Option<Forwarded>, Error> {
        loop {
            let Some(delivery) = self.next_delivery()? else {
                return Ok(None);
            };
            match self.handle(delivery)? {
                Handled::Done(forwarded) => return Ok(Some(forwarded)),
                Handled::Stopped => return Ok(None),
                Handled::Again => {}
            }
        }
    }

    /// Sends one delivery onward and settles it.
    fn handle(&mut self, delivery: Delivery) -> Result<Handled, Error> {
        let redelivered = delivery.redelivered;
        let control_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .or_else(|| control_id_of(&delivery.data));
        let id = control_id.as_deref().unwrap_or("(no MSH-10)").to_owned();
        let forwarded = |outcome| Forwarded {
            control_id: control_id.clone(),
            redelivered,
            outcome,
        };
        let Ok(text) = std::str::from_utf8(&delivery.data) else {
            let why = "the body is not UTF-8".to_owned();
            warn!("message {id} cannot be sent ({why})");
            return self.dead_letter(delivery, forwarded(Outcome::Unsendable(why)));
        };
        let mut pause = self.backoff.first;
        let mut held = 0u64;
        let outcome = loop {
            match self.sender.send(text) {
                Ok(ack) if ack.is_success() => break Outcome::Delivered(ack),
                Ok(ack) if self.on_reject == OnReject::DeadLetter => {
                    warn!(
                        "message {id}: the downstream answered {} ({}): moving it to the \
                         dead-letter queue {}",
                        ack.code,
                        ack_text(&ack),
                        self.dead_queue
                    );
                    break Outcome::Rejected(ack);
                }
                Ok(ack) => {
                    held += 1;
                    self.stats.held_retries += 1;
                    warn!(
                        "message {id}: the downstream answered {} ({}): held at the head of {} \
                         (refusal {held}), sending it again in {pause:?}",
                        ack.code,
                        ack_text(&ack),
                        self.queue
                    );
                    if !self.pause(pause) {
                        return Ok(self.stopped());
                    }
                    pause = (pause * 2).min(self.backoff.max);
                }
                Err(
                    e @ (mllp::Error::Header(_) | mllp::Error::Frame(_) | mllp::Error::Charset(_)),
                ) => {
                    warn!("message {id} cannot be sent ({e})");
                    break Outcome::Unsendable(e.to_string());
                }
                Err(e @ mllp::Error::Config(_)) => return Err(Error::Mllp(e)),
                Err(e) => {
                    if let Some(line) = self.downstream.failed(Instant::now()) {
                        warn!(
                            "message {id}: delivery to {} failed ({e}); trying again in \
                             {pause:?} ({line})",
                            self.sender.addr()
                        );
                    }
                    if !self.pause(pause) {
                        return Ok(self.stopped());
                    }
                    pause = (pause * 2).min(self.backoff.max);
                }
            }
        };
        if let Some(end) = self.downstream.succeeded(Instant::now()) {
            info!(
                "message {id}: {} answers again, after {} failed deliveries in {:.1} s",
                self.sender.addr(),
                end.failures,
                end.lasted.as_secs_f64()
            );
        }
        if matches!(outcome, Outcome::Delivered(_)) {
            self.stats.delivered += 1;
            self.acknowledge(delivery, &id);
            Ok(Handled::Done(forwarded(outcome)))
        } else {
            self.dead_letter(delivery, forwarded(outcome))
        }
    }

    /// Stopped while a delivery was in hand: it is not acknowledged, so the broker keeps it
    /// at the head of the queue for the next consumer.
    fn stopped(&mut self) -> Handled {
        self.drop_consumer();
        Handled::Stopped
    }

    /// Forwards until stopped, or until `count` deliveries were handled (`None`: no limit),
    /// calling `each` after each one; returns how many were handled.
    ///
    /// # Errors
    /// As for [`forward_one`](Self::forward_one).
    pub fn run(
        &mut self,
        count: Option<u64>,
        mut each: impl FnMut(&Forwarded),
    ) -> Result<u64, Error> {
        let mut done = 0;
        while count.is_none_or(|n| done < n) {
            match self.forward_one()? {
                Some(forwarded) => {
                    done += 1;
                    each(&forwarded);
                }
                None => break,
            }
        }
        Ok(done)
    }

    /// Acknowledges the delivery. A failure loses nothing (the broker delivers the message
    /// again), so it only drops the consumer.
    fn acknowledge(&mut self, delivery: Delivery, id: &str) {
        let timeout = self.link.config.confirm_timeout;
        let settled = block_on(within(timeout, "acknowledgement", async {
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(|e| Error::broker("acknowledge", e))
        }));
        if let Err(e) = settled {
            warn!(
                "message {id}: the broker did not take the acknowledgement ({e}); it will \
                 deliver the message again"
            );
            if let Some(c) = self.consumer.take() {
                self.link.broken(&c.live, &e);
            }
        }
    }

    /// Starts the consumer unless it runs, retrying what can be retried with [`Backoff`];
    /// `Ok(false)` once stopped.
    fn ensure_consumer(&mut self) -> Result<bool, Error> {
        let mut pause = self.backoff.first;
        while self.consumer.is_none() {
            if self.stop.is_stopped() {
                self.drop_consumer();
                return Ok(false);
            }
            match self.start_consumer() {
                Ok(consuming) => {
                    if let Some(end) = self.broker.succeeded(Instant::now()) {
                        info!(
                            "consuming from {} again after {} failures in {:.1} s",
                            self.queue,
                            end.failures,
                            end.lasted.as_secs_f64()
                        );
                    }
                    self.consumer = Some(consuming);
                }
                Err(e) if e.is_retryable() => {
                    if let Some(line) = self.broker.failed(Instant::now()) {
                        warn!(
                            "cannot consume from {}: {e}; trying again in {pause:?} ({line})",
                            self.queue
                        );
                    }
                    if !self.pause(pause) {
                        return Ok(false);
                    }
                    pause = (pause * 2).min(self.backoff.max);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The next delivery, (re)connecting and (re)starting the consumer as needed; `None` once
    /// stopped.
    fn next_delivery(&mut self) -> Result<Option<Delivery>, Error> {
        loop {
            if self.stop.is_stopped() {
                self.drop_consumer();
                return Ok(None);
            }
            if !self.ensure_consumer()? {
                return Ok(None);
            }
            let Some(c) = &mut self.consumer else {
                continue;
            };
            let next = block_on(futures_lite::future::or(
                async { Some(c.consumer.next().await) },
                async {
                    async_io::Timer::after(STOP_POLL).await;
                    None
                },
            ));
            let live = Arc::clone(&c.live);
            match next {
                // Nothing yet: look at the stop flag again.
                None => {
                    if !live.is_open() {
                        self.consumer = None;
                        self.link
                            .broken(&live, &Error::Connect("the connection closed".into()));
                    }
                }
                Some(Some(Ok(delivery))) => return Ok(Some(delivery)),
                Some(Some(Err(e))) => {
                    let e = Error::broker("consume", e);
                    self.consumer = None;
                    self.link.broken(&live, &e);
                }
                Some(None) => {
                    self.consumer = None;
                    warn!("the broker ended the consumer of {}", self.queue);
                    self.link
                        .broken(&live, &Error::Connect("the consumer was cancelled".into()));
                }
            }
        }
    }

    /// A channel with prefetch 1 consuming the queue with manual acknowledgements, after the
    /// dead-letter queue was declared, and a confirm channel for dead letters.
    fn start_consumer(&self) -> Result<Consuming, Error> {
        let live = self.link.get(None)?;
        let timeout = self.link.config.connect_timeout;
        let started = block_on(within(timeout, "consumer", async {
            self.link
                .declare_queue(&live, &self.dead_queue, true)
                .await?;
            let dead = live.confirm_channel().await?;
            let channel = live.channel().await?;
            channel
                .basic_qos(1, BasicQosOptions::default())
                .await
                .map_err(|e| Error::broker("set the prefetch", e))?;
            channel
                .basic_consume(
                    self.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| Error::broker("consume", e))
                .map(|consumer| (consumer, dead))
        }));
        match started {
            Ok((consumer, dead)) => {
                debug!(
                    "consuming from {} (dead letters to {})",
                    self.queue, self.dead_queue
                );
                Ok(Consuming {
                    live,
                    consumer,
                    dead,
                })
            }
            Err(e) => {
                if !live.is_open() || e.is_retryable() {
                    self.link.broken(&live, &e);
                }
                Err(e)
            }
        }
    }

    fn drop_consumer(&mut self) {
        // Closing the channel hands an unacknowledged delivery back to the queue.
        self.consumer = None;
        self.link.close();
    }

    /// Sleeps `pause` unless stopped first; returns whether it was not stopped.
    fn pause(&self, pause: Duration) -> bool {
        let end = Instant::now() + pause;
        while !self.stop.is_stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_POLL));
        }
        false
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.consumer = None;
        self.link.close();
    }
}

/// MSH-10 read from a body, when it has a readable header.
fn control_id_of(body: &[u8]) -> Option<String> {
    let header = mllp::hl7::Header::parse(body).ok()?;
    let id = header.control_id().filter(|id| !id.is_empty())?;
    Some(String::from_utf8_lossy(id).into_owned())
}

/// The text of an ACK for a log line: MSA-3, else the first ERR text, else `-`.
pub(crate) fn ack_text(ack: &Ack) -> &str {
    ack.text
        .as_deref()
        .filter(|t| !t.is_empty())
        .or(ack.errors.first().map(String::as_str))
        .unwrap_or("-")
}
