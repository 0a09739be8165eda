//! The platform calls under the stream: a gathering write that never raises `SIGPIPE`
//! (`sendmsg(MSG_NOSIGNAL)` on Linux with glibc), a peek that neither blocks nor changes the
//! socket's mode (`recv(MSG_PEEK | MSG_DONTWAIT)` on Linux), and the TCP keepalive timers
//! (`setsockopt`/`getsockopt`, which std does not offer: see [`keepalive`]).

mod keepalive;
pub(crate) use keepalive::{keepalive_of, set_keepalive};

use std::io;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use std::io::Write;
use std::net::TcpStream;

#[cfg(doc)]
use super::Stream;

/// [`Stream::write_vectored`] on plain TCP: a gathering write that never raises `SIGPIPE`.
pub(super) fn write_vectored_nosignal(
    tcp: &mut TcpStream,
    bufs: &[io::IoSlice<'_>],
) -> io::Result<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        linux::send_vectored(tcp, bufs)
    }
    #[cfg(target_vendor = "apple")]
    {
        tcp.write_vectored(bufs)
    }
    #[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple")))]
    {
        let buf = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        tcp.write(buf)
    }
}

/// What a non-blocking peek saw on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing to read.
    Idle,
    /// Bytes are waiting.
    Data,
    /// End of stream or a socket error.
    Closed,
}

/// Peeks at a socket without blocking and without consuming anything, whatever the socket's
/// blocking mode.
///
/// On Linux this is one `recv(MSG_PEEK | MSG_DONTWAIT)` call, which leaves the socket's mode
/// alone (so a clone of the socket in another thread is not disturbed). std offers no such
/// flag, and switching the socket to non-blocking mode and back costs two more system calls on
/// every message the sender sends (see BENCHMARKS.md); elsewhere that is what is done.
pub(crate) fn peek_now(tcp: &TcpStream) -> Peek {
    #[cfg(target_os = "linux")]
    {
        linux::peek_dontwait(tcp)
    }
    #[cfg(not(target_os = "linux"))]
    {
        if tcp.set_nonblocking(true).is_err() {
            return Peek::Closed;
        }
        let peek = peek(tcp);
        if tcp.set_nonblocking(false).is_err() {
            return Peek::Closed;
        }
        peek
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_int, c_void};

    use super::Peek;

    const MSG_PEEK: c_int = 0x02;
    const MSG_DONTWAIT: c_int = 0x40;
    #[cfg(target_env = "gnu")]
    const MSG_NOSIGNAL: c_int = 0x4000;

    /// glibc's `struct msghdr` (the lengths are `size_t` there; musl differs, so this is used
    /// only with glibc).
    #[cfg(target_env = "gnu")]
    #[repr(C)]
    struct MsgHdr {
        msg_name: *mut c_void,
        msg_namelen: u32,
        msg_iov: *const io::IoSlice<'static>,
        msg_iovlen: usize,
        msg_control: *mut c_void,
        msg_controllen: usize,
        msg_flags: c_int,
    }

    extern "C" {
        /// `recv(2)` from the C library std already links.
        fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
        /// `sendmsg(2)`, likewise.
        #[cfg(target_env = "gnu")]
        fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
    }

    /// The most buffers one `sendmsg` takes (`IOV_MAX` on Linux).
    #[cfg(target_env = "gnu")]
    const IOV_MAX: usize = 1024;

    /// `writev` without `SIGPIPE`: one `sendmsg(MSG_NOSIGNAL)`, so a peer that has closed gives
    /// `EPIPE` (an error), not a signal that kills the process.
    #[cfg(target_env = "gnu")]
    pub(super) fn send_vectored(tcp: &TcpStream, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        let msg = MsgHdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: bufs.as_ptr().cast(),
            msg_iovlen: bufs.len(),
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        };
        // SAFETY: the descriptor belongs to `tcp`, borrowed for the whole call, so it stays
        // open. `IoSlice` is guaranteed ABI-compatible with `struct iovec` on Unix, and
        // `msg_iov` points at `msg_iovlen` (at most IOV_MAX) of them, borrowed for the call
        // and only read. There is no address and no control data (NULL with length 0), as
        // `sendmsg` on a connected socket allows. `MsgHdr` has glibc's layout.
        let n = unsafe { sendmsg(tcp.as_raw_fd(), &msg, MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub(super) fn peek_dontwait(tcp: &TcpStream) -> Peek {
        let mut byte = 0u8;
        loop {
            // SAFETY: the descriptor belongs to `tcp`, which is borrowed for the whole call, so
            // it stays open; the buffer is one writable byte and `len` is 1. MSG_PEEK leaves
            // the data in the socket and MSG_DONTWAIT makes this call alone non-blocking, so
            // neither the stream's contents nor its mode change.
            let n = unsafe {
                recv(
                    tcp.as_raw_fd(),
                    (&mut byte as *mut u8).cast::<c_void>(),
                    1,
                    MSG_PEEK | MSG_DONTWAIT,
                )
            };
            return match n {
                0 => Peek::Closed,
                n if n > 0 => Peek::Data,
                _ => match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => Peek::Idle,
                    _ => Peek::Closed,
                },
            };
        }
    }
}

/// Peeks at a socket that is already in non-blocking mode.
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn peek(tcp: &TcpStream) -> Peek {
    let mut byte = [0u8; 1];
    loop {
        return match tcp.peek(&mut byte) {
            Ok(0) => Peek::Closed,
            Ok(_) => Peek::Data,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Peek::Idle,
            Err(_) => Peek::Closed,
        };
    }
}
