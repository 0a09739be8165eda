//! The client side: [`Connector`], which verifies the server as the core's built-in client does
//! and reports the protocol and cipher of every handshake.

use std::fmt;

use log::{debug, warn};
use mllp::{Error, TlsClientConfig, TlsError, TlsErrorKind, TlsPeer, TlsSession, TlsSocket};
use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509VerifyResult, X509};

use crate::shared::{config_error, name_text, read_identity, ssl_version, Session};

// The verification results a message is chosen for (OpenSSL's `X509_V_ERR_*`, stable values).
const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const CERT_NOT_YET_VALID: i32 = 9;
const CERT_HAS_EXPIRED: i32 = 10;
const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const HOSTNAME_MISMATCH: i32 = 62;
const IP_ADDRESS_MISMATCH: i32 = 64;

/// A TLS client through OpenSSL, for a sender
/// ([`SenderBuilder::tls_connector`](mllp::SenderBuilder::tls_connector)); see the
/// [crate documentation](crate). Cheap to share (`Arc`) between senders.
///
/// It verifies the server certificate against the system's trusted roots and the extra roots
/// of its [`TlsClientConfig`], and checks that it is valid for the host connected to, or for
/// [`TlsClientConfig::server_name`]: a DNS name against the certificate's DNS names, an IP
/// address (`10.0.0.5`, `::1`) against its IP addresses. It presents the configuration's
/// identity to a server that asks for a client certificate, and accepts no protocol older than
/// its minimum. Each handshake is logged at debug with the protocol and cipher agreed and the
/// server certificate's subject, and these are in the [`TlsPeer`] of the connection.
pub struct Connector {
    inner: SslConnector,
    server_name: Option<String>,
    dangerous: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .field("danger_accept_invalid_certs", &self.dangerous)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Checks the settings and prepares the TLS context.
    ///
    /// # Errors
    /// [`Error::Tls`] of kind [`TlsErrorKind::Config`] when an extra CA certificate is not PEM
    /// or holds no certificate, the identity cannot be read, its key does not match its
    /// certificate, or the server name is empty or holds a NUL character.
    pub fn new(config: &TlsClientConfig) -> mllp::Result<Connector> {
        let setting = |e| config_error("the TLS client settings were rejected", Some(e));
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(setting)?;
        builder
            .set_min_proto_version(Some(ssl_version(config.min_version)))
            .map_err(setting)?;
        for (i, pem) in config.root_pems.iter().enumerate() {
            let n = i + 1;
            let certs = X509::stack_from_pem(pem).map_err(|e| {
                config_error(
                    format!("extra CA certificate #{n} is not valid PEM"),
                    Some(e),
                )
            })?;
            if certs.is_empty() {
                return Err(config_error(
                    format!(
                        "extra CA certificate #{n} holds no PEM certificate \
                         (\"-----BEGIN CERTIFICATE-----\")"
                    ),
                    None,
                ));
            }
            for cert in certs {
                builder.cert_store_mut().add_cert(cert).map_err(setting)?;
            }
        }
        if let Some(identity) = &config.identity {
            let (leaf, chain, key) = read_identity(identity)?;
            builder.set_certificate(&leaf).map_err(setting)?;
            for cert in chain {
                builder.add_extra_chain_cert(cert).map_err(setting)?;
            }
            let mismatch = |e| {
                config_error(
                    "the client private key does not match its certificate",
                    Some(e),
                )
            };
            builder.set_private_key(&key).map_err(mismatch)?;
            builder.check_private_key().map_err(mismatch)?;
        }
        if config.danger_accept_invalid_certs {
            builder.set_verify(SslVerifyMode::NONE);
        }
        if let Some(name) = &config.server_name {
            check_name(name)?;
        }
        Ok(Connector {
            inner: builder.build(),
            server_name: config.server_name.clone(),
            dangerous: config.danger_accept_invalid_certs,
        })
    }
}

/// Refuses a name no certificate can be checked against: OpenSSL takes an empty name as "no
/// name check", and its binding panics on a NUL character.
fn check_name(name: &str) -> mllp::Result<()> {
    if name.is_empty() {
        return Err(config_error(
            "the server name is empty: there is no name to check the server certificate against",
            None,
        ));
    }
    if name.contains('\0') {
        return Err(config_error(
            format!("the server name {name:?} holds a NUL character"),
            None,
        ));
    }
    Ok(())
}

