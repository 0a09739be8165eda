//! Appending records with group commit: writers append under the state's mutex, then one of
//! them flushes (`fdatasync`) everything appended so far while the others wait for "flushed up
//! to here"; an enqueue returns once its own bytes are flushed, so one flush serves every
//! message that arrived while the previous flush ran.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, MutexGuard};
use std::time::SystemTime;

use super::dead::millis;
use super::file_at::write_at;
use super::lock::file_error;
use super::prealloc;
use super::recovery::{self, segments_dir, Segment};
use super::segment::{self, Kind, MAGIC, RECORD_HEADER};
use super::Inner;
use crate::error::{Error, Result};

/// Where a record lies: its segment and its offset there. Ordered as the queue is.
pub(crate) type Pos = (u64, u64);

/// The mutable state of an outbox, behind [`Inner::state`].
#[derive(Debug)]
pub(crate) struct State {
    /// The segment appended to.
    pub active: Arc<File>,
    /// Its sequence number and length (everything appended).
    pub active_seq: u64,
    pub active_len: u64,
    /// The active segment's file length: `active_len`, or more with zeros written ahead
    /// (see `prealloc`).
    pub allocated: u64,
    /// Everything up to here is flushed.
    pub synced: Pos,
    /// Whether a thread is flushing now.
    pub syncing: bool,
    /// How many threads wait for that flush.
    pub sync_waiters: usize,
    /// Whether the delivery thread waits for flushed records.
    pub delivery_waits: bool,
    /// Set after a failed flush (the kernel may have dropped the unflushed pages) or a failed
    /// cut of a partial write: nothing more is appended until the outbox is opened again.
    pub failed: Option<String>,
    /// The live segments, oldest first; the last is the active one.
    pub segments: VecDeque<Segment>,
    /// The next record to deliver.
    pub read: Pos,
    pub pending: u64,
    pub pending_bytes: u64,
    /// The enqueue time of the oldest pending message, when known.
    pub head_ms: Option<u64>,
    pub in_flight: bool,
    pub delivered: u64,
    pub dead: u64,
    pub held: bool,
    pub refused_full: u64,
    pub syncs: u64,
    pub closing: bool,
    buf: Vec<u8>,
}

impl State {
    /// The state after recovery.
    pub(crate) fn new(
        active: File,
        segments: VecDeque<Segment>,
        read: Pos,
        pending: (u64, u64),
        head_ms: Option<u64>,
    ) -> State {
        let last = segments.back().copied().unwrap_or(Segment {
            seq: 1,
            len: MAGIC.len() as u64,
        });
        State {
            active: Arc::new(active),
            active_seq: last.seq,
            active_len: last.len,
            allocated: last.len,
            synced: (last.seq, last.len),
            syncing: false,
            sync_waiters: 0,
            delivery_waits: false,
            failed: None,
            segments,
            read,
            pending: pending.0,
            pending_bytes: pending.1,
            head_ms,
            in_flight: false,
            delivered: 0,
            dead: 0,
            held: false,
            refused_full: 0,
            syncs: 0,
            closing: false,
            buf: Vec::new(),
        }
    }

    /// How far the records of segment `seq` may be read: its flushed length.
    pub(crate) fn readable(&self, seq: u64) -> u64 {
        if seq < self.synced.0 {
            self.segments
                .iter()
                .find(|s| s.seq == seq)
                .map_or(0, |s| s.len)
        } else if seq == self.synced.0 {
            self.synced.1
        } else {
            0
        }
    }
}

