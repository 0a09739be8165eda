//! What became of each message the delivery thread is done with, for a program that reports
//! one line per message (as `mllp relay` does): [`OutboxConfig::on_handled`](super::OutboxConfig::on_handled).

use std::fmt;
use std::sync::Arc;

use crate::hl7::Ack;

/// One message the delivery thread is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handled {
    /// Its control ID (MSH-10), when its header can be read.
    pub control_id: Option<String>,
    /// Where it was delivered ([`OutboxConfig::to`](super::OutboxConfig::to)).
    pub to: String,
    /// What became of it.
    pub outcome: HandledAs,
}

/// What became of a message: see [`Handled`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandledAs {
    /// Acknowledged with AA or CA: delivered.
    Delivered(Ack),
    /// Answered with AE or AR (CE, CR) and moved to the dead letters.
    Rejected(Ack),
    /// Moved to the dead letters for this reason: its attempts were used up, it cannot be sent,
    /// or an operator skipped it.
    DeadLettered(String),
}

/// A function called with each [`Handled`] message, on the delivery thread: it must return
/// quickly (queue a line, count), since the next message waits for it.
#[derive(Clone)]
pub struct OnHandled(pub(crate) Arc<dyn Fn(&Handled) + Send + Sync>);

impl OnHandled {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&Handled) + Send + Sync + 'static) -> OnHandled {
        OnHandled(Arc::new(f))
    }
}

impl fmt::Debug for OnHandled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnHandled(..)")
    }
}
