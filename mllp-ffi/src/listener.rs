//! The listener as a C handle: options, a message callback, start on library threads or run on
//! the caller's, stop, free.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::ack::{disposition, mllp_disposition};
use super::args;
use super::framing::mllp_framing;
use super::last_error::{self, LastError};
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_INVALID_STATE, MLLP_OK};
use super::sender::{millis, str_option, IdentityFields};
use mllp_core::charset::{Charset, Malformed};
use mllp_core::Framing;
use mllp_core::TlsServerConfig;
use mllp_core::{
    AckPolicy, Listener, ListenerStats, Message, Overflow, Response, RunningListener,
    ShutdownHandle,
};
use mllp_core::{Error, Result};
use mllp_core::{
    DEFAULT_ACK_WRITE_TIMEOUT as DEFAULT_WRITE_TIMEOUT, DEFAULT_EVICT_AFTER, DEFAULT_FRAME_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE,
};

/// How received messages are acknowledged.
pub type mllp_ack_policy = u32;

/// HL7 acknowledgements following the message: original mode (AA/AE/AR) when MSH-15 and
/// MSH-16 are empty, enhanced mode (CA/CE/CR, sent as MSH-15 asks) otherwise. The default.
pub const MLLP_ACK_POLICY_AUTO: mllp_ack_policy = 0;
/// Original-mode acknowledgements (AA/AE/AR) always.
pub const MLLP_ACK_POLICY_ORIGINAL: mllp_ack_policy = 1;
/// MLLP release 2 commit blocks: 0x06 when the callback accepted, 0x15 otherwise.
pub const MLLP_ACK_POLICY_MLLP2: mllp_ack_policy = 2;

/// The default stack size of the threads that call the callback: 256 KiB.
pub const MLLP_LISTENER_DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Listener settings.
///
/// Always fill it with `mllp_listener_options_init` first, then change the fields you need.
/// The library copies what it needs during `mllp_listener_new` (TLS files are read then) and
/// keeps no pointer into it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mllp_listener_options {
    /// Framing, and the largest message accepted (`framing.max_message_size`; larger messages
    /// are skipped and answered with a negative acknowledgement).
    pub framing: mllp_framing,
    /// NULL (the default: UTF-8), or the label of the character set messages are decoded from
    /// (`"ISO-8859-1"`, `"8859/1"`, `"windows-1252"`, ...).
    pub charset: *const c_char,
    /// Non-zero (the default): decode each message in the character set its MSH-18 names,
    /// when it names a known one.
    pub detect_msh18: i32,
    /// Non-zero (the default): a message with bytes not valid in its character set is
    /// answered with AE, naming the byte offset, without calling the callback. 0: such bytes
    /// reach the callback as U+FFFD.
    pub reject_malformed: i32,
    /// The most connections served at once (at least 1). Default 10.
    pub max_connections: u32,
    /// What happens to a connection beyond the maximum: 0 (the default) closes it at once;
    /// non-zero leaves it waiting until a connection ends.
    pub backlog_overflow: i32,
    /// Non-zero, with `max_connections` 1: a new connection replaces the current one when that
    /// one is idle (no frame under way, no message being handled). Default 0.
    pub replace_idle: i32,
    /// How long a started frame may take to arrive completely, in milliseconds; 0: no limit.
    /// Default 60000.
    pub frame_timeout_ms: u32,
    /// How long a connection may go without a message before it is closed, in milliseconds;
    /// 0 (the default): no limit.
    pub idle_timeout_ms: u32,
    /// How long writing one acknowledgement may take, in milliseconds; 0: no limit. Default
    /// 10000.
    pub write_timeout_ms: u32,
    /// How long a TLS handshake may take, in milliseconds (at least 1). Default 10000.
    pub handshake_timeout_ms: u32,
    /// How long stopping waits for messages being handled to be acknowledged, in
    /// milliseconds. Default 10000.
    pub shutdown_grace_ms: u32,
    /// One of `MLLP_ACK_POLICY_*`. Default `MLLP_ACK_POLICY_AUTO`.
    pub ack_policy: mllp_ack_policy,
    /// NULL, or the PEM certificate chain of the server: serve TLS. Set together with
    /// `tls_key_file`.
    pub tls_cert_file: *const c_char,
    /// NULL, or the unencrypted PKCS#8 PEM private key of `tls_cert_file`.
    pub tls_key_file: *const c_char,
    /// The stack size of the threads that call the callback, in bytes (at least 65536).
    /// Default `MLLP_LISTENER_DEFAULT_STACK_SIZE`.
    pub stack_size: usize,
    /// NULL, or a PKCS#12 archive (`.p12` / `.pfx`) holding the server certificate, its chain
    /// and its key: serve TLS. Instead of `tls_cert_file`/`tls_key_file`: naming both kinds is
    /// a configuration error.
    pub tls_pkcs12_file: *const c_char,
    /// NULL (an empty password), or the password of `tls_pkcs12_file`. Set only with
    /// `tls_pkcs12_file`.
    pub tls_pkcs12_password: *const c_char,
    /// When every slot is taken, a new connection takes the slot of the connection that has
    /// gone longest without completing a frame, once that is at least this long, in
    /// milliseconds; a connection whose message is in the callback is never chosen. 0: never
    /// (the new connection is refused or waits, see `backlog_overflow`). Default 5000.
    pub evict_after_ms: u32,
}

