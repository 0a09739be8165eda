//! `mllp forward`: from a RabbitMQ queue to an MLLP listener, one message at a time.

use std::io::Write;
use std::path::PathBuf;

use mllp_amqp::{AmqpConfig, Forwarded, Forwarder, Outcome};

use super::args::{Args, UsageError};
use super::options::{unknown, Common, Failure};
use super::sender_options::{sender_options_help, SenderOptions};
use super::{logger, signal};

/// `mllp forward --help`.
pub const HELP: &str = concat!(
    "Usage: mllp forward --from AMQP_URL --to HOST:PORT [OPTIONS]

Consumes the RabbitMQ queue of AMQP_URL one message at a time (prefetch 1: in queue order) and
sends each to the listener at HOST:PORT, acknowledging the delivery only after AA or CA. On AE
or AR the delivery is rejected without requeueing (the queue's dead-letter exchange keeps it)
and the ACK's text is logged; a downstream that cannot be reached is retried in place, never
requeued. Prints each message's MSH-10 and outcome, as `mllp send` does.

Options:
  --from URL              amqp[s]://USER:PASS@H1:P1[,H2:P2...]/VHOST?queue=Q (required)
  --to HOST:PORT          the listener to deliver to (required)
  --from-tls-ca PEM       CA certificates to trust for an amqps:// broker
  --count N               exit once N deliveries were handled (delivered or rejected)
  --encoding LABEL        character set on the wire (default UTF-8)
",
    sender_options_help!(),
    "  --mllp2                 expect MLLP release 2 commit blocks instead of HL7 ACKs
  --start-bytes HEX --end-bytes HEX   framing (default 0b and 1c0d)
  -q, --quiet             no per-message lines; -v, -vv: more logging

Exit status: 0 when stopped (Ctrl-C, SIGTERM: the message in flight is finished first) or
--count reached, 1 when stopped before --count was reached, 2 for usage errors and a queue
the broker refuses."
);

/// The settings of `mllp forward`.
#[derive(Debug)]
struct Config {
    common: Common,
    from: String,
    to: String,
    from_tls_ca: Option<PathBuf>,
    count: Option<u64>,
    sender: SenderOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut sender = SenderOptions::default();
    let (mut from, mut to, mut from_tls_ca, mut count) = (None, None, None, None);
    while let Some(name) = args.next_option() {
        if common.take(&name, &mut args)? || sender.take(&name, &mut args)? {
            continue;
        }
        match name.as_str() {
            "from" => from = Some(args.value(&name)?),
            "to" => to = Some(args.value(&name)?),
            "from-tls-ca" => from_tls_ca = Some(PathBuf::from(args.value(&name)?)),
            "count" => {
                let n: u64 = args.parsed(&name)?;
                if n == 0 {
                    return Err(UsageError("--count must be at least 1".into()));
                }
                count = Some(n);
            }
            _ => return Err(unknown("forward", &name)),
        }
    }
    if let Some(extra) = args.positionals().first() {
        return Err(UsageError(format!(
            "mllp forward takes no positional arguments, but {extra:?} was given: use --from \
             and --to"
        )));
    }
    sender.finish()?;
    let from = from.ok_or_else(|| {
        UsageError("mllp forward needs --from amqp://.../VHOST?queue=NAME".into())
    })?;
    let to = to.ok_or_else(|| UsageError("mllp forward needs --to HOST:PORT".into()))?;
    Ok(Config {
        common,
        from,
        to,
        from_tls_ca,
        count,
        sender,
    })
}

/// The line printed for one delivery: MSH-10, the outcome, and the ACK's text.
pub fn line(f: &Forwarded) -> String {
    let id = f.control_id.as_deref().unwrap_or("-");
    let (code, text, note) = match &f.outcome {
        Outcome::Delivered(ack) => (ack.code.as_str(), ack.reason(), ""),
        Outcome::Rejected(ack) => (ack.code.as_str(), ack.reason(), " (rejected)"),
        Outcome::Unsendable(why) => ("unsendable", Some(why.as_str()), " (rejected)"),
        _ => ("-", None, ""),
    };
    match text {
        Some(t) => format!("{id} {code} {t}{note}"),
        None => format!("{id} {code}{note}"),
    }
}

/// Runs `mllp forward`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    logger::init(config.common.log_level(log::LevelFilter::Warn));
    let charset = config.common.charset()?;
    let mut amqp =
        AmqpConfig::from_url(&config.from).map_err(|e| Failure::fatal(format!("--from: {e}")))?;
    if let Some(path) = &config.from_tls_ca {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            Failure::fatal(format!(
                "cannot read the CA certificates {}: {e}",
                path.display()
            ))
        })?;
        amqp = amqp.tls_ca_pem(pem);
    }
    let sender = config.sender.sender(&config.to, &config.common, charset)?;
    let name = amqp.name();
    let mut forwarder = Forwarder::new(amqp, sender).map_err(|e| Failure::fatal(e.to_string()))?;
    let stop = forwarder.stop_handle();
    signal::install(move || stop.stop());
    log::info!("forwarding from {name} to {}", config.to);
    let quiet = config.common.quiet;
    let (mut delivered, mut rejected) = (0u64, 0u64);
    let done = forwarder
        .run(config.count, |f| {
            if matches!(f.outcome, Outcome::Delivered(_)) {
                delivered += 1;
            } else {
                rejected += 1;
            }
            if !quiet {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", line(f));
                let _ = out.flush();
            }
        })
        .map_err(|e| Failure::fatal(format!("forwarding from {name}: {e}")))?;
    log::info!("{done} deliveries handled: {delivered} delivered, {rejected} rejected");
    match config.count {
        Some(n) if done < n => Err(Failure::negative(format!(
            "stopped before {n} deliveries were handled ({done} were)"
        ))),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(v.iter().map(OsString::from)).unwrap())
    }

    #[test]
    fn options_and_what_is_required() {
        let c = parse_v(&[
            "--from",
            "amqp://h?queue=q",
            "--to",
            "h:1",
            "--count",
            "3",
            "--retries",
            "0",
            "--ack-timeout",
            "2",
            "--encoding",
            "latin1",
        ])
        .unwrap();
        assert_eq!(
            (c.from.as_str(), c.to.as_str()),
            ("amqp://h?queue=q", "h:1")
        );
        assert_eq!((c.count, c.sender.retries), (Some(3), Some(0)));
        assert!(c.common.has_encoding());
        for bad in [
            &["--to", "h:1"][..],
            &["--from", "amqp://h?queue=q"],
            &["--from", "u", "--to", "h:1", "extra"],
            &["--from", "u", "--to", "h:1", "--count", "0"],
            &["--from", "u", "--to", "h:1", "--tls-cert", "c"],
            &["--from", "u", "--to", "h:1", "--nope"],
        ] {
            assert!(parse_v(bad).is_err(), "{bad:?}");
        }
    }
}
