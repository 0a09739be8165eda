//! `mllp bench`: the arguments of the benchmark; the measuring is in [`mllp_cli::bench`].

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::logger;
use super::options::{Common, Failure, ENCODING, FRAMING, OUTPUT};
use mllp_cli::bench::{self, BenchConfig, Pin};

/// `mllp bench`.
pub static COMMAND: Command = Command {
    name: "bench",
    usage: "[ADDR] [OPTIONS]",
    summary: "measure messages/s and ACK latency",
    about: "\
Sends valid ADT^A01 messages as fast as acknowledgements come back and prints messages/s,
MB/s and the ACK latency (p50, p99, max). Without ADDR it starts its own listener on a free
loopback port, which answers AA to everything; with ADDR it measures that listener (which
must accept the messages).",
    tables: &[&BENCH, &ENCODING, &FRAMING, &OUTPUT],
    footer: "Exit status: 0 after a complete run, 2 for usage errors and failures.",
    run,
    check: |args| parse(args).map(drop),
};

const BENCH: Group<BenchConfig> = Group {
    title: "Benchmark",
    opts: &[
        Opt {
            spec: Spec {
                long: "messages",
                short: None,
                value: Some("N"),
                help: "messages in all (default 20000)",
            },
            set: |c, v| {
                c.messages = v.count()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "connections",
                short: None,
                value: Some("C"),
                help: "concurrent connections, each with its own sender (default 1)",
            },
            set: |c, v| {
                c.connections = v.count()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "size",
                short: None,
                value: Some("BYTES"),
                help: "approximate message size (default 1024)",
            },
            set: |c, v| {
                c.size = v.count()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls",
                short: None,
                value: None,
                help: "use TLS between sender and listener (own listener only; a test\n\
                       certificate built into the binary; the baseline stays plain TCP)",
            },
            set: |c, _| {
                c.tls = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "baseline",
                short: None,
                value: None,
                help: "also time a raw TCP ping-pong with the same frames, and the ratio",
            },
            set: |c, _| {
                c.baseline = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "sides",
                short: None,
                value: None,
                help: "also time our sender against a raw listener, a raw sender\n\
                       against our listener, and a raw sender with the checks every\n\
                       sender needs (implies --baseline)",
            },
            set: |c, _| {
                c.sides = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "pin",
                short: None,
                value: Some("CPU[,CPU]"),
                help: "run listener and sender as processes pinned with taskset: both on\n\
                       one CPU, or the listener on the first and the sender on the second",
            },
            set: |c, v| {
                c.pin = parse_pin(&v.text())?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "rounds",
                short: None,
                value: Some("N"),
                help: "measure each pairing N times, alternating; report the best (default 1)",
            },
            set: |c, v| {
                c.rounds = v.count()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "warmup",
                short: None,
                value: Some("N"),
                help: "messages per connection before the clock starts (default 1000)",
            },
            set: |c, v| {
                c.warmup = v.parsed()?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "syscalls",
                short: None,
                value: None,
                help: "also count each side's system calls per message, in untimed runs\n\
                       under `strace -f -c` (own listener only; skipped without strace)",
            },
            set: |c, _| {
                c.syscalls = true;
                Ok(())
            },
        },
    ],
};

fn parse(mut args: Args) -> Result<(Common, BenchConfig), UsageError> {
    let mut common = Common::default();
    let mut config = BenchConfig::default();
    while let Some(f) = args.next_option()? {
        let handled = BENCH.apply(&f, &mut config)?
            || ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("bench"));
        }
    }
    #[cfg(not(feature = "tls"))]
    if config.tls {
        return Err(super::options::no_tls("tls"));
    }
    let mut positionals = args.positionals().into_iter();
    config.addr = positionals
        .next()
        .map(|a| addr::parse("ADDR", &a, Use::Connect))
        .transpose()?;
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp bench takes one address, but {extra:?} was given as well"
        )));
    }
    let own_listener_only =
        config.tls || config.baseline || config.sides || config.syscalls || config.pin != Pin::None;
    if config.addr.is_some() && own_listener_only {
        return Err(UsageError(
            "--tls, --baseline, --sides, --syscalls and --pin need the benchmark's own listener: leave out ADDR"
                .into(),
        ));
    }
    config.framing = common.framing()?;
    config.charset = common.charset()?;
    config.mllp2 = common.mllp2;
    Ok((common, config))
}

/// `--pin 0` (both sides on CPU 0) or `--pin 0,1` (listener on 0, sender on 1).
fn parse_pin(text: &str) -> Result<Pin, UsageError> {
    let cpus: Option<Vec<usize>> = text.split(',').map(|c| c.trim().parse().ok()).collect();
    match cpus.as_deref() {
        Some([cpu]) => Ok(Pin::One(*cpu)),
        Some([listener, sender]) => Ok(Pin::Two(*listener, *sender)),
        _ => Err(UsageError(format!(
            "--pin takes one CPU number or two separated by a comma, not {text:?}"
        ))),
    }
}

/// Runs `mllp bench`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let (common, config) = parse(args)?;
    logger::init(common.log_level(log::LevelFilter::Warn), common.log_format);
    let report =
        bench::run(&config).map_err(|e| Failure::fatal(format!("the benchmark failed: {e}")))?;
    bench::print(&report, &mut std::io::stdout())
        .map_err(|e| Failure::fatal(format!("cannot write the report: {e}")))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<(Common, BenchConfig), UsageError> {
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
    }

    #[test]
    fn options_fill_the_config() {
        let (_, c) = parse_v(&[]).unwrap();
        assert_eq!(
            (c.addr, c.messages, c.connections, c.size),
            (None, 20_000, 1, 1024)
        );
        let (_, c) = parse_v(&["h:1", "--messages=5", "--connections", "2", "--mllp2"]).unwrap();
        assert_eq!(c.addr.as_deref(), Some("h:1"));
        assert_eq!((c.messages, c.connections, c.mllp2), (5, 2, true));
        let (_, c) = parse_v(&["--baseline", "--size", "100"]).unwrap();
        assert_eq!((c.addr, c.baseline, c.size), (None, true, 100));
        assert!(parse_v(&["--messages", "0"]).is_err());
        assert!(parse_v(&["a:1", "b:1"]).is_err());
        assert!(parse_v(&["a:1", "--baseline"]).is_err());
        let (_, c) = parse_v(&["--pin", "0,1", "--sides", "--rounds", "3"]).unwrap();
        assert_eq!((c.pin, c.sides, c.rounds), (Pin::Two(0, 1), true, 3));
        assert_eq!(parse_v(&["--pin=1"]).unwrap().1.pin, Pin::One(1));
        assert!(parse_v(&["--pin", "x"]).is_err());
        assert!(parse_v(&["a:1", "--pin", "0"]).is_err());
    }
}
