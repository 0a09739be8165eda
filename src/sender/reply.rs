//! How the sender judges a reply frame and a failure: correlation by control ID, and which
//! errors are worth another attempt.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;

use log::{debug, warn};

use super::link::Link;
use crate::codec::Event;
use crate::error::{Error, HeaderError, Result, Timeout};
use crate::hl7::{ack_control_id, Ack, Header, Reply, ReplyKind, COMMIT_ACK, COMMIT_NAK};

/// Judges the frame at `range` of the link's buffer as the reply to the message `id` (`None`:
/// not correlated, any acknowledgement): the acknowledgement when it is one, else `None` after
/// counting and logging the skipped frame.
pub(super) fn judge(link: &mut Link, range: Range<usize>, id: Option<&[u8]>) -> Option<Ack> {
    let peer = Peer(link.peer, &link.target);
    let stats = &mut link.stats;
    let verdict = classify(&link.buf[range], id, link.reply);
    let id = id.unwrap_or(b"(not correlated)");
    match verdict {
        Verdict::Reply(ack) => match ack {
            Ok(ack) => {
                if ack.is_success() {
                    stats.acks += 1;
                    debug!("{peer} acknowledged message {} with {}", Id(id), ack.code);
                } else {
                    stats.negative_acks += 1;
                    warn!("{peer} answered message {} with {}", Id(id), ack.code);
                }
                return Some(ack);
            }
            Err(e) => {
                warn!(
                    "skipped a reply from {peer} to message {} that cannot be read: {e}",
                    Id(id)
                );
                stats.skipped_frames += 1;
            }
        },
        Verdict::Stale(other) => {
            warn!(
                "skipped an ACK from {peer} for message {} while awaiting the ACK for message {}",
                Id(other),
                Id(id)
            );
            stats.skipped_frames += 1;
        }
        Verdict::Junk(len) => {
            warn!("skipped a {len}-byte frame from {peer} that is not an acknowledgement");
            stats.skipped_frames += 1;
        }
    }
    None
}

/// Counts and logs what the decoder found in bytes that answer no message in flight; whether
/// it was a frame.
pub(super) fn discard(link: &mut Link, event: &Event) -> bool {
    let peer = Peer(link.peer, &link.target);
    match event {
        Event::Frame(range) => match ack_control_id(&link.buf[range.clone()]) {
            Some(id) => warn!(
                "discarded an ACK from {peer} for message {} that arrived after its reply: \
                     it answers no message in flight",
                Id(id)
            ),
            None => warn!(
                "discarded a {}-byte frame from {peer} that answers no message in flight",
                range.len()
            ),
        },
        Event::Oversized { .. } => warn!(
            "discarded a frame from {peer} larger than {} bytes",
            link.framing.max_size()
        ),
        _ => return false,
    }
    link.stats.skipped_frames += 1;
    true
}

/// What a reply frame is, for the message awaiting its acknowledgement.
#[derive(Debug)]
pub(super) enum Verdict<'f> {
    /// The reply to the message, read (or why it cannot be).
    Reply(Result<Ack>),
    /// An acknowledgement for another control ID.
    Stale(&'f [u8]),
    /// Not an acknowledgement this sender can use; its length.
    Junk(usize),
}

/// What `frame` is to a message awaiting the reply for `id` (`None`: any acknowledgement).
/// The frame is read once, for its MSA-2 and then for its [`Ack`].
pub(super) fn classify<'f>(frame: &'f [u8], id: Option<&[u8]>, reply: ReplyKind) -> Verdict<'f> {
    if frame == COMMIT_ACK || frame == COMMIT_NAK {
        return match reply {
            ReplyKind::Mllp2 => Verdict::Reply(Ack::parse(frame)),
            ReplyKind::Hl7 => Verdict::Junk(frame.len()),
        };
    }
    let read = Reply::read(frame);
    match read.control_id() {
        _ if id.is_none() && reply == ReplyKind::Hl7 => Verdict::Reply(read.into_ack()),
        Some(got) if Some(got) == id => Verdict::Reply(read.into_ack()),
        Some(got) => Verdict::Stale(got),
        None => Verdict::Junk(frame.len()),
    }
}

/// The control ID a reply must echo: MSH-10, or for a batch BHS-11/FHS-11.
pub(super) fn control_id(message: &[u8]) -> Result<&[u8]> {
    let header = Header::parse(message)?;
    header.control_id().ok_or_else(|| {
        let field = if header.is_batch() { 11 } else { 10 };
        Error::Header(HeaderError::MissingField { field })
    })
}

/// Whether another attempt may succeed where this one failed. Decided on the error's kind,
/// never on its text.
pub(super) fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Timeout(Timeout::Total) => false,
        Error::Io { .. } | Error::Timeout(_) | Error::Frame(_) | Error::Closed => true,
        // A handshake broken by the network may work next time; a certificate that failed
        // verification, or a setting, will not.
        Error::Tls(tls) => tls.kind().is_transient(),
        _ => false,
    }
}

/// A control ID for logs, shown as text without allocating.
pub(super) struct Id<'a>(pub(super) &'a [u8]);

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Borrowed, not allocated, for the ASCII IDs seen in practice.
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

/// The peer for logs: its socket address when known, else the configured address.
#[derive(Clone, Copy)]
pub(super) struct Peer<'a>(pub(super) Option<SocketAddr>, pub(super) &'a str);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str(self.1),
        }
    }
}
