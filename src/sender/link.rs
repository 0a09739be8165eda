//! The protocol state a sender keeps between messages.

use crate::retry::Outage;
use std::net::SocketAddr;

use log::debug;

use super::check::WriteCheck;
use super::config::{SenderConfig, Timeouts};
use super::reply::Peer;
use super::SenderStats;
use crate::codec::Decoder;
use crate::framing::Framing;
use crate::hl7::ReplyKind;
use crate::retry::{Jitter, RetryPolicy};
use crate::writer::COALESCE_LIMIT;

/// The protocol state a sender keeps between messages: its settings, whether a connection is
/// open, bytes received after the last reply, the backoff jitter and the counters.
///
/// One `Link` serves the messages sent over one logical connection, one [`Exchange`](crate::Exchange) at a time.
#[derive(Debug)]
pub struct Link {
    pub(super) framing: Framing,
    pub(super) timeouts: Timeouts,
    pub(super) retry: RetryPolicy,
    pub(super) reply: ReplyKind,
    pub(super) resend_on_reject: bool,
    pub(super) target: String,
    pub(super) decoder: Decoder,
    /// Bytes received and not yet consumed by the decoder.
    pub(super) buf: Vec<u8>,
    /// The frame being written, for messages up to [`COALESCE_LIMIT`] bytes.
    pub(super) frame: Vec<u8>,
    pub(super) connected: bool,
    pub(super) peer: Option<SocketAddr>,
    /// A connection was lost since the last one was made: the next connect is a reconnect.
    pub(super) lost: bool,
    pub(super) jitter: Jitter,
    pub(super) stats: SenderStats,
    /// Whether a write on the open connection is checked first.
    pub(super) check: WriteCheck,
    /// Failed attempts in a row: which are logged (an outage of hours is a few lines).
    pub(super) outage: Outage,
}

impl Link {
    /// The state of a sender to `target` (used in logs) with the protocol settings of
    /// `config` (framing, timeouts, retry policy, reply kind, `resend_on_reject`), not
    /// connected. The settings are taken as they are: [`SenderConfig::validate`] checks them.
    pub fn new(target: impl Into<String>, config: &SenderConfig) -> Link {
        Link {
            framing: config.framing,
            timeouts: config.timeouts,
            retry: config.retry,
            reply: config.reply,
            resend_on_reject: config.resend_on_reject,
            target: target.into(),
            decoder: Decoder::new(config.framing),
            buf: Vec::new(),
            frame: Vec::new(),
            connected: false,
            peer: None,
            lost: false,
            jitter: Jitter::new(),
            stats: SenderStats::default(),
            check: WriteCheck::new(config.idle_check),
            outage: Outage::new(),
        }
    }

    /// Whether the link believes a connection is open.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The peer address given to [`Exchange::handle_connected`](crate::Exchange::handle_connected), while connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.filter(|_| self.connected)
    }

    /// The counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// The framing settings.
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// The driver closed the connection on its own (not after a failure): the next connect is
    /// not counted as a reconnect.
    pub fn handle_closed(&mut self) {
        self.connected = false;
        self.peer = None;
        self.reset_input();
    }

    /// Drops the connection after a failure or a close by the peer.
    pub(super) fn drop_connection(&mut self) -> bool {
        let was = std::mem::take(&mut self.connected);
        if was {
            debug!("closed the connection to {}", self.peer());
            self.lost = true;
        }
        self.peer = None;
        self.reset_input();
        was
    }

    pub(super) fn reset_input(&mut self) {
        self.decoder.reset();
        self.buf.clear();
    }

    pub(super) fn peer(&self) -> Peer<'_> {
        Peer(self.peer, &self.target)
    }
}

impl Link {
    /// Drops the connection; when one was open, sets `close` so the driver is asked to close
    /// it.
    pub(super) fn drop_connection_into(&mut self, close: &mut bool) {
        if self.drop_connection() {
            *close = true;
        }
    }

    /// Prepares the frame of `message` for writing: coalesced into one buffer when small.
    pub(super) fn load_frame(&mut self, message: &[u8]) {
        if message.len() <= COALESCE_LIMIT {
            self.frame.clear();
            self.framing.encode_into(message, &mut self.frame);
        }
    }

    /// The length of the frame of `message`.
    pub(super) fn frame_len(&self, message: &[u8]) -> usize {
        self.framing.start().len() + message.len() + self.framing.end().len()
    }

    /// The bytes of the frame of `message` (loaded with [`load_frame`](Self::load_frame))
    /// from `written` on.
    pub(super) fn unwritten<'m>(&'m self, message: &'m [u8], written: usize) -> [&'m [u8]; 3] {
        if message.len() <= COALESCE_LIMIT {
            return [&self.frame[written.min(self.frame.len())..], &[], &[]];
        }
        let mut parts = [self.framing.start(), message, self.framing.end()];
        let mut skip = written;
        for part in &mut parts {
            let n = skip.min(part.len());
            *part = &part[n..];
            skip -= n;
        }
        parts
    }
}
