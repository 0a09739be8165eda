//! `mllp send` as a process: character sets of files and of the wire, `--resume`, reused
//! MSH-10s, and the ACK deadline against a peer that trickles bytes.
//!
//! Every child is killed when its guard drops, every wait is bounded, and every peer thread
//! stops by itself.

mod common;

use common::process::{listen, mllp};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mllp-cli-send-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The stored messages of `dir`, sorted by file name, as text.
fn stored(dir: &Path) -> Vec<String> {
    common::stored_messages(dir)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

fn control_id(message: &str) -> String {
    let header = mllp::hl7::Header::parse(message.as_bytes()).unwrap();
    String::from_utf8(header.control_id().unwrap().to_vec()).unwrap()
}

const MULLER: &str =
    "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|U1|P|2.5.1\rPID|1||7||Müller^José||||||Königstraße 5\r";

#[test]
fn a_utf8_file_sent_as_latin1_arrives_as_written() {
    let dir = scratch("utf8");
    // With a byte order mark, as some editors save UTF-8.
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(MULLER.as_bytes());
    let file = write(&dir, "utf8.hl7", &bytes);
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--encoding", "latin1", "--count", "1"]);
    let sent = mllp(&["send", &addr, &file, "--encoding", "latin1"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["U1 AA"]);
    assert_eq!(listener.wait().code, 0);
    assert_eq!(stored(&store), [MULLER]);

    // --raw keeps sending the bytes as they are: the listener reads UTF-8 bytes as Latin-1.
    let store = dir.join("raw");
    let (listener, addr) = listen(&store, &["--encoding", "latin1", "--count", "1"]);
    let sent = mllp(&["send", &addr, &file, "--encoding", "latin1", "--raw"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(listener.wait().code, 0);
    let raw = stored(&store);
    assert!(raw[0].contains("MÃ¼ller"), "{raw:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_latin1_file_named_with_file_encoding_is_sent_as_utf8() {
    let dir = scratch("latin1");
    let latin1: Vec<u8> = MULLER.chars().map(|c| u8::try_from(c).unwrap()).collect();
    let file = write(&dir, "latin1.hl7", &latin1);
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--count", "1"]);
    let sent = mllp(&["send", &addr, &file, "--file-encoding", "latin1"]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(listener.wait().code, 0);
    assert_eq!(stored(&store), [MULLER]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_not_valid_in_its_charset_is_an_error_and_nothing_is_sent() {
    let dir = scratch("invalid");
    let first = common::adt("OK1");
    let mut bytes = first.clone().into_bytes();
    bytes.extend_from_slice(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|BAD|P|2.5.1\rPID|1||M\xFCller\r");
    let at = bytes.iter().position(|&b| b == 0xFC).unwrap();
    let file = write(&dir, "latin1.hl7", &bytes);
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap().to_string();
    let sent = mllp(&["send", &addr, &file]);
    assert_eq!(sent.code, 2, "{sent:?}");
    assert!(sent.stdout.is_empty(), "{sent:?}");
    let lines: Vec<&str> = sent.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{sent:?}");
    for part in [
        "mllp: ",
        file.as_str(),
        "not valid UTF-8",
        "message 2",
        &format!("byte {at}"),
    ] {
        assert!(lines[0].contains(part), "{part:?} in {lines:?}");
    }
    // Nothing connected: the file was checked before sending.
    peer.set_nonblocking(true).unwrap();
    assert!(peer.accept().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_that_reuses_an_msh10_is_warned_about() {
    let dir = scratch("reuse");
    let input = format!(
        "{}{}{}",
        common::adt("DUP"),
        common::adt("UNIQUE"),
        common::adt("DUP")
    );
    let file = write(&dir, "dup.hl7", input.as_bytes());
    let store = dir.join("inbox");
    let (listener, addr) = listen(&store, &["--count", "3"]);
    let sent = mllp(&["send", &addr, &file]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["DUP AA", "UNIQUE AA", "DUP AA"]);
    let warnings: Vec<&str> = sent.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{sent:?}");
    assert!(
        warnings[0].starts_with("mllp: warning: ")
            && warnings[0].contains("message 3 reuses MSH-10 DUP of")
            && warnings[0].contains("message 1"),
        "{warnings:?}"
    );
    assert_eq!(listener.wait().code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_skips_what_an_interrupted_run_got_acknowledged() {
    let dir = scratch("resume");
    let ids = ["R1", "R2", "R3", "R4", "R5"];
    let input: String = ids.iter().map(|id| common::adt(id)).collect();
    let file = write(&dir, "five.hl7", input.as_bytes());
    let state = dir.join("state").to_str().unwrap().to_owned();

    // A listener that stops after two messages: the run fails on the third.
    let first_store = dir.join("first");
    let (listener, addr) = listen(&first_store, &["--count", "2"]);
    let sent = mllp(&["send", &addr, &file, "--resume", &state, "--attempts", "1"]);
    assert_eq!(sent.code, 2, "{sent:?}");
    assert_eq!(sent.stdout, ["R1 AA", "R2 AA"]);
    assert_eq!(listener.wait().code, 0);

    // The rerun sends only the other three.
    let second_store = dir.join("second");
    let (listener, addr) = listen(&second_store, &["--count", "3"]);
    let sent = mllp(&["send", &addr, &file, "--resume", &state]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(sent.stdout, ["R3 AA", "R4 AA", "R5 AA"]);
    assert!(
        sent.stderr
            .contains("2 of 5 messages were acknowledged in an earlier run"),
        "{sent:?}"
    );
    assert_eq!(listener.wait().code, 0);

    // Every message stored once.
    let mut got: Vec<String> = stored(&first_store)
        .iter()
        .chain(&stored(&second_store))
        .map(|m| control_id(m))
        .collect();
    got.sort();
    assert_eq!(got, ids);

    // A third run has nothing left to send and connects to nothing.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap().to_string();
    let sent = mllp(&["send", &addr, &file, "--resume", &state]);
    assert_eq!(sent.code, 0, "{sent:?}");
    assert!(sent.stdout.is_empty(), "{sent:?}");
    peer.set_nonblocking(true).unwrap();
    assert!(peer.accept().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads one frame (up to the end sequence); `None` at end of stream or on error.
fn read_message(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut msg = Vec::new();
    let mut byte = [0u8; 1];
    while !msg.ends_with(b"\x1c\r") {
        match tcp.read(&mut byte) {
            Ok(1) => msg.push(byte[0]),
            _ => return None,
        }
    }
    Some(msg)
}

#[test]
fn ack_timeout_holds_against_a_peer_that_trickles_bytes() {
    const PEER_LIFE: Duration = Duration::from_secs(12);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Two connections at most (--attempts 2), one after the other: read the message, then send
    // a start byte and one byte every 200 ms until the sender leaves or the peer's life ends.
    let peer = thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            tcp.set_read_timeout(Some(PEER_LIFE)).unwrap();
            tcp.set_write_timeout(Some(PEER_LIFE)).unwrap();
            if read_message(&mut tcp).is_none() {
                continue;
            }
            let started = Instant::now();
            let mut bytes = b"\x0bMSH|^~\\&|"
                .iter()
                .copied()
                .chain(std::iter::repeat(b'A'));
            while started.elapsed() < PEER_LIFE {
                if tcp.write_all(&[bytes.next().unwrap()]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(200));
            }
        }
    });
    let dir = scratch("trickle");
    let file = write(&dir, "one.hl7", common::adt("SLOW").as_bytes());
    let started = Instant::now();
    let sent = mllp(&[
        "send",
        &addr,
        &file,
        "--ack-timeout",
        "1",
        "--attempts",
        "2",
    ]);
    let took = started.elapsed();
    eprintln!("mllp send ended after {took:?}");
    assert_eq!(sent.code, 2, "{sent:?}");
    assert!(sent.stderr.contains("ACK"), "{sent:?}");
    // Two attempts of 1 s each and one backoff of at most 250 ms, plus the process.
    assert!(took < Duration::from_secs(5), "mllp send took {took:?}");
    // If the peer still waits for a second connection, this one ends it.
    drop(TcpStream::connect(&addr));
    peer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_batch_with_an_empty_batch_control_id_names_the_batch_header_and_the_way_out() {
    let dir = scratch("batch-id");
    let file = write(
        &dir,
        "batch.hl7",
        b"FHS|^~\\&|LAB|HOSP|HIS|HOSP|20240101||||\r\
          BHS|^~\\&|LAB|HOSP|HIS|HOSP|20240101||||\r\
          MSH|^~\\&|LAB|HOSP|HIS|HOSP|20240101||ADT^A01|M1|P|2.5\rBTS|1\rFTS|1\r",
    );
    // The header is checked before anything is sent, so no peer is needed.
    let ended = mllp(&["send", "127.0.0.1:9", &file]);
    assert_ne!(ended.code, 0, "{ended:?}");
    assert!(ended.stderr.contains("FHS-11"), "{}", ended.stderr);
    assert!(ended.stderr.contains("--split-batch"), "{}", ended.stderr);
    assert!(!ended.stderr.contains("MSH-11"), "{}", ended.stderr);
}

#[test]
fn raw_sends_malformed_corpus_files_and_says_their_replies_are_not_correlated() {
    // Testing an engine with bad input is a normal job: with --raw, a message whose reply
    // cannot be correlated (no readable header, no MSH-10) is sent anyway and the next ACK is
    // taken as its reply, said to be not correlated. Without --raw it cannot be sent.
    let Some(corpus) = common::corpus_dir() else {
        return;
    };
    let dir = scratch("raw-malformed");
    let (mut listener, addr) = listen(&dir.join("inbox"), &[]);
    let mut sent_any = 0;
    let mut uncorrelated = 0;
    for (name, _) in common::hl7_files(&corpus.join("malformed")) {
        let file = corpus.join("malformed").join(&name);
        let file = file.to_str().unwrap();
        let sent = mllp(&["send", &addr, file, "--raw", "--attempts", "1"]);
        // Every message of the file reached the listener and got an answer (AA, AE or AR).
        assert!(sent.code == 0 || sent.code == 1, "{name}: {sent:?}");
        assert!(!sent.stdout.is_empty(), "{name}: {sent:?}");
        sent_any += 1;
        uncorrelated += sent
            .stdout
            .iter()
            .filter(|l| l.contains("(not correlated: the next ACK received"))
            .count();
    }
    assert!(sent_any >= 8, "{sent_any} malformed files");
    assert!(uncorrelated >= 5, "{uncorrelated} replies not correlated");
    let _ = listener.child.kill();
    let _ = listener.child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}
