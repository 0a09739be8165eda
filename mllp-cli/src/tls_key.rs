//! The certificate and private key of `--tls-cert`/`--tls-key` (and `--to-tls-cert`/
//! `--to-tls-key`), on the listening and the sending side alike. The key may be encrypted
//! (encrypted PKCS#8, or a traditional encrypted PEM key): its password comes from
//! `--tls-key-password-file PATH` or the environment (`MLLP_TLS_KEY_PASSWORD`), never from the
//! command line, through the same [`Secret`] as the other secrets, and the key is decrypted in
//! memory with OpenSSL (`mllp-openssl`) into the unencrypted PKCS#8 an [`mllp::Identity`]
//! holds. Everything is read again on each call, so a reload (SIGHUP) reads the password file
//! again too.

use std::path::PathBuf;

use super::options::Failure;
use super::secret::Secret;

/// The names of one private key's options and variable, for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyNames {
    /// The key's option, without the dashes.
    pub key: &'static str,
    /// The password's name: its option is `--NAME-file`.
    pub password: &'static str,
    /// The environment variable of the password.
    pub env: &'static str,
}

/// `--tls-key`: the listener's key, or the client key of `mllp send`, `forward` and `check`.
pub const TLS_KEY: KeyNames = KeyNames {
    key: "tls-key",
    password: "tls-key-password",
    env: "MLLP_TLS_KEY_PASSWORD",
};

/// `--to-tls-key`: the client key of `mllp relay` toward its downstream.
pub const TO_TLS_KEY: KeyNames = KeyNames {
    key: "to-tls-key",
    password: "to-tls-key-password",
    env: "MLLP_TO_TLS_KEY_PASSWORD",
};

impl Default for KeyNames {
    fn default() -> Self {
        TLS_KEY
    }
}

/// A PEM certificate chain, its private key, and where the key's password comes from.
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// `--tls-key-password-file`; without it, the environment variable of `names`.
    pub password_file: Option<PathBuf>,
    /// The option names, for the messages.
    pub names: KeyNames,
}

impl PemFiles {
    /// Reads the files and, when the key is encrypted, its password, and decrypts it.
    ///
    /// # Errors
    /// A file that cannot be read; an encrypted key without a password, or whose password is
    /// wrong: each message names the key file and where the password came from, never the
    /// password.
    pub fn identity(&self) -> Result<mllp::Identity, Failure> {
        let (cert, key) = match mllp::Identity::from_pem_files(&self.cert, &self.key)? {
            mllp::Identity::Pem { cert, key } => (cert, key),
            other => return Ok(other),
        };
        let key = self.decrypted(key)?;
        Ok(mllp::Identity::Pem { cert, key })
    }

    /// Where the password comes from, as the messages say it.
    fn password_source(&self) -> String {
        match &self.password_file {
            Some(path) => format!("--{}-file {}", self.names.password, path.display()),
            None => self.names.env.to_owned(),
        }
    }

    #[cfg(feature = "tls")]
    fn decrypted(&self, key: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let names = self.names;
        let path = self.key.display();
        if !mllp_openssl::is_encrypted_key_pem(&key) {
            if self.password_file.is_some() {
                log::warn!(
                    "the private key {path} (--{}) is not encrypted: {} is not used",
                    names.key,
                    self.password_source()
                );
            }
            return Ok(key);
        }
        let secret = Secret {
            given: None,
            file: self.password_file.clone(),
        };
        let Some(password) = secret.lookup(names.password, names.env)? else {
            return Err(Failure::fatal(format!(
                "the private key {path} (--{}) is encrypted: give its password with \
                 --{}-file PATH or the environment variable {}",
                names.key, names.password, names.env
            )));
        };
        mllp_openssl::decrypt_key_pem(&key, password.as_bytes()).map_err(|e| {
            Failure::fatal(format!(
                "cannot use the private key {path} (--{}) with the password of {}: {e}",
                names.key,
                self.password_source()
            ))
        })
    }

    /// Without TLS in the build the key is not used (the options are refused before).
    #[cfg(not(feature = "tls"))]
    fn decrypted(&self, key: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let _ = (self.password_source(), Secret::default());
        Ok(key)
    }
}
