//! TLS through `native-tls`. Nothing from `native-tls` leaves this module.

use std::io;

use log::{debug, warn};
use native_tls::{HandshakeError, Protocol, TlsAcceptor, TlsConnector, TlsStream};

/// The `native-tls` protocol version of a minimum.
fn protocol(version: TlsVersion) -> Protocol {
    match version {
        TlsVersion::Tls12 => Protocol::Tlsv12,
        TlsVersion::Tls13 => Protocol::Tlsv13,
    }
}

use super::deadline::Sock;
use super::session::TlsSession;
use super::{Identity, TlsClientConfig, TlsPeer, TlsServerConfig, TlsVersion};
use crate::error::{is_timeout_kind, Error, Result, Timeout, TlsError, TlsErrorKind};

impl TlsSession for TlsStream<Sock> {
    fn socket(&self) -> &Sock {
        self.get_ref()
    }

    fn socket_mut(&mut self) -> &mut Sock {
        self.get_mut()
    }

    fn close_notify(&mut self) {
        let _ = self.shutdown();
    }

    fn buffered(&self) -> usize {
        self.buffered_read_size().unwrap_or(0)
    }
}

/// Runs a `native-tls` handshake over `sock`; native-tls does not tell the protocol or cipher
/// agreed, so the peer has only the certificate.
fn native_session(
    sock: Sock,
    run: impl FnOnce(Sock) -> std::result::Result<TlsStream<Sock>, HandshakeError<Sock>>,
    describe: impl FnOnce(native_tls::Error) -> Error,
) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
    let tls = match run(sock) {
        Ok(tls) => tls,
        // Not expected with a blocking socket; if it happens, the socket timed out.
        Err(HandshakeError::WouldBlock(_)) => return Err(Error::Timeout(Timeout::Connect)),
        Err(HandshakeError::Failure(e)) if caused_by_timeout(&e) => {
            return Err(Error::Timeout(Timeout::Connect))
        }
        Err(HandshakeError::Failure(e)) => return Err(describe(e)),
    };
    let mut peer = TlsPeer::default();
    if let Ok(Some(cert)) = tls.peer_certificate() {
        peer.certificate = cert.to_der().ok();
    }
    Ok((Box::new(tls), peer))
}

/// The kind of a handshake failure that is not about the certificate: [`TlsErrorKind::Io`] when
/// an I/O error is in its chain (the connection broke), else [`TlsErrorKind::Handshake`].
fn handshake_kind(e: &native_tls::Error) -> TlsErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<io::Error>() {
            return TlsErrorKind::Io;
        }
        source = err.source();
    }
    TlsErrorKind::Handshake
}

/// Whether a handshake failed because the socket timed out (an I/O error of kind `TimedOut`
/// somewhere in the error's chain).
fn caused_by_timeout(e: &native_tls::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if is_timeout_kind(io.kind()) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

fn tls_error(kind: TlsErrorKind, message: String, source: native_tls::Error) -> Error {
    Error::Tls(TlsError::new(kind, message, Some(Box::new(source))))
}

fn native_identity(identity: &Identity) -> Result<native_tls::Identity> {
    match identity {
        Identity::Pem { cert, key } => {
            if !contains(key, b"-----BEGIN PRIVATE KEY-----") {
                return Err(Error::Tls(TlsError::new(
                    TlsErrorKind::Config,
                    "the private key is not unencrypted PKCS#8 PEM (\"-----BEGIN PRIVATE KEY-----\"); \
                     convert it with `openssl pkcs8 -topk8 -nocrypt`",
                    None,
                )));
            }
            native_tls::Identity::from_pkcs8(cert, key).map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the PEM certificate chain or private key cannot be read".into(),
                    e,
                )
            })
        }
        Identity::Pkcs12 { der, password } => native_tls::Identity::from_pkcs12(der, password)
            .map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the PKCS#12 identity cannot be read (invalid file or wrong password)".into(),
                    e,
                )
            }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A prepared TLS client context.
#[derive(Clone)]
pub(super) struct Client {
    connector: TlsConnector,
    server_name: Option<String>,
    dangerous: bool,
    min_version: TlsVersion,
}

