//! The delivery thread: takes the flushed records in queue order, sends each through a
//! [`Sender`], and moves the cursor past it once it is acknowledged (AA/CA) or dead-lettered;
//! retries transport failures with backoff; on AE/AR follows [`OnReject`]; picks up the
//! operator's requeues and hold releases made from other processes.

use std::fs::{self, File};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::commit::Pos;
use super::config::OnReject;
use super::cursor::Position;
use super::dead::{self, millis};
use super::file_at::read_at;
use super::handled::{Handled, HandledAs};
use super::head::{self, Head};
use super::segment::{Kind, RawHeader, MAGIC, RECORD_HEADER};
use super::Inner;
use crate::error::Error;
use crate::hl7::{Ack, AckCode};
use crate::retry::{Backoff, Jitter, RetryPolicy};
use crate::sender::Sender;

mod failing;

use failing::{rejection, Failing};

/// How much of a segment one read takes: a record's header and, most often (HL7 messages of a
/// few kilobytes), its payload; a longer payload takes a second read.
const READ_AHEAD: u64 = 4 << 10;

/// How often, at most, the cursor is flushed while messages are being delivered. Between
/// flushes a power cut can make delivered messages be delivered again (never lost).
const CURSOR_SYNC: Duration = Duration::from_millis(500);

/// A record read back for delivery.
struct Record {
    pos: Pos,
    end: u64,
    kind: Kind,
    enqueued_ms: u64,
    payload: Vec<u8>,
}

/// How the delivery of one record ended.
enum Done {
    /// Acknowledged with AA or CA.
    Delivered(Ack),
    /// Moved to the dead-letter area for this reason (with the negative ACK, if that was it).
    Dead(String, Option<Ack>),
    /// The outbox is closing: the record stays pending.
    Closing,
}

/// How a wait between attempts ended.
enum Wait {
    /// Try again.
    Go,
    /// The outbox is closing.
    Closing,
    /// An operator asked to skip the record.
    Skip,
}

/// What the queue offers next.
enum Next {
    Record(u64, u64, u64),
    SegmentDone(u64, u64),
    Idle,
    Closing,
}

pub(crate) struct Delivery {
    inner: Arc<Inner>,
    sender: Option<Sender>,
    reader: Option<(u64, File)>,
    jitter: Jitter,
    next_poll: Instant,
    cursor_synced: Instant,
    /// The failures of the record being delivered; `DIR/head` exists while this is `Some`.
    failing: Option<Failing>,
    /// The head file left by the previous run, continued if it names the first record.
    resumed: Option<Head>,
}

impl Delivery {
    /// The delivery thread's state, delivering through `sender` (built by the caller, so that
    /// an unusable destination is an error of [`Outbox::open`](super::Outbox::open)).
    /// Without a sender, it only serves [`skip_offline`](Self::skip_offline).
    pub(crate) fn new(inner: Arc<Inner>, sender: Option<Sender>) -> Delivery {
        let resumed = head::read(&inner.dir).unwrap_or_else(|e| {
            log::warn!("cannot read the head file: {e}");
            None
        });
        Delivery {
            inner,
            sender,
            failing: None,
            resumed,
            reader: None,
            jitter: Jitter::new(),
            next_poll: Instant::now(),
            cursor_synced: Instant::now(),
        }
    }

    /// The sender a delivery thread for `config` uses: the configured one without retries (the
    /// outbox retries itself).
    ///
    /// # Errors
    /// [`Error::Config`] for an address that is not `host:port` or invalid settings;
    /// [`Error::Tls`] when the TLS settings cannot be loaded.
    pub(crate) fn sender(config: &super::OutboxConfig) -> crate::Result<Sender> {
        let mut sender_config = config.sender.clone();
        sender_config.retry = RetryPolicy::none();
        Sender::with_config(config.to.clone(), sender_config)
    }

    /// Delivers until the outbox closes.
    pub(crate) fn run(mut self) {
        loop {
            self.poll_operator();
            match self.next() {
                Next::Closing => break,
                Next::Idle => self.sync_cursor(true),
                Next::SegmentDone(seq, next) => self.segment_done(seq, next),
                Next::Record(seq, off, limit) => match self.read(seq, off, limit) {
                    Ok(record) => {
                        if !self.deliver(record) {
                            break;
                        }
                    }
                    Err(why) => {
                        let why = format!("segment {seq} unreadable at offset {off}: {why}");
                        log::error!("the outbox stops delivering: {why}");
                        self.inner.lock().failed = Some(why);
                        break;
                    }
                },
            }
        }
        self.sync_cursor(true);
    }