impl Inner {
    /// Appends one record and returns once it is flushed; its position.
    pub(crate) fn append(&self, kind: Kind, payload: &[u8]) -> Result<Pos> {
        let record = (RECORD_HEADER + payload.len()) as u64;
        if payload.len() > u32::MAX as usize {
            return Err(Error::Config(
                "a message larger than 4 GiB cannot be enqueued".into(),
            ));
        }
        let mut st = self.lock();
        if let Some(why) = &st.failed {
            return Err(failed(why));
        }
        if st.closing {
            return Err(Error::Closed);
        }
        if st.pending >= self.config.max_messages
            || st.pending_bytes.saturating_add(record) > self.config.max_bytes
        {
            st.refused_full += 1;
            return Err(Error::Full {
                pending: st.pending,
                pending_bytes: st.pending_bytes,
            });
        }
        if st.active_len > MAGIC.len() as u64 && st.active_len + record > self.config.segment_bytes
        {
            self.rotate(&mut st)?;
        } else if self.release_due(&st) {
            // Only an optimisation: on failure the record goes to the active segment.
            if let Err(e) = self.release(&mut st) {
                log::warn!("cannot release the delivered part of the outbox: {e}");
            }
            if let Some(why) = &st.failed {
                return Err(failed(why));
            }
        }
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        segment::encode(&mut buf, kind, millis(SystemTime::now()), payload);
        let mut retried = false;
        let at = loop {
            let at = st.active_len;
            self.preallocate(&mut st, at + record);
            let Err(e) = write_at(&st.active, at, &buf) else {
                break at;
            };
            // Cut the partial record, so that the next one follows the last complete record.
            match st.active.set_len(at) {
                Ok(()) => st.allocated = at,
                Err(cut) => st.failed = Some(format!("cutting a partial write failed: {cut}")),
            }
            // A full disk may be full of delivered messages: release them and try once more.
            if !retried
                && e.kind() == io::ErrorKind::StorageFull
                && st.failed.is_none()
                && self.delivered_in_active(&st) > 0
            {
                retried = true;
                match self.release(&mut st) {
                    Ok(()) => continue,
                    Err(r) => log::warn!("the disk is full and nothing delivered can go: {r}"),
                }
            }
            st.buf = buf;
            return Err(file_error(&self.segment_path(st.active_seq), e));
        };
        st.buf = buf;
        st.active_len += record;
        let target = (st.active_seq, st.active_len);
        if st.pending == 0 {
            st.head_ms = Some(millis(SystemTime::now()));
        }
        st.pending += 1;
        st.pending_bytes += record;
        self.wait_synced(st, target)?;
        Ok((target.0, at))
    }

    /// Waits until `target` is flushed, flushing itself when no other thread is.
    fn wait_synced<'a>(&'a self, mut st: MutexGuard<'a, State>, target: Pos) -> Result<()> {
        loop {
            if st.synced >= target {
                return Ok(());
            }
            if let Some(why) = &st.failed {
                return Err(failed(why));
            }
            if st.syncing {
                st.sync_waiters += 1;
                st = self.synced_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                st.sync_waiters -= 1;
                continue;
            }
            st.syncing = true;
            let file = Arc::clone(&st.active);
            let upto = (st.active_seq, st.active_len);
            drop(st);
            let flushed = file.sync_data();
            st = self.lock();
            st.syncing = false;
            st.syncs += 1;
            match flushed {
                Ok(()) => st.synced = st.synced.max(upto),
                Err(e) => st.failed = Some(format!("flushing a segment failed: {e}")),
            }
            // A wake is a system call: none when nobody waits (one connection, a delivery
            // thread still busy with the previous message).
            if st.sync_waiters > 0 {
                self.synced_cv.notify_all();
            }
            if st.delivery_waits {
                self.work_cv.notify_all();
            }
        }
    }

    /// Seals the active segment (flushed) and starts the next one.
    pub(crate) fn rotate(&self, st: &mut State) -> Result<()> {
        self.seal(st)?;
        let file = recovery::create(&self.dir, st.active_seq + 1)?;
        self.start_next(st, file);
        Ok(())
    }

    /// Flushes the active segment and records its final length, before a new one is started.
    pub(crate) fn seal(&self, st: &mut State) -> Result<()> {
        // A flush another thread runs meanwhile covers the old file, which this one flushes
        // anyway: it can only move `synced` to a position this one passes. Zeros written ahead
        // are cut first: only the last segment may end with them.
        let flushed = match prealloc::trim(st) {
            Ok(true) => st.active.sync_all(),
            Ok(false) => st.active.sync_data(),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cutting the space written ahead failed: {e}"),
            )),
        };
        if let Err(e) = flushed {
            st.failed = Some(format!("sealing a segment failed: {e}"));
            return Err(file_error(&self.segment_path(st.active_seq), e));
        }
        st.syncs += 1;
        let (old, len) = (st.active_seq, st.active_len);
        if let Some(s) = st.segments.back_mut() {
            s.len = len;
        }
        st.synced = st.synced.max((old, len));
        Ok(())
    }

    /// Makes `file`, the segment after the sealed active one, the active segment.
    pub(crate) fn start_next(&self, st: &mut State, file: File) {
        let next = st.active_seq + 1;
        st.active = Arc::new(file);
        st.active_seq = next;
        st.active_len = MAGIC.len() as u64;
        st.allocated = MAGIC.len() as u64;
        st.segments.push_back(Segment {
            seq: next,
            len: MAGIC.len() as u64,
        });
        st.synced = (next, MAGIC.len() as u64);
        self.synced_cv.notify_all();
        self.work_cv.notify_all();
    }

    /// The path of segment `seq`.
    pub(crate) fn segment_path(&self, seq: u64) -> std::path::PathBuf {
        segments_dir(&self.dir).join(segment::file_name(seq))
    }
}

fn failed(why: &str) -> Error {
    Error::Io {
        phase: crate::error::Phase::File,
        source: io::Error::other(format!(
            "the outbox stopped taking messages ({why}); open it again"
        )),
    }
}
