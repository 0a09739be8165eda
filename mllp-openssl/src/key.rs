//! Password-protected private keys: decrypted once, in memory, into the unencrypted PKCS#8 PEM
//! that [`mllp::Identity::Pem`] takes, so the built-in TLS (`native-tls`), the [`Acceptor`]
//! and the [`Connector`] all use them alike.
//!
//! [`Acceptor`]: crate::Acceptor
//! [`Connector`]: crate::Connector

use std::cell::Cell;

use openssl::error::ErrorStack;
use openssl::pkey::PKey;

use crate::shared::config_error;

/// The most bytes of password OpenSSL takes when it reads a key (its `PEM_BUFSIZE`).
pub const MAX_KEY_PASSWORD_LEN: usize = 1024;

/// Whether `pem` holds an encrypted private key: encrypted PKCS#8
/// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`) or a traditional PEM key whose header says
/// `Proc-Type: 4,ENCRYPTED` (as `openssl genrsa -aes256` and older tools write them).
pub fn is_encrypted_key_pem(pem: &[u8]) -> bool {
    contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(pem, b"4,ENCRYPTED")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decrypts the private key in `pem` (encrypted PKCS#8, or a traditional encrypted PEM key of
/// any type OpenSSL reads) with `password`, and returns it as unencrypted PKCS#8 PEM
/// (`-----BEGIN PRIVATE KEY-----`), for [`mllp::Identity::Pem`]. An unencrypted key is
/// converted the same way and the password is not used.
///
/// ```no_run
/// let pem = std::fs::read("server.key")?;
/// let password = std::fs::read_to_string("/run/credentials/mllp.service/key-password")?;
/// let key = mllp_openssl::decrypt_key_pem(&pem, password.trim_end().as_bytes())?;
/// let identity = mllp::Identity::Pem { cert: std::fs::read("server.pem")?, key };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Tls`](mllp::Error::Tls) of kind
/// [`TlsErrorKind::Config`](mllp::TlsErrorKind::Config) when the password is wrong, longer
/// than [`MAX_KEY_PASSWORD_LEN`] bytes, or `pem` holds no private key OpenSSL can read. The
/// message never holds the password.
pub fn decrypt_key_pem(pem: &[u8], password: &[u8]) -> mllp::Result<Vec<u8>> {
    let too_long = Cell::new(false);
    let key = PKey::private_key_from_pem_callback(pem, |buf| {
        if password.len() > buf.len() {
            too_long.set(true);
            return Err(ErrorStack::get());
        }
        buf[..password.len()].copy_from_slice(password);
        Ok(password.len())
    });
    let key = match key {
        Ok(key) => key,
        Err(_) if too_long.get() => {
            return Err(config_error(
                format!("the private key's password is longer than {MAX_KEY_PASSWORD_LEN} bytes"),
                None,
            ))
        }
        // OpenSSL's error stack only repeats "bad decrypt ... maybe wrong password".
        Err(_) if is_encrypted_key_pem(pem) => {
            return Err(config_error(
                "the private key cannot be decrypted: wrong password",
                None,
            ))
        }
        Err(e) => {
            return Err(config_error(
                "the private key cannot be read (not a PEM private key)",
                Some(e),
            ))
        }
    };
    key.private_key_to_pem_pkcs8().map_err(|e| {
        config_error(
            "the decrypted private key cannot be written as PKCS#8",
            Some(e),
        )
    })
}
