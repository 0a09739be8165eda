//! A pool of `mllp listen` processes behind a load balancer, and senders that push through it:
//! the parts of the scale-out tests and measurements.
//!
//! A [`Member`] is one `mllp listen ... --health-addr 127.0.0.1:0` whose standard output is
//! collected on a thread (one line per acknowledged message, then the summary), so that its
//! share of the traffic is known even after it was killed. [`send_all`] is one sender: the
//! library's `Sender` with a retry policy that rides out a dropped connection, which resends a
//! message until it gets AA (an AE, a failed save, is also worth another try), and records when
//! each AA arrived.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mllp::hl7::AckCode;
use mllp::{RetryPolicy, Sender};

/// How long a listener may take to print its first line.
const START_LIMIT: Duration = Duration::from_secs(30);

/// One running `mllp listen`; killed when dropped.
pub struct Member {
    pub child: Child,
    /// Its MLLP address.
    pub addr: String,
    /// The port of its health server.
    pub health_port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Member {
    /// Starts `mllp listen 127.0.0.1:0 --store STORE --health-addr 127.0.0.1:0 EXTRA...` and
    /// waits (bounded) for its first line.
    pub fn start(store: &str, extra: &[&str]) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mllp"))
            .args(["listen", "127.0.0.1:0", "--store", store])
            .args(["--health-addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mllp binary starts");
        let mut err = child.stderr.take().unwrap();
        let stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        }));
        let out = BufReader::new(child.stdout.take().unwrap());
        let (first_tx, first_rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        let reader = Some(std::thread::spawn(move || {
            let mut out = out.lines();
            let _ = first_tx.send(out.next().and_then(Result::ok));
            for line in out {
                let Ok(line) = line else { break };
                kept.lock().unwrap().push(line);
            }
        }));
        let first = match first_rx.recv_timeout(START_LIMIT) {
            Ok(Some(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
                panic!("mllp listen --store {store} did not start: {err}");
            }
        };
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        let health_port = first
            .rsplit_once(", health on ")
            .and_then(|(_, a)| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no health address in {first:?}"));
        Member {
            child,
            addr,
            health_port,
            lines,
            reader,
            stderr,
        }
    }

    /// The HAProxy server for this member, named `name`.
    pub fn backend(&self, name: &str) -> mllp_testkit::haproxy::Backend {
        mllp_testkit::haproxy::Backend {
            name: name.into(),
            addr: self.addr.clone(),
            health_port: Some(self.health_port),
            send_proxy_v2: false,
        }
    }

    /// How many messages it has printed a line for (each stored and acknowledged).
    pub fn messages(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.starts_with("stopped: "))
            .count()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits up to `limit` for it to exit: its exit code, its summary line (if it printed one)
    /// and its standard error. `None` if it is still running.
    pub fn wait(&mut self, limit: Duration) -> Option<(i32, Option<String>, String)> {
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let err = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let summary = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("stopped: "))
            .cloned();
        Some((status.code().unwrap_or(-1), summary, err))
    }
}

impl Member {
    /// Stops it (SIGKILL) if it still runs, and returns the last 30 distinct lines of its
    /// standard error.
    pub fn diagnose(&mut self) -> String {
        self.kill();
        let err = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        let mut lines: Vec<&str> = err.lines().collect();
        // Lines that differ only in the message and peer they name count once.
        lines.dedup_by(|a, b| a.split(" from ").next() == b.split(" from ").next());
        let start = lines.len().saturating_sub(30);
        lines[start..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The control ID of message `i` of sender `s`.
pub fn control_id(s: usize, i: usize) -> String {
    format!("S{s:02}M{i:05}")
}

/// What one sender did.
#[derive(Debug, Default)]
pub struct Sent {
    /// Each message's control ID and when its AA arrived, in order.
    pub acked: Vec<(String, Instant)>,
    /// Negative ACKs received (each answered by a resend).
    pub negative: usize,
    /// Sends that failed within the sender's retry policy (each answered by a resend).
    pub failed: usize,
    /// The sender's counters at the end (its own retries and reconnections).
    pub stats: mllp::SenderStats,
}

/// A sender for the pool: reconnects at once and keeps trying, 10 ms doubling to 200 ms,
/// within 60 s per message, through a dropped connection or a listener that is gone.
pub fn sender(addr: &str) -> Sender {
    Sender::builder(addr)
        .connect_timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(15))
        .write_timeout(Duration::from_secs(5))
        .total_timeout(Some(Duration::from_secs(60)))
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(10))
                .max_backoff(Duration::from_millis(200))
                .max_attempts(None),
        )
        .build()
        .expect("sender settings")
}

