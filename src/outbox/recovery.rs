//! What an outbox directory holds, found by scanning it: on open (repairing: cutting a torn
//! tail, keeping damage aside and rewriting a damaged segment without it, deleting delivered
//! segments) and for inspection by another process (changing nothing). The rules are those
//! of `SPOOL.md`:
//!
//! * a **torn tail** is only what a crash leaves at the end of the *last* segment: one record
//!   running to the end of the file or into zeros that go to the end, or zeros alone (space
//!   the outbox writes ahead, see `prealloc`, or an extent allocated but never written). It
//!   was never acknowledged: it is cut, with a warning when a record was cut.
//! * everything else that holds no valid record is **damage**: its bytes are kept in
//!   `DIR/damaged/` (flushed before anything else changes), the segment is rewritten without
//!   them (atomically: a new file renamed over it), every intact record before and after is
//!   delivered, and it is reported at error level. In RocksDB's terms ("WAL Recovery
//!   Modes"): `kTolerateCorruptedTailRecords` for a torn tail of the last segment,
//!   `kSkipAnyCorruptedRecords` everywhere else, with the skipped bytes kept and reported.
//! * a **missing segment** between others is reported and recorded; the rest flows.
//! * a **lost cursor** (both slots damaged, or the file gone while messages are pending) is
//!   reported and recorded; delivery starts at the oldest message kept (at least once).
//!
//! The part of the cursor's segment before the cursor was delivered: it is not looked at,
//! and a rewrite keeps it byte for byte, so the cursor's offset stays valid.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cursor::{self, Position, Stored};
use super::damage::{self, Damage};
use super::dead::sync_dir;
use super::lock::file_error;
use super::segment::{self, Scan, Tail, MAGIC};
use crate::error::Result;

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
    /// The damage found by this scan (kept aside when repairing).
    pub damage: Vec<Damage>,
    /// Whether `cursor` had to be moved from where the cursor file says (to be written).
    pub cursor_moved: bool,
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

