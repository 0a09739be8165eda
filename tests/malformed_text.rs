//! Messages not valid in their character set: rejected with AE (naming the byte offset) and
//! not handed on by default, in the library, the C options and `mllp listen`; replaced with
//! U+FFFD only when asked. And one MSH-18 default everywhere: on.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mllp::{Listener, Malformed, Response};

const LIMIT: Duration = Duration::from_secs(10);

/// A message whose PID-5 holds `name` raw, with MSH-18 `msh18`.
fn message(id: &str, msh18: &str, name: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ADT^A01|{id}|P|2.5.1||||||{msh18}\rPID|1||1||"
    )
    .into_bytes();
    m.extend_from_slice(name);
    m.extend_from_slice(b"\r");
    m
}

fn text(ack: &[u8]) -> String {
    String::from_utf8_lossy(ack).into_owned()
}

#[test]
fn by_default_invalid_utf8_gets_ae_naming_the_offset_and_is_not_handed_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .unwrap()
        .spawn(move |_: &mllp::Message<'_>| {
            seen.fetch_add(1, Ordering::SeqCst);
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr().to_string();
    let bad = message("BAD1", "", b"M\xFCller");
    let at = bad.iter().position(|&b| b == 0xFC).unwrap();
    let ack = text(&common::exchange(&addr, &bad, LIMIT).unwrap());
    assert!(ack.contains("MSA|AE|BAD1"), "{ack}");
    assert!(ack.contains(&format!("byte offset {at}")), "{ack}");
    assert!(ack.contains("\rERR|"), "{ack}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A valid message still goes through, and the rejection was counted.
    let ack =
        text(&common::exchange(&addr, &message("OK1", "", "Müller".as_bytes()), LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|OK1"), "{ack}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(running.stats().charset_errors, 1);
}

#[test]
fn replace_is_an_explicit_choice() {
    let running = Listener::builder("127.0.0.1:0")
        .malformed(Malformed::Replace)
        .bind()
        .unwrap()
        .spawn(|m: &mllp::Message<'_>| {
            assert_eq!(m.replaced(), 1);
            assert!(m.text().contains("M\u{FFFD}ller"));
            Response::accept()
        })
        .unwrap();
    let addr = running.local_addr().to_string();
    let ack = text(&common::exchange(&addr, &message("R1", "", b"M\xFCller"), LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|R1"), "{ack}");
    assert_eq!(Malformed::default(), Malformed::Reject);
}

#[test]
fn cli_rejects_by_default_and_stores_nothing() {
    let dir = common::scratch_dir("malformed-reject");
    let store = dir.join("inbox");
    let listener = common::ListenProc::start(&store, &["-q"], true);
    let bad = message("CLI1", "", b"M\xFCller");
    let ack = text(&common::exchange(&listener.addr, &bad, LIMIT).unwrap());
    assert!(ack.contains("MSA|AE|CLI1"), "{ack}");
    assert!(ack.contains("byte offset"), "{ack}");
    assert_eq!(
        std::fs::read_dir(&store).unwrap().count(),
        0,
        "nothing stored"
    );
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_replace_stores_with_replacement_characters() {
    let dir = common::scratch_dir("malformed-replace");
    let store = dir.join("inbox");
    let listener = common::ListenProc::start(&store, &["-q", "--malformed", "replace"], true);
    let ack =
        text(&common::exchange(&listener.addr, &message("CLI2", "", b"M\xFCller"), LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|CLI2"), "{ack}");
    let files: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    assert_eq!(files.len(), 1);
    let stored = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(stored.contains("M\u{FFFD}ller"), "{stored}");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_reads_msh18_by_default_and_no_msh18_switches_it_off() {
    let dir = common::scratch_dir("malformed-msh18");
    let latin1 = message("L1", "8859/1", b"M\xFCller");
    // Default: MSH-18 names ISO-8859-1, so the byte is ü, stored as UTF-8.
    let store = dir.join("on");
    let listener = common::ListenProc::start(&store, &["-q"], true);
    let ack = text(&common::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|L1"), "{ack}");
    let files: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    let stored = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(stored.contains("Müller"), "{stored}");
    drop(listener);
    // --msh18 is still accepted and means the same.
    let store = dir.join("explicit");
    let listener = common::ListenProc::start(&store, &["-q", "--msh18"], true);
    let ack = text(&common::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|L1"), "{ack}");
    drop(listener);
    // --no-msh18: decoded as UTF-8, where 0xFC is invalid: AE.
    let store = dir.join("off");
    let listener = common::ListenProc::start(&store, &["-q", "--no-msh18"], true);
    let ack = text(&common::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AE|L1"), "{ack}");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}