impl Client {
    pub(super) fn new(config: &TlsClientConfig) -> Result<Client> {
        let mut builder = TlsConnector::builder();
        builder.min_protocol_version(Some(protocol(config.min_version)));
        for (i, pem) in config.root_pems.iter().enumerate() {
            let certs = native_tls::Certificate::stack_from_pem(pem).map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    format!("extra CA certificate #{} is not valid PEM", i + 1),
                    e,
                )
            })?;
            if certs.is_empty() {
                return Err(Error::Tls(TlsError::new(
                    TlsErrorKind::Config,
                    format!(
                        "extra CA certificate #{} holds no PEM certificate \
                         (\"-----BEGIN CERTIFICATE-----\")",
                        i + 1
                    ),
                    None,
                )));
            }
            for cert in certs {
                builder.add_root_certificate(cert);
            }
        }
        if let Some(identity) = &config.identity {
            builder.identity(native_identity(identity)?);
        }
        if config.danger_accept_invalid_certs {
            builder.danger_accept_invalid_certs(true);
            builder.danger_accept_invalid_hostnames(true);
        }
        let connector = builder.build().map_err(|e| {
            tls_error(
                TlsErrorKind::Config,
                "the TLS client settings were rejected".into(),
                e,
            )
        })?;
        Ok(Client {
            connector,
            server_name: config.server_name.clone(),
            dangerous: config.danger_accept_invalid_certs,
            min_version: config.min_version,
        })
    }

    pub(super) fn connect_session(
        &self,
        host: &str,
        sock: Sock,
    ) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        let name = self.server_name.as_deref().unwrap_or(host);
        if self.dangerous {
            warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs): \
                 the server at {name} is not authenticated"
            );
        }
        let peer = sock.tcp.peer_addr().ok();
        debug!("TLS handshake with {name} ({peer:?})");
        let conn = native_session(
            sock,
            |sock| self.connector.connect(name, sock),
            |e| describe_client_failure(name, e),
        );
        match &conn {
            Ok(_) => debug!(
                "TLS session with {name} established (native-tls reports neither the protocol \
                 nor the cipher; the oldest protocol accepted is {})",
                self.min_version
            ),
            Err(e) => debug!("TLS handshake with {name} failed: {e}"),
        }
        conn
    }
}

/// Turns a client handshake failure into a message that says what to fix.
fn describe_client_failure(name: &str, e: native_tls::Error) -> Error {
    let text = e.to_string();
    let has = |s: &str| text.contains(s);
    let (kind, message) = if has("hostname mismatch") || has("IP address mismatch") {
        let m = format!("the server certificate is not valid for the name {name:?}");
        (TlsErrorKind::Certificate, m)
    } else if has("unable to get local issuer certificate")
        || has("self-signed certificate")
        || has("self signed certificate")
        || has("unable to get issuer certificate")
    {
        let m = format!("the server certificate for {name:?} is not signed by a trusted CA");
        (TlsErrorKind::Certificate, m)
    } else if has("certificate has expired") || has("certificate is not yet valid") {
        let m = format!("the server certificate for {name:?} has expired or is not yet valid");
        (TlsErrorKind::Certificate, m)
    } else if has("certificate verify failed") {
        let m = format!("the server certificate for {name:?} could not be verified");
        (TlsErrorKind::Certificate, m)
    } else if has("wrong version number") || has("packet length too long") {
        let m = format!("the server at {name:?} does not seem to speak TLS");
        (TlsErrorKind::Handshake, m)
    } else {
        let m = format!("the TLS handshake with {name:?} failed");
        (handshake_kind(&e), m)
    };
    tls_error(kind, message, e)
}

/// A prepared TLS server context.
#[derive(Clone)]
pub(super) struct Server {
    acceptor: TlsAcceptor,
    min_version: TlsVersion,
}

impl Server {
    pub(super) fn new(config: &TlsServerConfig) -> Result<Server> {
        let identity = native_identity(&config.identity)?;
        let acceptor = TlsAcceptor::builder(identity)
            .min_protocol_version(Some(protocol(config.min_version)))
            .build()
            .map_err(|e| {
                tls_error(
                    TlsErrorKind::Config,
                    "the TLS server identity was rejected".into(),
                    e,
                )
            })?;
        Ok(Server {
            acceptor,
            min_version: config.min_version,
        })
    }

    pub(super) fn accept_session(&self, sock: Sock) -> Result<(Box<dyn TlsSession>, TlsPeer)> {
        let peer = sock
            .tcp
            .peer_addr()
            .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
        let conn = native_session(
            sock,
            |sock| self.acceptor.accept(sock),
            |e| {
                let text = e.to_string();
                let message = if text.contains("wrong version number")
                    || text.contains("http request")
                    || text.contains("packet length too long")
                {
                    format!("the client at {peer} does not speak TLS")
                } else if text.contains("no shared cipher") {
                    // Also what a private key that does not match the certificate leads to.
                    format!(
                        "the TLS handshake with the client at {peer} failed: no shared cipher \
                         (does the server key match its certificate?)"
                    )
                } else {
                    format!("the TLS handshake with the client at {peer} failed")
                };
                tls_error(handshake_kind(&e), message, e)
            },
        );
        match &conn {
            Ok(_) => debug!(
                "TLS session with {peer} established (native-tls reports neither the protocol \
                 nor the cipher; the oldest protocol accepted is {})",
                self.min_version
            ),
            Err(e) => debug!("TLS handshake with {peer} failed: {e}"),
        }
        conn
    }
}
