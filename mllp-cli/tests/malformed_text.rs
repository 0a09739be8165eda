//! `mllp listen` and text not valid in its character set: AE naming the byte offset and
//! nothing stored by default, U+FFFD only with `--malformed replace`; MSH-18 read by default,
//! `--no-msh18` to ignore it.

mod common;

use std::time::Duration;

use mllp_testkit as testkit;

const LIMIT: Duration = Duration::from_secs(10);

fn message(id: &str, msh18: &str, name: &[u8]) -> Vec<u8> {
    testkit::adt_with_raw_name(id, msh18, name)
}

fn text(ack: &[u8]) -> String {
    String::from_utf8_lossy(ack).into_owned()
}

#[test]
fn cli_rejects_by_default_and_stores_nothing() {
    let dir = testkit::scratch_dir("malformed-reject");
    let store = dir.join("inbox");
    let listener = common::ListenProc::start(&store, &["-q"], true);
    let bad = message("CLI1", "", b"M\xFCller");
    let ack = text(&testkit::exchange(&listener.addr, &bad, LIMIT).unwrap());
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
    let dir = testkit::scratch_dir("malformed-replace");
    let store = dir.join("inbox");
    let listener = common::ListenProc::start(&store, &["-q", "--malformed", "replace"], true);
    let ack = text(
        &testkit::exchange(&listener.addr, &message("CLI2", "", b"M\xFCller"), LIMIT).unwrap(),
    );
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
    let dir = testkit::scratch_dir("malformed-msh18");
    let latin1 = message("L1", "8859/1", b"M\xFCller");
    // Default: MSH-18 names ISO-8859-1, so the byte is ü, stored as UTF-8.
    let store = dir.join("on");
    let listener = common::ListenProc::start(&store, &["-q"], true);
    let ack = text(&testkit::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|L1"), "{ack}");
    let files: Vec<_> = std::fs::read_dir(&store).unwrap().collect();
    let stored = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(stored.contains("Müller"), "{stored}");
    drop(listener);
    // --msh18 is still accepted and means the same.
    let store = dir.join("explicit");
    let listener = common::ListenProc::start(&store, &["-q", "--msh18"], true);
    let ack = text(&testkit::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AA|L1"), "{ack}");
    drop(listener);
    // --no-msh18: decoded as UTF-8, where 0xFC is invalid: AE.
    let store = dir.join("off");
    let listener = common::ListenProc::start(&store, &["-q", "--no-msh18"], true);
    let ack = text(&testkit::exchange(&listener.addr, &latin1, LIMIT).unwrap());
    assert!(ack.contains("MSA|AE|L1"), "{ack}");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}
