//! Framing settings as an opaque C value, and framing one payload.

use std::ffi::c_int;

use super::args::{self, OutBuf};
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_FRAME_PAYLOAD_CONTAINS_END, MLLP_INVALID_ARGUMENT, MLLP_OK};
use mllp_core::{Framing, StartInFrame, MAX_SEQUENCE_LEN};

/// A start sequence inside a frame followed by `MSH`, `BHS` or `FHS` discards the partial
/// frame and starts a new one; any other start sequence is payload (the default).
pub const MLLP_START_IN_FRAME_RESTART: u32 = 0;
/// A start sequence inside a frame is ordinary payload.
pub const MLLP_START_IN_FRAME_IGNORE: u32 = 1;

/// Framing settings: which bytes open and close a frame, and the decoder's limits.
///
/// An opaque value made by `mllp_framing_new` (the defaults), changed by the
/// `mllp_framing_set_*` functions and freed by `mllp_framing_free`. Everything that takes one
/// (`mllp_encode_frame`, `mllp_decoder_new`, `mllp_sender_builder_set_framing`,
/// `mllp_listener_builder_set_framing`) copies it, so it may be changed or freed afterwards.
/// Opaque so that a later version can add settings (as new functions) without changing any
/// layout. Thread safety: one call at a time per value; reading it (passing it as `const`)
/// from several threads at once is fine.
pub struct mllp_framing {
    framing: Framing,
}

impl mllp_framing {
    /// The Rust settings.
    pub(crate) fn get(&self) -> Framing {
        self.framing
    }
}

/// The framing of an optional `mllp_framing` pointer: NULL means the defaults.
///
/// # Safety
/// When not NULL, `framing` must point to a live `mllp_framing`.
pub(crate) unsafe fn framing_or_default(framing: *const mllp_framing) -> Framing {
    // SAFETY: the caller's contract; NULL is handled by `as_ref`.
    unsafe { framing.as_ref() }.map_or_else(Framing::default, mllp_framing::get)
}

/// Runs `f` on the framing behind `framing` (not NULL), under the guard of the export `name`.
///
/// # Safety
/// `framing` must be NULL or a live `mllp_framing` that no other thread uses during the call.
unsafe fn update(
    name: &str,
    framing: *mut mllp_framing,
    f: impl FnOnce(Framing) -> std::result::Result<Framing, mllp_result>,
) -> mllp_result {
    guard(name, || {
        // SAFETY: the caller's contract.
        let handle = unsafe { args::borrow_mut(framing) }?;
        handle.framing = f(handle.framing)?;
        Ok(MLLP_OK)
    })
}

/// Creates framing settings with the defaults: start `0x0B`, end `0x1C 0x0D`, 16 MiB maximum,
/// strict end, restart on a start sequence inside a frame. `*out` receives the value (NULL on
/// failure); free it with `mllp_framing_free`. Errors: `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_new(out: *mut *mut mllp_framing) -> mllp_result {
    guard("mllp_framing_new", || {
        let framing = mllp_framing {
            framing: Framing::default(),
        };
        // SAFETY: the caller passes a writable pointer or NULL.
        unsafe { args::new_handle(out, framing) }
    })
}

/// Sets the start and end sequences together (each 1 to 8 bytes; the end sequence must begin
/// with a byte other than the start sequence's first byte). Both pointers must not be NULL.
/// Errors: `MLLP_CONFIG` (a length outside 1 to 8, sequences that clash), `MLLP_NULL_ARGUMENT`;
/// on an error nothing changes.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_set_sequences(
    framing: *mut mllp_framing,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
) -> mllp_result {
    // SAFETY: the caller passes the lengths' readable bytes, or NULL (checked).
    let seqs = unsafe { (args::bytes(start, start_len), args::bytes(end, end_len)) };
    // SAFETY: the caller passes a live value or NULL.
    unsafe {
        update("mllp_framing_set_sequences", framing, |f| {
            let (Ok(start), Ok(end)) = seqs else {
                return Err(args::config("the start and end sequences must not be NULL"));
            };
            for (which, seq) in [("start", start), ("end", end)] {
                if seq.is_empty() || seq.len() > MAX_SEQUENCE_LEN {
                    return Err(args::config(format_args!(
                        "the {which} sequence must have 1 to {MAX_SEQUENCE_LEN} bytes, not {}",
                        seq.len()
                    )));
                }
            }
            let new = args::check(Framing::new(start, end))?;
            Ok(args::check(new.max_message_size(f.max_size()))?
                .lenient_end(f.is_lenient())
                .start_in_frame(f.start_policy()))
        })
    }
}

