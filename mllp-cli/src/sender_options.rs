//! The options of every command that sends over MLLP (`mllp send`, `mllp forward`, `mllp
//! relay`, `mllp check`): timeouts, attempts and TLS, parsed once and turned into a [`Sender`].
//! TLS goes through OpenSSL (`mllp-openssl`'s connector), which logs the protocol and cipher of
//! every handshake at debug.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mllp::charset::Charset;
use mllp::{RetryPolicy, Sender, SenderBuilder};

use super::args::{Group, Opt, Spec, UsageError};
use super::options::{Common, Failure};
use super::tls_key::{KeyNames, PemFiles};

/// The values of the sender options.
#[derive(Debug, Default)]
pub struct SenderOptions {
    pub connect_timeout: Option<Duration>,
    pub ack_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// `--attempts N`: the most attempts per message, the first included (0: no limit).
    pub attempts: Option<u32>,
    pub tls: Tls,
    /// `--keepalive` (a group of its own: [`KEEPALIVE`](super::network::KEEPALIVE)).
    pub keepalive: super::network::KeepaliveChoice,
}

/// `--tls` and the options that go with it.
#[derive(Debug, Default)]
pub struct Tls {
    pub on: bool,
    pub ca: Option<PathBuf>,
    pub domain: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `--tls-key-password-file` (`--to-tls-key-password-file` in `mllp relay`).
    pub key_password_file: Option<PathBuf>,
    /// The names of the key's options and password variable (`--to-tls-key` in `mllp relay`).
    pub key_names: KeyNames,
    /// `--tls-min-version` (`--to-tls-min-version` in `mllp relay`).
    pub min_version: Option<mllp::TlsVersion>,
}

/// Parses a TLS version option's value.
pub fn tls_version(option: &str, text: &str) -> Result<mllp::TlsVersion, UsageError> {
    mllp::TlsVersion::parse(text).map_err(|e| UsageError(format!("--{option}: {e}")))
}

/// Timeouts and TLS toward the listener a command sends to.
pub const SENDING: Group<SenderOptions> = Group {
    title: "Sending",
    opts: &[
        Opt {
            spec: Spec {
                long: "connect-timeout",
                short: None,
                value: Some("SECS"),
                help: "how long connecting may take (default 10)",
            },
            set: |s, v| {
                s.connect_timeout = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "ack-timeout",
                short: None,
                value: Some("SECS"),
                help: "how long to wait for each ACK (default 30)",
            },
            set: |s, v| {
                s.ack_timeout = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "write-timeout",
                short: None,
                value: Some("SECS"),
                help: "how long writing one message may take (default 10)",
            },
            set: |s, v| {
                s.write_timeout = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls",
                short: None,
                value: None,
                help: "connect with TLS (implied by the other --tls options)",
            },
            set: |s, _| {
                s.tls.on = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-ca",
                short: None,
                value: Some("PEM"),
                help: "CA certificates to trust (default: the system's)",
            },
            set: |s, v| {
                s.tls.ca = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-domain",
                short: None,
                value: Some("NAME"),
                help: "the name the listener's certificate must have (default: the host of the\n\
                       address)",
            },
            set: |s, v| {
                s.tls.domain = Some(v.text());
                Ok(())
            },
        },
    ],
};

/// `--attempts`: how often one message is tried (the commands that deliver messages, not
/// `mllp check`, which sends each test message once).
pub const ATTEMPTS: Group<SenderOptions> = Group {
    title: "Retrying",
    opts: &[Opt {
        spec: Spec {
            long: "attempts",
            short: None,
            value: Some("N"),
            help: "the most attempts for each message, the first included, as the library\n\
                       and the C API count them (default 5; mllp relay: no limit; 0: no limit)",
        },
        set: |s, v| {
            s.attempts = Some(v.parsed()?);
            Ok(())
        },
    }],
};

