//! Command-line arguments: every option is defined once, as an [`Opt`] (its names, its value,
//! its help text and how it sets its value), and that one definition feeds the parser
//! ([`lexopt`]), the short help (`-h`) and the long help (`--help`), so they cannot drift.
//!
//! The parser is strict, as users of Unix tools expect: long options are spelled out (`--q` is
//! not `--quiet`), a single dash starts short options only (`-qv` is `-q -v`; `-store` is an
//! error), a switch takes no value (`--single=yes` is an error), and a value that looks like an
//! option must be attached with `=` (`--store --count 3` is an error; `--store=--count` is the
//! directory `--count`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::options::Failure;

/// A usage error: printed as one sentence, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the parser and the help know of an option.
#[derive(Debug)]
pub struct Spec {
    /// The long name, without the dashes.
    pub long: &'static str,
    /// The one-letter name, if any.
    pub short: Option<char>,
    /// The value's placeholder in the help (`SECS`, `close|nak`); `None` for a switch.
    pub value: Option<&'static str>,
    /// The help text: its first line is the short help; further lines continue it in the
    /// long help.
    pub help: &'static str,
}

/// One option of type `T`'s settings: its [`Spec`] and how it updates `T`.
pub struct Opt<T: 'static> {
    /// Names, value and help.
    pub spec: Spec,
    /// Sets the option's value (the value is empty for a switch).
    pub set: fn(&mut T, Value) -> Result<(), UsageError>,
}

/// The options that update one settings type, shown under one title in the help.
pub struct Group<T: 'static> {
    /// The heading in the help ("Receiving", "Framing and output").
    pub title: &'static str,
    /// The options.
    pub opts: &'static [Opt<T>],
}

/// A [`Group`] of any settings type, as the parser and the help see it.
pub trait Table: Sync {
    /// The heading in the help.
    fn title(&self) -> &'static str;
    /// The options' specs, in help order.
    fn specs(&self) -> Vec<&'static Spec>;
}

impl<T> Table for Group<T> {
    fn title(&self) -> &'static str {
        self.title
    }

    fn specs(&self) -> Vec<&'static Spec> {
        self.opts.iter().map(|o| &o.spec).collect()
    }
}

impl<T> Group<T> {
    /// Applies `found` to `target` if it is one of this group's options; returns whether it
    /// was.
    pub fn apply(&self, found: &Found, target: &mut T) -> Result<bool, UsageError> {
        let Some(opt) = self.opts.iter().find(|o| std::ptr::eq(&o.spec, found.spec)) else {
            return Ok(false);
        };
        let value = Value {
            name: found.spec.long,
            text: found.value.clone().unwrap_or_default(),
        };
        (opt.set)(target, value)?;
        Ok(true)
    }
}

/// A subcommand: its help and its options, one definition for the parser and the help.
pub struct Command {
    /// The name after `mllp`.
    pub name: &'static str,
    /// The positionals in the usage line (`[ADDR]`, `DIR [COMMAND]`).
    pub usage: &'static str,
    /// One line for `mllp --help`.
    pub summary: &'static str,
    /// What the command does: the paragraphs after the usage line.
    pub about: &'static str,
    /// The option groups, in help order.
    pub tables: &'static [&'static dyn Table],
    /// The last paragraph of the help (exit status).
    pub footer: &'static str,
    /// Parses the arguments and runs; `Ok` holds the exit code.
    pub run: fn(Args) -> Result<u8, Failure>,
    /// Parses the arguments only (every check that needs no file, socket or time): what the
    /// test that walks every option calls.
    #[cfg_attr(not(test), allow(dead_code))]
    pub check: fn(Args) -> Result<(), UsageError>,
}

impl Command {
    /// Every option of the command, in help order.
    pub fn specs(&self) -> impl Iterator<Item = &'static Spec> + '_ {
        self.tables.iter().flat_map(|t| t.specs())
    }

    /// The help text: with `long`, every line of every option's help; else the first line.
    pub fn help(&self, long: bool) -> String {
        let mut out = format!("Usage: mllp {} {}\n\n", self.name, self.usage);
        if long {
            out.push_str(self.about);
        } else {
            out.push_str(self.about.split("\n\n").next().unwrap_or_default());
        }
        out.push('\n');
        for (i, table) in self.tables.iter().enumerate() {
            // -h is one screen: no blank line between the groups.
            let gap = if long || i == 0 { "\n" } else { "" };
            out.push_str(&format!("{gap}{}:\n", table.title()));
            for spec in table.specs() {
                push_option(&mut out, spec, long);
            }
        }
        out.push_str("\n  -h, --help              this help (--help: in full); -V, --version\n\n");
        out.push_str(self.footer);
        out
    }
}

