//! `mllp check listener|sender` against real implementations on loopback: this crate's own
//! listener and sender (every row passes), python-hl7's asyncio server and `MLLPClient`,
//! hl7apy's `MLLPServer`, node-hl7-server and node-hl7-client, and simple-hl7's server and
//! client. Each test pins what that peer really does, row by row.
//!
//! The Python peers need `MLLP_TEST_PYTHON` (a venv with python-hl7 and hl7apy), the Node peers
//! the packages `.ci/run` installs into `target/node-peers` (or `MLLP_TEST_NODE_PEERS`); a
//! missing one is a visible skip, and a failure under `MLLP_REQUIRE_ALL=1`. The peer scripts
//! are in `tests/peers/`; every one listens and connects on 127.0.0.1 only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::process::{listen, mllp};

/// The longest a peer may take to say its port.
const START: Duration = Duration::from_secs(20);

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A peer process: killed when dropped (its standard input closes too, which ends it).
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a peer server and returns it with the port it printed.
fn server(mut cmd: Command) -> (Peer, u16) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the peer starts");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let peer = Peer(child);
    let line = rx
        .recv_timeout(START)
        .unwrap_or_else(|_| panic!("the peer said no port within {START:?}"));
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port {line:?}"));
    (peer, port)
}

/// The Python of the venv, with hl7apy as well when `hl7apy` is set.
fn python(hl7apy: bool) -> Option<PathBuf> {
    let python = common::python()?;
    if hl7apy {
        let ok = Command::new(&python)
            .args(["-c", "import hl7apy.mllp"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            common::skip(format!("{} cannot import hl7apy", python.display()));
            return None;
        }
    }
    Some(python)
}

/// `node`, with the Node peers' packages on its module path.
fn node() -> Option<Command> {
    let dir = std::env::var_os("MLLP_TEST_NODE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/node-peers"));
    let modules = dir.join("node_modules");
    for package in ["node-hl7-server", "node-hl7-client", "simple-hl7"] {
        if !modules.join(package).is_dir() {
            common::skip(format!(
                "{package} is not installed in {} (.ci/run installs it)",
                modules.display()
            ));
            return None;
        }
    }
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", modules);
    Some(cmd)
}

/// One row of a JSON report: (verdict, evidence).
fn row(json: &str, check: &str) -> (String, String) {
    let at = json
        .find(&format!("{{\"check\":\"{check}\""))
        .unwrap_or_else(|| panic!("no row {check} in {json}"));
    let field = |name: &str| {
        let key = format!("\"{name}\":\"");
        let start = json[at..].find(&key).unwrap() + at + key.len();
        let mut out = String::new();
        let mut chars = json[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => out.push(chars.next().unwrap_or('\\')),
                c => out.push(c),
            }
        }
        out
    };
    (field("verdict"), field("evidence"))
}

/// Asserts the verdict of `check` and that its evidence contains `says`.
#[track_caller]
fn pin(json: &str, check: &str, verdict: &str, says: &str) {
    let (v, e) = row(json, check);
    assert!(
        v == verdict && e.contains(says),
        "{check}: {v} {e:?}, expected {verdict} with {says:?}"
    );
}

/// Every row of `json` passes.
#[track_caller]
fn all_pass(json: &str) {
    assert!(
        json.contains("\"warned\":0,\"failed\":0,\"skipped\":0"),
        "{json}"
    );
}

/// Runs `mllp check listener 127.0.0.1:PORT` with short waits and returns the JSON line.
fn check_listener(port: u16, extra: &[&str]) -> (i32, String) {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "check",
        "listener",
        &addr,
        "--json",
        "--wait",
        "0.5",
        "--ack-timeout",
        "2",
        "--max-size",
        "1048576",
        "--include-malformed",
    ];
    args.extend_from_slice(extra);
    let ended = mllp(&args);
    let json = ended.stdout.last().cloned().unwrap_or_default();
    assert!(json.starts_with('{'), "{ended:?}");
    (ended.code, json)
}

