//! [`Cidr`]: a block of IP addresses (`10.0.0.0/8`, `2001:db8::/32`, or one address), the one
//! type and parser behind every address list: which peers may connect
//! ([`ListenerConfig::allow`](crate::ListenerConfig::allow)) and which may send a PROXY
//! protocol header ([`ListenerConfig::proxy_protocol_from`](crate::ListenerConfig::proxy_protocol_from)).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::Error;

/// A block of IP addresses: an address and a prefix length (`192.0.2.0/24`, `::1/128`); a
/// bare address is the block of that one address.
///
/// IPv4 peers that reach an IPv6 socket as IPv4-mapped addresses (`::ffff:192.0.2.7`) match
/// IPv4 blocks, as they would on an IPv4 socket.
///
/// ```
/// use mllp::Cidr;
///
/// let lan: Cidr = "10.1.0.0/16".parse()?;
/// assert!(lan.contains("10.1.2.3".parse().unwrap()));
/// assert!(!lan.contains("10.2.0.1".parse().unwrap()));
/// assert!(lan.contains("::ffff:10.1.0.9".parse().unwrap()));
/// assert!("10.1.2.3/16".parse::<Cidr>().is_err()); // host bits set: a typo, say so
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr`.
    ///
    /// # Errors
    /// [`Error::Config`] when `prefix` is longer than the address (32 bits for IPv4, 128 for
    /// IPv6) or `addr` has bits set after the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, Error> {
        let bits = max_prefix(addr);
        if prefix > bits {
            return Err(Error::Config(format!(
                "{addr}/{prefix}: the prefix length is at most {bits}"
            )));
        }
        let cidr = Cidr { addr, prefix };
        if bits_of(addr) & !cidr.mask() != 0 {
            let network = Cidr {
                addr: from_bits(addr, bits_of(addr) & cidr.mask()),
                prefix,
            };
            return Err(Error::Config(format!(
                "{addr}/{prefix} has bits set after the prefix: did you mean {network}?"
            )));
        }
        Ok(cidr)
    }

    /// The first address of the block.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        bits_of(ip) & self.mask() == bits_of(self.addr)
    }

    /// Whether any block of `list` contains `ip`.
    pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
        list.iter().any(|c| c.contains(ip))
    }

    /// Parses a list separated by commas (`10.0.0.0/8,192.0.2.7`), as the command line and
    /// the C API take it.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first entry that is not a block.
    pub fn parse_list(text: &str) -> Result<Vec<Cidr>, Error> {
        text.split(',').map(|s| s.trim().parse()).collect()
    }

    /// The mask of the prefix, in the address's own width (as a `u128`).
    fn mask(&self) -> u128 {
        let bits = u32::from(max_prefix(self.addr));
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            0
        } else {
            (u128::MAX << (128 - prefix)) >> (128 - bits)
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits_of(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_bits(like: IpAddr, bits: u128) -> IpAddr {
    match like {
        // The bits came from an IPv4 address masked: they fit in 32 bits.
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(bits).unwrap_or(0).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// `ADDR/PREFIX` or a bare `ADDR` (IPv4 or IPv6, no brackets, no host names).
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            Error::Config(format!(
                "{s:?} is not an address block: expected ADDR/PREFIX (10.0.0.0/8, fd00::/8) or an IP address"
            ))
        })?;
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(p) => p.parse::<u8>().map_err(|_| {
                Error::Config(format!(
                    "{s:?} is not an address block: the prefix length {p:?} is not a number from 0 to {}",
                    max_prefix(addr)
                ))
            })?,
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("127.0.0.5", "127.0.0.5", true),
            ("127.0.0.5", "127.0.0.6", false),
            ("127.0.0.5/32", "::ffff:127.0.0.5", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("::/0", "::1", true),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("192.168.1.128/25", "192.168.1.200", true),
            ("192.168.1.128/25", "192.168.1.100", false),
        ];
        for &(block, addr, want) in cases {
            let c: Cidr = block.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), want, "{block} contains {addr}");
        }
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        for (text, says) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0.0/33", "at most 32"),
            ("::/129", "at most 128"),
            ("10.0.0.0/x", "not a number"),
            ("example.org/8", "not an address block"),
            ("", "not an address block"),
            ("10.0.0.0/", "not a number"),
        ] {
            let e = text.parse::<Cidr>().unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn lists_and_display() {
        let list = Cidr::parse_list("127.0.0.5, 10.0.0.0/8,::1").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].to_string(), "127.0.0.5/32");
        assert!(Cidr::any_contains(&list, ip("10.9.9.9")));
        assert!(!Cidr::any_contains(&list, ip("127.0.0.1")));
        assert!(Cidr::parse_list("10.0.0.0/8,,").is_err());
    }
}
