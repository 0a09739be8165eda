//! `mllp forward`: from a RabbitMQ queue to an MLLP listener, one message at a time.

use std::path::PathBuf;

use mllp_amqp::{AmqpConfig, Forwarded, Forwarder, OnReject, Outcome};

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::listen::print_line;
use super::metrics::{self, MetricsOptions, Page, Sources, MONITORING};
use super::network::KEEPALIVE;
use super::options::{Common, Failure, ENCODING, FRAMING, OUTPUT};
use super::secret::Secret;
use super::sender_options::{SenderOptions, ATTEMPTS, IDENTITY, SENDING};
use super::{logger, signal};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The forwarder's counters for `--metrics-addr`, bumped by the per-delivery callback.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    unsendable: AtomicU64,
    redelivered: AtomicU64,
}

impl Counters {
    /// Counts one handled delivery.
    fn handled(&self, f: &Forwarded) {
        let counter = match f.outcome {
            Outcome::Delivered(_) => &self.accepted,
            Outcome::Rejected(_) => &self.rejected,
            _ => &self.unsendable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if f.redelivered {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes them to a metrics page.
    fn write(&self, page: &mut Page) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        page.counter(
            "mllp_deliveries_total",
            "Deliveries by outcome: accepted (AA, CA), rejected (a negative acknowledgement), \
             unsendable (dead-lettered unsent).",
            &[
                ("outcome=\"accepted\"", get(&self.accepted)),
                ("outcome=\"rejected\"", get(&self.rejected)),
                ("outcome=\"unsendable\"", get(&self.unsendable)),
            ],
        );
        page.counter(
            "mllp_redeliveries_total",
            "Deliveries the broker had delivered before, to a consumer that did not acknowledge them.",
            &[("", get(&self.redelivered))],
        );
    }
}

/// `mllp forward`.
pub static COMMAND: Command = Command {
    name: "forward",
    usage: "--from AMQP_URL --to HOST:PORT [OPTIONS]",
    summary: "from a RabbitMQ queue to a listener, in order",
    about: "\
Consumes the existing RabbitMQ queue of AMQP_URL one message at a time (prefetch 1: in queue
order) and sends each to the listener at HOST:PORT, acknowledging the delivery only after AA or
CA. A message answered AE or AR is never dropped: see --on-reject.

A downstream that cannot be reached is retried in place, never requeued. Prints `forwarding
from URL to HOST:PORT` once consuming, then each message's MSH-10 and outcome, as `mllp send`
does, and a summary.",
    tables: &[
        &FORWARD,
        &SENDING,
        &ATTEMPTS,
        &IDENTITY,
        &KEEPALIVE,
        &ENCODING,
        &FRAMING,
        &OUTPUT,
        &MONITORING,
    ],
    footer: "\
Exit status: 0 when stopped (Ctrl-C, SIGTERM: the message in flight is finished first) or
--count reached, 1 when stopped before --count was reached, 2 for usage errors and a queue
the broker refuses.",
    run,
    check: |args| parse(args).map(drop),
};

/// The environment variable that names the queue when neither `--from` nor `--from-file`
/// does.
pub const FROM_ENV: &str = "MLLP_FROM";

/// The settings of `mllp forward` of its own.
#[derive(Debug, Default)]
struct ForwardOptions {
    from: Secret,
    to: Option<String>,
    from_tls_ca: Option<PathBuf>,
    count: Option<u64>,
    on_reject: OnReject,
    dead_letter_queue: Option<String>,
}

const FORWARD: Group<ForwardOptions> = Group {
    title: "Queue and downstream",
    opts: &[
        Opt {
            spec: Spec {
                long: "from",
                short: None,
                value: Some("URL"),
                help: "amqp[s]://USER:PASS@H1:P1[,H2:P2...]/VHOST?queue=Q (required: this,\n\
                       --from-file, or the environment variable MLLP_FROM)",
            },
            set: |f, v| {
                f.from.given = Some(v.text());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "from-file",
                short: None,
                value: Some("PATH"),
                help: "read --from from the first line of PATH, so no password shows in `ps`",
            },
            set: |f, v| {
                f.from.file = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "to",
                short: None,
                value: Some("HOST:PORT"),
                help: "the listener to deliver to (required)",
            },
            set: |f, v| {
                f.to = Some(addr::parse("--to", &v.text(), Use::Connect)?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "on-reject",
                short: None,
                value: Some("hold|dead-letter"),
                help: "on AE/AR: hold (default: keep the message at the head of the queue and\n\
                       send it again with backoff, a warning each time) or dead-letter\n\
                       (publish it, confirmed, with its ACK in headers, to the dead-letter\n\
                       queue, then go on); an unsendable message is always dead-lettered",
            },
            set: |f, v| {
                f.on_reject = v.choice(&[
                    ("hold", OnReject::Hold),
                    ("dead-letter", OnReject::DeadLetter),
                ])?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "dead-letter-queue",
                short: None,
                value: Some("QUEUE"),
                help: "the dead-letter queue, declared if missing (default: the queue's name\n\
                       followed by .dead)",
            },
            set: |f, v| {
                let q = v.text();
                if q.is_empty() {
                    return Err(UsageError("--dead-letter-queue needs a name".into()));
                }
                f.dead_letter_queue = Some(q);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "from-tls-ca",
                short: None,
                value: Some("PEM"),
                help: "CA certificates to trust for an amqps:// broker",
            },
            set: |f, v| {
                f.from_tls_ca = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "count",
                short: None,
                value: Some("N"),
                help: "exit once N deliveries were handled (delivered or rejected)",
            },
            set: |f, v| {
                f.count = Some(v.count()?);
                Ok(())
            },
        },
    ],
};

/// The settings of `mllp forward`.
#[derive(Debug)]
struct Config {
    common: Common,
    /// The queue's URL, from `--from`, `--from-file` or [`FROM_ENV`].
    from: Secret,
    to: String,
    from_tls_ca: Option<PathBuf>,
    count: Option<u64>,
    on_reject: OnReject,
    dead_letter_queue: Option<String>,
    sender: SenderOptions,
    metrics: MetricsOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut sender = SenderOptions::default();
    let mut forward = ForwardOptions::default();
    let mut metrics = MetricsOptions::default();
    while let Some(f) = args.next_option()? {
        let handled = FORWARD.apply(&f, &mut forward)?
            || MONITORING.apply(&f, &mut metrics)?
            || SENDING.apply(&f, &mut sender)?
            || ATTEMPTS.apply(&f, &mut sender)?
            || IDENTITY.apply(&f, &mut sender)?
            || KEEPALIVE.apply(&f, &mut sender.keepalive)?
            || ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("forward"));
        }
    }
    let ForwardOptions {
        from,
        to,
        from_tls_ca,
        count,
        on_reject,
        dead_letter_queue,
    } = forward;
    if let Some(extra) = args.positionals().first() {
        return Err(UsageError(format!(
            "mllp forward takes no positional arguments, but {extra:?} was given: use --from \
             and --to"
        )));
    }
    sender.finish()?;
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
        metrics,
    })
}

