//! The listener as a C handle: a builder of settings, a message callback (see
//! [`callback`](super::callback)), start on library threads or run on the caller's, counters,
//! stop, free.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::args;
use super::callback::{mllp_message_cb, Callback, IN_CALLBACK};
use super::framing::mllp_framing;
use super::last_error;
use super::listener_stat::{listener_stat, mllp_listener_stat};
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_INVALID_STATE, MLLP_OK};
use super::sender::positive_ms;
use super::tls_options;
use mllp_core::charset::{Charset, Malformed};
use mllp_core::hl7::{AckMode, ReplyKind};
use mllp_core::Error;
use mllp_core::{
    Listener, ListenerConfig, Message, Overflow, Response, RunningListener, ShutdownHandle,
    DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE,
};
use mllp_core::{TlsHandle, TlsVersion};

/// How received messages are acknowledged.
// Each value sets both Rust settings: `ReplyKind` (HL7 acknowledgements or MLLP release 2
// commit blocks) and `AckMode` (original or auto, for HL7 acknowledgements).
pub type mllp_ack_policy = u32;

/// HL7 acknowledgements following the message: original mode (AA/AE/AR) when MSH-15 and
/// MSH-16 are empty, enhanced mode (CA/CE/CR, sent as MSH-15 asks: none for `NE`) otherwise.
/// Only for peers that really speak enhanced mode: many senders fill MSH-15/16 and still wait
/// for an ACK to every message.
pub const MLLP_ACK_POLICY_AUTO: mllp_ack_policy = 0;
/// Original-mode acknowledgements (AA/AE/AR) to every message, whatever MSH-15/16 say. The
/// default, as in Rust and the command line.
pub const MLLP_ACK_POLICY_ORIGINAL: mllp_ack_policy = 1;
/// MLLP release 2 commit blocks: 0x06 when the callback accepted, 0x15 otherwise.
pub const MLLP_ACK_POLICY_MLLP2: mllp_ack_policy = 2;

/// The default stack size of the threads that call the callback: 128 KiB, as in Rust (the
/// callback's own stack use comes on top of the library's, which is small: buffers live on
/// the heap). Raise it with `mllp_listener_builder_set_stack_size` for a callback that keeps
/// large arrays on its stack.
pub const MLLP_LISTENER_DEFAULT_STACK_SIZE: usize = 128 * 1024;
/// The smallest stack size `mllp_listener_builder_set_stack_size` accepts: 64 KiB.
pub const MLLP_LISTENER_MIN_STACK_SIZE: usize = 64 * 1024;
/// The largest stack size `mllp_listener_builder_set_stack_size` accepts: 64 MiB (every
/// connection has a thread with a stack this size).
pub const MLLP_LISTENER_MAX_STACK_SIZE: usize = 64 * 1024 * 1024;

// The C constants are the Rust ones: a change in the core fails the build here.
const _: () = assert!(MLLP_LISTENER_DEFAULT_STACK_SIZE == DEFAULT_STACK_SIZE);
const _: () = assert!(MLLP_LISTENER_MIN_STACK_SIZE == MIN_STACK_SIZE);
const _: () = assert!(MLLP_LISTENER_MAX_STACK_SIZE == MAX_STACK_SIZE);

/// Settings for listeners: made by `mllp_listener_builder_new` with the defaults, changed by
/// the `mllp_listener_builder_set_*` functions, turned into listeners by
/// `mllp_listener_builder_build` (any number of times) and freed by
/// `mllp_listener_builder_free`.
///
/// Every setter checks its value at once: on an error it returns the code, sets the text of
/// `mllp_last_error` and leaves the setting as it was. Files named by the TLS setters are read
/// when the setter is called. Thread safety: one call at a time per builder;
/// `mllp_listener_builder_build` only reads it.
#[derive(Debug, Clone, Default)]
pub struct mllp_listener_builder {
    /// The settings: the very value the Rust API takes, so C and Rust share every default.
    pub(crate) config: ListenerConfig,
    /// `mllp_listener_builder_set_tls_client_ca`: the CA certificates (PEM) client
    /// certificates must chain to.
    pub(crate) client_ca: Option<Vec<u8>>,
    /// `mllp_listener_builder_set_tls_min_version`.
    pub(crate) tls_min_version: TlsVersion,
}

