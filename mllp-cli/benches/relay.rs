//! `mllp relay`'s AA rate against the limit of per-message durability on the same disk.
//!
//! `cargo bench -p mllp-cli --bench relay` starts the `mllp` binary as a relay (spool in
//! `target/bench-relay`, forwarding to an in-process listener that accepts everything) and
//! measures, in the same run and on the same disk:
//!
//! * the baseline: a loop that appends one record of the relay's size (20-byte header and the
//!   message) to a file and calls `fdatasync` after each, the most messages per second one
//!   connection can get acknowledged with per-message durability;
//! * for reference, the same loop overwriting a file whose blocks are already written (what the
//!   relay's segments are, written ahead with zeros): a flush that commits no new file size;
//! * the relay's AA rate with one connection (a message sent once the previous one got AA);
//! * the relay's AA rate with 16 connections at once (group commit shares the flushes).
//!
//! Environment: `BENCH_MESSAGES` (default 3,000) per run; `BENCH_ROUNDS` (default 3), the
//! best kept. Under `cargo test` (no `--bench`) it runs a quick smoke check instead.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mllp::{Listener, Message, Response, RetryPolicy, Sender};

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A 1 KB ADT^A01 with control ID `id`.
fn message(id: &str) -> String {
    let head = format!(
        "MSH|^~\\&|BENCH|HOSP|EHR|HOSP|20260101120000||ADT^A01|{id}|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^JANE\r"
    );
    let pad = 1024usize.saturating_sub(head.len() + 5);
    format!("{head}NTE|{}\r", "x".repeat(pad))
}

/// Messages per second of append + `fdatasync` per message, `n` records of `len` bytes.
fn baseline(dir: &Path, n: usize, len: usize) -> f64 {
    let path = dir.join("baseline.dat");
    let _ = std::fs::remove_file(&path);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("the baseline file");
    let record = vec![b'x'; len];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&record).expect("append");
        f.sync_data().expect("fdatasync");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

/// Messages per second of overwrite + `fdatasync` per message in a file whose blocks are
/// already written (the relay's segments are written ahead with zeros): `n` records of `len`
/// bytes. The floor of a flush that commits no new file size.
fn overwrite_baseline(dir: &Path, n: usize, len: usize) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = dir.join("overwrite.dat");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("the baseline file");
    f.write_all_at(&vec![0; n * len], 0).expect("zeros");
    f.sync_all().expect("fsync");
    let record = vec![b'x'; len];
    let start = Instant::now();
    for i in 0..n {
        f.write_all_at(&record, (i * len) as u64)
            .expect("overwrite");
        f.sync_data().expect("fdatasync");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

/// AA per second from the relay at `addr`, `n` messages over `conns` connections.
fn relay_rate(addr: &str, n: usize, conns: usize, run: u64) -> f64 {
    let per = n / conns;
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                let mut sender = Sender::builder(addr)
                    .retry(RetryPolicy::none())
                    .build()
                    .expect("a sender");
                for i in 0..per {
                    let ack = sender
                        .send(&message(&format!("B{run}-{c}-{i}")))
                        .expect("an ACK");
                    assert!(ack.is_success(), "{:?}", ack.code);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a sending thread");
    }
    (per * conns) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full {
        env("BENCH_MESSAGES").unwrap_or(3_000)
    } else {
        64
    };
    let rounds: usize = if full {
        env("BENCH_ROUNDS").unwrap_or(3)
    } else {
        1
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-relay");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the bench directory");
    let spool = dir.join("spool");

    let delivered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&delivered);
    let downstream = Listener::builder("127.0.0.1:0")
        .max_connections(4)
        .bind()
        .expect("a downstream")
        .spawn(move |_: &Message<'_>| {
            counter.fetch_add(1, Ordering::Relaxed);
            Response::accept()
        })
        .expect("a downstream");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args(["relay", "127.0.0.1:0", "-q", "--max-connections", "32"])
        .arg("--to")
        .arg(downstream.local_addr().to_string())
        .arg("--spool")
        .arg(&spool)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the relay starts");
    let mut first = String::new();
    BufReader::new(relay.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("the first line");
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    let len = 20 + message("B0-0-0").len();
    // Warm up: connections, the spool's first segment, the page cache.
    relay_rate(&addr, 200.min(n), 1, 0);
    let (mut base, mut over, mut one, mut sixteen) = (0f64, 0f64, 0f64, 0f64);
    for round in 0..rounds as u64 {
        base = base.max(baseline(&dir, n, len));
        over = over.max(overwrite_baseline(&dir, n, len));
        one = one.max(relay_rate(&addr, n, 1, 1 + round * 2));
        sixteen = sixteen.max(relay_rate(&addr, n, 16, 2 + round * 2));
    }
    let sent = 200.min(n) + rounds * (n + n / 16 * 16);
    // Every message acknowledged is delivered: count them before stopping.
    let end = Instant::now() + std::time::Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) < sent as u64 && Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = relay.kill();
    let _ = relay.wait();
    downstream.shutdown();
    let _ = downstream.join();
    assert_eq!(delivered.load(Ordering::Relaxed), sent as u64);

    println!("relay, {len}-byte records, {n} messages per run, best of {rounds}:");
    println!("  append + fdatasync per message (baseline): {base:>9.0} msg/s   1.00");
    println!(
        "  overwrite + fdatasync per message:          {over:>9.0} msg/s   {:.2}",
        over / base
    );
    println!(
        "  relay, 1 connection:                        {one:>9.0} AA/s   {:.2}",
        one / base
    );
    println!(
        "  relay, 16 connections:                      {sixteen:>9.0} AA/s   {:.2}  ({:.1}x one connection)",
        sixteen / base,
        sixteen / one
    );
    let _ = std::fs::remove_dir_all(&dir);
}
