//! Options shared by every subcommand, and the error type the subcommands return.

use mllp::charset::Charset;
use mllp::Framing;

use super::args::{parse_hex, Args, UsageError};

/// Why a subcommand failed: a one-sentence reason and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// One sentence, printed after `mllp: `.
    pub reason: String,
}

impl Failure {
    /// A failure with exit code 2 (usage, connection, delivery, startup).
    pub fn fatal(reason: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            reason: reason.into(),
        }
    }

    /// A failure with exit code 1 (a negative acknowledgement, a goal not reached).
    pub fn negative(reason: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            reason: reason.into(),
        }
    }
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Failure {
        Failure::fatal(e.0)
    }
}

impl From<mllp::Error> for Failure {
    fn from(e: mllp::Error) -> Failure {
        Failure::fatal(e.to_string())
    }
}

/// The options every subcommand takes.
#[derive(Debug, Default)]
pub struct Common {
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    max_message_bytes: Option<usize>,
    encoding: Option<String>,
    /// MLLP release 2 commit blocks instead of HL7 ACKs.
    pub mllp2: bool,
    /// `-q`: no per-message output; errors only.
    pub quiet: bool,
    /// How many `-v` were given (`-vv` counts two).
    pub verbose: u8,
}

impl Common {
    /// Takes option `name` (and its value) if it is a shared one; returns whether it was.
    pub fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, UsageError> {
        match name {
            "start-bytes" => self.start = Some(parse_hex(name, &args.value(name)?)?),
            "end-bytes" => self.end = Some(parse_hex(name, &args.value(name)?)?),
            "max-message-bytes" => {
                let n: usize = args.parsed(name)?;
                if n == 0 {
                    return Err(UsageError("--max-message-bytes must be at least 1".into()));
                }
                self.max_message_bytes = Some(n);
            }
            "encoding" => self.encoding = Some(args.value(name)?),
            "mllp2" => self.mllp2 = true,
            "q" | "quiet" => self.quiet = true,
            "v" | "verbose" => self.verbose = self.verbose.saturating_add(1),
            "vv" => self.verbose = self.verbose.saturating_add(2),
            "vvv" => self.verbose = self.verbose.saturating_add(3),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The framing from `--start-bytes`, `--end-bytes` and `--max-message-bytes`.
    pub fn framing(&self) -> Result<Framing, UsageError> {
        let start = self.start.as_deref().unwrap_or(mllp::DEFAULT_START);
        let end = self.end.as_deref().unwrap_or(mllp::DEFAULT_END);
        let framing = Framing::new(start, end).map_err(config_usage)?;
        match self.max_message_bytes {
            Some(n) => framing.max_message_size(n).map_err(config_usage),
            None => Ok(framing),
        }
    }

    /// The character set from `--encoding` (UTF-8 when not given).
    pub fn charset(&self) -> Result<Charset, UsageError> {
        match &self.encoding {
            None => Ok(Charset::UTF_8),
            Some(label) => label_charset("encoding", label),
        }
    }

    /// Whether `--encoding` was given.
    pub fn has_encoding(&self) -> bool {
        self.encoding.is_some()
    }

    /// The log level: `-q` errors only, else `default`, raised by each `-v`.
    pub fn log_level(&self, default: log::LevelFilter) -> log::LevelFilter {
        use log::LevelFilter::{Debug, Error, Info, Trace, Warn};
        if self.quiet {
            return Error;
        }
        let levels = [Error, Warn, Info, Debug, Trace];
        let base = levels.iter().position(|l| *l == default).unwrap_or(1);
        levels[(base + usize::from(self.verbose)).min(levels.len() - 1)]
    }
}

/// Writes a line to standard error; a closed standard error is not worth a panic.
pub fn stderr_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// The character set named by `label` for option `--name`.
pub fn label_charset(name: &str, label: &str) -> Result<Charset, UsageError> {
    Charset::from_label(label).map_err(|e| UsageError(format!("--{name}: {e}")))
}

/// A configuration error from the library, as a usage error (the sentence without the
/// "invalid configuration" prefix).
fn config_usage(e: mllp::Error) -> UsageError {
    match e {
        mllp::Error::Config(msg) => UsageError(msg),
        other => UsageError(other.to_string()),
    }
}

/// An unknown option of subcommand `cmd`.
pub fn unknown(cmd: &str, name: &str) -> UsageError {
    UsageError(format!(
        "mllp {cmd} has no option --{name}; see mllp {cmd} --help"
    ))
}

/// The error for a TLS option in a build without TLS support.
#[cfg(not(feature = "tls"))]
pub fn no_tls(name: &str) -> UsageError {
    UsageError(format!(
        "--{name} needs TLS support, and this mllp was built without it (the tls feature)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn common(v: &[&str]) -> Result<Common, UsageError> {
        let mut args = Args::new(v.iter().map(OsString::from))?;
        let mut c = Common::default();
        while let Some(name) = args.next_option() {
            if !c.take(&name, &mut args)? {
                return Err(unknown("x", &name));
            }
        }
        Ok(c)
    }

    #[test]
    fn framing_and_charset() {
        let c = common(&[
            "--start-bytes",
            "02",
            "--end-bytes=03",
            "--max-message-bytes",
            "9",
        ])
        .unwrap();
        let f = c.framing().unwrap();
        assert_eq!(
            (f.start(), f.end(), f.max_size()),
            (&[2u8][..], &[3u8][..], 9)
        );
        assert_eq!(c.charset().unwrap(), Charset::UTF_8);
        let c = common(&["--encoding", "8859/1"]).unwrap();
        assert_eq!(c.charset().unwrap(), Charset::ISO_8859_1);
        assert!(common(&["--encoding", "nope"]).unwrap().charset().is_err());
        assert!(common(&["--start-bytes", "1c", "--end-bytes", "1c0d"])
            .unwrap()
            .framing()
            .is_err());
        assert!(common(&["--max-message-bytes", "0"]).is_err());
        assert!(common(&["--bogus"]).is_err());
    }

    #[test]
    fn verbosity() {
        use log::LevelFilter::*;
        assert_eq!(common(&[]).unwrap().log_level(Warn), Warn);
        assert_eq!(common(&["-v"]).unwrap().log_level(Warn), Info);
        assert_eq!(common(&["-vv"]).unwrap().log_level(Warn), Debug);
        assert_eq!(common(&["-v", "-vv"]).unwrap().log_level(Warn), Trace);
        assert_eq!(common(&["-q", "-v"]).unwrap().log_level(Warn), Error);
        assert_eq!(common(&["-v"]).unwrap().log_level(Error), Warn);
    }
}