impl mllp::TlsConnector for Connector {
    fn connect(
        &self,
        host: &str,
        socket: TlsSocket,
    ) -> mllp::Result<(Box<dyn TlsSession>, TlsPeer)> {
        let name = self.server_name.as_deref().unwrap_or(host);
        check_name(name)?;
        let peer = socket
            .tcp()
            .peer_addr()
            .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
        if self.dangerous {
            warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs): \
                 the server at {name} ({peer}) is not authenticated"
            );
        }
        debug!("TLS handshake with {name} ({peer})");
        let mut configuration = self
            .inner
            .configure()
            .map_err(|e| config_error("the TLS client settings were rejected", Some(e)))?;
        configuration.set_verify_hostname(!self.dangerous);
        let stream = match configuration.connect(name, socket) {
            Ok(stream) => stream,
            Err(e) => {
                let error = describe(name, e);
                debug!("TLS handshake with {name} ({peer}) failed: {error}");
                return Err(error);
            }
        };
        let ssl = stream.ssl();
        let protocol = ssl.version_str();
        let cipher = ssl.current_cipher().map_or("unknown", |c| c.name());
        let mut tls_peer = TlsPeer::new().with_protocol(protocol).with_cipher(cipher);
        let mut certificate = String::from("none");
        if let Some(cert) = ssl.peer_certificate() {
            if let Ok(der) = cert.to_der() {
                tls_peer = tls_peer.with_certificate(der);
            }
            let subject = name_text(cert.subject_name());
            if self.dangerous {
                certificate = format!("{subject} (not verified)");
            } else {
                // Verification is on: a handshake that completed has verified it.
                if ssl.verify_result() == X509VerifyResult::OK {
                    tls_peer = tls_peer.with_subject(subject.clone());
                }
                certificate = subject;
            }
        }
        debug!(
            "TLS session with {name} ({peer}) established: {protocol}, cipher {cipher}, \
             server certificate {certificate}"
        );
        Ok((Box::new(Session(stream)), tls_peer))
    }
}

/// Turns a failed handshake into an error that says what to fix.
fn describe(name: &str, e: HandshakeError<TlsSocket>) -> Error {
    let (kind, message, source): (_, _, Box<dyn std::error::Error + Send + Sync>) = match e {
        HandshakeError::SetupFailure(stack) => (
            TlsErrorKind::Config,
            format!("the TLS handshake with {name:?} could not start"),
            Box::new(stack),
        ),
        HandshakeError::Failure(mid) | HandshakeError::WouldBlock(mid) => {
            let verify = mid.ssl().verify_result();
            let error = mid.into_error();
            let text = error.to_string();
            let (kind, message) = if verify != X509VerifyResult::OK {
                let why = verify.error_string();
                let message = match verify.as_raw() {
                    HOSTNAME_MISMATCH | IP_ADDRESS_MISMATCH => {
                        format!("the server certificate is not valid for the name {name:?} ({why})")
                    }
                    UNABLE_TO_GET_ISSUER_CERT
                    | UNABLE_TO_GET_ISSUER_CERT_LOCALLY
                    | UNABLE_TO_VERIFY_LEAF_SIGNATURE
                    | DEPTH_ZERO_SELF_SIGNED_CERT
                    | SELF_SIGNED_CERT_IN_CHAIN => format!(
                        "the server certificate for {name:?} is not signed by a trusted CA ({why})"
                    ),
                    CERT_HAS_EXPIRED | CERT_NOT_YET_VALID => format!(
                        "the server certificate for {name:?} has expired or is not yet valid \
                         ({why})"
                    ),
                    _ => {
                        format!("the server certificate for {name:?} could not be verified ({why})")
                    }
                };
                (TlsErrorKind::Certificate, message)
            } else if text.contains("wrong version number")
                || text.contains("packet length too long")
            {
                let message = format!("the server at {name:?} does not seem to speak TLS");
                (TlsErrorKind::Handshake, message)
            } else if error.io_error().is_some() {
                let message = format!("the TLS handshake with {name:?} failed");
                (TlsErrorKind::Io, message)
            } else {
                let message = format!("the TLS handshake with {name:?} failed");
                (TlsErrorKind::Handshake, message)
            };
            (kind, message, Box::new(error))
        }
    };
    Error::Tls(TlsError::new(kind, message, Some(source)))
}
