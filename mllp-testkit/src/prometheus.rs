//! A private Prometheus server for tests, and a small HTTP client for it and for `mllp`'s
//! metrics endpoint.
//!
//! [`Prometheus::start`] writes a configuration (scrape and rule evaluation every
//! [`INTERVAL`], the given targets and rule files) and a data directory into a scratch
//! directory, runs `prometheus` as a child on a free port of 127.0.0.1 (nothing system-wide:
//! its own storage, no remote write, no service), and waits, bounded, until it is ready. The
//! child is killed when the guard drops. Queries go through its HTTP API
//! ([`Prometheus::value`], [`Prometheus::alerts`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Prometheus may take to start.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The scrape and evaluation interval of the test server.
pub const INTERVAL: &str = "1s";

/// The `prometheus` program on `PATH` (Debian's package installs `/usr/bin/prometheus`).
pub fn program() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// Whether Prometheus is installed.
pub fn available() -> bool {
    program().is_some()
}

/// `GET http://ADDR/PATH_AND_QUERY` over a new connection (loopback, every read and write
/// bounded by 5 s): the status code and the body.
pub fn http_get(addr: &str, path_and_query: &str) -> Result<(u16, String), String> {
    let limit = Duration::from_secs(5);
    let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(
        tcp,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The body of a chunked answer.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus; killed (and its directory removed) when dropped.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Prometheus {
    /// Starts Prometheus on a free port of 127.0.0.1, scraping `targets` (`HOST:PORT` of
    /// `/metrics` endpoints, job `mllp`) and evaluating the rule files `rules`, every
    /// [`INTERVAL`]. Panics, with its output, when it does not start; check [`available`].
    pub fn start(name: &str, targets: &[String], rules: &[&Path]) -> Prometheus {
        let program = program().expect("Prometheus is not installed");
        let dir = crate::scratch_dir(&format!("prometheus-{name}"));
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let quoted = |v: Vec<String>| v.join(", ");
        let config = format!(
            "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: mllp\n    static_configs:\n      - targets: [{}]\n",
            quoted(rules.iter().map(|r| format!("'{}'", r.display())).collect()),
            quoted(targets.iter().map(|t| format!("'{t}'")).collect()),
        );
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let out = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(program)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot run prometheus");
        let mut prometheus = Prometheus { child, dir, addr };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited at startup ({status}):\n{}",
                    prometheus.log()
                );
            }
            if http_get(&prometheus.addr, "/-/ready").is_ok_and(|(code, _)| code == 200) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {START_LIMIT:?}:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its `HOST:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The value of the instant query `query` when it has exactly one sample.
    pub fn value(&self, query: &str) -> Option<f64> {
        let (code, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", encode(query)),
        )
        .ok()?;
        if code != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The alerts now, as `(alertname, state)` (`pending` or `firing`).
    pub fn alerts(&self) -> Vec<(String, String)> {
        let Ok((200, body)) = http_get(&self.addr, "/api/v1/alerts") else {
            return Vec::new();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        json["data"]["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| {
                        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
                        (text(&a["labels"]["alertname"]), text(&a["state"]))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The health of each scrape target, as `(instance, health)` (`up`, `down`, `unknown`).
    pub fn targets(&self) -> Vec<(String, String)> {
        let Ok((200, body)) = http_get(&self.addr, "/api/v1/targets") else {
            return Vec::new();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        json["data"]["activeTargets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .map(|t| {
                        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
                        (text(&t["labels"]["instance"]), text(&t["health"]))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_query_encoding() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
        assert_eq!(encode("a{b=\"AA\"}"), "a%7Bb%3D%22AA%22%7D");
    }
}
