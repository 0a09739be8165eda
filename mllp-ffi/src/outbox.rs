//! The durable outbox as a C handle: a builder of settings, open, enqueue, counters, the
//! dead-letter area, close, free.

use std::ffi::{c_char, c_int};
use std::sync::RwLock;

use super::args::{self, OutBuf};
use super::last_error;
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_CLOSED, MLLP_OK};
use super::sender::{mllp_sender_builder, positive_ms};
use mllp_core::{DeadLetter, OnReject, Outbox, OutboxConfig, OutboxStats};

/// Settings for outboxes: made by `mllp_outbox_builder_new` with the defaults, changed by the
/// `mllp_outbox_builder_set_*` functions, used by `mllp_outbox_open` (any number of times)
/// and freed by `mllp_outbox_builder_free`. Every setter checks its value at once: on an error
/// it returns the code, sets the last-error text and leaves the setting as it was. Thread
/// safety: one call at a time per builder; `mllp_outbox_open` only reads it.
#[derive(Debug, Clone)]
pub struct mllp_outbox_builder {
    /// The settings, the very value the Rust API takes (the address is set at open).
    config: OutboxConfig,
    /// Whether enqueued messages are UTF-8 text encoded into the sender's character set.
    encode: bool,
}

/// `mllp_outbox_builder_set_on_reject`: an AE or AR moves the message and the ACK's text to
/// the dead-letter area, and delivery goes on (the default).
pub const MLLP_OUTBOX_DEAD_LETTER: c_int = 0;
/// `mllp_outbox_builder_set_on_reject`: an AE or AR stops delivery at that message until
/// `mllp_outbox_requeue_dead` or `mllp_outbox_resume`, for interfaces that need strict order.
pub const MLLP_OUTBOX_HOLD: c_int = 1;

/// Creates an outbox builder with the defaults (those of the Rust `OutboxConfig`): delivery
/// with the defaults of `mllp_sender_builder_new` (messages sent as the bytes given), tried
/// without limit with a backoff of 250 ms doubling to 30 s, AE/AR dead-lettered, at most
/// 1,000,000 messages and 1 GiB pending, segment files of 16 MiB, operator actions of other
/// processes looked for every second, delivery on. `*out` receives the builder (NULL on
/// failure); free it with `mllp_outbox_builder_free`. Errors: `MLLP_NULL_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_new(
    out: *mut *mut mllp_outbox_builder,
) -> mllp_result {
    guard("mllp_outbox_builder_new", || {
        let value = mllp_outbox_builder {
            config: OutboxConfig::new(""),
            encode: false,
        };
        // SAFETY: the caller passes a writable pointer or NULL.
        unsafe { args::new_handle(out, value) }
    })
}

/// Copies the delivery settings of a sender builder (framing, character set, timeouts, TLS,
/// MLLP release 2, AR resends); its retry policy is not used (see
/// `mllp_outbox_builder_set_retry`). When that builder names a character set, enqueued messages
/// must be UTF-8 and are encoded into it when delivered; otherwise they are delivered as the
/// bytes given. `sender` may be freed afterwards. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_sender(
    builder: *mut mllp_outbox_builder,
    sender: *const mllp_sender_builder,
) -> mllp_result {
    // SAFETY: the caller passes a live sender builder or NULL.
    let sender = unsafe { args::borrow(sender) }.map(|s| (s.config().clone(), s.encodes()));
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_sender", builder, |b| {
            let (config, encode) = sender?;
            b.config.sender = config;
            b.encode = encode;
            Ok(())
        })
    }
}

