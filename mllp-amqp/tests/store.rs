//! `AmqpStore` under a listener, against a private RabbitMQ node: what reaches the queue
//! (bodies as UTF-8, properties, headers, order), an unroutable publish, and reconnecting to
//! the next host.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{header, Client};
use mllp::charset::Charset;
use mllp::hl7::AckCode;
use mllp::{Listener, Sender, Store, StoredMessage};
use mllp_amqp::{AmqpConfig, AmqpStore};

/// Message `i` of the 2,000: every fifth in ISO-8859-1 on the wire (MSH-18 `8859/1`), the rest
/// UTF-8 with characters beyond Latin-1.
fn message(i: usize) -> (String, Charset) {
    if i.is_multiple_of(5) {
        let text = format!(
            "MSH|^~\\&|LÄB^x|HÔSP|EHR|WARD|20260101||ORU^R01^ORU_R01|ID{i}|P|2.5||||||8859/1\r\
             PID|1||{i}||MÜLLER^JÜRGEN\r"
        );
        (text, Charset::ISO_8859_1)
    } else {
        let text = format!(
            "MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101||ADT^A01|ID{i}|P|2.5\r\
             PID|1||{i}||ŁUKASZ^ŻÓŁW 漢字 😀\r"
        );
        (text, Charset::UTF_8)
    }
}