/// Milliseconds as a timeout, 0 meaning none.
fn optional_ms(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms.into()))
}

/// Creates a listener builder with the defaults (those of the Rust `Listener::builder`): default
/// framing, UTF-8 unless MSH-18 names another character set, malformed messages rejected, 10
/// connections at most (a new one beyond is refused, or takes the slot of one silent for 5 s),
/// frame timeout 60 s, no idle timeout, write timeout 10 s, TLS handshake timeout 10 s, 64
/// connections pending their handshake at most, shutdown grace 10 s, `MLLP_ACK_POLICY_ORIGINAL`,
/// 128 KiB thread stacks, plain TCP, TCP keepalive on (300 s, 60 s, 5 probes), every peer allowed,
/// no PROXY protocol. `*out` receives the builder (NULL on failure); free it with
/// `mllp_listener_builder_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_new(
    out: *mut *mut mllp_listener_builder,
) -> mllp_result {
    guard("mllp_listener_builder_new", || {
        // SAFETY: the caller passes a writable pointer or NULL.
        unsafe { args::new_handle(out, mllp_listener_builder::default()) }
    })
}

/// Copies framing settings: the sequences, and the largest message accepted (larger messages
/// are skipped and answered with a negative acknowledgement). `framing` must not be NULL; it
/// may be freed afterwards. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_framing(
    builder: *mut mllp_listener_builder,
    framing: *const mllp_framing,
) -> mllp_result {
    // SAFETY: the caller passes a live framing value or NULL.
    let framing = unsafe { args::borrow(framing) }.map(mllp_framing::get);
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_framing", builder, |b| {
            b.config.framing = framing?;
            Ok(())
        })
    }
}

/// The character set messages are decoded from when MSH-18 names none (or detection is off):
/// a label such as `"UTF-8"` (the default, also for NULL), `"ISO-8859-1"`, `"8859/1"`,
/// `"windows-1252"`. Errors: `MLLP_CHARSET` (unknown label), `MLLP_INVALID_ARGUMENT` (not
/// UTF-8), `MLLP_NULL_ARGUMENT` (`builder` NULL).
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_charset(
    builder: *mut mllp_listener_builder,
    label: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_charset", builder, |b| {
            let label = args::opt_string(label, "the character set label");
            b.config.charset = match label? {
                None => Charset::UTF_8,
                Some(label) => args::check(Charset::from_label(label).map_err(Error::from))?,
            };
            Ok(())
        })
    }
}

/// 1 (the default): decode each message in the character set its MSH-18 names, when it names
/// a known one; 0: always in the listener's character set. Errors: `MLLP_INVALID_ARGUMENT`
/// (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_detect_msh18(
    builder: *mut mllp_listener_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_detect_msh18", builder, |b| {
            b.config.detect_msh18 = args::flag(on, "detect_msh18")?;
            Ok(())
        })
    }
}

/// 1 (the default): a message with bytes not valid in its character set is answered with AE,
/// naming the byte offset, without calling the callback. 0: such bytes reach the callback as
/// U+FFFD (`mllp_message_info.replaced` counts them). Errors: `MLLP_INVALID_ARGUMENT` (not 0
/// or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_reject_malformed(
    builder: *mut mllp_listener_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_reject_malformed", builder, |b| {
            b.config.malformed = if args::flag(on, "reject_malformed")? {
                Malformed::Reject
            } else {
                Malformed::Replace
            };
            Ok(())
        })
    }
}

/// The most connections served at once (at least 1). Default 10. Errors: `MLLP_CONFIG` (0),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_max_connections(
    builder: *mut mllp_listener_builder,
    max: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_max_connections", builder, |b| {
            if max == 0 {
                return Err(args::config(
                    "the maximum number of connections must be at least 1",
                ));
            }
            b.config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
            Ok(())
        })
    }
}

