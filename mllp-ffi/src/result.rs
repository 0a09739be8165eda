//! Result codes: fixed numbers, a name for each, and the mapping from [`Error`].
//!
//! The numbers never change meaning and are never reused. They are grouped by hundreds so new
//! codes can join their group: below 100 not errors, 1xx caller errors, 2xx framing, 3xx HL7,
//! 4xx character sets, 5xx network and TLS, 6xx delivery, 7xx the outbox.

use std::ffi::c_char;

use mllp_core::{Error, FrameError, HeaderError, Outcome};

/// A result code returned by every function of this API that can fail.
///
/// Codes below 100 are not errors; everything from 100 on is. The numbers are fixed forever:
/// a code never changes meaning and a retired code is never reused. `mllp_result_str` names
/// each one.
pub type mllp_result = u32;

/// Success.
pub const MLLP_OK: mllp_result = 0;
/// Not an error: the decoder has no complete frame; feed it more bytes.
pub const MLLP_NEED_MORE: mllp_result = 1;
/// Not an error: no acknowledgement is to be sent (enhanced mode, and the message's MSH-15
/// asks for none in this case). The output is empty.
pub const MLLP_NO_ACK: mllp_result = 2;
/// Not an error: the message's header could not be read, so the output holds a reject (AR)
/// with an empty MSA-2 and the reason in MSA-3 and ERR, instead of the acknowledgement asked
/// for.
pub const MLLP_NAK_UNPARSEABLE: mllp_result = 3;

/// A pointer argument was NULL.
pub const MLLP_NULL_ARGUMENT: mllp_result = 100;
/// An argument is out of range or malformed (an unknown enumeration value, a string that is
/// not UTF-8).
pub const MLLP_INVALID_ARGUMENT: mllp_result = 101;
/// The output buffer is too small. The size needed has been stored through the length
/// out-pointer; call again with a buffer at least that large.
pub const MLLP_BUFFER_TOO_SMALL: mllp_result = 102;
/// The call is not allowed in the handle's current state (the function's documentation says
/// which order is expected).
pub const MLLP_INVALID_STATE: mllp_result = 103;
/// A bug in this library: a Rust panic was caught at the API boundary. Free the handle
/// involved and report the problem.
pub const MLLP_PANIC: mllp_result = 104;
/// A setting is invalid (framing bytes, sizes, a character set label, ...). Fix the options;
/// retrying will not help.
pub const MLLP_CONFIG: mllp_result = 105;
/// The decoder holds as many unprocessed bytes as it may: take frames with
/// `mllp_decoder_next` until it returns `MLLP_NEED_MORE` before feeding more. Nothing was
/// copied.
pub const MLLP_DECODER_FULL: mllp_result = 106;

/// The stream ended inside a frame.
pub const MLLP_FRAME_TRUNCATED: mllp_result = 200;
/// A frame exceeded the maximum message size. It was skipped entirely; the stream is still in
/// step.
pub const MLLP_FRAME_OVERSIZED: mllp_result = 201;
/// A payload to be sent contains the frame's end sequence; the peer would split it.
pub const MLLP_FRAME_PAYLOAD_CONTAINS_END: mllp_result = 202;
/// A start sequence arrived inside a frame and the framing treats that as an error.
pub const MLLP_FRAME_START_IN_FRAME: mllp_result = 203;

/// The HL7 header (MSH, BHS or FHS) is missing or malformed, or a required field is empty.
pub const MLLP_HEADER: mllp_result = 300;
/// A reply is neither an HL7 acknowledgement (no MSA segment) nor an MLLP commit block.
pub const MLLP_NOT_AN_ACK: mllp_result = 301;

/// Text could not be decoded or encoded in the character set, or the character set is
/// unknown or unusable.
pub const MLLP_CHARSET: mllp_result = 400;

/// An I/O operation failed (resolving, connecting, reading, writing, accepting).
pub const MLLP_IO: mllp_result = 500;
/// A deadline passed (connect, write, ACK, frame or idle timeout).
pub const MLLP_TIMEOUT: mllp_result = 501;
/// The peer closed the connection, or the object was shut down.
pub const MLLP_CLOSED: mllp_result = 502;
/// A TLS handshake or TLS setting failed: check certificates, keys and host names.
pub const MLLP_TLS: mllp_result = 503;

/// A message could not be delivered and certainly did not reach the peer's application:
/// sending it again cannot create a duplicate.
pub const MLLP_NOT_DELIVERED: mllp_result = 600;
/// A message was written but no valid acknowledgement came back: the peer may or may not have
/// it. Sending it again may create a duplicate.
pub const MLLP_UNCONFIRMED: mllp_result = 601;

/// The outbox holds its most pending messages or bytes: the message was not taken. Try again
/// once deliveries have made room.
pub const MLLP_FULL: mllp_result = 700;
/// Another outbox (in this process or another) has the directory open; the last-error text
/// names the process.
pub const MLLP_LOCKED: mllp_result = 701;
/// An outbox segment other than the last holds a bad record (not a torn tail); the last-error
/// text names the file. Nothing was changed.
pub const MLLP_CORRUPT: mllp_result = 702;

