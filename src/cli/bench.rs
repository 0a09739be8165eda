//! `mllp bench`: loopback throughput and ACK latency, optionally next to a raw-TCP baseline.
//!
//! Shared by the `mllp bench` subcommand and `benches/loopback.rs`, so both report the same
//! figures the same way. Nothing here prints; [`print`] formats a report.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mllp::{Charset, Framing, Listener, Response, Sender};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A listener to send to; `None` starts one on a free loopback port.
    pub addr: Option<String>,
    /// Messages to send in all (spread over the connections).
    pub messages: usize,
    /// Concurrent connections, each with its own sender.
    pub connections: usize,
    /// Approximate message size in bytes.
    pub size: usize,
    /// Use TLS (only with a self-started listener).
    pub tls: bool,
    /// Also measure a raw `std::net` ping-pong with the same frames (self-started listener).
    pub baseline: bool,
    /// Framing on both sides.
    pub framing: Framing,
    /// Character set of the messages.
    pub charset: Charset,
    /// MLLP release 2 commit blocks instead of HL7 ACKs.
    pub mllp2: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            addr: None,
            messages: 20_000,
            connections: 1,
            size: 1024,
            tls: false,
            baseline: false,
            framing: Framing::default(),
            charset: Charset::UTF_8,
            mllp2: false,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was measured ("mllp", "raw std::net", ...).
    pub label: String,
    /// Messages acknowledged.
    pub messages: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// ACK latency percentiles: p50, p99, max.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Largest latency.
    pub max: Duration,
    /// The baseline measured in the same run, if asked for.
    pub baseline: Option<Box<BenchReport>>,
}

impl BenchReport {
    /// Messages per second.
    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload megabytes (10^6) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A valid ADT^A01 message of about `size` bytes (at least the header and a PID).
pub fn adt_message(size: usize, control_id: &str) -> String {
    let mut msg = format!(
        "MSH|^~\\&|BENCH|FAC|RECV|FAC|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    );
    let mut n = 0;
    while msg.len() + 4 < size {
        n += 1;
        let room = size - msg.len() - 1;
        let seg = format!("NTE|{n}||");
        let fill = room.saturating_sub(seg.len()).min(200);
        msg.push_str(&seg);
        msg.extend(std::iter::repeat_n('x', fill));
        msg.push('\r');
    }
    msg
}

/// Runs the benchmark described by `config`.
pub fn run(config: &BenchConfig) -> Result<BenchReport, mllp::Error> {
    let running;
    let addr = match &config.addr {
        Some(addr) => addr.clone(),
        None => {
            let listener = Listener::builder("127.0.0.1:0")
                .framing(config.framing)
                .max_connections(config.connections.max(1))
                .bind()?;
            running = Some(listener.spawn(|_: &mllp::Message<'_>| Response::accept())?);
            running.as_ref().expect("just set").local_addr().to_string()
        }
    };
    let per_conn = config.messages.div_ceil(config.connections.max(1));
    let started = Instant::now();
    let mut threads = Vec::new();
    for c in 0..config.connections.max(1) {
        let addr = addr.clone();
        let config = config.clone();
        threads.push(std::thread::spawn(
            move || -> Result<(Vec<Duration>, u64), mllp::Error> {
                let mut sender = Sender::builder(addr)
                    .framing(config.framing)
                    .charset(config.charset)
                    .mllp2(config.mllp2)
                    .build()?;
                let mut latencies = Vec::with_capacity(per_conn);
                let mut bytes = 0;
                let mut msg = adt_message(config.size, "0");
                for i in 0..per_conn {
                    let id = format!("B{c}-{i}");
                    msg.replace_range(control_id_range(&msg), &id);
                    let t = Instant::now();
                    let ack = sender.send(&msg)?;
                    latencies.push(t.elapsed());
                    if !ack.is_success() {
                        return Err(mllp::Error::Config(format!(
                            "the listener answered {} to a benchmark message",
                            ack.code.as_str()
                        )));
                    }
                    bytes += msg.len() as u64;
                }
                Ok((latencies, bytes))
            },
        ));
    }
    let mut latencies = Vec::new();
    let mut bytes = 0;
    for t in threads {
        let (l, b) = t
            .join()
            .map_err(|_| mllp::Error::Config("a benchmark thread panicked".into()))??;
        latencies.extend(l);
        bytes += b;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(BenchReport {
        label: "mllp".into(),
        messages: latencies.len() as u64,
        bytes,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        baseline: None,
    })
}

/// The byte range of MSH-10 in a message built by [`adt_message`].
fn control_id_range(msg: &str) -> std::ops::Range<usize> {
    let mut fields = 0;
    let mut start = 0;
    for (i, b) in msg.bytes().enumerate() {
        if b == b'|' {
            fields += 1;
            if fields == 9 {
                start = i + 1;
            } else if fields == 10 {
                return start..i;
            }
        }
    }
    start..start
}

/// Writes a human-readable report.
pub fn print(report: &BenchReport, out: &mut dyn Write) -> io::Result<()> {
    let line = |r: &BenchReport, out: &mut dyn Write| {
        writeln!(
            out,
            "{:<14} {:>8} messages  {:>10.0} msg/s  {:>8.1} MB/s  latency p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs",
            r.label,
            r.messages,
            r.msgs_per_sec(),
            r.mb_per_sec(),
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.max.as_secs_f64() * 1e6,
        )
    };
    line(report, out)?;
    if let Some(base) = &report.baseline {
        line(base, out)?;
        writeln!(
            out,
            "ratio to baseline: {:.2}",
            report.msgs_per_sec() / base.msgs_per_sec()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adt_messages_have_the_asked_size_and_a_replaceable_control_id() {
        for size in [10, 200, 1024, 100 * 1024] {
            let mut msg = adt_message(size, "0");
            assert!(
                msg.len() >= size.min(100) && msg.len() <= size.max(150) + 4,
                "{size}: {}",
                msg.len()
            );
            msg.replace_range(control_id_range(&msg), "X-42");
            let header = mllp::Header::parse(msg.as_bytes()).unwrap();
            assert_eq!(header.control_id(), Some(&b"X-42"[..]));
        }
    }
}