/// What happens to a connection beyond the maximum: 0 (the default) closes it at once; 1
/// leaves it waiting until a connection ends. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_backlog_overflow(
    builder: *mut mllp_listener_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_backlog_overflow", builder, |b| {
            b.config.overflow = if args::flag(on, "backlog_overflow")? {
                Overflow::Backlog
            } else {
                Overflow::Refuse
            };
            Ok(())
        })
    }
}

/// 1, with a maximum of 1 connection: a new connection replaces the current one when that one
/// is idle (no frame under way, no message being handled). Default 0. Errors:
/// `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_replace_idle(
    builder: *mut mllp_listener_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_replace_idle", builder, |b| {
            b.config.replace_idle = args::flag(on, "replace_idle")?;
            Ok(())
        })
    }
}

/// When every slot is taken, a new connection takes the slot of the connection that has gone
/// longest without completing a frame, once that is at least this long, in milliseconds; a
/// connection whose message is in the callback is never chosen. 0: never (the new connection
/// is refused or waits, see `mllp_listener_builder_set_backlog_overflow`). Default 5000.
/// Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_evict_after_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_evict_after_ms", builder, |b| {
            b.config.evict_after = optional_ms(ms);
            Ok(())
        })
    }
}

/// How long a started frame may take to arrive completely, in milliseconds; 0: no limit.
/// Default 60000. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_frame_timeout_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_frame_timeout_ms", builder, |b| {
            b.config.frame_timeout = optional_ms(ms);
            Ok(())
        })
    }
}

/// How long a connection may go without a message before it is closed, in milliseconds; 0
/// (the default): no limit. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_idle_timeout_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_idle_timeout_ms", builder, |b| {
            b.config.idle_timeout = optional_ms(ms);
            Ok(())
        })
    }
}

/// How long writing one acknowledgement may take, in milliseconds; 0: no limit. Default
/// 10000. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_write_timeout_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_write_timeout_ms", builder, |b| {
            b.config.write_timeout = optional_ms(ms);
            Ok(())
        })
    }
}

/// How long a TLS handshake may take, in milliseconds (at least 1). Default 10000. Errors:
/// `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_handshake_timeout_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set(
            "mllp_listener_builder_set_handshake_timeout_ms",
            builder,
            |b| {
                b.config.handshake_timeout = positive_ms(ms, "the TLS handshake timeout")?;
                Ok(())
            },
        )
    }
}

/// The most connections that may wait at once without a slot (at least 1), those in their
/// TLS handshake (or reading their PROXY protocol header) and those that finished it and wait
/// for a slot: a connection runs its handshake before it takes one of the
/// `mllp_listener_builder_set_max_connections` slots, on a thread of its own. When this many
/// are pending, a new connection closes the oldest one still in its handshake (counted in
/// `MLLP_LISTENER_STAT_HANDSHAKES_DROPPED`), so peers that open connections and stall cannot
/// hold more than this many threads and sockets. Default 64. Only used with TLS or the PROXY
/// protocol. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_max_handshakes(
    builder: *mut mllp_listener_builder,
    max: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_max_handshakes", builder, |b| {
            if max == 0 {
                return Err(args::config(
                    "the maximum number of pending TLS handshakes must be at least 1",
                ));
            }
            b.config.max_handshakes = usize::try_from(max).unwrap_or(usize::MAX);
            Ok(())
        })
    }
}

/// How long stopping waits for messages being handled to be acknowledged, in milliseconds
/// (0: not at all). Default 10000. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_shutdown_grace_ms(
    builder: *mut mllp_listener_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set(
            "mllp_listener_builder_set_shutdown_grace_ms",
            builder,
            |b| {
                b.config.shutdown_grace = Duration::from_millis(ms.into());
                Ok(())
            },
        )
    }
}

