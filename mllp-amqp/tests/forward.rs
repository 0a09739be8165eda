//! `Forwarder` against a private RabbitMQ node and an in-process MLLP listener: queue order,
//! acknowledgement only after AA, an AE or AR held and sent again or moved to the dead-letter
//! queue, a queue that does not exist, transport failures retried in place, and stopping.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{header, Client};
use lapin::types::FieldTable;
use mllp::charset::Charset;
use mllp::hl7::AckCode;
use mllp::{
    Listener, Message, Response, RetryPolicy, RunningListener, Sender, Store, StoredMessage,
};
use mllp_amqp::{
    AmqpConfig, AmqpStore, Backoff, Forwarded, Forwarder, OnReject, Outcome, HEADER_ACK_CODE,
    HEADER_ACK_TEXT, HEADER_REJECTED_FROM,
};

/// Publishes `n` messages `ID0`... into the queue of `url` through the store.
fn fill(url: &str, n: usize) {
    let store = AmqpStore::open(url).unwrap();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for i in 0..n {
        let text = mllp_testkit::adt(&format!("ID{i}"));
        let m = StoredMessage::new(&text, peer, Charset::UTF_8, SystemTime::now());
        store.save(&m).unwrap();
    }
}

/// A downstream listener whose handler `answer` decides each response; records every
/// control ID it was handed, in order.
fn downstream(
    answer: impl Fn(&str, usize) -> Response + Send + Sync + 'static,
) -> (RunningListener, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let id = m.control_id().unwrap_or("-").to_owned();
            let mut seen = seen2.lock().unwrap();
            let times = seen.iter().filter(|s| **s == id).count();
            seen.push(id.clone());
            drop(seen);
            answer(&id, times)
        })
        .unwrap();
    (running, seen)
}

fn forwarder(url: &str, to: SocketAddr) -> Forwarder {
    let sender = Sender::builder(to.to_string())
        .retry(RetryPolicy::none())
        .ack_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Forwarder::new(AmqpConfig::from_url(url).unwrap(), sender)
        .unwrap()
        .backoff(Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(100),
        })
}

fn ids(forwarded: &[Forwarded]) -> Vec<String> {
    forwarded
        .iter()
        .map(|f| f.control_id.clone().unwrap_or_default())
        .collect()
}

