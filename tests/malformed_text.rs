//! Messages not valid in their character set: rejected with AE (naming the byte offset) and
//! not handed on by default, in the library, the C options and `mllp listen`; replaced with
//! U+FFFD only when asked. And one MSH-18 default everywhere: on.

use mllp_testkit as common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mllp::charset::Malformed;
use mllp::{Listener, Response};

const LIMIT: Duration = Duration::from_secs(10);

fn message(id: &str, msh18: &str, name: &[u8]) -> Vec<u8> {
    common::adt_with_raw_name(id, msh18, name)
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