/// The column where option help starts.
const HELP_COLUMN: usize = 26;

fn push_option(out: &mut String, spec: &Spec, long: bool) {
    let mut label = String::from("  ");
    if let Some(c) = spec.short {
        label.push_str(&format!("-{c}, "));
    }
    label.push_str("--");
    label.push_str(spec.long);
    if let Some(v) = spec.value {
        label.push(' ');
        label.push_str(v);
    }
    let mut lines = spec.help.lines();
    let first = lines.next().unwrap_or_default();
    if label.len() + 2 > HELP_COLUMN && long {
        out.push_str(&label);
        out.push('\n');
        out.push_str(&" ".repeat(HELP_COLUMN));
    } else if label.len() + 2 > HELP_COLUMN {
        // -h keeps one line per option.
        out.push_str(&label);
        out.push_str("  ");
    } else {
        out.push_str(&format!("{label:HELP_COLUMN$}"));
    }
    out.push_str(first);
    out.push('\n');
    if long {
        for line in lines {
            out.push_str(&" ".repeat(HELP_COLUMN));
            out.push_str(line.trim_start());
            out.push('\n');
        }
    }
}

/// An option found on the command line, with its value (`None` for a switch).
#[derive(Debug)]
pub struct Found {
    spec: &'static Spec,
    value: Option<String>,
}

impl Found {
    /// The option's long name.
    pub fn long(&self) -> &'static str {
        self.spec.long
    }

    /// The error for an option the command defines but does not handle: a bug, which the
    /// test that walks every option finds.
    pub fn unhandled(&self, cmd: &str) -> UsageError {
        UsageError(format!(
            "internal error: mllp {cmd} defines --{} but does not handle it",
            self.spec.long
        ))
    }
}

/// An option's value, handed to [`Opt::set`]; its methods check it and word the errors.
#[derive(Debug)]
pub struct Value {
    name: &'static str,
    text: String,
}

impl Value {
    /// The option's long name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value as given.
    pub fn text(self) -> String {
        self.text
    }

    /// The value as a path.
    pub fn path(self) -> PathBuf {
        PathBuf::from(self.text)
    }

    /// The value parsed as a `T`.
    pub fn parsed<T: FromStr>(self) -> Result<T, UsageError> {
        self.text.parse().map_err(|_| {
            UsageError(format!(
                "the value {:?} of --{} is not valid",
                self.text, self.name
            ))
        })
    }

    /// A whole number of at least 1.
    pub fn count<T: FromStr + PartialEq + Default>(self) -> Result<T, UsageError> {
        let name = self.name;
        let n: T = self.parsed()?;
        if n == T::default() {
            return Err(UsageError(format!("--{name} must be at least 1")));
        }
        Ok(n)
    }

