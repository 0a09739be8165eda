//! A minimal `log` backend: one line per record on standard error, in the one prefix style of
//! the tool's diagnostics: `mllp: error: ...`, `mllp: warning: ...`, `mllp: info: ...`.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

static LOGGER: Stderr = Stderr;

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
        if self.enabled(record.metadata()) {
            super::options::stderr_line(&format!(
                "mllp: {}: {}",
                prefix(record.level()),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
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

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
