//! Listener counters: atomics updated by the connection threads, read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hl7::AckCode;

/// A snapshot of a listener's counters, from [`ShutdownHandle::stats`](super::ShutdownHandle::stats)
/// or [`RunningListener::stats`](super::RunningListener::stats).
///
/// Counters only grow, except `connections_open`. Each is read on its own, so a snapshot taken
/// while connections are busy may be a few events apart between fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// Connections being served now.
    pub connections_open: u64,
    /// Connections served since the start (refused ones not included).
    pub connections_total: u64,
    /// Connections accepted and closed at once because every slot was taken
    /// ([`Overflow::Refuse`](super::Overflow::Refuse)).
    pub connections_refused: u64,
    /// Idle connections closed to make room for a new one (single-connection mode with
    /// [`replace_idle`](super::ListenerBuilder::replace_idle)).
    pub connections_replaced: u64,
    /// Connections closed to make room for a new one because they had gone longest without
    /// completing a frame ([`evict_after`](super::ListenerBuilder::evict_after)).
    pub connections_evicted: u64,
    /// Messages handed to the handler (panicking calls included).
    pub messages: u64,
    /// `AA` acknowledgements sent.
    pub acks_aa: u64,
    /// `AE` acknowledgements sent.
    pub acks_ae: u64,
    /// `AR` acknowledgements sent.
    pub acks_ar: u64,
    /// `CA` acknowledgements sent.
    pub acks_ca: u64,
    /// `CE` acknowledgements sent.
    pub acks_ce: u64,
    /// `CR` acknowledgements sent.
    pub acks_cr: u64,
    /// MLLP release 2 commit acknowledgements (0x06) sent.
    pub commit_acks: u64,
    /// MLLP release 2 negative commit acknowledgements (0x15) sent.
    pub commit_naks: u64,
    /// Custom acknowledgements ([`Response::custom`](super::Response::custom)) sent.
    pub custom_acks: u64,
    /// Acknowledgements not sent because the message's MSH-15 asked for none (enhanced mode).
    pub acks_suppressed: u64,
    /// Connections closed without acknowledging their last message, because the handler
    /// answered [`Response::close`](super::Response::close) (a store that could not keep it).
    pub closed_unanswered: u64,
    /// Frames whose header could not be read, answered with an `AR` NAK (counted in
    /// `acks_ar` too) without calling the handler.
    pub nak_unparseable: u64,
    /// Messages not valid in their character set under
    /// [`Malformed::Reject`](crate::charset::Malformed::Reject), answered with an `AE` without calling the
    /// handler.
    pub charset_errors: u64,
    /// Bytes received outside any frame and dropped.
    pub skipped_bytes: u64,
    /// Frames larger than the maximum message size (skipped and answered with a NAK).
    pub oversized_frames: u64,
    /// Connections closed because a started frame did not complete in time.
    pub frame_timeouts: u64,
    /// Connections closed because they were idle longer than the idle timeout.
    pub idle_timeouts: u64,
    /// Handler calls that panicked (answered with `AE`).
    pub handler_panics: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: u64,
    /// TLS connections in their handshake, or waiting for a slot after it, now (see
    /// [`ListenerConfig::max_handshakes`](super::ListenerConfig::max_handshakes)).
    pub handshakes_pending: u64,
    /// TLS connections closed in their handshake to make room for a new connection, because
    /// [`max_handshakes`](super::ListenerConfig::max_handshakes) were pending (a flood of
    /// connections that stall in the handshake).
    pub handshakes_dropped: u64,
    /// Bytes read from the connections (framing and skipped bytes included; TLS records
    /// counted after decryption).
    pub received_bytes: u64,
    /// Connections served that have closed since the start (`connections_total` minus
    /// `connections_open`).
    pub connections_closed: u64,
    /// Connections closed at once because their peer is outside
    /// [`allow`](super::ListenerConfig::allow) (checked after any PROXY protocol header).
    pub connections_denied: u64,
    /// Connections closed because of their PROXY protocol header: missing, malformed or late
    /// from a listed proxy, or sent by an address not listed in
    /// [`proxy_protocol_from`](super::ListenerConfig::proxy_protocol_from).
    pub proxy_refused: u64,
}

