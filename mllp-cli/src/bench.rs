//! `mllp bench`: loopback throughput and ACK latency, next to a raw-TCP baseline.
//!
//! Shared by the `mllp bench` subcommand and `benches/loopback.rs`, so both report the same
//! figures the same way. Nothing here prints except [`print()`] (and a child process started for
//! [`Pin`], which reports to its parent on stdout).
//!
//! # What is measured
//! A sender writes one framed message, waits for its acknowledgement, and writes the next (one
//! message in flight per connection). Each side is either this crate ([`Side::Mllp`]: a
//! [`Sender`] or a [`Listener`]) or a raw `std::net` loop with no library at all
//! ([`Side::Raw`]):
//! * the raw sender writes the same framed bytes and reads until the reply ends with the frame
//!   end sequence;
//! * the raw listener reads until the bytes read end with the frame end sequence (one message
//!   is in flight, so the frame is the whole buffer), finds MSH-10 and writes a fixed ACK that
//!   echoes it.
//!
//! The baseline is raw sender ↔ raw listener, measured in the same run; every figure is also
//! given as a ratio to it.
//!
//! With [`BenchConfig::sides`], a third sender shows what the protocol itself costs on top of
//! the baseline ([`Side::RawChecked`]): the raw loop plus the two things no correct sender may
//! skip, the check that the message does not contain the frame end sequence (a listener would
//! cut it there and acknowledge the first part) and a bounded wait for the ACK (a socket read
//! timeout). This crate's sender is also given as a ratio to it: what the library adds beyond
//! that floor.
//!
//! # Pinning
//! On a small machine, unpinned ping-pong figures mostly measure where the scheduler puts the
//! two sides. With [`Pin::One`] or [`Pin::Two`], each side runs in a process of its own started
//! under `taskset -c CPU`: the current executable, run again with the same arguments and the
//! role in `MLLP_BENCH_*` environment variables; [`run`] sees them and acts as that side.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mllp::charset::Charset;
use mllp::{Framing, Listener, Response, RunningListener, Sender};

mod listeners;
mod report;
mod senders;
mod syscalls;
#[cfg(test)]
mod tests;

use listeners::*;
pub use report::print;
use senders::*;
pub use syscalls::Syscalls;

/// Which implementation plays a side of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This crate: a [`Sender`] or a [`Listener`].
    Mllp,
    /// A raw `std::net` loop with no library.
    Raw,
    /// As a sender, the raw loop plus the work every correct sender must do (the end-sequence
    /// check of each message, an ACK timeout on the socket); as a listener, the raw one.
    RawChecked,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Mllp => "mllp",
            Side::Raw => "raw",
            Side::RawChecked => "raw-checked",
        }
    }

    fn parse(s: &str) -> Option<Side> {
        match s {
            "mllp" => Some(Side::Mllp),
            "raw" => Some(Side::Raw),
            "raw-checked" => Some(Side::RawChecked),
            _ => None,
        }
    }
}

