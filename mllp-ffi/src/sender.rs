//! The blocking sender as a C handle: options, send with the ACK into a caller buffer, close,
//! free.

use std::ffi::c_char;
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use super::args::{self, OutBuf};
use super::framing::mllp_framing;
use super::last_error::{self, LastError};
use super::panic::{guard, guard_or};
use super::result::{mllp_result, MLLP_INVALID_STATE, MLLP_OK};
use mllp_core::charset::Charset;
use mllp_core::hl7::{Ack, AckCode, AckKind};
use mllp_core::Framing;
use mllp_core::RetryPolicy;
use mllp_core::{CharsetError, Error, Result};
use mllp_core::{Identity, TlsClientConfig};
use mllp_core::{
    Sender, SenderStats, DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
};

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
        (AckKind::Commit, AckCode::CommitAccept) => MLLP_ACK_COMMIT_ACCEPT,
        (AckKind::Commit, _) => MLLP_ACK_COMMIT_REJECT,
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

/// Sender settings.
///
/// Always fill it with `mllp_sender_options_init` first, then change the fields you need.
/// The library copies what it needs during `mllp_sender_new` (files named here are read then)
/// and keeps no pointer into it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mllp_sender_options {
    /// Framing of messages and replies (see `mllp_framing_init`).
    pub framing: mllp_framing,
    /// How long connecting may take, TLS handshake included, in milliseconds (at least 1).
    /// Default 10000.
    pub connect_timeout_ms: u32,
    /// How long the acknowledgement may take once the message is written, in milliseconds
    /// (at least 1): wall time for the whole reply, however slowly its bytes arrive. Default
    /// 30000.
    pub ack_timeout_ms: u32,
    /// How long writing the whole message may take, in milliseconds (at least 1): wall time,
    /// however slowly the peer reads. Default 10000.
    pub write_timeout_ms: u32,
    /// The most attempts per message, the first included; 1 means no retry, 0 means no limit.
    /// Default 5.
    pub max_attempts: u32,
    /// The delay before the second attempt, in milliseconds; it doubles after each attempt
    /// (with random jitter of up to half), up to `max_backoff_ms`. Default 250.
    pub initial_backoff_ms: u32,
    /// The longest delay between attempts, in milliseconds (not below `initial_backoff_ms`).
    /// Default 30000.
    pub max_backoff_ms: u32,
    /// NULL (the default): messages are sent as the bytes given. Otherwise a character set
    /// label (`"UTF-8"`, `"ISO-8859-1"`, `"8859/1"`, `"windows-1252"`, ...): messages must then
    /// be UTF-8 and are encoded to this character set before sending.
    pub charset: *const c_char,
    /// Non-zero: MLLP release 2, the peer answers with commit blocks (0x06 / 0x15); a negative
    /// commit block makes the sender send again within the retry policy. Default 0.
    pub mllp2: i32,
    /// Non-zero: an AR or CR acknowledgement makes the sender send the message again within
    /// the retry policy. Default 0 (returned at once).
    pub resend_on_reject: i32,
    /// Non-zero: connect with TLS. The server certificate is verified against the system's
    /// trusted roots (plus `tls_ca_file`) and the host name of the address (or
    /// `tls_server_name`). Default 0. The `tls_*` fields below must stay NULL/0 when this is 0.
    pub tls: i32,
    /// NULL, or a PEM file of extra CA certificates to trust.
    pub tls_ca_file: *const c_char,
    /// NULL, or the PEM certificate chain presented when the server asks for a client
    /// certificate. Set together with `tls_key_file`.
    pub tls_cert_file: *const c_char,
    /// NULL, or the unencrypted PKCS#8 PEM private key of `tls_cert_file`.
    pub tls_key_file: *const c_char,
    /// NULL, or the name the server certificate must be valid for, instead of the host name.
    pub tls_server_name: *const c_char,
    /// Non-zero: accept any server certificate (expired, self-signed, other name). This
    /// removes TLS's protection against interception; for tests only. Default 0.
    pub tls_danger_accept_invalid_certs: i32,
    /// NULL, or a PKCS#12 archive (`.p12` / `.pfx`) holding the client certificate, its chain
    /// and its key, presented when the server asks for a client certificate. Instead of
    /// `tls_cert_file`/`tls_key_file`: naming both kinds is a configuration error.
    pub tls_pkcs12_file: *const c_char,
    /// NULL (an empty password), or the password of `tls_pkcs12_file`. Set only with
    /// `tls_pkcs12_file`.
    pub tls_pkcs12_password: *const c_char,
}

