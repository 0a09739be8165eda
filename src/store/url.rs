//! Pieces of the URLs that name stores (`file:///DIR`, `amqp://…`, `mongodb://…`), shared by
//! the store crates and the command line so that each rule is written once: the settings given
//! beside a URL ([`UrlOptions`]) and percent-decoding.

use std::path::PathBuf;

/// What may be given beside a store's URL, the same for every store crate's `open_url(url,
/// &UrlOptions)`: a store refuses a setting it has no use for rather than ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlOptions {
    /// A PEM file of CA certificates to trust for a TLS connection to the store (`amqps://`).
    pub tls_ca: Option<PathBuf>,
}

impl UrlOptions {
    /// No option.
    pub fn new() -> UrlOptions {
        UrlOptions::default()
    }

    /// Sets [`tls_ca`](Self::tls_ca).
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> UrlOptions {
        self.tls_ca = Some(path.into());
        self
    }
}

/// Decodes the `%XX` escapes of a URL component (RFC 3986: `%` and exactly two hex digits).
///
/// `None` for a bad escape (`%2`, `%zz`, `%+F`) or for a result that is not UTF-8. A `+` is
/// kept as it is (it means a space only in HTML forms, not in URLs).
///
/// ```
/// use mllp::store::percent_decode;
///
/// assert_eq!(percent_decode("%2f").as_deref(), Some("/"));
/// assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b+c"));
/// assert_eq!(percent_decode("%+F"), None);
/// ```
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_digit(*bytes.get(i + 1)?)?;
            let lo = hex_digit(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("u%40x:p%3Aw").as_deref(), Some("u@x:p:w"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("").as_deref(), Some(""));
        for bad in ["/a%2", "%", "/a%zz", "/%ff", "%+F", "%-1", "% 1", "%1é"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
