//! Blocking MLLP for HL7 v2: send and receive HL7 messages over the Minimal Lower Layer
//! Protocol, the TCP framing hospital systems use.
//!
//! * A [`Sender`] connects lazily, sends one message at a time, waits for the ACK whose MSA-2
//!   matches the message's MSH-10, reconnects with backoff, and never reports success for a
//!   message that was not acknowledged: a failure says whether the message was certainly not
//!   delivered or is unconfirmed ([`Outcome`]).
//! * A [`Listener`] serves one or many connections, hands each message to a [`Handler`] as
//!   UTF-8, and writes the ACK only after the handler returned (store-then-ACK with a
//!   [`Store`], such as [`FileStore`]; [`DedupStore`] in front of any store answers a resend
//!   without a second copy). Limits on size, time and connections keep a bad peer from taking
//!   the port down.
//! * The sender's protocol for one message is the sans-I/O [`Exchange`], and the listener's
//!   for one connection the sans-I/O [`Session`]: no sockets and no clock, so a relay or a
//!   test can drive them by hand.
//! * Underneath, a sans-I/O [`Decoder`] finds frame boundaries in place (a received frame is a
//!   slice of the read buffer), driven by the blocking [`Reader`], [`Writer`] and
//!   [`Connection`] over any `Read + Write`.
//! * [`hl7`] reads headers from raw bytes and builds correct ACKs and NAKs (original and
//!   enhanced mode, MLLP release 2 commit blocks); [`charset`] converts between the site's
//!   character set and UTF-8.
//!
//! # Example
//!
//! A listener on a free loopback port and a sender talking to it:
//!
//! ```
//! use mllp::{Listener, Message, Response, Sender};
//!
//! let listener = Listener::builder("127.0.0.1:0").bind()?;
//! let running = listener.spawn(|msg: &Message<'_>| {
//!     // Store the message here; the ACK is written when this returns.
//!     assert!(msg.text().starts_with("MSH|"));
//!     Response::accept()
//! })?;
//!
//! let mut sender = Sender::builder(running.local_addr().to_string()).build()?;
//! let ack = sender.send(
//!     "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ORU^R01|MSG0001|P|2.5.1\r\
//!      PID|1||12345^^^HOSP^MR||DOE^JANE\r",
//! )?;
//! assert!(ack.is_success());
//! assert_eq!(ack.control_id, "MSG0001");
//!
//! running.shutdown();
//! running.join()?;
//! # Ok::<(), mllp::Error>(())
//! ```
//!
//! # Features
//!
//! * `tls` (default): TLS through `native-tls` for the sender ([`TlsClientConfig`]) and the
//!   listener ([`TlsServerConfig`]). Without it the crate is plain TCP only.
//!
//! # TLS client certificates
//!
//! A client can present an identity ([`TlsClientConfig::identity`]) to servers that ask for one,
//! which is what mutual TLS needs on the client side. The built-in server side, [`TlsServer`],
//! goes through `native-tls`, whose acceptor never asks the client for a certificate. So the
//! listener runs its handshakes through a seam, [`TlsAcceptor`] (over a [`TlsSocket`] that
//! keeps the handshake's deadline, giving back a [`TlsSession`]): the workspace crate
//! `mllp-openssl` implements it with OpenSSL, requires and verifies client certificates against
//! a CA file, and puts the verified subject and the certificate in [`TlsPeer`], which the
//! handler sees ([`Message::tls_peer`]) and stores keep ([`StoredMessage::tls_subject`]). Give
//! it to [`ListenerBuilder::tls_acceptor`]. The sending side has the same seam,
//! [`TlsConnector`], given to [`SenderBuilder::tls_connector`]: `mllp-openssl`'s connector
//! verifies the server as the built-in client does and, unlike `native-tls`, reports the
//! protocol and cipher agreed (logged at debug for every handshake, and in [`TlsPeer`]). The
//! core keeps its three runtime dependencies.
//!
//! The oldest protocol version accepted is TLS 1.2 on both sides, or TLS 1.3
//! ([`TlsVersion`]); a listener's certificate is renewed while it runs through its
//! [`TlsHandle`] (connections already open keep theirs).
//!
//! # Connections: keepalive, allow lists, the PROXY protocol
//!
//! Every connection, both sides, runs with TCP keepalive ([`Keepalive`], on by default: a first
//! probe after 5 minutes idle), so a peer that vanished is noticed without a message. A listener
//! can serve only peers in some address blocks ([`ListenerConfig::allow`], [`Cidr`]) and read
//! the PROXY protocol header (v1 and v2) from listed proxies
//! ([`ListenerConfig::proxy_protocol_from`]), whose client is then the peer everywhere. See the
//! [`Listener`] documentation.
//!
//! # Where items live
//!
//! Every item has one path. Everything is at the crate root, except the three documented
//! homes: [`hl7`] (headers, ACK building and parsing, escaping, control IDs), [`charset`]
//! (character sets and decoded text) and [`proxy_protocol`] (the PROXY protocol parser), whose
//! items are only there. The other modules are private.
//! Errors, including [`CharsetError`] and [`HeaderError`], are at the root with [`Error`].
//!
//! The C library (`libmllp.a`, `libmllp.so`, header `mllp.h`) is the workspace crate
//! `mllp-ffi` (its guide is `mllp-ffi/README.md`), and the `mllp` command-line tool is `mllp-cli`
//! (`docs/cli.md`); the other guides are listed in the README.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod charset;
mod cidr;
mod codec;
mod connection;
mod crc;
mod error;
mod framing;
pub mod hl7;
mod inbuf;
mod listener;
mod outbox;
pub mod proxy_protocol;
mod reader;
mod retry;
mod scan;
mod sender;
mod stat;
pub mod store;
mod transport;
mod writer;

