//! Log lines on standard error: `--log-format json`, and a standard error nobody reads, which
//! must not stall the listener.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::Proc;
use mllp_testkit::{adt, exchange, scratch_dir};

/// A control ID of 150 characters: long log lines, so that a pipe fills after fewer messages.
fn long_id(i: usize) -> String {
    format!("{i:06}{}", "X".repeat(144))
}

#[test]
fn a_stderr_nobody_reads_does_not_stall_the_listener() {
    let dir = scratch_dir("logs-unread");
    let store = dir.join("store");
    // An info line for every message (each is a resend of the first: `--dedup` answers it
    // without storing it again, and says so), into a pipe that is never read: it is full
    // after some 64 KiB.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args([
            "listen",
            "127.0.0.1:0",
            "--store",
            store.to_str().unwrap(),
            "--dedup",
            "100",
            "-v",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Standard output is drained (its lines are not what this test is about).
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let mut sender = mllp::Sender::builder(&addr)
        .connect_timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let n = 600;
    let started = Instant::now();
    let mut acked = 0;
    for i in 0..n {
        match sender.send(&adt(&long_id(0))) {
            Ok(ack) if ack.is_success() => acked += 1,
            other => {
                eprintln!("message {i}: {other:?}");
                break;
            }
        }
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("{acked} of {n} messages acknowledged in {took:?} with standard error unread");
    assert_eq!(acked, n, "the listener stalled on its standard error");
}

#[test]
fn json_log_lines_name_the_message_and_never_its_body() {
    let dir = scratch_dir("logs-json");
    let store = dir.join("store");
    let proc = Proc::spawn(
        &[
            "listen",
            "127.0.0.1:0",
            "--store",
            store.to_str().unwrap(),
            "--log-format",
            "json",
            "-vv",
        ],
        None,
    );
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let ack = exchange(&addr, adt("J1").as_bytes(), Duration::from_secs(5)).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("|AA|"));
    // The store becomes unusable: the next message is not acknowledged (the connection is
    // closed, `--on-store-failure close`), with an error line.
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    assert!(exchange(&addr, adt("J2").as_bytes(), Duration::from_secs(5)).is_err());
    common::sigterm(&proc);
    let ended = proc.wait();
    let lines: Vec<serde_json::Value> = ended
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l:?}"))
        })
        .collect();
    let event = |name: &str| {
        lines
            .iter()
            .find(|l| l["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {}", ended.stderr))
    };
    let stored = event("stored");
    assert_eq!(stored["level"], "debug");
    assert_eq!(stored["control_id"], "J1");
    assert_eq!(stored["message_type"], "ADT^A01^ADT_A01");
    assert_eq!(stored["outcome"], "stored");
    assert!(stored["connection"].as_u64().is_some(), "{stored}");
    assert!(stored["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let failed = event("store_failed");
    assert_eq!(failed["level"], "error");
    assert_eq!(failed["control_id"], "J2");
    assert_eq!(failed["outcome"], "retryable");
    assert!(
        failed["store"].as_str().unwrap().contains("store"),
        "{failed}"
    );
    assert!(!failed["error"].as_str().unwrap().is_empty());
    for l in &lines {
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["message"].is_string(), "{l}");
    }
    // Never the body: not the patient's name, not a segment.
    assert!(!ended.stderr.contains("DOE") && !ended.stderr.contains("PID|"));
}
