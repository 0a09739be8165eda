//! Acknowledgements: building the one of a received message into a caller buffer, and
//! reading the text and the error list of one received by a sender.

use std::ffi::c_char;

use super::args::{self, OutBuf};
use super::panic::guard;
use super::result::{
    code_of, mllp_result, MLLP_INVALID_ARGUMENT, MLLP_NAK_UNPARSEABLE, MLLP_NO_ACK, MLLP_OK,
};
use mllp_core::charset::Charset;
use mllp_core::hl7::{
    build_nak_unparseable, salvage_control_id, Ack, AckBuilder, Disposition, Header,
};
use mllp_core::Error;

/// What the receiver decided about a message (listener callbacks return one too).
pub type mllp_disposition = u32;

/// Accepted: the acknowledgement carries AA (original mode) or CA (enhanced mode).
pub const MLLP_DISPOSITION_ACCEPT: mllp_disposition = 0;
/// Not processed because of an error; the sender may retry: AE or CE.
pub const MLLP_DISPOSITION_ERROR: mllp_disposition = 1;
/// Rejected; retrying will not help: AR or CR.
pub const MLLP_DISPOSITION_REJECT: mllp_disposition = 2;

/// The Rust disposition for a C value, or `None` for an unknown one.
pub(crate) fn disposition(value: mllp_disposition) -> Option<Disposition> {
    match value {
        MLLP_DISPOSITION_ACCEPT => Some(Disposition::Accept),
        MLLP_DISPOSITION_ERROR => Some(Disposition::Error),
        MLLP_DISPOSITION_REJECT => Some(Disposition::Reject),
        _ => None,
    }
}

