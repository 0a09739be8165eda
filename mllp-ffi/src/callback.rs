//! The listener's callback from C: what it is told about a message (`mllp_message_info`),
//! what it may answer beyond its disposition (`mllp_response`), and the adapter that turns a
//! Rust [`Message`] into a C call and its answer into a [`Response`].

use std::cell::Cell;
use std::ffi::{c_char, c_void};

use super::ack::{disposition, mllp_disposition};
use super::args;
use super::panic::guard;
use super::result::{mllp_result, MLLP_OK};
use mllp_core::{Message, Response};

/// What the callback is told about a received message. Every pointer is valid, and every
/// byte range unchanged, only until the callback returns; copy what you keep. Byte ranges are
/// not NUL-terminated (an empty one has length 0 and a valid pointer).
///
/// The library fills this struct; fields are only ever added at the end, and `size` says how
/// many bytes of it this library filled. A program built with a newer header than the library
/// it runs with must check a newer field with `MLLP_MESSAGE_INFO_HAS(info, field)` before
/// reading it; fields present in the header of the library's own version are always there.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mllp_message_info {
    /// The size of this struct as the library filled it, in bytes (`sizeof(mllp_message_info)`
    /// of the library's header).
    pub size: usize,
    /// The message as UTF-8 text (decoded from its character set; a UTF-8 BOM removed).
    pub text: *const u8,
    /// Bytes at `text`.
    pub text_len: usize,
    /// The frame's payload exactly as received, in its own character set.
    pub raw: *const u8,
    /// Bytes at `raw`.
    pub raw_len: usize,
    /// The control ID the acknowledgement echoes (MSH-10, or BHS-11/FHS-11 for a batch), as
    /// received; empty when the field is empty.
    pub control_id: *const u8,
    /// Bytes at `control_id`.
    pub control_id_len: usize,
    /// MSH-9 whole (e.g. `ADT^A01^ADT_A01`), as received; empty for a batch header.
    pub message_type: *const u8,
    /// Bytes at `message_type`.
    pub message_type_len: usize,
    /// The peer's address as NUL-terminated text, `"ip:port"` (`"[ip6]:port"` for IPv6).
    pub peer: *const c_char,
    /// The listener's number for the connection: the same for every message of one
    /// connection, never reused by this listener.
    pub connection_id: u64,
    /// The name of the character set the message was decoded from (`"UTF-8"`, `"ISO-8859-1"`,
    /// ...: its MSH-18, or the listener's character set), NUL-terminated.
    pub charset: *const c_char,
    /// How many malformed byte sequences were replaced with U+FFFD while decoding: always 0
    /// when malformed messages are rejected (the default; see
    /// `mllp_listener_builder_set_reject_malformed`).
    pub replaced: usize,
    /// The verified subject of the client's TLS certificate, `CN=...,O=...` (a listener with
    /// `mllp_listener_builder_set_tls_client_ca`); empty otherwise.
    pub tls_subject: *const u8,
    /// Bytes at `tls_subject`.
    pub tls_subject_len: usize,
    /// The client's TLS certificate, DER (a listener with
    /// `mllp_listener_builder_set_tls_client_ca`); empty otherwise.
    pub tls_certificate: *const u8,
    /// Bytes at `tls_certificate`.
    pub tls_certificate_len: usize,
}

/// The callback's answer beyond its disposition: an optional text (MSA-3, and the ERR segment
/// for an error or reject) and error code. Set with `mllp_response_set_text` and
/// `mllp_response_set_error_code`, only during the callback it was passed to.
pub struct mllp_response {
    text: Option<String>,
    error_code: Option<u16>,
}

/// Called for every received message whose header could be read; returns one of
/// `MLLP_DISPOSITION_*`, which decides the acknowledgement (accept: AA/CA, error: AE/CE,
/// reject: AR/CR; in MLLP release 2 mode a commit ACK or NAK). Any other value is answered
/// with AE "application internal error".
///
/// The acknowledgement is written after the callback returns, so storing the message before
/// returning accept gives "store, then ACK".
///
/// Threads: called on the listener's connection threads, one per connection: at most one call
/// at a time per connection, but calls for different connections run concurrently, so the
/// callback and `userdata` must be thread-safe. A slow callback delays only its own
/// connection. It may call `mllp_listener_stop` (which then returns at once) and
/// `mllp_listener_get_stat`, but not `mllp_listener_free`.
///
/// `info` and `response` are valid only until the callback returns.
pub type mllp_message_cb = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        info: *const mllp_message_info,
        response: *mut mllp_response,
    ) -> mllp_disposition,
>;

