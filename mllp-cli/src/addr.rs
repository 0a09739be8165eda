//! Addresses on the command line: one rule and one wording for every address a command takes
//! (`listen`/`relay`/`bench` ADDR, `send` ADDR, `--to`, `--health-addr`), and of the address
//! blocks of `--allow` and `--proxy-protocol-from` ([`blocks`]).
//!
//! | given | means |
//! |---|---|
//! | `HOST:PORT`, `[IPv6]:PORT` | as given |
//! | `PORT`, `:PORT` | port PORT on 127.0.0.1 (loopback: say `0.0.0.0:PORT` or `[::]:PORT` to listen on every interface) |
//! | `HOST`, an IPv6 address without brackets | HOST on port 2575, the port registered for MLLP |
//!
//! Port 0 (a free port chosen by the system) is for listening only.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::args::UsageError;

/// The port registered for MLLP with IANA, used when an address names none.
pub const DEFAULT_PORT: u16 = 2575;

/// The host of an address that names only a port.
const DEFAULT_HOST: &str = "127.0.0.1";

/// What an address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// To listen on: port 0 picks a free port.
    Listen,
    /// To connect to: port 0 is refused.
    Connect,
}

/// The address blocks of `text` (`10.0.0.0/8,192.0.2.7`, see [`mllp::Cidr`]), given as
/// `what` (`--allow`): IP addresses only, never host names, so nothing is resolved.
pub fn blocks(what: &str, text: &str) -> Result<Vec<mllp::Cidr>, UsageError> {
    mllp::Cidr::parse_list(text).map_err(|e| {
        let msg = match e {
            mllp::Error::Config(msg) => msg,
            e => e.to_string(),
        };
        UsageError(format!("--{what}: {msg}"))
    })
}

/// The address `text`, given as `what` (`ADDR`, `--to`), as `HOST:PORT` by the rule of this
/// module; checks the form only (see [`resolve`]).
pub fn parse(what: &str, text: &str, usage: Use) -> Result<String, UsageError> {
    let bad = |why: &str| {
        UsageError(format!(
            "{what} {text:?} {why}: write HOST:PORT, such as 127.0.0.1:{DEFAULT_PORT}, or a \
             port alone for 127.0.0.1"
        ))
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    let (host, port) = if let Ok(ip) = text.parse::<IpAddr>() {
        (bracketed(ip), None)
    } else if let Ok(sock) = text.parse::<SocketAddr>() {
        (bracketed(sock.ip()), Some(sock.port().to_string()))
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        (DEFAULT_HOST.to_owned(), Some(text.to_owned()))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => {
                let host = if host.is_empty() { DEFAULT_HOST } else { host };
                if let Some(inner) = host.strip_prefix('[') {
                    let v6 = inner
                        .strip_suffix(']')
                        .map(str::parse::<std::net::Ipv6Addr>);
                    if !matches!(v6, Some(Ok(_))) {
                        return Err(bad("is not an address"));
                    }
                } else if host.contains([':', '[', ']']) {
                    return Err(bad("is not an address (an IPv6 address goes in brackets)"));
                }
                if port.is_empty() {
                    return Err(bad("has no port after the colon"));
                }
                (host.to_owned(), Some(port.to_owned()))
            }
            None => (text.to_owned(), None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(bad("is not an address"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| bad("has a port that is not a number from 0 to 65535"))?,
    };
    if port == 0 && usage == Use::Connect {
        return Err(bad("has port 0, which cannot be connected to"));
    }
    Ok(format!("{host}:{port}"))
}

/// An IP address as the host part of `HOST:PORT`.
fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Resolves `addr` (from [`parse`]), given as `what`: a name that does not resolve is a usage
/// error, so a command that would wait for ever on a typing mistake stops at once.
pub fn resolve(what: &str, addr: &str) -> Result<Vec<SocketAddr>, UsageError> {
    let found: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| UsageError(format!("{what} {addr:?} cannot be resolved: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(UsageError(format!(
            "{what} {addr:?} resolves to no address"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_means_one_thing() {
        let listen = |t| parse("ADDR", t, Use::Listen);
        for (given, meant) in [
            ("127.0.0.1:2575", "127.0.0.1:2575"),
            ("2575", "127.0.0.1:2575"),
            (":0", "127.0.0.1:0"),
            ("0", "127.0.0.1:0"),
            ("localhost", "localhost:2575"),
            ("localhost:7000", "localhost:7000"),
            ("0.0.0.0:2575", "0.0.0.0:2575"),
            ("[::1]:9", "[::1]:9"),
            ("::1", "[::1]:2575"),
            ("[::]:0", "[::]:0"),
            ("127.0.0.5", "127.0.0.5:2575"),
        ] {
            assert_eq!(listen(given).unwrap(), meant, "{given}");
        }
        for (given, why) in [
            ("", "is empty"),
            ("127.0.0.1:", "has no port"),
            ("host:99999", "from 0 to 65535"),
            ("host:x", "from 0 to 65535"),
            ("[::1", "not an address"),
            ("a b:1", "not an address"),
            ("fe80::1:x", "IPv6 address goes in brackets"),
        ] {
            let e = listen(given).expect_err(given).0;
            assert!(e.contains(why) && e.starts_with("ADDR "), "{given}: {e}");
        }
        let e = parse("--to", "127.0.0.1:0", Use::Connect).unwrap_err().0;
        assert!(e.contains("port 0"), "{e}");
    }

    #[test]
    fn resolving() {
        assert!(!resolve("--to", "127.0.0.1:1").unwrap().is_empty());
        assert!(!resolve("--to", "[::1]:1").unwrap().is_empty());
    }
}
