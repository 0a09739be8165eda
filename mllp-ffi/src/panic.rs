//! Keeping panics on the Rust side of the boundary.
//!
//! Unwinding into C is undefined behaviour (and since Rust 1.81 aborts the process). Every
//! exported function runs its body under [`guard`], which turns a panic into
//! [`MLLP_PANIC`](super::result::MLLP_PANIC). A handle on which a call panicked may be
//! inconsistent: the documentation tells callers to free it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::result::{mllp_result, MLLP_PANIC};

/// The outcome of an exported function's body: `Ok(code)` or `Err(code)`, both returned to C.
/// The split only lets the body use `?` on argument checks.
pub(crate) type Ret = Result<mllp_result, mllp_result>;

/// Runs `body`, returning its code, or [`MLLP_PANIC`] when it panics.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: after a panic the caller is told
/// (by the code and the documentation) not to use the handle again except to free it.
pub(crate) fn guard(body: impl FnOnce() -> Ret) -> mllp_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code) | Err(code)) => code,
        Err(_) => {
            // The default hook has already printed the message; add which result it became.
            ::log::error!("a panic was caught at the C API boundary (returned MLLP_PANIC)");
            MLLP_PANIC
        }
    }
}

/// Runs `body`, returning `fallback` when it panics: for the few exports that return something
/// other than a result code (a pointer, nothing).
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{MLLP_NULL_ARGUMENT, MLLP_OK};

    #[test]
    fn panics_become_codes() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        assert_eq!(guard(|| panic!("boom")), MLLP_PANIC);
        assert_eq!(guard_or(7, || panic!("boom")), 7);
        std::panic::set_hook(prev);
        assert_eq!(guard(|| Ok(MLLP_OK)), MLLP_OK);
        assert_eq!(guard(|| Err(MLLP_NULL_ARGUMENT)), MLLP_NULL_ARGUMENT);
    }
}