/// Sets the largest payload accepted, in bytes (at least 1; default 16 MiB). Larger frames are
/// skipped and reported as `MLLP_FRAME_OVERSIZED`. Errors: `MLLP_CONFIG` (0),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_set_max_message_size(
    framing: *mut mllp_framing,
    bytes: usize,
) -> mllp_result {
    // SAFETY: the caller passes a live value or NULL.
    unsafe {
        update("mllp_framing_set_max_message_size", framing, |f| {
            args::check(f.max_message_size(bytes))
        })
    }
}

/// 1: a frame also ends at the first byte of the end sequence when the rest of the sequence
/// does not follow (for peers that send `0x1C` without `0x0D`); 0 (the default): strict.
/// Errors: `MLLP_INVALID_ARGUMENT` (not 0 or 1), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_set_lenient_end(
    framing: *mut mllp_framing,
    lenient: c_int,
) -> mllp_result {
    // SAFETY: the caller passes a live value or NULL.
    unsafe {
        update("mllp_framing_set_lenient_end", framing, |f| {
            Ok(f.lenient_end(args::flag(lenient, "lenient")?))
        })
    }
}

/// What a start sequence inside a frame means: `MLLP_START_IN_FRAME_RESTART` (the default) or
/// `MLLP_START_IN_FRAME_IGNORE`. Errors: `MLLP_INVALID_ARGUMENT` (another value),
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_set_start_in_frame(
    framing: *mut mllp_framing,
    policy: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live value or NULL.
    unsafe {
        update("mllp_framing_set_start_in_frame", framing, |f| {
            let policy = match policy {
                MLLP_START_IN_FRAME_RESTART => StartInFrame::Restart,
                MLLP_START_IN_FRAME_IGNORE => StartInFrame::Ignore,
                other => {
                    return Err(args::invalid(format_args!(
                        "the start-in-frame policy must be MLLP_START_IN_FRAME_RESTART or \
                         MLLP_START_IN_FRAME_IGNORE, not {other}"
                    )))
                }
            };
            Ok(f.start_in_frame(policy))
        })
    }
}

/// Frees framing settings. NULL is allowed and does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_free(framing: *mut mllp_framing) {
    guard_or((), || {
        if !framing.is_null() {
            // SAFETY: a non-NULL pointer is a value from `mllp_framing_new` that the caller
            // gives up here, once.
            drop(unsafe { Box::from_raw(framing) });
        }
    })
}