impl Default for mllp_listener_options {
    fn default() -> Self {
        mllp_listener_options {
            framing: Framing::default().into(),
            charset: std::ptr::null(),
            detect_msh18: 1,
            reject_malformed: 1,
            max_connections: u32::try_from(DEFAULT_MAX_CONNECTIONS).unwrap_or(u32::MAX),
            backlog_overflow: 0,
            replace_idle: 0,
            frame_timeout_ms: millis(DEFAULT_FRAME_TIMEOUT),
            idle_timeout_ms: 0,
            write_timeout_ms: millis(DEFAULT_WRITE_TIMEOUT),
            handshake_timeout_ms: millis(DEFAULT_HANDSHAKE_TIMEOUT),
            shutdown_grace_ms: millis(DEFAULT_SHUTDOWN_GRACE),
            ack_policy: MLLP_ACK_POLICY_AUTO,
            tls_cert_file: std::ptr::null(),
            tls_key_file: std::ptr::null(),
            stack_size: MLLP_LISTENER_DEFAULT_STACK_SIZE,
            tls_pkcs12_file: std::ptr::null(),
            tls_pkcs12_password: std::ptr::null(),
            evict_after_ms: millis(DEFAULT_EVICT_AFTER),
        }
    }
}

/// Milliseconds as a timeout, 0 meaning none.
fn optional_ms(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms.into()))
}

impl mllp_listener_options {
    /// Binds a listener on `addr` with these options.
    ///
    /// # Safety
    /// The string fields must be NULL or NUL-terminated strings.
    unsafe fn bind(&self, addr: &str) -> Result<Listener> {
        // SAFETY: the caller's contract on the string fields.
        let charset = match unsafe { str_option(self.charset, "charset") }? {
            None => Charset::UTF_8,
            Some(label) => Charset::from_label(label)?,
        };
        let ack_policy = match self.ack_policy {
            MLLP_ACK_POLICY_AUTO => AckPolicy::Auto,
            MLLP_ACK_POLICY_ORIGINAL => AckPolicy::Original,
            MLLP_ACK_POLICY_MLLP2 => AckPolicy::Mllp2,
            other => {
                return Err(Error::Config(format!(
                    "ack_policy must be one of MLLP_ACK_POLICY_*, not {other}"
                )))
            }
        };
        let mut builder = Listener::builder(addr)
            .framing(self.framing.to_framing()?)
            .charset(charset)
            .detect_msh18(self.detect_msh18 != 0)
            .malformed(if self.reject_malformed != 0 {
                Malformed::Reject
            } else {
                Malformed::Replace
            })
            .max_connections(usize::try_from(self.max_connections).unwrap_or(usize::MAX))
            .overflow(if self.backlog_overflow != 0 {
                Overflow::Backlog
            } else {
                Overflow::Refuse
            })
            .replace_idle(self.replace_idle != 0)
            .evict_after(optional_ms(self.evict_after_ms))
            .frame_timeout(optional_ms(self.frame_timeout_ms))
            .idle_timeout(optional_ms(self.idle_timeout_ms))
            .write_timeout(optional_ms(self.write_timeout_ms))
            .handshake_timeout(Duration::from_millis(self.handshake_timeout_ms.into()))
            .shutdown_grace(Duration::from_millis(self.shutdown_grace_ms.into()))
            .ack_policy(ack_policy)
            .stack_size(self.stack_size);
        // SAFETY: as above.
        let identity = unsafe {
            IdentityFields::new(
                self.tls_cert_file,
                self.tls_key_file,
                self.tls_pkcs12_file,
                self.tls_pkcs12_password,
            )
        }?;
        if let Some(identity) = identity.load()? {
            builder = builder.tls(TlsServerConfig::new(identity));
        }
        builder.bind()
    }
}

