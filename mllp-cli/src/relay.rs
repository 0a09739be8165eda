//! `mllp relay`: receive messages, spool each durably, acknowledge it, forward it downstream in
//! arrival order (store-and-forward through the library's outbox).

use std::sync::Arc;

use mllp::{Handled, HandledAs, OnReject, Outbox, OutboxConfig};

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::listen::{self, ListenOptions, RECEIVING};
use super::metrics::MONITORING;
use super::network::{ACCESS, KEEPALIVE};
use super::options::{label_charset, Common, Failure, ENCODING, FRAMING, OUTPUT};
use super::sender_options::{identity_group, SenderOptions, ATTEMPTS, SENDING};
use super::store_policy::StorePolicy;
use super::{logger, serve_tls, tls_key};

/// The file `--dedup` keeps its keys in, inside the spool directory.
pub const DEDUP_INDEX_FILE: &str = "dedup-index";

/// `mllp relay`.
pub static COMMAND: Command = Command {
    name: "relay",
    usage: "[ADDR] --to HOST:PORT --spool DIR [OPTIONS]",
    summary: "receive, spool durably, acknowledge, forward in arrival order",
    about: "\
Receives HL7 messages on ADDR (default 127.0.0.1:2575) like `mllp listen`, appends each one
durably to the spool DIR (flushed to disk; one flush serves every connection that wrote
meanwhile), then answers AA (AE when the spool is full or cannot be written), and forwards the
spooled messages to HOST:PORT one at a time, in arrival order, removing each only once it is
acknowledged with AA or CA.

A downstream that is down or does not answer is retried with backoff, without limit unless
--attempts is given. Prints `listening on ADDR (spooling in DIR, forwarding to HOST:PORT)`
first, then (unless -q) one line per message forwarded or dead-lettered: `MSH-10 to
HOST:PORT: CODE [TEXT]`, as `mllp forward` does. Messages spooled and not yet forwarded are
forwarded after a restart, even after a crash or a power cut; some may then be sent twice (at
least once).",
    tables: &[
        &RELAY,
        &RECEIVING,
        &MONITORING,
        &serve_tls::SERVING_TLS,
        &ACCESS,
        &SENDING,
        &ATTEMPTS,
        &TO_IDENTITY,
        &KEEPALIVE,
        &ENCODING,
        &FRAMING,
        &OUTPUT,
    ],
    footer: "\
Exit status: 0 when stopped (or --count reached), 1 when stopped before --count was reached,
2 for usage errors and startup failures (a spool another process uses, a --to address that
cannot be parsed or resolved).",
    run,
    check: |args| parse(args).map(drop),
};

/// The settings of `mllp relay` of its own.
#[derive(Debug, Default)]
struct RelayOptions {
    to: Option<String>,
    spool: Option<String>,
    to_encoding: Option<String>,
    on_reject: Option<OnReject>,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    max_backoff: Option<std::time::Duration>,
}

