//! The numbers of the listener's counters for `mllp_listener_get_stat`, read through the core's
//! table [`ListenerStats::TABLE`].

use mllp_core::ListenerStats;

/// Which counter of a listener `mllp_listener_get_stat` reads. New counters get new numbers;
/// the numbers never change.
pub type mllp_listener_stat = u32;

/// Connections being served now.
pub const MLLP_LISTENER_STAT_CONNECTIONS_OPEN: mllp_listener_stat = 0;
/// Connections served since the start (refused ones not included).
pub const MLLP_LISTENER_STAT_CONNECTIONS_TOTAL: mllp_listener_stat = 1;
/// Connections closed at once because every slot was taken.
pub const MLLP_LISTENER_STAT_CONNECTIONS_REFUSED: mllp_listener_stat = 2;
/// Idle connections closed to make room for a new one (`replace_idle`).
pub const MLLP_LISTENER_STAT_CONNECTIONS_REPLACED: mllp_listener_stat = 3;
/// Messages handed to the callback.
pub const MLLP_LISTENER_STAT_MESSAGES: mllp_listener_stat = 4;
/// `AA` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_AA: mllp_listener_stat = 5;
/// `AE` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_AE: mllp_listener_stat = 6;
/// `AR` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_AR: mllp_listener_stat = 7;
/// `CA` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_CA: mllp_listener_stat = 8;
/// `CE` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_CE: mllp_listener_stat = 9;
/// `CR` acknowledgements sent.
pub const MLLP_LISTENER_STAT_ACKS_CR: mllp_listener_stat = 10;
/// MLLP release 2 commit acknowledgements sent.
pub const MLLP_LISTENER_STAT_COMMIT_ACKS: mllp_listener_stat = 11;
/// MLLP release 2 negative commit acknowledgements sent.
pub const MLLP_LISTENER_STAT_COMMIT_NAKS: mllp_listener_stat = 12;
/// Acknowledgements not sent because MSH-15 asked for none.
pub const MLLP_LISTENER_STAT_ACKS_SUPPRESSED: mllp_listener_stat = 13;
/// Frames whose header could not be read, answered with AR without calling the callback.
pub const MLLP_LISTENER_STAT_NAK_UNPARSEABLE: mllp_listener_stat = 14;
/// Messages not valid in their character set, answered with AE without calling the callback.
pub const MLLP_LISTENER_STAT_CHARSET_ERRORS: mllp_listener_stat = 15;
/// Bytes received outside any frame and dropped.
pub const MLLP_LISTENER_STAT_SKIPPED_BYTES: mllp_listener_stat = 16;
/// Frames larger than the maximum message size (skipped and answered negatively).
pub const MLLP_LISTENER_STAT_OVERSIZED_FRAMES: mllp_listener_stat = 17;
/// Connections closed because a started frame did not complete in time.
pub const MLLP_LISTENER_STAT_FRAME_TIMEOUTS: mllp_listener_stat = 18;
/// Connections closed because they were idle too long.
pub const MLLP_LISTENER_STAT_IDLE_TIMEOUTS: mllp_listener_stat = 19;
/// TLS handshakes that failed or timed out.
pub const MLLP_LISTENER_STAT_TLS_FAILURES: mllp_listener_stat = 20;
/// Connections closed to make room for a new one because they had gone longest without
/// completing a frame (`mllp_listener_builder_set_evict_after_ms`).
pub const MLLP_LISTENER_STAT_CONNECTIONS_EVICTED: mllp_listener_stat = 21;

