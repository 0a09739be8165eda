//! The outbox's lock: one `Outbox` per directory, across processes, containers and hosts
//! that share the directory, and within one process.
//!
//! The lock is an exclusive `flock` ([`File::try_lock`]) on the open file `DIR/lock`, held
//! by the kernel for as long as the outbox keeps the file open: it is released exactly when
//! its holder closes it or dies, wherever the holder runs (another PID namespace, another
//! container on the same volume), and nothing ever has to judge a lock "stale". Two opens of
//! the file in one process are two open file descriptions, and their `flock`s conflict too.
//!
//! The file also holds the holder's process id, written after the lock is taken, only as
//! information for operators (`mllp spool DIR` shows it) and for [`Error::Locked`]; it is
//! never used to decide anything, so an id left by a crashed holder, or one that a new,
//! unrelated process has reused, blocks nothing. The file is emptied on release but never
//! deleted: deleting it would let one opener lock the old file and another a new one.
//!
//! On network file systems the lock is only as good as the server's: NFSv4 (and NFSv3 with
//! the lock manager) turns `flock` into a byte-range lock the server holds, released when
//! the client's lease expires (a client cut off from the server loses it after the lease
//! time, while it may still run); CIFS/SMB and some FUSE file systems keep `flock` local to
//! one client, so two hosts can both take it. Put a spool on a local file system, or on a
//! network file system whose locking is known to work across its clients.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Phase};

/// A held lock; released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    file: File,
}

/// The path of the lock file of `dir`.
fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// The process id written in a lock file, if it holds one.
fn written_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// The process id of the holder of the lock of `dir`, when the lock is held (0 when the
/// holder wrote no id yet); `None` when nobody holds it. Taking a shared lock for an instant
/// tells it without trusting the written id.
pub(crate) fn holder(dir: &Path) -> Option<u32> {
    let path = lock_path(dir);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(written_pid(&path).unwrap_or(0)),
        Err(TryLockError::Error(_)) => None,
    }
}

impl Lock {
    /// Takes the lock of `dir`.
    ///
    /// # Errors
    /// [`Error::Locked`] when another outbox (in this or another process, on this or another
    /// host) holds it; [`Error::Io`] when the lock file cannot be opened or locked.
    pub(crate) fn take(dir: &Path) -> crate::Result<Lock> {
        let path = lock_path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| file_error(&path, e))?;
        // A [`holder`] probe holds a shared lock for an instant: try a few times before
        // calling the directory taken.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        dir: dir.to_path_buf(),
                        pid: written_pid(&path).unwrap_or(0),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(file_error(&path, e)),
            }
        }
        let me = std::process::id();
        if let Some(old) = written_pid(&path).filter(|&pid| pid != me) {
            log::info!(
                "the outbox lock in {} named process {old}, which no longer holds it",
                dir.display()
            );
        }
        file.set_len(0)
            .and_then(|()| file.write_all(format!("{me}\n").as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|e| file_error(&path, e))?;
        Ok(Lock { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Emptied while still held, so that nobody reads the id of a holder that is gone;
        // closing the file releases the lock.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// An I/O error on `path`, naming it.
pub(crate) fn file_error(path: &Path, e: io::Error) -> Error {
    Error::Io {
        phase: Phase::File,
        source: io::Error::new(e.kind(), format!("{}: {e}", path.display())),
    }
}