pub use cidr::Cidr;
pub use codec::{DecodeStep, Decoder, Event, HEADER_LOOKAHEAD, OVERSIZED_HEADER_LEN};
pub use connection::Connection;
pub use error::{
    CharsetError, Error, FrameError, HeaderError, Outcome, Phase, Result, Timeout, TlsError,
    TlsErrorKind,
};
pub use framing::{
    Framing, Sequence, StartInFrame, DEFAULT_END, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_START,
    MAX_SEQUENCE_LEN,
};
pub use listener::{
    CloseReason, Handler, Listener, ListenerBuilder, ListenerConfig, ListenerStats, Message,
    OnStoreFailure, Overflow, Response, RunningListener, Session, SessionStep, ShutdownHandle,
    StoreCounters, StoreHandler, StoreStats, TlsHandle, DEFAULT_ACK_WRITE_TIMEOUT,
    DEFAULT_EVICT_AFTER, DEFAULT_FRAME_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HANDSHAKES, DEFAULT_SHUTDOWN_GRACE, DEFAULT_STACK_SIZE, MAX_STACK_SIZE,
    MIN_STACK_SIZE,
};
pub use outbox::{
    Damage, DeadLetter, Handled, HandledAs, Head, OnHandled, OnReject, Outbox, OutboxConfig,
    OutboxStats, DEFAULT_OUTBOX_MAX_BYTES, DEFAULT_OUTBOX_MAX_MESSAGES, DEFAULT_SEGMENT_BYTES,
};
pub use reader::{Reader, ReaderStats};
pub use retry::{Outage, OutageEnd, OutageFailure, RetryPolicy, OUTAGE_REMINDER};
pub use sender::{
    Exchange, Link, Sender, SenderBuilder, SenderConfig, SenderStats, Timeouts, Transmit,
    DEFAULT_ACK_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_CHECK, DEFAULT_WRITE_TIMEOUT,
};
pub use stat::{Histogram, HistogramSnapshot, Stat, StatKind, DURATION_BUCKETS};
pub use store::{
    ContentDigest, DedupStore, FileStore, Receipt, Store, StoreError, StoreErrorKind,
    StoredMessage, MAX_DEDUP_KEYS, TLS_SUBJECT_EXTENSION,
};
pub use transport::{
    Identity, Stream, TlsAcceptor, TlsClient, TlsClientConfig, TlsConnector, TlsPeer, TlsServer,
    TlsServerConfig, TlsSession, TlsSocket, TlsVersion,
};
pub use transport::{
    Keepalive, DEFAULT_KEEPALIVE_COUNT, DEFAULT_KEEPALIVE_IDLE, DEFAULT_KEEPALIVE_INTERVAL,
    MAX_KEEPALIVE_COUNT, MAX_KEEPALIVE_SECS,
};
pub use writer::Writer;
