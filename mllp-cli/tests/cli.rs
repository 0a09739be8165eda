//! The `mllp` binary run as a process: listen, send, bench, demo, help and exit codes.
//!
//! Every child is killed when its guard drops and every wait is bounded. A listener is known
//! to be ready when it has printed its `listening on ADDR` line.

mod common;

use common::process::{listen, mllp, Proc, LIMIT};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use mllp::hl7::Header;
use mllp::{Listener, Response};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mllp-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stored files of `dir`, sorted by name (that is, by arrival), as text.
fn stored(dir: &Path) -> Vec<(String, String)> {
    common::stored_messages(dir)
}

/// The messages of a file as the issue defines them, written independently of the tool: CRLF
/// and LF become CR, blank segments go, a new message starts at each MSH segment. MLLP framing
/// bytes saved in a file (0x0B, 0x1C) go too.
fn oracle_messages(text: &str) -> Vec<String> {
    let framing = |c: char| c == '\x0b' || c == '\x1c';
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let text = text.replace("\r\n", "\r").replace('\n', "\r");
    let mut out: Vec<String> = Vec::new();
    for seg in text.split_inclusive('\r') {
        let seg = seg.trim_start_matches(framing);
        if seg
            .trim_matches(|c: char| c.is_whitespace() || framing(c))
            .is_empty()
        {
            continue;
        }
        if seg.starts_with("MSH") || out.is_empty() {
            out.push(String::new());
        }
        out.last_mut().unwrap().push_str(seg);
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

fn adt(id: &str) -> String {
    common::adt(id)
}

/// One line on standard error, starting with `mllp: `.
fn assert_one_line_reason(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("mllp: ") && lines[0].len() > 12,
        "{stderr}"
    );
}

#[test]
fn corpus_files_are_stored_as_sent_then_acknowledged() {
    let Some(corpus) = common::corpus_dir() else {
        return;
    };
    // Every top-level file that is UTF-8 and whose messages all have a readable header with a
    // control ID (the lfh__sample_* files have an invalid MSH-2 on purpose), no batches.
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (name, bytes) in common::hl7_files(&corpus) {
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let msgs = oracle_messages(&text);
        let usable = !msgs.is_empty()
            && msgs.iter().all(|m| {
                m.starts_with("MSH")
                    && Header::parse(m.as_bytes()).is_ok_and(|h| h.control_id().is_some())
            });
        if usable {
            files.push(corpus.join(&name).to_str().unwrap().to_owned());
            expected.extend(msgs);
        }
    }
    assert!(
        files.len() >= 30,
        "only {} corpus files usable",
        files.len()
    );
    let dir = scratch("corpus");
    let store = dir.join("inbox");
    let count = expected.len().to_string();
    let (listener, addr) = listen(&store, &["--count", &count]);
    let mut args = vec!["send", addr.as_str()];
    args.extend(files.iter().map(String::as_str));
    let sent = mllp(&args);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout.len(), expected.len());
    for (line, msg) in sent.stdout.iter().zip(&expected) {
        let id = Header::parse(msg.as_bytes()).unwrap().control_id().unwrap();
        let want = format!("{} ", String::from_utf8_lossy(id));
        let rest = line.strip_prefix(&want);
        let code = rest.and_then(|r| r.split_whitespace().next());
        assert!(code.is_some(), "{line:?} for {want:?}");
        let code = code.unwrap();
        assert!(code == "AA" || code == "CA", "{line}");
    }
    let ended = listener.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    // One line per message, then the summary.
    assert_eq!(ended.stdout.len(), expected.len() + 1, "{ended:?}");
    assert!(ended.stdout.last().unwrap().starts_with("stopped: "));
    let files = stored(&store);
    assert_eq!(files.len(), expected.len());
    for ((name, text), msg) in files.iter().zip(&expected) {
        assert_eq!(text, msg, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_latin1_file_sent_with_its_encoding_is_stored_as_utf8() {
    let dir = scratch("latin1");
    let text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|L1|P|2.5.1\nPID|1||7||MÜLLER^JOSÉ||||||Königstraße 5\n";
    let latin1: Vec<u8> = text.chars().map(|c| u8::try_from(c).unwrap()).collect();
    assert!(std::str::from_utf8(&latin1).is_err());
    let file = write(&dir, "latin1.hl7", &latin1);
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--encoding", "8859/1", "--count", "1"]);
    let sent = mllp(&[
        "send",
        &addr,
        &file,
        "--file-encoding",
        "8859/1",
        "--encoding",
        "8859/1",
    ]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["L1 AA"]);
    assert_eq!(listener.wait().code, 0);
    let files = stored(&store);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "0000000001-L1.hl7");
    assert_eq!(files[0].1, text.replace('\n', "\r"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rejecting_handler_gives_exit_1() {
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(|m: &mllp::Message<'_>| {
            if m.control_id() == Some("NO") {
                Response::reject("not wanted")
            } else {
                Response::accept()
            }
        })
        .unwrap();
    let addr = running.local_addr().to_string();
    let input = format!("{}{}{}", adt("YES1"), adt("NO"), adt("YES2"));
    let sent = Proc::spawn(&["send", &addr], Some(input.into_bytes())).wait();
    assert_eq!(sent.code, 1, "{sent:?}");
    assert_eq!(sent.stdout, ["YES1 AA", "NO AR not wanted", "YES2 AA"]);
    assert_one_line_reason(&sent.stderr);
    assert!(sent.stderr.contains("1 of 3"), "{}", sent.stderr);
}

#[test]
fn failures_give_exit_2_with_one_line() {
    // Nothing listens on a port that was just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let sent = Proc::spawn(
        &["send", &addr, "--attempts", "1"],
        Some(adt("X").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 2, "{sent:?}");
    assert!(sent.stdout.is_empty());
    assert_one_line_reason(&sent.stderr);
    assert!(sent.stderr.contains("not delivered"), "{}", sent.stderr);

    for args in [
        &["send"][..],
        &["send", "127.0.0.1:1", "/nonexistent/file.hl7"],
        &["send", "127.0.0.1:1", "--attempts"],
        &["listen", "--bogus"],
        &["listen", "--encoding", "no-such-charset"],
        &["bench", "--messages", "0"],
        &["frobnicate"],
    ] {
        let ended = mllp(args);
        assert_eq!(ended.code, 2, "{args:?}: {ended:?}");
        assert_one_line_reason(&ended.stderr);
    }

    // A store directory that cannot be created is a startup failure.
    let dir = scratch("badstore");
    let file = write(&dir, "file", b"");
    let ended = mllp(&["listen", "127.0.0.1:0", "--store", &format!("{file}/sub")]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert_one_line_reason(&ended.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_store_that_fails_gives_ae_and_exit_1_and_the_listener_goes_on() {
    let dir = scratch("unwritable");
    let store = dir.join("inbox");
    // No store wait, and AE instead of the default close.
    let (listener, addr) = listen(
        &store,
        &[
            "--count",
            "1",
            "--store-wait",
            "0",
            "--on-store-failure",
            "nak",
        ],
    );
    // Replace the directory by a file: the store cannot write anything now.
    std::fs::remove_dir(&store).unwrap();
    std::fs::write(&store, b"").unwrap();
    let sent = Proc::spawn(&["send", &addr], Some(adt("LOST").into_bytes())).wait();
    assert_eq!(sent.code, 1, "{sent:?}");
    assert_eq!(sent.stdout.len(), 1);
    assert!(
        sent.stdout[0].starts_with("LOST AE message could not be stored"),
        "{sent:?}"
    );
    // Back to a directory: the same listener stores the next message.
    std::fs::remove_file(&store).unwrap();
    std::fs::create_dir(&store).unwrap();
    let sent = Proc::spawn(&["send", &addr], Some(adt("KEPT").into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    let ended = listener.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert!(ended.stderr.contains("LOST"), "{ended:?}");
    assert!(
        ended.stdout.last().unwrap().contains("AA 1, AE 1"),
        "{ended:?}"
    );
    let files = stored(&store);
    assert_eq!(files.len(), 1);
    assert!(files[0].0.ends_with("-KEPT.hl7"), "{files:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn custom_framing_bytes_on_both_sides() {
    let dir = scratch("framing");
    let store = dir.join("inbox");
    let framing = ["--start-bytes", "02", "--end-bytes", "03"];
    let mut extra = vec!["--count", "2"];
    extra.extend(framing);
    let (listener, addr) = listen(&store, &extra);

    // A raw client: the listener reads 0x02 … 0x03 and answers in the same framing.
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.write_all(format!("\x02{}\x03", adt("RAW")).as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0];
    while reply.last() != Some(&0x03) {
        assert_eq!(tcp.read(&mut byte).unwrap(), 1, "{reply:?}");
        reply.push(byte[0]);
    }
    assert_eq!(reply[0], 0x02);
    assert!(reply.ends_with(b"MSA|AA|RAW\r\x03"), "{reply:?}");
    drop(tcp);

    // The tool on the sending side, from standard input.
    let mut args = vec!["send", addr.as_str()];
    args.extend(framing);
    let sent = Proc::spawn(&args, Some(adt("FRAMED").into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["FRAMED AA"]);
    assert_eq!(listener.wait().code, 0);
    assert_eq!(stored(&store).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn single_mode_replaces_an_idle_connection() {
    let dir = scratch("single");
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--single", "--count", "2"]);
    // A connection that was served and went quiet holds the only slot.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(LIMIT)).unwrap();
    idle.write_all(format!("\x0b{}\x1c\r", adt("OLD")).as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut byte = [0];
    while !reply.ends_with(b"\x1c\r") {
        assert_eq!(idle.read(&mut byte).unwrap(), 1);
        reply.push(byte[0]);
    }
    let sent = Proc::spawn(&["send", &addr], Some(adt("NEW").into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["NEW AA"]);
    // The old connection was closed to make room.
    assert_eq!(idle.read(&mut byte).unwrap_or(0), 0);
    let ended = listener.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert!(
        ended
            .stdout
            .last()
            .unwrap()
            .contains("replaced connections 1"),
        "{ended:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mllp2_commit_blocks_on_both_sides() {
    let dir = scratch("mllp2");
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--mllp2", "--count", "2"]);
    let input = format!("{}\n{}", adt("C1"), adt("C2"));
    let sent = Proc::spawn(&["send", &addr, "--mllp2"], Some(input.into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["C1 CA", "C2 CA"]);
    assert_eq!(listener.wait().code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_listener_with_a_summary() {
    let dir = scratch("sigterm");
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &[]);
    let sent = Proc::spawn(&["send", &addr], Some(adt("T1").into_bytes())).wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    let line = listener.line();
    assert!(line.contains(" T1 ADT^A01^ADT_A01 127.0.0.1:"), "{line}");
    let killed = Command::new("kill")
        .args(["-TERM", &listener.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = listener.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    assert_eq!(
        ended.stdout,
        ["stopped: 1 message on 1 connection; AA 1"],
        "{ended:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn tls_on_both_sides() {
    let dir = scratch("tls");
    let store = dir.join("inbox");
    let (server_cert, server_key) = (
        common::cert_path("server.pem"),
        common::cert_path("server.key"),
    );
    let (listener, addr) = listen(
        &store,
        &[
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--count",
            "1",
        ],
    );
    // Not trusted: the test CA is not among the system's roots. Certificate failures are
    // final, so this ends at once.
    let sent = Proc::spawn(&["send", &addr, "--tls"], Some(adt("T0").into_bytes())).wait();
    assert_eq!(sent.code, 2, "{sent:?}");
    assert_one_line_reason(&sent.stderr);
    let ca = common::cert_path("ca.pem");
    let sent = Proc::spawn(
        &["send", &addr, "--tls-ca", &ca, "--tls-domain", "localhost"],
        Some(adt("T1").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["T1 AA"]);
    assert_eq!(listener.wait().code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_options_are_refused_without_tls_support() {
    let (c, k) = (
        common::cert_path("server.pem"),
        common::cert_path("server.key"),
    );
    for args in [
        &["send", "127.0.0.1:1", "--tls"][..],
        &["listen", "--tls-cert", &c, "--tls-key", &k],
        &["bench", "--tls"],
    ] {
        let ended = mllp(args);
        assert_eq!(ended.code, 2, "{args:?}: {ended:?}");
        assert_one_line_reason(&ended.stderr);
        assert!(ended.stderr.contains("without"), "{}", ended.stderr);
    }
}

#[test]
fn demo_runs_and_shows_stored_files_and_a_bench_line() {
    let tmp = scratch("demo");
    let ended = Proc::spawn_env(&["demo"], None, &[("TMPDIR", &tmp)]).wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    let out = ended.stdout.join("\n");
    assert_eq!(out.matches("stored in ").count(), 3, "{out}");
    assert!(out.contains("the file holds UTF-8: PID|"), "{out}");
    assert!(out.contains("MÜLLER^JOSÉ"), "{out}");
    assert!(out.contains(" AR "), "{out}");
    assert!(out.contains("msg/s"), "{out}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn bench_reports_throughput_and_latency() {
    let ended = mllp(&["bench", "--messages", "300", "--size", "200"]);
    assert_eq!(ended.code, 0, "{ended:?}");
    let out = ended.stdout.join("\n");
    for what in ["300 msgs", "msg/s", "MB/s", "p50", "p99", "max"] {
        assert!(out.contains(what), "{what}: {out}");
    }
}

#[test]
fn bench_baseline_and_sides_print_ratios() {
    let ended = mllp(&["bench", "--messages", "200", "--warmup", "10", "--sides"]);
    assert_eq!(ended.code, 0, "{ended:?}");
    let out = ended.stdout.join("\n");
    for what in [
        "raw ↔ raw (baseline)",
        "mllp ↔ mllp",
        "mllp sender ↔ raw listener",
        "raw sender ↔ mllp listener",
        "raw-checked sender ↔ raw listener",
    ] {
        assert!(out.contains(what), "{what}: {out}");
    }
    // Every line but the baseline's carries a ratio, and our sender's a second one, to the
    // checked raw sender.
    assert_eq!(out.matches('×').count(), 5, "{out}");
    assert_eq!(out.matches("× raw-checked)").count(), 1, "{out}");
}

#[test]
fn help_and_version() {
    let mut commands = vec!["demo", "listen", "send", "relay", "spool", "bench"];
    if cfg!(feature = "amqp") {
        commands.push("forward");
    }
    for cmd in commands {
        let short = mllp(&[cmd, "-h"]);
        let long = mllp(&[cmd, "--help"]);
        for ended in [&short, &long] {
            assert_eq!(ended.code, 0);
            assert!(
                ended.stdout[0].starts_with(&format!("Usage: mllp {cmd}")),
                "{ended:?}"
            );
        }
        // -h: one line per option, two screenfuls at most (relay, which receives and sends,
        // has the most); --help: the same options in full.
        assert!(
            short.stdout.len() >= 10 && short.stdout.len() <= 80,
            "{cmd}: {} lines",
            short.stdout.len()
        );
        assert!(long.stdout.len() >= short.stdout.len(), "{cmd}");
        assert_eq!(mllp(&["help", cmd]).stdout, long.stdout);
    }
    let ended = mllp(&["--help"]);
    assert_eq!(ended.code, 0);
    let ended = mllp(&["--version"]);
    assert_eq!(ended.code, 0);
    assert_eq!(
        ended.stdout,
        [format!("mllp {}", env!("CARGO_PKG_VERSION"))]
    );
    let ended = mllp(&[]);
    assert_eq!(ended.code, 2);
}

#[test]
fn the_ack_mode_is_the_librarys_by_default() {
    // MSH-15 AL, MSH-16 NE: enhanced mode asked for. The library and the C API answer AA in
    // original mode by default (what MLLP senders wait for) and CA when told to follow
    // MSH-15/16; the command line must answer alike.
    let dir = common::scratch_dir("cli-ack-mode");
    let enhanced = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|E1|P|2.5|||AL|NE\rPID|1\r";
    assert_eq!(
        mllp::ListenerConfig::default().ack_mode,
        mllp::hl7::AckMode::Original
    );
    let (proc, addr) = listen(&dir, &["--count", "1"]);
    let ack = common::exchange(&addr, enhanced.as_bytes(), LIMIT).unwrap();
    assert!(
        String::from_utf8_lossy(&ack).contains("MSA|AA|E1"),
        "{ack:?}"
    );
    assert_eq!(proc.wait().code, 0);
    let (proc, addr) = listen(&dir, &["--count", "1", "--ack-mode", "auto"]);
    let ack = common::exchange(&addr, enhanced.as_bytes(), LIMIT).unwrap();
    assert!(
        String::from_utf8_lossy(&ack).contains("MSA|CA|E1"),
        "{ack:?}"
    );
    assert_eq!(proc.wait().code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