/// Where the two sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pin {
    /// Both sides in this process, as threads placed by the scheduler.
    #[default]
    None,
    /// Each side in its own process, both pinned to this CPU (`taskset -c`).
    One(usize),
    /// The listener's process pinned to the first CPU, the sender's to the second.
    Two(usize, usize),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A listener to send to; `None` starts one on a free loopback port.
    pub addr: Option<String>,
    /// Messages to send in all (spread over the connections), after the warm-up.
    pub messages: usize,
    /// Concurrent connections, each with its own sender.
    pub connections: usize,
    /// Approximate message size in bytes.
    pub size: usize,
    /// Use TLS between this crate's sender and listener (self-started listener only), with the
    /// test certificate of `mllp-testkit/certs` built into the binary. Raw sides stay plain TCP, so
    /// the ratio to the baseline shows what TLS costs.
    pub tls: bool,
    /// Also measure a raw `std::net` ping-pong with the same frames (self-started listener),
    /// reported in [`BenchReport::baseline`].
    pub baseline: bool,
    /// Framing on both sides.
    pub framing: Framing,
    /// Character set of the messages.
    pub charset: Charset,
    /// MLLP release 2 commit blocks instead of HL7 ACKs.
    pub mllp2: bool,
    /// Also measure each side alone against the raw other side (our sender ↔ raw listener, raw
    /// sender ↔ our listener) and the checked raw sender ([`Side::RawChecked`]) against the raw
    /// listener, reported in [`BenchReport::sides`]. Implies `baseline`.
    pub sides: bool,
    /// Where the sides run (default: threads of this process, unpinned).
    pub pin: Pin,
    /// Messages each connection sends before the clock starts (default 1,000).
    pub warmup: usize,
    /// How many times each pairing is measured, alternating between pairings; the fastest
    /// run of each is reported (default 1).
    pub rounds: usize,
    /// The sender of the main measurement (default [`Side::Mllp`]).
    pub sender: Side,
    /// The listener of the main measurement (default [`Side::Mllp`]).
    pub listener: Side,
    /// Also count each side's system calls per message, in untimed runs under `strace -f -c`
    /// (see [`Syscalls`]); skipped when `strace` cannot be run, or with [`addr`](Self::addr).
    pub syscalls: bool,
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
            sides: false,
            pin: Pin::None,
            warmup: 1_000,
            rounds: 1,
            sender: Side::Mllp,
            listener: Side::Mllp,
            syscalls: false,
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
    /// Each side alone against the raw other side, when asked for ([`BenchConfig::sides`]).
    pub sides: Vec<BenchReport>,
    /// For this crate's sender against the raw listener: the checked raw sender's run
    /// ([`Side::RawChecked`]), the floor of what a correct sender costs.
    pub floor: Option<Box<BenchReport>>,
    /// System calls per message, when asked for ([`BenchConfig::syscalls`]) and counted.
    pub syscalls: Option<Syscalls>,
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

    /// Messages per second relative to the baseline, when there is one.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|b| self.relative_to(b))
    }

    /// Messages per second relative to the checked raw sender's, when measured
    /// ([`BenchReport::floor`]).
    pub fn floor_ratio(&self) -> Option<f64> {
        self.floor.as_ref().map(|f| self.relative_to(f))
    }

    fn relative_to(&self, other: &BenchReport) -> f64 {
        self.msgs_per_sec() / other.msgs_per_sec().max(1e-9)
    }
}

/// Whether this process is a side started by a pinned measurement (see [`Pin`]): then
/// [`run`] plays that side and exits, whatever configuration it is given.
pub fn is_side_process() -> bool {
    std::env::var_os(ENV_ROLE).is_some()
}

