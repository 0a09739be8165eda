//! The blocking sender as a C handle: a builder of settings, send with the ACK into a caller
//! buffer, counters, close, free.

use std::ffi::{c_char, c_int};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use super::ack_table::{ack_code, mllp_ack_code, MLLP_ACK_NONE};
use super::args::{self, OutBuf};
use super::framing::mllp_framing;
use super::last_error;
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_INVALID_STATE, MLLP_OK};
use super::tls_options;
use mllp_core::charset::Charset;
use mllp_core::hl7::ReplyKind;
use mllp_core::{CharsetError, Error};
use mllp_core::{Identity, TlsClientConfig};
use mllp_core::{Sender, SenderConfig, SenderStats};

/// Settings for senders: made by `mllp_sender_builder_new` with the defaults, changed by the
/// `mllp_sender_builder_set_*` functions, turned into senders by `mllp_sender_builder_build`
/// (any number of times, to any addresses) and freed by `mllp_sender_builder_free`.
///
/// Every setter checks its value at once: on an error it returns the code, sets the text of
/// `mllp_last_error` and leaves the setting as it was. Files named by the TLS setters are read
/// when the setter is called. Thread safety: one call at a time per builder;
/// `mllp_sender_builder_build` only reads it.
#[derive(Debug, Clone, Default)]
pub struct mllp_sender_builder {
    /// The settings: the very value the Rust API takes, so C and Rust share every default.
    pub(crate) config: SenderConfig,
    /// Whether a character set was set: messages are then UTF-8 and encoded into it before
    /// sending; otherwise their bytes are sent as they are.
    encode: bool,
}

impl mllp_sender_builder {
    /// The settings, for the outbox's delivery.
    pub(crate) fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Whether messages are UTF-8 text to encode into the configured character set.
    pub(crate) fn encodes(&self) -> bool {
        self.encode
    }

    /// The TLS configuration, TLS switched on.
    fn tls(&mut self) -> &mut TlsClientConfig {
        self.config.tls.get_or_insert_with(TlsClientConfig::new)
    }
}

/// Milliseconds that must be at least 1, for the setting `what`.
pub(crate) fn positive_ms(ms: u32, what: &str) -> Result<Duration, mllp_result> {
    if ms == 0 {
        return Err(args::config(format_args!(
            "{what} must be at least 1 millisecond"
        )));
    }
    Ok(Duration::from_millis(ms.into()))
}

/// Creates a sender builder with the defaults (those of the Rust `Sender::builder`): default
/// framing, messages sent as the bytes given, connect timeout 10 s, ACK timeout 30 s, write
/// timeout 10 s, no total timeout, 5 attempts with a backoff of 250 ms doubling to 30 s (half of
/// it random), TCP_NODELAY on, TCP keepalive on (300 s, 60 s, 5 probes), original HL7 acknowledgements (not MLLP release 2), AR/CR
/// returned at once, plain TCP. `*out` receives the builder (NULL on failure); free it with
/// `mllp_sender_builder_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_new(
    out: *mut *mut mllp_sender_builder,
) -> mllp_result {
    guard("mllp_sender_builder_new", || {
        // SAFETY: the caller passes a writable pointer or NULL.
        unsafe { args::new_handle(out, mllp_sender_builder::default()) }
    })
}

/// How long connecting may take, TLS handshake included, in milliseconds (at least 1).
/// Default 10000. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_connect_timeout_ms(
    builder: *mut mllp_sender_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_connect_timeout_ms", builder, |b| {
            b.config.timeouts.connect = positive_ms(ms, "the connect timeout")?;
            Ok(())
        })
    }
}

/// How long the acknowledgement may take once the message is written, in milliseconds (at
/// least 1): wall time for the whole reply, however slowly its bytes arrive. Default 30000.
/// Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_ack_timeout_ms(
    builder: *mut mllp_sender_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_ack_timeout_ms", builder, |b| {
            b.config.timeouts.ack = positive_ms(ms, "the ACK timeout")?;
            Ok(())
        })
    }
}

