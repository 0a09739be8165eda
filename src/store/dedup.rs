//! [`DedupStore`]: duplicate suppression in front of any [`Store`], remembering the keys
//! (MSH-3, MSH-4, MSH-10) of the last N messages stored in a small file.
//!
//! The index file is a header and a ring of `capacity` fixed-size slots. Slot `(seq - 1) %
//! capacity` holds the key of the `seq`-th message remembered, with its sequence number, the
//! receipt's location and a CRC-32. A slot is written in place (one write, no fsync: a key
//! lost to a power cut makes a resend a second copy, never a loss). On open every slot is read
//! back; a slot whose CRC or layout is wrong (a torn write, a damaged or truncated file) is
//! forgotten with a warning, never an error.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use log::{debug, warn};

use super::{Receipt, Store, StoreError, StoredMessage};
use crate::error::{Error, Phase, Result};

/// The size of the header and of each slot of the index file, in bytes.
pub(crate) const SLOT_BYTES: usize = 512;
/// The most keys a [`DedupStore`] remembers (its index file is then 512 MiB).
pub const MAX_CAPACITY: usize = 1 << 20;

const MAGIC: &[u8; 12] = b"MLLP-DEDUP\0\x01";
/// Bytes of a slot before the key: CRC-32, sequence number.
const SLOT_HEAD: usize = 4 + 8;

type Key = Box<[u8]>;

/// A [`Store`] that answers a resend of one of the last `capacity` messages it stored with a
/// [duplicate receipt](Receipt::duplicate), without calling the inner store again.
///
/// A message's key is its sending application, sending facility and control ID (MSH-3, MSH-4,
/// MSH-10, each whole; an empty MSH-3 or MSH-4 is part of the key as empty). A message without
/// MSH-10 is never taken for a resend. A key is remembered only once the inner store saved the
/// message; while one connection is saving a message, another with the same key waits for it
/// (and is then a duplicate, or saves it itself if that save failed), so concurrent resends
/// make one copy.
///
/// The keys are kept in an index file of `capacity` slots of 512 bytes (the oldest key is
/// forgotten first) and survive a restart. A damaged, truncated or foreign file costs the keys
/// it held (with a warning), never the store: it is rewritten. A key too long for a slot (more
/// than about 490 bytes) is not remembered. Writing the index can fail (a full disk) without
/// failing the save: the key is then remembered until the process stops.
///
/// # Example
/// ```
/// use mllp::{DedupStore, FileStore, Store, StoredMessage};
/// # let dir = std::env::temp_dir().join(format!("mllp-dedup-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let store = DedupStore::open(FileStore::open(&dir)?, dir.join(".dedup-index"), 1000)?;
/// let text = "MSH|^~\\&|LAB|HOSP|EHR|WARD|2026||ADT^A01|ID7|P|2.5\r";
/// let message = StoredMessage::new(
///     text,
///     "127.0.0.1:9".parse().unwrap(),
///     mllp::charset::Charset::UTF_8,
///     std::time::SystemTime::now(),
/// );
/// let first = store.save(&message)?;
/// let again = store.save(&message)?;
/// assert!(!first.is_duplicate() && again.is_duplicate());
/// assert_eq!(again.location(), first.location());
/// assert_eq!(store.resends(), 1);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DedupStore<S> {
    inner: S,
    path: PathBuf,
    capacity: usize,
    state: Mutex<State>,
    /// Signalled when a save in flight ends.
    done: Condvar,
    resends: AtomicU64,
}

struct State {
    file: File,
    /// The key and location in each slot.
    slots: Vec<Option<(Key, Box<str>)>>,
    /// Which slot holds a key.
    index: HashMap<Key, usize>,
    /// Keys whose message an inner save is storing now.
    in_flight: HashSet<Key>,
    /// The sequence number of the next key remembered.
    next: u64,
    /// Whether writing the index failed (warned once).
    write_failed: bool,
}

