//! The counters of an outbox.

use std::time::Duration;

/// What an outbox holds and has done: from [`Outbox::stats`](super::Outbox::stats) for an open
/// outbox, or [`Outbox::inspect`](super::Outbox::inspect) for a directory (read-only, also
/// while another process has it open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Messages enqueued and not yet delivered nor dead-lettered (the one in flight included).
    pub pending: u64,
    /// Their size in the segment files, record headers included.
    pub pending_bytes: u64,
    /// Whether a message is being delivered right now (0 or 1).
    pub in_flight: u64,
    /// Messages delivered (acknowledged with AA or CA) since the outbox was created.
    pub delivered: u64,
    /// Messages in the dead-letter area.
    pub dead_lettered: u64,
    /// How long the oldest pending message has waited, when there is one.
    pub oldest_pending_age: Option<Duration>,
    /// Whether delivery is held at a rejected message ([`OnReject::Hold`](super::OnReject::Hold)).
    pub held: bool,
    /// Enqueues refused with [`Error::Full`](crate::Error::Full) since the outbox was opened.
    pub refused_full: u64,
    /// Disk flushes made for enqueues since the outbox was opened: fewer than the enqueues
    /// when group commit shared them.
    pub syncs: u64,
    /// Damaged byte ranges in the segments (not torn tails), skipped with every intact
    /// record around them kept: each is kept in `DIR/damaged/` until an operator removes it.
    /// For an open outbox, as found when it was opened.
    pub damaged_regions: u64,
    /// Their total size in bytes.
    pub damaged_bytes: u64,
    /// Segments found missing between others (their messages are lost), as recorded in
    /// `DIR/damaged/`.
    pub missing_segments: u64,
    /// Times the delivery cursor was found unreadable, so that delivery started again at the
    /// oldest message (messages delivered again), as recorded in `DIR/damaged/`.
    pub cursor_lost: u64,
}
