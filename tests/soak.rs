//! Soak: 1,000,000 messages over 16 connections, resident memory sampled throughout; it must
//! stay flat. Runs only with `MLLP_SOAK=1` (best in release mode):
//!
//! ```text
//! MLLP_SOAK=1 cargo test --release --test soak -- --nocapture
//! ```

use mllp_testkit as common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::adt;
use mllp::hl7::AckCode;
use mllp::{Listener, Message, Response, RetryPolicy, Sender};

const MESSAGES: u64 = 1_000_000;
const CONNECTIONS: u64 = 16;
/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How far the last sample may be above the sample taken at 10 % of the run.
const FLAT: u64 = 16 << 20;

#[test]
fn a_million_messages_in_flat_memory() {
    if std::env::var_os("MLLP_SOAK").is_none_or(|v| v != "1") {
        common::not_asked("the soak test runs only with MLLP_SOAK=1");
        return;
    }
    let Some(start_rss) = common::rss_bytes() else {
        common::skip("resident memory cannot be read on this system (the soak test)");
        return;
    };
    let handled = Arc::new(AtomicU64::new(0));
    let handled2 = Arc::clone(&handled);
    let running = Listener::builder("127.0.0.1:0")
        .max_connections(CONNECTIONS as usize + 4)
        .bind()
        .unwrap()
        .spawn(move |_: &Message<'_>| {
            handled2.fetch_add(1, Ordering::Relaxed);
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr().to_string();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    // The sampler: (messages acknowledged, resident bytes) every SAMPLE_EVERY.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (acked2, done2) = (Arc::clone(&acked), Arc::clone(&done));
    let sampler = thread::spawn(move || {
        let mut samples = vec![(0u64, start_rss)];
        while !done2.load(Ordering::Acquire) {
            if stop_rx.recv_timeout(SAMPLE_EVERY).is_ok() {
                break;
            }
            if let Some(rss) = common::rss_bytes() {
                samples.push((acked2.load(Ordering::Relaxed), rss));
            }
        }
        samples
    });

    let started = Instant::now();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (addr, acked) = (addr.clone(), Arc::clone(&acked));
            thread::spawn(move || {
                let mut sender = Sender::builder(addr)
                    .ack_timeout(Duration::from_secs(10))
                    .retry(RetryPolicy::none())
                    .build()
                    .unwrap();
                for i in 0..MESSAGES / CONNECTIONS {
                    let id = format!("C{c}M{i}");
                    let ack = sender
                        .send(&adt(&id))
                        .unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(
                        (ack.code, ack.control_id.as_str()),
                        (AckCode::ApplicationAccept, id.as_str())
                    );
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                sender.stats()
            })
        })
        .collect();
    let mut connects = 0;
    for s in senders {
        connects += s.join().unwrap().connects;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Release);
    let _ = stop_tx.send(());
    let samples = sampler.join().unwrap();
    running.shutdown();
    running.join().unwrap();

    let total = acked.load(Ordering::Relaxed);
    assert_eq!(total, MESSAGES);
    assert_eq!(handled.load(Ordering::Relaxed), MESSAGES);
    assert_eq!(connects, CONNECTIONS, "a connection was lost");

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let warm = samples
        .iter()
        .find(|(n, _)| *n >= MESSAGES / 10)
        .copied()
        .expect("a sample at 10 %");
    let after_warm: Vec<(u64, u64)> = samples
        .iter()
        .copied()
        .filter(|(n, _)| *n >= warm.0)
        .collect();
    let min = after_warm.iter().map(|s| s.1).min().unwrap();
    let max = after_warm.iter().map(|s| s.1).max().unwrap();
    let last = samples.last().unwrap().1;
    // Least-squares slope of resident memory over messages, after the warm-up.
    let n = after_warm.len() as f64;
    let (sx, sy) = after_warm
        .iter()
        .fold((0.0, 0.0), |(x, y), s| (x + s.0 as f64, y + s.1 as f64));
    let (mx, my) = (sx / n, sy / n);
    let (mut cov, mut var) = (0.0, 0.0);
    for &(x, y) in &after_warm {
        cov += (x as f64 - mx) * (y as f64 - my);
        var += (x as f64 - mx) * (x as f64 - mx);
    }
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    eprintln!(
        "soak: {MESSAGES} messages over {CONNECTIONS} connections in {elapsed:.1?} ({:.0} msg/s); \
         resident memory: start {:.1} MiB, at 10 % {:.1} MiB, after that min {:.1} / max {:.1} \
         MiB, last {:.1} MiB; slope {:.3} bytes per message ({:.2} MiB per million); {} samples",
        MESSAGES as f64 / elapsed.as_secs_f64(),
        mib(start_rss),
        mib(warm.1),
        mib(min),
        mib(max),
        mib(last),
        slope,
        slope * 1e6 / (1 << 20) as f64,
        samples.len()
    );
    assert!(
        last <= warm.1 + FLAT && max <= warm.1 + 2 * FLAT,
        "resident memory grew: {:.1} MiB at 10 %, max {:.1} MiB, last {:.1} MiB",
        mib(warm.1),
        mib(max),
        mib(last)
    );
}