impl Default for mllp_sender_options {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        mllp_sender_options {
            framing: Framing::default().into(),
            connect_timeout_ms: millis(DEFAULT_CONNECT_TIMEOUT),
            ack_timeout_ms: millis(DEFAULT_ACK_TIMEOUT),
            write_timeout_ms: millis(DEFAULT_WRITE_TIMEOUT),
            max_attempts: retry.max_attempts.unwrap_or(0),
            initial_backoff_ms: millis(retry.initial_backoff),
            max_backoff_ms: millis(retry.max_backoff),
            charset: std::ptr::null(),
            mllp2: 0,
            resend_on_reject: 0,
            tls: 0,
            tls_ca_file: std::ptr::null(),
            tls_cert_file: std::ptr::null(),
            tls_key_file: std::ptr::null(),
            tls_server_name: std::ptr::null(),
            tls_danger_accept_invalid_certs: 0,
            tls_pkcs12_file: std::ptr::null(),
            tls_pkcs12_password: std::ptr::null(),
        }
    }
}

pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A string option: NULL is `None`; not UTF-8 is a configuration error.
///
/// # Safety
/// `s` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn str_option<'a>(s: *const c_char, name: &str) -> Result<Option<&'a str>> {
    // SAFETY: forwarded contract.
    unsafe { args::opt_str(s) }.map_err(|_| Error::Config(format!("{name} is not valid UTF-8")))
}

/// The identity fields of an options struct (client or server): PEM files or a PKCS#12
/// archive, never both.
pub(crate) struct IdentityFields<'a> {
    cert: Option<&'a str>,
    key: Option<&'a str>,
    pkcs12: Option<&'a str>,
    password: Option<&'a str>,
}

impl<'a> IdentityFields<'a> {
    /// Reads the four string fields; not UTF-8 is a configuration error.
    ///
    /// # Safety
    /// Each pointer must be NULL or a NUL-terminated string valid for `'a`.
    pub(crate) unsafe fn new(
        cert: *const c_char,
        key: *const c_char,
        pkcs12: *const c_char,
        password: *const c_char,
    ) -> Result<IdentityFields<'a>> {
        // SAFETY: forwarded contract.
        unsafe {
            Ok(IdentityFields {
                cert: str_option(cert, "tls_cert_file")?,
                key: str_option(key, "tls_key_file")?,
                pkcs12: str_option(pkcs12, "tls_pkcs12_file")?,
                password: str_option(password, "tls_pkcs12_password")?,
            })
        }
    }

    /// Whether any of the fields is set.
    pub(crate) fn any(&self) -> bool {
        self.cert.is_some()
            || self.key.is_some()
            || self.pkcs12.is_some()
            || self.password.is_some()
    }

    /// Checks the combination and reads the files: `None` when no identity is named.
    pub(crate) fn load(&self) -> Result<Option<Identity>> {
        let pem = self.cert.is_some() || self.key.is_some();
        if pem && self.pkcs12.is_some() {
            return Err(Error::Config(
                "tls_pkcs12_file cannot be combined with tls_cert_file/tls_key_file: name the \
                 identity either as PEM files or as a PKCS#12 file"
                    .into(),
            ));
        }
        if self.password.is_some() && self.pkcs12.is_none() {
            return Err(Error::Config(
                "tls_pkcs12_password is set but tls_pkcs12_file is not".into(),
            ));
        }
        match (self.cert, self.key, self.pkcs12) {
            (Some(cert), Some(key), None) => Ok(Some(Identity::from_pem_files(cert, key)?)),
            (None, None, Some(file)) => Ok(Some(Identity::from_pkcs12_file(
                file,
                self.password.unwrap_or(""),
            )?)),
            (None, None, None) => Ok(None),
            _ => Err(Error::Config(
                "tls_cert_file and tls_key_file must be given together".into(),
            )),
        }
    }
}

