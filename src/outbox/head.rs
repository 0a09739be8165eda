//! The message at the head of the queue when its delivery fails, made visible to other
//! processes: the delivery thread writes `DIR/head` (atomically: a temporary file renamed) after
//! each failed attempt and removes it once the message is delivered or dead-lettered, so an
//! operator's `mllp spool DIR` sees what is stuck and why without the outbox's lock.
//!
//! An operator moves a stuck head to the dead letters by writing `DIR/skip` with the head's
//! name ([`Outbox::skip_head`](super::Outbox::skip_head)); the outbox that has the directory
//! open acts on it before its next attempt, or within its poll interval while it waits. A
//! request that names another message than the head is stale and ignored, so a skip never hits
//! a message the operator did not see.
//!
//! ```text
//! DIR/head:  mllp-head 1 enqueued=MS first=MS last=MS attempts=N
//!            NAME
//!            MSH-10 (empty when unreadable)
//!            the last error, or the negative ACK (possibly several lines)
//! DIR/skip:  NAME
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::commit::Pos;
use super::dead::{from_millis, write_durably};
use super::lock::file_error;
use crate::error::Result;

/// The message at the head of an outbox's queue whose delivery failed at least once: from
/// [`Outbox::head`](super::Outbox::head).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Head {
    /// Its name: its position in the outbox, and the name of its dead-letter file if it is
    /// dead-lettered.
    pub name: String,
    /// Its control ID (MSH-10), when its header can be read.
    pub control_id: Option<String>,
    /// The delivery attempts made and failed.
    pub attempts: u32,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When its first attempt failed.
    pub first_failure_at: SystemTime,
    /// When its last attempt failed.
    pub last_failure_at: SystemTime,
    /// Why the last attempt failed: the error, or the negative ACK's code, MSA-3 and ERR texts
    /// on the first line and the whole ACK after it.
    pub last_error: String,
}

/// The head file of an outbox directory.
pub(crate) fn head_path(dir: &Path) -> PathBuf {
    dir.join("head")
}

/// The skip request of an outbox directory.
pub(crate) fn skip_path(dir: &Path) -> PathBuf {
    dir.join("skip")
}

/// The name of the record at `pos`: also the name of its dead-letter file.
pub(crate) fn name(pos: Pos) -> String {
    format!("{:016}-{:012}.dead", pos.0, pos.1)
}

/// Encodes a head file.
pub(crate) fn encode(head: &Head, enqueued_ms: u64, first_ms: u64, last_ms: u64) -> Vec<u8> {
    let id = head.control_id.as_deref().unwrap_or("");
    format!(
        "mllp-head 1 enqueued={enqueued_ms} first={first_ms} last={last_ms} attempts={}\n{}\n{}\n{}",
        head.attempts,
        head.name,
        id.replace(['\r', '\n'], " "),
        head.last_error
    )
    .into_bytes()
}

/// Decodes a head file; `None` when it is not one (never panics).
pub(crate) fn decode(bytes: &[u8]) -> Option<Head> {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(4, '\n');
    let mut words = parts.next()?.split(' ');
    if words.next()? != "mllp-head" || words.next()? != "1" {
        return None;
    }
    let (mut enq, mut first, mut last, mut attempts) = (None, None, None, None);
    for w in words {
        let (k, v) = w.split_once('=')?;
        match k {
            "enqueued" => enq = v.parse::<u64>().ok(),
            "first" => first = v.parse::<u64>().ok(),
            "last" => last = v.parse::<u64>().ok(),
            "attempts" => attempts = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    let name = parts.next()?.to_owned();
    let id = parts.next()?;
    Some(Head {
        name,
        control_id: (!id.is_empty()).then(|| id.to_owned()),
        attempts: attempts?,
        enqueued_at: from_millis(enq?),
        first_failure_at: from_millis(first?),
        last_failure_at: from_millis(last?),
        last_error: parts.next().unwrap_or("").to_owned(),
    })
}

/// The head file of outbox directory `dir`, if there is one.
///
/// # Errors
/// An I/O error other than "not found", naming the file.
pub(crate) fn read(dir: &Path) -> Result<Option<Head>> {
    let path = head_path(dir);
    match fs::read(&path) {
        Ok(bytes) => {
            let head = decode(&bytes);
            if head.is_none() {
                log::warn!("{} is not a head file: ignored", path.display());
            }
            Ok(head)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(&path, e)),
    }
}

/// Writes the head file atomically.
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> Result<()> {
    write_durably(dir, "head", bytes)
}

/// Removes a file that may be absent.
pub(crate) fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(file_error(path, e)),
    }
}

/// The name in a skip request, if there is one.
pub(crate) fn skip_request(dir: &Path) -> Option<String> {
    fs::read_to_string(skip_path(dir))
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_garbage_is_refused() {
        let head = Head {
            name: name((3, 40)),
            control_id: Some("MSG1".into()),
            attempts: 8,
            enqueued_at: from_millis(1),
            first_failure_at: from_millis(2),
            last_failure_at: from_millis(3),
            last_error: "AE from h:1: no\nMSH|...\rMSA|AE|MSG1|no".into(),
        };
        let bytes = encode(&head, 1, 2, 3);
        assert_eq!(decode(&bytes), Some(head));
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut]);
        }
        assert_eq!(decode(b"mllp-head 2\nx\ny\nz"), None);
        assert_eq!(decode(b"mllp-head 1 attempts=x\nn\n\n"), None);
    }
}
