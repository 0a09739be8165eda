//! Blocking MLLP for HL7 v2.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod error;
pub mod transport;

pub use error::{
    CharsetError, Error, FrameError, HeaderError, Outcome, Phase, Result, Timeout, TlsError,
};
pub use transport::{
    Identity, Stream, TlsClient, TlsClientConfig, TlsPeer, TlsServer, TlsServerConfig,
};

#[doc(hidden)]
pub mod fuzzing;