impl mllp_sender_options {
    /// The Rust sender for these options.
    ///
    /// # Safety
    /// The string fields must be NULL or NUL-terminated strings.
    unsafe fn build(&self, addr: &str) -> Result<(Sender, bool)> {
        // SAFETY: the caller's contract on the string fields.
        let charset = unsafe { str_option(self.charset, "charset") }?
            .map(|label| Charset::from_label(label).map_err(Error::from))
            .transpose()?;
        let retry = RetryPolicy::default()
            .max_attempts((self.max_attempts != 0).then_some(self.max_attempts))
            .initial_backoff(Duration::from_millis(self.initial_backoff_ms.into()))
            .max_backoff(Duration::from_millis(self.max_backoff_ms.into()));
        let mut builder = Sender::builder(addr)
            .framing(self.framing.to_framing()?)
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms.into()))
            .ack_timeout(Duration::from_millis(self.ack_timeout_ms.into()))
            .write_timeout(Duration::from_millis(self.write_timeout_ms.into()))
            .retry(retry)
            .mllp2(self.mllp2 != 0)
            .resend_on_reject(self.resend_on_reject != 0);
        if let Some(charset) = charset {
            builder = builder.charset(charset);
        }
        // SAFETY: as above.
        let (ca, identity, name) = unsafe {
            (
                str_option(self.tls_ca_file, "tls_ca_file")?,
                IdentityFields::new(
                    self.tls_cert_file,
                    self.tls_key_file,
                    self.tls_pkcs12_file,
                    self.tls_pkcs12_password,
                )?,
                str_option(self.tls_server_name, "tls_server_name")?,
            )
        };
        if self.tls == 0 {
            if ca.is_some()
                || identity.any()
                || name.is_some()
                || self.tls_danger_accept_invalid_certs != 0
            {
                return Err(Error::Config(
                    "TLS settings are given but tls is 0: set tls to 1 to use TLS".into(),
                ));
            }
        } else {
            let mut config = TlsClientConfig::new()
                .danger_accept_invalid_certs(self.tls_danger_accept_invalid_certs != 0);
            if let Some(ca) = ca {
                config = config.add_root_pem_file(ca)?;
            }
            if let Some(identity) = identity.load()? {
                config = config.identity(identity);
            }
            if let Some(name) = name {
                config = config.server_name(name);
            }
            builder = builder.tls(config);
        }
        Ok((builder.build()?, charset.is_some()))
    }
}

/// Fills `*opts` with the defaults (see each field). Returns `MLLP_OK`, or
/// `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_options_init(opts: *mut mllp_sender_options) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a writable struct or NULL (checked).
        unsafe { args::put(opts, mllp_sender_options::default()) }?;
        Ok(MLLP_OK)
    })
}

/// Counters of one sender since it was created.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct mllp_sender_stats {
    /// Sends that returned an acknowledgement (positive or negative).
    pub messages: u64,
    /// Sends that failed with `MLLP_NOT_DELIVERED` or `MLLP_UNCONFIRMED`.
    pub failures: u64,
    /// Frames written completely, resends included.
    pub frames_written: u64,
    /// Positive acknowledgements received (AA, CA, commit accept).
    pub acks: u64,
    /// Negative acknowledgements received, including those answered by a resend.
    pub negative_acks: u64,
    /// Attempts after the first, over all messages.
    pub retries: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections established to replace a lost one.
    pub reconnects: u64,
    /// ACK timeouts.
    pub ack_timeouts: u64,
    /// Reply frames skipped while waiting for an acknowledgement (late ACKs for other control
    /// IDs, frames that are not ACKs).
    pub skipped_frames: u64,
}

