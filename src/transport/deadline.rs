//! The TCP socket under a stream, which enforces the stream's deadline on every system call.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(doc)]
use super::Stream;
use crate::error::is_timeout_kind;

/// How far the socket's timeout may differ from the time left before the deadline before it
/// is set again (at most; see [`Deadline::new`]).
const ARM_SLACK: Duration = Duration::from_millis(1);

/// A socket timeout not known to be set: [`Sock`]'s next read or write under a deadline sets
/// it.
const UNKNOWN: u64 = u64::MAX;

/// The name the crate uses inside.
pub(crate) type Sock = TlsSocket;

/// A direction of the socket, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Read,
    Write,
}

/// The end of the current exchange (see [`Stream::set_deadline`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    /// `None` when `within` is too long to represent: then the time left is always `within`.
    at: Option<Instant>,
    within: Duration,
    /// How far the socket timeout may be from the time left before it is set again.
    slack: Duration,
    /// The time left as of when the deadline was set, for the first system call after that
    /// (taken by [`TlsSocket::arm`]): a caller that has just read the clock passes it in, and
    /// the call it makes next does not read the clock again.
    fresh: Option<Duration>,
}

impl Deadline {
    pub(super) fn new(within: Duration) -> Deadline {
        Deadline::since(within, Instant::now())
    }

    /// A deadline `within` from `now`, a time just read from the clock.
    pub(super) fn since(within: Duration, now: Instant) -> Deadline {
        Deadline {
            at: now.checked_add(within),
            within,
            slack: ARM_SLACK.min(within / 16),
            fresh: Some(within),
        }
    }

    /// The time left, zero once the deadline has passed.
    fn left(&self) -> Duration {
        match self.at {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => self.within,
        }
    }

    pub(super) fn passed(&self) -> bool {
        self.left().is_zero()
    }
}

/// The error of a read or write after the deadline.
fn deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the deadline has passed")
}

/// The TCP socket under a [`Stream`] (under TLS, what the TLS library reads and writes), which
/// enforces the stream's deadline on every system call: before each read or write the socket
/// timeout is set to the time left, unless the one set is within the deadline's slack of it.
///
/// A [`TlsAcceptor`](crate::TlsAcceptor) gets one, with the handshake's deadline set, and runs
/// its TLS library over it (`Read` and `Write`); so a handshake ends by its deadline whatever
/// the library does.
pub struct TlsSocket {
    pub(super) tcp: TcpStream,
    pub(super) deadline: Option<Deadline>,
    /// The read timeout known to be set on the socket, in nanoseconds, or [`UNKNOWN`]. Atomic
    /// (relaxed loads and stores) only so that [`Stream::set_read_timeout`] can take `&self`.
    read_armed: AtomicU64,
    /// The same for the write timeout.
    write_armed: AtomicU64,
}

impl TlsSocket {
    pub(super) fn new(tcp: TcpStream) -> TlsSocket {
        TlsSocket {
            tcp,
            deadline: None,
            read_armed: AtomicU64::new(UNKNOWN),
            write_armed: AtomicU64::new(UNKNOWN),
        }
    }

    /// The TCP socket underneath, for its addresses and options. Reading or writing it
    /// directly would corrupt the TLS session.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn armed(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Read => &self.read_armed,
            Dir::Write => &self.write_armed,
        }
    }

    /// Sets a socket timeout and remembers it.
    pub(super) fn set_timeout(&self, dir: Dir, timeout: Option<Duration>) -> io::Result<()> {
        let armed = self.armed(dir);
        // Should the call fail, what the socket holds is not known.
        armed.store(UNKNOWN, Ordering::Relaxed);
        match dir {
            Dir::Read => self.tcp.set_read_timeout(timeout)?,
            Dir::Write => self.tcp.set_write_timeout(timeout)?,
        }
        let nanos = timeout.map_or(UNKNOWN, |t| u64::try_from(t.as_nanos()).unwrap_or(UNKNOWN));
        armed.store(nanos, Ordering::Relaxed);
        Ok(())
    }

    /// Before a read or write: under a deadline, sets the socket timeout to the time left (when
    /// the one set is not close to it already), or fails when no time is left.
    pub(super) fn arm(&mut self, dir: Dir) -> io::Result<()> {
        let Some(deadline) = self.deadline.as_mut() else {
            return Ok(());
        };
        let slack = deadline.slack;
        let left = match deadline.fresh.take() {
            Some(left) => left,
            None => deadline.left(),
        };
        if left.is_zero() {
            return Err(deadline_passed());
        }
        let armed = self.armed(dir).load(Ordering::Relaxed);
        if armed == UNKNOWN || Duration::from_nanos(armed).abs_diff(left) > slack {
            self.set_timeout(dir, Some(left))?;
        }
        Ok(())
    }

    /// After a read or write: a socket timeout at the deadline becomes `TimedOut`, which the
    /// TLS library treats as fatal (a `WouldBlock` would ask to be called again).
    pub(super) fn check<T>(&self, result: io::Result<T>) -> io::Result<T> {
        match result {
            Err(e) if is_timeout_kind(e.kind()) && self.deadline.is_some_and(|d| d.passed()) => {
                Err(deadline_passed())
            }
            other => other,
        }
    }
}

impl Read for TlsSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(Dir::Read)?;
        let result = self.tcp.read(buf);
        self.check(result)
    }
}

impl Write for TlsSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(Dir::Write)?;
        let result = self.tcp.write(buf);
        self.check(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl fmt::Debug for TlsSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSocket")
            .field("tcp", &self.tcp)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_deadline_set_with_the_time_just_read_arms_the_next_call_without_a_clock_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut sock = TlsSocket::new(tcp);
        // The time passed in is 10 s old: measured from the clock, a 5 s deadline has passed.
        let then = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .expect("the machine has been up for 10 s");
        sock.deadline = Some(Deadline::since(Duration::from_secs(5), then));
        sock.arm(Dir::Read).unwrap();
        assert_eq!(
            sock.tcp.read_timeout().unwrap(),
            Some(Duration::from_secs(5))
        );
        // Only the first call takes the time left as given; the next one reads the clock.
        let err = sock.arm(Dir::Read).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
