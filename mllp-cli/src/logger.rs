//! A minimal `log` backend: one line per record on standard error, in the one prefix style of
//! the tool's diagnostics: `mllp: error: ...`, `mllp: warning: ...`, `mllp: info: ...`.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

static LOGGER: Stderr = Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
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