/// Frames one payload: writes start sequence + payload + end sequence into `out`.
///
/// `framing` may be NULL for the defaults. `payload` must not be NULL (even when
/// `payload_len` is 0). `out` (capacity `out_cap`) may be NULL only when `out_cap` is 0, and
/// must not overlap the payload. On `MLLP_OK`, `*out_len` is the frame's length.
///
/// Errors: `MLLP_BUFFER_TOO_SMALL` with the size needed in `*out_len` (nothing written);
/// `MLLP_FRAME_PAYLOAD_CONTAINS_END` when the payload contains the end sequence (the peer would
/// split it); `MLLP_INVALID_ARGUMENT` when the buffers overlap; `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_encode_frame(
    framing: *const mllp_framing,
    payload: *const u8,
    payload_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> mllp_result {
    guard("mllp_encode_frame", || {
        // SAFETY: the caller passes a valid length pointer or NULL (checked).
        unsafe { args::put(out_len, 0) }?;
        // SAFETY: the caller passes `payload_len` readable bytes or NULL (checked).
        let payload = unsafe { args::bytes(payload, payload_len) }?;
        // SAFETY: the caller passes `out_cap` writable bytes, or NULL with 0 (checked).
        unsafe { OutBuf::new(out, out_cap) }?;
        // SAFETY: the caller passes a live framing value or NULL.
        let framing = unsafe { framing_or_default(framing) };
        let (p, o) = (payload.as_ptr() as usize, out as usize);
        if out_cap > 0 && p < o.saturating_add(out_cap) && o < p.saturating_add(payload.len()) {
            return Err(MLLP_INVALID_ARGUMENT);
        }
        if framing.check_payload(payload).is_err() {
            return Err(MLLP_FRAME_PAYLOAD_CONTAINS_END);
        }
        let (start, end) = (framing.start(), framing.end());
        let needed = start.len() + payload.len() + end.len();
        if needed > out_cap {
            // SAFETY: checked not NULL above.
            unsafe { args::put(out_len, needed) }?;
            return Err(super::result::MLLP_BUFFER_TOO_SMALL);
        }
        let mut at = 0;
        for part in [start, payload, end] {
            // SAFETY: `at + part.len() <= needed <= out_cap` and `out` is valid for `out_cap`
            // bytes (so not NULL here, as `needed > 0`); the regions do not overlap (checked).
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), out.add(at), part.len()) };
            at += part.len();
        }
        // SAFETY: checked not NULL above.
        unsafe { args::put(out_len, needed) }?;
        Ok(MLLP_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_BUFFER_TOO_SMALL, MLLP_CONFIG, MLLP_NULL_ARGUMENT};

    fn new() -> *mut mllp_framing {
        let mut f = std::ptr::null_mut();
        // SAFETY: a writable pointer.
        assert_eq!(unsafe { mllp_framing_new(&mut f) }, MLLP_OK);
        f
    }

    #[test]
    fn defaults_are_the_rust_defaults() {
        let f = new();
        // SAFETY: a live value, freed once.
        unsafe {
            assert_eq!((*f).get(), Framing::default());
            mllp_framing_free(f);
        }
    }

    #[test]
    fn setters_validate_and_keep_the_old_value() {
        let f = new();
        let (start, end) = ([0x0Bu8; 9], [0x1Cu8, 0x0D]);
        // SAFETY: a live value; the sequences are readable for the lengths given.
        unsafe {
            for (s_len, e_len) in [(0, 2), (9, 2), (1, 0)] {
                let code =
                    mllp_framing_set_sequences(f, start.as_ptr(), s_len, end.as_ptr(), e_len);
                assert_eq!(code, MLLP_CONFIG);
            }
            let clash = mllp_framing_set_sequences(f, start.as_ptr(), 1, start.as_ptr(), 1);
            assert_eq!(clash, MLLP_CONFIG);
            let null = mllp_framing_set_sequences(f, std::ptr::null(), 1, end.as_ptr(), 2);
            assert_eq!(null, MLLP_CONFIG);
            assert_eq!(mllp_framing_set_max_message_size(f, 0), MLLP_CONFIG);
            assert_eq!(mllp_framing_set_lenient_end(f, 2), MLLP_INVALID_ARGUMENT);
            assert_eq!(mllp_framing_set_start_in_frame(f, 2), MLLP_INVALID_ARGUMENT);
            assert!(crate::last_error::text().contains("not 2"));
            assert_eq!((*f).get(), Framing::default());
            assert_eq!(mllp_framing_set_lenient_end(f, 1), MLLP_OK);
            let code = mllp_framing_set_sequences(f, b"\x02".as_ptr(), 1, b"\x03".as_ptr(), 1);
            assert_eq!(code, MLLP_OK);
            let got = (*f).get();
            assert_eq!(
                (got.start(), got.end(), got.is_lenient()),
                (&b"\x02"[..], &b"\x03"[..], true)
            );
            assert_eq!(
                mllp_framing_set_lenient_end(std::ptr::null_mut(), 1),
                MLLP_NULL_ARGUMENT
            );
            mllp_framing_free(f);
            mllp_framing_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn encode_reports_the_size_needed() {
        let mut out = [0u8; 8];
        let mut len = 0;
        let null = std::ptr::null();
        // SAFETY: valid pointers and lengths throughout.
        unsafe {
            let code = mllp_encode_frame(null, b"MSH|".as_ptr(), 4, out.as_mut_ptr(), 6, &mut len);
            assert_eq!((code, len), (MLLP_BUFFER_TOO_SMALL, 7));
            assert_eq!(out, [0; 8]);
            let code = mllp_encode_frame(null, b"MSH|".as_ptr(), 4, out.as_mut_ptr(), 7, &mut len);
            assert_eq!((code, len), (MLLP_OK, 7));
            assert_eq!(&out[..7], b"\x0bMSH|\x1c\r");
            let code =
                mllp_encode_frame(null, b"A\x1c\rB".as_ptr(), 4, out.as_mut_ptr(), 8, &mut len);
            assert_eq!(code, MLLP_FRAME_PAYLOAD_CONTAINS_END);
            let code =
                mllp_encode_frame(null, out.as_ptr().add(1), 1, out.as_mut_ptr(), 8, &mut len);
            assert_eq!(code, MLLP_INVALID_ARGUMENT);
        }
    }
}
