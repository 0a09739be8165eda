//! The delivery cursor: the position of the first record not yet delivered (segment and
//! offset) and the count of messages delivered so far, in a small file of two CRC-checked
//! slots written in turn, so that a write torn by a crash leaves the other slot intact.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use super::file_at::write_at;
use crate::crc::crc32;

/// The size of one slot.
const SLOT: usize = 40;

/// A position in the outbox and the delivered count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Position {
    /// The segment of the next record to deliver.
    pub segment: u64,
    /// The offset of that record in its segment (0: the segment's first record).
    pub offset: u64,
    /// Messages delivered (acknowledged with AA or CA) since the outbox was created.
    pub delivered: u64,
}

fn encode(counter: u64, p: &Position) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[0..8].copy_from_slice(&counter.to_le_bytes());
    slot[8..16].copy_from_slice(&p.segment.to_le_bytes());
    slot[16..24].copy_from_slice(&p.offset.to_le_bytes());
    slot[24..32].copy_from_slice(&p.delivered.to_le_bytes());
    let crc = crc32(&slot[0..32]);
    slot[32..36].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode(slot: &[u8]) -> Option<(u64, Position)> {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(slot.get(i..i + 8)?);
        Some(u64::from_le_bytes(b))
    };
    let crc = u32::from_le_bytes(slot.get(32..36)?.try_into().ok()?);
    if crc != crc32(slot.get(0..32)?) {
        return None;
    }
    Some((
        word(0)?,
        Position {
            segment: word(8)?,
            offset: word(16)?,
            delivered: word(24)?,
        },
    ))
}

/// The newest valid slot of a cursor file's bytes, with its counter.
fn newest(bytes: &[u8]) -> Option<(u64, Position)> {
    let a = decode(bytes.get(0..SLOT).unwrap_or(&[]));
    let b = decode(bytes.get(SLOT..2 * SLOT).unwrap_or(&[]));
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// What a cursor file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// No file.
    Missing,
    /// A file with no slot written yet (nothing delivered, or the first write torn).
    Unwritten,
    /// The newest valid slot's position.
    Valid(Position),
    /// Bytes in both slots, neither valid: the position is lost. The bytes, for inspection.
    Damaged(Vec<u8>),
}

/// Reads the cursor at `path` without changing it.
pub(crate) fn read(path: &Path) -> io::Result<Stored> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::with_capacity(2 * SLOT);
            Read::by_ref(&mut f)
                .take(2 * SLOT as u64)
                .read_to_end(&mut bytes)?;
            Ok(classify(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stored::Missing),
        Err(e) => Err(e),
    }
}

fn classify(bytes: Vec<u8>) -> Stored {
    if let Some((_, p)) = newest(&bytes) {
        return Stored::Valid(p);
    }
    // The first write goes to the second slot: the first is still zero until the second
    // write, so a torn first write leaves it zero.
    let first = &bytes[..bytes.len().min(SLOT)];
    if first.iter().all(|&b| b == 0) {
        Stored::Unwritten
    } else {
        Stored::Damaged(bytes)
    }
}

/// The cursor file, open for writing.
#[derive(Debug)]
pub(crate) struct Cursor {
    file: File,
    counter: u64,
    /// Whether a write has not been synced yet.
    dirty: bool,
}

impl Cursor {
    /// Opens (or creates) the cursor at `path`; its position (the start when new).
    pub(crate) fn open(path: &Path) -> io::Result<(Cursor, Option<Position>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::with_capacity(2 * SLOT);
        Read::by_ref(&mut file)
            .take(2 * SLOT as u64)
            .read_to_end(&mut bytes)?;
        let found = newest(&bytes);
        let counter = found.map_or(0, |(c, _)| c);
        Ok((
            Cursor {
                file,
                counter,
                dirty: false,
            },
            found.map(|(_, p)| p),
        ))
    }

    /// Writes `p` into the older slot. Not synced: see [`sync`](Self::sync).
    pub(crate) fn write(&mut self, p: &Position) -> io::Result<()> {
        let counter = self.counter + 1;
        let slot = (counter % 2) * SLOT as u64;
        write_at(&self.file, slot, &encode(counter, p))?;
        self.counter = counter;
        self.dirty = true;
        Ok(())
    }

    /// Makes the last write durable, if it is not yet.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins() {
        let p = |segment, offset| Position {
            segment,
            offset,
            delivered: offset,
        };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&encode(2, &p(1, 20)));
        bytes.extend_from_slice(&encode(3, &p(1, 30)));
        assert_eq!(newest(&bytes), Some((3, p(1, 30))));
        // A torn write of the newer slot leaves the older one.
        bytes[SLOT + 5] ^= 0xFF;
        assert_eq!(newest(&bytes), Some((2, p(1, 20))));
        assert_eq!(newest(&bytes[..SLOT]), Some((2, p(1, 20))));
        assert_eq!(newest(&[]), None);
        assert_eq!(newest(&[0; 80]), None);
        assert_eq!(classify(Vec::new()), Stored::Unwritten);
        assert_eq!(classify(vec![0; 80]), Stored::Unwritten);
        // Both slots damaged: the position is lost, and said so.
        let mut both = bytes.clone();
        both[5] ^= 0xFF;
        assert_eq!(classify(both.clone()), Stored::Damaged(both));
    }

    #[test]
    fn writes_alternate_and_persist() {
        let dir = std::env::temp_dir().join(format!("mllp-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cursor");
        let (mut c, found) = Cursor::open(&path).unwrap();
        assert_eq!(found, None);
        assert_eq!(read(&path).unwrap(), Stored::Unwritten);
        for i in 1..=5 {
            let pos = Position {
                segment: 7,
                offset: i * 10,
                delivered: i,
            };
            c.write(&pos).unwrap();
            c.sync().unwrap();
            assert_eq!(read(&path).unwrap(), Stored::Valid(pos));
        }
        drop(c);
        let (_, found) = Cursor::open(&path).unwrap();
        assert_eq!(found.map(|p| p.delivered), Some(5));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
