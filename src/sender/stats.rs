//! The sender's counters.

/// Counters kept by a [`Sender`](crate::Sender) (and by a [`Link`](crate::Link)). Reading them is a copy of
/// a few integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Calls to `send` that returned a reply (positive or negative).
    pub messages: u64,
    /// Calls to `send` that failed with [`Error::Delivery`](crate::Error::Delivery).
    pub failures: u64,
    /// Frames written completely, resends included.
    pub frames_written: u64,
    /// Positive replies received (AA, CA, commit ACK).
    pub acks: u64,
    /// Negative replies received (AE, AR, CE, CR, commit NAK), including those answered by a
    /// resend.
    pub negative_acks: u64,
    /// Attempts after the first, over all messages.
    pub retries: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections established to replace one that was lost (closed by the peer, or closed by
    /// the sender after an error or timeout).
    pub reconnects: u64,
    /// ACK timeouts.
    pub ack_timeouts: u64,
    /// Reply frames skipped while waiting for an acknowledgement (ACKs for other control IDs,
    /// frames that are not ACKs), and frames found waiting before a message was written, which
    /// answer no message in flight (late or doubled ACKs) and are discarded.
    pub skipped_frames: u64,
}