/// Builds the acknowledgement (ACK/NAK) of a received HL7 message.
///
/// `msg`/`msg_len` is the message (a frame's payload). `disposition` is one of
/// `MLLP_DISPOSITION_*`. `text` is NULL or a NUL-terminated UTF-8 string for MSA-3 and, on an
/// error or reject, the ERR segment; it is escaped with the message's escape character. The
/// acknowledgement mirrors the message's separators, sender/receiver, trigger, processing ID
/// and version, echoes its control ID in MSA-2, gets a fresh control ID of its own, and is
/// encoded in the character set the message declares in MSH-18 (UTF-8 when none or unknown).
/// Segments end with CR. It is not framed: use `mllp_encode_frame` to send it.
///
/// `out` (capacity `out_cap`) may be NULL only when `out_cap` is 0. Returns:
/// * `MLLP_OK`: `*out_len` bytes were written.
/// * `MLLP_NO_ACK` (not an error): the message asks, in enhanced mode (MSH-15), for no
///   acknowledgement in this case; `*out_len` is 0.
/// * `MLLP_NAK_UNPARSEABLE` (not an error): the message's header could not be read, so `out`
///   holds a reject (AR, MSA-2 the MSH-10 if it can still be found, the reason in MSA-3 and
///   ERR) whatever `disposition` and `text` said. Send it back all the same.
/// * `MLLP_BUFFER_TOO_SMALL`: nothing written; `*out_len` is the size needed. The size does not
///   depend on the time or the control ID, so a second call with that capacity succeeds.
/// * `MLLP_CHARSET`: the text cannot be represented in the message's character set.
/// * `MLLP_INVALID_ARGUMENT` (unknown disposition, text not UTF-8), `MLLP_NULL_ARGUMENT`.
///
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_build_ack(
    msg: *const u8,
    msg_len: usize,
    disposition: mllp_disposition,
    text: *const c_char,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> mllp_result {
    guard("mllp_build_ack", || {
        // SAFETY: the caller passes a writable length or NULL (checked).
        unsafe { args::put(out_len, 0) }?;
        // SAFETY: the caller passes `msg_len` readable bytes or NULL (checked).
        let msg = unsafe { args::bytes(msg, msg_len) }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let text = unsafe { args::opt_str(text) }?;
        // SAFETY: the caller passes `out_cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(out, out_cap) }?;
        let disposition = self::disposition(disposition).ok_or(MLLP_INVALID_ARGUMENT)?;

        let mut ack = Vec::with_capacity(256);
        let status = match Header::parse(msg) {
            Ok(header) => {
                let charset = Charset::from_header(&header, Charset::UTF_8);
                let mut builder = AckBuilder::new(disposition).charset(charset);
                if let Some(text) = text {
                    builder = builder.text(text);
                }
                match builder.build(&header, &mut ack) {
                    Ok(true) => MLLP_OK,
                    Ok(false) => return Ok(MLLP_NO_ACK),
                    Err(e) => return Err(code_of(&e)),
                }
            }
            Err(e) => {
                build_nak_unparseable(
                    salvage_control_id(msg),
                    &Error::from(e).to_string(),
                    &mut ack,
                );
                MLLP_NAK_UNPARSEABLE
            }
        };
        // SAFETY: `out_len` was checked not NULL above.
        match unsafe { out.write(&ack, out_len) } {
            MLLP_OK => Ok(status),
            code => Err(code),
        }
    })
}

/// The acknowledgement in `ack`/`ack_len`, parsed.
///
/// # Safety
/// `ack` must be NULL or point to `ack_len` readable bytes.
unsafe fn parse(ack: *const u8, ack_len: usize) -> Result<Ack, mllp_result> {
    // SAFETY: forwarded contract (NULL is checked).
    let bytes = unsafe { args::bytes(ack, ack_len) }?;
    args::check(Ack::parse(bytes))
}

/// Copies the text of an acknowledgement (MSA-3, unescaped, as UTF-8) into `buf`,
/// NUL-terminated: for the bytes `mllp_sender_send` returned, say.
///
/// `ack`/`ack_len` is the reply frame's payload (not NULL). `*needed` receives the size the
/// whole text needs, terminator included (1 when MSA-3 is empty or absent, and for an MLLP
/// release 2 commit block). `buf` may be NULL when `cap` is 0, to ask for the size; a short
/// buffer gets as much as fits and `MLLP_BUFFER_TOO_SMALL`. The text is decoded in the
/// character set MSH-18 names (else UTF-8), malformed bytes replaced.
///
/// Errors: `MLLP_HEADER` (no readable MSH), `MLLP_NOT_AN_ACK` (no MSA segment with a known
/// code), `MLLP_BUFFER_TOO_SMALL`, `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_ack_text(
    ack: *const u8,
    ack_len: usize,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    guard("mllp_ack_text", || {
        // SAFETY: the caller passes a writable size or NULL (checked).
        unsafe { args::put(needed, 0) }?;
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(buf.cast(), cap) }?;
        // SAFETY: the caller passes `ack_len` readable bytes or NULL (checked).
        let ack = unsafe { parse(ack, ack_len) }?;
        // SAFETY: `needed` was checked not NULL above.
        Ok(unsafe { out.write_str(ack.text.as_deref().unwrap_or(""), needed) })
    })
}

/// Stores the number of ERR segments of an acknowledgement in `*count` (0 when there are none,
/// and for an MLLP release 2 commit block); read each with `mllp_ack_error_text`.
///
/// Errors: `MLLP_HEADER`, `MLLP_NOT_AN_ACK`, `MLLP_NULL_ARGUMENT` (as `mllp_ack_text`).
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_ack_error_count(
    ack: *const u8,
    ack_len: usize,
    count: *mut usize,
) -> mllp_result {
    guard("mllp_ack_error_count", || {
        // SAFETY: the caller passes a writable count or NULL (checked).
        unsafe { args::put(count, 0) }?;
        // SAFETY: the caller passes `ack_len` readable bytes or NULL (checked).
        let ack = unsafe { parse(ack, ack_len) }?;
        // SAFETY: checked not NULL above.
        unsafe { args::put(count, ack.errors.len()) }?;
        Ok(MLLP_OK)
    })
}