/// How long writing the whole message may take, in milliseconds (at least 1): wall time,
/// however slowly the peer reads. Default 10000. Errors: `MLLP_CONFIG` (0),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_write_timeout_ms(
    builder: *mut mllp_sender_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_write_timeout_ms", builder, |b| {
            b.config.timeouts.write = positive_ms(ms, "the write timeout")?;
            Ok(())
        })
    }
}

/// Bounds one `mllp_sender_send` in all, every attempt and backoff delay included, in
/// milliseconds; 0 (the default) means no bound beyond the number of attempts. When it passes,
/// the send ends with `MLLP_NOT_DELIVERED` or `MLLP_UNCONFIRMED` (as the attempt under way
/// stood) and the last-error text names the total timeout; no attempt starts that could not
/// begin before it. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_total_timeout_ms(
    builder: *mut mllp_sender_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_total_timeout_ms", builder, |b| {
            b.config.timeouts.total = (ms != 0).then(|| Duration::from_millis(ms.into()));
            Ok(())
        })
    }
}

/// The retry policy: the most attempts per message, the first included (1: no retry; 0: no
/// limit), the delay before the second attempt, and the longest delay, in milliseconds (not
/// below the first delay). The delay grows by the backoff factor after each attempt (see
/// `mllp_sender_builder_set_retry_backoff`). Defaults 5, 250, 30000. Errors: `MLLP_CONFIG`
/// (`max_backoff_ms` below `initial_backoff_ms`), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_retry(
    builder: *mut mllp_sender_builder,
    max_attempts: u32,
    initial_backoff_ms: u32,
    max_backoff_ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_retry", builder, |b| {
            b.config.retry = retry_from_c(
                b.config.retry,
                max_attempts,
                initial_backoff_ms,
                max_backoff_ms,
            )?;
            Ok(())
        })
    }
}

/// `retry` with the arguments of a C `*_set_retry` function (0 attempts: no limit;
/// milliseconds), checked: the policy, or why it is invalid.
pub(crate) fn retry_from_c(
    retry: mllp_core::RetryPolicy,
    max_attempts: u32,
    initial_backoff_ms: u32,
    max_backoff_ms: u32,
) -> Result<mllp_core::RetryPolicy, mllp_result> {
    let retry = retry
        .max_attempts((max_attempts != 0).then_some(max_attempts))
        .initial_backoff(Duration::from_millis(initial_backoff_ms.into()))
        .max_backoff(Duration::from_millis(max_backoff_ms.into()));
    args::check(retry.validate())?;
    Ok(retry)
}

/// How the delay between attempts grows and varies: each delay is the previous one times
/// `factor` (at least 1, finite), up to the longest delay; then a random part of up to
/// `jitter` of it (0 to 1) is taken off, so that senders cut off together do not come back
/// together. Defaults 2.0 and 0.5. Errors: `MLLP_CONFIG` (out of range, NaN),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_retry_backoff(
    builder: *mut mllp_sender_builder,
    factor: f64,
    jitter: f64,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_retry_backoff", builder, |b| {
            let retry = b.config.retry.factor(factor).jitter(jitter);
            args::check(retry.validate())?;
            b.config.retry = retry;
            Ok(())
        })
    }
}

/// Copies framing settings (start and end sequences, the largest reply accepted). `framing`
/// must not be NULL; it may be freed afterwards. Default: the defaults of `mllp_framing_new`.
/// Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_framing(
    builder: *mut mllp_sender_builder,
    framing: *const mllp_framing,
) -> mllp_result {
    // SAFETY: the caller passes a live framing value or NULL.
    let framing = unsafe { args::borrow(framing) }.map(mllp_framing::get);
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_framing", builder, |b| {
            b.config.framing = framing?;
            Ok(())
        })
    }
}

/// NULL (the default): messages are sent as the bytes given. Otherwise a character set label
/// (`"UTF-8"`, `"ISO-8859-1"`, `"8859/1"`, `"windows-1252"`, ...): messages must then be UTF-8
/// and are encoded to this character set before sending. Errors: `MLLP_CHARSET` (unknown
/// label), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT` (`builder` NULL).
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_charset(
    builder: *mut mllp_sender_builder,
    label: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_charset", builder, |b| {
            let label = args::opt_string(label, "the character set label");
            match label? {
                None => {
                    b.config.charset = Charset::UTF_8;
                    b.encode = false;
                }
                Some(label) => {
                    b.config.charset =
                        args::check(Charset::from_label(label).map_err(Error::from))?;
                    b.encode = true;
                }
            }
            Ok(())
        })
    }
}

