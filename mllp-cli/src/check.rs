//! `mllp check listener|sender`: a conformance report on a partner's MLLP listener or sender,
//! for bringing up a new feed. Each row is one behaviour (connection kept open, one ACK per
//! message, MSA-2, resends, ...) with a verdict and the evidence; `--json` gives the same as
//! one JSON line for the record of a go-live.
//!
//! * [`listener`]: the listener checks, over [`session`] (connections and exchanges) and
//!   [`wire`] (raw frames through the library's decoder); [`malformed`] for
//!   `--include-malformed`; [`cert`] reads the listener's certificate;
//! * [`sender`]: the script that answers a partner's sender, over [`inbound`] (the
//!   connections); [`ack_header`]: the checks of an ACK's header;
//! * [`messages`]: the test messages and the ACK header checks; [`report`]: rows and output.

mod ack_header;
mod cert;
mod inbound;
mod listener;
mod malformed;
mod messages;
mod report;
mod sender;
mod session;
mod wire;

use std::net::TcpListener;
use std::time::Duration;

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::logger;
use super::options::{stderr_line, Common, Failure, ENCODING, FRAMING, OUTPUT};
use super::sender_options::{SenderOptions, IDENTITY, SENDING};

/// `mllp check`.
pub static COMMAND: Command = Command {
    name: "check",
    usage: "listener HOST:PORT | sender [ADDR] [OPTIONS]",
    summary: "a conformance report on a partner's MLLP listener or sender",
    about: "\
`mllp check listener HOST:PORT` sends test messages to a listener and reports how it
behaves; `mllp check sender [ADDR]` listens (default 127.0.0.1:2575) for a sender, answers
its messages by a script and reports how it behaves. Each row has a verdict (pass, warn,
fail, skip) and the evidence.

Use it when bringing up a new feed, against the partner's test system: never against a
production feed. The listener check sends messages marked as tests (MSH-11 T, MSH-3
MLLPCHECK, MSH-10 MLLPCHECK-...), a few hundred in all, some up to --max-size; the sender
check answers with AE, AR, an ACK naming another message and a dropped connection, on
purpose.

Listener rows: accepts a test message; keeps the connection open; exactly one ACK per
message; MSA-2 = MSH-10; the ACK header (applications and facilities swapped, MSH-9
ACK^A01^ACK, a unique MSH-10 per ACK, MSH-11/12 echoed, encoding characters, last segment
terminated); a message in one-byte writes; two messages in one write; non-ASCII text; the
largest message accepted; a second connection while one is open; an idle connection; ACK
latency p50/p99; with --tls the certificate; with --include-malformed a message without
MSH-10 and junk.

Sender rows: framing; waits for each ACK; resends when no ACK comes; after an AE; after an
AR; checks MSA-2 (an ACK naming another message); resends after the connection drops;
reconnects (the delays between attempts). The sender must send at least six messages;
each step waits up to --wait for it.",
    tables: &[&CHECK, &SENDING, &IDENTITY, &ENCODING, &FRAMING, &OUTPUT],
    footer: "\
Exit status: 0 when no row failed, 1 when a row failed, 2 for usage errors and a listener
that cannot be reached at all.",
    run,
    check: |args| parse(args).map(drop),
};

/// The options of the check itself.
#[derive(Debug)]
struct CheckOptions {
    wait: Duration,
    first_wait: Option<Duration>,
    count: usize,
    max_size: Option<usize>,
    include_malformed: bool,
    json: bool,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            wait: Duration::from_secs(10),
            first_wait: None,
            count: 10,
            max_size: None,
            include_malformed: false,
            json: false,
        }
    }
}

/// The largest message `check listener` tries by default.
const DEFAULT_MAX_SIZE: usize = 2 * 1024 * 1024;
/// How long `check sender` waits for the first message by default.
const DEFAULT_FIRST_WAIT: Duration = Duration::from_secs(60);

