//! TLS settings (configs and identities) and the handshakes that turn a TCP socket into a TLS
//! [`Stream`].

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use super::session::{handshake, TlsAcceptor, TlsConnector, TlsSession, TlsSocket};
use super::{native, Stream};
#[cfg(doc)]
use crate::error::Timeout;
use crate::error::{Error, Phase, Result};

/// What is known about the TLS peer of a connection: its certificate, the subject a verifying
/// acceptor checked, and the protocol and cipher agreed, as far as the TLS library tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeer {
    pub(super) certificate: Option<Vec<u8>>,
    subject: Option<String>,
    protocol: Option<String>,
    cipher: Option<String>,
}

impl TlsPeer {
    /// Nothing known yet; the `with_*` methods add what the TLS library reports.
    pub fn new() -> TlsPeer {
        TlsPeer::default()
    }

    /// The peer's certificate (DER).
    pub fn with_certificate(mut self, der: Vec<u8>) -> TlsPeer {
        self.certificate = Some(der);
        self
    }

    /// The subject of the peer's certificate, *verified* (it chains to a trusted CA).
    pub fn with_subject(mut self, subject: impl Into<String>) -> TlsPeer {
        self.subject = Some(subject.into());
        self
    }

    /// The protocol version agreed (e.g. `TLSv1.3`).
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> TlsPeer {
        self.protocol = Some(protocol.into());
        self
    }

    /// The cipher suite agreed (e.g. `TLS_AES_256_GCM_SHA384`).
    pub fn with_cipher(mut self, cipher: impl Into<String>) -> TlsPeer {
        self.cipher = Some(cipher.into());
        self
    }

    /// The peer's certificate in DER form, if it presented one.
    ///
    /// A client always sees the server's certificate. A server sees the client's only with an
    /// acceptor that asks for one, such as the `mllp-openssl` crate's with a client CA: the
    /// built-in [`TlsServer`] never does (see the [crate documentation](crate#tls-client-certificates)).
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }

    /// The subject of the peer's certificate when the TLS library verified it (a client's
    /// against an acceptor's client CA, a server's against a connector's trusted CAs), as
    /// `CN=...,O=...` (OpenSSL's short names, in the certificate's order); `None` when no
    /// certificate was verified or the library does not report it (`native-tls` does not).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The protocol version agreed, when the TLS library reports it (`native-tls` does not).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The cipher suite agreed, when the TLS library reports it (`native-tls` does not).
    pub fn cipher(&self) -> Option<&str> {
        self.cipher.as_deref()
    }
}

/// The oldest TLS protocol version a side accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3). The default.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    /// The version named `1.2` or `1.3` (also `TLSv1.2`, `tls1.3`).
    ///
    /// # Errors
    /// [`Error::Config`] for another name.
    pub fn parse(name: &str) -> Result<TlsVersion> {
        let bare = name.trim();
        let bare = bare
            .strip_prefix("TLSv")
            .or_else(|| bare.strip_prefix("tlsv"))
            .or_else(|| bare.strip_prefix("tls"))
            .or_else(|| bare.strip_prefix("TLS"))
            .unwrap_or(bare);
        match bare {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(Error::Config(format!(
                "the TLS version must be 1.2 or 1.3, not {name:?}"
            ))),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        })
    }
}

/// A certificate and its private key, presented to the peer.
///
/// The server identity of a [`TlsServerConfig`], or the client identity of a
/// [`TlsClientConfig`] for servers that ask for one. The `Debug` output never shows the key
/// or the password.
#[derive(Clone)]
pub enum Identity {
    /// PEM text: the certificate chain (leaf first, then intermediates) and the private key.
    Pem {
        /// The certificate chain, PEM (`-----BEGIN CERTIFICATE-----` blocks).
        cert: Vec<u8>,
        /// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Convert
        /// other key formats with `openssl pkcs8 -topk8 -nocrypt -in old.key -out new.key`.
        key: Vec<u8>,
    },
    /// A PKCS#12 archive (`.p12` / `.pfx`) holding the certificate, the chain and the key.
    Pkcs12 {
        /// The archive's bytes.
        der: Vec<u8>,
        /// The archive's password (may be empty).
        password: String,
    },
}

