//! A TCP connection from a chosen loopback address ([`connect_from`]): std connects from the
//! address the kernel picks (127.0.0.1 for any loopback destination), and tests of address
//! lists and of the PROXY protocol need a client at another one, such as 127.0.0.5. Linux only
//! (the `sockaddr_in` layout and constants are Linux's).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};

const AF_INET: c_int = 2;
const SOCK_STREAM: c_int = 1;
const SOCK_CLOEXEC: c_int = 0o2_000_000;

/// Linux's `struct sockaddr_in`.
#[repr(C)]
struct SockaddrIn {
    family: u16,
    /// Network byte order.
    port: u16,
    /// Network byte order.
    addr: [u8; 4],
    zero: [u8; 8],
}

impl SockaddrIn {
    fn new(addr: SocketAddrV4) -> SockaddrIn {
        SockaddrIn {
            family: AF_INET as u16,
            port: addr.port().to_be(),
            addr: addr.ip().octets(),
            zero: [0; 8],
        }
    }
}

extern "C" {
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int;
}

fn check(rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Connects to `to` from `source` (any free port), blocking.
pub fn connect_from(source: Ipv4Addr, to: SocketAddrV4) -> io::Result<TcpStream> {
    // SAFETY: `socket` takes no pointers; a non-negative result is a new descriptor that
    // nothing else owns, handed at once to an `OwnedFd`, which closes it on every path.
    let fd =
        unsafe { OwnedFd::from_raw_fd(check(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0))?) };
    let tcp = TcpStream::from(fd);
    let len = std::mem::size_of::<SockaddrIn>() as u32;
    let from = SockaddrIn::new(SocketAddrV4::new(source, 0));
    let dest = SockaddrIn::new(to);
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open (owned by `tcp`); the address points at a live
    // `sockaddr_in` of `len` bytes, only read during the call.
    check(unsafe { bind(tcp.as_raw_fd(), (&from as *const SockaddrIn).cast(), len) })?;
    // SAFETY: as for `bind`.
    check(unsafe { connect(tcp.as_raw_fd(), (&dest as *const SockaddrIn).cast(), len) })?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_sees_the_chosen_source() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(at) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        let client = connect_from(Ipv4Addr::new(127, 0, 0, 5), at).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(peer.ip().to_string(), "127.0.0.5");
    }
}
