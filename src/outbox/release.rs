//! Releasing delivered space: a segment file is deleted once every message in it is delivered,
//! but the active segment (the one appended to) cannot be, so delivered messages there would
//! hold their disk space until the segment is full (16 MiB by default): a spool on a small
//! disk would fill with messages already delivered and refuse every new one.
//!
//! So the outbox starts a new segment early, once the active one holds [`RELEASE_BYTES`] of
//! delivered records: when an enqueue finds that many, when the delivery thread catches up
//! with the writers (also right after opening), and when a write fails because the disk is
//! full. When everything in the active segment is delivered it is emptied in place and renamed
//! to the next sequence number (no new file, so this works on a full disk, where a deleted
//! file's space would not come back while the outbox holds it open); otherwise a new segment
//! is started, and the old one is deleted once its last message is delivered, as any segment.
//! At most one early release happens per [`RELEASE_BYTES`] delivered, so the cost per message
//! stays low (two or three flushes every 64 KiB: every few hundred messages).

use std::fs;

use super::commit::State;
use super::cursor::Position;
use super::dead::sync_dir;
use super::lock::file_error;
use super::recovery::{self, Segment};
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

    /// Lets the delivered part of the active segment go. When all of it is delivered, the
    /// segment is emptied and renamed to the next sequence number in place (no new file: this
    /// works on a full disk); otherwise a new segment is started and the old one is deleted
    /// once its last message is delivered.
    ///
    /// # Errors
    /// I/O errors naming the file; a failure after the cursor moved makes the outbox stop
    /// taking messages (`State::failed`) until it is opened again.
    pub(crate) fn release(&self, st: &mut State) -> Result<()> {
        if st.read != (st.active_seq, st.active_len) {
            return self.rotate(st);
        }
        let (old, next) = (st.active_seq, st.active_seq + 1);
        let seg_dir = recovery::segments_dir(&self.dir);
        let (old_path, next_path) = (self.segment_path(old), self.segment_path(next));
        // The order keeps every crash safe: first the cursor says "everything before segment
        // `next` is delivered" (recovery then deletes `old`, whatever it holds), then `old` is
        // emptied, then renamed. The delivery thread writes the cursor under the state's lock,
        // which this holds: no older position can overwrite this one meanwhile.
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let cursor_path = self.dir.join("cursor");
        cursor
            .write(&Position {
                segment: next,
                offset: MAGIC.len() as u64,
                delivered: st.delivered,
            })
            .and_then(|()| cursor.sync())
            .map_err(|e| file_error(&cursor_path, e))?;
        let emptied = st
            .active
            .set_len(MAGIC.len() as u64)
            .and_then(|()| st.active.sync_all())
            .map_err(|e| file_error(&old_path, e))
            .and_then(|()| fs::rename(&old_path, &next_path).map_err(|e| file_error(&old_path, e)))
            .and_then(|()| sync_dir(&seg_dir).map_err(|e| file_error(&seg_dir, e)));
        if let Err(e) = emptied {
            st.failed = Some(format!("releasing a delivered segment failed: {e}"));
            return Err(e);
        }
        drop(cursor);
        st.segments.retain(|s| s.seq != old);
        st.segments.push_back(Segment {
            seq: next,
            len: MAGIC.len() as u64,
        });
        st.active_seq = next;
        st.active_len = MAGIC.len() as u64;
        st.allocated = MAGIC.len() as u64;
        st.synced = (next, MAGIC.len() as u64);
        st.read = (next, MAGIC.len() as u64);
        self.synced_cv.notify_all();
        self.work_cv.notify_all();
        log::debug!("outbox segment {old}, all delivered, emptied as segment {next}");
        Ok(())
    }
}