const CHECK: Group<CheckOptions> = Group {
    title: "Check",
    opts: &[
        Opt {
            spec: Spec {
                long: "wait",
                short: None,
                value: Some("SECS"),
                help: "how long to watch for what a peer does unprompted (default 10): an idle\n\
                       connection (listener); each resend, next message or reconnection (sender)",
            },
            set: |c, v| {
                c.wait = v.seconds()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "first-wait",
                short: None,
                value: Some("SECS"),
                help: "sender: how long to wait for the first message (default 60)",
            },
            set: |c, v| {
                c.first_wait = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "count",
                short: None,
                value: Some("N"),
                help: "listener: messages sent on one connection for the latency and ACK\n\
                       checks (default 10)",
            },
            set: |c, v| {
                c.count = v.count()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-size",
                short: None,
                value: Some("BYTES"),
                help: "listener: the largest message to try (default 2 MiB); sizes step up\n\
                       from 1 KiB and stop at the first refused",
            },
            set: |c, v| {
                c.max_size = Some(v.count()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "include-malformed",
                short: None,
                value: None,
                help: "listener: also send a message without MSH-10 and a frame of junk",
            },
            set: |c, _| {
                c.include_malformed = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "json",
                short: None,
                value: None,
                help: "print the report as one line of JSON instead of a table",
            },
            set: |c, _| {
                c.json = true;
                Ok(())
            },
        },
    ],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Listener,
    Sender,
}

#[derive(Debug)]
struct Config {
    mode: Mode,
    addr: String,
    check: CheckOptions,
    common: Common,
    sender: SenderOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut check = CheckOptions::default();
    let mut common = Common::default();
    let mut sender = SenderOptions::default();
    let mut sender_given = Vec::new();
    while let Some(f) = args.next_option()? {
        let handled = CHECK.apply(&f, &mut check)?
            || {
                let ours = SENDING.apply(&f, &mut sender)? || IDENTITY.apply(&f, &mut sender)?;
                if ours {
                    sender_given.push(f.long());
                }
                ours
            }
            || ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("check"));
        }
    }
    let mut positionals = args.positionals().into_iter();
    let mode = match positionals.next().as_deref() {
        Some("listener") => Mode::Listener,
        Some("sender") => Mode::Sender,
        Some(other) => {
            return Err(UsageError(format!(
                "mllp check checks a listener or a sender, not {other:?}: write mllp check \
                 listener HOST:PORT or mllp check sender [ADDR]"
            )))
        }
        None => {
            return Err(UsageError(
                "mllp check needs what to check: mllp check listener HOST:PORT or mllp check \
                 sender [ADDR]"
                    .into(),
            ))
        }
    };
    let addr = match (mode, positionals.next()) {
        (Mode::Listener, Some(a)) => addr::parse("HOST:PORT", &a, Use::Connect)?,
        (Mode::Listener, None) => {
            return Err(UsageError(
                "mllp check listener needs the listener's address, such as 127.0.0.1:2575".into(),
            ))
        }
        (Mode::Sender, Some(a)) => addr::parse("ADDR", &a, Use::Listen)?,
        (Mode::Sender, None) => format!("127.0.0.1:{}", addr::DEFAULT_PORT),
    };
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp check takes one address; {extra:?} is one too many"
        )));
    }
    let only = |given: bool, name: &str, mode: &str| -> Result<(), UsageError> {
        if given {
            return Err(UsageError(format!(
                "--{name} is for mllp check {mode} only"
            )));
        }
        Ok(())
    };
    match mode {
        Mode::Sender => {
            if let Some(name) = sender_given.first() {
                only(true, name, "listener")?;
            }
            only(check.max_size.is_some(), "max-size", "listener")?;
            only(check.include_malformed, "include-malformed", "listener")?;
            only(
                check.count != CheckOptions::default().count,
                "count",
                "listener",
            )?;
        }
        Mode::Listener => only(check.first_wait.is_some(), "first-wait", "sender")?,
    }
    sender.finish()?;
    Ok(Config {
        mode,
        addr,
        check,
        common,
        sender,
    })
}