const RELAY: Group<RelayOptions> = Group {
    title: "Spool and downstream",
    opts: &[
        Opt {
            spec: Spec {
                long: "to",
                short: None,
                value: Some("HOST:PORT"),
                help: "where messages are forwarded (required)",
            },
            set: |r, v| {
                r.to = Some(addr::parse("--to", &v.text(), Use::Connect)?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "spool",
                short: None,
                value: Some("DIR"),
                help: "the spool directory (required); see `mllp spool DIR`",
            },
            set: |r, v| {
                r.spool = Some(v.text());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "to-encoding",
                short: None,
                value: Some("LABEL"),
                help: "character set toward HOST:PORT (default: the same as --encoding)",
            },
            set: |r, v| {
                r.to_encoding = Some(v.text());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "on-reject",
                short: None,
                value: Some("dead-letter|hold"),
                help: "downstream AE/AR: dead-letter (default: the message and the ACK go to\n\
                       DIR/dead, forwarding goes on) or hold (stop until\n\
                       `mllp spool DIR requeue-dead`)",
            },
            set: |r, v| {
                r.on_reject = Some(v.choice(&[
                    ("dead-letter", OnReject::DeadLetter),
                    ("hold", OnReject::Hold),
                ])?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-backoff",
                short: None,
                value: Some("SECS"),
                help: "the longest wait between two attempts (default 30; the first is 0.25 s,\n\
                       doubling)",
            },
            set: |r, v| {
                r.max_backoff = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-spool-messages",
                short: None,
                value: Some("N"),
                help: "when N messages are pending, new ones are answered AE (default 1000000)",
            },
            set: |r, v| {
                r.max_messages = Some(v.count()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-spool-bytes",
                short: None,
                value: Some("N"),
                help: "when N bytes are pending, new messages are answered AE (default 1 GiB)",
            },
            set: |r, v| {
                r.max_bytes = Some(v.count()?);
                Ok(())
            },
        },
    ],
};

/// The client certificate toward HOST:PORT (`--tls-cert` is the listener's own).
pub(crate) const TO_IDENTITY: Group<SenderOptions> = identity_group!(
    "Client certificate, TLS version toward HOST:PORT",
    "to-",
    "MLLP_TO_TLS_KEY_PASSWORD",
    " downstream"
);

/// The settings of `mllp relay`.
#[derive(Debug)]
struct Config {
    common: Common,
    addr: String,
    to: String,
    spool: String,
    to_encoding: Option<String>,
    on_reject: OnReject,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    max_backoff: Option<std::time::Duration>,
    listen: ListenOptions,
    sender: SenderOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut listen = ListenOptions::default();
    let mut sender = SenderOptions::default();
    sender.tls.key_names = tls_key::TO_TLS_KEY;
    let mut relay = RelayOptions::default();
    while let Some(f) = args.next_option()? {
        let handled = RELAY.apply(&f, &mut relay)?
            || RECEIVING.apply(&f, &mut listen)?
            || MONITORING.apply(&f, &mut listen.metrics)?
            || serve_tls::SERVING_TLS.apply(&f, &mut listen)?
            || ACCESS.apply(&f, &mut listen.access)?
            || KEEPALIVE.apply(&f, &mut listen.keepalive)?
            || SENDING.apply(&f, &mut sender)?
            || ATTEMPTS.apply(&f, &mut sender)?
            || TO_IDENTITY.apply(&f, &mut sender)?
            || ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("relay"));
        }
    }
    let mut positionals = args.positionals().into_iter();
    let addr = positionals
        .next()
        .unwrap_or_else(|| listen::DEFAULT_ADDR.into());
    let addr = addr::parse("ADDR", &addr, Use::Listen)?;
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp relay takes one address, but {extra:?} was given as well"
        )));
    }
    listen.check()?;
    sender.finish()?;
    // One --keepalive for both sides.
    sender.keepalive = listen.keepalive;
    let to = relay.to.ok_or_else(|| {
        UsageError("mllp relay needs --to HOST:PORT, where messages are forwarded".into())
    })?;
    let spool = relay.spool.ok_or_else(|| {
        UsageError("mllp relay needs --spool DIR, where messages wait to be forwarded".into())
    })?;
    Ok(Config {
        common,
        addr,
        to,
        spool,
        to_encoding: relay.to_encoding,
        on_reject: relay.on_reject.unwrap_or(OnReject::DeadLetter),
        max_messages: relay.max_messages,
        max_bytes: relay.max_bytes,
        max_backoff: relay.max_backoff,
        listen,
        sender,
    })
}

/// The line printed for each message the relay is done with: MSH-10, the downstream, the
/// outcome and the ACK's text (MSA-3 or ERR), in the words of `mllp forward`.
pub fn line(h: &Handled) -> String {
    let id = h.control_id.as_deref().unwrap_or("-");
    let (code, text, note) = match &h.outcome {
        HandledAs::Delivered(ack) => (ack.code.as_str(), ack.reason(), ""),
        HandledAs::Rejected(ack) => (ack.code.as_str(), ack.reason(), " (dead-lettered)"),
        HandledAs::DeadLettered(why) => ("dead-lettered", why.lines().next(), ""),
        _ => ("-", None, ""),
    };
    match text {
        Some(t) => format!("{id} to {}: {code} {t}{note}", h.to),
        None => format!("{id} to {}: {code}{note}", h.to),
    }
}

