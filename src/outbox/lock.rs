//! The outbox's lock: one `Outbox` per directory, across processes and within one.
//!
//! The lock is the file `DIR/lock`, created with `create_new` and holding the owner's process
//! id. A lock whose process no longer exists (told through `/proc` on Linux) is stale and
//! taken over; within one process a registry of held directories tells an outbox still open
//! from a lock left by an earlier process that had the same id. (`File::try_lock` would do
//! this with less code, but needs Rust 1.89; the crate supports 1.86.)
//!
//! Two processes that start at the same instant on a stale lock could both take it over; the
//! window is the time between reading the stale id and re-reading the new file.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Phase};

/// The directories this process holds.
fn held() -> &'static Mutex<HashSet<PathBuf>> {
    static HELD: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
    key: PathBuf,
}

/// The process id in a lock file, if it holds one.
pub(crate) fn holder(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join("lock"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Whether a process with this id exists on this host, when that can be told.
pub(crate) fn process_exists(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

impl Lock {
    /// Takes the lock of `dir`.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process (or another outbox of this process) holds it.
    pub(crate) fn take(dir: &Path) -> crate::Result<Lock> {
        let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut registry = held().lock().unwrap_or_else(|p| p.into_inner());
        let me = std::process::id();
        if registry.contains(&key) {
            return Err(Error::Locked {
                dir: dir.to_path_buf(),
                pid: me,
            });
        }
        let path = dir.join("lock");
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(format!("{me}\n").as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| file_error(&path, e))?;
                    // Someone who judged an earlier lock stale may have replaced ours.
                    if holder(dir) != Some(me) {
                        continue;
                    }
                    registry.insert(key.clone());
                    return Ok(Lock { path, key });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let pid = holder(dir);
                    let stale = match pid {
                        // An earlier process with this id (this process holds no lock here).
                        Some(pid) if pid == me => true,
                        Some(pid) => process_exists(pid) == Some(false),
                        // Empty or unreadable: a crash between creating and writing it.
                        None => true,
                    };
                    if !stale {
                        return Err(Error::Locked {
                            dir: dir.to_path_buf(),
                            pid: pid.unwrap_or(0),
                        });
                    }
                    log::warn!(
                        "taking over the stale outbox lock of process {} in {}",
                        pid.map_or_else(|| "?".into(), |p| p.to_string()),
                        dir.display()
                    );
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(file_error(&path, e)),
                    }
                }
                Err(e) => return Err(file_error(&path, e)),
            }
        }
        Err(Error::Locked {
            dir: dir.to_path_buf(),
            pid: holder(dir).unwrap_or(0),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if holder(self.path.parent().unwrap_or(Path::new("."))) == Some(std::process::id()) {
            let _ = fs::remove_file(&self.path);
        }
        let mut registry = held().lock().unwrap_or_else(|p| p.into_inner());
        registry.remove(&self.key);
    }
}

/// An I/O error on `path`, naming it.
pub(crate) fn file_error(path: &Path, e: io::Error) -> Error {
    Error::Io {
        phase: Phase::File,
        source: io::Error::new(e.kind(), format!("{}: {e}", path.display())),
    }
}