/// An error of a kind that has no code of its own in this version of the C API (the Rust
/// library's errors can grow); the last-error text says what it is.
pub const MLLP_ERROR: mllp_result = 900;

/// Every code and its description, the table `mllp_result_str` reads.
pub(crate) const CODES: &[(mllp_result, &str)] = &[
    (MLLP_OK, "success\0"),
    (MLLP_NEED_MORE, "no complete frame yet: feed more bytes\0"),
    (MLLP_NO_ACK, "no acknowledgement is to be sent (MSH-15)\0"),
    (
        MLLP_NAK_UNPARSEABLE,
        "the message header could not be read: the output is a reject (AR)\0",
    ),
    (MLLP_NULL_ARGUMENT, "a pointer argument was NULL\0"),
    (
        MLLP_INVALID_ARGUMENT,
        "an argument is out of range or malformed\0",
    ),
    (
        MLLP_BUFFER_TOO_SMALL,
        "the output buffer is too small (the size needed was reported)\0",
    ),
    (
        MLLP_INVALID_STATE,
        "the call is not allowed in the handle's current state\0",
    ),
    (
        MLLP_PANIC,
        "internal error: a panic was caught at the API boundary\0",
    ),
    (MLLP_CONFIG, "invalid configuration\0"),
    (
        MLLP_DECODER_FULL,
        "the decoder is full: take frames before feeding more\0",
    ),
    (MLLP_FRAME_TRUNCATED, "the stream ended inside a frame\0"),
    (
        MLLP_FRAME_OVERSIZED,
        "a frame exceeded the maximum message size and was skipped\0",
    ),
    (
        MLLP_FRAME_PAYLOAD_CONTAINS_END,
        "the payload contains the frame end sequence\0",
    ),
    (
        MLLP_FRAME_START_IN_FRAME,
        "a start sequence arrived inside a frame\0",
    ),
    (MLLP_HEADER, "the HL7 header is missing or malformed\0"),
    (
        MLLP_NOT_AN_ACK,
        "the reply is not an HL7 acknowledgement nor a commit block\0",
    ),
    (MLLP_CHARSET, "character set error\0"),
    (MLLP_IO, "I/O error\0"),
    (MLLP_TIMEOUT, "a deadline passed\0"),
    (MLLP_CLOSED, "the connection is closed\0"),
    (MLLP_TLS, "TLS error\0"),
    (
        MLLP_NOT_DELIVERED,
        "the message was not delivered (sending it again cannot duplicate it)\0",
    ),
    (
        MLLP_UNCONFIRMED,
        "the message is unconfirmed: written, but no valid acknowledgement received\0",
    ),
    (MLLP_FULL, "the outbox is full\0"),
    (
        MLLP_LOCKED,
        "the outbox is in use by another process or handle\0",
    ),
    (MLLP_CORRUPT, "an outbox segment is corrupt\0"),
    (MLLP_ERROR, "error (see the last-error text)\0"),
];

const UNKNOWN: &str = "unknown result code\0";

/// A static NUL-terminated description of a result code, e.g. `"invalid configuration"`.
///
/// Never NULL, for any value (an unknown code gives `"unknown result code"`); do not free it.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mllp_result_str(code: mllp_result) -> *const c_char {
    let text = CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(UNKNOWN, |(_, text)| text);
    text.as_ptr().cast()
}

/// Whether a code is an error (100 and above).
pub(crate) fn is_error(code: mllp_result) -> bool {
    code >= 100
}

/// The description of a code, without its terminator.
pub(crate) fn describe(code: mllp_result) -> &'static str {
    let text = CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(UNKNOWN, |(_, text)| text);
    text.trim_end_matches('\0')
}

