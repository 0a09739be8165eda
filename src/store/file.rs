//! The file system store: each message in its own file, written atomically.
//!
//! A listener that saves each message with [`FileStore::save`] before returning its response
//! acknowledges only what is safely on disk (store-then-ACK): the file is written under a
//! temporary name, flushed to the device with `fsync`, published under its final name with a
//! hard link (which never replaces an existing file), and the directory is synced, so after a
//! crash a message is either completely there or not there at all (and then it was not
//! acknowledged either).
//!
//! The directory is opened once, when the store is, and its `fsync` is shared: a save waits for
//! a directory sync that began after its link, so saves finishing at the same time (several
//! connections storing at once) are covered by one sync (group commit). A message costs
//! `openat`, `write`, `fsync`, `linkat`, `unlinkat`, `close` and at most one directory `fsync`.
//!
//! Several stores — in one process, in several processes, or on several hosts sharing a volume
//! — may use one directory: temporary names carry their owner (host, process id and a
//! per-process tag), and a final name that another store took first is never replaced; the
//! message is published under the next free sequence number instead.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::dir_sync::DirSync;
#[cfg(test)]
use super::temp_name::owner;
use super::temp_name::TempName;
#[cfg(doc)]
use super::{Store, StoreError, StoredMessage};
use crate::error::{Error, Phase, Result};

/// The longest part of a file name taken from a control ID.
pub(super) const MAX_ID_CHARS: usize = 64;

/// Sequence numbers above this in a file name are not ours (ours would take centuries to get
/// there): such names are ignored when the next sequence is chosen, so a foreign file cannot
/// make the sequence overflow.
const MAX_SEQUENCE: u64 = 999_999_999_999_999_999;

/// How often [`FileStore::save`] picks a new name after a collision before it gives up.
const MAX_ATTEMPTS: u32 = 10_000;

/// Saves messages into a directory, one file each.
///
/// File names are `<sequence>-<control id>.hl7`: a 10-digit arrival sequence (continuing after
/// the highest one already in the directory, temporary files included, so a restart never
/// reuses a name) and MSH-10 with every character other than ASCII letters, digits, `-`, `_`
/// and `.` replaced by `_`. Names with sequences of more than 18 digits are not counted.
///
/// A message is first written to `.<final name>~<pid>~<tag>~<host>.tmp`, then published with a
/// hard link that fails rather than replace an existing file; when another store sharing the
/// directory has taken that name, the next sequence number is tried. So stores in several
/// processes (or hosts, on a shared volume) can share one directory without losing a message.
///
/// [`FileStore::open`] checks that the directory can be written and hard-linked in, and removes
/// temporary files that crashed writers left behind (never acknowledged): those of processes
/// on this host that no longer exist, and any not modified for an hour.
///
/// As a [`Store`] it names files after [`StoredMessage::control_id`], returns the path as the
/// [`Receipt`](super::Receipt), keeps the verified TLS client subject of a message that has
/// one in a file beside it (`<sequence>-<control id>.tls-subject`, see
/// [`TLS_SUBJECT_EXTENSION`](super::TLS_SUBJECT_EXTENSION)), and never refuses a message: every
/// failure (a full disk, a missing permission, a failing device) is
/// [retryable](StoreError::is_retryable), fixed while the sender resends.
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
    pub(super) sync: DirSync,
}

