//! RabbitMQ (AMQP 0-9-1) for [`mllp`]: [`AmqpStore`], a [`Store`](mllp::Store) that publishes
//! every received message and lets the listener acknowledge it only after the broker's
//! confirm, and [`Forwarder`], which consumes a queue and sends each message onward over MLLP,
//! acknowledging the delivery only after the downstream's `AA` (a message the downstream
//! rejects is held and retried, or moved to a dead-letter queue: see [`OnReject`]).
//!
//! The client is [lapin](https://docs.rs/lapin) on its own executor (no tokio), driven from
//! blocking calls; its `tracing` events are logged through `log`.
//!
//! # Example
//! A listener that stores into the durable queue `inbound` of a two-node cluster:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mllp::Listener;
//! use mllp_amqp::AmqpStore;
//!
//! let store = AmqpStore::open("amqp://guest:guest@10.0.0.1:5672,10.0.0.2:5672/%2f?queue=inbound")?;
//! let running = Listener::builder("0.0.0.0:2575").bind()?.spawn_store(Arc::new(store))?;
//! running.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod config;
mod error;
mod forward;
mod link;
mod store;

pub use config::{AmqpConfig, Host, Target, DEFAULT_CONFIRM_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};
pub use error::Error;
pub use forward::{
    Backoff, ForwardStats, Forwarded, Forwarder, OnReject, Outcome, StopHandle, DEAD_LETTER_SUFFIX,
    HEADER_ACK_CODE, HEADER_ACK_TEXT, HEADER_REJECTED_FROM,
};
pub use store::{open_url, AmqpStore, CHECK_TIMEOUT, CONTENT_TYPE};
