//! The `mllp` command-line tool: demo, listen, send, relay, spool, bench, check, forward.
#![warn(clippy::undocumented_unsafe_blocks)]

mod addr;
mod args;
mod bench_cmd;
mod check;
mod demo;
#[cfg(feature = "amqp")]
mod forward;
mod health;
mod listen;
mod logger;
mod metrics;
mod network;
mod options;
mod relay;
mod secret;
mod send;
mod sender_options;
mod serve_tls;
mod signal;
mod spool;
mod store_policy;
mod stores;
mod tls_key;

use std::ffi::OsString;
use std::process::ExitCode;

use args::Command;
use options::Failure;

/// Every command, in the order `mllp --help` lists them.
const COMMANDS: &[&Command] = &[
    &demo::COMMAND,
    &listen::COMMAND,
    &send::COMMAND,
    &relay::COMMAND,
    &spool::COMMAND,
    &bench_cmd::COMMAND,
    &check::COMMAND,
    #[cfg(feature = "amqp")]
    &forward::COMMAND,
];

/// `mllp --help`: the commands, from [`COMMANDS`].
fn help() -> String {
    let mut out = String::from(
        "Usage: mllp COMMAND [OPTIONS]\n\nMLLP (HL7 v2 over TCP) from the command line.\n\nCommands:\n",
    );
    for cmd in COMMANDS {
        out.push_str(&format!("  {:<10}{}\n", cmd.name, cmd.summary));
    }
    out.push_str(
        "\n`mllp COMMAND -h` lists a command's options; `mllp COMMAND --help` describes them in \
         full.\n-h, --help: this help; -V, --version: the version.\n",
    );
    out
}

fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().copied().find(|c| c.name == name)
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        options::stderr_line(&help());
        return ExitCode::from(2);
    }
    let command = args.remove(0).to_string_lossy().into_owned();
    let cmd = match command.as_str() {
        "--help" | "-h" => return print_help(&help()),
        "--version" | "-V" => return print_version(),
        "help" => {
            let topic = args.first().map(|a| a.to_string_lossy().into_owned());
            return match topic.as_deref().and_then(find) {
                Some(cmd) => print_help(&cmd.help(true)),
                None => print_help(&help()),
            };
        }
        #[cfg(not(feature = "amqp"))]
        "forward" => {
            return fail(&Failure::fatal(
                "this build of mllp has no forward command: it needs the cargo feature amqp",
            ))
        }
        name => match find(name) {
            Some(cmd) => cmd,
            None => {
                let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
                return fail(&Failure::fatal(format!(
                    "there is no command {name:?}; the commands are {} (see mllp --help)",
                    names.join(", ")
                )));
            }
        },
    };
    // --help and --version win over everything else (up to a `--`).
    for arg in args.iter().take_while(|a| *a != "--") {
        match arg.to_str() {
            Some("-h") => return print_help(&cmd.help(false)),
            Some("--help") => return print_help(&cmd.help(true)),
            Some("--version" | "-V") => return print_version(),
            _ => {}
        }
    }
    let result = (cmd.run)(args::Args::new(cmd, args));
    // The log lines still queued for standard error come before the last word.
    logger::flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => fail(&failure),
    }
}

fn print_help(text: &str) -> ExitCode {
    listen::print_line(text);
    ExitCode::SUCCESS
}

fn print_version() -> ExitCode {
    listen::print_line(&format!("mllp {}", env!("CARGO_PKG_VERSION")));
    ExitCode::SUCCESS
}

