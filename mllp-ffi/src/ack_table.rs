//! The C table of acknowledgement codes: the `MLLP_ACK_*` numbers, their names, and the code
//! of a parsed [`Ack`].

use std::ffi::c_char;

use mllp_core::hl7::{Ack, AckCode, ReplyKind};

/// The acknowledgement code of a reply (MSA-1), or of an MLLP release 2 commit block.
pub type mllp_ack_code = u32;

/// No acknowledgement: the call failed before one arrived.
pub const MLLP_ACK_NONE: mllp_ack_code = 0;
/// `AA`: application accept.
pub const MLLP_ACK_AA: mllp_ack_code = 1;
/// `AE`: application error.
pub const MLLP_ACK_AE: mllp_ack_code = 2;
/// `AR`: application reject.
pub const MLLP_ACK_AR: mllp_ack_code = 3;
/// `CA`: commit accept (enhanced mode).
pub const MLLP_ACK_CA: mllp_ack_code = 4;
/// `CE`: commit error (enhanced mode).
pub const MLLP_ACK_CE: mllp_ack_code = 5;
/// `CR`: commit reject (enhanced mode).
pub const MLLP_ACK_CR: mllp_ack_code = 6;
/// MLLP release 2 commit acknowledgement (a frame holding 0x06).
pub const MLLP_ACK_COMMIT_ACCEPT: mllp_ack_code = 7;
/// MLLP release 2 negative commit acknowledgement (a frame holding 0x15).
pub const MLLP_ACK_COMMIT_REJECT: mllp_ack_code = 8;

/// The C code of a parsed acknowledgement.
pub(crate) fn ack_code(ack: &Ack) -> mllp_ack_code {
    match (ack.kind, ack.code) {
        (ReplyKind::Mllp2, AckCode::CommitAccept) => MLLP_ACK_COMMIT_ACCEPT,
        (ReplyKind::Mllp2, _) => MLLP_ACK_COMMIT_REJECT,
        (_, AckCode::ApplicationAccept) => MLLP_ACK_AA,
        (_, AckCode::ApplicationError) => MLLP_ACK_AE,
        (_, AckCode::ApplicationReject) => MLLP_ACK_AR,
        (_, AckCode::CommitAccept) => MLLP_ACK_CA,
        (_, AckCode::CommitError) => MLLP_ACK_CE,
        (_, AckCode::CommitReject) => MLLP_ACK_CR,
    }
}

const ACK_NAMES: &[(mllp_ack_code, &str)] = &[
    (MLLP_ACK_NONE, "none\0"),
    (MLLP_ACK_AA, "AA\0"),
    (MLLP_ACK_AE, "AE\0"),
    (MLLP_ACK_AR, "AR\0"),
    (MLLP_ACK_CA, "CA\0"),
    (MLLP_ACK_CE, "CE\0"),
    (MLLP_ACK_CR, "CR\0"),
    (MLLP_ACK_COMMIT_ACCEPT, "commit accept\0"),
    (MLLP_ACK_COMMIT_REJECT, "commit reject\0"),
];

/// A static NUL-terminated name of an acknowledgement code: `"AA"`, `"AE"`, ..., `"commit
/// accept"`, `"commit reject"`, `"none"`; `"unknown"` for any other value. Never NULL; do not
/// free it. Thread-safe.
#[no_mangle]
pub extern "C" fn mllp_ack_code_str(code: mllp_ack_code) -> *const c_char {
    let name = ACK_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown\0", |(_, n)| n);
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_codes_have_names() {
        for (code, name) in ACK_NAMES {
            // SAFETY: a static NUL-terminated string.
            let got = unsafe { std::ffi::CStr::from_ptr(mllp_ack_code_str(*code)) };
            assert_eq!(got.to_bytes_with_nul(), name.as_bytes());
        }
        // SAFETY: as above.
        let got = unsafe { std::ffi::CStr::from_ptr(mllp_ack_code_str(99)) };
        assert_eq!(got.to_str().unwrap(), "unknown");
    }
}