/// How messages are acknowledged: one of `MLLP_ACK_POLICY_*`. Default
/// `MLLP_ACK_POLICY_ORIGINAL`.
/// Errors: `MLLP_INVALID_ARGUMENT` (another value), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_ack_policy(
    builder: *mut mllp_listener_builder,
    policy: mllp_ack_policy,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_ack_policy", builder, |b| {
            (b.config.reply, b.config.ack_mode) = match policy {
                MLLP_ACK_POLICY_AUTO => (ReplyKind::Hl7, AckMode::Auto),
                MLLP_ACK_POLICY_ORIGINAL => (ReplyKind::Hl7, AckMode::Original),
                MLLP_ACK_POLICY_MLLP2 => (ReplyKind::Mllp2, AckMode::Auto),
                other => {
                    return Err(args::invalid(format_args!(
                        "the ACK policy must be one of MLLP_ACK_POLICY_*, not {other}"
                    )))
                }
            };
            Ok(())
        })
    }
}

/// The stack size of the threads that call the callback, in bytes (from
/// `MLLP_LISTENER_MIN_STACK_SIZE` to `MLLP_LISTENER_MAX_STACK_SIZE`). Default
/// `MLLP_LISTENER_DEFAULT_STACK_SIZE`. Errors: `MLLP_CONFIG` (too small or too large),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_stack_size(
    builder: *mut mllp_listener_builder,
    bytes: usize,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_stack_size", builder, |b| {
            args::check(ListenerConfig::check_stack_size(bytes))?;
            b.config.stack_size = bytes;
            Ok(())
        })
    }
}

/// Frees a listener builder; listeners built from it are not affected. NULL is allowed and
/// does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_free(builder: *mut mllp_listener_builder) {
    guard_or((), || {
        if !builder.is_null() {
            // SAFETY: a non-NULL pointer is a builder from `mllp_listener_builder_new` that the
            // caller gives up here, once.
            drop(unsafe { Box::from_raw(builder) });
        }
    })
}

/// Where a listener is in its life.
enum State {
    /// Bound, not serving yet.
    Bound(Listener),
    /// Serving on library threads (`mllp_listener_start`).
    Started(RunningListener),
    /// Serving on a caller's thread (`mllp_listener_run`).
    Running,
    /// Stopped; it cannot serve again.
    Stopped,
}

/// An MLLP listener bound to an address. Create with `mllp_listener_builder_build`, serve with
/// `mllp_listener_start` or `mllp_listener_run`, stop with `mllp_listener_stop`, free with
/// `mllp_listener_free`.
///
/// Thread safety: every function except `mllp_listener_free` may be called from any thread,
/// concurrently (`mllp_listener_stop` in particular, also from a callback).
/// `mllp_listener_free` must be the last call, made once, outside the callback.
pub struct mllp_listener {
    state: Mutex<State>,
    /// Signalled when a `mllp_listener_run` returns.
    run_done: Condvar,
    handle: ShutdownHandle,
    local_addr: SocketAddr,
    callback: Callback,
    /// The acceptor of a TLS listener, replaced by `mllp_listener_reload_tls_pem`.
    pub(crate) tls: Option<TlsHandle>,
    /// The oldest TLS version, kept for reloads.
    pub(crate) tls_min_version: TlsVersion,
}

impl mllp_listener {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the bound listener out, leaving `next`; `MLLP_INVALID_STATE` when it is not bound.
    fn take_bound(&self, next: State, what: &str) -> std::result::Result<Listener, mllp_result> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, next) {
            State::Bound(listener) => Ok(listener),
            other => {
                let why = match other {
                    State::Started(_) | State::Running => "it is already serving",
                    _ => "it has been stopped",
                };
                *state = other;
                Err(last_error::set(
                    MLLP_INVALID_STATE,
                    format_args!("cannot {what}: {why}"),
                ))
            }
        }
    }

    fn handler(&self) -> impl Fn(&Message<'_>) -> Response + Send + Sync + 'static {
        let callback = self.callback;
        move |message: &Message<'_>| callback.call(message)
    }

    /// Asks the listener to stop; outside a callback, also waits for a started listener and
    /// drops a bound one.
    fn stop(&self) -> mllp_result {
        self.handle.shutdown();
        if IN_CALLBACK.with(Cell::get) {
            return MLLP_OK;
        }
        let taken = {
            let mut state = self.state();
            match &*state {
                State::Running | State::Stopped => None,
                _ => Some(std::mem::replace(&mut *state, State::Stopped)),
            }
        };
        if let Some(State::Started(running)) = taken {
            if let Err(e) = running.join() {
                return last_error::error(&e);
            }
        }
        MLLP_OK
    }
}

