//! The PROXY protocol (versions 1 and 2), sans I/O: bytes in, a header, "need more" or an
//! error out.
//!
//! A proxy such as HAProxy (`send-proxy`, `send-proxy-v2`) that forwards a connection sends,
//! before anything else, a header naming the client it is forwarding: version 1 is a text
//! line (`PROXY TCP4 192.0.2.7 198.51.100.1 50000 2575\r\n`, at most 107 bytes), version 2 a
//! binary block (a 12-byte signature, a version and command byte, an address family byte, a
//! length, the addresses, then optional TLVs, skipped here). The listener reads it only from
//! the addresses listed in
//! [`ListenerConfig::proxy_protocol_from`](crate::ListenerConfig::proxy_protocol_from).
//!
//! [`parse`] never asks for more bytes than the header still needs ([`Parsed::NeedMore`] gives
//! a count that cannot overshoot its end), so a blocking reader that reads exactly that many
//! never swallows the first bytes of the MLLP stream that follows.
//!
//! ```
//! use mllp::proxy_protocol::{parse, Parsed};
//!
//! let bytes = b"PROXY TCP4 127.0.0.5 127.0.0.1 50000 2575\r\n\x0bMSH|...";
//! let Parsed::Header { header, len } = parse(bytes)? else { unreachable!() };
//! assert_eq!(header.source.unwrap().to_string(), "127.0.0.5:50000");
//! assert_eq!(&bytes[len..len + 1], b"\x0b");
//! assert_eq!(parse(b"PROXY TCP4")?, Parsed::NeedMore(5)); // the shortest header is 15 bytes
//! assert_eq!(parse(b"PROXY TCP4 127.0.0.5")?, Parsed::NeedMore(1));
//! # Ok::<(), mllp::proxy_protocol::ProxyError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The signature that starts a version 2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// What starts a version 1 header.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest version 1 header, its CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The shortest header of either version (`PROXY UNKNOWN\r\n`, 15 bytes; version 2 takes 16).
const MIN_LEN: usize = 15;
/// The fixed part of a version 2 header.
const V2_FIXED: usize = 16;

/// A header: who the proxy says the connection is from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The protocol version: 1 or 2.
    pub version: u8,
    /// The client's address; `None` for `PROXY UNKNOWN`, a version 2 `LOCAL` command (the
    /// proxy's own connection, a health check) or an address family other than TCP or UDP
    /// over IPv4 or IPv6: the connection's own peer address stands.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when `source` is given.
    pub destination: Option<SocketAddr>,
}

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header, `len` bytes long: what follows belongs to the connection.
    Header {
        /// The header.
        header: Header,
        /// Its length in bytes.
        len: usize,
    },
    /// The bytes so far are the start of a valid header: at least this many more are needed
    /// (never more than the header still lacks).
    NeedMore(usize),
}

