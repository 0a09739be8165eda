//! Decoder throughput against a `memchr`-based splitter over the same buffer.
//!
//! `cargo bench --bench decode` prints GB/s for each splitter and its ratio to the memchr
//! baseline measured in the same run. Every splitter must find the same number of frames.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mllp::{Decoder, Event, Framing, StartInFrame};

/// The buffer size under `cargo bench`; `cargo test` runs a 1 MiB smoke check instead.
const BENCH_BYTES: usize = 64 << 20;

/// A buffer of `buf_bytes` made of frames of `size` payload bytes (HL7-like text).
fn frames(size: usize, buf_bytes: usize) -> (Vec<u8>, usize) {
    let mut payload: Vec<u8> = b"MSH|^~\\&|SEND|FAC|RECV|FAC|20260101120000||ADT^A01|1|P|2.5\r"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    payload[size - 1] = b'\r';
    let mut buf = Vec::with_capacity(buf_bytes + size);
    let mut n = 0;
    while buf.len() + size + 3 <= buf_bytes {
        buf.push(0x0B);
        buf.extend_from_slice(&payload);
        buf.extend_from_slice(b"\x1c\r");
        n += 1;
    }
    (buf, n)
}

fn memchr_split(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while let Some(s) = memchr::memchr(0x0B, &buf[i..]) {
        let start = i + s + 1;
        let mut j = start;
        loop {
            match memchr::memchr(0x1C, &buf[j..]) {
                Some(e) if buf.get(j + e + 1) == Some(&0x0D) => {
                    black_box(&buf[start..j + e]);
                    n += 1;
                    i = j + e + 2;
                    break;
                }
                Some(e) => j += e + 1,
                None => return n,
            }
        }
    }
    n
}

fn decoder_split(buf: &[u8], framing: Framing) -> usize {
    let mut decoder = Decoder::new(framing);
    let mut n = 0;
    let mut at = 0;
    loop {
        let d = decoder.decode(&buf[at..]);
        match d.event {
            Event::Frame(r) => {
                black_box(&buf[at + r.start..at + r.end]);
                n += 1;
            }
            Event::NeedMore => return n,
            _ => {}
        }
        at += d.consumed;
    }
}

/// Best of `runs` timings of `f` over the buffer, in GB/s.
fn measure(buf: &[u8], expect: usize, runs: usize, f: impl Fn(&[u8]) -> usize) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let n = f(black_box(buf));
        best = best.min(t.elapsed());
        assert_eq!(n, expect, "splitter found a different number of frames");
    }
    buf.len() as f64 / best.as_secs_f64() / 1e9
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this is a quick check of the counts.
    let bench = std::env::args().any(|a| a == "--bench");
    let (buf_bytes, runs) = if bench {
        let runs = std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok());
        (BENCH_BYTES, runs.unwrap_or(15))
    } else {
        (1 << 20, 1)
    };
    println!(
        "decoder throughput over a {} MiB buffer, best of {runs} runs",
        buf_bytes >> 20
    );
    println!(
        "{:<12} {:<34} {:>8} {:>8}",
        "frames", "splitter", "GB/s", "ratio"
    );
    for size in [1024, 100 * 1024] {
        let (buf, n) = frames(size, buf_bytes);
        let base = measure(&buf, n, runs, memchr_split);
        let restart = measure(&buf, n, runs, |b| decoder_split(b, Framing::default()));
        let ignore = measure(&buf, n, runs, |b| {
            decoder_split(b, Framing::default().start_in_frame(StartInFrame::Ignore))
        });
        let label = format!("{} KB", size / 1024);
        println!(
            "{label:<12} {:<34} {base:>8.2} {:>8.2}",
            "memchr splitter (baseline)", 1.0
        );
        println!(
            "{label:<12} {:<34} {restart:>8.2} {:>8.2}",
            "Decoder (default: restart)",
            restart / base
        );
        println!(
            "{label:<12} {:<34} {ignore:>8.2} {:>8.2}",
            "Decoder (start in frame ignored)",
            ignore / base
        );
    }
    // The scanner, reached through the decoder: one frame that has begun and not ended, so
    // every byte after the start is searched for the end byte (and, under `Restart`, the start
    // byte) once. The per-implementation rows (SSE2, SWAR) need the scanner's private API: its
    // unit tests check each implementation, BENCHMARKS.md has their figures.
    let mut hay = vec![b'x'; buf_bytes];
    hay[0] = 0x0B;
    let unfinished = |policy: StartInFrame| {
        let framing = Framing::default()
            .max_message_size(buf_bytes)
            .unwrap()
            .start_in_frame(policy);
        move |h: &[u8]| {
            let d = Decoder::new(framing).decode(h);
            assert_eq!(d.event, Event::NeedMore);
            None
        }
    };
    let scan = |f: &dyn Fn(&[u8]) -> Option<usize>| {
        let mut best = Duration::MAX;
        for _ in 0..runs {
            let t = Instant::now();
            assert_eq!(f(black_box(&hay)), None);
            best = best.min(t.elapsed());
        }
        hay.len() as f64 / best.as_secs_f64() / 1e9
    };
    let m2 = scan(&|h| memchr::memchr2(0x1C, 0x0B, &h[1..]));
    let m1 = scan(&|h| memchr::memchr(0x1C, &h[1..]));
    let restart = scan(&unfinished(StartInFrame::Restart));
    let ignore = scan(&unfinished(StartInFrame::Ignore));
    println!(
        "\nscanner: one unfinished frame of {} MiB (no end byte)",
        buf_bytes >> 20
    );
    println!("{:<34} {m2:>8.2} {:>8.2}", "memchr2 (baseline)", 1.0);
    println!(
        "{:<34} {restart:>8.2} {:>8.2}",
        "Decoder (restart: two needles)",
        restart / m2
    );
    println!("{:<34} {m1:>8.2} {:>8.2}", "memchr (one needle)", m1 / m2);
    println!(
        "{:<34} {ignore:>8.2} {:>8.2}",
        "Decoder (ignore: one needle)",
        ignore / m2
    );
}
