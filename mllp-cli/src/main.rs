//! The `mllp` command-line tool: demo, listen, send, relay, spool, forward, bench.
#![warn(clippy::undocumented_unsafe_blocks)]

mod args;
mod bench_cmd;
mod demo;
#[cfg(feature = "amqp")]
mod forward;
mod health;
mod listen;
mod logger;
mod options;
mod relay;
mod send;
mod sender_options;
mod signal;
mod split;
mod spool;
mod store_policy;
mod stores;

use std::ffi::OsString;
use std::process::ExitCode;

use args::Args;
use options::Failure;

const HELP: &str = "\
Usage: mllp COMMAND [OPTIONS]

MLLP (HL7 v2 over TCP) from the command line.

Commands:
  demo                    a listener and a sender on loopback: messages, ACKs, a benchmark
  listen [ADDR]           receive messages, store each in a file, then acknowledge it
  send ADDR [FILE...]     send the messages in files (or standard input), print the ACKs
  relay [ADDR] --to HOST:PORT --spool DIR
                          receive, spool durably, acknowledge, forward in arrival order
  spool DIR [COMMAND]     what a relay's spool holds; verify it; list, requeue or purge dead letters
  bench [ADDR]            measure messages/s and ACK latency
  forward --from URL --to ADDR   from a RabbitMQ queue to a listener, in order

Options of every command: --start-bytes HEX, --end-bytes HEX, --encoding LABEL, --mllp2,
--max-message-bytes N, -q/--quiet, -v/--verbose, --help, --version.
`mllp COMMAND --help` describes a command.";

/// A subcommand: parses its arguments and runs; `Ok` holds the exit code.
type Command = fn(Args) -> Result<u8, Failure>;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = if args.is_empty() {
        None
    } else {
        Some(args.remove(0))
    };
    let command = command.as_ref().map(|c| c.to_string_lossy().into_owned());
    let (help, run): (&str, Command) = match command.as_deref() {
        Some("demo") => (demo::HELP, demo::run),
        Some("listen") => (listen::HELP, listen::run),
        Some("send") => (send::HELP, send::run),
        Some("relay") => (relay::HELP, relay::run),
        Some("spool") => (spool::HELP, spool::run),
        Some("bench") => (bench_cmd::HELP, bench_cmd::run),
        #[cfg(feature = "amqp")]
        Some("forward") => (forward::HELP, forward::run),
        #[cfg(not(feature = "amqp"))]
        Some("forward") => {
            return fail(&Failure::fatal(
                "this build of mllp has no forward command: it needs the cargo feature amqp",
            ))
        }
        Some("help") => {
            let topic = args.first().map(|a| a.to_string_lossy().into_owned());
            return match topic.as_deref() {
                Some("demo") => print_help(demo::HELP),
                Some("listen") => print_help(listen::HELP),
                Some("send") => print_help(send::HELP),
                Some("relay") => print_help(relay::HELP),
                Some("spool") => print_help(spool::HELP),
                Some("bench") => print_help(bench_cmd::HELP),
                #[cfg(feature = "amqp")]
                Some("forward") => print_help(forward::HELP),
                _ => print_help(HELP),
            };
        }
        Some("--help" | "-h") => return print_help(HELP),
        Some("--version" | "-V") => return print_version(),
        Some(other) => {
            return fail(&Failure::fatal(format!(
                "there is no command {other:?}; the commands are demo, listen, send, relay, \
                 spool, forward and bench (see mllp --help)"
            )))
        }
        None => {
            options::stderr_line(HELP);
            return ExitCode::from(2);
        }
    };
    // --help and --version win over everything else (up to a `--`).
    for arg in args.iter().take_while(|a| *a != "--") {
        match arg.to_str() {
            Some("--help" | "-h") => return print_help(help),
            Some("--version" | "-V") => return print_version(),
            _ => {}
        }
    }
    let result = Args::new(args).map_err(Failure::from).and_then(run);
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
