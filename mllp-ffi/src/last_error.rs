//! The detailed text of a handle's last error.
//!
//! Result codes say what kind of thing went wrong; the text says exactly what (which file,
//! which host, which byte). Every handle embeds a [`LastError`]; its `_last_error` export calls
//! [`LastError::copy_out`]. Calls that fail set the text, calls that succeed leave it alone
//! (like `errno`), so it describes the most recent failure on that handle.
//!
//! The text sits behind a mutex so that handles shared between threads (a listener stopped from
//! another thread) can use the same type.

use std::ffi::c_char;
use std::fmt::Display;
use std::sync::Mutex;

use super::args::OutBuf;
use super::result::{code_of, mllp_result};
use mllp_core::Error;

/// The last error text of one handle.
#[derive(Debug, Default)]
pub(crate) struct LastError {
    text: Mutex<String>,
}

impl LastError {
    /// Records `text` and returns `code`, for `return Err(last.set(CODE, "..."))`.
    pub(crate) fn set(&self, code: mllp_result, text: impl Display) -> mllp_result {
        let mut slot = self.text.lock().unwrap_or_else(|e| e.into_inner());
        slot.clear();
        use std::fmt::Write;
        let _ = write!(slot, "{text}");
        // A NUL inside would cut the C string short; it cannot come from our messages, but a
        // peer's bytes may end up in one.
        if slot.contains('\0') {
            *slot = slot.replace('\0', "\u{FFFD}");
        }
        code
    }

    /// Records `error` and returns its code.
    pub(crate) fn error(&self, error: &Error) -> mllp_result {
        self.set(code_of(error), error)
    }

    /// A copy of the current text (empty when no call has failed yet).
    #[cfg(test)]
    pub(crate) fn get(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Copies the text, NUL-terminated, into `buf` (`cap` bytes; NULL only with `cap` 0) and
    /// stores the size needed (terminator included) in `*needed`. See [`OutBuf::write_str`].
    ///
    /// # Safety
    /// `buf` must be valid for writing `cap` bytes when not NULL; `needed` must be valid for
    /// writing when not NULL.
    pub(crate) unsafe fn copy_out(
        &self,
        buf: *mut c_char,
        cap: usize,
        needed: *mut usize,
    ) -> mllp_result {
        // SAFETY: forwarded contract.
        let out = match unsafe { OutBuf::new(buf.cast(), cap) } {
            Ok(out) => out,
            Err(code) => return code,
        };
        let text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: forwarded contract.
        unsafe { out.write_str(&text, needed) }
    }
}

thread_local! {
    /// The text of the last `_new` call that failed on this thread: there is no handle to keep
    /// it in.
    static NEW_ERROR: LastError = LastError::default();
}

/// Records why a `_new` call failed, for `mllp_new_error`, and returns `code`.
pub(crate) fn new_failed(code: mllp_result, text: impl Display) -> mllp_result {
    ::log::debug!("{text}");
    NEW_ERROR.with(|e| e.set(code, text))
}

/// Records the error of a failed `_new` call and returns its code.
pub(crate) fn new_error(error: &Error) -> mllp_result {
    new_failed(code_of(error), error)
}

/// The text recorded by the last failed `_new` call on this thread.
#[cfg(test)]
pub(crate) fn new_error_text() -> String {
    NEW_ERROR.with(LastError::get)
}

/// Copies the text of the last `_new` call (`mllp_sender_new`, `mllp_listener_new`) that
/// failed on the calling thread into `buf`, NUL-terminated: a failed `_new` has no handle to
/// ask. Same buffer rules as `mllp_decoder_last_error`. Thread-safe (the text is per thread).
#[no_mangle]
pub unsafe extern "C" fn mllp_new_error(
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    super::panic::guard(|| {
        // SAFETY: the caller passes `cap` writable bytes (or NULL with 0) and a writable size.
        Ok(NEW_ERROR.with(|e| unsafe { e.copy_out(buf, cap, needed) }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_BUFFER_TOO_SMALL, MLLP_CONFIG, MLLP_OK};

    #[test]
    fn text_round_trips() {
        let last = LastError::default();
        let mut buf = [0u8; 64];
        let mut needed = 0;
        // SAFETY: valid buffer and size.
        let code = unsafe { last.copy_out(buf.as_mut_ptr().cast(), 64, &mut needed) };
        assert_eq!((code, needed, buf[0]), (MLLP_OK, 1, 0));

        assert_eq!(last.set(MLLP_CONFIG, "bad\0start"), MLLP_CONFIG);
        assert_eq!(last.get(), "bad\u{FFFD}start");
        // SAFETY: a size query.
        let code = unsafe { last.copy_out(std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!(
            (code, needed),
            (MLLP_BUFFER_TOO_SMALL, last.get().len() + 1)
        );
        // SAFETY: valid buffer and size.
        let code = unsafe { last.copy_out(buf.as_mut_ptr().cast(), needed, &mut needed) };
        assert_eq!(code, MLLP_OK);
        assert_eq!(&buf[..needed], "bad\u{FFFD}start\0".as_bytes());
    }
}
