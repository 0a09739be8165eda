//! Damage found in an outbox directory, and the area where it is kept for operators:
//! `DIR/damaged/`. Every fault recovery finds is written there (durably) before anything
//! else changes, and stays there until an operator has looked at it and removed it:
//!
//! ```text
//! DIR/damaged/S-O.bin         the bytes of segment S at offset O that held no valid record
//! DIR/damaged/S.missing       segment S was missing between others (its messages are lost)
//! DIR/damaged/S-T.missing     segments S to T were missing
//! DIR/damaged/cursor-T.bin    the bytes of a cursor whose two slots were both damaged (T: ms)
//! DIR/damaged/cursor-T.missing  the cursor file was gone while messages were pending
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::dead::{self, millis};
use super::lock::file_error;
use super::segment;
use super::stats::OutboxStats;
use crate::error::Result;

/// One fault found in an outbox directory: what [`Outbox::verify`](super::Outbox::verify)
/// reports, and what the damage counters of [`OutboxStats`] count. Each is reported at error
/// level when recovery finds it, and kept in `DIR/damaged/` until an operator removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// Bytes of a segment that hold no valid record and are not a torn tail: skipped, every
    /// intact record before and after them kept. A message they held may be lost: inspect
    /// the kept bytes.
    Region {
        /// The segment's sequence number.
        segment: u64,
        /// Where the bytes started in the segment.
        offset: u64,
        /// How many bytes.
        len: u64,
        /// Where they are kept (`None` until an outbox has opened the directory).
        kept: Option<PathBuf>,
    },
    /// Segments missing between others (numbers `first..=last`): the messages they held are
    /// lost.
    MissingSegments {
        /// The first missing sequence number.
        first: u64,
        /// The last one (`first` when one segment is missing).
        last: u64,
    },
    /// The delivery cursor could not be read (both slots damaged, or the file gone while
    /// messages were pending): delivery started again at the oldest message kept, so
    /// messages already delivered were delivered again, and the delivered count restarted.
    CursorLost {
        /// Where its bytes are kept (`None` until an outbox has opened the directory).
        kept: Option<PathBuf>,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = |f: &mut fmt::Formatter<'_>, kept: &Option<PathBuf>| match kept {
            Some(p) => write!(f, ", kept in {}", p.display()),
            None => write!(f, ", not yet kept aside (the next open does it)"),
        };
        match self {
            Damage::Region {
                segment,
                offset,
                len,
                kept: k,
            } => {
                write!(
                    f,
                    "damaged segment {} at offset {offset}: {len} bytes hold no valid record",
                    segment::file_name(*segment)
                )?;
                kept(f, k)
            }
            Damage::MissingSegments { first, last } if first == last => write!(
                f,
                "missing segment {}: the messages it held are lost",
                segment::file_name(*first)
            ),
            Damage::MissingSegments { first, last } => write!(
                f,
                "missing segments {} to {}: the messages they held are lost",
                segment::file_name(*first),
                segment::file_name(*last)
            ),
            Damage::CursorLost { kept: k } => {
                write!(
                    f,
                    "lost cursor: delivery started again at the oldest message"
                )?;
                kept(f, k)
            }
        }
    }
}

/// The damage area of an outbox directory.
pub(crate) fn damaged_dir(dir: &Path) -> PathBuf {
    dir.join("damaged")
}

/// Writes `bytes` as a new file in the damage area, durably, under `stem` plus `ext` (or
/// `stem-N` plus `ext` when a different file has that name); its path. A file of that name
/// with the same bytes (kept by an open that crashed before it finished) is reused.
pub(crate) fn keep(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> Result<PathBuf> {
    let area = damaged_dir(dir);
    fs::create_dir_all(&area).map_err(|e| file_error(&area, e))?;
    for n in 0..MAX_NAMES {
        let name = if n == 0 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}-{n}.{ext}")
        };
        let path = area.join(&name);
        match fs::read(&path) {
            Ok(old) if old == bytes => return Ok(path),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                dead::write_durably(&area, &name, bytes)?;
                return Ok(path);
            }
            Err(e) => return Err(file_error(&path, e)),
        }
    }
    Err(file_error(
        &area.join(format!("{stem}.{ext}")),
        io::Error::other(format!(
            "{MAX_NAMES} different files of this name are kept already: remove some"
        )),
    ))
}