/// Creates a listener with the builder's settings and binds it to `bind_address`
/// (`"0.0.0.0:2575"`, `"[::]:2575"`, `"127.0.0.1:0"` for any free port: see
/// `mllp_listener_local_port`). The builder is not changed and may build more listeners, or be
/// freed.
///
/// `callback` (not NULL) is called for every message once the listener serves, with
/// `userdata`, which must stay valid until `mllp_listener_free` returns. Nothing is served
/// until `mllp_listener_start` or `mllp_listener_run`. On success `*out` receives the handle;
/// on failure `*out` is NULL and `mllp_last_error` gives the reason.
///
/// Errors: `MLLP_CONFIG` (bad address), `MLLP_IO` (the address cannot be bound), `MLLP_TLS`
/// (the certificate or key cannot be used, a wrong PKCS#12 password, TLS in a library built
/// without it), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_build(
    builder: *const mllp_listener_builder,
    bind_address: *const c_char,
    callback: mllp_message_cb,
    userdata: *mut c_void,
    out: *mut *mut mllp_listener,
) -> mllp_result {
    guard("mllp_listener_builder_build", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a live builder or NULL.
        let b = unsafe { args::borrow(builder) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let addr = unsafe { args::req_string(bind_address, "the bind address") }?;
        let f = callback.ok_or_else(|| {
            last_error::set(super::result::MLLP_NULL_ARGUMENT, "the callback is NULL")
        })?;
        let mut config = b.config.clone();
        let listener =
            match (config.tls.take(), &b.client_ca) {
                (None, Some(_)) => return Err(args::config(
                    "a client CA needs a TLS identity (mllp_listener_builder_set_tls_identity_*)",
                )),
                (None, None) => args::check(Listener::builder(addr).config(config).bind())?,
                (Some(tls), None) => {
                    let tls = tls.min_version(b.tls_min_version);
                    config.tls = Some(tls);
                    args::check(Listener::builder(addr).config(config).bind())?
                }
                (Some(tls), Some(ca)) => {
                    let acceptor = tls_options::openssl_acceptor(
                        tls.identity,
                        b.tls_min_version,
                        Some(ca.clone()),
                    )?;
                    args::check(
                        Listener::builder(addr)
                            .config(config)
                            .tls_acceptor(acceptor)
                            .bind(),
                    )?
                }
            };
        let handle = Box::into_raw(Box::new(mllp_listener {
            handle: listener.shutdown_handle(),
            tls: listener.tls_handle(),
            tls_min_version: b.tls_min_version,
            local_addr: listener.local_addr(),
            state: Mutex::new(State::Bound(listener)),
            run_done: Condvar::new(),
            callback: Callback { f, userdata },
        }));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// Stores the port the listener is bound to (the one chosen by the system when bound to port
/// 0) in `*port`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_local_port(
    listener: *const mllp_listener,
    port: *mut u16,
) -> mllp_result {
    guard("mllp_listener_local_port", || {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener) }?;
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(port, l.local_addr.port()) }?;
        Ok(MLLP_OK)
    })
}

/// Starts serving on library threads and returns at once: one thread accepts connections, and
/// each connection gets a thread of its own, which calls the callback (see `mllp_message_cb`).
///
/// Errors: `MLLP_INVALID_STATE` (already serving, or stopped), `MLLP_IO` (a thread cannot be
/// started), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_start(listener: *mut mllp_listener) -> mllp_result {
    guard("mllp_listener_start", || {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        let bound = l.take_bound(State::Stopped, "start the listener")?;
        match bound.spawn(l.handler()) {
            Ok(running) => {
                *l.state() = State::Started(running);
                Ok(MLLP_OK)
            }
            Err(e) => Err(last_error::error(&e)),
        }
    })
}

