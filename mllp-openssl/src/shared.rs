//! What the acceptor and the connector share: reading an identity, the text of a certificate
//! name, the session over the core's socket, the error of a setting.

use std::io::{self, Read, Write};

use mllp::{Error, Identity, TlsError, TlsErrorKind, TlsSession, TlsSocket, TlsVersion};
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslStream, SslVersion};
use openssl::x509::{X509NameRef, X509};

/// A [`TlsErrorKind::Config`] error.
pub(crate) fn config_error(
    message: impl Into<String>,
    source: Option<openssl::error::ErrorStack>,
) -> Error {
    Error::Tls(TlsError::new(
        TlsErrorKind::Config,
        message,
        source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    ))
}

/// The OpenSSL protocol version of a minimum.
pub(crate) fn ssl_version(version: TlsVersion) -> SslVersion {
    match version {
        TlsVersion::Tls13 => SslVersion::TLS1_3,
        _ => SslVersion::TLS1_2,
    }
}

/// The leaf certificate, the rest of the chain and the key of `identity`.
pub(crate) fn read_identity(identity: &Identity) -> mllp::Result<(X509, Vec<X509>, PKey<Private>)> {
    match identity {
        Identity::Pem { cert, key } => {
            let mut chain = X509::stack_from_pem(cert)
                .map_err(|e| config_error("the PEM certificate chain cannot be read", Some(e)))?;
            if chain.is_empty() {
                return Err(config_error(
                    "the certificate file holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                    None,
                ));
            }
            let leaf = chain.remove(0);
            let key = PKey::private_key_from_pem(key)
                .map_err(|e| config_error("the PEM private key cannot be read", Some(e)))?;
            Ok((leaf, chain, key))
        }
        Identity::Pkcs12 { der, password } => {
            // The binding panics on a password with a NUL byte: refuse it first.
            if password.contains('\0') {
                return Err(config_error(
                    "the PKCS#12 password holds a NUL character",
                    None,
                ));
            }
            let parsed = Pkcs12::from_der(der)
                .and_then(|p| p.parse2(password))
                .map_err(|e| {
                    config_error(
                        "the PKCS#12 identity cannot be read (invalid file or wrong password)",
                        Some(e),
                    )
                })?;
            let (Some(leaf), Some(key)) = (parsed.cert, parsed.pkey) else {
                return Err(config_error(
                    "the PKCS#12 identity holds no certificate or no private key",
                    None,
                ));
            };
            let chain = parsed
                .ca
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            Ok((leaf, chain, key))
        }
    }
}

/// A name as `CN=...,O=...`, in the certificate's order; a `,`, `=` or `\\` inside a value is
/// escaped with `\\`, control characters are dropped (the text goes into logs and headers).
pub(crate) fn name_text(name: &X509NameRef) -> String {
    let mut text = String::new();
    for entry in name.entries() {
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(entry.object().nid().short_name().unwrap_or("?"));
        text.push('=');
        let value = entry.data().to_string().unwrap_or_else(|_| "?".into());
        for ch in value.chars() {
            if matches!(ch, ',' | '=' | '\\' | '+') {
                text.push('\\');
            }
            if !ch.is_control() {
                text.push(ch);
            }
        }
    }
    text
}

/// An OpenSSL session over the socket of a listener's or a sender's connection.
pub(crate) struct Session(pub(crate) SslStream<TlsSocket>);

impl Read for Session {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Session {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TlsSession for Session {
    fn socket(&self) -> &TlsSocket {
        self.0.get_ref()
    }

    fn socket_mut(&mut self) -> &mut TlsSocket {
        self.0.get_mut()
    }

    fn close_notify(&mut self) {
        let _ = self.0.shutdown();
    }

    fn buffered(&self) -> usize {
        self.0.ssl().pending()
    }
}