/// 1 (the default): set TCP_NODELAY, so that each frame leaves at once; 0: leave Nagle's
/// algorithm on. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_nodelay(
    builder: *mut mllp_sender_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_nodelay", builder, |b| {
            b.config.nodelay = args::flag(on, "nodelay")?;
            Ok(())
        })
    }
}

/// 1: MLLP release 2, the peer answers with commit blocks (0x06 / 0x15); a negative commit
/// block makes the sender send again within the retry policy. 0 (the default): HL7
/// acknowledgements. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_mllp2(
    builder: *mut mllp_sender_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_mllp2", builder, |b| {
            b.config.reply = if args::flag(on, "mllp2")? {
                ReplyKind::Mllp2
            } else {
                ReplyKind::Hl7
            };
            Ok(())
        })
    }
}

/// 1: an AR or CR acknowledgement makes the sender send the message again within the retry
/// policy. 0 (the default): it is returned at once. AE and CE are always returned. Errors:
/// `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_resend_on_reject(
    builder: *mut mllp_sender_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_resend_on_reject", builder, |b| {
            b.config.resend_on_reject = args::flag(on, "resend_on_reject")?;
            Ok(())
        })
    }
}

/// 1: connect with TLS, verifying the server certificate against the system's trusted roots
/// and the host name of the address. 0 (the default): plain TCP, which also forgets every TLS
/// setting made so far. The other `mllp_sender_builder_set_tls_*` setters switch TLS on
/// themselves. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls(
    builder: *mut mllp_sender_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_tls", builder, |b| {
            if args::flag(on, "tls")? {
                b.tls();
            } else {
                b.config.tls = None;
            }
            Ok(())
        })
    }
}

/// Switches TLS on and trusts the CA certificates of the PEM file `path` as well as the
/// system's roots; may be called for several files. The file is read now. Errors: `MLLP_IO`
/// (cannot be read), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_ca_file(
    builder: *mut mllp_sender_builder,
    path: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_tls_ca_file", builder, |b| {
            // The caller passes a NUL-terminated string or NULL (the enclosing block's SAFETY).
            let base = b.config.tls.clone().unwrap_or_default();
            let config = tls_options::add_ca_file(&base, path)?;
            b.config.tls = Some(config);
            Ok(())
        })
    }
}

/// Switches TLS on and verifies the server certificate against `name` instead of the host
/// name of the address. Errors: `MLLP_CONFIG` (empty), `MLLP_INVALID_ARGUMENT` (not UTF-8),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_server_name(
    builder: *mut mllp_sender_builder,
    name: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_tls_server_name", builder, |b| {
            let name = tls_options::server_name(name);
            let name = name?;
            let config = b.tls().clone().server_name(name);
            b.config.tls = Some(config);
            Ok(())
        })
    }
}

/// Switches TLS on and accepts no protocol older than `version`: 12 (TLS 1.2, the default) or
/// 13 (TLS 1.3). Errors: `MLLP_CONFIG` for another value, `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_min_version(
    builder: *mut mllp_sender_builder,
    version: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_tls_min_version", builder, |b| {
            let min = tls_options::min_version(version)?;
            let config = b.tls().clone().min_version(min);
            b.config.tls = Some(config);
            Ok(())
        })
    }
}

/// Switches TLS on and presents a client certificate when the server asks for one: the PEM
/// certificate chain `cert_file` and its unencrypted PKCS#8 PEM key `key_file` (neither NULL),
/// read now. Replaces an identity set before (PEM or PKCS#12). Errors: `MLLP_IO` (a file
/// cannot be read), `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`; a certificate or key that
/// cannot be used is `MLLP_TLS` from `mllp_sender_builder_build`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_identity_pem(
    builder: *mut mllp_sender_builder,
    cert_file: *const c_char,
    key_file: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and strings or NULL.
    unsafe {
        set_identity("mllp_sender_builder_set_tls_identity_pem", builder, || {
            tls_options::pem_identity(cert_file, key_file)
        })
    }
}