/// Copies the text of the ERR segment number `index` (from 0, in the order received) of an
/// acknowledgement into `buf`, NUL-terminated, as `mllp_ack_text` does: ERR-8 when valued,
/// else the text of ERR-3, else the text (or code) in ERR-1's fourth component; unescaped.
///
/// Errors: `MLLP_INVALID_ARGUMENT` (`index` not below `mllp_ack_error_count`), `MLLP_HEADER`,
/// `MLLP_NOT_AN_ACK`, `MLLP_BUFFER_TOO_SMALL`, `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_ack_error_text(
    ack: *const u8,
    ack_len: usize,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    guard("mllp_ack_error_text", || {
        // SAFETY: the caller passes a writable size or NULL (checked).
        unsafe { args::put(needed, 0) }?;
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(buf.cast(), cap) }?;
        // SAFETY: the caller passes `ack_len` readable bytes or NULL (checked).
        let ack = unsafe { parse(ack, ack_len) }?;
        let text = ack.errors.get(index).ok_or_else(|| {
            args::invalid(format_args!(
                "the acknowledgement has {} ERR segments: there is no number {index}",
                ack.errors.len()
            ))
        })?;
        // SAFETY: `needed` was checked not NULL above.
        Ok(unsafe { out.write_str(text, needed) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_BUFFER_TOO_SMALL, MLLP_CHARSET, MLLP_NULL_ARGUMENT};
    use mllp_core::hl7::Ack;

    const MSG: &[u8] =
        b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01^ORU_R01|123|P|2.5.1\rPID|1\r";

    fn build(msg: &[u8], d: mllp_disposition, text: Option<&str>) -> (mllp_result, Vec<u8>) {
        let text = text.map(|t| std::ffi::CString::new(t).unwrap());
        let text_ptr = text.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
        let mut len = 0;
        // SAFETY: a size query with valid pointers.
        let code = unsafe {
            mllp_build_ack(
                msg.as_ptr(),
                msg.len(),
                d,
                text_ptr,
                std::ptr::null_mut(),
                0,
                &mut len,
            )
        };
        assert_eq!(
            code,
            if len == 0 {
                MLLP_NO_ACK
            } else {
                MLLP_BUFFER_TOO_SMALL
            }
        );
        let mut out = vec![0u8; len];
        // SAFETY: a buffer of the size reported.
        let code = unsafe {
            mllp_build_ack(
                msg.as_ptr(),
                msg.len(),
                d,
                text_ptr,
                out.as_mut_ptr(),
                len,
                &mut len,
            )
        };
        out.truncate(len);
        (code, out)
    }

    #[test]
    fn acks_carry_the_disposition() {
        for (d, code) in [
            (MLLP_DISPOSITION_ACCEPT, "AA"),
            (MLLP_DISPOSITION_ERROR, "AE"),
            (MLLP_DISPOSITION_REJECT, "AR"),
        ] {
            let (rc, out) = build(MSG, d, Some("a|b"));
            assert_eq!(rc, MLLP_OK);
            let ack = Ack::parse(&out).unwrap();
            assert_eq!(ack.code.as_str(), code);
            assert_eq!(ack.control_id, "123");
            assert_eq!(ack.text.as_deref(), Some("a|b"));
            let msa = format!("\rMSA|{code}|123|a\\F\\b\r");
            assert!(out.windows(msa.len()).any(|w| w == msa.as_bytes()));
            assert!(out.starts_with(b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|"));
        }
    }

    #[test]
    fn unparseable_input_gets_a_reject() {
        let (rc, out) = build(b"garbage", MLLP_DISPOSITION_ACCEPT, None);
        assert_eq!(rc, MLLP_NAK_UNPARSEABLE);
        let ack = Ack::parse(&out).unwrap();
        assert_eq!(ack.code.as_str(), "AR");
        assert_eq!(ack.control_id, "");
        assert!(ack.text.unwrap().contains("MSH, BHS or FHS"));
    }

    #[test]
    fn enhanced_mode_may_ask_for_no_ack() {
        let msg = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|9|P|2.5|||ER|NE\r";
        let (rc, out) = build(msg, MLLP_DISPOSITION_ACCEPT, None);
        assert_eq!((rc, out.len()), (MLLP_NO_ACK, 0));
        let (rc, out) = build(msg, MLLP_DISPOSITION_ERROR, None);
        assert_eq!(rc, MLLP_OK);
        assert_eq!(Ack::parse(&out).unwrap().code.as_str(), "CE");
    }

    #[test]
    fn bad_arguments() {
        let mut len = 7;
        // SAFETY: NULL and invalid values are what is being tested; other pointers are valid.
        unsafe {
            let code = mllp_build_ack(
                MSG.as_ptr(),
                MSG.len(),
                3,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
                &mut len,
            );
            assert_eq!((code, len), (MLLP_INVALID_ARGUMENT, 0));
            let code = mllp_build_ack(
                std::ptr::null(),
                0,
                0,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
                &mut len,
            );
            assert_eq!(code, MLLP_NULL_ARGUMENT);
            let bad = b"\xff\0";
            let code = mllp_build_ack(
                MSG.as_ptr(),
                MSG.len(),
                0,
                bad.as_ptr().cast(),
                std::ptr::null_mut(),
                0,
                &mut len,
            );
            assert_eq!(code, MLLP_INVALID_ARGUMENT);
        }
        let latin1 = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|9|P|2.5||||||ASCII\r";
        let (rc, _) = build_checked(latin1, "\u{263A}");
        assert_eq!(rc, MLLP_CHARSET);
    }

    fn build_checked(msg: &[u8], text: &str) -> (mllp_result, usize) {
        let text = std::ffi::CString::new(text).unwrap();
        let mut out = [0u8; 1024];
        let mut len = 0;
        // SAFETY: valid pointers and capacity.
        let code = unsafe {
            mllp_build_ack(
                msg.as_ptr(),
                msg.len(),
                MLLP_DISPOSITION_ERROR,
                text.as_ptr(),
                out.as_mut_ptr(),
                out.len(),
                &mut len,
            )
        };
        (code, len)
    }

    #[test]
    fn text_and_errors_of_a_received_ack() {
        let (rc, ack) = build(MSG, MLLP_DISPOSITION_REJECT, Some("no \\ way|x"));
        assert_eq!(rc, MLLP_OK);
        let mut buf = [0u8; 64];
        let (mut needed, mut count) = (0, 9);
        // SAFETY: valid pointers and capacities throughout.
        unsafe {
            let code = mllp_ack_text(
                ack.as_ptr(),
                ack.len(),
                buf.as_mut_ptr().cast(),
                64,
                &mut needed,
            );
            assert_eq!(code, MLLP_OK);
            assert_eq!(&buf[..needed], b"no \\ way|x\0");
            assert_eq!(
                mllp_ack_error_count(ack.as_ptr(), ack.len(), &mut count),
                MLLP_OK
            );
            assert_eq!(count, 1);
            let code = mllp_ack_error_text(
                ack.as_ptr(),
                ack.len(),
                0,
                buf.as_mut_ptr().cast(),
                64,
                &mut needed,
            );
            assert_eq!(code, MLLP_OK);
            assert_eq!(&buf[..needed], b"no \\ way|x\0");
            let code = mllp_ack_error_text(
                ack.as_ptr(),
                ack.len(),
                1,
                buf.as_mut_ptr().cast(),
                64,
                &mut needed,
            );
            assert_eq!(code, MLLP_INVALID_ARGUMENT);
            let code = mllp_ack_text(b"x".as_ptr(), 1, buf.as_mut_ptr().cast(), 64, &mut needed);
            assert_eq!(code, crate::result::MLLP_HEADER);
            let code = mllp_ack_text(
                MSG.as_ptr(),
                MSG.len(),
                buf.as_mut_ptr().cast(),
                64,
                &mut needed,
            );
            assert_eq!(code, crate::result::MLLP_NOT_AN_ACK);
            let commit = [0x06u8];
            assert_eq!(
                mllp_ack_error_count(commit.as_ptr(), 1, &mut count),
                MLLP_OK
            );
            assert_eq!(count, 0);
        }
    }
}
