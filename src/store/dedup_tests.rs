//! Tests of [`DedupStore`]: resends, reused control IDs, restarts, wraparound, damaged and
//! earlier-format files, concurrency.

use super::*;
use crate::charset::Charset;
use std::sync::Arc;
use std::time::SystemTime;

/// An in-memory store that counts its saves, fails while `fail` is set, and keeps the last
/// deadline it was given.
#[derive(Default)]
struct Memory {
    saved: Mutex<Vec<String>>,
    fail: std::sync::atomic::AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

impl Store for Memory {
    fn save(&self, m: &StoredMessage<'_>) -> std::result::Result<Receipt, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::retryable("down"));
        }
        let mut saved = self.saved.lock().unwrap();
        saved.push(m.text().to_owned());
        Ok(Receipt::new(format!("mem/{}", saved.len())))
    }
    fn save_before(
        &self,
        m: &StoredMessage<'_>,
        deadline: Instant,
    ) -> std::result::Result<Receipt, StoreError> {
        *self.deadline.lock().unwrap() = Some(deadline);
        self.save(m)
    }
    fn name(&self) -> String {
        "memory".into()
    }
}

fn count(s: &DedupStore<Arc<Memory>>) -> usize {
    s.inner().saved.lock().unwrap().len()
}

fn text(app: &str, id: &str) -> String {
    format!("MSH|^~\\&|{app}|HOSP|EHR|WARD|2026||ADT^A01|{id}|P|2.5\r")
}

fn save(s: &DedupStore<Arc<Memory>>, t: &str) -> Receipt {
    let m = StoredMessage::new(
        t,
        "127.0.0.1:9".parse().unwrap(),
        Charset::UTF_8,
        SystemTime::now(),
    );
    s.save(&m).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mllp-dedup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("index")
}

fn open(path: &Path, capacity: usize) -> DedupStore<Arc<Memory>> {
    DedupStore::open(Arc::new(Memory::default()), path, capacity).unwrap()
}

