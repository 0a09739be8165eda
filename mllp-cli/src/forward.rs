//! `mllp forward`: from a RabbitMQ queue to an MLLP listener, one message at a time.

use std::path::PathBuf;

use mllp_amqp::{AmqpConfig, Forwarded, Forwarder, OnReject, Outcome};

use super::args::{Args, UsageError};
use super::listen::print_line;
use super::options::{unknown, Common, Failure};
use super::sender_options::{sender_options_help, SenderOptions};
use super::{logger, signal};

/// `mllp forward --help`.
pub const HELP: &str = concat!(
    "Usage: mllp forward --from AMQP_URL --to HOST:PORT [OPTIONS]

Consumes the existing RabbitMQ queue of AMQP_URL one message at a time (prefetch 1: in queue
order) and sends each to the listener at HOST:PORT, acknowledging the delivery only after AA or
CA. A message answered AE or AR is never dropped: see --on-reject. A downstream that cannot be
reached is retried in place, never requeued. Prints `forwarding from URL to HOST:PORT` once
consuming, then each message's MSH-10 and outcome, as `mllp send` does, and a summary.

Options:
  --from URL              amqp[s]://USER:PASS@H1:P1[,H2:P2...]/VHOST?queue=Q (required; Q
                          must exist)
  --to HOST:PORT          the listener to deliver to (required)
  --on-reject P           on AE/AR: hold (default: keep the message at the head of the queue
                          and send it again with backoff, a warning each time) or dead-letter
                          (publish it, confirmed, with its ACK in headers, to the dead-letter
                          queue, then go on). An unsendable message is always dead-lettered
  --dead-letter-queue Q   the dead-letter queue, declared if missing (default: QUEUE.dead)
  --from-tls-ca PEM       CA certificates to trust for an amqps:// broker
  --count N               exit once N deliveries were handled (delivered or rejected)
  --encoding LABEL        character set on the wire (default UTF-8)
",
    sender_options_help!(),
    "  --mllp2                 expect MLLP release 2 commit blocks instead of HL7 ACKs
  --start-bytes HEX --end-bytes HEX   framing (default 0b and 1c0d)
  -q, --quiet             no per-message lines; -v, -vv: more logging

Exit status: 0 when stopped (Ctrl-C, SIGTERM: the message in flight is finished first) or
--count reached, 1 when stopped before --count was reached, 2 for usage errors, a queue that
does not exist and a queue the broker refuses."
);

/// The settings of `mllp forward`.
#[derive(Debug)]
struct Config {
    common: Common,
    from: String,
    to: String,
    from_tls_ca: Option<PathBuf>,
    count: Option<u64>,
    on_reject: OnReject,
    dead_letter_queue: Option<String>,
    sender: SenderOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut sender = SenderOptions::default();
    let (mut from, mut to, mut from_tls_ca, mut count) = (None, None, None, None);
    let (mut on_reject, mut dead_letter_queue) = (OnReject::default(), None);
    while let Some(name) = args.next_option() {
        if common.take(&name, &mut args)? || sender.take(&name, &mut args)? {
            continue;
        }
        match name.as_str() {
            "from" => from = Some(args.value(&name)?),
            "to" => to = Some(args.value(&name)?),
            "from-tls-ca" => from_tls_ca = Some(PathBuf::from(args.value(&name)?)),
            "on-reject" => {
                on_reject = match args.value(&name)?.as_str() {
                    "hold" => OnReject::Hold,
                    "dead-letter" => OnReject::DeadLetter,
                    other => {
                        return Err(UsageError(format!(
                            "--on-reject is hold or dead-letter, not {other:?}"
                        )))
                    }
                }
            }
            "dead-letter-queue" => {
                let q = args.value(&name)?;
                if q.is_empty() {
                    return Err(UsageError("--dead-letter-queue needs a name".into()));
                }
                dead_letter_queue = Some(q);
            }
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
        on_reject,
        dead_letter_queue,
        sender,
    })
}

/// The line printed for one delivery: MSH-10, the outcome, and the ACK's text.
pub fn line(f: &Forwarded) -> String {
    let id = f.control_id.as_deref().unwrap_or("-");
    let (code, text, note) = match &f.outcome {
        Outcome::Delivered(ack) => (ack.code.as_str(), ack_text(ack), ""),
        Outcome::Rejected(ack) => (ack.code.as_str(), ack_text(ack), " (dead-lettered)"),
        Outcome::Unsendable(why) => ("unsendable", Some(why.as_str()), " (dead-lettered)"),
        _ => ("-", None, ""),
    };
    match text {
        Some(t) => format!("{id} {code} {t}{note}"),
        None => format!("{id} {code}{note}"),
    }
}

fn ack_text(ack: &mllp::hl7::Ack) -> Option<&str> {
    ack.text
        .as_deref()
        .or(ack.errors.first().map(String::as_str))
        .filter(|t| !t.is_empty())
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
    let mut forwarder = Forwarder::new(amqp, sender)
        .map_err(|e| Failure::fatal(e.to_string()))?
        .on_reject(config.on_reject);
    if let Some(queue) = &config.dead_letter_queue {
        forwarder = forwarder.dead_letter_queue(queue.as_str());
    }
    let stop = forwarder.stop_handle();
    signal::install(move || stop.stop());
    let failed = |e: mllp_amqp::Error| Failure::fatal(format!("forwarding from {name}: {e}"));
    if forwarder.start().map_err(failed)? {
        let rejects = match forwarder.rejects() {
            OnReject::DeadLetter => "dead-lettered to",
            _ => "held; unsendable ones dead-lettered to",
        };
        print_line(&format!(
            "forwarding from {name} to {} (rejected messages {rejects} {})",
            config.to,
            forwarder.dead_letter_queue_name()
        ));
    }
    let quiet = config.common.quiet;
    let done = forwarder
        .run(config.count, |f| {
            if !quiet {
                print_line(&line(f));
            }
        })
        .map_err(failed)?;
    let stats = forwarder.stats();
    let summary = format!(
        "stopped: {done} deliveries handled: {} delivered, {} dead-lettered, {} held retries",
        stats.delivered, stats.dead_lettered, stats.held_retries
    );
    if quiet {
        log::info!("{summary}");
    } else {
        print_line(&summary);
    }
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
            "--on-reject",
            "dead-letter",
            "--dead-letter-queue",
            "q.rejected",
        ])
        .unwrap();
        assert_eq!(c.on_reject, OnReject::DeadLetter);
        assert_eq!(c.dead_letter_queue.as_deref(), Some("q.rejected"));
        let d = parse_v(&["--from", "u", "--to", "h:1"]).unwrap();
        assert_eq!((d.on_reject, d.dead_letter_queue), (OnReject::Hold, None));
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
            &["--from", "u", "--to", "h:1", "--on-reject", "drop"],
            &["--from", "u", "--to", "h:1", "--dead-letter-queue", ""],
        ] {
            assert!(parse_v(bad).is_err(), "{bad:?}");
        }
    }
}
