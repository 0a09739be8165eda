//! `mllp forward` and `amqps://` against private RabbitMQ nodes: a queue filled by
//! `mllp listen --store amqp://...` and forwarded to a listener in order, downstream AEs
//! dead-lettered or held (none lost), a queue that does not exist, SIGTERM, and TLS to the
//! broker with `--tls-ca` / `--from-tls-ca`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{listen, Proc};
use common::{eventually, rabbit_consumers, rabbit_node, rabbit_queue};
use mllp::{Listener, Message, Response, RunningListener};
use mllp_testkit::free_port;
use mllp_testkit::rabbitmq::RabbitNode;

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
    downstream_with(move |id, _| {
        if id == bad {
            Response::error("patient unknown")
        } else {
            Response::accept()
        }
    })
}

/// A downstream listener whose `answer` decides each response from the control ID and how
/// many times it was seen before; records every control ID in order.
fn downstream_with(
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

/// Runs `mllp forward --from URL --to TO --attempts 1 [extra]` to its end.
fn forward(url: &str, to: &str, extra: &[&str]) -> common::process::Ended {
    let mut args = vec!["forward", "--from", url, "--to", to, "--attempts", "1"];
    args.extend_from_slice(extra);
    Proc::spawn(&args, None).wait()
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
fn forward_delivers_in_order_keeps_every_rejected_message_and_stops_on_sigterm() {
    let Some(node) = rabbit_node("cliforward") else {
        return;
    };
    let url = format!("{}?queue=fwd", node.url("%2f"));
    let ids: Vec<String> = (1..=20).map(|i| format!("F{i}")).collect();
    fill(&url, &ids, &[]);
    wait_for_messages(&node, "fwd", 20);

    // --on-reject dead-letter: the 3 messages the downstream answers AE go to fwd.dead.
    let bad = ["F5", "F10", "F15"];
    let (running, seen) = downstream_with(move |id, _| {
        if bad.contains(&id) {
            Response::error("patient unknown")
        } else {
            Response::accept()
        }
    });
    let to = running.local_addr().to_string();
    let ended = forward(&url, &to, &["--count", "20", "--on-reject", "dead-letter"]);
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(*seen.lock().unwrap(), ids);
    assert_eq!(ended.stdout.len(), 22, "{ended:?}");
    let first = &ended.stdout[0];
    assert!(
        first.starts_with("forwarding from amqp://127.0.0.1:")
            && first.ends_with(&format!(
                "?queue=fwd to {to} (rejected messages dead-lettered to fwd.dead)"
            ))
            && !first.contains("guest"),
        "{ended:?}"
    );
    for (line, id) in ended.stdout[1..21].iter().zip(&ids) {
        if bad.contains(&id.as_str()) {
            assert_eq!(line, &format!("{id} AE patient unknown (dead-lettered)"));
        } else {
            assert_eq!(line, &format!("{id} AA"));
        }
    }
    assert_eq!(
        ended.stdout[21],
        "stopped: 20 deliveries handled: 17 delivered, 3 dead-lettered, 0 held retries"
    );
    // The ACK's text is logged as the message is dead-lettered; the password never is.
    assert!(ended.stderr.contains("patient unknown"), "{}", ended.stderr);
    assert!(!ended.stderr.contains("guest:guest"), "{}", ended.stderr);
    wait_for_messages(&node, "fwd", 0);
    wait_for_messages(&node, "fwd.dead", 3);
    // An operator sends them on later: forwarding the dead-letter queue.
    let (again, resent) = downstream("none");
    let dead_url = format!("{}?queue=fwd.dead", node.url("%2f"));
    let ended = forward(
        &dead_url,
        &again.local_addr().to_string(),
        &["--count", "3", "-q"],
    );
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(*resent.lock().unwrap(), bad);
    again.shutdown();
    again.join().unwrap();

    // The default, hold: F2 is answered AE twice, then AA; nothing skipped, nothing lost.
    let url = format!("{}?queue=fwdhold", node.url("%2f"));
    let ids: Vec<String> = (1..=4).map(|i| format!("F{i}")).collect();
    fill(&url, &ids, &[]);
    wait_for_messages(&node, "fwdhold", 4);
    let (held, seen) = downstream_with(|id, times| {
        if id == "F2" && times < 2 {
            Response::error("database busy")
        } else {
            Response::accept()
        }
    });
    let ended = forward(&url, &held.local_addr().to_string(), &["--count", "4"]);
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(*seen.lock().unwrap(), ["F1", "F2", "F2", "F2", "F3", "F4"]);
    assert!(
        ended.stdout[0]
            .ends_with("(rejected messages held; unsendable ones dead-lettered to fwdhold.dead)"),
        "{ended:?}"
    );
    assert_eq!(&ended.stdout[1..5], ["F1 AA", "F2 AA", "F3 AA", "F4 AA"]);
    assert_eq!(
        ended.stdout[5],
        "stopped: 4 deliveries handled: 4 delivered, 0 dead-lettered, 2 held retries"
    );
    assert_eq!(
        ended
            .stderr
            .matches("answered AE (database busy): held at the head of fwdhold")
            .count(),
        2,
        "{}",
        ended.stderr
    );
    wait_for_messages(&node, "fwdhold", 0);
    held.shutdown();
    held.join().unwrap();

    // A queue that does not exist: exit 2 at once, and it is not created.
    let nosuch = format!("{}?queue=nosuch", node.url("%2f"));
    let ended = forward(&nosuch, &to, &[]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert!(ended.stdout.is_empty(), "{ended:?}");
    assert!(
        ended.stderr.contains("the queue nosuch does not exist"),
        "{}",
        ended.stderr
    );
    assert_eq!(rabbit_queue(&node, "nosuch"), None);

    // Running with --metrics-addr; on an empty queue, SIGTERM stops it at once, exit 0 (no
    // --count to reach).
    let url = format!("{}?queue=fwd", node.url("%2f"));
    let waiting = Proc::spawn(
        &[
            "forward",
            "--from",
            &url,
            "--to",
            &to,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        None,
    );
    let first = waiting.line();
    let metrics = first
        .rsplit_once(", metrics on ")
        .map(|(_, a)| a.to_owned())
        .unwrap_or_else(|| panic!("no metrics address in {first:?}"));
    assert!(eventually(Duration::from_secs(20), || rabbit_consumers(
        &node, "fwd"
    ) == 1));
    // Two messages while it runs: counted on its /metrics page.
    let more = ["F21".to_owned(), "F22".to_owned()];
    fill(&url, &more, &[]);
    let sample = |name: &str| -> Option<f64> {
        let (_, page) = mllp_testkit::prometheus::http_get(&metrics, "/metrics").ok()?;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(
        eventually(Duration::from_secs(20), || {
            sample("mllp_deliveries_total{outcome=\"accepted\"}") == Some(2.0)
        }),
        "{:?}",
        mllp_testkit::prometheus::http_get(&metrics, "/metrics")
    );
    assert_eq!(sample("mllp_redeliveries_total"), Some(0.0));
    assert_eq!(
        mllp_testkit::prometheus::http_get(&metrics, "/healthz").map(|(code, _)| code),
        Ok(200)
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &waiting.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = waiting.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(
        ended.stdout,
        [
            "F21 AA",
            "F22 AA",
            "stopped: 2 deliveries handled: 2 delivered, 0 dead-lettered, 0 held retries"
        ],
        "{ended:?}"
    );
    assert!(first.starts_with("forwarding from "), "{first}");
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
