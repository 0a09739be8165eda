//! The server side: [`Acceptor`], which can require and verify client certificates.

use std::fmt;
use std::io;
use std::path::Path;

use log::debug;
use mllp::{Error, Identity, TlsError, TlsErrorKind, TlsPeer, TlsSession, TlsSocket, TlsVersion};
use openssl::ssl::{HandshakeError, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509VerifyResult, X509};

use crate::shared::{config_error, name_text, read_identity, ssl_version, Session};

/// The settings of an [`Acceptor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AcceptorConfig {
    /// The server's certificate chain and private key.
    pub identity: Identity,
    /// The CA certificate(s), PEM, that client certificates must chain to. `Some`: every client
    /// must present a certificate that verifies against them, or its handshake is refused.
    /// Default: `None` (no client certificate is requested).
    pub client_ca_pem: Option<Vec<u8>>,
    /// The oldest protocol version accepted. Default: [`TlsVersion::Tls12`].
    pub min_version: TlsVersion,
}

impl AcceptorConfig {
    /// Settings presenting `identity`, requesting no client certificate, TLS 1.2 or newer.
    pub fn new(identity: Identity) -> AcceptorConfig {
        AcceptorConfig {
            identity,
            client_ca_pem: None,
            min_version: TlsVersion::default(),
        }
    }

    /// The settings of the core's [`mllp::TlsServerConfig`], with no client CA.
    pub fn from_server_config(config: &mllp::TlsServerConfig) -> AcceptorConfig {
        AcceptorConfig::new(config.identity.clone()).min_version(config.min_version)
    }

    /// Requires client certificates that chain to the CA certificate(s) in `pem`.
    pub fn client_ca_pem(mut self, pem: Vec<u8>) -> AcceptorConfig {
        self.client_ca_pem = Some(pem);
        self
    }

    /// Requires client certificates that chain to the CA certificate(s) in the PEM file at
    /// `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; its text names the file.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> mllp::Result<AcceptorConfig> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| Error::Io {
            phase: mllp::Phase::File,
            source: io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        })?;
        Ok(self.client_ca_pem(pem))
    }

    /// Accepts no protocol older than `version`.
    pub fn min_version(mut self, version: TlsVersion) -> AcceptorConfig {
        self.min_version = version;
        self
    }
}

/// A TLS acceptor through OpenSSL; see the [crate documentation](crate). Cheap to share
/// (`Arc`) between connections; build a new one to renew the certificate.
pub struct Acceptor {
    inner: SslAcceptor,
    verifies_clients: bool,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("verifies_clients", &self.verifies_clients)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Checks the settings and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] of kind [`TlsErrorKind::Config`] when the identity cannot be read, the
    /// key does not match the certificate, or the client CA file holds no PEM certificate.
    pub fn new(config: &AcceptorConfig) -> mllp::Result<Acceptor> {
        let setting = |e| config_error("the TLS server settings were rejected", Some(e));
        let (leaf, chain, key) = read_identity(&config.identity)?;
        let mut builder =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setting)?;
        builder.set_certificate(&leaf).map_err(setting)?;
        for cert in chain {
            builder.add_extra_chain_cert(cert).map_err(setting)?;
        }
        let mismatch = |e| config_error("the private key does not match the certificate", Some(e));
        builder.set_private_key(&key).map_err(mismatch)?;
        builder.check_private_key().map_err(mismatch)?;
        builder
            .set_min_proto_version(Some(ssl_version(config.min_version)))
            .map_err(setting)?;
        let verifies_clients = config.client_ca_pem.is_some();
        if let Some(pem) = &config.client_ca_pem {
            let cas = X509::stack_from_pem(pem)
                .map_err(|e| config_error("the client CA file is not valid PEM", Some(e)))?;
            if cas.is_empty() {
                return Err(config_error(
                    "the client CA file holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                    None,
                ));
            }
            let mut store = X509StoreBuilder::new().map_err(setting)?;
            let mut names = Stack::new().map_err(setting)?;
            for ca in cas {
                names
                    .push(ca.subject_name().to_owned().map_err(setting)?)
                    .map_err(setting)?;
                store.add_cert(ca).map_err(setting)?;
            }
            builder
                .set_verify_cert_store(store.build())
                .map_err(setting)?;
            builder.set_client_ca_list(names);
            builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        Ok(Acceptor {
            inner: builder.build(),
            verifies_clients,
        })
    }

    /// Whether client certificates are required and verified.
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }
}

impl mllp::TlsAcceptor for Acceptor {
    fn accept(&self, socket: TlsSocket) -> mllp::Result<(Box<dyn TlsSession>, TlsPeer)> {
        let peer = socket
            .tcp()
            .peer_addr()
            .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
        let stream = match self.inner.accept(socket) {
            Ok(stream) => stream,
            Err(e) => return Err(self.describe(&peer, e)),
        };
        let ssl = stream.ssl();
        let protocol = ssl.version_str();
        let cipher = ssl.current_cipher().map_or("unknown", |c| c.name());
        let mut tls_peer = TlsPeer::new().with_protocol(protocol).with_cipher(cipher);
        if let Some(cert) = ssl.peer_certificate() {
            if let Ok(der) = cert.to_der() {
                tls_peer = tls_peer.with_certificate(der);
            }
            // With a client CA, a handshake that completed has verified the certificate.
            if self.verifies_clients && ssl.verify_result() == X509VerifyResult::OK {
                tls_peer = tls_peer.with_subject(name_text(cert.subject_name()));
            }
        }
        debug!(
            "TLS session with {peer} established: {protocol}, cipher {cipher}{}",
            tls_peer
                .subject()
                .map(|s| format!(", client certificate {s}"))
                .unwrap_or_default()
        );
        Ok((Box::new(Session(stream)), tls_peer))
    }
}

impl Acceptor {
    /// Turns a failed handshake into an error that says why.
    fn describe(&self, peer: &str, e: HandshakeError<TlsSocket>) -> Error {
        let (message, kind, source) = match e {
            HandshakeError::SetupFailure(stack) => (
                format!("the TLS handshake with the client at {peer} could not start"),
                TlsErrorKind::Config,
                Box::new(stack) as Box<dyn std::error::Error + Send + Sync>,
            ),
            HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid) => {
                let verify = mid.ssl().verify_result();
                let error = mid.into_error();
                let text = error.to_string();
                let (message, kind) = if verify != X509VerifyResult::OK {
                    (
                        format!(
                            "the client at {peer} was refused: its certificate failed \
                             verification: {}",
                            verify.error_string()
                        ),
                        TlsErrorKind::Certificate,
                    )
                } else if text.contains("peer did not return a certificate") {
                    (
                        format!("the client at {peer} was refused: it presented no certificate"),
                        TlsErrorKind::Certificate,
                    )
                } else if text.contains("wrong version number")
                    || text.contains("http request")
                    || text.contains("packet length too long")
                {
                    (
                        format!("the client at {peer} does not speak TLS"),
                        TlsErrorKind::Handshake,
                    )
                } else if error.io_error().is_some() {
                    (
                        format!("the TLS handshake with the client at {peer} failed"),
                        TlsErrorKind::Io,
                    )
                } else {
                    (
                        format!("the TLS handshake with the client at {peer} failed"),
                        TlsErrorKind::Handshake,
                    )
                };
                let source = Box::new(error) as Box<dyn std::error::Error + Send + Sync>;
                (message, kind, source)
            }
        };
        let error = Error::Tls(TlsError::new(kind, message, Some(source)));
        debug!("TLS handshake failed: {error}");
        error
    }
}
