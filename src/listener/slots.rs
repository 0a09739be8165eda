//! The slot table: one entry per connection being served, guarded by a mutex, with a condition
//! variable signalled whenever a slot frees.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::Shared;
use crate::transport::{peek_now, Peek};

/// Not handling a message: the connection may be closed for a newcomer.
const IDLE: u8 = 0;
/// The handler is running or the acknowledgement is being written: never closed for a
/// newcomer.
const HANDLING: u8 = 1;
/// Closed to make room for a newcomer: the connection must not start handling a message.
const CLOSED: u8 = 2;

/// Microseconds since the first call, on the monotonic clock: fine enough that a frame
/// completed just after another connection was accepted counts as later (in milliseconds the
/// two could tie, and the tie would go to the older connection).
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What a connection is doing, for making room for a new connection when every slot is taken.
///
/// The handling state is one atomic that the connection and the accept loop change only by
/// compare-and-swap: either the connection starts handling a message (and can no longer be
/// closed for a newcomer), or the accept loop closes it first (and it handles nothing more).
#[derive(Debug)]
pub(crate) struct Flags {
    /// [`IDLE`], [`HANDLING`] or [`CLOSED`].
    state: AtomicU8,
    /// Bytes other than white space have arrived since the last completed frame (a frame may
    /// be under way).
    pub(crate) receiving: AtomicBool,
    /// When the connection last completed a frame (or was accepted), from [`now_us`].
    last_frame: AtomicU64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            state: AtomicU8::new(IDLE),
            receiving: AtomicBool::new(false),
            last_frame: AtomicU64::new(now_us()),
        }
    }
}

impl Flags {
    /// Records that a frame has just been completed (the only activity that counts against
    /// eviction).
    pub(crate) fn frame_completed(&self) {
        self.last_frame.store(now_us(), Ordering::Release);
    }

