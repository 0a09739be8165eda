//! Interoperability with a real third-party implementation, python-hl7, three ways:
//! its `mllp_send` tool and its asyncio client (`hl7.mllp.open_hl7_connection`) send corpus
//! messages to our listener, which stores them with [`mllp::FileStore`] before acknowledging;
//! and our sender sends corpus messages to its asyncio server (`hl7.mllp.start_hl7_server`),
//! which stores each message before acknowledging it. Each way checks the ACK codes and
//! control IDs, and the stored content against what was sent.
//!
//! Skipped when `MLLP_TEST_PYTHON` or `MLLP_TEST_CORPUS` is not set (`.ci/run` sets both).

use mllp_testkit as common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mllp::hl7::{Ack, AckCode, AckMode, Header};
use mllp::{FileStore, Listener, Message, Response, RunningListener, Sender};

/// How long a Python process may run.
const CHILD_LIMIT: Duration = Duration::from_secs(30);
/// Messages whose control ID starts with this are rejected by our handler (`AR`), not stored.
const REJECT_PREFIX: &str = "REJECT";

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mllp-interop-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our listener, storing every message with a `FileStore` before acknowledging it.
fn storing_listener(store_dir: &Path) -> RunningListener {
    let store = FileStore::open(store_dir).unwrap();
    // python-hl7's clients expect exactly one reply per message and know nothing of enhanced
    // mode, while many corpus messages ask for it (MSH-15 NE/ER/AL): answer in original mode.
    Listener::builder("127.0.0.1:0")
        .ack_mode(AckMode::Original)
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let id = m.header().control_id();
            if id.is_some_and(|id| id.starts_with(REJECT_PREFIX.as_bytes())) {
                return Response::reject("rejected by the test handler");
            }
            match store.save(id, m.text()) {
                Ok(_) => Response::accept(),
                Err(e) => Response::error(e.to_string()),
            }
        })
        .unwrap()
}

/// Segment endings as CR, no blank segments, no trailing white space: what python-hl7 sends
/// and stores.
fn normalise(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\r")
        .trim_end()
        .to_string()
}

/// Corpus messages python-hl7 can carry: one UTF-8 message per file, starting with `MSH|`, with
/// a control ID (unique in the set), and no byte its framing treats as a delimiter. Then two
/// generated messages, the second one rejected by our handler.
fn messages(dir: &Path) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (_, bytes) in common::hl7_files(dir) {
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let text = normalise(&text);
        if !text.starts_with("MSH|")
            || text.contains("\rMSH|")
            || text.bytes().any(|b| matches!(b, 0x0b | 0x0c | 0x1c))
        {
            continue;
        }
        let Ok(header) = Header::parse(text.as_bytes()) else {
            continue;
        };
        let Some(id) = header.control_id() else {
            continue;
        };
        let id = String::from_utf8_lossy(id).into_owned();
        if seen.insert(id.clone()) {
            out.push((id, text));
        }
    }
    assert!(out.len() >= 20, "only {} usable corpus messages", out.len());
    for id in ["PYINTEROP1", "REJECT1"] {
        out.push((id.to_string(), normalise(&common::adt(id))));
    }
    out
}

/// The expected ACK code for a message sent to our listener.
fn expected_code(id: &str) -> AckCode {
    if id.starts_with(REJECT_PREFIX) {
        AckCode::ApplicationReject
    } else {
        AckCode::ApplicationAccept
    }
}

/// Checks that `dir` holds exactly the accepted messages, in order, each in a file named for
/// its control ID, with the text that was sent.
fn check_stored(dir: &Path, sent: &[(String, String)], name_of: impl Fn(usize, &str) -> String) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let accepted: Vec<&(String, String)> = sent
        .iter()
        .filter(|(id, _)| expected_code(id) == AckCode::ApplicationAccept)
        .collect();
    assert_eq!(files.len(), accepted.len(), "stored files: {files:?}");
    for (i, (path, (id, text))) in files.iter().zip(accepted).enumerate() {
        let stored = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            &normalise(&stored),
            text,
            "message {id} stored in {}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(name, name_of(i, id), "the file of message {id}");
    }
}

/// The file name `FileStore` gives the `i`th message (from 0) with control ID `id`.
fn store_name(i: usize, id: &str) -> String {
    let safe: String = id
        .bytes()
        .take(64)
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                b as char
            } else {
                '_'
            }
        })
        .collect();
    format!("{:010}-{safe}.hl7", i + 1)
}

/// Waits for `child` within [`CHILD_LIMIT`], killing it if it runs longer.
fn wait_bounded(mut child: Child) -> Output {
    let end = Instant::now() + CHILD_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python process ran longer than {CHILD_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The MLLP frames in `bytes`, in order.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(start) = rest.iter().position(|&b| b == 0x0b) {
        let Some(len) = rest[start..].iter().position(|&b| b == 0x1c) else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len..];
    }
    out
}

