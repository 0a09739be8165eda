//! Sender and listener over loopback against a raw `std::net` ping-pong with the same frames.
//!
//! `cargo bench --bench loopback` prints, for each scenario, the raw baseline, this crate on
//! both sides, and each side alone against the raw other side, with messages/s, MB/s, latency
//! percentiles and the ratio to the baseline measured in the same run. Pinned scenarios run
//! each side in a process of its own under `taskset -c` (see `mllp-cli/src/bench.rs`). Under
//! `cargo test` (no `--bench` argument) it runs a quick in-process smoke check instead.
//!
//! Environment: `BENCH_ROUNDS` (default 3) runs per pairing, the fastest kept;
//! `BENCH_SCALE` (default 1.0) multiplies the message counts; `BENCH_ONLY` runs only the
//! scenarios whose title contains it; `BENCH_SYSCALLS=0` skips counting the system calls per
//! message (done by default when `strace` is installed, in untimed runs).

use mllp_cli::bench::{self, BenchConfig, Pin};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    // A side of a pinned measurement: play it at once. (Pinned to one CPU, it would not list
    // the two-CPU scenarios, so `BENCH_ONLY="two CPUs"` would find nothing to run.)
    if bench::is_side_process() {
        let _ = bench::run(&BenchConfig::default());
    }
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full {
        env("BENCH_ROUNDS").unwrap_or(3)
    } else {
        1
    };
    let scale: f64 = if full {
        env("BENCH_SCALE").unwrap_or(1.0)
    } else {
        0.0
    };
    let only: Option<String> = std::env::var("BENCH_ONLY").ok();
    let count = |n: usize| ((n as f64 * scale) as usize).max(50);
    let twocpu = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
    let taskset = std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());

    // (title, size, messages, connections, pin)
    let mut scenarios: Vec<(&str, usize, usize, usize, Pin)> = Vec::new();
    if full && taskset {
        scenarios.push((
            "1 KB, one CPU (both sides pinned to CPU 0)",
            1024,
            count(100_000),
            1,
            Pin::One(0),
        ));
        if twocpu {
            scenarios.push((
                "1 KB, two CPUs (listener CPU 0, sender CPU 1)",
                1024,
                count(20_000),
                1,
                Pin::Two(0, 1),
            ));
        }
        scenarios.push(("100 KB, one CPU", 100 * 1024, count(10_000), 1, Pin::One(0)));
        if twocpu {
            scenarios.push((
                "100 KB, two CPUs",
                100 * 1024,
                count(5_000),
                1,
                Pin::Two(0, 1),
            ));
        }
    } else if full {
        println!("taskset not found: pinned scenarios skipped");
    }
    scenarios.push((
        "1 KB, unpinned, one connection",
        1024,
        count(20_000),
        1,
        Pin::None,
    ));
    scenarios.push((
        "1 KB, unpinned, 16 connections",
        1024,
        count(80_000),
        16,
        Pin::None,
    ));

    let mut one_conn = None;
    for (title, size, messages, connections, pin) in scenarios {
        if only.as_deref().is_some_and(|o| !title.contains(o)) {
            continue;
        }
        println!(
            "\n## {title}: {messages} messages after {} warm-up, best of {rounds}",
            if full { 1000 } else { 5 }
        );
        let config = BenchConfig {
            size,
            messages,
            connections,
            pin,
            sides: true,
            rounds,
            warmup: if full { 1000 } else { 5 },
            syscalls: full && std::env::var("BENCH_SYSCALLS").map_or(true, |v| v != "0"),
            ..BenchConfig::default()
        };
        match bench::run(&config) {
            Ok(report) => {
                bench::print(&report, &mut std::io::stdout()).expect("stdout");
                if connections == 1 && pin == Pin::None {
                    one_conn = Some(report.msgs_per_sec());
                } else if let Some(one) = one_conn.filter(|_| connections > 1) {
                    println!(
                        "{connections} connections, mllp ↔ mllp aggregate: {:.2}× one connection",
                        report.msgs_per_sec() / one
                    );
                }
            }
            Err(e) => {
                eprintln!("{title}: {e}");
                std::process::exit(1);
            }
        }
    }
}