/// Why bytes are not a PROXY protocol header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The bytes start with neither signature: not the PROXY protocol at all.
    NoSignature,
    /// A version 1 line without its CRLF within 107 bytes.
    TooLong,
    /// A version 1 line that is not `PROXY TCP4|TCP6 SRC DST SPORT DPORT` or
    /// `PROXY UNKNOWN…`; the text says what is wrong.
    BadV1(&'static str),
    /// A version 2 header with an unknown version or command, or an address block shorter
    /// than its family needs; the text says what is wrong.
    BadV2(&'static str),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NoSignature => f.write_str("no PROXY protocol header"),
            ProxyError::TooLong => {
                write!(
                    f,
                    "PROXY protocol v1 header without CRLF within {V1_MAX_LEN} bytes"
                )
            }
            ProxyError::BadV1(why) => write!(f, "malformed PROXY protocol v1 header: {why}"),
            ProxyError::BadV2(why) => write!(f, "malformed PROXY protocol v2 header: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Whether `bytes` (not empty) start like a PROXY protocol header of either version: what a
/// listener checks on connections from addresses not allowed to send one.
pub fn starts_like_header(bytes: &[u8]) -> bool {
    !bytes.is_empty() && (prefix_of(bytes, V1_PREFIX) || prefix_of(bytes, &V2_SIGNATURE))
}

/// Whether `bytes` and `sig` agree on their common length.
fn prefix_of(bytes: &[u8], sig: &[u8]) -> bool {
    let n = bytes.len().min(sig.len());
    bytes[..n] == sig[..n]
}

/// Parses the header at the start of `bytes`.
///
/// # Errors
/// A [`ProxyError`] when the bytes cannot start a valid header.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let n = bytes.len();
    let (v1, v2) = (prefix_of(bytes, V1_PREFIX), prefix_of(bytes, &V2_SIGNATURE));
    if !v1 && !v2 {
        return Err(ProxyError::NoSignature);
    }
    if n < MIN_LEN {
        return Ok(Parsed::NeedMore(MIN_LEN - n));
    }
    if v2 {
        parse_v2(bytes)
    } else {
        parse_v1(bytes)
    }
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        if bytes.len() >= V1_MAX_LEN {
            return Err(ProxyError::TooLong);
        }
        return Ok(Parsed::NeedMore(1));
    };
    let len = end + 2;
    if len > V1_MAX_LEN {
        return Err(ProxyError::TooLong);
    }
    let line = std::str::from_utf8(&bytes[V1_PREFIX.len()..end])
        .map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let mut parts = line.split(' ');
    let family = parts.next().unwrap_or_default();
    let header = |source, destination| Parsed::Header {
        header: Header {
            version: 1,
            source,
            destination,
        },
        len,
    };
    if family == "UNKNOWN" {
        return Ok(header(None, None));
    }
    let want_v4 = match family {
        "TCP4" => true,
        "TCP6" => false,
        _ => {
            return Err(ProxyError::BadV1(
                "the protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ProxyError::BadV1("expected four fields after the protocol"));
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| ProxyError::BadV1("an address is not valid"))?;
        if ip.is_ipv4() != want_v4 {
            return Err(ProxyError::BadV1("an address does not match the protocol"));
        }
        Ok(ip)
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // Decimal digits only, no sign, no leading zero.
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(ProxyError::BadV1("a port is not a number from 0 to 65535"));
        }
        s.parse()
            .map_err(|_| ProxyError::BadV1("a port is not a number from 0 to 65535"))
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    let destination = SocketAddr::new(ip(dst)?, port(dport)?);
    Ok(header(Some(source), Some(destination)))
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    if bytes.len() < V2_FIXED {
        return Ok(Parsed::NeedMore(V2_FIXED - bytes.len()));
    }
    let ver_cmd = bytes[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadV2("the version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::BadV2("the command is neither LOCAL nor PROXY")),
    };
    let family = bytes[13];
    let body_len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let len = V2_FIXED + body_len;
    if bytes.len() < len {
        return Ok(Parsed::NeedMore(len - bytes.len()));
    }
    let body = &bytes[V2_FIXED..len];
    let header = |source, destination| Parsed::Header {
        header: Header {
            version: 2,
            source,
            destination,
        },
        len,
    };
    if local {
        return Ok(header(None, None));
    }
    match family >> 4 {
        // AF_INET
        1 => {
            if body.len() < 12 {
                return Err(ProxyError::BadV2(
                    "the IPv4 address block is shorter than 12 bytes",
                ));
            }
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[at],
                    body[at + 1],
                    body[at + 2],
                    body[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(header(
                Some(SocketAddr::new(ip(0), port(8))),
                Some(SocketAddr::new(ip(4), port(10))),
            ))
        }
        // AF_INET6
        2 => {
            if body.len() < 36 {
                return Err(ProxyError::BadV2(
                    "the IPv6 address block is shorter than 36 bytes",
                ));
            }
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(header(
                Some(SocketAddr::new(ip(0), port(32))),
                Some(SocketAddr::new(ip(16), port(34))),
            ))
        }
        // AF_UNSPEC, AF_UNIX or unknown: the connection's own address stands.
        _ => Ok(header(None, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> (Header, usize) {
        match parse(bytes) {
            Ok(Parsed::Header { header, len }) => (header, len),
            other => panic!("{other:?}"),
        }
    }

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | cmd);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn v1_headers() {
        let (h, len) = header(b"PROXY TCP4 127.0.0.5 127.0.0.1 50000 2575\r\nrest");
        assert_eq!((h.version, len), (1, 43));
        assert_eq!(h.source, Some("127.0.0.5:50000".parse().unwrap()));
        assert_eq!(h.destination, Some("127.0.0.1:2575".parse().unwrap()));
        let (h, _) = header(b"PROXY TCP6 ::1 fd00::1 1 65535\r\n");
        assert_eq!(h.source, Some("[::1]:1".parse().unwrap()));
        let (h, len) = header(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.source, len), (None, 15));
        let (h, _) = header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
        assert_eq!(h.source, None);
    }

    #[test]
    fn v1_errors() {
        for (bytes, want) in [
            (
                &b"PROXY TCP4 127.0.0.5 127.0.0.1 50000\r\n"[..],
                "four fields",
            ),
            (
                b"PROXY TCP4 127.0.0.5 127.0.0.1 50000 2575 9\r\n",
                "four fields",
            ),
            (b"PROXY TCP4 ::1 127.0.0.1 50000 2575\r\n", "does not match"),
            (b"PROXY TCP6 127.0.0.5 ::1 1 2\r\n", "does not match"),
            (b"PROXY TCP4 127.0.0.5 127.0.0.1 65536 2575\r\n", "port"),
            (b"PROXY TCP4 127.0.0.5 127.0.0.1 +1 2575\r\n", "port"),
            (b"PROXY TCP4 127.0.0.5 127.0.0.1 01 2575\r\n", "port"),
            (b"PROXY UDP4 127.0.0.5 127.0.0.1 1 2\r\n", "protocol"),
            (b"PROXY TCP4 a.b.c.d 127.0.0.1 1 2\r\n", "address"),
            (b"PROXY  TCP4 127.0.0.5 127.0.0.1 1 2\r\n", "protocol"),
        ] {
            let e = parse(bytes).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        assert_eq!(parse(b"\x0bMSH|^~\\&|"), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NoSignature));
    }

    #[test]
    fn v2_headers() {
        let body = [
            127, 0, 0, 5, 127, 0, 0, 1, 0xc3, 0x50, 0x0a, 0x0f, 0xee, 0xee,
        ];
        let bytes = v2(1, 0x11, &body);
        let (h, len) = header(&[&bytes[..], b"\x0b"].concat());
        assert_eq!((h.version, len), (2, 16 + 14), "TLV bytes skipped");
        assert_eq!(h.source, Some("127.0.0.5:50000".parse().unwrap()));
        assert_eq!(h.destination, Some("127.0.0.1:2575".parse().unwrap()));
        let mut body6 = vec![0u8; 36];
        body6[15] = 1;
        body6[16] = 0xfd;
        body6[32..34].copy_from_slice(&7u16.to_be_bytes());
        let (h, _) = header(&v2(1, 0x21, &body6));
        assert_eq!(h.source, Some("[::1]:7".parse().unwrap()));
        let (h, len) = header(&v2(0, 0x00, &[]));
        assert_eq!((h.source, len), (None, 16), "LOCAL");
        let (h, _) = header(&v2(1, 0x31, &[0u8; 216]));
        assert_eq!(h.source, None, "AF_UNIX keeps the connection's address");
    }

    #[test]
    fn v2_errors() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(parse(&bad_version)
            .unwrap_err()
            .to_string()
            .contains("version"));
        let mut bad_cmd = v2(1, 0x11, &[0; 12]);
        bad_cmd[12] = 0x22;
        assert!(parse(&bad_cmd).unwrap_err().to_string().contains("command"));
        assert!(parse(&v2(1, 0x11, &[0; 11]))
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        assert!(parse(&v2(1, 0x21, &[0; 35]))
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }

    #[test]
    fn need_more_never_overshoots() {
        assert_eq!(parse(b""), Ok(Parsed::NeedMore(15)));
        assert_eq!(parse(b"PRO"), Ok(Parsed::NeedMore(12)));
        assert_eq!(parse(&V2_SIGNATURE[..]), Ok(Parsed::NeedMore(3)));
        let full = v2(1, 0x11, &[1; 12]);
        assert_eq!(parse(&full[..16]), Ok(Parsed::NeedMore(12)));
        // Every prefix of a v1 header asks for no more than it lacks.
        let v1 = b"PROXY TCP4 127.0.0.5 127.0.0.1 50000 2575\r\n";
        for k in 0..v1.len() {
            match parse(&v1[..k]) {
                Ok(Parsed::NeedMore(more)) => assert!(k + more <= v1.len(), "{k}+{more}"),
                other => panic!("{k}: {other:?}"),
            }
        }
    }

    #[test]
    fn what_looks_like_a_header() {
        assert!(starts_like_header(b"PROX"));
        assert!(starts_like_header(b"PROXY TCP4"));
        assert!(starts_like_header(b"\r\n\r\n\0"));
        assert!(starts_like_header(&v2(1, 0x11, &[0; 12])));
        assert!(!starts_like_header(b"\x0bMSH"));
        assert!(!starts_like_header(b"PROXIMA"));
    }
}
