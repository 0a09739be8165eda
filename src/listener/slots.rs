//! The slot table: one entry per connection being served, guarded by a mutex, with a condition
//! variable signalled whenever a slot frees.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::transport::{peek_now, Peek};

/// What a connection is doing, for single-connection replacement: a connection may be replaced
/// only when both flags are clear.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// The handler is running or the acknowledgement is being written.
    pub(crate) handling: AtomicBool,
    /// Bytes have arrived since the last completed message (a frame may be under way).
    pub(crate) receiving: AtomicBool,
}

impl Flags {
    fn is_idle(&self) -> bool {
        !self.handling.load(Ordering::Acquire) && !self.receiving.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Entry {
    id: u64,
    /// A second handle to the connection's socket, to shut it down from another thread.
    tcp: TcpStream,
    flags: Arc<Flags>,
}

/// The live connections.
#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Mutex<Vec<Entry>>,
    freed: Condvar,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding this lock cannot leave the vector inconsistent: keep going.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of connections being served.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Takes a slot for connection `id` if fewer than `max` are taken.
    pub(crate) fn try_insert(
        &self,
        max: usize,
        id: u64,
        tcp: &TcpStream,
        flags: &Arc<Flags>,
    ) -> std::io::Result<bool> {
        let mut entries = self.lock();
        if entries.len() >= max {
            return Ok(false);
        }
        entries.push(Entry {
            id,
            tcp: tcp.try_clone()?,
            flags: Arc::clone(flags),
        });
        Ok(true)
    }

    /// Frees the slot of connection `id` and wakes whoever waits for one.
    pub(crate) fn remove(&self, id: u64) {
        let mut entries = self.lock();
        entries.retain(|e| e.id != id);
        drop(entries);
        self.freed.notify_all();
    }

    /// Wakes every waiter (used at shutdown).
    pub(crate) fn wake(&self) {
        self.freed.notify_all();
    }

    /// If the table holds exactly one connection and it is idle (nothing being handled, no
    /// bytes since its last message, none waiting in the socket's receive buffer), shuts it down in both
    /// directions (its thread then ends and frees the slot) and returns its id.
    pub(crate) fn close_idle_single(&self) -> Option<u64> {
        let entries = self.lock();
        match entries.as_slice() {
            [only] if only.flags.is_idle() && !has_unread_bytes(&only.tcp) => {
                let _ = only.tcp.shutdown(Shutdown::Both);
                Some(only.id)
            }
            _ => None,
        }
    }

    /// Waits until fewer than `max` slots are taken, `stop` holds, or `timeout` passes.
    /// Returns whether there is room.
    pub(crate) fn wait_for_room(&self, max: usize, timeout: Duration, stop: &AtomicBool) -> bool {
        let end = Instant::now() + timeout;
        let mut entries = self.lock();
        loop {
            if entries.len() < max {
                return true;
            }
            let now = Instant::now();
            if now >= end || stop.load(Ordering::Acquire) {
                return false;
            }
            entries = match self.freed.wait_timeout(entries, end - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Waits until every slot is free or `deadline` passes; returns whether all are free.
    pub(crate) fn wait_empty(&self, deadline: Instant) -> bool {
        let mut entries = self.lock();
        loop {
            if entries.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            entries = match self.freed.wait_timeout(entries, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Shuts every connection's socket down in direction `how`.
    ///
    /// `Shutdown::Read` makes a blocked read return end-of-stream while the write half stays
    /// usable for an acknowledgement still to be written; `Shutdown::Both` ends everything.
    pub(crate) fn shutdown_all(&self, how: Shutdown) {
        for entry in self.lock().iter() {
            let _ = entry.tcp.shutdown(how);
        }
    }
}

/// Whether bytes are waiting in the socket's receive buffer, not yet read by the connection's
/// thread (a frame that has just begun). When this cannot be told, the answer is `true`; at
/// the end of the stream or on a socket error it is `false` (the connection is finished).
///
/// See [`peek_now`]: on Linux the socket's mode is left alone; elsewhere it is non-blocking for
/// an instant, and a read in the connection thread may then fail with `WouldBlock`, which the
/// connection loop treats as a read timeout before any deadline and simply reads again.
fn has_unread_bytes(tcp: &TcpStream) -> bool {
    peek_now(tcp) == Peek::Data
}