/// How a message that could not be delivered (no connection, no acknowledgement) is tried
/// again: the most attempts, the first included (0, the default: no limit; with a limit, a
/// message that used them up is dead-lettered), the delay before the second attempt and the
/// longest delay, in milliseconds (not below the first). Defaults 0, 250, 30000. Errors:
/// `MLLP_CONFIG` (`max_backoff_ms` below `initial_backoff_ms`), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_retry(
    builder: *mut mllp_outbox_builder,
    max_attempts: u32,
    initial_backoff_ms: u32,
    max_backoff_ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_retry", builder, |b| {
            b.config.retry = crate::sender::retry_from_c(
                b.config.retry,
                max_attempts,
                initial_backoff_ms,
                max_backoff_ms,
            )?;
            Ok(())
        })
    }
}

/// What an AE or AR from the destination does: `MLLP_OUTBOX_DEAD_LETTER` (the default) or
/// `MLLP_OUTBOX_HOLD`. Errors: `MLLP_INVALID_ARGUMENT` (another value), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_on_reject(
    builder: *mut mllp_outbox_builder,
    on_reject: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_on_reject", builder, |b| {
            b.config.on_reject = match on_reject {
                MLLP_OUTBOX_DEAD_LETTER => OnReject::DeadLetter,
                MLLP_OUTBOX_HOLD => OnReject::Hold,
                other => {
                    return Err(args::invalid(format_args!(
                        "on_reject must be MLLP_OUTBOX_DEAD_LETTER or MLLP_OUTBOX_HOLD, not {other}"
                    )))
                }
            };
            Ok(())
        })
    }
}

/// The bounds: the most pending messages and the most bytes of them (both at least 1);
/// `mllp_outbox_enqueue` returns `MLLP_FULL` at once beyond them. Defaults 1000000 and
/// 1073741824. Errors: `MLLP_CONFIG` (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_bounds(
    builder: *mut mllp_outbox_builder,
    max_messages: u64,
    max_bytes: u64,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_bounds", builder, |b| {
            if max_messages == 0 || max_bytes == 0 {
                return Err(args::config("the outbox's bounds must be at least 1"));
            }
            b.config.max_messages = max_messages;
            b.config.max_bytes = max_bytes;
            Ok(())
        })
    }
}

/// The size, in bytes (at least 1), after which a new segment file is started; a segment is
/// deleted once all its messages are delivered. Default 16777216. Errors: `MLLP_CONFIG` (0),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_segment_bytes(
    builder: *mut mllp_outbox_builder,
    bytes: u64,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_segment_bytes", builder, |b| {
            if bytes == 0 {
                return Err(args::config("the segment size must be at least 1 byte"));
            }
            b.config.segment_bytes = bytes;
            Ok(())
        })
    }
}

/// How often, in milliseconds (at least 1), the delivery thread looks for operator actions
/// made by other processes (a requeue, a released hold). Default 1000. Errors: `MLLP_CONFIG`
/// (0), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_poll_interval_ms(
    builder: *mut mllp_outbox_builder,
    ms: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_poll_interval_ms", builder, |b| {
            b.config.poll_interval = positive_ms(ms, "the poll interval")?;
            Ok(())
        })
    }
}

/// 1 (the default): a thread delivers the messages; 0: they are only kept (a spool inspected or
/// delivered later). Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_set_deliver(
    builder: *mut mllp_outbox_builder,
    on: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_outbox_builder_set_deliver", builder, |b| {
            b.config.deliver = args::flag(on, "deliver")?;
            Ok(())
        })
    }
}

/// Frees an outbox builder; outboxes opened with it are not affected. NULL is allowed and does
/// nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_builder_free(builder: *mut mllp_outbox_builder) {
    guard_or((), || {
        if !builder.is_null() {
            // SAFETY: a non-NULL pointer is a builder from `mllp_outbox_builder_new` that the
            // caller gives up here, once.
            drop(unsafe { Box::from_raw(builder) });
        }
    })
}