    /// Marks the start of handling a message. Returns `false` when the connection has been
    /// closed for a newcomer: the message must then not be handled.
    pub(crate) fn begin_handling(&self) -> bool {
        self.state
            .compare_exchange(IDLE, HANDLING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the end of handling a message (after its acknowledgement was written).
    pub(crate) fn end_handling(&self) {
        let _ = self
            .state
            .compare_exchange(HANDLING, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// How long since the last completed frame.
    fn quiet_for(&self, now: u64) -> Duration {
        Duration::from_micros(now.saturating_sub(self.last_frame.load(Ordering::Acquire)))
    }

    /// Claims the connection for closing, unless it is handling a message.
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(IDLE, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Why a connection was closed for a newcomer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Single-connection mode: the only connection was idle.
    Replaced,
    /// It had gone longest without completing a frame, at least the eviction threshold.
    Evicted,
}

/// A connection closed for a newcomer.
#[derive(Debug)]
pub(crate) struct Victim {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    /// How long it had gone without completing a frame.
    pub(crate) quiet: Duration,
    pub(crate) why: Why,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    peer: SocketAddr,
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
        peer: SocketAddr,
        tcp: &TcpStream,
        flags: &Arc<Flags>,
    ) -> std::io::Result<bool> {
        let mut entries = self.lock();
        if entries.len() >= max {
            return Ok(false);
        }
        entries.push(Entry {
            id,
            peer,
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

    /// Closes one connection to make room for a newcomer, and returns it; `None` when no
    /// connection may be closed. A connection handling a message is never chosen.
    ///
    /// * With `replace_single`, when the table holds exactly one connection and it is idle
    ///   (nothing being handled, no bytes since its last frame, none waiting in the socket's
    ///   receive buffer), that one ([`Why::Replaced`]).
    /// * Otherwise, with `evict_after`, the connection that has gone longest without
    ///   completing a frame, if that is at least `evict_after` ([`Why::Evicted`]). Bytes that
    ///   do not complete a frame (a silent peer, one trickling bytes, junk) do not count.
    ///
    /// The connection is shut down in both directions: its thread then ends and frees the
    /// slot.
    pub(crate) fn close_for_newcomer(
        &self,
        replace_single: bool,
        evict_after: Option<Duration>,
    ) -> Option<Victim> {
        self.close_for_newcomer_at(replace_single, evict_after, now_us())
    }

    /// [`close_for_newcomer`](Self::close_for_newcomer) at `now` (from [`now_us`]).
    fn close_for_newcomer_at(
        &self,
        replace_single: bool,
        evict_after: Option<Duration>,
        now: u64,
    ) -> Option<Victim> {
        let entries = self.lock();
        let close = |entry: &Entry, why: Why| {
            entry.flags.claim().then(|| {
                let _ = entry.tcp.shutdown(Shutdown::Both);
                Victim {
                    id: entry.id,
                    peer: entry.peer,
                    quiet: entry.flags.quiet_for(now),
                    why,
                }
            })
        };
        if replace_single {
            if let [only] = entries.as_slice() {
                if !only.flags.receiving.load(Ordering::Acquire) && !has_unread_bytes(&only.tcp) {
                    if let Some(victim) = close(only, Why::Replaced) {
                        return Some(victim);
                    }
                }
            }
        }
        let min = evict_after?;
        let mut candidates: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.flags.state.load(Ordering::Acquire) == IDLE)
            .filter(|e| e.flags.quiet_for(now) >= min)
            .collect();
        candidates.sort_by_key(|e| std::cmp::Reverse(e.flags.quiet_for(now)));
        candidates
            .into_iter()
            .find_map(|entry| close(entry, Why::Evicted))
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

/// Frees a connection's slot (and counts it closed) however its thread ends.
pub(crate) struct SlotGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl<'a> SlotGuard<'a> {
    /// The guard of connection `id`, which holds a slot.
    pub(crate) fn new(shared: &'a Shared, id: u64) -> SlotGuard<'a> {
        SlotGuard { shared, id }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.shared.slots.remove(self.id);
        self.shared
            .stats
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A table of `quiet.len()` loopback connections whose last frames completed at the given
    /// times (µs from [`now_us`]'s epoch); the client side of each.
    fn table(last_frames: &[u64]) -> (Table, Vec<Arc<Flags>>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let table = Table::default();
        let mut flags = Vec::new();
        let mut clients = Vec::new();
        for (id, &at) in last_frames.iter().enumerate() {
            let client = TcpStream::connect(addr).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let (server, peer) = listener.accept().unwrap();
            let f = Arc::new(Flags::default());
            f.last_frame.store(at, Ordering::Release);
            assert!(table.try_insert(10, id as u64, peer, &server, &f).unwrap());
            flags.push(f);
            clients.push(client);
        }
        (table, flags, clients)
    }

    /// One second in the table's unit (µs).
    const S: u64 = 1_000_000;

    fn closed(client: &TcpStream) -> bool {
        let mut buf = [0u8; 1];
        matches!((&*client).read(&mut buf), Ok(0) | Err(_))
    }

    #[test]
    fn the_longest_quiet_connection_past_the_threshold_is_evicted_in_order() {
        // Quiet for 3 s, 9 s and 6 s at t = 10 s; threshold 5 s.
        let (table, _flags, clients) = table(&[7 * S, S, 4 * S]);
        let min = Some(Duration::from_secs(5));
        let first = table.close_for_newcomer_at(false, min, 10 * S).unwrap();
        assert_eq!((first.id, first.why), (1, Why::Evicted));
        assert_eq!(first.quiet, Duration::from_secs(9));
        assert!(closed(&clients[1]));
        table.remove(1);
        let second = table.close_for_newcomer_at(false, min, 10 * S).unwrap();
        assert_eq!((second.id, second.quiet), (2, Duration::from_secs(6)));
        table.remove(2);
        // The last one has been quiet 3 s: under the threshold, until time passes.
        assert!(table.close_for_newcomer_at(false, min, 10 * S).is_none());
        assert!(table
            .close_for_newcomer_at(false, min, 12 * S - 1)
            .is_none());
        let third = table.close_for_newcomer_at(false, min, 12 * S).unwrap();
        assert_eq!(third.id, 0);
    }

    #[test]
    fn a_connection_handling_a_message_is_never_evicted() {
        let (table, flags, clients) = table(&[0, S]);
        let min = Some(Duration::from_secs(1));
        assert!(flags[0].begin_handling());
        let victim = table.close_for_newcomer_at(false, min, 60 * S).unwrap();
        assert_eq!(victim.id, 1, "the handling one is passed over");
        table.remove(1);
        assert!(table.close_for_newcomer_at(false, min, 60 * S).is_none());
        assert!(!closed_now(&clients[0]));
        flags[0].end_handling();
        assert_eq!(
            table.close_for_newcomer_at(false, min, 60 * S).unwrap().id,
            0
        );
    }

    #[test]
    fn a_frame_completed_a_fraction_of_a_millisecond_later_counts_as_later() {
        // A connection accepted, then another completing a frame 200 µs later: the first has
        // gone longer without a frame (in milliseconds the two would usually tie, and a tie
        // went to the older connection, which may be the busy one).
        let accepted = Flags::default();
        let busy = Flags::default();
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(200) {
            std::hint::spin_loop();
        }
        busy.frame_completed();
        let now = now_us();
        assert!(
            accepted.quiet_for(now) >= busy.quiet_for(now) + Duration::from_micros(200),
            "{:?} {:?}",
            accepted.quiet_for(now),
            busy.quiet_for(now)
        );
        // The eviction order follows: the accepted one goes first.
        let (table, _flags, clients) = table(&[5 * S + 300, 5 * S]);
        let victim = table
            .close_for_newcomer_at(false, Some(Duration::from_millis(1)), 6 * S)
            .unwrap();
        assert_eq!(victim.id, 1);
        assert!(closed(&clients[1]));
        assert!(!closed_now(&clients[0]));
    }

    #[test]
    fn without_a_threshold_nobody_is_evicted() {
        let (table, _flags, _clients) = table(&[0]);
        assert!(table.close_for_newcomer_at(false, None, u64::MAX).is_none());
    }

    /// Whether the client's connection is closed, without waiting for more than a moment.
    fn closed_now(client: &TcpStream) -> bool {
        client.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let result = matches!((&*client).read(&mut buf), Ok(0));
        client.set_nonblocking(false).unwrap();
        result
    }
}
