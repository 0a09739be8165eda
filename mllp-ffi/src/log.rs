//! Forwarding the crate's `log` records to a C callback.
//!
//! The library installs no logger of its own. `mllp_set_log_callback` installs a forwarding
//! logger the first time it is called with a callback; later calls swap the callback under a
//! lock, so once the call returns the old callback is not running and will not run again.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::sync::RwLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::panic::guard;
use super::result::{mllp_result, MLLP_INVALID_ARGUMENT, MLLP_INVALID_STATE, MLLP_OK};

/// A log level. The numbers match the `log` crate's and never change.
pub type mllp_log_level = u32;

/// No records (as a level passed to `mllp_set_log_callback`).
pub const MLLP_LOG_OFF: mllp_log_level = 0;
/// Errors: something failed and the library could not recover on its own.
pub const MLLP_LOG_ERROR: mllp_log_level = 1;
/// Warnings: something unexpected the library worked around (an unknown MSH-18, a peer that
/// closed mid-frame).
pub const MLLP_LOG_WARN: mllp_log_level = 2;
/// Informational: connections opened and closed, listeners started and stopped.
pub const MLLP_LOG_INFO: mllp_log_level = 3;
/// Debug: connection events, sizes, retries.
pub const MLLP_LOG_DEBUG: mllp_log_level = 4;
/// Trace: framing decisions. Message bodies are never logged at any level.
pub const MLLP_LOG_TRACE: mllp_log_level = 5;

/// Receives one log record.
///
/// `userdata` is the pointer given to `mllp_set_log_callback`; `level` one of `MLLP_LOG_*`
/// (never `MLLP_LOG_OFF`); `target` the module that logged (e.g. `"mllp::codec"`) and `message`
/// the text, both NUL-terminated UTF-8 borrowed for the duration of the call only.
///
/// It is called on whichever thread logs, possibly on several threads at once, so it must be
/// thread-safe. It must not call `mllp_set_log_callback` (that call would return
/// `MLLP_INVALID_STATE`); records logged by library functions it calls are dropped.
pub type mllp_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: mllp_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// The callback and its userdata.
#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, mllp_log_level, *const c_char, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: `userdata` is only handed back to the callback; the caller of `mllp_set_log_callback`
// promises (in its documentation) that the callback and userdata may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above; the sink itself is never mutated through a shared reference.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

thread_local! {
    /// Whether this thread is inside the callback (to refuse re-entry instead of deadlocking).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// The formatted record: target, NUL, message, NUL.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct Forwarder;

static FORWARDER: Forwarder = Forwarder;

impl Log for Forwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) || IN_CALLBACK.with(Cell::get) {
            return;
        }
        // Held until the callback returns, so `mllp_set_log_callback` waits for it.
        let slot = SINK.read().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = *slot else {
            return;
        };
        SCRATCH.with(|scratch| {
            let Ok(mut buf) = scratch.try_borrow_mut() else {
                return;
            };
            buf.clear();
            push_c_str(&mut buf, record.target().as_bytes());
            let message_at = buf.len();
            use std::io::Write;
            let _ = write!(buf, "{}", record.args());
            sanitise(&mut buf[message_at..]);
            buf.push(0);
            IN_CALLBACK.with(|c| c.set(true));
            // SAFETY: the callback was given to `mllp_set_log_callback` with this userdata; both
            // strings are NUL-terminated and live until the call returns. The read lock is held
            // during the call so the callback cannot be swapped out while it runs.
            unsafe {
                (sink.callback)(
                    sink.userdata,
                    level_code(record.level()),
                    buf.as_ptr().cast(),
                    buf[message_at..].as_ptr().cast(),
                )
            };
            IN_CALLBACK.with(|c| c.set(false));
        });
        drop(slot);
    }

    fn flush(&self) {}
}

/// Appends `s` with interior NULs replaced, then a NUL.
fn push_c_str(buf: &mut Vec<u8>, s: &[u8]) {
    let at = buf.len();
    buf.extend_from_slice(s);
    sanitise(&mut buf[at..]);
    buf.push(0);
}

/// Replaces NUL bytes, which would cut the C string short.
fn sanitise(bytes: &mut [u8]) {
    for b in bytes {
        if *b == 0 {
            *b = b'?';
        }
    }
}

fn level_code(level: Level) -> mllp_log_level {
    match level {
        Level::Error => MLLP_LOG_ERROR,
        Level::Warn => MLLP_LOG_WARN,
        Level::Info => MLLP_LOG_INFO,
        Level::Debug => MLLP_LOG_DEBUG,
        Level::Trace => MLLP_LOG_TRACE,
    }
}

fn level_filter(level: mllp_log_level) -> Option<LevelFilter> {
    Some(match level {
        MLLP_LOG_OFF => LevelFilter::Off,
        MLLP_LOG_ERROR => LevelFilter::Error,
        MLLP_LOG_WARN => LevelFilter::Warn,
        MLLP_LOG_INFO => LevelFilter::Info,
        MLLP_LOG_DEBUG => LevelFilter::Debug,
        MLLP_LOG_TRACE => LevelFilter::Trace,
        _ => return None,
    })
}

/// Sends the library's log records of `level` and more severe to `callback`.
///
/// Without this call the library logs nothing. `callback` NULL (or `level` `MLLP_LOG_OFF`)
/// turns logging off. A later call replaces the callback and level; when it returns, the
/// previous callback is not running on any thread and will not be called again, so its
/// userdata may be freed. `userdata` is passed to every call of the callback; it must be
/// usable from any thread.
///
/// Errors: `MLLP_INVALID_ARGUMENT` for an unknown level; `MLLP_INVALID_STATE` when called from
/// inside the callback, or when the process already has another logger for the Rust `log`
/// crate (a Rust program embedding this library that installed its own).
///
/// Thread-safe. The level is process-wide.
#[no_mangle]
pub unsafe extern "C" fn mllp_set_log_callback(
    callback: mllp_log_callback,
    userdata: *mut c_void,
    level: mllp_log_level,
) -> mllp_result {
    guard("mllp_set_log_callback", || {
        let filter = level_filter(level).ok_or(MLLP_INVALID_ARGUMENT)?;
        if IN_CALLBACK.with(Cell::get) {
            return Err(MLLP_INVALID_STATE);
        }
        let sink = callback.map(|callback| Sink { callback, userdata });
        if sink.is_some() && log::set_logger(&FORWARDER).is_err() && !is_ours() {
            return Err(MLLP_INVALID_STATE);
        }
        // Waits for callbacks running on other threads to return.
        let mut slot = SINK.write().unwrap_or_else(|e| e.into_inner());
        *slot = sink;
        if is_ours() {
            log::set_max_level(if sink.is_some() {
                filter
            } else {
                LevelFilter::Off
            });
        }
        Ok(MLLP_OK)
    })
}

/// Whether the installed logger is the forwarder.
fn is_ours() -> bool {
    std::ptr::eq(
        log::logger() as *const dyn Log as *const (),
        &FORWARDER as *const Forwarder as *const (),
    )
}
