//! A peer that is down makes a few log lines, not one per attempt: the first failure, then at a
//! falling rate, and the success that ends them (see `mllp::Outage`).

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use mllp::{RetryPolicy, Sender};

/// The warnings logged by this test binary.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

#[test]
fn forty_refused_connections_are_a_handful_of_warnings() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    // A loopback port that nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let retry = RetryPolicy::default()
        .max_attempts(Some(40))
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(1))
        .jitter(0.0);
    let mut sender = Sender::builder(format!("127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(2))
        .retry(retry)
        .build()
        .unwrap();
    let message = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|O-1|P|2.5\r";
    assert!(sender.send(message).is_err());
    let lines = LINES.lock().unwrap().clone();
    let about_it: Vec<&String> = lines.iter().filter(|l| l.contains("O-1")).collect();
    // 40 failures (39 retries and the end): logged at 1, 2, 4, 8, 16 and 32.
    assert_eq!(about_it.len(), 6, "{about_it:#?}");
    assert!(about_it[0].contains("(failure 1 in"), "{}", about_it[0]);
    assert!(
        about_it[5].contains("(failure 32 in") && about_it[5].contains("more not logged)"),
        "{}",
        about_it[5]
    );
}
