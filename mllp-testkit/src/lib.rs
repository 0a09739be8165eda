//! Test support for the `mllp` crates, shared by the integration tests of every workspace
//! member and by the fuzz targets (dev-only; not published):
//!
//! * [`fuzzing`]: the reference frame splitter, the check functions the fuzz targets run, and
//!   [`fuzzing::ScriptedRead`];
//! * [`proxy`]: a fault-injecting loopback TCP proxy;
//! * [`haproxy`]: a private HAProxy in front of listeners, and [`rabbitmq`]: private RabbitMQ
//!   nodes and clusters;
//! * [`mongo`]: a MongoDB wire-protocol server for the store tests (`nx-27017`, or a real
//!   MongoDB named by `MLLP_TEST_MONGODB_URI`);
//! * [`prometheus`]: a private Prometheus server, and an HTTP GET for metrics endpoints;
//! * [`pause`]: a server process stopped with SIGSTOP (hung) until a guard drops;
//! * the sample corpus (`MLLP_TEST_CORPUS`), the python-hl7 peer (`MLLP_TEST_PYTHON`), and
//!   [`skip`], which fails instead of skipping under `MLLP_REQUIRE_ALL=1`;
//! * the test certificates of `certs/` and the helpers that load them; [`openssl_cmd`]:
//!   `openssl s_server` with them, and password-protected copies of their keys;
//! * [`sockets`]: a connection from a chosen loopback address (127.0.0.5), and the
//!   established connections of a port with their keepalive timers, as `ss` reports them;
//! * a seeded generator, bounded polling, and small HL7 and socket helpers.

pub mod downstream;
pub mod fuzzing;
#[cfg(unix)]
pub mod haproxy;
pub mod mongo;
pub mod openssl_cmd;
#[cfg(unix)]
pub mod pause;
pub mod prometheus;
pub mod proxy;
pub mod rabbitmq;
#[cfg(target_os = "linux")]
pub mod sockets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `MLLP_REQUIRE_ALL=1` is set (`.ci/run` sets it): then nothing may be skipped.
pub fn require_all() -> bool {
    std::env::var_os("MLLP_REQUIRE_ALL").is_some_and(|v| v == "1")
}

/// Says that a test, or a part of one, cannot run here, and why. Under `MLLP_REQUIRE_ALL=1`
/// that fails the test instead, so a CI run never passes by skipping what it could not run.
///
/// The notice is written to the process's standard error directly, not through `eprintln!`,
/// which the test harness captures and hides for a test that passes: a skip shows in the
/// normal output of `cargo test`, as a line starting with `SKIPPED`.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) {
    if require_all() {
        panic!("{reason}: this cannot be skipped, because MLLP_REQUIRE_ALL=1");
    }
    visible(&format!(
        "SKIPPED at {}: {reason} (set MLLP_REQUIRE_ALL=1 to make this a failure)",
        std::panic::Location::caller()
    ));
}

/// Says, where the output of `cargo test` shows it, that an opt-in test was not asked for
/// (never a failure: such a test runs only when its variable is set).
#[track_caller]
pub fn not_asked(reason: impl std::fmt::Display) {
    visible(&format!(
        "NOT RUN at {}: {reason}",
        std::panic::Location::caller()
    ));
}

/// Writes a line to standard error past the test harness's capture.
fn visible(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The sample corpus directory from `MLLP_TEST_CORPUS`, or `None` (and a notice) when unset.
#[track_caller]
pub fn corpus_dir() -> Option<PathBuf> {
    match std::env::var_os("MLLP_TEST_CORPUS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            skip("MLLP_TEST_CORPUS is not set (the corpus part of this test)");
            None
        }
    }
}

/// A handler that accepts every message (AA).
pub fn accept_all(_: &mllp::Message<'_>) -> mllp::Response {
    mllp::Response::accept()
}

/// A TCP connection to `addr`, made within `limit`, whose reads and writes time out after
/// `limit`, without Nagle's delay: a raw peer for a listener under test.
pub fn tcp(addr: std::net::SocketAddr, limit: Duration) -> std::net::TcpStream {
    let tcp = std::net::TcpStream::connect_timeout(&addr, limit).expect("a connection");
    tcp.set_read_timeout(Some(limit)).expect("a read timeout");
    tcp.set_write_timeout(Some(limit)).expect("a write timeout");
    tcp.set_nodelay(true).expect("no delay");
    tcp
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a
/// server process that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The messages a file store keeps in `dir`: its `.hl7` files (not the hidden ones), sorted by
/// name (that is, by arrival), as (file name, text).
pub fn stored_messages(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("the store directory")
        .map(|e| e.expect("a directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            (name.ends_with(".hl7") && !name.starts_with('.')).then_some((path, name))
        })
        .map(|(path, name)| {
            let text = String::from_utf8(std::fs::read(&path).expect("a stored file"))
                .unwrap_or_else(|_| panic!("{name} is not UTF-8"));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

/// The `.hl7` files directly in `dir`, sorted, as (file name, bytes).
pub fn hl7_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "hl7") {
            let bytes = std::fs::read(&path).expect("corpus file");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, bytes));
        }
    }
    files.sort();
    files
}

