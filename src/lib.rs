//! Blocking MLLP for HL7 v2.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod charset;
pub mod codec;
mod connection;
mod error;
mod ffi;
mod framing;
pub mod hl7;
pub mod listener;
mod reader;
mod retry;
pub mod scan;
mod sender;
mod store;
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
pub use listener::{
    AckPolicy, Handler, Listener, ListenerBuilder, ListenerStats, Message, Overflow, Response,
    RunningListener, ShutdownHandle,
};
pub use reader::{Reader, ReaderStats, DEFAULT_READ_CHUNK};
pub use retry::RetryPolicy;
pub use sender::{
    ReplyMode, Sender, SenderBuilder, SenderStats, DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
};
pub use store::FileStore;
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