/// As `mllp_sender_builder_set_tls_identity_pem`, from a PKCS#12 archive (`.p12` / `.pfx`,
/// not NULL) holding the certificate, its chain and its key, with `password` (NULL: empty). A
/// wrong password is `MLLP_TLS` from `mllp_sender_builder_build`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_identity_pkcs12(
    builder: *mut mllp_sender_builder,
    file: *const c_char,
    password: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and strings or NULL.
    unsafe {
        set_identity(
            "mllp_sender_builder_set_tls_identity_pkcs12",
            builder,
            || tls_options::pkcs12_identity(file, password),
        )
    }
}

/// The body of the identity setters.
///
/// # Safety
/// As [`set`].
unsafe fn set_identity(
    name: &str,
    builder: *mut mllp_sender_builder,
    identity: impl FnOnce() -> Result<Identity, mllp_result>,
) -> mllp_result {
    // SAFETY: forwarded contract.
    unsafe {
        args::set(name, builder, |b| {
            let identity = identity()?;
            let config = b.tls().clone().identity(identity);
            b.config.tls = Some(config);
            Ok(())
        })
    }
}

/// 1: switches TLS on and accepts any server certificate (expired, self-signed, other name).
/// This removes TLS's protection against interception; for tests only. 0 (the default):
/// verify. Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_tls_danger_accept_invalid_certs(
    builder: *mut mllp_sender_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set(
            "mllp_sender_builder_set_tls_danger_accept_invalid_certs",
            builder,
            |b| {
                let on = args::flag(on, "danger_accept_invalid_certs")?;
                let config = b.tls().clone().danger_accept_invalid_certs(on);
                b.config.tls = Some(config);
                Ok(())
            },
        )
    }
}