/// Fills `*opts` with the defaults (see each field). Returns `MLLP_OK`, or
/// `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_options_init(
    opts: *mut mllp_listener_options,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a writable struct or NULL (checked).
        unsafe { args::put(opts, mllp_listener_options::default()) }?;
        Ok(MLLP_OK)
    })
}

/// What the callback is told about a received message. Every pointer is valid, and every
/// byte range unchanged, only until the callback returns; copy what you keep. Byte ranges are
/// not NUL-terminated (an empty one has length 0 and a valid pointer).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mllp_message_info {
    /// The message as UTF-8 text (decoded from its character set; a UTF-8 BOM removed).
    pub text: *const u8,
    /// Bytes at `text`.
    pub text_len: usize,
    /// The frame's payload exactly as received, in its own character set.
    pub raw: *const u8,
    /// Bytes at `raw`.
    pub raw_len: usize,
    /// The control ID the acknowledgement echoes (MSH-10, or BHS-11/FHS-11 for a batch), as
    /// received; empty when the field is empty.
    pub control_id: *const u8,
    /// Bytes at `control_id`.
    pub control_id_len: usize,
    /// MSH-9 whole (e.g. `ADT^A01^ADT_A01`), as received; empty for a batch header.
    pub message_type: *const u8,
    /// Bytes at `message_type`.
    pub message_type_len: usize,
    /// The peer's address as NUL-terminated text, `"ip:port"` (`"[ip6]:port"` for IPv6).
    pub peer: *const c_char,
    /// The listener's number for the connection: the same for every message of one
    /// connection, never reused by this listener.
    pub connection_id: u64,
}

/// The callback's answer beyond its disposition: an optional text (MSA-3, and the ERR segment
/// for an error or reject) and error code. Set with `mllp_response_set_text` and
/// `mllp_response_set_error_code`, only during the callback it was passed to.
pub struct mllp_response {
    text: Option<String>,
    error_code: Option<u16>,
}

/// Called for every received message whose header could be read; returns one of
/// `MLLP_DISPOSITION_*`, which decides the acknowledgement (accept: AA/CA, error: AE/CE,
/// reject: AR/CR; in MLLP release 2 mode a commit ACK or NAK). Any other value is answered
/// with AE "application internal error".
///
/// The acknowledgement is written after the callback returns, so storing the message before
/// returning accept gives "store, then ACK".
///
/// Threads: called on the listener's connection threads, one per connection: at most one call
/// at a time per connection, but calls for different connections run concurrently, so the
/// callback and `userdata` must be thread-safe. A slow callback delays only its own
/// connection. It may call `mllp_listener_stop` (which then returns at once) and
/// `mllp_listener_get_stats`, but not `mllp_listener_free`.
///
/// `info` and `response` are valid only until the callback returns.
pub type mllp_message_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        info: *const mllp_message_info,
        response: *mut mllp_response,
    ) -> mllp_disposition,
>;

/// Sets the response text: MSA-3 and, for an error or reject, the ERR segment's text. `text` is
/// NUL-terminated UTF-8, copied at once (it may be freed when this returns); NULL clears it.
/// Only valid on the `response` passed to a running callback.
///
/// Errors: `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT` (`response` NULL).
#[no_mangle]
pub unsafe extern "C" fn mllp_response_set_text(
    response: *mut mllp_response,
    text: *const c_char,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes the response of its running callback, or NULL.
        let response = unsafe { args::borrow_mut(response) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL.
        let text = unsafe { args::opt_str(text) }?;
        response.text = text.map(str::to_owned);
        Ok(MLLP_OK)
    })
}

