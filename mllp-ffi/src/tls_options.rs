//! TLS settings from C: file names and passwords as C strings, turned into the core's TLS
//! types when the setter is called (the files are read then, so a missing file or a wrong
//! password is reported by the setter, with the file's name in the last-error text).

use std::ffi::c_char;

use super::args;
use super::result::mllp_result;
use mllp_core::{Identity, TlsClientConfig};

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
