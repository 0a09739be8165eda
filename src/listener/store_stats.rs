//! The counters of a [`StoreHandler`](super::StoreHandler): saves by outcome and how long they
//! took, kept in atomics that the handler's connection threads bump and anyone may read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stat::{stat, Histogram, HistogramSnapshot, Stat};
use crate::store::{Receipt, StoreError};

/// A snapshot of a [`StoreHandler`](super::StoreHandler)'s counters, from
/// [`StoreHandler::stats`](super::StoreHandler::stats) or [`StoreCounters::stats`]. Each
/// counts messages (not save attempts) since the handler was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Messages stored (duplicates included).
    pub stored: u64,
    /// Messages found already stored: acknowledged again, not stored twice.
    pub duplicates: u64,
    /// Messages not stored because of a failure a retry could mend, once the store wait was
    /// over (the store was unreachable, slow or full).
    pub failures_retryable: u64,
    /// Messages the store refused (no retry can store them).
    pub failures_refused: u64,
}

const FAILURES: &str =
    "Messages not stored, by kind: retryable (the store was down, slow or full), \
                        refused (the store refused the message).";

impl StoreStats {
    /// Every counter of a store handler, once (see [`Stat`]).
    pub const TABLE: &'static [Stat<StoreStats>] = &[
        stat!(
            StoreStats,
            stored,
            0,
            Counter,
            "mllp_messages_stored_total",
            "",
            "Messages stored before they were acknowledged (duplicates included)."
        ),
        stat!(
            StoreStats,
            duplicates,
            1,
            Counter,
            "mllp_duplicates_total",
            "",
            "Messages found already stored: acknowledged again, not stored twice."
        ),
        stat!(
            StoreStats,
            failures_retryable,
            2,
            Counter,
            "mllp_store_failures_total",
            "kind=\"retryable\"",
            FAILURES
        ),
        stat!(
            StoreStats,
            failures_refused,
            3,
            Counter,
            "mllp_store_failures_total",
            "kind=\"refused\"",
            FAILURES
        ),
    ];
}

/// The live counters of a store handler; clones share them, so a clone taken before the
/// handler is given to a listener reads them while it serves.
#[derive(Debug, Clone, Default)]
pub struct StoreCounters {
    live: Arc<Live>,
}

#[derive(Debug, Default)]
struct Live {
    stored: AtomicU64,
    duplicates: AtomicU64,
    retryable: AtomicU64,
    refused: AtomicU64,
    durations: Histogram,
}

impl StoreCounters {
    /// The counters now.
    pub fn stats(&self) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            stored: get(&self.live.stored),
            duplicates: get(&self.live.duplicates),
            failures_retryable: get(&self.live.retryable),
            failures_refused: get(&self.live.refused),
        }
    }

    /// How long each message's save took, store wait and retries included: the
    /// `mllp_store_duration_seconds` histogram.
    pub fn durations(&self) -> HistogramSnapshot {
        self.live.durations.snapshot()
    }

    /// Counts one message's save that took `took` and ended with `result`: two or three
    /// relaxed atomic additions.
    pub(crate) fn saved(&self, took: Duration, result: &Result<Receipt, StoreError>) {
        self.live.durations.observe(took);
        let counter = match result {
            Ok(receipt) => {
                if receipt.is_duplicate() {
                    self.live.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                &self.live.stored
            }
            Err(e) if e.is_retryable() => &self.live.retryable,
            Err(_) => &self.live.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
