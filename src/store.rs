//! A durable message store: each message in its own file, written atomically.
//!
//! A listener that saves each message with [`FileStore::save`] before returning its response
//! acknowledges only what is safely on disk (store-then-ACK): the file is written under a
//! temporary name, flushed to the device with `fsync`, renamed into place, and the directory is
//! synced, so after a crash a message is either completely there or not there at all (and then
//! it was not acknowledged either).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Phase, Result};

/// The longest part of a file name taken from a control ID.
const MAX_ID_CHARS: usize = 64;

/// Saves messages into a directory, one file each.
///
/// File names are `<sequence>-<control id>.hl7`: a 10-digit arrival sequence (continuing after
/// the highest one already in the directory, so a restart never reuses a name) and MSH-10 with
/// every character other than ASCII letters, digits, `-`, `_` and `.` replaced by `_`.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mllp-store-doc-{}", std::process::id()));
/// let store = mllp::FileStore::open(&dir)?;
/// let path = store.save(Some(b"MSG/001"), "MSH|^~\\&|A\r")?;
/// assert!(path.ends_with("0000000001-MSG_001.hl7"));
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "MSH|^~\\&|A\r");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    next: AtomicU64,
}

impl FileStore {
    /// Opens (creating if needed) the directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io(Phase::File, e))?;
        let mut last = 0;
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(Phase::File, e))? {
            let name = entry.map_err(|e| Error::io(Phase::File, e))?.file_name();
            let seq = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u64>().ok());
            last = last.max(seq.unwrap_or(0));
        }
        Ok(FileStore {
            dir,
            next: AtomicU64::new(last + 1),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `text` to a new file named for the next sequence number and `control_id`, and
    /// returns its path. The file is complete and durable when this returns `Ok`.
    pub fn save(&self, control_id: Option<&[u8]>, text: &str) -> Result<PathBuf> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("{seq:010}-");
        match control_id.filter(|id| !id.is_empty()) {
            Some(id) => name.extend(id.iter().take(MAX_ID_CHARS).map(|&b| safe_char(b))),
            None => name.push_str("no-id"),
        }
        name.push_str(".hl7");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let written = write_durably(&tmp, text.as_bytes())
            .and_then(|()| fs::rename(&tmp, &path))
            .and_then(|()| sync_dir(&self.dir));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(Phase::File, e));
        }
        Ok(path)
    }
}

fn safe_char(b: u8) -> char {
    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
        b as char
    } else {
        '_'
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Directories can be opened and synced on Unix; elsewhere this is best effort.
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mllp-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn names_are_sequenced_and_safe_and_continue_after_restart() {
        let dir = temp_dir("names");
        let store = FileStore::open(&dir).unwrap();
        let a = store.save(Some(b"../etc/passwd"), "A").unwrap();
        let b = store.save(None, "B").unwrap();
        assert_eq!(a.file_name().unwrap(), "0000000001-.._etc_passwd.hl7");
        assert_eq!(b.file_name().unwrap(), "0000000002-no-id.hl7");
        assert_eq!(a.parent().unwrap(), dir);
        drop(store);
        let store = FileStore::open(&dir).unwrap();
        let c = store.save(Some("ü|1".as_bytes()), "C").unwrap();
        assert_eq!(c.file_name().unwrap(), "0000000003-___1.hl7");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let dir = temp_dir("unwritable");
        let store = FileStore::open(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let err = store.save(Some(b"1"), "A").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    phase: Phase::File,
                    ..
                }
            ),
            "{err}"
        );
    }
}
