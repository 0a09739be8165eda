//! Support for the tests of the command-line tool: the `mllp` binary as a child process
//! ([`process`], [`ListenProc`]), on top of everything in the shared test kit.
#![allow(dead_code)]

#[cfg(unix)]
pub mod pool;
pub mod process;

#[allow(unused_imports)]
pub use mllp_testkit::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running `mllp listen 127.0.0.1:0 --store DIR ...`; killed when dropped.
pub struct ListenProc {
    pub child: std::process::Child,
    /// The address from its `listening on` line.
    pub addr: String,
    /// Its further standard output lines, unless started with `read_stdout` false (then
    /// nobody reads the pipe after the first line).
    pub stdout: Option<std::sync::mpsc::Receiver<String>>,
    /// Kept open (and unread) when nobody reads standard output.
    pub unread_stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
    /// Its standard error, read to the end on a thread.
    pub stderr: Option<std::thread::JoinHandle<String>>,
}

impl ListenProc {
    /// Starts the listener and waits (bounded by the reading of one line) for its address.
    pub fn start(store: &Path, extra: &[&str], read_stdout: bool) -> ListenProc {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_mllp"))
            .args(["listen", "127.0.0.1:0", "--store", store.to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mllp binary starts");
        let mut err = child.stderr.take().expect("stderr pipe");
        let stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout pipe"));
        let mut first = String::new();
        // The listener prints this line at once or exits (closing the pipe): bounded.
        out.read_line(&mut first).expect("the first line");
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        let (stdout, unread_stdout) = if read_stdout {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in out.lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            (Some(rx), None)
        } else {
            (None, Some(out))
        };
        ListenProc {
            child,
            addr,
            stdout,
            unread_stdout,
            stderr,
        }
    }

    /// Sends SIGTERM (Unix).
    pub fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }

    /// Waits up to `limit` for the process to exit; its exit code, or `None` if it did not.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its standard error so far, once it has exited.
    pub fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for ListenProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private RabbitMQ node named `name`, or `None` (and a skip notice) when RabbitMQ is not
/// installed.
pub fn rabbit_node(name: &str) -> Option<mllp_testkit::rabbitmq::RabbitNode> {
    if !mllp_testkit::rabbitmq::available() {
        skip("RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server and epmd) is not installed");
        return None;
    }
    Some(mllp_testkit::rabbitmq::RabbitNode::start(name))
}

/// `rabbitmqctl list_queues` for `queue` on `node`: (messages, queue type). The broker's
/// statistics lag a few seconds behind; poll with [`eventually`].
pub fn rabbit_queue(
    node: &mllp_testkit::rabbitmq::RabbitNode,
    queue: &str,
) -> Option<(u64, String)> {
    let out = node.ctl(&[
        "list_queues",
        "--no-table-headers",
        "name",
        "messages",
        "type",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()? != queue {
                return None;
            }
            let n = fields.next()?.parse().ok()?;
            Some((n, fields.next()?.to_owned()))
        })
}

/// How many consumers `queue` has now (`rabbitmqctl list_consumers`, not a lagging statistic).
pub fn rabbit_consumers(node: &mllp_testkit::rabbitmq::RabbitNode, queue: &str) -> usize {
    let out = node.ctl(&["list_consumers", "--no-table-headers", "queue_name"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(queue))
        .count()
}

/// `mllp listen 127.0.0.1:0 --store STORE --health-addr 127.0.0.1:0 EXTRA...` (a directory or a
/// store URL), with the listener's and the health server's addresses from its first line.
pub fn listen_with_health(store: &str, extra: &[&str]) -> (process::Proc, String, String) {
    let mut args = vec!["listen", "127.0.0.1:0", "--store", store];
    args.extend_from_slice(&["--health-addr", "127.0.0.1:0"]);
    args.extend_from_slice(extra);
    let proc = process::Proc::spawn(&args, None);
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let health = first
        .rsplit_once(", health on ")
        .map(|(_, a)| a.to_owned())
        .unwrap_or_else(|| panic!("no health address in {first:?}"));
    (proc, addr, health)
}

/// What the health server answers one connection (everything until it closes).
pub fn health(addr: &str) -> String {
    try_health(addr).expect("the health server accepts")
}

/// As [`health`]; `None` when nothing answers there (the process has exited, or is exiting:
/// then a connection is refused, reset, or closed without a line).
pub fn try_health(addr: &str) -> Option<String> {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).ok()?;
    (!text.is_empty()).then_some(text)
}

/// Asks the health server at `addr` every 100 ms until it answers `down`, for at most `limit`:
/// how long that took (`None`: it never did), and how long the slowest answer took.
pub fn until_down(addr: &str, limit: Duration) -> (Option<Duration>, Duration) {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < limit {
        let asked = Instant::now();
        let answer = health(addr);
        slowest = slowest.max(asked.elapsed());
        if answer == "down\n" {
            return (Some(started.elapsed()), slowest);
        }
        // The pace of a load balancer's checks, not a synchronisation.
        std::thread::sleep(Duration::from_millis(100));
    }
    (None, slowest)
}

/// Sends SIGHUP to `child` (a reload of its TLS files).
pub fn sighup(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// `mllp send` of one message to `addr` over TLS, trusting the test CA and checking the name
/// `localhost`, one attempt, with `extra` options and the environment `env`: its exit code, and
/// its standard output and error as one text.
pub fn send_tls(addr: &str, id: &str, extra: &[&str], env: &[(&str, &Path)]) -> (i32, String) {
    let ca = cert_path("ca.pem");
    let mut args = vec!["send", addr, "--tls-ca", &ca, "--tls-domain", "localhost"];
    args.extend_from_slice(&["--attempts", "1", "--ack-timeout", "5"]);
    args.extend_from_slice(extra);
    let ended = process::Proc::spawn_env(&args, Some(adt(id).into_bytes()), env).wait();
    (ended.code, format!("{:?} {}", ended.stdout, ended.stderr))
}

/// Sends SIGTERM to `proc`.
pub fn sigterm(proc: &process::Proc) {
    let status = Command::new("kill")
        .args(["-TERM", &proc.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}