/// Handler calls that panicked (answered with AE).
pub const MLLP_LISTENER_STAT_HANDLER_PANICS: mllp_listener_stat = 22;
/// Custom acknowledgements sent.
pub const MLLP_LISTENER_STAT_CUSTOM_ACKS: mllp_listener_stat = 23;
/// Connections closed without acknowledging their last message (the callback asked to close).
pub const MLLP_LISTENER_STAT_CLOSED_UNANSWERED: mllp_listener_stat = 24;
/// TLS connections in their handshake, or waiting for a slot after it, now.
pub const MLLP_LISTENER_STAT_HANDSHAKES_PENDING: mllp_listener_stat = 25;
/// TLS connections closed in their handshake to make room for a new connection.
pub const MLLP_LISTENER_STAT_HANDSHAKES_DROPPED: mllp_listener_stat = 26;
/// Bytes read from the connections.
pub const MLLP_LISTENER_STAT_RECEIVED_BYTES: mllp_listener_stat = 27;
/// Connections served that have closed.
pub const MLLP_LISTENER_STAT_CONNECTIONS_CLOSED: mllp_listener_stat = 28;
/// Connections closed at once because their peer is outside the allow list
/// (`mllp_listener_builder_add_allow`).
pub const MLLP_LISTENER_STAT_CONNECTIONS_DENIED: mllp_listener_stat = 29;
/// Connections closed for their PROXY protocol header: missing, malformed or late from a
/// listed proxy, or sent by an address not listed.
pub const MLLP_LISTENER_STAT_PROXY_REFUSED: mllp_listener_stat = 30;

// The numbers are written for C (cbindgen) and checked against the core's table by a test
// that reads the header; listed here so that the compiler sees them used.
const _: [mllp_listener_stat; 31] = [
    MLLP_LISTENER_STAT_CONNECTIONS_OPEN,
    MLLP_LISTENER_STAT_CONNECTIONS_TOTAL,
    MLLP_LISTENER_STAT_CONNECTIONS_REFUSED,
    MLLP_LISTENER_STAT_CONNECTIONS_REPLACED,
    MLLP_LISTENER_STAT_MESSAGES,
    MLLP_LISTENER_STAT_ACKS_AA,
    MLLP_LISTENER_STAT_ACKS_AE,
    MLLP_LISTENER_STAT_ACKS_AR,
    MLLP_LISTENER_STAT_ACKS_CA,
    MLLP_LISTENER_STAT_ACKS_CE,
    MLLP_LISTENER_STAT_ACKS_CR,
    MLLP_LISTENER_STAT_COMMIT_ACKS,
    MLLP_LISTENER_STAT_COMMIT_NAKS,
    MLLP_LISTENER_STAT_ACKS_SUPPRESSED,
    MLLP_LISTENER_STAT_NAK_UNPARSEABLE,
    MLLP_LISTENER_STAT_CHARSET_ERRORS,
    MLLP_LISTENER_STAT_SKIPPED_BYTES,
    MLLP_LISTENER_STAT_OVERSIZED_FRAMES,
    MLLP_LISTENER_STAT_FRAME_TIMEOUTS,
    MLLP_LISTENER_STAT_IDLE_TIMEOUTS,
    MLLP_LISTENER_STAT_TLS_FAILURES,
    MLLP_LISTENER_STAT_CONNECTIONS_EVICTED,
    MLLP_LISTENER_STAT_HANDLER_PANICS,
    MLLP_LISTENER_STAT_CUSTOM_ACKS,
    MLLP_LISTENER_STAT_CLOSED_UNANSWERED,
    MLLP_LISTENER_STAT_HANDSHAKES_PENDING,
    MLLP_LISTENER_STAT_HANDSHAKES_DROPPED,
    MLLP_LISTENER_STAT_RECEIVED_BYTES,
    MLLP_LISTENER_STAT_CONNECTIONS_CLOSED,
    MLLP_LISTENER_STAT_CONNECTIONS_DENIED,
    MLLP_LISTENER_STAT_PROXY_REFUSED,
];

/// The counter `which` of a set of listener counters, `None` for an unknown number: read
/// through the core's table, which every `MLLP_LISTENER_STAT_*` number comes from (a test
/// compares the header with the table).
pub(crate) fn listener_stat(s: &ListenerStats, which: mllp_listener_stat) -> Option<u64> {
    mllp_core::Stat::by_id(ListenerStats::TABLE, which).map(|stat| (stat.get)(s))
}