/// What messages are answered with: MLLP release 2 commit blocks when `mllp2` (the
/// `--mllp2` switch of every command), else HL7 acknowledgements.
pub fn reply_kind(mllp2: bool) -> mllp::hl7::ReplyKind {
    if mllp2 {
        mllp::hl7::ReplyKind::Mllp2
    } else {
        mllp::hl7::ReplyKind::Hl7
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

/// The environment variables of a child process started for [`Pin`].
const ENV_ROLE: &str = "MLLP_BENCH_ROLE";
const ENV_SIDE: &str = "MLLP_BENCH_SIDE";
const ENV_ADDR: &str = "MLLP_BENCH_ADDR";
const ENV_PARAMS: &str = "MLLP_BENCH_PARAMS";
/// The prefixes of a child's report lines.
const ADDR_LINE: &str = "mllp-bench-addr ";
const RESULT_LINE: &str = "mllp-bench-result ";

/// The parameters a sender needs, passed to a child process.
#[derive(Debug, Clone, Copy)]
struct Params {
    size: usize,
    messages: usize,
    connections: usize,
    warmup: usize,
    mllp2: bool,
    tls: bool,
}

impl Params {
    fn of(config: &BenchConfig) -> Params {
        Params {
            size: config.size,
            messages: config.messages,
            connections: config.connections.max(1),
            warmup: config.warmup,
            mllp2: config.mllp2,
            tls: config.tls,
        }
    }

    fn encode(&self) -> String {
        format!(
            "{},{},{},{},{},{}",
            self.size,
            self.messages,
            self.connections,
            self.warmup,
            self.mllp2 as u8,
            self.tls as u8
        )
    }

    fn decode(s: &str) -> Option<Params> {
        let v: Vec<usize> = s
            .split(',')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        match v[..] {
            [size, messages, connections, warmup, mllp2, tls] => Some(Params {
                size,
                messages,
                connections,
                warmup,
                mllp2: mllp2 != 0,
                tls: tls != 0,
            }),
            _ => None,
        }
    }
}

/// What one sender run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Sample {
    fn report(self, label: String) -> BenchReport {
        BenchReport {
            label,
            messages: self.messages,
            bytes: self.bytes,
            elapsed: self.elapsed,
            p50: self.p50,
            p99: self.p99,
            max: self.max,
            baseline: None,
            sides: Vec::new(),
            floor: None,
            syscalls: None,
        }
    }
}

/// TLS settings for the benchmark: the test certificate (valid for 127.0.0.1) and its CA.
mod tls {
    #[cfg(feature = "tls")]
    pub fn server() -> Result<mllp::TlsServerConfig, mllp::Error> {
        Ok(mllp::TlsServerConfig::new(mllp::Identity::Pem {
            cert: include_bytes!("../../mllp-testkit/certs/server.pem").to_vec(),
            key: include_bytes!("../../mllp-testkit/certs/server.key").to_vec(),
        }))
    }

    #[cfg(feature = "tls")]
    pub fn client() -> Result<mllp::TlsClientConfig, mllp::Error> {
        Ok(mllp::TlsClientConfig::new()
            .add_root_pem(include_bytes!("../../mllp-testkit/certs/ca.pem").to_vec()))
    }

    #[cfg(not(feature = "tls"))]
    pub fn server() -> Result<mllp::TlsServerConfig, mllp::Error> {
        Err(super::bench_error("this build has no TLS support"))
    }

    #[cfg(not(feature = "tls"))]
    pub fn client() -> Result<mllp::TlsClientConfig, mllp::Error> {
        Err(super::bench_error("this build has no TLS support"))
    }
}

fn bench_error(what: impl std::fmt::Display) -> mllp::Error {
    mllp::Error::Config(format!("benchmark: {what}"))
}

fn io_error(e: io::Error) -> mllp::Error {
    bench_error(e)
}

/// Runs the benchmark described by `config`.
///
/// In a child process started for [`Pin`] (the `MLLP_BENCH_ROLE` environment variable is set),
/// this plays the role it was given, reports to the parent on stdout and exits the process.
pub fn run(config: &BenchConfig) -> Result<BenchReport, mllp::Error> {
    if std::env::var_os(ENV_ROLE).is_some() {
        child_main(config);
    }
    let external = config.addr.is_some();
    let with_baseline = !external && (config.baseline || config.sides);
    let mut pairings = vec![(config.sender, config.listener)];
    if with_baseline {
        pairings.push((Side::Raw, Side::Raw));
    }
    if config.sides && !external {
        for pair in [
            (Side::Mllp, Side::Raw),
            (Side::Raw, Side::Mllp),
            (Side::RawChecked, Side::Raw),
        ] {
            if !pairings.contains(&pair) {
                pairings.push(pair);
            }
        }
    }
    let mut best: Vec<Option<Sample>> = vec![None; pairings.len()];
    for _ in 0..config.rounds.max(1) {
        for (k, &(sender, listener)) in pairings.iter().enumerate() {
            let s = measure(config, sender, listener)?;
            if best[k].is_none_or(|b| s.elapsed < b.elapsed) {
                best[k] = Some(s);
            }
        }
    }
    let label = |(s, l): (Side, Side)| match (s, l) {
        (Side::Raw, Side::Raw) => "raw ↔ raw".to_string(),
        (Side::Mllp, Side::Mllp) => "mllp ↔ mllp".to_string(),
        (s, l) => format!("{} sender ↔ {} listener", s.name(), l.name()),
    };
    let mut reports: Vec<BenchReport> = pairings
        .iter()
        .zip(best)
        .map(|(&p, s)| {
            s.unwrap_or_default().report(if external {
                format!("{} sender", p.0.name())
            } else {
                label(p)
            })
        })
        .collect();
    if config.syscalls && !external {
        for (report, &(sender, listener)) in reports.iter_mut().zip(&pairings) {
            report.syscalls = syscalls::count(config, sender, listener)?;
        }
    }
    let floor = pairings
        .iter()
        .position(|&p| p == (Side::RawChecked, Side::Raw))
        .map(|k| reports[k].clone());
    if let (Some(floor), Some(k)) = (
        floor,
        pairings.iter().position(|&p| p == (Side::Mllp, Side::Raw)),
    ) {
        reports[k].floor = Some(Box::new(floor));
    }
    let mut main = reports.remove(0);
    if with_baseline {
        let base = match pairings.iter().position(|&p| p == (Side::Raw, Side::Raw)) {
            Some(0) => main.clone(),
            _ => reports.remove(0),
        };
        for side in &mut reports {
            side.baseline = Some(Box::new(base.clone()));
        }
        main.baseline = Some(Box::new(base));
    }
    main.sides = reports;
    Ok(main)
}

/// One measurement of one pairing.
fn measure(config: &BenchConfig, sender: Side, listener: Side) -> Result<Sample, mllp::Error> {
    let params = Params::of(config);
    if let Some(addr) = &config.addr {
        return drive(addr, sender, params, config.framing);
    }
    match config.pin {
        Pin::None => {
            let served = serve(listener, params, config.framing, config.charset)?;
            let sample = drive(&served.addr, sender, params, config.framing);
            served.stop();
            sample
        }
        Pin::One(cpu) => in_children(config, sender, listener, Some((cpu, cpu)), None),
        Pin::Two(l, s) => in_children(config, sender, listener, Some((l, s)), None),
    }
}

/// Runs each side in a child process, pinned with `taskset` to the (listener, sender) CPUs
/// when given, and each under `strace -f -c -o FILE` when `trace` names the (listener, sender)
/// files.
fn in_children(
    config: &BenchConfig,
    sender: Side,
    listener: Side,
    cpus: Option<(usize, usize)>,
    trace: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Sample, mllp::Error> {
    let params = Params::of(config).encode();
    let (listener_cpu, sender_cpu) = match cpus {
        Some((l, s)) => (Some(l), Some(s)),
        None => (None, None),
    };
    let (listener_trace, sender_trace) = match trace {
        Some((l, s)) => (Some(l), Some(s)),
        None => (None, None),
    };
    let spawn = |cpu: Option<usize>,
                 trace: Option<&std::path::Path>,
                 role: &str,
                 side: Side,
                 addr: &str|
     -> Result<Child, mllp::Error> {
        let exe = std::env::current_exe().map_err(io_error)?;
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(file) = trace {
            argv.extend(["strace", "-f", "-c", "-o"].map(Into::into));
            argv.push(file.into());
        }
        if let Some(cpu) = cpu {
            argv.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
        }
        argv.push(exe.into());
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(std::env::args_os().skip(1))
            .env(ENV_ROLE, role)
            .env(ENV_SIDE, side.name())
            .env(ENV_ADDR, addr)
            .env(ENV_PARAMS, &params)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let tool = argv[0].to_string_lossy();
                bench_error(format!("cannot start `{tool}` ({e}); is it installed?"))
            })
    };
    let mut server = spawn(listener_cpu, listener_trace, "listener", listener, "")?;
    let result = (|| {
        let stdout = server.stdout.take().expect("piped");
        let addr = reply_line(stdout, ADDR_LINE)?;
        let mut client = spawn(sender_cpu, sender_trace, "sender", sender, &addr)?;
        let stdout = client.stdout.take().expect("piped");
        let line = reply_line(stdout, RESULT_LINE);
        let _ = client.wait();
        let v: Vec<u64> = line?
            .split(' ')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()
            .ok_or_else(|| bench_error("unreadable result from the sender process"))?;
        let ns = Duration::from_nanos;
        match v[..] {
            [messages, bytes, elapsed, p50, p99, max] => Ok(Sample {
                messages,
                bytes,
                elapsed: ns(elapsed),
                p50: ns(p50),
                p99: ns(p99),
                max: ns(max),
            }),
            _ => Err(bench_error("unreadable result from the sender process")),
        }
    })();
    // Closing its stdin stops the listener process.
    drop(server.stdin.take());
    let _ = server.wait();
    result
}