fn fail(failure: &Failure) -> ExitCode {
    options::stderr_line(&format!("mllp: error: {}", failure.reason));
    ExitCode::from(failure.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments every run of `cmd` needs besides the option under test.
    fn required(cmd: &str) -> &'static [&'static str] {
        match cmd {
            "send" => &["127.0.0.1:1"],
            "relay" => &["--to", "127.0.0.1:1", "--spool", "d"],
            "forward" => &[
                "--from",
                "amqp://u:p@127.0.0.1:1/%2f?queue=q",
                "--to",
                "127.0.0.1:1",
            ],
            "spool" => &["d"],
            "check" => &["listener", "127.0.0.1:1"],
            _ => &[],
        }
    }

    /// Arguments that replace [`required`] for an option of one mode of a command.
    fn required_for(cmd: &str, long: &str) -> Option<&'static [&'static str]> {
        match (cmd, long) {
            ("check", "first-wait") => Some(&["sender"]),
            _ => None,
        }
    }

    /// Options that are only valid together with another.
    fn companion(long: &str) -> &'static [&'static str] {
        match long {
            "tls-cert" => &["--tls-key", "k.pem"],
            "tls-key" => &["--tls-cert", "c.pem"],
            "to-tls-cert" => &["--to-tls-key", "k.pem"],
            "to-tls-key" => &["--to-tls-cert", "c.pem"],
            "to-tls-key-password-file" => &["--to-tls-cert", "c.pem", "--to-tls-key", "k.pem"],
            // A listener's need its certificate; a sender takes a client certificate too.
            "tls-client-ca" | "tls-min-version" | "tls-key-password-file" => {
                &["--tls-cert", "c.pem", "--tls-key", "k.pem"]
            }
            "dedup-index" => &["--dedup", "5"],
            _ => &[],
        }
    }

    /// A valid value for a placeholder of the help. A new placeholder must be added here.
    fn example(placeholder: &str, long: &str) -> String {
        if let Some((first, _)) = placeholder.split_once('|') {
            if !placeholder.contains(':') && placeholder != "DIR|URL" {
                return first.to_owned();
            }
        }
        match (placeholder, long) {
            ("HEX", "start-bytes") => "0b",
            ("HEX", _) => "1c0d",
            ("SECS", _) => "1.5",
            ("N" | "C" | "BYTES", _) => "3",
            ("LABEL", _) => "ISO-8859-1",
            ("PEM" | "PATH" | "STATE" | "DIR" | "DIR|URL" | "NAME" | "QUEUE", _) => "x",
            ("URL", _) => "amqp://u:p@127.0.0.1:1/%2f?queue=q",
            ("HOST:PORT" | "ADDR", _) => "127.0.0.1:1",
            ("CPU[,CPU]", _) => "0",
            ("IDLE,INT,N", _) => "120,30,4",
            ("CIDR[,CIDR]", _) => "127.0.0.1,10.0.0.0/8,::1",
            _ => panic!("--{long}: no example value for the placeholder {placeholder}"),
        }
        .to_owned()
    }

    fn check(cmd: &'static Command, args: &[String]) -> Result<(), args::UsageError> {
        (cmd.check)(args::Args::new(cmd, args.iter().map(OsString::from)))
    }

    #[test]
    fn every_option_of_every_command_parses_and_is_in_the_help() {
        for cmd in COMMANDS {
            let (short_help, long_help) = (cmd.help(false), cmd.help(true));
            let base: Vec<String> = required(cmd.name).iter().map(|s| s.to_string()).collect();
            check(cmd, &base).unwrap_or_else(|e| panic!("mllp {}: {e}", cmd.name));
            let mut longs = std::collections::HashSet::new();
            let mut shorts = std::collections::HashSet::new();
            for spec in cmd.specs() {
                let base: Vec<String> = required_for(cmd.name, spec.long)
                    .map_or(base.clone(), |r| r.iter().map(|s| s.to_string()).collect());
                let flag = format!("--{}", spec.long);
                assert!(longs.insert(spec.long), "mllp {}: {flag} twice", cmd.name);
                if let Some(c) = spec.short {
                    assert!(shorts.insert(c), "mllp {}: -{c} twice", cmd.name);
                    assert!(short_help.contains(&format!("-{c}, {flag}")));
                }
                for help in [&short_help, &long_help] {
                    assert!(
                        help.lines().any(|l| l.trim_start().starts_with(&flag)
                            || l.trim_start().contains(&format!(", {flag}"))),
                        "mllp {}: {flag} is not in the help",
                        cmd.name
                    );
                }
                for line in spec.help.lines() {
                    assert!(long_help.contains(line.trim()), "{flag}: {line}");
                }
                let mut args = base.clone();
                args.extend(companion(spec.long).iter().map(|s| s.to_string()));
                args.push(flag.clone());
                if let Some(placeholder) = spec.value {
                    args.push(example(placeholder, spec.long));
                    // Without its value, the option is refused by name.
                    let mut missing = base.clone();
                    missing.push(flag.clone());
                    let e = check(cmd, &missing).expect_err(&flag).0;
                    assert!(e.contains(&flag) && e.contains("needs a value"), "{e}");
                } else {
                    // A switch takes no value.
                    let mut attached = base.clone();
                    attached.push(format!("{flag}=yes"));
                    let e = check(cmd, &attached).expect_err(&flag).0;
                    assert!(e.contains("takes no value"), "{e}");
                }
                match check(cmd, &args) {
                    Ok(()) => {}
                    Err(e) if !cfg!(feature = "tls") && e.0.contains("TLS support") => {}
                    Err(e) => panic!("mllp {} {args:?}: {e}", cmd.name),
                }
            }
        }
    }

    #[test]
    fn mistakes_are_refused_by_name() {
        let listen = find("listen").unwrap();
        let refused = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            check(listen, &args).expect_err(&format!("{args:?}")).0
        };
        let e = refused(&["--store", "--count", "3"]);
        assert!(
            e.contains("--store needs a value") && e.contains("--store=--count"),
            "{e}"
        );
        assert!(refused(&["-store", "d"]).contains("has no option -s"));
        let e = refused(&["--q"]);
        assert!(e.contains("has no option --q;"), "{e}");
        let e = refused(&["--sing"]);
        assert!(e.contains("did you mean --single?"), "{e}");
        assert!(refused(&["--single=yes"]).contains("--single is a switch"));
        assert!(refused(&["--ack-mode", "sometimes"]).contains("original or auto"));
        let ok = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            check(listen, &args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        };
        ok(&["-qv"]);
        ok(&["--store=--count", "--count=3"]);
        ok(&["--", "127.0.0.1:0"]);
    }

    #[test]
    fn the_command_list_names_every_command() {
        let text = help();
        for cmd in COMMANDS {
            assert!(text.contains(&format!("  {}", cmd.name)), "{}", cmd.name);
        }
    }
}