/// The Python interpreter of a venv with python-hl7 installed, from `MLLP_TEST_PYTHON`, or
/// `None` (and a notice) when unset or unusable. `.ci/run` sets it up.
#[track_caller]
pub fn python() -> Option<PathBuf> {
    let Some(python) = std::env::var_os("MLLP_TEST_PYTHON").map(PathBuf::from) else {
        skip("MLLP_TEST_PYTHON is not set (the python-hl7 interop test)");
        return None;
    };
    let ok = Command::new(&python)
        .args(["-c", "import hl7.mllp"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(format!("{} cannot import hl7.mllp", python.display()));
        return None;
    }
    Some(python)
}

/// A tiny xorshift generator: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    // An endless generator, not an iterator: `next` never ends, so it has no `Option`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Up to `max - 1` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Polls `cond` until it holds or `limit` passes; returns whether it held. For conditions that
/// have no event to wait on (a counter in another thread); the poll interval is short.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A minimal HL7 message with the given control ID.
pub fn adt(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|SENDER|FAC|RECEIVER|FAC|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A01|20260101120000\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    )
}

/// A minimal ADT message with the given control ID and MSH-18, whose PID-5 holds `name` as raw
/// bytes (in whatever character set, or none, the test needs).
pub fn adt_with_raw_name(control_id: &str, msh18: &str, name: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ADT^A01|{control_id}|P|2.5.1||||||{msh18}\r\
         PID|1||1||"
    )
    .into_bytes();
    m.extend_from_slice(name);
    m.extend_from_slice(b"\r");
    m
}

/// Process resident memory in bytes (Linux), or `None`.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The directory of the test certificates (see `generate.sh` there).
pub const CERTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs");

/// The path of a file in the test certificate directory [`CERTS_DIR`].
pub fn cert_path(name: &str) -> String {
    format!("{CERTS_DIR}/{name}")
}

/// The bytes of a file in [`CERTS_DIR`].
pub fn cert(name: &str) -> Vec<u8> {
    let path = cert_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The identity `<name>.pem` + `<name>.key` from [`CERTS_DIR`].
#[cfg(feature = "tls")]
pub fn pem_identity(name: &str) -> mllp::Identity {
    mllp::Identity::Pem {
        cert: cert(&format!("{name}.pem")),
        key: cert(&format!("{name}.key")),
    }
}

/// Client TLS settings that trust the test CA.
#[cfg(feature = "tls")]
pub fn trusting_test_ca() -> mllp::TlsClientConfig {
    mllp::TlsClientConfig::new().add_root_pem(cert("ca.pem"))
}

/// The certificate the TLS listener at `addr` serves (DER), read by the library's TLS client,
/// which trusts both test CAs (`ca.pem`, `untrusted-ca.pem`); and the open connection, to show
/// that it outlives a reload of the listener's certificate.
#[cfg(feature = "tls")]
pub fn served_certificate(
    addr: std::net::SocketAddr,
    limit: Duration,
) -> (Vec<u8>, mllp::Connection<mllp::Stream>) {
    let config = mllp::TlsClientConfig::new()
        .add_root_pem(cert("ca.pem"))
        .add_root_pem(cert("untrusted-ca.pem"));
    let stream = mllp::TlsClient::new(&config)
        .expect("the test TLS client")
        .connect("localhost", tcp(addr, limit), limit)
        .expect("a TLS connection");
    let der = stream
        .tls_peer()
        .and_then(|p| p.certificate_der())
        .expect("the served certificate")
        .to_vec();
    (der, mllp::Connection::new(stream, mllp::Framing::default()))
}

/// Starts `openssl s_server` on 127.0.0.1 (an OS-chosen port) with the test server identity,
/// demanding and verifying a client certificate from the test CA, which the native-tls
/// acceptor cannot do. Its standard streams are piped; it prints its port on stdout. `None`
/// (and a notice) when the `openssl` command is not installed.
#[cfg(feature = "tls")]
pub fn openssl_verifying_server() -> Option<std::process::Child> {
    use std::process::Stdio;
    let spawned = Command::new("openssl")
        .current_dir(CERTS_DIR)
        .args(["s_server", "-accept", "127.0.0.1:0", "-naccept", "1"])
        .args(["-Verify", "1", "-verify_return_error", "-CAfile", "ca.pem"])
        .args(["-cert", "server.pem", "-key", "server.key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match spawned {
        Ok(child) => Some(child),
        Err(_) => {
            skip("no openssl command (the client identity test)");
            None
        }
    }
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mllp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends one framed message to `addr` on a new connection and returns the acknowledgement
/// (every read and write bounded by `limit`); the error as text.
pub fn exchange(addr: &str, message: &[u8], limit: Duration) -> Result<Vec<u8>, String> {
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let mut conn = mllp::Connection::new(tcp, mllp::Framing::default());
    conn.write_frame(message).map_err(|e| e.to_string())?;
    match conn.read_frame().map_err(|e| e.to_string())? {
        Some(ack) => Ok(ack.to_vec()),
        None => Err("closed without an acknowledgement".into()),
    }
}
