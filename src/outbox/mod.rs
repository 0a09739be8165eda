//! A durable outbox: a directory-backed FIFO of messages, delivered in order by a thread of
//! its own through a [`Sender`](crate::Sender).
//!
//! # Layout of the directory
//! ```text
//! DIR/lock                 locked (flock) by the outbox that has it open; its process id
//! DIR/segments/N.seg       records: length, CRC-32, kind, enqueue time, payload
//! DIR/cursor               the next record to deliver, and the delivered count
//! DIR/dead/S-O.dead        dead letters: the message and why (the ACK's text, the last error)
//! DIR/requeue/S-O.dead     dead letters an operator requeued, enqueued again by the outbox
//! DIR/held                 present while delivery is held at a rejected message
//! DIR/damaged/             damage found by recovery, kept for an operator (see `damage`)
//! DIR/head                 the message at the head while its delivery fails: attempts, error
//! DIR/skip                 an operator's request to dead-letter the message at the head
//! ```
//!
//! Delivered messages give their disk space back: a segment is deleted once all of it is
//! delivered, and a new segment is started early once 64 KiB of the current one are delivered,
//! so a spool on a small disk holds undelivered messages, not delivered ones.

mod commit;
mod config;
mod cursor;
mod damage;
mod dead;
mod delivery;
mod file_at;
mod handled;
mod head;
mod lock;
mod prealloc;
mod recovery;
mod release;
mod segment;
mod stats;
mod store;

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

pub use config::{
    OnReject, OutboxConfig, DEFAULT_OUTBOX_MAX_BYTES, DEFAULT_OUTBOX_MAX_MESSAGES,
    DEFAULT_SEGMENT_BYTES,
};
pub use damage::Damage;
pub use dead::DeadLetter;
pub use handled::{Handled, HandledAs, OnHandled};
pub use head::Head;
pub use stats::OutboxStats;

use commit::State;
use cursor::Cursor;
use lock::{file_error, Lock};
use segment::Kind;

use crate::error::{Error, Result};
use crate::hl7::Header;

/// A durable, bounded FIFO of HL7 messages in a directory, delivered in order to one
/// destination by a thread of its own: enqueue and forget.
///
/// [`enqueue`](Outbox::enqueue) returns once the message is on disk (flushed with
/// `fdatasync`): from then on it survives a crash of the process or a power cut, and is
/// delivered. Delivery is *at least once* and *in enqueue order*: the delivery thread sends the
/// oldest pending message, waits for its acknowledgement, and only then moves on; after a crash
/// the messages delivered in the last moments before it (whose cursor update was not yet
/// flushed) are delivered again.
///
/// * **Group commit**: many threads enqueuing at once share flushes; one `fdatasync` covers
///   every message appended while the previous one ran.
/// * **Bounded**: past [`max_messages`](OutboxConfig::max_messages) or
///   [`max_bytes`](OutboxConfig::max_bytes) pending, `enqueue` fails at once with
///   [`Error::Full`]; a relay answers AE so the sender keeps the message.
/// * **Failures**: a message that cannot be delivered (no connection, no ACK) is tried again
///   with backoff, without limit by default ([`OutboxConfig::retry`]); with a limit it is
///   dead-lettered when the attempts are used up. An AE or AR follows [`OnReject`]. Nothing is
///   dropped without a trace: a dead letter keeps the message and the ACK's text.
/// * **Visible when stuck**: while delivery of the message at the head fails,
///   [`Outbox::head`] tells which message, how many attempts, since when and why, to any
///   process; [`Outbox::skip_head`] moves it to the dead letters so the rest flows.
/// * **Space**: delivered messages give their disk space back (see
///   [`segment_bytes`](OutboxConfig::segment_bytes)); the bounds count undelivered messages.
/// * **Crash recovery**: opening scans the segments. A record cut short by a crash at the end
///   of the last segment (a torn tail) is cut off; anything else that is not a valid record
///   is damage: kept in `DIR/damaged/`, reported at error level, counted
///   ([`OutboxStats::damaged_regions`]) and skipped, every intact record before and after it
///   delivered. A missing segment and a lost cursor are reported and counted the same way;
///   [`Outbox::verify`] lists it all. The rules, and what an operator does, are in
///   `SPOOL.md`.
/// * **One owner**: a second open of a directory, by this process or another (also in
///   another container or on another host sharing the directory), fails with
///   [`Error::Locked`] naming the holder. The lock is an `flock` held by the kernel on
///   `DIR/lock` (which is why the crate needs Rust 1.89, for [`std::fs::File::try_lock`]):
///   released exactly when its holder dies, never judged stale from a process id; see
///   `SPOOL.md` for what network file systems do with it. [`Outbox::inspect`],
///   [`Outbox::verify`] and [`Outbox::dead_letters`] read a directory without the lock, and
///   [`Outbox::requeue_dead`] and [`Outbox::purge_dead`] change only the dead-letter area, so
///   operators can use them while a relay runs.
///
/// ```
/// use mllp::{Outbox, OutboxConfig};
///
/// let dir = std::env::temp_dir().join(format!("mllp-outbox-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// // Nothing listens on port 9 of loopback: the message waits in the outbox.
/// let config = OutboxConfig::new("127.0.0.1:9").deliver(false);
/// let outbox = Outbox::open(&dir, config)?;
/// outbox.enqueue("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ORU^R01|MSG1|P|2.5.1\r")?;
/// assert_eq!(outbox.stats().pending, 1);
/// outbox.close()?;
/// assert_eq!(Outbox::inspect(&dir)?.pending, 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mllp::Error>(())
/// ```
pub struct Outbox {
    inner: Arc<Inner>,
    delivery: Mutex<Option<JoinHandle<()>>>,
}