#[test]
fn a_resend_is_a_duplicate_after_a_reopen_too() {
    let path = scratch("reopen");
    let s = open(&path, 10);
    let first: Vec<Receipt> = (0..5)
        .map(|i| save(&s, &text("LAB", &format!("A{i}"))))
        .collect();
    assert!(first.iter().all(|r| !r.is_duplicate()));
    // Same ID from another application: another message.
    assert!(!save(&s, &text("RAD", "A0")).is_duplicate());
    let again = save(&s, &text("LAB", "A3"));
    assert!(again.is_duplicate());
    assert_eq!(again.location(), "mem/4");
    assert_eq!((count(&s), s.resends(), s.remembered()), (6, 1, 6));
    drop(s);

    let s = open(&path, 10);
    assert_eq!(s.remembered(), 6);
    for i in 0..5 {
        let r = save(&s, &text("LAB", &format!("A{i}")));
        assert!(r.is_duplicate());
        assert_eq!(r.location(), format!("mem/{}", i + 1));
    }
    assert_eq!(count(&s), 0, "nothing reached the inner store");
    assert_eq!(s.resends(), 5);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn without_msh10_or_after_a_failed_save_nothing_is_remembered() {
    let path = scratch("no-id");
    let s = open(&path, 10);
    let bare = "MSH|^~\\&|LAB|HOSP|EHR|WARD|2026||ADT^A01||P|2.5\r";
    assert!(!save(&s, bare).is_duplicate());
    assert!(!save(&s, bare).is_duplicate());
    assert!(!save(&s, "not hl7").is_duplicate());
    s.inner().fail.store(true, Ordering::SeqCst);
    let m = text("LAB", "F1");
    let msg = StoredMessage::new(
        &m,
        "127.0.0.1:9".parse().unwrap(),
        Charset::UTF_8,
        SystemTime::now(),
    );
    assert!(s.save(&msg).is_err());
    s.inner().fail.store(false, Ordering::SeqCst);
    assert!(
        !save(&s, &m).is_duplicate(),
        "a failed save is no reason to skip the next"
    );
    assert!(save(&s, &m).is_duplicate());
    assert_eq!((count(&s), s.remembered()), (4, 1));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn the_oldest_key_is_forgotten_first_and_the_ring_survives_a_reopen() {
    let path = scratch("ring");
    let s = open(&path, 3);
    for id in ["A", "B", "C", "D", "E"] {
        save(&s, &text("LAB", id));
    }
    // Remembered: C, D, E.
    for (id, dup) in [("C", true), ("D", true), ("E", true), ("A", false)] {
        assert_eq!(save(&s, &text("LAB", id)).is_duplicate(), dup, "{id}");
    }
    // A is the newest now, C was forgotten.
    drop(s);
    let s = open(&path, 3);
    for (id, dup) in [("D", true), ("E", true), ("A", true), ("C", false)] {
        assert_eq!(save(&s, &text("LAB", id)).is_duplicate(), dup, "{id}");
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        4 * SLOT_BYTES as u64
    );
    drop(s);
    // Reopened smaller, it keeps the newest keys (E, A, C), laid out anew.
    let s = open(&path, 2);
    assert_eq!(s.remembered(), 2);
    assert!(save(&s, &text("LAB", "C")).is_duplicate());
    assert!(save(&s, &text("LAB", "A")).is_duplicate());
    assert!(!save(&s, &text("LAB", "E")).is_duplicate());
    drop(s);
    let s = open(&path, 2);
    assert_eq!(s.remembered(), 2);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_torn_or_damaged_file_loses_keys_never_the_store() {
    let path = scratch("torn");
    let s = open(&path, 8);
    for i in 0..4 {
        save(&s, &text("LAB", &format!("T{i}")));
    }
    drop(s);
    let whole = std::fs::read(&path).unwrap();
    assert_eq!(whole.len(), 5 * SLOT_BYTES);
    // Cut at every offset: the complete slots before the cut are kept.
    for cut in 0..whole.len() {
        std::fs::write(&path, &whole[..cut]).unwrap();
        let s = open(&path, 8);
        let complete = (cut / SLOT_BYTES).saturating_sub(1);
        assert_eq!(s.remembered(), complete, "cut at {cut}");
        for i in 0..complete {
            assert!(
                save(&s, &text("LAB", &format!("T{i}"))).is_duplicate(),
                "cut at {cut}"
            );
        }
        // And it works on: a new key is remembered, and the file is whole again.
        save(&s, &text("LAB", "NEW"));
        drop(s);
        let s = open(&path, 8);
        assert_eq!(s.remembered(), complete + 1, "cut at {cut}, reopened");
    }
    // One flipped byte in a slot: that key only is forgotten.
    let mut damaged = whole.clone();
    damaged[2 * SLOT_BYTES + 40] ^= 0x55;
    std::fs::write(&path, &damaged).unwrap();
    let s = open(&path, 8);
    assert_eq!(s.remembered(), 3);
    assert!(!save(&s, &text("LAB", "T1")).is_duplicate());
    drop(s);
    // Not an index at all, a damaged header, random bytes: start empty, keep working.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..3000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let mut bad_header = whole.clone();
    bad_header[13] ^= 1;
    for junk in [b"hello".to_vec(), bad_header, random] {
        std::fs::write(&path, &junk).unwrap();
        let s = open(&path, 8);
        assert_eq!(s.remembered(), 0);
        save(&s, &text("LAB", "X"));
        assert!(save(&s, &text("LAB", "X")).is_duplicate());
        drop(s);
        assert_eq!(open(&path, 8).remembered(), 1);
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn long_keys_and_locations_and_bad_capacities() {
    let path = scratch("long");
    let s = open(&path, 4);
    let long_id = "L".repeat(600);
    assert!(!save(&s, &text("LAB", &long_id)).is_duplicate());
    assert!(
        !save(&s, &text("LAB", &long_id)).is_duplicate(),
        "too long to remember"
    );
    drop(s);
    assert!(DedupStore::open(Memory::default(), &path, 0).is_err());
    assert!(DedupStore::open(Memory::default(), &path, MAX_CAPACITY + 1).is_err());
    let missing = path.parent().unwrap().join("no/such/dir/index");
    assert!(DedupStore::open(Memory::default(), missing, 4).is_err());
    for key_len in [0, 1, 200, 480, 484, 485, 600] {
        let key = vec![b'k'; key_len];
        for loc in ["", "x", &"ü".repeat(300)] {
            let entry = Entry {
                key: key.clone().into(),
                digest: ContentDigest::of(loc.as_bytes()),
                location: loc.into(),
            };
            if let Some(slot) = encode_slot(7, &entry) {
                let (seq, e) = decode_slot(&slot).unwrap().unwrap();
                assert_eq!((seq, &*e.key, e.digest), (7, &key[..], entry.digest));
                assert!(loc.starts_with(&*e.location));
            } else {
                assert!(key_len > SLOT_BYTES - SLOT_HEAD - 4);
            }
        }
    }
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn concurrent_resends_make_one_copy() {
    let path = scratch("concurrent");
    let s = Arc::new(open(&path, 100));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..40 {
                    save(&s, &text("LAB", &format!("C{}", i % 20)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&s), 20, "each key saved once");
    assert_eq!(s.resends(), 8 * 40 - 20);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A message with MSH-7 `at` and patient `name`, its key LAB|HOSP|`id`.
fn adt(id: &str, at: &str, name: &str) -> String {
    format!("MSH|^~\\&|LAB|HOSP|EHR|WARD|{at}||ADT^A01|{id}|P|2.5\rPID|1||7||{name}\r")
}

#[test]
fn the_same_key_with_another_content_is_stored_counted_and_both_are_remembered() {
    let path = scratch("reused");
    let s = open(&path, 10);
    let a = adt("1", "20260101120000", "SMITH");
    // The sending system reset its counter: same MSH-3, MSH-4, MSH-10, another message.
    let b = adt("1", "20260102080000", "JONES");
    let first = save(&s, &a);
    assert!(!first.is_duplicate() && !first.reuses_control_id());
    let second = save(&s, &b);
    assert!(!second.is_duplicate(), "B is another message: stored");
    assert!(second.reuses_control_id());
    assert_eq!(second.location(), "mem/2");
    assert_eq!((count(&s), s.reused_control_ids(), s.resends()), (2, 1, 0));
    // An exact resend of either is a duplicate of the right one.
    assert_eq!(save(&s, &a), Receipt::duplicate("mem/1"));
    assert_eq!(save(&s, &b), Receipt::duplicate("mem/2"));
    // Only the content differs, by one byte: another message too.
    let c = a.replace("SMITH", "SMITI");
    assert!(save(&s, &c).reuses_control_id());
    assert_eq!((count(&s), s.reused_control_ids(), s.resends()), (3, 2, 2));
    assert_eq!(s.remembered(), 3);
    drop(s);
    let s = open(&path, 10);
    assert_eq!(s.remembered(), 3);
    for (t, at) in [(&a, "mem/1"), (&b, "mem/2"), (&c, "mem/3")] {
        assert_eq!(save(&s, t), Receipt::duplicate(at));
    }
    assert_eq!((count(&s), s.resends(), s.reused_control_ids()), (0, 3, 0));
    // A ring of 2: the oldest content of a key is forgotten, the other is still known.
    drop(s);
    let s = open(&path, 2);
    assert_eq!(s.remembered(), 2);
    assert!(save(&s, &c).is_duplicate());
    assert!(save(&s, &b).is_duplicate());
    let again = save(&s, &a);
    assert!(!again.is_duplicate() && again.reuses_control_id());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn an_index_of_the_earlier_format_is_started_anew() {
    let path = scratch("format1");
    // Format 1: the same header with version byte 1, slots without a content digest.
    let mut head = [0u8; SLOT_BYTES];
    head[..12].copy_from_slice(b"MLLP-DEDUP\0\x01");
    head[12..20].copy_from_slice(&4u64.to_le_bytes());
    let crc = crc32(&head[..20]);
    head[20..24].copy_from_slice(&crc.to_le_bytes());
    let mut slot = [0u8; SLOT_BYTES];
    slot[4..12].copy_from_slice(&1u64.to_le_bytes());
    let key = b"\x03\0\0\0LAB\x04\0\0\0HOSP\x01\0\0\0\x31";
    slot[12..14].copy_from_slice(&(key.len() as u16).to_le_bytes());
    slot[14..14 + key.len()].copy_from_slice(key);
    let crc = crc32(&slot[4..]);
    slot[..4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, [head, slot].concat()).unwrap();
    let s = open(&path, 4);
    assert_eq!(s.remembered(), 0, "keys without a digest are forgotten");
    let a = adt("1", "20260101120000", "SMITH");
    assert!(!save(&s, &a).is_duplicate());
    assert!(save(&s, &a).is_duplicate());
    drop(s);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..12], MAGIC, "rewritten in the current format");
    assert_eq!(open(&path, 4).remembered(), 1);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn concurrent_saves_of_two_contents_of_one_key_make_two_copies() {
    let path = scratch("concurrent-reused");
    let s = Arc::new(open(&path, 100));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let name = if t % 2 == 0 { "SMITH" } else { "JONES" };
                for _ in 0..20 {
                    save(&s, &adt("9", "2026", name));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&s), 2, "one copy of each content");
    assert_eq!((s.reused_control_ids(), s.resends()), (1, 8 * 20 - 2));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn the_store_wait_deadline_reaches_the_inner_store() {
    // A listener with a store wait bounds each save by a deadline; the duplicate check in
    // front must hand it on, or a hung inner store holds the connection past the wait.
    let path = scratch("deadline");
    let s = open(&path, 10);
    let t = text("A", "1");
    let m = StoredMessage::new(
        &t,
        "127.0.0.1:9".parse().unwrap(),
        Charset::UTF_8,
        SystemTime::now(),
    );
    let at = Instant::now() + std::time::Duration::from_secs(7);
    s.save_before(&m, at).unwrap();
    assert_eq!(*s.inner().deadline.lock().unwrap(), Some(at));
    assert_eq!(count(&s), 1);
}
