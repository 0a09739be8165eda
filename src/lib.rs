//! Blocking MLLP for HL7 v2.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod charset;
mod codec;
mod connection;
mod error;
mod ffi;
mod framing;
pub mod hl7;
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

pub use charset::{Charset, Malformed};
pub use hl7::{
    ack_control_id, build_nak_unparseable, Ack, AckBuilder, AckCode, AckKind, AckMode, Disposition,
    Header, Separators, COMMIT_ACK, COMMIT_NAK,
};

#[doc(hidden)]
pub mod fuzzing;
