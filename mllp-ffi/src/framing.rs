//! Framing options as a C struct, and framing one payload.

use std::ffi::c_int;

use super::args::{self, OutBuf};
use super::panic::guard;
use super::result::{
    mllp_result, MLLP_CONFIG, MLLP_FRAME_PAYLOAD_CONTAINS_END, MLLP_INVALID_ARGUMENT, MLLP_OK,
};
use mllp_core::{Error, Result};
use mllp_core::{Framing, StartInFrame, MAX_SEQUENCE_LEN};

/// A start sequence inside a frame followed by `MSH`, `BHS` or `FHS` discards the partial
/// frame and starts a new one; any other start sequence is payload (the default).
pub const MLLP_START_IN_FRAME_RESTART: u32 = 0;
/// A start sequence inside a frame is ordinary payload.
pub const MLLP_START_IN_FRAME_IGNORE: u32 = 1;

/// Framing options: which bytes open and close a frame, and the decoder's limits.
///
/// Always fill it with `mllp_framing_init` first, then change the fields you need; fields may
/// be added at the end in a later major version. A plain struct owned by the caller: the
/// library copies it and keeps no pointer to it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mllp_framing {
    /// The start sequence; the first `start_len` bytes are used. Default `0x0B`.
    pub start: [u8; 8],
    /// Bytes in the start sequence, 1 to 8. Default 1.
    pub start_len: usize,
    /// The end sequence; the first `end_len` bytes are used. It must begin with a byte other
    /// than the start sequence's first byte. Default `0x1C 0x0D`.
    pub end: [u8; 8],
    /// Bytes in the end sequence, 1 to 8. Default 2.
    pub end_len: usize,
    /// The largest payload accepted, in bytes (at least 1). Larger frames are skipped and
    /// reported as `MLLP_FRAME_OVERSIZED`. Default 16 MiB.
    pub max_message_size: usize,
    /// Non-zero: a frame also ends at the first byte of the end sequence when the rest of the
    /// sequence does not follow (for peers that send `0x1C` without `0x0D`). Default 0.
    pub lenient: c_int,
    /// What a start sequence inside a frame means: `MLLP_START_IN_FRAME_RESTART` (default) or
    /// `MLLP_START_IN_FRAME_IGNORE`.
    pub start_in_frame: u32,
}

impl From<Framing> for mllp_framing {
    fn from(f: Framing) -> Self {
        let mut start = [0u8; MAX_SEQUENCE_LEN];
        start[..f.start().len()].copy_from_slice(f.start());
        let mut end = [0u8; MAX_SEQUENCE_LEN];
        end[..f.end().len()].copy_from_slice(f.end());
        mllp_framing {
            start,
            start_len: f.start().len(),
            end,
            end_len: f.end().len(),
            max_message_size: f.max_size(),
            lenient: c_int::from(f.is_lenient()),
            start_in_frame: match f.start_policy() {
                StartInFrame::Restart => MLLP_START_IN_FRAME_RESTART,
                StartInFrame::Ignore => MLLP_START_IN_FRAME_IGNORE,
            },
        }
    }
}

impl mllp_framing {
    /// The validated Rust settings. Lengths are checked before the arrays are sliced.
    pub(crate) fn to_framing(self) -> Result<Framing> {
        let start = sequence(&self.start, self.start_len, "start")?;
        let end = sequence(&self.end, self.end_len, "end")?;
        let policy = match self.start_in_frame {
            MLLP_START_IN_FRAME_RESTART => StartInFrame::Restart,
            MLLP_START_IN_FRAME_IGNORE => StartInFrame::Ignore,
            other => {
                return Err(Error::Config(format!(
                    "start_in_frame must be MLLP_START_IN_FRAME_RESTART or \
                     MLLP_START_IN_FRAME_IGNORE, not {other}"
                )))
            }
        };
        Ok(Framing::new(start, end)?
            .max_message_size(self.max_message_size)?
            .lenient_end(self.lenient != 0)
            .start_in_frame(policy))
    }
}

/// The first `len` bytes of `bytes`, when `len` is 1 to 8.
fn sequence<'a>(bytes: &'a [u8; 8], len: usize, which: &str) -> Result<&'a [u8]> {
    bytes.get(..len).filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Config(format!(
            "the {which} sequence must have 1 to {MAX_SEQUENCE_LEN} bytes, not {len}"
        ))
    })
}

/// The framing of an optional `mllp_framing` pointer: NULL means the defaults.
///
/// # Safety
/// When not NULL, `opts` must point to a valid `mllp_framing`.
pub(crate) unsafe fn framing_or_default(opts: *const mllp_framing) -> Result<Framing> {
    // SAFETY: the caller's contract; NULL is handled by `as_ref`.
    match unsafe { opts.as_ref() } {
        None => Ok(Framing::default()),
        Some(opts) => opts.to_framing(),
    }
}

/// Fills `*framing` with the defaults: start `0x0B`, end `0x1C 0x0D`, 16 MiB maximum, strict
/// end, restart on a start sequence inside a frame.
///
/// Returns `MLLP_OK`, or `MLLP_NULL_ARGUMENT` when `framing` is NULL. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_framing_init(framing: *mut mllp_framing) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a struct valid for writing, or NULL (checked by `put`).
        unsafe { args::put(framing, mllp_framing::from(Framing::default())) }?;
        Ok(MLLP_OK)
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
/// split it); `MLLP_CONFIG` for invalid framing options; `MLLP_INVALID_ARGUMENT` when the
/// buffers overlap; `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_encode_frame(
    framing: *const mllp_framing,
    payload: *const u8,
    payload_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a valid length pointer or NULL (checked).
        unsafe { args::put(out_len, 0) }?;
        // SAFETY: the caller passes `payload_len` readable bytes or NULL (checked).
        let payload = unsafe { args::bytes(payload, payload_len) }?;
        // SAFETY: the caller passes `out_cap` writable bytes, or NULL with 0 (checked).
        unsafe { OutBuf::new(out, out_cap) }?;
        // SAFETY: the caller passes valid options or NULL.
        let framing = unsafe { framing_or_default(framing) }.map_err(|_| MLLP_CONFIG)?;
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
    use crate::result::MLLP_BUFFER_TOO_SMALL;

    #[test]
    fn defaults_round_trip() {
        let mut f = std::mem::MaybeUninit::<mllp_framing>::uninit();
        // SAFETY: a writable struct.
        assert_eq!(unsafe { mllp_framing_init(f.as_mut_ptr()) }, MLLP_OK);
        // SAFETY: initialised by `mllp_framing_init`.
        let f = unsafe { f.assume_init() };
        assert_eq!(f.to_framing().unwrap(), Framing::default());
        assert_eq!((f.start_len, f.end_len), (1, 2));
        assert_eq!(&f.end[..2], &[0x1C, 0x0D]);
    }

    #[test]
    fn bad_options_are_config_errors() {
        let good = mllp_framing::from(Framing::default());
        let mut cases = Vec::new();
        for len in [0, 9, usize::MAX] {
            cases.push(mllp_framing {
                start_len: len,
                ..good
            });
            cases.push(mllp_framing {
                end_len: len,
                ..good
            });
        }
        cases.push(mllp_framing {
            max_message_size: 0,
            ..good
        });
        cases.push(mllp_framing {
            start_in_frame: 2,
            ..good
        });
        cases.push(mllp_framing {
            end: [0x0B; 8],
            ..good
        });
        for case in cases {
            assert!(
                matches!(case.to_framing(), Err(Error::Config(_))),
                "{case:?}"
            );
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
