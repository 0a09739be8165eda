//! Blocking MLLP for HL7 v2.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod error;

pub use error::{
    CharsetError, Error, FrameError, HeaderError, Outcome, Phase, Result, Timeout, TlsError,
};

#[doc(hidden)]
pub mod fuzzing;
