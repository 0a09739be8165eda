//! [`DedupStore`]: duplicate suppression in front of any [`Store`], remembering the keys
//! (MSH-3, MSH-4, MSH-10) and [content digests](ContentDigest) of the last N messages stored
//! in a small file.
//!
//! The index file is a header and a ring of `capacity` fixed-size slots. Slot `(seq - 1) %
//! capacity` holds the key of the `seq`-th message remembered, with its sequence number, its
//! content digest, the receipt's location and a CRC-32. A slot is written in place (one write,
//! no fsync: a key lost to a power cut makes a resend a second copy, never a loss). On open
//! every slot is read back; a slot whose CRC or layout is wrong (a torn write, a damaged or
//! truncated file) is forgotten with a warning, never an error. The header's last magic byte
//! is the format: 2 since slots hold a content digest; a file of format 1 (keys without a
//! digest, which cannot tell a resend from a reused control ID) is started anew with a warning.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use log::{debug, warn};

use super::{ContentDigest, Receipt, Store, StoreError, StoredMessage};
use crate::crc::crc32;
use crate::error::{Error, Phase, Result};

/// The size of the header and of each slot of the index file, in bytes.
pub(crate) const SLOT_BYTES: usize = 512;
/// The most keys a [`DedupStore`] remembers (its index file is then 512 MiB).
pub const MAX_CAPACITY: usize = 1 << 20;

const MAGIC: &[u8; 12] = b"MLLP-DEDUP\0\x02";
/// Bytes of a slot before the key: CRC-32, sequence number, content digest.
const SLOT_HEAD: usize = 4 + 8 + 16;

type Key = Box<[u8]>;

/// A [`Store`] that answers a resend of one of the last `capacity` messages it stored with a
/// [duplicate receipt](Receipt::duplicate), without calling the inner store again.
///
/// A message's key is its sending application, sending facility and control ID (MSH-3, MSH-4,
/// MSH-10, each whole; an empty MSH-3 or MSH-4 is part of the key as empty). A message without
/// MSH-10 is never taken for a resend. A resend has the key **and the content** of a message
/// stored before (the same [`ContentDigest`] of the whole text). A message with a key already
/// seen but another content is another message (a sending system that reset its counter):
/// it is stored, its receipt [says so](Receipt::reuses_control_id), it is counted in
/// [`reused_control_ids`](Self::reused_control_ids) and logged at warn. Each content of a key
/// is remembered, so a later resend of either is recognised.
///
/// A key is remembered only once the inner store saved the message; while one connection is
/// saving a message, another with the same key waits for it (and is then a duplicate, or
/// saves it itself if that save failed or the content differs), so concurrent resends make
/// one copy.
///
/// The keys are kept in an index file of `capacity` slots of 512 bytes (the oldest key is
/// forgotten first) and survive a restart. A damaged, truncated or foreign file, or one of an
/// earlier format (without content digests), costs the keys it held (with a warning), never
/// the store: it is rewritten. A key too long for a slot (more than about 475 bytes) is not
/// remembered. Writing the index can fail (a full disk) without failing the save: the key is
/// then remembered until the process stops.
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
    reused: AtomicU64,
}

/// What a slot remembers of one stored message.
#[derive(Clone)]
struct Entry {
    key: Key,
    digest: ContentDigest,
    location: Box<str>,
}