/// Reads a child's stdout until the line with `prefix`; returns the rest of it.
fn reply_line(stdout: impl Read, prefix: &str) -> Result<String, mllp::Error> {
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(io_error)?;
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest.trim().to_string());
        }
    }
    Err(bench_error(
        "a benchmark process ended without reporting (see its error above)",
    ))
}

/// The body of a child process: plays its side, reports on stdout, exits.
fn child_main(config: &BenchConfig) -> ! {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let role = env(ENV_ROLE);
    let result = (|| -> Result<(), mllp::Error> {
        let side = Side::parse(&env(ENV_SIDE)).ok_or_else(|| bench_error("bad side"))?;
        let params = Params::decode(&env(ENV_PARAMS)).ok_or_else(|| bench_error("bad params"))?;
        let mut out = io::stdout();
        match role.as_str() {
            "listener" => {
                let served = serve(side, params, config.framing, config.charset)?;
                writeln!(out, "{ADDR_LINE}{}", served.addr).map_err(io_error)?;
                out.flush().map_err(io_error)?;
                // Serve until the parent closes our stdin.
                let _ = io::copy(&mut io::stdin(), &mut io::sink());
                served.stop();
            }
            "sender" => {
                let s = drive(&env(ENV_ADDR), side, params, config.framing)?;
                writeln!(
                    out,
                    "{RESULT_LINE}{} {} {} {} {} {}",
                    s.messages,
                    s.bytes,
                    s.elapsed.as_nanos(),
                    s.p50.as_nanos(),
                    s.p99.as_nanos(),
                    s.max.as_nanos()
                )
                .map_err(io_error)?;
            }
            _ => return Err(bench_error(format!("unknown role {role:?}"))),
        }
        Ok(())
    })();
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("mllp bench ({role}): {e}");
            std::process::exit(2)
        }
    }
}