/// The result code for an error.
pub(crate) fn code_of(error: &Error) -> mllp_result {
    match error {
        Error::Io { .. } => MLLP_IO,
        Error::Timeout(_) => MLLP_TIMEOUT,
        Error::Frame(FrameError::Truncated { .. }) => MLLP_FRAME_TRUNCATED,
        Error::Frame(FrameError::Oversized { .. }) => MLLP_FRAME_OVERSIZED,
        Error::Frame(FrameError::PayloadContainsEnd { .. }) => MLLP_FRAME_PAYLOAD_CONTAINS_END,
        Error::Frame(FrameError::StartInFrame) => MLLP_FRAME_START_IN_FRAME,
        Error::Header(HeaderError::NotAnAck) => MLLP_NOT_AN_ACK,
        Error::Header(_) => MLLP_HEADER,
        Error::Charset(_) => MLLP_CHARSET,
        Error::Tls(_) => MLLP_TLS,
        Error::Config(_) => MLLP_CONFIG,
        Error::Delivery {
            outcome: Outcome::NotDelivered,
            ..
        } => MLLP_NOT_DELIVERED,
        Error::Delivery {
            outcome: Outcome::Unconfirmed,
            ..
        } => MLLP_UNCONFIRMED,
        Error::Closed => MLLP_CLOSED,
        Error::Full { .. } => MLLP_FULL,
        Error::Locked { .. } => MLLP_LOCKED,
        Error::Corrupt { .. } => MLLP_CORRUPT,
        _ => MLLP_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mllp_core::{CharsetError, Phase, Timeout};
    use std::ffi::CStr;

    fn text(code: mllp_result) -> &'static str {
        // SAFETY: `mllp_result_str` always returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(mllp_result_str(code)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn every_code_is_named_once() {
        for (i, (code, desc)) in CODES.iter().enumerate() {
            assert!(desc.ends_with('\0') && desc.find('\0') == Some(desc.len() - 1));
            assert_eq!(text(*code), &desc[..desc.len() - 1]);
            assert!(
                CODES[..i].iter().all(|(c, _)| c != code),
                "code {code} twice"
            );
        }
        assert_eq!(text(99), "unknown result code");
        assert_eq!(text(u32::MAX), "unknown result code");
    }

    #[test]
    fn numbers_are_fixed() {
        // These numbers are part of the ABI: this test fails if one is changed.
        let fixed = [
            (MLLP_OK, 0),
            (MLLP_NEED_MORE, 1),
            (MLLP_NO_ACK, 2),
            (MLLP_NAK_UNPARSEABLE, 3),
            (MLLP_NULL_ARGUMENT, 100),
            (MLLP_INVALID_ARGUMENT, 101),
            (MLLP_BUFFER_TOO_SMALL, 102),
            (MLLP_INVALID_STATE, 103),
            (MLLP_PANIC, 104),
            (MLLP_CONFIG, 105),
            (MLLP_DECODER_FULL, 106),
            (MLLP_FRAME_TRUNCATED, 200),
            (MLLP_FRAME_OVERSIZED, 201),
            (MLLP_FRAME_PAYLOAD_CONTAINS_END, 202),
            (MLLP_FRAME_START_IN_FRAME, 203),
            (MLLP_HEADER, 300),
            (MLLP_NOT_AN_ACK, 301),
            (MLLP_CHARSET, 400),
            (MLLP_IO, 500),
            (MLLP_TIMEOUT, 501),
            (MLLP_CLOSED, 502),
            (MLLP_TLS, 503),
            (MLLP_NOT_DELIVERED, 600),
            (MLLP_UNCONFIRMED, 601),
            (MLLP_FULL, 700),
            (MLLP_LOCKED, 701),
            (MLLP_CORRUPT, 702),
            (MLLP_ERROR, 900),
        ];
        assert_eq!(fixed.len(), CODES.len());
        for (code, n) in fixed {
            assert_eq!(code, n);
        }
    }

    #[test]
    fn errors_map_to_codes() {
        let io = || std::io::Error::other("x");
        let cases = [
            (
                Error::Io {
                    phase: Phase::Connect,
                    source: io(),
                },
                MLLP_IO,
            ),
            (Error::Timeout(Timeout::Ack), MLLP_TIMEOUT),
            (
                FrameError::Truncated { len: 3 }.into(),
                MLLP_FRAME_TRUNCATED,
            ),
            (
                FrameError::Oversized { max: 3 }.into(),
                MLLP_FRAME_OVERSIZED,
            ),
            (
                FrameError::PayloadContainsEnd { at: 1 }.into(),
                MLLP_FRAME_PAYLOAD_CONTAINS_END,
            ),
            (FrameError::StartInFrame.into(), MLLP_FRAME_START_IN_FRAME),
            (HeaderError::NoHeader.into(), MLLP_HEADER),
            (HeaderError::MissingField { field: 10 }.into(), MLLP_HEADER),
            (HeaderError::NotAnAck.into(), MLLP_NOT_AN_ACK),
            (CharsetError::Malformed { at: 0 }.into(), MLLP_CHARSET),
            // MLLP_TLS for a TLS error: tests/c/tls_test.c (a TlsError is made by the library).
            (Error::Config("x".into()), MLLP_CONFIG),
            (Error::Closed, MLLP_CLOSED),
            (
                Error::Full {
                    pending: 1,
                    pending_bytes: 2,
                },
                MLLP_FULL,
            ),
            (
                Error::Locked {
                    dir: "d".into(),
                    pid: 1,
                },
                MLLP_LOCKED,
            ),
            (
                Error::Corrupt {
                    path: "p".into(),
                    offset: 8,
                },
                MLLP_CORRUPT,
            ),
            (
                Error::Delivery {
                    outcome: Outcome::NotDelivered,
                    attempts: 1,
                    last: Box::new(Error::Closed),
                },
                MLLP_NOT_DELIVERED,
            ),
            (
                Error::Delivery {
                    outcome: Outcome::Unconfirmed,
                    attempts: 2,
                    last: Box::new(Error::Timeout(Timeout::Ack)),
                },
                MLLP_UNCONFIRMED,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(code_of(&error), code, "{error}");
            assert!(code >= 100);
        }
    }
}
