//! `mllp forward` and `amqps://` against private RabbitMQ nodes: a queue filled by
//! `mllp listen --store amqp://...` and forwarded to a listener in order, a downstream AE,
//! SIGTERM, and TLS to the broker with `--tls-ca` / `--from-tls-ca`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{listen, Proc};
use common::{eventually, rabbit_consumers, rabbit_node, rabbit_queue};
use mllp::{Listener, Message, Response, RunningListener};
use mllp_testkit::rabbitmq::{free_port, RabbitNode};

/// Stores `ids` into the queue of `url` through `mllp listen --store URL [extra]`.
fn fill(url: &str, ids: &[String], extra: &[&str]) {
    let count = ids.len().to_string();
    let mut args = vec!["--count", count.as_str(), "-q"];
    args.extend_from_slice(extra);
    let (listener, addr) = listen(Path::new(url), &args);
    let messages: String = ids.iter().map(|id| mllp_testkit::adt(id)).collect();
    let sent = Proc::spawn(&["send", &addr, "-q", "-"], Some(messages.into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    let ended = listener.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
}

/// A downstream listener answering AE "patient unknown" for MSH-10 `bad`, AA otherwise, and
/// recording every control ID in order.
fn downstream(bad: &'static str) -> (RunningListener, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let id = m.control_id().unwrap_or("-").to_owned();
            seen2.lock().unwrap().push(id.clone());
            if id == bad {
                Response::error("patient unknown")
            } else {
                Response::accept()
            }
        })
        .unwrap();
    (running, seen)
}

fn wait_for_messages(node: &RabbitNode, queue: &str, n: u64) {
    let mut last = None;
    let settled = eventually(Duration::from_secs(20), || {
        last = rabbit_queue(node, queue);
        last.as_ref().is_some_and(|(m, _)| *m == n)
    });
    assert!(settled, "{queue}: {last:?}, expected {n} messages");
}

#[test]
fn forward_delivers_in_order_reports_each_message_and_stops_on_sigterm() {
    let Some(node) = rabbit_node("cliforward") else {
        return;
    };
    let url = format!("{}?queue=fwd", node.url("%2f"));
    let ids: Vec<String> = (1..=30).map(|i| format!("F{i}")).collect();
    fill(&url, &ids, &[]);
    wait_for_messages(&node, "fwd", 30);

    let (running, seen) = downstream("F7");
    let to = running.local_addr().to_string();
    let ended = Proc::spawn(
        &[
            "forward",
            "--from",
            &url,
            "--to",
            &to,
            "--count",
            "30",
            "--attempts",
            "1",
        ],
        None,
    )
    .wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(*seen.lock().unwrap(), ids);
    assert_eq!(ended.stdout.len(), 30, "{ended:?}");
    for (line, id) in ended.stdout.iter().zip(&ids) {
        if id == "F7" {
            assert_eq!(line, "F7 AE patient unknown (rejected)");
        } else {
            assert_eq!(line, &format!("{id} AA"));
        }
    }
    // The ACK's text is logged as the delivery is rejected; the password never is.
    assert!(ended.stderr.contains("patient unknown"), "{}", ended.stderr);
    assert!(!ended.stderr.contains("guest:guest"), "{}", ended.stderr);
    wait_for_messages(&node, "fwd", 0);

    // On an empty queue, SIGTERM stops it at once, exit 0 (no --count to reach).
    let waiting = Proc::spawn(&["forward", "--from", &url, "--to", &to], None);
    assert!(eventually(Duration::from_secs(20), || rabbit_consumers(
        &node, "fwd"
    ) == 1));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &waiting.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = waiting.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert!(ended.stdout.is_empty(), "{ended:?}");
    running.shutdown();
    running.join().unwrap();
}

#[test]
fn forward_needs_a_queue_and_both_ends() {
    for (args, says) in [
        (&["forward", "--to", "127.0.0.1:1"][..], "--from"),
        (&["forward", "--from", "amqp://h?queue=q"], "--to"),
        (
            &[
                "forward",
                "--from",
                "amqp://h?exchange=e",
                "--to",
                "127.0.0.1:1",
            ],
            "queue",
        ),
    ] {
        let ended = common::process::mllp(args);
        assert_eq!(ended.code, 2, "{ended:?}");
        assert!(ended.stderr.contains(says), "{args:?}: {}", ended.stderr);
    }
}

#[test]
fn amqps_with_the_test_ca_for_listen_and_forward() {
    if !mllp_testkit::rabbitmq::available() {
        mllp_testkit::skip("RabbitMQ is not installed");
        return;
    }
    let ssl_port = free_port();
    let cert = mllp_testkit::cert_path;
    let config = format!(
        "listeners.ssl.default = 127.0.0.1:{ssl_port}\n\
         ssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\n\
         ssl_options.keyfile = {}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n",
        cert("ca.pem"),
        cert("server.pem"),
        cert("server.key")
    );
    let node = RabbitNode::start_with_config("clitls", &config);
    assert!(eventually(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", ssl_port)).is_ok()
    }));
    let url = format!("amqps://guest:guest@localhost:{ssl_port}/%2f?queue=tls_in");
    let ca = cert("ca.pem");

    // Without the test CA the broker's certificate is not trusted: the startup check fails.
    let ended = common::process::mllp(&["listen", "127.0.0.1:0", "--store", &url]);
    assert_eq!(ended.code, 2, "{ended:?}");

    let ids: Vec<String> = (1..=3).map(|i| format!("T{i}")).collect();
    fill(&url, &ids, &["--tls-ca", &ca]);
    wait_for_messages(&node, "tls_in", 3);

    let (running, seen) = downstream("none");
    let to = running.local_addr().to_string();
    let ended = Proc::spawn(
        &[
            "forward",
            "--from",
            &url,
            "--from-tls-ca",
            &ca,
            "--to",
            &to,
            "--count",
            "3",
        ],
        None,
    )
    .wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(*seen.lock().unwrap(), ids);
    wait_for_messages(&node, "tls_in", 0);
    running.shutdown();
    running.join().unwrap();
}
