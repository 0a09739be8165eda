//! `mllp listen --evict-after`: when every slot is taken, a new connection takes the slot of
//! the one that has gone longest without completing a frame; the eviction is logged with the
//! evicted peer and counted in the summary, and `--evict-after 0` keeps refusing.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mllp_testkit as testkit;

/// The longest any single read, write or wait may take.
const LIMIT: Duration = Duration::from_secs(15);

/// Sends one message on a new connection; the acknowledgement's text, or why there was none.
fn send(addr: SocketAddr, id: &str) -> Result<String, String> {
    let ack = testkit::exchange(&addr.to_string(), testkit::adt(id).as_bytes(), LIMIT)?;
    Ok(String::from_utf8_lossy(&ack).into_owned())
}

#[cfg(unix)]
#[test]
fn cli_evicts_logs_the_peer_and_counts_it() {
    let dir = testkit::scratch_dir("evict-cli");
    let mut listener = common::ListenProc::start(
        &dir.join("inbox"),
        // A threshold no test waits for (the rule itself is tested with time passed in).
        &["--max-connections", "1", "--evict-after", "0.001"],
        true,
    );
    let addr: SocketAddr = listener.addr.parse().unwrap();
    let silent = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
    let silent_peer = silent.local_addr().unwrap();
    let started = Instant::now();
    let ack = loop {
        match send(addr, "C1") {
            Ok(ack) => break ack,
            Err(e) => assert!(started.elapsed() < LIMIT, "no AA: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(ack.contains("MSA|AA|C1"), "{ack}");
    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    let stderr = listener.stderr_text();
    assert!(
        stderr.contains("mllp: warning: ") && stderr.contains(&format!("from {silent_peer}")),
        "{stderr}"
    );
    let lines: Vec<String> = listener.stdout.take().unwrap().try_iter().collect();
    let summary = lines.last().cloned().unwrap_or_default();
    assert!(summary.contains("evicted connections 1"), "{lines:?}");
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn cli_evict_after_zero_keeps_refusing() {
    let dir = testkit::scratch_dir("evict-cli-off");
    let mut listener = common::ListenProc::start(
        &dir.join("inbox"),
        &["--max-connections", "1", "--evict-after", "0"],
        true,
    );
    let addr: SocketAddr = listener.addr.parse().unwrap();
    // The slot is taken; with eviction off the next connection is refused however long the
    // first stays silent (that rule is tested with time passed in: `tests/session.rs`; the
    // parsing of 0 as "off": the command's unit tests). Here: refused and counted.
    let _silent = TcpStream::connect_timeout(&addr, LIMIT).unwrap();
    assert!(send(addr, "Z1").is_err());
    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    let lines: Vec<String> = listener.stdout.take().unwrap().try_iter().collect();
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("refused connections 1")),
        "{lines:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
