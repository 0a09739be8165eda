//! `mllp listen --store amqp://...` against a private RabbitMQ node: several hosts (the first
//! one down), a quorum queue, what it prints, and a URL it cannot use.

mod common;

use std::path::Path;
use std::time::Duration;

use common::process::{listen, mllp, Proc};
use common::{rabbit_node as node, rabbit_queue as queue_info};
use mllp_testkit::free_port;

#[test]
fn listen_stores_into_a_quorum_queue_through_the_first_live_host() {
    let Some(node) = node("clilisten") else {
        return;
    };
    let dead = free_port();
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{}/%2f?queue=cli_in&queue_type=quorum",
        node.port()
    );
    let (proc, addr) = listen(Path::new(&url), &["--count", "3"]);
    let messages: String = (1..=3)
        .map(|i| mllp_testkit::adt(&format!("Q{i}")))
        .collect();
    let sent = Proc::spawn(&["send", &addr, "-"], Some(messages.into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    let ended = proc.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    // One line per message: where it went, MSH-10, MSH-9, peer; then the summary.
    assert!(
        ended.stdout[0].starts_with("queue cli_in Q1 ADT^A01^ADT_A01 127.0.0.1:"),
        "{ended:?}"
    );
    assert!(ended.stdout.last().unwrap().contains("AA 3"), "{ended:?}");
    assert!(!ended.stderr.contains("guest:guest"), "{}", ended.stderr);
    // The broker's queue statistics lag behind by a few seconds: bounded polling.
    let mut info = None;
    let settled = mllp_testkit::eventually(std::time::Duration::from_secs(20), || {
        info = queue_info(&node, "cli_in");
        info.as_ref().is_some_and(|(n, _)| *n == 3)
    });
    assert!(settled, "{info:?}");
    assert_eq!(info.unwrap().1, "quorum");
}

#[test]
fn listen_names_the_store_without_credentials_and_refuses_bad_urls() {
    let ended = mllp(&[
        "listen",
        "127.0.0.1:0",
        "--store",
        "amqp://u:secret@127.0.0.1:1",
    ]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert!(ended.stderr.contains("queue=NAME"), "{}", ended.stderr);
    assert!(!ended.stderr.contains("secret"), "{}", ended.stderr);
    // Nothing listens on the port: the startup check fails, naming the host.
    let port = free_port();
    let url = format!("amqp://u:secret@127.0.0.1:{port}/%2f?queue=q");
    let ended = mllp(&["listen", "127.0.0.1:0", "--store", &url]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert!(
        ended.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        ended.stderr
    );
    assert!(!ended.stderr.contains("secret"), "{}", ended.stderr);
}

#[test]
fn with_the_broker_down_the_sender_waits_then_gets_ae_or_no_ack() {
    let Some(mut node) = node("clibrokerdown") else {
        return;
    };
    let url = format!("{}?queue=down", node.url("%2f"));
    let (nak, nak_addr) = listen(
        Path::new(&url),
        &["--store-wait", "1", "--on-store-failure", "nak"],
    );
    let (close, close_addr) = listen(Path::new(&url), &["--store-wait", "1"]);
    node.kill();
    let started = std::time::Instant::now();
    let sent = Proc::spawn(
        &["send", &nak_addr, "--attempts", "1", "-"],
        Some(mllp_testkit::adt("DOWN1").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 1, "{sent:?}");
    assert!(
        sent.stdout[0]
            .starts_with("DOWN1 AE message could not be stored: cannot connect to the broker"),
        "{sent:?}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    // The default: no ACK at all, so the sender counts the message as not delivered.
    let sent = Proc::spawn(
        &["send", &close_addr, "--attempts", "1", "-"],
        Some(mllp_testkit::adt("DOWN2").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 2, "{sent:?}");
    assert!(sent.stdout.is_empty(), "{sent:?}");
    // Back up: the same listeners store again, without a restart.
    node.restart();
    let sent = Proc::spawn(
        &["send", &close_addr, "-"],
        Some(mllp_testkit::adt("UP1").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["UP1 AA"]);
    drop((nak, close));
}

#[test]
fn health_turns_down_when_the_broker_hangs_or_the_queue_is_deleted_and_up_again() {
    let Some(node) = node("clihealth") else {
        return;
    };
    let url = format!("{}?queue=cli_health", node.url("%2f"));
    let (proc, _addr, health_addr) = common::listen_with_health(&url, &["-q"]);
    assert_eq!(common::health(&health_addr), "up ready\n");

    // The broker stops answering while the listener is idle.
    let paused = common::pause::Paused::new(node.pid().expect("the node runs"));
    let (down_after, slowest) = common::until_down(&health_addr, Duration::from_secs(10));
    eprintln!("broker hung, no traffic: down after {down_after:?}, slowest answer {slowest:?}");
    let down_after = down_after.expect("the health line turns down");
    assert!(down_after < Duration::from_secs(4), "{down_after:?}");
    assert!(
        slowest < Duration::from_millis(100),
        "an answer took {slowest:?}"
    );
    paused.resume();
    assert!(
        mllp_testkit::eventually(Duration::from_secs(15), || common::health(&health_addr)
            == "up ready\n"),
        "still down with the broker answering again"
    );

    // The queue deleted behind the listener's open connection: every publish would fail.
    let out = node.ctl(&["delete_queue", "cli_health"]);
    assert!(out.status.success(), "{out:?}");
    let (down_after, _) = common::until_down(&health_addr, Duration::from_secs(10));
    eprintln!("queue deleted: down after {down_after:?}");
    assert!(down_after.is_some(), "still up with the queue deleted");
    common::sigterm(&proc);
    assert_eq!(proc.wait().code, 0);
}
