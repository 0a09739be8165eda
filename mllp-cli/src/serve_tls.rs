//! The TLS of `mllp listen` and `mllp relay`: the acceptor built from the files named on the
//! command line (through `mllp-openssl`, which can verify client certificates and reports the
//! protocol and cipher of each handshake), and its reload on SIGHUP.
//!
//! A reload reads the certificate, the key and the client CA file again and replaces the
//! acceptor for new connections; connections already open keep their session. A reload that
//! fails (a file missing, a key that does not match) keeps the acceptor in use and says why
//! (at error level in the log, and on standard output, where a successful reload is reported).

use std::path::PathBuf;
use std::sync::Arc;

use mllp::{TlsAcceptor, TlsHandle, TlsVersion};

use super::options::Failure;
use super::signal;

/// The TLS files and settings of the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `--tls-cert`.
    pub cert: PathBuf,
    /// `--tls-key`.
    pub key: PathBuf,
    /// `--tls-client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--tls-min-version`.
    pub min_version: TlsVersion,
}

impl TlsFiles {
    /// Reads the files and builds the acceptor.
    #[cfg(feature = "tls")]
    pub fn acceptor(&self) -> Result<Arc<dyn TlsAcceptor>, Failure> {
        let identity = mllp::Identity::from_pem_files(&self.cert, &self.key)?;
        let mut config = mllp_openssl::AcceptorConfig::new(identity).min_version(self.min_version);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_pem_file(ca)?;
        }
        Ok(Arc::new(mllp_openssl::Acceptor::new(&config)?))
    }

    /// Without TLS in the build there is no acceptor (the options are refused before).
    #[cfg(not(feature = "tls"))]
    pub fn acceptor(&self) -> Result<Arc<dyn TlsAcceptor>, Failure> {
        Err(Failure::fatal(
            "this build has no TLS support (feature `tls`)",
        ))
    }
}

/// Reads `files` again on every SIGHUP and gives new connections the new acceptor.
pub fn reload_on_hangup(files: TlsFiles, handle: TlsHandle) {
    signal::on_hangup(move || match files.acceptor() {
        Ok(acceptor) => {
            handle.replace(acceptor);
            super::listen::print_line(&format!(
                "SIGHUP: TLS reloaded from {}; new connections get it",
                files.cert.display()
            ));
        }
        Err(e) => {
            let line = format!(
                "SIGHUP: TLS reload failed, the certificate in use stays: {}",
                e.reason
            );
            log::error!("{line}");
            super::listen::print_line(&line);
        }
    });
}