impl From<SenderStats> for mllp_sender_stats {
    fn from(s: SenderStats) -> Self {
        mllp_sender_stats {
            messages: s.messages,
            failures: s.failures,
            frames_written: s.frames_written,
            acks: s.acks,
            negative_acks: s.negative_acks,
            retries: s.retries,
            connects: s.connects,
            reconnects: s.reconnects,
            ack_timeouts: s.ack_timeouts,
            skipped_frames: s.skipped_frames,
        }
    }
}

/// A blocking MLLP sender to one address. Create with `mllp_sender_new`, free with
/// `mllp_sender_free`.
///
/// Thread safety: one call at a time. The handle may move between threads, but it must not be
/// used by two threads at once: a call made while another is running on the same handle
/// returns `MLLP_INVALID_STATE` at once (nothing is sent). Use one sender per thread, or lock
/// around it. `mllp_sender_free` must not run concurrently with any other call on the handle.
pub struct mllp_sender {
    inner: Mutex<Inner>,
    last_error: LastError,
}

struct Inner {
    sender: Sender,
    /// Whether messages are UTF-8 text to encode to a configured character set.
    encode: bool,
    /// The payload of the last acknowledgement received (for `mllp_sender_last_ack`).
    last_ack: Vec<u8>,
}

impl mllp_sender {
    /// The sender, or `MLLP_INVALID_STATE` when another thread is using it.
    fn lock(&self) -> std::result::Result<std::sync::MutexGuard<'_, Inner>, mllp_result> {
        match self.inner.try_lock() {
            Ok(inner) => Ok(inner),
            // A panic inside an earlier call: the sender's own state is consistent between
            // calls (the connection is dropped on any failure), so go on.
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(self.last_error.set(
                MLLP_INVALID_STATE,
                "the sender is in use by another thread: a sender handle takes one call at a time",
            )),
        }
    }
}

/// Creates a sender to `address` (`"host:port"`, e.g. `"10.1.2.3:2575"`, `"[::1]:2575"`).
///
/// `opts` may be NULL for the defaults. Nothing is connected yet: the first send connects
/// (and reconnects whenever needed). TLS files named in the options are read now. On success
/// `*out` receives the handle, to be freed with `mllp_sender_free`; on failure `*out` is NULL
/// and `mllp_new_error` gives the reason.
///
/// Errors: `MLLP_CONFIG` (address without host or port, a zero timeout, bad retry settings,
/// unknown character set, TLS fields without `tls`, both PEM files and a PKCS#12 file),
/// `MLLP_IO` (a TLS file cannot be read), `MLLP_TLS` (a certificate or key cannot be used, a
/// wrong PKCS#12 password), `MLLP_INVALID_ARGUMENT` (address not
/// UTF-8), `MLLP_NULL_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_new(
    address: *const c_char,
    opts: *const mllp_sender_options,
    out: *mut *mut mllp_sender,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a writable pointer or NULL (checked).
        unsafe { args::put(out, std::ptr::null_mut()) }?;
        // SAFETY: the caller passes a NUL-terminated string or NULL (checked).
        let addr = unsafe { args::req_str(address) }
            .map_err(|code| last_error::new_failed(code, "the address is NULL or not UTF-8"))?;
        let defaults = mllp_sender_options::default();
        // SAFETY: the caller passes valid options or NULL.
        let opts = unsafe { opts.as_ref() }.unwrap_or(&defaults);
        // SAFETY: the options' strings are NULL or NUL-terminated (the caller's contract).
        let (sender, encode) =
            unsafe { opts.build(addr) }.map_err(|e| last_error::new_error(&e))?;
        let handle = Box::into_raw(Box::new(mllp_sender {
            inner: Mutex::new(Inner {
                sender,
                encode,
                last_ack: Vec::new(),
            }),
            last_error: LastError::default(),
        }));
        // SAFETY: checked not NULL above.
        unsafe { args::put(out, handle) }?;
        Ok(MLLP_OK)
    })
}

