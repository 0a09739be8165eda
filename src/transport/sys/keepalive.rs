//! The TCP keepalive options of a socket: `SO_KEEPALIVE` and the three timers (idle time before
//! the first probe, interval between probes, probes lost before the connection is dropped),
//! through `setsockopt`/`getsockopt` from the C library std already links.
//!
//! Linux (and Android), the Apple platforms and FreeBSD are supported, each with its own
//! constants. Elsewhere [`set_keepalive`] does nothing (the operating system's defaults stay)
//! and [`keepalive_of`] answers [`io::ErrorKind::Unsupported`].

use std::io;
use std::net::TcpStream;

use super::super::keepalive::Keepalive;

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
))]
mod os {
    use std::io;
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_int, c_void};

    #[cfg(any(target_os = "linux", target_os = "android"))]
    mod consts {
        use std::os::raw::c_int;
        pub const SOL_SOCKET: c_int = 1;
        pub const SO_KEEPALIVE: c_int = 9;
        pub const TCP_KEEPIDLE: c_int = 4;
        pub const TCP_KEEPINTVL: c_int = 5;
        pub const TCP_KEEPCNT: c_int = 6;
    }
    #[cfg(target_vendor = "apple")]
    mod consts {
        use std::os::raw::c_int;
        pub const SOL_SOCKET: c_int = 0xffff;
        pub const SO_KEEPALIVE: c_int = 0x0008;
        /// `TCP_KEEPALIVE`: the idle time, under Apple's name.
        pub const TCP_KEEPIDLE: c_int = 0x10;
        pub const TCP_KEEPINTVL: c_int = 0x101;
        pub const TCP_KEEPCNT: c_int = 0x102;
    }
    #[cfg(target_os = "freebsd")]
    mod consts {
        use std::os::raw::c_int;
        pub const SOL_SOCKET: c_int = 0xffff;
        pub const SO_KEEPALIVE: c_int = 0x0008;
        pub const TCP_KEEPIDLE: c_int = 256;
        pub const TCP_KEEPINTVL: c_int = 512;
        pub const TCP_KEEPCNT: c_int = 1024;
    }
    pub(super) use consts::*;
    pub(super) const IPPROTO_TCP: c_int = 6;

    extern "C" {
        /// `setsockopt(2)`.
        fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
        /// `getsockopt(2)`.
        fn getsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *mut c_void,
            len: *mut u32,
        ) -> c_int;
    }

    /// Sets one `int` option.
    pub(super) fn set(tcp: &TcpStream, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
        // SAFETY: the descriptor belongs to `tcp`, borrowed for the whole call, so it stays
        // open; the value points at one `int` that lives across the call, and the length
        // given is the size of an `int`, which is what these options take.
        let rc = unsafe {
            setsockopt(
                tcp.as_raw_fd(),
                level,
                name,
                (&value as *const c_int).cast::<c_void>(),
                std::mem::size_of::<c_int>() as u32,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reads one `int` option.
    pub(super) fn get(tcp: &TcpStream, level: c_int, name: c_int) -> io::Result<c_int> {
        let mut value: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as u32;
        // SAFETY: the descriptor belongs to `tcp`, borrowed for the whole call; `value` is a
        // writable `int` and `len` holds its size, so the kernel writes at most that many
        // bytes into it and the new length into `len`, both living across the call.
        let rc = unsafe {
            getsockopt(
                tcp.as_raw_fd(),
                level,
                name,
                (&mut value as *mut c_int).cast::<c_void>(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Turns keepalive on with `keepalive`'s timers (whole seconds), or off with `None`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
))]
pub(crate) fn set_keepalive(tcp: &TcpStream, keepalive: Option<&Keepalive>) -> io::Result<()> {
    let Some(k) = keepalive else {
        return os::set(tcp, os::SOL_SOCKET, os::SO_KEEPALIVE, 0);
    };
    let secs = |d: std::time::Duration| d.as_secs().clamp(1, i32::MAX as u64) as i32;
    os::set(tcp, os::IPPROTO_TCP, os::TCP_KEEPIDLE, secs(k.idle))?;
    os::set(tcp, os::IPPROTO_TCP, os::TCP_KEEPINTVL, secs(k.interval))?;
    os::set(
        tcp,
        os::IPPROTO_TCP,
        os::TCP_KEEPCNT,
        k.count.min(i32::MAX as u32) as i32,
    )?;
    os::set(tcp, os::SOL_SOCKET, os::SO_KEEPALIVE, 1)
}

/// The keepalive settings of a socket: `None` when keepalive is off.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
))]
pub(crate) fn keepalive_of(tcp: &TcpStream) -> io::Result<Option<Keepalive>> {
    if os::get(tcp, os::SOL_SOCKET, os::SO_KEEPALIVE)? == 0 {
        return Ok(None);
    }
    let secs = |v: i32| std::time::Duration::from_secs(u64::try_from(v).unwrap_or(0));
    Ok(Some(Keepalive {
        idle: secs(os::get(tcp, os::IPPROTO_TCP, os::TCP_KEEPIDLE)?),
        interval: secs(os::get(tcp, os::IPPROTO_TCP, os::TCP_KEEPINTVL)?),
        count: u32::try_from(os::get(tcp, os::IPPROTO_TCP, os::TCP_KEEPCNT)?).unwrap_or(0),
    }))
}

/// Elsewhere: nothing is set, the operating system's defaults stay.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
pub(crate) fn set_keepalive(_tcp: &TcpStream, _keepalive: Option<&Keepalive>) -> io::Result<()> {
    Ok(())
}

/// Elsewhere: not supported.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
pub(crate) fn keepalive_of(_tcp: &TcpStream) -> io::Result<Option<Keepalive>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "reading the keepalive timers is not supported on this platform",
    ))
}
