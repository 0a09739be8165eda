//! The smallest HTTP/1.x server that a Prometheus scrape and a Kubernetes probe need: one
//! request per connection, `GET` only, the answer written and the connection closed.
//!
//! Written by hand rather than with a parser crate: only the request line is read (method and
//! path), the head is bounded ([`MAX_HEAD`]) and so is the time a client may take
//! ([`IO_TIMEOUT`]); everything else in the request is ignored. Connections are answered one
//! at a time on the server's thread, so a slow client delays the next scrape by at most
//! `IO_TIMEOUT` and never touches message handling.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The most bytes read of a request's head.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request and to read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET` (or `HEAD`) of a path (without its query string).
    Get { path: String, head: bool },
    /// Another method.
    OtherMethod,
    /// Not an HTTP request line.
    Bad,
}

/// Reads the request line from the start of a request's head.
pub fn parse(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() || !target.starts_with('/') {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or(target).to_owned();
    match method {
        "GET" => Request::Get { path, head: false },
        "HEAD" => Request::Get { path, head: true },
        _ => Request::OtherMethod,
    }
}

/// An answer.
pub struct Answer {
    /// `200 OK`, `404 Not Found`, ...
    pub status: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Answer {
    /// A plain-text answer.
    pub fn text(status: &'static str, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Reads one request from `tcp`, answers it with `route` and closes the connection.
pub fn serve_one(mut tcp: TcpStream, route: impl FnOnce(&str) -> Answer) -> io::Result<()> {
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            break;
        }
        let n = tcp.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (answer, head_only) = match parse(&head) {
        Request::Get { path, head } => (route(&path), head),
        Request::OtherMethod => (Answer::text("405 Method Not Allowed", "GET only\n"), false),
        Request::Bad => (
            Answer::text("400 Bad Request", "not an HTTP request\n"),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    if !head_only {
        out.push_str(&answer.body);
    }
    tcp.write_all(out.as_bytes())?;
    tcp.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let get = |p: &str| Request::Get {
            path: p.into(),
            head: false,
        };
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            get("/metrics")
        );
        assert_eq!(parse(b"GET /healthz?x=1 HTTP/1.0\r\n\r\n"), get("/healthz"));
        assert_eq!(
            parse(b"HEAD / HTTP/1.1\r\n\r\n"),
            Request::Get {
                path: "/".into(),
                head: true
            }
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::OtherMethod
        );
        for bad in [
            &b""[..],
            b"GET",
            b"GET /metrics",
            b"GET metrics HTTP/1.1",
            b"\xff\xfe x y",
        ] {
            assert_eq!(parse(bad), Request::Bad, "{bad:?}");
        }
    }
}
