//! A MongoDB wire-protocol server for tests: `nx-27017` (from PyPI, installed by `.ci/run` into
//! the test venv beside python-hl7) on a free loopback port with a data directory of its own,
//! or a real MongoDB named by `MLLP_TEST_MONGODB_URI`.
//!
//! The tests speak only the driver's API to the server, so they run unchanged against either.
//! A test that must stop and restart the server ([`MongoServer::stop`], [`MongoServer::start_again`])
//! can do that only with the local `nx-27017`; [`MongoServer::can_restart`] says which it has.

use crate::free_port;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip;

/// The longest a server is waited for to accept connections after it is started.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// A MongoDB wire-protocol server for one test: stopped (killed) when dropped.
pub struct MongoServer {
    kind: Kind,
}

enum Kind {
    /// A real server the environment named: never stopped by the tests.
    External { uri: String },
    /// An `nx-27017` child process.
    Local {
        program: PathBuf,
        port: u16,
        dir: PathBuf,
        child: Option<Child>,
    },
}

impl MongoServer {
    /// The server for the test `name`: the one `MLLP_TEST_MONGODB_URI` names, else a fresh
    /// `nx-27017` on a free loopback port (data in a scratch directory), ready to accept
    /// connections. `None` (and a notice, a failure under `MLLP_REQUIRE_ALL=1`) when neither is
    /// available.
    #[track_caller]
    pub fn start(name: &str) -> Option<MongoServer> {
        if let Some(uri) = std::env::var_os("MLLP_TEST_MONGODB_URI") {
            let uri = uri.to_string_lossy().trim_end_matches('/').to_owned();
            return Some(MongoServer {
                kind: Kind::External { uri },
            });
        }
        let Some(program) = program() else {
            skip(
                "no nx-27017 (the MongoDB wire-protocol test server, which .ci/run installs \
                 into target/py-venv) and no MLLP_TEST_MONGODB_URI",
            );
            return None;
        };
        let port = free_port();
        let dir = crate::scratch_dir(&format!("mongo-{name}"));
        let mut server = MongoServer {
            kind: Kind::Local {
                program,
                port,
                dir,
                child: None,
            },
        };
        server.start_again();
        Some(server)
    }

    /// The server's URI with no database and no options: `mongodb://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        match &self.kind {
            Kind::External { uri } => uri.clone(),
            Kind::Local { port, .. } => format!("mongodb://127.0.0.1:{port}"),
        }
    }

    /// Whether this is the local test server, which the tests can stop and start again.
    pub fn can_restart(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }

    /// The process id of the local server while it runs (to stop it with
    /// [`Paused`](crate::pause::Paused), say); `None` for a real server.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Local { child, .. } => child.as_ref().map(std::process::Child::id),
            Kind::External { .. } => None,
        }
    }

    /// Kills the local server (SIGKILL, as a crash) and waits for it to exit. Its port then
    /// refuses connections until [`start_again`](Self::start_again). Panics for a real server.
    pub fn stop(&mut self) {
        let Kind::Local { child, .. } = &mut self.kind else {
            panic!("a server named by MLLP_TEST_MONGODB_URI is not stopped by the tests");
        };
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the local server (again) on the same port with the same data directory, and
    /// waits (at most [`START_LIMIT`]) until it accepts a connection. Panics when it does not.
    pub fn start_again(&mut self) {
        let Kind::Local {
            program,
            port,
            dir,
            child,
        } = &mut self.kind
        else {
            panic!("a server named by MLLP_TEST_MONGODB_URI is not started by the tests");
        };
        assert!(child.is_none(), "the test server is running already");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join("server.log");
        let spawned = Command::new(&*program)
            .args(["--host", "127.0.0.1", "-p", &port.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .arg("--log-file")
            .arg(&log)
            .arg("--pid-file")
            .arg(dir.join("server.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let running = child.insert(spawned);
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        let end = Instant::now() + START_LIMIT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = running.try_wait() {
                panic!(
                    "nx-27017 on port {port} exited ({status}) before it accepted a \
                     connection: {}",
                    tail(&log)
                );
            }
            if Instant::now() >= end {
                panic!(
                    "nx-27017 on port {port} accepted no connection within {START_LIMIT:?}: {}",
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        if let Kind::Local { child, dir, .. } = &mut self.kind {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `nx-27017`: `MLLP_TEST_NX27017`, else beside `MLLP_TEST_PYTHON`, else in the workspace's
/// `target/py-venv/bin`.
fn program() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MLLP_TEST_NX27017") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(python) = std::env::var_os("MLLP_TEST_PYTHON") {
        if let Some(bin) = Path::new(&python).parent() {
            candidates.push(bin.join("nx-27017"));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(workspace.join("target/py-venv/bin/nx-27017"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The last lines of the server's log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