/// Serves on the calling thread: accepts connections (each served by a thread of its own,
/// which calls the callback) until `mllp_listener_stop` is called, from another thread or from
/// a callback; then lets messages being handled finish (the shutdown grace period), closes
/// the connections and returns `MLLP_OK`.
///
/// Errors: `MLLP_INVALID_STATE` (already serving, or stopped), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_run(listener: *mut mllp_listener) -> mllp_result {
    guard("mllp_listener_run", || {
        // SAFETY: the caller passes a live handle or NULL. `mllp_listener_free` waits for this
        // call to return before freeing it.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        let bound = l.take_bound(State::Running, "run the listener")?;
        let result = bound.run(l.handler());
        *l.state() = State::Stopped;
        l.run_done.notify_all();
        match result {
            Ok(()) => Ok(MLLP_OK),
            Err(e) => Err(last_error::error(&e)),
        }
    })
}

/// Stops the listener, gracefully: no new connections are accepted, messages being handled
/// are finished and acknowledged within the shutdown grace period, then connections close.
///
/// Called outside a callback on a listener started with `mllp_listener_start`, it returns once
/// every connection thread has finished (no callback is running or will run). Called from a
/// callback, or on a listener served by `mllp_listener_run`, it returns at once (the
/// `mllp_listener_run` call returns when the listener has stopped). Stopping a listener that
/// never served just closes its socket. A stopped listener cannot serve again; calling this
/// again does nothing. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_stop(listener: *mut mllp_listener) -> mllp_result {
    guard("mllp_listener_stop", || {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        match l.stop() {
            MLLP_OK => Ok(MLLP_OK),
            code => Err(code),
        }
    })
}

/// Stores the listener's counter `which` (`MLLP_LISTENER_STAT_*`, counted since the listener
/// was created) in `*value`. Each counter is read on its own, so counters read while
/// connections are busy may be a few events apart. Thread-safe, also from a callback. Errors:
/// `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_get_stat(
    listener: *const mllp_listener,
    which: mllp_listener_stat,
    value: *mut u64,
) -> mllp_result {
    guard("mllp_listener_get_stat", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(value, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener) }?;
        let v = listener_stat(&l.handle.stats(), which)
            .ok_or_else(|| args::invalid(format_args!("no listener counter number {which}")))?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(value, v) }?;
        Ok(MLLP_OK)
    })
}

