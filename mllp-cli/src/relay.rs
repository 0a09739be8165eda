//! `mllp relay`: receive messages, spool each durably, acknowledge it, forward it downstream in
//! arrival order (store-and-forward through the library's outbox).

use std::sync::Arc;

use mllp::{Handled, HandledAs, OnReject, Outbox, OutboxConfig};

use super::args::{Args, UsageError};
use super::listen::{self, ListenOptions};
use super::logger;
use super::options::{label_charset, unknown, Common, Failure};
use super::sender_options::SenderOptions;
use super::store_policy::StorePolicy;

/// The file `--dedup` keeps its keys in, inside the spool directory.
pub const DEDUP_INDEX_FILE: &str = "dedup-index";

/// `mllp relay --help`.
pub const HELP: &str = "\
Usage: mllp relay [ADDR] --to HOST:PORT --spool DIR [OPTIONS]

Receives HL7 messages on ADDR (default 127.0.0.1:2575) like `mllp listen`, appends each one
durably to the spool DIR (flushed to disk; one flush serves every connection that wrote
meanwhile), then answers AA (AE when the spool is full or cannot be written), and forwards the
spooled messages to HOST:PORT one at a time, in arrival order, removing each only once it is
acknowledged with AA or CA. A downstream that is down or does not answer is retried with
backoff, without limit unless --retries is given. Prints `listening on ADDR (spooling in DIR,
forwarding to HOST:PORT)` first, then (unless -q) one line per message forwarded or
dead-lettered: `MSH-10 to HOST:PORT: CODE [TEXT]`, as `mllp forward`. Messages spooled and not yet forwarded are forwarded after a
restart, even after a crash or a power cut; some may then be sent twice (at least once).

Options (every option of `mllp listen` except --store, and of `mllp send`):
  --to HOST:PORT          where messages are forwarded (required)
  --spool DIR             the spool directory (required); see `mllp spool DIR`
  --encoding LABEL        character set of incoming messages (default UTF-8)
  --to-encoding LABEL     character set toward HOST:PORT (default: the same as --encoding)
  --on-reject WHAT        downstream AE/AR: dead-letter (default: the message and the ACK go to
                          DIR/dead, forwarding goes on) or hold (stop until
                          `mllp spool DIR requeue-dead`)
  --retries N             attempts after the first before a message is dead-lettered
                          (default: no limit)
  --max-backoff SECS      the longest wait between two attempts (default 30; the first is
                          0.25 s, doubling)
  --max-spool-messages N  --max-spool-bytes N   bounds of the spool (default 1000000
                          messages, 1 GiB); when full, messages are answered AE
  --dedup N               remember the last N keys (MSH-3, MSH-4, MSH-10) spooled, in
                          DIR/dedup-index (or --dedup-index PATH): a resend is answered AA
                          again and not forwarded twice
  --connect-timeout SECS --ack-timeout SECS --write-timeout SECS   toward HOST:PORT
  --tls --tls-ca PEM --tls-domain NAME   TLS toward HOST:PORT
  --to-tls-cert PEM --to-tls-key PEM     client identity toward HOST:PORT
  --tls-cert PEM --tls-key PEM           accept TLS with this certificate (as listen)
  --count N, --max-connections N, --single, --evict-after SECS, --frame-timeout SECS,
  --idle-timeout SECS, --ack-mode MODE, --malformed POLICY, --no-msh18: as `mllp listen`
  --mllp2, --start-bytes HEX, --end-bytes HEX, --max-message-bytes N: both sides
  -q, --quiet, -v, -vv

