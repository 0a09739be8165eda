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

mod syscalls;
pub use syscalls::Syscalls;

/// Which implementation plays a side of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This crate: a [`Sender`] or a [`Listener`].
    Mllp,
    /// A raw `std::net` loop with no library.
    Raw,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Mllp => "mllp",
            Side::Raw => "raw",
        }
    }

    fn parse(s: &str) -> Option<Side> {
        match s {
            "mllp" => Some(Side::Mllp),
            "raw" => Some(Side::Raw),
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
    /// sender ↔ our listener), reported in [`BenchReport::sides`]. Implies `baseline`.
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
        self.baseline
            .as_ref()
            .map(|b| self.msgs_per_sec() / b.msgs_per_sec().max(1e-9))
    }
}

/// Whether this process is a side started by a pinned measurement (see [`Pin`]): then
/// [`run`] plays that side and exits, whatever configuration it is given.
pub fn is_side_process() -> bool {
    std::env::var_os(ENV_ROLE).is_some()
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
        for pair in [(Side::Mllp, Side::Raw), (Side::Raw, Side::Mllp)] {
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

// ---------------------------------------------------------------------------------------------
// Listeners

/// A listener started for a measurement.
struct Served {
    addr: String,
    inner: ServedInner,
}

enum ServedInner {
    Mllp(RunningListener),
    Raw {
        stop: Arc<AtomicBool>,
        accept: JoinHandle<()>,
    },
}

impl Served {
    fn stop(self) {
        match self.inner {
            ServedInner::Mllp(listener) => {
                listener.shutdown();
                let _ = listener.join();
            }
            ServedInner::Raw { stop, accept } => {
                stop.store(true, Ordering::SeqCst);
                // Wake the accept loop.
                let _ = TcpStream::connect(&self.addr);
                let _ = accept.join();
            }
        }
    }
}

/// Starts a listener of the given side on a free loopback port.
fn serve(
    side: Side,
    params: Params,
    framing: Framing,
    charset: Charset,
) -> Result<Served, mllp::Error> {
    match side {
        Side::Mllp => {
            let mut builder = Listener::builder("127.0.0.1:0");
            if params.tls {
                builder = builder.tls(tls::server()?);
            }
            let listener = builder
                .framing(framing)
                .charset(charset)
                .max_connections(params.connections)
                .mllp2(params.mllp2)
                .bind()?;
            let running = listener.spawn(|_: &mllp::Message<'_>| Response::accept())?;
            Ok(Served {
                addr: running.local_addr().to_string(),
                inner: ServedInner::Mllp(running),
            })
        }
        Side::Raw => {
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(io_error)?;
            let addr = tcp.local_addr().map_err(io_error)?.to_string();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let accept = std::thread::spawn(move || {
                let mut conns = Vec::new();
                for stream in tcp.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        conns.push(std::thread::spawn(move || {
                            let _ = raw_serve(stream, framing, params.mllp2);
                        }));
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            });
            Ok(Served {
                addr,
                inner: ServedInner::Raw { stop, accept },
            })
        }
    }
}

/// The fixed part of the raw listener's ACK, before MSA-2.
const RAW_ACK_HEAD: &[u8] =
    b"MSH|^~\\&|RECV|FAC|BENCH|FAC|20260101120000||ACK^A01^ACK|RAW1|P|2.5.1\rMSA|AA|";

/// The raw listener's connection loop: read until the bytes end with the frame end (one
/// message is in flight), answer with a fixed ACK echoing MSH-10.
fn raw_serve(mut tcp: TcpStream, framing: Framing, mllp2: bool) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let (start, end) = (framing.start(), framing.end());
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    let mut ack = Vec::with_capacity(256);
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let n = tcp.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if len < start.len() + end.len() || !buf[..len].ends_with(end) {
            continue;
        }
        ack.clear();
        ack.extend_from_slice(start);
        if mllp2 {
            ack.push(0x06);
        } else {
            ack.extend_from_slice(RAW_ACK_HEAD);
            ack.extend_from_slice(msh10(&buf[start.len()..len]));
            ack.push(b'\r');
        }
        ack.extend_from_slice(end);
        tcp.write_all(&ack)?;
        len = 0;
    }
}

/// MSH-10 of a message: the text between the 9th and the 10th field separator.
fn msh10(msg: &[u8]) -> &[u8] {
    let range = field_range(msg, 10);
    &msg[range]
}

/// The byte range of field `n` of the first segment (MSH-1 is the separator itself).
fn field_range(msg: &[u8], n: usize) -> std::ops::Range<usize> {
    let sep = msg.get(3).copied().unwrap_or(b'|');
    let mut fields = 0;
    let mut start = 0;
    for (i, &b) in msg.iter().enumerate() {
        if b == sep {
            fields += 1;
            if fields == n - 1 {
                start = i + 1;
            } else if fields == n {
                return start..i;
            }
        } else if b == b'\r' {
            break;
        }
    }
    start..start
}

// ---------------------------------------------------------------------------------------------
// Senders

/// The width of the counter written into each message's control ID.
const COUNTER_DIGITS: usize = 10;

/// Writes `n` as zero-padded decimal digits over `out`.
fn put_counter(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Runs the senders: `params.connections` threads, each warming up and then sending its share
/// of the messages. The clock runs from when every thread has warmed up to when the last one
/// is done.
fn drive(addr: &str, side: Side, params: Params, framing: Framing) -> Result<Sample, mllp::Error> {
    let conns = params.connections.max(1);
    let per_conn = params.messages.div_ceil(conns);
    let ready = Arc::new(Barrier::new(conns + 1));
    let mut threads = Vec::new();
    for c in 0..conns {
        let addr = addr.to_string();
        let ready = Arc::clone(&ready);
        threads.push(std::thread::spawn(move || {
            let id = format!("C{c:03}-{}", "0".repeat(COUNTER_DIGITS));
            let msg = adt_message(params.size, &id).into_bytes();
            let ids = field_range(&msg, 10);
            let digits = ids.end - COUNTER_DIGITS..ids.end;
            let run = match side {
                Side::Mllp => mllp_sender(&addr, msg, digits, params, framing, per_conn, &ready),
                Side::Raw => raw_sender(&addr, msg, digits, params, framing, per_conn, &ready),
            };
            if run.is_err() {
                // Do not leave the other threads waiting at the barrier.
                ready.wait();
            }
            run
        }));
    }
    ready.wait();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(per_conn * conns);
    let mut bytes = 0;
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok((l, b))) => {
                latencies.extend(l);
                bytes += b;
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(bench_error("a sender thread panicked")),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(Sample {
        messages: latencies.len() as u64,
        bytes,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

type SenderRun = Result<(Vec<Duration>, u64), mllp::Error>;

/// One connection of this crate's [`Sender`].
fn mllp_sender(
    addr: &str,
    mut msg: Vec<u8>,
    digits: std::ops::Range<usize>,
    params: Params,
    framing: Framing,
    count: usize,
    ready: &Barrier,
) -> SenderRun {
    let mut builder = Sender::builder(addr);
    if params.tls {
        builder = builder.tls(tls::client()?);
    }
    let mut sender = builder.framing(framing).mllp2(params.mllp2).build()?;
    let mut latencies = Vec::with_capacity(count);
    let mut n = 0u64;
    let mut one = |msg: &mut Vec<u8>, sender: &mut Sender| -> Result<Duration, mllp::Error> {
        n += 1;
        put_counter(&mut msg[digits.clone()], n);
        let t = Instant::now();
        let ack = sender.send_bytes(msg)?;
        let took = t.elapsed();
        if !ack.is_success() {
            return Err(bench_error(format!(
                "the listener answered {} to a benchmark message",
                ack.code.as_str()
            )));
        }
        Ok(took)
    };
    for _ in 0..params.warmup {
        one(&mut msg, &mut sender)?;
    }
    ready.wait();
    for _ in 0..count {
        latencies.push(one(&mut msg, &mut sender)?);
    }
    Ok((latencies, (msg.len() * count) as u64))
}

/// One connection of the raw sender: write the framed bytes, read until the reply ends with
/// the frame end sequence.
fn raw_sender(
    addr: &str,
    msg: Vec<u8>,
    digits: std::ops::Range<usize>,
    params: Params,
    framing: Framing,
    count: usize,
    ready: &Barrier,
) -> SenderRun {
    let mut tcp = TcpStream::connect(addr).map_err(io_error)?;
    tcp.set_nodelay(true).map_err(io_error)?;
    let (start, end) = (framing.start(), framing.end());
    let mut frame = Vec::with_capacity(msg.len() + start.len() + end.len());
    frame.extend_from_slice(start);
    frame.extend_from_slice(&msg);
    frame.extend_from_slice(end);
    let digits = digits.start + start.len()..digits.end + start.len();
    let mut buf = vec![0u8; 64 * 1024];
    let mut latencies = Vec::with_capacity(count);
    let mut n = 0u64;
    let mut one = |frame: &mut Vec<u8>| -> io::Result<Duration> {
        n += 1;
        put_counter(&mut frame[digits.clone()], n);
        let t = Instant::now();
        tcp.write_all(frame)?;
        let mut len = 0;
        loop {
            let got = tcp.read(&mut buf[len..])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            len += got;
            if buf[..len].ends_with(end) {
                break;
            }
            if len == buf.len() {
                len = 0; // a reply larger than the buffer: keep only its end
            }
        }
        Ok(t.elapsed())
    };
    for _ in 0..params.warmup {
        one(&mut frame).map_err(io_error)?;
    }
    ready.wait();
    for _ in 0..count {
        latencies.push(one(&mut frame).map_err(io_error)?);
    }
    Ok((latencies, (msg.len() * count) as u64))
}

// ---------------------------------------------------------------------------------------------
// Report

/// Writes a human-readable report: the main figure, the baseline and each side alone, with
/// their ratios to the baseline.
pub fn print(report: &BenchReport, out: &mut dyn Write) -> io::Result<()> {
    let line = |r: &BenchReport, out: &mut dyn Write| {
        let ratio = match r.ratio() {
            Some(x) => format!("{x:>5.2}×"),
            None => "     -".into(),
        };
        writeln!(
            out,
            "{:<26} {:>8} msgs {:>9.0} msg/s {:>8.1} MB/s  p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  {ratio}",
            r.label,
            r.messages,
            r.msgs_per_sec(),
            r.mb_per_sec(),
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.max.as_secs_f64() * 1e6,
        )
    };
    let line = |r: &BenchReport, out: &mut dyn Write| -> io::Result<()> {
        line(r, out)?;
        match &r.syscalls {
            Some(calls) => writeln!(out, "{:<26} {calls}", ""),
            None => Ok(()),
        }
    };
    if let Some(base) = &report.baseline {
        let mut base = (**base).clone();
        base.label.push_str(" (baseline)");
        line(&base, out)?;
    }
    line(report, out)?;
    for side in &report.sides {
        line(side, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte range of MSH-10 in a message built by [`adt_message`].
    fn control_id_range(msg: &str) -> std::ops::Range<usize> {
        field_range(msg.as_bytes(), 10)
    }

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
            let header = mllp::hl7::Header::parse(msg.as_bytes()).unwrap();
            assert_eq!(header.control_id(), Some(&b"X-42"[..]));
        }
    }

    #[test]
    fn counters_and_params_round_trip() {
        let mut b = *b"xxxx";
        put_counter(&mut b, 42);
        assert_eq!(&b, b"0042");
        let p = Params {
            size: 1,
            messages: 2,
            connections: 3,
            warmup: 4,
            mllp2: true,
            tls: true,
        };
        let q = Params::decode(&p.encode()).unwrap();
        assert_eq!(
            (q.size, q.messages, q.connections, q.warmup, q.mllp2, q.tls),
            (1, 2, 3, 4, true, true)
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_runs_in_process_next_to_a_plain_baseline() {
        let config = BenchConfig {
            messages: 40,
            warmup: 2,
            tls: true,
            baseline: true,
            ..BenchConfig::default()
        };
        let report = run(&config).unwrap();
        assert_eq!(report.messages, 40);
        assert_eq!(report.baseline.as_ref().map(|b| b.messages), Some(40));

        // The listener really speaks TLS: a plain sender gets no answer, a TLS one does.
        let params = Params::of(&config);
        let served = serve(Side::Mllp, params, config.framing, config.charset).unwrap();
        let msg = adt_message(200, "T1");
        let mut plain = Sender::builder(served.addr.as_str())
            .retry(mllp::RetryPolicy::none())
            .ack_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        assert!(plain.send(&msg).is_err());
        let mut tls = Sender::builder(served.addr.as_str())
            .tls(tls::client().unwrap())
            .build()
            .unwrap();
        assert!(tls.send(&msg).unwrap().is_success());
        served.stop();
    }

    #[test]
    fn every_pairing_runs_in_process() {
        let config = BenchConfig {
            messages: 50,
            warmup: 5,
            sides: true,
            ..BenchConfig::default()
        };
        let report = run(&config).unwrap();
        assert_eq!(report.messages, 50);
        assert_eq!(report.sides.len(), 2);
        assert!(report.ratio().is_some());
        let mut out = Vec::new();
        print(&report, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 4);
    }
}
