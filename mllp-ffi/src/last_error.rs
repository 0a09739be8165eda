//! The last error text, one per thread.
//!
//! Result codes say what kind of thing went wrong; the text says exactly what (which file,
//! which host, which byte). Every call that fails on a thread replaces that thread's text (the
//! panic guard gives a generic one when the call did not say more); calls that succeed leave it
//! alone, like `errno`. `mllp_last_error` copies it out. There is no per-handle text: a handle
//! shared between threads (a listener stopped from another thread) would otherwise report one
//! thread's failure to another.

use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::fmt::Display;

use super::args::OutBuf;
use super::result::{code_of, mllp_result};
use mllp_core::Error;

thread_local! {
    /// The text of the last failed call on this thread.
    static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    /// Whether the call running on this thread has set the text (see [`begin_call`]).
    static SET_IN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Records `text` as this thread's last error and returns `code`, for
/// `return Err(last_error::set(CODE, "..."))`.
pub(crate) fn set(code: mllp_result, text: impl Display) -> mllp_result {
    let mut text = text.to_string();
    // A NUL inside would cut the C string short; it cannot come from our messages, but a
    // peer's bytes may end up in one.
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}");
    }
    TEXT.with(|t| *t.borrow_mut() = text);
    SET_IN_CALL.with(|s| s.set(true));
    code
}

/// Records `error` and returns its code.
pub(crate) fn error(error: &Error) -> mllp_result {
    set(code_of(error), error)
}

/// Marks the start of an exported call; returns the mark of the call it is nested in (a library
/// call made from a listener callback), for [`end_call`].
pub(crate) fn begin_call() -> bool {
    SET_IN_CALL.with(|s| s.replace(false))
}

/// Marks the end of an exported call: whether it set the text; restores the outer call's mark.
pub(crate) fn end_call(outer: bool) -> bool {
    SET_IN_CALL.with(|s| s.replace(outer))
}

/// A copy of this thread's text (empty when no call has failed on it yet).
#[cfg(test)]
pub(crate) fn text() -> String {
    TEXT.with(|t| t.borrow().clone())
}

/// Copies the text of the last failed call on the calling thread into `buf`, NUL-terminated.
///
/// Every function that returns an error code (100 and above) sets this text, on the thread
/// that called it; successful calls leave it as it was, so it describes the most recent
/// failure on this thread (empty when there was none). A listener callback runs on a library
/// thread: it sees the text of calls made on that thread.
///
/// `*needed` receives the size the whole text needs, terminator included (1 for an empty
/// text). `buf` may be NULL when `cap` is 0, to ask for the size. When `cap` is too small,
/// `buf` receives as much as fits, cut at a character boundary and NUL-terminated when `cap`
/// is not 0, and the result is `MLLP_BUFFER_TOO_SMALL`. This function never changes the text.
/// Errors: `MLLP_NULL_ARGUMENT` (`needed` NULL, or `buf` NULL with `cap` > 0). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_last_error(
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    // Not `guard`: a failure here must not replace the text being read.
    super::panic::guard_or(super::result::MLLP_PANIC, || {
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = match unsafe { OutBuf::new(buf.cast(), cap) } {
            Ok(out) => out,
            Err(code) => return code,
        };
        // SAFETY: the caller passes a writable size or NULL (checked by `write_str`).
        TEXT.with(|t| unsafe { out.write_str(&t.borrow(), needed) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_BUFFER_TOO_SMALL, MLLP_CONFIG, MLLP_NULL_ARGUMENT, MLLP_OK};

    #[test]
    fn text_round_trips_per_thread() {
        let mut buf = [0u8; 64];
        let mut needed = 0;
        // SAFETY: valid buffer and size.
        let code = unsafe { mllp_last_error(buf.as_mut_ptr().cast(), 64, &mut needed) };
        assert_eq!((code, needed, buf[0]), (MLLP_OK, 1, 0));

        assert_eq!(set(MLLP_CONFIG, "bad\0start"), MLLP_CONFIG);
        assert_eq!(text(), "bad\u{FFFD}start");
        // SAFETY: a size query.
        let code = unsafe { mllp_last_error(std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!((code, needed), (MLLP_BUFFER_TOO_SMALL, text().len() + 1));
        // SAFETY: valid buffer and size.
        let code = unsafe { mllp_last_error(buf.as_mut_ptr().cast(), needed, &mut needed) };
        assert_eq!(code, MLLP_OK);
        assert_eq!(&buf[..needed], "bad\u{FFFD}start\0".as_bytes());
        // SAFETY: NULL with a capacity is refused, and the text stays.
        let code = unsafe { mllp_last_error(std::ptr::null_mut(), 4, &mut needed) };
        assert_eq!(code, MLLP_NULL_ARGUMENT);
        assert_eq!(text(), "bad\u{FFFD}start");
        // Another thread has its own text.
        std::thread::spawn(|| assert_eq!(text(), ""))
            .join()
            .unwrap();
    }
}