/// A file of six test messages, segments on lines, messages apart by a blank line.
fn six_messages(tag: &str) -> PathBuf {
    let dir = common::scratch_dir(&format!("check-{tag}"));
    let text: Vec<String> = (1..=6)
        .map(|i| {
            format!(
                "MSH|^~\\&|SND|SF|RCV|RF|20260101120000||ADT^A01^ADT_A01|PEER-{i}|P|2.5.1\n\
                 PID|1||{i}||DOE^JANE\n"
            )
        })
        .collect();
    let path = dir.join("messages.txt");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

/// Runs `mllp check sender 127.0.0.1:0 --wait WAIT`, then `sender` (given the port and the file of six
/// messages) against it; returns the check's exit code and JSON line.
fn check_sender(tag: &str, wait: &str, sender: impl FnOnce(u16, &Path) -> Child) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args(["check", "sender", "127.0.0.1:0", "--json", "--wait", wait])
        .args(["--first-wait", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mllp check starts");
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let check = Peer(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(out), &mut text);
        let _ = out_tx.send(text);
    });
    let line = rx
        .recv_timeout(START)
        .expect("the check says where it listens");
    let port: u16 = line
        .split_whitespace()
        .find_map(|w| {
            w.trim_end_matches(':')
                .rsplit_once(':')
                .map(|(_, p)| p.to_owned())
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let file = six_messages(tag);
    let _sender = Peer(sender(port, &file));
    // Every step of the script is bounded by --wait.
    let stdout = out_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the check ends within 60 s");
    let mut check = check;
    let code = check.0.wait().expect("exit status").code().unwrap_or(-1);
    let json = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(json.starts_with('{'), "{stdout}");
    (code, json)
}

#[test]
fn mllp_listener_passes_every_row() {
    let store = common::scratch_dir("check-listen");
    let (_listener, addr) = listen(&store, &[]);
    let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let (code, json) = check_listener(port, &[]);
    all_pass(&json);
    assert_eq!(code, 0);
    pin(
        &json,
        "ack-per-message",
        "pass",
        "10 messages, one reply frame each",
    );
    pin(&json, "junk", "pass", "reply: AR");
}

#[test]
fn mllp_listener_over_tls_shows_its_certificate() {
    let store = common::scratch_dir("check-listen-tls");
    let (cert, key) = (
        common::cert_path("server.pem"),
        common::cert_path("server.key"),
    );
    let (_listener, addr) = listen(&store, &["--tls-cert", &cert, "--tls-key", &key]);
    let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let ca = common::cert_path("ca.pem");
    let (code, json) = check_listener(port, &["--tls-ca", &ca, "--tls-domain", "localhost"]);
    all_pass(&json);
    assert_eq!(code, 0);
    // The test certificate: CN localhost, from the test CA, valid until 2126.
    pin(
        &json,
        "tls-certificate",
        "pass",
        "subject CN \"localhost\", issuer CN \"mllp test CA\", expires in 3",
    );
    // The protocol and cipher agreed, as the OpenSSL connector reports them.
    pin(&json, "tls-protocol", "pass", "TLSv1.3, cipher TLS_");
}

#[test]
fn mllp_sender_passes_every_row() {
    // Its resend comes after the ACK timeout (1 s, well above the check's 250 ms hold of the
    // first ACK), a backoff and a reconnection: --wait 3.
    let (code, json) = check_sender("mllp", "3", |port, file| {
        Command::new(env!("CARGO_BIN_EXE_mllp"))
            .args(["send", &format!("127.0.0.1:{port}")])
            .arg(file)
            .args(["--ack-timeout", "1", "--attempts", "9", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    all_pass(&json);
    assert_eq!(code, 0);
    pin(&json, "resend-no-ack", "pass", "resent MSH-10 PEER-2");
    pin(
        &json,
        "checks-msa2",
        "pass",
        "ignored an ACK naming PEER-5X",
    );
    pin(&json, "resend-after-drop", "pass", "resent MSH-10 PEER-6");
    pin(&json, "no-duplicates", "pass", "no message was sent again");
}

#[test]
fn python_hl7_server() {
    let Some(python) = python(false) else { return };
    let mut cmd = Command::new(python);
    cmd.arg(peers_dir().join("python_hl7_server.py"));
    let (_peer, port) = server(cmd);
    let (code, json) = check_listener(port, &[]);
    assert_eq!(code, 1, "{json}");
    pin(
        &json,
        "keeps-connection",
        "pass",
        "10 messages on one connection",
    );
    pin(&json, "ack-per-message", "pass", "one reply frame each");
    pin(&json, "msa2", "pass", "MSA-2 = MSH-10");
    pin(&json, "ack-msh9", "pass", "ACK^A01^ACK");
    pin(&json, "two-in-one-write", "pass", "second: AA");
    // Its streams decode ASCII by default, and read frames up to asyncio's 64 KiB limit.
    pin(
        &json,
        "non-ascii",
        "fail",
        "closed the connection without an ACK",
    );
    pin(
        &json,
        "largest-message",
        "warn",
        "largest accepted 16 KiB; 64 KiB: closed",
    );
    pin(&json, "junk", "warn", "closed the connection");
}

#[test]
fn hl7apy_server() {
    let Some(python) = python(true) else { return };
    let mut cmd = Command::new(python);
    cmd.arg(peers_dir().join("hl7apy_server.py"));
    let (_peer, port) = server(cmd);
    let (code, json) = check_listener(port, &[]);
    assert_eq!(code, 1, "{json}");
    // One message per connection: it answers, then closes.
    pin(
        &json,
        "keeps-connection",
        "warn",
        "closed the connection after every message",
    );
    pin(&json, "ack-per-message", "pass", "one reply frame each");
    pin(&json, "msa2", "pass", "MSA-2 = MSH-10");
    pin(
        &json,
        "two-in-one-write",
        "fail",
        "second: closed the connection without an ACK",
    );
    pin(&json, "non-ascii", "pass", "AA");
    // It reads byte by byte into a growing string: large messages take too long.
    pin(&json, "largest-message", "warn", "largest accepted");
}

#[test]
fn node_hl7_server() {
    let Some(mut cmd) = node() else { return };
    cmd.arg(peers_dir().join("node_hl7_server.js"));
    let (_peer, port) = server(cmd);
    let (code, json) = check_listener(port, &[]);
    assert_eq!(code, 1, "{json}");
    pin(
        &json,
        "keeps-connection",
        "pass",
        "10 messages on one connection",
    );
    // It never clears its buffer: the k-th message on a connection gets k ACKs.
    pin(
        &json,
        "ack-per-message",
        "fail",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 (expected 1 each)",
    );
    pin(&json, "ack-msh9", "warn", "ACK^A01^ACK_A01");
    pin(&json, "ack-terminator", "warn", "ends with nothing");
    pin(&json, "non-ascii", "pass", "AA");
    pin(
        &json,
        "largest-message",
        "pass",
        "every size up to 1 MiB accepted",
    );
    pin(&json, "junk", "warn", "reply: AA");
}

#[test]
fn simple_hl7_server() {
    let Some(mut cmd) = node() else { return };
    cmd.arg(peers_dir().join("simple_hl7_server.js"));
    let (_peer, port) = server(cmd);
    let (code, json) = check_listener(port, &[]);
    assert_eq!(code, 1, "{json}");
    pin(
        &json,
        "keeps-connection",
        "pass",
        "10 messages on one connection",
    );
    pin(&json, "ack-per-message", "pass", "one reply frame each");
    pin(&json, "msa2", "pass", "MSA-2 = MSH-10");
    // Its ACK header is fixed: MSH-9 "ACK", MSH-11 "P", MSH-12 "2.3".
    pin(&json, "ack-msh9", "warn", "\"ACK\"");
    pin(&json, "ack-version", "warn", "MSH-11 \"P\", MSH-12 \"2.3\"");
    pin(&json, "ack-msh10", "warn", "share");
    // A frame must end a read: the second of two frames in one write is lost.
    pin(&json, "two-in-one-write", "fail", "second: no ACK");
    pin(&json, "non-ascii", "pass", "AA");
}

/// The rows every simple sender of the Python and Node libraries shares: it waits for each
/// ACK, never resends, takes any ACK as the answer and does not reconnect.
#[track_caller]
fn simple_sender(json: &str) {
    pin(
        json,
        "waits-for-ack",
        "pass",
        "sent nothing while the ACK was held",
    );
    pin(json, "resend-no-ack", "warn", "no resend within");
    pin(json, "after-ae", "pass", "took the AE as final");
    pin(json, "after-ar", "pass", "took the AR as final");
    pin(
        json,
        "checks-msa2",
        "fail",
        "took an ACK naming PEER-5X as the ACK of PEER-5",
    );
    pin(json, "resend-after-drop", "warn", "nothing within");
    pin(json, "reconnect", "warn", "no new connection");
    pin(json, "no-duplicates", "pass", "no message was sent again");
}

#[test]
fn python_hl7_client() {
    let Some(python) = python(false) else { return };
    let (code, json) = check_sender("python", "1", |port, file| {
        Command::new(&python)
            .arg(peers_dir().join("python_hl7_client.py"))
            .arg(port.to_string())
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    assert_eq!(code, 1, "{json}");
    pin(&json, "framing", "pass", "the last segment ends with CR");
    simple_sender(&json);
}

fn node_client(script: &'static str) -> Option<(i32, String)> {
    node()?;
    Some(check_sender(script, "1", |port, file| {
        let mut cmd = node().unwrap();
        cmd.arg(peers_dir().join(script))
            .arg(port.to_string())
            .arg(file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }))
}

#[test]
fn node_hl7_client() {
    let Some((code, json)) = node_client("node_hl7_client.js") else {
        return;
    };
    assert_eq!(code, 1, "{json}");
    pin(
        &json,
        "framing",
        "warn",
        "the last segment ends with no terminator",
    );
    simple_sender(&json);
}

#[test]
fn simple_hl7_client() {
    let Some((code, json)) = node_client("simple_hl7_client.js") else {
        return;
    };
    assert_eq!(code, 1, "{json}");
    pin(
        &json,
        "framing",
        "warn",
        "the last segment ends with no terminator",
    );
    simple_sender(&json);
}

#[test]
fn mllp_listener_with_mllp2_commit_blocks() {
    let store = common::scratch_dir("check-listen-mllp2");
    let (_listener, addr) = listen(&store, &["--mllp2"]);
    let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let (code, json) = check_listener(port, &["--mllp2"]);
    assert_eq!(code, 0, "{json}");
    assert!(json.contains("\"warned\":0,\"failed\":0,"), "{json}");
    pin(&json, "accepts", "pass", "the first got CA");
    pin(&json, "ack-header", "skip", "commit blocks");
    pin(&json, "junk", "pass", "reply: CR");
}

/// A listener that takes connections and reads, and never answers: every row is bounded by
/// the ACK timeout and the wait, and the report says what did not come.
#[test]
fn a_listener_that_never_answers_fails_within_the_timeouts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut &stream, &mut std::io::sink());
            });
        }
    });
    let started = std::time::Instant::now();
    let addr = format!("127.0.0.1:{port}");
    let ended = mllp(&[
        "check",
        "listener",
        &addr,
        "--json",
        "--wait",
        "0.3",
        "--ack-timeout",
        "0.3",
        "--count",
        "2",
        "--max-size",
        "2048",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ended.code, 1, "{ended:?}");
    let json = ended.stdout.last().unwrap();
    pin(
        json,
        "accepts",
        "fail",
        "0 of 2 plain test messages accepted; the first got no ACK within 300 ms",
    );
    pin(json, "ack-per-message", "fail", "0, 0 (expected 1 each)");
    pin(
        json,
        "largest-message",
        "fail",
        "1 KiB: no ACK within 300 ms",
    );
    pin(json, "idle", "pass", "kept an idle connection open");
}

#[test]
fn nothing_listening_is_exit_2_and_a_mode_is_required() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ended = mllp(&[
        "check",
        "listener",
        &format!("127.0.0.1:{port}"),
        "--connect-timeout",
        "2",
    ]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert!(ended.stderr.contains("cannot connect"), "{}", ended.stderr);
    let ended = mllp(&["check", "127.0.0.1:1"]);
    assert_eq!(ended.code, 2);
    assert!(
        ended.stderr.contains("a listener or a sender"),
        "{}",
        ended.stderr
    );
    let ended = mllp(&["check", "sender", "--tls"]);
    assert_eq!(ended.code, 2);
    assert!(
        ended
            .stderr
            .contains("--tls is for mllp check listener only"),
        "{}",
        ended.stderr
    );
}