/// What the outbox handle and its delivery thread share.
pub(crate) struct Inner {
    dir: PathBuf,
    config: OutboxConfig,
    state: Mutex<State>,
    /// Signalled when a flush ends.
    synced_cv: Condvar,
    /// Signalled when there is something for the delivery thread: flushed records, closing, a
    /// released hold.
    work_cv: Condvar,
    cursor: Mutex<Cursor>,
    /// The damage recorded in `DIR/damaged/` when the outbox was opened.
    damage: Vec<Damage>,
    deliveries: stats::Deliveries,
    _lock: Lock,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues the messages in `DIR/requeue` again, each then deleted.
    fn ingest_requeued(&self) -> Result<usize> {
        let dir = dead::requeue_dir(&self.dir);
        let mut done = 0;
        for name in dead::names(&dir, ".dead")? {
            let path = dir.join(&name);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(file_error(&path, e)),
            };
            let Some(letter) = dead::decode(&name, &bytes) else {
                log::warn!("{} is not a dead-letter file: left there", path.display());
                continue;
            };
            let kind = if letter.is_text {
                Kind::Text
            } else {
                Kind::Bytes
            };
            self.append(kind, &letter.message)?;
            fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
            done += 1;
        }
        if done > 0 {
            log::info!("{done} requeued messages enqueued again");
            // They left the dead-letter area: the counter says what is there.
            let dead = dead::names(&dead::dead_dir(&self.dir), ".dead")?.len() as u64;
            self.lock().dead = dead;
        }
        Ok(done)
    }
}