/// Creates a sender to `address` (`"host:port"`, e.g. `"10.1.2.3:2575"`, `"[::1]:2575"`) with
/// the builder's settings. The builder is not changed and may build more senders, or be
/// freed. Nothing is connected yet: the first send connects (and reconnects whenever needed).
/// On success `*out` receives the handle, to be freed with `mllp_sender_free`; on failure
/// `*out` is NULL and `mllp_last_error` gives the reason.
///
/// Errors: `MLLP_CONFIG` (address without host or port), `MLLP_TLS` (a certificate or key
/// cannot be used, a wrong PKCS#12 password, TLS in a library built without it),
/// `MLLP_INVALID_ARGUMENT` (address not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_build(
    builder: *const mllp_sender_builder,
    address: *const c_char,
    out: *mut *mut mllp_sender,
) -> mllp_result {
    guard("mllp_sender_builder_build", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a live builder or NULL.
        let b = unsafe { args::borrow(builder) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let addr = unsafe { args::req_string(address, "the address") }?;
        let sender = args::check(Sender::builder(addr).config(b.config.clone()).build())?;
        let handle = Box::into_raw(Box::new(mllp_sender {
            inner: Mutex::new(Inner {
                sender,
                encode: b.encode,
                last_ack: Vec::new(),
            }),
        }));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// Frees a sender builder; senders built from it are not affected. NULL is allowed and does
/// nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_free(builder: *mut mllp_sender_builder) {
    guard_or((), || {
        if !builder.is_null() {
            // SAFETY: a non-NULL pointer is a builder from `mllp_sender_builder_new` that the
            // caller gives up here, once.
            drop(unsafe { Box::from_raw(builder) });
        }
    })
}

/// Which counter of a sender `mllp_sender_get_stat` reads. New counters get new numbers; the
/// numbers never change.
pub type mllp_sender_stat = u32;

/// Sends that returned an acknowledgement (positive or negative).
pub const MLLP_SENDER_STAT_MESSAGES: mllp_sender_stat = 0;
/// Sends that failed with `MLLP_NOT_DELIVERED` or `MLLP_UNCONFIRMED`.
pub const MLLP_SENDER_STAT_FAILURES: mllp_sender_stat = 1;
/// Frames written completely, resends included.
pub const MLLP_SENDER_STAT_FRAMES_WRITTEN: mllp_sender_stat = 2;
/// Positive acknowledgements received (AA, CA, commit accept).
pub const MLLP_SENDER_STAT_ACKS: mllp_sender_stat = 3;
/// Negative acknowledgements received, including those answered by a resend.
pub const MLLP_SENDER_STAT_NEGATIVE_ACKS: mllp_sender_stat = 4;
/// Attempts after the first, over all messages.
pub const MLLP_SENDER_STAT_RETRIES: mllp_sender_stat = 5;
/// Connections established.
pub const MLLP_SENDER_STAT_CONNECTS: mllp_sender_stat = 6;
/// Connections established to replace a lost one.
pub const MLLP_SENDER_STAT_RECONNECTS: mllp_sender_stat = 7;
/// ACK timeouts.
pub const MLLP_SENDER_STAT_ACK_TIMEOUTS: mllp_sender_stat = 8;
/// Reply frames skipped while waiting for an acknowledgement (late ACKs for other control
/// IDs, frames that are not ACKs).
pub const MLLP_SENDER_STAT_SKIPPED_FRAMES: mllp_sender_stat = 9;

/// The counter `which` of a set of sender counters, `None` for an unknown number.
// The numbers are written for C (cbindgen) and checked against the core's table by a test
// that reads the header; listed here so that the compiler sees them used.
const _: [mllp_sender_stat; 10] = [
    MLLP_SENDER_STAT_MESSAGES,
    MLLP_SENDER_STAT_FAILURES,
    MLLP_SENDER_STAT_FRAMES_WRITTEN,
    MLLP_SENDER_STAT_ACKS,
    MLLP_SENDER_STAT_NEGATIVE_ACKS,
    MLLP_SENDER_STAT_RETRIES,
    MLLP_SENDER_STAT_CONNECTS,
    MLLP_SENDER_STAT_RECONNECTS,
    MLLP_SENDER_STAT_ACK_TIMEOUTS,
    MLLP_SENDER_STAT_SKIPPED_FRAMES,
];

/// The counter `which`, read through the core's table (every `MLLP_SENDER_STAT_*` number
/// comes from it).
fn sender_stat(s: &SenderStats, which: mllp_sender_stat) -> Option<u64> {
    mllp_core::Stat::by_id(SenderStats::TABLE, which).map(|stat| (stat.get)(s))
}

/// Stores the sender's counter `which` (`MLLP_SENDER_STAT_*`, counted since the sender was
/// created) in `*value`. Errors: `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0),
/// `MLLP_INVALID_STATE` (in use by another thread), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_get_stat(
    sender: *const mllp_sender,
    which: mllp_sender_stat,
    value: *mut u64,
) -> mllp_result {
    guard("mllp_sender_get_stat", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(value, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender) }?;
        let stats = handle.lock()?.sender.stats();
        let v = sender_stat(&stats, which)
            .ok_or_else(|| args::invalid(format_args!("no sender counter number {which}")))?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(value, v) }?;
        Ok(MLLP_OK)
    })
}

/// A blocking MLLP sender to one address. Create with `mllp_sender_builder_build`, free with
/// `mllp_sender_free`.
///
/// Thread safety: one call at a time. The handle may move between threads, but it must not be
/// used by two threads at once: a call made while another is running on the same handle
/// returns `MLLP_INVALID_STATE` at once (nothing is sent). Use one sender per thread, or lock
/// around it. `mllp_sender_free` must not run concurrently with any other call on the handle.
pub struct mllp_sender {
    inner: Mutex<Inner>,
}

struct Inner {
    sender: Sender,
    /// Whether messages are UTF-8 text to encode to a configured character set.
    encode: bool,
    /// The payload of the last acknowledgement received (for `mllp_sender_last_ack`).
    last_ack: Vec<u8>,
}

