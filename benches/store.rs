//! `FileStore::save` against a plain loop of the system calls a durable, never-replacing save
//! needs, on the same disk in the same run.
//!
//! The baseline, one message at a time: create a temporary file (`O_CREAT|O_EXCL`), write
//! the message, `fsync` it, hard-link it under its final name, remove the temporary name,
//! `fsync` the directory (a handle kept open), close the file. Then `FileStore::save` from one
//! thread, and from 16 threads at once (a listener runs each connection's save on the
//! connection's own thread, so 16 threads are 16 connections storing at once). A shared disk's
//! flush time swings from one second to the next, so each round takes turns in ten slices:
//! a tenth of the loop's messages, a tenth of the one-thread saves, a tenth of the 16-thread
//! saves, and again; each round's ratios compare the sums, and the median of the rounds'
//! ratios is reported.
//!
//! `cargo bench --bench store`. Environment: `BENCH_ROUNDS` (default 3), `BENCH_MESSAGES`
//! (per measurement, default 2,000), `BENCH_DIR` (default: the target directory's temporary
//! directory, so the disk the build is on). Under `cargo test` it runs a quick smoke check.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mllp::FileStore;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The plain loop: the necessary system calls and nothing else; messages `from..from + n`.
fn baseline(dir: &Path, dir_handle: &File, text: &[u8], from: usize, n: usize) -> Duration {
    let started = Instant::now();
    for i in from..from + n {
        let tmp = dir.join(format!(".{i:010}-BASE.hl7.tmp"));
        let path = dir.join(format!("{i:010}-BASE.hl7"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .expect("create");
        file.write_all(text).expect("write");
        file.sync_all().expect("fsync");
        fs::hard_link(&tmp, &path).expect("link");
        fs::remove_file(&tmp).expect("unlink");
        dir_handle.sync_all().expect("fsync the directory");
        drop(file);
    }
    started.elapsed()
}

/// `FileStore::save` from `threads` threads, `n` messages in all.
fn store(store: &FileStore, text: &str, n: usize, threads: usize) -> Duration {
    let per = n / threads;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = &store;
            s.spawn(move || {
                for i in 0..per {
                    let id = format!("T{t:02}-{i:06}");
                    store.save(Some(id.as_bytes()), text).expect("save");
                }
            });
        }
    });
    started.elapsed()
}

fn fresh(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a bench directory");
    dir
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds: usize = if full {
        env("BENCH_ROUNDS").unwrap_or(3)
    } else {
        1
    };
    let n: usize = if full {
        env("BENCH_MESSAGES").unwrap_or(2_000)
    } else {
        32
    };
    let n = n.max(160);
    let root = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join(format!("mllp-store-bench-{}", std::process::id()));
    let text = mllp_testkit::adt("BENCH");
    let text = format!("{text}{}", "NTE|1||".repeat(1000 / 7));
    println!(
        "\n## FileStore::save against the plain loop: {n} messages of {} bytes per measurement, \
         {rounds} round(s), in {}",
        text.len(),
        root.display()
    );
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let (mut ratios1, mut ratios16) = (Vec::new(), Vec::new());
    const SLICES: usize = 10;
    for round in 1..=rounds {
        let base_dir = fresh(&root, "base");
        let base_handle = File::open(&base_dir).expect("the directory");
        let one = FileStore::open(fresh(&root, "one")).expect("a store");
        let sixteen = FileStore::open(fresh(&root, "sixteen")).expect("a store");
        let slice = n / SLICES / 16 * 16;
        let (mut db, mut d1, mut d16) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for k in 0..SLICES {
            db += baseline(&base_dir, &base_handle, text.as_bytes(), k * slice, slice);
            d1 += store(&one, &text, slice, 1);
            d16 += store(&sixteen, &text, slice, 16);
        }
        let n = slice * SLICES;
        let (syncs1, syncs16) = (one.dir_syncs(), sixteen.dir_syncs());
        let base = rate(n, db);
        let (r1, r16) = (rate(n, d1), rate(n, d16));
        println!(
            "round {round}: plain loop {base:>8.0} msg/s | save, 1 thread {r1:>8.0} msg/s \
             ({:.2}×, {syncs1} directory syncs) | save, 16 threads {r16:>8.0} msg/s ({:.2}×, \
             {syncs16} directory syncs)",
            r1 / base,
            r16 / base
        );
        ratios1.push(r1 / base);
        ratios16.push(r16 / base);
    }
    println!(
        "median: save, 1 thread {:.2}× the plain loop; save, 16 threads {:.2}× the plain loop",
        median(ratios1),
        median(ratios16)
    );
    let _ = fs::remove_dir_all(&root);
}