/// The options of a sender's client certificate and oldest TLS version, their names starting
/// with `$prefix` (`""` for `mllp send`, `forward` and `check`, `"to-"` for the relay's
/// downstream): one definition for both sets. `$env` is the password's variable, the `env` of
/// the matching [`KeyNames`] (a test checks that the help names it).
macro_rules! identity_group {
    ($title:literal, $prefix:literal, $env:literal, $where:literal) => {
        $crate::args::Group {
            title: $title,
            opts: &[
                $crate::args::Opt {
                    spec: $crate::args::Spec {
                        long: concat!($prefix, "tls-cert"),
                        short: None,
                        value: Some("PEM"),
                        help: concat!(
                            "the client certificate to show",
                            $where,
                            " (with --",
                            $prefix,
                            "tls-key)"
                        ),
                    },
                    set: |s, v| {
                        s.tls.cert = Some(v.path());
                        Ok(())
                    },
                },
                $crate::args::Opt {
                    spec: $crate::args::Spec {
                        long: concat!($prefix, "tls-key"),
                        short: None,
                        value: Some("PEM"),
                        help: "its private key: PKCS#8, or encrypted (PKCS#8 or traditional PEM)",
                    },
                    set: |s, v| {
                        s.tls.key = Some(v.path());
                        Ok(())
                    },
                },
                $crate::args::Opt {
                    spec: $crate::args::Spec {
                        long: concat!($prefix, "tls-key-password-file"),
                        short: None,
                        value: Some("PATH"),
                        help: concat!(
                            "the password of an encrypted --",
                            $prefix,
                            "tls-key: the first line of PATH\n\
                             (a file only this service can read); without it,\n",
                            $env
                        ),
                    },
                    set: |s, v| {
                        s.tls.key_password_file = Some(v.path());
                        Ok(())
                    },
                },
                $crate::args::Opt {
                    spec: $crate::args::Spec {
                        long: concat!($prefix, "tls-min-version"),
                        short: None,
                        value: Some("1.2|1.3"),
                        help: concat!("the oldest TLS version accepted", $where, " (default 1.2)"),
                    },
                    set: |s, v| {
                        s.tls.min_version =
                            Some($crate::sender_options::tls_version(v.name(), &v.text())?);
                        Ok(())
                    },
                },
            ],
        }
    };
}
pub(crate) use identity_group;

/// The client certificate a sender shows and the oldest TLS version it accepts, as `mllp send`
/// and `mllp forward` name them.
pub const IDENTITY: Group<SenderOptions> = identity_group!(
    "Client certificate, TLS version",
    "",
    "MLLP_TLS_KEY_PASSWORD",
    ""
);

