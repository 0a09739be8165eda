//! The settings of an [`Outbox`](super::Outbox): where it delivers, its bounds, and what
//! happens on a negative acknowledgement.

use std::time::Duration;

use super::handled::{Handled, OnHandled};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::sender::SenderConfig;

/// The most bytes of pending messages by default: 1 GiB.
pub const DEFAULT_OUTBOX_MAX_BYTES: u64 = 1 << 30;
/// The most pending messages by default.
pub const DEFAULT_OUTBOX_MAX_MESSAGES: u64 = 1_000_000;
/// The size after which a new segment file is started, by default: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;

/// What the delivery thread does when the destination answers AE or AR (CE or CR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnReject {
    /// Move the message and the text of its ACK to the dead-letter area (`DIR/dead`), and go
    /// on with the next message. The default.
    #[default]
    DeadLetter,
    /// Stop delivering, keeping the message at the head of the queue, until an operator
    /// requeues ([`Outbox::requeue_dead`](super::Outbox::requeue_dead) or
    /// [`Outbox::resume`](super::Outbox::resume)): for interfaces that must keep strict order.
    Hold,
}

/// The settings of an [`Outbox`](super::Outbox).
///
/// ```
/// use mllp::{OnReject, OutboxConfig};
///
/// let config = OutboxConfig::new("127.0.0.1:2575")
///     .max_messages(10_000)
///     .on_reject(OnReject::Hold);
/// assert_eq!(config.max_bytes, mllp::DEFAULT_OUTBOX_MAX_BYTES);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboxConfig {
    /// Where messages are delivered (`host:port`).
    pub to: String,
    /// How messages are delivered: framing, character set (text is encoded into it), timeouts,
    /// TLS, reply kind. Its retry policy is not used: see [`retry`](Self::retry).
    /// Default: [`SenderConfig::default`].
    pub sender: SenderConfig,
    /// How a message that could not be delivered (no connection, no ACK) is tried again.
    /// Default: [`RetryPolicy::default`] without an attempt limit: a message is tried until it
    /// is acknowledged. With a limit, a message that used up its attempts is dead-lettered.
    pub retry: RetryPolicy,
    /// What an AE or AR does. Default: [`OnReject::DeadLetter`].
    pub on_reject: OnReject,
    /// The most bytes of pending messages (payloads and record headers); beyond it
    /// [`enqueue`](super::Outbox::enqueue) fails with [`Error::Full`]. Default: 1 GiB.
    pub max_bytes: u64,
    /// The most pending messages. Default: 1,000,000.
    pub max_messages: u64,
    /// A segment file is closed, and a new one started, once it holds this many bytes; a
    /// segment is deleted once all of its messages are delivered. A new segment is also started
    /// early once 64 KiB of the current one are delivered, so that delivered messages never
    /// hold more than that much disk space. Default: 16 MiB.
    pub segment_bytes: u64,
    /// How often the delivery thread looks for operator actions made by other processes (a
    /// requeue, a hold released) while it waits. Default: 1 s.
    pub poll_interval: Duration,
    /// Whether the delivery thread runs. Default: `true`; `false` keeps messages without
    /// delivering them (a spool inspected or drained later).
    pub deliver: bool,
    /// Called on the delivery thread with each message delivered or dead-lettered, to report
    /// it (a line per message). Default: none.
    pub on_handled: Option<OnHandled>,
}

impl OutboxConfig {
    /// The defaults, delivering to `to` (`host:port`).
    pub fn new(to: impl Into<String>) -> OutboxConfig {
        OutboxConfig {
            to: to.into(),
            sender: SenderConfig::default(),
            retry: RetryPolicy::default().max_attempts(None),
            on_reject: OnReject::DeadLetter,
            max_bytes: DEFAULT_OUTBOX_MAX_BYTES,
            max_messages: DEFAULT_OUTBOX_MAX_MESSAGES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            poll_interval: Duration::from_secs(1),
            deliver: true,
            on_handled: None,
        }
    }

    /// Sets [`sender`](Self::sender).
    pub fn sender(mut self, sender: SenderConfig) -> Self {
        self.sender = sender;
        self
    }

    /// Sets [`retry`](Self::retry).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`on_reject`](Self::on_reject).
    pub fn on_reject(mut self, on_reject: OnReject) -> Self {
        self.on_reject = on_reject;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets [`max_messages`](Self::max_messages).
    pub fn max_messages(mut self, max: u64) -> Self {
        self.max_messages = max;
        self
    }

    /// Sets [`segment_bytes`](Self::segment_bytes).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets [`deliver`](Self::deliver).
    pub fn deliver(mut self, deliver: bool) -> Self {
        self.deliver = deliver;
        self
    }

    /// Sets [`on_handled`](Self::on_handled): `f` is called on the delivery thread with each
    /// message delivered or dead-lettered, and must return quickly.
    pub fn on_handled(mut self, f: impl Fn(&Handled) + Send + Sync + 'static) -> Self {
        self.on_handled = Some(OnHandled::new(f));
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero bound, segment size or poll interval, or an invalid sender
    /// configuration or retry policy.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("max_bytes", self.max_bytes),
            ("max_messages", self.max_messages),
            ("segment_bytes", self.segment_bytes),
        ] {
            if v == 0 {
                return Err(Error::Config(format!(
                    "the outbox's {name} must be at least 1"
                )));
            }
        }
        if self.poll_interval.is_zero() {
            return Err(Error::Config(
                "the outbox's poll interval must be greater than zero".into(),
            ));
        }
        self.sender.validate()?;
        self.retry.validate()
    }
}
