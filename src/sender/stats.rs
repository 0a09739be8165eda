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

use crate::stat::{stat, Stat};

const REPLIES: &str = "Replies received by kind: positive (AA, CA, commit ACK), negative.";

impl SenderStats {
    /// Every counter of a sender, once (see [`Stat`]): the C numbers (`MLLP_SENDER_STAT_*`)
    /// derive from it.
    pub const TABLE: &'static [Stat<SenderStats>] = &[
        stat!(
            SenderStats,
            messages,
            0,
            Counter,
            "mllp_sender_messages_total",
            "",
            "Messages that got a reply."
        ),
        stat!(
            SenderStats,
            failures,
            1,
            Counter,
            "mllp_sender_failures_total",
            "",
            "Messages not delivered."
        ),
        stat!(
            SenderStats,
            frames_written,
            2,
            Counter,
            "mllp_sender_frames_written_total",
            "",
            "Frames written, resends included."
        ),
        stat!(
            SenderStats,
            acks,
            3,
            Counter,
            "mllp_sender_replies_total",
            "kind=\"positive\"",
            REPLIES
        ),
        stat!(
            SenderStats,
            negative_acks,
            4,
            Counter,
            "mllp_sender_replies_total",
            "kind=\"negative\"",
            REPLIES
        ),
        stat!(
            SenderStats,
            retries,
            5,
            Counter,
            "mllp_sender_retries_total",
            "",
            "Attempts after the first."
        ),
        stat!(
            SenderStats,
            connects,
            6,
            Counter,
            "mllp_sender_connects_total",
            "",
            "Connections established."
        ),
        stat!(
            SenderStats,
            reconnects,
            7,
            Counter,
            "mllp_sender_reconnects_total",
            "",
            "Connections established to replace a lost one."
        ),
        stat!(
            SenderStats,
            ack_timeouts,
            8,
            Counter,
            "mllp_sender_ack_timeouts_total",
            "",
            "ACK timeouts."
        ),
        stat!(
            SenderStats,
            skipped_frames,
            9,
            Counter,
            "mllp_sender_skipped_frames_total",
            "",
            "Reply frames that answered no message in flight."
        ),
    ];
}