    /// Moves the cursor past delivered segment `seq` to `next`, and deletes `seq`.
    fn segment_done(&mut self, seq: u64, next: u64) {
        self.reader = None;
        self.write_cursor((next, MAGIC.len() as u64), false);
        let path = self.inner.segment_path(seq);
        if let Err(e) = fs::remove_file(&path) {
            log::warn!(
                "cannot delete the delivered segment {}: {e}",
                path.display()
            );
        }
    }

    /// Waits for the next thing to do.
    fn next(&mut self) -> Next {
        let mut st = self.inner.lock();
        loop {
            if st.closing {
                return Next::Closing;
            }
            if st.held {
                let wait = self.next_poll.saturating_duration_since(Instant::now());
                let _ = self.inner.work_cv.wait_timeout(st, wait);
                return Next::Idle;
            }
            let (seq, off) = st.read;
            let limit = st.readable(seq);
            if off < limit {
                return Next::Record(seq, off, limit);
            }
            if seq < st.active_seq {
                let next = st
                    .segments
                    .iter()
                    .map(|s| s.seq)
                    .find(|&s| s > seq)
                    .unwrap_or(st.active_seq);
                st.segments.retain(|s| s.seq != seq);
                st.read = (next, MAGIC.len() as u64);
                return Next::SegmentDone(seq, next);
            }
            if st.pending == 0 {
                st.head_ms = None;
                // Caught up with the writers: the delivered active segment can go.
                if self.inner.release_due(&st) {
                    if let Err(e) = self.inner.release(&mut st) {
                        log::error!("cannot release the delivered part of the outbox: {e}");
                    }
                }
            }
            let wait = self.next_poll.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Next::Idle;
            }
            st.delivery_waits = true;
            let (guard, timeout) = self
                .inner
                .work_cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            st.delivery_waits = false;
            if timeout.timed_out() {
                return Next::Idle;
            }
        }
    }

    /// Reads and checks the record at `off` of segment `seq`, which is flushed up to `limit`.
    fn read(&mut self, seq: u64, off: u64, limit: u64) -> Result<Record, String> {
        if self.reader.as_ref().map(|r| r.0) != Some(seq) {
            let path = self.inner.segment_path(seq);
            let f = File::open(&path).map_err(|e| e.to_string())?;
            self.reader = Some((seq, f));
        }
        let Some((_, f)) = self.reader.as_mut() else {
            return Err("no reader".into());
        };
        // One read for the header and, most often, the whole payload.
        let mut bytes = vec![0u8; limit.saturating_sub(off).min(READ_AHEAD) as usize];
        let got = read_at(f, off, &mut bytes).map_err(|e| e.to_string())?;
        bytes.truncate(got);
        let h = bytes
            .get(..RECORD_HEADER)
            .and_then(|h| <&[u8; RECORD_HEADER]>::try_from(h).ok())
            .ok_or("a record header cut short")?;
        let header = RawHeader::parse(h).ok_or("bad record header")?;
        let end = off + RECORD_HEADER as u64 + u64::from(header.len());
        if end > limit {
            return Err("a record runs past the flushed end".into());
        }
        let len = header.len() as usize;
        // The payload stays in the buffer it was read into (no second allocation).
        bytes.drain(..RECORD_HEADER);
        let mut payload = bytes;
        if payload.len() < len {
            let have = payload.len();
            payload.resize(len, 0);
            let more = read_at(f, off + (RECORD_HEADER + have) as u64, &mut payload[have..])
                .map_err(|e| e.to_string())?;
            if have + more < len {
                return Err("a record cut short".into());
            }
        }
        payload.truncate(len);
        let pos = header.check(off, &payload).ok_or("bad record checksum")?;
        Ok(Record {
            pos: (seq, off),
            end,
            kind: pos.kind,
            enqueued_ms: pos.enqueued_ms,
            payload,
        })
    }

    /// Delivers one record and moves the cursor past it; `false` when the outbox is closing.
    fn deliver(&mut self, record: Record) -> bool {
        {
            let mut st = self.inner.lock();
            st.in_flight = true;
            st.head_ms = Some(record.enqueued_ms);
        }
        // The failures a previous run recorded for this record go on being counted.
        self.failing = match self.resumed.take() {
            Some(h) if h.name == head::name(record.pos) => Some(Failing {
                attempts: h.attempts,
                first_ms: millis(h.first_failure_at),
                last: h.last_error,
            }),
            Some(_) => {
                self.clear_head();
                None
            }
            None => None,
        };
        let done = self.attempts(&record);
        self.finish(&record, done)
    }

    /// Records how `record` ended: counts it, writes its dead letter, moves the cursor past
    /// it, reports it; `false` when the outbox is closing or cannot go on.
    fn finish(&mut self, record: &Record, done: Done) -> bool {
        let mut st = self.inner.lock();
        st.in_flight = false;
        let outcome = match done {
            Done::Closing => return false,
            Done::Delivered(ack) => {
                st.delivered += 1;
                HandledAs::Delivered(ack)
            }
            Done::Dead(reason, ack) => {
                drop(st);
                let name = head::name(record.pos);
                let bytes = dead::encode(
                    record.kind,
                    record.enqueued_ms,
                    millis(SystemTime::now()),
                    &reason,
                    &record.payload,
                );
                let dir = dead::dead_dir(&self.inner.dir);
                if let Err(e) = fs::create_dir_all(&dir)
                    .map_err(|e| Error::Io {
                        phase: crate::error::Phase::File,
                        source: e,
                    })
                    .and_then(|()| dead::write_durably(&dir, &name, &bytes))
                {
                    // Never drop a message without a trace: stop, keep it pending.
                    let why = format!("cannot write a dead letter: {e}");
                    log::error!("the outbox stops delivering: {why}");
                    self.inner.lock().failed = Some(why);
                    return false;
                }
                log::warn!("message dead-lettered as {name}: {}", first_line(&reason));
                st = self.inner.lock();
                st.dead += 1;
                match ack {
                    Some(ack) => HandledAs::Rejected(ack),
                    None => HandledAs::DeadLettered(reason),
                }
            }
        };
        st.pending = st.pending.saturating_sub(1);
        st.pending_bytes = st.pending_bytes.saturating_sub(record.end - record.pos.1);
        st.read = (record.pos.0, record.end);
        if st.pending == 0 {
            st.head_ms = None;
        }
        // Written under the state's lock, so that it never lands after a release that moved
        // the cursor past this segment (see `release`).
        self.put_cursor((record.pos.0, record.end), st.delivered);
        drop(st);
        self.sync_cursor(false);
        if self.failing.take().is_some() {
            self.clear_head();
        }
        if let Some(report) = &self.inner.config.on_handled {
            (report.0)(&Handled {
                control_id: dead::control_id(&record.payload),
                to: self.inner.config.to.clone(),
                outcome,
            });
        }
        true
    }

    /// Sends `record` until it is acknowledged, dead-lettered, skipped, or the outbox closes.
    fn attempts(&mut self, record: &Record) -> Done {
        let mut backoff = Backoff::start(self.inner.config.retry);
        loop {
            if self.inner.lock().closing {
                return Done::Closing;
            }
            if self.skip_asked(record) {
                return self.skipped();
            }
            backoff.begin();
            let Some(sender) = self.sender.as_mut() else {
                return Done::Closing;
            };
            let started = std::time::Instant::now();
            let result = match record.kind {
                Kind::Text => match std::str::from_utf8(&record.payload) {
                    Ok(text) => sender.send(text),
                    Err(_) => return Done::Dead("the text is not valid UTF-8".into(), None),
                },
                Kind::Bytes => sender.send_bytes(&record.payload),
            };
            self.inner
                .deliveries
                .attempt(started.elapsed(), attempt(&result));
            let transient = match result {
                Ok(ack) if ack.is_success() => return Done::Delivered(ack),
                Ok(ack)
                    if self.inner.config.sender.resend_on_reject
                        && matches!(
                            ack.code,
                            AckCode::ApplicationReject | AckCode::CommitReject
                        ) =>
                {
                    format!(
                        "{} (resent on reject)",
                        rejection(&ack, &self.inner.config.to)
                    )
                }
                Ok(ack) => {
                    let reason = rejection(&ack, &self.inner.config.to);
                    match self.inner.config.on_reject {
                        OnReject::DeadLetter => return Done::Dead(reason, Some(ack)),
                        OnReject::Hold => {
                            self.failed_attempt(record, &reason);
                            match self.hold(record, &reason) {
                                Wait::Go => {}
                                Wait::Closing => return Done::Closing,
                                Wait::Skip => return self.skipped(),
                            }
                            backoff = Backoff::start(self.inner.config.retry);
                            continue;
                        }
                    }
                }
                Err(e @ (Error::Header(_) | Error::Frame(_) | Error::Charset(_))) => {
                    return Done::Dead(format!("cannot be sent: {e}"), None)
                }
                Err(e) => e.to_string(),
            };
            self.failed_attempt(record, &transient);
            match backoff.next_delay(&mut self.jitter) {
                None => {
                    return Done::Dead(
                        format!(
                            "not delivered after {} attempts: {transient}",
                            backoff.attempts()
                        ),
                        None,
                    )
                }
                Some(delay) => {
                    log::debug!("delivery failed ({transient}); next attempt in {delay:?}");
                    match self.pause(delay, record) {
                        Wait::Go => {}
                        Wait::Closing => return Done::Closing,
                        Wait::Skip => return self.skipped(),
                    }
                }
            }
        }
    }

    /// Waits `delay`, unless the outbox closes or an operator asks to skip `record` first
    /// (looked for once per poll interval).
    fn pause(&self, delay: Duration, record: &Record) -> Wait {
        let end = Instant::now() + delay;
        loop {
            if self.skip_asked(record) {
                return Wait::Skip;
            }
            let st = self.inner.lock();
            if st.closing {
                return Wait::Closing;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wait::Go;
            }
            let wait = left.min(self.inner.config.poll_interval);
            drop(
                self.inner
                    .work_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0,
            );
        }
    }

    /// Holds delivery at `record` until an operator releases the hold or skips the record.
    fn hold(&mut self, record: &Record, reason: &str) -> Wait {
        let marker = format!("{:016} {:012}\n{reason}", record.pos.0, record.pos.1);
        if let Err(e) = dead::write_durably(&self.inner.dir, "held", marker.as_bytes()) {
            log::warn!("cannot write the hold marker: {e}");
        }
        log::warn!(
            "delivery held at a rejected message until it is requeued: {}",
            first_line(reason)
        );
        self.inner.lock().held = true;
        loop {
            self.poll_operator();
            if self.skip_asked(record) {
                if let Err(e) = dead::release_hold(&self.inner.dir) {
                    log::warn!("cannot remove the hold marker: {e}");
                }
                self.inner.lock().held = false;
                return Wait::Skip;
            }
            let st = self.inner.lock();
            if st.closing {
                return Wait::Closing;
            }
            if !st.held {
                return Wait::Go;
            }
            let wait = self.next_poll.saturating_duration_since(Instant::now());
            drop(
                self.inner
                    .work_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0,
            );
        }
    }

    /// Looks for operator actions from other processes, at most once per poll interval: a
    /// released hold, messages to requeue.
    fn poll_operator(&mut self) {
        if Instant::now() < self.next_poll {
            return;
        }
        self.next_poll = Instant::now() + self.inner.config.poll_interval;
        let dir = &self.inner.dir;
        if self.inner.lock().held && !dead::held_path(dir).exists() {
            log::info!("the hold was released: delivery goes on");
            self.inner.lock().held = false;
        }
        if let Err(e) = self.inner.ingest_requeued() {
            log::warn!("cannot requeue dead letters: {e}");
        }
    }

    fn write_cursor(&mut self, pos: Pos, force_sync: bool) {
        let delivered = self.inner.lock().delivered;
        self.write_cursor_with(pos, delivered);
        self.sync_cursor(force_sync);
    }

    fn write_cursor_with(&mut self, pos: Pos, delivered: u64) {
        self.put_cursor(pos, delivered);
        self.sync_cursor(false);
    }

    /// Writes the cursor (not flushed).
    fn put_cursor(&self, pos: Pos, delivered: u64) {
        let mut cursor = self.inner.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let written = cursor.write(&Position {
            segment: pos.0,
            offset: pos.1,
            delivered,
        });
        if let Err(e) = written {
            log::warn!("cannot write the delivery cursor: {e}");
        }
    }

    /// Flushes the cursor when `force`, or when the last flush is older than [`CURSOR_SYNC`].
    fn sync_cursor(&mut self, force: bool) {
        if !force && self.cursor_synced.elapsed() < CURSOR_SYNC {
            return;
        }
        self.cursor_synced = Instant::now();
        let mut cursor = self.inner.cursor.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = cursor.sync() {
            log::warn!("cannot flush the delivery cursor: {e}");
        }
    }
}

/// How an attempt ended, for the counters: unsendable messages count as failed.
fn attempt(result: &crate::Result<crate::hl7::Ack>) -> super::stats::Attempt {
    use super::stats::Attempt;
    match result {
        Ok(ack) if ack.is_success() => Attempt::Accepted,
        Ok(_) => Attempt::Rejected,
        Err(_) => Attempt::Failed,
    }
}

fn first_line(s: &str) -> &str {
    s.split(['\r', '\n']).next().unwrap_or("")
}
