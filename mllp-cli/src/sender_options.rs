//! The options of every command that sends over MLLP (`mllp send`, `mllp forward`, `mllp
//! relay`): timeouts, retries and TLS, parsed once and turned into a [`Sender`].

use std::path::PathBuf;
use std::time::Duration;

use mllp::charset::Charset;
use mllp::{RetryPolicy, Sender, SenderBuilder};

use super::args::{Args, UsageError};
use super::options::{Common, Failure};

/// The help lines for these options, a literal for `concat!` in each command's help.
macro_rules! sender_options_help {
    () => {
        "  --connect-timeout SECS  (default 10)   --ack-timeout SECS (default 30)
  --write-timeout SECS    how long writing one message may take (default 10)
  --retries N             attempts after the first for each message (default 4)
  --tls, --tls-ca PEM, --tls-domain NAME, --tls-cert PEM --tls-key PEM (client identity)
"
    };
}
pub(crate) use sender_options_help;

/// The values of the sender options.
#[derive(Debug, Default)]
pub struct SenderOptions {
    pub connect_timeout: Option<Duration>,
    pub ack_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub tls: Tls,
}

/// `--tls` and the options that go with it.
#[derive(Debug, Default)]
pub struct Tls {
    pub on: bool,
    pub ca: Option<PathBuf>,
    pub domain: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl SenderOptions {
    /// Takes option `name` (and its value) if it is a sender option; returns whether it was.
    pub fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, UsageError> {
        let tls = &mut self.tls;
        match name {
            "connect-timeout" => self.connect_timeout = Some(args.seconds(name)?),
            "ack-timeout" => self.ack_timeout = Some(args.seconds(name)?),
            "write-timeout" => self.write_timeout = Some(args.seconds(name)?),
            "retries" => self.retries = Some(args.parsed(name)?),
            "tls" => tls.on = true,
            "tls-ca" => tls.ca = Some(PathBuf::from(args.value(name)?)),
            "tls-domain" => tls.domain = Some(args.value(name)?),
            "tls-cert" => tls.cert = Some(PathBuf::from(args.value(name)?)),
            "tls-key" => tls.key = Some(PathBuf::from(args.value(name)?)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the options together, once all were taken (and turns TLS on when a TLS option
    /// was given).
    pub fn finish(&mut self) -> Result<(), UsageError> {
        let tls = &mut self.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(UsageError(
                "--tls-cert and --tls-key must be given together".into(),
            ));
        }
        tls.on |= tls.ca.is_some() || tls.domain.is_some() || tls.cert.is_some();
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
            .mllp2(common.mllp2);
        if let Some(t) = self.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = self.ack_timeout {
            builder = builder.ack_timeout(t);
        }
        if let Some(t) = self.write_timeout {
            builder = builder.write_timeout(t);
        }
        if let Some(n) = self.retries {
            builder = builder.retry(RetryPolicy::default().max_attempts(Some(n.saturating_add(1))));
        }
        if self.tls.on {
            let mut tls = mllp::TlsClientConfig::new();
            if let Some(ca) = &self.tls.ca {
                tls = tls.add_root_pem_file(ca)?;
            }
            if let Some(domain) = &self.tls.domain {
                tls = tls.server_name(domain.clone());
            }
            if let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) {
                tls = tls.identity(mllp::Identity::from_pem_files(cert, key)?);
            }
            builder = builder.tls(tls);
        }
        Ok(builder)
    }
}
