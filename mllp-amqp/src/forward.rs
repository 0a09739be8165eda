//! [`Forwarder`]: consumes a queue and sends each message onward over MLLP, acknowledging the
//! AMQP delivery only after the downstream's `AA`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::Consumer;
use log::{debug, warn};
use mllp::hl7::Ack;
use mllp::Sender;

use crate::config::{AmqpConfig, Target};
use crate::error::Error;
use crate::link::{block_on, within, Link, Live};

/// How often a waiting forwarder looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The downstream answered `AA` or `CA`: the delivery was acknowledged and left the queue.
    Delivered(Ack),
    /// The downstream answered `AE`, `AR`, `CE` or `CR`: the delivery was rejected without
    /// requeueing, so the queue's dead-letter exchange (if it has one) keeps it.
    Rejected(Ack),
    /// The message can never be sent (its body is not UTF-8, it has no readable header, or it
    /// cannot be encoded in the wire's character set): rejected without requeueing, with the
    /// reason.
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
/// * **Negative acknowledgements** (`AE`, `AR`): the delivery is rejected without requeueing,
///   and the queue's dead-letter exchange, if it has one, keeps it; the ACK's text is logged.
/// * **The broker**: a lost connection is reopened, hosts in order as for the store, with
///   [`Backoff`] between attempts, until the forwarder is stopped.
pub struct Forwarder {
    link: Link,
    queue: String,
    sender: Sender,
    backoff: Backoff,
    stop: StopHandle,
    consumer: Option<(Arc<Live>, Consumer)>,
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
        Ok(Forwarder {
            queue: queue.clone(),
            link: Link::new(config, "mllp forward"),
            sender,
            backoff: Backoff::default(),
            stop: StopHandle::default(),
            consumer: None,
        })
    }

    /// Sets the pauses between attempts after a failure (default [`Backoff::default`]).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
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
    /// Only what retrying cannot cure: the broker refused the consumer (no such queue, access
    /// refused) or the configuration is wrong. Connection problems, on either side, are
    /// retried until the forwarder is stopped.
    pub fn forward_one(&mut self) -> Result<Option<Forwarded>, Error> {
        let Some(delivery) = self.next_delivery()? else {
            return Ok(None);
        };
        let redelivered = delivery.redelivered;
        let control_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .or_else(|| control_id_of(&delivery.data));
        let id = control_id.as_deref().unwrap_or("(no MSH-10)").to_owned();
        let Ok(text) = std::str::from_utf8(&delivery.data) else {
            let why = "the body is not UTF-8".to_owned();
            return self.settle(
                delivery,
                false,
                control_id,
                redelivered,
                Outcome::Unsendable(why),
            );
        };
        let mut pause = self.backoff.first;
        let outcome = loop {
            match self.sender.send(text) {
                Ok(ack) if ack.is_success() => break Outcome::Delivered(ack),
                Ok(ack) => {
                    warn!(
                        "message {id}: the downstream answered {} ({}): rejecting the delivery \
                         (dead-lettered if the queue has a dead-letter exchange)",
                        ack.code,
                        ack_text(&ack)
                    );
                    break Outcome::Rejected(ack);
                }
                Err(
                    e @ (mllp::Error::Header(_) | mllp::Error::Frame(_) | mllp::Error::Charset(_)),
                ) => {
                    warn!("message {id} cannot be sent ({e}): rejecting the delivery");
                    break Outcome::Unsendable(e.to_string());
                }
                Err(e @ mllp::Error::Config(_)) => return Err(Error::Mllp(e)),
                Err(e) => {
                    warn!(
                        "message {id}: delivery to {} failed ({e}); trying again in {pause:?}",
                        self.sender.addr()
                    );
                    if !self.pause(pause) {
                        // Stopped: the delivery is not acknowledged, so the broker keeps it
                        // at the head of the queue for the next consumer.
                        self.drop_consumer();
                        return Ok(None);
                    }
                    pause = (pause * 2).min(self.backoff.max);
                }
            }
        };
        let ack = matches!(outcome, Outcome::Delivered(_));
        self.settle(delivery, ack, control_id, redelivered, outcome)
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

    /// Acknowledges (`ack`) or rejects the delivery, and reports `outcome`. A failure to do so
    /// loses nothing (the broker delivers the message again), so it only drops the consumer.
    fn settle(
        &mut self,
        delivery: Delivery,
        ack: bool,
        control_id: Option<String>,
        redelivered: bool,
        outcome: Outcome,
    ) -> Result<Option<Forwarded>, Error> {
        let timeout = self.link.config.confirm_timeout;
        let settled = block_on(within(timeout, "acknowledgement", async {
            if ack {
                delivery.acker.ack(BasicAckOptions::default()).await
            } else {
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
            }
            .map_err(|e| Error::broker("acknowledge", e))
        }));
        if let Err(e) = settled {
            warn!(
                "message {}: the broker did not take the acknowledgement ({e}); it will deliver \
                 the message again",
                control_id.as_deref().unwrap_or("(no MSH-10)")
            );
            if let Some((live, _)) = self.consumer.take() {
                self.link.broken(&live, &e);
            }
        }
        Ok(Some(Forwarded {
            control_id,
            redelivered,
            outcome,
        }))
    }

    /// The next delivery, (re)connecting and (re)starting the consumer as needed; `None` once
    /// stopped.
    fn next_delivery(&mut self) -> Result<Option<Delivery>, Error> {
        let mut pause = self.backoff.first;
        loop {
            if self.stop.is_stopped() {
                self.drop_consumer();
                return Ok(None);
            }
            if self.consumer.is_none() {
                match self.start_consumer() {
                    Ok(consumer) => {
                        self.consumer = Some(consumer);
                        pause = self.backoff.first;
                    }
                    Err(e) if e.is_retryable() => {
                        warn!(
                            "cannot consume from {}: {e}; trying again in {pause:?}",
                            self.queue
                        );
                        if !self.pause(pause) {
                            return Ok(None);
                        }
                        pause = (pause * 2).min(self.backoff.max);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some((live, consumer)) = &mut self.consumer else {
                continue;
            };
            let next = block_on(futures_lite::future::or(
                async { Some(consumer.next().await) },
                async {
                    async_io::Timer::after(STOP_POLL).await;
                    None
                },
            ));
            match next {
                // Nothing yet: look at the stop flag again.
                None => {
                    if !live.is_open() {
                        let live = Arc::clone(live);
                        self.consumer = None;
                        self.link
                            .broken(&live, &Error::Connect("the connection closed".into()));
                    }
                }
                Some(Some(Ok(delivery))) => return Ok(Some(delivery)),
                Some(Some(Err(e))) => {
                    let e = Error::broker("consume", e);
                    let live = Arc::clone(live);
                    self.consumer = None;
                    self.link.broken(&live, &e);
                }
                Some(None) => {
                    let live = Arc::clone(live);
                    self.consumer = None;
                    warn!("the broker ended the consumer of {}", self.queue);
                    self.link
                        .broken(&live, &Error::Connect("the consumer was cancelled".into()));
                }
            }
        }
    }

    /// A channel with prefetch 1 consuming the queue with manual acknowledgements.
    fn start_consumer(&self) -> Result<(Arc<Live>, Consumer), Error> {
        let live = self.link.get(None)?;
        let timeout = self.link.config.connect_timeout;
        let started = block_on(within(timeout, "consumer", async {
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
        }));
        match started {
            Ok(consumer) => {
                debug!("consuming from {}", self.queue);
                Ok((live, consumer))
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
