//! Blocking MLLP for HL7 v2.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod codec;
mod connection;
mod error;
mod framing;
mod reader;
pub mod scan;
pub mod transport;
mod writer;

pub use codec::{Decoded, Decoder, Event, OVERSIZED_HEADER_LEN};
pub use connection::Connection;
pub use error::{
    CharsetError, Error, FrameError, HeaderError, Outcome, Phase, Result, Timeout, TlsError,
};
pub use framing::{
    Framing, Sequence, StartInFrame, DEFAULT_END, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_START,
    MAX_SEQUENCE_LEN,
};
pub use reader::{Reader, ReaderStats, DEFAULT_READ_CHUNK};
pub use transport::{
    Identity, Stream, TlsClient, TlsClientConfig, TlsPeer, TlsServer, TlsServerConfig,
};
pub use writer::{Writer, COALESCE_LIMIT};

#[doc(hidden)]
pub mod fuzzing;
