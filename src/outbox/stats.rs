//! The counters of an outbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::stat::{stat, Histogram, HistogramSnapshot, Stat};

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
    /// Delivery attempts answered with a positive acknowledgement since the outbox was
    /// opened.
    pub deliveries_accepted: u64,
    /// Delivery attempts answered with a negative acknowledgement (AE, AR, CE, CR, a commit
    /// NAK) since the outbox was opened.
    pub deliveries_rejected: u64,
    /// Delivery attempts that got no answer (no connection, a timeout, a lost connection)
    /// since the outbox was opened.
    pub deliveries_failed: u64,
}

const DELIVERIES: &str = "Delivery attempts by outcome: accepted (AA, CA), rejected (a negative \
                          acknowledgement), failed (no answer).";

impl OutboxStats {
    /// Every counter of an outbox, once (see [`Stat`]): the C numbers (`MLLP_OUTBOX_STAT_*`),
    /// the spool metrics of `mllp relay --metrics-addr` and the documentation derive from it.
    pub const TABLE: &'static [Stat<OutboxStats>] = &[
        stat!(
            OutboxStats,
            pending,
            0,
            Gauge,
            "mllp_spool_pending_messages",
            "",
            "Messages spooled and not yet delivered nor dead-lettered."
        ),
        stat!(
            OutboxStats,
            pending_bytes,
            1,
            Gauge,
            "mllp_spool_pending_bytes",
            "",
            "Their size in the spool, record headers included."
        ),
        stat!(
            OutboxStats,
            in_flight,
            2,
            Gauge,
            "mllp_spool_in_flight_messages",
            "",
            "1 while a message is being delivered."
        ),
        stat!(
            OutboxStats,
            delivered,
            3,
            Gauge,
            "mllp_spool_delivered_messages",
            "",
            "Messages delivered since the spool was created (kept across restarts)."
        ),
        stat!(
            OutboxStats,
            dead_lettered,
            4,
            Gauge,
            "mllp_spool_dead_letters",
            "",
            "Messages in the dead-letter area."
        ),
        Stat {
            field: "oldest_pending_age_ms",
            id: 5,
            kind: crate::stat::StatKind::Gauge,
            metric: "mllp_spool_oldest_pending_age_seconds",
            label: "",
            help: "How long the oldest pending message has waited (0 when none is pending).",
            get: |s| {
                s.oldest_pending_age
                    .map_or(0, |a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX))
            },
            scale: 0.001,
        },
        Stat {
            field: "held",
            id: 6,
            kind: crate::stat::StatKind::Gauge,
            metric: "mllp_spool_held",
            label: "",
            help: "1 while delivery is held at a rejected message.",
            get: |s| u64::from(s.held),
            scale: 1.0,
        },
        stat!(
            OutboxStats,
            refused_full,
            7,
            Counter,
            "mllp_spool_refused_full_total",
            "",
            "Messages refused because the spool was full."
        ),
        stat!(
            OutboxStats,
            syncs,
            8,
            Counter,
            "mllp_spool_syncs_total",
            "",
            "Disk flushes made for spooled messages."
        ),
        stat!(
            OutboxStats,
            damaged_regions,
            9,
            Counter,
            "mllp_spool_damaged_records_total",
            "",
            "Damaged ranges found in the spool (kept in DIR/damaged/)."
        ),
        stat!(
            OutboxStats,
            damaged_bytes,
            10,
            Counter,
            "mllp_spool_damaged_bytes_total",
            "",
            "The size of the damaged ranges."
        ),
        stat!(
            OutboxStats,
            missing_segments,
            11,
            Counter,
            "mllp_spool_missing_segments_total",
            "",
            "Spool segments found missing (their messages lost)."
        ),
        stat!(
            OutboxStats,
            cursor_lost,
            12,
            Counter,
            "mllp_spool_cursor_lost_total",
            "",
            "Times the delivery cursor was unreadable (messages delivered again)."
        ),
        stat!(
            OutboxStats,
            deliveries_accepted,
            13,
            Counter,
            "mllp_deliveries_total",
            "outcome=\"accepted\"",
            DELIVERIES
        ),
        stat!(
            OutboxStats,
            deliveries_rejected,
            14,
            Counter,
            "mllp_deliveries_total",
            "outcome=\"rejected\"",
            DELIVERIES
        ),
        stat!(
            OutboxStats,
            deliveries_failed,
            15,
            Counter,
            "mllp_deliveries_total",
            "outcome=\"failed\"",
            DELIVERIES
        ),
    ];
}

/// The delivery thread's counters (atomics: a scrape never waits for a delivery).
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    durations: Histogram,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    Accepted,
    Rejected,
    Failed,
}

impl Deliveries {
    /// Counts one attempt that took `took`.
    pub(crate) fn attempt(&self, took: Duration, outcome: Attempt) {
        self.durations.observe(took);
        let counter = match outcome {
            Attempt::Accepted => &self.accepted,
            Attempt::Rejected => &self.rejected,
            Attempt::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters into `stats`.
    pub(crate) fn fill(&self, stats: &mut OutboxStats) {
        stats.deliveries_accepted = self.accepted.load(Ordering::Relaxed);
        stats.deliveries_rejected = self.rejected.load(Ordering::Relaxed);
        stats.deliveries_failed = self.failed.load(Ordering::Relaxed);
    }
}

impl super::Outbox {
    /// How long each delivery attempt took since the outbox was opened (the
    /// `mllp_delivery_duration_seconds` histogram).
    pub fn delivery_durations(&self) -> HistogramSnapshot {
        self.inner.deliveries.durations.snapshot()
    }
}