#[test]
fn five_hundred_messages_are_forwarded_in_order_and_leave_the_queue() {
    let Some(node) = common::node("fwd500") else {
        return;
    };
    let url = format!("{}?queue=outbound", node.url("%2f"));
    fill(&url, 500);
    let client = Client::connect(&node.url("%2f"));
    assert_eq!(client.count("outbound"), 500);
    let (running, seen) = downstream(|_, _| Response::accept());
    let mut forwarder = forwarder(&url, running.local_addr());
    let mut got = Vec::new();
    let n = forwarder.run(Some(500), |f| got.push(f.clone())).unwrap();
    assert_eq!(n, 500);
    let expected: Vec<String> = (0..500).map(|i| format!("ID{i}")).collect();
    assert_eq!(ids(&got), expected);
    assert_eq!(*seen.lock().unwrap(), expected);
    assert!(got
        .iter()
        .all(|f| matches!(f.outcome, Outcome::Delivered(_)) && !f.redelivered));
    // Every delivery was acknowledged: nothing comes back when the consumer goes away.
    drop(forwarder);
    assert_eq!(client.count("outbound"), 0);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn a_rejected_message_is_held_by_default_dead_lettered_if_asked_and_never_dropped() {
    let Some(node) = common::node("fwdreject") else {
        return;
    };
    let client = Client::connect(&node.url("%2f"));

    // Hold (the default): ID2 is refused three times, then taken; nothing is skipped.
    let url = format!("{}?queue=held", node.url("%2f"));
    fill(&url, 5);
    let (running, seen) = downstream(|id, times| {
        if id == "ID2" && times < 3 {
            Response::error("database busy")
        } else {
            Response::accept()
        }
    });
    let mut forwarder = forwarder(&url, running.local_addr());
    assert_eq!(forwarder.rejects(), OnReject::Hold);
    assert_eq!(forwarder.dead_letter_queue_name(), "held.dead");
    let mut got = Vec::new();
    forwarder.run(Some(5), |f| got.push(f.clone())).unwrap();
    assert_eq!(ids(&got), ["ID0", "ID1", "ID2", "ID3", "ID4"]);
    assert!(got
        .iter()
        .all(|f| matches!(f.outcome, Outcome::Delivered(_))));
    assert_eq!(
        *seen.lock().unwrap(),
        ["ID0", "ID1", "ID2", "ID2", "ID2", "ID2", "ID3", "ID4"],
        "held in place, in order"
    );
    let stats = forwarder.stats();
    assert_eq!(
        (stats.delivered, stats.dead_lettered, stats.held_retries),
        (5, 0, 3)
    );
    drop(forwarder);
    assert_eq!(client.count("held"), 0);
    assert_eq!(client.count("held.dead"), 0);
    running.shutdown();
    running.join().unwrap();

    // Dead-letter: a queue without a dead-letter exchange (as `mllp listen` declares it);
    // ID4 is AE'd and ID7 AR'd: both are in work.dead with the ACK, the rest delivered.
    let url = format!("{}?queue=work", node.url("%2f"));
    fill(&url, 10);
    let (running, seen) = downstream(|id, _| match id {
        "ID4" => Response::error("patient unknown"),
        "ID7" => Response::reject("no such ward"),
        _ => Response::accept(),
    });
    let mut forwarder = self::forwarder(&url, running.local_addr()).on_reject(OnReject::DeadLetter);
    let mut got = Vec::new();
    forwarder.run(Some(10), |f| got.push(f.clone())).unwrap();
    let expected: Vec<String> = (0..10).map(|i| format!("ID{i}")).collect();
    assert_eq!(ids(&got), expected);
    assert_eq!(*seen.lock().unwrap(), expected, "each sent once, in order");
    for f in &got {
        match (&f.outcome, f.control_id.as_deref()) {
            (Outcome::Rejected(ack), Some("ID4")) => {
                assert_eq!(ack.code, AckCode::ApplicationError);
                assert_eq!(ack.text.as_deref(), Some("patient unknown"));
            }
            (Outcome::Rejected(ack), Some("ID7")) => {
                assert_eq!(ack.code, AckCode::ApplicationReject);
            }
            (Outcome::Delivered(_), Some(id)) => assert!(id != "ID4" && id != "ID7"),
            other => panic!("{other:?}"),
        }
    }
    let stats = forwarder.stats();
    assert_eq!((stats.delivered, stats.dead_lettered), (8, 2));
    drop(forwarder);
    assert_eq!(client.count("work"), 0);
    let dead = client.drain("work.dead", Duration::from_secs(10));
    assert_eq!(dead.len(), 2);
    for (m, id, code, text) in [
        (&dead[0], "ID4", "AE", "patient unknown"),
        (&dead[1], "ID7", "AR", "no such ward"),
    ] {
        let p = &m.delivery.properties;
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), id);
        assert_eq!(p.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            std::str::from_utf8(&m.delivery.data).unwrap(),
            mllp_testkit::adt(id)
        );
        assert_eq!(header(m, HEADER_ACK_CODE).as_deref(), Some(code));
        assert_eq!(header(m, HEADER_ACK_TEXT).as_deref(), Some(text));
        assert_eq!(header(m, HEADER_REJECTED_FROM).as_deref(), Some("work"));
        // The headers the store wrote are kept.
        assert_eq!(header(m, "sending_application").as_deref(), Some("SENDER"));
    }
    running.shutdown();
    running.join().unwrap();

    // The dead-letter queue deleted under a running forwarder: the copy is returned as
    // unroutable, so the original is not acknowledged; it comes back, and the copy is made
    // once the dead-letter queue was declared again.
    let url = format!("{}?queue=gone", node.url("%2f"));
    fill(&url, 1);
    let (running, seen) = downstream(|_, _| Response::error("patient unknown"));
    let mut forwarder = self::forwarder(&url, running.local_addr()).on_reject(OnReject::DeadLetter);
    assert!(forwarder.start().unwrap());
    futures_lite::future::block_on(
        client
            .channel
            .queue_delete("gone.dead".into(), Default::default()),
    )
    .unwrap();
    let f = forwarder.forward_one().unwrap().unwrap();
    assert!(matches!(f.outcome, Outcome::Rejected(_)), "{f:?}");
    assert!(f.redelivered, "the first copy failed: delivered again");
    assert_eq!(*seen.lock().unwrap(), ["ID0", "ID0"]);
    assert_eq!(forwarder.stats().dead_lettered, 1);
    drop(forwarder);
    assert_eq!(client.count("gone"), 0);
    assert_eq!(client.drain("gone.dead", Duration::from_secs(10)).len(), 1);
    running.shutdown();
    running.join().unwrap();

    // A queue that does not exist is an error, and is not created.
    let url = format!("{}?queue=nosuch", node.url("%2f"));
    let mut forwarder = self::forwarder(&url, "127.0.0.1:9".parse().unwrap());
    let started = Instant::now();
    match forwarder.start() {
        Err(e @ mllp_amqp::Error::NoQueue(_)) => {
            assert_eq!(e.to_string(), "the queue nosuch does not exist");
            assert!(!e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        forwarder.forward_one(),
        Err(mllp_amqp::Error::NoQueue(_))
    ));
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found =
        futures_lite::future::block_on(Client::connect(&node.url("%2f")).channel.queue_declare(
            "nosuch".into(),
            passive,
            FieldTable::default(),
        ));
    assert!(found.is_err(), "not declared by the forwarder");
}

