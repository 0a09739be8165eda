//! The broker killed (SIGKILL) and restarted in the middle of a send: every message that got
//! an AA is in the queue afterwards, and the sender finished (each message AA'd in the end,
//! because the listener closed the connection instead of answering while the broker was
//! down, and the sender resent).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Client;
use mllp::hl7::AckCode;
use mllp::{Listener, OnStoreFailure, RetryPolicy, Sender, Store, StoreHandler};
use mllp_amqp::AmqpStore;

const MESSAGES: usize = 600;

fn killed_and_restarted_during_a_send(queue_type: &str) {
    common::log_if_asked();
    let Some(mut node) = common::node(&format!("restart-{queue_type}")) else {
        return;
    };
    let url = format!(
        "{}?queue=kept&queue_type={queue_type}&confirm_timeout=3000",
        node.url("%2f")
    );
    let store = AmqpStore::open(&url).unwrap();
    store.check().expect("connected, and the queue declared");
    if queue_type == "quorum" {
        // RabbitMQ 3.10 registers a new quorum queue's Raft member in a file it syncs every
        // few minutes or on a clean stop; a node killed before that comes back with the queue
        // but without its member, and never confirms a publish to it again. A queue in use has
        // long been synced: stop the node cleanly once, as its operators would have.
        node.stop();
        node.restart();
    }
    let handler = StoreHandler::new(store)
        .store_wait(Duration::from_secs(2))
        .on_failure(OnStoreFailure::Close);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(handler)
        .unwrap();
    let addr = running.local_addr().to_string();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::new(AtomicUsize::new(0));
    let sending = {
        let (acked, progress) = (Arc::clone(&acked), Arc::clone(&progress));
        std::thread::spawn(move || {
            // Patient enough for a broker restart (up to a minute and a half of attempts).
            let mut sender = Sender::builder(addr)
                .retry(
                    RetryPolicy::default()
                        .max_attempts(Some(60))
                        .max_backoff(Duration::from_millis(500)),
                )
                .ack_timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            for i in 0..MESSAGES {
                let id = format!("K{i}");
                let ack = sender.send(&mllp_testkit::adt(&id));
                match ack {
                    Ok(ack) if ack.code == AckCode::ApplicationAccept => {
                        acked.lock().unwrap().push(id)
                    }
                    other => panic!("{id}: {other:?}"),
                }
                progress.store(i + 1, Ordering::SeqCst);
            }
            sender.stats()
        })
    };
    assert!(mllp_testkit::eventually(Duration::from_secs(60), || {
        progress.load(Ordering::SeqCst) >= MESSAGES / 4
    }));
    node.kill();
    let at_kill = progress.load(Ordering::SeqCst);
    node.restart();
    let stats = sending
        .join()
        .expect("the sender finished, every message AA'd");
    assert!(at_kill < MESSAGES, "the kill came after the send");
    assert!(stats.retries > 0 || stats.reconnects > 0, "{stats:?}");
    let listener = running.stats();
    assert!(listener.closed_unanswered > 0, "{listener:?}");
    assert_eq!(listener.acks_ae, 0, "{listener:?}");

    let client = Client::connect(&node.url("%2f"));
    let stored: HashSet<String> = client
        .drain("kept", Duration::from_secs(60))
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
    let acked = acked.lock().unwrap();
    assert_eq!(acked.len(), MESSAGES);
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "AA'd but not in the queue: {missing:?}");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn classic_queue_keeps_every_aa_across_a_broker_kill() {
    killed_and_restarted_during_a_send("classic");
}

#[test]
fn quorum_queue_keeps_every_aa_across_a_broker_kill() {
    killed_and_restarted_during_a_send("quorum");
}