impl FileStore {
    /// Opens (creating if needed) the directory `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when the directory cannot be created or read, or when
    /// a file cannot be created, hard-linked and removed in it (a read-only or full file
    /// system, missing permissions, a file system without hard links): a store that could
    /// not save a message fails here rather than on every message.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStore> {
        let dir = dir.as_ref().to_path_buf();
        let file_err = |what: &str, e: io::Error| {
            Error::io(
                Phase::File,
                io::Error::new(e.kind(), format!("{what} {}: {e}", dir.display())),
            )
        };
        fs::create_dir_all(&dir).map_err(|e| file_err("cannot create the directory", e))?;
        probe(&dir).map_err(|e| file_err("cannot write in the store directory", e))?;
        let mut last = 0;
        for entry in fs::read_dir(&dir).map_err(|e| file_err("cannot read the directory", e))? {
            let entry = entry.map_err(|e| file_err("cannot read the directory", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(tmp) = TempName::parse(name) {
                if tmp.is_abandoned(|| entry.metadata().ok().and_then(|m| m.modified().ok())) {
                    log::warn!(
                        "removing {name} from {}: left by a writer that stopped before \
                         storing it (never acknowledged)",
                        dir.display()
                    );
                    match fs::remove_file(entry.path()) {
                        Ok(()) => continue,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => log::warn!("cannot remove {name}: {e}"),
                    }
                }
            }
            if let Some(seq) = sequence_of(name) {
                last = last.max(seq);
            }
        }
        Ok(FileStore {
            sync: DirSync::open(&dir),
            dir,
            next: AtomicU64::new(last + 1),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Syncs of the directory completed so far: one per save when saves come one at a time,
    /// fewer when concurrent saves shared one (see [`save`](Self::save)).
    pub fn dir_syncs(&self) -> u64 {
        self.sync.syncs()
    }

    /// Writes `text` to a new file named for the next sequence number and `control_id`, and
    /// returns its path. The file is complete and durable when this returns `Ok`.
    ///
    /// A name already taken (by another store sharing the directory, or by a file left there)
    /// is never replaced: the next sequence number is tried.
    pub fn save(&self, control_id: Option<&[u8]>, text: &str) -> Result<PathBuf> {
        let mut id = String::new();
        match control_id.filter(|id| !id.is_empty()) {
            Some(cid) => id.extend(cid.iter().take(MAX_ID_CHARS).map(|&b| safe_char(b))),
            None => id.push_str("no-id"),
        }
        let mut last_err = None;
        for _ in 0..MAX_ATTEMPTS {
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            let name = format!("{seq:010}-{id}.hl7");
            let path = self.dir.join(&name);
            let tmp = self.dir.join(TempName::ours(&name));
            match publish(&self.sync, &tmp, &path, text.as_bytes()) {
                Ok(()) => return Ok(path),
                // The name is taken, or the temporary file was removed under us (by another
                // process's recovery that misjudged it): try again under the next number.
                Err(Retry::Again(e)) => last_err = Some(e),
                Err(Retry::Fail(e)) => return Err(Error::io(Phase::File, e)),
            }
        }
        let e = last_err.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into());
        Err(Error::io(
            Phase::File,
            io::Error::new(
                e.kind(),
                format!("no free file name after {MAX_ATTEMPTS} attempts: {e}"),
            ),
        ))
    }
}

pub(super) enum Retry {
    Again(io::Error),
    Fail(io::Error),
}

/// Writes `bytes` durably to `tmp`, links it to `path` (never replacing a file), removes `tmp`
/// and syncs the directory (a sync shared with concurrent saves, begun after the link).
pub(super) fn publish(
    sync: &DirSync,
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::result::Result<(), Retry> {
    let written = write_durably(tmp, bytes);
    if let Err(e) = written {
        let _ = fs::remove_file(tmp);
        return Err(match e.kind() {
            io::ErrorKind::AlreadyExists => Retry::Again(e),
            _ => Retry::Fail(e),
        });
    }
    if let Err(e) = fs::hard_link(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(match e.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound => Retry::Again(e),
            _ => Retry::Fail(e),
        });
    }
    // A crash before this leaves a harmless temporary file (removed by the next open).
    let _ = fs::remove_file(tmp);
    sync.sync().map_err(Retry::Fail)
}

/// Creates, hard-links and removes a file in `dir`, so that an unusable directory is reported
/// when the store is opened.
pub(super) fn probe(dir: &Path) -> io::Result<()> {
    let tmp = dir.join(TempName::ours("probe"));
    let link = dir.join(TempName::ours("probe-link"));
    let result = write_durably(&tmp, b"probe")
        .and_then(|()| fs::hard_link(&tmp, &link))
        .and_then(|()| fs::remove_file(&link))
        .and_then(|()| fs::remove_file(&tmp));
    if result.is_err() {
        let _ = fs::remove_file(&link);
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The sequence number a (final or temporary) file name starts with, if it has one that this
/// store could have made.
fn sequence_of(name: &str) -> Option<u64> {
    let name = name.strip_prefix('.').unwrap_or(name);
    let digits = name.find(|c: char| !c.is_ascii_digit())?;
    if digits == 0 || !name[digits..].starts_with('-') {
        return None;
    }
    name[..digits]
        .parse::<u64>()
        .ok()
        .filter(|&seq| seq <= MAX_SEQUENCE)
}

pub(super) fn safe_char(b: u8) -> char {
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

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn leftover_temporary_files_never_make_a_save_fail() {
        let dir = temp_dir("leftover");
        fs::create_dir_all(&dir).unwrap();
        let me = owner();
        // A crash in the middle of a save, by an older version (no owner in the name).
        fs::write(dir.join(".0000000001-ID1.hl7.tmp"), "partial").unwrap();
        // A writer on this host that no longer exists (no process has this id).
        let dead = format!(".0000000002-ID2.hl7~4294967295~0badc0de~{}.tmp", me.host);
        fs::write(dir.join(&dead), "partial").unwrap();
        // An earlier process with this process's id (a restarted container, say).
        let earlier = format!(".0000000003-ID3.hl7~{}~00000000~{}.tmp", me.pid, me.host);
        fs::write(dir.join(&earlier), "partial").unwrap();
        // A writer in this process, and one on another host: both may still be writing.
        let live = TempName::ours("0000000004-ID4.hl7");
        fs::write(dir.join(&live), "partial").unwrap();
        let other_host = ".0000000005-ID5.hl7~1~12345678~other_host.tmp";
        fs::write(dir.join(other_host), "partial").unwrap();

        let store = FileStore::open(&dir).unwrap();
        let names_after_open = names(&dir);
        assert!(!names_after_open.contains(&dead), "{names_after_open:?}");
        assert!(!names_after_open.contains(&earlier), "{names_after_open:?}");
        assert!(names_after_open.contains(&live), "{names_after_open:?}");
        assert!(names_after_open.iter().any(|n| n == other_host));
        // The resend of the message whose save crashed is stored, after every leftover.
        let a = store.save(Some(b"ID1"), "A").unwrap();
        assert_eq!(a.file_name().unwrap(), "0000000006-ID1.hl7");
        assert_eq!(fs::read_to_string(&a).unwrap(), "A");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn foreign_names_do_not_move_or_wrap_the_sequence() {
        let dir = temp_dir("foreign");
        fs::create_dir_all(&dir).unwrap();
        for name in [
            "18446744073709551615-x.hl7",
            "99999999999999999999999999-y.hl7",
            "1000000000000000000-z.hl7",
            "0000000003-kept.hl7",
            "abc.hl7",
            "-7-x.hl7",
            "42",
            "42.hl7",
            ".tmp",
            "..tmp",
            ".~~~.tmp",
            ".x~notapid~t~h.tmp",
        ] {
            fs::write(dir.join(name), "x").unwrap();
        }
        let store = FileStore::open(&dir).unwrap();
        let a = store.save(Some(b"A"), "A").unwrap();
        assert_eq!(a.file_name().unwrap(), "0000000004-A.hl7");
        assert_eq!(sequence_of("999999999999999999-a.hl7"), Some(MAX_SEQUENCE));
        assert_eq!(sequence_of(".0000000009-a.hl7~1~t~h.tmp"), Some(9));
        assert_eq!(sequence_of("0000000009.hl7"), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_taken_name_is_never_replaced() {
        let dir = temp_dir("taken");
        let store = FileStore::open(&dir).unwrap();
        // Another process sharing the directory takes the next two names first.
        fs::write(dir.join("0000000001-A.hl7"), "theirs 1").unwrap();
        fs::write(dir.join("0000000002-A.hl7"), "theirs 2").unwrap();
        let mine = store.save(Some(b"A"), "mine").unwrap();
        assert_eq!(mine.file_name().unwrap(), "0000000003-A.hl7");
        assert_eq!(fs::read_to_string(&mine).unwrap(), "mine");
        assert_eq!(
            fs::read_to_string(dir.join("0000000001-A.hl7")).unwrap(),
            "theirs 1"
        );
        assert_eq!(
            fs::read_to_string(dir.join("0000000002-A.hl7")).unwrap(),
            "theirs 2"
        );
        assert_eq!(names(&dir).len(), 3, "{:?}", names(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stores_sharing_a_directory_lose_nothing() {
        let dir = temp_dir("shared");
        let stores = [
            FileStore::open(&dir).unwrap(),
            FileStore::open(&dir).unwrap(),
        ];
        std::thread::scope(|s| {
            for (k, store) in stores.iter().enumerate() {
                s.spawn(move || {
                    for i in 0..100 {
                        let text = format!("{k}-{i}");
                        let path = store.save(Some(text.as_bytes()), &text).unwrap();
                        assert_eq!(fs::read_to_string(path).unwrap(), text);
                    }
                });
            }
        });
        let names = names(&dir);
        assert_eq!(names.len(), 200, "{names:?}");
        for k in 0..2 {
            for i in 0..100 {
                let suffix = format!("-{k}-{i}.hl7");
                let found: Vec<_> = names.iter().filter(|n| n.ends_with(&suffix)).collect();
                assert_eq!(found.len(), 1, "{suffix}: {found:?}");
                let text = fs::read_to_string(dir.join(found[0])).unwrap();
                assert_eq!(text, format!("{k}-{i}"));
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_save_returns_after_a_directory_sync_that_began_after_its_link() {
        let dir = temp_dir("synced");
        let store = FileStore::open(&dir).unwrap();
        for n in 1..=5 {
            store.save(Some(b"S"), "S").unwrap();
            assert_eq!(
                store.dir_syncs(),
                n,
                "one directory sync per save, done before it returns"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_saves_are_complete_uniquely_named_and_synced_when_they_return() {
        let dir = temp_dir("concurrent");
        let store = FileStore::open(&dir).unwrap();
        std::thread::scope(|s| {
            for k in 0..16 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..25 {
                        let text = format!("{k}-{i}|{}", "x".repeat(1000));
                        let before = store.dir_syncs();
                        let path = store
                            .save(Some(format!("{k}-{i}").as_bytes()), &text)
                            .unwrap();
                        // Complete and synced when `save` returns: a directory sync has
                        // completed since the call began.
                        assert!(store.dir_syncs() > before);
                        assert_eq!(fs::read_to_string(path).unwrap(), text);
                    }
                });
            }
        });
        let names = names(&dir);
        assert_eq!(names.len(), 400, "no temporary file left, no name shared");
        for k in 0..16 {
            for i in 0..25 {
                let suffix = format!("-{k}-{i}.hl7");
                let found: Vec<_> = names.iter().filter(|n| n.ends_with(&suffix)).collect();
                assert_eq!(found.len(), 1, "{suffix}: {found:?}");
            }
        }
        assert!(store.dir_syncs() <= 400);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unusable_directory_fails_at_open() {
        let dir = temp_dir("not-a-dir");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file");
        fs::write(&file, "x").unwrap();
        // The parent is a regular file: fails for root too.
        let err = FileStore::open(file.join("store")).unwrap_err();
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
        assert!(
            err.to_string().contains("cannot create the directory"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
        // A directory no file can be created in, whoever asks: reported when opening, not
        // only when the first message is saved.
        if cfg!(target_os = "linux") {
            let err = FileStore::open("/proc/self").unwrap_err();
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
            assert!(
                err.to_string()
                    .contains("cannot write in the store directory"),
                "{err}"
            );
        }
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