use crate::stat::{stat, Stat};

const CONNECTIONS: &str = "Connections by event: accepted (served), refused (every slot taken), \
                           replaced (idle, in single-connection mode), evicted (stalled), closed, \
                           denied (not in the allow list).";
const ACKS: &str = "HL7 acknowledgements sent, by acknowledgement code.";
const COMMITS: &str = "MLLP release 2 commit blocks sent (ack 0x06, nak 0x15).";
const TIMEOUTS: &str = "Connections closed by a timeout: frame (a started frame not finished), \
                        idle.";

impl ListenerStats {
    /// Every counter of the listener, once: the C numbers (`MLLP_LISTENER_STAT_*`), the
    /// Prometheus metrics of `mllp listen --metrics-addr` and the documentation derive from it.
    pub const TABLE: &'static [Stat<ListenerStats>] = &[
        stat!(ListenerStats, connections_open, 0, Gauge, "mllp_connections_open", "", "Connections being served now."),
        stat!(ListenerStats, connections_total, 1, Counter, "mllp_connections_total", "event=\"accepted\"", CONNECTIONS),
        stat!(ListenerStats, connections_refused, 2, Counter, "mllp_connections_total", "event=\"refused\"", CONNECTIONS),
        stat!(ListenerStats, connections_replaced, 3, Counter, "mllp_connections_total", "event=\"replaced\"", CONNECTIONS),
        stat!(ListenerStats, messages, 4, Counter, "mllp_messages_received_total", "", "Messages handed to the handler (the store)."),
        stat!(ListenerStats, acks_aa, 5, Counter, "mllp_acks_sent_total", "code=\"AA\"", ACKS),
        stat!(ListenerStats, acks_ae, 6, Counter, "mllp_acks_sent_total", "code=\"AE\"", ACKS),
        stat!(ListenerStats, acks_ar, 7, Counter, "mllp_acks_sent_total", "code=\"AR\"", ACKS),
        stat!(ListenerStats, acks_ca, 8, Counter, "mllp_acks_sent_total", "code=\"CA\"", ACKS),
        stat!(ListenerStats, acks_ce, 9, Counter, "mllp_acks_sent_total", "code=\"CE\"", ACKS),
        stat!(ListenerStats, acks_cr, 10, Counter, "mllp_acks_sent_total", "code=\"CR\"", ACKS),
        stat!(ListenerStats, commit_acks, 11, Counter, "mllp_commit_blocks_sent_total", "kind=\"ack\"", COMMITS),
        stat!(ListenerStats, commit_naks, 12, Counter, "mllp_commit_blocks_sent_total", "kind=\"nak\"", COMMITS),
        stat!(ListenerStats, acks_suppressed, 13, Counter, "mllp_acks_suppressed_total", "", "Acknowledgements not sent because MSH-15 asked for none."),
        stat!(ListenerStats, nak_unparseable, 14, Counter, "mllp_unparseable_messages_total", "", "Frames whose header could not be read (answered AR)."),
        stat!(ListenerStats, charset_errors, 15, Counter, "mllp_charset_errors_total", "", "Messages not valid in their character set (answered AE)."),
        stat!(ListenerStats, skipped_bytes, 16, Counter, "mllp_skipped_bytes_total", "", "Bytes received outside any frame and dropped."),
        stat!(ListenerStats, oversized_frames, 17, Counter, "mllp_oversized_frames_total", "", "Frames larger than the maximum message size."),
        stat!(ListenerStats, frame_timeouts, 18, Counter, "mllp_connection_timeouts_total", "kind=\"frame\"", TIMEOUTS),
        stat!(ListenerStats, idle_timeouts, 19, Counter, "mllp_connection_timeouts_total", "kind=\"idle\"", TIMEOUTS),
        stat!(ListenerStats, tls_failures, 20, Counter, "mllp_tls_handshake_failures_total", "", "TLS handshakes that failed or timed out."),
        stat!(ListenerStats, connections_evicted, 21, Counter, "mllp_connections_total", "event=\"evicted\"", CONNECTIONS),
        stat!(ListenerStats, handler_panics, 22, Counter, "mllp_handler_panics_total", "", "Handler calls that panicked (answered AE)."),
        stat!(ListenerStats, custom_acks, 23, Counter, "mllp_custom_acks_sent_total", "", "Custom acknowledgements sent."),
        stat!(ListenerStats, closed_unanswered, 24, Counter, "mllp_closed_unanswered_total", "", "Connections closed without acknowledging their last message (the store could not keep it)."),
        stat!(ListenerStats, handshakes_pending, 25, Gauge, "mllp_tls_handshakes_pending", "", "TLS connections in their handshake, or waiting for a slot after it."),
        stat!(ListenerStats, handshakes_dropped, 26, Counter, "mllp_tls_handshakes_dropped_total", "", "TLS handshakes closed to make room for a new connection."),
        stat!(ListenerStats, received_bytes, 27, Counter, "mllp_received_bytes_total", "", "Bytes read from the connections."),
        stat!(ListenerStats, connections_closed, 28, Counter, "mllp_connections_total", "event=\"closed\"", CONNECTIONS),
        stat!(ListenerStats, connections_denied, 29, Counter, "mllp_connections_total", "event=\"denied\"", CONNECTIONS),
        stat!(ListenerStats, proxy_refused, 30, Counter, "mllp_proxy_headers_refused_total", "", "Connections closed for their PROXY protocol header (missing, malformed, late, or from an address not listed)."),
    ];
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) connections_replaced: AtomicU64,
    pub(crate) connections_evicted: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) acks: [AtomicU64; 6],
    pub(crate) commit_acks: AtomicU64,
    pub(crate) commit_naks: AtomicU64,
    pub(crate) custom_acks: AtomicU64,
    pub(crate) acks_suppressed: AtomicU64,
    pub(crate) closed_unanswered: AtomicU64,
    pub(crate) nak_unparseable: AtomicU64,
    pub(crate) charset_errors: AtomicU64,
    pub(crate) skipped_bytes: AtomicU64,
    pub(crate) oversized_frames: AtomicU64,
    pub(crate) frame_timeouts: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
    pub(crate) handshakes_dropped: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) connections_denied: AtomicU64,
    pub(crate) proxy_refused: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts one acknowledgement with `code`.
    pub(crate) fn ack(&self, code: AckCode) {
        let i = match code {
            AckCode::ApplicationAccept => 0,
            AckCode::ApplicationError => 1,
            AckCode::ApplicationReject => 2,
            AckCode::CommitAccept => 3,
            AckCode::CommitError => 4,
            AckCode::CommitReject => 5,
        };
        bump(&self.acks[i]);
    }

    pub(crate) fn snapshot(&self) -> ListenerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ListenerStats {
            connections_open: get(&self.connections_open),
            connections_total: get(&self.connections_total),
            connections_refused: get(&self.connections_refused),
            connections_replaced: get(&self.connections_replaced),
            connections_evicted: get(&self.connections_evicted),
            messages: get(&self.messages),
            acks_aa: get(&self.acks[0]),
            acks_ae: get(&self.acks[1]),
            acks_ar: get(&self.acks[2]),
            acks_ca: get(&self.acks[3]),
            acks_ce: get(&self.acks[4]),
            acks_cr: get(&self.acks[5]),
            commit_acks: get(&self.commit_acks),
            commit_naks: get(&self.commit_naks),
            custom_acks: get(&self.custom_acks),
            acks_suppressed: get(&self.acks_suppressed),
            closed_unanswered: get(&self.closed_unanswered),
            nak_unparseable: get(&self.nak_unparseable),
            charset_errors: get(&self.charset_errors),
            skipped_bytes: get(&self.skipped_bytes),
            oversized_frames: get(&self.oversized_frames),
            frame_timeouts: get(&self.frame_timeouts),
            idle_timeouts: get(&self.idle_timeouts),
            handler_panics: get(&self.handler_panics),
            tls_failures: get(&self.tls_failures),
            // A gauge of the pending table: filled in by the listener.
            handshakes_pending: 0,
            handshakes_dropped: get(&self.handshakes_dropped),
            received_bytes: get(&self.received_bytes),
            connections_closed: get(&self.connections_total)
                .saturating_sub(get(&self.connections_open)),
            connections_denied: get(&self.connections_denied),
            proxy_refused: get(&self.proxy_refused),
        }
    }
}
