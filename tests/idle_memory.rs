//! 1,000 open idle connections cost the listener at most 64 MiB of resident memory.

use mllp_testkit as common;

use std::net::TcpStream;
use std::time::Duration;

use mllp::{Listener, Response};

const CONNECTIONS: usize = 1_000;
const BUDGET: u64 = 64 << 20;

/// The soft limit on open files, from `/proc/self/limits` (std cannot read rlimits).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    Some(if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().ok()?
    })
}

/// How many of this process's connection threads (`mllp-conn-N`) are asleep (state `S` in
/// `/proc/self/task/TID/stat`): an idle connection's thread sleeps only in its read.
fn connection_threads_asleep() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // "TID (COMM) STATE ...": the name may hold spaces, the state follows the last ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            stat[open + 1..close].starts_with("mllp-conn-")
                && stat[close + 1..].trim_start().starts_with('S')
        })
        .count()
}

#[test]
fn a_thousand_idle_connections_fit_in_64_mib() {
    let Some(before) = common::rss_bytes() else {
        common::skip("resident memory is not readable here (not Linux?)");
        return;
    };
    // Both ends of every connection live in this process, plus a margin for the test harness.
    let needed = 2 * CONNECTIONS as u64 + 100;
    match open_files_limit() {
        Some(limit) if limit >= needed => {}
        limit => {
            common::skip(format!(
                "the open-files limit ({limit:?}) is below the {needed} this test needs \
                 (`ulimit -n {needed}`)"
            ));
            return;
        }
    }
    let running = Listener::builder("127.0.0.1:0")
        .max_connections(CONNECTIONS + 100)
        .bind()
        .unwrap()
        .spawn(|_: &mllp::Message<'_>| Response::accept())
        .unwrap();
    let addr = running.local_addr();
    // In batches smaller than the listen backlog: overflowing it makes the kernel drop SYNs,
    // which clients retry only a second later.
    let mut clients: Vec<TcpStream> = Vec::with_capacity(CONNECTIONS);
    while clients.len() < CONNECTIONS {
        let batch = (CONNECTIONS - clients.len()).min(64);
        for _ in 0..batch {
            clients.push(TcpStream::connect(addr).expect("connect"));
        }
        assert!(
            common::eventually(Duration::from_secs(20), || {
                running.stats().connections_open as usize == clients.len()
            }),
            "only {} of {} connections are served",
            running.stats().connections_open,
            clients.len()
        );
    }
    // Every connection's thread has reached its first (blocking) read: asleep in the kernel.
    assert!(
        common::eventually(Duration::from_secs(20), || {
            connection_threads_asleep() >= CONNECTIONS
        }),
        "only {} of {CONNECTIONS} connection threads wait for data",
        connection_threads_asleep()
    );
    let after = common::rss_bytes().unwrap();
    let growth = after.saturating_sub(before);
    println!(
        "{CONNECTIONS} idle connections: resident memory grew by {:.1} MiB ({:.1} KiB each)",
        growth as f64 / (1 << 20) as f64,
        growth as f64 / 1024.0 / CONNECTIONS as f64
    );
    drop(clients);
    running.shutdown();
    running.join().unwrap();
    assert!(
        growth <= BUDGET,
        "{CONNECTIONS} idle connections take {growth} bytes of resident memory, more than {BUDGET}"
    );
}
