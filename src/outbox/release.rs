//! Releasing delivered space: a segment file is deleted once every message in it is delivered,
//! but the active segment (the one appended to) cannot be, so delivered messages there would
//! hold their disk space until the segment is full (16 MiB by default): a spool on a small
//! disk would fill with messages already delivered and refuse every new one.
//!
//! So the outbox starts a new segment early, once the active one holds [`RELEASE_BYTES`] of
//! delivered records: when an enqueue finds that many, when the delivery thread catches up
//! with the writers (also right after opening), and when a write fails because the disk is
//! full. When
//! everything in the old segment is delivered it is deleted at once; otherwise the delivery
//! thread deletes it when it has delivered its last message, as for any segment. At most one
//! early rotation happens per [`RELEASE_BYTES`] delivered, so the cost per message stays low
//! (two flushes and a directory flush every 64 KiB: every few hundred messages).

use std::fs;
use std::io;

use super::commit::State;
use super::lock::file_error;
use super::recovery;
use super::segment::MAGIC;
use super::Inner;
use crate::error::Result;

/// The delivered bytes in the active segment that make the outbox start a new one.
pub(crate) const RELEASE_BYTES: u64 = 64 << 10;

impl Inner {
    /// The bytes of the active segment's records that are delivered (or dead-lettered).
    pub(crate) fn delivered_in_active(&self, st: &State) -> u64 {
        if st.read.0 == st.active_seq {
            st.read.1.saturating_sub(MAGIC.len() as u64)
        } else {
            0
        }
    }

    /// Whether the active segment holds enough delivered bytes to be released now.
    pub(crate) fn release_due(&self, st: &State) -> bool {
        st.failed.is_none() && !st.closing && self.delivered_in_active(st) >= RELEASE_BYTES
    }

    /// Starts a new segment so that the delivered part of the active one can go, and deletes
    /// the old one at once when all of it is delivered. When the disk has no room even for a
    /// new segment's header and the old one is all delivered, it is deleted first.
    ///
    /// # Errors
    /// I/O errors naming the file; after a failed flush, or when the old segment is gone and
    /// no new one can be made, the outbox stops taking messages (`State::failed`).
    pub(crate) fn release(&self, st: &mut State) -> Result<()> {
        let (old, old_len) = (st.active_seq, st.active_len);
        // Nothing of it is pending: no record of it is in flight or waiting for a flush.
        let all_delivered = st.read == (old, old_len);
        self.seal(st)?;
        let file = match recovery::create(&self.dir, old + 1) {
            Ok(file) => file,
            Err(e) if all_delivered => {
                log::warn!("no room for a new segment ({e}): deleting the delivered one first");
                self.delete_segment(old)?;
                recovery::create(&self.dir, old + 1).inspect_err(|e| {
                    st.failed = Some(format!("no segment to write to: {e}"));
                })?
            }
            Err(e) => return Err(e),
        };
        self.start_next(st, file);
        if all_delivered {
            st.read = (old + 1, MAGIC.len() as u64);
            st.segments.retain(|s| s.seq != old);
            self.delete_segment(old)?;
        }
        log::debug!(
            "outbox segment {old} released at {old_len} bytes ({})",
            if all_delivered {
                "deleted"
            } else {
                "deleted once delivered"
            }
        );
        Ok(())
    }

    /// Deletes segment `seq` (already gone is fine).
    fn delete_segment(&self, seq: u64) -> Result<()> {
        let path = self.segment_path(seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error(&path, e)),
        }
    }
}