/// Stops the listener if it is serving (as `mllp_listener_stop`, waiting for it: for a
/// `mllp_listener_run` on another thread, until that call returns), then frees it. NULL is
/// allowed and does nothing. After it returns the callback is not running and will not run
/// again, so `userdata` may be freed. Must not be called from a callback (that is reported
/// by an error log record and the handle is left alone).
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_free(listener: *mut mllp_listener) {
    guard_or((), || {
        if listener.is_null() {
            return;
        }
        if IN_CALLBACK.with(Cell::get) {
            log::error!("mllp_listener_free was called from a listener callback; ignored");
            return;
        }
        {
            // SAFETY: a non-NULL pointer is a live handle from `mllp_listener_builder_build`.
            let l = unsafe { &*listener };
            l.stop();
            let mut state = l.state();
            while matches!(*state, State::Running) {
                state = l.run_done.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        // SAFETY: the handle is given up here, once; no call is running on it any more (a
        // `mllp_listener_run` has returned, see above).
        drop(unsafe { Box::from_raw(listener) });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{mllp_disposition, MLLP_DISPOSITION_ACCEPT, MLLP_DISPOSITION_REJECT};
    use crate::callback::{mllp_message_info, mllp_response, mllp_response_set_text};
    use crate::listener_stat::*;
    use crate::listener_tls::mllp_listener_builder_set_tls_identity_pem;
    use crate::result::{
        MLLP_CHARSET, MLLP_CONFIG, MLLP_INVALID_ARGUMENT, MLLP_IO, MLLP_NULL_ARGUMENT,
    };
    use mllp_core::Sender;
    use std::ffi::CString;
    use std::sync::atomic::{AtomicU64, Ordering};

    unsafe extern "C" fn cb(
        userdata: *mut c_void,
        info: *const mllp_message_info,
        response: *mut mllp_response,
    ) -> mllp_disposition {
        // SAFETY: the test passes an `AtomicU64` as userdata; `info` is valid during the call.
        let (count, info) = unsafe { (&*(userdata as *const AtomicU64), &*info) };
        count.fetch_add(1, Ordering::SeqCst);
        assert_eq!(info.size, std::mem::size_of::<mllp_message_info>());
        // SAFETY: a NUL-terminated string valid for the call.
        let charset = unsafe { std::ffi::CStr::from_ptr(info.charset) };
        assert_eq!((charset.to_str().unwrap(), info.replaced), ("UTF-8", 0));
        // SAFETY: valid for the call.
        let id = unsafe { std::slice::from_raw_parts(info.control_id, info.control_id_len) };
        if id.starts_with(b"R") {
            let text = CString::new("no thanks").unwrap();
            // SAFETY: the response of this call, and a valid string.
            unsafe { mllp_response_set_text(response, text.as_ptr()) };
            return MLLP_DISPOSITION_REJECT;
        }
        if id.starts_with(b"X") {
            return 77;
        }
        MLLP_DISPOSITION_ACCEPT
    }

    #[test]
    fn start_send_stop_free() {
        let count = AtomicU64::new(0);
        let addr = CString::new("127.0.0.1:0").unwrap();
        let mut l = std::ptr::null_mut();
        let mut port = 0u16;
        let builder = new();
        // SAFETY: valid pointers; `count` outlives the listener.
        unsafe {
            assert_eq!(
                mllp_listener_builder_build(
                    builder,
                    addr.as_ptr(),
                    Some(cb),
                    &count as *const AtomicU64 as *mut c_void,
                    &mut l
                ),
                MLLP_OK
            );
            mllp_listener_builder_free(builder);
            assert_eq!(mllp_listener_local_port(l, &mut port), MLLP_OK);
            assert_eq!(mllp_listener_start(l), MLLP_OK);
            assert_eq!(mllp_listener_start(l), MLLP_INVALID_STATE);
            assert_eq!(mllp_listener_run(l), MLLP_INVALID_STATE);
        }
        let mut sender = Sender::builder(format!("127.0.0.1:{port}"))
            .build()
            .unwrap();
        let msg = |id: &str| format!("MSH|^~\\&|A|B|C|D|1||ADT^A01|{id}|P|2.5\rPID|1\r");
        assert_eq!(sender.send(&msg("A1")).unwrap().code.as_str(), "AA");
        let ack = sender.send(&msg("R1")).unwrap();
        assert_eq!(
            (ack.code.as_str(), ack.text.as_deref()),
            ("AR", Some("no thanks"))
        );
        assert_eq!(sender.send(&msg("X1")).unwrap().code.as_str(), "AE");
        let mut stats = [0u64; 6];
        // SAFETY: a live handle.
        unsafe {
            for (i, which) in [
                MLLP_LISTENER_STAT_MESSAGES,
                MLLP_LISTENER_STAT_ACKS_AA,
                MLLP_LISTENER_STAT_ACKS_AR,
                // Readable from C since the counters come from the core's table.
                MLLP_LISTENER_STAT_HANDLER_PANICS,
                MLLP_LISTENER_STAT_CLOSED_UNANSWERED,
                MLLP_LISTENER_STAT_RECEIVED_BYTES,
            ]
            .into_iter()
            .enumerate()
            {
                assert_eq!(mllp_listener_get_stat(l, which, &mut stats[i]), MLLP_OK);
            }
            let mut unknown = 7;
            assert_eq!(
                mllp_listener_get_stat(l, 999, &mut unknown),
                MLLP_INVALID_ARGUMENT
            );
            assert_eq!(unknown, 0);
            assert_eq!(mllp_listener_stop(l), MLLP_OK);
            assert_eq!(mllp_listener_stop(l), MLLP_OK);
            mllp_listener_free(l);
            mllp_listener_free(std::ptr::null_mut());
        }
        assert_eq!(stats[..5], [3, 1, 1, 0, 0]);
        assert!(stats[5] > 3 * 40, "received bytes {}", stats[5]);
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    fn new() -> *mut mllp_listener_builder {
        let mut b = std::ptr::null_mut();
        // SAFETY: a writable pointer.
        assert_eq!(unsafe { mllp_listener_builder_new(&mut b) }, MLLP_OK);
        b
    }

    #[test]
    fn defaults_are_the_rust_defaults() {
        // The C builder holds the Rust settings value, from its one `Default`.
        let c = mllp_listener_builder::default();
        assert_eq!(
            format!("{:?}", c.config),
            format!("{:?}", ListenerConfig::default())
        );
        assert_eq!(
            format!("{:?}", Listener::builder("127.0.0.1:0").current_config()),
            format!("{:?}", ListenerConfig::default())
        );
        assert_eq!(MLLP_LISTENER_DEFAULT_STACK_SIZE, DEFAULT_STACK_SIZE);
        assert_eq!(MLLP_LISTENER_MIN_STACK_SIZE, MIN_STACK_SIZE);
    }

    #[test]
    fn setters_validate_and_keep_the_old_value() {
        let b = new();
        let label = CString::new("no-such-charset").unwrap();
        // SAFETY: a live builder; NULL and bad values are what is tested.
        unsafe {
            let before = format!("{:?}", (*b).config);
            assert_eq!(mllp_listener_builder_set_max_connections(b, 0), MLLP_CONFIG);
            assert_eq!(mllp_listener_builder_set_max_handshakes(b, 0), MLLP_CONFIG);
            assert!(crate::last_error::text().contains("pending TLS handshakes"));
            assert_eq!(
                mllp_listener_builder_set_handshake_timeout_ms(b, 0),
                MLLP_CONFIG
            );
            assert_eq!(mllp_listener_builder_set_stack_size(b, 1024), MLLP_CONFIG);
            assert!(crate::last_error::text().contains("stack size"));
            assert_eq!(
                mllp_listener_builder_set_ack_policy(b, 3),
                MLLP_INVALID_ARGUMENT
            );
            assert_eq!(
                mllp_listener_builder_set_charset(b, label.as_ptr()),
                MLLP_CHARSET
            );
            for set in [
                mllp_listener_builder_set_detect_msh18,
                mllp_listener_builder_set_reject_malformed,
                mllp_listener_builder_set_backlog_overflow,
                mllp_listener_builder_set_replace_idle,
            ] {
                assert_eq!(set(b, 2), MLLP_INVALID_ARGUMENT);
            }
            assert_eq!(
                mllp_listener_builder_set_framing(b, std::ptr::null()),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(
                mllp_listener_builder_set_tls_identity_pem(b, std::ptr::null(), std::ptr::null()),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(format!("{:?}", (*b).config), before);
            mllp_listener_builder_free(b);
        }
    }

    #[test]
    fn build_errors() {
        let addr = CString::new("127.0.0.1:0").unwrap();
        let mut l = std::ptr::null_mut();
        let b = new();
        // SAFETY: valid pointers.
        unsafe {
            let ud = std::ptr::null_mut();
            assert_eq!(
                mllp_listener_builder_build(b, addr.as_ptr(), None, ud, &mut l),
                MLLP_NULL_ARGUMENT
            );
            assert!(l.is_null());
            assert!(crate::last_error::text().contains("callback"));
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = CString::new(taken.local_addr().unwrap().to_string()).unwrap();
            assert_eq!(
                mllp_listener_builder_build(b, addr.as_ptr(), Some(cb), ud, &mut l),
                MLLP_IO
            );
            mllp_listener_builder_free(b);
        }
    }
}