/// A durable outbox: messages enqueued are on disk when `mllp_outbox_enqueue` returns, and a
/// thread of the library delivers them in order to one address, at least once, even after a
/// crash. Open with `mllp_outbox_open`, free with `mllp_outbox_free`.
///
/// Thread safety: `mllp_outbox_enqueue` and `mllp_outbox_get_stat` may be called from many
/// threads at once (concurrent enqueues share disk flushes); `mllp_outbox_close` waits for the
/// calls under way; `mllp_outbox_free` must not run concurrently with any other call on the
/// handle.
pub struct mllp_outbox {
    inner: RwLock<Option<Outbox>>,
    encode: bool,
}

/// Opens (creating it if needed) the outbox in the directory `dir`, delivering to `address`
/// (`"host:port"`) with the builder's settings, recovers what a crash left (a message cut
/// short at the end is dropped: it was never acknowledged to its enqueuer) and starts
/// delivering. The builder is not changed. On success `*out` receives the handle; on failure
/// it is NULL and `mllp_last_error` gives the reason.
///
/// Errors: `MLLP_LOCKED` (another outbox, in this or another process, has `dir` open: the
/// last-error text names its process), `MLLP_CORRUPT`, `MLLP_IO`, `MLLP_CONFIG`,
/// `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_open(
    builder: *const mllp_outbox_builder,
    dir: *const c_char,
    address: *const c_char,
    out: *mut *mut mllp_outbox,
) -> mllp_result {
    guard("mllp_outbox_open", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a live builder or NULL.
        let b = unsafe { args::borrow(builder) }?;
        // SAFETY: the caller passes NUL-terminated strings or NULL (checked).
        let dir = unsafe { args::req_string(dir, "the directory") }?;
        // SAFETY: as above.
        let addr = unsafe { args::req_string(address, "the address") }?;
        let mut config = b.config.clone();
        config.to = addr.to_owned();
        let outbox = args::check(Outbox::open(dir, config))?;
        let handle = Box::into_raw(Box::new(mllp_outbox {
            inner: RwLock::new(Some(outbox)),
            encode: b.encode,
        }));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// Enqueues one HL7 message (`msg`/`msg_len`, segments separated by CR, no framing bytes) and
/// returns once it is flushed to disk: from then on it is delivered even after a crash or a
/// power cut. Errors: `MLLP_FULL` (at once, nothing kept), `MLLP_HEADER` (no readable MSH, BHS
/// or FHS header), `MLLP_INVALID_ARGUMENT` (not UTF-8 when the sender settings name a
/// character set), `MLLP_IO` (cannot be written or flushed: nothing is kept), `MLLP_CLOSED`
/// (after `mllp_outbox_close`), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_enqueue(
    outbox: *const mllp_outbox,
    msg: *const u8,
    msg_len: usize,
) -> mllp_result {
    guard("mllp_outbox_enqueue", || {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(outbox) }?;
        // SAFETY: the caller passes `msg_len` readable bytes, or NULL (checked).
        let bytes = unsafe { args::bytes(msg, msg_len) }?;
        let guard = handle.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(outbox) = guard.as_ref() else {
            return Err(last_error::set(MLLP_CLOSED, "the outbox is closed"));
        };
        if handle.encode {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| args::invalid("the message is not valid UTF-8"))?;
            args::check(outbox.enqueue(text))?;
        } else {
            args::check(outbox.enqueue_bytes(bytes))?;
        }
        Ok(MLLP_OK)
    })
}

/// Which counter `mllp_outbox_get_stat` reads. New counters get new numbers; the numbers
/// never change.
pub type mllp_outbox_stat = u32;

