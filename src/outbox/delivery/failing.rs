//! The record at the head while its delivery fails: its failed attempts in `DIR/head` for
//! operators, their requests to skip it (`DIR/skip`), and a skip made without a running outbox.

use std::time::SystemTime;

use super::{Delivery, Done, Next, Record};
use crate::error::Error;
use crate::hl7::Ack;
use crate::outbox::dead::{self, millis};
use crate::outbox::head::{self, Head};

/// The failed attempts at the record at the head, shown in `DIR/head` while there are any.
pub(super) struct Failing {
    pub(super) attempts: u32,
    pub(super) first_ms: u64,
    pub(super) last: String,
}

impl Delivery {
    /// With no outbox delivering (the caller holds the lock, delivery off): moves the record
    /// at the head to the dead letters if it is the one `head` names. Whether it did.
    ///
    /// # Errors
    /// When the record cannot be read or the dead letter cannot be written.
    pub(crate) fn skip_offline(mut self, head: Head) -> crate::Result<bool> {
        // A hold does not matter here: the skipped message is the held one.
        self.inner.lock().held = false;
        let record = loop {
            match self.next() {
                Next::SegmentDone(seq, next) => self.segment_done(seq, next),
                Next::Record(seq, off, limit) => match self.read(seq, off, limit) {
                    Ok(record) => break record,
                    Err(why) => {
                        return Err(Error::Io {
                            phase: crate::error::Phase::File,
                            source: std::io::Error::other(format!(
                                "segment {seq} unreadable at offset {off}: {why}"
                            )),
                        })
                    }
                },
                Next::Idle | Next::Closing => return Ok(false),
            }
        };
        if head::name(record.pos) != head.name {
            head::remove(&head::head_path(&self.inner.dir))?;
            return Ok(false);
        }
        let reason = skip_reason(head.attempts, &head.last_error);
        self.failing = Some(Failing {
            attempts: head.attempts,
            first_ms: millis(head.first_failure_at),
            last: head.last_error,
        });
        if !self.finish(&record, Done::Dead(reason, None)) {
            let why = self.inner.lock().failed.clone().unwrap_or_default();
            return Err(Error::Io {
                phase: crate::error::Phase::File,
                source: std::io::Error::other(why),
            });
        }
        dead::release_hold(&self.inner.dir)?;
        self.sync_cursor(true);
        Ok(true)
    }

    /// Removes the head file and a skip request: the head they named is done with.
    pub(super) fn clear_head(&self) {
        let dir = &self.inner.dir;
        for path in [head::head_path(dir), head::skip_path(dir)] {
            if let Err(e) = head::remove(&path) {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }

    /// Records a failed attempt at `record` in `DIR/head`, for operators.
    pub(super) fn failed_attempt(&mut self, record: &Record, why: &str) {
        let now = millis(SystemTime::now());
        let failing = self.failing.get_or_insert(Failing {
            attempts: 0,
            first_ms: now,
            last: String::new(),
        });
        failing.attempts = failing.attempts.saturating_add(1);
        failing.last = why.to_owned();
        let head = Head {
            name: head::name(record.pos),
            control_id: dead::control_id(&record.payload),
            attempts: failing.attempts,
            enqueued_at: dead::from_millis(record.enqueued_ms),
            first_failure_at: dead::from_millis(failing.first_ms),
            last_failure_at: dead::from_millis(now),
            last_error: why.to_owned(),
        };
        let bytes = head::encode(&head, record.enqueued_ms, failing.first_ms, now);
        if let Err(e) = head::write(&self.inner.dir, &bytes) {
            log::warn!("cannot write the head file: {e}");
        }
    }

    /// Whether an operator asked to skip `record` (only looked for while it fails). A request
    /// for another record is stale: removed.
    pub(super) fn skip_asked(&self, record: &Record) -> bool {
        if self.failing.is_none() {
            return false;
        }
        let Some(name) = head::skip_request(&self.inner.dir) else {
            return false;
        };
        if name == head::name(record.pos) {
            return true;
        }
        log::warn!("a request to skip {name:?}, which is not at the head, is ignored");
        let _ = head::remove(&head::skip_path(&self.inner.dir));
        false
    }

    /// The dead-letter reason of a skipped record.
    pub(super) fn skipped(&self) -> Done {
        let (attempts, last) = self
            .failing
            .as_ref()
            .map_or((0, ""), |f| (f.attempts, f.last.as_str()));
        let reason = skip_reason(attempts, last);
        log::warn!("{}", first_line(&reason));
        Done::Dead(reason, None)
    }
}

/// The reason a negative ACK gives: its code, MSA-3 and ERR texts on the first line (what a
/// log line shows), the whole ACK after it.
pub(super) fn rejection(ack: &Ack, to: &str) -> String {
    let mut out = format!("{} from {to}", ack.code);
    let mut texts: Vec<&String> = Vec::new();
    for text in ack.text.iter().chain(&ack.errors) {
        if !text.is_empty() && !texts.contains(&text) {
            texts.push(text);
        }
    }
    for (i, text) in texts.into_iter().enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&text.replace(['\r', '\n'], " "));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&ack.raw));
    out
}

/// The dead-letter reason of a record an operator skipped.
fn skip_reason(attempts: u32, last: &str) -> String {
    format!(
        "skipped by an operator after {attempts} failed attempts; the last: {}",
        last.replace(['\r', '\n'], " ")
    )
}

fn first_line(s: &str) -> &str {
    s.split(['\r', '\n']).next().unwrap_or("")
}