Exit status: 0 when stopped (or --count reached), 1 when stopped before --count was reached,
2 for usage errors and startup failures (a spool another process uses, a --to address that
cannot be parsed or resolved).";

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
    let (mut to, mut spool, mut to_encoding) = (None, None, None);
    let mut on_reject = OnReject::DeadLetter;
    let (mut max_messages, mut max_bytes, mut max_backoff) = (None, None, None);
    while let Some(name) = args.next_option() {
        if common.take(&name, &mut args)? || listen.take(&name, &mut args)? {
            continue;
        }
        match name.as_str() {
            "to" => to = Some(args.value(&name)?),
            "spool" => spool = Some(args.value(&name)?),
            "to-encoding" => to_encoding = Some(args.value(&name)?),
            "on-reject" => {
                on_reject = match args.value(&name)?.as_str() {
                    "dead-letter" => OnReject::DeadLetter,
                    "hold" => OnReject::Hold,
                    other => {
                        return Err(UsageError(format!(
                            "--on-reject is dead-letter or hold, not {other:?}"
                        )))
                    }
                }
            }
            "max-spool-messages" => max_messages = Some(positive(&name, &mut args)?),
            "max-spool-bytes" => max_bytes = Some(positive(&name, &mut args)?),
            "max-backoff" => max_backoff = Some(args.seconds(&name)?),
            "to-tls-cert" => {
                sender.take("tls-cert", &mut args)?;
            }
            "to-tls-key" => {
                sender.take("tls-key", &mut args)?;
            }
            "store" => {
                return Err(UsageError(
                    "mllp relay keeps messages in its --spool DIR; --store is for mllp listen"
                        .into(),
                ))
            }
            _ => {
                if !sender.take(&name, &mut args)? {
                    return Err(unknown("relay", &name));
                }
            }
        }
    }
    let mut positionals = args.positionals().into_iter();
    let addr = positionals
        .next()
        .unwrap_or_else(|| listen::DEFAULT_ADDR.into());
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp relay takes one address, but {extra:?} was given as well"
        )));
    }
    listen.check()?;
    sender.finish()?;
    let to = to.ok_or_else(|| {
        UsageError("mllp relay needs --to HOST:PORT, where messages are forwarded".into())
    })?;
    let spool = spool.ok_or_else(|| {
        UsageError("mllp relay needs --spool DIR, where messages wait to be forwarded".into())
    })?;
    Ok(Config {
        common,
        addr,
        to,
        spool,
        to_encoding,
        on_reject,
        max_messages,
        max_bytes,
        max_backoff,
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

fn positive(name: &str, args: &mut Args) -> Result<u64, UsageError> {
    let n: u64 = args.parsed(name)?;
    if n == 0 {
        return Err(UsageError(format!("--{name} must be at least 1")));
    }
    Ok(n)
}

/// Runs `mllp relay`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    logger::init(config.common.log_level(log::LevelFilter::Warn));
    let wire = match &config.to_encoding {
        Some(label) => label_charset("to-encoding", label)?,
        None => config.common.charset()?,
    };
    let builder = config.sender.builder(&config.to, &config.common, wire)?;
    // A destination that can never be reached is a startup error, as for `mllp send`: the
    // relay must not answer AA to messages it cannot forward. A host that is down is not.
    mllp::Sender::with_config(config.to.clone(), builder.current_config().clone())
        .and_then(|sender| sender.resolve())
        .map_err(|e| Failure::fatal(format!("--to {}: {e}", config.to)))?;
    let mut outbox_config = OutboxConfig::new(config.to.clone())
        .sender(builder.current_config().clone())
        .on_reject(config.on_reject);
    if let Some(n) = config.sender.retries {
        let retry = outbox_config.retry;
        outbox_config = outbox_config.retry(retry.max_attempts(Some(n.saturating_add(1))));
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
        Err(outbox) => drop(outbox),
    }
    if !config.common.quiet {
        listen::print_line(&format!(
            "spool: {} pending, {} forwarded, {} dead-lettered",
            stats.pending, stats.delivered, stats.dead_lettered
        ));
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(v.iter().map(OsString::from)).unwrap())
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
            "--retries",
            "3",
            "--on-reject",
            "hold",
            "--ack-timeout",
            "2",
        ])
        .unwrap();
        assert_eq!((c.to.as_str(), c.spool.as_str()), ("h:1", "d"));
        assert_eq!(c.sender.retries, Some(3));
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
