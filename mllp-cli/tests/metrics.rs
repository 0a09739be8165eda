//! `--metrics-addr`: the `/metrics` page and `/healthz` of `mllp listen` and `mllp relay`,
//! read directly and through a private Prometheus server (Debian's `prometheus`) that
//! evaluates `deploy/prometheus-rules.yml`.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::Proc;
use mllp_testkit::prometheus::{self, http_get, Prometheus};
use mllp_testkit::{adt, eventually, exchange, scratch_dir, skip};

/// The listener's and the metrics endpoint's addresses from a first line
/// `listening on ADDR (...), metrics on ADDR`.
fn addresses(first: &str) -> (String, String) {
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let metrics = first
        .rsplit_once(", metrics on ")
        .map(|(_, a)| a.to_owned())
        .unwrap_or_else(|| panic!("no metrics address in {first:?}"));
    (addr, metrics)
}

/// `mllp ARGS... --metrics-addr 127.0.0.1:0 -q`, and its two addresses.
fn start(args: &[&str]) -> (Proc, String, String) {
    let mut args = args.to_vec();
    args.extend_from_slice(&["--metrics-addr", "127.0.0.1:0", "-q"]);
    let proc = Proc::spawn(&args, None);
    let (addr, metrics) = addresses(&proc.line());
    (proc, addr, metrics)
}

/// The value of the sample `name` (with its labels, as written) on the page of `metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    let (code, page) = http_get(metrics, "/metrics").expect("the metrics endpoint answers");
    assert_eq!(code, 200, "{page}");
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn send(addr: &str, n: usize, prefix: &str) {
    for i in 0..n {
        let ack = exchange(
            addr,
            adt(&format!("{prefix}{i}")).as_bytes(),
            Duration::from_secs(5),
        )
        .expect("acknowledged");
        assert!(String::from_utf8_lossy(&ack).contains("|AA|"), "{ack:?}");
    }
}

/// Asks `cond` every 200 ms (the pace of a client of Prometheus's API, not a synchronisation)
/// until it holds, for at most `limit`.
fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A port of 127.0.0.1 that nothing listens on (bound, then released).
fn dead_port() -> String {
    format!("127.0.0.1:{}", mllp_testkit::free_port())
}

#[test]
fn listen_counts_what_it_acknowledged_and_a_stalled_scrape_blocks_nothing() {
    let dir = scratch_dir("metrics-listen");
    let store = dir.join("store");
    let (_proc, addr, metrics) =
        start(&["listen", "127.0.0.1:0", "--store", store.to_str().unwrap()]);
    // A scraper that connects and never sends its request holds the metrics thread...
    let _stalled = TcpStream::connect(&metrics).unwrap();
    // ...and messages are acknowledged meanwhile, at once.
    let started = Instant::now();
    send(&addr, 5, "M");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(
        sample(&metrics, "mllp_acks_sent_total{code=\"AA\"}"),
        Some(5.0)
    );
    assert_eq!(sample(&metrics, "mllp_messages_received_total"), Some(5.0));
    assert_eq!(sample(&metrics, "mllp_messages_stored_total"), Some(5.0));
    assert_eq!(
        sample(&metrics, "mllp_store_duration_seconds_count"),
        Some(5.0)
    );
    assert_eq!(
        sample(&metrics, "mllp_store_duration_seconds_bucket{le=\"+Inf\"}"),
        Some(5.0)
    );
    assert_eq!(
        sample(&metrics, "mllp_connections_total{event=\"accepted\"}"),
        Some(5.0)
    );
    assert_eq!(
        sample(&metrics, "mllp_store_failures_total{kind=\"retryable\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&metrics, "mllp_store_up"), Some(1.0));
    assert_eq!(
        sample(&metrics, "mllp_build_info{version=\"0.1.0\"}"),
        Some(1.0)
    );
    assert!(sample(&metrics, "mllp_received_bytes_total").unwrap() > 5.0 * 50.0);
    assert!(sample(&metrics, "process_start_time_seconds").unwrap() > 1.6e9);
    let (code, body) = http_get(&metrics, "/healthz").unwrap();
    assert_eq!((code, body.as_str()), (200, "up\n"));
    assert_eq!(http_get(&metrics, "/nothing").unwrap().0, 404);
    // Every metric has its HELP and TYPE, once.
    let (_, page) = http_get(&metrics, "/metrics").unwrap();
    for name in [
        "mllp_acks_sent_total",
        "mllp_store_duration_seconds",
        "mllp_store_up",
    ] {
        assert_eq!(
            page.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{name}"
        );
        assert_eq!(
            page.matches(&format!("# HELP {name} ")).count(),
            1,
            "{name}"
        );
    }
    // No patient data, not even a control ID, anywhere on the page.
    assert!(!page.contains("M0") && !page.contains("PID"), "{page}");
}

#[test]
fn healthz_is_503_while_the_store_cannot_take_messages() {
    let dir = scratch_dir("metrics-healthz");
    let store = dir.join("store");
    let (_proc, _addr, metrics) =
        start(&["listen", "127.0.0.1:0", "--store", store.to_str().unwrap()]);
    assert_eq!(http_get(&metrics, "/healthz").unwrap().0, 200);
    // The store directory becomes a file: every check fails.
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            http_get(&metrics, "/healthz").is_ok_and(|(code, _)| code == 503)
        }),
        "/healthz stayed 200"
    );
    assert_eq!(sample(&metrics, "mllp_store_up"), Some(0.0));
}

