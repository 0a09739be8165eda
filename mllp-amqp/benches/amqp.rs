//! Listener → RabbitMQ against a plain confirmed publisher, on one private broker node.
//!
//! `cargo bench -p mllp-amqp --bench amqp` starts a private RabbitMQ node (as the tests do)
//! and measures, in the same run, in `BENCH_RUNS` rounds (default 9) of the three back to back:
//!
//! * **baseline**: a sequential confirmed publisher written with lapin: one connection, one
//!   channel in confirm mode, each message (the same 1 KB ADT^A01 bytes and properties the
//!   store sends: persistent, mandatory) published and its confirm awaited before the next;
//! * **1 connection**: an MLLP sender → a `Listener` with a `StoreHandler` over `AmqpStore`:
//!   one message at a time, each AA'd after the broker's confirm;
//! * **16 connections**: 16 such senders at once on the same listener.
//!
//! Each confirm waits for the broker's disk, whose latency swings with whatever else the
//! machine does; so the ratios are taken within each round (neighbours in time see the same
//! disk) and the medians over the rounds are reported, with the median rates. Goals:
//! 1 connection ≥ 0.8× the publisher, 16 connections ≥ 4× one. Under `cargo test` (no
//! `--bench`) it is a small smoke run that checks every message was confirmed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_lite::future::block_on;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};
use mllp::charset::Charset;
use mllp::hl7::AckCode;
use mllp::{Listener, Sender, Store, StoredMessage};
use mllp_amqp::{AmqpStore, CONTENT_TYPE};
use mllp_testkit::rabbitmq::{self, RabbitNode};

const QUEUE: &str = "bench";

/// A 1 KB ADT^A01 with control ID `id`.
fn message(id: usize) -> String {
    let mut m = mllp_testkit::adt(&format!("B{id:08}"));
    m.push_str("NTE|1||");
    while m.len() < 1023 {
        m.push('x');
    }
    m.push('\r');
    m
}

/// One channel in confirm mode, on a connection of its own.
fn confirm_channel(url: &str) -> (Connection, Channel) {
    block_on(async {
        let runtime = lapin::runtime::default_runtime().unwrap();
        let conn = Connection::connect_with_runtime(url, ConnectionProperties::default(), runtime)
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        (conn, channel)
    })
}

/// What the store puts on each message, built by the publisher as any publisher would.
fn properties(stored: &StoredMessage<'_>) -> BasicProperties {
    let mut headers = FieldTable::default();
    let fields = [
        ("msh9", stored.message_type()),
        ("sending_application", stored.sending_application()),
        ("sending_facility", stored.sending_facility()),
        ("peer", Some("127.0.0.1:9")),
        ("charset", Some("UTF-8")),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
        }
    }
    let secs = stored
        .received_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(CONTENT_TYPE.into())
        .with_content_encoding("utf-8".into())
        .with_timestamp(secs)
        .with_message_id(stored.control_id().unwrap_or("-").into())
        .with_headers(headers)
}

/// The baseline: `n` messages published one at a time, each confirm awaited. Messages/s.
fn sequential_publisher(channel: &Channel, n: usize) -> f64 {
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let texts: Vec<String> = (0..n).map(message).collect();
    let started = Instant::now();
    for text in &texts {
        // The same properties the store builds.
        let stored = StoredMessage::new(text, peer, Charset::UTF_8, SystemTime::now());
        let confirm = block_on(async {
            channel
                .basic_publish(
                    "".into(),
                    QUEUE.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    text.as_bytes(),
                    properties(&stored),
                )
                .await
                .unwrap()
                .await
                .unwrap()
        });
        assert!(matches!(confirm, Confirmation::Ack(None)), "{confirm:?}");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// `connections` MLLP senders at once, `per` messages each, to `addr`. Messages/s.
fn through_listener(addr: &str, connections: usize, per: usize) -> f64 {
    let barrier = Arc::new(std::sync::Barrier::new(connections + 1));
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, barrier) = (addr.to_owned(), Arc::clone(&barrier));
            let texts: Vec<String> = (0..per).map(|i| message(c * per + i)).collect();
            std::thread::spawn(move || {
                let mut sender = Sender::builder(addr).build().unwrap();
                // Connected before the clock starts.
                let ack = sender.send(&message(usize::MAX / 2 - c)).unwrap();
                assert_eq!(ack.code, AckCode::ApplicationAccept);
                barrier.wait();
                for text in &texts {
                    let ack = sender.send(text).unwrap();
                    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    (connections * per) as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn purge(channel: &Channel) {
    block_on(channel.queue_purge(QUEUE.into(), QueuePurgeOptions::default())).unwrap();
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !rabbitmq::available() {
        mllp_testkit::skip("RabbitMQ is not installed (the amqp benchmark)");
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 9 } else { 1 });
    let (single, per16) = if bench { (600, 100) } else { (50, 5) };

    let node = RabbitNode::start("bench");
    let url = format!("{}?queue={QUEUE}", node.url("%2f"));
    let store = Arc::new(AmqpStore::open(&url).unwrap());
    store
        .check()
        .expect("the broker is up and the queue declared");
    let running = Listener::builder("127.0.0.1:0")
        .max_connections(32)
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let addr = running.local_addr().to_string();
    let (_conn, channel) = confirm_channel(&node.url("%2f"));

    // Warm-up: connections, channels, the broker's queue process.
    sequential_publisher(&channel, single / 10 + 10);
    through_listener(&addr, 1, single / 10 + 10);
    through_listener(&addr, 16, per16 / 10 + 2);
    purge(&channel);

    let (mut base, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
    let (mut one_vs_base, mut many_vs_one) = (Vec::new(), Vec::new());
    for round in 0..runs {
        let b = sequential_publisher(&channel, single);
        purge(&channel);
        let o = through_listener(&addr, 1, single);
        purge(&channel);
        let m = through_listener(&addr, 16, per16);
        purge(&channel);
        println!(
            "round {}: publisher {b:.0} msg/s, 1 connection {o:.0} msg/s ({:.2}×), \
             16 connections {m:.0} msg/s ({:.2}× 1 connection)",
            round + 1,
            o / b,
            m / o
        );
        base.push(b);
        one.push(o);
        many.push(m);
        one_vs_base.push(o / b);
        many_vs_one.push(m / o);
    }
    println!(
        "medians of {runs} rounds, {single} messages of 1 KB per single-connection run, \
         16 × {per16} per 16-connection run:"
    );
    println!(
        "sequential confirmed publisher (lapin, baseline): {:.0} msg/s",
        median(&mut base)
    );
    println!(
        "listener → RabbitMQ, 1 connection:   {:.0} msg/s, {:.2}× the publisher (goal 0.8×)",
        median(&mut one),
        median(&mut one_vs_base)
    );
    println!(
        "listener → RabbitMQ, 16 connections: {:.0} msg/s, {:.2}× 1 connection (goal 4×)",
        median(&mut many),
        median(&mut many_vs_one)
    );
    let stats = running.stats();
    assert_eq!(stats.acks_ae, 0, "{stats:?}");
    running.shutdown();
    running.join().unwrap();
    drop(store);
}