/// Messages enqueued and not yet delivered nor dead-lettered (the one in flight included).
pub const MLLP_OUTBOX_STAT_PENDING: mllp_outbox_stat = 0;
/// Their bytes on disk, record headers included.
pub const MLLP_OUTBOX_STAT_PENDING_BYTES: mllp_outbox_stat = 1;
/// 1 while a message is being delivered, else 0.
pub const MLLP_OUTBOX_STAT_IN_FLIGHT: mllp_outbox_stat = 2;
/// Messages delivered (AA or CA) since the outbox directory was created.
pub const MLLP_OUTBOX_STAT_DELIVERED: mllp_outbox_stat = 3;
/// Messages in the dead-letter area.
pub const MLLP_OUTBOX_STAT_DEAD_LETTERED: mllp_outbox_stat = 4;
/// How long the oldest pending message has waited, in milliseconds (0 when none is pending).
pub const MLLP_OUTBOX_STAT_OLDEST_PENDING_AGE_MS: mllp_outbox_stat = 5;
/// 1 while delivery is held at a rejected message (`MLLP_OUTBOX_HOLD`), else 0.
pub const MLLP_OUTBOX_STAT_HELD: mllp_outbox_stat = 6;
/// Enqueues refused with `MLLP_FULL` since the outbox was opened.
pub const MLLP_OUTBOX_STAT_REFUSED_FULL: mllp_outbox_stat = 7;
/// Disk flushes made for enqueues since the outbox was opened (fewer than the enqueues when
/// concurrent enqueues shared them).
pub const MLLP_OUTBOX_STAT_SYNCS: mllp_outbox_stat = 8;

/// Damaged byte ranges found in the segments (kept in `DIR/damaged/`).
pub const MLLP_OUTBOX_STAT_DAMAGED_REGIONS: mllp_outbox_stat = 9;
/// Their total size in bytes.
pub const MLLP_OUTBOX_STAT_DAMAGED_BYTES: mllp_outbox_stat = 10;
/// Segments found missing between others (their messages are lost).
pub const MLLP_OUTBOX_STAT_MISSING_SEGMENTS: mllp_outbox_stat = 11;
/// Times the delivery cursor was found unreadable (messages delivered again).
pub const MLLP_OUTBOX_STAT_CURSOR_LOST: mllp_outbox_stat = 12;
/// Delivery attempts answered positively since the outbox was opened.
pub const MLLP_OUTBOX_STAT_DELIVERIES_ACCEPTED: mllp_outbox_stat = 13;
/// Delivery attempts answered negatively since the outbox was opened.
pub const MLLP_OUTBOX_STAT_DELIVERIES_REJECTED: mllp_outbox_stat = 14;
/// Delivery attempts that got no answer since the outbox was opened.
pub const MLLP_OUTBOX_STAT_DELIVERIES_FAILED: mllp_outbox_stat = 15;

// The numbers are written for C (cbindgen) and checked against the core's table by a test
// that reads the header; listed here so that the compiler sees them used.
const _: [mllp_outbox_stat; 16] = [
    MLLP_OUTBOX_STAT_PENDING,
    MLLP_OUTBOX_STAT_PENDING_BYTES,
    MLLP_OUTBOX_STAT_IN_FLIGHT,
    MLLP_OUTBOX_STAT_DELIVERED,
    MLLP_OUTBOX_STAT_DEAD_LETTERED,
    MLLP_OUTBOX_STAT_OLDEST_PENDING_AGE_MS,
    MLLP_OUTBOX_STAT_HELD,
    MLLP_OUTBOX_STAT_REFUSED_FULL,
    MLLP_OUTBOX_STAT_SYNCS,
    MLLP_OUTBOX_STAT_DAMAGED_REGIONS,
    MLLP_OUTBOX_STAT_DAMAGED_BYTES,
    MLLP_OUTBOX_STAT_MISSING_SEGMENTS,
    MLLP_OUTBOX_STAT_CURSOR_LOST,
    MLLP_OUTBOX_STAT_DELIVERIES_ACCEPTED,
    MLLP_OUTBOX_STAT_DELIVERIES_REJECTED,
    MLLP_OUTBOX_STAT_DELIVERIES_FAILED,
];

/// The counter `which`, read through the core's table (every `MLLP_OUTBOX_STAT_*` number
/// comes from it).
fn outbox_stat(s: &OutboxStats, which: mllp_outbox_stat) -> Option<u64> {
    mllp_core::Stat::by_id(OutboxStats::TABLE, which).map(|stat| (stat.get)(s))
}