/// Sets the HL7 table 0357 error code of the ERR segment (e.g. 200 unsupported message type,
/// 207 application internal error) for an error or reject; ignored for an accept. The
/// defaults are 207 for an error and 200 for a reject. Only valid on the `response` passed to
/// a running callback. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_response_set_error_code(
    response: *mut mllp_response,
    code: u16,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes the response of its running callback, or NULL.
        let response = unsafe { args::borrow_mut(response) }?;
        response.error_code = Some(code);
        Ok(MLLP_OK)
    })
}

/// The C callback and its userdata.
#[derive(Clone, Copy)]
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, *const mllp_message_info, *mut mllp_response) -> u32,
    userdata: *mut c_void,
}

// SAFETY: the callback and `userdata` are only passed back to the callback, which the caller of
// `mllp_listener_new` promises (documentation of `mllp_message_cb`) is safe to call from any
// thread and concurrently.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

thread_local! {
    /// Whether this thread is running a listener callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// An empty byte range for absent fields: a valid pointer with length 0.
const EMPTY: &[u8] = b"\0";

impl Callback {
    fn call(&self, message: &Message<'_>) -> Response {
        let header = message.header();
        let control_id = header.control_id().unwrap_or(&EMPTY[..0]);
        let message_type = header.message_type().unwrap_or(&EMPTY[..0]);
        let peer = PeerText::new(message.peer_addr());
        let info = mllp_message_info {
            text: message.text().as_ptr(),
            text_len: message.text().len(),
            raw: message.raw().as_ptr(),
            raw_len: message.raw().len(),
            control_id: control_id.as_ptr(),
            control_id_len: control_id.len(),
            message_type: message_type.as_ptr(),
            message_type_len: message_type.len(),
            peer: peer.as_ptr(),
            connection_id: message.connection_id(),
        };
        let mut response = mllp_response {
            text: None,
            error_code: None,
        };
        let was = IN_CALLBACK.with(|c| c.replace(true));
        // SAFETY: the callback was given to `mllp_listener_new` with this userdata; `info`, the
        // bytes it points to and `response` live until the call returns.
        let code = unsafe { (self.f)(self.userdata, &info, &mut response) };
        IN_CALLBACK.with(|c| c.set(was));
        let Some(d) = disposition(code) else {
            log::error!(
                "connection {}: the callback returned {code}, which is not an \
                 MLLP_DISPOSITION_*; answering with an error",
                message.connection_id()
            );
            return Response::error("application internal error").error_code(207);
        };
        use mllp_core::hl7::Disposition;
        let r = match (d, response.text) {
            (Disposition::Accept, None) => Response::accept(),
            (Disposition::Accept, Some(text)) => Response::accept_with(text),
            (Disposition::Error, text) => Response::error(text.unwrap_or_default()),
            (Disposition::Reject, text) => Response::reject(text.unwrap_or_default()),
        };
        match response.error_code {
            Some(code) => r.error_code(code),
            None => r,
        }
    }
}

/// A socket address as a NUL-terminated string on the stack.
struct PeerText {
    buf: [u8; 64],
}

impl PeerText {
    fn new(addr: SocketAddr) -> PeerText {
        use std::io::Write;
        let mut buf = [0u8; 64];
        // The longest form, "[v6%scope]:port", is well under 63 bytes; the last byte stays 0.
        let _ = write!(&mut buf[..63], "{addr}");
        PeerText { buf }
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// Counters of one listener since it was created. Each is read on its own, so a snapshot taken
/// while connections are busy may be a few events apart between fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct mllp_listener_stats {
    /// Connections being served now.
    pub connections_open: u64,
    /// Connections served since the start (refused ones not included).
    pub connections_total: u64,
    /// Connections closed at once because every slot was taken.
    pub connections_refused: u64,
    /// Idle connections closed to make room for a new one (`replace_idle`).
    pub connections_replaced: u64,
    /// Messages handed to the callback.
    pub messages: u64,
    /// `AA` acknowledgements sent.
    pub acks_aa: u64,
    /// `AE` acknowledgements sent.
    pub acks_ae: u64,
    /// `AR` acknowledgements sent.
    pub acks_ar: u64,
    /// `CA` acknowledgements sent.
    pub acks_ca: u64,
    /// `CE` acknowledgements sent.
    pub acks_ce: u64,
    /// `CR` acknowledgements sent.
    pub acks_cr: u64,
    /// MLLP release 2 commit acknowledgements sent.
    pub commit_acks: u64,
    /// MLLP release 2 negative commit acknowledgements sent.
    pub commit_naks: u64,
    /// Acknowledgements not sent because MSH-15 asked for none.
    pub acks_suppressed: u64,
    /// Frames whose header could not be read, answered with AR without calling the callback.
    pub nak_unparseable: u64,
    /// Messages not valid in their character set, answered with AE without calling the
    /// callback (`reject_malformed`).
    pub charset_errors: u64,
    /// Bytes received outside any frame and dropped.
    pub skipped_bytes: u64,
    /// Frames larger than the maximum message size (skipped and answered negatively).
    pub oversized_frames: u64,
    /// Connections closed because a started frame did not complete in time.
    pub frame_timeouts: u64,
    /// Connections closed because they were idle too long.
    pub idle_timeouts: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: u64,
    /// Connections closed to make room for a new one because they had gone longest without
    /// completing a frame (`evict_after_ms`).
    pub connections_evicted: u64,
}

impl From<ListenerStats> for mllp_listener_stats {
    fn from(s: ListenerStats) -> Self {
        mllp_listener_stats {
            connections_open: s.connections_open,
            connections_total: s.connections_total,
            connections_refused: s.connections_refused,
            connections_replaced: s.connections_replaced,
            messages: s.messages,
            acks_aa: s.acks_aa,
            acks_ae: s.acks_ae,
            acks_ar: s.acks_ar,
            acks_ca: s.acks_ca,
            acks_ce: s.acks_ce,
            acks_cr: s.acks_cr,
            commit_acks: s.commit_acks,
            commit_naks: s.commit_naks,
            acks_suppressed: s.acks_suppressed,
            nak_unparseable: s.nak_unparseable,
            charset_errors: s.charset_errors,
            skipped_bytes: s.skipped_bytes,
            oversized_frames: s.oversized_frames,
            frame_timeouts: s.frame_timeouts,
            idle_timeouts: s.idle_timeouts,
            tls_failures: s.tls_failures,
            connections_evicted: s.connections_evicted,
        }
    }
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

/// An MLLP listener bound to an address. Create with `mllp_listener_new`, serve with
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
    last_error: LastError,
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
                Err(self
                    .last_error
                    .set(MLLP_INVALID_STATE, format_args!("cannot {what}: {why}")))
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
                return self.last_error.error(&e);
            }
        }
        MLLP_OK
    }
}

