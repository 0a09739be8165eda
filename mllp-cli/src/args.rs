//! Command-line arguments, parsed with std only.

use std::collections::VecDeque;
use std::ffi::OsString;

/// A usage error: printed as one sentence, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Arguments left to parse: options (`--name value`, `--name=value`, `-q`) and positionals.
#[derive(Debug)]
pub struct Args {
    rest: VecDeque<String>,
    positionals: Vec<String>,
    options_done: bool,
}

impl Args {
    /// Arguments after the program name and subcommand.
    pub fn new(args: impl IntoIterator<Item = OsString>) -> Result<Args, UsageError> {
        let rest = args
            .into_iter()
            .map(|a| {
                a.into_string()
                    .map_err(|a| UsageError(format!("the argument {a:?} is not valid UTF-8")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Args {
            rest,
            positionals: Vec::new(),
            options_done: false,
        })
    }

    /// The next option name (without leading dashes, `=value` split off and queued), or `None`
    /// when only positionals remain. Positionals met on the way are collected.
    pub fn next_option(&mut self) -> Option<String> {
        while let Some(arg) = self.rest.pop_front() {
            if self.options_done || arg == "-" || !arg.starts_with('-') {
                self.positionals.push(arg);
                continue;
            }
            if arg == "--" {
                self.options_done = true;
                continue;
            }
            let name = arg.trim_start_matches('-');
            if let Some((name, value)) = name.split_once('=') {
                self.rest.push_front(value.to_string());
                return Some(name.to_string());
            }
            return Some(name.to_string());
        }
        None
    }

    /// The value of option `name`.
    pub fn value(&mut self, name: &str) -> Result<String, UsageError> {
        self.rest
            .pop_front()
            .ok_or_else(|| UsageError(format!("the option --{name} needs a value")))
    }

    /// The value of option `name`, parsed.
    pub fn parsed<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, UsageError> {
        let v = self.value(name)?;
        v.parse()
            .map_err(|_| UsageError(format!("the value {v:?} of --{name} is not valid")))
    }

    /// The value of option `name` as a number of seconds (fractions allowed).
    pub fn seconds(&mut self, name: &str) -> Result<std::time::Duration, UsageError> {
        let secs: f64 = self.parsed(name)?;
        if !(secs.is_finite() && secs > 0.0) {
            return Err(UsageError(format!(
                "--{name} must be a positive number of seconds"
            )));
        }
        Ok(std::time::Duration::from_secs_f64(secs))
    }

    /// The positionals, once every option has been read.
    pub fn positionals(self) -> Vec<String> {
        self.positionals
    }
}

/// Parses hex bytes such as `0b`, `1c0d`, `1C 0D` or `0x1c,0x0d`.
pub fn parse_hex(name: &str, text: &str) -> Result<Vec<u8>, UsageError> {
    let bad = || {
        UsageError(format!(
            "--{name} takes hex bytes such as 1c0d, not {text:?}"
        ))
    };
    let digits: String = text
        .split([' ', ',', ':'])
        .map(|part| part.trim_start_matches("0x").trim_start_matches("0X"))
        .collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn options_and_positionals_mix() {
        let mut a = args(&[
            "127.0.0.1:1",
            "--count=3",
            "-q",
            "f.hl7",
            "--store",
            "d",
            "-",
            "--",
            "--x",
        ]);
        assert_eq!(a.next_option().as_deref(), Some("count"));
        assert_eq!(a.parsed::<u32>("count").unwrap(), 3);
        assert_eq!(a.next_option().as_deref(), Some("q"));
        assert_eq!(a.next_option().as_deref(), Some("store"));
        assert_eq!(a.value("store").unwrap(), "d");
        assert_eq!(a.next_option(), None);
        assert_eq!(a.positionals(), ["127.0.0.1:1", "f.hl7", "-", "--x"]);
        let mut a = args(&["--store"]);
        assert_eq!(a.next_option().as_deref(), Some("store"));
        assert!(a.value("store").is_err());
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("e", "1c0d").unwrap(), [0x1c, 0x0d]);
        assert_eq!(parse_hex("e", "0x1C,0x0D").unwrap(), [0x1c, 0x0d]);
        assert_eq!(parse_hex("e", "1C 0D").unwrap(), [0x1c, 0x0d]);
        for bad in ["", "1", "zz", "1c0"] {
            assert!(parse_hex("e", bad).is_err(), "{bad}");
        }
    }
}