/// Runs `mllp relay`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    // A downstream that can never be reached (a name that does not resolve) is a startup
    // error, as for `mllp send`: the relay must not answer AA to messages it cannot forward.
    // A host that is down is not: that is the relay's normal job.
    addr::resolve("--to", &config.to)?;
    logger::init(
        config.common.log_level(log::LevelFilter::Warn),
        config.common.log_format,
    );
    let wire = match &config.to_encoding {
        Some(label) => label_charset("to-encoding", label)?,
        None => config.common.charset()?,
    };
    let builder = config.sender.builder(&config.to, &config.common, wire)?;
    let mut outbox_config = OutboxConfig::new(config.to.clone())
        .sender(builder.current_config().clone())
        .on_reject(config.on_reject);
    if let Some(n) = config.sender.attempts {
        let retry = outbox_config.retry;
        outbox_config = outbox_config.retry(retry.max_attempts((n != 0).then_some(n)));
    }
    if let Some(most) = config.max_backoff {
        let retry = outbox_config.retry;
        outbox_config = outbox_config.retry(
            retry
                .max_backoff(most)
                .initial_backoff(retry.initial_backoff.min(most)),
        );
    }
    if let Some(n) = config.max_messages {
        outbox_config = outbox_config.max_messages(n);
    }
    if let Some(n) = config.max_bytes {
        outbox_config = outbox_config.max_bytes(n);
    }
    if !config.common.quiet {
        // Queued for a printing thread: a standard output nobody reads never stalls delivery.
        let printer = listen::Printer::start();
        outbox_config = outbox_config.on_handled(move |h| printer.line(line(h)));
    }
    let outbox = Outbox::open(&config.spool, outbox_config)
        .map(Arc::new)
        .map_err(|e| Failure::fatal(format!("cannot spool in {}: {e}", config.spool)))?;
    let tls = if config.listen.tls() { " with TLS" } else { "" };
    let (spool, to) = (config.spool.clone(), config.to.clone());
    let index = std::path::Path::new(&config.spool).join(DEDUP_INDEX_FILE);
    let store = config
        .listen
        .dedup(Box::new(Arc::clone(&outbox)), Some(index))?;
    let served = listen::serve(
        &config.addr,
        &config.listen,
        &config.common,
        store,
        // A full or failing spool is answered AE at once (the sender keeps the message).
        StorePolicy::NAK_AT_ONCE,
        Some(Arc::clone(&outbox)),
        |local| format!("listening on {local}{tls} (spooling in {spool}, forwarding to {to})"),
    );
    // The listener and its handler are gone: this is the last handle. Closing lets the
    // message in flight be acknowledged.
    let stats = outbox.stats();
    match Arc::try_unwrap(outbox) {
        Ok(outbox) => {
            if let Err(e) = outbox.close() {
                log::warn!("closing the spool: {e}");
            }
        }
        // Another handle (a scrape of --metrics-addr at this instant) still holds the spool:
        // it is closed when that ends, without the final flush of the delivery position, so
        // messages delivered last may be delivered again after the next start. Say so.
        Err(outbox) => {
            log::warn!(
                "the spool is still in use at exit and is not closed cleanly: the last \
                 deliveries may be repeated after the next start"
            );
            drop(outbox)
        }
    }
    if !config.common.quiet {
        listen::print_line(&format!(
            "spool: {} pending, {} forwarded, {} dead-lettered",
            stats.pending, stats.delivered, stats.dead_lettered
        ));
        let faults = stats.damaged_regions + stats.missing_segments + stats.cursor_lost;
        if faults > 0 {
            listen::print_line(&format!(
                "spool: {faults} faults found at start (see `mllp spool DIR verify`)"
            ));
        }
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
    }

    #[test]
    fn options_of_both_sides() {
        let c = parse_v(&[
            "127.0.0.1:0",
            "--to",
            "h:1",
            "--spool",
            "d",
            "--single",
            "--attempts",
            "4",
            "--on-reject",
            "hold",
            "--ack-timeout",
            "2",
        ])
        .unwrap();
        assert_eq!((c.to.as_str(), c.spool.as_str()), ("h:1", "d"));
        assert_eq!(c.sender.attempts, Some(4));
        assert_eq!(c.on_reject, OnReject::Hold);
        for bad in [
            &["--spool", "d"][..],
            &["--to", "h:1"],
            &["--to", "h:1", "--spool", "d", "--store", "x"],
            &["--to", "h:1", "--spool", "d", "--on-reject", "drop"],
            &["--to", "h:1", "--spool", "d", "--max-spool-bytes", "0"],
            &["--to", "h:1", "--spool", "d", "--nope"],
        ] {
            assert!(parse_v(bad).is_err(), "{bad:?}");
        }
    }
}