/// Stores the counter `which` (`MLLP_OUTBOX_STAT_*`) in `*value`. Errors:
/// `MLLP_INVALID_ARGUMENT` (unknown counter: `*value` is 0), `MLLP_CLOSED` (after
/// `mllp_outbox_close`), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_get_stat(
    outbox: *const mllp_outbox,
    which: mllp_outbox_stat,
    value: *mut u64,
) -> mllp_result {
    guard("mllp_outbox_get_stat", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(value, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(outbox) }?;
        let guard = handle.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(outbox) = guard.as_ref() else {
            return Err(last_error::set(MLLP_CLOSED, "the outbox is closed"));
        };
        let v = outbox_stat(&outbox.stats(), which)
            .ok_or_else(|| args::invalid(format_args!("no outbox counter number {which}")))?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(value, v) }?;
        Ok(MLLP_OK)
    })
}

/// Releases a hold (`MLLP_OUTBOX_HOLD`) at once: the held message is sent again. Errors:
/// `MLLP_IO`, `MLLP_CLOSED`, `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_resume(outbox: *const mllp_outbox) -> mllp_result {
    guard("mllp_outbox_resume", || {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(outbox) }?;
        let guard = handle.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(outbox) = guard.as_ref() else {
            return Err(last_error::set(MLLP_CLOSED, "the outbox is closed"));
        };
        args::check(outbox.resume())?;
        Ok(MLLP_OK)
    })
}

/// Stops taking messages, lets the delivery thread finish the message in flight (bounded by
/// the sender's timeouts), flushes the delivery cursor and releases the directory. Pending
/// messages stay on disk for the next `mllp_outbox_open`. Later calls on the handle return
/// `MLLP_CLOSED`, except `mllp_outbox_free`; closing twice is `MLLP_OK`. Errors: `MLLP_IO`,
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_close(outbox: *const mllp_outbox) -> mllp_result {
    guard("mllp_outbox_close", || {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(outbox) }?;
        let taken = handle
            .inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(outbox) = taken {
            args::check(outbox.close())?;
        }
        Ok(MLLP_OK)
    })
}

/// Closes the outbox (as `mllp_outbox_close`, if not done yet) and frees the handle. NULL is
/// allowed and does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_free(outbox: *mut mllp_outbox) {
    guard_or((), || {
        if !outbox.is_null() {
            // SAFETY: a non-NULL pointer is a handle from `mllp_outbox_open` that the caller
            // gives up here, once.
            drop(unsafe { Box::from_raw(outbox) });
        }
    })
}

/// The dead letters of an outbox directory as they were when listed: made by
/// `mllp_outbox_dead_letters`, read by `mllp_dead_letters_*`, freed by `mllp_dead_letters_free`.
/// Thread safety: read-only, any number of threads at once.
pub struct mllp_dead_letters {
    letters: Vec<(DeadLetter, String)>,
}

