//! The TLS of `mllp listen` and `mllp relay`: the acceptor built from the files named on the
//! command line (through `mllp-openssl`, which can verify client certificates and reports the
//! protocol and cipher of each handshake), and its reload on SIGHUP.
//!
//! A reload reads the certificate, the key (and its password file, for an encrypted key) and
//! the client CA file again and replaces the acceptor for new connections; connections already
//! open keep their session. A reload that fails (a file missing, a key that does not match, a
//! wrong password) keeps the acceptor in use and says why (at error level in the log, and on
//! standard output, where a successful reload is reported).

use std::path::PathBuf;
use std::sync::Arc;

use mllp::{TlsAcceptor, TlsHandle, TlsVersion};

use super::args::{Group, Opt, Spec, UsageError};
use super::listen::ListenOptions;
use super::options::Failure;
use super::signal;
use super::tls_key::{PemFiles, TLS_KEY};

/// The TLS options of the listening side (`mllp listen`, `mllp relay`).
#[derive(Debug, Default)]
pub struct TlsOptions {
    /// `--tls-cert PEM`.
    pub cert: Option<PathBuf>,
    /// `--tls-key PEM`.
    pub key: Option<PathBuf>,
    /// `--tls-key-password-file PATH`: the password of an encrypted key.
    pub key_password_file: Option<PathBuf>,
    /// `--tls-client-ca PEM`: require client certificates from these CAs.
    pub client_ca: Option<PathBuf>,
    /// `--tls-min-version`.
    pub min_version: Option<TlsVersion>,
}

/// TLS on the listening side.
pub const SERVING_TLS: Group<ListenOptions> = Group {
    title: "TLS",
    opts: &[
        Opt {
            spec: Spec {
                long: "tls-cert",
                short: None,
                value: Some("PEM"),
                help: "accept TLS with this certificate (with --tls-key)",
            },
            set: |l, v| {
                l.tls.cert = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-key",
                short: None,
                value: Some("PEM"),
                help: "the certificate's private key: PKCS#8, or encrypted (PKCS#8 or\n\
                       traditional PEM)",
            },
            set: |l, v| {
                l.tls.key = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-key-password-file",
                short: None,
                value: Some("PATH"),
                help: "the password of an encrypted --tls-key: the first line of PATH\n\
                       (a file only this service can read; read again on SIGHUP); without it,\n\
                       MLLP_TLS_KEY_PASSWORD",
            },
            set: |l, v| {
                l.tls.key_password_file = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-client-ca",
                short: None,
                value: Some("PEM"),
                help: "require a client certificate signed by a CA of this file (mutual TLS;\n\
                       with --tls-cert); the verified subject is stored with each message",
            },
            set: |l, v| {
                l.tls.client_ca = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-min-version",
                short: None,
                value: Some("1.2|1.3"),
                help: "the oldest TLS version accepted (default 1.2; with --tls-cert)",
            },
            set: |l, v| {
                l.tls.min_version = Some(
                    mllp::TlsVersion::parse(&v.text())
                        .map_err(|e| UsageError(format!("--tls-min-version: {e}")))?,
                );
                Ok(())
            },
        },
    ],
};

impl TlsOptions {
    /// Checks the options that go together, once all are read.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(UsageError(
                "--tls-cert and --tls-key must be given together".into(),
            ));
        }
        if self.cert.is_none() {
            for (given, name) in [
                (self.client_ca.is_some(), "--tls-client-ca"),
                (self.min_version.is_some(), "--tls-min-version"),
                (self.key_password_file.is_some(), "--tls-key-password-file"),
            ] {
                if given {
                    return Err(UsageError(format!("{name} needs --tls-cert and --tls-key")));
                }
            }
        }
        #[cfg(not(feature = "tls"))]
        if self.cert.is_some() {
            return Err(super::options::no_tls("tls-cert"));
        }
        Ok(())
    }

    /// The TLS files and settings, `None` without TLS.
    pub fn files(&self) -> Option<TlsFiles> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return None;
        };
        Some(TlsFiles {
            pem: PemFiles {
                cert: cert.clone(),
                key: key.clone(),
                password_file: self.key_password_file.clone(),
                names: TLS_KEY,
            },
            client_ca: self.client_ca.clone(),
            min_version: self.min_version.unwrap_or_default(),
        })
    }
}

/// The TLS files and settings of the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `--tls-cert`, `--tls-key` and `--tls-key-password-file`.
    pub pem: PemFiles,
    /// `--tls-client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--tls-min-version`.
    pub min_version: TlsVersion,
}

impl TlsFiles {
    /// Reads the files and builds the acceptor.
    #[cfg(feature = "tls")]
    pub fn acceptor(&self) -> Result<Arc<dyn TlsAcceptor>, Failure> {
        let identity = self.pem.identity()?;
        let mut config = mllp_openssl::AcceptorConfig::new(identity).min_version(self.min_version);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_pem_file(ca)?;
        }
        Ok(Arc::new(mllp_openssl::Acceptor::new(&config)?))
    }

    /// Without TLS in the build there is no acceptor (the options are refused before).
    #[cfg(not(feature = "tls"))]
    pub fn acceptor(&self) -> Result<Arc<dyn TlsAcceptor>, Failure> {
        let _ = (&self.pem, &self.client_ca, self.min_version);
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
                files.pem.cert.display()
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