/// Scans `dir`. With `repair`, applies the rules above (and deletes segments before the
/// cursor, and makes sure a segment exists); without it, changes nothing, reports the damage
/// it finds, and takes a torn tail of the last segment for a write in progress.
///
/// # Errors
/// I/O errors, naming the file. Damage is not an error.
pub(crate) fn scan(dir: &Path, repair: bool) -> Result<Recovered> {
    let seg_dir = segments_dir(dir);
    let seqs = list(dir)?;
    let cursor_path = dir.join("cursor");
    let stored = cursor::read(&cursor_path).map_err(|e| file_error(&cursor_path, e))?;
    let mut out = Recovered::default();
    let mut cur = match &stored {
        Stored::Valid(p) => *p,
        _ => Position {
            segment: seqs.first().copied().unwrap_or(1),
            offset: 0,
            delivered: 0,
        },
    };
    let first = seqs.first().copied().unwrap_or(cur.segment);
    // Segment numbers are consecutive from the cursor's (or, when it was delivered and
    // deleted, the first one left) to the last.
    let from = cur.segment.max(first);
    for pair in seqs.windows(2) {
        let (a, b) = (pair[0].max(from.saturating_sub(1)), pair[1]);
        if b <= from || b <= a + 1 {
            continue;
        }
        let (gap_first, gap_last) = (a + 1, b - 1);
        let gap = Damage::MissingSegments {
            first: gap_first,
            last: gap_last,
        };
        log::error!("the outbox in {}: {gap} (see SPOOL.md)", dir.display());
        if repair {
            damage::keep_missing(dir, gap_first, gap_last)?;
        }
        out.damage.push(gap);
    }
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
        let from = if seq == cur.segment {
            let end = (bytes.len() as u64).max(MAGIC.len() as u64);
            if cur.offset > end {
                // Only damage does this (the cursor passes flushed records only): go on from
                // the end, so that new records are not appended behind the cursor.
                log::error!(
                    "{}: the delivery cursor points at offset {}, past the end of the \
                     segment ({end} bytes); going on from its end",
                    path.display(),
                    cur.offset
                );
                cur.offset = end;
                out.cursor_moved = true;
            }
            cur.offset
        } else {
            MAGIC.len() as u64
        };
        let scan = segment::scan(&bytes, from);
        let is_last = Some(seq) == last;
        let len = recover_segment(dir, seq, &bytes, &scan, from, is_last, repair, &mut out)?;
        for r in &scan.records {
            out.pending += 1;
            out.pending_bytes += r.end() - r.offset;
            out.oldest_ms.get_or_insert(r.enqueued_ms);
        }
        out.segments.push(Segment { seq, len });
    }
    let lost = match stored {
        Stored::Damaged(bytes) => Some(Some(bytes)),
        Stored::Missing if out.pending > 0 => Some(None),
        _ => None,
    };
    if let Some(bytes) = lost {
        log::error!(
            "the outbox in {}: the delivery cursor is {}; delivering again from the oldest \
             message kept (messages already delivered go out again; see SPOOL.md)",
            dir.display(),
            if bytes.is_some() {
                "damaged (both slots)"
            } else {
                "missing"
            }
        );
        let mut kept = None;
        if repair {
            kept = Some(damage::keep_cursor(dir, bytes.as_deref())?);
            if bytes.is_some() {
                // Kept aside: start the cursor afresh, so that it is reported once.
                let reset = OpenOptions::new()
                    .write(true)
                    .open(&cursor_path)
                    .and_then(|f| f.set_len(0).and_then(|()| f.sync_all()));
                reset.map_err(|e| file_error(&cursor_path, e))?;
            }
        }
        out.damage.push(Damage::CursorLost { kept });
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

/// Applies the rules to one scanned segment; the length of its valid part (after the
/// repair, when repairing).
#[allow(clippy::too_many_arguments)]
fn recover_segment(
    dir: &Path,
    seq: u64,
    bytes: &[u8],
    scan: &Scan,
    from: u64,
    is_last: bool,
    repair: bool,
    out: &mut Recovered,
) -> Result<u64> {
    let path = segments_dir(dir).join(segment::file_name(seq));
    let mut regions = scan.damaged.clone();
    let torn = is_last && matches!(scan.tail, Tail::Torn | Tail::Zeros);
    if scan.tail != Tail::Clean && !torn {
        regions.push((scan.tail_at, bytes.len() as u64));
    }
    if regions.is_empty() {
        if !torn || !repair {
            return Ok(scan.tail_at);
        }
        // A torn tail: cut it. Zeros alone are space written ahead (or an extent a crash
        // left unwritten): nothing was being written there.
        let cut = bytes.len() as u64 - scan.tail_at;
        if scan.tail == Tail::Zeros {
            log::debug!(
                "{}: cutting {cut} bytes of zeros after the last record",
                path.display()
            );
        } else {
            log::warn!(
                "{}: cutting a torn tail of {cut} bytes (a write cut short by a crash, never \
                 acknowledged) after {} complete records",
                path.display(),
                scan.records.len()
            );
        }
        let fixed = (|| {
            let mut f = OpenOptions::new().write(true).open(&path)?;
            if bytes.len() < MAGIC.len() {
                f.set_len(0)?;
                f.write_all(MAGIC)?;
            } else {
                f.set_len(scan.tail_at)?;
            }
            f.sync_all()
        })();
        fixed.map_err(|e| file_error(&path, e))?;
        if scan.tail != Tail::Zeros {
            out.cut += cut;
        }
        return Ok(scan.tail_at.max(MAGIC.len() as u64));
    }
    if torn && scan.tail != Tail::Zeros {
        out.cut += bytes.len() as u64 - scan.tail_at;
    }
    for &(start, end) in &regions {
        let kept = if repair {
            let b = &bytes[start as usize..end as usize];
            Some(damage::keep_region(dir, seq, start, b)?)
        } else {
            None
        };
        log::error!(
            "{}: {} bytes at offset {start} hold no valid record (damage, not a torn tail){}; \
             the intact records around them are kept and delivered (see SPOOL.md)",
            path.display(),
            end - start,
            kept.as_ref()
                .map(|p| format!(", kept in {}", p.display()))
                .unwrap_or_default()
        );
        out.damage.push(Damage::Region {
            segment: seq,
            offset: start,
            len: end - start,
            kept,
        });
    }
    if !repair {
        return Ok(scan.tail_at);
    }
    // Everything is kept aside: rewrite the segment with its intact records only, keeping the
    // delivered part before `from` as it is (the cursor's offset stays valid).
    let from = (from as usize).clamp(MAGIC.len(), bytes.len().max(MAGIC.len()));
    let mut clean = Vec::with_capacity(bytes.len());
    clean.extend_from_slice(MAGIC);
    clean.extend_from_slice(bytes.get(MAGIC.len()..from).unwrap_or(&[]));
    for r in &scan.records {
        clean.extend_from_slice(&bytes[r.offset as usize..r.end() as usize]);
    }
    let tmp = segments_dir(dir).join(format!(".{}.tmp", segment::file_name(seq)));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&clean)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(&segments_dir(dir))
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_error(&path, e)
    })?;
    Ok(clean.len() as u64)
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