/// Lists the dead letters of the outbox directory `dir`, oldest first, into `*out` (NULL on
/// failure); works while an outbox (of this or another process) has the directory open.
/// Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_dead_letters(
    dir: *const c_char,
    out: *mut *mut mllp_dead_letters,
) -> mllp_result {
    guard("mllp_outbox_dead_letters", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let dir = unsafe { args::req_string(dir, "the directory") }?;
        let letters = args::check(Outbox::dead_letters(dir))?
            .into_iter()
            .map(|d| {
                let id = d.control_id().unwrap_or_default();
                (d, id)
            })
            .collect();
        let handle = Box::into_raw(Box::new(mllp_dead_letters { letters }));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// How many dead letters the list holds (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn mllp_dead_letters_count(list: *const mllp_dead_letters) -> usize {
    guard_or(0, || {
        // SAFETY: the caller passes a live list or NULL.
        unsafe { args::borrow(list) }.map_or(0, |l| l.letters.len())
    })
}

/// Which part of a dead letter `mllp_dead_letters_get` copies.
pub type mllp_dead_letter_part = u32;

/// The message as enqueued (bytes, not NUL-terminated).
pub const MLLP_DEAD_LETTER_MESSAGE: mllp_dead_letter_part = 0;
/// Why it is there: the negative acknowledgement (its code, the destination, its text) or the
/// last delivery error (bytes, not NUL-terminated).
pub const MLLP_DEAD_LETTER_REASON: mllp_dead_letter_part = 1;
/// Its control ID (MSH-10), empty when the header cannot be read.
pub const MLLP_DEAD_LETTER_CONTROL_ID: mllp_dead_letter_part = 2;
/// Its file name in the dead-letter area.
pub const MLLP_DEAD_LETTER_NAME: mllp_dead_letter_part = 3;

/// Copies part `part` (`MLLP_DEAD_LETTER_*`) of dead letter `index` (from 0) into `buf`
/// (capacity `cap`; NULL with 0 asks for the size) and stores its length in `*len`. Errors:
/// `MLLP_BUFFER_TOO_SMALL` (nothing written, `*len` is the size needed),
/// `MLLP_INVALID_ARGUMENT` (index out of range, unknown part), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_dead_letters_get(
    list: *const mllp_dead_letters,
    index: usize,
    part: mllp_dead_letter_part,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> mllp_result {
    guard("mllp_dead_letters_get", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(len, 0) }?;
        // SAFETY: the caller passes a live list or NULL.
        let list = unsafe { args::borrow(list) }?;
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(buf, cap) }?;
        let (letter, id) = list.letters.get(index).ok_or_else(|| {
            args::invalid(format_args!(
                "no dead letter number {index} (the list holds {})",
                list.letters.len()
            ))
        })?;
        let data: &[u8] = match part {
            MLLP_DEAD_LETTER_MESSAGE => &letter.message,
            MLLP_DEAD_LETTER_REASON => letter.reason.as_bytes(),
            MLLP_DEAD_LETTER_CONTROL_ID => id.as_bytes(),
            MLLP_DEAD_LETTER_NAME => letter.name.as_bytes(),
            other => return Err(args::invalid(format_args!("no dead-letter part {other}"))),
        };
        // SAFETY: `len` was checked not NULL above.
        Ok(unsafe { out.write(data, len) })
    })
}

/// Frees a dead-letter list. NULL is allowed and does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_dead_letters_free(list: *mut mllp_dead_letters) {
    guard_or((), || {
        if !list.is_null() {
            // SAFETY: a non-NULL pointer is a list from `mllp_outbox_dead_letters` that the
            // caller gives up here, once.
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

/// Puts every dead letter of the outbox directory `dir` back in its queue (behind the pending
/// messages) and releases a hold; `*count` receives how many were requeued. An outbox that
/// has the directory open (in any process) takes them within its poll interval; otherwise the
/// next `mllp_outbox_open` does. Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT`,
/// `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_requeue_dead(
    dir: *const c_char,
    count: *mut usize,
) -> mllp_result {
    guard("mllp_outbox_requeue_dead", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(count, 0) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let dir = unsafe { args::req_string(dir, "the directory") }?;
        let n = args::check(Outbox::requeue_dead(dir))?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(count, n) }?;
        Ok(MLLP_OK)
    })
}

/// Deletes every dead letter of the outbox directory `dir`; `*count` receives how many.
/// Errors: `MLLP_IO`, `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_outbox_purge_dead(
    dir: *const c_char,
    count: *mut usize,
) -> mllp_result {
    guard("mllp_outbox_purge_dead", || {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(count, 0) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let dir = unsafe { args::req_string(dir, "the directory") }?;
        let n = args::check(Outbox::purge_dead(dir))?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(count, n) }?;
        Ok(MLLP_OK)
    })
}
