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
