//! Ctrl-C and SIGTERM as a flag, for a graceful shutdown; SIGHUP as a counter, for a reload.
//!
//! std has no signal API and the crate takes no dependency for one, so on Unix the C library's
//! `signal` function is declared here and called directly. The handler does the only things
//! that are safe inside a signal handler: it stores to an atomic flag and restores the default
//! action, so that a second Ctrl-C ends a shutdown that hangs. A watcher thread polls the flag.
//! Elsewhere [`install`] does nothing and the signals keep their default action.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static RECEIVED: AtomicBool = AtomicBool::new(false);
/// How many SIGHUPs arrived.
static HANGUPS: AtomicU64 = AtomicU64::new(0);

/// How often the watcher thread looks at the flag.
const POLL: Duration = Duration::from_millis(100);

#[cfg(unix)]
mod imp {
    use std::os::raw::c_int;
    use std::sync::atomic::Ordering;

    const SIGHUP: c_int = 1;
    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    /// `SIG_DFL`: the default action.
    const SIG_DFL: usize = 0;

    extern "C" {
        // `sighandler_t signal(int signum, sighandler_t handler)`; `sighandler_t` is a
        // function pointer, which has the size of `usize` on every Unix Rust supports.
        fn signal(signum: c_int, handler: usize) -> usize;
    }

    extern "C" fn on_signal(signum: c_int) {
        super::RECEIVED.store(true, Ordering::SeqCst);
        // SAFETY: `signal` is async-signal-safe (POSIX), and SIG_DFL is a valid action.
        unsafe {
            signal(signum, SIG_DFL);
        }
    }

    extern "C" fn on_hangup(_: c_int) {
        super::HANGUPS.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn install_hangup() {
        let handler = on_hangup as extern "C" fn(c_int) as usize;
        // SAFETY: `on_hangup` has the C signature of a signal handler and only touches an
        // atomic, which is async-signal-safe. It stays installed (`signal` on Linux and the
        // BSDs keeps the handler after it runs).
        unsafe {
            signal(SIGHUP, handler);
        }
    }

    pub(super) fn install() {
        let handler = on_signal as extern "C" fn(c_int) as usize;
        for signum in [SIGINT, SIGTERM] {
            // SAFETY: `on_signal` has the C signature of a signal handler and only touches an
            // atomic and calls `signal`, both async-signal-safe.
            unsafe {
                signal(signum, handler);
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn install() {}
    pub(super) fn install_hangup() {}
}

/// Catches SIGINT and SIGTERM from now on, and calls `on_signal` (once, on a thread of its
/// own) when one arrives.
pub fn install(on_signal: impl FnOnce() + Send + 'static) {
    imp::install();
    let spawned = std::thread::Builder::new()
        .name("mllp-signals".into())
        .spawn(move || {
            while !RECEIVED.load(Ordering::SeqCst) {
                std::thread::sleep(POLL);
            }
            on_signal();
        });
    if let Err(e) = spawned {
        log::warn!("cannot watch for Ctrl-C: {e}");
    }
}

/// Catches SIGHUP from now on (instead of ending the process), and calls `on_hangup` on a
/// thread of its own after each one (several close together may make one call).
pub fn on_hangup(mut on_hangup: impl FnMut() + Send + 'static) {
    // Counted from before the handler exists: a SIGHUP right after this call is never missed.
    let mut seen = HANGUPS.load(Ordering::SeqCst);
    imp::install_hangup();
    let spawned = std::thread::Builder::new()
        .name("mllp-sighup".into())
        .spawn(move || {
            while !RECEIVED.load(Ordering::SeqCst) {
                std::thread::sleep(POLL);
                let now = HANGUPS.load(Ordering::SeqCst);
                if now != seen {
                    seen = now;
                    on_hangup();
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot watch for SIGHUP: {e}");
    }
}
