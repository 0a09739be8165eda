//! Sockets seen from outside, Linux only:
//!
//! * [`connect_from`]: a TCP connection from a chosen loopback address. std connects from the
//!   address the kernel picks (127.0.0.1 for any loopback destination), and tests of address
//!   lists and of the PROXY protocol need a client at another one, such as 127.0.0.5 (the
//!   `sockaddr_in` layout and constants are Linux's).
//! * [`established`]: the established connections of a port, with their keepalive timers, as
//!   `ss` (iproute2) reports them: what a process's sockets run with, whichever process holds
//!   them.

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

/// One established TCP connection, as `ss -tno` reports it.
#[derive(Debug, Clone)]
pub struct Established {
    /// The local address, `IP:PORT`.
    pub local: String,
    /// The peer's address.
    pub peer: String,
    /// The time left on its keepalive timer, in seconds; `None` when keepalive is off.
    pub keepalive: Option<f64>,
    /// The line as `ss` printed it.
    pub line: String,
}

/// The established TCP connections with `port` at either end. Panics when `ss` cannot run.
pub fn established(port: u16) -> Vec<Established> {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .output()
        .expect("ss (iproute2) is needed to see the sockets' keepalive timers");
    let end = format!(":{port}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // Without a state column: the queues, then the local and the peer address.
            let mut fields = line.split_whitespace().skip(2);
            let (local, peer) = (fields.next()?, fields.next()?);
            (local.ends_with(&end) || peer.ends_with(&end)).then(|| Established {
                local: local.to_owned(),
                peer: peer.to_owned(),
                keepalive: keepalive_timer(line),
                line: line.to_owned(),
            })
        })
        .collect()
}

/// The time left on a line's keepalive timer, in seconds (`timer:(keepalive,2min59sec,0)`).
fn keepalive_timer(line: &str) -> Option<f64> {
    const START: &str = "timer:(keepalive,";
    let rest = &line[line.find(START)? + START.len()..];
    let text = &rest[..rest.find(',')?];
    let mut secs = 0.0;
    let (mut number, mut unit) = (String::new(), String::new());
    // A digit after a unit closes a part; the sentinel closes the last.
    for c in text.chars().chain(std::iter::once('0')) {
        if c.is_ascii_digit() && !unit.is_empty() {
            let n: f64 = number.parse().ok()?;
            secs += n * match unit.as_str() {
                "min" => 60.0,
                "sec" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
            number.clear();
            unit.clear();
        }
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            unit.push(c);
        }
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keepalive_timers_as_ss_prints_them() {
        let t = |s| keepalive_timer(&format!("0 0 a b timer:(keepalive,{s},0)"));
        assert_eq!(t("4min59sec"), Some(299.0));
        assert_eq!(t("3min"), Some(180.0));
        assert_eq!(t("59sec"), Some(59.0));
        assert_eq!(t("1min30sec"), Some(90.0));
        assert_eq!(t("500ms"), Some(0.5));
        assert_eq!(keepalive_timer("0 0 a b"), None);
    }

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