impl Identity {
    /// Reads a PEM certificate chain and a PKCS#8 PEM private key from two files.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when a file cannot be read. The contents are checked
    /// when a [`TlsClient`] or [`TlsServer`] is built.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Identity> {
        Ok(Identity::Pem {
            cert: read_file(cert.as_ref())?,
            key: read_file(key.as_ref())?,
        })
    }

    /// Reads a PKCS#12 archive from a file.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when the file cannot be read. The contents and the
    /// password are checked when a [`TlsClient`] or [`TlsServer`] is built.
    pub fn from_pkcs12_file(
        path: impl AsRef<Path>,
        password: impl Into<String>,
    ) -> Result<Identity> {
        Ok(Identity::Pkcs12 {
            der: read_file(path.as_ref())?,
            password: password.into(),
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Pem { cert, .. } => f
                .debug_struct("Pem")
                .field("cert", &format_args!("{} bytes", cert.len()))
                .finish_non_exhaustive(),
            Identity::Pkcs12 { der, .. } => f
                .debug_struct("Pkcs12")
                .field("der", &format_args!("{} bytes", der.len()))
                .finish_non_exhaustive(),
        }
    }
}

/// Reads a whole file; the error names the file.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::io(
            Phase::File,
            io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        )
    })
}

/// TLS settings of a client (the sending side).
///
/// The server's certificate is verified against the system's trusted roots plus
/// [`root_pems`](Self::root_pems), and must be valid for the host name connected to (or
/// [`server_name`](Self::server_name)). TLS 1.2 is the oldest protocol version accepted unless
/// [`min_version`](Self::min_version) says 1.3.
/// Build a [`TlsClient`] from it once and reuse it for every connection.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsClientConfig {
    /// Extra trusted CA certificates, each a PEM text that may hold several certificates.
    /// Default: none (only the system's roots are trusted).
    pub root_pems: Vec<Vec<u8>>,
    /// The name the server certificate must be valid for, instead of the host connected to.
    /// Default: `None`.
    pub server_name: Option<String>,
    /// The certificate to present when the server asks for one (mutual TLS). Default: `None`.
    pub identity: Option<Identity>,
    /// Accept any server certificate: expired, self-signed, for another name. This removes
    /// the protection TLS gives against someone between client and server; a warning is logged
    /// on every connect. Default: `false`.
    pub danger_accept_invalid_certs: bool,
    /// The oldest protocol version accepted. Default: [`TlsVersion::Tls12`].
    pub min_version: TlsVersion,
}

impl TlsClientConfig {
    /// The default settings: system roots, host name verification, no client identity.
    pub fn new() -> TlsClientConfig {
        TlsClientConfig::default()
    }

