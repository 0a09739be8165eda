//! Keeping panics on the Rust side of the boundary, and giving every failure a text.
//!
//! Unwinding into C is undefined behaviour (and since Rust 1.81 aborts the process). Every
//! exported function runs its body under [`guard`], which turns a panic into
//! [`MLLP_PANIC`](super::result::MLLP_PANIC). A handle on which a call panicked may be
//! inconsistent: the documentation tells callers to free it.
//!
//! The guard also keeps the promise of `mllp_last_error`: a call that returns an error code
//! without having said why (a NULL argument, say) gets the text "`<function>`: `<what the code
//! means>`".

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::last_error;
use super::result::{describe, is_error, mllp_result, MLLP_PANIC};

/// The outcome of an exported function's body: `Ok(code)` or `Err(code)`, both returned to C.
/// The split only lets the body use `?` on argument checks.
pub(crate) type Ret = Result<mllp_result, mllp_result>;

/// Runs `body` of the exported function `name`, returning its code, or [`MLLP_PANIC`] when it
/// panics; an error code the body gave no text for gets a generic one.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic the caller is told
/// (by the code and the documentation) not to use the handle again except to free it.
pub(crate) fn guard(name: &str, body: impl FnOnce() -> Ret) -> mllp_result {
    let outer = last_error::begin_call();
    let code = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code) | Err(code)) => code,
        Err(_) => {
            // The default hook has already printed the message; add which result it became.
            ::log::error!("a panic was caught at the C API boundary (returned MLLP_PANIC)");
            MLLP_PANIC
        }
    };
    let said = last_error::end_call(outer);
    if is_error(code) && !said {
        last_error::set(code, format_args!("{name}: {}", describe(code)));
        last_error::end_call(outer);
    }
    code
}

/// Runs `body`, returning `fallback` when it panics: for the few exports that return something
/// other than a result code (a pointer, nothing).
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_CONFIG, MLLP_NEED_MORE, MLLP_NULL_ARGUMENT, MLLP_OK};

    #[test]
    fn panics_become_codes() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        assert_eq!(guard("f", || panic!("boom")), MLLP_PANIC);
        assert_eq!(guard_or(7, || panic!("boom")), 7);
        std::panic::set_hook(prev);
        assert_eq!(guard("f", || Ok(MLLP_OK)), MLLP_OK);
    }

    #[test]
    fn every_error_has_a_text() {
        assert_eq!(
            guard("mllp_x", || Err(MLLP_NULL_ARGUMENT)),
            MLLP_NULL_ARGUMENT
        );
        assert!(
            last_error::text().starts_with("mllp_x: "),
            "{}",
            last_error::text()
        );
        // A text the body set is kept.
        let code = guard("mllp_y", || {
            Err(last_error::set(MLLP_CONFIG, "exactly this"))
        });
        assert_eq!(
            (code, last_error::text()),
            (MLLP_CONFIG, "exactly this".into())
        );
        // Codes below 100 are not errors and leave the text alone.
        assert_eq!(guard("mllp_z", || Ok(MLLP_NEED_MORE)), MLLP_NEED_MORE);
        assert_eq!(last_error::text(), "exactly this");
    }
}