/// Sends one HL7 message and waits for its acknowledgement.
///
/// `msg`/`msg_len` is the message (segments separated by CR, without framing bytes). It is
/// sent as it is, or, when the options name a `charset`, read as UTF-8 and encoded to it. The
/// sender connects if needed, writes the message, and reads replies until the one whose MSA-2
/// matches the message's control ID (MSH-10); on a lost connection or an ACK timeout it
/// reconnects and sends again within the retry policy (so a message may arrive twice; the
/// control ID stays the same).
///
/// On return `*code_out` is the acknowledgement's code (`MLLP_ACK_*`, `MLLP_ACK_NONE` when none
/// arrived) and `*ack_len` the acknowledgement's length in bytes (0 when none arrived).
/// `ack_out` (capacity `ack_cap`) receives the acknowledgement's bytes (the reply frame's
/// payload, not NUL-terminated) when they fit, that is when `*ack_len <= ack_cap`; otherwise
/// nothing is written there and `mllp_sender_last_ack` copies them afterwards, into a buffer of
/// any size. `ack_out` may be NULL with `ack_cap` 0 when only the code is wanted.
///
/// Returns:
/// * `MLLP_OK`: an acknowledgement arrived, so the message was delivered: positive or
///   negative, see `*code_out` (AE/AR are answers, not errors). Never send it again because
///   of this call. Its bytes are in `ack_out` when `*ack_len <= ack_cap`.
/// * `MLLP_NOT_DELIVERED`: no acknowledgement within the retry policy, and the message was
///   never completely written: sending it again cannot create a duplicate.
/// * `MLLP_UNCONFIRMED`: no acknowledgement within the retry policy, but the message was
///   written at least once: the peer may have it.
/// * Before anything is sent: `MLLP_HEADER` (no readable MSH, or an empty control ID),
///   `MLLP_FRAME_PAYLOAD_CONTAINS_END`, `MLLP_CHARSET` (not UTF-8, or a character the
///   configured character set lacks), `MLLP_NULL_ARGUMENT`, `MLLP_INVALID_STATE` (the sender
///   is in use by another thread).
///
/// Failures set the text of `mllp_sender_last_error` (for delivery failures: the number of
/// attempts and the last attempt's error). Blocks for at most the retry policy's attempts and
/// their timeouts and delays.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_send(
    sender: *mut mllp_sender,
    msg: *const u8,
    msg_len: usize,
    ack_out: *mut u8,
    ack_cap: usize,
    ack_len: *mut usize,
    code_out: *mut mllp_ack_code,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes writable pointers or NULL (checked).
        unsafe {
            args::put(ack_len, 0)?;
            args::put(code_out, MLLP_ACK_NONE)?;
        }
        // SAFETY: the caller passes a live handle or NULL; all access is through the mutex.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        // SAFETY: the caller passes `msg_len` readable bytes or NULL (checked).
        let msg = unsafe { args::bytes(msg, msg_len) }?;
        // SAFETY: the caller passes `ack_cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(ack_out, ack_cap) }?;
        let mut inner = handle.lock()?;
        let inner = &mut *inner;
        let result = if inner.encode {
            match std::str::from_utf8(msg) {
                Ok(text) => inner.sender.send(text),
                Err(e) => Err(Error::Charset(CharsetError::Malformed {
                    at: e.valid_up_to(),
                })),
            }
        } else {
            inner.sender.send_bytes(msg)
        };
        let ack = match result {
            Ok(ack) => ack,
            Err(e) => return Err(handle.last_error.error(&e)),
        };
        // SAFETY: checked not NULL above.
        unsafe { args::put(code_out, ack_code(&ack)) }?;
        inner.last_ack = ack.raw;
        // Stores the length; copies the bytes only when they fit (else `MLLP_BUFFER_TOO_SMALL`,
        // which is not this call's result: the message was delivered).
        // SAFETY: `ack_len` was checked not NULL above.
        let _ = unsafe { out.write(&inner.last_ack, ack_len) };
        // Delivered: success whatever the buffer, so that a caller that retries on errors
        // never sends the message twice. `*ack_len > ack_cap` says the bytes did not fit.
        Ok(MLLP_OK)
    })
}