    /// Trusts the CA certificate(s) in `pem` in addition to the system's roots.
    pub fn add_root_pem(mut self, pem: Vec<u8>) -> TlsClientConfig {
        self.root_pems.push(pem);
        self
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` in addition to the system's roots.
    ///
    /// # Errors
    /// [`Error::Io`] with [`Phase::File`] when the file cannot be read. The contents are checked
    /// when the [`TlsClient`] is built.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<TlsClientConfig> {
        let pem = read_file(path.as_ref())?;
        Ok(self.add_root_pem(pem))
    }

    /// Verifies the server certificate against `name` instead of the host connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsClientConfig {
        self.server_name = Some(name.into());
        self
    }

    /// Presents `identity` to servers that ask for a client certificate.
    pub fn identity(mut self, identity: Identity) -> TlsClientConfig {
        self.identity = Some(identity);
        self
    }

    /// Accepts no protocol older than `version`; see the field of that name.
    pub fn min_version(mut self, version: TlsVersion) -> TlsClientConfig {
        self.min_version = version;
        self
    }

    /// Accepts any server certificate when `dangerous` is `true`; see the field of that name.
    pub fn danger_accept_invalid_certs(mut self, dangerous: bool) -> TlsClientConfig {
        self.danger_accept_invalid_certs = dangerous;
        self
    }
}

/// TLS settings of a server (the listening side).
///
/// TLS 1.2 is the oldest protocol version accepted unless [`min_version`](Self::min_version)
/// says 1.3. The built-in [`TlsServer`] does not request client certificates (see the
/// [crate documentation](crate#tls-client-certificates)). Build a [`TlsServer`] from it once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TlsServerConfig {
    /// The server's certificate and private key.
    pub identity: Identity,
    /// The oldest protocol version accepted. Default: [`TlsVersion::Tls12`].
    pub min_version: TlsVersion,
}

impl TlsServerConfig {
    /// Settings presenting `identity` to clients.
    pub fn new(identity: Identity) -> TlsServerConfig {
        TlsServerConfig {
            identity,
            min_version: TlsVersion::default(),
        }
    }

    /// Accepts no protocol older than `version`; see the field of that name.
    pub fn min_version(mut self, version: TlsVersion) -> TlsServerConfig {
        self.min_version = version;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Handshakes

/// A TLS client, built once from a [`TlsClientConfig`]; cheap to clone and shareable between
/// threads.
#[derive(Clone)]
pub struct TlsClient {
    inner: native::Client,
}

impl TlsClient {
    /// Checks the settings and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] when a CA certificate or the identity cannot be read (not PEM, not PKCS#8,
    /// wrong PKCS#12 password); [`Error::Config`] in a build without the `tls` feature.
    /// A private key that does not match its certificate is not detected here: the handshakes
    /// fail.
    pub fn new(config: &TlsClientConfig) -> Result<TlsClient> {
        Ok(TlsClient {
            inner: native::Client::new(config)?,
        })
    }

    /// Runs the TLS handshake over `tcp` as a client, verifying the server certificate against
    /// `domain` (the host connected to, without the port) unless the settings name another
    /// server name.
    ///
    /// The whole handshake must finish within `deadline`. The socket's read and write timeouts
    /// are used for that and restored before the stream is returned.
    ///
    /// # Errors
    /// * [`Error::Timeout`] with [`Timeout::Connect`] when the deadline passed;
    /// * [`Error::Tls`] when the handshake failed; the message says whether the server
    ///   certificate was not valid for the name, not signed by a trusted CA, or otherwise not
    ///   verifiable, and the source holds the TLS library's own text.
    pub fn connect(&self, domain: &str, tcp: TcpStream, deadline: Duration) -> Result<Stream> {
        TlsClient::connect_with(self, domain, tcp, deadline)
    }

    /// Runs the client handshake of any [`TlsConnector`] over a connected `tcp` socket, within
    /// `deadline`, as [`connect`](Self::connect) does with this one: what a sender does with
    /// the connector given to
    /// [`SenderBuilder::tls_connector`](crate::SenderBuilder::tls_connector).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(
        connector: &dyn TlsConnector,
        domain: &str,
        tcp: TcpStream,
        deadline: Duration,
    ) -> Result<Stream> {
        let conn = handshake(tcp, deadline, |sock| connector.connect(domain, sock))?;
        Ok(Stream::tls(conn))
    }
}

impl TlsConnector for TlsClient {
    fn connect(&self, host: &str, socket: TlsSocket) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        self.inner.connect_session(host, socket)
    }
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

/// A TLS server, built once from a [`TlsServerConfig`]; cheap to clone and shareable between
/// threads.
#[derive(Clone)]
pub struct TlsServer {
    inner: native::Server,
}

impl TlsServer {
    /// Checks the identity and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] when the identity cannot be read (not PEM, not PKCS#8, wrong PKCS#12
    /// password); [`Error::Config`] in a build without the `tls` feature. A private key that
    /// does not match its certificate is not detected here: every handshake then fails with
    /// "no shared cipher".
    pub fn new(config: &TlsServerConfig) -> Result<TlsServer> {
        Ok(TlsServer {
            inner: native::Server::new(config)?,
        })
    }

    /// Runs the TLS handshake over an accepted `tcp` connection, within `deadline`.
    ///
    /// The socket's read and write timeouts are used for the deadline and restored before the
    /// stream is returned.
    ///
    /// # Errors
    /// [`Error::Timeout`] with [`Timeout::Connect`] when the deadline passed; [`Error::Tls`]
    /// when the handshake failed, for example because the client speaks plain TCP. Either way
    /// only this connection is lost: log it and go on accepting.
    pub fn accept(&self, tcp: TcpStream, deadline: Duration) -> Result<Stream> {
        TlsServer::accept_with(self, tcp, deadline)
    }

    /// Runs the TLS handshake of any [`TlsAcceptor`] over an accepted `tcp` connection, within
    /// `deadline`, as [`accept`](Self::accept) does with this one.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn accept_with(
        acceptor: &dyn TlsAcceptor,
        tcp: TcpStream,
        deadline: Duration,
    ) -> Result<Stream> {
        let conn = handshake(tcp, deadline, |sock| acceptor.accept(sock))?;
        Ok(Stream::tls(conn))
    }
}

impl TlsAcceptor for TlsServer {
    fn accept(&self, socket: TlsSocket) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        self.inner.accept_session(socket)
    }
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_debug_hides_secrets() {
        let id = Identity::Pkcs12 {
            der: vec![1, 2, 3],
            password: "secret".into(),
        };
        let text = format!("{id:?}");
        assert!(!text.contains("secret"), "{text}");
        let id = Identity::Pem {
            cert: b"cert".to_vec(),
            key: b"KEYDATA".to_vec(),
        };
        let text = format!("{:?}", TlsClientConfig::new().identity(id));
        assert!(!text.contains("KEYDATA"), "{text}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_is_a_config_error_without_the_feature() {
        let e = TlsClient::new(&TlsClientConfig::new()).unwrap_err();
        assert!(e.to_string().contains("feature `tls`"), "{e}");
    }
}