impl SenderOptions {
    /// Checks the options together, once all were taken (and turns TLS on when a TLS option
    /// was given).
    pub fn finish(&mut self) -> Result<(), UsageError> {
        let tls = &mut self.tls;
        let names = tls.key_names;
        let cert = names.key.replace("-key", "-cert");
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(UsageError(format!(
                "--{cert} and --{} must be given together",
                names.key
            )));
        }
        if tls.key_password_file.is_some() && tls.key.is_none() {
            return Err(UsageError(format!(
                "--{}-file needs --{cert} and --{}",
                names.password, names.key
            )));
        }
        tls.on |= tls.ca.is_some()
            || tls.domain.is_some()
            || tls.cert.is_some()
            || tls.min_version.is_some();
        #[cfg(not(feature = "tls"))]
        if tls.on {
            return Err(super::options::no_tls("tls"));
        }
        Ok(())
    }

    /// A sender to `addr` with these options, the framing and MLLP release 2 setting of
    /// `common`, encoding into `charset`.
    pub fn sender(&self, addr: &str, common: &Common, charset: Charset) -> Result<Sender, Failure> {
        Ok(self.builder(addr, common, charset)?.build()?)
    }

    /// The settings of [`sender`](Self::sender), not yet built (a relay's outbox builds its
    /// own sender from them).
    pub fn builder(
        &self,
        addr: &str,
        common: &Common,
        charset: Charset,
    ) -> Result<SenderBuilder, Failure> {
        let mut builder = Sender::builder(addr.to_owned())
            .framing(common.framing()?)
            .charset(charset)
            .reply(common.reply());
        if let Some(t) = self.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = self.ack_timeout {
            builder = builder.ack_timeout(t);
        }
        if let Some(t) = self.write_timeout {
            builder = builder.write_timeout(t);
        }
        if let Some(n) = self.attempts {
            builder = builder.retry(RetryPolicy::default().max_attempts((n != 0).then_some(n)));
        }
        if let Some(connector) = self.tls_connector()? {
            builder = builder.tls_connector(connector);
        }
        Ok(self.keepalive.sender(builder))
    }

    /// The TLS settings of `--tls` and its companions; `None` without TLS.
    pub fn tls_config(&self) -> Result<Option<mllp::TlsClientConfig>, Failure> {
        if !self.tls.on {
            return Ok(None);
        }
        let mut tls = mllp::TlsClientConfig::new();
        if let Some(ca) = &self.tls.ca {
            tls = tls.add_root_pem_file(ca)?;
        }
        if let Some(domain) = &self.tls.domain {
            tls = tls.server_name(domain.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) {
            let files = PemFiles {
                cert: cert.clone(),
                key: key.clone(),
                password_file: self.tls.key_password_file.clone(),
                names: self.tls.key_names,
            };
            tls = tls.identity(files.identity()?);
        }
        if let Some(min) = self.tls.min_version {
            tls = tls.min_version(min);
        }
        Ok(Some(tls))
    }

    /// The TLS connector of [`tls_config`](Self::tls_config) (OpenSSL, which logs the
    /// protocol and cipher of every handshake at debug); `None` without TLS.
    pub fn tls_connector(&self) -> Result<Option<Arc<dyn mllp::TlsConnector>>, Failure> {
        match self.tls_config()? {
            None => Ok(None),
            Some(config) => connector(&config).map(Some),
        }
    }
}

#[cfg(feature = "tls")]
fn connector(config: &mllp::TlsClientConfig) -> Result<Arc<dyn mllp::TlsConnector>, Failure> {
    Ok(Arc::new(mllp_openssl::Connector::new(config)?))
}

/// Without TLS in the build there is no connector (the options are refused before).
#[cfg(not(feature = "tls"))]
fn connector(_: &mllp::TlsClientConfig) -> Result<Arc<dyn mllp::TlsConnector>, Failure> {
    Err(Failure::fatal(
        "this build has no TLS support (feature `tls`)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password option of each identity group names the variable its key is read with.
    #[test]
    fn each_key_password_option_names_its_variable() {
        use crate::tls_key::{TLS_KEY, TO_TLS_KEY};
        for (group, names) in [
            (&IDENTITY, TLS_KEY),
            (&crate::relay::TO_IDENTITY, TO_TLS_KEY),
        ] {
            let long = format!("{}-file", names.password);
            let opt = group.opts.iter().find(|o| o.spec.long == long).unwrap();
            assert!(opt.spec.help.ends_with(names.env), "{}", opt.spec.help);
        }
    }

    #[test]
    fn a_key_password_file_needs_the_key_it_is_for() {
        let mut options = SenderOptions::default();
        options.tls.key_password_file = Some("pw".into());
        let e = options.finish().unwrap_err().0;
        assert_eq!(e, "--tls-key-password-file needs --tls-cert and --tls-key");
        // In `mllp relay`, the downstream key's names.
        options.tls.key_names = crate::tls_key::TO_TLS_KEY;
        let e = options.finish().unwrap_err().0;
        assert_eq!(
            e,
            "--to-tls-key-password-file needs --to-tls-cert and --to-tls-key"
        );
        options.tls.cert = Some("c.pem".into());
        let e = options.finish().unwrap_err().0;
        assert_eq!(e, "--to-tls-cert and --to-tls-key must be given together");
        options.tls.key = Some("k.pem".into());
        let finished = options.finish();
        #[cfg(feature = "tls")]
        assert!(finished.is_ok() && options.tls.on);
        #[cfg(not(feature = "tls"))]
        assert!(finished.is_err());
    }
}