#[test]
fn a_transport_failure_is_retried_in_place_keeping_the_order() {
    let Some(node) = common::node("fwdretry") else {
        return;
    };
    let url = format!("{}?queue=retry", node.url("%2f"));
    fill(&url, 3);
    // ID0's first two attempts get no ACK (the connection is closed): the sender reports a
    // delivery failure, and the forwarder sends ID0 again before anything else.
    let (running, seen) = downstream(|id, times| {
        if id == "ID0" && times < 2 {
            Response::close()
        } else {
            Response::accept()
        }
    });
    let mut forwarder = forwarder(&url, running.local_addr());
    let mut got = Vec::new();
    forwarder.run(Some(3), |f| got.push(f.clone())).unwrap();
    assert_eq!(ids(&got), ["ID0", "ID1", "ID2"]);
    assert!(got
        .iter()
        .all(|f| matches!(f.outcome, Outcome::Delivered(_))));
    assert!(!got[0].redelivered, "retried in place, not requeued");
    assert_eq!(*seen.lock().unwrap(), ["ID0", "ID0", "ID0", "ID1", "ID2"]);
    assert_eq!(running.stats().closed_unanswered, 2);
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn stopping_finishes_or_keeps_the_message_and_returns() {
    let Some(node) = common::node("fwdstop") else {
        return;
    };
    let url = format!("{}?queue=stop", node.url("%2f"));
    fill(&url, 1);
    // The downstream never answers ID0: the forwarder retries it until stopped.
    let (running, seen) = downstream(|_, _| Response::close());
    let mut forwarder = forwarder(&url, running.local_addr());
    let stop = forwarder.stop_handle();
    let seen2 = Arc::clone(&seen);
    let stopper = std::thread::spawn(move || {
        assert!(mllp_testkit::eventually(Duration::from_secs(20), || seen2
            .lock()
            .unwrap()
            .len()
            >= 2));
        stop.stop();
    });
    let started = Instant::now();
    assert_eq!(forwarder.forward_one().unwrap(), None);
    assert!(started.elapsed() < Duration::from_secs(20));
    stopper.join().unwrap();
    drop(forwarder);
    // Not acknowledged: still in the queue, for the next forwarder.
    let client = Client::connect(&node.url("%2f"));
    assert!(mllp_testkit::eventually(Duration::from_secs(10), || client
        .count("stop")
        == 1));
    // A stop while waiting on an empty queue returns too.
    let _ = client.get("stop");
    let mut idle = self::forwarder(&url, running.local_addr());
    let stop = idle.stop_handle();
    let waiter = std::thread::spawn(move || idle.run(None, |_| {}).unwrap());
    assert!(mllp_testkit::eventually(Duration::from_secs(10), || client
        .consumers("stop")
        == 1));
    let asked = Instant::now();
    stop.stop();
    assert_eq!(waiter.join().unwrap(), 0);
    assert!(asked.elapsed() < Duration::from_secs(2));
    running.shutdown();
    running.join().unwrap();
}
