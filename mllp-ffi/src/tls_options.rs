//! TLS settings from C: file names and passwords as C strings, turned into the core's TLS
//! types when the setter is called (the files are read then, so a missing file or a wrong
//! password is reported by the setter, with the file's name in the last-error text).

use std::ffi::c_char;

use super::args;
use super::result::mllp_result;
use mllp_core::{Identity, TlsClientConfig, TlsVersion};

/// A certificate chain and its key from PEM files (neither NULL).
///
/// # Safety
/// Each pointer must be NULL or a NUL-terminated string.
pub(crate) unsafe fn pem_identity(
    cert_file: *const c_char,
    key_file: *const c_char,
) -> Result<Identity, mllp_result> {
    // SAFETY: forwarded contract.
    let (cert, key) = unsafe {
        (
            args::req_string(cert_file, "the certificate file")?,
            args::req_string(key_file, "the key file")?,
        )
    };
    args::check(Identity::from_pem_files(cert, key))
}

/// An identity from a PKCS#12 archive (not NULL) and its password (NULL: empty).
///
/// # Safety
/// Each pointer must be NULL or a NUL-terminated string.
pub(crate) unsafe fn pkcs12_identity(
    file: *const c_char,
    password: *const c_char,
) -> Result<Identity, mllp_result> {
    // SAFETY: forwarded contract.
    let (file, password) = unsafe {
        (
            args::req_string(file, "the PKCS#12 file")?,
            args::opt_string(password, "the PKCS#12 password")?,
        )
    };
    args::check(Identity::from_pkcs12_file(file, password.unwrap_or("")))
}

/// `config` trusting the CA certificates of a PEM file (not NULL) as well.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn add_ca_file(
    config: &TlsClientConfig,
    path: *const c_char,
) -> Result<TlsClientConfig, mllp_result> {
    // SAFETY: forwarded contract.
    let path = unsafe { args::req_string(path, "the CA file") }?;
    args::check(config.clone().add_root_pem_file(path))
}

/// A server name (not NULL, not empty).
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn server_name(name: *const c_char) -> Result<String, mllp_result> {
    // SAFETY: forwarded contract.
    let name = unsafe { args::req_string(name, "the server name") }?;
    if name.is_empty() {
        return Err(args::config("the server name is empty"));
    }
    Ok(name.to_owned())
}

/// A TLS minimum version from C: 12 (TLS 1.2) or 13 (TLS 1.3).
pub(crate) fn min_version(version: u32) -> Result<TlsVersion, mllp_result> {
    match version {
        12 => Ok(TlsVersion::Tls12),
        13 => Ok(TlsVersion::Tls13),
        other => Err(args::config(format_args!(
            "the TLS minimum version must be 12 (TLS 1.2) or 13 (TLS 1.3), not {other}"
        ))),
    }
}

/// The bytes of a PEM file of CA certificates (not NULL), read now.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn read_ca_file(path: *const c_char) -> Result<Vec<u8>, mllp_result> {
    // SAFETY: forwarded contract.
    let path = unsafe { args::req_string(path, "the client CA file") }?;
    std::fs::read(path).map_err(|e| {
        super::last_error::error(&mllp_core::Error::Io {
            phase: mllp_core::Phase::File,
            source: std::io::Error::new(e.kind(), format!("{path}: {e}")),
        })
    })
}

/// A listener's acceptor through OpenSSL: `identity`, the oldest version, and client
/// certificates required from `client_ca` when given.
#[cfg(feature = "tls")]
pub(crate) fn openssl_acceptor(
    identity: Identity,
    min: TlsVersion,
    client_ca: Option<Vec<u8>>,
) -> Result<std::sync::Arc<dyn mllp_core::TlsAcceptor>, mllp_result> {
    let mut config = mllp_openssl::AcceptorConfig::new(identity).min_version(min);
    if let Some(ca) = client_ca {
        config = config.client_ca_pem(ca);
    }
    let acceptor = args::check(mllp_openssl::Acceptor::new(&config))?;
    Ok(std::sync::Arc::new(acceptor))
}

/// Without TLS in the build: the error every TLS setting gives.
#[cfg(not(feature = "tls"))]
pub(crate) fn openssl_acceptor(
    _: Identity,
    _: TlsVersion,
    _: Option<Vec<u8>>,
) -> Result<std::sync::Arc<dyn mllp_core::TlsAcceptor>, mllp_result> {
    Err(super::last_error::error(&mllp_core::Error::Config(
        "this build has no TLS support (feature `tls`)".into(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_INVALID_ARGUMENT, MLLP_IO, MLLP_NULL_ARGUMENT};
    use std::ffi::CString;

    #[test]
    fn files_are_read_at_once() {
        let missing = CString::new("no-such-file.pem").unwrap();
        let null = std::ptr::null();
        // SAFETY: NULL or valid strings.
        unsafe {
            assert_eq!(
                pem_identity(missing.as_ptr(), null).err(),
                Some(MLLP_NULL_ARGUMENT)
            );
            assert!(crate::last_error::text().contains("key file"));
            let e = pem_identity(missing.as_ptr(), missing.as_ptr()).err();
            assert!(e.is_some());
            assert_eq!(pkcs12_identity(null, null).err(), Some(MLLP_NULL_ARGUMENT));
            let config = TlsClientConfig::new();
            if cfg!(feature = "tls") {
                assert_eq!(add_ca_file(&config, missing.as_ptr()).err(), Some(MLLP_IO));
                assert!(crate::last_error::text().contains("no-such-file.pem"));
            }
            let bad = b"\xff\0";
            assert_eq!(
                server_name(bad.as_ptr().cast()).err(),
                Some(MLLP_INVALID_ARGUMENT)
            );
        }
    }
}
