//! What a [`Forwarder`](crate::Forwarder) does with a message the downstream rejects:
//! [`OnReject`], and the dead-letter queue it publishes such messages to.

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

use lapin::message::Delivery;
use log::warn;

use super::{ack_text, Forwarded, Forwarder, Handled, Outcome};
use crate::error::Error;
use crate::link::{block_on, within};

/// The dead-letter queue of a forwarder is its queue's name followed by this, unless set
/// ([`Forwarder::dead_letter_queue`](crate::Forwarder::dead_letter_queue)).
pub const DEAD_LETTER_SUFFIX: &str = ".dead";

/// The header of a dead letter with the downstream's ACK code (`AE`, `AR`, `CE`, `CR`), or
/// `unsendable` for a message that could not be sent at all.
pub const HEADER_ACK_CODE: &str = "ack_code";
/// The header of a dead letter with the ACK's text (MSA-3, else the first ERR), or why the
/// message could not be sent.
pub const HEADER_ACK_TEXT: &str = "ack_text";
/// The header of a dead letter with the queue it was consumed from.
pub const HEADER_REJECTED_FROM: &str = "rejected_from";

/// What a [`Forwarder`](crate::Forwarder) does with a message the downstream answers `AE`,
/// `AR`, `CE` or `CR`. Nothing is ever rejected back to the broker without a copy kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnReject {
    /// Keep the message at the head of the queue and send it again, with the forwarder's
    /// [`Backoff`](crate::Backoff), until the downstream takes it (or the forwarder is
    /// stopped: it stays in the queue). Each refusal is logged at warn (at a falling rate, as
    /// the pause grows) and counted ([`ForwardStats::held_retries`](crate::ForwardStats)).
    ///
    /// The default: an `AE` is usually transient (the downstream's database is down, a
    /// referenced patient not there yet), the queue's order is kept, and a message that
    /// will never pass (an `AR`) stops the queue visibly instead of moving aside silently.
    #[default]
    Hold,
    /// Publish the message to the dead-letter queue (persistent, on a confirm channel, with
    /// the ACK's code and text in headers), and acknowledge it in its queue only once the
    /// broker confirmed that copy; then go on with the next message. For interfaces where
    /// one bad message must not stop the others; the order of a requeued dead letter is lost.
    DeadLetter,
}

/// The properties of the dead letter of a delivery with `properties`: the same, persistent,
/// with the ACK's code and text and the source queue in headers.
fn properties(properties: &BasicProperties, code: &str, text: &str, from: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    for (key, value) in [
        (HEADER_ACK_CODE, code),
        (HEADER_ACK_TEXT, text),
        (HEADER_REJECTED_FROM, from),
    ] {
        headers.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    properties
        .clone()
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// Publishes `body` to `queue` through the default exchange (`mandatory`) on the confirm
/// `channel`, and waits up to `timeout` for the broker's confirm.
fn publish(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
    timeout: std::time::Duration,
) -> Result<(), Error> {
    let publish = async {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| Error::broker("publish a dead letter", e))?;
        confirm
            .await
            .map_err(|e| Error::broker("confirm a dead letter", e))
    };
    let refused = |why: String| Error::Broker {
        during: "publish a dead letter",
        source: why.into(),
        refused: false,
    };
    match block_on(within(timeout, "dead-letter confirm", publish))? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(r)) | Confirmation::Nack(Some(r)) => Err(refused(format!(
            "the broker returned it ({} {}): is the queue {queue} gone?",
            r.reply_code, r.reply_text
        ))),
        Confirmation::Nack(None) => Err(refused("the broker did not take it (nack)".into())),
        Confirmation::NotRequested => Err(refused("the channel is not in confirm mode".into())),
    }
}

impl Forwarder {
    /// Publishes the delivery to the dead-letter queue and, once the broker confirmed it,
    /// acknowledges it. When the copy cannot be made the delivery is left unacknowledged and
    /// the consumer dropped (the broker delivers it again), after a pause.
    pub(super) fn dead_letter(
        &mut self,
        delivery: Delivery,
        forwarded: Forwarded,
    ) -> Result<Handled, Error> {
        let id = forwarded.control_id.as_deref().unwrap_or("(no MSH-10)");
        let (code, text) = match &forwarded.outcome {
            Outcome::Rejected(ack) => (ack.code.as_str(), ack_text(ack)),
            Outcome::Unsendable(why) => ("unsendable", why.as_str()),
            Outcome::Delivered(_) => ("-", "-"),
        };
        let properties = properties(&delivery.properties, code, text, &self.queue);
        let published = match &self.consumer {
            Some(c) => publish(
                &c.dead,
                &self.dead_queue,
                &delivery.data,
                properties,
                self.link.config.confirm_timeout,
            ),
            None => Err(Error::Connect("the connection closed".into())),
        };
        match published {
            Ok(()) => {
                self.stats.dead_lettered += 1;
                self.dead_pause = self.backoff.first;
                warn!(
                    "message {id} ({code}: {text}) is in the dead-letter queue {}",
                    self.dead_queue
                );
                self.acknowledge(delivery, id);
                Ok(Handled::Done(forwarded))
            }
            Err(e) => {
                log::error!(
                    "message {id} ({code}) could not be put in the dead-letter queue {} ({e}): \
                     it stays in {} and will be sent again; trying again in {:?}",
                    self.dead_queue,
                    self.queue,
                    self.dead_pause
                );
                drop(delivery);
                if let Some(c) = self.consumer.take() {
                    self.link.broken(&c.live, &e);
                }
                let pause = self.dead_pause;
                self.dead_pause = (pause * 2).min(self.backoff.max);
                if !self.pause(pause) {
                    return Ok(self.stopped());
                }
                Ok(Handled::Again)
            }
        }
    }
}
