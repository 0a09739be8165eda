//! Space written ahead in the active segment, so that the flush after an append does not also
//! commit a new file size.
//!
//! On ext4, XFS and most journalling file systems, `fdatasync` after an append must commit
//! the file's new size through the journal as well as the data; after an overwrite of blocks
//! the file already has, it flushes only the data. So the active segment is extended with
//! zeros (written, not a hole: writing into a hole or an `fallocate`d extent changes metadata
//! too) [`PREALLOCATE`] bytes at a time, and records overwrite those zeros: most flushes then
//! cost an overwrite's, one in a few dozen an append's. On this project's test machine that
//! made a flush 1.4 to 1.6 times as fast (see `BENCHMARKS.md`, "Relay").
//!
//! The zeros are never read as records: the scan ends the valid records at the first bytes
//! that are not one, and zeros after the last record of the last segment are its tail (see
//! `segment::Tail::Zeros`). A segment is cut back to its records when it is sealed and when the
//! outbox closes, so only the active segment of an outbox that did not close cleanly has them.
//! On a full disk the zeros are not written (they are cut again) and records are appended
//! as before.

use std::io;

use super::commit::State;
use super::file_at::write_at;
use super::Inner;

/// How far ahead of the records the active segment is extended with zeros.
pub(crate) const PREALLOCATE: u64 = 64 << 10;

/// Zeros to write from.
static ZEROS: [u8; 16 << 10] = [0; 16 << 10];

impl Inner {
    /// Makes sure the active segment's file reaches `need` bytes, writing zeros up to the next
    /// multiple of [`PREALLOCATE`] (at most the segment size, and not past `need` when that is
    /// larger). Only an optimisation: when the zeros cannot be written (a full disk), what was
    /// written of them is cut again and the record is appended as it would be without.
    pub(crate) fn preallocate(&self, st: &mut State, need: u64) {
        if need <= st.allocated {
            return;
        }
        let target = need
            .div_ceil(PREALLOCATE)
            .saturating_mul(PREALLOCATE)
            .min(self.config.segment_bytes)
            .max(need);
        // The record itself goes from `active_len`: zeros are written after what is there.
        let from = st.allocated.max(st.active_len);
        if let Err(e) = write_zeros(&st.active, from, target) {
            log::debug!("cannot write space ahead in the outbox segment: {e}");
            // Some of the zeros may be there: cut the file back to its records. Should that
            // fail too, `allocated` errs on the large side, which only skips writing ahead.
            st.allocated = target;
            if let Err(e) = trim(st) {
                // Zeros after the last record are the tail a scan expects: harmless.
                log::debug!("cannot cut the outbox segment's space ahead: {e}");
            }
            return;
        }
        st.allocated = target;
    }
}

/// Cuts the active segment back to its records (before it is sealed, and on close); whether
/// there was anything to cut. Not flushed.
pub(crate) fn trim(st: &mut State) -> io::Result<bool> {
    if st.allocated <= st.active_len {
        return Ok(false);
    }
    st.active.set_len(st.active_len)?;
    st.allocated = st.active_len;
    Ok(true)
}

/// Writes zeros over `from..to` of `file`.
fn write_zeros(file: &std::fs::File, from: u64, to: u64) -> io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        write_at(file, at, &ZEROS[..n])?;
        at += n as u64;
    }
    Ok(())
}
