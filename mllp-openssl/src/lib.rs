//! OpenSSL TLS for `mllp`: an acceptor for listeners that can require and verify client
//! certificates (mutual TLS), a connector for senders, both of which report the protocol and
//! cipher of every handshake, and the decryption of password-protected private keys.
//!
//! The core crate's built-in TLS goes through `native-tls`, which never asks a client for a
//! certificate and reports neither the protocol nor the cipher agreed. This crate implements
//! the core's two seams with the `openssl` crate (the binding `native-tls` itself uses on
//! Linux, so no new library enters the build there):
//!
//! * [`Acceptor`] ([`mllp::TlsAcceptor`]): with a [client CA](AcceptorConfig::client_ca_pem) it
//!   requests a certificate, refuses the handshake when the client presents none or one that
//!   does not chain to that CA (or has expired, or is not yet valid), and hands the verified
//!   subject and the certificate to the handler through [`mllp::Message::tls_peer`]. Without a
//!   client CA it serves TLS like the built-in acceptor.
//! * [`Connector`] ([`mllp::TlsConnector`]), built from the core's [`mllp::TlsClientConfig`]:
//!   verifies the server certificate (chain to the system's or the extra roots, dates, host
//!   name or IP address) as the built-in client does, and presents a client certificate to a
//!   server that asks for one.
//!
//! Both log, at debug, the protocol and cipher agreed for each handshake (and the verified
//! subject of the peer's certificate), and put them in [`mllp::TlsPeer`].
//! [`decrypt_key_pem`] turns an encrypted private key and its password into the unencrypted
//! PKCS#8 PEM an [`mllp::Identity`] takes.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! // A listener that requires client certificates from one CA.
//! let identity = mllp::Identity::from_pem_files("server.pem", "server.key")?;
//! let config = mllp_openssl::AcceptorConfig::new(identity)
//!     .client_ca_pem_file("clients-ca.pem")?;
//! let acceptor = mllp_openssl::Acceptor::new(&config)?;
//! let listener = mllp::Listener::builder("0.0.0.0:2575")
//!     .tls_acceptor(Arc::new(acceptor))
//!     .bind()?;
//! // On renewal: build a new acceptor and `listener.tls_handle()` ... `.replace(...)`.
//!
//! // A sender whose handshakes are logged with their protocol and cipher.
//! let tls = mllp::TlsClientConfig::new().add_root_pem_file("ca.pem")?;
//! let connector = mllp_openssl::Connector::new(&tls)?;
//! let sender = mllp::Sender::builder("lab.example.org:2575")
//!     .tls_connector(Arc::new(connector))
//!     .build()?;
//! # Ok::<(), mllp::Error>(())
//! ```
//!
//! What is checked of a client certificate: that it chains to a certificate of the client CA
//! file, its signatures, and its validity dates. Not checked: revocation (no CRL or OCSP), host
//! names or IP addresses (a client certificate names a client, not an address), extended key
//! usage beyond what OpenSSL's default verification does. A server certificate is checked the
//! same way against the trusted roots, and must also name the host connected to; revocation is
//! not checked there either.

mod acceptor;
mod connector;
mod key;
mod shared;

pub use acceptor::{Acceptor, AcceptorConfig};
pub use connector::Connector;
pub use key::{decrypt_key_pem, is_encrypted_key_pem, MAX_KEY_PASSWORD_LEN};
