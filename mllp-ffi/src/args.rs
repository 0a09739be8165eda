//! Checking arguments from C and writing results back: the only functions that turn raw
//! pointers into references, so each `unsafe` rule is stated (and checked) once.

use std::ffi::{c_char, c_int, CStr};

use super::result::{
    mllp_result, MLLP_BUFFER_TOO_SMALL, MLLP_CONFIG, MLLP_INVALID_ARGUMENT, MLLP_NULL_ARGUMENT,
    MLLP_OK,
};

/// A C flag: 0 or 1; anything else is `MLLP_INVALID_ARGUMENT` (with the last-error text), so
/// that a pointer or a stray value passed by mistake is caught.
pub(crate) fn flag(value: c_int, what: &str) -> Result<bool, mllp_result> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid(format_args!("{what} must be 0 or 1, not {other}"))),
    }
}

/// Records `text` and returns `MLLP_INVALID_ARGUMENT`.
pub(crate) fn invalid(text: impl std::fmt::Display) -> mllp_result {
    super::last_error::set(MLLP_INVALID_ARGUMENT, text)
}

/// Records `text` and returns `MLLP_CONFIG`.
pub(crate) fn config(text: impl std::fmt::Display) -> mllp_result {
    super::last_error::set(MLLP_CONFIG, text)
}

/// A core result with its error recorded as the last error and turned into its code.
pub(crate) fn check<T>(result: mllp_core::Result<T>) -> Result<T, mllp_result> {
    result.map_err(|e| super::last_error::error(&e))
}

/// A required NUL-terminated UTF-8 string argument named `what`, with a last-error text on
/// failure.
///
/// # Safety
/// As [`opt_str`].
pub(crate) unsafe fn req_string<'a>(s: *const c_char, what: &str) -> Result<&'a str, mllp_result> {
    // SAFETY: forwarded contract.
    match unsafe { opt_str(s) } {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(super::last_error::set(
            MLLP_NULL_ARGUMENT,
            format_args!("{what} is NULL"),
        )),
        Err(_) => Err(invalid(format_args!("{what} is not valid UTF-8"))),
    }
}

/// An optional NUL-terminated UTF-8 string argument named `what` (NULL gives `None`), with a
/// last-error text when it is not UTF-8.
///
/// # Safety
/// As [`opt_str`].
pub(crate) unsafe fn opt_string<'a>(
    s: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, mllp_result> {
    // SAFETY: forwarded contract.
    unsafe { opt_str(s) }.map_err(|_| invalid(format_args!("{what} is not valid UTF-8")))
}

/// `&T` from a pointer that must not be NULL.
///
/// # Safety
/// When not NULL, `p` must point to a valid, initialised `T` that nothing mutates for `'a`.
pub(crate) unsafe fn borrow<'a, T>(p: *const T) -> Result<&'a T, mllp_result> {
    // SAFETY: the caller guarantees validity when `p` is not NULL; `as_ref` checks NULL.
    unsafe { p.as_ref() }.ok_or(MLLP_NULL_ARGUMENT)
}

/// `&mut T` from a pointer that must not be NULL.
///
/// # Safety
/// When not NULL, `p` must point to a valid, initialised `T` that nothing else uses for `'a`.
pub(crate) unsafe fn borrow_mut<'a, T>(p: *mut T) -> Result<&'a mut T, mllp_result> {
    // SAFETY: the caller guarantees validity and exclusivity when `p` is not NULL.
    unsafe { p.as_mut() }.ok_or(MLLP_NULL_ARGUMENT)
}

/// `len` bytes at `data`, which must not be NULL (even when `len` is 0).
///
/// # Safety
/// When not NULL, `data` must point to `len` readable bytes that nothing mutates for `'a`.
pub(crate) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], mllp_result> {
    if data.is_null() {
        return Err(MLLP_NULL_ARGUMENT);
    }
    if len > isize::MAX as usize {
        return Err(MLLP_INVALID_ARGUMENT);
    }
    // SAFETY: not NULL, and the caller guarantees `len` readable bytes; the length fits the
    // `isize` limit of `from_raw_parts`.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// An optional NUL-terminated UTF-8 string: NULL gives `None`.
///
/// # Safety
/// When not NULL, `s` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn opt_str<'a>(s: *const c_char) -> Result<Option<&'a str>, mllp_result> {
    if s.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL, and the caller guarantees a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map(Some).map_err(|_| MLLP_INVALID_ARGUMENT)
}

/// Stores `value` through an out-pointer that must not be NULL.
///
/// # Safety
/// When not NULL, `out` must be valid for writing a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), mllp_result> {
    if out.is_null() {
        return Err(MLLP_NULL_ARGUMENT);
    }
    // SAFETY: not NULL and writable by the caller's contract; `write` does not read or drop the
    // old (possibly uninitialised) value.
    unsafe { out.write(value) };
    Ok(())
}

/// A caller's output buffer: `cap` writable bytes at `ptr`, which may be NULL only when `cap` is
/// 0 (a size query).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutBuf {
    ptr: *mut u8,
    cap: usize,
}

impl OutBuf {
    /// Checks the buffer's pointer.
    ///
    /// # Safety
    /// When not NULL, `ptr` must be valid for writing `cap` bytes until the buffer is used.
    pub(crate) unsafe fn new(ptr: *mut u8, cap: usize) -> Result<OutBuf, mllp_result> {
        if ptr.is_null() && cap != 0 {
            return Err(MLLP_NULL_ARGUMENT);
        }
        Ok(OutBuf { ptr, cap })
    }

