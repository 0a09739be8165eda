//! Private RabbitMQ nodes for tests: Debian's `rabbitmq-server`, run as the current user on
//! free loopback ports, with every directory (data, logs, config, Erlang cookie) in a scratch
//! directory and an Erlang port mapper of its own, so that nothing system-wide is used or
//! changed. A node stops when its guard drops; every wait is bounded.
//!
//! One node ([`RabbitNode::start`]) or a cluster of several ([`RabbitCluster::start`]: one
//! cookie, one port mapper, joined with `rabbitmqctl join_cluster`).

use crate::free_port;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where Debian's package keeps the server's scripts.
pub const BIN_DIR: &str = "/usr/lib/rabbitmq/bin";

/// How long a node may take to start.
const START_LIMIT: Duration = Duration::from_secs(90);

/// Whether the RabbitMQ server and the Erlang port mapper are installed.
pub fn available() -> bool {
    Path::new(BIN_DIR).join("rabbitmq-server").exists() && which("epmd").is_some()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// What every node of one test shares: the scratch directory (also `HOME`, so the Erlang
/// cookie), the config file and the port mapper.
struct Shared {
    dir: PathBuf,
    epmd_port: u16,
}

impl Shared {
    fn new(name: &str, extra_config: &str) -> Shared {
        let dir = crate::scratch_dir(&format!("rabbitmq-{name}"));
        fs::write(
            dir.join("rabbitmq.conf"),
            format!("loopback_users = none\n{extra_config}"),
        )
        .unwrap();
        fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let cookie = dir.join(".erlang.cookie");
        fs::write(&cookie, format!("MLLPTESTCOOKIE{}", std::process::id())).unwrap();
        set_mode(&cookie, 0o400);
        let shared = Shared {
            dir,
            epmd_port: free_port(),
        };
        // A port mapper of its own, which can be told to stop while nodes are registered.
        let status = shared
            .command("epmd")
            .args(["-daemon", "-relaxed_command_check"])
            .status()
            .expect("cannot run epmd");
        assert!(status.success(), "epmd -daemon failed");
        shared
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", &self.dir)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self
            .command("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

/// One node: its name, ports and directories, and the running server (if any).
struct Node {
    name: String,
    amqp_port: u16,
    dist_port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

impl Node {
    fn new(shared: &Shared, short: &str) -> Node {
        let dir = shared.dir.join(short);
        fs::create_dir_all(dir.join("log")).unwrap();
        Node {
            name: format!("{short}@localhost"),
            amqp_port: free_port(),
            dist_port: free_port(),
            dir,
            server: None,
        }
    }

    fn command(&self, shared: &Shared, program: &str) -> Command {
        let mut cmd = shared.command(Path::new(BIN_DIR).join(program));
        cmd.env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            );
        cmd
    }

    /// Starts the server (the Erlang VM itself is the child, so that a kill reaches it).
    fn spawn(&mut self, shared: &Shared) {
        assert!(self.server.is_none(), "{} is running already", self.name);
        let log = fs::File::create(self.dir.join("log").join("console.log")).unwrap();
        let child = self
            .command(shared, "rabbitmq-server")
            .env("RUNNING_UNDER_SYSTEMD", "true")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start rabbitmq-server");
        self.server = Some(child);
    }

    /// Waits until the node runs the broker and takes AMQP connections.
    fn await_startup(&mut self, shared: &Shared) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(child) = &mut self.server {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited during startup ({status}); its log:\n{}",
                        self.name,
                        self.console_log()
                    );
                }
            }
            let up = self
                .ctl(shared, &["await_startup", "--timeout", "10"])
                .status
                .success()
                && TcpStream::connect(("127.0.0.1", self.amqp_port)).is_ok();
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start within {START_LIMIT:?}; its log:\n{}",
                self.name,
                self.console_log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn console_log(&self) -> String {
        fs::read_to_string(self.dir.join("log").join("console.log")).unwrap_or_default()
    }

    fn ctl(&self, shared: &Shared, args: &[&str]) -> Output {
        let mut cmd = self.command(shared, "rabbitmqctl");
        cmd.args(["-q", "-n", &self.name]).args(args);
        output_within(cmd, Duration::from_secs(60))
    }

    /// Stops the node gracefully (`rabbitmqctl stop`), then reaps it; kills it if it lingers.
    fn stop(&mut self, shared: &Shared) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let _ = self.ctl(shared, &["stop"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the node at once (SIGKILL), as a power cut or an OOM kill would.
    fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd`, killing it after `limit`.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run rabbitmqctl");
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait_with_output().expect("rabbitmqctl output")
}

/// A running private RabbitMQ node, stopped (and its directories removed) on drop.
///
/// ```no_run
/// let node = mllp_testkit::rabbitmq::RabbitNode::start("doc");
/// let url = node.url("%2f"); // amqp://guest:guest@127.0.0.1:PORT/%2f
/// # drop(url);
/// ```
pub struct RabbitNode {
    node: Node,
    shared: Shared,
}

impl RabbitNode {
    /// Starts a node named `name` (a short name: letters, digits, `-`, `_`), waiting until it
    /// takes AMQP connections.
    pub fn start(name: &str) -> RabbitNode {
        RabbitNode::start_with_config(name, "")
    }

    /// As [`start`](Self::start), with `extra` lines appended to `rabbitmq.conf` (a TLS
    /// listener, say).
    pub fn start_with_config(name: &str, extra: &str) -> RabbitNode {
        let shared = Shared::new(name, extra);
        let mut node = Node::new(&shared, name);
        node.spawn(&shared);
        node.await_startup(&shared);
        RabbitNode { node, shared }
    }

    /// The AMQP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.node.amqp_port
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/VHOST` (`vhost` as it goes in a URL: `%2f` is `/`).
    pub fn url(&self, vhost: &str) -> String {
        format!(
            "amqp://guest:guest@127.0.0.1:{}/{vhost}",
            self.node.amqp_port
        )
    }

    /// Runs `rabbitmqctl -q -n NODE ARGS...` (bounded to a minute).
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.node.ctl(&self.shared, args)
    }

    /// Kills the node at once (SIGKILL); [`restart`](Self::restart) brings it back on the same
    /// ports and data.
    pub fn kill(&mut self) {
        self.node.kill();
    }

    /// Stops the node gracefully.
    pub fn stop(&mut self) {
        self.node.stop(&self.shared);
    }

    /// Starts the node again after [`kill`](Self::kill) or [`stop`](Self::stop), on the same
    /// ports and data, and waits until it takes connections.
    pub fn restart(&mut self) {
        self.node.spawn(&self.shared);
        self.node.await_startup(&self.shared);
    }

    /// The process id of the node's Erlang VM while it runs (to stop it with
    /// [`Paused`](crate::pause::Paused), say).
    pub fn pid(&self) -> Option<u32> {
        self.node.server.as_ref().map(Child::id)
    }

    /// The lines of the node's logs (its console and the log files RabbitMQ writes) about
    /// recovering queues after an unclean shutdown, where RabbitMQ says how many persistent
    /// messages it dropped: what a test that lost a confirmed message across a kill shows.
    pub fn recovery_lines(&self) -> String {
        let mut lines = Vec::new();
        let files = fs::read_dir(self.node.dir.join("log"))
            .into_iter()
            .flatten();
        for file in files.flatten() {
            let text = fs::read_to_string(file.path()).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        l.contains("unclean") || l.contains("dropped") || l.contains("recover")
                    })
                    .map(str::to_owned),
            );
        }
        lines.join("\n")
    }

    /// The scratch directory of this node (certificates for a TLS listener can go there).
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.node.stop(&self.shared);
    }
}

/// A cluster of private RabbitMQ nodes on loopback, stopped on drop.
pub struct RabbitCluster {
    nodes: Vec<Node>,
    shared: Shared,
}

impl RabbitCluster {
    /// Starts `size` nodes named `NAME-1` ... `NAME-size` and joins every one to the first.
    pub fn start(name: &str, size: usize) -> RabbitCluster {
        assert!(size >= 1);
        let shared = Shared::new(name, "");
        let mut nodes: Vec<Node> = (1..=size)
            .map(|i| Node::new(&shared, &format!("{name}-{i}")))
            .collect();
        for node in &mut nodes {
            node.spawn(&shared);
        }
        for node in &mut nodes {
            node.await_startup(&shared);
        }
        let first = nodes[0].name.clone();
        for node in &nodes[1..] {
            for args in [
                &["stop_app"][..],
                &["join_cluster", &first][..],
                &["start_app"][..],
            ] {
                let out = node.ctl(&shared, args);
                assert!(
                    out.status.success(),
                    "rabbitmqctl -n {} {}: {}",
                    node.name,
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let cluster = RabbitCluster { nodes, shared };
        let out = cluster.ctl(0, &["cluster_status"]);
        let status = String::from_utf8_lossy(&out.stdout);
        for node in &cluster.nodes {
            assert!(
                status.contains(&node.name),
                "{} not in: {status}",
                node.name
            );
        }
        cluster
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: for clippy).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The AMQP port of node `i` (0-based).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].amqp_port
    }

    /// The Erlang node name of node `i`.
    pub fn node_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// `amqp://guest:guest@127.0.0.1:P1,127.0.0.1:P2,.../VHOST`: every node, in order.
    pub fn url(&self, vhost: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.amqp_port))
            .collect();
        format!("amqp://guest:guest@{}/{vhost}", hosts.join(","))
    }

    /// Runs `rabbitmqctl -q -n NODE_i ARGS...` (bounded to a minute).
    pub fn ctl(&self, i: usize, args: &[&str]) -> Output {
        self.nodes[i].ctl(&self.shared, args)
    }

    /// Stops node `i` gracefully (the others keep the quorum).
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop(&self.shared);
    }

    /// Kills node `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again, on its ports and data, and waits until it takes connections.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn(&self.shared);
        self.nodes[i].await_startup(&self.shared);
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().rev() {
            node.stop(&self.shared);
        }
    }
}