struct State {
    file: File,
    /// The entry in each slot.
    slots: Vec<Option<Entry>>,
    /// Which slots hold a key (one per content stored with it; almost always one).
    index: HashMap<Key, Vec<usize>>,
    /// How many slots hold an entry.
    remembered: usize,
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
        let ReadIndex {
            mut entries,
            lost,
            same_layout,
            header: found,
        } = read_index(&bytes, capacity);
        if found == Header::Format1 {
            warn!(
                "{} is a duplicate index of an earlier format (keys without a content digest): \
                 starting it anew (the keys it held are forgotten: their resends would be \
                 stored again)",
                path.display()
            );
        } else if !bytes.is_empty() && found == Header::Invalid {
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
            remembered: 0,
            in_flight: HashSet::new(),
            next: 1,
            write_failed: false,
        };
        if same_layout && lost == 0 {
            for (seq, entry) in entries {
                let slot = slot_of(seq, capacity);
                state.index.entry(entry.key.clone()).or_default().push(slot);
                state.slots[slot] = Some(entry);
                state.remembered += 1;
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
            for (_, entry) in entries {
                state.remember(entry, capacity, &path);
            }
        }
        debug!(
            "duplicate index {}: {} of {capacity} keys remembered",
            path.display(),
            state.remembered
        );
        Ok(DedupStore {
            inner,
            path,
            capacity,
            state: Mutex::new(state),
            done: Condvar::new(),
            resends: AtomicU64::new(0),
            reused: AtomicU64::new(0),
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

    /// How many keys are remembered now (a key stored with two contents counts twice).
    pub fn remembered(&self) -> usize {
        self.lock().remembered
    }

    /// How many resends were answered with a duplicate receipt since the store was opened.
    pub fn resends(&self) -> u64 {
        self.resends.load(Ordering::Relaxed)
    }

    /// How many messages were stored as new since the store was opened although a message
    /// with the same key but another content was remembered: control IDs a sending system
    /// used twice (after its counter was reset, say).
    pub fn reused_control_ids(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent state (every change is
        // one assignment after the file write): go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: Store> DedupStore<S> {
    /// `save` and `save_before`: `deadline` bounds the wait for a same-key save, and ours.
    fn save_until(
        &self,
        message: &StoredMessage<'_>,
        deadline: Option<Instant>,
    ) -> std::result::Result<Receipt, StoreError> {
        let inner_save = |m: &StoredMessage<'_>| match deadline {
            Some(at) => self.inner.save_before(m, at),
            None => self.inner.save(m),
        };
        let Some(key) = key_of(message) else {
            return inner_save(message);
        };
        let digest = message.content_digest();
        let mut state = self.lock();
        loop {
            if let Some(entry) = state.find(&key, digest) {
                let receipt = Receipt::duplicate(&*entry.location);
                self.resends.fetch_add(1, Ordering::Relaxed);
                return Ok(receipt);
            }
            if !state.in_flight.contains(&key) {
                break;
            }
            state = match deadline {
                None => self.done.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(StoreError::retryable(
                            "another connection is still saving a message with the same key",
                        ));
                    }
                    self.done
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        let reused = state.index.contains_key(&key);
        state.in_flight.insert(key.clone());
        drop(state);
        // Whatever happens (even a panic in the inner store), the key leaves `in_flight`.
        let guard = InFlight {
            store: self,
            key: Some(key),
            digest,
        };
        let mut result = inner_save(message);
        if let Ok(receipt) = &mut result {
            guard.finish(Some(receipt.location()));
            if reused {
                self.reused.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "message {} from {} ({}|{}) reuses the control ID of a different message \
                     stored before (the sending system may have reset its counter): stored as \
                     a new message at {receipt}",
                    message.control_id().unwrap_or("-"),
                    message.peer_addr(),
                    message.sending_application().unwrap_or(""),
                    message.sending_facility().unwrap_or(""),
                );
                *receipt = receipt.clone().reusing_control_id();
            }
        }
        result
    }
}

impl<S: Store> Store for DedupStore<S> {
    fn save(&self, message: &StoredMessage<'_>) -> std::result::Result<Receipt, StoreError> {
        self.save_until(message, None)
    }

    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> std::result::Result<Receipt, StoreError> {
        self.save_until(message, Some(deadline))
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
    digest: ContentDigest,
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
            let entry = Entry {
                key,
                digest: self.digest,
                location: location.into(),
            };
            state.remember(entry, self.store.capacity, &self.store.path);
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
    /// The entry of a message with `key` and `digest`, if one is remembered.
    fn find(&self, key: &[u8], digest: ContentDigest) -> Option<&Entry> {
        self.index
            .get(key)?
            .iter()
            .filter_map(|&slot| self.slots[slot].as_ref())
            .find(|entry| entry.digest == digest)
    }

    /// Puts `entry` in the next slot (forgetting the oldest entry) and writes that slot.
    fn remember(&mut self, entry: Entry, capacity: usize, path: &Path) {
        let seq = self.next;
        self.next += 1;
        let slot = slot_of(seq, capacity);
        if let Some(old) = self.slots[slot].take() {
            self.remembered -= 1;
            if let Some(slots) = self.index.get_mut(&old.key) {
                slots.retain(|&s| s != slot);
                if slots.is_empty() {
                    self.index.remove(&old.key);
                }
            }
        }
        let Some(bytes) = encode_slot(seq, &entry) else {
            debug!(
                "a key of {} bytes is too long for the duplicate index",
                entry.key.len()
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
        self.index.entry(entry.key.clone()).or_default().push(slot);
        self.slots[slot] = Some(entry);
        self.remembered += 1;
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

/// A slot: CRC-32 (of the rest), sequence number, content digest, key length and key,
/// location length and location, zeros. `None` when it does not fit.
fn encode_slot(seq: u64, entry: &Entry) -> Option<[u8; SLOT_BYTES]> {
    let (key, location) = (&entry.key, &entry.location);
    let mut s = [0; SLOT_BYTES];
    let loc_room = SLOT_BYTES.checked_sub(SLOT_HEAD + 2 + key.len() + 2)?;
    // A location too long is cut (at a character boundary): it is only shown to operators.
    let mut cut = location.len().min(loc_room);
    while !location.is_char_boundary(cut) {
        cut -= 1;
    }
    let location = &location[..cut];
    s[4..12].copy_from_slice(&seq.to_le_bytes());
    s[12..SLOT_HEAD].copy_from_slice(&entry.digest.to_bytes());
    let mut at = SLOT_HEAD;
    for part in [&key[..], location.as_bytes()] {
        s[at..at + 2].copy_from_slice(&(part.len() as u16).to_le_bytes());
        s[at + 2..at + 2 + part.len()].copy_from_slice(part);
        at += 2 + part.len();
    }
    let crc = crc32(&s[4..]);
    s[..4].copy_from_slice(&crc.to_le_bytes());
    Some(s)
}

/// A slot's sequence number and entry; `None` for an empty slot; `Some(Err)` for a damaged
/// one.
fn decode_slot(s: &[u8]) -> Option<std::result::Result<(u64, Entry), ()>> {
    if s.iter().all(|&b| b == 0) {
        return None;
    }
    let parsed = (|| {
        if s.len() != SLOT_BYTES || crc32(&s[4..]) != u32::from_le_bytes(s[..4].try_into().ok()?) {
            return None;
        }
        let seq = u64::from_le_bytes(s[4..12].try_into().ok()?);
        let digest = ContentDigest::from_bytes(s[12..SLOT_HEAD].try_into().ok()?);
        let mut at = SLOT_HEAD;
        let mut part = || {
            let len = usize::from(u16::from_le_bytes(s.get(at..at + 2)?.try_into().ok()?));
            let bytes = s.get(at + 2..at + 2 + len)?;
            at += 2 + len;
            Some(bytes)
        };
        let key = part()?;
        let location = std::str::from_utf8(part()?).ok()?;
        let entry = Entry {
            key: Box::from(key),
            digest,
            location: Box::from(location),
        };
        (seq > 0).then_some((seq, entry))
    })();
    Some(parsed.ok_or(()))
}

/// What the header of an index file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// An index of this format.
    Valid,
    /// An index of format 1 (keys without a content digest).
    Format1,
    /// Not an index, or a damaged header.
    Invalid,
}

/// What was read from an index file.
struct ReadIndex {
    /// The entries in its slots, with their sequence numbers.
    entries: Vec<(u64, Entry)>,
    /// How many slots were damaged.
    lost: usize,
    /// Whether the file has the layout of the capacity asked for (a valid header with that
    /// capacity, every entry in its slot).
    same_layout: bool,
    header: Header,
}

/// The entries of an index file opened with `capacity`.
fn read_index(bytes: &[u8], capacity: usize) -> ReadIndex {
    let mut read = ReadIndex {
        entries: Vec::new(),
        lost: 0,
        same_layout: false,
        header: Header::Invalid,
    };
    let head = &bytes[..bytes.len().min(SLOT_BYTES)];
    let header_crc_ok = head.len() == SLOT_BYTES
        && crc32(&head[..20]) == u32::from_le_bytes(head[20..24].try_into().unwrap_or_default());
    if header_crc_ok && head[..11] == MAGIC[..11] && head[11] == 1 {
        read.header = Header::Format1;
    }
    if !header_crc_ok || head[..12] != MAGIC[..] {
        return read;
    }
    read.header = Header::Valid;
    let file_capacity = u64::from_le_bytes(head[12..20].try_into().unwrap_or_default());
    read.same_layout = file_capacity == capacity as u64;
    let mut seen = HashSet::new();
    for (i, slot) in bytes[SLOT_BYTES..].chunks(SLOT_BYTES).enumerate() {
        match decode_slot(slot) {
            None => {}
            Some(Err(())) => read.lost += 1,
            Some(Ok((seq, entry))) => {
                if file_capacity == 0 || slot_of(seq, file_capacity as usize) != i {
                    read.lost += 1;
                } else if seen.insert((entry.key.clone(), entry.digest)) {
                    read.entries.push((seq, entry));
                } else {
                    // One message twice: a damaged file (a save remembers a message once).
                    read.lost += 1;
                    read.same_layout = false;
                }
            }
        }
    }
    read
}

fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
