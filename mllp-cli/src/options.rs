//! Options shared by every subcommand, and the error type the subcommands return.

use mllp::charset::Charset;
use mllp::Framing;

use super::args::{parse_hex, Group, Opt, Spec, UsageError};
use super::logger::LogFormat;

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
    /// `--log-format`: how log records are written on standard error.
    pub log_format: LogFormat,
}

/// `--encoding`: the character set on the wire.
pub const ENCODING: Group<Common> = Group {
    title: "Character set",
    opts: &[Opt {
        spec: Spec {
            long: "encoding",
            short: None,
            value: Some("LABEL"),
            help: "character set on the wire (default UTF-8; received messages are handed\n\
                       on as UTF-8); any WHATWG label or HL7 MSH-18 name",
        },
        set: |c, v| {
            c.encoding = Some(v.text());
            Ok(())
        },
    }],
};

/// The framing options of every command that speaks MLLP.
pub const FRAMING: Group<Common> = Group {
    title: "Framing",
    opts: &[
        Opt {
            spec: Spec {
                long: "mllp2",
                short: None,
                value: None,
                help: "MLLP release 2: commit blocks (ACK/NAK bytes) instead of HL7 ACKs",
            },
            set: |c, _| {
                c.mllp2 = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "start-bytes",
                short: None,
                value: Some("HEX"),
                help: "the bytes that start a frame (default 0b)",
            },
            set: |c, v| {
                c.start = Some(parse_hex(v.name(), &v.text())?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "end-bytes",
                short: None,
                value: Some("HEX"),
                help: "the bytes that end a frame (default 1c0d)",
            },
            set: |c, v| {
                c.end = Some(parse_hex(v.name(), &v.text())?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-message-bytes",
                short: None,
                value: Some("N"),
                help: "the largest message (or reply) accepted (default 16 MiB); a larger one\n\
                       is refused with a NAK",
            },
            set: |c, v| {
                c.max_message_bytes = Some(v.count()?);
                Ok(())
            },
        },
    ],
};

/// `-q` and `-v`, which every command takes.
pub const OUTPUT: Group<Common> = Group {
    title: "Output",
    opts: &[
        Opt {
            spec: Spec {
                long: "quiet",
                short: Some('q'),
                value: None,
                help: "errors only: no per-message lines",
            },
            set: |c, _| {
                c.quiet = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "verbose",
                short: Some('v'),
                value: None,
                help: "more logging on standard error (-vv: debug, -vvv: trace)",
            },
            set: |c, _| {
                c.verbose = c.verbose.saturating_add(1);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "log-format",
                short: None,
                value: Some("text|json"),
                help: "how log records are written on standard error: text (default,\n\
                       `mllp: LEVEL: ...`) or json (one object per line: time, level, event,\n\
                       peer, connection, MSH-10, MSH-9, store, outcome, error where known)",
            },
            set: |c, v| {
                c.log_format = match v.text().as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(UsageError(format!(
                            "--log-format {other:?}: write text or json"
                        )))
                    }
                };
                Ok(())
            },
        },
    ],
};

impl Common {
    /// What messages are answered with (`--mllp2`: MLLP release 2 commit blocks).
    pub fn reply(&self) -> mllp::hl7::ReplyKind {
        mllp_cli::bench::reply_kind(self.mllp2)
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
    use crate::args::{Args, Command};
    use std::ffi::OsString;

    fn common(v: &[&str]) -> Result<Common, UsageError> {
        static CMD: Command = Command {
            name: "x",
            usage: "",
            summary: "",
            about: "",
            tables: &[&ENCODING, &FRAMING, &OUTPUT],
            footer: "",
            run: |_| Ok(0),
            check: |_| Ok(()),
        };
        let mut args = Args::new(&CMD, v.iter().map(OsString::from));
        let mut c = Common::default();
        while let Some(f) = args.next_option()? {
            if !(ENCODING.apply(&f, &mut c)?
                || FRAMING.apply(&f, &mut c)?
                || OUTPUT.apply(&f, &mut c)?)
            {
                return Err(f.unhandled("x"));
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