impl mllp_sender {
    /// The sender, or `MLLP_INVALID_STATE` when another thread is using it.
    fn lock(&self) -> std::result::Result<std::sync::MutexGuard<'_, Inner>, mllp_result> {
        match self.inner.try_lock() {
            Ok(inner) => Ok(inner),
            // A panic inside an earlier call: the sender's own state is consistent between
            // calls (the connection is dropped on any failure), so go on.
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(last_error::set(
                MLLP_INVALID_STATE,
                "the sender is in use by another thread: a sender handle takes one call at a time",
            )),
        }
    }
}

/// Sends one HL7 message and waits for its acknowledgement.
///
/// `msg`/`msg_len` is the message (segments separated by CR, without framing bytes). It is
/// sent as it is, or, when the builder named a character set, read as UTF-8 and encoded to it. The
/// sender connects if needed, writes the message, and reads replies until the one whose MSA-2
/// matches the message's control ID (MSH-10); on a lost connection or an ACK timeout it
/// reconnects and sends again within the retry policy (so a message may arrive twice; the
/// control ID stays the same).
///
/// On return `*code_out` is the acknowledgement's code (`MLLP_ACK_*`, `MLLP_ACK_NONE` when none
/// arrived) and `*ack_len` the acknowledgement's length in bytes (0 when none arrived).
/// `ack_out` (capacity `ack_cap`) receives the acknowledgement's bytes (the reply frame's
/// payload, not NUL-terminated) when they fit, that is when `*ack_len <= ack_cap`; otherwise
/// nothing is written there and `mllp_sender_last_ack` copies them afterwards, into a buffer of
/// any size. `ack_out` may be NULL with `ack_cap` 0 when only the code is wanted.
///
/// Returns:
/// * `MLLP_OK`: an acknowledgement arrived, so the message was delivered: positive or
///   negative, see `*code_out` (AE/AR are answers, not errors). Never send it again because
///   of this call. Its bytes are in `ack_out` when `*ack_len <= ack_cap`.
/// * `MLLP_NOT_DELIVERED`: no acknowledgement within the retry policy, and the message was
///   never completely written: sending it again cannot create a duplicate.
/// * `MLLP_UNCONFIRMED`: no acknowledgement within the retry policy, but the message was
///   written at least once: the peer may have it.
/// * Before anything is sent: `MLLP_HEADER` (no readable MSH, or an empty control ID),
///   `MLLP_FRAME_PAYLOAD_CONTAINS_END`, `MLLP_CHARSET` (not UTF-8, or a character the
///   configured character set lacks), `MLLP_NULL_ARGUMENT`, `MLLP_INVALID_STATE` (the sender
///   is in use by another thread).
///
/// Failures set the text of `mllp_last_error` (for delivery failures: the number of
/// attempts and the last attempt's error). Blocks for at most the retry policy's attempts and
/// their timeouts and delays.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_send(
    sender: *mut mllp_sender,
    msg: *const u8,
    msg_len: usize,
    ack_out: *mut u8,
    ack_cap: usize,
    ack_len: *mut usize,
    code_out: *mut mllp_ack_code,
) -> mllp_result {
    guard("mllp_sender_send", || {
        // SAFETY: the caller passes writable pointers or NULL (checked).
        unsafe {
            args::put(ack_len, 0)?;
            args::put(code_out, MLLP_ACK_NONE)?;
        }
        // SAFETY: the caller passes a live handle or NULL; all access is through the mutex.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        // SAFETY: the caller passes `msg_len` readable bytes or NULL (checked).
        let msg = unsafe { args::bytes(msg, msg_len) }?;
        // SAFETY: the caller passes `ack_cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(ack_out, ack_cap) }?;
        let mut inner = handle.lock()?;
        let inner = &mut *inner;
        let result = if inner.encode {
            match std::str::from_utf8(msg) {
                Ok(text) => inner.sender.send(text),
                Err(e) => Err(Error::Charset(CharsetError::Malformed {
                    at: e.valid_up_to(),
                })),
            }
        } else {
            inner.sender.send_bytes(msg)
        };
        let ack = match result {
            Ok(ack) => ack,
            Err(e) => return Err(last_error::error(&e)),
        };
        // SAFETY: checked not NULL above.
        unsafe { args::put(code_out, ack_code(&ack)) }?;
        inner.last_ack = ack.raw;
        // Stores the length; copies the bytes only when they fit (else `MLLP_BUFFER_TOO_SMALL`,
        // which is not this call's result: the message was delivered).
        // SAFETY: `ack_len` was checked not NULL above.
        let _ = unsafe { out.write(&inner.last_ack, ack_len) };
        // Delivered: success whatever the buffer, so that a caller that retries on errors
        // never sends the message twice. `*ack_len > ack_cap` says the bytes did not fit.
        Ok(MLLP_OK)
    })
}