/// Creates a listener and binds it to `bind_address` (`"0.0.0.0:2575"`, `"[::]:2575"`,
/// `"127.0.0.1:0"` for any free port: see `mllp_listener_local_port`).
///
/// `opts` may be NULL for the defaults. `callback` (not NULL) is called for every message once
/// the listener serves, with `userdata`, which must stay valid until `mllp_listener_free`
/// returns. Nothing is served until `mllp_listener_start` or `mllp_listener_run`. On success
/// `*out` receives the handle; on failure `*out` is NULL and `mllp_new_error` gives the reason.
///
/// Errors: `MLLP_CONFIG` (bad address or options, both PEM files and a PKCS#12 file),
/// `MLLP_IO` (the address cannot be bound, a TLS file cannot be read), `MLLP_TLS` (the
/// certificate or key cannot be used, a wrong PKCS#12 password),
/// `MLLP_CHARSET` (unknown character set), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_new(
    bind_address: *const c_char,
    opts: *const mllp_listener_options,
    callback: mllp_message_cb,
    userdata: *mut c_void,
    out: *mut *mut mllp_listener,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let addr = unsafe { args::req_str(bind_address) }.map_err(|code| {
            last_error::new_failed(code, "the bind address is NULL or not UTF-8")
        })?;
        let f = callback.ok_or_else(|| {
            last_error::new_failed(super::result::MLLP_NULL_ARGUMENT, "the callback is NULL")
        })?;
        let defaults = mllp_listener_options::default();
        // SAFETY: the caller passes valid options or NULL.
        let opts = unsafe { opts.as_ref() }.unwrap_or(&defaults);
        // SAFETY: the options' strings are NULL or NUL-terminated (the caller's contract).
        let listener = unsafe { opts.bind(addr) }.map_err(|e| last_error::new_error(&e))?;
        let handle = Box::into_raw(Box::new(mllp_listener {
            handle: listener.shutdown_handle(),
            local_addr: listener.local_addr(),
            state: Mutex::new(State::Bound(listener)),
            run_done: Condvar::new(),
            callback: Callback { f, userdata },
            last_error: LastError::default(),
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
    guard(|| {
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
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        let bound = l.take_bound(State::Stopped, "start the listener")?;
        match bound.spawn(l.handler()) {
            Ok(running) => {
                *l.state() = State::Started(running);
                Ok(MLLP_OK)
            }
            Err(e) => Err(l.last_error.error(&e)),
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
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL. `mllp_listener_free` waits for this
        // call to return before freeing it.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        let bound = l.take_bound(State::Running, "run the listener")?;
        let result = bound.run(l.handler());
        *l.state() = State::Stopped;
        l.run_done.notify_all();
        match result {
            Ok(()) => Ok(MLLP_OK),
            Err(e) => Err(l.last_error.error(&e)),
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
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener.cast_const()) }?;
        match l.stop() {
            MLLP_OK => Ok(MLLP_OK),
            code => Err(code),
        }
    })
}

/// Copies the listener's counters into `*stats`. Thread-safe, also from a callback.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_get_stats(
    listener: *const mllp_listener,
    stats: *mut mllp_listener_stats,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener) }?;
        // SAFETY: the caller passes a writable struct or NULL (checked).
        unsafe { args::put(stats, l.handle.stats().into()) }?;
        Ok(MLLP_OK)
    })
}