impl<S: Store> DedupStore<S> {
    /// Remembers the keys of the last `capacity` messages `inner` stored in the index file at
    /// `index_path` (created when missing; its directory must exist).
    ///
    /// # Errors
    /// [`Error::Config`] for a capacity of 0 or over [`MAX_DEDUP_KEYS`](crate::MAX_DEDUP_KEYS); [`Error::Io`]
    /// ([`Phase::File`]) when the file cannot be opened or created. A file whose content is
    /// damaged is not an error (see the type's documentation).
    pub fn open(inner: S, index_path: impl AsRef<Path>, capacity: usize) -> Result<DedupStore<S>> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::Config(format!(
                "the duplicate index holds 1 to {MAX_CAPACITY} keys, not {capacity}"
            )));
        }
        let path = index_path.as_ref().to_path_buf();
        let file_err = |what: &str, e: io::Error| {
            Error::io(
                Phase::File,
                io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())),
            )
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| file_err("cannot open the duplicate index", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| file_err("cannot read the duplicate index", e))?;
        let (mut entries, lost, same_layout, header_ok) = read_index(&bytes, capacity);
        if !bytes.is_empty() && !header_ok {
            warn!(
                "{} is not a duplicate index, or its header is damaged: starting it anew (the \
                 keys it held are forgotten: their resends would be stored again)",
                path.display()
            );
        } else if lost > 0 {
            warn!(
                "duplicate index {}: {lost} damaged entr{} forgotten (their resends would be \
                 stored again)",
                path.display(),
                if lost == 1 { "y" } else { "ies" }
            );
        }
        entries.sort_by_key(|e| e.0);
        let keep = entries.len().saturating_sub(capacity);
        entries.drain(..keep);
        let mut state = State {
            file,
            slots: vec![None; capacity],
            index: HashMap::new(),
            in_flight: HashSet::new(),
            next: 1,
            write_failed: false,
        };
        if same_layout && lost == 0 {
            for (seq, key, location) in entries {
                let slot = slot_of(seq, capacity);
                state.index.insert(key.clone(), slot);
                state.slots[slot] = Some((key, location));
                state.next = seq + 1;
            }
        } else {
            // Another capacity, a foreign or damaged file: lay it out anew with what was read.
            state
                .file
                .set_len(0)
                .map_err(|e| file_err("cannot rewrite the duplicate index", e))?;
            write_at(&mut state.file, 0, &header(capacity))
                .map_err(|e| file_err("cannot write the duplicate index", e))?;
            for (_, key, location) in entries {
                state.remember(key, location, capacity, &path);
            }
        }
        debug!(
            "duplicate index {}: {} of {capacity} keys remembered",
            path.display(),
            state.index.len()
        );
        Ok(DedupStore {
            inner,
            path,
            capacity,
            state: Mutex::new(state),
            done: Condvar::new(),
            resends: AtomicU64::new(0),
        })
    }

    /// The inner store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The index file.
    pub fn index_path(&self) -> &Path {
        &self.path
    }

    /// How many keys the index holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many keys are remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().index.len()
    }

    /// How many resends were answered with a duplicate receipt since the store was opened.
    pub fn resends(&self) -> u64 {
        self.resends.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent state (every change is
        // one assignment after the file write): go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Store> Store for DedupStore<S> {
    fn save(&self, message: &StoredMessage<'_>) -> std::result::Result<Receipt, StoreError> {
        let Some(key) = key_of(message) else {
            return self.inner.save(message);
        };
        let mut state = self.lock();
        loop {
            if let Some(&slot) = state.index.get(&key) {
                let location = state.slots[slot].as_ref().map_or("", |(_, l)| &**l);
                self.resends.fetch_add(1, Ordering::Relaxed);
                return Ok(Receipt::duplicate(location));
            }
            if !state.in_flight.contains(&key) {
                break;
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.in_flight.insert(key.clone());
        drop(state);
        // Whatever happens (even a panic in the inner store), the key leaves `in_flight`.
        let guard = InFlight {
            store: self,
            key: Some(key),
        };
        let result = self.inner.save(message);
        if let Ok(receipt) = &result {
            guard.finish(Some(receipt.location()));
        }
        result
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn check(&self) -> std::result::Result<(), StoreError> {
        self.inner.check()
    }
}

/// Takes a key out of `in_flight` when dropped, remembering it first when the save succeeded.
struct InFlight<'a, S: Store> {
    store: &'a DedupStore<S>,
    key: Option<Key>,
}

impl<S: Store> InFlight<'_, S> {
    fn finish(mut self, location: Option<&str>) {
        self.end(location);
    }

    fn end(&mut self, location: Option<&str>) {
        let Some(key) = self.key.take() else { return };
        let mut state = self.store.lock();
        state.in_flight.remove(&key);
        if let Some(location) = location {
            state.remember(key, location.into(), self.store.capacity, &self.store.path);
        }
        drop(state);
        self.store.done.notify_all();
    }
}

impl<S: Store> Drop for InFlight<'_, S> {
    fn drop(&mut self) {
        self.end(None);
    }
}

impl State {
    /// Puts `key` in the next slot (forgetting the oldest key) and writes that slot.
    fn remember(&mut self, key: Key, location: Box<str>, capacity: usize, path: &Path) {
        let seq = self.next;
        self.next += 1;
        let slot = slot_of(seq, capacity);
        if let Some((old, _)) = self.slots[slot].take() {
            self.index.remove(&old);
        }
        let Some(bytes) = encode_slot(seq, &key, &location) else {
            debug!(
                "a key of {} bytes is too long for the duplicate index",
                key.len()
            );
            // The slot is empty now: write it so, or a restart would bring back the old key.
            let _ = write_at(&mut self.file, offset_of(slot), &[0; SLOT_BYTES]);
            return;
        };
        if let Err(e) = write_at(&mut self.file, offset_of(slot), &bytes) {
            if !self.write_failed {
                warn!(
                    "cannot write the duplicate index {}: {e} (keys are remembered until the \
                     listener stops)",
                    path.display()
                );
                self.write_failed = true;
            }
        }
        self.index.insert(key.clone(), slot);
        self.slots[slot] = Some((key, location));
    }
}

/// The key of a message: MSH-3, MSH-4 and MSH-10 with their lengths; `None` without MSH-10.
fn key_of(message: &StoredMessage<'_>) -> Option<Key> {
    let id = message.control_id()?;
    let mut key = Vec::new();
    for part in [
        message.sending_application().unwrap_or(""),
        message.sending_facility().unwrap_or(""),
        id,
    ] {
        key.extend_from_slice(&u32::try_from(part.len()).ok()?.to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    Some(key.into_boxed_slice())
}

fn slot_of(seq: u64, capacity: usize) -> usize {
    ((seq - 1) % capacity as u64) as usize
}

fn offset_of(slot: usize) -> u64 {
    (SLOT_BYTES * (slot + 1)) as u64
}

fn header(capacity: usize) -> [u8; SLOT_BYTES] {
    let mut h = [0; SLOT_BYTES];
    h[..12].copy_from_slice(MAGIC);
    h[12..20].copy_from_slice(&(capacity as u64).to_le_bytes());
    let crc = crc32(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A slot: CRC-32 (of the rest), sequence number, key length and key, location length and
/// location, zeros. `None` when it does not fit.
fn encode_slot(seq: u64, key: &[u8], location: &str) -> Option<[u8; SLOT_BYTES]> {
    let mut s = [0; SLOT_BYTES];
    let loc_room = SLOT_BYTES.checked_sub(SLOT_HEAD + 2 + key.len() + 2)?;
    // A location too long is cut (at a character boundary): it is only shown to operators.
    let mut cut = location.len().min(loc_room);
    while !location.is_char_boundary(cut) {
        cut -= 1;
    }
    let location = &location[..cut];
    s[4..12].copy_from_slice(&seq.to_le_bytes());
    let mut at = SLOT_HEAD;
    for part in [key, location.as_bytes()] {
        s[at..at + 2].copy_from_slice(&(part.len() as u16).to_le_bytes());
        s[at + 2..at + 2 + part.len()].copy_from_slice(part);
        at += 2 + part.len();
    }
    let crc = crc32(&s[4..]);
    s[..4].copy_from_slice(&crc.to_le_bytes());
    Some(s)
}

/// A slot's sequence number, key and location; `None` for an empty slot; `Some(Err)` for a
/// damaged one.
#[allow(clippy::type_complexity)]
fn decode_slot(s: &[u8]) -> Option<std::result::Result<(u64, Key, Box<str>), ()>> {
    if s.iter().all(|&b| b == 0) {
        return None;
    }
    let parsed = (|| {
        if s.len() != SLOT_BYTES || crc32(&s[4..]) != u32::from_le_bytes(s[..4].try_into().ok()?) {
            return None;
        }
        let seq = u64::from_le_bytes(s[4..12].try_into().ok()?);
        let mut at = SLOT_HEAD;
        let mut part = || {
            let len = usize::from(u16::from_le_bytes(s.get(at..at + 2)?.try_into().ok()?));
            let bytes = s.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some(bytes)
        };
        let key = part()?;
        let location = std::str::from_utf8(part()?).ok()?;
        (seq > 0).then(|| (seq, Box::from(key), Box::from(location)))
    })();
    Some(parsed.ok_or(()))
}

/// The entries of an index file, how many were damaged, whether the file has the layout of
/// `capacity` (a valid header with that capacity, every entry in its slot), and whether its
/// header is valid.
#[allow(clippy::type_complexity)]
fn read_index(bytes: &[u8], capacity: usize) -> (Vec<(u64, Key, Box<str>)>, usize, bool, bool) {
    let mut entries = Vec::new();
    let mut lost = 0;
    let head = &bytes[..bytes.len().min(SLOT_BYTES)];
    let valid_header = head.len() == SLOT_BYTES
        && head[..12] == MAGIC[..]
        && crc32(&head[..20]) == u32::from_le_bytes(head[20..24].try_into().unwrap_or_default());
    if !valid_header {
        return (entries, 0, false, false);
    }
    let file_capacity = u64::from_le_bytes(head[12..20].try_into().unwrap_or_default());
    let mut same = file_capacity == capacity as u64;
    let mut seen = HashSet::new();
    for (i, slot) in bytes[SLOT_BYTES..].chunks(SLOT_BYTES).enumerate() {
        match decode_slot(slot) {
            None => {}
            Some(Err(())) => lost += 1,
            Some(Ok((seq, key, location))) => {
                if file_capacity == 0 || slot_of(seq, file_capacity as usize) != i {
                    lost += 1;
                } else if seen.insert(key.clone()) {
                    entries.push((seq, key, location));
                } else {
                    // One key twice: a damaged file (a save remembers a key once).
                    lost += 1;
                    same = false;
                }
            }
        }
    }
    (entries, lost, same, true)
}

fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// CRC-32 (IEEE, as zlib), bitwise: slots are small and written once per message.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
