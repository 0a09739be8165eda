//! The dead-letter area (`DIR/dead`): messages the destination rejected, or that used up their
//! attempts, each in one file with the reason (the ACK's text, or the last error); the requeue
//! area (`DIR/requeue`) where an operator's requeue puts them back; and the hold marker
//! (`DIR/held`). All of it works without the outbox's lock, so that an operator can act from
//! another process while a relay runs: files move by `rename`, which is atomic.
//!
//! A dead-letter file is one header line, then the reason, a newline, and the message:
//!
//! ```text
//! mllp-dead 1 kind=text enqueued=1767225600000 dead=1767225601234 reason=41 message=312
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::lock::file_error;
use super::segment::Kind;
use crate::error::Result;
use crate::hl7::Header;

/// The dead-letter directory of an outbox directory.
pub(crate) fn dead_dir(dir: &Path) -> PathBuf {
    dir.join("dead")
}

/// The requeue directory of an outbox directory.
pub(crate) fn requeue_dir(dir: &Path) -> PathBuf {
    dir.join("requeue")
}

/// The hold marker of an outbox directory.
pub(crate) fn held_path(dir: &Path) -> PathBuf {
    dir.join("held")
}

/// A message in the dead-letter area.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its file name in `DIR/dead` (from its position in the outbox).
    pub name: String,
    /// Why it is there: the text of the negative ACK, or the last delivery error.
    pub reason: String,
    /// The message as enqueued (UTF-8 text when [`is_text`](Self::is_text)).
    pub message: Vec<u8>,
    /// Whether it was enqueued as text (encoded into the sender's character set when
    /// delivered) rather than as bytes.
    pub is_text: bool,
    /// When it was enqueued.
    pub enqueued_at: SystemTime,
    /// When it was dead-lettered.
    pub dead_at: SystemTime,
}

impl DeadLetter {
    /// The message's control ID (MSH-10), when its header can be read.
    pub fn control_id(&self) -> Option<String> {
        control_id(&self.message)
    }
}

/// The control ID (MSH-10) of `message`, when its header can be read.
pub(crate) fn control_id(message: &[u8]) -> Option<String> {
    Header::parse(message).ok().and_then(|h| {
        h.control_id()
            .map(|id| String::from_utf8_lossy(id).into_owned())
    })
}

pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Encodes a dead-letter file.
pub(crate) fn encode(
    kind: Kind,
    enqueued_ms: u64,
    dead_ms: u64,
    reason: &str,
    message: &[u8],
) -> Vec<u8> {
    let kind = match kind {
        Kind::Text => "text",
        Kind::Bytes => "bytes",
    };
    let mut out = format!(
        "mllp-dead 1 kind={kind} enqueued={enqueued_ms} dead={dead_ms} reason={} message={}\n",
        reason.len(),
        message.len()
    )
    .into_bytes();
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(message);
    out
}

/// Decodes a dead-letter file; `None` when it is not one (never panics).
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Option<DeadLetter> {
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..nl]).ok()?;
    let mut words = line.split(' ');
    if words.next()? != "mllp-dead" || words.next()? != "1" {
        return None;
    }
    let (mut kind, mut enq, mut dead, mut rlen, mut mlen) = (None, None, None, None, None);
    for w in words {
        let (k, v) = w.split_once('=')?;
        match k {
            "kind" => kind = Some(v == "text"),
            "enqueued" => enq = v.parse::<u64>().ok(),
            "dead" => dead = v.parse::<u64>().ok(),
            "reason" => rlen = v.parse::<usize>().ok(),
            "message" => mlen = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    let (rlen, mlen) = (rlen?, mlen?);
    let rest = &bytes[nl + 1..];
    if rest.len() != rlen.checked_add(1)?.checked_add(mlen)? || rest[rlen] != b'\n' {
        return None;
    }
    Some(DeadLetter {
        name: name.to_owned(),
        reason: String::from_utf8_lossy(&rest[..rlen]).into_owned(),
        message: rest[rlen + 1..].to_vec(),
        is_text: kind?,
        enqueued_at: from_millis(enq?),
        dead_at: from_millis(dead?),
    })
}

/// Writes `bytes` as `dir/name` durably: a temporary file, flushed, renamed, the directory
/// flushed.
pub(crate) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_error(&path, e)
    })
}

/// Flushes a directory's entries (Unix; elsewhere best effort).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// The names of the complete files with `suffix` in `dir`, sorted (oldest position first).
pub(crate) fn names(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_error(dir, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix) && !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// The dead letters of outbox directory `dir`, oldest first. Unreadable files are skipped
/// with a warning.
pub(crate) fn list(dir: &Path) -> Result<Vec<DeadLetter>> {
    let dead = dead_dir(dir);
    let mut out = Vec::new();
    for name in names(&dead, ".dead")? {
        let path = dead.join(&name);
        match fs::read(&path) {
            Ok(bytes) => match decode(&name, &bytes) {
                Some(letter) => out.push(letter),
                None => log::warn!("{} is not a dead-letter file: skipped", path.display()),
            },
            // Requeued or purged meanwhile by someone else.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&path, e)),
        }
    }
    Ok(out)
}

/// Moves every dead letter to the requeue area and releases a hold; how many were moved.
pub(crate) fn requeue(dir: &Path) -> Result<usize> {
    let (dead, requeue) = (dead_dir(dir), requeue_dir(dir));
    fs::create_dir_all(&requeue).map_err(|e| file_error(&requeue, e))?;
    let mut moved = 0;
    for name in names(&dead, ".dead")? {
        match fs::rename(dead.join(&name), requeue.join(&name)) {
            Ok(()) => moved += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&dead.join(&name), e)),
        }
    }
    sync_dir(&requeue).map_err(|e| file_error(&requeue, e))?;
    sync_dir(&dead).map_err(|e| file_error(&dead, e))?;
    release_hold(dir)?;
    Ok(moved)
}

/// Removes the hold marker, if there is one.
pub(crate) fn release_hold(dir: &Path) -> Result<bool> {
    let held = held_path(dir);
    match fs::remove_file(&held) {
        Ok(()) => {
            sync_dir(dir).map_err(|e| file_error(dir, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(file_error(&held, e)),
    }
}

/// Deletes every dead letter; how many were deleted.
pub(crate) fn purge(dir: &Path) -> Result<usize> {
    let dead = dead_dir(dir);
    let mut removed = 0;
    for name in names(&dead, ".dead")? {
        match fs::remove_file(dead.join(&name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&dead.join(&name), e)),
        }
    }
    sync_dir(&dead).map_err(|e| file_error(&dead, e))?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_garbage_is_refused() {
        let bytes = encode(Kind::Text, 5, 9, "AE: bad\rMSA|AE|X", b"MSH|^~\\&|A\n\rx");
        let d = decode("n.dead", &bytes).unwrap();
        assert_eq!(d.reason, "AE: bad\rMSA|AE|X");
        assert_eq!(d.message, b"MSH|^~\\&|A\n\rx");
        assert!(d.is_text);
        assert_eq!(d.dead_at, from_millis(9));
        for cut in 0..bytes.len() {
            assert!(decode("n", &bytes[..cut]).is_none(), "{cut}");
        }
        assert!(decode("n", b"mllp-dead 1 reason=99999999999999999999 message=1\nx").is_none());
    }
}
