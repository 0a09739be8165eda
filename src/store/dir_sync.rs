//! The store directory's `fsync`, on a directory handle kept open and shared by concurrent
//! saves (group commit).
//!
//! A file published with a hard link survives a crash only once its directory is synced.
//! Opening the directory for each sync costs two system calls (`openat`, `close`) around the
//! one that matters, so the handle is opened once. And a sync covers every link made before it
//! began: saves that finish their link while another save's sync runs wait for it to end and
//! share the next one, so with many connections one `fsync` serves many messages.
//!
//! The handle is checked against the path by [`DirSync::refresh`] (the store's health check):
//! should the directory be replaced under the same path while the store runs, the new one is
//! opened.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// The outcome of one sync, shared by every save that waits for it.
type Outcome = std::result::Result<(), (io::ErrorKind, String)>;

/// The saves waiting for one sync.
#[derive(Debug, Default)]
struct Batch {
    outcome: OnceLock<Outcome>,
}

#[derive(Debug)]
struct State {
    /// A sync is running (its batch was taken from `pending`).
    running: bool,
    /// The batch the next sync serves: saves that finished their link since the running sync
    /// began.
    pending: Arc<Batch>,
}

/// Syncs one directory for many saves at once.
#[derive(Debug)]
pub(super) struct DirSync {
    /// The open directory; `None` where a directory cannot be opened as a file (not Unix):
    /// there the sync is skipped, as the platform offers none.
    handle: Mutex<Option<Arc<File>>>,
    state: Mutex<State>,
    done: Condvar,
    syncs: AtomicU64,
}

impl DirSync {
    /// Opens `dir` for syncing.
    pub(super) fn open(dir: &Path) -> DirSync {
        DirSync {
            handle: Mutex::new(File::open(dir).ok().map(Arc::new)),
            state: Mutex::new(State {
                running: false,
                pending: Arc::new(Batch::default()),
            }),
            done: Condvar::new(),
            syncs: AtomicU64::new(0),
        }
    }

    /// Returns once a sync of the directory that began after this call has completed: every
    /// link made before the call is then durable. Concurrent callers share syncs.
    ///
    /// # Errors
    /// The error of the sync that covered this call (every save it covered gets it).
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        let mine = Arc::clone(&st.pending);
        loop {
            if let Some(outcome) = mine.outcome.get() {
                return outcome
                    .clone()
                    .map_err(|(kind, text)| io::Error::new(kind, text));
            }
            if st.running {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // This call runs the next sync: the batch pending now is ours (a batch is only
            // taken by a sync that then sets its outcome before `running` is cleared).
            let batch = std::mem::take(&mut st.pending);
            st.running = true;
            drop(st);
            let outcome = self.sync_now().map_err(|e| (e.kind(), e.to_string()));
            let _ = batch.outcome.set(outcome);
            st = lock(&self.state);
            st.running = false;
            self.done.notify_all();
        }
    }

    /// Directory syncs completed.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Opens the directory again when `dir` no longer names the one held open (it was replaced
    /// under the same path), or when none is held.
    pub(super) fn refresh(&self, dir: &Path) {
        let mut handle = lock(&self.handle);
        let same = match (&*handle, std::fs::metadata(dir)) {
            (Some(held), Ok(now)) => held.metadata().is_ok_and(|m| same_file(&m, &now)),
            (None, _) | (_, Err(_)) => false,
        };
        if !same {
            if let Ok(file) = File::open(dir) {
                *handle = Some(Arc::new(file));
            }
        }
    }

    fn sync_now(&self) -> io::Result<()> {
        let Some(dir) = lock(&self.handle).clone() else {
            return Ok(());
        };
        let result = dir.sync_all();
        self.syncs.fetch_add(1, Ordering::Relaxed);
        match result {
            // A file system that cannot sync a directory (some network and FUSE file systems)
            // offers nothing more to wait for.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; a poisoned lock still holds valid data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_waits_for_a_sync_that_began_after_it() {
        let dir = std::env::temp_dir().join(format!("mllp-dirsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sync = DirSync::open(&dir);
        for n in 1..=3 {
            sync.sync().unwrap();
            assert_eq!(sync.syncs(), n);
        }
        // Concurrent callers: each returns after a sync that began after its call.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let before = sync.syncs();
                        sync.sync().unwrap();
                        assert!(sync.syncs() > before);
                    }
                });
            }
        });
        assert!(sync.syncs() <= 3 + 160);
        // Replaced under the same path: the new directory is held after a refresh.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        sync.refresh(&dir);
        let held = lock(&sync.handle).clone().unwrap();
        assert!(same_file(
            &held.metadata().unwrap(),
            &std::fs::metadata(&dir).unwrap()
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
