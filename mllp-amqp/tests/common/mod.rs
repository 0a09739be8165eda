//! Support for the tests against a private RabbitMQ node: starting one (or skipping), and a
//! small lapin client that reads a queue back.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use mllp_testkit::*;

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use mllp_testkit::rabbitmq::{self, RabbitNode};

/// A private node named `name`, or `None` (and a skip notice) when RabbitMQ is not installed.
pub fn node(name: &str) -> Option<RabbitNode> {
    if !rabbitmq::available() {
        skip("RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server and epmd) is not installed");
        return None;
    }
    Some(RabbitNode::start(name))
}

/// A plain lapin connection and channel to `url`, for reading what a test stored.
pub struct Client {
    pub connection: Connection,
    pub channel: Channel,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        block_on(async {
            let runtime = lapin::runtime::default_runtime().unwrap();
            let connection =
                Connection::connect_with_runtime(url, ConnectionProperties::default(), runtime)
                    .await
                    .expect("test client connects");
            let channel = connection.create_channel().await.expect("test channel");
            Client {
                connection,
                channel,
            }
        })
    }

    /// How many consumers `queue` (which must exist) has.
    pub fn consumers(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        block_on(
            self.channel
                .queue_declare(queue.into(), passive, FieldTable::default()),
        )
        .expect("queue exists")
        .consumer_count()
    }

    /// How many messages are ready in `queue` (which must exist).
    pub fn count(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        block_on(
            self.channel
                .queue_declare(queue.into(), passive, FieldTable::default()),
        )
        .expect("queue exists")
        .message_count()
    }

    /// Takes (and acks) the next message of `queue`, if any.
    pub fn get(&self, queue: &str) -> Option<BasicGetMessage> {
        let got = block_on(
            self.channel
                .basic_get(queue.into(), BasicGetOptions::default()),
        )
        .expect("basic.get");
        if let Some(m) = &got {
            block_on(m.delivery.acker.ack(BasicAckOptions::default())).expect("ack");
        }
        got
    }

    /// Takes every message of `queue` until it has been empty for a moment, or `limit` passed.
    pub fn drain(&self, queue: &str, limit: Duration) -> Vec<BasicGetMessage> {
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        let mut empty_since = None;
        while Instant::now() < end {
            match self.get(queue) {
                Some(m) => {
                    got.push(m);
                    empty_since = None;
                }
                None => {
                    let since = *empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(300) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        got
    }

    /// Declares `queue` durable with `arguments`.
    pub fn declare(&self, queue: &str, arguments: FieldTable) {
        block_on(self.channel.queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            arguments,
        ))
        .expect("queue.declare");
    }
}

/// A header of a delivery, as text.
pub fn header(m: &BasicGetMessage, key: &str) -> Option<String> {
    let headers = m.delivery.properties.headers().as_ref()?;
    match headers.inner().get(key)? {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Logs to standard error when `MLLP_TEST_LOG` is set (to a level: `debug`, `info`...), for
/// looking into a failing test.
pub fn log_if_asked() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                eprintln!("{} {}: {}", r.level(), r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    if let Some(level) = std::env::var_os("MLLP_TEST_LOG") {
        let level = level
            .to_string_lossy()
            .parse()
            .unwrap_or(log::LevelFilter::Info);
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level);
        }
    }
}