/// The line printed for one delivery: MSH-10, the outcome, and the ACK's text.
pub fn line(f: &Forwarded) -> String {
    let id = f.control_id.as_deref().unwrap_or("-");
    let (code, text, note) = match &f.outcome {
        Outcome::Delivered(ack) => (ack.code.as_str(), ack.reason(), ""),
        Outcome::Rejected(ack) => (ack.code.as_str(), ack.reason(), " (dead-lettered)"),
        Outcome::Unsendable(why) => ("unsendable", Some(why.as_str()), " (dead-lettered)"),
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
    logger::init(
        config.common.log_level(log::LevelFilter::Warn),
        config.common.log_format,
    );
    addr::resolve("--to", &config.to)?;
    let charset = config.common.charset()?;
    let mut amqp = AmqpConfig::from_url(&config.from.resolve("from", FROM_ENV, None)?)
        .map_err(|e| Failure::fatal(format!("--from: {e}")))?;
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
    let counters = Arc::new(Counters::default());
    let bound = match &config.metrics.addr {
        Some(at) => Some(metrics::bind(at).map_err(Failure::fatal)?),
        None => None,
    };
    let stop = forwarder.stop_handle();
    signal::install(move || stop.stop());
    let failed = |e: mllp_amqp::Error| Failure::fatal(format!("forwarding from {name}: {e}"));
    if forwarder.start().map_err(failed)? {
        let rejects = match forwarder.rejects() {
            OnReject::DeadLetter => "dead-lettered to",
            _ => "held; unsendable ones dead-lettered to",
        };
        let metrics_at = bound
            .as_ref()
            .map(|b| format!(", metrics on {}", b.local_addr()))
            .unwrap_or_default();
        print_line(&format!(
            "forwarding from {name} to {} (rejected messages {rejects} {}){metrics_at}",
            config.to,
            forwarder.dead_letter_queue_name()
        ));
    }
    if let Some(bound) = bound {
        let counters = Arc::clone(&counters);
        bound
            .start(Sources {
                extra: Some(Box::new(move |page| counters.write(page))),
                ..Sources::default()
            })
            .map_err(Failure::fatal)?;
    }
    let quiet = config.common.quiet;
    let done = forwarder
        .run(config.count, |f| {
            counters.handled(f);
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
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
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
            "--attempts",
            "1",
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
            (c.from.given.as_deref(), c.to.as_str()),
            (Some("amqp://h?queue=q"), "h:1")
        );
        assert_eq!((c.count, c.sender.attempts), (Some(3), Some(1)));
        assert_ne!(c.common.charset().unwrap(), mllp::charset::Charset::UTF_8);
        for bad in [
            &["--from", "amqp://h?queue=q"][..],
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