/// Copies the last acknowledgement this sender received into `buf` (capacity `cap`, NULL only
/// with 0) and stores its length in `*len` (0 when none was received yet).
///
/// For after `mllp_sender_send` reported an acknowledgement longer than its buffer
/// (`*ack_len > ack_cap`). Returns `MLLP_OK`,
/// `MLLP_BUFFER_TOO_SMALL` (nothing written, `*len` is the size needed), `MLLP_INVALID_STATE`,
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_last_ack(
    sender: *const mllp_sender,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> mllp_result {
    guard("mllp_sender_last_ack", || {
        // SAFETY: the caller passes a writable length or NULL (checked).
        unsafe { args::put(len, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender) }?;
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(buf, cap) }?;
        let inner = handle.lock()?;
        // SAFETY: checked not NULL above.
        match unsafe { out.write(&inner.last_ack, len) } {
            MLLP_OK => Ok(MLLP_OK),
            code => Err(code),
        }
    })
}

/// Closes the sender's connection, if any; the next send connects again. Returns `MLLP_OK`,
/// `MLLP_INVALID_STATE` (in use by another thread), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_close(sender: *mut mllp_sender) -> mllp_result {
    guard("mllp_sender_close", || {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        handle.lock()?.sender.close();
        Ok(MLLP_OK)
    })
}

