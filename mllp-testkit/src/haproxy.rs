//! A private HAProxy for tests: a TCP load balancer on a free loopback port in front of MLLP
//! listeners, each checked with HAProxy's `agent-check` on its `--health-addr` port.
//!
//! [`HaProxy::start`] writes a configuration into a scratch directory (see [`config`]), runs
//! `haproxy -f CFG -db` as a child (foreground, no daemon, nothing system-wide: no user switch,
//! no chroot, no log server), and waits, bounded, until it answers on its admin socket, which it
//! opens only after binding the frontend. The admin socket also tells a test what HAProxy thinks
//! of each server ([`HaProxy::servers`]). The child is killed when the guard drops.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long HAProxy may take to start.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Where Debian's package installs HAProxy.
pub const DEBIAN_PATH: &str = "/usr/sbin/haproxy";

/// The `haproxy` program: Debian's, else the first on `PATH`.
pub fn program() -> Option<PathBuf> {
    if Path::new(DEBIAN_PATH).is_file() {
        return Some(PathBuf::from(DEBIAN_PATH));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("haproxy"))
            .find(|p| p.is_file())
    })
}

/// Whether HAProxy is installed.
pub fn available() -> bool {
    program().is_some()
}

/// One server behind the balancer: an MLLP listener and, optionally, its health port.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The server's name in HAProxy (and in [`HaProxy::servers`]).
    pub name: String,
    /// The listener's `HOST:PORT`.
    pub addr: String,
    /// The port of its `--health-addr` (on the same host), for `agent-check`.
    pub health_port: Option<u16>,
    /// Whether HAProxy starts each connection with a PROXY protocol v2 header
    /// (`send-proxy-v2`), naming the sender to a listener run with `--proxy-protocol-from`.
    pub send_proxy_v2: bool,
}

/// The test configuration: MLLP in `mode tcp` with hour-long client and server timeouts,
/// `option tcpka`, `balance leastconn`, `option redispatch` with 3 retries (a connection that
/// cannot reach a dead listener goes to another), a TCP connect check every 300 ms (down after
/// 2 failures, up after 1 success) and an agent check every 300 ms on each health port.
/// `deploy/haproxy.cfg` is the production version of the same.
pub fn config(frontend_port: u16, admin_socket: &Path, backends: &[Backend]) -> String {
    let mut cfg = format!(
        "global\n\
         \x20   maxconn 4096\n\
         \x20   stats socket {} mode 600 level admin\n\
         \n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 1h\n\
         \x20   timeout server 1h\n\
         \x20   timeout check 1s\n\
         \x20   option tcpka\n\
         \x20   option redispatch\n\
         \x20   retries 3\n\
         \n\
         frontend mllp\n\
         \x20   bind 127.0.0.1:{frontend_port}\n\
         \x20   default_backend listeners\n\
         \n\
         backend listeners\n\
         \x20   balance leastconn\n",
        admin_socket.display()
    );
    for b in backends {
        let _ = write!(
            cfg,
            "    server {} {} check inter 300ms fall 2 rise 1",
            b.name, b.addr
        );
        if let Some(port) = b.health_port {
            let _ = write!(cfg, " agent-check agent-port {port} agent-inter 300ms");
        }
        if b.send_proxy_v2 {
            cfg.push_str(" send-proxy-v2");
        }
        cfg.push('\n');
    }
    cfg
}

/// What HAProxy's `show stat` says about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its name in the configuration.
    pub name: String,
    /// `UP`, `DOWN`, `DRAIN`, `MAINT`, `UP 1/2` (going down), `DOWN 1/1` (going up)...
    pub status: String,
    /// Its current weight (0 while drained).
    pub weight: u32,
    /// Connections open to it now.
    pub current: u64,
    /// Connections it has been given since HAProxy started.
    pub total: u64,
}

