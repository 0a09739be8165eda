//! The figures of BENCHMARKS.md, "Scaling out": messages/s through HAProxy with one and with
//! three `mllp listen` processes, 16 senders, each listener's share, and how long the senders
//! took to recover after a listener was SIGKILLed. A measurement, not a test (it asserts only
//! that nothing acknowledged went missing), so it is ignored by default:
//!
//! ```text
//! cargo test --release -p mllp-cli --test scale_out_figures -- --ignored --nocapture
//! ```
//!
//! Each configuration runs three times, alternating, on one 3-node RabbitMQ cluster (a fresh quorum
//! queue per run) and, for comparison, on file stores; the better run of each is reported.

mod common;

use std::time::{Duration, Instant};

use common::pool::{self, ms, Member};
use mllp_testkit::rabbitmq::RabbitCluster;

const SENDERS: usize = 16;
/// Messages per sender and run.
const EACH: usize = 500;
const LIMIT: Duration = Duration::from_secs(120);

/// One run: `stores` listeners (one per store value) behind a fresh HAProxy; returns
/// messages/s and each listener's share of the messages.
fn run(name: &str, stores: &[String]) -> (f64, Vec<usize>) {
    let members: Vec<Member> = stores.iter().map(|s| Member::start(s, &[])).collect();
    let proxy = pool::behind_haproxy(name, &members);
    let started = Instant::now();
    let mut members = members;
    let sent = pool::load(&proxy.addr(), SENDERS, EACH, LIMIT, |_| {})
        .unwrap_or_else(|e| pool::fail(&mut members, &e));
    let rate = (SENDERS * EACH) as f64 / started.elapsed().as_secs_f64();
    assert!(sent.iter().all(|s| s.acked.len() == EACH));
    // The per-message lines are printed after each ACK: wait for the last of them.
    let total = SENDERS * EACH;
    common::eventually(Duration::from_secs(10), || {
        members.iter().map(Member::messages).sum::<usize>() >= total
    });
    let shares = members.iter().map(Member::messages).collect();
    (rate, shares)
}

fn percent(shares: &[usize]) -> String {
    let total: usize = shares.iter().sum();
    let parts: Vec<String> = shares
        .iter()
        .map(|n| format!("{:.0} %", 100.0 * *n as f64 / total.max(1) as f64))
        .collect();
    parts.join(" / ")
}

#[test]
#[ignore = "a measurement: cargo test --release -p mllp-cli --test scale_out_figures -- --ignored --nocapture"]
fn scale_out_figures() {
    if !pool::haproxy_here() || !pool::rabbitmq_here() {
        return;
    }
    let cluster = RabbitCluster::start("figures", 3);
    let dirs: Vec<_> = (0..3)
        .map(|i| common::scratch_dir(&format!("figures-{i}")))
        .collect();
    let files: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut best: [(f64, Vec<usize>); 4] = Default::default();
    for round in 0..3 {
        for (slot, listeners, amqp) in [(0, 1, true), (1, 3, true), (2, 1, false), (3, 3, false)] {
            let stores: Vec<String> = (0..listeners)
                .map(|i| {
                    if amqp {
                        let queue = format!("figures-{round}-{slot}");
                        format!("{}?queue={queue}&queue_type=quorum", cluster.url("%2f"))
                    } else {
                        files[i].clone()
                    }
                })
                .collect();
            let (rate, shares) = run(&format!("figures-{slot}"), &stores);
            eprintln!(
                "round {round}: {listeners} listener(s), {}: {rate:.0} msg/s, shares {}",
                if amqp { "RabbitMQ" } else { "files" },
                percent(&shares)
            );
            if rate > best[slot].0 {
                best[slot] = (rate, shares);
            }
        }
    }

    // Recovery: 8 senders through three RabbitMQ listeners, one SIGKILLed at a quarter.
    let url = format!(
        "{}?queue=figures-kill&queue_type=quorum",
        cluster.url("%2f")
    );
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(&url, &[])).collect();
    let proxy = pool::behind_haproxy("figures-kill", &members);
    let mut killed_at = None;
    let sent = pool::load(&proxy.addr(), 8, 1_000, LIMIT, |progress| {
        pool::when_acked(progress, 2_000, LIMIT);
        killed_at = Some(Instant::now());
        members[1].kill();
    })
    .unwrap_or_else(|e| pool::fail(&mut members, &e));
    let at = killed_at.unwrap();
    let recovery = pool::recovery(&sent, at, at);
    let affected = recovery
        .iter()
        .filter(|d| **d > Duration::from_millis(50))
        .count();

    eprintln!("\n| store | listeners | msg/s | ratio to 1 listener | share per listener |");
    eprintln!("|---|---:|---:|---:|---|");
    for (store, one, three) in [("RabbitMQ quorum queue", 0, 1), ("file", 2, 3)] {
        for (slot, n) in [(one, 1), (three, 3)] {
            eprintln!(
                "| {store} | {n} | {:.0} | {:.2} | {} |",
                best[slot].0,
                best[slot].0 / best[one].0,
                percent(&best[slot].1)
            );
        }
    }
    eprintln!(
        "\naround the SIGKILL of one of three listeners: the longest wait for an AA {}, the \
         median sender's {}; {affected} of 8 senders waited more than 50 ms",
        ms(recovery[0]),
        ms(recovery[recovery.len() / 2])
    );
    drop(members);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