#[test]
fn relay_shows_its_spool_while_the_downstream_is_down() {
    let dir = scratch_dir("metrics-relay");
    let spool = dir.join("spool");
    let to = dead_port();
    let (_proc, addr, metrics) = start(&[
        "relay",
        "127.0.0.1:0",
        "--to",
        &to,
        "--spool",
        spool.to_str().unwrap(),
        "--max-backoff",
        "0.05",
    ]);
    send(&addr, 3, "R");
    assert_eq!(sample(&metrics, "mllp_spool_pending_messages"), Some(3.0));
    assert!(sample(&metrics, "mllp_spool_pending_bytes").unwrap() > 0.0);
    assert_eq!(sample(&metrics, "mllp_spool_dead_letters"), Some(0.0));
    assert!(
        eventually(Duration::from_secs(10), || {
            sample(&metrics, "mllp_deliveries_total{outcome=\"failed\"}").unwrap_or(0.0) >= 2.0
                && sample(&metrics, "mllp_spool_oldest_pending_age_seconds").unwrap_or(0.0) > 0.0
        }),
        "no failed delivery or no age"
    );
    assert_eq!(
        sample(&metrics, "mllp_deliveries_total{outcome=\"accepted\"}"),
        Some(0.0)
    );
    assert!(sample(&metrics, "mllp_delivery_duration_seconds_count").unwrap() >= 2.0);
    assert_eq!(
        sample(&metrics, "mllp_acks_sent_total{code=\"AA\"}"),
        Some(3.0)
    );
}

/// The rules file of `deploy/`, with the spool-age threshold and its `for:` made short enough
/// for a test (as docs/monitoring.md says to do in a staging copy).
fn test_rules(dir: &Path) -> std::path::PathBuf {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus-rules.yml"
    ))
    .unwrap();
    let (before, rest) = rules.split_once("- alert: MllpSpoolBacklog").unwrap();
    let (rule, after) = rest.split_once("- alert:").unwrap();
    assert!(rule.contains("> 600") && rule.contains("for: 5m"), "{rule}");
    let rule = rule.replace("> 600", "> 1").replace("for: 5m", "for: 1s");
    let path = dir.join("rules.yml");
    std::fs::write(
        &path,
        format!("{before}- alert: MllpSpoolBacklog{rule}- alert:{after}"),
    )
    .unwrap();
    path
}

#[test]
fn prometheus_scrapes_listen_and_relay_and_the_spool_alert_fires() {
    if !prometheus::available() {
        skip("Prometheus is not installed (Debian: apt-get install prometheus)");
        return;
    }
    let dir = scratch_dir("metrics-prometheus");
    let store = dir.join("store");
    let spool = dir.join("spool");
    let (_listen, listen_addr, listen_metrics) =
        start(&["listen", "127.0.0.1:0", "--store", store.to_str().unwrap()]);
    let to = dead_port();
    let (_relay, relay_addr, relay_metrics) = start(&[
        "relay",
        "127.0.0.1:0",
        "--to",
        &to,
        "--spool",
        spool.to_str().unwrap(),
        "--max-backoff",
        "0.2",
    ]);
    let rules = test_rules(&dir);
    let prom = Prometheus::start(
        "metrics",
        &[listen_metrics.clone(), relay_metrics.clone()],
        &[&rules],
    );
    send(&listen_addr, 7, "L");
    send(&relay_addr, 4, "S");
    let started = Instant::now();
    let checks = [
        (
            format!("mllp_acks_sent_total{{code=\"AA\",instance=\"{listen_metrics}\"}}"),
            7.0,
        ),
        (
            format!("mllp_acks_sent_total{{code=\"AA\",instance=\"{relay_metrics}\"}}"),
            4.0,
        ),
        ("mllp_spool_pending_messages".to_owned(), 4.0),
    ];
    for (query, want) in &checks {
        assert!(
            poll(Duration::from_secs(20), || prom.value(query) == Some(*want)),
            "{query}: not {want} in Prometheus ({:?}); targets {:?}\n{}",
            prom.value(query),
            prom.targets(),
            prom.log()
        );
    }
    assert!(prom.value("mllp_spool_pending_bytes").unwrap() > 0.0);
    let firing = poll(Duration::from_secs(30), || {
        prom.alerts()
            .iter()
            .any(|(name, state)| name == "MllpSpoolBacklog" && state == "firing")
    });
    assert!(firing, "no MllpSpoolBacklog firing: {:?}", prom.alerts());
    eprintln!(
        "Prometheus saw the counts and the spool-age alert firing {:?} after the messages",
        started.elapsed()
    );
    // Nothing else fired: the store is up, no dead letters, no damage.
    let alerts = prom.alerts();
    assert!(
        alerts
            .iter()
            .all(|(name, state)| name == "MllpSpoolBacklog" || state != "firing"),
        "{alerts:?}"
    );
}
