//! When an open connection is checked before a write, and when it is not.
//!
//! Before writing a message on a connection it already holds, a sender can ask the socket,
//! without waiting, whether the peer has closed it or sent something since the last reply (a
//! non-blocking peek: one system call). In steady state, with a fresh control ID and ACKs
//! arriving in time, the answer cannot change the outcome: a frame waiting there answers an
//! earlier message, whose control ID differs, and is skipped by correlation while the reply is
//! awaited, exactly as if it had been discarded first. So the check is made only when it can
//! matter:
//!
//! * the message's control ID repeats one written recently on this connection (a doubled or
//!   late ACK of that message would otherwise carry the right control ID);
//! * the connection has been idle at least [`SenderConfig::idle_check`] since the last reply
//!   (a listener closes idle connections: noticing it first saves a failed attempt).
//!
//! A peer that closes the connection right after each reply races the next write either way:
//! measured against one, a check made before every write found the close in time for about 2
//! of 20 messages; the others fail their attempt and are sent again on a new connection, with
//! or without the check.
//!
//! Bytes the last read already brought after the reply are in the buffer and are always
//! looked at before a write: seeing them costs no system call.
//!
//! [`SenderConfig::idle_check`]: crate::SenderConfig::idle_check

use std::time::{Duration, Instant};

/// How many recent control IDs are remembered per connection.
const RECENT: usize = 16;

/// What a link remembers to decide whether a write on its open connection is checked first.
#[derive(Debug, Clone)]
pub(super) struct WriteCheck {
    /// Checks when the connection was idle this long (zero: before every write).
    idle_check: Duration,
    /// Hashes of the control IDs written on this connection, most recent last (a ring).
    recent: [u64; RECENT],
    /// How many of `recent` are set, at most [`RECENT`].
    len: usize,
    /// Where the next hash goes in `recent`.
    next: usize,
    /// When the last reply arrived on this connection (`None`: no reply yet).
    replied: Option<Instant>,
}

impl WriteCheck {
    pub(super) fn new(idle_check: Duration) -> WriteCheck {
        WriteCheck {
            idle_check,
            recent: [0; RECENT],
            len: 0,
            next: 0,
            replied: None,
        }
    }

    /// A new connection: nothing was written on it yet.
    pub(super) fn connected(&mut self) {
        self.len = 0;
        self.next = 0;
        self.replied = None;
    }

    /// Whether a write of the message `id` at `now` on the open connection is to be checked
    /// first.
    pub(super) fn needed(&self, id: &[u8], now: Instant) -> bool {
        if self.idle_check.is_zero() {
            return true;
        }
        let idle = match self.replied {
            Some(at) => now.saturating_duration_since(at),
            None => Duration::MAX,
        };
        if idle >= self.idle_check {
            return true;
        }
        let h = hash(id);
        self.recent[..self.len].contains(&h)
    }

    /// The message `id` is being written on this connection.
    pub(super) fn wrote(&mut self, id: &[u8]) {
        self.recent[self.next] = hash(id);
        self.next = (self.next + 1) % RECENT;
        self.len = (self.len + 1).min(RECENT);
    }

    /// A reply arrived at `now`.
    pub(super) fn replied(&mut self, now: Instant) {
        self.replied = Some(now);
    }
}

/// FNV-1a: two different IDs with the same hash only cost a check more.
fn hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_only_repeated_ids_and_idle_connections() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = WriteCheck::new(ms(10));
        // A fresh connection, no reply yet: checked (it may be idle for any time).
        assert!(c.needed(b"A", t0));
        c.wrote(b"A");
        c.replied(t0);
        assert!(
            !c.needed(b"B", t0 + ms(1)),
            "a fresh ID, soon after a reply"
        );
        assert!(c.needed(b"A", t0 + ms(1)), "a repeated ID");
        assert!(c.needed(b"B", t0 + ms(10)), "an idle connection");
        // The ring forgets the oldest ID after RECENT others.
        for i in 0..RECENT {
            c.wrote(format!("N{i}").as_bytes());
        }
        assert!(!c.needed(b"A", t0 + ms(1)));
        assert!(c.needed(b"N0", t0 + ms(1)));
        // A new connection forgets every ID.
        c.connected();
        c.replied(t0);
        assert!(!c.needed(b"N0", t0 + ms(1)));
        assert!(WriteCheck::new(Duration::ZERO).needed(b"B", t0));
    }
}