impl Outbox {
    /// Opens (creating it if needed) the outbox in `dir`, recovers it, and starts delivering
    /// its pending messages. Recovery follows the rules of `SPOOL.md`: a torn tail of the last
    /// segment is cut; damage anywhere is kept in `DIR/damaged/`, reported at error level and
    /// skipped, every intact record around it delivered; a missing segment or a lost cursor
    /// is reported and recorded there. None of them stops the outbox from opening.
    ///
    /// # Errors
    /// * [`Error::Config`] for invalid settings, among them a destination that is not a
    ///   `host:port` address (with [`deliver`](OutboxConfig::deliver) on);
    /// * [`Error::Tls`] when the TLS settings toward the destination cannot be loaded;
    /// * [`Error::Locked`] when another outbox (in this or another process) has `dir` open;
    /// * [`Error::Io`] when the directory cannot be created, read or written.
    pub fn open(dir: impl AsRef<Path>, config: OutboxConfig) -> Result<Outbox> {
        config.validate()?;
        // An address that can never be delivered to is refused now, not found out after the
        // messages were taken.
        let sender = match config.deliver {
            true => Some(delivery::Delivery::sender(&config)?),
            false => None,
        };
        let dir = dir.as_ref().to_path_buf();
        for d in [
            dir.clone(),
            recovery::segments_dir(&dir),
            dead::dead_dir(&dir),
            dead::requeue_dir(&dir),
        ] {
            fs::create_dir_all(&d).map_err(|e| file_error(&d, e))?;
        }
        let lock = Lock::take(&dir)?;
        let found = recovery::scan(&dir, true)?;
        let cursor_path = dir.join("cursor");
        let (mut cursor, stored) =
            Cursor::open(&cursor_path).map_err(|e| file_error(&cursor_path, e))?;
        if found.cursor_moved {
            let moved = cursor::Position {
                delivered: stored.map_or(0, |p| p.delivered),
                ..found.cursor
            };
            cursor
                .write(&moved)
                .and_then(|()| cursor.sync())
                .map_err(|e| file_error(&cursor_path, e))?;
        }
        let last = found.segments.last().copied().ok_or(Error::Closed)?;
        let path = recovery::segments_dir(&dir).join(segment::file_name(last.seq));
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| file_error(&path, e))?;
        let mut state = State::new(
            active,
            found.segments.iter().copied().collect::<VecDeque<_>>(),
            (found.cursor.segment, found.cursor.offset),
            (found.pending, found.pending_bytes),
            found.oldest_ms,
        );
        state.delivered = stored.map_or(0, |p| p.delivered);
        state.dead = dead::names(&dead::dead_dir(&dir), ".dead")?.len() as u64;
        state.held = dead::held_path(&dir).exists();
        if found.cut > 0 {
            log::warn!(
                "the outbox in {} was not closed cleanly: {} bytes of a message being written \
                 were cut",
                dir.display(),
                found.cut
            );
        }
        let damage = damage::kept(&dir)?;
        if !damage.is_empty() {
            log::error!(
                "the outbox in {} has {} damage reports in {}, listed by Outbox::verify \
                 (`mllp spool DIR verify`); see SPOOL.md",
                dir.display(),
                damage.len(),
                damage::damaged_dir(&dir).display()
            );
        }
        let inner = Arc::new(Inner {
            dir,
            config,
            state: Mutex::new(state),
            synced_cv: Condvar::new(),
            work_cv: Condvar::new(),
            cursor: Mutex::new(cursor),
            damage,
            deliveries: stats::Deliveries::default(),
            _lock: lock,
        });
        if let Err(e) = inner.ingest_requeued() {
            log::warn!("cannot requeue dead letters yet: {e}");
        }
        let delivery = if let Some(sender) = sender {
            let worker = delivery::Delivery::new(Arc::clone(&inner), Some(sender));
            let thread = std::thread::Builder::new()
                .name("mllp-outbox".into())
                .spawn(move || worker.run())
                .map_err(|e| Error::Io {
                    phase: crate::error::Phase::File,
                    source: e,
                })?;
            Some(thread)
        } else {
            None
        };
        Ok(Outbox {
            inner,
            delivery: Mutex::new(delivery),
        })
    }

    /// Enqueues `message` (UTF-8 text, encoded into the sender's character set when it is
    /// delivered); returns once it is on disk.
    ///
    /// # Errors
    /// * [`Error::Header`] when the message has no readable MSH (or BHS/FHS) header: it could
    ///   never be delivered;
    /// * [`Error::Full`] at once when the outbox holds its most messages or bytes;
    /// * [`Error::Io`] when it cannot be written or flushed (a full disk, say: nothing of it
    ///   is kept, and the outbox goes on taking messages once there is room; after a failed
    ///   flush it refuses every message until opened again);
    /// * [`Error::Closed`] after [`close`](Self::close) began.
    pub fn enqueue(&self, message: &str) -> Result<()> {
        self.enqueue_kind(Kind::Text, message.as_bytes())
    }

    /// Enqueues `message` as bytes, delivered as they are (no character conversion). Errors
    /// as for [`enqueue`](Self::enqueue).
    pub fn enqueue_bytes(&self, message: &[u8]) -> Result<()> {
        self.enqueue_kind(Kind::Bytes, message)
    }

    fn enqueue_kind(&self, kind: Kind, message: &[u8]) -> Result<()> {
        Header::parse(message)?;
        self.inner.append(kind, message).map(|_| ())
    }

    /// The outbox's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The counters now.
    pub fn stats(&self) -> OutboxStats {
        let st = self.inner.lock();
        let mut stats = OutboxStats {
            pending: st.pending,
            pending_bytes: st.pending_bytes,
            in_flight: u64::from(st.in_flight),
            delivered: st.delivered,
            dead_lettered: st.dead,
            oldest_pending_age: st.head_ms.filter(|_| st.pending > 0).map(age),
            held: st.held,
            refused_full: st.refused_full,
            syncs: st.syncs,
            ..OutboxStats::default()
        };
        damage::count(&self.inner.damage, &mut stats);
        self.inner.deliveries.fill(&mut stats);
        stats
    }

    /// The messages in the dead-letter area, oldest first.
    ///
    /// # Errors
    /// [`Error::Io`] when the area cannot be read.
    pub fn dead_letters(dir: impl AsRef<Path>) -> Result<Vec<DeadLetter>> {
        existing(dir.as_ref())?;
        dead::list(dir.as_ref())
    }

    /// Puts every dead letter of the outbox in `dir` back in the queue (behind the pending
    /// messages, in their original order among themselves), and releases a hold: delivery
    /// goes on with the held message. Works while another process has the outbox open: that
    /// outbox picks the messages up within its poll interval
    /// ([`OutboxConfig::poll_interval`]); otherwise the next [`open`](Self::open) does.
    /// Returns how many dead letters were requeued.
    ///
    /// # Errors
    /// [`Error::Io`] when the files cannot be moved.
    pub fn requeue_dead(dir: impl AsRef<Path>) -> Result<usize> {
        existing(dir.as_ref())?;
        dead::requeue(dir.as_ref())
    }

    /// Deletes every dead letter of the outbox in `dir`; how many were deleted.
    ///
    /// # Errors
    /// [`Error::Io`] when the files cannot be deleted.
    pub fn purge_dead(dir: impl AsRef<Path>) -> Result<usize> {
        existing(dir.as_ref())?;
        dead::purge(dir.as_ref())
    }

    /// The counters of the outbox in `dir`, read without changing anything: usable while
    /// another process has it open (the in-flight, full and flush counters are then 0, and
    /// `pending` may include a message being written).
    ///
    /// The damage counters count what [`verify`](Self::verify) lists.
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<OutboxStats> {
        let dir = dir.as_ref();
        existing(dir)?;
        let found = recovery::scan(dir, false)?;
        let mut stats = OutboxStats {
            pending: found.pending,
            pending_bytes: found.pending_bytes,
            delivered: found.cursor.delivered,
            dead_lettered: dead::names(&dead::dead_dir(dir), ".dead")?.len() as u64,
            oldest_pending_age: found.oldest_ms.map(age),
            held: dead::held_path(dir).exists(),
            ..OutboxStats::default()
        };
        damage::count(&damage::merge(damage::kept(dir)?, found.damage), &mut stats);
        Ok(stats)
    }

    /// Every fault of the outbox in `dir`: the damage kept in `DIR/damaged/` by earlier opens
    /// and the damage a scan finds now (before an open has kept it aside), each once. Empty
    /// when the spool is sound. Read-only: usable while another process has it open (a
    /// message being written is then not damage). The recovery rules are in `SPOOL.md`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn verify(dir: impl AsRef<Path>) -> Result<Vec<Damage>> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(file_error(
                dir,
                io::Error::new(io::ErrorKind::NotFound, "no outbox directory here"),
            ));
        }
        let found = recovery::scan(dir, false)?;
        Ok(damage::merge(damage::kept(dir)?, found.damage))
    }

    /// The message at the head of the queue of the outbox in `dir` while its delivery fails
    /// (from its first failed attempt until it is delivered, dead-lettered or skipped): how
    /// many attempts failed, since when, and why. `None` when delivery is not failing. Read
    /// without the lock, so usable while another process has the outbox open.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` is not an outbox directory or the file cannot be read.
    pub fn head(dir: impl AsRef<Path>) -> Result<Option<Head>> {
        existing(dir.as_ref())?;
        head::read(dir.as_ref())
    }

    /// Moves the message at the head of the queue of the outbox in `dir` to the dead letters,
    /// if its delivery is failing ([`head`](Self::head)), so that the messages behind it are
    /// delivered; releases a hold. The dead letter's reason says it was skipped, after how many
    /// attempts, and the last error. Returns the skipped head, or `None` when no delivery was
    /// failing (or the head was delivered meanwhile).
    ///
    /// Safe while another process has the outbox open: that outbox is asked (`DIR/skip`, naming
    /// the head), and does it before its next attempt or within its poll interval; this call
    /// waits for it, at most `wait`. Otherwise this call opens the outbox (taking its lock,
    /// without delivering) and does it itself.
    ///
    /// # Errors
    /// [`Error::Io`] when `dir` is not an outbox directory, the files cannot be written, or
    /// (kind `TimedOut`) the outbox that has it open did not act within `wait` (the request
    /// stays: it acts later); errors of [`open`](Self::open).
    pub fn skip_head(dir: impl AsRef<Path>, wait: Duration) -> Result<Option<Head>> {
        let dir = dir.as_ref();
        existing(dir)?;
        let Some(head) = head::read(dir)? else {
            return Ok(None);
        };
        match Outbox::open(dir, OutboxConfig::new("").deliver(false)) {
            Ok(outbox) => {
                let worker = delivery::Delivery::new(Arc::clone(&outbox.inner), None);
                let skipped = worker.skip_offline(head.clone())?;
                outbox.close()?;
                Ok(skipped.then_some(head))
            }
            Err(Error::Locked { pid, .. }) => {
                dead::write_durably(dir, "skip", head.name.as_bytes())?;
                let end = std::time::Instant::now() + wait;
                while head::skip_path(dir).exists() {
                    if std::time::Instant::now() >= end {
                        return Err(file_error(
                            &head::skip_path(dir),
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "the outbox's owner (process {pid}) did not act within \
                                     {wait:?}; it will when its attempt in progress ends"
                                ),
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let skipped = dead::dead_dir(dir).join(&head.name).exists();
                Ok(skipped.then_some(head))
            }
            Err(e) => Err(e),
        }
    }

    /// The process id holding the outbox in `dir`, if one holds it (told by the kernel's
    /// lock, not by the id written in `DIR/lock`; 0 when the holder has not written its id
    /// yet). The id is the holder's as seen in its own PID namespace: in another container
    /// it names a process there.
    pub fn holder(dir: impl AsRef<Path>) -> Option<u32> {
        lock::holder(dir.as_ref())
    }

    /// Releases a hold (see [`OnReject::Hold`]) at once: the held message is sent again.
    ///
    /// # Errors
    /// [`Error::Io`] when the hold marker cannot be removed.
    pub fn resume(&self) -> Result<()> {
        dead::release_hold(&self.inner.dir)?;
        self.inner.lock().held = false;
        self.inner.work_cv.notify_all();
        Ok(())
    }

    /// Stops taking messages, lets the delivery thread finish the message in flight (bounded
    /// by the sender's timeouts), flushes the cursor and releases the directory. Pending
    /// messages stay on disk for the next [`open`](Self::open).
    ///
    /// # Errors
    /// [`Error::Io`] when the cursor cannot be flushed.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        self.inner.lock().closing = true;
        self.inner.work_cv.notify_all();
        self.inner.synced_cv.notify_all();
        let thread = self
            .delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        // Zeros written ahead are only a tail the next open cuts; cut them now, quietly.
        if let Err(e) = prealloc::trim(&mut self.inner.lock()) {
            log::debug!("cannot cut the outbox segment's space ahead: {e}");
        }
        let mut cursor = self.inner.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.inner.dir.join("cursor");
        cursor.sync().map_err(|e| file_error(&path, e))
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.inner.dir)
            .field("to", &self.inner.config.to)
            .finish_non_exhaustive()
    }
}

/// Checks that `dir` is an outbox directory (it has its segment directory), for the operations
/// that work on an existing outbox without opening it: they must neither create anything nor
/// report an empty outbox where there is none.
fn existing(dir: &Path) -> Result<()> {
    if recovery::segments_dir(dir).is_dir() {
        return Ok(());
    }
    let why = if dir.is_dir() {
        "not an outbox directory (it has no segments directory)"
    } else {
        "no outbox directory here"
    };
    Err(file_error(
        dir,
        io::Error::new(io::ErrorKind::NotFound, why),
    ))
}

fn age(ms: u64) -> Duration {
    SystemTime::now()
        .duration_since(dead::from_millis(ms))
        .unwrap_or(Duration::ZERO)
}