/// Copies the last acknowledgement this sender received into `buf` (capacity `cap`, NULL only
/// with 0) and stores its length in `*len` (0 when none was received yet).
///
/// For after `mllp_sender_send` reported an acknowledgement longer than its buffer
/// (`*ack_len > ack_cap`). Returns `MLLP_OK`,
/// `MLLP_BUFFER_TOO_SMALL` (nothing written, `*len` is the size needed), `MLLP_INVALID_STATE`,
/// `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_last_ack(
    sender: *mut mllp_sender,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a writable length or NULL (checked).
        unsafe { args::put(len, 0) }?;
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        // SAFETY: the caller passes `cap` writable bytes, or NULL with 0 (checked).
        let out = unsafe { OutBuf::new(buf, cap) }?;
        let inner = handle.lock()?;
        // SAFETY: checked not NULL above.
        match unsafe { out.write(&inner.last_ack, len) } {
            MLLP_OK => Ok(MLLP_OK),
            code => Err(code),
        }
    })
}

/// Closes the sender's connection, if any; the next send connects again. Returns `MLLP_OK`,
/// `MLLP_INVALID_STATE` (in use by another thread), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_close(sender: *mut mllp_sender) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        handle.lock()?.sender.close();
        Ok(MLLP_OK)
    })
}

/// Copies the sender's counters into `*stats`. Returns `MLLP_OK`, `MLLP_INVALID_STATE` (in use
/// by another thread), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_get_stats(
    sender: *mut mllp_sender,
    stats: *mut mllp_sender_stats,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender.cast_const()) }?;
        let s = handle.lock()?.sender.stats();
        // SAFETY: the caller passes a writable struct or NULL (checked).
        unsafe { args::put(stats, s.into()) }?;
        Ok(MLLP_OK)
    })
}

/// Copies the text of the sender's last error into `buf`, NUL-terminated, as
/// `mllp_decoder_last_error` does: `*needed` gets the size the whole text needs (terminator
/// included), `buf` may be NULL with `cap` 0, a short buffer gets a truncated text and
/// `MLLP_BUFFER_TOO_SMALL`. May be called while another thread sends.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_last_error(
    sender: *const mllp_sender,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> mllp_result {
    guard(|| {
        // SAFETY: the caller passes a live handle or NULL.
        let handle = unsafe { args::borrow(sender) }?;
        // SAFETY: the caller passes `cap` writable bytes (or NULL with 0) and a writable size.
        Ok(unsafe { handle.last_error.copy_out(buf, cap, needed) })
    })
}

