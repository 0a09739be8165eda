//! Interoperability with python-hl7: its `mllp_send` tool and its asyncio client
//! (`hl7.mllp.open_hl7_connection`) send corpus messages to our listener.
//!
//! Skipped when `MLLP_TEST_PYTHON` or `MLLP_TEST_CORPUS` is not set (`.ci/run` sets both).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mllp::{Ack, AckCode, AckPolicy, Header, Listener, Message, Response, RunningListener};

/// How long a Python client may run.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The control ID and text of every message the handler saw.
type Received = Arc<Mutex<Vec<(String, String)>>>;

fn listener() -> (RunningListener, Received) {
    let received: Received = Arc::default();
    let received2 = Arc::clone(&received);
    // python-hl7's clients expect exactly one reply per message and know nothing of enhanced
    // mode, while many corpus messages ask for it (MSH-15 NE/ER/AL): answer in original mode.
    let running = Listener::builder("127.0.0.1:0")
        .ack_policy(AckPolicy::Original)
        .bind()
        .unwrap()
        .spawn(move |m: &Message<'_>| {
            let id = m.control_id().unwrap_or_default().to_string();
            received2.lock().unwrap().push((id, m.text().to_string()));
            Response::accept()
        })
        .unwrap();
    (running, received)
}

/// Segment endings as CR, no blank segments, no trailing white space: what both Python
/// clients send.
fn normalise(text: &str) -> String {
    text.split(['\r', '\n'])
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\r")
        .trim_end()
        .to_string()
}

/// Corpus messages both clients can carry: one UTF-8 message per file, starting with `MSH|`,
/// with a control ID (unique in the set), and no byte a client treats as a block delimiter.
fn corpus_messages(dir: &Path) -> Vec<(String, String)> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for (_, bytes) in common::hl7_files(dir) {
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let text = normalise(&text);
        if !text.starts_with("MSH|")
            || text.matches("\rMSH|").count() > 0
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
        if seen.insert(id.clone(), ()).is_none() {
            out.push((id, text));
        }
    }
    out
}

/// Waits for `child` within [`CHILD_LIMIT`], killing it if it runs longer.
fn wait_bounded(mut child: Child) -> Output {
    let end = Instant::now() + CHILD_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python client ran longer than {CHILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mllp-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
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

fn check_received(received: &Received, sent: &[(String, String)]) {
    let received = received.lock().unwrap();
    assert_eq!(received.len(), sent.len());
    for ((got_id, got_text), (id, text)) in received.iter().zip(sent) {
        assert_eq!(got_id, id);
        assert_eq!(&normalise(got_text), text, "message {id}");
    }
}

#[test]
fn python_hl7_mllp_send_tool() {
    let (Some(python), Some(dir)) = (common::python(), common::corpus_dir()) else {
        return;
    };
    let messages = corpus_messages(&dir);
    assert!(
        messages.len() >= 20,
        "only {} usable corpus messages",
        messages.len()
    );
    let mut file = Vec::new();
    for (_, text) in &messages {
        file.push(0x0b);
        file.extend_from_slice(text.as_bytes());
        file.extend_from_slice(b"\x1c\r");
    }
    let path = temp_file("mllp_send.hl7", &file);
    let (running, received) = listener();
    let tool = python.with_file_name("mllp_send");
    let child = Command::new(&tool)
        .arg("--port")
        .arg(running.local_addr().port().to_string())
        .arg("--file")
        .arg(&path)
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let output = wait_bounded(child);
    let _ = std::fs::remove_file(&path);
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
            (AckCode::ApplicationAccept, id.as_str())
        );
    }
    check_received(&received, &messages);
    running.shutdown();
    running.join().unwrap();
}

/// Sends each message of the file given as first argument (separated by 0x1c) with
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
fn python_hl7_asyncio_client() {
    let (Some(python), Some(dir)) = (common::python(), common::corpus_dir()) else {
        return;
    };
    // python-hl7 parses each message and sends it rebuilt from the parse tree (segments
    // joined by CR, trailing white space gone): `normalise` gives the same text.
    let messages = corpus_messages(&dir);
    let mut file = Vec::new();
    for (_, text) in &messages {
        file.extend_from_slice(text.as_bytes());
        file.push(0x1c);
    }
    let path = temp_file("asyncio.hl7", &file);
    let script = temp_file("asyncio_client.py", ASYNCIO_CLIENT.as_bytes());
    let (running, received) = listener();
    let child = Command::new(&python)
        .arg(&script)
        .arg(running.local_addr().port().to_string())
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&script);
    assert!(
        output.status.success(),
        "the asyncio client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), messages.len());
    for (line, (id, _)) in lines.iter().zip(&messages) {
        assert_eq!(*line, format!("AA {id}"));
    }
    check_received(&received, &messages);
    running.shutdown();
    running.join().unwrap();
}