#[test]
fn python_hl7_mllp_send_to_our_listener() {
    let (Some(python), Some(dir)) = (common::python(), common::corpus_dir()) else {
        return;
    };
    let messages = messages(&dir);
    let scratch = TempDir::new("mllp-send");
    let mut file = Vec::new();
    for (_, text) in &messages {
        file.push(0x0b);
        file.extend_from_slice(text.as_bytes());
        file.extend_from_slice(b"\x1c\r");
    }
    let input = scratch.file("messages.hl7", &file);
    let store = scratch.0.join("store");
    let running = storing_listener(&store);
    let tool = python.with_file_name("mllp_send");
    let child = Command::new(&tool)
        .arg("--port")
        .arg(running.local_addr().port().to_string())
        .arg("--file")
        .arg(&input)
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let output = wait_bounded(child);
    assert!(
        output.status.success(),
        "mllp_send failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // mllp_send prints each reply as received, framing included.
    let acks = frames(&output.stdout);
    assert_eq!(acks.len(), messages.len());
    for (ack, (id, _)) in acks.iter().zip(&messages) {
        let ack = Ack::parse(ack).unwrap();
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (expected_code(id), id.as_str())
        );
    }
    running.shutdown();
    running.join().unwrap();
    check_stored(&store, &messages, store_name);
}

/// Sends each message of the file given as second argument (separated by 0x1c) with
/// `open_hl7_connection`, and prints `MSA-1 MSA-2` of each acknowledgement, parsed by
/// python-hl7.
const ASYNCIO_CLIENT: &str = r#"
import asyncio, sys
import hl7
from hl7.mllp import open_hl7_connection

async def main(port, path):
    with open(path, "rb") as f:
        messages = [m.decode("utf-8") for m in f.read().split(b"\x1c") if m]
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    for text in messages:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 10)
        msa = ack.segment("MSA")
        print(msa[1], msa[2])
    writer.close()
    await writer.wait_closed()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"#;

#[test]
fn python_hl7_asyncio_client_to_our_listener() {
    let (Some(python), Some(dir)) = (common::python(), common::corpus_dir()) else {
        return;
    };
    // python-hl7 parses each message and sends it rebuilt from the parse tree (segments
    // joined by CR, trailing white space gone): `normalise` gives the same text.
    let messages = messages(&dir);
    let scratch = TempDir::new("asyncio-client");
    let mut file = Vec::new();
    for (_, text) in &messages {
        file.extend_from_slice(text.as_bytes());
        file.push(0x1c);
    }
    let input = scratch.file("messages.hl7", &file);
    let script = scratch.file("client.py", ASYNCIO_CLIENT.as_bytes());
    let store = scratch.0.join("store");
    let running = storing_listener(&store);
    let child = Command::new(&python)
        .arg(&script)
        .arg(running.local_addr().port().to_string())
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child);
    assert!(
        output.status.success(),
        "the asyncio client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), messages.len());
    for (line, (id, _)) in lines.iter().zip(&messages) {
        let code = match expected_code(id) {
            AckCode::ApplicationAccept => "AA",
            _ => "AR",
        };
        assert_eq!(*line, format!("{code} {id}"));
    }
    running.shutdown();
    running.join().unwrap();
    check_stored(&store, &messages, store_name);
}

/// The python-hl7 server: stores each message as `<n>.hl7` in the directory given as first
/// argument, then acknowledges it with `create_ack()` (or, for a header that function cannot
/// handle, an ACK of its own built with python-hl7); prints its port, and exits when its
/// standard input closes (so it never outlives the test).
const PY_SERVER: &str = r#"
import asyncio, os, sys, threading
import hl7
from hl7.mllp import start_hl7_server

store = sys.argv[1]
count = 0

async def handle(reader, writer):
    global count
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            count += 1
            path = os.path.join(store, "%06d.hl7" % count)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(str(message))
            os.rename(path + ".tmp", path)
            try:
                ack = message.create_ack()
            except Exception:
                # create_ack() needs MSH-9, MSH-11 and MSH-12 in the forms it knows.
                msh = message.segment("MSH")
                ack = hl7.parse("MSH|^~\\&|PY|PY|||||ACK|A%d|P|2.5\rMSA|AA|%s" % (count, msh(10)))
            writer.writemessage(ack)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()

async def main():
    server = await start_hl7_server(handle, "127.0.0.1", 0, encoding="utf-8")
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
asyncio.run(main())
"#;

/// Kills the child process when dropped, whatever happened.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn our_sender_to_python_hl7_server() {
    let (Some(python), Some(dir)) = (common::python(), common::corpus_dir()) else {
        return;
    };
    let scratch = TempDir::new("asyncio-server");
    let store = scratch.0.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mut child = Reap(
        Command::new(python)
            .arg("-c")
            .arg(PY_SERVER)
            .arg(&store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(CHILD_LIMIT)
        .expect("the server prints its port");
    reader.join().unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));

    // python-hl7's server acknowledges everything; the REJECT message is an ordinary one here.
    let messages = messages(&dir);
    let mut sender = Sender::builder(format!("127.0.0.1:{port}"))
        .ack_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for (id, text) in &messages {
        // Sent with CR segment endings and a final CR, as our sender's users write them.
        let ack = sender
            .send(&format!("{text}\r"))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            (ack.code, ack.control_id.as_str()),
            (AckCode::ApplicationAccept, id.as_str())
        );
    }
    let stats = sender.stats();
    assert_eq!(stats.messages, messages.len() as u64);
    assert_eq!((stats.connects, stats.retries), (1, 0));
    drop(sender);
    drop(child);
    let all = messages;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), all.len());
    for (i, (path, (id, text))) in files.iter().zip(&all).enumerate() {
        assert_eq!(
            path.file_name().unwrap().to_string_lossy(),
            format!("{:06}.hl7", i + 1)
        );
        let stored = std::fs::read_to_string(path).unwrap();
        assert_eq!(&normalise(&stored), text, "message {id}");
    }
}