    /// A positive number of seconds (fractions allowed).
    pub fn seconds(self) -> Result<Duration, UsageError> {
        let name = self.name;
        let secs: f64 = self.parsed()?;
        if !(secs.is_finite() && secs > 0.0) {
            return Err(UsageError(format!(
                "--{name} must be a positive number of seconds"
            )));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// A number of seconds from 0 to `max` (fractions allowed).
    pub fn seconds_up_to(self, max: f64) -> Result<Duration, UsageError> {
        let name = self.name;
        let secs: f64 = self.parsed()?;
        if !(secs.is_finite() && (0.0..=max).contains(&secs)) {
            return Err(UsageError(format!(
                "--{name} must be a number of seconds from 0 to {max}"
            )));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// One of `choices`, by name.
    pub fn choice<V: Copy>(self, choices: &[(&str, V)]) -> Result<V, UsageError> {
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == self.text) {
            return Ok(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        Err(UsageError(format!(
            "--{} is {}, not {:?}",
            self.name,
            or_list(&names),
            self.text
        )))
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The arguments of one subcommand, parsed against its options.
pub struct Args {
    command: &'static Command,
    parser: lexopt::Parser,
    positionals: Vec<String>,
}

impl Args {
    /// Arguments after the program name and subcommand.
    pub fn new(command: &'static Command, args: impl IntoIterator<Item = OsString>) -> Args {
        Args {
            command,
            parser: lexopt::Parser::from_args(args),
            positionals: Vec::new(),
        }
    }

    /// The next option and its value, or `None` when every argument was read. Positionals met
    /// on the way are collected for [`positionals`](Self::positionals).
    pub fn next_option(&mut self) -> Result<Option<Found>, UsageError> {
        loop {
            let arg = self.parser.next().map_err(lexopt_error)?;
            let spec = match arg {
                None => return Ok(None),
                Some(lexopt::Arg::Value(v)) => {
                    self.positionals.push(utf8(v)?);
                    continue;
                }
                Some(lexopt::Arg::Long(name)) => {
                    let name = name.to_owned();
                    self.find(|s| s.long == name)
                        .ok_or_else(|| self.unknown(&format!("--{name}"), &name))?
                }
                Some(lexopt::Arg::Short(c)) => self
                    .find(|s| s.short == Some(c))
                    .ok_or_else(|| self.unknown(&format!("-{c}"), &c.to_string()))?,
            };
            let value = match spec.value {
                None => None,
                Some(_) => Some(self.value_of(spec)?),
            };
            return Ok(Some(Found { spec, value }));
        }
    }

    /// The positionals, once every option has been read.
    pub fn positionals(self) -> Vec<String> {
        self.positionals
    }

    fn find(&self, pred: impl Fn(&Spec) -> bool) -> Option<&'static Spec> {
        self.command.specs().find(|s| pred(s))
    }

    /// The value of `spec`: attached (`--name=value`, `-nVALUE`) or the next argument, which
    /// must not look like an option unless it is `-` or a number.
    fn value_of(&mut self, spec: &'static Spec) -> Result<String, UsageError> {
        if let Some(v) = self.parser.optional_value() {
            return utf8(v);
        }
        let v = self.parser.value().map_err(|_| {
            UsageError(format!(
                "--{} needs a value ({})",
                spec.long,
                spec.value.unwrap_or("VALUE")
            ))
        })?;
        let v = utf8(v)?;
        if v.len() > 1 && v.starts_with('-') && v.parse::<f64>().is_err() {
            return Err(UsageError(format!(
                "--{} needs a value ({}), and {v:?} looks like an option: write --{}={v} if \
                 that is the value",
                spec.long,
                spec.value.unwrap_or("VALUE"),
                spec.long
            )));
        }
        Ok(v)
    }

    fn unknown(&self, given: &str, name: &str) -> UsageError {
        let cmd = self.command.name;
        let near: Vec<String> = self
            .command
            .specs()
            .filter(|s| name.len() > 1 && s.long.starts_with(name))
            .map(|s| format!("--{}", s.long))
            .collect();
        let hint = match near.as_slice() {
            [] => String::new(),
            some => format!(
                " (did you mean {}?)",
                or_list(&some.iter().map(String::as_str).collect::<Vec<_>>())
            ),
        };
        UsageError(format!(
            "mllp {cmd} has no option {given}{hint}; see mllp {cmd} --help"
        ))
    }
}

fn lexopt_error(e: lexopt::Error) -> UsageError {
    match e {
        lexopt::Error::UnexpectedValue { option, .. } => {
            UsageError(format!("{option} is a switch and takes no value"))
        }
        lexopt::Error::NonUnicodeValue(v) => {
            UsageError(format!("the argument {v:?} is not valid UTF-8"))
        }
        other => UsageError(other.to_string()),
    }
}

fn utf8(v: OsString) -> Result<String, UsageError> {
    v.into_string()
        .map_err(|v| UsageError(format!("the argument {v:?} is not valid UTF-8")))
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

    #[test]
    fn hex() {
        assert_eq!(parse_hex("e", "1c0d").unwrap(), [0x1c, 0x0d]);
        assert_eq!(parse_hex("e", "0x1C,0x0D").unwrap(), [0x1c, 0x0d]);
        assert_eq!(parse_hex("e", "1C 0D").unwrap(), [0x1c, 0x0d]);
        for bad in ["", "1", "zz", "1c0"] {
            assert!(parse_hex("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn or_lists() {
        assert_eq!(or_list(&["a"]), "a");
        assert_eq!(or_list(&["a", "b"]), "a or b");
        assert_eq!(or_list(&["a", "b", "c"]), "a, b or c");
    }
}