/// Closes the connection and frees the sender. NULL is allowed and does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_free(sender: *mut mllp_sender) {
    guard_or((), || {
        if !sender.is_null() {
            // SAFETY: a non-NULL pointer is a handle from `mllp_sender_builder_build` that the caller
            // gives up here, once, with no other call running on it.
            let handle = unsafe { Box::from_raw(sender) };
            let mut inner = handle.inner.into_inner().unwrap_or_else(|e| e.into_inner());
            inner.sender.close();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{
        MLLP_CHARSET, MLLP_CONFIG, MLLP_INVALID_ARGUMENT, MLLP_NOT_DELIVERED, MLLP_NULL_ARGUMENT,
    };
    use std::ffi::CString;

    #[test]
    fn defaults_are_the_rust_defaults() {
        // The C builder holds the Rust settings value, from its one `Default`.
        let c = mllp_sender_builder::default();
        assert_eq!(
            format!("{:?}", c.config),
            format!("{:?}", SenderConfig::default())
        );
        assert_eq!(
            format!("{:?}", Sender::builder("h:1").current_config()),
            format!("{:?}", SenderConfig::default())
        );
    }

    fn new() -> *mut mllp_sender_builder {
        let mut b = std::ptr::null_mut();
        // SAFETY: a writable pointer.
        assert_eq!(unsafe { mllp_sender_builder_new(&mut b) }, MLLP_OK);
        b
    }

    #[test]
    fn setters_validate_and_keep_the_old_value() {
        let b = new();
        let before = format!("{:?}", (unsafe { &*b }).config);
        let label = CString::new("no-such-charset").unwrap();
        // SAFETY: a live builder; NULL and bad values are what is tested.
        unsafe {
            assert_eq!(
                mllp_sender_builder_set_connect_timeout_ms(b, 0),
                MLLP_CONFIG
            );
            assert!(crate::last_error::text().contains("connect timeout"));
            assert_eq!(mllp_sender_builder_set_ack_timeout_ms(b, 0), MLLP_CONFIG);
            assert_eq!(mllp_sender_builder_set_write_timeout_ms(b, 0), MLLP_CONFIG);
            assert_eq!(mllp_sender_builder_set_retry(b, 3, 500, 100), MLLP_CONFIG);
            assert_eq!(
                mllp_sender_builder_set_retry_backoff(b, 0.5, 0.5),
                MLLP_CONFIG
            );
            assert_eq!(
                mllp_sender_builder_set_retry_backoff(b, 2.0, f64::NAN),
                MLLP_CONFIG
            );
            assert_eq!(
                mllp_sender_builder_set_charset(b, label.as_ptr()),
                MLLP_CHARSET
            );
            assert_eq!(mllp_sender_builder_set_nodelay(b, 2), MLLP_INVALID_ARGUMENT);
            assert_eq!(mllp_sender_builder_set_mllp2(b, -1), MLLP_INVALID_ARGUMENT);
            assert_eq!(
                mllp_sender_builder_set_resend_on_reject(b, 7),
                MLLP_INVALID_ARGUMENT
            );
            assert_eq!(mllp_sender_builder_set_tls(b, 2), MLLP_INVALID_ARGUMENT);
            assert_eq!(
                mllp_sender_builder_set_tls_danger_accept_invalid_certs(b, 2),
                MLLP_INVALID_ARGUMENT
            );
            assert_eq!(
                mllp_sender_builder_set_tls_ca_file(b, std::ptr::null()),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(
                mllp_sender_builder_set_tls_server_name(b, std::ptr::null()),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(
                mllp_sender_builder_set_framing(b, std::ptr::null()),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(
                mllp_sender_builder_set_nodelay(std::ptr::null_mut(), 1),
                MLLP_NULL_ARGUMENT
            );
            assert_eq!(format!("{:?}", (*b).config), before);
            // Good values.
            assert_eq!(mllp_sender_builder_set_retry(b, 0, 10, 10), MLLP_OK);
            assert_eq!(mllp_sender_builder_set_total_timeout_ms(b, 1500), MLLP_OK);
            assert_eq!((*b).config.retry.max_attempts, None);
            assert_eq!(
                (*b).config.timeouts.total,
                Some(Duration::from_millis(1500))
            );
            mllp_sender_builder_free(b);
            mllp_sender_builder_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn build_reports_errors_and_send_checks_arguments() {
        let b = new();
        let addr = CString::new("localhost").unwrap();
        let mut s = std::ptr::null_mut();
        // SAFETY: valid pointers.
        unsafe {
            assert_eq!(
                mllp_sender_builder_build(b, addr.as_ptr(), &mut s),
                MLLP_CONFIG
            );
            assert!(s.is_null());
            assert!(crate::last_error::text().contains("port"));
            // A port nothing listens on: bind one, then free it.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = CString::new(format!("127.0.0.1:{port}")).unwrap();
            assert_eq!(mllp_sender_builder_set_retry(b, 1, 250, 250), MLLP_OK);
            assert_eq!(mllp_sender_builder_build(b, addr.as_ptr(), &mut s), MLLP_OK);
            mllp_sender_builder_free(b);
            let msg = b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X1|P|2.5\r";
            let (mut len, mut code) = (7usize, 9u32);
            assert_eq!(
                mllp_sender_send(
                    s,
                    msg.as_ptr(),
                    msg.len(),
                    std::ptr::null_mut(),
                    0,
                    &mut len,
                    &mut code
                ),
                MLLP_NOT_DELIVERED
            );
            assert_eq!((len, code), (0, MLLP_ACK_NONE));
            let mut failures = 0;
            assert_eq!(
                mllp_sender_get_stat(s, MLLP_SENDER_STAT_FAILURES, &mut failures),
                MLLP_OK
            );
            assert_eq!(failures, 1);
            assert_eq!(
                mllp_sender_get_stat(s, 99, &mut failures),
                MLLP_INVALID_ARGUMENT
            );
            assert_eq!(failures, 0);
            assert_eq!(
                mllp_sender_send(
                    s,
                    msg.as_ptr(),
                    msg.len(),
                    std::ptr::null_mut(),
                    1,
                    &mut len,
                    &mut code
                ),
                MLLP_NULL_ARGUMENT
            );
            assert!(crate::last_error::text().starts_with("mllp_sender_send: "));
            mllp_sender_free(s);
            mllp_sender_free(std::ptr::null_mut());
        }
    }
}
