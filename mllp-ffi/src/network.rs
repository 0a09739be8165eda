//! The network settings of both builders: TCP keepalive (sender and listener), and which
//! peers may connect to a listener (allow list, PROXY protocol proxies).

use std::ffi::c_char;
use std::time::Duration;

use super::args;
use super::listener::mllp_listener_builder;
use super::result::mllp_result;
use super::sender::mllp_sender_builder;
use mllp_core::{Cidr, Keepalive};

/// The keepalive of `idle_s`, `interval_s`, `count`, checked; `None` (off) when `idle_s` is 0.
fn keepalive(idle_s: u32, interval_s: u32, count: u32) -> Result<Option<Keepalive>, mllp_result> {
    if idle_s == 0 {
        return Ok(None);
    }
    let k = Keepalive::new(
        Duration::from_secs(idle_s.into()),
        Duration::from_secs(interval_s.into()),
        count,
    );
    args::check(k.validate())?;
    Ok(Some(k))
}

/// Address blocks from a C string: `10.0.0.0/8`, `192.0.2.7`, `fd00::/8`, or several
/// separated by commas.
///
/// # Safety
/// `text` must be NULL or a NUL-terminated string.
unsafe fn blocks(text: *const c_char) -> Result<Vec<Cidr>, mllp_result> {
    // SAFETY: forwarded contract.
    let text = unsafe { args::req_string(text, "the address block") }?;
    args::check(Cidr::parse_list(text))
}

/// TCP keepalive on the sender's connections: a probe after `idle_s` seconds without traffic,
/// then one every `interval_s` seconds, the connection dropped after `count` unanswered, so a
/// listener that vanished behind a firewall is noticed without a message. `idle_s` 0 turns
/// keepalive off (the other values are then ignored). Default: on, 300, 60, 5 (5 minutes,
/// 1 minute, 5 probes). Errors: `MLLP_CONFIG` (idle time or interval above 32767 s, count
/// 0 or above 127), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_sender_builder_set_keepalive(
    builder: *mut mllp_sender_builder,
    idle_s: u32,
    interval_s: u32,
    count: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_sender_builder_set_keepalive", builder, |b| {
            b.config.keepalive = keepalive(idle_s, interval_s, count)?;
            Ok(())
        })
    }
}

/// TCP keepalive on accepted connections, as `mllp_sender_builder_set_keepalive`: a sender
/// that vanished frees its connection slot without a message. `idle_s` 0 turns it off.
/// Default: on, 300, 60, 5. Errors: `MLLP_CONFIG`, `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_set_keepalive(
    builder: *mut mllp_listener_builder,
    idle_s: u32,
    interval_s: u32,
    count: u32,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL.
    unsafe {
        args::set("mllp_listener_builder_set_keepalive", builder, |b| {
            b.config.keepalive = keepalive(idle_s, interval_s, count)?;
            Ok(())
        })
    }
}

/// Lets the peers in `cidr` connect (`"10.0.0.0/8"`, `"192.0.2.7"`, `"fd00::/8"`, or several
/// separated by commas; not NULL); once a block is added, every other peer is closed at once,
/// before a slot, a handshake or a callback (counted in
/// `MLLP_LISTENER_STAT_CONNECTIONS_DENIED`). The address checked is the client's, after any
/// PROXY protocol header. Default: everyone. Errors: `MLLP_CONFIG` (not an address block, or
/// bits set after the prefix), `MLLP_INVALID_ARGUMENT` (not UTF-8), `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_add_allow(
    builder: *mut mllp_listener_builder,
    cidr: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set("mllp_listener_builder_add_allow", builder, |b| {
            b.config.allow.extend(blocks(cidr)?);
            Ok(())
        })
    }
}

/// Connections from the proxies in `cidr` (as in `mllp_listener_builder_add_allow`; HAProxy
/// with `send-proxy-v2`, say) start with a PROXY protocol header, version 1 or 2, read before
/// the TLS handshake; the client it names is the peer the callback and the allow list see.
/// From these addresses the header is required; from anyone else a header is refused (counted
/// in `MLLP_LISTENER_STAT_PROXY_REFUSED`). Default: the PROXY protocol is off. Errors:
/// `MLLP_CONFIG`, `MLLP_INVALID_ARGUMENT`, `MLLP_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn mllp_listener_builder_add_proxy_protocol_from(
    builder: *mut mllp_listener_builder,
    cidr: *const c_char,
) -> mllp_result {
    // SAFETY: the caller passes a live builder or NULL, and a string or NULL.
    unsafe {
        args::set(
            "mllp_listener_builder_add_proxy_protocol_from",
            builder,
            |b| {
                b.config.proxy_protocol_from.extend(blocks(cidr)?);
                Ok(())
            },
        )
    }
}