/// Runs `mllp check`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    logger::init(
        config.common.log_level(log::LevelFilter::Error),
        config.common.log_format,
    );
    let charset = config.common.charset()?;
    let framing = config.common.framing()?;
    let report = match config.mode {
        Mode::Listener => {
            let addrs = addr::resolve("HOST:PORT", &config.addr)?;
            let s = &config.sender;
            let tls = match s.tls_connector()? {
                None => None,
                Some(client) => {
                    let host = config.addr.rsplit_once(':').map_or("", |(h, _)| h);
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    Some((
                        client,
                        s.tls.domain.clone().unwrap_or_else(|| host.to_owned()),
                    ))
                }
            };
            let target = session::Target {
                addr: config.addr.clone(),
                addrs,
                tls,
                framing,
                connect_timeout: s.connect_timeout.unwrap_or(mllp::DEFAULT_CONNECT_TIMEOUT),
                ack_timeout: s.ack_timeout.unwrap_or(mllp::DEFAULT_ACK_TIMEOUT),
                write_timeout: s.write_timeout.unwrap_or(mllp::DEFAULT_WRITE_TIMEOUT),
            };
            let plan = listener::Plan {
                count: config.check.count,
                max_size: config.check.max_size.unwrap_or(DEFAULT_MAX_SIZE),
                wait: config.check.wait,
                include_malformed: config.check.include_malformed,
                mllp2: config.common.mllp2,
            };
            let mut maker = messages::Maker::new(charset);
            listener::run(&target, &plan, &mut maker).map_err(Failure::fatal)?
        }
        Mode::Sender => {
            let addrs = addr::resolve("ADDR", &config.addr)?;
            let listener = TcpListener::bind(&addrs[..])
                .map_err(|e| Failure::fatal(format!("cannot listen on {}: {e}", config.addr)))?;
            let local = listener
                .local_addr()
                .map_err(|e| Failure::fatal(format!("cannot listen on {}: {e}", config.addr)))?;
            stderr_line(&format!(
                "mllp: listening on {local}: waiting for the sender's messages"
            ));
            let plan = sender::Plan {
                first_wait: config.check.first_wait.unwrap_or(DEFAULT_FIRST_WAIT),
                wait: config.check.wait,
                framing,
                charset,
                mllp2: config.common.mllp2,
            };
            sender::run(listener, plan)
        }
    };
    let text = if config.check.json {
        report.json()
    } else {
        report.table(config.common.quiet)
    };
    super::listen::print_line(&text);
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
    }

    #[test]
    fn modes_and_addresses() {
        let c = parse_v(&["listener", "h:1", "--max-size", "9"]).unwrap();
        assert_eq!(
            (c.mode, c.addr.as_str(), c.check.max_size),
            (Mode::Listener, "h:1", Some(9))
        );
        let c = parse_v(&["sender"]).unwrap();
        assert_eq!((c.mode, c.addr.as_str()), (Mode::Sender, "127.0.0.1:2575"));
        let c = parse_v(&["sender", ":0", "--wait", "0.5", "--json"]).unwrap();
        assert_eq!(
            (c.addr.as_str(), c.check.wait, c.check.json),
            ("127.0.0.1:0", Duration::from_millis(500), true)
        );
        for (args, says) in [
            (&["listener"][..], "needs the listener's address"),
            (&[], "needs what to check"),
            (&["both", "h:1"], "not \"both\""),
            (&["listener", "h:0"], "port 0"),
            (
                &["sender", "--ack-timeout", "3"],
                "--ack-timeout is for mllp check listener only",
            ),
            (
                &["sender", "--max-size", "3"],
                "--max-size is for mllp check listener only",
            ),
            (
                &["listener", "h:1", "--first-wait", "3"],
                "--first-wait is for mllp check sender only",
            ),
            (&["listener", "h:1", "h:2"], "one too many"),
            (
                &["listener", "h:1", "--attempts", "2"],
                "has no option --attempts",
            ),
        ] {
            let e = parse_v(args).expect_err(&format!("{args:?}")).0;
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }
}