/// A running HAProxy; killed (and its directory removed) when dropped.
pub struct HaProxy {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl HaProxy {
    /// Starts HAProxy on a free port of 127.0.0.1 in front of `backends`, and waits (bounded)
    /// until it runs. `name` names the scratch directory. Panics, with HAProxy's output, when it
    /// does not start; check [`available`] first.
    pub fn start(name: &str, backends: &[Backend]) -> HaProxy {
        let program = program().expect("HAProxy is not installed");
        let dir = crate::scratch_dir(&format!("haproxy-{name}"));
        let port = crate::free_port();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config(port, &dir.join("admin.sock"), backends)).unwrap();
        let out = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child = Command::new(program)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot run haproxy");
        let mut proxy = HaProxy { child, dir, port };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("haproxy exited at startup ({status}):\n{}", proxy.log());
            }
            if proxy
                .command("show info")
                .is_some_and(|s| s.contains("Pid:"))
            {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not start within {START_LIMIT:?}:\n{}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The frontend's address, `127.0.0.1:PORT`: where senders connect.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// HAProxy's standard output and error so far (warnings, server state changes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// Runs one command on the admin socket; its answer, or `None` when the socket cannot be
    /// reached (yet) or does not answer within a second.
    pub fn command(&self, command: &str) -> Option<String> {
        use std::os::unix::net::UnixStream;
        let mut sock = UnixStream::connect(self.dir.join("admin.sock")).ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        sock.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
        sock.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// The servers of the backend as HAProxy sees them now (empty when the admin socket does
    /// not answer).
    pub fn servers(&self) -> Vec<Server> {
        self.command("show stat")
            .map(|csv| parse_stat(&csv))
            .unwrap_or_default()
    }

    /// The server named `name`, if HAProxy reports it.
    pub fn server(&self, name: &str) -> Option<Server> {
        self.servers().into_iter().find(|s| s.name == name)
    }

    /// Polls until the server `name` satisfies `cond`, at most `limit`; whether it did.
    pub fn wait_for(
        &self,
        name: &str,
        limit: Duration,
        mut cond: impl FnMut(&Server) -> bool,
    ) -> bool {
        crate::eventually(limit, || self.server(name).is_some_and(|s| cond(&s)))
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server rows of `show stat` (CSV with a `# pxname,svname,...` header), of the backend
/// `listeners`.
pub fn parse_stat(csv: &str) -> Vec<Server> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split(',').collect();
    let col = |name: &str| names.iter().position(|n| *n == name);
    let (Some(px), Some(sv), Some(status), Some(weight), Some(scur), Some(stot)) = (
        col("pxname"),
        col("svname"),
        col("status"),
        col("weight"),
        col("scur"),
        col("stot"),
    ) else {
        return Vec::new();
    };
    lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() == names.len() || f.len() + 1 == names.len())
        .filter(|f| f[px] == "listeners" && !matches!(f[sv], "FRONTEND" | "BACKEND"))
        .map(|f| Server {
            name: f[sv].to_owned(),
            status: f[status].to_owned(),
            weight: f[weight].parse().unwrap_or(0),
            current: f[scur].parse().unwrap_or(0),
            total: f[stot].parse().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_backend_and_its_agent() {
        let cfg = config(
            7000,
            Path::new("/tmp/x.sock"),
            &[
                Backend {
                    name: "l1".into(),
                    addr: "127.0.0.1:7001".into(),
                    health_port: Some(7101),
                    send_proxy_v2: false,
                },
                Backend {
                    name: "l2".into(),
                    addr: "127.0.0.1:7002".into(),
                    health_port: None,
                    send_proxy_v2: true,
                },
            ],
        );
        assert!(cfg.contains("bind 127.0.0.1:7000\n"), "{cfg}");
        assert!(cfg.contains(
            "server l1 127.0.0.1:7001 check inter 300ms fall 2 rise 1 agent-check agent-port 7101"
        ));
        assert!(cfg
            .contains("server l2 127.0.0.1:7002 check inter 300ms fall 2 rise 1 send-proxy-v2\n"));
        assert!(cfg.contains("balance leastconn") && cfg.contains("option tcpka"));
    }

    #[test]
    fn stat_rows_of_the_backend_servers() {
        let csv = "# pxname,svname,scur,stot,status,weight,\n\
                   mllp,FRONTEND,1,9,OPEN,,\n\
                   listeners,l1,1,5,UP,1,\n\
                   listeners,l2,0,4,DRAIN,0,\n\
                   listeners,BACKEND,1,9,UP,1,\n";
        let servers = parse_stat(csv);
        assert_eq!(servers.len(), 2);
        assert_eq!(
            servers[1],
            Server {
                name: "l2".into(),
                status: "DRAIN".into(),
                weight: 0,
                current: 0,
                total: 4
            }
        );
        assert!(parse_stat("").is_empty());
        assert!(parse_stat("garbage\n").is_empty());
    }
}