    /// Copies `data` into the buffer and stores its length in `*out_len`; when it does not
    /// fit, writes nothing, stores the length needed and returns [`MLLP_BUFFER_TOO_SMALL`].
    ///
    /// # Safety
    /// `out_len` must be valid for writing (it was checked not to be NULL by [`put`] before).
    pub(crate) unsafe fn write(self, data: &[u8], out_len: *mut usize) -> mllp_result {
        // SAFETY: forwarded contract; a NULL `out_len` is reported, not written.
        if let Err(code) = unsafe { put(out_len, data.len()) } {
            return code;
        }
        if data.len() > self.cap {
            return MLLP_BUFFER_TOO_SMALL;
        }
        if !data.is_empty() {
            // SAFETY: `data.len() <= cap`, so `ptr` is not NULL (cap > 0) and valid for the
            // write by the contract of `new`; a caller buffer cannot overlap our own `data`.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, data.len()) };
        }
        MLLP_OK
    }

    /// Copies `text` as a NUL-terminated string. `*needed` gets the size needed, terminator
    /// included. When the buffer is too small it receives as much of the text as fits (cut at
    /// a character boundary, NUL-terminated when `cap > 0`) and the result is
    /// [`MLLP_BUFFER_TOO_SMALL`].
    ///
    /// # Safety
    /// `needed` must be valid for writing when not NULL.
    pub(crate) unsafe fn write_str(self, text: &str, needed: *mut usize) -> mllp_result {
        let size = text.len() + 1;
        // SAFETY: forwarded contract; a NULL `needed` is reported, not written.
        if let Err(code) = unsafe { put(needed, size) } {
            return code;
        }
        if self.cap == 0 {
            return MLLP_BUFFER_TOO_SMALL;
        }
        let mut n = text.len().min(self.cap - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: `cap > 0`, so `ptr` is not NULL and valid for `cap` bytes (contract of
        // `new`); `n + 1 <= cap` bytes are written.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), self.ptr, n);
            self.ptr.add(n).write(0);
        }
        if n == text.len() {
            MLLP_OK
        } else {
            MLLP_BUFFER_TOO_SMALL
        }
    }
}

/// The body of a builder's `_new` function: `*out` receives a new boxed `value` (NULL first,
/// so it is NULL on any failure), to be freed by the matching `_free`.
///
/// # Safety
/// `out` must be NULL or writable.
pub(crate) unsafe fn new_handle<T>(out: *mut *mut T, value: T) -> Result<mllp_result, mllp_result> {
    // SAFETY: the caller's contract; NULL is checked.
    unsafe { put(out, std::ptr::null_mut()) }?;
    let handle = Box::into_raw(Box::new(value));
    // SAFETY: checked not NULL above.
    unsafe { put(out, handle) }?;
    Ok(MLLP_OK)
}

/// The body of a builder's setter: runs `f` on the builder, under the guard of the export
/// `name`, and returns `MLLP_OK` or the error `f` gave (the builder is then unchanged, as `f`
/// checks before it writes).
///
/// # Safety
/// `builder` must be NULL or a live builder that no other thread uses during the call.
pub(crate) unsafe fn set<B>(
    name: &str,
    builder: *mut B,
    f: impl FnOnce(&mut B) -> Result<(), mllp_result>,
) -> mllp_result {
    super::panic::guard(name, || {
        // SAFETY: the caller's contract.
        let b = unsafe { borrow_mut(builder) }?;
        f(b)?;
        Ok(MLLP_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_buf_never_writes_past_its_capacity() {
        let mut buf = [0xAAu8; 8];
        let mut len = 0usize;
        // SAFETY: a valid buffer of 4 bytes (of 8) and a valid length.
        let code = unsafe {
            OutBuf::new(buf.as_mut_ptr(), 4)
                .unwrap()
                .write(b"hello", &mut len)
        };
        assert_eq!((code, len), (MLLP_BUFFER_TOO_SMALL, 5));
        assert_eq!(buf, [0xAA; 8]);
        // SAFETY: as above.
        let code = unsafe {
            OutBuf::new(buf.as_mut_ptr(), 5)
                .unwrap()
                .write(b"hello", &mut len)
        };
        assert_eq!((code, len), (MLLP_OK, 5));
        assert_eq!(&buf, b"hello\xAA\xAA\xAA");
        // SAFETY: NULL with capacity 0 is a size query.
        let code = unsafe {
            OutBuf::new(std::ptr::null_mut(), 0)
                .unwrap()
                .write(b"abc", &mut len)
        };
        assert_eq!((code, len), (MLLP_BUFFER_TOO_SMALL, 3));
        // SAFETY: checks NULL only.
        assert!(unsafe { OutBuf::new(std::ptr::null_mut(), 1) }.is_err());
    }

    #[test]
    fn strings_are_cut_at_character_boundaries() {
        let mut buf = [0xAAu8; 8];
        let mut needed = 0usize;
        // "é" is two bytes: with 3 bytes of room only "a" and the NUL fit.
        // SAFETY: a valid buffer of 3 bytes and a valid size.
        let code = unsafe {
            OutBuf::new(buf.as_mut_ptr(), 3)
                .unwrap()
                .write_str("aé", &mut needed)
        };
        assert_eq!((code, needed), (MLLP_BUFFER_TOO_SMALL, 4));
        assert_eq!(&buf[..3], b"a\0\xAA");
        // SAFETY: as above, 4 bytes.
        let code = unsafe {
            OutBuf::new(buf.as_mut_ptr(), 4)
                .unwrap()
                .write_str("aé", &mut needed)
        };
        assert_eq!(code, MLLP_OK);
        assert_eq!(&buf[..4], "aé\0".as_bytes());
    }
}
