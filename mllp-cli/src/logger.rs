//! The `log` backend: one line per record on standard error, either in the prefix style of the
//! tool's diagnostics (`mllp: error: ...`, the default) or, with `--log-format json`, as one
//! JSON object per line for journald, Loki or ELK:
//!
//! ```text
//! {"time":"2026-12-07T12:00:00.123Z","level":"error","target":"mllp::listener::store",
//!  "event":"store_failed","peer":"10.0.0.5:51234","connection":7,"control_id":"MSG0001",
//!  "message_type":"ADT^A01","store":"amqp://broker/hl7","outcome":"retryable",
//!  "error":"...","message":"message MSG0001 from ... could not be stored in ...: ..."}
//! ```
//!
//! The fields after `target` are the record's key-values (the store's records carry `event`,
//! `peer`, `connection`, `control_id` (MSH-10), `message_type` (MSH-9), `store`, `outcome`,
//! `error`); `message` is the text of the text format. Message bodies are never logged.
//!
//! Lines are written by a thread of their own from a bounded queue ([`QUEUE`] lines): a
//! standard error that nobody reads (a full pipe) never stalls a connection thread. When the
//! queue is full a line is dropped and counted ([`dropped`], `mllp_log_lines_dropped_total`);
//! the first drop after a run of written lines is reported on standard error once it drains.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};

/// How many lines may wait for standard error; beyond that, lines are dropped and counted.
pub const QUEUE: usize = 4096;

/// How long [`flush`] waits for the waiting lines to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// How records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `mllp: LEVEL: text`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

struct Stderr {
    format: OnceLock<LogFormat>,
    queue: OnceLock<Mutex<SyncSender<String>>>,
    /// Lines queued and not yet written.
    waiting: AtomicU64,
    /// Lines dropped because the queue was full.
    dropped: AtomicU64,
}

static LOGGER: Stderr = Stderr {
    format: OnceLock::new(),
    queue: OnceLock::new(),
    waiting: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
};

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // The AMQP client's own records (lapin's tracing events, through `log`) come with
        // -vv only: mllp-amqp logs what an operator needs (a dropped connection, a refused
        // message) in its own words, while the client logs expected events, such as the
        // broker closing a channel on a queue that does not exist yet, as errors.
        let level = if is_amqp_client(metadata.target()) {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Error
        };
        metadata.level() <= log::max_level() && log::max_level() >= level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match self.format.get().copied().unwrap_or_default() {
            LogFormat::Text => format!("mllp: {}: {}", prefix(record.level()), record.args()),
            LogFormat::Json => json_line(record, SystemTime::now()),
        };
        self.send(line);
    }

    fn flush(&self) {
        let end = Instant::now() + FLUSH_LIMIT;
        while self.waiting.load(Ordering::Acquire) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Stderr {
    /// Queues `line` for the writing thread, or drops and counts it when the queue is full.
    fn send(&self, line: String) {
        let Some(queue) = self.queue.get() else {
            super::options::stderr_line(&line);
            return;
        };
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let sent = queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_send(line);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = sent {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lines dropped since the start because standard error did not keep up.
pub fn dropped() -> u64 {
    LOGGER.dropped.load(Ordering::Relaxed)
}

/// Waits (at most 2 s) until the queued lines are written: before the process exits.
pub fn flush() {
    LOGGER.flush();
}

/// Whether a record comes from the AMQP client library rather than from mllp.
fn is_amqp_client(target: &str) -> bool {
    ["lapin", "amq_protocol", "tcp_stream", "async_io", "polling"]
        .iter()
        .any(|c| target == *c || target.starts_with(&format!("{c}::")))
}

/// The word after `mllp: ` for a record of `level`.
pub fn prefix(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// Installs the logger (once; later calls only change the level): lines in `format`, written
/// by a thread of their own.
pub fn init(level: LevelFilter, format: LogFormat) {
    let _ = LOGGER.format.set(format);
    if LOGGER.queue.get().is_none() {
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let started = std::thread::Builder::new()
            .name("mllp-log".into())
            .spawn(move || {
                let mut reported = 0;
                for line in rx {
                    super::options::stderr_line(&line);
                    LOGGER.waiting.fetch_sub(1, Ordering::AcqRel);
                    let dropped = dropped();
                    if dropped > reported && LOGGER.waiting.load(Ordering::Acquire) == 0 {
                        super::options::stderr_line(&format!(
                            "mllp: warning: {} log lines dropped so far: standard error did \
                             not keep up",
                            dropped
                        ));
                        reported = dropped;
                    }
                }
            });
        if started.is_ok() {
            let _ = LOGGER.queue.set(Mutex::new(tx));
        }
    }
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// One record as a JSON object (without the newline).
pub fn json_line(record: &Record<'_>, now: SystemTime) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"time\":");
    string(&mut out, &rfc3339(now));
    out.push_str(",\"level\":");
    string(&mut out, prefix(record.level()));
    out.push_str(",\"target\":");
    string(&mut out, record.target());
    let mut fields = Fields { out: &mut out };
    let _ = record.key_values().visit(&mut fields);
    out.push_str(",\"message\":");
    string(&mut out, &record.args().to_string());
    out.push('}');
    out
}

struct Fields<'a> {
    out: &'a mut String,
}

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.out.push(',');
        string(self.out, key.as_str());
        self.out.push(':');
        if let Some(n) = value.to_u64() {
            let _ = write!(self.out, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.out, "{n}");
        } else if let Some(b) = value.to_bool() {
            let _ = write!(self.out, "{b}");
        } else {
            string(self.out, &value.to_string());
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `t` as an RFC 3339 UTC time with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_796_645_894, 323)), "2026-12-07T12:18:14.323Z");
    }

    #[test]
    fn json_lines_carry_the_key_values_escaped() {
        let kvs: &[(&str, Value<'_>)] = &[
            ("event", Value::from("store_failed")),
            ("connection", Value::from(7u64)),
            ("error", Value::from("broker \"down\"\n")),
        ];
        let args = format_args!("message M1 could not be stored");
        let record = Record::builder()
            .level(log::Level::Error)
            .target("mllp::listener::store")
            .key_values(&kvs)
            .args(args)
            .build();
        let line = json_line(&record, UNIX_EPOCH);
        assert_eq!(
            line,
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\
             \"target\":\"mllp::listener::store\",\"event\":\"store_failed\",\"connection\":7,\
             \"error\":\"broker \\\"down\\\"\\n\",\"message\":\"message M1 could not be stored\"}"
        );
    }
}
