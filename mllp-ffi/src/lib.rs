//! The C ABI: the functions, types and constants of `mllp.h`.
//!
//! This module is the one place in the crate where `unsafe` meets foreign callers. The header
//! `mllp.h` is generated from it by a pinned `cbindgen` (configuration in
//! `cbindgen.toml`, check script `header-check`); the `///` comments here are the
//! header's documentation, so they are written for C programmers.
//!
//! # Conventions (after rustls-ffi)
//!
//! * Every exported function runs its body under [`panic::guard`]: a panic never unwinds into
//!   C, it becomes [`result::MLLP_PANIC`].
//! * Every pointer argument is checked for NULL ([`result::MLLP_NULL_ARGUMENT`]). An output
//!   buffer may be NULL only together with a capacity of 0 (a size query).
//! * Every buffer comes with its length or capacity; nothing is read past a length nor written
//!   past a capacity. Strings passed in are NUL-terminated UTF-8; strings passed out are
//!   NUL-terminated and either static or copied into a caller buffer.
//! * Result codes ([`result::mllp_result`]) are numbers fixed forever; codes below 100 are not
//!   errors. [`result::mllp_result_str`] names every code.
//! * Handles are opaque, created by `_new` or `_build`, destroyed by `_free`; `_free(NULL)`
//!   does nothing. Settings are builder handles with one setter function each (no option
//!   structs), so a new setting is a new function and never changes a layout.
//! * Every failing call sets the calling thread's last error text ([`last_error`]), copied out
//!   by `mllp_last_error`.
//! * No Rust type appears in the header: integers, byte pointers, `#[repr(C)]` structs of
//!   those, and opaque handles. Flags and enumerations cross as integers and are validated, so
//!   no bit pattern sent by C is undefined behaviour in Rust.
//!
//! The helpers shared by every handle (guard, argument checks, output buffers, last error) are
//! `pub(crate)` so the sender and listener handles use the same ones.
#![allow(non_camel_case_types)]
// The exported functions are `unsafe extern "C"`: their safety contract is the pointer rule
// above, stated once here and in the header, not repeated on every function.
#![allow(clippy::missing_safety_doc)]

pub(crate) mod ack;
pub(crate) mod ack_table;
pub(crate) mod args;
pub(crate) mod callback;
pub(crate) mod decoder;
pub(crate) mod framing;
pub(crate) mod last_error;
pub(crate) mod listener;
pub(crate) mod listener_stat;
pub(crate) mod listener_tls;
pub(crate) mod log;
pub(crate) mod network;
pub(crate) mod outbox;
pub(crate) mod panic;
pub(crate) mod result;
pub(crate) mod sender;
pub(crate) mod split;
pub(crate) mod tls_options;

#[cfg(all(test, feature = "tls"))]
mod listener_tls_tests;

use std::ffi::c_char;

/// The major version of the library this header belongs to. It changes with every change that
/// is not backward compatible (see the ABI policy at the top), together with the shared
/// library's SONAME (`libmllp.so.<major>`).
pub const MLLP_VERSION_MAJOR: u32 = 0;
/// The minor version: new functions, constants and appended fields of library-filled structs.
pub const MLLP_VERSION_MINOR: u32 = 1;
/// The patch version: fixes only, no change to the API or ABI.
pub const MLLP_VERSION_PATCH: u32 = 0;

/// The library's name and version as a static NUL-terminated string, e.g. `"mllp/0.1.0"`.
///
/// Never NULL; do not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn mllp_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

const VERSION: &str = concat!("mllp/", env!("CARGO_PKG_VERSION"), "\0");

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_is_a_c_string() {
        // SAFETY: `mllp_version` returns a pointer to a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(mllp_version()) };
        assert_eq!(
            v.to_str().unwrap(),
            concat!("mllp/", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn version_constants_are_the_crate_version() {
        let v = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(
            (MLLP_VERSION_MAJOR, MLLP_VERSION_MINOR, MLLP_VERSION_PATCH),
            (
                v(env!("CARGO_PKG_VERSION_MAJOR")),
                v(env!("CARGO_PKG_VERSION_MINOR")),
                v(env!("CARGO_PKG_VERSION_PATCH"))
            )
        );
    }

    /// The `#define MLLP_<ROLE>_STAT_<NAME> <n>` lines of the checked-in header.
    fn header_stats(role: &str) -> Vec<(String, u32)> {
        let prefix = format!("#define MLLP_{role}_STAT_");
        include_str!("../mllp.h")
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| {
                let (name, n) = l.split_once(' ')?;
                Some((name.to_ascii_lowercase(), n.trim().parse().ok()?))
            })
            .collect()
    }

    fn table_stats<S>(table: &[mllp_core::Stat<S>]) -> Vec<(String, u32)> {
        table.iter().map(|s| (s.field.to_owned(), s.id)).collect()
    }

    /// Every counter of the core's tables has its C constant, with its number, and the header
    /// has no other: a counter added to a table and not to C fails here.
    #[test]
    fn the_c_counters_are_the_core_tables() {
        let sorted = |mut v: Vec<(String, u32)>| {
            v.sort_by_key(|(_, n)| *n);
            v
        };
        assert_eq!(
            sorted(header_stats("LISTENER")),
            sorted(table_stats(mllp_core::ListenerStats::TABLE))
        );
        assert_eq!(
            sorted(header_stats("OUTBOX")),
            sorted(table_stats(mllp_core::OutboxStats::TABLE))
        );
        assert_eq!(
            sorted(header_stats("SENDER")),
            sorted(table_stats(mllp_core::SenderStats::TABLE))
        );
    }
}