/// Closes the connection and frees the sender. NULL is allowed and does nothing.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_free(sender: *mut mllp_sender) {
    guard_or((), || {
        if !sender.is_null() {
            // SAFETY: a non-NULL pointer is a handle from `mllp_sender_new` that the caller
            // gives up here, once, with no other call running on it.
            let handle = unsafe { Box::from_raw(sender) };
            let mut inner = handle.inner.into_inner().unwrap_or_else(|e| e.into_inner());
            inner.sender.close();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_CONFIG, MLLP_NOT_DELIVERED, MLLP_NULL_ARGUMENT};
    use std::ffi::CString;

    #[test]
    fn defaults_build() {
        let opts = mllp_sender_options::default();
        // SAFETY: the default strings are NULL.
        let (sender, encode) = unsafe { opts.build("127.0.0.1:9") }.unwrap();
        assert!(!encode);
        assert_eq!(sender.addr(), "127.0.0.1:9");
        assert_eq!(opts.max_attempts, 5);
    }

    #[test]
    fn bad_options_are_config_errors() {
        let label = CString::new("no-such-charset").unwrap();
        let ca = CString::new("ca.pem").unwrap();
        let good = mllp_sender_options::default();
        let cases = [
            mllp_sender_options {
                ack_timeout_ms: 0,
                ..good
            },
            mllp_sender_options {
                max_backoff_ms: 1,
                ..good
            },
            mllp_sender_options {
                tls_ca_file: ca.as_ptr(),
                ..good
            },
        ];
        for opts in cases {
            // SAFETY: valid strings.
            let e = unsafe { opts.build("h:1") }.err().unwrap();
            assert!(matches!(e, Error::Config(_)), "{e}");
        }
        let opts = mllp_sender_options {
            charset: label.as_ptr(),
            ..good
        };
        // SAFETY: valid strings.
        let result = unsafe { opts.build("h:1") };
        assert!(matches!(result, Err(Error::Charset(_))));
    }

    #[test]
    fn identity_fields_are_pem_or_pkcs12() {
        let file = CString::new("no-such-file").unwrap();
        let pw = CString::new("pw").unwrap();
        let null = std::ptr::null();
        let (f, p) = (file.as_ptr(), pw.as_ptr());
        // (cert, key, pkcs12, password, expected text of the configuration error)
        let cases = [
            (f, null, f, null, "cannot be combined"),
            (null, f, f, p, "cannot be combined"),
            (null, null, null, p, "tls_pkcs12_file is not"),
            (f, null, null, null, "together"),
        ];
        for (cert, key, p12, password, want) in cases {
            // SAFETY: NULL or valid strings.
            let fields = unsafe { IdentityFields::new(cert, key, p12, password) }.unwrap();
            assert!(fields.any());
            match fields.load() {
                Err(Error::Config(text)) => assert!(text.contains(want), "{text}"),
                other => panic!("{other:?}"),
            }
        }
        // SAFETY: NULL strings.
        let none = unsafe { IdentityFields::new(null, null, null, null) }.unwrap();
        assert!(!none.any());
        assert!(none.load().unwrap().is_none());
        // A PKCS#12 file alone is read (here: it does not exist).
        // SAFETY: valid strings.
        let p12 = unsafe { IdentityFields::new(null, null, f, p) }.unwrap();
        assert!(matches!(p12.load(), Err(Error::Io { .. })));
        // PKCS#12 settings without `tls` are refused like the other TLS fields.
        let opts = mllp_sender_options {
            tls_pkcs12_file: f,
            ..Default::default()
        };
        // SAFETY: valid strings.
        let e = unsafe { opts.build("h:1") }.err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }

    #[test]
    fn new_reports_errors_and_send_checks_arguments() {
        let addr = CString::new("localhost").unwrap();
        let mut s = std::ptr::null_mut();
        // SAFETY: valid pointers.
        unsafe {
            assert_eq!(
                mllp_sender_new(addr.as_ptr(), std::ptr::null(), &mut s),
                MLLP_CONFIG
            );
            assert!(s.is_null());
            assert!(last_error::new_error_text().contains("port"));
            // A port nothing listens on: bind one, then free it.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = CString::new(format!("127.0.0.1:{port}")).unwrap();
            let opts = mllp_sender_options {
                max_attempts: 1,
                ..Default::default()
            };
            assert_eq!(mllp_sender_new(addr.as_ptr(), &opts, &mut s), MLLP_OK);
            let msg = b"MSH|^~\\&|A|B|C|D|1||ADT^A01|X1|P|2.5\r";
            let (mut len, mut code) = (7usize, 9u32);
            assert_eq!(
                mllp_sender_send(
                    s,
                    msg.as_ptr(),
                    msg.len(),
                    std::ptr::null_mut(),
                    0,
                    &mut len,
                    &mut code
                ),
                MLLP_NOT_DELIVERED
            );
            assert_eq!((len, code), (0, MLLP_ACK_NONE));
            assert_eq!(
                mllp_sender_send(
                    s,
                    msg.as_ptr(),
                    msg.len(),
                    std::ptr::null_mut(),
                    1,
                    &mut len,
                    &mut code
                ),
                MLLP_NULL_ARGUMENT
            );
            mllp_sender_free(s);
            mllp_sender_free(std::ptr::null_mut());
        }
    }

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