/// How many files of one name (`stem`, `stem-1`, ...) the damage area takes.
const MAX_NAMES: u32 = 1_000;

/// Keeps the bytes of a damaged region of segment `seq`.
pub(crate) fn keep_region(dir: &Path, seq: u64, offset: u64, bytes: &[u8]) -> Result<PathBuf> {
    keep(dir, &format!("{seq:016}-{offset}"), "bin", bytes)
}

/// Records that segments `first..=last` are missing.
pub(crate) fn keep_missing(dir: &Path, first: u64, last: u64) -> Result<PathBuf> {
    let stem = if first == last {
        format!("{first:016}")
    } else {
        format!("{first:016}-{last:016}")
    };
    keep(
        dir,
        &stem,
        "missing",
        b"these segments were missing between others when the outbox was opened\n",
    )
}

/// Keeps the bytes of a lost cursor (`None`: the file was gone).
pub(crate) fn keep_cursor(dir: &Path, bytes: Option<&[u8]>) -> Result<PathBuf> {
    let stem = format!("cursor-{}", millis(SystemTime::now()));
    match bytes {
        Some(b) => keep(dir, &stem, "bin", b),
        None => keep(
            dir,
            &stem,
            "missing",
            b"the cursor file was gone while messages were pending\n",
        ),
    }
}

/// The damage kept in the damage area of `dir`, in name order. Files of other names are
/// left alone.
pub(crate) fn kept(dir: &Path) -> Result<Vec<Damage>> {
    let area = damaged_dir(dir);
    let mut out = Vec::new();
    for name in dead::names(&area, "")? {
        let path = area.join(&name);
        if let Some(damage) = parse(&name, &path) {
            out.push(damage);
        }
    }
    Ok(out)
}

/// The damage a file of the damage area stands for.
fn parse(name: &str, path: &Path) -> Option<Damage> {
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.starts_with("cursor-") {
        return matches!(ext, "bin" | "missing").then(|| Damage::CursorLost {
            kept: Some(path.to_path_buf()),
        });
    }
    let mut parts = stem.split('-');
    let seq = parts.next().filter(|s| s.len() == 16)?.parse().ok()?;
    match ext {
        "missing" => {
            let last = match parts.next() {
                Some(t) => t.parse().ok().filter(|&t| t >= seq)?,
                None => seq,
            };
            Some(Damage::MissingSegments { first: seq, last })
        }
        "bin" => Some(Damage::Region {
            segment: seq,
            offset: parts.next()?.parse().ok()?,
            len: fs::metadata(path).map_or(0, |m| m.len()),
            kept: Some(path.to_path_buf()),
        }),
        _ => None,
    }
}

/// `found` (by a scan that kept nothing) and `kept` together, each fault once: a region or
/// missing segment already kept is not counted again.
pub(crate) fn merge(mut kept: Vec<Damage>, found: Vec<Damage>) -> Vec<Damage> {
    for d in found {
        let known = kept.iter().any(|k| match (k, &d) {
            (
                Damage::Region {
                    segment: a,
                    offset: x,
                    ..
                },
                Damage::Region {
                    segment: b,
                    offset: y,
                    ..
                },
            ) => a == b && x == y,
            (
                Damage::MissingSegments { first: a, last: x },
                Damage::MissingSegments { first: b, last: y },
            ) => a == b && x == y,
            _ => false,
        });
        if !known {
            kept.push(d);
        }
    }
    kept
}

/// Adds the counts of `damage` to `stats`.
pub(crate) fn count(damage: &[Damage], stats: &mut OutboxStats) {
    for d in damage {
        match d {
            Damage::Region { len, .. } => {
                stats.damaged_regions += 1;
                stats.damaged_bytes += len;
            }
            Damage::MissingSegments { first, last } => {
                stats.missing_segments += last.saturating_sub(*first).saturating_add(1);
            }
            Damage::CursorLost { .. } => stats.cursor_lost += 1,
        }
    }
}
