//! Cutting a file into HL7 messages, as a gateway that sends files must: the same rules as
//! `mllp send` (`mllp::hl7::split_messages`), each message handed to a callback.

use std::ffi::c_void;

use super::args;
use super::panic::guard;
use super::result::{mllp_result, MLLP_INVALID_ARGUMENT, MLLP_OK};
use mllp_core::hl7::{normalise_endings, split_messages, Batches};

/// Flags of `mllp_split_messages`, or-ed together.
pub type mllp_split_flags = u32;

/// A batch file (one that starts with FHS or BHS) gives each of its MSH messages on its own,
/// without the envelope segments; without this flag the whole batch is one message.
pub const MLLP_SPLIT_BATCH: mllp_split_flags = 1;
/// LF and CRLF segment endings become CR, HL7's segment terminator (and a UTF-8 byte order mark
/// is dropped); without this flag each message's bytes are as in the file.
pub const MLLP_SPLIT_NORMALISE_ENDINGS: mllp_split_flags = 2;

/// Called by `mllp_split_messages` for each message, in file order: `msg`/`msg_len` is the
/// message (not NUL-terminated, valid only until the callback returns: copy what you keep),
/// `index` its position from 0. Return 0 to go on, anything else to stop.
pub type mllp_split_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        index: usize,
        msg: *const u8,
        msg_len: usize,
    ) -> i32,
>;

/// Cuts `data`/`len` (the contents of a file) into HL7 messages and calls `callback` with each:
/// a new message starts at each segment beginning with MSH; blank lines and MLLP framing bytes
/// saved with captured traffic (0x0B, 0x1C) are dropped; a batch is one message unless
/// `MLLP_SPLIT_BATCH`; endings are fixed with `MLLP_SPLIT_NORMALISE_ENDINGS`. `userdata` is
/// passed to the callback untouched. `*count` (when `count` is not NULL) is the number of
/// messages handed to the callback.
///
/// Returns `MLLP_OK` (also when the callback stopped early, or the data held no message),
/// `MLLP_INVALID_ARGUMENT` (an unknown flag), `MLLP_NULL_ARGUMENT` (`data` or `callback` NULL).
/// Thread-safe; the callback runs on the calling thread.
#[no_mangle]
pub unsafe extern "C" fn mllp_split_messages(
    data: *const u8,
    len: usize,
    flags: mllp_split_flags,
    callback: mllp_split_cb,
    userdata: *mut c_void,
    count: *mut usize,
) -> mllp_result {
    guard("mllp_split_messages", || {
        if !count.is_null() {
            // SAFETY: the caller passes a writable count or NULL (checked).
            unsafe { args::put(count, 0) }?;
        }
        // SAFETY: the caller passes `len` readable bytes or NULL (checked).
        let data = unsafe { args::bytes(data, len) }?;
        let callback = callback.ok_or(super::result::MLLP_NULL_ARGUMENT)?;
        if flags & !(MLLP_SPLIT_BATCH | MLLP_SPLIT_NORMALISE_ENDINGS) != 0 {
            return Err(MLLP_INVALID_ARGUMENT);
        }
        let batches = if flags & MLLP_SPLIT_BATCH != 0 {
            Batches::Split
        } else {
            Batches::Whole
        };
        for (index, msg) in split_messages(data, batches).into_iter().enumerate() {
            let msg = if flags & MLLP_SPLIT_NORMALISE_ENDINGS != 0 {
                normalise_endings(&msg)
            } else {
                msg
            };
            // SAFETY: the callback gets the caller's own userdata and a buffer valid for the
            // call, as documented.
            let go_on = unsafe { callback(userdata, index, msg.as_ptr(), msg.len()) } == 0;
            if !count.is_null() {
                // SAFETY: checked not NULL; writable by the caller's contract.
                unsafe { args::put(count, index + 1) }?;
            }
            if !go_on {
                break;
            }
        }
        Ok(MLLP_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn collect(
        userdata: *mut c_void,
        _: usize,
        msg: *const u8,
        len: usize,
    ) -> i32 {
        // SAFETY: the test passes a `Vec<Vec<u8>>` as userdata; `msg` holds `len` bytes.
        let out = unsafe { &mut *userdata.cast::<Vec<Vec<u8>>>() };
        out.push(unsafe { std::slice::from_raw_parts(msg, len) }.to_vec());
        i32::from(out.len() >= 2)
    }

    #[test]
    fn messages_one_by_one_and_a_stop() {
        let file = b"MSH|1\nPID|1\n\nMSH|2\r\nMSH|3\n";
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut count = 99;
        // SAFETY: valid buffers, callback and userdata.
        let r = unsafe {
            mllp_split_messages(
                file.as_ptr(),
                file.len(),
                MLLP_SPLIT_NORMALISE_ENDINGS,
                Some(collect),
                (&mut got as *mut Vec<Vec<u8>>).cast(),
                &mut count,
            )
        };
        assert_eq!(r, MLLP_OK);
        assert_eq!(got, [&b"MSH|1\rPID|1\r"[..], b"MSH|2\r"]);
        assert_eq!(count, 2);
        // SAFETY: as above; an unknown flag is refused before anything is called.
        let r = unsafe {
            mllp_split_messages(
                file.as_ptr(),
                0,
                4,
                Some(collect),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, MLLP_INVALID_ARGUMENT);
    }
}