/// Copies the text of the listener's last error into `buf`, NUL-terminated, as
/// `mllp_decoder_last_error` does. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_last_error(
    listener: *const mllp_listener,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let l = unsafe { args::borrow(listener) }?;
        // SAFETY: the caller passes `cap` writable bytes (or NULL with 0) and a writable size.
        Ok(unsafe { l.last_error.copy_out(buf, cap, needed) })
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
            // SAFETY: a non-NULL pointer is a live handle from `mllp_listener_new`.
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
    use crate::ack::{MLLP_DISPOSITION_ACCEPT, MLLP_DISPOSITION_REJECT};
    use crate::result::{MLLP_CONFIG, MLLP_IO, MLLP_NULL_ARGUMENT};
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
        // SAFETY: valid pointers; `count` outlives the listener.
        unsafe {
            assert_eq!(
                mllp_listener_new(
                    addr.as_ptr(),
                    std::ptr::null(),
                    Some(cb),
                    &count as *const AtomicU64 as *mut c_void,
                    &mut l
                ),
                MLLP_OK
            );
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
        let mut stats = mllp_listener_stats::default();
        // SAFETY: a live handle.
        unsafe {
            assert_eq!(mllp_listener_get_stats(l, &mut stats), MLLP_OK);
            assert_eq!(mllp_listener_stop(l), MLLP_OK);
            assert_eq!(mllp_listener_stop(l), MLLP_OK);
            mllp_listener_free(l);
            mllp_listener_free(std::ptr::null_mut());
        }
        assert_eq!((stats.messages, stats.acks_aa, stats.acks_ar), (3, 1, 1));
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn defaults_match_the_rust_builder() {
        let opts = mllp_listener_options::default();
        // Malformed text is rejected and MSH-18 is read, as in Rust and the CLI.
        assert_ne!(opts.reject_malformed, 0);
        assert_ne!(opts.detect_msh18, 0);
        assert_eq!(opts.evict_after_ms, 5000);
    }

    #[test]
    fn new_errors() {
        let addr = CString::new("127.0.0.1:0").unwrap();
        let mut l = std::ptr::null_mut();
        let bad = mllp_listener_options {
            max_connections: 0,
            ..Default::default()
        };
        // SAFETY: valid pointers.
        unsafe {
            let ud = std::ptr::null_mut();
            assert_eq!(
                mllp_listener_new(addr.as_ptr(), &bad, Some(cb), ud, &mut l),
                MLLP_CONFIG
            );
            assert!(l.is_null());
            assert_eq!(
                mllp_listener_new(addr.as_ptr(), std::ptr::null(), None, ud, &mut l),
                MLLP_NULL_ARGUMENT
            );
            assert!(last_error::new_error_text().contains("callback"));
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = CString::new(taken.local_addr().unwrap().to_string()).unwrap();
            assert_eq!(
                mllp_listener_new(addr.as_ptr(), std::ptr::null(), Some(cb), ud, &mut l),
                MLLP_IO
            );
        }
    }
}