#[test]
fn two_thousand_messages_reach_the_queue_as_utf8_with_their_properties() {
    let Some(node) = common::node("store2k") else {
        return;
    };
    let url = format!("{}?queue=inbound", node.url("%2f"));
    let store = Arc::new(AmqpStore::open(&url).unwrap());
    store.check().expect("the broker is reachable");
    assert_eq!(
        store.name(),
        format!("amqp://127.0.0.1:{}/%2f?queue=inbound", node.port())
    );
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let addr = running.local_addr().to_string();
    let mut utf8 = Sender::builder(addr.as_str()).build().unwrap();
    let mut latin1 = Sender::builder(addr.as_str())
        .charset(Charset::ISO_8859_1)
        .build()
        .unwrap();
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..2000 {
        let (text, charset) = message(i);
        let sender = if charset == Charset::UTF_8 {
            &mut utf8
        } else {
            &mut latin1
        };
        let ack = sender.send(&text).unwrap();
        assert_eq!(ack.code, AckCode::ApplicationAccept, "message {i}: {ack:?}");
    }
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    drop((utf8, latin1));

    let client = Client::connect(&node.url("%2f"));
    assert_eq!(client.count("inbound"), 2000);
    let got = client.drain("inbound", Duration::from_secs(60));
    assert_eq!(got.len(), 2000);
    for (i, m) in got.iter().enumerate() {
        let (text, charset) = message(i);
        let p = &m.delivery.properties;
        assert_eq!(
            std::str::from_utf8(&m.delivery.data).unwrap(),
            text,
            "body {i}"
        );
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), format!("ID{i}"));
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/hl7-v2"
        );
        assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
        let ts = p.timestamp().unwrap();
        assert!((before..=after).contains(&ts), "timestamp {ts}");
        assert_eq!(header(m, "charset").unwrap(), charset.name());
        let peer = header(m, "peer").unwrap();
        assert!(peer.starts_with("127.0.0.1:"), "{peer}");
        if charset == Charset::UTF_8 {
            assert_eq!(header(m, "msh9").as_deref(), Some("ADT^A01"));
            assert_eq!(header(m, "sending_application").as_deref(), Some("LAB"));
            assert_eq!(header(m, "sending_facility").as_deref(), Some("HOSP"));
        } else {
            assert_eq!(header(m, "msh9").as_deref(), Some("ORU^R01^ORU_R01"));
            assert_eq!(header(m, "sending_application").as_deref(), Some("LÄB^x"));
            assert_eq!(header(m, "sending_facility").as_deref(), Some("HÔSP"));
        }
        assert!(!m.delivery.redelivered);
    }
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn an_unroutable_message_is_refused_at_once() {
    let Some(node) = common::node("unroutable") else {
        return;
    };
    // amq.direct exists, but nothing is bound to it with this routing key.
    let url = format!("{}?exchange=amq.direct&routing_key=nobody", node.url("%2f"));
    // An exchange that does not exist is a refusal of the startup check, named.
    let missing = AmqpStore::open(&format!(
        "{}?exchange=nowhere&routing_key=k",
        node.url("%2f")
    ))
    .unwrap();
    let e = missing.check().unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("NOT_FOUND"), "{e}");

    let store = Arc::new(AmqpStore::open(&url).unwrap());
    store.check().unwrap();
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::clone(&store))
        .unwrap();
    let mut sender = Sender::builder(running.local_addr().to_string())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let ack = sender.send(&common::adt("LOST1")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");
    let text = ack.text.unwrap_or_default();
    assert!(text.contains("unroutable"), "{text}");
    // Refused: answered at once, not retried until a store wait runs out.
    assert!(started.elapsed() < Duration::from_secs(3));
    // The channel and connection stay usable: a routable message after it is stored.
    let client = Client::connect(&node.url("%2f"));
    client.declare("bound", Default::default());
    futures_lite::future::block_on(client.channel.queue_bind(
        "bound".into(),
        "amq.direct".into(),
        "nobody".into(),
        Default::default(),
        Default::default(),
    ))
    .unwrap();
    let ack = sender.send(&common::adt("FOUND1")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    assert_eq!(client.count("bound"), 1);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn the_next_host_is_tried_when_one_is_down_and_check_is_bounded() {
    let Some(mut node) = common::node("hosts") else {
        return;
    };
    let dead = mllp_testkit::free_port();
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{}/%2f?queue=failover",
        node.port()
    );
    let config = AmqpConfig::from_url(&url).unwrap();
    assert_eq!(config.hosts.len(), 2);
    let store = AmqpStore::new(config);
    store.check().expect("the second host answers");
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn_store(Arc::new(store))
        .unwrap();
    let mut sender = Sender::builder(running.local_addr().to_string())
        .build()
        .unwrap();
    assert_eq!(
        sender.send(&common::adt("H1")).unwrap().code,
        AckCode::ApplicationAccept
    );

    // With the only live node down, check answers within about a second, and saves fail.
    node.kill();
    let store = AmqpStore::open(&url).unwrap();
    let started = std::time::Instant::now();
    assert!(store.check().is_err());
    assert!(started.elapsed() < Duration::from_millis(1500));
    let ack = sender.send(&common::adt("H2")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError, "{ack:?}");

    // Back up: the next message reconnects by itself.
    node.restart();
    assert!(store.check().is_ok());
    let ack = sender.send(&common::adt("H3")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    let client = Client::connect(&node.url("%2f"));
    let ids: Vec<String> = client
        .drain("failover", Duration::from_secs(10))
        .iter()
        .map(|m| {
            m.delivery
                .properties
                .message_id()
                .as_ref()
                .unwrap()
                .to_string()
        })
        .collect();
    // H1 was confirmed before the kill (a durable queue keeps persistent messages); H2 never.
    assert_eq!(
        ids,
        ["H1", "H3"],
        "the broker's recovery after the kill said:\n{}",
        node.recovery_lines()
    );
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn the_check_fails_for_a_broker_that_hangs_and_for_a_deleted_queue() {
    let Some(node) = common::node("checks") else {
        return;
    };
    let url = format!("{}?queue=checked", node.url("%2f"));
    let store = AmqpStore::open(&url).unwrap();
    store.check().expect("the queue is declared and found");
    let limit = mllp_amqp::CHECK_TIMEOUT + Duration::from_millis(500);

    // A broker that stopped answering, with the connection open: the check fails in time.
    let paused = mllp_testkit::pause::Paused::new(node.pid().expect("the node runs"));
    let started = std::time::Instant::now();
    let e = store.check().expect_err("a stopped broker fails the check");
    let took = started.elapsed();
    assert!(took < limit, "the check took {took:?}");
    assert!(e.is_retryable(), "{e}");
    // A save bounded by a deadline (a listener's store wait) ends by then.
    let (text, charset) = message(1);
    let peer = "127.0.0.1:4000".parse().unwrap();
    let m = StoredMessage::new(&text, peer, charset, SystemTime::now());
    let started = std::time::Instant::now();
    let e = store
        .save_before(&m, started + Duration::from_secs(1))
        .expect_err("a stopped broker takes nothing");
    let took = started.elapsed();
    eprintln!("stopped broker: save_before(1 s) returned after {took:?}: {e}");
    assert!(took < Duration::from_millis(1500), "the save took {took:?}");
    assert!(e.is_retryable(), "{e}");
    paused.resume();
    assert!(
        common::eventually(Duration::from_secs(10), || store.check().is_ok()),
        "the check still fails with the broker answering again"
    );

    // The queue deleted behind the open connection: every publish would be refused.
    let out = node.ctl(&["delete_queue", "checked"]);
    assert!(out.status.success(), "{out:?}");
    let started = std::time::Instant::now();
    let e = store.check().expect_err("a deleted queue fails the check");
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    assert!(e.to_string().contains("NOT_FOUND"), "{e}");
}