/// Sets the response text: MSA-3 and, for an error or reject, the ERR segment's text. `text` is
/// NUL-terminated UTF-8, copied at once (it may be freed when this returns); NULL clears it.
/// Only valid on the `response` passed to a running callback.
///
/// Errors: `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT` (`response` NULL).
#[no_mangle]
pub unsafe extern "C" fn mllp_response_set_text(
    response: *mut mllp_response,
    text: *const c_char,
) -> mllp_result {
    guard("mllp_response_set_text", || {
        // SAFETY: the caller passes the response of its running callback, or NULL.
        let response = unsafe { args::borrow_mut(response) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL.
        let text = unsafe { args::opt_string(text, "the response text") }?;
        response.text = text.map(str::to_owned);
        Ok(MLLP_OK)
    })
}

/// Sets the HL7 table 0357 error code of the ERR segment (e.g. 200 unsupported message type,
/// 207 application internal error) for an error or reject; ignored for an accept. The
/// defaults are 207 for an error and 200 for a reject. Only valid on the `response` passed to
/// a running callback. Errors: `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_response_set_error_code(
    response: *mut mllp_response,
    code: u16,
) -> mllp_result {
    guard("mllp_response_set_error_code", || {
        // SAFETY: the caller passes the response of its running callback, or NULL.
        let response = unsafe { args::borrow_mut(response) }?;
        response.error_code = Some(code);
        Ok(MLLP_OK)
    })
}

/// The C callback and its userdata.
#[derive(Clone, Copy)]
pub(crate) struct Callback {
    pub(crate) f:
        unsafe extern "C" fn(*mut c_void, *const mllp_message_info, *mut mllp_response) -> u32,
    pub(crate) userdata: *mut c_void,
}

// SAFETY: the callback and `userdata` are only passed back to the callback, which the caller of
// `mllp_listener_builder_build` promises (documentation of `mllp_message_cb`) is safe to call from any
// thread and concurrently.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

thread_local! {
    /// Whether this thread is running a listener callback.
    pub(crate) static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// An empty byte range for absent fields: a valid pointer with length 0.
const EMPTY: &[u8] = b"\0";

impl Callback {
    pub(crate) fn call(&self, message: &Message<'_>) -> Response {
        let header = message.header();
        let control_id = header.control_id().unwrap_or(&EMPTY[..0]);
        let message_type = header.message_type().unwrap_or(&EMPTY[..0]);
        let peer = Text::new(format_args!("{}", message.peer_addr()));
        let charset = Text::new(message.charset().name());
        let tls = message.tls_peer();
        let subject = tls
            .and_then(|p| p.subject())
            .map_or(&EMPTY[..0], str::as_bytes);
        let certificate = tls.and_then(|p| p.certificate_der()).unwrap_or(&EMPTY[..0]);
        let info = mllp_message_info {
            size: std::mem::size_of::<mllp_message_info>(),
            text: message.text().as_ptr(),
            text_len: message.text().len(),
            raw: message.raw().as_ptr(),
            raw_len: message.raw().len(),
            control_id: control_id.as_ptr(),
            control_id_len: control_id.len(),
            message_type: message_type.as_ptr(),
            message_type_len: message_type.len(),
            peer: peer.as_ptr(),
            connection_id: message.connection_id(),
            charset: charset.as_ptr(),
            replaced: message.replaced(),
            tls_subject: subject.as_ptr(),
            tls_subject_len: subject.len(),
            tls_certificate: certificate.as_ptr(),
            tls_certificate_len: certificate.len(),
        };
        let mut response = mllp_response {
            text: None,
            error_code: None,
        };
        let was = IN_CALLBACK.with(|c| c.replace(true));
        // SAFETY: the callback was given to `mllp_listener_builder_build` with this userdata; `info`, the
        // bytes it points to and `response` live until the call returns.
        let code = unsafe { (self.f)(self.userdata, &info, &mut response) };
        IN_CALLBACK.with(|c| c.set(was));
        let Some(d) = disposition(code) else {
            log::error!(
                "connection {}: the callback returned {code}, which is not an \
                 MLLP_DISPOSITION_*; answering with an error",
                message.connection_id()
            );
            return Response::error("application internal error").error_code(207);
        };
        use mllp_core::hl7::Disposition;
        let r = match (d, response.text) {
            (Disposition::Accept, None) => Response::accept(),
            (Disposition::Accept, Some(text)) => Response::accept_with(text),
            (Disposition::Error, text) => Response::error(text.unwrap_or_default()),
            (Disposition::Reject, text) => Response::reject(text.unwrap_or_default()),
        };
        match response.error_code {
            Some(code) => r.error_code(code),
            None => r,
        }
    }
}

/// A short text (a socket address, a character set name) as a NUL-terminated string on the
/// stack.
struct Text {
    buf: [u8; 64],
}

impl Text {
    fn new(text: impl std::fmt::Display) -> Text {
        use std::io::Write;
        let mut buf = [0u8; 64];
        // The longest address, "[v6%scope]:port", and every character set name are well under
        // 63 bytes; the last byte stays 0.
        let _ = write!(&mut buf[..63], "{text}");
        Text { buf }
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}
