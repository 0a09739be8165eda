//! The TLS settings of listeners from C: the server identity, client certificates (mutual
//! TLS, through `mllp-openssl`), the oldest protocol version, and renewing the certificate of a
//! listener that serves.

use std::ffi::c_char;

use super::args;
use super::last_error;
use super::listener::{mllp_listener, mllp_listener_builder};
use super::panic::guard;
use super::result::{mllp_result, MLLP_INVALID_STATE, MLLP_OK};
use super::tls_options;
use mllp_core::TlsServerConfig;

/// Serves TLS with the PEM certificate chain `cert_file` and its unencrypted PKCS#8 PEM key
/// `key_file` (neither NULL), read now. Replaces an identity set before. Errors: `MLLP_IO` (a
/// file cannot be read), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a certificate or key
/// that cannot be used is `MLLP_TLS` from `mllp_listener_builder_build`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_tls_identity_pem(
    builder: *mut mllp_listener_builder,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and strings or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_tls_identity_pem", builder, |b| {
            let identity = tls_options::pem_identity(cert_file, key_file);
            b.config.tls = Some(TlsServerConfig::new(identity?));
            Ok(())
        })
    }
}

/// As `mllp_listener_builder_set_tls_identity_pem`, from a PKCS#12 archive (`.p12` / `.pfx`,
/// not NULL) holding the server certificate, its chain and its key, with `password` (NULL:
/// empty). A wrong password is `MLLP_TLS` from `mllp_listener_builder_build`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_tls_identity_pkcs12(
    builder: *mut mllp_listener_builder,
    file: *const c_char,
    password: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and strings or NULL.
    unsafe {
        args::set(
            "mllp_listener_builder_set_tls_identity_pkcs12",
            builder,
            |b| {
                let identity = tls_options::pkcs12_identity(file, password);
                b.config.tls = Some(TlsServerConfig::new(identity?));
                Ok(())
            },
        )
    }
}

/// Requires every TLS client to present a certificate that chains to a CA certificate of the
/// PEM file `ca_file` (not NULL, read now), and refuses the handshake of a client without one,
/// or with one from another CA, expired or not yet valid (mutual TLS). The verified subject
/// and the certificate reach the callback (`tls_subject`, `tls_certificate` of
/// `mllp_message_info`). Needs a TLS identity
/// (`mllp_listener_builder_set_tls_identity_pem` or `..._pkcs12`) by
/// `mllp_listener_builder_build`. Errors: `MLLP_IO` (the file cannot be read),
/// `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a file without a PEM certificate is
/// `MLLP_TLS` from `mllp_listener_builder_build`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_tls_client_ca(
    builder: *mut mllp_listener_builder,
    ca_file: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_tls_client_ca", builder, |b| {
            b.client_ca = Some(tls_options::read_ca_file(ca_file)?);
            Ok(())
        })
    }
}

/// The oldest TLS version the listener accepts: 12 (TLS 1.2, the default) or 13 (TLS 1.3).
/// Errors: `MLLP_CONFIG` for another value, `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_tls_min_version(
    builder: *mut mllp_listener_builder,
    version: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_tls_min_version", builder, |b| {
            b.tls_min_version = tls_options::min_version(version)?;
            Ok(())
        })
    }
}

/// Renews the certificate of a TLS listener while it serves: reads the PEM certificate chain
/// `cert_file`, its PKCS#8 key `key_file` (neither NULL) and, unless `client_ca_file` is NULL,
/// the CA file client certificates must chain to (NULL: no client certificate is required from
/// now on), and gives new connections the new settings; connections already open keep theirs.
/// A reload that fails (a file missing, a key that does not match) changes nothing and says why
/// in `mllp_last_error`. The oldest TLS version stays as set on the builder. Errors:
/// `MLLP_INVALID_STATE` (a plain TCP listener), `MLLP_IO`, `MLLP_TLS`, `MLLP_INVALID_ARGUMENT`,
/// `MLLP_NULL_ARGUMENT`. Thread-safe, also from a callback.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_reload_tls_pem(
    listener: *const mllp_listener,
    cert_file: *const c_char,
    key_file: *const c_char,
    client_ca_file: *const c_char,
) -> mllp_result {
    guard("mllp_listener_reload_tls_pem", || {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener) }?;
        let Some(tls) = &l.tls else {
            return Err(last_error::set(
                MLLP_INVALID_STATE,
                "cannot reload TLS: the listener serves plain TCP",
            ));
        };
        // SAFETY: the caller passes strings or NULL.
        let identity = unsafe { tls_options::pem_identity(cert_file, key_file) }?;
        let client_ca = if client_ca_file.is_null() {
            None
        } else {
            // SAFETY: a non-NULL string from the caller.
            Some(unsafe { tls_options::read_ca_file(client_ca_file) }?)
        };
        let acceptor = tls_options::openssl_acceptor(identity, l.tls_min_version, client_ca)?;
        tls.replace(acceptor);
        Ok(MLLP_OK)
    })
}
