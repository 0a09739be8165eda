//! `mllp bench`: the arguments of the benchmark; the measuring is in [`mllp_cli::bench`].

use super::args::{Args, UsageError};
use super::logger;
use super::options::{unknown, Common, Failure};
use mllp_cli::bench::{self, BenchConfig, Pin};

/// `mllp bench --help`.
pub const HELP: &str = "\
Usage: mllp bench [ADDR] [OPTIONS]

Sends valid ADT^A01 messages as fast as acknowledgements come back and prints messages/s,
MB/s and the ACK latency (p50, p99, max). Without ADDR it starts its own listener on a free
loopback port, which answers AA to everything; with ADDR it measures that listener (which
must accept the messages).

Options:
  --messages N            messages in all (default 20000)
  --connections C         concurrent connections, each with its own sender (default 1)
  --size BYTES            approximate message size (default 1024)
  --tls                   use TLS between sender and listener (own listener only; a test
                          certificate built into the binary; the baseline stays plain TCP)
  --baseline              also time a raw TCP ping-pong with the same frames, and the ratio
  --sides                 also time our sender against a raw listener and a raw sender
                          against our listener (implies --baseline)
  --pin CPU[,CPU]         run listener and sender as processes pinned with taskset: both on
                          one CPU, or the listener on the first and the sender on the second
  --rounds N              measure each pairing N times, alternating; report the best (1)
  --warmup N              messages per connection before the clock starts (default 1000)
  --syscalls              also count each side's system calls per message, in untimed runs
                          under `strace -f -c` (own listener only; skipped without strace)
  --encoding LABEL        character set of the messages (default UTF-8)
  --mllp2                 MLLP release 2 commit blocks instead of HL7 ACKs
  --start-bytes HEX --end-bytes HEX   framing (default 0b and 1c0d)
  --max-message-bytes N   the largest message or reply accepted
  -q, -v, -vv             less or more logging on standard error

Exit status: 0 after a complete run, 2 for usage errors and failures.";

fn parse(mut args: Args) -> Result<(Common, BenchConfig), UsageError> {
    let mut common = Common::default();
    let mut config = BenchConfig::default();
    while let Some(name) = args.next_option() {
        if common.take(&name, &mut args)? {
            continue;
        }
        match name.as_str() {
            "messages" => config.messages = at_least_one(&name, args.parsed(&name)?)?,
            "connections" => config.connections = at_least_one(&name, args.parsed(&name)?)?,
            "size" => config.size = at_least_one(&name, args.parsed(&name)?)?,
            "tls" => {
                #[cfg(not(feature = "tls"))]
                return Err(super::options::no_tls("tls"));
                #[cfg(feature = "tls")]
                {
                    config.tls = true;
                }
            }
            "baseline" => config.baseline = true,
            "sides" => config.sides = true,
            "pin" => config.pin = parse_pin(&args.value(&name)?)?,
            "rounds" => config.rounds = at_least_one(&name, args.parsed(&name)?)?,
            "warmup" => config.warmup = args.parsed(&name)?,
            "syscalls" => config.syscalls = true,
            _ => return Err(unknown("bench", &name)),
        }
    }
    let mut positionals = args.positionals().into_iter();
    config.addr = positionals.next();
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

fn at_least_one(name: &str, n: usize) -> Result<usize, UsageError> {
    if n == 0 {
        return Err(UsageError(format!("--{name} must be at least 1")));
    }
    Ok(n)
}

/// Runs `mllp bench`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let (common, config) = parse(args)?;
    logger::init(common.log_level(log::LevelFilter::Warn));
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
        parse(Args::new(v.iter().map(OsString::from)).unwrap())
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
