//! What `mllp listen` prints: diagnostics in one prefix style, the bind error naming the
//! address once, and per-message lines that can never stall the listener.

mod common;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn bind_error_says_binding_and_names_the_address_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = common::scratch_dir("listen-bind");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args(["listen", &addr, "--store", dir.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("mllp: error: "), "{stderr}");
    assert!(stderr.contains("binding"), "{stderr}");
    assert!(!stderr.contains("accepting"), "{stderr}");
    assert_eq!(stderr.matches(&addr).count(), 1, "{stderr}");
    drop(taken);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn library_bind_error_says_binding() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = mllp::Listener::builder(addr).bind().unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            mllp::Error::Io {
                phase: mllp::Phase::Bind,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(text.matches(&addr.to_string()).count(), 1, "{text}");
    assert!(!text.contains("accepting"), "{text}");
}

#[test]
fn warnings_and_errors_share_one_prefix_style() {
    // A usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mllp"))
        .args(["listen", "--no-such-option"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("mllp: error: "), "{stderr}");
    // A logged warning (an unreadable header) from a running listener.
    let dir = common::scratch_dir("listen-prefix");
    let mut listener = common::ListenProc::start(&dir.join("inbox"), &[], true);
    let ack = common::exchange(&listener.addr, b"not HL7 at all\r", LIMIT).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AR"));
    listener.terminate();
    assert!(listener.wait_for_exit(LIMIT).is_some());
    let stderr = listener.stderr_text();
    assert!(stderr.contains("mllp: warning: "), "{stderr}");
    assert!(!stderr.contains("mllp: warn: "), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_batch_control_id_names_the_batch_header() {
    let text = mllp::Error::Header(mllp::HeaderError::MissingField { field: 11 }).to_string();
    assert!(text.contains("FHS-11"), "{text}");
    assert!(!text.contains("MSH"), "{text}");
}

/// Sends `n` messages on one connection, each acknowledgement awaited with `each` as the
/// bound; returns how many got AA, and the first failure.
fn send_many(addr: &str, n: usize, each: Duration) -> (usize, Option<String>) {
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(each)).unwrap();
    tcp.set_write_timeout(Some(each)).unwrap();
    let mut conn = mllp::Connection::new(tcp, mllp::Framing::default());
    for i in 0..n {
        let id = format!("OUT{i:05}");
        if let Err(e) = conn.write_frame(common::adt(&id).as_bytes()) {
            return (i, Some(format!("writing {id}: {e}")));
        }
        match conn.read_frame() {
            Ok(Some(ack)) if ack.ends_with(format!("MSA|AA|{id}\r").as_bytes()) => {}
            Ok(other) => {
                return (
                    i,
                    Some(format!("{id}: {:?}", other.map(String::from_utf8_lossy))),
                )
            }
            Err(e) => return (i, Some(format!("no ACK for {id}: {e}"))),
        }
    }
    (n, None)
}

#[cfg(unix)]
#[test]
fn a_standard_output_nobody_reads_stalls_neither_acks_nor_sigterm() {
    const MESSAGES: usize = 3000;
    let dir = common::scratch_dir("listen-stalled-stdout");
    let mut listener = common::ListenProc::start(&dir.join("inbox"), &[], false);
    let started = std::time::Instant::now();
    let (acked, failure) = send_many(&listener.addr, MESSAGES, Duration::from_secs(10));
    let took = started.elapsed();
    eprintln!("{acked} of {MESSAGES} messages acknowledged in {took:?}");
    assert_eq!(acked, MESSAGES, "{failure:?}");
    // Each line is well over 64 bytes: far more than a pipe's 64 KiB was printed.
    let stopping = std::time::Instant::now();
    listener.terminate();
    let code = listener.wait_for_exit(LIMIT);
    eprintln!("exited {code:?} {:?} after SIGTERM", stopping.elapsed());
    assert_eq!(code, Some(0));
    assert!(stopping.elapsed() < Duration::from_secs(10));
    let stderr = listener.stderr_text();
    assert!(
        stderr.contains("mllp: warning: standard output did not keep up"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(dir.join("inbox")).unwrap().count(),
        MESSAGES
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_line_is_printed_after_its_ack_and_the_summary_last() {
    let dir = common::scratch_dir("listen-lines");
    let mut listener = common::ListenProc::start(&dir.join("inbox"), &[], true);
    let (acked, failure) = send_many(&listener.addr, 3, LIMIT);
    assert_eq!(acked, 3, "{failure:?}");
    let lines = listener.stdout.take().unwrap();
    for i in 0..3 {
        let line = lines.recv_timeout(LIMIT).unwrap();
        assert!(
            line.contains(&format!(" OUT{i:05} ADT^A01^ADT_A01 127.0.0.1:")),
            "{line}"
        );
    }
    listener.terminate();
    assert_eq!(listener.wait_for_exit(LIMIT), Some(0));
    let rest: Vec<String> = lines.try_iter().collect();
    assert_eq!(rest, ["stopped: 3 messages on 1 connection; AA 3"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A handler whose `acknowledged` hook blocks until released.
struct SlowReport {
    entered: std::sync::Mutex<std::sync::mpsc::Sender<(u64, bool)>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl mllp::Handler for SlowReport {
    fn handle(&self, _: &mllp::Message<'_>) -> mllp::Response {
        mllp::Response::accept()
    }

    fn acknowledged(&self, connection_id: u64, written: bool) {
        let _ = self.entered.lock().unwrap().send((connection_id, written));
        let _ = self.release.lock().unwrap().recv_timeout(LIMIT);
    }
}

#[test]
fn the_acknowledged_hook_runs_after_the_ack_is_written() {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let running = mllp::Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(SlowReport {
            entered: std::sync::Mutex::new(entered_tx),
            release: std::sync::Mutex::new(release_rx),
        })
        .unwrap();
    let addr = running.local_addr().to_string();
    // The ACK arrives while the hook is still blocked.
    let ack = common::exchange(&addr, common::adt("H1").as_bytes(), LIMIT).unwrap();
    assert!(ack.ends_with(b"MSA|AA|H1\r"));
    let (_, written) = entered.recv_timeout(LIMIT).unwrap();
    assert!(written);
    release.send(()).unwrap();
    // An unreadable frame is not the handler's: no call.
    let ack = common::exchange(&addr, b"garbage\r", LIMIT).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AR"));
    assert!(entered.recv_timeout(Duration::from_millis(300)).is_err());
}
