//! What an outbox directory holds, found by scanning it: on open (cutting a torn tail and
//! deleting delivered segments) and for inspection by another process (changing nothing).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cursor::{self, Position};
use super::lock::file_error;
use super::segment::{self, MAGIC};
use crate::error::{Error, Result};

/// One live segment file and the length of its valid records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub seq: u64,
    pub len: u64,
}

/// The state of an outbox directory.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The live segments, oldest first (at least one after [`open`]).
    pub segments: Vec<Segment>,
    /// The next record to deliver (a segment among `segments`, offset at least the header).
    pub cursor: Position,
    /// Records from the cursor on.
    pub pending: u64,
    /// Their bytes, record headers included.
    pub pending_bytes: u64,
    /// The enqueue time of the first pending record.
    pub oldest_ms: Option<u64>,
    /// The bytes cut from the last segment's torn tail.
    pub cut: u64,
}

/// The segment directory of an outbox directory.
pub(crate) fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

/// The segment sequence numbers in `dir/segments`, sorted.
fn list(dir: &Path) -> Result<Vec<u64>> {
    let seg_dir = segments_dir(dir);
    let entries = match fs::read_dir(&seg_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_error(&seg_dir, e)),
    };
    let mut seqs: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(segment::parse_name))
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Scans `dir`. With `repair`, cuts the last segment's torn tail (and flushes the cut),
/// deletes segments before the cursor, and makes sure a segment exists; without it, changes
/// nothing and takes a torn tail of the last segment for a write in progress.
///
/// # Errors
/// [`Error::Corrupt`] when a segment other than the last has a bad record: its later records
/// cannot be found. I/O errors name the file.
pub(crate) fn scan(dir: &Path, repair: bool) -> Result<Recovered> {
    let seg_dir = segments_dir(dir);
    let seqs = list(dir)?;
    let cursor_path = dir.join("cursor");
    let stored = cursor::read(&cursor_path).map_err(|e| file_error(&cursor_path, e))?;
    let mut out = Recovered::default();
    let mut cur = stored.unwrap_or(Position {
        segment: seqs.first().copied().unwrap_or(1),
        offset: 0,
        delivered: 0,
    });
    // The cursor's segment may have been deleted once delivered: go on with the next one.
    if !seqs.contains(&cur.segment) {
        if let Some(&next) = seqs.iter().find(|&&s| s > cur.segment) {
            cur.segment = next;
            cur.offset = 0;
        }
    }
    cur.offset = cur.offset.max(MAGIC.len() as u64);
    let last = seqs.last().copied();
    for &seq in &seqs {
        let path = seg_dir.join(segment::file_name(seq));
        if seq < cur.segment {
            if repair {
                fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
            }
            continue;
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Deleted by the running outbox meanwhile (inspection only).
            Err(e) if !repair && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error(&path, e)),
        };
        let scan = segment::scan(&bytes);
        let mut len = scan.valid_len;
        if scan.bad_tail || scan.bad_magic {
            if Some(seq) != last {
                return Err(Error::Corrupt {
                    path,
                    offset: scan.valid_len,
                });
            }
            if repair {
                let cut = bytes.len() as u64 - scan.valid_len;
                log::warn!(
                    "{}: cutting a torn tail of {cut} bytes after {} complete records",
                    path.display(),
                    scan.records.len()
                );
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| file_error(&path, e))?;
                let fixed = (|| {
                    if scan.bad_magic {
                        f.set_len(0)?;
                        f.write_all(MAGIC)?;
                    } else {
                        f.set_len(scan.valid_len)?;
                    }
                    f.sync_all()
                })();
                fixed.map_err(|e| file_error(&path, e))?;
                out.cut = cut;
                len = len.max(MAGIC.len() as u64);
            }
        }
        for r in &scan.records {
            if seq > cur.segment || r.offset >= cur.offset {
                out.pending += 1;
                out.pending_bytes += r.end() - r.offset;
                out.oldest_ms.get_or_insert(r.enqueued_ms);
            }
        }
        out.segments.push(Segment { seq, len });
    }
    if repair && out.segments.is_empty() {
        let seq = cur.segment.max(last.map_or(1, |l| l + 1));
        create(dir, seq)?;
        out.segments.push(Segment {
            seq,
            len: MAGIC.len() as u64,
        });
        cur.segment = seq;
        cur.offset = MAGIC.len() as u64;
    }
    out.cursor = cur;
    Ok(out)
}

/// Creates segment `seq` with its header, durably (the file and its directory entry).
pub(crate) fn create(dir: &Path, seq: u64) -> Result<fs::File> {
    let seg_dir = segments_dir(dir);
    let path = seg_dir.join(segment::file_name(seq));
    let made = (|| {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        f.write_all(MAGIC)?;
        f.sync_all()?;
        super::dead::sync_dir(&seg_dir)?;
        Ok(f)
    })();
    made.map_err(|e: io::Error| {
        let _ = fs::remove_file(&path);
        file_error(&path, e)
    })
}