/// Sends messages `0..count` of sender `s` to `addr`, one at a time, each until it gets AA,
/// counting each AA in `progress`. Gives up (returns `Err`) once `deadline` has passed.
pub fn send_all(
    addr: &str,
    s: usize,
    count: usize,
    progress: &AtomicUsize,
    deadline: Instant,
) -> Result<Sent, String> {
    let mut sender = sender(addr);
    let mut sent = Sent::default();
    let mut last = String::from("-");
    for i in 0..count {
        let id = control_id(s, i);
        let message = super::adt(&id);
        loop {
            if Instant::now() >= deadline {
                return Err(format!(
                    "sender {s}: {id} not acknowledged by the deadline ({} AA so far, {} \
                     negative ACKs, {} failed sends, the last: {last})",
                    sent.acked.len(),
                    sent.negative,
                    sent.failed
                ));
            }
            match sender.send(&message) {
                Ok(ack) if ack.code == AckCode::ApplicationAccept => {
                    sent.acked.push((id, Instant::now()));
                    progress.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(ack) => {
                    sent.negative += 1;
                    last = format!("{:?} {}", ack.code, ack.text.unwrap_or_default());
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    sent.failed += 1;
                    last = e.to_string();
                }
            }
        }
    }
    sent.stats = sender.stats();
    Ok(sent)
}

/// How long each sender waited, at worst, for an AA around a disruption that began at `from`
/// and whose effects may show until `to` (a broker node takes seconds to stop): for each
/// sender the longest gap between two consecutive AAs (or between `from` and its first AA)
/// that ends after `from` and starts no later than `to`; the longest first. A sender that was not
/// affected shows about its usual round trip.
pub fn recovery(sent: &[Sent], from: Instant, to: Instant) -> Vec<Duration> {
    let mut stalls: Vec<Duration> = sent
        .iter()
        .map(|s| {
            let mut worst = Duration::ZERO;
            let mut previous: Option<Instant> = None;
            for (_, t) in &s.acked {
                let start = previous.map_or(from, |p| p.max(from));
                if *t > from && start <= to {
                    worst = worst.max(t.saturating_duration_since(start));
                }
                previous = Some(*t);
            }
            worst
        })
        .collect();
    stalls.sort_by(|a, b| b.cmp(a));
    stalls
}

/// The control IDs of the messages stored in the file store directory `dir` (`SEQ-ID.hl7`).
pub fn stored_ids(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .filter_map(|n| {
                    let stem = n.strip_suffix(".hl7")?;
                    stem.split_once('-').map(|(_, id)| id.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether HAProxy is here; a notice (or, under `MLLP_REQUIRE_ALL=1`, a failure) if not.
pub fn haproxy_here() -> bool {
    if mllp_testkit::haproxy::available() {
        return true;
    }
    super::skip("HAProxy is not installed (apt-get install haproxy)");
    false
}

/// Whether RabbitMQ is installed and this build of `mllp` has the RabbitMQ store (cargo
/// feature `amqp`); a notice (or, under `MLLP_REQUIRE_ALL=1`, a failure) if not.
pub fn rabbitmq_here() -> bool {
    if !mllp_testkit::rabbitmq::available() {
        super::skip("RabbitMQ is not installed (apt-get install rabbitmq-server)");
        return false;
    }
    // Nothing listens on port 1: a build with the store fails to connect, one without says so.
    let ended = super::process::mllp(&[
        "listen",
        "127.0.0.1:0",
        "--store",
        "amqp://guest:guest@127.0.0.1:1/%2f?queue=probe",
    ]);
    if ended.stderr.contains("has no amqp store") {
        super::skip("this build of mllp has no RabbitMQ store (cargo feature amqp of mllp-cli)");
        return false;
    }
    true
}

/// A private HAProxy named `name` in front of `members` (servers `l0`, `l1`, ...), returned
/// once it reports every one UP.
pub fn behind_haproxy(name: &str, members: &[Member]) -> mllp_testkit::haproxy::HaProxy {
    let names: Vec<String> = (0..members.len()).map(|i| format!("l{i}")).collect();
    let backends: Vec<_> = members
        .iter()
        .zip(&names)
        .map(|(m, n)| m.backend(n))
        .collect();
    let proxy = mllp_testkit::haproxy::HaProxy::start(name, &backends);
    all_up(
        &proxy,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    proxy
}

/// Waits until HAProxy reports every server in `names` UP.
pub fn all_up(proxy: &mllp_testkit::haproxy::HaProxy, names: &[&str]) {
    for name in names {
        assert!(
            proxy.wait_for(name, Duration::from_secs(10), |s| s.status == "UP"),
            "{name} is not UP: {:?}\n{}",
            proxy.server(name),
            proxy.log()
        );
    }
}

/// Runs `senders` senders of `each` messages through `addr`, calling `during(progress)` on
/// this thread while they run (`progress` counts AAs); the senders' reports. Panics when a
/// sender has not finished within `limit`.
pub fn load(
    addr: &str,
    senders: usize,
    each: usize,
    limit: Duration,
    during: impl FnOnce(&AtomicUsize),
) -> Result<Vec<Sent>, String> {
    let progress = AtomicUsize::new(0);
    let deadline = Instant::now() + limit;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|s| {
                let progress = &progress;
                scope.spawn(move || send_all(addr, s, each, progress, deadline))
            })
            .collect();
        during(&progress);
        let results: Vec<Result<Sent, String>> = handles
            .into_iter()
            .map(|h| h.join().expect("a sender panicked"))
            .collect();
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if errors.is_empty() {
            Ok(results.into_iter().flatten().collect())
        } else {
            Err(errors
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join("\n"))
        }
    })
}

/// Panics with `error` and what each member wrote on standard error (each is stopped).
pub fn fail(members: &mut [Member], error: &str) -> ! {
    let logs: Vec<String> = members
        .iter_mut()
        .enumerate()
        .map(|(i, m)| format!("listener {i}:\n{}", m.diagnose()))
        .collect();
    panic!("{error}\n{}", logs.join("\n"));
}

/// Waits, at most `limit`, until `n` messages have been acknowledged.
pub fn when_acked(progress: &AtomicUsize, n: usize, limit: Duration) {
    assert!(
        super::eventually(limit, || progress.load(Ordering::Relaxed) >= n),
        "the senders are stuck at {} AA",
        progress.load(Ordering::Relaxed)
    );
}

/// How many messages the queue `queue` holds, from `rabbitmqctl list_queues` on node `node`.
pub fn queue_depth(
    cluster: &mllp_testkit::rabbitmq::RabbitCluster,
    node: usize,
    queue: &str,
) -> Option<u64> {
    let out = cluster.ctl(
        node,
        &["list_queues", "name", "messages", "--no-table-headers"],
    );
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut fields = l.split_whitespace();
        (fields.next() == Some(queue))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// What node `node` says of the quorum queue `queue` (in vhost `/`): the queue list (whose
/// leader column comes from the queue's record), the Raft members' own view, the leader Ra
/// knows, the cluster, and the warnings and errors in each node's log; for a failure report.
/// `name` is the name the cluster was started with.
pub fn queue_state(
    cluster: &mllp_testkit::rabbitmq::RabbitCluster,
    name: &str,
    node: usize,
    queue: &str,
) -> String {
    let status = format!("rabbit_quorum_queue:status(<<\"/\">>, <<\"{queue}\">>).");
    let leader = format!("ra_leaderboard:lookup_leader('%2F_{queue}').");
    let mut report = String::new();
    for args in [
        &[
            "list_queues",
            "name",
            "type",
            "leader",
            "members",
            "online",
            "messages",
        ][..],
        &["eval", &status],
        &["eval", &leader],
        &["cluster_status"],
    ] {
        let out = cluster.ctl(node, args);
        report.push_str(&format!("$ rabbitmqctl {}\n", args.join(" ")));
        report.push_str(&String::from_utf8_lossy(&out.stdout));
        report.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // The nodes' own logs: the warnings and errors of each, the last 40 (the directory is the
    // test kit's scratch directory for the cluster `name`).
    let base = std::env::temp_dir().join(format!("mllp-rabbitmq-{name}-{}", std::process::id()));
    for i in 0..cluster.len() {
        let short = cluster
            .node_name(i)
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let Ok(logs) = std::fs::read_dir(base.join(&short).join("log")) else {
            continue;
        };
        for log in logs.flatten() {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("[warn") || l.contains("[erro"))
                .collect();
            report.push_str(&format!("--- {}\n", log.path().display()));
            report.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
            report.push('\n');
        }
    }
    report
}

/// A duration in milliseconds, for the figures.
pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}
