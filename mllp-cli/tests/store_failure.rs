//! `--store-wait` and `--on-store-failure` with a file store that cannot write: the sender
//! waits, then gets no ACK (the connection closes) or an AE with the reason.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::process::{listen, Proc};

fn scratch(name: &str) -> PathBuf {
    mllp_testkit::scratch_dir(&format!("cli-storefail-{name}"))
}

/// Starts a listener on `DIR/inbox` with `extra`, then replaces the directory by a file.
fn broken_listener(name: &str, extra: &[&str]) -> (Proc, String, PathBuf) {
    let dir = scratch(name);
    let store = dir.join("inbox");
    let (proc, addr) = listen(&store, extra);
    std::fs::remove_dir(&store).unwrap();
    std::fs::write(&store, b"").unwrap();
    (proc, addr, dir)
}

#[test]
fn by_default_the_connection_closes_without_an_ack_after_the_wait() {
    let (listener, addr, dir) = broken_listener("close", &["--store-wait", "1"]);
    let started = Instant::now();
    let sent = Proc::spawn(
        &["send", &addr, "--attempts", "1", "-"],
        Some(mllp_testkit::adt("CLOSED1").into_bytes()),
    )
    .wait();
    let took = started.elapsed();
    // Not delivered as far as the sender knows: no ACK, exit 2, and nothing printed as AE.
    assert_eq!(sent.code, 2, "{sent:?}");
    assert!(!sent.stdout.iter().any(|l| l.contains(" AE ")), "{sent:?}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    listener.terminate_and_check(|summary| summary.contains("closed unanswered 1"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nak_answers_ae_with_the_reason_after_the_wait() {
    let (listener, addr, dir) =
        broken_listener("nak", &["--store-wait", "0.5", "--on-store-failure", "nak"]);
    let started = Instant::now();
    let sent = Proc::spawn(
        &["send", &addr, "--attempts", "1", "-"],
        Some(mllp_testkit::adt("NAK1").into_bytes()),
    )
    .wait();
    assert_eq!(sent.code, 1, "{sent:?}");
    assert!(
        sent.stdout[0].starts_with("NAK1 AE message could not be stored"),
        "{sent:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    listener.terminate_and_check(|summary| summary.contains("AE 1"));
    std::fs::remove_dir_all(&dir).unwrap();
}

trait Terminate {
    /// SIGTERM, then the summary line must satisfy `check`.
    fn terminate_and_check(self, check: impl Fn(&str) -> bool);
}

impl Terminate for Proc {
    fn terminate_and_check(self, check: impl Fn(&str) -> bool) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let ended = self.wait();
        let summary = ended.stdout.last().cloned().unwrap_or_default();
        assert!(check(&summary), "{ended:?}");
    }
}
